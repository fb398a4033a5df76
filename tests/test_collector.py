"""The garbage collector set for streaming (``chalicelib.collector``): once per process, by planning."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

#: Run in a fresh interpreter: the test process's own collector has long been set by other tests.
CHILD = """
import gc
from datetime import datetime, timezone
from chalicelib import collector
from chalicelib.plan import plan_objects
from chalicelib.policy import PolicySet
from chalicelib.refs import ObjectRef

policies = PolicySet.from_dicts([{"name": "tmp", "bucket": "lake", "filters": {"prefix": "tmp/", "suffix": ".tmp"},
                                  "actions": [{"expire": {"days": 1}}]}])
now = datetime(2026, 1, 1, tzinfo=timezone.utc)
old = datetime(2025, 12, 1, tzinfo=timezone.utc)
before = (gc.get_threshold(), gc.get_freeze_count())
planned = plan_objects([ObjectRef("lake", "tmp/a.tmp", 1, last_modified=old)], policies, now)
untouched_until_run = gc.get_threshold() == before[0]
first = list(planned)
after_first = (gc.get_threshold(), gc.get_freeze_count())
kept = [object() for _ in range(1000)]  # made after the first plan: must never be frozen
list(plan_objects([ObjectRef("lake", "tmp/b.tmp", 1, last_modified=now)], policies, now))
after_second = (gc.get_threshold(), gc.get_freeze_count())
print(before[0][0], untouched_until_run, after_first[0][0] == collector.YOUNG_THRESHOLD, after_first[1] > 0,
      after_second == after_first, [d.action for d in first], gc.isenabled())
"""


def test_planning_sets_the_collector_once_and_freezes_only_what_lived_before():
    out = subprocess.run([sys.executable, "-c", CHILD], capture_output=True, text=True, check=True, cwd=ROOT).stdout.split()
    assert out == ["700", "True", "True", "True", "True", "['expire']", "True"]


def test_a_raised_threshold_is_not_lowered():
    """A process that collects even less often (set by its owner) keeps its setting."""
    code = ("import gc; gc.set_threshold(200_000, 10, 10)\n"
            "from chalicelib import collector; collector.for_streaming(); print(gc.get_threshold()[0])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT).stdout
    assert out.strip() == "200000"
