"""leanlake report sums the metrics CloudWatch holds (moto's CloudWatch on loopback) and prices them."""

from __future__ import annotations

import json

import boto3
from typer.testing import CliRunner

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
    (row,) = json.loads(result.stdout)["rows"]
    assert (row["bucket"], row["policy"], row["bytes_saved"], row["objects_converted"]) == ("report-lake", "tables", 2 * 2**30, 6)
    assert round(row["monthly_usd_saved"], 3) == 0.046  # 2 GiB of S3 Standard in us-east-1
    assert row["monthly_kgco2e_saved"] > 0
