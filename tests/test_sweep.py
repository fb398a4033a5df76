"""plan and apply on a seeded moto bucket: decisions, lock-safe audited deletions, Lifecycle merge,
the deletion cap, versions, and convergence when S3 fails transiently."""

from __future__ import annotations

import json
import textwrap
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from typer.testing import CliRunner

from chalicelib import ledger as ledger_module
from leanlake.cli import app
from chalicelib.context import RunContext
from chalicelib.ledger import Ledger
from chalicelib.policy import load_policies
from chalicelib.sweep import sweep

KiB = 1024
AS_OF = (datetime.now(timezone.utc) + timedelta(days=30)).date().isoformat()
USER_RULE = {"ID": "users-own-logs-rule", "Status": "Enabled", "Filter": {"Prefix": "userlogs/"}, "Expiration": {"Days": 90}}


def csv_body(rows: int = 2000) -> bytes:
    return ("id,kind\n" + "".join(f"{i},{['a', 'b'][i % 2]}\n" for i in range(rows))).encode()


def write_policies(tmp_path: Path, bucket: str, **settings: object) -> Path:
    extra = "".join(f"  {k}: {v}\n" for k, v in settings.items())
    path = tmp_path / "policies.yaml"
    path.write_text(f"settings:\n  region: us-east-1\n{extra}" + textwrap.dedent(f"""\
        policies:
          - name: scratch
            bucket: {bucket}
            filters: {{prefix: tmp/, suffix: .tmp}}
            actions: [{{expire: {{days: 7}}}}]
          - name: slow-scratch
            bucket: {bucket}
            filters: {{prefix: tmp2/, suffix: .tmp}}
            actions: [{{expire: {{days: 60}}}}]
          - name: features
            bucket: {bucket}
            filters: {{prefix: features/, tags: {{recreatable: "true"}}}}
            actions: [{{storage_class: ONEZONE_IA}}]
          - name: checkpoints
            bucket: {bucket}
            filters: {{prefix: checkpoints/}}
            actions:
              - transition: [{{days: 30, class: GLACIER_IR}}, {{days: 180, class: DEEP_ARCHIVE}}]
              - expire: {{days: 730}}
          - name: tables
            bucket: {bucket}
            filters: {{prefix: raw/, suffix: .csv}}
            actions: [{{convert: {{source: delete}}}}]
        """))
    return path


@pytest.fixture
def lake(s3, tmp_path):
    """A versioned, Object Lock-enabled bucket seeded with several prefixes, sizes, tags, locks and a user's rule."""
    name = f"lake-{tmp_path.name[-20:].lower().replace('_', '-')}"
    s3.create_bucket(Bucket=name, ObjectLockEnabledForBucket=True)
    put = lambda key, body, **kw: s3.put_object(Bucket=name, Key=key, Body=body, **kw)  # noqa: E731
    put("tmp/a.tmp", b"x" * 300)
    put("tmp/b.tmp", b"y" * 300)
    put("tmp/held.tmp", b"h", ObjectLockLegalHoldStatus="ON")
    put("tmp/retained.tmp", b"r", ObjectLockMode="GOVERNANCE", ObjectLockRetainUntilDate=datetime.now(timezone.utc) + timedelta(days=365))
    put("tmp/notes.log", b"not matched: wrong suffix")
    put("tmp2/young.tmp", b"z")
    put("features/big.bin", b"f" * (512 * KiB), Tagging="recreatable=true")
    put("features/small.bin", b"s" * (10 * KiB), Tagging="recreatable=true")
    put("features/untagged.bin", b"u" * (512 * KiB))
    put("checkpoints/c1.pt", b"c" * (200 * KiB))
    put("raw/t.csv", csv_body())
    s3.put_bucket_lifecycle_configuration(Bucket=name, LifecycleConfiguration={"Rules": [USER_RULE]})
    return name


@pytest.fixture(autouse=True)
def emf_to_stderr():
    ledger_module.metrics_to_stderr()  # as the leanlake command does
    yield
    ledger_module.metrics_to_stderr(False)


def cli(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.stdout


def test_plan_then_apply_does_exactly_what_it_should(s3, lake, tmp_path):
    policies = write_policies(tmp_path, lake)
    code, out = cli("plan", "--policies", str(policies), "--as-of", AS_OF, "--json")
    assert code == 0, out
    plan = json.loads(out)
    by_key = {(d["key"], d["policy"]): (d["action"], d["reason"]) for d in plan["decisions"]}
    assert {k: a for k, (a, _) in by_key.items() if k[0] and a != "skip"} == {
        ("tmp/a.tmp", "scratch"): "expire", ("tmp/b.tmp", "scratch"): "expire",
        ("features/big.bin", "features"): "storage_class", ("raw/t.csv", "tables"): "convert",
    }
    # plan tells apply's truth on an Object Lock bucket: held and retained objects are skips, with the reason
    assert by_key[("tmp/held.tmp", "scratch")] == ("skip", "under legal hold: not deleted")
    assert by_key[("tmp/retained.tmp", "scratch")][0] == "skip" and "retention until" in by_key[("tmp/retained.tmp", "scratch")][1]
    assert by_key[("features/small.bin", "features")][0] == "skip"  # never a small object to IA
    assert by_key[("tmp2/young.tmp", "slow-scratch")][0] == "skip"
    assert "Lifecycle" in by_key[("checkpoints/c1.pt", "checkpoints")][1]
    assert ("features/untagged.bin", "features") not in by_key and ("tmp/notes.log", "scratch") not in by_key
    assert [d["action"] for d in plan["decisions"] if d["key"] is None] == ["lifecycle"]
    assert set(plan["decisions"][0]) == {"bucket", "key", "policy", "action", "reason", "monthly_usd_saved",
                                         "monthly_kgco2e_saved", "one_off_usd"}
    assert "totals" in plan

    code, out = cli("apply", "--policies", str(policies), "--as-of", AS_OF, "--yes", "--json")
    assert code == 0, out
    applied = json.loads(out)
    statuses = {(o["key"], o["action"]): (o["status"], o["outcome_reason"]) for o in applied["outcomes"]}
    assert statuses[("tmp/held.tmp", "skip")][0] == "skip" and "legal hold" in statuses[("tmp/held.tmp", "skip")][1]
    assert statuses[("tmp/retained.tmp", "skip")][0] == "skip" and "retention" in statuses[("tmp/retained.tmp", "skip")][1]

    current = sorted(o["Key"] for o in s3.list_objects_v2(Bucket=lake)["Contents"] if not o["Key"].startswith("_leanlake/"))
    assert current == ["checkpoints/c1.pt", "features/big.bin", "features/small.bin", "features/untagged.bin",
                       "raw/t.parquet", "tmp/held.tmp", "tmp/notes.log", "tmp/retained.tmp", "tmp2/young.tmp"]
    markers = {m["Key"] for m in s3.list_object_versions(Bucket=lake).get("DeleteMarkers", [])}
    assert markers == {"tmp/a.tmp", "tmp/b.tmp", "raw/t.csv"}  # never on a locked or held object
    assert s3.head_object(Bucket=lake, Key="features/big.bin")["StorageClass"] == "ONEZONE_IA"
    assert s3.head_object(Bucket=lake, Key="features/small.bin").get("StorageClass", "STANDARD") == "STANDARD"

    (audit_key,) = [o["Key"] for o in s3.list_objects_v2(Bucket=lake, Prefix="_leanlake/audit/")["Contents"]]
    audit = [json.loads(line) for line in s3.get_object(Bucket=lake, Key=audit_key)["Body"].read().splitlines()]
    # every deletion is audited, whatever action made it: the converted source too
    assert sorted((a["key"], a["status"], a["policy"]) for a in audit) == [
        ("raw/t.csv", "deleted", "tables"), ("tmp/a.tmp", "deleted", "scratch"), ("tmp/b.tmp", "deleted", "scratch")]

    rules = s3.get_bucket_lifecycle_configuration(Bucket=lake)["Rules"]
    assert [r for r in rules if r["ID"] == USER_RULE["ID"]] == [USER_RULE]
    assert sorted(r["ID"] for r in rules if r["ID"].startswith("leanlake-")) == ["leanlake-checkpoints-1",
                                                                                "leanlake-tables-1"]  # its outputs' abort rule

    # A second run finds nothing left to do and changes nothing.
    code, out = cli("apply", "--policies", str(policies), "--as-of", AS_OF, "--yes", "--json")
    again = json.loads(out)
    assert code == 0 and not [o for o in again["outcomes"] if o["status"] == "ok" and o["action"] != "lifecycle"]


def test_apply_without_yes_refuses_when_it_cannot_ask(s3, lake, tmp_path):
    policies = write_policies(tmp_path, lake)
    result = CliRunner().invoke(app, ["apply", "--policies", str(policies), "--as-of", AS_OF], input="")
    assert result.exit_code == 2 and "--yes" in result.output
    assert "tmp/a.tmp" in {o["Key"] for o in s3.list_objects_v2(Bucket=lake)["Contents"]}


def test_deletion_cap_stops_and_reports(s3, bucket, tmp_path):
    for i in range(12):
        s3.put_object(Bucket=bucket, Key=f"tmp/{i:02}.tmp", Body=b"x")
    policies = load_policies([write_policies(tmp_path, bucket, max_deletions=5)])
    ctx = RunContext(policies=policies, s3=s3, now=datetime.now(timezone.utc) + timedelta(days=30))
    report = sweep(ctx, Ledger(emit_metrics=False), policy_names=["scratch"])
    assert report["buckets"][bucket] == {"deleted": 5, "deletion_cap_reached": True, "audit_key": report["buckets"][bucket]["audit_key"]}
    assert len([o for o in s3.list_objects_v2(Bucket=bucket, Prefix="tmp/")["Contents"]]) == 7
    report = sweep(ctx, Ledger(emit_metrics=False), policy_names=["scratch"])
    report = sweep(ctx, Ledger(emit_metrics=False), policy_names=["scratch"])
    assert "Contents" not in s3.list_objects_v2(Bucket=bucket, Prefix="tmp/")


def test_versions_all_removes_every_version_and_marker_leaves_one(s3, bucket, tmp_path):
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    for body in (b"1", b"2", b"3"):
        s3.put_object(Bucket=bucket, Key="tmp/all.tmp", Body=body)
        s3.put_object(Bucket=bucket, Key="tmp2/marker.tmp", Body=body)
    path = tmp_path / "v.yaml"
    path.write_text(textwrap.dedent(f"""\
        policies:
          - name: all-versions
            bucket: {bucket}
            filters: {{prefix: tmp/, suffix: .tmp}}
            actions: [{{expire: {{days: 1, versions: all}}}}]
          - name: with-marker
            bucket: {bucket}
            filters: {{prefix: tmp2/, suffix: .tmp}}
            actions: [{{expire: {{days: 1}}}}]
        """))
    ctx = RunContext(policies=load_policies([path]), s3=s3, now=datetime.now(timezone.utc) + timedelta(days=3))
    sweep(ctx, Ledger(emit_metrics=False))
    listing = s3.list_object_versions(Bucket=bucket)
    versions = [(v["Key"]) for v in listing.get("Versions", []) if not v["Key"].startswith("_leanlake/")]
    assert sorted(versions) == ["tmp2/marker.tmp"] * 3
    assert [m["Key"] for m in listing.get("DeleteMarkers", [])] == ["tmp2/marker.tmp"]


class _Body:
    def __init__(self, data: bytes):
        self.data = data

    def stream(self, **_):
        yield self.data


class Flaky:
    """Fault injection on the real client: S3 answers 503 before some calls and fails some after they took effect."""

    def __init__(self, s3, before: dict[str, int], after: dict[str, int]):
        self.before, self.after = dict(before), dict(after)
        s3.meta.events.register("before-send.s3.*", self.fail_before)
        s3.meta.events.register("after-call.s3.*", self.fail_after)

    def fail_before(self, request, **kwargs):
        from botocore.awsrequest import AWSResponse

        name = kwargs["event_name"].rsplit(".", 1)[-1]
        if self.before.get(name, 0) > 0:
            self.before[name] -= 1
            return AWSResponse(request.url, 503, {}, _Body(b"<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>"))
        return None

    def fail_after(self, http_response, parsed, model, **kwargs):
        from botocore.exceptions import ClientError

        if self.after.get(model.name, 0) > 0:
            self.after[model.name] -= 1
            raise ClientError({"Error": {"Code": "InternalError", "Message": "injected after the call took effect"},
                               "ResponseMetadata": {"HTTPStatusCode": 500}}, model.name)


def test_apply_converges_after_transient_failures(s3, lake, tmp_path):
    policies = write_policies(tmp_path, lake)
    flaky = Flaky(s3, before={"DeleteObject": 2, "CopyObject": 2, "PutObject": 2},
                  after={"CopyObject": 1, "CompleteMultipartUpload": 0, "PutObject": 1})
    try:
        first, _ = cli("apply", "--policies", str(policies), "--as-of", AS_OF, "--yes", "--json")
        second, out = cli("apply", "--policies", str(policies), "--as-of", AS_OF, "--yes", "--json")
    finally:
        s3.meta.events.unregister("before-send.s3.*", flaky.fail_before)
        s3.meta.events.unregister("after-call.s3.*", flaky.fail_after)
    assert first == 1 and second == 0, out
    current = sorted(o["Key"] for o in s3.list_objects_v2(Bucket=lake)["Contents"] if not o["Key"].startswith("_leanlake/"))
    assert "raw/t.parquet" in current and "raw/t.csv" not in current and "tmp/a.tmp" not in current
    assert s3.head_object(Bucket=lake, Key="features/big.bin")["StorageClass"] == "ONEZONE_IA"
    versions = [v["Key"] for v in s3.list_object_versions(Bucket=lake)["Versions"]]
    assert versions.count("raw/t.parquet") == 1  # written once: no duplicate output


def test_apply_dry_run_goes_through_every_step_and_changes_nothing(s3, lake, tmp_path):
    policies = write_policies(tmp_path, lake)
    before = sorted((v["Key"], v["VersionId"]) for v in s3.list_object_versions(Bucket=lake)["Versions"])
    code, out = cli("apply", "--policies", str(policies), "--as-of", AS_OF, "--dry-run", "--json")
    assert code == 0, out
    reasons = {(o["key"], o["action"]): o["outcome_reason"] for o in json.loads(out)["outcomes"]}
    assert reasons[("tmp/a.tmp", "expire")] == "dry run: would delete"
    assert reasons[("raw/t.csv", "convert")].startswith("dry run: would write")
    assert reasons[("features/big.bin", "storage_class")].startswith("dry run: would copy in place")
    assert sorted((v["Key"], v["VersionId"]) for v in s3.list_object_versions(Bucket=lake)["Versions"]) == before
    assert "DeleteMarkers" not in s3.list_object_versions(Bucket=lake)
    assert s3.get_bucket_lifecycle_configuration(Bucket=lake)["Rules"] == [USER_RULE]
