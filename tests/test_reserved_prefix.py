"""leanlake's audit trail under _leanlake/ is never a target: not of a Lifecycle rule, not of an expiry, not of an output.

On the moto server (conftest): Lifecycle is applied and the sweep run through ``leanlake apply``, as an
operator would.
"""

from __future__ import annotations

import json
import textwrap
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from typer.testing import CliRunner

from chalicelib import ledger as ledger_module
from chalicelib import s3 as s3util
from leanlake.cli import app
from chalicelib.context import RunContext
from chalicelib.decision import Decision
from chalicelib.actions.writer import WriteParams
from chalicelib.pipeline import act
from chalicelib.policy import load_policies

AS_OF = (datetime.now(timezone.utc) + timedelta(days=30)).date().isoformat()
#: What a leanlake before this fix wrote for a policy without a prefix: it would expire the audit trail too.
STALE_RULE = {"ID": "leanlake-everything-1", "Status": "Enabled", "Filter": {"Prefix": ""}, "Expiration": {"Days": 7}}
USER_RULE = {"ID": "users-own-rule", "Status": "Enabled", "Filter": {"Prefix": "userlogs/"}, "Expiration": {"Days": 90}}
#: Objects acting on which would be acting on the audit trail (a past run's audit, and one that is not JSON).
AUDIT_KEYS = ["_leanlake/audit/2020/01/01/000000-oldrun.jsonl", "_leanlake/audit/x.csv"]


@pytest.fixture(autouse=True)
def emf_to_stderr():
    ledger_module.metrics_to_stderr()  # as the leanlake command does: stdout holds only the JSON result
    yield
    ledger_module.metrics_to_stderr(False)


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "policies.yaml"
    path.write_text(textwrap.dedent(text))
    return path


def apply(policies: Path) -> dict:
    result = CliRunner().invoke(app, ["apply", "--policies", str(policies), "--as-of", AS_OF, "--yes", "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def keys(s3, bucket: str, prefix: str = "") -> list[str]:
    return sorted(o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", []))


def test_an_expire_policy_without_prefix_expires_everything_but_the_audit_trail(s3, bucket, tmp_path):
    for key in AUDIT_KEYS:
        s3.put_object(Bucket=bucket, Key=key, Body=b'{"key": "gone.csv", "status": "deleted"}\n')
    for key in ("a.csv", "logs/b.log", "_lean-other/c.bin", "_x"):
        s3.put_object(Bucket=bucket, Key=key, Body=b"old data")
    s3.put_bucket_lifecycle_configuration(Bucket=bucket, LifecycleConfiguration={"Rules": [USER_RULE, STALE_RULE]})
    users_rule = s3.get_bucket_lifecycle_configuration(Bucket=bucket)["Rules"][0]  # as S3 stores it
    policies = write(tmp_path, f"""\
        policies:
          - name: everything
            bucket: {bucket}
            actions: [{{expire: {{days: 7}}}}, {{abort_multipart: 3}}]
        """)

    applied = apply(policies)

    rules = s3.get_bucket_lifecycle_configuration(Bucket=bucket)["Rules"]
    # The stale rule is replaced by an abort-multipart rule of the same ID; nothing expires or transitions.
    assert rules == [users_rule, {"ID": "leanlake-everything-1", "Status": "Enabled", "Filter": {"Prefix": ""},
                                  "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 3}}]
    expired = sorted(o["key"] for o in applied["outcomes"] if o["action"] == "expire" and o["status"] == "ok")
    assert expired == ["_lean-other/c.bin", "_x", "a.csv", "logs/b.log"]
    assert not [o for o in applied["outcomes"] if (o["key"] or "").startswith("_leanlake/")]
    [run_audit] = [k for k in keys(s3, bucket) if k not in AUDIT_KEYS]
    assert run_audit.startswith("_leanlake/audit/")  # this run's own record of the four deletions
    assert keys(s3, bucket) == sorted(AUDIT_KEYS + [run_audit])
    audit = [json.loads(line) for line in s3.get_object(Bucket=bucket, Key=run_audit)["Body"].read().splitlines()]
    assert sorted(a["key"] for a in audit) == expired


def test_plan_says_the_sweep_expires_what_lifecycle_cannot_keep_off_the_audit_trail(s3, bucket, tmp_path):
    s3.put_object(Bucket=bucket, Key="a.csv", Body=b"old data")
    s3.put_object(Bucket=bucket, Key=AUDIT_KEYS[0], Body=b"{}\n")
    policies = write(tmp_path, f"""\
        policies:
          - name: underscored
            bucket: {bucket}
            filters: {{prefix: ["_", "a"]}}
            actions: [{{expire: {{days: 7}}}}]
        """)
    result = CliRunner().invoke(app, ["plan", "--policies", str(policies), "--as-of", AS_OF, "--json"])
    assert result.exit_code == 0, result.output
    decisions = {d["key"]: (d["action"], d["reason"]) for d in json.loads(result.stdout)["decisions"]}
    assert decisions[None] == ("lifecycle", "Lifecycle rule(s) none; transition/expire run in the sweep "
                                            "(Lifecycle can't exclude _leanlake/)")
    assert decisions["a.csv"][0] == "expire"
    assert set(decisions) == {None, "a.csv"}
    result = CliRunner().invoke(app, ["validate", str(policies)])
    assert result.exit_code == 0 and "warning: policy 'underscored': expire run in the sweep" in result.output


def test_a_destination_rendered_under_the_reserved_prefix_is_skipped_and_the_source_kept(s3, bucket, tmp_path):
    csv = b"id,kind\n" + b"".join(b"%d,a\n" % i for i in range(2000))
    s3.put_object(Bucket=bucket, Key="raw/_leanlake/audit/x.csv", Body=csv)
    s3.put_object(Bucket=bucket, Key="raw/ok.csv", Body=csv)
    before = s3.head_object(Bucket=bucket, Key="raw/_leanlake/audit/x.csv")["ETag"]
    policies = write(tmp_path, f"""\
        policies:
          - name: tables
            bucket: {bucket}
            filters: {{prefix: raw/, suffix: .csv}}
            actions: [{{convert: {{destination: "{{rel_dir}}{{stem}}.parquet", source: delete}}}}]
        """)

    applied = apply(policies)

    outcome = {o["key"]: o for o in applied["outcomes"] if o["key"]}
    assert outcome["raw/_leanlake/audit/x.csv"]["status"] == "skip"
    assert outcome["raw/_leanlake/audit/x.csv"]["reason"] == (
        "destination _leanlake/audit/x.parquet is under _leanlake/, which is reserved for leanlake")
    assert outcome["raw/ok.csv"]["status"] == "ok"
    assert s3.head_object(Bucket=bucket, Key="raw/_leanlake/audit/x.csv")["ETag"] == before
    assert "ok.parquet" in keys(s3, bucket)
    # Under _leanlake/ there is only leanlake's own audit of deleting raw/ok.csv.
    for key in keys(s3, bucket, "_leanlake/"):
        head = s3util.head(s3, bucket, key)
        assert head is not None and head.marker == "audit", key


def test_the_executor_refuses_a_reserved_destination_too(s3, bucket, tmp_path):
    """A decision that slipped past plan (or was made by hand) still writes nothing under _leanlake/."""
    s3.put_object(Bucket=bucket, Key="raw/a.csv", Body=b"id\n" + b"1\n" * 4000)
    before = s3.head_object(Bucket=bucket, Key="raw/a.csv")["ETag"]
    policies = load_policies([write(tmp_path, f"""\
        policies:
          - name: tables
            bucket: {bucket}
            filters: {{prefix: raw/, suffix: .csv}}
            actions: [{{convert: {{source: delete}}}}]
        """)])
    decision = Decision(bucket, "raw/a.csv", "tables", "convert", "by hand", params=WriteParams("_leanlake/audit/a.parquet", "delete"),
                        by=policies.named("tables").policy.actions[0])
    [outcome] = act(decision, RunContext(policies=policies, s3=s3))
    assert (outcome.status, outcome.reason) == (
        "error", "destination _leanlake/audit/a.parquet is under _leanlake/, reserved for leanlake; not written")
    assert keys(s3, bucket) == ["raw/a.csv"]
    assert s3.head_object(Bucket=bucket, Key="raw/a.csv")["ETag"] == before
