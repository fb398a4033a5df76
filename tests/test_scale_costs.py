"""bench/scale_costs.py: its totals equal hand-computed ones from the model, docs/scale.md holds exactly
what it prints, and the S3 requests per conversion it prices are what leanlake sends (counted on moto)."""

from __future__ import annotations

import collections
import importlib.util
import subprocess
import sys
import textwrap
from datetime import datetime, timezone
from pathlib import Path

import pytest

from chalicelib import pipeline
from chalicelib.context import RunContext
from chalicelib.economics import model
from chalicelib.plan import plan_batches
from chalicelib.policy import load_policies
from chalicelib.sweep import list_objects, with_locks

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "bench" / "scale_costs.py"
approx = pytest.approx


@pytest.fixture(scope="module")
def sc():
    spec = importlib.util.spec_from_file_location("scale_costs", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules["scale_costs"] = module  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def a(sc):
    return sc.Assumptions.from_model()


def test_listing_1m_objects_is_1000_list_requests_at_the_list_price(sc, a):
    sweep = sc.plan_sweep(1_000_000, a, inventory=False)
    assert sweep.list_requests == 1_000
    assert sweep.list_usd == approx(1_000 * 0.005 / 1000)  # model: operations.s3.list_per_1000 = $0.005
    assert sweep.invocations == 1
    seconds = 1_000 * 0.2 + 1_000_000 * 43e-6 + 2 * 0.05  # pages + planning + checkpoint GET/PUT
    assert sweep.gb_s == approx(seconds * 3538 / 1024)
    assert sweep.lambda_usd == approx(seconds * 3538 / 1024 * 1.66667e-05 + 0.2e-6)


def test_a_billion_objects_cost_their_inventory_fee_and_cannot_be_listed_in_a_day(sc, a):
    inventory = sc.plan_sweep(1_000_000_000, a, inventory=True)
    assert inventory.inventory_usd == approx(1_000 * 0.0025)
    listing = sc.plan_sweep(1_000_000_000, a, inventory=False)
    assert listing.list_usd == approx(1_000_000 * 0.005 / 1000) == approx(5.0)
    assert listing.seconds > 86_400 > inventory.seconds
    assert listing.invocations == 280  # ceil((1,000,000 pages × 0.2 s + 1e9 × 43 µs) / 870 s)


def test_backfill_fees_by_route(sc, a):
    ops = sc.backfill_batch_operations(1_000_000_000, a)
    assert ops.converted == 100_000_000
    assert ops.batch_usd == approx(0.25 + 100 * 1.00)
    assert ops.lambda_invocations == 100_000_000
    fan = sc.backfill_sqs(1_000_000, a)
    # 100,000 items, 50 per message: 2,000 messages in 200 batches of 10 × 14.6 KiB = 3 chunks of 64 KiB each;
    # the poller receives 200 full batches (3 chunks each) and deletes them in 200 DeleteMessageBatch requests
    assert fan.messages == 2_000
    assert fan.sqs_requests == 200 * 3 + 200 * 3 + 200
    assert fan.sqs_usd == approx(1_400 * 0.40 / 1e6)
    # 8 GET-priced and 3 PUT-priced requests (and a free DELETE) per converted object
    assert fan.s3_usd == approx(100_000 * (8 * 0.0004 + 3 * 0.005) / 1000)
    assert fan.act_seconds_per_object == approx(8 / 25 + 11 * 0.05)


def test_the_doc_holds_exactly_what_the_script_prints():
    printed = subprocess.run([sys.executable, str(SCRIPT)], capture_output=True, text=True, check=True, cwd=ROOT).stdout
    assert "| 1M | ListObjectsV2 | 1,000 | $0.0050 |" in printed
    doc = (ROOT / "docs" / "scale.md").read_text()
    assert printed in doc, "docs/scale.md is stale: paste the output of .venv/bin/python bench/scale_costs.py"


def test_a_bad_option_is_one_line_naming_it():
    done = subprocess.run([sys.executable, str(SCRIPT), "--fraction", "0"], capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines()[-1].endswith("--fraction 0.0: must be above 0 and at most 1")
    assert done.stdout == ""


def _policy(tmp_path: Path, bucket: str) -> Path:
    path = tmp_path / f"{bucket}.yaml"
    path.write_text(textwrap.dedent(f"""\
        settings: {{region: us-east-1}}
        policies:
          - name: tables
            bucket: {bucket}
            filters: {{prefix: raw/, suffix: .csv}}
            actions: [{{convert: {{source: delete}}}}]
        """))
    return path


def _requests_of_converting(s3, bucket: str, tmp_path: Path, objects: int) -> collections.Counter:
    body = ("id,kind\n" + "".join(f"{i},{'ab'[i % 2]}\n" for i in range(2000))).encode()
    for i in range(objects):
        s3.put_object(Bucket=bucket, Key=f"raw/{i}.csv", Body=body)
    policies = load_policies([_policy(tmp_path, bucket)])
    ctx = RunContext(policies=policies, s3=s3)
    planned = [d for p in plan_batches(list_objects(s3, bucket, policies), policies, datetime.now(timezone.utc)) for d in p.decisions()]
    calls: collections.Counter = collections.Counter()

    def count(model, **_):
        calls[model.name] += 1

    s3.meta.events.register("before-call.s3", count)
    try:  # what a sweep does per object once it is listed and planned: read lock state (with_locks), then act
        decisions = [d for d in with_locks(ctx, bucket, planned) if d.action == "convert"]
        assert len(decisions) == objects
        outcomes = [o for d in decisions for o in pipeline.act(d, ctx)]
    finally:
        s3.meta.events.unregister("before-call.s3", count)
    assert [o.status for o in outcomes] == ["ok"] * objects, [o.reason for o in outcomes]
    assert not [k for k in (o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix="raw/").get("Contents", [])) if k.endswith(".csv")]
    assert calls.pop("GetObjectLockConfiguration", 0) <= 1  # once per bucket, not per object
    return calls


def test_the_priced_requests_per_conversion_are_the_ones_leanlake_sends(s3, bucket, tmp_path):
    measured = _requests_of_converting(s3, bucket, tmp_path, objects=3)
    per_object = model()["operations"]["s3"]["requests_per_converted_object"]["values"]
    assert dict(measured) == {api: 3 * n for api, n in per_object.items()}


def test_an_object_lock_bucket_adds_the_modelled_heads(s3, tmp_path):
    bucket = f"scale-lock-{tmp_path.name[-12:].lower().replace('_', '-')}"
    s3.create_bucket(Bucket=bucket, ObjectLockEnabledForBucket=True)
    measured = _requests_of_converting(s3, bucket, tmp_path, objects=2)
    ops = model()["operations"]["s3"]
    expected = dict(ops["requests_per_converted_object"]["values"])
    expected["HeadObject"] += ops["extra_heads_per_deletion_object_lock"]["value"]
    assert dict(measured) == {api: 2 * n for api, n in expected.items()}

