"""The embedded stack's stand-ins for what AWS does between services and moto does not: EMF lines become
CloudWatch metrics, and a bucket's daily storage metrics are measured per storage class."""

from __future__ import annotations

import io
from datetime import datetime, timezone

import boto3

from chalicelib.decision import Decision, Outcome
from chalicelib.ledger import Ledger, metrics_to
from chalicelib.report import footprint, savings
from leanlake.local import publish_emf, publish_storage_metrics


def test_storage_metrics_are_measured_per_class_and_read_back_as_the_footprint(s3, bucket):
    s3.put_object(Bucket=bucket, Key="hot.csv", Body=b"a" * 1000)
    s3.put_object(Bucket=bucket, Key="cool.csv", Body=b"b" * 300, StorageClass="STANDARD_IA")
    s3.put_object(Bucket=bucket, Key="cold.csv", Body=b"c" * 200, StorageClass="GLACIER")
    s3.put_object(Bucket=bucket, Key="cold2.csv", Body=b"d" * 50, StorageClass="GLACIER")
    cloudwatch = boto3.client("cloudwatch")
    assert publish_storage_metrics(s3, cloudwatch, bucket, datetime.now(timezone.utc)) == {
        "STANDARD": 1000, "STANDARD_IA": 300, "GLACIER": 250}
    rows = footprint(cloudwatch, {bucket}, days=1)["footprint"]
    assert [(r["storage_class"], r["bytes"], r["objects"]) for r in rows] == [
        ("GLACIER", 250, 4), ("STANDARD", 1000, 4), ("STANDARD_IA", 300, 4)]


def test_the_ledgers_emf_becomes_the_metrics_report_sums(bucket):
    decision = Decision(bucket=bucket, key="raw/a.csv", policy="tables", action="convert", reason="csv")
    ledger = Ledger()
    for before, after in ((1000, 200), (500, 400)):
        ledger.record(Outcome(decision=decision, status="ok", bytes_before=before, bytes_after=after, reason="written"))
    ledger.record(Outcome(decision=decision, status="skip", reason="not smaller"))
    with metrics_to(io.StringIO()) as emf:
        ledger.flush()
    cloudwatch = boto3.client("cloudwatch")
    assert publish_emf(cloudwatch, ["a log line", *emf.getvalue().splitlines()]) > 0
    [row] = savings(cloudwatch, days=1, buckets={bucket})
    assert (row["policy"], row["bytes_in"], row["bytes_out"], row["bytes_saved"], row["objects_converted"],
            row["objects_skipped"]) == ("tables", 1500, 600, 900, 2, 1)
