"""One action, one module: an action registered from outside is validated, planned, executed and
counted with nothing else changed, and outside ``chalicelib/actions/`` no module dispatches on a
particular action kind.

The throwaway action tags objects; it lives in this file only, the way a new action would live in
its own module under ``chalicelib/actions/``.
"""

from __future__ import annotations

import ast
import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import pytest

from chalicelib.actions import REGISTRY
from chalicelib.actions import permissions as s3calls
from chalicelib.actions.base import Action, Scope, register, unregister
from chalicelib.actions.planning import PolicyView
from chalicelib.context import RunContext
from chalicelib.decision import ActionParams, Decision, Outcome
from chalicelib.ledger import Ledger, count_metrics
from chalicelib.pipeline import handle_uploads
from chalicelib.plan import plan_objects, totals
from chalicelib.policy import PolicySet
from chalicelib.refs import ObjectRef
from chalicelib.sweep import sweep

ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True, slots=True)
class StampParams(ActionParams):
    value: str


class Stamp(Action):
    """Tag each matched object ``stamped=<value>``, unless it already has that tag."""

    name: ClassVar[str] = "stamp_for_test"
    scope: ClassVar[Scope] = "object"
    metric: ClassVar[str | None] = "ObjectsStamped"
    plan_rank: ClassVar[int] = 25
    s3_calls: ClassVar[s3calls.Calls] = (s3calls.Call("PutObjectTagging"),)

    value: str = "yes"

    def decide(self, ref: ObjectRef, prefix: str, view: PolicyView, age: float | None) -> Decision:
        if (ref.tags or {}).get("stamped") == self.value:
            return view.skip(ref, f"already stamped {self.value}")
        return Decision(ref.bucket, ref.key, view.name, self.name, f"stamp {self.value}", ref=ref,
                        params=StampParams(self.value), by=self)

    def execute(self, decision: Decision, ctx: RunContext) -> Outcome:
        assert isinstance(decision.params, StampParams)
        ctx.s3.put_object_tagging(Bucket=decision.bucket, Key=decision.key,
                                  Tagging={"TagSet": [{"Key": "stamped", "Value": decision.params.value}]})
        return Outcome(decision, "ok", f"stamped {decision.params.value}")


@pytest.fixture
def stamp():
    register(Stamp)
    yield Stamp
    unregister(Stamp.name)


def stamping(bucket: str) -> PolicySet:
    return PolicySet.from_dicts([{"name": "stamper", "bucket": bucket, "filters": {"prefix": "in/"},
                                  "actions": [{Stamp.name: {"value": "v1"}}]}])


def tags(s3, bucket: str, key: str) -> dict[str, str]:
    return {t["Key"]: t["Value"] for t in s3.get_object_tagging(Bucket=bucket, Key=key)["TagSet"]}


def test_a_registered_action_is_planned_executed_and_counted(stamp, s3, bucket):
    policies = stamping(bucket)
    assert isinstance(policies.named("stamper").policy.actions[0], Stamp)
    s3.put_object(Bucket=bucket, Key="in/a.bin", Body=b"a")
    s3.put_object(Bucket=bucket, Key="in/b.bin", Body=b"b")
    s3.put_object(Bucket=bucket, Key="out/c.bin", Body=b"c")

    planned = list(plan_objects([ObjectRef(bucket, "in/a.bin", size=1)], policies, ctx_now()))
    assert [(d.action, d.reason, d.params) for d in planned] == [(Stamp.name, "stamp v1", StampParams("v1"))]
    assert totals(planned)["overall"]["actions"] == {Stamp.name: 1}

    metrics = io.StringIO()
    ledger = Ledger(metrics_stream=metrics)
    report = sweep(RunContext(policies=policies, s3=s3), ledger)
    ledger.flush()
    assert tags(s3, bucket, "in/a.bin") == tags(s3, bucket, "in/b.bin") == {"stamped": "v1"}
    assert tags(s3, bucket, "out/c.bin") == {}
    assert report["totals"]["objects_stamped"] == 2
    [emf, by_action] = [json.loads(line) for line in metrics.getvalue().splitlines() if line.strip()]
    assert (emf["ObjectsStamped"], emf["policy"]) == ([2.0], "stamper")
    assert (by_action["action"], by_action["policy"], "ObjectsStamped" in by_action) == (Stamp.name, "stamper", False)


def test_a_registered_action_runs_on_upload_and_is_granted_what_it_calls(stamp, s3, bucket):
    policies = stamping(bucket)
    s3.put_object(Bucket=bucket, Key="in/new.bin", Body=b"n")
    [outcome] = handle_uploads([ObjectRef(bucket, "in/new.bin")], RunContext(policies=policies, s3=s3), Ledger(emit_metrics=False))
    assert (outcome.status, outcome.reason) == ("ok", "stamped v1")
    assert tags(s3, bucket, "in/new.bin") == {"stamped": "v1"}
    assert "s3:PutObjectTagging" in s3calls.needs(s3calls.policy_calls(policies.named("stamper").policy)).objects
    assert count_metrics()[Stamp.name] == "ObjectsStamped"


def test_an_unregistered_action_is_refused_again(stamp):
    unregister(Stamp.name)
    with pytest.raises(Exception, match="an action is one of"):
        stamping("some-bucket")
    register(Stamp)  # for the fixture's teardown
    assert Stamp.name in REGISTRY


def ctx_now():
    from datetime import datetime, timezone

    return datetime(2026, 1, 1, tzinfo=timezone.utc)


# --- nothing outside chalicelib/actions/ dispatches on an action kind -----------------------------------

def _dispatch_on_kinds(path: Path) -> list[str]:
    """Places in ``path`` that compare with, index by, or import a particular registered action."""
    kinds = set(REGISTRY)
    classes = {cls.__name__ for cls in REGISTRY.values()}
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Compare):
            operands = [node.left, *node.comparators]
            literals = [c for o in operands for c in ([o] if isinstance(o, ast.Constant) else getattr(o, "elts", []))]
            found += [f"{path}:{node.lineno}: compares with {c.value!r}" for c in literals
                      if isinstance(c, ast.Constant) and c.value in kinds]
        elif isinstance(node, ast.Subscript) and isinstance(node.slice, ast.Constant) and node.slice.value in kinds:
            found.append(f"{path}:{node.lineno}: indexes by {node.slice.value!r}")
        elif isinstance(node, ast.Call) and any(isinstance(a, ast.Constant) and a.value in kinds for a in node.args):
            if isinstance(node.func, ast.Attribute) and node.func.attr in ("get", "action", "named"):
                found.append(f"{path}:{node.lineno}: looks up {node.func.attr}({node.args[0].value!r})")  # type: ignore[attr-defined]
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("chalicelib.actions"):
            found += [f"{path}:{node.lineno}: imports {a.name}" for a in node.names if a.name in classes]
        elif isinstance(node, ast.Attribute) and node.attr in classes:
            found.append(f"{path}:{node.lineno}: names {node.attr}")
    return found


def test_outside_the_actions_package_no_module_dispatches_on_a_particular_action():
    modules = [p for p in (ROOT / "chalicelib").rglob("*.py") if "actions" not in p.relative_to(ROOT).parts]
    assert len(modules) > 20
    assert [place for p in modules for place in _dispatch_on_kinds(p)] == []


def test_the_dispatch_check_sees_a_dispatch(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("from chalicelib.actions.lifecycle import Expire\n"
                   "def f(d):\n    return d.action == 'expire' or d.action in ('convert',) or REGISTRY['recompress']\n")
    assert len(_dispatch_on_kinds(bad)) == 4
