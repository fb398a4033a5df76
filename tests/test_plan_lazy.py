"""Planning's cheaper shapes change nothing: lazy reasons read as the eager ones, tuple estimates equal the
Estimate functions, and apply streams: a one-shot iterator over several buckets acts as a list does, and a
second pass acts only on what the first one confirmed."""

from __future__ import annotations

import json
import textwrap
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from typer.testing import CliRunner

from chalicelib import economics as econ
from chalicelib import ledger as ledger_module
from chalicelib.context import RunContext
from chalicelib.decision import Decision
from chalicelib.economics.core import _class_change, _conversion, _deletion
from chalicelib.economics.figures import CCF
from chalicelib.ledger import Ledger
from chalicelib.plan import plan_objects, totals
from chalicelib.policy import PolicySet, load_policies
from chalicelib.refs import ObjectRef
from chalicelib.sweep import bucket_decisions, sweep
from leanlake.applying import UNCONFIRMED, only_confirmed, preview
from leanlake.cli import app

NOW = datetime(2026, 11, 27, tzinfo=timezone.utc)
POLICIES = [
    {"name": "tables", "bucket": "lake", "filters": {"prefix": "raw/", "suffix": ".csv"},
     "actions": [{"convert": {"destination": "curated/{rel_dir}{stem}.parquet", "source": "delete"}}]},
    {"name": "logs", "bucket": "lake", "filters": {"prefix": "logs/"}, "actions": [{"recompress": {"source": "delete"}}]},
    {"name": "checkpoints", "bucket": "lake", "filters": {"prefix": "checkpoints/", "suffix": ".pt"},
     "actions": [{"transition": [{"days": 30, "class": "GLACIER_IR"}]}, {"expire": {"days": 400}}]},
    {"name": "cold", "bucket": "lake", "filters": {"prefix": "cold/"}, "actions": [{"storage_class": "INTELLIGENT_TIERING"}]},
]


def _refs() -> list[ObjectRef]:
    return [ObjectRef("lake", (f"raw/{i}/a.csv", f"logs/{i}.log.gz", f"checkpoints/r/{i}.pt", f"cold/{i}.bin")[i % 4],
                      size=100 + i * 7919 * 1024,
                      etag=f"e{i}", storage_class=("STANDARD", "STANDARD_IA", "GLACIER_IR")[i % 3],
                      last_modified=NOW - timedelta(days=(i * 37) % 900, seconds=i)) for i in range(80)]


def test_a_lazy_reason_reads_like_the_eager_one_and_compares_equal():
    lazy = Decision("b", "k", "p", "skip", lambda: f"{10:.0f} days old")
    eager = Decision("b", "k", "p", "skip", "10 days old")
    assert lazy.reason == "10 days old" and lazy == eager and hash(lazy) == hash(eager)
    assert lazy.as_dict() == eager.as_dict() and repr(lazy) == repr(eager)
    assert Decision("b", "k", "p", "skip", "other") != eager


def test_planned_reasons_are_written_when_read_and_say_what_they_said_before():
    decisions = list(plan_objects(_refs(), PolicySet.from_dicts(POLICIES), NOW))
    lazy = [d for d in decisions if not isinstance(d._reason, str)]
    assert {d.action for d in lazy} >= {"convert", "recompress", "expire", "skip"}  # the per-object reasons are deferred
    convert = next(d for d in decisions if d.action == "convert")
    assert convert.reason == (f"convert to {convert.params.destination}: output assumed 20% of {convert.ref.size:,} B "
                              f"(ASSUMPTION: {convert.params.assumption}); saves ${convert.monthly_usd_saved:.6f} and "
                              f"{convert.monthly_kgco2e_saved:.6f} kg CO2e a month")
    assert isinstance(convert._reason, str)  # written once, then kept
    reasons = {d.action: d.reason for d in decisions}
    assert reasons["expire"].endswith("older than 400: expire (marker)")
    assert any(d.reason.startswith("STANDARD → INTELLIGENT_TIERING not worth it") or "→ INTELLIGENT_TIERING: net $" in d.reason
               for d in decisions if d.policy == "cold")


def test_the_planners_figures_are_the_estimate_functions_figures():
    for d in plan_objects(_refs(), PolicySet.from_dicts(POLICIES), NOW):
        ref, age = d.ref, (NOW - d.ref.last_modified).total_seconds() / 86400
        if d.action in ("convert", "recompress"):
            est = econ.conversion(ref.size, ref.size * d.params.output_ratio, ref.effective_storage_class, "us-east-1",
                                  source="delete", age_days=age)
        elif d.action == "expire":
            est = econ.deletion(ref.size, ref.effective_storage_class, "us-east-1", age)
        elif d.action == "storage_class":
            expires_in = 400 - age if d.policy == "checkpoints" else None
            est = econ.class_change(ref.size, ref.effective_storage_class, d.params.storage_class, "us-east-1",
                                    age_days=age, expires_in_days=expires_in)
        else:
            continue
        assert (d.monthly_usd_saved, d.monthly_kgco2e_saved, d.one_off_usd) == (est.monthly_usd_saved, est.monthly_kgco2e_saved,
                                                                               est.one_off_usd), d


def test_tuple_estimates_equal_the_estimates():
    assert econ.conversion(5e6, 1e6, "STANDARD_IA", "eu-west-1", source="keep", age_days=3) == \
        econ.Estimate(*_conversion(5e6, 1e6, "STANDARD_IA", "eu-west-1", 1, 1, "keep", "STANDARD", 3, None, None, None, None, CCF))
    assert econ.class_change(3e6, "STANDARD", "GLACIER_IR", age_days=5, expires_in_days=40) == \
        econ.Estimate(*_class_change(3e6, "STANDARD", "GLACIER_IR", "us-east-1", 5, 40, 1, "copy", CCF))
    assert econ.deletion(2e6, "GLACIER_IR", age_days=10) == econ.Estimate(*_deletion(2e6, "GLACIER_IR", "us-east-1", 10, 1, CCF))


# --- apply streams -----------------------------------------------------------------------------------------


def _two_buckets(s3, bucket: str, tmp_path: Path) -> tuple[RunContext, list[str]]:
    second = f"{bucket}-b"
    s3.create_bucket(Bucket=second)
    for name in (bucket, second):
        for i in range(6):
            s3.put_object(Bucket=name, Key=f"tmp/{i}.tmp", Body=b"x" * (i + 1))
        s3.put_object(Bucket=name, Key="keep/a.txt", Body=b"k")
    path = tmp_path / "p.yaml"
    path.write_text(textwrap.dedent(f"""\
        policies:
          - name: scratch
            bucket: [{bucket}, {second}]
            filters: {{prefix: tmp/, suffix: .tmp}}
            actions: [{{expire: {{days: 7}}}}]
        """))
    later = datetime.now(timezone.utc) + timedelta(days=30)
    return RunContext(policies=load_policies([path]), s3=s3, now=later), [bucket, second]


def _outcomes(ctx: RunContext, decisions) -> tuple[list[tuple], dict]:
    ledger = Ledger(emit_metrics=False)
    report = sweep(ctx, ledger, decisions=decisions)
    return sorted((o.decision.bucket, o.decision.key or "", o.status, o.reason) for o in ledger.outcomes), report


def _remaining(s3, name: str) -> list[str]:
    """The bucket's keys but leanlake's audit trail."""
    return sorted(o["Key"] for o in s3.list_objects_v2(Bucket=name).get("Contents", []) if not o["Key"].startswith("_leanlake/"))


def test_a_one_shot_iterator_over_several_buckets_acts_like_a_list(s3, bucket, tmp_path):
    ctx, names = _two_buckets(s3, bucket, tmp_path)
    ctx.dry_run = True
    as_list = [d for name in names for d in bucket_decisions(ctx, name, ctx.policies)]
    listed, listed_report = _outcomes(ctx, as_list)
    one_shot = (d for name in names for d in bucket_decisions(ctx, name, ctx.policies))
    streamed, streamed_report = _outcomes(ctx, one_shot)
    assert streamed == listed and len([o for o in streamed if o[2] == "skip" and "would delete" in o[3]]) == 12
    assert list(streamed_report["buckets"]) == names == list(listed_report["buckets"])
    ctx.dry_run = False
    ctx.deletions.clear()
    _, report = _outcomes(ctx, (d for name in names for d in bucket_decisions(ctx, name, ctx.policies)))
    assert [report["buckets"][n]["deleted"] for n in names] == [6, 6]
    assert _remaining(s3, names[0]) == _remaining(s3, names[1]) == ["keep/a.txt"]


def test_the_second_pass_acts_only_on_what_was_confirmed(s3, bucket, tmp_path):
    ctx, names = _two_buckets(s3, bucket, tmp_path)
    first = preview(d for name in names for d in bucket_decisions(ctx, name, ctx.policies))
    assert first.count == 12 and first.acting == 12 and totals(first.shown)["overall"]["actions"] == {"expire": 12}
    s3.put_object(Bucket=names[0], Key="tmp/0.tmp", Body=b"changed after the prompt")
    s3.put_object(Bucket=names[1], Key="tmp/new.tmp", Body=b"appeared after the prompt")
    ctx.deletions.clear()
    outcomes, report = _outcomes(ctx, only_confirmed((d for name in names for d in bucket_decisions(ctx, name, ctx.policies)),
                                                     first.fingerprints))
    unconfirmed = [(b, k) for b, k, status, reason in outcomes if reason == UNCONFIRMED]
    assert unconfirmed == [(names[0], "tmp/0.tmp"), (names[1], "tmp/new.tmp")]
    assert [report["buckets"][n]["deleted"] for n in names] == [5, 6]
    assert _remaining(s3, names[0]) == ["keep/a.txt", "tmp/0.tmp"]
    assert _remaining(s3, names[1]) == ["keep/a.txt", "tmp/new.tmp"]


@pytest.mark.parametrize("mode", ["--dry-run", "--yes"])
def test_apply_json_is_one_document_of_every_decision_and_outcome(s3, bucket, tmp_path, mode, monkeypatch):
    monkeypatch.setattr(ledger_module, "_emf_to_stderr", True)  # as the leanlake command does: stdout holds one document
    ctx, names = _two_buckets(s3, bucket, tmp_path)
    as_of = (datetime.now(timezone.utc) + timedelta(days=30)).date().isoformat()
    path = tmp_path / "p.yaml"
    result = CliRunner().invoke(app, ["apply", "--policies", str(path), "--as-of", as_of, mode, "--json"])
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert set(document) == {"decisions", "totals", "outcomes", "report"}
    assert len(document["decisions"]) == document["totals"]["overall"]["decisions"] == 12
    assert {(d["bucket"], d["action"]) for d in document["decisions"]} == {(n, "expire") for n in names}
    statuses = {o["status"] for o in document["outcomes"]}
    assert statuses == ({"skip"} if mode == "--dry-run" else {"ok"}) and len(document["outcomes"]) == 12
    assert [document["report"]["buckets"][n]["deleted"] for n in names] == ([0, 0] if mode == "--dry-run" else [6, 6])
