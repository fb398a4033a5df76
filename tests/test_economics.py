"""The cost and carbon model recomputes a worked example (10,000 GB of CSV in 1M objects → 2,000 GB of Parquet) and keeps its rules."""

from __future__ import annotations

import math

import pytest
import yaml

from chalicelib import economics as econ
from chalicelib.economics import CarbonMethod, class_change, conversion, deletion, storage_month
from chalicelib.economics.figures import MODEL_PATH

GiB = 2**30
KiB = 1024
approx = pytest.approx


# --- The model file -------------------------------------------------------------------------------

def _leaves(node, path=()):
    if isinstance(node, dict):
        if "value" in node:
            yield path, node
        elif "values" in node and "source" in node:
            yield path, node
        else:
            for k, v in node.items():
                yield from _leaves(v, path + (k,))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _leaves(v, path + (i,))


def test_every_figure_keeps_its_source_and_date():
    data = yaml.safe_load(MODEL_PATH.read_text())
    leaves = list(_leaves({k: v for k, v in data.items() if k != "meta"}))
    assert len(leaves) > 80
    for path, leaf in leaves:
        assert leaf.get("source"), path
        assert leaf.get("as_of"), path


def test_model_is_loaded_once():
    assert econ.model() is econ.model()
    assert econ.rates("us-east-1") is econ.rates("us-east-1")


# --- Section 7: the worked example ---------------------------------------------------------------

def test_storage_before_and_after_conversion():
    before = storage_month(10_000 * GiB, "STANDARD", "us-east-1", objects=1_000_000)
    after = storage_month(2_000 * GiB, "STANDARD", "us-east-1", objects=100_000)
    assert before.usd == approx(230.00, abs=0.005)
    assert after.usd == approx(46.00, abs=0.005)
    assert before.kwh == approx(32.32, abs=0.005)
    assert after.kwh == approx(6.46, abs=0.005)
    assert before.kgco2e == approx(12.25, abs=0.005)
    assert after.kgco2e == approx(2.45, abs=0.005)


def test_conversion_job_one_off_cost_and_energy():
    run = econ.lambda_run(10_000 * GiB, invocations=100_000)
    assert run.seconds == approx(409_600)
    assert run.gb_seconds == approx(819_200)
    assert run.usd == approx(13.67, abs=0.005)
    assert run.kwh == approx(0.313, abs=0.0005)
    e = conversion(10_000 * GiB, 2_000 * GiB, "STANDARD", "us-east-1", objects_in=1_000_000, objects_out=100_000)
    assert e.one_off_usd == approx(14.57, abs=0.005)  # 13.67 Lambda + 0.40 GETs + 0.50 PUTs
    assert e.one_off_kgco2e == approx(0.119, abs=0.0005)
    assert e.monthly_usd_saved == approx(184.00, abs=0.005)
    assert e.monthly_kgco2e_saved == approx(9.80, abs=0.005)


def test_payback_and_twelve_month_net():
    e = conversion(10_000 * GiB, 2_000 * GiB, "STANDARD", "us-east-1", objects_in=1_000_000, objects_out=100_000)
    assert e.payback_days == approx(2.4, abs=0.05)
    assert e.payback_days_co2e * 24 == approx(8.7, abs=0.05)
    assert e.net_usd(12 * econ.DAYS_PER_MONTH) == approx(2193, abs=0.5)
    assert e.net_kgco2e(12 * econ.DAYS_PER_MONTH) == approx(117.5, abs=0.05)


def test_electricity_maps_and_aws_pue_alternative():
    method = CarbonMethod(grid="electricity_maps_2025", pue="aws_2025")
    before = storage_month(10_000 * GiB, "STANDARD", objects=1_000_000, carbon=method)
    after = storage_month(2_000 * GiB, "STANDARD", objects=100_000, carbon=method)
    assert before.kgco2e - after.kgco2e == approx(10.95, abs=0.005)


@pytest.mark.parametrize(
    "dest, transition, new_cost, saves, co2e_saved, minimum",
    [
        ("GLACIER_IR", 2.0, 8.00, 38.0, 0.0, 90),
        ("ONEZONE_IA", 1.0, 20.00, 26.0, 1.63, 30),
        ("DEEP_ARCHIVE", 5.0, 2.00, 44.0, 0.0, 180),
    ],
)
def test_transitions_table(dest, transition, new_cost, saves, co2e_saved, minimum):
    size, n = 2_000 * GiB, 100_000
    assert econ.transition_usd(dest, objects=n) == approx(transition)
    assert storage_month(size, dest, objects=n).usd == approx(new_cost, abs=0.005)
    e = class_change(size, "STANDARD", dest, objects=n, age_days=30, via="transition")
    assert e.one_off_usd == approx(transition)
    assert e.monthly_usd_saved == approx(saves, abs=0.01)
    assert e.monthly_kgco2e_saved == approx(co2e_saved, abs=0.01)  # DEEP_ARCHIVE: ≈0 (40 KB overhead)
    assert econ.rates().min_days[dest] == minimum


def test_early_deletion_penalty():
    assert econ.penalty_usd(2_000 * GiB, "GLACIER_IR", 40, objects=100_000) == approx(13.33, abs=0.005)
    assert deletion(2_000 * GiB, "GLACIER_IR", age_days=40, objects=100_000).one_off_usd == approx(13.33, abs=0.005)
    assert econ.penalty_usd(2_000 * GiB, "GLACIER_IR", 90, objects=100_000) == 0
    assert econ.penalty_usd(2_000 * GiB, "STANDARD", 1) == 0


def test_small_object_trap():
    size, n = 16 * KiB * 1_000_000, 1_000_000
    std = storage_month(size, "STANDARD", objects=n)
    assert size / GiB == approx(15.3, abs=0.05)
    assert std.usd == approx(0.351, abs=0.0005)
    gir = storage_month(size, "GLACIER_IR", objects=n)
    assert gir.billable_bytes / GiB == approx(122, abs=0.1)
    assert gir.usd == approx(0.488, abs=0.0005)
    to_gir = class_change(size, "STANDARD", "GLACIER_IR", objects=n, via="transition", age_days=30)
    assert to_gir.one_off_usd == approx(20)
    assert to_gir.monthly_usd_saved < 0  # a loss, every month
    assert to_gir.payback_days == math.inf
    deep = storage_month(size, "DEEP_ARCHIVE", objects=n)
    assert deep.billable_bytes / GiB == approx(45.8, abs=0.05)
    assert deep.usd == approx(0.221, abs=0.0005)
    to_deep = class_change(size, "STANDARD", "DEEP_ARCHIVE", objects=n, via="transition", age_days=30)
    assert to_deep.one_off_usd == approx(50)
    assert to_deep.payback_days / econ.DAYS_PER_MONTH == approx(385, rel=0.01)


# --- Rules of sections 1-4 -------------------------------------------------------------------------

def test_minimum_billable_size_applies_to_ia_classes_only():
    for cls in ("STANDARD_IA", "ONEZONE_IA", "GLACIER_IR"):
        assert storage_month(1, cls).billable_bytes == 128 * KiB
    assert storage_month(1, "STANDARD").billable_bytes == 1
    assert storage_month(1, "DEEP_ARCHIVE").billable_bytes == 1 + 32 * KiB


def test_intelligent_tiering_monitoring_fee_from_128_kib():
    small = storage_month(100 * KiB * 1000, "INTELLIGENT_TIERING", objects=1000)
    large = storage_month(128 * KiB * 1000, "INTELLIGENT_TIERING", objects=1000)
    assert small.usd == approx(100 * KiB * 1000 / GiB * 0.023)
    assert large.usd == approx(128 * KiB * 1000 / GiB * 0.023 + 0.0025)


def test_standard_volume_bands_in_us_east_1():
    tb = 1024 * GiB
    assert storage_month(100 * tb, "STANDARD").usd == approx(50 * 1024 * 0.023 + 50 * 1024 * 0.022)
    assert storage_month(600 * tb, "STANDARD").usd == approx(1024 * (50 * 0.023 + 450 * 0.022 + 100 * 0.021))


def test_requests_and_retrieval():
    assert econ.requests_usd("STANDARD", puts=1000, gets=1000) == approx(0.0054)
    assert econ.requests_usd("GLACIER_IR", gets=1000) == approx(0.01)
    assert econ.retrieval_usd(GiB, "STANDARD_IA") == approx(0.01)
    assert econ.retrieval_usd(GiB, "DEEP_ARCHIVE") == approx(0.02)


def test_copy_from_ia_pays_retrieval_and_early_leave_penalty():
    e = class_change(10 * GiB, "STANDARD_IA", "GLACIER_IR", age_days=10, via="copy")
    expected = 0.02 / 1000 + 10 * 0.01 + 10 * 0.0125 * 20 / 30
    assert e.one_off_usd == approx(expected)


def test_expiry_before_minimum_duration_pays_penalty_and_cuts_the_saving():
    e = class_change(100 * GiB, "STANDARD", "GLACIER_IR", expires_in_days=30)
    assert e.lasts_days == 30
    assert e.one_off_usd == approx(0.02 / 1000 + 100 * 0.004 * 60 / 30)
    assert e.net_usd(365) == approx(e.monthly_usd_saved * 1 - e.one_off_usd)


def test_class_changes_save_co2e_only_into_onezone():
    to_gir = class_change(GiB * 100, "STANDARD", "GLACIER_IR")
    assert to_gir.monthly_kgco2e_saved == 0
    assert econ.CCF_CLASS_NOTE in to_gir.notes
    to_zia = class_change(GiB * 100, "STANDARD", "ONEZONE_IA")
    before = storage_month(GiB * 100, "STANDARD").kgco2e
    assert to_zia.monthly_kgco2e_saved == approx(before * 2 / 3)
    assert econ.CCF_CLASS_NOTE not in to_zia.notes


def test_archive_multiplier_is_an_assumption_and_said_so():
    method = CarbonMethod(archive_multiplier=0.5)
    e = class_change(GiB * 100, "STANDARD", "GLACIER_IR", carbon=method)
    assert e.monthly_kgco2e_saved > 0
    assert any("ASSUMPTION" in n for n in e.notes)


def test_source_kept_is_a_loss():
    e = conversion(GiB, GiB // 5, source="keep")
    assert e.monthly_usd_saved < 0
    assert any("source kept" in n for n in e.notes)


# --- Regions ---------------------------------------------------------------------------------------

def test_other_regions_use_their_storage_prices_and_grid_factors():
    eu = storage_month(100 * GiB, "STANDARD", "eu-central-1")
    assert eu.usd == approx(100 * 0.0245)
    assert econ.rates("eu-north-1").ef == approx(0.0000088)
    assert storage_month(100 * GiB, "STANDARD", "eu-north-1").kgco2e < storage_month(100 * GiB, "STANDARD").kgco2e
    assert any("ASSUMPTION" in n for n in eu.notes)  # IA/GIR request prices are us-east-1's


def test_unknown_region_falls_back_to_us_east_1_with_a_flag():
    f = storage_month(100 * GiB, "STANDARD", "xx-nowhere-1")
    assert f.usd == approx(2.3)
    assert any("us-east-1 figures used" in n for n in f.notes)
    assert any("grid factor" in n for n in econ.rates("xx-nowhere-1").notes)


def test_unknown_class_is_an_error():
    with pytest.raises(ValueError):
        storage_month(1, "REDUCED_REDUNDANCY")


def test_break_even_size():
    b = econ.break_even_bytes("STANDARD", "DEEP_ARCHIVE", 365)
    assert 150 * KiB < b < 250 * KiB
    assert class_change(b * 1.01, "STANDARD", "DEEP_ARCHIVE", via="transition", age_days=None).net_usd(365) > 0
    assert class_change(b * 0.99, "STANDARD", "DEEP_ARCHIVE", via="transition", age_days=None).net_usd(365) < 0


def test_storage_class_facts_have_one_source_the_model():
    """Ranks, minimum days, minimum billable sizes and restore needs come from model.yaml, with sources."""
    from chalicelib.economics import class_names, model, needs_restore, storage_class

    node = model()["storage_classes"]
    assert node["lifecycle_rank"]["source"].startswith("https://") and node["needs_restore"]["source"].startswith("https://")
    assert class_names() == ("STANDARD", "STANDARD_IA", "ONEZONE_IA", "INTELLIGENT_TIERING", "GLACIER_IR", "GLACIER", "DEEP_ARCHIVE")
    assert [c for c in class_names() if needs_restore(c)] == ["GLACIER", "DEEP_ARCHIVE"]
    assert not needs_restore("EXPRESS_ONEZONE")  # a class the model does not know
    assert {c: storage_class(c).min_days for c in class_names()} == {
        "STANDARD": 0, "STANDARD_IA": 30, "INTELLIGENT_TIERING": 0, "ONEZONE_IA": 30, "GLACIER_IR": 90, "GLACIER": 90, "DEEP_ARCHIVE": 180}
    assert {c for c in class_names() if storage_class(c).min_billable == 128 * 1024} == {"STANDARD_IA", "ONEZONE_IA", "GLACIER_IR"}


# --- Moving data between Regions (leanlake regions) ------------------------------------------------
# Expected values are computed here from model.yaml's figures, not through the functions under test.

MODEL = yaml.safe_load(MODEL_PATH.read_text())


def _table(*path):
    node = MODEL
    for part in path:
        node = node[part]
    return node["values"] if "values" in node else node["value"]


def _kwh_per_gb_month():
    """CCF storage energy of one GB of S3 Standard for a month, PUE included."""
    return (_table("units", "hours_per_day") * _table("units", "ccf_days_in_month") / _table("units", "ccf_gb_per_tb")
            * _table("carbon", "hdd_wh_per_tbh") * _table("storage", "STANDARD", "replication_factor")
            * _table("carbon", "pue", "ccf") / 1000)


def test_relocation_prices_both_months_the_transfer_and_the_copy_requests():
    gb, objects, src, dst = 2_000, 200_000, "eu-west-1", "eu-north-1"
    r = econ.relocation({"STANDARD": gb * GiB}, objects, src, dst)
    price, grid = _table("storage", "STANDARD", "price_by_region"), _table("carbon", "grid_tco2e_per_kwh", "ccf")
    assert r.before.usd == approx(gb * price[src]) and r.after.usd == approx(gb * price[dst])
    assert r.monthly_kgco2e_saved == approx(gb * _kwh_per_gb_month() * (grid[src] - grid[dst]) * 1000)
    assert r.transfer_usd == approx(gb * _table("transfer", "inter_region_out_per_gb")[src])
    per_request = MODEL["requests"]["by_region_per_request"]
    assert r.requests_usd == approx(objects * (per_request["STANDARD_get"]["values"][src] + per_request["STANDARD_put"]["values"][dst]))
    networking = gb * _table("carbon", "networking_kwh_per_gb") * _table("carbon", "pue", "ccf")
    assert r.one_off_kgco2e == approx(networking * grid[src] * 1000)  # the source Region's grid
    assert r.payback_months_kgco2e == approx(r.one_off_kgco2e / r.monthly_kgco2e_saved)
    assert r.monthly_usd_saved == 0 and r.payback_months_usd == math.inf  # same price: the transfer never pays back
    assert r.estimate.net_kgco2e(12 * econ.DAYS_PER_MONTH) == approx(12 * r.monthly_kgco2e_saved - r.one_off_kgco2e)
    assert r.notes == ()  # Standard only: the assumed IA/GIR/INT request prices are not used, so not said


def test_transfer_prices_pairs_and_the_assumed_default():
    assert econ.transfer_per_gb("us-east-1", "us-east-2") == (0.01, None)  # the US East pair
    assert econ.transfer_per_gb("us-east-1", "eu-north-1") == (0.02, None)
    assert econ.transfer_per_gb("af-south-1", "eu-north-1") == (approx(110.25 / 750), None)  # infracost's 750 GB line
    price, note = econ.transfer_per_gb("me-central-1", "eu-north-1")
    assert price == MODEL["transfer"]["inter_region_out_default_per_gb"]["value"] and "me-central-1" in note
    assert MODEL["transfer"]["inter_region_out_default_per_gb"]["source"].startswith("ASSUMPTION")
    moved = econ.relocation({"STANDARD": 10 * GiB}, 10, "me-central-1", "eu-north-1")
    assert note in moved.notes and moved.transfer_usd == approx(10 * price)


def test_relocating_ia_and_glacier_pays_retrieval_and_says_what_is_not_counted():
    src, dst = "eu-west-1", "eu-west-3"
    r = econ.relocation({"STANDARD_IA": 30 * GiB, "GLACIER": 10 * GiB}, 400, src, dst)  # 300 and 100 objects
    retrieval = MODEL["retrieval"]["by_region_per_gb"]
    per_request = MODEL["requests"]["by_region_per_request"]
    east = MODEL["requests"]["us_east_1"]  # IA request prices and Glacier GETs outside us-east-1: us-east-1's (the model's rule)
    ia, glacier_get = east["STANDARD_IA"], east["GLACIER"]["get_per_1000"]["value"] / 1000
    expected = (30 * retrieval["STANDARD_IA"]["values"][src] + 10 * retrieval["GLACIER_standard"]["values"][src]
                + 300 * (ia["get_per_1000"]["value"] + ia["put_per_1000"]["value"]) / 1000
                + 100 * (glacier_get + per_request["GLACIER_put"]["values"][dst]))
    assert r.requests_usd == approx(expected)
    assert any("restored before they are copied" in n for n in r.notes)
    assert any("request and transition prices" in n and "ASSUMPTION" in n for n in r.notes)  # IA's are used
    assert any("early-deletion" in n for n in r.notes)


def test_staying_moves_nothing_and_a_worse_region_never_pays_back():
    here = econ.relocation({"STANDARD": 100 * GiB}, 1_000, "eu-north-1", "eu-north-1")
    assert (here.one_off_usd, here.one_off_kgco2e, here.monthly_usd_saved, here.monthly_kgco2e_saved) == (0, 0, 0, 0)
    worse = econ.relocation({"STANDARD": 100 * GiB}, 1_000, "eu-north-1", "sa-east-1")
    assert worse.monthly_usd_saved < 0 and worse.monthly_kgco2e_saved < 0
    assert worse.payback_months_usd == math.inf and worse.payback_months_kgco2e == math.inf


@pytest.mark.parametrize("table", ["ccf", "electricity_maps_2025", "gsf_2023"])
def test_cleanest_regions_are_the_model_table_where_storage_is_priced(table):
    grid, price = _table("carbon", "grid_tco2e_per_kwh", table), _table("storage", "STANDARD", "price_by_region")
    expected = sorted((factor, price[name], name) for name, factor in grid.items() if name in price)
    found = econ.cleanest_regions(CarbonMethod(grid=table))
    assert [name for name, _ in found] == [name for _, _, name in expected]
    assert "cn-north-1" not in dict(found) and "Unknown" not in dict(found)  # no S3 price in the model
    assert econ.grid_tables() == ("ccf", "electricity_maps_2025", "gsf_2023")


def test_relocation_sources_name_the_model_figures():
    cited = econ.sources(CarbonMethod(grid="gsf_2023"))
    assert cited["grid"] == {"figure": "carbon.grid_tco2e_per_kwh.gsf_2023",
                             "source": MODEL["carbon"]["grid_tco2e_per_kwh"]["gsf_2023"]["source"],
                             "as_of": MODEL["carbon"]["grid_tco2e_per_kwh"]["gsf_2023"]["as_of"]}
    assert cited["transfer_per_gb"]["source"].startswith("https://") and cited["networking_kwh_per_gb"]["as_of"]
