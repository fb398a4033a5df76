"""Every action's saving reaches the ledger: a sweep on the moto server publishes MonthlyUsdSaved and
MonthlyKgCO2eSaved (EMF) per bucket and policy, and again per bucket, policy and action; its totals add
them up, and ``leanlake report`` reads back what CloudWatch (moto's, on loopback) was given, each saving
once per policy row and once per action row."""

from __future__ import annotations

import io
import json
import textwrap
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import boto3
import pytest

from chalicelib import economics as econ
from chalicelib.context import RunContext
from chalicelib.ledger import Ledger
from chalicelib.policy import load_policies
from chalicelib.report import savings, savings_by_action
from chalicelib.sweep import sweep

MiB = 2**20
LATER = datetime.now(timezone.utc) + timedelta(days=30)
REGION = "us-east-1"


def csv_body(rows: int = 20_000) -> bytes:
    """A CSV that Parquet makes much smaller."""
    return ("id,kind\n" + "".join(f"{i},{['alpha', 'beta'][i % 2]}\n" for i in range(rows))).encode()


def policies_file(tmp_path: Path, bucket: str) -> Path:
    """An expiration, a class change and a conversion, each swept (suffix filters keep ``expire`` out of Lifecycle)."""
    path = tmp_path / "policies.yaml"
    path.write_text(f"settings:\n  region: {REGION}\n" + textwrap.dedent(f"""\
        policies:
          - name: scratch
            bucket: {bucket}
            filters: {{prefix: tmp/, suffix: .tmp}}
            actions: [{{expire: {{days: 7}}}}]
          - name: features
            bucket: {bucket}
            filters: {{prefix: features/}}
            actions: [{{storage_class: ONEZONE_IA}}]
          - name: tables
            bucket: {bucket}
            filters: {{prefix: raw/, suffix: .csv}}
            actions: [{{convert: {{source: delete}}}}]
        """))
    return path


@pytest.fixture
def seeded(s3, bucket):
    """One object for each action: 1 MiB to expire, 4 MiB to move to ONEZONE_IA, a CSV to convert."""
    s3.put_object(Bucket=bucket, Key="tmp/a.tmp", Body=b"x" * MiB)
    s3.put_object(Bucket=bucket, Key="features/big.bin", Body=b"f" * (4 * MiB))
    s3.put_object(Bucket=bucket, Key="raw/t.csv", Body=csv_body())
    return bucket


def emf_documents(text: str) -> list[dict[str, Any]]:
    """The EMF documents (one JSON object a line) among the lines of ``text``."""
    return [doc for doc in map(json.loads, filter(None, text.splitlines())) if "_aws" in doc]


def value(doc: dict[str, Any], metric: str) -> float:
    """A metric's value in an EMF document (Powertools writes each as a list of values)."""
    found = doc[metric]
    return sum(found) if isinstance(found, list) else found


def saved_by_policy(docs: list[dict[str, Any]], bucket: str) -> dict[str, tuple[float, float]]:
    """policy → (MonthlyUsdSaved, MonthlyKgCO2eSaved) of ``bucket``'s per-(bucket, policy) EMF documents."""
    return {doc["policy"]: (value(doc, "MonthlyUsdSaved"), value(doc, "MonthlyKgCO2eSaved"))
            for doc in docs if doc.get("bucket") == bucket and "action" not in doc}


def saved_by_action(docs: list[dict[str, Any]], bucket: str) -> dict[tuple[str, str], tuple[float, float]]:
    """(policy, action) → (MonthlyUsdSaved, MonthlyKgCO2eSaved) of ``bucket``'s per-action EMF documents."""
    return {(doc["policy"], doc["action"]): (value(doc, "MonthlyUsdSaved"), value(doc, "MonthlyKgCO2eSaved"))
            for doc in docs if doc.get("bucket") == bucket and "action" in doc}


def run_sweep(tmp_path: Path, s3: Any, bucket: str, *, dry_run: bool = False) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Sweep ``bucket`` 30 days from now; return the sweep's report and the EMF documents its ledger emitted."""
    stream = io.StringIO()
    ctx = RunContext(policies=load_policies([policies_file(tmp_path, bucket)]), s3=s3, now=LATER, dry_run=dry_run)
    ledger = Ledger(metrics_stream=stream)
    report = sweep(ctx, ledger, buckets=[bucket])
    ledger.flush()
    return report, emf_documents(stream.getvalue())


def publish(cloudwatch: Any, doc: dict[str, Any]) -> None:
    """Put an EMF document's metrics into CloudWatch, as CloudWatch Logs does with the Lambda's EMF output."""
    (directive,) = doc["_aws"]["CloudWatchMetrics"]
    (names,) = directive["Dimensions"]
    dimensions = [{"Name": name, "Value": doc[name]} for name in names]
    cloudwatch.put_metric_data(Namespace=directive["Namespace"], MetricData=[
        {"MetricName": m["Name"], "Dimensions": dimensions, "Value": value(doc, m["Name"]), "Unit": m["Unit"]}
        for m in directive["Metrics"]])


def test_a_sweep_publishes_what_each_action_saves(s3, seeded, tmp_path):
    report, docs = run_sweep(tmp_path, s3, seeded)
    saved = saved_by_policy(docs, seeded)
    output = s3.head_object(Bucket=seeded, Key="raw/t.parquet")["ContentLength"]
    expired = econ.deletion(MiB, "STANDARD", REGION)
    moved = econ.class_change(4 * MiB, "STANDARD", "ONEZONE_IA", REGION)
    converted = econ.conversion(len(csv_body()), output, "STANDARD", REGION, source="delete")
    assert saved["scratch"] == pytest.approx((expired.monthly_usd_saved, expired.monthly_kgco2e_saved))
    assert saved["features"] == pytest.approx((moved.monthly_usd_saved, moved.monthly_kgco2e_saved))
    assert saved["tables"] == pytest.approx((converted.monthly_usd_saved, converted.monthly_kgco2e_saved))
    assert all(usd > 0 and kg > 0 for usd, kg in saved.values())  # ONEZONE_IA keeps 2 copies, not 6: CO2e too
    units = {m["Name"]: m["Unit"] for doc in docs for m in doc["_aws"]["CloudWatchMetrics"][0]["Metrics"]}
    assert units["MonthlyUsdSaved"] == units["MonthlyKgCO2eSaved"] == "None"
    totals = report["totals"]
    assert (totals["objects_expired"], totals["objects_reclassed"], totals["objects_converted"]) == (1, 1, 1)
    assert totals["monthly_usd_saved"] == pytest.approx(sum(usd for usd, _ in saved.values()), abs=1e-6)
    assert totals["monthly_kgco2e_saved"] == pytest.approx(sum(kg for _, kg in saved.values()), abs=1e-9)


def test_a_conversion_is_priced_from_its_real_output_not_the_planned_one(s3, seeded, tmp_path):
    ledger = Ledger(emit_metrics=False)
    ctx = RunContext(policies=load_policies([policies_file(tmp_path, seeded)]), s3=s3, now=LATER)
    sweep(ctx, ledger, buckets=[seeded])
    [outcome] = [o for o in ledger.outcomes if o.decision.key == "raw/t.csv"]
    real = econ.conversion(outcome.bytes_before, outcome.bytes_after, "STANDARD", REGION, source="delete")
    assert outcome.status == "ok" and outcome.bytes_after == s3.head_object(Bucket=seeded, Key="raw/t.parquet")["ContentLength"]
    assert outcome.monthly_saved == pytest.approx((real.monthly_usd_saved, real.monthly_kgco2e_saved))
    assert outcome.monthly_saved.usd != pytest.approx(outcome.decision.monthly_usd_saved)  # the plan assumed a ratio
    assert outcome.as_dict()["monthly_usd_saved"] == round(real.monthly_usd_saved, 6)


def test_a_dry_run_saves_nothing_but_still_publishes_the_savings_metrics(s3, seeded, tmp_path):
    report, docs = run_sweep(tmp_path, s3, seeded, dry_run=True)
    assert set(saved_by_policy(docs, seeded).values()) == {(0.0, 0.0)}
    assert (report["totals"]["monthly_usd_saved"], report["totals"]["monthly_kgco2e_saved"]) == (0.0, 0.0)


def test_the_report_reads_back_what_the_sweep_published(s3, seeded, tmp_path):
    _, docs = run_sweep(tmp_path, s3, seeded)
    cloudwatch = boto3.client("cloudwatch")
    for doc in docs:
        publish(cloudwatch, doc)
    rows = {row["policy"]: row for row in savings(cloudwatch, buckets={seeded})}
    for policy, (usd, kg) in saved_by_policy(docs, seeded).items():
        assert (rows[policy]["monthly_usd_saved"], rows[policy]["monthly_kgco2e_saved"]) == (round(usd, 6), round(kg, 9))
        assert rows[policy]["note"] is None
    assert (rows["scratch"]["objects_expired"], rows["features"]["objects_reclassed"]) == (1, 1)


def test_each_action_saving_is_published_again_by_action_with_only_the_savings(s3, seeded, tmp_path):
    """A second EMF document per (bucket, policy, action) holds the two savings metrics, and per policy they add
    up to the policy's own document; a skip decision gets none (it saves nothing by definition)."""
    _, docs = run_sweep(tmp_path, s3, seeded)
    by_action = saved_by_action(docs, seeded)
    assert {action for _, action in by_action} == {"expire", "storage_class", "convert", "lifecycle"}
    assert "skip" not in {doc.get("action") for doc in docs}
    for doc in docs:
        if "action" in doc:
            (directive,) = doc["_aws"]["CloudWatchMetrics"]
            assert directive["Dimensions"] == [["service", "bucket", "policy", "action"]] or \
                sorted(directive["Dimensions"][0]) == ["action", "bucket", "policy", "service"]
            assert sorted(m["Name"] for m in directive["Metrics"]) == ["MonthlyKgCO2eSaved", "MonthlyUsdSaved"]
    for policy, (usd, kg) in saved_by_policy(docs, seeded).items():
        mine = [saved for (p, _), saved in by_action.items() if p == policy]
        assert (sum(u for u, _ in mine), sum(k for _, k in mine)) == pytest.approx((usd, kg))
    expired = econ.deletion(MiB, "STANDARD", REGION)
    assert by_action[("scratch", "expire")] == pytest.approx((expired.monthly_usd_saved, expired.monthly_kgco2e_saved))


def test_the_report_counts_each_saving_once_per_policy_and_once_per_action(s3, seeded, tmp_path):
    """Read back from CloudWatch after two sweeps' worth of documents: the per-policy rows ignore the metrics with an
    action dimension (no double count), and the by-action rows are the sums of what was published per action."""
    _, docs = run_sweep(tmp_path, s3, seeded)
    cloudwatch = boto3.client("cloudwatch")
    for doc in docs + docs:  # twice: sums over datapoints, not the last one
        publish(cloudwatch, doc)
    rows = {row["policy"]: row for row in savings(cloudwatch, buckets={seeded})}
    for policy, (usd, kg) in saved_by_policy(docs, seeded).items():
        assert (rows[policy]["monthly_usd_saved"], rows[policy]["monthly_kgco2e_saved"]) == (round(2 * usd, 6), round(2 * kg, 9))
    actions = {(r["policy"], r["action"]): r for r in savings_by_action(cloudwatch, buckets={seeded})}
    assert set(actions) == set(saved_by_action(docs, seeded))
    for key, (usd, kg) in saved_by_action(docs, seeded).items():
        assert (actions[key]["monthly_usd_saved"], actions[key]["monthly_kgco2e_saved"]) == (round(2 * usd, 6), round(2 * kg, 9))
        assert actions[key]["bucket"] == seeded
    assert sum(r["monthly_usd_saved"] for r in rows.values()) == pytest.approx(
        sum(r["monthly_usd_saved"] for r in actions.values()), abs=1e-5)


def test_a_conversion_whose_source_became_locked_is_priced_as_keeping_it(s3, bucket, tmp_path):
    """Planned with ``source: delete``, but a legal hold arrived before the delete: the output was written and the
    source stays, so the outcome saves what keeping it saves (the output adds storage), not what deleting would."""
    from chalicelib.pipeline import act
    from chalicelib.sweep import bucket_decisions

    locked = bucket + "-lock"
    s3.create_bucket(Bucket=locked, ObjectLockEnabledForBucket=True)
    s3.put_object(Bucket=locked, Key="raw/t.csv", Body=csv_body())
    policies = load_policies([policies_file(tmp_path, locked)])
    [decision] = [d for d in bucket_decisions(RunContext(policies=policies, s3=s3), locked, policies) if d.action == "convert"]
    other = boto3.client("s3")  # someone else puts a legal hold on the source while its output is being written

    def hold(params: dict[str, Any], **_: Any) -> None:
        if params.get("Key", "").endswith(".parquet"):
            other.put_object_legal_hold(Bucket=locked, Key="raw/t.csv", LegalHold={"Status": "ON"})

    writer = boto3.client("s3")
    writer.meta.events.register("before-parameter-build.s3.PutObject", hold)
    writer.meta.events.register("before-parameter-build.s3.CreateMultipartUpload", hold)
    [outcome] = act(decision, RunContext(policies=policies, s3=writer))
    assert not s3.list_object_versions(Bucket=locked).get("DeleteMarkers")  # the held source is there, unmarked
    assert outcome.status == "ok" and "source: kept (" in outcome.reason and outcome.detail["source_kept"], outcome.reason
    kept = econ.conversion(outcome.bytes_before, outcome.bytes_after, "STANDARD", REGION, source="keep")
    deleted = econ.conversion(outcome.bytes_before, outcome.bytes_after, "STANDARD", REGION, source="delete")
    assert outcome.monthly_saved.usd == pytest.approx(kept.monthly_usd_saved) and kept.monthly_usd_saved < 0
    assert outcome.monthly_saved.kgco2e == pytest.approx(kept.monthly_kgco2e_saved) and deleted.monthly_usd_saved > 0
