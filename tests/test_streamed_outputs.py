"""Outputs are streamed to S3 as they are produced: nothing on local disk, bounded memory, nothing left behind.

- A ~200 MB CSV converts through the upload handler in a child process whose ``tempfile`` raises
  and whose TMPDIR is an empty directory that stays empty; the output in S3 is verified Parquet
  (footer read with ranged GETs) with the right rows, and the source is deleted as the policy says.
  Its peak RSS is measured (printed, not asserted).
- A conversion failing mid-stream (a ragged row near the end), an output that would not be
  smaller, and a dry run leave no object and no incomplete multipart upload.
- A CSV whose column must be widened near its end starts over: the first upload is aborted,
  a second one completes.
- Part sizes: 8 MiB doubling every 1,000 parts; 1 TB (and S3's 5 TiB maximum) fits in 10,000 parts.
- A multipart output records its rows and source in its Parquet footer; forgeries of that are refused.
"""

from __future__ import annotations

import io
import json
import os
import random
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from chalicelib import multipart, s3 as s3util
from chalicelib.actions.output import untrusted
from chalicelib.context import RunContext
from chalicelib.formats.outputs import FOOTER_ROWS, FOOTER_SOURCE_ETAG, FOOTER_SOURCE_KEY
from chalicelib.ledger import Ledger
from chalicelib.pipeline import handle_uploads
from chalicelib.policy import PolicySet
from chalicelib.refs import ObjectRef

ROOT = Path(__file__).resolve().parents[1]
MiB = 1024**2
PARQUET = "application/vnd.apache.parquet"


# ------------------------------------------------------------------------------------ part sizes

def sizes_for(total: int) -> list[int]:
    """The part sizes a MultipartSink uses for an output of ``total`` bytes."""
    sizes, written = [], 0
    while written < total:
        size = min(multipart.part_size(len(sizes) + 1), total - written)
        sizes.append(size)
        written += size
    return sizes


@pytest.mark.parametrize("total", [10**12, 5 * 1024**4], ids=["1 TB", "5 TiB"])
def test_part_sizes_stay_within_s3_limits(total):
    sizes = sizes_for(total)
    assert len(sizes) <= s3util.MAX_PARTS
    assert all(multipart.MIN_PART_SIZE <= s <= multipart.MAX_PART_SIZE for s in sizes[:-1])
    assert sizes[0] == 8 * MiB and sizes[999] == 8 * MiB and sizes[1000] == 16 * MiB


def test_the_sink_uploads_parts_of_growing_size_and_the_whole_reads_back(s3, bucket, monkeypatch):
    monkeypatch.setattr(multipart, "PARTS_PER_SIZE", 2)  # 5, 5, 10, 10, 20 MiB … instead of 1,000 of each
    payload = random.Random(1).randbytes(31 * MiB)
    sink = multipart.MultipartSink(s3, bucket, "big.bin", extra={"Metadata": {"leanlake": "output"}},
                                   first_part_size=5 * MiB)
    for start in range(0, len(payload), 3 * MiB + 17):  # writes that do not line up with parts
        sink.write(payload[start:start + 3 * MiB + 17])
    written = sink.commit()

    assert written.etag.endswith("-5") and written.size == len(payload)
    sizes = [s3.head_object(Bucket=bucket, Key="big.bin", PartNumber=n)["ContentLength"] for n in range(1, 6)]
    assert sizes == [5 * MiB, 5 * MiB, 10 * MiB, 10 * MiB, 1 * MiB]
    assert s3.get_object(Bucket=bucket, Key="big.bin")["Body"].read() == payload


def test_a_small_output_is_one_conditional_put_and_an_abort_leaves_nothing(s3, bucket):
    requests = count_requests(s3)
    sink = multipart.MultipartSink(s3, bucket, "small", extra={})
    sink.write(b"tiny")
    sink.commit({"leanlake-rows": "1"})
    assert requests["PutObject"] == 1 and "CreateMultipartUpload" not in requests
    assert s3.head_object(Bucket=bucket, Key="small")["Metadata"] == {"leanlake-rows": "1"}

    big = multipart.MultipartSink(s3, bucket, "gone", extra={})
    big.write(os.urandom(9 * MiB))  # one part uploaded
    assert s3.list_multipart_uploads(Bucket=bucket).get("Uploads")
    big.abort()
    big.abort()  # idempotent
    assert not s3.list_multipart_uploads(Bucket=bucket).get("Uploads")
    assert keys(s3, bucket) == ["small"]
    with pytest.raises(ValueError, match="write after the upload ended"):
        big.write(b"more")


# ----------------------------------------------------------------------------------- helpers

def count_requests(s3) -> dict[str, int]:
    """Counts of the S3 operations ``s3`` sends from now on (observed through botocore's events)."""
    seen: dict[str, int] = {}

    def note(model, **_):
        seen[model.name] = seen.get(model.name, 0) + 1

    s3.meta.events.register("before-call.s3", note)
    return seen


def keys(s3, bucket: str) -> list[str]:
    return sorted(o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", []) if not o["Key"].startswith("_leanlake/"))


def policies(bucket: str, source: str = "delete") -> PolicySet:
    return PolicySet.from_dicts([
        {"name": "tables", "bucket": bucket, "filters": {"prefix": "raw/"},
         "actions": [{"convert": {"destination": "curated/{rel_dir}{stem}.parquet", "source": source}}]},
        {"name": "blobs", "bucket": bucket, "filters": {"prefix": "blobs/"},
         "actions": [{"recompress": {"level": 1, "source": source}}]},
    ])


def run(s3, bucket: str, key: str, *, dry_run: bool = False, source: str = "delete"):
    ctx = RunContext(policies=policies(bucket, source), s3=s3, dry_run=dry_run)
    (outcome,) = handle_uploads([ObjectRef(bucket, key)], ctx, Ledger(emit_metrics=False))
    return outcome


def rows_csv(start: int, count: int, seed: int) -> bytes:
    """CSV rows of a table with text and numeric columns that compresses like real data (not to nothing)."""
    rnd = random.Random(seed)
    cities = [b"Oslo", b"Lima", b"Pune", b"Accra", b"Quito", b"Hanoi"]
    return b"".join(b"%d,%s,%08x,%d.%04d,2026-11-%02dT%02d:%02d:00Z\n"
                    % (i, cities[i % 6], rnd.getrandbits(32), rnd.randrange(100_000), rnd.randrange(10_000),
                       1 + i % 28, i % 24, i % 60) for i in range(start, start + count))


HEADER = b"id,city,token,score,seen_at\n"


def put_generated_csv(s3, bucket: str, key: str, total_rows: int, *, tail: bytes = b"") -> int:
    """Stream a generated CSV of ``total_rows`` rows (then ``tail``) into S3 as a multipart upload; its size."""
    upload_id = s3.create_multipart_upload(Bucket=bucket, Key=key)["UploadId"]
    parts, size, pending, row = [], 0, bytearray(HEADER), 0
    step = 100_000
    while row < total_rows or pending:
        if row < total_rows:
            pending += rows_csv(row, min(step, total_rows - row), seed=row)
            row += step
        if row >= total_rows:
            pending += tail
            tail = b""
        if len(pending) >= 8 * MiB or row >= total_rows:
            body = bytes(pending)
            pending = bytearray()
            parts.append({"PartNumber": len(parts) + 1, "ETag": s3.upload_part(
                Bucket=bucket, Key=key, UploadId=upload_id, PartNumber=len(parts) + 1, Body=body)["ETag"]})
            size += len(body)
    s3.complete_multipart_upload(Bucket=bucket, Key=key, UploadId=upload_id, MultipartUpload={"Parts": parts})
    return size


def footer(s3, bucket: str, key: str):
    head = s3util.head(s3, bucket, key)
    assert head is not None
    return head, pq.read_metadata(s3util.RangedReader(s3, head))


# ----------------------------------------------------- 200 MB through the upload handler, in a child

#: Runs argv[1:] and reports its own peak RSS (a child forked from pytest would inherit pytest's).
_MEASURE = ("import os, subprocess, sys\n"
            "child = subprocess.Popen(sys.argv[1:])\n"
            "_, status, usage = os.wait4(child.pid, 0)\n"
            "sys.stderr.write(f'\\npeak-rss-kib={usage.ru_maxrss}\\n')\n"
            "sys.exit(os.waitstatus_to_exitcode(status))\n")

#: The upload handler with no way to use local disk: every tempfile entry point raises, TMPDIR is empty.
_HANDLER = """
import json, sys, tempfile

def refuse(*args, **kwargs):
    raise AssertionError("a temp file was asked for")

for name in ("mkstemp", "mkdtemp", "NamedTemporaryFile", "TemporaryFile", "SpooledTemporaryFile", "TemporaryDirectory"):
    setattr(tempfile, name, refuse)

from chalicelib.context import RunContext
from chalicelib.ledger import Ledger
from chalicelib.pipeline import handle_uploads
from chalicelib.policy import PolicySet
from chalicelib.refs import ObjectRef
from chalicelib.s3 import client

bucket, key, policies = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
ctx = RunContext(policies=PolicySet.from_dicts(policies), s3=client())
outcomes = handle_uploads([ObjectRef(bucket, key)], ctx, Ledger(emit_metrics=False))
print(json.dumps([{"status": o.status, "reason": o.reason, "bytes_after": o.bytes_after} for o in outcomes]))
"""


def test_a_200_mb_csv_converts_through_the_handler_without_local_disk(s3, bucket, moto_endpoint, tmp_path):
    rows = 3_600_000
    size = put_generated_csv(s3, bucket, "raw/2026/events.csv", rows)
    assert size > 190 * 10**6
    tiny = tmp_path / "tmp"
    tiny.mkdir()
    env = {**os.environ, "AWS_ENDPOINT_URL": moto_endpoint, "TMPDIR": str(tiny), "PYTHONPATH": str(ROOT)}
    policy = [{"name": "tables", "bucket": bucket, "filters": {"prefix": "raw/"},
               "actions": [{"convert": {"destination": "curated/{rel_dir}{stem}.parquet", "source": "delete"}}]}]
    done = subprocess.run([sys.executable, "-c", _MEASURE, sys.executable, "-c", _HANDLER, bucket, "raw/2026/events.csv",
                           json.dumps(policy)], capture_output=True, cwd=ROOT, env=env, check=False)
    err = done.stderr.decode()
    assert done.returncode == 0, err[-3000:]
    (outcome,) = json.loads(done.stdout.decode().strip().splitlines()[-1])
    peak = int(err.rpartition("peak-rss-kib=")[2]) * 1024

    assert outcome["status"] == "ok", outcome["reason"]
    assert outcome["reason"].endswith("source: deleted")
    assert list(tiny.iterdir()) == []  # nothing was written under TMPDIR either
    head, meta = footer(s3, bucket, "curated/2026/events.parquet")
    assert meta.num_rows == rows and head.size == outcome["bytes_after"]
    assert head.etag.endswith(f"-{-(-head.size // multipart.FIRST_PART_SIZE)}")  # streamed in 8 MiB parts
    assert s3util.ROWS not in head.metadata  # fixed before the rows were known: the footer records them
    assert meta.metadata[FOOTER_ROWS.encode()] == str(rows).encode()
    assert meta.metadata[FOOTER_SOURCE_KEY.encode()] == b"raw/2026/events.csv"
    assert keys(s3, bucket) == ["curated/2026/events.parquet"]  # the source deleted, as the policy says
    assert not s3.list_multipart_uploads(Bucket=bucket).get("Uploads")
    table = pq.read_table(io.BytesIO(s3.get_object(Bucket=bucket, Key="curated/2026/events.parquet")["Body"].read()),
                          columns=["id", "token"])
    assert table.column("id")[rows - 1].as_py() == rows - 1
    print(f"\n200 MB conversion through the handler: {size / 1e6:.0f} MB CSV → {head.size / 1e6:.1f} MB Parquet, "
          f"peak RSS {peak / MiB:.0f} MiB")


# ---------------------------------------------------------------------- nothing left behind

def test_a_failure_mid_stream_leaves_no_object_and_no_upload(s3, bucket):
    source_size = put_generated_csv(s3, bucket, "raw/ragged.csv", 1_000_000, tail=b"1,Oslo,ab,1.0,x,EXTRA\n")
    requests = count_requests(s3)

    outcome = run(s3, bucket, "raw/ragged.csv")

    assert outcome.status == "error" and "\n" not in outcome.reason
    assert outcome.reason.startswith(f"s3://{bucket}/raw/ragged.csv: line 1000002: ")
    assert requests.get("UploadPart", 0) >= 1  # parts had been streamed when the ragged row was found
    assert requests["AbortMultipartUpload"] == requests["CreateMultipartUpload"]
    assert "CompleteMultipartUpload" not in requests and "PutObject" not in requests
    assert not s3.list_multipart_uploads(Bucket=bucket).get("Uploads")
    assert keys(s3, bucket) == ["raw/ragged.csv"]
    assert s3.head_object(Bucket=bucket, Key="raw/ragged.csv")["ContentLength"] == source_size


def test_a_column_widened_near_the_end_starts_the_upload_again(s3, bucket):
    put_generated_csv(s3, bucket, "raw/wide.csv", 1_000_000, tail=b"not-a-number,Oslo,ab,1.0,2026-11-01T00:00:00Z\n")
    requests = count_requests(s3)

    outcome = run(s3, bucket, "raw/wide.csv")

    assert outcome.status == "ok", outcome.reason
    assert requests["CreateMultipartUpload"] == 2 and requests["AbortMultipartUpload"] == 1
    assert requests["CompleteMultipartUpload"] == 1
    assert not s3.list_multipart_uploads(Bucket=bucket).get("Uploads")
    _, meta = footer(s3, bucket, "curated/wide.parquet")
    assert meta.num_rows == 1_000_001 and meta.schema.column(0).physical_type == "BYTE_ARRAY"


def test_an_output_that_would_not_be_smaller_is_aborted(s3, bucket):
    noise = os.urandom(20 * MiB)  # zstd cannot shrink it: the output is only known to be larger once produced
    s3.put_object(Bucket=bucket, Key="blobs/noise.bin", Body=noise)
    requests = count_requests(s3)

    outcome = run(s3, bucket, "blobs/noise.bin")

    assert outcome.status == "skip" and outcome.reason.startswith("output would not be smaller")
    assert requests.get("UploadPart", 0) >= 1 and requests["AbortMultipartUpload"] == 1
    assert not s3.list_multipart_uploads(Bucket=bucket).get("Uploads")
    assert keys(s3, bucket) == ["blobs/noise.bin"]


def test_a_dry_run_writes_nothing(s3, bucket):
    put_generated_csv(s3, bucket, "raw/dry.csv", 1_000_000)
    requests = count_requests(s3)

    outcome = run(s3, bucket, "raw/dry.csv", dry_run=True)

    assert outcome.status == "skip" and outcome.reason.startswith(f"dry run: would write s3://{bucket}/curated/dry.parquet (")
    assert outcome.bytes_after > 8 * MiB  # it would have been a multipart upload
    writes = {"PutObject", "CreateMultipartUpload", "UploadPart", "CompleteMultipartUpload", "DeleteObject", "CopyObject"}
    assert writes.isdisjoint(requests)
    assert keys(s3, bucket) == ["raw/dry.csv"]


# ------------------------------------------------------------- the footer records rows and source

def multipart_output(s3, bucket: str, key: str, body: bytes, metadata: dict[str, str]) -> None:
    """Write ``body`` as a multipart upload (its metadata fixed at the start, as leanlake's outputs are)."""
    sink = multipart.MultipartSink(s3, bucket, key, extra={"Metadata": metadata, "ContentType": PARQUET}, single_put=False)
    sink.write(body)
    sink.commit()


def labelled_parquet(rows: int, labels: dict[str, str]) -> bytes:
    import pyarrow as pa

    out = io.BytesIO()
    writer = pq.ParquetWriter(out, pa.schema([("id", pa.int64())]))
    writer.write_table(pa.table({"id": list(range(rows))}))
    writer.add_key_value_metadata(labels)
    writer.close()
    return out.getvalue()


def test_a_multipart_output_is_trusted_by_its_footer(s3, bucket):
    s3.put_object(Bucket=bucket, Key="raw/s.csv", Body=b"a,b\n1,2\n")
    source = s3util.head(s3, bucket, "raw/s.csv")
    metadata = s3util.source_metadata(source, "tables")
    labels = {FOOTER_SOURCE_KEY: "raw/s.csv", FOOTER_SOURCE_ETAG: source.etag, FOOTER_ROWS: "7"}
    multipart_output(s3, bucket, "o.parquet", labelled_parquet(7, labels), metadata)
    output = s3util.head(s3, bucket, "o.parquet")
    assert s3util.ROWS not in output.metadata
    assert untrusted(s3, output, source, PARQUET) is None
    assert untrusted(s3, output, source, PARQUET, expected_rows=8) == "its Parquet footer holds 7 rows, the conversion wrote 8"


@pytest.mark.parametrize("labels, fragment", [
    ({}, "records no row count (leanlake-rows) and its Parquet footer names no source"),
    ({FOOTER_SOURCE_KEY: "raw/s.csv", FOOTER_SOURCE_ETAG: "an-older-etag", FOOTER_ROWS: "7"},
     "its Parquet footer names leanlake.source_etag 'an-older-etag'"),
    ({FOOTER_SOURCE_KEY: "raw/other.csv", FOOTER_SOURCE_ETAG: "{etag}", FOOTER_ROWS: "7"},
     "its Parquet footer names leanlake.source_key 'raw/other.csv', its metadata 'raw/s.csv'"),
    ({FOOTER_SOURCE_KEY: "raw/s.csv", FOOTER_SOURCE_ETAG: "{etag}", FOOTER_ROWS: "3000"},
     "its Parquet footer holds 7 rows, its leanlake.rows records '3000'"),
    ({FOOTER_SOURCE_KEY: "raw/s.csv", FOOTER_SOURCE_ETAG: "{etag}"}, "its leanlake.rows records None"),
], ids=["no-labels", "other-etag", "other-key", "wrong-rows", "no-rows"])
def test_a_forged_footer_never_deletes_its_source(s3, bucket, labels, fragment):
    source_body = b"id\n" + b"".join(b"%d\n" % i for i in range(7)) * 200
    s3.put_object(Bucket=bucket, Key="raw/s.csv", Body=source_body)
    etag = s3.head_object(Bucket=bucket, Key="raw/s.csv")["ETag"].strip('"')
    forged = labelled_parquet(7, {k: v.replace("{etag}", etag) for k, v in labels.items()})
    metadata = {"leanlake": "output", "leanlake-source-key": "raw/s.csv", "leanlake-source-etag": etag}
    multipart_output(s3, bucket, "curated/s.parquet", forged, metadata)

    outcome = run(s3, bucket, "raw/s.csv")

    assert outcome.status == "error" and fragment in outcome.reason and outcome.reason.endswith("source kept"), outcome.reason
    assert s3.get_object(Bucket=bucket, Key="raw/s.csv")["Body"].read() == source_body
    assert s3.get_object(Bucket=bucket, Key="curated/s.parquet")["Body"].read() == forged
