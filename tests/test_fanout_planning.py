"""A sweep continuation plans each listing page as a batch and gives every key the decisions that planning the
object alone gives, in order: with tag filters (planned 50 objects at a time, tags read first), across pages that
grow from 100 keys, from a checkpoint's last key on, and one object at least when the budget is spent."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone

import pytest

from chalicelib import fanout
from chalicelib.context import RunContext
from chalicelib.plan import plan_objects
from chalicelib.policy import PolicySet
from chalicelib.refs import ObjectRef
from chalicelib.sweep import with_tags

AS_OF = datetime.now(timezone.utc) + timedelta(days=10)  # the objects put now are ten days old


def _policies(bucket: str) -> PolicySet:
    return PolicySet.from_dicts([
        {"name": "scratch", "bucket": bucket, "filters": {"prefix": "tmp/"}, "actions": [{"expire": {"days": 7}}]},
        {"name": "tagged", "bucket": bucket, "filters": {"prefix": "tmp/", "tags": {"cold": "yes"}},
         "actions": [{"storage_class": "GLACIER_IR"}]},
        {"name": "tables", "bucket": bucket, "filters": {"prefix": "raw/", "suffix": ".csv"},
         "actions": [{"convert": {"destination": "curated/{rel_dir}{stem}.parquet"}}]},
    ])


@pytest.fixture
def listed_lake(s3, bucket):
    keys = [f"tmp/{i:04d}.bin" for i in range(260)] + [f"raw/{i:04d}.csv" for i in range(300)] + ["_leanlake/x.json"]

    def put(key: str) -> None:
        tagging = "cold=yes" if key.startswith("tmp/") and int(key[4:8]) % 3 == 0 else ""
        s3.put_object(Bucket=bucket, Key=key, Body=b"a,b\n" * 400, Tagging=tagging)

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(put, keys))
    return bucket


def _expected(s3, bucket: str, policies: PolicySet, after: str = "") -> list[tuple[str, list[tuple]]]:
    """Each listed key after ``after`` (in its prefix, then the prefixes after it) with its decisions, the objects
    planned one at a time."""
    out = []
    prefixes = fanout.listing_prefixes(policies, bucket)
    first = prefixes.index(after.partition("/")[0] + "/") if after else 0
    for prefix in prefixes[first:]:
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            for item in page.get("Contents", ()):
                if prefix == prefixes[first] and item["Key"] <= after:
                    continue
                ref = ObjectRef(bucket, item["Key"], item["Size"], item["ETag"].strip('"'), None, item.get("StorageClass"),
                                item["LastModified"])
                decided = plan_objects(with_tags(s3, [ref], policies), policies, AS_OF)
                out.append((item["Key"], [(d.policy, d.action, d.reason, d.monthly_usd_saved) for d in decided]))
    return out


def _listed(s3, bucket: str, policies: PolicySet, budget_s: float, after: str = "") -> list[tuple[str, list[tuple]]]:
    ctx = RunContext(policies=policies, s3=s3, now=AS_OF)
    prefixes = fanout.listing_prefixes(policies, bucket)
    cp = fanout.Checkpoint(run="r", bucket=bucket, as_of=ctx.now.isoformat(), policies=None, cap=0, prefixes=prefixes,
                           prefix_index=prefixes.index(after.partition("/")[0] + "/") if after else 0, start_after=after)
    return [(key, [(d.policy, d.action, d.reason, d.monthly_usd_saved) for d in decided])
            for key, decided in fanout._listed(ctx, cp, policies, fanout.Budget(seconds=budget_s))]


def test_a_continuation_decides_what_planning_each_object_alone_decides(s3, listed_lake):
    policies = _policies(listed_lake)
    got = _listed(s3, listed_lake, policies, 1e9)

    assert got == _expected(s3, listed_lake, policies)
    assert len(got) == 560 and not any(key.startswith("_leanlake/") for key, _ in got)
    tagged = {key for key, decided in got if any(policy == "tagged" for policy, *_ in decided)}
    assert tagged == {f"tmp/{i:04d}.bin" for i in range(0, 260, 3)}  # the tags were read, for each chunk of 50
    assert {action for _, decided in got for _, action, _, _ in decided} == {"skip", "convert"}


def test_a_continuation_goes_on_from_the_checkpoint_and_handles_one_object_when_out_of_budget(s3, listed_lake):
    policies = _policies(listed_lake)
    after = "tmp/0123.bin"
    assert _listed(s3, listed_lake, policies, 1e9, after) == _expected(s3, listed_lake, policies, after)
    [only] = _listed(s3, listed_lake, policies, 0.0, after)
    assert only[0] == "tmp/0124.bin"


def test_a_continuation_passes_leanlakes_own_objects_one_by_one_with_no_decisions(s3, bucket):
    """A bucket-wide policy lists ``_leanlake/`` too: a long run of leanlake's own objects is checkpointed past
    object by object, under the budget, as any other (never planned, never a tag read)."""
    keys = [f"_leanlake/audit/{i:03d}.jsonl" for i in range(120)] + ["data/a.bin"]
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda key: s3.put_object(Bucket=bucket, Key=key, Body=b"x"), keys))
    policies = PolicySet.from_dicts([{"name": "all-cold", "bucket": bucket, "filters": {"tags": {"cold": "yes"}},
                                      "actions": [{"storage_class": "GLACIER_IR"}]}])
    assert fanout.listing_prefixes(policies, bucket) == [""]

    everything = _listed(s3, bucket, policies, 1e9)
    assert [key for key, _ in everything] == keys
    assert all(decided == [] for key, decided in everything if key.startswith("_leanlake/"))
    assert [key for key, _ in _listed(s3, bucket, policies, 0.0)] == [keys[0]]  # out of budget: one, the first
