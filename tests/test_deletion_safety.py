"""Trust before deletion, tried as a hostile user would, on the moto server: every assertion is about
what is left in S3 (objects, versions, delete markers, audit lines), not only about exit codes.

- objects overwritten after they were listed (or while apply waits) are not expired;
- a source overwritten between the check and the delete is not deleted;
- Object Lock state that cannot be read stops every deletion in that bucket (fail closed);
- the deletion cap counts every version and every converted source;
- plan and apply agree on every object of an Object Lock bucket.
"""

from __future__ import annotations

import json
import textwrap
import threading
from datetime import datetime, timedelta, timezone
from pathlib import Path

import boto3
import pytest
from botocore.config import Config
from typer.testing import CliRunner

from chalicelib import ledger as ledger_module
from leanlake.cli import app
from chalicelib.columns import Objects
from chalicelib.context import RunContext
from chalicelib.ledger import Ledger
from chalicelib.pipeline import handle_uploads
from chalicelib.policy import load_policies
from chalicelib.refs import ObjectRef
from chalicelib.sweep import bucket_decisions, sweep

LATER = datetime.now(timezone.utc) + timedelta(days=30)


@pytest.fixture(autouse=True)
def emf_to_stderr():
    ledger_module.metrics_to_stderr()  # as the leanlake command does: stdout holds one JSON document
    yield
    ledger_module.metrics_to_stderr(False)


def policies_file(tmp_path: Path, bucket: str, *, versions: str = "marker", max_deletions: int = 10_000) -> Path:
    path = tmp_path / "p.yaml"
    path.write_text(textwrap.dedent(f"""\
        settings: {{max_deletions: {max_deletions}}}
        policies:
          - name: scratch
            bucket: {bucket}
            filters: {{prefix: tmp/, suffix: .tmp}}
            actions: [{{expire: {{days: 7, versions: {versions}}}}}]
          - name: tables
            bucket: {bucket}
            filters: {{prefix: raw/, suffix: .csv}}
            actions: [{{convert: {{source: delete}}}}]
        """))
    return path


def csv_body(rows: int = 2000, seed: int = 0) -> bytes:
    return ("id,kind\n" + "".join(f"{i + seed},{['a', 'b'][i % 2]}\n" for i in range(rows))).encode()


def keys(s3, bucket: str, prefix: str = "") -> list[str]:
    return sorted(o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", [])
                  if not o["Key"].startswith("_leanlake/"))


def audit_lines(s3, bucket: str) -> list[dict]:
    lines = []
    for key in keys_all(s3, bucket, "_leanlake/audit/"):
        lines += [json.loads(line) for line in s3.get_object(Bucket=bucket, Key=key)["Body"].read().splitlines()]
    return lines


def keys_all(s3, bucket: str, prefix: str) -> list[str]:
    return sorted(o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", []))


def run(policies: Path, s3, *, now=LATER, decisions=None, bucket=None) -> tuple[RunContext, dict, Ledger]:
    ctx = RunContext(policies=load_policies([policies]), s3=s3, now=now)
    ledger = Ledger(emit_metrics=False)
    report = sweep(ctx, ledger, decisions=decisions, buckets=[bucket] if bucket else None)
    return ctx, report, ledger


class Inject:
    """Fault injection on the real client: answer ``status``/``code`` instead of sending some requests
    (``when`` picks which), or run ``hook`` just before a request is sent (a concurrent writer)."""

    def __init__(self, s3, operation: str, *, status: int = 0, code: str = "", when=lambda params: True, hook=None):
        self.s3, self.operation, self.status, self.code, self.when, self.hook = s3, operation, status, code, when, hook
        self.hits = 0
        self._request = threading.local()  # deletions run on several threads: each request's own parameters
        s3.meta.events.register(f"before-parameter-build.s3.{operation}", self._before_call)
        s3.meta.events.register(f"before-send.s3.{operation}", self._before_send)

    def _before_call(self, params, **_):  # the API parameters, before serialisation
        self._request.params = params

    def _before_send(self, request, **_):
        from botocore.awsrequest import AWSResponse

        params = getattr(self._request, "params", None) or {}
        if not self.when(params):
            return None
        self.hits += 1
        if self.hook:
            self.hook(params)
            return None
        body = f"<Error><Code>{self.code}</Code><Message>injected</Message></Error>".encode()
        return AWSResponse(request.url, self.status, {}, _Raw(body))

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.s3.meta.events.unregister(f"before-parameter-build.s3.{self.operation}", self._before_call)
        self.s3.meta.events.unregister(f"before-send.s3.{self.operation}", self._before_send)


class _Raw:
    def __init__(self, data: bytes):
        self.data = data

    def stream(self, **_):
        yield self.data


# --- 2. expire deletes only what it decided on ------------------------------------------------------

def test_an_object_overwritten_after_planning_is_not_expired(s3, bucket, tmp_path):
    policies = policies_file(tmp_path, bucket)
    for name in ("a", "b"):
        s3.put_object(Bucket=bucket, Key=f"tmp/{name}.tmp", Body=b"old")
    ctx = RunContext(policies=load_policies([policies]), s3=s3, now=LATER)
    decisions = list(bucket_decisions(ctx, bucket, ctx.policies))  # what `apply` shows at its prompt
    s3.put_object(Bucket=bucket, Key="tmp/a.tmp", Body=b"new data written while apply waited")
    ledger = Ledger(emit_metrics=False)
    sweep(ctx, ledger, decisions=decisions)
    by_key = {o.decision.key: o for o in ledger.outcomes}
    assert by_key["tmp/a.tmp"].status == "skip" and "changed since it was decided" in by_key["tmp/a.tmp"].reason
    assert by_key["tmp/b.tmp"].status == "ok"
    assert keys(s3, bucket, "tmp/") == ["tmp/a.tmp"]
    assert s3.get_object(Bucket=bucket, Key="tmp/a.tmp")["Body"].read() == b"new data written while apply waited"
    statuses = {(a["key"], a["status"]) for a in audit_lines(s3, bucket)}
    assert ("tmp/b.tmp", "deleted") in statuses and ("tmp/a.tmp", "deleted") not in statuses


def test_an_inventory_row_without_etag_is_expired_only_if_it_is_the_object_judged(s3, bucket, tmp_path):
    policies = policies_file(tmp_path, bucket)
    s3.put_object(Bucket=bucket, Key="tmp/judged.tmp", Body=b"1")
    s3.put_object(Bucket=bucket, Key="tmp/replaced.tmp", Body=b"1")
    listed = {o["Key"]: o["LastModified"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]}
    refs = [ObjectRef(bucket, "tmp/judged.tmp", size=1, last_modified=listed["tmp/judged.tmp"]),
            ObjectRef(bucket, "tmp/replaced.tmp", size=1, last_modified=listed["tmp/replaced.tmp"] - timedelta(days=40))]
    ctx = RunContext(policies=load_policies([policies]), s3=s3, now=LATER)
    decisions = list(bucket_decisions(ctx, bucket, ctx.policies, batches=[Objects.from_refs(bucket, refs)]))
    ledger = Ledger(emit_metrics=False)
    sweep(ctx, ledger, decisions=decisions)
    reasons = {o.decision.key: (o.status, o.reason) for o in ledger.outcomes}
    assert reasons["tmp/judged.tmp"][0] == "ok"
    assert reasons["tmp/replaced.tmp"][0] == "skip" and "not the object whose age was judged" in reasons["tmp/replaced.tmp"][1]
    assert keys(s3, bucket, "tmp/") == ["tmp/replaced.tmp"]


def test_versions_all_keeps_every_version_of_a_key_overwritten_after_planning(s3, bucket, tmp_path):
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    policies = policies_file(tmp_path, bucket, versions="all")
    for body in (b"1", b"2"):
        s3.put_object(Bucket=bucket, Key="tmp/a.tmp", Body=body)
        s3.put_object(Bucket=bucket, Key="tmp/b.tmp", Body=body)
    ctx = RunContext(policies=load_policies([policies]), s3=s3, now=LATER)
    decisions = list(bucket_decisions(ctx, bucket, ctx.policies))
    s3.put_object(Bucket=bucket, Key="tmp/a.tmp", Body=b"3")
    sweep(ctx, Ledger(emit_metrics=False), decisions=decisions)
    versions = [v["Key"] for v in s3.list_object_versions(Bucket=bucket, Prefix="tmp/").get("Versions", [])]
    assert sorted(versions) == ["tmp/a.tmp"] * 3  # all of a's versions kept; every version of b gone
    assert "DeleteMarkers" not in s3.list_object_versions(Bucket=bucket, Prefix="tmp/")


# --- 3. the check-then-delete race on a converted source ---------------------------------------------

def test_a_source_overwritten_between_the_check_and_the_delete_is_not_deleted(s3, bucket, tmp_path):
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    policies = load_policies([policies_file(tmp_path, bucket)])
    s3.put_object(Bucket=bucket, Key="raw/t.csv", Body=csv_body())
    other = boto3.client("s3")
    newer = csv_body(seed=10_000)
    racer = lambda params: other.put_object(Bucket=bucket, Key="raw/t.csv", Body=newer)  # noqa: E731
    with Inject(s3, "DeleteObject", when=lambda p: p.get("Key") == "raw/t.csv", hook=racer) as race:
        [outcome] = handle_uploads([ObjectRef(bucket, "raw/t.csv")], RunContext(policies=policies, s3=s3), Ledger(emit_metrics=False))
    assert race.hits == 1
    assert outcome.status == "ok" and "changed since it was decided" in outcome.reason
    assert s3.get_object(Bucket=bucket, Key="raw/t.csv")["Body"].read() == newer  # no delete marker hides it
    assert "DeleteMarkers" not in s3.list_object_versions(Bucket=bucket, Prefix="raw/")
    assert keys(s3, bucket, "raw/") == ["raw/t.csv", "raw/t.parquet"]


# --- 5. Object Lock checks fail closed ------------------------------------------------------------------

@pytest.fixture
def locked_lake(s3, bucket):
    name = bucket + "-lock"
    s3.create_bucket(Bucket=name, ObjectLockEnabledForBucket=True)
    s3.put_object(Bucket=name, Key="tmp/free.tmp", Body=b"f")
    s3.put_object(Bucket=name, Key="tmp/compliance.tmp", Body=b"c", ObjectLockMode="COMPLIANCE",
                  ObjectLockRetainUntilDate=datetime.now(timezone.utc) + timedelta(days=365))
    s3.put_object(Bucket=name, Key="tmp/held.tmp", Body=b"h", ObjectLockLegalHoldStatus="ON")
    s3.put_object(Bucket=name, Key="raw/free.csv", Body=csv_body())
    s3.put_object(Bucket=name, Key="raw/held.csv", Body=csv_body(seed=5), ObjectLockLegalHoldStatus="ON")
    return name


def visible_and_unmarked(s3, bucket: str) -> tuple[list[str], list[str]]:
    listing = s3.list_object_versions(Bucket=bucket)
    return keys(s3, bucket), sorted(m["Key"] for m in listing.get("DeleteMarkers", []))


@pytest.mark.parametrize("status,code", [(403, "AccessDenied"), (503, "ServiceUnavailable")])
def test_unreadable_lock_configuration_deletes_nothing_and_fails_the_run(s3, locked_lake, tmp_path, status, code):
    policies = policies_file(tmp_path, locked_lake)
    before = visible_and_unmarked(s3, locked_lake)
    once = boto3.client("s3", config=Config(retries={"max_attempts": 1}))  # no retry: the 503 stays a failure
    with Inject(once, "GetObjectLockConfiguration", status=status, code=code):
        ctx, report, ledger = run(policies, once)
    assert visible_and_unmarked(s3, locked_lake) == before
    assert report["buckets"][locked_lake]["deleted"] == 0 and "unreadable" in report["buckets"][locked_lake]["deletions_refused"]
    assert any(o.status == "error" for o in ledger.outcomes)
    assert not [o for o in ledger.outcomes if o.status == "ok" and o.decision.action in ("expire", "convert")]
    assert "raw/free.parquet" not in keys(s3, locked_lake)  # not converted: its source could not be deleted


def test_apply_exits_1_when_lock_state_cannot_be_read(s3, locked_lake, tmp_path):
    policies = policies_file(tmp_path, locked_lake)
    before = visible_and_unmarked(s3, locked_lake)
    with Inject(s3, "GetObjectLockConfiguration", status=403, code="AccessDenied"):
        result = CliRunner().invoke(app, ["apply", "--policies", str(policies), "--as-of", LATER.date().isoformat(), "--yes", "--json"])
    assert result.exit_code == 1, result.stdout
    assert visible_and_unmarked(s3, locked_lake) == before


def test_an_unreadable_retention_header_stops_the_bucket_deleting_from_then_on(s3, locked_lake, tmp_path):
    policies = policies_file(tmp_path, locked_lake)
    with Inject(s3, "HeadObject", status=403, code="AccessDenied", when=lambda p: p.get("Key") == "tmp/compliance.tmp"):
        ctx, report, ledger = run(policies, s3)
    # raw/ is swept before tmp/: its free source went before the failure; after it, tmp/free.tmp stays too
    visible, markers = visible_and_unmarked(s3, locked_lake)
    assert markers == ["raw/free.csv"] and report["buckets"][locked_lake]["deleted"] == 1
    assert {"tmp/compliance.tmp", "tmp/free.tmp", "tmp/held.tmp", "raw/held.csv"} <= set(visible)
    assert any(o.status == "error" and "unreadable" in o.reason for o in ledger.outcomes)


def test_locked_and_held_objects_keep_no_delete_marker_when_lock_state_is_readable(s3, locked_lake, tmp_path):
    policies = policies_file(tmp_path, locked_lake)
    run(policies, s3)
    visible, markers = visible_and_unmarked(s3, locked_lake)
    assert visible == ["raw/free.parquet", "raw/held.csv", "tmp/compliance.tmp", "tmp/held.tmp"]
    assert markers == ["raw/free.csv", "tmp/free.tmp"]


# --- 6. the cap counts every deletion --------------------------------------------------------------------

def test_the_cap_counts_every_version(s3, bucket, tmp_path):
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    for key in ("tmp/a.tmp", "tmp/b.tmp", "tmp/c.tmp"):
        for body in (b"1", b"2", b"3"):
            s3.put_object(Bucket=bucket, Key=key, Body=body)
    s3.put_object(Bucket=bucket, Key="tmp/many.tmp", Body=b"0")
    for body in (b"1", b"2", b"3", b"4", b"5", b"6", b"7"):
        s3.put_object(Bucket=bucket, Key="tmp/many.tmp", Body=body)
    policies = policies_file(tmp_path, bucket, versions="all", max_deletions=7)
    _, report, ledger = run(policies, s3)
    assert report["buckets"][bucket]["deleted"] <= 7 and report["buckets"][bucket]["deletion_cap_reached"]
    remaining = [v["Key"] for v in s3.list_object_versions(Bucket=bucket, Prefix="tmp/").get("Versions", [])]
    assert len(remaining) == 3 * 3 + 8 - report["buckets"][bucket]["deleted"]
    assert remaining.count("tmp/many.tmp") == 8  # more versions than the cap: not started
    deleted = [a for a in audit_lines(s3, bucket) if a["status"] == "deleted"]
    assert len(deleted) == report["buckets"][bucket]["deleted"] == 6  # two whole keys of three versions
    assert any("more than the deletion cap" in o.reason for o in ledger.outcomes if o.decision.key == "tmp/many.tmp")


def test_the_cap_counts_converted_sources_and_audits_them(s3, bucket, tmp_path):
    for i in range(4):
        s3.put_object(Bucket=bucket, Key=f"raw/{i}.csv", Body=csv_body(seed=i))
    for i in range(3):
        s3.put_object(Bucket=bucket, Key=f"tmp/{i}.tmp", Body=b"x")
    policies = policies_file(tmp_path, bucket, max_deletions=3)
    _, report, ledger = run(policies, s3)
    assert report["buckets"][bucket]["deleted"] == 3
    sources = keys(s3, bucket, "raw/")
    csvs = [k for k in sources if k.endswith(".csv")]
    expired = 3 - len(keys(s3, bucket, "tmp/"))
    assert (4 - len(csvs)) + expired == 3
    for csv in csvs:  # a source that was kept was not converted either: nothing half done
        assert csv.replace(".csv", ".parquet") not in sources
    deleted = sorted(a["key"] for a in audit_lines(s3, bucket) if a["status"] == "deleted")
    assert len(deleted) == 3 and {a["action"] for a in audit_lines(s3, bucket)} <= {"convert", "expire"}


# --- 11. plan equals apply on an Object Lock bucket --------------------------------------------------

def test_plan_and_apply_agree_on_every_object_of_an_object_lock_bucket(s3, locked_lake, tmp_path):
    policies = policies_file(tmp_path, locked_lake)
    invoke = lambda *a: CliRunner().invoke(app, [*a, "--policies", str(policies), "--as-of", LATER.date().isoformat(), "--json"])  # noqa: E731
    planned = {(d["key"], d["policy"]): d for d in json.loads(invoke("plan").stdout)["decisions"] if d["key"]}
    applied = json.loads(invoke("apply", "--yes").stdout)
    outcomes = {(o["key"], o["policy"]): o for o in applied["outcomes"] if o["key"]}
    assert planned.keys() == outcomes.keys()
    for where, decision in planned.items():
        outcome = outcomes[where]
        assert outcome["action"] == decision["action"], where
        assert (outcome["status"] == "ok") == (decision["action"] != "skip"), (where, outcome)
    assert planned[("tmp/held.tmp", "scratch")]["action"] == "skip"
    assert planned[("tmp/compliance.tmp", "scratch")]["action"] == "skip"
    held = planned[("raw/held.csv", "tables")]
    assert held["action"] == "skip" and "would stay" in held["reason"] and held["monthly_usd_saved"] == 0
    visible, markers = visible_and_unmarked(s3, locked_lake)
    assert {"tmp/compliance.tmp", "tmp/held.tmp", "raw/held.csv"} <= set(visible)
    assert "raw/held.parquet" not in visible and not {"tmp/compliance.tmp", "tmp/held.tmp", "raw/held.csv"} & set(markers)


def test_an_upload_of_a_held_source_is_not_converted_when_the_source_could_not_be_deleted(s3, locked_lake, tmp_path):
    policies = load_policies([policies_file(tmp_path, locked_lake)])
    [outcome] = handle_uploads([ObjectRef(locked_lake, "raw/held.csv")], RunContext(policies=policies, s3=s3), Ledger(emit_metrics=False))
    assert outcome.status == "skip" and "under legal hold" in outcome.reason
    assert "raw/held.parquet" not in keys(s3, locked_lake)


# --- the audit comes first; versions go oldest first ------------------------------------------------

def test_nothing_is_deleted_when_its_audit_record_cannot_be_written(s3, bucket, tmp_path):
    policies = policies_file(tmp_path, bucket)
    for i in range(3):
        s3.put_object(Bucket=bucket, Key=f"tmp/{i}.tmp", Body=b"x")
    with Inject(s3, "PutObject", status=403, code="AccessDenied", when=lambda p: p.get("Key", "").startswith("_leanlake/audit/")):
        _, report, ledger = run(policies, s3)
    assert keys(s3, bucket, "tmp/") == ["tmp/0.tmp", "tmp/1.tmp", "tmp/2.tmp"]
    assert report["buckets"][bucket]["deleted"] == 0
    assert [o.status for o in ledger.outcomes if o.decision.key] == ["error"] * 3
    assert all("audit" in o.reason and "not written" in o.reason for o in ledger.outcomes if o.decision.key)


def test_a_current_version_is_never_deleted_before_its_older_versions(s3, bucket, tmp_path):
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    first = s3.put_object(Bucket=bucket, Key="tmp/a.tmp", Body=b"1")["VersionId"]
    s3.put_object(Bucket=bucket, Key="tmp/a.tmp", Body=b"2")
    s3.put_object(Bucket=bucket, Key="tmp/a.tmp", Body=b"3")
    policies = policies_file(tmp_path, bucket, versions="all")
    with Inject(s3, "DeleteObject", status=403, code="AccessDenied", when=lambda p: p.get("VersionId") == first):
        _, report, ledger = run(policies, s3)
    # the oldest version could not go: the current one stays current, so no older data resurfaces
    assert s3.get_object(Bucket=bucket, Key="tmp/a.tmp")["Body"].read() == b"3"
    assert report["buckets"][bucket]["deleted"] == 1
    statuses = sorted(o.status for o in ledger.outcomes if o.decision.key)
    assert statuses == ["error", "ok", "skip"]
