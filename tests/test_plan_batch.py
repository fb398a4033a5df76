"""Planning in batches decides exactly what planning one object at a time decides, in the same order.

``plan_objects`` plans ``BATCH`` refs at a time: policies are matched on the batch's keys together, each
policy's actions decide on all its matched refs at once and price them a column at a time, and the
decisions are put back in the order of the refs and, for each ref, of its policies. These tests feed
the same refs through a batch and one by one and compare every field, the reason and params included.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chalicelib import economics as econ
from chalicelib.plan import BATCH, plan_objects
from chalicelib.policy import PolicySet
from chalicelib.policy.models import Settings
from chalicelib.refs import ObjectRef

NOW = datetime(2026, 11, 27, tzinfo=timezone.utc)
#: Policies whose filters overlap (one object can match three), across two buckets, with every per-object action.
POLICIES: list[dict[str, Any]] = [
    {"name": "tables", "bucket": ["lake-a", "lake-b"], "filters": {"prefix": ["raw/", "raw/2026/", "landing/"], "suffix": [".csv", ".json.gz"]},
     "actions": [{"convert": {"destination": "curated/{rel_dir}{stem}.parquet", "source": "delete"}}]},
    {"name": "logs", "bucket": "lake-a", "filters": {"prefix": "logs/", "suffix": ".gz"},
     "actions": [{"recompress": {"codec": "zstd", "source": "storage_class:GLACIER_IR"}}]},
    {"name": "old-anything", "bucket": ["lake-a", "lake-b"], "filters": {"suffix": [".csv", ".gz", ".bin"], "size": {"min": "1 KiB"}},
     "actions": [{"transition": [{"days": 30, "class": "STANDARD_IA"}, {"days": 120, "class": "GLACIER_IR"}]}, {"expire": {"days": 400}}]},
    {"name": "cold", "bucket": "lake-b", "filters": {"prefix": ["r", "logs/"]},
     "actions": [{"storage_class": "ONEZONE_IA"}, {"expire": {"days": 200, "versions": "all"}}]},
    {"name": "tagged", "bucket": "lake-a", "filters": {"prefix": "raw/", "tags": {"keep": "no"}}, "actions": [{"expire": {"days": 10}}]},
]
KEYS = ("raw/{i}/part.csv", "raw/2026/{i}.CSV", "landing/x/{i}.json.gz", "logs/app/{i}.log.gz", "misc/{i}.bin", "raw/{i}.txt",
        "_leanlake/audit/{i}.csv", "r{i}.gz", "curated/{i}.parquet")
CLASSES = (None, "STANDARD", "STANDARD_IA", "GLACIER_IR", "DEEP_ARCHIVE", "ONEZONE_IA", "INTELLIGENT_TIERING")

refs_strategy = st.lists(st.builds(
    lambda bucket, shape, i, size, age, cls, tags: ObjectRef(bucket, KEYS[shape].format(i=i), size=size, storage_class=cls,
                                                             last_modified=None if age is None else NOW - timedelta(days=age),
                                                             tags=tags),
    st.sampled_from(["lake-a", "lake-b"]), st.integers(0, len(KEYS) - 1), st.integers(0, 50),
    st.one_of(st.none(), st.integers(0, 2**40)), st.one_of(st.none(), st.floats(0, 1000)), st.sampled_from(CLASSES),
    st.sampled_from([{}, {"keep": "no"}, {"keep": "yes"}])), max_size=60)


def _fields(decisions: list[Any]) -> list[tuple[Any, ...]]:
    return [(d.bucket, d.key, d.policy, d.action, d.reason, d.monthly_usd_saved, d.monthly_kgco2e_saved, d.one_off_usd,
             None if d.params is None else d.params.as_dict(), None if d.by is None else d.by.name, d.ref) for d in decisions]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(refs=refs_strategy, objective=st.sampled_from(["usd", "co2e"]), region=st.sampled_from(["us-east-1", "eu-west-1"]))
def test_a_batch_decides_what_one_object_at_a_time_decides(refs, objective, region):
    policies = PolicySet.from_dicts(POLICIES, Settings(objective=objective, region=region, horizon_days=180))
    one_by_one = [d for ref in refs for d in plan_objects([ref], policies, NOW)]
    assert _fields(list(plan_objects(refs, policies, NOW))) == _fields(one_by_one)


def test_batches_longer_than_one_keep_the_order_of_refs_and_policies():
    """A ref matched by three policies gets their three decisions in the policies' order, between its neighbours'."""
    policies = PolicySet.from_dicts(POLICIES)
    refs = [ObjectRef("lake-b" if i % 3 else "lake-a", f"raw/{i}/part.csv", size=2**20 + i, last_modified=NOW - timedelta(days=i % 500), tags={})
            for i in range(2 * BATCH + 7)]
    decisions = list(plan_objects(refs, policies, NOW))
    expected = [(ref.bucket, ref.key, lp.policy.name) for ref in refs for lp, _ in policies.matches(ref)]
    assert [(d.bucket, d.key, d.policy) for d in decisions] == expected
    assert {d.policy for d in decisions} == {"tables", "old-anything", "cold"}


@given(sizes=st.lists(st.floats(0, 2**45), max_size=20), ages=st.lists(st.one_of(st.none(), st.floats(0, 400)), min_size=20, max_size=20),
       cls=st.sampled_from(CLASSES[1:]))
def test_the_columns_price_each_object_as_the_one_object_functions_do(sizes, ages, cls):
    ages = ages[:len(sizes)]
    usd, kgco2e, one_off, _, _ = econ.conversions(sizes, [s * 0.2 for s in sizes], cls, "us-east-1", ages, "delete")
    assert [(e.monthly_usd_saved, e.monthly_kgco2e_saved, e.one_off_usd)
            for e in (econ.conversion(s, s * 0.2, cls, age_days=a) for s, a in zip(sizes, ages, strict=True))] == \
        list(zip(usd, kgco2e, one_off, strict=True))
    moved = econ.class_changes(sizes, "STANDARD", cls, "us-east-1", ages) if cls != "STANDARD" else None
    if moved is not None:
        assert [econ.class_change(s, "STANDARD", cls, age_days=a).monthly_usd_saved for s, a in zip(sizes, ages, strict=True)] == moved[0]
