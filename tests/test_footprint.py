"""leanlake report's footprint: S3's free daily storage metrics (namespace AWS/S3) as moto's CloudWatch holds
them, per bucket and storage class, priced by the economics model, with a daily trend per bucket.

The buckets do not exist in moto's S3 (which would add a BucketSizeBytes point of its own for each bucket it
holds), so every point read is one seeded here."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from itertools import count

import boto3
import pytest
from typer.testing import CliRunner

from chalicelib.economics import storage_month
from chalicelib.report import footprint, totals
from leanlake.cli import app
from leanlake.local import put_storage_metric

_names = count()
#: The day the points are seeded for, fixed when the tests are collected: a window of one day is asked about it
#: (``now=TODAY``), or a run that passes midnight would ask about the next, where nothing is seeded.
TODAY = datetime.now(timezone.utc).replace(hour=0, minute=0, second=0, microsecond=0)
GiB = 2**30

#: Per bucket: storage type → bytes on each of the last three days (oldest first); then the objects.
SEEDED = {
    "lake": {"StandardStorage": (5 * GiB, 6 * GiB, 7 * GiB), "StandardIAStorage": (0, 2 * GiB, 3 * GiB),
             "GlacierStorage": (40 * GiB, 40 * GiB, 41 * GiB)},
    "logs": {"StandardStorage": (1 * GiB, 1 * GiB, 2 * GiB), "IntelligentTieringFAStorage": (3 * GiB, 2 * GiB, 1 * GiB),
             "IntelligentTieringIAStorage": (0, 1 * GiB, 2 * GiB)},
}
OBJECTS = {"lake": (900, 1_000, 1_200), "logs": (10, 20, 30)}


@pytest.fixture
def seeded(aws) -> dict[str, str]:
    """Three days of BucketSizeBytes and NumberOfObjects for two buckets unknown to S3; returns their names."""
    cloudwatch = boto3.client("cloudwatch")
    names = {short: f"footprint-{short}-{next(_names)}" for short in SEEDED}
    for short, types in SEEDED.items():
        for day in range(3):
            when = TODAY - timedelta(days=2 - day)
            for storage_type, sizes in types.items():
                if sizes[day]:
                    put_storage_metric(cloudwatch, names[short], "BucketSizeBytes", storage_type, when, sizes[day])
            put_storage_metric(cloudwatch, names[short], "NumberOfObjects", "AllStorageTypes", when, OBJECTS[short][day])
    return names


def test_footprint_is_the_latest_day_per_class_priced_by_the_model(seeded):
    found = footprint(boto3.client("cloudwatch"), set(seeded.values()), days=7, region="eu-west-1")
    lake, logs = seeded["lake"], seeded["logs"]
    rows = {(r["bucket"], r["storage_class"]): r for r in found["footprint"]}
    assert {k: (r["bytes"], r["objects"]) for k, r in rows.items()} == {
        (lake, "STANDARD"): (7 * GiB, 1_200), (lake, "STANDARD_IA"): (3 * GiB, 1_200), (lake, "GLACIER"): (41 * GiB, 1_200),
        (logs, "STANDARD"): (2 * GiB, 30), (logs, "INTELLIGENT_TIERING"): (3 * GiB, 30),  # its tiers summed
    }
    for (_, cls), row in rows.items():
        month = storage_month(row["bytes"], cls, "eu-west-1")
        assert row["monthly_usd"] == pytest.approx(month.usd, rel=0.01) and row["monthly_usd"] > 0
        assert row["monthly_kgco2e"] == pytest.approx(month.kgco2e, rel=0.01) and row["monthly_kgco2e"] > 0
    days = [(TODAY - timedelta(days=n)).date().isoformat() for n in (2, 1, 0)]
    assert [(p["date"], p["bucket"], p["bytes"]) for p in found["trend"]] == [
        (days[0], lake, 45 * GiB), (days[0], logs, 4 * GiB),
        (days[1], lake, 48 * GiB), (days[1], logs, 4 * GiB),
        (days[2], lake, 51 * GiB), (days[2], logs, 5 * GiB),
    ]
    total = totals(found["footprint"], [])
    assert (total["bytes"], total["objects"]) == (56 * GiB, 1_230)  # objects once per bucket


def test_footprint_window_and_buckets(seeded):
    """A one-day window sees only today; a bucket asked for alone is the only one read; one without metrics has no rows."""
    cloudwatch = boto3.client("cloudwatch")
    today = footprint(cloudwatch, {seeded["logs"]}, days=1, now=TODAY)  # the seeded day, even past midnight
    assert [(p["bucket"], p["bytes"]) for p in today["trend"]] == [(seeded["logs"], 5 * GiB)]
    assert footprint(cloudwatch, {"footprint-never-published"}, days=30) == {"footprint": [], "trend": []}


def test_report_json_and_table_show_the_footprint_before_the_savings(seeded, tmp_path, monkeypatch):
    """With --bucket the report reads no policies (there are none in the working directory) and no S3."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("LEANLAKE_POLICIES", raising=False)
    lake = seeded["lake"]
    result = CliRunner().invoke(app, ["report", "--bucket", lake, "--days", "7", "--json"])
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert set(document) == {"days", "namespace", "regions", "footprint", "trend", "savings", "savings_by_action", "totals"}
    assert document["days"] == 7
    assert [(r["storage_class"], r["bytes"]) for r in document["footprint"]] == [
        ("GLACIER", 41 * GiB), ("STANDARD", 7 * GiB), ("STANDARD_IA", 3 * GiB)]
    assert [p["bytes"] for p in document["trend"]] == [45 * GiB, 48 * GiB, 51 * GiB]
    assert document["savings"] == document["savings_by_action"] == []
    assert document["totals"]["monthly_usd"] == pytest.approx(sum(r["monthly_usd"] for r in document["footprint"]))
    monkeypatch.setenv("COLUMNS", "200")  # one line a row
    table = CliRunner().invoke(app, ["report", "--bucket", lake, "--days", "7"])
    assert table.exit_code == 0, table.output
    words = " ".join(table.stdout.split())
    assert f"│ {lake} │ STANDARD │ {7 * GiB:,} │ 1,200 │" in words and f"GLACIER │ {41 * GiB:,}" in words
    assert words.index("S3 footprint") < words.index("no leanlake metrics in this window")


def test_report_without_bucket_reads_the_policies_buckets(seeded, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("LEANLAKE_POLICIES", raising=False)
    assert CliRunner().invoke(app, ["report", "--json"]).exit_code == 1  # no policies, no --bucket: nothing to read
    (tmp_path / "policies").mkdir()
    (tmp_path / "policies" / "lake.yaml").write_text(
        f"policies:\n  - name: archive\n    bucket: {seeded['logs']}\n    actions:\n      - expire: {{days: 30}}\n")
    result = CliRunner().invoke(app, ["report", "--json"])
    assert result.exit_code == 0, result.output
    assert {r["bucket"] for r in json.loads(result.stdout)["footprint"]} == {seeded["logs"]}


def test_each_policy_bucket_is_read_and_priced_in_its_own_region(aws, tmp_path):
    """S3 publishes a bucket's storage metrics in the bucket's Region: the report reads each policy bucket there
    (its policies' settings.region, else --region) and prices it there; the other Region's points are not mixed in."""
    names = {region: f"regional-{region}-{next(_names)}" for region in ("eu-north-1", "ap-south-1")}
    for region, bucket in names.items():
        put_storage_metric(boto3.client("cloudwatch", region_name=region), bucket, "BucketSizeBytes", "StandardStorage", TODAY, 10 * GiB)
        put_storage_metric(boto3.client("cloudwatch", region_name=region), bucket, "NumberOfObjects", "AllStorageTypes", TODAY, 5)
    # a decoy: the Stockholm bucket's name in us-east-1's CloudWatch, which must not be read
    put_storage_metric(boto3.client("cloudwatch", region_name="us-east-1"), names["eu-north-1"], "BucketSizeBytes", "GlacierStorage",
              TODAY, 99 * GiB)
    (tmp_path / "north.yaml").write_text(
        "settings: {region: eu-north-1}\npolicies:\n"
        f"  - {{name: north, bucket: {names['eu-north-1']}, actions: [{{expire: {{days: 30}}}}]}}\n")
    (tmp_path / "south.yaml").write_text(
        f"policies:\n  - {{name: south, bucket: {names['ap-south-1']}, actions: [{{expire: {{days: 30}}}}]}}\n")
    result = CliRunner().invoke(app, ["report", "--policies", str(tmp_path), "--region", "ap-south-1", "--days", "2", "--json"])
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert document["regions"] == {names["eu-north-1"]: "eu-north-1", names["ap-south-1"]: "ap-south-1"}
    rows = {r["bucket"]: r for r in document["footprint"]}
    assert {b: (r["storage_class"], r["bytes"], r["objects"]) for b, r in rows.items()} == {
        b: ("STANDARD", 10 * GiB, 5) for b in names.values()}
    for region, bucket in names.items():
        month = storage_month(10 * GiB, "STANDARD", region)
        assert rows[bucket]["monthly_usd"] == pytest.approx(month.usd, rel=0.01)
        assert rows[bucket]["monthly_kgco2e"] == pytest.approx(month.kgco2e, rel=0.01)
    assert rows[names["eu-north-1"]]["monthly_kgco2e"] < rows[names["ap-south-1"]]["monthly_kgco2e"] / 10  # grids differ
