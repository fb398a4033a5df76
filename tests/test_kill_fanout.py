"""SIGKILL during a sweep continuation (``fanout.resume``) loses nothing, and redelivery finishes the job.

A continuation runs in a child process against the moto server and is killed after its claim and
before its save: once right after its first batch of deletions (done and audited, more to come, no
work item sent yet), once just before it saves the checkpoint (every deletion done, its work items
on the queue). SQS then delivers the same continuation again (the killed invocation never deleted
its message), and the queue is pumped into ``runtime.handle_sqs`` until it is empty.

Afterwards: every CSV's rows are in its source or in one verified output of its own; the run's
deletions (scratch files expired, sources deleted after conversion) stay within its cap across the
killed and the redelivered invocation; every deletion has its audit line, written before it and
rewritten with its result after — the killed invocation's included.

The child pauses at the chosen moment (a wrapper around ``Deletions._send`` or ``Checkpoint.save``
that signals and sleeps), so that the kill lands in the window this test is about; S3 and SQS are
the moto server's.
"""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import textwrap
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path

import boto3
import pyarrow.parquet as pq
import pytest

from chalicelib import fanout, runtime
from chalicelib.ledger import Ledger
from chalicelib.refs import RESERVED_PREFIX

ROOT = Path(__file__).resolve().parents[1]
CSVS, TMPS, CAP = 20, 300, 200
ROWS = 150

#: Run in the child: pause (and say so on stderr) at ``$PAUSE_AT``, then run the continuation given as argv[1].
CHILD = textwrap.dedent("""\
    import os, sys, time
    from chalicelib import deletion, fanout, runtime

    def pause():
        sys.stderr.write("PAUSED\\n"); sys.stderr.flush(); time.sleep(600)

    where = os.environ["PAUSE_AT"]
    send, save, calls = deletion.Deletions._send, fanout.Checkpoint.save, {"send": 0, "save": 0}

    def paused_send(self):
        result = send(self)
        calls["send"] += 1
        if where == "after the first deletion batch" and calls["send"] == 1:
            pause()
        return result

    def paused_save(self, s3, etag):
        calls["save"] += 1
        if where == "before the checkpoint is saved" and calls["save"] == 2:  # the first save is the claim
            pause()
        return save(self, s3, etag)

    deletion.Deletions._send, fanout.Checkpoint.save = paused_send, paused_save
    record = {"messageId": "m1", "receiptHandle": "r1", "body": sys.argv[1], "eventSource": "aws:sqs"}
    runtime.handle_sqs({"Records": [record]}, None)
    sys.stderr.write("FINISHED\\n")
    """)


def csv_body(i: int) -> bytes:
    return ("id,city\n" + "".join(f"{i * ROWS + j},{['Lyon', 'Porto', 'Graz'][j % 3]}\n" for j in range(ROWS))).encode()


@pytest.fixture
def lake(s3, bucket, aws, tmp_path, monkeypatch):
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    policy = tmp_path / "policies.yaml"
    policy.write_text(f"""\
settings: {{max_deletions: {CAP}}}
policies:
  - name: tables
    bucket: {bucket}
    filters: {{prefix: raw/, suffix: .csv}}
    actions: [{{convert: {{destination: "curated/{{stem}}.parquet", source: delete}}}}]
  - name: scratch
    bucket: {bucket}
    filters: {{prefix: tmp/, suffix: .tmp}}
    actions: [{{expire: {{days: 7}}}}]
""")
    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(lambda i: s3.put_object(Bucket=bucket, Key=f"raw/t{i:03d}.csv", Body=csv_body(i)), range(CSVS)))
        list(pool.map(lambda i: s3.put_object(Bucket=bucket, Key=f"tmp/s{i:04d}.tmp", Body=b"scratch"), range(TMPS)))
    sqs = boto3.client("sqs")
    url = sqs.create_queue(QueueName=f"work-{uuid.uuid4().hex[:8]}", Attributes={"VisibilityTimeout": "600"})["QueueUrl"]
    env = {"LEANLAKE_POLICIES": str(policy), "LEANLAKE_QUEUE_URL": url, "LEANLAKE_SWEEP_BUDGET_S": "120"}
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    runtime.policies.cache_clear()
    runtime._sqs.cache_clear()
    yield bucket, sqs, url
    runtime.policies.cache_clear()


def run_child(endpoint: str, body: str, pause_at: str) -> subprocess.Popen:
    env = {**os.environ, "AWS_ENDPOINT_URL": endpoint, "PAUSE_AT": pause_at, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen([sys.executable, "-c", CHILD, body], cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)


def pump(sqs, url: str) -> None:
    for _ in range(200):
        messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=0).get("Messages", [])
        if not messages:
            return
        runtime.handle_sqs({"Records": [{"messageId": m["MessageId"], "receiptHandle": m["ReceiptHandle"], "body": m["Body"],
                                         "eventSource": "aws:sqs"} for m in messages]}, None)
        sqs.delete_message_batch(QueueUrl=url, Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]}
                                                        for i, m in enumerate(messages)])
    raise AssertionError("the work queue never emptied")


def deleted_keys(s3, bucket: str, prefix: str) -> set[str]:
    found = set()
    for page in s3.get_paginator("list_object_versions").paginate(Bucket=bucket, Prefix=prefix):
        found |= {m["Key"] for m in page.get("DeleteMarkers", ()) if m["IsLatest"]}
    return found


def audit_lines(s3, bucket: str) -> list[dict]:
    lines = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=f"{RESERVED_PREFIX}audit/"):
        for item in page.get("Contents", ()):
            lines += [json.loads(line) for line in s3.get_object(Bucket=bucket, Key=item["Key"])["Body"].read().splitlines()]
    return lines


@pytest.mark.parametrize("pause_at", ["after the first deletion batch", "before the checkpoint is saved"])
def test_a_continuation_killed_after_its_claim_loses_nothing_and_redelivery_finishes_within_the_cap(
        s3, lake, moto_endpoint, pause_at):
    bucket, sqs, url = lake
    ctx = runtime.context()
    ctx.now += timedelta(days=10)
    started = fanout.start(ctx, Ledger(emit_metrics=False), runtime.work_queue())
    [message] = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10)["Messages"]  # not deleted: the kill keeps it

    child = run_child(moto_endpoint, message["Body"], pause_at)
    assert child.stderr is not None
    line = child.stderr.readline()
    while line and "PAUSED" not in line and "FINISHED" not in line:
        line = child.stderr.readline()
    assert "PAUSED" in line, f"the continuation never reached the moment to kill it: {line}"
    child.send_signal(signal.SIGKILL)
    child.wait(timeout=30)
    killed_deletions = len(deleted_keys(s3, bucket, "tmp/"))
    assert killed_deletions >= 100  # the killed invocation did delete (a batch of DELETE_BATCH at least)

    # SQS delivers the continuation again once its visibility timeout ends; here, at once.
    sqs.change_message_visibility(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"], VisibilityTimeout=0)
    pump(sqs, url)

    # every CSV's rows are in its source or in one verified output of its own
    present = {o["Key"] for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket) for o in page.get("Contents", ())}
    for i in range(CSVS):
        source, output = f"raw/t{i:03d}.csv", f"curated/t{i:03d}.parquet"
        if output in present:
            head = s3.head_object(Bucket=bucket, Key=output)
            body = s3.get_object(Bucket=bucket, Key=output)["Body"].read()
            assert head["Metadata"].get("leanlake") == "output"
            assert pq.read_table(io.BytesIO(body)).column("id").to_pylist() == list(range(i * ROWS, (i + 1) * ROWS))
        else:
            assert source in present and s3.get_object(Bucket=bucket, Key=source)["Body"].read() == csv_body(i), source
    outputs = s3.list_object_versions(Bucket=bucket, Prefix="curated/").get("Versions", [])
    assert len(outputs) == len({v["Key"] for v in outputs}) == CSVS  # each made once, the redelivery finished the job

    # deletions within the run's cap, across the killed and the redelivered invocation
    sources_deleted, scratch_deleted = deleted_keys(s3, bucket, "raw/"), deleted_keys(s3, bucket, "tmp/")
    assert len(sources_deleted) + len(scratch_deleted) <= CAP, (len(sources_deleted), len(scratch_deleted), killed_deletions)
    assert len(sources_deleted) == CSVS  # reservations counted the kill conservatively, not at the cost of the conversions

    # every deletion audited, the killed invocation's too, each line rewritten with its result
    lines = audit_lines(s3, bucket)
    done = [line["key"] for line in lines if line["status"] == "deleted"]
    assert sorted(done) == sorted(sources_deleted | scratch_deleted)
    assert {line["run"].split(".")[0] for line in lines} == {started["run"]}
    cp = json.loads(s3.get_object(Bucket=bucket, Key=fanout.Checkpoint.key(started["run"]))["Body"].read())
    assert cp["done"] and cp["claimed_by"] is None and cp["deleted"] + cp["reserved"] <= CAP
