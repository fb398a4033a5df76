"""leanlake report sums the metrics CloudWatch holds (moto's CloudWatch on loopback): the savings the ledger
published as they are, and for data without them (an older leanlake) the bytes saved, priced."""

from __future__ import annotations

import json

import boto3
from typer.testing import CliRunner

from chalicelib.economics import storage_month
from chalicelib.report import savings
from leanlake.cli import app


def test_report_sums_metrics_per_bucket_and_policy(aws):
    cloudwatch = boto3.client("cloudwatch")
    dims = [{"Name": "bucket", "Value": "report-lake"}, {"Name": "policy", "Value": "tables"}, {"Name": "service", "Value": "leanlake"}]
    for saved in (2**30, 2**30):
        cloudwatch.put_metric_data(Namespace="leanlake", MetricData=[
            {"MetricName": "BytesSaved", "Dimensions": dims, "Value": saved, "Unit": "Bytes"},
            {"MetricName": "ObjectsConverted", "Dimensions": dims, "Value": 3, "Unit": "Count"}])
    other = [{"Name": "bucket", "Value": "elsewhere"}, {"Name": "policy", "Value": "x"}, {"Name": "service", "Value": "leanlake"}]
    cloudwatch.put_metric_data(Namespace="leanlake", MetricData=[{"MetricName": "BytesSaved", "Dimensions": other, "Value": 1}])
    result = CliRunner().invoke(app, ["report", "--bucket", "report-lake", "--json"])
    assert result.exit_code == 0, result.output
    (row,) = json.loads(result.stdout)["savings"]
    assert (row["bucket"], row["policy"], row["bytes_saved"], row["objects_converted"]) == ("report-lake", "tables", 2 * 2**30, 6)
    assert round(row["monthly_usd_saved"], 3) == 0.046  # 2 GiB of S3 Standard in us-east-1
    assert row["monthly_kgco2e_saved"] > 0
    assert "older leanlake" in row["note"]  # no MonthlyUsdSaved: priced from BytesSaved at S3 Standard
    table = CliRunner().invoke(app, ["report", "--bucket", "report-lake"])
    assert table.exit_code == 0, table.output
    words = " ".join(table.stdout.split())
    assert "0.05*" in words and f"* report-lake / tables: {row['note']}" in words  # the table flags the estimate


def put(cloudwatch, bucket: str, policy: str, **values: float) -> None:
    """One datapoint per metric for (bucket, policy), dimensioned as the ledger's EMF output is."""
    dims = [{"Name": "bucket", "Value": bucket}, {"Name": "policy", "Value": policy}, {"Name": "service", "Value": "leanlake"}]
    cloudwatch.put_metric_data(Namespace="leanlake", MetricData=[
        {"MetricName": name, "Dimensions": dims, "Value": value, "Unit": "Bytes" if name.startswith("Bytes") else "None"}
        for name, value in values.items()])


def test_report_sums_published_savings_per_bucket_and_policy_exactly(aws, bucket):
    """Savings the ledger published are summed as they are (class changes and expirations save no bytes);
    only a row without them is priced from BytesSaved, and says so."""
    cloudwatch = boto3.client("cloudwatch")
    other = f"{bucket}-other"
    for usd, kg in ((1.5, 0.25), (0.125, 0.0625), (2.0, 0.5)):
        put(cloudwatch, bucket, "archive", MonthlyUsdSaved=usd, MonthlyKgCO2eSaved=kg, ObjectsReclassed=1)
    put(cloudwatch, bucket, "scratch", MonthlyUsdSaved=0.75, MonthlyKgCO2eSaved=0.03125, ObjectsExpired=4)
    put(cloudwatch, bucket, "scratch", MonthlyUsdSaved=0.0, MonthlyKgCO2eSaved=0.0, ObjectsSkipped=2)
    put(cloudwatch, other, "archive", MonthlyUsdSaved=100.0, MonthlyKgCO2eSaved=10.0)
    put(cloudwatch, bucket, "legacy", BytesSaved=2**30, ObjectsConverted=1)
    rows = {(r["bucket"], r["policy"]): r for r in savings(cloudwatch, buckets={bucket, other})}
    saved = {k: (r["monthly_usd_saved"], r["monthly_kgco2e_saved"], r["note"]) for k, r in rows.items()}
    assert saved == {
        (bucket, "archive"): (3.625, 0.8125, None),
        (bucket, "scratch"): (0.75, 0.03125, None),
        (other, "archive"): (100.0, 10.0, None),
        (bucket, "legacy"): (round(storage_month(2**30, "STANDARD", "us-east-1").usd, 6),
                             round(storage_month(2**30, "STANDARD", "us-east-1").kgco2e, 9),
                             "no MonthlyUsdSaved published (an older leanlake): only BytesSaved, priced at S3 Standard in us-east-1"),
    }
    assert (rows[(bucket, "archive")]["objects_reclassed"], rows[(bucket, "scratch")]["objects_expired"]) == (3, 4)
    assert rows[(bucket, "archive")]["bytes_saved"] == 0
