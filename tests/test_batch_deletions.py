"""What an S3 Batch Operations job deletes: its tasks go the upload path, so a ``source: delete``
conversion deletes its source once the output is verified, conditionally, audited, and counted
against ``settings.max_deletions`` of the invocation (a job's run is many invocations).

On the moto server: what is left in S3 (sources, outputs, audit lines) after ``batch_task`` answers.
"""

from __future__ import annotations

import json

import pytest

from chalicelib import batch, runtime


def csv_body(i: int) -> bytes:
    return ("id,kind\n" + "".join(f"{i * 1000 + j},{'ab'[j % 2]}\n" for j in range(1000))).encode()


@pytest.fixture
def lake(s3, bucket, aws, tmp_path, monkeypatch):
    policy = tmp_path / "policies.yaml"
    policy.write_text(f"""\
settings: {{max_deletions: 2}}
policies:
  - name: tables
    bucket: {bucket}
    filters: {{prefix: raw/, suffix: .csv}}
    actions: [{{convert: {{source: delete}}}}]
""")
    monkeypatch.setenv("LEANLAKE_POLICIES", str(policy))
    runtime.policies.cache_clear()
    for i in range(3):
        s3.put_object(Bucket=bucket, Key=f"raw/t{i}.csv", Body=csv_body(i))
    yield bucket
    runtime.policies.cache_clear()


def test_a_batch_task_deletes_a_converted_source_only_verified_audited_and_within_the_cap(s3, lake):
    bucket = lake
    event = {"invocationSchemaVersion": "2.0", "invocationId": "inv-1", "job": {"id": "job-1", "userArguments": {"run": "r1"}},
             "tasks": [{"taskId": f"t{i}", "s3Bucket": bucket, "s3Key": f"raw/t{i}.csv", "s3VersionId": None} for i in range(3)]}
    response = batch.handle_batch_invocation(event)

    codes = [r["resultCode"] for r in response["results"]]
    strings = [r["resultString"] for r in response["results"]]
    assert codes == ["Succeeded"] * 3, strings
    present = {o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", [])}
    sources = {f"raw/t{i}.csv" for i in range(3)} & present
    outputs = {f"raw/t{i}.parquet" for i in range(3)} & present
    # every table is in its source or its output; at most the cap of sources deleted, each with an output
    assert all(f"raw/t{i}.csv" in sources or f"raw/t{i}.parquet" in outputs for i in range(3))
    deleted = {f"raw/t{i}.csv" for i in range(3)} - sources
    assert len(deleted) == 2 and {k.replace(".csv", ".parquet") for k in deleted} <= outputs, strings
    assert any("deletion cap of 2 per run reached" in s for s in strings), strings
    lines = []
    for o in s3.list_objects_v2(Bucket=bucket, Prefix="_leanlake/audit/").get("Contents", []):
        lines += [json.loads(x) for x in s3.get_object(Bucket=bucket, Key=o["Key"])["Body"].read().splitlines()]
    assert sorted(line["key"] for line in lines if line["status"] == "deleted") == sorted(deleted)
