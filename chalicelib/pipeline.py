"""The one path every trigger takes: ObjectRef → policies.match → Decision → action → Outcome → ledger.

Triggers differ only in where refs come from: ``handle_uploads`` takes the refs of upload
events (after HEAD, the truth, and the loop guard); ``chalicelib.sweep`` takes listed objects.

Example:
    >>> ctx = RunContext(policies=load_policies(["policies"]), s3=client())    # doctest: +SKIP
    >>> outcomes = handle_uploads([ObjectRef("ml-lake", "raw/a.csv")], ctx, Ledger())  # doctest: +SKIP
"""

from __future__ import annotations

import time
from typing import Iterable
from urllib.parse import unquote_plus

from chalicelib import s3 as s3util
from chalicelib.actions import REGISTRY, Action, StorageClass
from chalicelib.context import RunContext
from chalicelib.decision import Decision, Outcome
from chalicelib.deletion import Target
from chalicelib.errors import describe_error
from chalicelib.ledger import Ledger
from chalicelib.log import logger
from chalicelib.plan import deletes, locked, plan_objects
from chalicelib.refs import RESERVED_PREFIX, ObjectRef

#: Actions that act on one object at a time, on upload and in sweeps: those registered with scope ``object``.
OBJECT_ACTIONS = tuple(name for name, cls in REGISTRY.items() if cls.scope == "object")


def ref_from_head(head: s3util.Head) -> ObjectRef:
    return ObjectRef(bucket=head.bucket, key=head.key, size=head.size, etag=head.etag, version_id=head.version_id,
                     storage_class=head.storage_class, last_modified=head.last_modified, tags=head.tags)


def action_for(decision: Decision, ctx: RunContext) -> Action | None:
    """The action a decision carries out: the policy's own, or, for a transition step the sweep runs
    (Lifecycle can't filter by suffix), a ``storage_class`` move to that step's class."""
    if decision.action == "storage_class" and decision.params.get("via") == "transition":
        return StorageClass(storage_class=decision.params["storage_class"])
    return ctx.policies.named(decision.policy).policy.action(decision.action)


def deletion_guard(decision: Decision, ctx: RunContext) -> Outcome | None:
    """For a write whose source will be deleted: a skip (or error) when that deletion can't happen, before
    anything is written — the run's deletion cap is spent, or the source is locked (as ``plan`` says)."""
    if not deletes(decision) or decision.key is None or ctx.dry_run:
        return None
    deletions = ctx.deletions_in(decision.bucket)
    capped = deletions.admit(1)
    if capped:
        return Outcome(decision, "skip", f"source would not be deleted: {capped}; not converted in this run")
    if not deletions.lock_enabled() and not deletions.refused:
        return None
    why = deletions.lock_reason(Target(decision.key, version_id=decision.ref.version_id if decision.ref else None))
    if deletions.refused:
        return Outcome(decision, "error", f"not converted: {deletions.refused}")
    return Outcome(decision, "skip", locked(decision, why, ctx.policies).reason) if why else None


def execute(decision: Decision, ctx: RunContext) -> Outcome:
    """Act on one object-level decision; an exception becomes an ``error`` Outcome, never a crash."""
    action = action_for(decision, ctx)
    started = time.monotonic()
    try:
        if action is None:
            raise LookupError(f"policy {decision.policy!r} has no {decision.action} action")
        return deletion_guard(decision, ctx) or action.execute(decision, ctx)
    except Exception as exc:  # one object's failure must not stop the others
        reason, transient = describe_error(exc)
        logger.exception(f"{decision.action} s3://{decision.bucket}/{decision.key} failed: {reason}")
        return Outcome(decision, "error", reason, seconds=time.monotonic() - started, detail={"transient": transient})


def _is_object_policy(ctx: RunContext, decision: Decision) -> bool:
    return any(a.scope == "object" for a in ctx.policies.named(decision.policy).policy.actions)


def decide_and_act(refs: Iterable[ObjectRef], ctx: RunContext, ledger: Ledger) -> list[Outcome]:
    """Plan the refs and execute their object-level decisions; skips of object policies are recorded too."""
    outcomes = []
    for decision in plan_objects(refs, ctx.policies, ctx.now):
        if decision.action in OBJECT_ACTIONS:
            outcomes.append(ledger.record(execute(decision, ctx)))
        elif decision.action == "skip" and _is_object_policy(ctx, decision):
            outcomes.append(ledger.record(Outcome(decision, "skip", decision.reason)))
    return outcomes


def _resolve(ref: ObjectRef, ctx: RunContext, key_maybe_encoded: bool) -> s3util.Head | None:
    """HEAD the object an event names; where the event's key encoding is undocumented, try decoding once."""
    with_tags = ctx.policies.needs_tags(ref.bucket)
    head = s3util.head(ctx.s3, ref.bucket, ref.key, with_tags=with_tags)
    if head is None and key_maybe_encoded and unquote_plus(ref.key) != ref.key:
        head = s3util.head(ctx.s3, ref.bucket, unquote_plus(ref.key), with_tags=with_tags)
    return head


def handle_uploads(refs: Iterable[ObjectRef], ctx: RunContext, ledger: Ledger, *,
                   key_maybe_encoded: bool = False) -> list[Outcome]:
    """Handle upload events: ignore buckets no policy names, leanlake's own objects and in-place copies."""
    outcomes: list[Outcome] = []
    for ref in refs:
        if not ctx.policies.for_bucket(ref.bucket) or ref.key.startswith(RESERVED_PREFIX):
            logger.debug(f"ignored s3://{ref.bucket}/{ref.key}: no policy names this bucket, or reserved prefix")
            continue
        head = _resolve(ref, ctx, key_maybe_encoded)
        if head is None:
            logger.info(f"ignored {ref.uri}: it no longer exists")
            continue
        if head.marker:
            logger.debug(f"ignored {ref.uri}: written by leanlake ({head.marker}), loop guard")
            continue
        outcomes.extend(decide_and_act([ref_from_head(head)], ctx, ledger))
    return outcomes
