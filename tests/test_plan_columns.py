"""Planning on columns: a batch's totals counted from its columns are the totals of its Decisions, to the last bit.

``plan_batch`` plans a batch of one bucket's objects held as Arrow columns; its decisions are segments
(``chalicelib.verdicts``) that become Decisions only when read. ``Totals.add_planned`` counts a planned
batch without making them, and must give what ``Totals.add`` of each Decision gives: the same counts,
bytes and floats (its sums are added to in the Decisions' order).
"""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
from datetime import datetime, timezone
from operator import attrgetter

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chalicelib.actions.planning import PolicyView
from chalicelib.columns import Objects, floats, int64s, strings, timestamps
from chalicelib.plan import Totals, plan_batch, plan_objects
from chalicelib.policy import PolicySet
from chalicelib.policy.models import Settings
from leanlake.cli import _json_encode
from tests.test_plan_batch import NOW, POLICIES, refs_strategy


def _planned(refs, policies):
    views = {id(lp): PolicyView.of(lp, "us-east-1") for lp in policies.loaded}
    for bucket, run in itertools.groupby(refs, key=attrgetter("bucket")):
        yield plan_batch(Objects.from_refs(bucket, list(run)), policies, NOW, views)


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(refs=refs_strategy, objective=st.sampled_from(["usd", "co2e"]), region=st.sampled_from(["us-east-1", "eu-west-1"]))
def test_totals_from_columns_are_the_totals_of_the_decisions(refs, objective, region):
    policies = PolicySet.from_dicts(POLICIES, Settings(objective=objective, region=region, horizon_days=180))
    from_decisions, from_columns = Totals(), Totals()
    for planned in _planned(refs, policies):
        for decision in planned.decisions():
            from_decisions.add(decision)
        from_columns.add_planned(planned)
    expected, got = from_decisions.as_dict(), from_columns.as_dict()
    assert got == expected
    # the floats before rounding too
    for name, acc in from_decisions.policies.items():
        mine = from_columns.policies[name]
        assert (mine.monthly_usd_saved.hex(), mine.monthly_kgco2e_saved.hex(), mine.one_off_usd.hex()) == \
            (acc.monthly_usd_saved.hex(), acc.monthly_kgco2e_saved.hex(), acc.one_off_usd.hex())
    assert from_columns.overall.monthly_usd_saved.hex() == from_decisions.overall.monthly_usd_saved.hex()


def test_a_batch_made_from_columns_gives_back_the_objects():
    when = datetime(2026, 3, 1, 12, 30, 15, 123456, tzinfo=timezone.utc)
    batch = Objects("lake", strings(["raw/a.csv", "raw/b é.csv"]), int64s([10, None]), strings(["e1", None]),
                    strings([None, "v2"]), strings(["GLACIER", None]), timestamps([when, None]))
    [a, b] = batch.refs([0, 1])
    assert (a.bucket, a.key, a.size, a.etag, a.version_id, a.storage_class, a.last_modified) == \
        ("lake", "raw/a.csv", 10, "e1", None, "GLACIER", when)
    assert (b.key, b.size, b.etag, b.version_id, b.storage_class, b.last_modified) == ("raw/b é.csv", None, None, "v2", None, None)


def test_plan_objects_still_plans_refs_of_several_buckets_in_order():
    policies = PolicySet.from_dicts(POLICIES)
    from chalicelib.refs import ObjectRef

    refs = [ObjectRef("lake-a", "raw/1/part.csv", 5000, tags={}), ObjectRef("lake-b", "raw/2/part.csv", 5000),
            ObjectRef("lake-a", "misc/3.bin", 5000, tags={})]
    assert [(d.bucket, d.key) for d in plan_objects(refs, policies, NOW)] == \
        [(d.bucket, d.key) for ref in refs for d in plan_objects([ref], policies, NOW)]


def test_building_columns_and_planning_them_never_imports_pandas():
    """pyarrow imports pandas from pa.array(list) and pa.scalar: tens of MiB the planner has no use for."""
    code = (
        "import sys\n"
        "from tests.test_plan_columns import _planned\n"
        "from tests.test_plan_batch import POLICIES, NOW\n"
        "from chalicelib.plan import Totals\n"
        "from chalicelib.policy import PolicySet\n"
        "from chalicelib.refs import ObjectRef\n"
        "from datetime import timedelta\n"
        "refs = [ObjectRef('lake-a', f'raw/{i}/part.csv', 10**6 + i, storage_class='STANDARD', "
        "last_modified=NOW - timedelta(days=i), tags={}) for i in range(50)]\n"
        "t = Totals()\n"
        "for p in _planned(refs, PolicySet.from_dicts(POLICIES)):\n"
        "    t.add_planned(p); [d.reason for d in p.decisions()]\n"
        "assert t.overall.decisions > 0\n"
        "print('pandas' in sys.modules)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False", out.stderr


def test_floats_and_ints_keep_their_nulls():
    assert floats([None, 1.0, None]).null_count == 2
    assert int64s([]).to_pylist() == []


def test_a_listing_page_as_columns_reads_as_the_sweeps_refs():
    from datetime import timedelta

    from chalicelib.refs import ObjectRef

    when = datetime(2026, 5, 4, 3, 2, 1, 654000, tzinfo=timezone.utc)
    contents = [{"Key": "raw/a.csv", "Size": 12, "ETag": '"abc"', "StorageClass": "GLACIER_IR", "LastModified": when},
                {"Key": "_leanlake/audit/x.jsonl", "Size": 1, "ETag": '"d"', "LastModified": when},
                {"Key": "raw/é ü.json", "Size": 0, "LastModified": when - timedelta(days=400)}]
    batch = Objects.from_listing("lake", contents).without_reserved()
    expected = [ObjectRef("lake", item["Key"], item["Size"], item.get("ETag", "").strip('"'), None,
                          item.get("StorageClass") or "STANDARD", item["LastModified"])
                for item in contents if not item["Key"].startswith("_leanlake/")]
    assert batch.refs(range(len(batch))) == expected


@settings(max_examples=200, deadline=None)
@given(st.lists(st.one_of(st.none(), st.text(alphabet=st.characters(blacklist_categories=("Cs",))))))
def test_strings_read_back_as_given(values):
    assert strings(values).to_pylist() == values


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(refs=refs_strategy, objective=st.sampled_from(["usd", "co2e"]))
def test_json_lines_from_columns_are_the_decisions_rows(refs, objective):
    policies = PolicySet.from_dicts(POLICIES, Settings(objective=objective, horizon_days=180))
    for planned in _planned(refs, policies):
        rows = [d.as_dict() for d in planned.decisions()]
        assert planned.json_lines(orjson.dumps) == [orjson.dumps(row) for row in rows]  # to the byte, with orjson
        assert [json.loads(line) for line in planned.json_lines(_json_encode)] == rows  # and without
