"""Convert/recompress on upload against a real S3 API: invariants 1 (no loss), 2 (idempotent),
3 (no loops), 5 (worth it) and 6 (safe by default), end to end through the handlers' code."""

from __future__ import annotations

import csv
import gzip
import io
import json
from datetime import datetime, timedelta, timezone

import pyarrow.parquet as pq
import pytest
import zstandard

from chalicelib.context import RunContext
from chalicelib.ledger import Ledger
from chalicelib.pipeline import handle_uploads
from chalicelib.policy import PolicySet
from chalicelib.refs import ObjectRef


def table_csv(rows: int = 2000) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["id", "country", "score", "note"])
    for i in range(rows):
        writer.writerow([i, ["US", "NA", "DE"][i % 3], f"{i * 0.5:.1f}", "" if i % 7 else "quoted, with comma"])
    return out.getvalue().encode()


def policies_for(bucket: str, source: str = "delete") -> PolicySet:
    return PolicySet.from_dicts([
        {"name": "tables", "bucket": bucket, "filters": {"prefix": "raw/", "suffix": [".csv", ".csv.gz", ".jsonl"]},
         "actions": [{"convert": {"destination": "curated/{rel_dir}{stem}.parquet", "source": source}}]},
        {"name": "logs", "bucket": bucket, "filters": {"prefix": "logs/"}, "actions": [{"recompress": {"level": 19, "source": "delete"}}]},
    ])


def run(s3, policies, *keys, bucket):
    ledger = Ledger(emit_metrics=False)
    ctx = RunContext(policies=policies, s3=s3)
    return handle_uploads([ObjectRef(bucket, k) for k in keys], ctx, ledger)


def keys(s3, bucket):
    """The bucket's keys, without leanlake's audit trail under the reserved prefix."""
    return sorted(o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", []) if not o["Key"].startswith("_leanlake/"))


def test_csv_upload_becomes_parquet_with_provenance_tags_and_sse(s3, bucket):
    body = table_csv()
    s3.put_object(Bucket=bucket, Key="raw/2026/a b+c.csv", Body=body, ContentType="text/csv", Tagging="team=ml&pii=no",
                  ServerSideEncryption="AES256")
    (outcome,) = run(s3, policies_for(bucket), "raw/2026/a b+c.csv", bucket=bucket)
    assert outcome.status == "ok", outcome.reason
    assert keys(s3, bucket) == ["curated/2026/a b+c.parquet"]
    head = s3.head_object(Bucket=bucket, Key="curated/2026/a b+c.parquet")
    assert head["Metadata"]["leanlake"] == "output"
    assert head["Metadata"]["leanlake-source-key"] == "raw/2026/a%20b%2Bc.csv"
    assert head["Metadata"]["leanlake-source-size"] == str(len(body))
    assert head["ContentType"] == "application/vnd.apache.parquet"
    assert head["ServerSideEncryption"] == "AES256"
    tags = {t["Key"]: t["Value"] for t in s3.get_object_tagging(Bucket=bucket, Key="curated/2026/a b+c.parquet")["TagSet"]}
    assert tags == {"team": "ml", "pii": "no"}
    data = s3.get_object(Bucket=bucket, Key="curated/2026/a b+c.parquet")["Body"].read()
    table = pq.read_table(io.BytesIO(data))
    assert table.num_rows == 2000 and table.column_names == ["id", "country", "score", "note"]
    assert table.column("country").to_pylist()[:3] == ["US", "NA", "DE"]  # NA is Namibia, not null
    assert outcome.bytes_after == len(data) < outcome.bytes_before == len(body)


def test_duplicate_and_multipart_events_do_not_write_twice(s3, bucket):
    s3.put_object(Bucket=bucket, Key="raw/a.csv", Body=table_csv())
    policies = policies_for(bucket, source="keep")
    (first,) = run(s3, policies, "raw/a.csv", bucket=bucket)
    written = s3.head_object(Bucket=bucket, Key="curated/a.parquet")
    second, third = run(s3, policies, "raw/a.csv", "raw/a.csv", bucket=bucket)
    again = s3.head_object(Bucket=bucket, Key="curated/a.parquet")
    assert first.status == "ok"
    assert (second.status, third.status) == ("skip", "skip") and "already made from this ETag" in second.reason
    assert again["LastModified"] == written["LastModified"] and again["ETag"] == written["ETag"]


def test_new_version_of_source_replaces_output(s3, bucket):
    s3.put_object(Bucket=bucket, Key="raw/a.csv", Body=table_csv(1000))
    policies = policies_for(bucket, source="keep")
    run(s3, policies, "raw/a.csv", bucket=bucket)
    s3.put_object(Bucket=bucket, Key="raw/a.csv", Body=table_csv(3000))
    (outcome,) = run(s3, policies, "raw/a.csv", bucket=bucket)
    assert outcome.status == "ok"
    data = s3.get_object(Bucket=bucket, Key="curated/a.parquet")["Body"].read()
    assert pq.read_metadata(io.BytesIO(data)).num_rows == 3000


def test_loop_guard_outputs_and_in_place_copies_are_ignored(s3, bucket):
    raw = b"".join(b"2026-11-01T00:00:%02dZ INFO request ok path=/api/predict latency_ms=%d\n" % (i % 60, i) for i in range(5000))
    s3.put_object(Bucket=bucket, Key="logs/a.log.gz", Body=gzip.compress(raw))
    policies = policies_for(bucket)
    (outcome,) = run(s3, policies, "logs/a.log.gz", bucket=bucket)
    assert outcome.status == "ok" and outcome.output_key == "logs/a.log.zst"
    # The recompress policy's filter matches its own output: the event for it must do nothing.
    assert run(s3, policies, "logs/a.log.zst", bucket=bucket) == []
    assert keys(s3, bucket) == ["logs/a.log.zst"]
    assert zstandard.ZstdDecompressor().decompressobj().decompress(
        s3.get_object(Bucket=bucket, Key="logs/a.log.zst")["Body"].read()) == raw


def test_tiny_csv_is_left_alone_with_the_reason(s3, bucket):
    s3.put_object(Bucket=bucket, Key="raw/tiny.csv", Body=b"a,b\n1,2\n")
    (outcome,) = run(s3, policies_for(bucket), "raw/tiny.csv", bucket=bucket)
    assert outcome.status == "skip" and "not be smaller" in outcome.reason
    assert keys(s3, bucket) == ["raw/tiny.csv"]


@pytest.mark.parametrize("name, body, fragment", [
    ("empty.csv", b"", "empty"),
    ("ragged.csv", b"a,b,c\n1,2,3\n4,5,6,7\n" + b"8,9,10\n" * 100, "line 3"),
    ("binary.csv", bytes(range(256)) * 64, "not text"),
    ("truncated.csv.gz", gzip.compress(table_csv())[:-200], "gzip"),
    ("broken.jsonl", b'{"a": 1}\n{"a": 2\n' + b'{"a": 3}\n' * 100, "line 2"),
])
def test_bad_inputs_fail_with_one_line_and_lose_nothing(s3, bucket, name, body, fragment):
    s3.put_object(Bucket=bucket, Key=f"raw/{name}", Body=body)
    (outcome,) = run(s3, policies_for(bucket), f"raw/{name}", bucket=bucket)
    assert outcome.status == "error" and fragment in outcome.reason and "\n" not in outcome.reason
    assert f"s3://{bucket}/raw/{name}" in outcome.reason
    assert keys(s3, bucket) == [f"raw/{name}"]
    assert s3.get_object(Bucket=bucket, Key=f"raw/{name}")["Body"].read() == body


def test_buckets_no_policy_names_are_ignored(s3, bucket):
    s3.put_object(Bucket=bucket, Key="raw/a.csv", Body=table_csv())
    assert run(s3, policies_for("some-other-bucket"), "raw/a.csv", bucket=bucket) == []
    assert keys(s3, bucket) == ["raw/a.csv"]


def test_locked_source_is_never_deleted_and_not_converted_when_it_would_only_add_storage(s3):
    s3.create_bucket(Bucket="locked-uploads", ObjectLockEnabledForBucket=True)
    until = datetime.now(timezone.utc) + timedelta(days=30)
    s3.put_object(Bucket="locked-uploads", Key="raw/held.csv", Body=table_csv(), ObjectLockLegalHoldStatus="ON")
    s3.put_object(Bucket="locked-uploads", Key="raw/retained.csv", Body=table_csv(), ObjectLockMode="GOVERNANCE",
                  ObjectLockRetainUntilDate=until)
    # source: delete on a locked source: the source would stay, so converting only adds storage (as plan says)
    outcomes = run(s3, policies_for("locked-uploads"), "raw/held.csv", "raw/retained.csv", bucket="locked-uploads")
    assert [o.status for o in outcomes] == ["skip", "skip"]
    assert "under legal hold" in outcomes[0].reason and "Object Lock governance" in outcomes[1].reason
    assert not s3.list_object_versions(Bucket="locked-uploads").get("DeleteMarkers")
    assert keys(s3, "locked-uploads") == ["raw/held.csv", "raw/retained.csv"]
    # source: keep asks for the copy whatever the lock: converted, sources untouched
    outcomes = run(s3, policies_for("locked-uploads", source="keep"), "raw/held.csv", "raw/retained.csv", bucket="locked-uploads")
    assert [o.status for o in outcomes] == ["ok", "ok"]
    assert not s3.list_object_versions(Bucket="locked-uploads").get("DeleteMarkers")
    assert keys(s3, "locked-uploads") == ["curated/held.parquet", "curated/retained.parquet", "raw/held.csv", "raw/retained.csv"]


def test_source_to_storage_class_fires_a_copy_the_guard_recognises(s3, bucket):
    s3.put_object(Bucket=bucket, Key="raw/a.csv", Body=table_csv(), Metadata={"owner": "ml"})
    policies = PolicySet.from_dicts([{"name": "t", "bucket": bucket, "filters": {"prefix": "raw/"},
                                      "actions": [{"convert": {"source": "storage_class:GLACIER_IR"}}]}])
    (outcome,) = run(s3, policies, "raw/a.csv", bucket=bucket)
    assert outcome.status == "ok" and "moved to GLACIER_IR" in outcome.reason
    head = s3.head_object(Bucket=bucket, Key="raw/a.csv")
    assert head["StorageClass"] == "GLACIER_IR" and head["Metadata"] == {"owner": "ml", "leanlake": "copy"}
    assert run(s3, policies, "raw/a.csv", bucket=bucket) == []  # the ObjectCreated:Copy it fired


def test_destination_owned_by_someone_else_is_never_clobbered(s3, bucket):
    s3.put_object(Bucket=bucket, Key="raw/a.csv", Body=table_csv())
    s3.put_object(Bucket=bucket, Key="curated/a.parquet", Body=b"precious")
    (outcome,) = run(s3, policies_for(bucket), "raw/a.csv", bucket=bucket)
    assert outcome.status == "error" and "not written by leanlake" in outcome.reason
    assert s3.get_object(Bucket=bucket, Key="curated/a.parquet")["Body"].read() == b"precious"
    assert "raw/a.csv" in keys(s3, bucket)


def test_nested_json_lines_convert(s3, bucket):
    lines = [json.dumps({"id": i, "user": {"country": "NA", "tags": ["a", "b"][: i % 3]}}) for i in range(3000)]
    s3.put_object(Bucket=bucket, Key="raw/u.jsonl", Body=("\n".join(lines) + "\n").encode())
    (outcome,) = run(s3, policies_for(bucket), "raw/u.jsonl", bucket=bucket)
    assert outcome.status == "ok", outcome.reason
    table = pq.read_table(io.BytesIO(s3.get_object(Bucket=bucket, Key="curated/u.parquet")["Body"].read()))
    assert table.num_rows == 3000 and table.column("user").to_pylist()[2] == {"country": "NA", "tags": ["a", "b"]}
