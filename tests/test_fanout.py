"""Sweeps that finish at any size: a run fanned out through the work queue on moto (S3 and SQS).

The queue is pumped into the SQS handler (``runtime.handle_sqs``) the way Lambda's event source
would, ten messages a batch, with at-least-once delivery made real: some work messages are
delivered twice and every continuation three times. Each invocation has a half-second budget.
"""

from __future__ import annotations

import io
import json
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import boto3
import pyarrow.parquet as pq
import pytest

from chalicelib import fanout, runtime
from chalicelib.ledger import Ledger
from chalicelib.refs import RESERVED_PREFIX

BUDGET_S = 0.5
CAP = 800
CSVS, TMPS, OTHERS = 200, 1_000, 300


def csv_body(i: int) -> bytes:
    return ("id,city,country\n" + "".join(f"{j},{['Lyon', 'Porto', 'Graz'][j % 3]},{['FR', 'PT', 'AT'][j % 3]}\n"
                                          for j in range(200 + i % 7))).encode()


@pytest.fixture
def lake(s3, bucket, aws, tmp_path, monkeypatch, request):
    """A versioned bucket of 1,500 objects (a tenth with ``@pytest.mark.small``), the policies, a work
    queue and a half-second budget."""
    scale = 10 if request.node.get_closest_marker("small") else 1
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    policy = tmp_path / "policies.yaml"
    policy.write_text(f"""\
settings: {{max_deletions: {CAP}}}
policies:
  - name: tables
    bucket: {bucket}
    filters: {{prefix: raw/, suffix: .csv}}
    actions: [{{convert: {{destination: "curated/{{rel_dir}}{{stem}}.parquet", source: delete}}}}]
  - name: scratch
    bucket: {bucket}
    filters: {{prefix: tmp/, suffix: .tmp}}
    actions: [{{expire: {{days: 7}}}}]
""")
    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(lambda i: s3.put_object(Bucket=bucket, Key=f"raw/{i % 10}/t{i:04d}.csv", Body=csv_body(i)), range(CSVS // scale)))
        list(pool.map(lambda i: s3.put_object(Bucket=bucket, Key=f"tmp/{i % 10}/s{i:05d}.tmp", Body=b"scratch %d" % i),
                      range(TMPS // scale)))
        list(pool.map(lambda i: s3.put_object(Bucket=bucket, Key=f"other/o{i:04d}.bin", Body=b"keep"), range(OTHERS // scale)))
    sqs = boto3.client("sqs")
    url = sqs.create_queue(QueueName=f"work-{uuid.uuid4().hex[:8]}", Attributes={"VisibilityTimeout": "600"})["QueueUrl"]
    monkeypatch.setenv("LEANLAKE_POLICIES", str(policy))
    monkeypatch.setenv("LEANLAKE_QUEUE_URL", url)
    monkeypatch.setenv("LEANLAKE_SWEEP_BUDGET_S", str(BUDGET_S))
    runtime.policies.cache_clear()
    runtime._sqs.cache_clear()
    yield bucket, sqs, url
    runtime.policies.cache_clear()


def start_in_ten_days() -> dict:
    """The daily sweep's start, with the run dated ten days ahead so that the scratch objects are due."""
    ctx = runtime.context()
    ctx.now = ctx.now + timedelta(days=10)
    ledger = Ledger(emit_metrics=False)
    return fanout.start(ctx, ledger, runtime.work_queue())


def pump(sqs, url: str) -> list[dict]:
    """Deliver the queue to the handler until it is empty; some messages twice, continuations three times."""
    invocations = []
    delivered = 0
    seen: set[str] = set()
    while True:
        messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=0).get("Messages", [])
        if not messages:
            break
        event = {"Records": [{"messageId": m["MessageId"], "receiptHandle": m["ReceiptHandle"], "body": m["Body"],
                              "eventSource": "aws:sqs"} for m in messages]}
        started = time.monotonic()
        result = runtime.handle_sqs(event, None)
        invocations.append({"seconds": time.monotonic() - started, "result": result,
                            "kinds": [json.loads(m["Body"])[fanout.KIND] for m in messages]})
        for m in messages:
            if m["Body"] in seen:
                continue  # a redelivery is not redelivered again
            seen.add(m["Body"])
            delivered += 1
            kind = json.loads(m["Body"])[fanout.KIND]
            again = 2 if kind == "continue" else int(delivered % 5 == 0)
            for _ in range(again):  # at-least-once: the same body delivered again later
                sqs.send_message(QueueUrl=url, MessageBody=m["Body"])
        sqs.delete_message_batch(QueueUrl=url, Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]}
                                                        for i, m in enumerate(messages)])
    return invocations


def versions(s3, bucket: str, prefix: str) -> tuple[dict[str, int], set[str]]:
    """Object versions per key, and the keys whose current version is a delete marker."""
    counts: dict[str, int] = {}
    deleted: set[str] = set()
    for page in s3.get_paginator("list_object_versions").paginate(Bucket=bucket, Prefix=prefix):
        for v in page.get("Versions", ()):
            counts[v["Key"]] = counts.get(v["Key"], 0) + 1
        deleted |= {m["Key"] for m in page.get("DeleteMarkers", ()) if m["IsLatest"]}
    return counts, deleted


def audit_lines(s3, bucket: str) -> list[dict]:
    lines = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=f"{RESERVED_PREFIX}audit/"):
        for item in page.get("Contents", ()):
            body = s3.get_object(Bucket=bucket, Key=item["Key"])["Body"].read().decode()
            lines += [json.loads(line) for line in body.splitlines()]
    return lines


def test_a_sweep_of_thousands_of_objects_finishes_exactly_once_within_its_cap_and_budget(s3, lake):
    bucket, sqs, url = lake
    started = start_in_ten_days()
    invocations = pump(sqs, url)

    # every CSV converted exactly once: one output version each, its source deleted
    outputs, _ = versions(s3, bucket, "curated/")
    assert len(outputs) == CSVS and set(outputs.values()) == {1}
    sources, sources_deleted = versions(s3, bucket, "raw/")
    assert len(sources) == CSVS and sources_deleted == set(sources)
    sample = sorted(outputs)[0]
    table = pq.read_table(io.BytesIO(s3.get_object(Bucket=bucket, Key=sample)["Body"].read()))
    assert table.column_names == ["id", "city", "country"] and table.num_rows >= 200

    # deletions within the run's cap across all its invocations, each audited
    scratch, scratch_deleted = versions(s3, bucket, "tmp/")
    assert len(scratch) == TMPS and len(scratch_deleted) == CAP - CSVS
    done = [line for line in audit_lines(s3, bucket) if line["status"] == "deleted"]
    assert sorted(line["key"] for line in done) == sorted(sources_deleted | scratch_deleted)
    assert {line["run"].split(".")[0] for line in done} == {started["run"]}  # audit parts: <run>.<invocation>
    assert versions(s3, bucket, "other/")[1] == set()

    # the run finished and said so; every invocation came back within its budget plus one unit of work
    cp = json.loads(s3.get_object(Bucket=bucket, Key=fanout.Checkpoint.key(started["run"]))["Body"].read())
    assert cp["done"] and cp["deleted"] + cp["reserved"] == CAP and cp["handled"] == CSVS + TMPS
    assert cp["invocations"] >= 2  # a half-second budget cannot list, plan and delete 1,500 objects at once
    unit = max(o["seconds"] for inv in invocations for r in inv["result"]["results"] for o in r.get("outcomes", []))
    slowest = max(inv["seconds"] for inv in invocations)
    assert slowest <= BUDGET_S + unit + 1.5, f"slowest invocation {slowest:.2f} s, slowest object {unit:.2f} s"


@pytest.mark.small
def test_a_redelivered_continuation_changes_nothing(s3, lake):
    bucket, sqs, url = lake
    started = start_in_ten_days()
    [first] = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10)["Messages"]
    sqs.delete_message(QueueUrl=url, ReceiptHandle=first["ReceiptHandle"])
    event = {"Records": [{"messageId": "m1", "receiptHandle": "r1", "body": first["Body"], "eventSource": "aws:sqs"}]}
    ran = runtime.handle_sqs(event, None)["results"][0]
    assert ran["handled"] >= 1
    key = fanout.Checkpoint.key(started["run"])
    before = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    queued = int(sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"])
                 ["Attributes"]["ApproximateNumberOfMessages"])
    for _ in range(2):
        assert runtime.handle_sqs(event, None)["results"] == [{"run": started["run"], "status": "duplicate"}]
    assert s3.get_object(Bucket=bucket, Key=key)["Body"].read() == before
    assert int(sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"])
               ["Attributes"]["ApproximateNumberOfMessages"]) == queued


@pytest.mark.small
def test_two_deliveries_racing_for_one_continuation_run_it_once(s3, lake, monkeypatch):
    bucket, sqs, url = lake
    started = start_in_ten_days()
    [message] = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10)["Messages"]
    body = json.loads(message["Body"])
    loaded = fanout.Checkpoint.load(s3, bucket, started["run"])
    assert loaded is not None
    stale, stale_etag = loaded
    first = fanout.resume(body, runtime.context, Ledger(emit_metrics=False), runtime.work_queue(), fanout.Budget(0.0))
    assert first["handled"] == 1
    stale.invocations += 1  # the other delivery read the checkpoint before the first one claimed it
    with pytest.raises(Exception, match="changed meanwhile"):
        stale.save(s3, stale_etag)


@pytest.mark.small
def test_a_new_run_reports_and_supersedes_an_unfinished_one(s3, lake):
    bucket, sqs, url = lake
    old = start_in_ten_days()
    ledger = Ledger(emit_metrics=False)
    ctx = runtime.context()
    ctx.now += timedelta(days=11)
    new = fanout.start(ctx, ledger, runtime.work_queue())
    assert ledger.counted("SweepsUnfinished") == 1
    cp = json.loads(s3.get_object(Bucket=bucket, Key=fanout.Checkpoint.key(old["run"]))["Body"].read())
    assert cp["superseded_by"] == new["run"]
    results = [r for inv in pump(sqs, url) for r in inv["result"]["results"] if r.get("run") == old["run"]]
    assert results and all(r["status"] == "duplicate" for r in results)


def test_the_queue_url_comes_from_the_environment_or_the_function_arn(monkeypatch):
    monkeypatch.delenv("LEANLAKE_QUEUE_URL", raising=False)
    monkeypatch.setenv("LEANLAKE_QUEUE", "leanlake-prod-work")
    assert fanout.queue_url("arn:aws:lambda:ap-south-1:210987654321:function:leanlake-prod") == \
        "https://sqs.ap-south-1.amazonaws.com/210987654321/leanlake-prod-work"
    assert fanout.queue_url(None) is None
    monkeypatch.setenv("LEANLAKE_QUEUE_URL", "http://127.0.0.1:5000/123456789012/q")
    assert fanout.queue_url(None) == "http://127.0.0.1:5000/123456789012/q"


def test_the_budget_is_the_remaining_time_less_a_margin_unless_configured(monkeypatch):
    class Context:
        def get_remaining_time_in_millis(self):
            return 900_000

    monkeypatch.delenv("LEANLAKE_SWEEP_BUDGET_S", raising=False)
    assert fanout.Budget.of(Context()).seconds == 900 - fanout.MARGIN_S == fanout.usable(900)
    monkeypatch.setenv("LEANLAKE_SWEEP_BUDGET_S", "12.5")
    assert fanout.Budget.of(Context()).seconds == 12.5


def test_without_a_queue_the_sweep_runs_in_one_invocation(s3, bucket, aws, tmp_path, monkeypatch):
    monkeypatch.delenv("LEANLAKE_QUEUE_URL", raising=False)
    monkeypatch.delenv("LEANLAKE_QUEUE", raising=False)
    policy = tmp_path / "p.yaml"
    policy.write_text(f"policies:\n  - name: t\n    bucket: {bucket}\n    filters: {{prefix: raw/, suffix: .csv}}\n"
                      "    actions: [{convert: {}}]\n")
    monkeypatch.setenv("LEANLAKE_POLICIES", str(policy))
    runtime.policies.cache_clear()
    s3.put_object(Bucket=bucket, Key="raw/a.csv", Body=csv_body(1))
    try:
        report = runtime.scheduled_sweep(None)
    finally:
        runtime.policies.cache_clear()
    assert report["totals"]["objects_converted"] == 1



class LambdaContext:
    """What Lambda hands a handler: the time left, and the function's ARN."""

    def __init__(self, remaining_s: float) -> None:
        self.remaining_s = remaining_s
        self.invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:leanlake-dev"

    def get_remaining_time_in_millis(self) -> int:
        return int(self.remaining_s * 1000)


def test_a_conversion_that_cannot_finish_in_the_time_left_is_left_for_apply(s3, bucket, aws, tmp_path, monkeypatch, capsys):
    from chalicelib import ledger as ledger_module
    from chalicelib.pipeline import THROUGHPUT

    policy = tmp_path / "p.yaml"
    policy.write_text(f"policies:\n  - name: t\n    bucket: {bucket}\n    filters: {{prefix: raw/, suffix: .csv}}\n"
                      "    actions: [{convert: {source: delete}}]\n")
    monkeypatch.setenv("LEANLAKE_POLICIES", str(policy))
    monkeypatch.delenv("LEANLAKE_QUEUE_URL", raising=False)
    monkeypatch.setattr(THROUGHPUT, "mib_per_s", 1.0)  # as if this container had seen 1 MiB/s
    monkeypatch.setattr(ledger_module, "_emf_to_stderr", True)
    runtime.policies.cache_clear()
    big = b"id,city\n" + b"".join(b"%d,Lyon\n" % i for i in range(400_000))  # ~4.6 MiB: about 5 s at 1 MiB/s
    s3.put_object(Bucket=bucket, Key="raw/big.csv", Body=big)
    s3.put_object(Bucket=bucket, Key="raw/small.csv", Body=csv_body(0))
    event = {"Records": [{"eventSource": "aws:s3", "eventName": "ObjectCreated:Put",
                          "s3": {"bucket": {"name": bucket}, "object": {"key": key}}} for key in ("raw/big.csv", "raw/small.csv")]}
    try:
        result = runtime.handle_s3_notification(event, LambdaContext(remaining_s=4.0))
    finally:
        runtime.policies.cache_clear()
    by_key = {o["key"]: o for o in result["outcomes"]}
    assert by_key["raw/small.csv"]["status"] == "ok"
    left = by_key["raw/big.csv"]
    assert left["status"] == "skip" and "run `leanlake apply` on a machine" in left["outcome_reason"]
    assert "this Lambda invocation has left" in left["outcome_reason"]
    assert s3.get_object(Bucket=bucket, Key="raw/big.csv")["Body"].read() == big  # the source is as it was
    assert "raw/big.parquet" not in {o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix="raw/").get("Contents", [])}
    emf = [json.loads(line) for line in capsys.readouterr().err.splitlines() if line.startswith("{") and "_aws" in line]
    assert sum(doc.get("ObjectsLeftForApply", [0])[0] for doc in emf) == 1
