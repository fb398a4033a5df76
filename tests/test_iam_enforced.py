"""The derived IAM policy, proven under enforced IAM: everything leanlake does on a plain, a
versioned and an Object Lock bucket works with exactly ``policy_document``'s grants, and a run
missing one needed action reports AccessDenied (so enforcement is really on).

A moto server runs in its own process (moto's state and its auth switch are per process). It is
seeded with an IAM admin user (after ``/moto-api/reset-auth`` the default keys are no identity);
each test then makes its buckets and objects with the admin's keys, creates an IAM user holding
the derived document for a PolicySet naming those buckets, and runs ``leanlake plan``/``apply``
(subprocesses with the user's keys, no session token) or every handler of chalicelib/runtime.py
(in process, with the user's keys, on events moto really delivered). What is left in S3 is read
with the admin's keys.

moto authorizes some requests differently from AWS; ``moto_document`` adds, for a granted AWS
action, the action moto checks instead (and nothing for an action not granted), so the document
under test stays the derived one. Enforcement on moto is necessary, not sufficient: moto checks
HeadObject as s3:GetObject, ?object-lock as s3:ListBucket, tagging of a version as
s3:GetObjectVersion, and never s3:PutObjectTagging for tags sent with a PUT or a copy, nor read
access to a copy's source. The table in chalicelib/actions/permissions.py, checked against AWS's
documentation in tests/test_iam.py, is the other half.
"""

from __future__ import annotations

import dataclasses
import gzip
import json
import os
import subprocess
import sys
import textwrap
import urllib.request
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Iterator

import pytest
from conftest import moto_in_own_process

from leanlake.deploy.iam import policy_document
from leanlake.deploy.project import ChaliceConfig
from chalicelib.policy import load_policies

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ChaliceConfig.load(ROOT / ".chalice")
REGION = "us-east-1"
#: Runs happen "as of" this far ahead, so the scratch objects (expire after 1 day) are due.
LATER = timedelta(days=10)
#: Retention of the locked objects: beyond LATER, and always judged against the real clock.
RETAIN = timedelta(days=30)
ALARM = "lake-growth"

# AWS action granted → what moto (5.2.5) checks instead for the same request (moto/s3/responses.py ACTION_MAP).
MOTO_CHECKS = {
    # PUT ?intelligent-tiering is not in moto's map: it falls to the bucket PUT default, CreateBucket
    ("bucket", "s3:PutIntelligentTieringConfiguration"): ("bucket", "s3:CreateBucket"),
    # DeleteObjects (POST ?delete) is checked as s3:DeleteObject on the bucket ARN, not on each key
    ("objects", "s3:DeleteObject"): ("bucket", "s3:DeleteObject"),
}
# AWS authorizes SQS's batch calls as the single ones (SendMessageBatch as sqs:SendMessage); moto checks their own names.
MOTO_QUEUE_CHECKS = {"sqs:SendMessage": "sqs:SendMessageBatch", "sqs:DeleteMessage": "sqs:DeleteMessageBatch"}


# --- The server, its admin, and users holding a document ---------------------------------------------------------

@dataclasses.dataclass
class Lake:
    """A moto server with IAM enforced, and the admin's keys."""

    endpoint: str
    admin_keys: dict[str, str]
    users: int = 0

    def client(self, service: str, keys: dict[str, str] | None = None) -> Any:
        import boto3

        return boto3.client(service, endpoint_url=self.endpoint, region_name=REGION, **(keys or self.admin_keys))

    def user(self, document: dict[str, Any]) -> dict[str, str]:
        """A new IAM user holding exactly ``document`` (plus moto's names for what it grants); its keys."""
        iam = self.client("iam")
        self.users += 1
        name = f"leanlake-{self.users}"
        iam.create_user(UserName=name)
        iam.put_user_policy(UserName=name, PolicyName="leanlake", PolicyDocument=json.dumps(moto_document(document)))
        return _keys(iam.create_access_key(UserName=name)["AccessKey"])


def _keys(access_key: dict[str, str]) -> dict[str, str]:
    return {"aws_access_key_id": access_key["AccessKeyId"], "aws_secret_access_key": access_key["SecretAccessKey"]}


def moto_document(document: dict[str, Any]) -> dict[str, Any]:
    """``document`` plus, for each granted action moto checks under another name, that name on the
    resource moto checks it on; nothing is added for an action the document does not grant."""
    extra = []
    for statement in document["Statement"]:
        for action in statement["Action"]:
            for resource in statement["Resource"]:
                kind = "objects" if resource.endswith("/*") else "bucket"
                moto = MOTO_CHECKS.get((kind, action))
                if moto and resource.startswith("arn:aws:s3:::"):
                    bucket_arn = resource.removesuffix("/*")
                    extra.append({"Effect": "Allow", "Action": [moto[1]],
                                  "Resource": [bucket_arn if moto[0] == "bucket" else f"{bucket_arn}/*"]})
                if action in MOTO_QUEUE_CHECKS and resource.startswith("arn:aws:sqs:"):
                    extra.append({"Effect": "Allow", "Action": [MOTO_QUEUE_CHECKS[action]], "Resource": [resource]})
    return {**document, "Statement": document["Statement"] + extra}


def without(document: dict[str, Any], action: str) -> dict[str, Any]:
    """``document`` with ``action`` taken out of every statement (the negative control)."""
    statements = [{**s, "Action": [a for a in s["Action"] if a != action]} for s in document["Statement"]]
    return {**document, "Statement": [s for s in statements if s["Action"]]}


@pytest.fixture(scope="module")
def lake() -> Iterator[Lake]:
    with moto_in_own_process() as endpoint:
        seed = Lake(endpoint, {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"})
        iam = seed.client("iam")
        iam.create_user(UserName="admin")
        iam.put_user_policy(UserName="admin", PolicyName="all", PolicyDocument=json.dumps(
            {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}))
        admin = Lake(endpoint, _keys(iam.create_access_key(UserName="admin")["AccessKey"]))
        reset = urllib.request.Request(f"{endpoint}/moto-api/reset-auth", data=b"0", method="POST",
                                       headers={"Content-Type": "application/octet-stream"})
        urllib.request.urlopen(reset, timeout=10).close()
        yield admin


def test_enforcement_is_on_and_the_admin_is_the_only_identity(lake):
    from botocore.exceptions import ClientError

    lake.client("s3").list_buckets()
    with pytest.raises(ClientError, match="InvalidAccessKeyId"):
        lake.client("s3", {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}).list_buckets()
    nobody = lake.user({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": ["s3:ListBucket"], "Resource": ["arn:aws:s3:::no-such-bucket"]}]})
    with pytest.raises(ClientError, match="AccessDenied"):
        lake.client("s3", nobody).list_buckets()


# --- Buckets, objects and policies ---------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Buckets:
    plain: str
    versioned: str
    locked: str

    @property
    def all(self) -> tuple[str, str, str]:
        return (self.plain, self.versioned, self.locked)


def csv_body(rows: int = 3000) -> bytes:
    return ("id,country,score\n" + "".join(f"{i},{['NA', 'DE', 'FR'][i % 3]},{i % 97}\n" for i in range(rows))).encode()


def log_body() -> bytes:
    return gzip.compress("".join(f"2026-11-27T00:00:{i % 60:02d}Z GET /api/v1/items/{i % 50} 200 {i % 1000}ms\n"
                                 for i in range(20_000)).encode(), compresslevel=1)


def make_buckets(lake: Lake, tag: str) -> Buckets:
    s3 = lake.client("s3")
    buckets = Buckets(f"iam-{tag}-plain", f"iam-{tag}-versioned", f"iam-{tag}-locked")
    s3.create_bucket(Bucket=buckets.plain)
    s3.create_bucket(Bucket=buckets.versioned)
    s3.put_bucket_versioning(Bucket=buckets.versioned, VersioningConfiguration={"Status": "Enabled"})
    s3.create_bucket(Bucket=buckets.locked, ObjectLockEnabledForBucket=True)
    return buckets


def seed(lake: Lake, buckets: Buckets) -> None:
    """In each bucket: a CSV (convert, source deleted), a CSV whose source is re-classed, a gzip log
    (recompress, source deleted), a tagged feature file (storage_class) and a scratch file (expired).
    The versioned bucket's scratch file has two versions (``versions: all``); the Object Lock bucket
    also holds a CSV and scratch files under COMPLIANCE / GOVERNANCE retention and a legal hold."""
    s3 = lake.client("s3")
    until = datetime.now(timezone.utc) + RETAIN
    for bucket in buckets.all:
        s3.put_object(Bucket=bucket, Key="raw/table.csv", Body=csv_body())
        s3.put_object(Bucket=bucket, Key="hist/table.csv", Body=csv_body(2000))
        s3.put_object(Bucket=bucket, Key="logs/app.log.gz", Body=log_body())
        s3.put_object(Bucket=bucket, Key="features/f.bin", Body=os.urandom(512 * 1024), Tagging="recreatable=true")
        s3.put_object(Bucket=bucket, Key="tmp/old.tmp", Body=b"scratch v1")
    s3.put_object(Bucket=buckets.versioned, Key="tmp/old.tmp", Body=b"scratch v2")
    locked = buckets.locked
    s3.put_object(Bucket=locked, Key="raw/locked.csv", Body=csv_body(), ObjectLockMode="COMPLIANCE",
                  ObjectLockRetainUntilDate=until)
    s3.put_object(Bucket=locked, Key="tmp/compliance.tmp", Body=b"kept", ObjectLockMode="COMPLIANCE",
                  ObjectLockRetainUntilDate=until)
    s3.put_object(Bucket=locked, Key="tmp/governance.tmp", Body=b"kept", ObjectLockMode="GOVERNANCE",
                  ObjectLockRetainUntilDate=until)
    s3.put_object(Bucket=locked, Key="tmp/held.tmp", Body=b"kept", ObjectLockLegalHoldStatus="ON")


def policies_yaml(buckets: Buckets) -> str:
    every = json.dumps(list(buckets.all))
    return textwrap.dedent(f"""\
        settings: {{region: {REGION}}}
        policies:
          - name: tables
            bucket: {every}
            filters: {{prefix: raw/, suffix: .csv}}
            actions: [{{convert: {{source: delete}}}}]
          - name: history
            bucket: {every}
            filters: {{prefix: hist/, suffix: .csv}}
            actions: [{{convert: {{source: "storage_class:GLACIER_IR"}}}}]
          - name: logs
            bucket: {every}
            filters: {{prefix: logs/, suffix: .gz}}
            actions: [{{recompress: {{source: delete}}}}]
          - name: features
            bucket: {every}
            filters: {{prefix: features/, tags: {{recreatable: "true"}}}}
            actions: [{{storage_class: ONEZONE_IA}}]
          - name: scratch
            bucket: [{buckets.plain}, {buckets.locked}]
            filters: {{prefix: tmp/, suffix: .tmp}}
            actions: [{{expire: {{days: 1}}}}]
            on_alarm: [{ALARM}]
          - name: scratch-versions
            bucket: {buckets.versioned}
            filters: {{prefix: tmp/, suffix: .tmp}}
            actions: [{{expire: {{days: 1, versions: all}}}}]
            on_alarm: [{ALARM}]
          - name: archive
            bucket: {every}
            filters: {{prefix: archive/}}
            actions: [{{transition: [{{days: 30, class: GLACIER_IR}}]}}, {{abort_multipart: 7}}]
          - name: cold
            bucket: {every}
            filters: {{prefix: cold/}}
            actions: [{{intelligent_tiering: {{archive_days: 90}}}}]
        """)


def derived(policy_file: Path) -> dict[str, Any]:
    """The document ``make iam`` would deploy for these policies (stage dev)."""
    return policy_document(load_policies([policy_file]), CONFIG, "dev")


def setup(lake: Lake, tmp_path: Path, tag: str) -> tuple[Buckets, Path]:
    buckets = make_buckets(lake, tag)
    policy_file = tmp_path / "policies.yaml"
    policy_file.write_text(policies_yaml(buckets), encoding="utf-8")
    return buckets, policy_file


# --- Running leanlake as the user --------------------------------------------------------------------------------

def leanlake(lake: Lake, keys: dict[str, str], *args: str) -> tuple[int, Any, str]:
    """``python -m leanlake.cli ARGS`` with the user's keys (no session token): exit status, JSON, stderr."""
    env = {k: v for k, v in os.environ.items() if k not in ("AWS_SESSION_TOKEN", "AWS_PROFILE", "AWS_SECURITY_TOKEN")}
    env.update({"AWS_ENDPOINT_URL": lake.endpoint, "AWS_ACCESS_KEY_ID": keys["aws_access_key_id"],
                "AWS_SECRET_ACCESS_KEY": keys["aws_secret_access_key"], "AWS_DEFAULT_REGION": REGION,
                "PYTHONPATH": str(ROOT)})
    done = subprocess.run([sys.executable, "-m", "leanlake.cli", *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=300)
    try:
        document = json.loads(done.stdout)
    except json.JSONDecodeError:
        document = None
    return done.returncode, document, done.stderr


def denials(anything: Any) -> list[str]:
    """Every line of ``anything`` (as JSON) that reports a refused permission."""
    text = json.dumps(anything, default=str, indent=1)
    return [line.strip() for line in text.splitlines() if "AccessDenied" in line or "Forbidden" in line]


def errors(outcomes: list[dict[str, Any]]) -> list[str]:
    return [f"{o.get('bucket')}/{o.get('key')} {o.get('action')}: {o.get('outcome_reason') or o.get('reason')}"
            for o in outcomes if o.get("status") == "error"]


# --- What must be left in S3 ---------------------------------------------------------------------------------------

def keys_in(lake: Lake, bucket: str) -> set[str]:
    pages = lake.client("s3").get_paginator("list_objects_v2").paginate(Bucket=bucket)
    return {o["Key"] for page in pages for o in page.get("Contents", ())}


def visible(lake: Lake, bucket: str, key: str) -> bool:
    from botocore.exceptions import ClientError

    try:
        lake.client("s3").head_object(Bucket=bucket, Key=key)
        return True
    except ClientError as exc:
        if exc.response["Error"]["Code"] in ("404", "NoSuchKey", "NotFound"):
            return False
        raise


def assert_lake_done(lake: Lake, buckets: Buckets) -> None:
    """Outputs exist, sources are deleted where allowed, locked and held objects are still there,
    scratch files expired (every version where ``versions: all``), bucket configurations written."""
    s3 = lake.client("s3")
    for bucket in buckets.all:
        keys = keys_in(lake, bucket)
        outputs = {k for k in keys if k.startswith(("raw/", "hist/", "logs/")) and k.endswith((".parquet", ".zst"))}
        assert {k.split("/")[0] for k in outputs} >= {"raw", "hist", "logs"}, (bucket, sorted(keys))
        for key in outputs:
            assert s3.head_object(Bucket=bucket, Key=key)["Metadata"].get("leanlake") == "output", (bucket, key)
        assert not visible(lake, bucket, "raw/table.csv"), f"{bucket}: converted source not deleted"
        assert not visible(lake, bucket, "logs/app.log.gz"), f"{bucket}: recompressed source not deleted"
        assert s3.head_object(Bucket=bucket, Key="hist/table.csv").get("StorageClass") == "GLACIER_IR", bucket
        assert s3.head_object(Bucket=bucket, Key="features/f.bin").get("StorageClass") == "ONEZONE_IA", bucket
        assert not visible(lake, bucket, "tmp/old.tmp"), f"{bucket}: scratch file not expired"
        assert any(k.startswith("_leanlake/audit/") for k in keys), f"{bucket}: deletions without an audit object"
        rules = s3.get_bucket_lifecycle_configuration(Bucket=bucket)["Rules"]
        assert any(r["ID"].startswith("leanlake-archive") for r in rules), (bucket, rules)
        # (moto keeps no Intelligent-Tiering configurations to read back: the runs' outcomes say it was written)
    versions = s3.list_object_versions(Bucket=buckets.versioned, Prefix="tmp/old.tmp")
    assert not versions.get("Versions") and not versions.get("DeleteMarkers"), "versions: all left versions behind"
    for key in ("raw/locked.csv", "tmp/compliance.tmp", "tmp/governance.tmp", "tmp/held.tmp"):
        assert visible(lake, buckets.locked, key), f"locked or held {key} was deleted"


# --- The tests ------------------------------------------------------------------------------------------------------

def test_plan_and_apply_work_with_exactly_the_derived_policy(lake, tmp_path):
    buckets, policy_file = setup(lake, tmp_path, "cli")
    seed(lake, buckets)
    user = lake.user(derived(policy_file))
    as_of = (datetime.now(timezone.utc) + LATER).strftime("%Y-%m-%d")

    status, plan, stderr = leanlake(lake, user, "plan", "--policies", str(policy_file), "--as-of", as_of, "--json")
    assert status == 0 and plan is not None, stderr
    assert denials(plan) == [] and "AccessDenied" not in stderr
    actions = {d["action"] for d in plan["decisions"]}
    assert {"convert", "recompress", "storage_class", "expire", "lifecycle", "intelligent_tiering"} <= actions
    locked = [d for d in plan["decisions"] if d["bucket"] == buckets.locked and d["key"] in
              ("raw/locked.csv", "tmp/compliance.tmp", "tmp/governance.tmp", "tmp/held.tmp")]
    assert len(locked) == 4 and all(d["action"] == "skip" for d in locked), locked  # plan read the locks

    status, applied, stderr = leanlake(lake, user, "apply", "--policies", str(policy_file), "--as-of", as_of, "--yes", "--json")
    assert applied is not None, stderr
    assert denials(applied) == [] and "AccessDenied" not in stderr
    assert errors(applied["outcomes"]) == [] and status == 0, stderr[-3000:]
    written = {(o["bucket"], o["action"]) for o in applied["outcomes"] if o["status"] == "ok" and o["key"] is None}
    assert written == {(b, a) for b in buckets.all for a in ("lifecycle", "intelligent_tiering")}
    assert_lake_done(lake, buckets)


def _messages(sqs: Any, url: str) -> list[dict[str, Any]]:
    """Every message waiting in a queue (received once, deleted)."""
    found: list[dict[str, Any]] = []
    for _ in range(50):
        batch = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=0).get("Messages", [])
        if not batch:
            break
        found.extend(batch)
        sqs.delete_message_batch(QueueUrl=url, Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]}
                                                        for i, m in enumerate(batch)])
    return found


def _queue(sqs: Any, name: str) -> tuple[str, str]:
    url = sqs.create_queue(QueueName=name)["QueueUrl"]
    return url, sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]


@pytest.fixture
def as_user(lake, monkeypatch):
    """Run chalicelib's runtime in this process with a user's keys (no session token) and given policies."""
    from chalicelib import runtime, s3

    def become(keys: dict[str, str], policy_file: Path) -> None:
        monkeypatch.setenv("AWS_ENDPOINT_URL", lake.endpoint)
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", keys["aws_access_key_id"])
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", keys["aws_secret_access_key"])
        monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
        monkeypatch.setenv("LEANLAKE_POLICIES", str(policy_file))
        s3.client.cache_clear()
        runtime.policies.cache_clear()

    yield become
    s3.client.cache_clear()
    runtime.policies.cache_clear()


def alarm_event(name: str) -> dict[str, Any]:
    """The EventBridge event CloudWatch sends when an alarm goes to ALARM."""
    return {"version": "0", "id": "1", "detail-type": "CloudWatch Alarm State Change", "source": "aws.cloudwatch",
            "account": "123456789012", "time": "2026-11-27T00:00:00Z", "region": REGION,
            "resources": [f"arn:aws:cloudwatch:{REGION}:123456789012:alarm:{name}"],
            "detail": {"alarmName": name, "state": {"value": "ALARM", "reason": "test", "timestamp": "2026-11-27T00:00:00.000+0000"},
                       "previousState": {"value": "OK", "reason": "test", "timestamp": "2026-11-26T00:00:00.000+0000"}}}


def test_every_lambda_handler_works_with_exactly_the_derived_policy(lake, tmp_path, as_user, monkeypatch):
    """Uploads reach the handlers as moto delivers them: S3 → SQS notifications (prefix raw/: read as
    a direct S3 invocation; prefix features/ and hist/: the SQS handler), S3 → EventBridge → SQS
    (logs/). The alarm and the daily schedule then sweep, ten days later."""
    from chalicelib import runtime
    from leanlake.demo.run import deliver

    buckets, policy_file = setup(lake, tmp_path, "rt")
    sqs, events, s3 = lake.client("sqs"), lake.client("events"), lake.client("s3")
    direct_url, direct_arn = _queue(sqs, "iam-rt-direct")
    work_url, work_arn = _queue(sqs, "iam-rt-work")
    bridge_url, bridge_arn = _queue(sqs, "iam-rt-eventbridge")
    events.put_rule(Name="iam-rt", EventPattern=json.dumps(
        {"source": ["aws.s3"], "detail-type": ["Object Created"], "detail": {"bucket": {"name": list(buckets.all)}}}))
    events.put_targets(Rule="iam-rt", Targets=[{"Id": "q", "Arn": bridge_arn}])

    def on(prefix: str, arn: str) -> dict[str, Any]:
        return {"QueueArn": arn, "Events": ["s3:ObjectCreated:*"],
                "Filter": {"Key": {"FilterRules": [{"Name": "prefix", "Value": prefix}]}}}

    for bucket in buckets.all:
        s3.put_bucket_notification_configuration(Bucket=bucket, NotificationConfiguration={
            "QueueConfigurations": [on("raw/", direct_arn), on("features/", work_arn), on("hist/", work_arn)],
            "EventBridgeConfiguration": {}})
    seed(lake, buckets)
    notifications = [json.loads(m["Body"]) for m in _messages(sqs, direct_url)]
    bridged = [json.loads(m["Body"]) for m in _messages(sqs, bridge_url)]
    bridged = [e for e in bridged if str(e.get("detail", {}).get("object", {}).get("key", "")).startswith("logs/")]
    assert len([n for n in notifications if "Records" in n]) == 4 and len(bridged) == 3  # 3 tables + the locked one; 3 logs

    as_user(lake.user(derived(policy_file)), policy_file)
    results = [runtime.handle_s3_notification(n) for n in notifications if "Records" in n]
    results += [runtime.handle_eventbridge(e) for e in bridged]
    results += deliver(sqs, work_url, work_arn, runtime.handle_sqs)
    uploads = [o for r in results for o in r["outcomes"]]
    assert {o["action"] for o in uploads if o["status"] == "ok"} == {"convert", "recompress", "storage_class"}

    later = datetime.now(timezone.utc) + LATER
    now_context = runtime.context
    monkeypatch.setattr(runtime, "context", lambda: dataclasses.replace(now_context(), now=later))
    swept = [runtime.handle_alarm(alarm_event(ALARM)), runtime.scheduled_sweep()]
    assert sorted(swept[0]["swept"]) == ["scratch", "scratch-versions"]

    assert denials(results) == [] and denials(swept) == []
    assert errors(uploads) == []
    for report in swept:
        assert report["totals"].get("errors", 0) == 0, report
    assert_lake_done(lake, buckets)


@pytest.mark.parametrize("removed, broken", [
    ("s3:PutObject", ("plain", "versioned", "locked")),      # no output, no audit object, so nothing deleted
    ("s3:GetObjectVersion", ("versioned", "locked")),       # case 12: reads by VersionId on versioned buckets
])
def test_a_run_missing_one_needed_action_reports_access_denied(lake, tmp_path, removed, broken):
    tag = "no-" + removed.removeprefix("s3:").lower()[:12]
    buckets, policy_file = setup(lake, tmp_path, tag)
    seed(lake, buckets)
    document = derived(policy_file)
    assert removed in {a for s in document["Statement"] for a in s["Action"]}
    user = lake.user(without(document, removed))
    as_of = (datetime.now(timezone.utc) + LATER).strftime("%Y-%m-%d")

    status, applied, stderr = leanlake(lake, user, "apply", "--policies", str(policy_file), "--as-of", as_of, "--yes", "--json")
    assert status == 1 and applied is not None, stderr
    refused = {o["bucket"] for o in applied["outcomes"] if o["status"] == "error" and denials(o)}
    assert refused == {getattr(buckets, kind) for kind in broken}
    for kind in broken:  # what could not be written or read left its source as it was
        assert visible(lake, getattr(buckets, kind), "raw/table.csv")
