"""Issue 7 on the fanned-out sweep (chalicelib.fanout): ``plan`` equals what the fan-out does on every
object of an Object Lock bucket, locked and held objects stay visible without a delete marker, and
Object Lock state that cannot be read stops the continuation's deletions (fail closed).

The run is driven message by message through ``fanout.resume`` and ``fanout.work`` (the bodies of
``runtime.handle_sqs`` for leanlake's messages) with a ledger that keeps every outcome, on the moto
server's S3 and SQS.
"""

from __future__ import annotations

import json
import uuid

import boto3
import pytest
from botocore.config import Config
from typer.testing import CliRunner

from chalicelib import fanout
from chalicelib.context import RunContext
from chalicelib.ledger import Ledger
from chalicelib.policy import load_policies
from leanlake.cli import app
import test_deletion_safety
from test_deletion_safety import LATER, Inject, keys, policies_file, visible_and_unmarked

locked_lake = test_deletion_safety.locked_lake  # fixtures: an Object Lock bucket with held and retained objects,
emf_to_stderr = test_deletion_safety.emf_to_stderr  # and metrics off stdout (plan --json prints one document)


def fan_out(s3, policies_path, bucket: str, client=None) -> Ledger:
    """Start a run dated LATER and deliver its messages until the queue is empty; every outcome kept."""
    policies = load_policies([policies_path])
    sqs = boto3.client("sqs")
    url = sqs.create_queue(QueueName=f"locks-{uuid.uuid4().hex[:8]}")["QueueUrl"]
    queue = fanout.WorkQueue(sqs, url)
    ledger = Ledger(emit_metrics=False)

    def ctx_for(as_of):
        return RunContext(policies=policies, s3=client or s3, now=as_of or LATER)

    fanout.start(ctx_for(None), ledger, queue)
    for _ in range(100):
        messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
        if not messages:
            return ledger
        for m in messages:
            message = fanout.is_leanlake_message(m["Body"])
            assert message is not None
            if message[fanout.KIND] == "continue":
                fanout.resume(message, ctx_for, ledger, queue, fanout.Budget(60.0))
            else:
                fanout.work(message, ctx_for, ledger, queue, fanout.Budget(60.0))
            sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])
    raise AssertionError("the queue never emptied")


def test_plan_and_the_fanned_out_sweep_agree_on_every_object_of_an_object_lock_bucket(s3, locked_lake, tmp_path):
    policies = policies_file(tmp_path, locked_lake)
    result = CliRunner().invoke(app, ["plan", "--policies", str(policies), "--as-of", LATER.date().isoformat(), "--json"])
    planned = {(d["key"], d["policy"]): d for d in json.loads(result.stdout)["decisions"] if d["key"]}

    ledger = fan_out(s3, policies, locked_lake)
    outcomes = {(o.decision.key, o.decision.policy): o for o in ledger.outcomes if o.decision.key}

    assert planned.keys() == outcomes.keys()
    for where, decision in planned.items():
        outcome = outcomes[where]
        assert outcome.decision.action == decision["action"], (where, outcome.reason, decision["reason"])
        assert (outcome.status == "ok") == (decision["action"] != "skip"), (where, outcome.status, outcome.reason)
    assert {planned[(k, "scratch")]["action"] for k in ("tmp/held.tmp", "tmp/compliance.tmp")} == {"skip"}
    assert planned[("raw/held.csv", "tables")]["action"] == "skip"
    visible, markers = visible_and_unmarked(s3, locked_lake)
    assert {"tmp/compliance.tmp", "tmp/held.tmp", "raw/held.csv", "raw/free.parquet"} <= set(visible)
    assert not {"tmp/free.tmp", "raw/free.csv"} & set(visible)
    assert "raw/held.parquet" not in visible and not {"tmp/compliance.tmp", "tmp/held.tmp", "raw/held.csv"} & set(markers)


@pytest.mark.parametrize("status,code", [(403, "AccessDenied"), (503, "ServiceUnavailable")])
def test_a_continuation_that_cannot_read_the_lock_configuration_deletes_nothing(s3, locked_lake, tmp_path, status, code):
    policies = policies_file(tmp_path, locked_lake)
    before = visible_and_unmarked(s3, locked_lake)
    once = boto3.client("s3", config=Config(retries={"max_attempts": 1}))  # no retry: the 503 stays a failure
    with Inject(once, "GetObjectLockConfiguration", status=status, code=code):
        ledger = fan_out(s3, policies, locked_lake, client=once)
    assert visible_and_unmarked(s3, locked_lake)[1] == before[1] == []  # no delete marker, on anything
    assert set(before[0]) <= set(keys(s3, locked_lake))  # every object still visible
    assert [o for o in ledger.outcomes if o.status == "error" and "Object Lock configuration unreadable" in o.reason]
    assert not [o for o in ledger.outcomes if o.status == "ok" and o.decision.action == "expire"]
