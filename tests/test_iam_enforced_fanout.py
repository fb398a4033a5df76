"""The derived IAM policy, proven under enforced IAM for the code paths added after issue 7: the
fanned-out sweep (``fanout.start`` from the daily schedule and an alarm, its continuations and work
items through the stage's work queue) and the S3 Batch Operations ``batch_task`` handler.

Same method as tests/test_iam_enforced.py (whose helpers this module reuses): a moto server in its
own process with IAM enforced, an IAM user holding exactly the derived document for the stage
``dev`` (whose work queue is ``leanlake-dev-work``), every request of the handler made with that
user's keys — including the event source's part (ReceiveMessage, DeleteMessage), which Lambda does
with the function's role too — and what is left in S3 read with the admin's keys.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Any

import test_iam_enforced
from test_iam_enforced import (
    ALARM, CONFIG, LATER, Lake, alarm_event, assert_lake_done, denials, derived, errors, seed, setup, visible, without,
)

lake = test_iam_enforced.lake  # the fixtures: a moto server with IAM enforced (of this module's own), a user's runtime
as_user = test_iam_enforced.as_user

QUEUE = CONFIG.queue("dev")


def work_queue(lake: Lake, monkeypatch: Any) -> str:
    """The stage's work queue on moto, and the runtime pointed at it (by URL, as ``$LEANLAKE_QUEUE_URL``)."""
    from chalicelib import runtime

    assert QUEUE == "leanlake-dev-work"
    url = lake.client("sqs").create_queue(QueueName=QUEUE, Attributes={"VisibilityTimeout": "600"})["QueueUrl"]
    monkeypatch.setenv("LEANLAKE_QUEUE_URL", url)
    monkeypatch.setenv("LEANLAKE_SWEEP_BUDGET_S", "0.3")  # several continuations and requeued work items
    runtime._sqs.cache_clear()
    return url


def pump(lake: Lake, keys: dict[str, str], url: str) -> list[dict[str, Any]]:
    """Deliver the work queue to ``runtime.handle_sqs`` until it is empty, as Lambda's event source does:
    receive and delete with the function's keys."""
    from chalicelib import runtime

    sqs = lake.client("sqs", keys)
    results = []
    for _ in range(500):
        messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=0).get("Messages", [])
        if not messages:
            return results
        event = {"Records": [{"messageId": m["MessageId"], "receiptHandle": m["ReceiptHandle"], "body": m["Body"],
                              "eventSource": "aws:sqs"} for m in messages]}
        results.append(runtime.handle_sqs(event, None))
        sqs.delete_message_batch(QueueUrl=url, Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]}
                                                        for i, m in enumerate(messages)])
    raise AssertionError("the work queue never emptied")


def run_later(monkeypatch: Any) -> None:
    """Runs started now are dated ``LATER`` ahead (so the scratch files are due); continuations keep the run's date."""
    from chalicelib import runtime

    later = datetime.now(timezone.utc) + LATER
    real = runtime.context

    def context(as_of: datetime | None = None, lambda_context: Any = None) -> Any:
        return real(as_of or later, lambda_context)

    monkeypatch.setattr(runtime, "context", context)


def checkpoints(lake: Lake, bucket: str) -> list[dict[str, Any]]:
    s3 = lake.client("s3")
    listed = s3.list_objects_v2(Bucket=bucket, Prefix="_leanlake/sweeps/").get("Contents", [])
    return [json.loads(s3.get_object(Bucket=bucket, Key=o["Key"])["Body"].read()) for o in listed
            if not o["Key"].endswith("latest.json")]


def test_a_fanned_out_sweep_works_with_exactly_the_derived_policy(lake, tmp_path, as_user, monkeypatch):
    """The daily sweep and an alarm with a work queue: checkpoints under _leanlake/sweeps/, continuations
    and work items sent, received and deleted, conversions, class changes, expiries (``versions: all``),
    bucket configurations — on a plain, a versioned and an Object Lock bucket, with nothing denied."""
    from chalicelib import runtime

    buckets, policy_file = setup(lake, tmp_path, "fan")
    seed(lake, buckets)
    url = work_queue(lake, monkeypatch)
    user = lake.user(derived(policy_file))
    as_user(user, policy_file)
    run_later(monkeypatch)

    alarmed = runtime.handle_alarm(alarm_event(ALARM))
    assert sorted(alarmed["swept"]) == ["scratch", "scratch-versions"] and set(alarmed["buckets"]) == set(buckets.all)
    results = pump(lake, user, url)
    started = runtime.scheduled_sweep()
    assert set(started["buckets"]) == set(buckets.all)
    results += pump(lake, user, url)

    assert denials(alarmed) == [] and denials(started) == [] and denials(results) == []
    continued = [r for batch in results for r in batch["results"] if "handled" in r]
    worked = [o for batch in results for r in batch["results"] for o in r.get("outcomes", ())]
    assert errors(worked) == []
    assert {o["action"] for o in worked if o["status"] == "ok"} == {"convert", "recompress", "storage_class"}
    assert len(continued) > len(buckets.all)  # the budget made runs continue more than once
    for bucket in buckets.all:
        runs = checkpoints(lake, bucket)
        assert len(runs) == 2 and all(cp["done"] and cp["claimed_by"] is None for cp in runs), runs
    assert_lake_done(lake, buckets)


def test_a_fanned_out_sweep_without_sqs_send_message_is_denied_and_starts_nothing(lake, tmp_path, as_user, monkeypatch):
    """The negative control: enforcement covers the queue too, and a run that cannot queue its continuation
    fails loudly (the schedule retries) with its checkpoint written but no object touched."""
    import pytest
    from botocore.exceptions import ClientError

    from chalicelib import runtime

    buckets, policy_file = setup(lake, tmp_path, "nosend")
    seed(lake, buckets)
    work_queue(lake, monkeypatch)
    as_user(lake.user(without(derived(policy_file), "sqs:SendMessage")), policy_file)
    run_later(monkeypatch)
    with pytest.raises(ClientError, match="AccessDenied"):
        runtime.scheduled_sweep()
    for bucket in buckets.all:
        assert visible(lake, bucket, "raw/table.csv") and visible(lake, bucket, "tmp/old.tmp")


def batch_event(tasks: list[tuple[str, str]]) -> dict[str, Any]:
    """A schema 2.0 LambdaInvoke event as S3 Batch Operations sends it."""
    return {"invocationSchemaVersion": "2.0", "invocationId": "inv-1",
            "job": {"id": "job-1", "userArguments": {"run": "iam"}},
            "tasks": [{"taskId": f"t{i}", "s3Bucket": b, "s3Key": k, "s3VersionId": None} for i, (b, k) in enumerate(tasks)]}


def test_the_batch_task_handler_works_with_exactly_the_derived_policy(lake, tmp_path, as_user):
    """``batch_task`` (the function's role, the same derived document) on every object kind of every bucket:
    every task Succeeded, nothing denied, outputs made and verified, locked sources kept."""
    from chalicelib import batch

    buckets, policy_file = setup(lake, tmp_path, "bt")
    seed(lake, buckets)
    as_user(lake.user(derived(policy_file)), policy_file)
    keys = ["raw/table.csv", "hist/table.csv", "logs/app.log.gz", "features/f.bin"]
    tasks = [(b, k) for b in buckets.all for k in keys] + [(buckets.locked, "raw/locked.csv")]
    response = batch.handle_batch_invocation(batch_event(tasks))

    assert denials(response) == []
    results = {r["taskId"]: r for r in response["results"]}
    assert [r["resultCode"] for r in results.values()] == ["Succeeded"] * len(tasks), response["results"]
    s3 = lake.client("s3")
    for bucket in buckets.all:
        listed = {o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", [])}
        made = {k for k in listed if k.endswith((".parquet", ".zst"))}
        assert {k.split("/")[0] for k in made} == {"raw", "hist", "logs"}, (bucket, listed)
        for key in made:
            assert s3.head_object(Bucket=bucket, Key=key)["Metadata"].get("leanlake") == "output"
        assert s3.head_object(Bucket=bucket, Key="features/f.bin").get("StorageClass") == "ONEZONE_IA"
        assert s3.head_object(Bucket=bucket, Key="hist/table.csv").get("StorageClass") == "GLACIER_IR"
    assert visible(lake, buckets.locked, "raw/locked.csv")


def test_the_batch_role_reads_the_manifests_and_writes_reports_only_under_its_prefix(lake, tmp_path):
    """``leanlake iam --batch-role``'s permissions, enforced: the job's role reads a manifest and writes its
    report under _leanlake/batch/, and can neither read nor write anything else of the bucket."""
    import pytest
    from botocore.exceptions import ClientError

    from leanlake.batch import BATCH_PREFIX
    from leanlake.deploy.iam import batch_role_documents
    from chalicelib.policy import load_policies

    buckets, policy_file = setup(lake, tmp_path, "role")
    seed(lake, buckets)
    role = batch_role_documents(load_policies([policy_file]), CONFIG, "dev")["permissions"]
    admin, job = lake.client("s3"), lake.client("s3", lake.user(role))
    for bucket in buckets.all:
        manifest = f"{BATCH_PREFIX}run-1/manifest.csv"
        admin.put_object(Bucket=bucket, Key=manifest, Body=f"{bucket},raw/table.csv\n".encode())
        assert job.get_object(Bucket=bucket, Key=manifest)["Body"].read().startswith(bucket.encode())
        job.put_object(Bucket=bucket, Key=f"{BATCH_PREFIX}run-1/report/job-1/manifest.json", Body=b"{}")
        with pytest.raises(ClientError, match="AccessDenied"):
            job.get_object(Bucket=bucket, Key="raw/table.csv")
        with pytest.raises(ClientError, match="AccessDenied"):
            job.put_object(Bucket=bucket, Key="raw/table.csv", Body=b"overwritten")
        with pytest.raises(ClientError, match="AccessDenied"):
            job.delete_object(Bucket=bucket, Key=manifest)
        assert admin.get_object(Bucket=bucket, Key="raw/table.csv")["Body"].read().startswith(b"id,country")


def test_a_fanned_out_sweep_of_a_bucket_with_only_bucket_configuration_works_with_the_derived_policy(lake, tmp_path, as_user,
                                                                                                     monkeypatch):
    """A bucket whose policies are all Lifecycle rules still gets a checkpoint and a continuation (the run
    lists it for what Lifecycle cannot express): the derived policy must let it read and write them."""
    from chalicelib import runtime

    bucket = "iam-cfg-only"
    lake.client("s3").create_bucket(Bucket=bucket)
    lake.client("s3").put_object(Bucket=bucket, Key="cold/a.bin", Body=b"kept")
    policy_file = tmp_path / "policies.yaml"
    policy_file.write_text(f"""\
policies:
  - name: cold
    bucket: {bucket}
    filters: {{prefix: cold/}}
    actions: [{{intelligent_tiering: {{archive_days: 90}}}}, {{abort_multipart: 7}}]
""", encoding="utf-8")
    url = work_queue(lake, monkeypatch)
    user = lake.user(derived(policy_file))
    as_user(user, policy_file)
    started = runtime.scheduled_sweep()
    results = pump(lake, user, url)
    assert denials(started) == [] and denials(results) == []
    assert [cp["done"] for cp in checkpoints(lake, bucket)] == [True]
    rules = lake.client("s3").get_bucket_lifecycle_configuration(Bucket=bucket)["Rules"]
    assert [r["ID"] for r in rules] == ["leanlake-cold-1"]
    assert visible(lake, bucket, "cold/a.bin")
