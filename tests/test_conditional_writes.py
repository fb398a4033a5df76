"""Writes are conditional and outputs are trusted only once verified.

- Forged outputs (source-ETag metadata without the marker; the marker on something that is not
  Parquet or zstd; a Parquet footer whose rows differ from the recorded ones) never lead to the
  source being deleted, and are never overwritten.
- A destination written by someone else between our check and our PUT makes the PUT fail (412)
  and the outcome a skip, source kept; moto honours If-None-Match/If-Match on PutObject.
- Outputs are streamed through ``chalicelib.multipart.MultipartSink``; a multipart upload carries the
  condition on CompleteMultipartUpload: IfNoneMatch runs on moto for real; IfMatch and the abort
  after a refused completion use botocore's Stubber, since moto ignores If-Match there.
"""

from __future__ import annotations

import csv
import gzip
import io
import os
from datetime import datetime, timezone

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import zstandard
from botocore.stub import ANY, Stubber

from chalicelib import s3 as s3util
from chalicelib.actions import REGISTRY
from chalicelib.actions.output import untrusted, write_output
from chalicelib.context import RunContext
from chalicelib.actions.writer import WriteParams
from chalicelib.decision import Decision
from chalicelib.formats import ConversionError
from chalicelib.formats.recompress import CHECK_BYTES, CHECK_DECODED, check_zstd_beginning
from chalicelib.ledger import Ledger
from chalicelib.multipart import MultipartSink
from chalicelib.pipeline import handle_uploads
from chalicelib.policy import PolicySet
from chalicelib.refs import ObjectRef

PARQUET = "application/vnd.apache.parquet"


def table_csv(rows: int = 3000) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["id", "city", "score"])
    for i in range(rows):
        writer.writerow([i, ["Oslo", "Lima", "Pune"][i % 3], f"{i / 8:.3f}"])
    return out.getvalue().encode()


def log_lines(count: int = 20_000) -> bytes:
    return b"".join(b"2026-11-01T00:00:%02dZ INFO request %d ok latency_ms=%d\n" % (i % 60, i, i % 977) for i in range(count))


def parquet_bytes(rows: int) -> bytes:
    sink = io.BytesIO()
    pq.write_table(pa.table({"id": list(range(rows))}), sink)
    return sink.getvalue()


def policies(bucket: str, source: str = "delete", level: int = 19) -> PolicySet:
    return PolicySet.from_dicts([
        {"name": "tables", "bucket": bucket, "filters": {"prefix": "raw/"},
         "actions": [{"convert": {"destination": "curated/{rel_dir}{name}.parquet", "source": source}}]},
        {"name": "logs", "bucket": bucket, "filters": {"prefix": "logs/"},
         "actions": [{"recompress": {"destination": "{dir}{name}.zst", "source": source, "level": level}}]},
    ])


def run(s3, bucket: str, *keys: str, source: str = "delete", level: int = 19):
    ctx = RunContext(policies=policies(bucket, source, level), s3=s3)
    return handle_uploads([ObjectRef(bucket, k) for k in keys], ctx, Ledger(emit_metrics=False))


def body(s3, bucket: str, key: str) -> bytes:
    return s3.get_object(Bucket=bucket, Key=key)["Body"].read()


def forged_metadata(s3, bucket: str, source_key: str, **extra: str) -> dict[str, str]:
    """What a leanlake output of ``source_key`` as it is now would carry (the marker left to the caller)."""
    etag = s3.head_object(Bucket=bucket, Key=source_key)["ETag"].strip('"')
    return {"leanlake-source-key": source_key, "leanlake-source-etag": etag, **extra}


# --- forged outputs never lead to a deletion --------------------------------------------------


@pytest.mark.parametrize("forged_body, metadata, fragment", [
    (parquet_bytes(3000), {"leanlake-rows": "3000"}, "not written by leanlake"),             # no marker
    (b"just some bytes, not parquet", {"leanlake": "output", "leanlake-rows": "3000"}, "no PAR1 magic"),
    (parquet_bytes(3000), {"leanlake": "output"}, "records no row count"),
    (parquet_bytes(5), {"leanlake": "output", "leanlake-rows": "3000"}, "footer holds 5 rows, its metadata records 3000"),
    (b"PAR1" + b"\0" * 64 + b"PAR1", {"leanlake": "output", "leanlake-rows": "3000"}, "footer is unreadable"),
], ids=["no-marker", "not-parquet", "no-row-count", "wrong-row-count", "bad-footer"])
def test_a_forged_parquet_output_never_deletes_its_source(s3, bucket, forged_body, metadata, fragment):
    source = table_csv()
    s3.put_object(Bucket=bucket, Key="raw/t.csv", Body=source)
    s3.put_object(Bucket=bucket, Key="curated/t.csv.parquet", Body=forged_body,
                  Metadata=forged_metadata(s3, bucket, "raw/t.csv", **metadata))

    (outcome,) = run(s3, bucket, "raw/t.csv")

    assert outcome.status == "error" and fragment in outcome.reason and "\n" not in outcome.reason
    assert f"s3://{bucket}/curated/t.csv.parquet" in outcome.reason and outcome.reason.endswith("source kept")
    assert body(s3, bucket, "raw/t.csv") == source
    assert body(s3, bucket, "curated/t.csv.parquet") == forged_body


@pytest.mark.parametrize("forged_body, fragment", [
    (b"\x1f\x8b gzip, not zstd", "not a zstd frame (starts with 1f8b2067)"),
    (zstandard.ZstdCompressor().compress(log_lines(2000))[:-40], "zstd frame truncated"),
], ids=["gzip", "truncated"])
def test_a_forged_zstd_output_never_deletes_its_source(s3, bucket, forged_body, fragment):
    source = gzip.compress(log_lines())
    s3.put_object(Bucket=bucket, Key="logs/app.log.gz", Body=source)
    s3.put_object(Bucket=bucket, Key="logs/app.log.gz.zst", Body=forged_body,
                  Metadata=forged_metadata(s3, bucket, "logs/app.log.gz", leanlake="output"))

    (outcome,) = run(s3, bucket, "logs/app.log.gz")

    assert outcome.status == "error" and fragment in outcome.reason and outcome.reason.endswith("source kept")
    assert body(s3, bucket, "logs/app.log.gz") == source
    assert body(s3, bucket, "logs/app.log.gz.zst") == forged_body


def test_a_verified_earlier_output_lets_the_source_go(s3, bucket):
    """The same check passes real outputs: made with source kept, trusted on the next run, then the source goes."""
    s3.put_object(Bucket=bucket, Key="raw/t.csv", Body=table_csv())
    trace_ids = b"".join(b"%d trace=%s\n" % (i, os.urandom(16).hex().encode()) for i in range(20_000))
    s3.put_object(Bucket=bucket, Key="logs/app.log", Body=trace_ids)  # its zstd output is over 128 KiB
    made = run(s3, bucket, "raw/t.csv", "logs/app.log", source="keep", level=3)
    assert [o.status for o in made] == ["ok", "ok"], [o.reason for o in made]
    assert s3.head_object(Bucket=bucket, Key="curated/t.csv.parquet")["Metadata"]["leanlake-rows"] == "3000"
    assert s3.head_object(Bucket=bucket, Key="logs/app.log.zst")["ContentLength"] > CHECK_BYTES

    again = run(s3, bucket, "raw/t.csv", "logs/app.log", level=3)

    assert [o.status for o in again] == ["skip", "skip"]
    assert all("already made from this ETag; source: deleted" in o.reason for o in again)
    listed = sorted(o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"] if not o["Key"].startswith("_leanlake/"))
    assert listed == ["curated/t.csv.parquet", "logs/app.log.zst"]


def test_parquet_verification_reads_only_the_ends_of_the_output(s3, bucket):
    s3.put_object(Bucket=bucket, Key="big.parquet", Body=parquet_bytes(400_000),
                  Metadata={"leanlake": "output", "leanlake-rows": "400000"})
    head = s3util.head(s3, bucket, "big.parquet")
    reader = s3util.RangedReader(s3, head)
    assert pq.read_metadata(reader).num_rows == 400_000
    assert reader.requests <= 2  # pyarrow reads the footer (with its length) from the end in one or two GETs
    s3.put_object(Bucket=bucket, Key="big.parquet", Body=b"replaced")
    with pytest.raises(s3util.ConditionFailed, match="changed while being read"):
        s3util.read_range(s3, head, 0, 4)  # pinned to the ETag HEAD saw


def test_zstd_beginning_check():
    data = log_lines(50_000)
    frame = zstandard.ZstdCompressor(write_checksum=True).compress(data)
    check_zstd_beginning(frame, whole=True)
    check_zstd_beginning(frame[:CHECK_BYTES], whole=False)
    corrupt = bytearray(frame)
    corrupt[-1] ^= 0xFF  # the frame checksum
    with pytest.raises(ConversionError, match="unreadable"):
        check_zstd_beginning(bytes(corrupt), whole=True)
    with pytest.raises(ConversionError, match="truncated"):
        check_zstd_beginning(frame[: len(frame) // 2], whole=True)
    # A frame of zeros expands enormously: decoding stops after CHECK_DECODED bytes, so the corrupt
    # checksum at its end is never reached (were the whole frame decoded, this would raise).
    bomb = bytearray(zstandard.ZstdCompressor(write_checksum=True).compress(b"\0" * (4 * CHECK_DECODED)))
    bomb[-1] ^= 0xFF
    check_zstd_beginning(bytes(bomb), whole=True)
    with pytest.raises(zstandard.ZstdError, match="checksum"):
        zstandard.ZstdDecompressor().decompress(bytes(bomb))


# --- conditional writes ------------------------------------------------------------------------


def upload(s3, path: str, bucket: str, key: str, *, metadata, content_type: str, source: s3util.Head,
           replacing: str | None = None, **sink_options) -> s3util.Head:
    """Stream the file at ``path`` through a MultipartSink, 1 MiB at a time, and commit it."""
    sink = MultipartSink(s3, bucket, key, extra=s3util.output_arguments(source, metadata, content_type),
                         replacing=replacing, **sink_options)
    with open(path, "rb") as f:
        while piece := f.read(1 << 20):
            sink.write(piece)
    return sink.commit()


def source_head(s3, bucket: str, key: str = "src.bin") -> s3util.Head:
    s3.put_object(Bucket=bucket, Key=key, Body=b"source", Tagging="team=ml")
    head = s3util.head(s3, bucket, key, with_tags=True)
    assert head is not None
    return head


def test_single_put_is_conditional_on_moto(s3, bucket, tmp_path):
    path = tmp_path / "out"
    path.write_bytes(b"new output")
    src = source_head(s3, bucket)
    first = upload(s3, str(path), bucket, "out", metadata={"leanlake": "output"}, content_type="text/plain", source=src)
    assert body(s3, bucket, "out") == b"new output" and s3.get_object_tagging(Bucket=bucket, Key="out")["TagSet"]

    with pytest.raises(s3util.ConditionFailed, match="it exists now"):  # If-None-Match: *
        upload(s3, str(path), bucket, "out", metadata={}, content_type="text/plain", source=src)
    with pytest.raises(s3util.ConditionFailed, match="no longer ETag 0123"):  # If-Match with a stale ETag
        upload(s3, str(path), bucket, "out", metadata={}, content_type="text/plain", source=src, replacing="0123")
    assert s3util.head(s3, bucket, "out").etag == first.etag

    path.write_bytes(b"replacement")
    replaced = upload(s3, str(path), bucket, "out", metadata={}, content_type="text/plain", source=src,
                             replacing=first.etag)
    assert body(s3, bucket, "out") == b"replacement" and replaced.etag != first.etag


def test_multipart_upload_is_conditional_on_moto_and_leaves_no_parts(s3, bucket, tmp_path):
    path = tmp_path / "big"
    payload = os.urandom(11 * 1024**2)
    path.write_bytes(payload)
    src = source_head(s3, bucket)
    kwargs = dict(metadata={"leanlake": "output"}, content_type="application/zstd", source=src,
                  first_part_size=5 * 1024**2)
    written = upload(s3, str(path), bucket, "big", **kwargs)
    assert written.etag.endswith("-3") and written.metadata == {"leanlake": "output"}
    assert body(s3, bucket, "big") == payload

    path.write_bytes(os.urandom(11 * 1024**2))
    with pytest.raises(s3util.ConditionFailed):
        upload(s3, str(path), bucket, "big", **kwargs)  # If-None-Match: * on CompleteMultipartUpload
    assert body(s3, bucket, "big") == payload
    assert not s3.list_multipart_uploads(Bucket=bucket).get("Uploads")


def stubbed_multipart(s3, bucket: str, condition: dict[str, str], complete_fails: bool = False) -> Stubber:
    """A Stubber expecting one multipart upload of one part, completed under ``condition``."""
    stub = Stubber(s3)
    stub.add_response("create_multipart_upload", {"UploadId": "u-1"},
                      {"Bucket": bucket, "Key": "out", "ChecksumAlgorithm": "CRC32", "Metadata": {"leanlake": "output"},
                       "ContentType": "application/zstd", "Tagging": "team=ml"})
    stub.add_response("upload_part", {"ETag": '"p1"', "ChecksumCRC32": "AAAAAA=="},
                      {"Bucket": bucket, "Key": "out", "UploadId": "u-1", "PartNumber": 1, "Body": ANY,
                       "ChecksumAlgorithm": "CRC32"})
    complete = {"Bucket": bucket, "Key": "out", "UploadId": "u-1",
                "MultipartUpload": {"Parts": [{"PartNumber": 1, "ETag": '"p1"', "ChecksumCRC32": "AAAAAA=="}]}, **condition}
    if complete_fails:
        stub.add_client_error("complete_multipart_upload", service_error_code="PreconditionFailed",
                              service_message="At least one of the pre-conditions you specified did not hold",
                              http_status_code=412, expected_params=complete)
        stub.add_response("abort_multipart_upload", {}, {"Bucket": bucket, "Key": "out", "UploadId": "u-1"})
    else:
        stub.add_response("complete_multipart_upload", {"ETag": '"whole-1"'}, complete)
        stub.add_response("head_object", {"ContentLength": 6, "ETag": '"whole-1"', "LastModified": datetime.now(timezone.utc),
                                          "Metadata": {"leanlake": "output"}}, {"Bucket": bucket, "Key": "out"})
    return stub


@pytest.mark.parametrize("replacing, condition", [(None, {"IfNoneMatch": "*"}), ("old-etag", {"IfMatch": '"old-etag"'})])
def test_complete_multipart_upload_carries_the_condition(s3, bucket, tmp_path, replacing, condition):
    src = source_head(s3, bucket)
    path = tmp_path / "out"
    path.write_bytes(b"output")
    with stubbed_multipart(s3, bucket, condition) as stub:
        written = upload(s3, str(path), bucket, "out", metadata={"leanlake": "output"}, content_type="application/zstd",
                                source=src, replacing=replacing, single_put=False)
        stub.assert_no_pending_responses()
    assert written.etag == "whole-1"


def test_a_refused_completion_is_aborted_and_reported(s3, bucket, tmp_path):
    src = source_head(s3, bucket)
    path = tmp_path / "out"
    path.write_bytes(b"output")
    with stubbed_multipart(s3, bucket, {"IfMatch": '"old-etag"'}, complete_fails=True) as stub:
        with pytest.raises(s3util.ConditionFailed, match="changed meanwhile"):
            upload(s3, str(path), bucket, "out", metadata={"leanlake": "output"}, content_type="application/zstd",
                          source=src, replacing="old-etag", single_put=False)
        stub.assert_no_pending_responses()  # the abort was sent


# --- a destination written meanwhile: the real write path ---------------------------------------


def convert_decision(bucket: str, key: str, destination: str) -> Decision:
    return Decision(bucket, key, "tables", "convert", "test", params=WriteParams(destination, "delete"))


def producer_racing_with(write_competitor):
    """Convert's real producer, after another process writes the destination (between our HEAD and our PUT)."""
    convert = REGISTRY["convert"](source="delete")

    def produce(open_source, path):
        write_competitor()
        return convert.produce(open_source, path)

    return produce


def test_a_destination_created_meanwhile_is_not_overwritten(s3, bucket):
    source = table_csv()
    s3.put_object(Bucket=bucket, Key="raw/t.csv", Body=source)
    produce = producer_racing_with(lambda: s3.put_object(Bucket=bucket, Key="curated/t.parquet", Body=b"theirs"))
    ctx = RunContext(policies=policies(bucket), s3=s3)

    outcome = write_output(convert_decision(bucket, "raw/t.csv", "curated/t.parquet"), ctx, destination="curated/t.parquet",
                           source_disposition="delete", produce=produce, content_type=PARQUET)

    assert outcome.status == "skip" and outcome.reason.startswith("destination changed meanwhile")
    assert "(it exists now)" in outcome.reason and outcome.reason.endswith("source kept")
    assert body(s3, bucket, "curated/t.parquet") == b"theirs" and body(s3, bucket, "raw/t.csv") == source


def test_our_old_output_replaced_meanwhile_is_not_overwritten(s3, bucket):
    s3.put_object(Bucket=bucket, Key="raw/t.csv", Body=table_csv(1000))
    assert run(s3, bucket, "raw/t.csv", source="keep")[0].status == "ok"
    source = table_csv(3000)
    s3.put_object(Bucket=bucket, Key="raw/t.csv", Body=source)  # a new version: our output is to be replaced
    produce = producer_racing_with(lambda: s3.put_object(Bucket=bucket, Key="curated/t.csv.parquet", Body=b"theirs"))
    ctx = RunContext(policies=policies(bucket), s3=s3)

    outcome = write_output(convert_decision(bucket, "raw/t.csv", "curated/t.csv.parquet"), ctx,
                           destination="curated/t.csv.parquet", source_disposition="delete", produce=produce,
                           content_type=PARQUET)

    assert outcome.status == "skip" and "changed meanwhile (no longer ETag" in outcome.reason
    assert body(s3, bucket, "curated/t.csv.parquet") == b"theirs" and body(s3, bucket, "raw/t.csv") == source


def test_an_upload_that_fails_verification_keeps_the_source(s3, bucket):
    """The fresh output is checked like an old one: here the producer reports a wrong row count."""
    source = table_csv()
    s3.put_object(Bucket=bucket, Key="raw/t.csv", Body=source)
    convert = REGISTRY["convert"](source="delete")

    def miscounting(open_source, path):
        size, detail = convert.produce(open_source, path)
        return size, {**detail, "rows": detail["rows"] + 1}

    ctx = RunContext(policies=policies(bucket), s3=s3)
    outcome = write_output(convert_decision(bucket, "raw/t.csv", "curated/t.parquet"), ctx, destination="curated/t.parquet",
                           source_disposition="delete", produce=miscounting, content_type=PARQUET)

    assert outcome.status == "error" and "failed verification: its Parquet footer holds 3000 rows" in outcome.reason
    assert body(s3, bucket, "raw/t.csv") == source


def test_untrusted_names_what_does_not_match(s3, bucket):
    src = source_head(s3, bucket, "raw/s.csv")
    meta = s3util.source_metadata(src, "p", rows=5)
    s3.put_object(Bucket=bucket, Key="o.parquet", Body=parquet_bytes(5), Metadata={**meta, "leanlake-source-key": "raw/other.csv"})
    assert untrusted(s3, s3util.head(s3, bucket, "o.parquet"), src, PARQUET) == "it was made from 'raw/other.csv', not 'raw/s.csv'"
    s3.put_object(Bucket=bucket, Key="o.parquet", Body=parquet_bytes(5), Metadata={**meta, "leanlake-source-etag": "old"})
    assert untrusted(s3, s3util.head(s3, bucket, "o.parquet"), src, PARQUET).startswith("it was made from ETag 'old'")
    s3.put_object(Bucket=bucket, Key="o.parquet", Body=parquet_bytes(5), Metadata=meta)
    assert untrusted(s3, s3util.head(s3, bucket, "o.parquet"), src, PARQUET) is None
