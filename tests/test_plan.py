"""plan: one decision per matched (object, policy), every skip with its reason, acting only when it pays."""

from __future__ import annotations

import tracemalloc
from datetime import datetime, timedelta, timezone

import pytest

from chalicelib.plan import Totals, plan_buckets, plan_objects, totals
from chalicelib.policy import PolicySet, Settings
from chalicelib.refs import ObjectRef

NOW = datetime(2026, 6, 1, tzinfo=timezone.utc)
KiB, MiB, GiB = 1024, 2**20, 2**30
BUCKET = "ml-lake"

ML_LAKE = [
    {"name": "raw-tables-to-parquet", "bucket": BUCKET,
     "filters": {"prefix": "raw/", "suffix": [".csv", ".csv.gz", ".jsonl"], "size": {"min": "1 KiB"}},
     "actions": [{"convert": {"destination": "curated/{rel_dir}{stem}.parquet", "source": "delete"}}]},
    {"name": "logs-to-zstd", "bucket": BUCKET, "filters": {"prefix": "logs/", "suffix": [".gz", ".bz2", ".log"]},
     "actions": [{"recompress": {"level": 19, "source": "delete"}}]},
    {"name": "recreatable-features", "bucket": BUCKET, "filters": {"prefix": "features/", "tags": {"recreatable": "true"}},
     "actions": [{"storage_class": "ONEZONE_IA"}]},
    {"name": "checkpoints", "bucket": BUCKET, "filters": {"prefix": ["checkpoints/", "ckpt/"]},
     "actions": [{"transition": [{"days": 30, "class": "GLACIER_IR"}, {"days": 180, "class": "DEEP_ARCHIVE"}]},
                 {"expire": {"days": 730}}]},
    {"name": "scratch", "bucket": BUCKET, "filters": {"prefix": "tmp/", "suffix": ".tmp"}, "actions": [{"expire": {"days": 7}}]},
]


def ref(key, size=10 * MiB, age_days=40.0, cls=None, tags=None, bucket=BUCKET):
    return ObjectRef(bucket, key, size=size, storage_class=cls, last_modified=NOW - timedelta(days=age_days), tags=tags)


def one(policies, r, **kw):
    decisions = list(plan_objects([r], policies, NOW, **kw))
    assert len(decisions) == 1, decisions
    return decisions[0]


def ps(*entries, **settings):
    return PolicySet.from_dicts(entries, Settings(**settings) if settings else None)


@pytest.fixture(scope="module")
def lake():
    return PolicySet.from_dicts(ML_LAKE)


# --- Matching ---------------------------------------------------------------------------------------

def test_exactly_one_decision_per_matched_policy_and_none_for_unmatched(lake):
    refs = [ref("raw/a.csv"), ref("other/x.bin"), ref("_leanlake/audit/x.csv"), ref("raw/a.parquet"),
            ObjectRef("elsewhere", "raw/a.csv", size=5000)]
    decisions = list(plan_objects(refs, lake, NOW))
    assert [(d.key, d.policy) for d in decisions] == [("raw/a.csv", "raw-tables-to-parquet")]


def test_matching_is_policyset_match(lake):
    refs = [ref(k, size=s, tags=t) for k in ("raw/a.csv", "raw/x/b.jsonl", "raw/a.parquet", "logs/a.log", "features/f",
                                             "checkpoints/c", "ckpt/c", "tmp/a.tmp", "tmp/a.txt", "_leanlake/raw/a.csv", "x")
            for s in (10, 5000) for t in ({"recreatable": "true"}, {})]
    refs.append(ObjectRef("another-bucket", "raw/a.csv", size=5000))
    expected = [(r.key, m.policy.name) for r in refs for m in lake.match(r)]
    assert [(d.key, d.policy) for d in plan_objects(refs, lake, NOW)] == expected
    assert len(expected) > 10


def test_overlapping_policies_each_get_their_decision():
    policies = ps(
        {"name": "a", "bucket": BUCKET, "filters": {"prefix": "data/"}, "actions": [{"storage_class": "GLACIER_IR"}]},
        {"name": "b", "bucket": BUCKET, "filters": {"prefix": "data/"}, "actions": [{"expire": {"days": 3650}}]},
    )
    decisions = list(plan_objects([ref("data/x.bin")], policies, NOW))
    assert [d.policy for d in decisions] == ["a", "b"]


# --- convert / recompress ------------------------------------------------------------------------------

def test_convert_decides_with_destination_and_stated_assumption(lake):
    d = one(lake, ref("raw/2024/a.csv", size=100 * MiB))
    assert d.action == "convert"
    assert d.params.destination == "curated/2024/a.parquet"
    assert d.params.output_ratio == 0.2
    assert "ASSUMPTION" in d.reason
    assert d.monthly_usd_saved == pytest.approx(100 / 1024 * 0.8 * 0.023)
    assert d.monthly_kgco2e_saved > 0
    assert d.one_off_usd > 0
    assert d.ref is not None


def test_convert_of_compressed_input_assumes_a_smaller_gain(lake):
    d = one(lake, ref("raw/a.csv.gz", size=100 * MiB))
    assert d.params.destination == "curated/a.parquet"
    assert d.params.output_ratio == 0.85


def test_recompress_default_destination_and_ratio(lake):
    d = one(lake, ref("logs/app/a.log.gz", size=50 * MiB))
    assert d.action == "recompress"
    assert d.params.destination == "logs/app/a.log.zst"
    assert d.params.output_ratio == 0.85
    assert "zstd" in d.reason or "gzip" in d.reason


@pytest.mark.parametrize("cls", ["GLACIER", "DEEP_ARCHIVE"])
def test_archived_sources_cannot_be_converted(lake, cls):
    d = one(lake, ref("raw/a.csv", cls=cls))
    assert d.action == "skip" and "restore" in d.reason


def test_tiny_objects_are_not_converted():
    policies = ps({"name": "p", "bucket": BUCKET, "filters": {"prefix": "raw/"}, "actions": [{"convert": {}}]})
    d = one(policies, ref("raw/a.csv", size=500))
    assert d.action == "skip" and "would not be smaller" in d.reason
    assert one(policies, ref("raw/a.csv", size=600)).action == "convert"  # the executor makes the final size check
    assert one(policies, ref("raw/a.csv", size=0)).action == "convert"  # empty: the executor reports bad input
    logs = ps({"name": "l", "bucket": BUCKET, "filters": {"prefix": "logs/"}, "actions": [{"recompress": {}}]})
    assert one(logs, ref("logs/a.log", size=60)).action == "skip"
    assert one(logs, ref("logs/a.log", size=100)).action == "recompress"


def test_convert_with_source_kept_reports_the_extra_storage():
    policies = ps({"name": "p", "bucket": BUCKET, "filters": {"prefix": "raw/"}, "actions": [{"convert": {"source": "keep"}}]})
    d = one(policies, ref("raw/a.csv", size=100 * MiB))
    assert d.action == "convert"  # invariant 5 judges convert by output size; the executor checks it
    assert d.monthly_usd_saved < 0
    assert any("source kept" in n for n in d.params.notes)


# --- storage_class -----------------------------------------------------------------------------------

def test_storage_class_acts_when_it_pays_and_onezone_saves_co2e(lake):
    d = one(lake, ref("features/f.parquet", size=GiB, tags={"recreatable": "true"}))
    assert d.action == "storage_class"
    assert d.params.storage_class == "ONEZONE_IA"
    assert d.monthly_usd_saved == pytest.approx(0.013)
    assert d.monthly_kgco2e_saved > 0


def test_storage_class_skips(lake):
    tags = {"recreatable": "true"}
    assert "already in ONEZONE_IA" in one(lake, ref("features/f", cls="ONEZONE_IA", tags=tags)).reason
    small = one(lake, ref("features/f", size=100 * KiB, tags=tags))
    assert small.action == "skip" and "billed as 128 KiB" in small.reason
    archived = one(lake, ref("features/f", cls="DEEP_ARCHIVE", tags=tags))
    assert archived.action == "skip" and "restore" in archived.reason


def test_storage_class_not_worth_it_over_a_short_horizon():
    policies = ps({"name": "p", "bucket": BUCKET, "filters": {"prefix": "d/"}, "actions": [{"storage_class": "DEEP_ARCHIVE"}]},
                  horizon_days=1)
    d = one(policies, ref("d/x", size=200 * KiB))
    assert d.action == "skip" and "not worth it" in d.reason
    assert d.monthly_usd_saved == 0


def test_intelligent_tiering_savings_are_not_modelled_and_say_so():
    policies = ps({"name": "p", "bucket": BUCKET, "filters": {"prefix": "d/"}, "actions": [{"storage_class": "INTELLIGENT_TIERING"}]})
    d = one(policies, ref("d/x", size=GiB))
    assert d.action == "skip" and "not modelled" in d.reason


def test_storage_class_skips_when_the_object_expires_before_the_class_minimum():
    policies = ps({"name": "p", "bucket": BUCKET, "filters": {"prefix": "d/"},
                   "actions": [{"storage_class": "GLACIER_IR"}, {"expire": {"days": 60}}]})
    d = one(policies, ref("d/x", size=GiB, age_days=1))
    assert d.action == "skip" and "90-day minimum" in d.reason


def test_co2e_objective_vetoes_class_changes_that_save_no_co2e():
    entry = {"name": "p", "bucket": BUCKET, "filters": {"prefix": "d/"}, "actions": [{"storage_class": "GLACIER_IR"}]}
    assert one(ps(entry), ref("d/x", size=GiB)).action == "storage_class"
    d = one(ps(entry, objective="co2e"), ref("d/x", size=GiB))
    assert d.action == "skip" and "CO2e" in d.reason
    onezone = dict(entry, actions=[{"storage_class": "ONEZONE_IA"}])
    assert one(ps(onezone, objective="co2e"), ref("d/x", size=GiB)).action == "storage_class"


def test_class_change_without_co2e_says_so_in_the_reason():
    entry = {"name": "p", "bucket": BUCKET, "filters": {"prefix": "d/"}, "actions": [{"storage_class": "GLACIER_IR"}]}
    d = one(ps(entry), ref("d/x", size=GiB))
    assert "no CO2e" in d.reason and d.monthly_kgco2e_saved == 0


# --- expire and transition -------------------------------------------------------------------------------

def test_sweep_expires_suffix_filtered_objects_when_due(lake):
    old = one(lake, ref("tmp/a.tmp", age_days=8))
    assert old.action == "expire" and old.params.versions == "marker"
    assert old.monthly_usd_saved > 0
    young = one(lake, ref("tmp/a.tmp", age_days=3))
    assert young.action == "skip" and young.reason == "3 days old, expires at day 7"


def test_expire_versions_all_is_passed_on():
    policies = ps({"name": "s", "bucket": BUCKET, "filters": {"prefix": "tmp/", "suffix": ".tmp"},
                   "actions": [{"expire": {"days": 1, "versions": "all"}}]})
    assert one(policies, ref("tmp/x.tmp", age_days=2)).params.versions == "all"


def test_lifecycle_expressible_policies_are_left_to_lifecycle(lake):
    d = one(lake, ref("checkpoints/a.pt", age_days=1000))
    assert d.action == "skip" and d.reason == "handled by Lifecycle rule leanlake-checkpoints-1"
    assert one(lake, ref("ckpt/a.pt")).reason == "handled by Lifecycle rule leanlake-checkpoints-2"


def test_sweep_transitions_suffix_filtered_objects_to_the_step_due():
    policies = ps({"name": "t", "bucket": BUCKET, "filters": {"prefix": "m/", "suffix": ".bin"},
                   "actions": [{"transition": [{"days": 30, "class": "GLACIER_IR"}, {"days": 180, "class": "DEEP_ARCHIVE"}]}]})
    assert one(policies, ref("m/a.bin", size=GiB, age_days=10)).reason == "10 days old, first transition at day 30"
    d = one(policies, ref("m/a.bin", size=GiB, age_days=40))
    assert d.action == "storage_class" and (d.params.storage_class, d.params.via) == ("GLACIER_IR", "transition")
    d = one(policies, ref("m/a.bin", size=GiB, age_days=200, cls="GLACIER_IR"))
    assert d.action == "storage_class" and d.params.storage_class == "DEEP_ARCHIVE"
    d = one(policies, ref("m/a.bin", size=GiB, age_days=40, cls="DEEP_ARCHIVE"))
    assert d.action == "skip"


@pytest.mark.parametrize("filters", [{}, {"tags": {"scratch": "true"}}, {"prefix": "_"}, {"prefix": ["a/", "_lean"]}])
def test_the_sweep_expires_and_transitions_what_lifecycle_cannot_keep_off_the_reserved_prefix(filters):
    """Lifecycle can't exclude _leanlake/: such a policy's per-object work is the sweep's, never a Lifecycle skip."""
    expiring = ps({"name": "e", "bucket": BUCKET, "filters": filters, "actions": [{"expire": {"days": 7}}]})
    key = "_x/a.bin" if filters.get("prefix") == "_" else "a/x.bin"
    tags = {"scratch": "true"}
    assert one(expiring, ref(key, age_days=8, tags=tags)).action == "expire"
    assert one(expiring, ref(key, age_days=3, tags=tags)).reason == "3 days old, expires at day 7"
    assert list(plan_objects([ref("_leanlake/audit/2026/01/01/r.jsonl", age_days=800, tags=tags)], expiring, NOW)) == []
    moving = ps({"name": "t", "bucket": BUCKET, "filters": filters, "actions": [{"transition": [{"days": 30, "class": "GLACIER"}]}]})
    d = one(moving, ref(key, size=GiB, age_days=40, tags=tags))
    assert d.action == "storage_class" and d.params.via == "transition"
    [bucket_level] = plan_buckets(moving)
    assert bucket_level.action == "lifecycle" and bucket_level.params.rules == []
    assert "run in the sweep" in bucket_level.reason


def test_abort_multipart_of_a_prefixless_policy_is_still_a_lifecycle_rule():
    policies = ps({"name": "all", "bucket": BUCKET, "actions": [{"expire": {"days": 7}}, {"abort_multipart": 2}]})
    [d] = plan_buckets(policies)
    assert d.params.rules == [{"ID": "leanlake-all-1", "Status": "Enabled", "Filter": {"Prefix": ""},
                                  "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 2}}]
    assert d.reason.startswith("Lifecycle rule(s) leanlake-all-1; transition/expire run in the sweep")


def test_a_destination_rendered_under_the_reserved_prefix_is_a_skip():
    policies = ps({"name": "tables", "bucket": BUCKET, "filters": {"prefix": "raw/", "suffix": ".csv"},
                   "actions": [{"convert": {"destination": "{rel_dir}{stem}.parquet"}}]})
    d = one(policies, ref("raw/_leanlake/audit/x.csv"))
    assert d.action == "skip"
    assert d.reason == "destination _leanlake/audit/x.parquet is under _leanlake/, which is reserved for leanlake"
    ok = one(policies, ref("raw/leanlake/audit/x.csv"))
    assert ok.action == "convert" and ok.params.destination == "leanlake/audit/x.parquet"


def test_unknown_age_is_not_expired():
    policies = ps({"name": "s", "bucket": BUCKET, "filters": {"prefix": "tmp/", "suffix": ".tmp"}, "actions": [{"expire": {"days": 1}}]})
    d = one(policies, ObjectRef(BUCKET, "tmp/x.tmp", size=1))
    assert d.action == "skip" and "age unknown" in d.reason


def test_naive_and_aware_datetimes_mix():
    policies = ps({"name": "s", "bucket": BUCKET, "filters": {"prefix": "tmp/", "suffix": ".tmp"}, "actions": [{"expire": {"days": 1}}]})
    r = ObjectRef(BUCKET, "tmp/x.tmp", size=1, last_modified=datetime(2026, 5, 1))
    assert one(policies, r).action == "expire"


def test_region_from_settings_changes_the_figures():
    entry = {"name": "p", "bucket": BUCKET, "filters": {"prefix": "d/"}, "actions": [{"storage_class": "ONEZONE_IA"}]}
    east = one(ps(entry), ref("d/x", size=GiB))
    sao = one(ps(entry, region="sa-east-1"), ref("d/x", size=GiB))
    assert sao.monthly_usd_saved != east.monthly_usd_saved


# --- Bucket level -------------------------------------------------------------------------------------------

def test_plan_buckets(lake):
    decisions = list(plan_buckets(lake, [BUCKET]))
    by_policy = {d.policy: d for d in decisions}
    # scratch filters by suffix: its decisions are per object; the writers' destinations get abort rules
    assert set(by_policy) == {"raw-tables-to-parquet, logs-to-zstd, checkpoints"}
    cp = by_policy["raw-tables-to-parquet, logs-to-zstd, checkpoints"]
    assert cp.action == "lifecycle" and cp.key is None
    assert cp.params.rule_ids == ["leanlake-raw-tables-to-parquet-1", "leanlake-logs-to-zstd-1",
                                  "leanlake-checkpoints-1", "leanlake-checkpoints-2"]


def test_plan_buckets_intelligent_tiering():
    policies = ps({"name": "cold", "bucket": BUCKET, "filters": {"prefix": "archive/"},
                   "actions": [{"intelligent_tiering": {"archive_days": 90}}]})
    [d] = plan_buckets(policies)
    assert d.action == "intelligent_tiering" and d.params.configurations[0]["Id"] == "leanlake-cold"
    assert one(policies, ref("archive/x")).reason == "handled by the bucket's Intelligent-Tiering configuration"


# --- Totals and streaming -------------------------------------------------------------------------------------

def test_totals_per_policy_and_overall(lake):
    refs = [ref("raw/a.csv", size=100 * MiB), ref("raw/b.csv", size=100),  # under the 1 KiB size filter: unmatched
            ref("tmp/a.tmp", age_days=9), ref("checkpoints/c"), ref("tmp/b.tmp", age_days=1)]
    decisions = list(plan_objects(refs, lake, NOW))
    t = totals(decisions)
    assert t["overall"]["decisions"] == 4
    assert t["overall"]["actions"] == {"convert": 1, "expire": 1, "skip": 2}
    assert t["policies"]["raw-tables-to-parquet"]["actions"] == {"convert": 1}
    acted = [d for d in decisions if d.action != "skip"]
    assert t["overall"]["monthly_usd_saved"] == pytest.approx(sum(d.monthly_usd_saved for d in acted), abs=1e-6)
    running = Totals()
    assert list(running.watch(decisions)) == decisions
    assert running.as_dict() == t


def _refs(n):
    base = NOW - timedelta(days=100)
    kinds = ("raw/d/f{}.csv", "logs/l{}.log.gz", "checkpoints/c{}.pt", "tmp/t{}.tmp", "other/o{}")
    for i in range(n):
        yield ObjectRef(BUCKET, kinds[i % 5].format(i), size=2000 + i * 37, last_modified=base, storage_class="STANDARD")


def test_streams_with_constant_memory(lake):
    def peak(n):
        tracemalloc.start()
        t = Totals()
        for _ in t.watch(plan_objects(_refs(n), lake, NOW)):
            pass
        _, top = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        return top, t

    small, _ = peak(2_000)
    large, t = peak(20_000)
    assert t.overall.decisions == 16_000
    assert large < small * 2 + 200_000  # no per-object growth


def test_is_lazy(lake):
    gen = plan_objects(_refs(10**9), lake, NOW)
    assert next(gen).key == "raw/d/f0.csv"
