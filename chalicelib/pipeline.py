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

from chalicelib import economics as econ
from chalicelib import s3 as s3util
from chalicelib.actions import REGISTRY
from chalicelib.context import RunContext
from chalicelib.decision import Decision, Outcome
from chalicelib.deletion import Target
from chalicelib.errors import describe_error
from chalicelib.ledger import Ledger
from chalicelib.log import logger
from chalicelib.plan import deletes, plan_objects
from chalicelib.refs import RESERVED_PREFIX, ObjectRef


def ref_from_head(head: s3util.Head) -> ObjectRef:
    return ObjectRef(bucket=head.bucket, key=head.key, size=head.size, etag=head.etag, version_id=head.version_id,
                     storage_class=head.storage_class, last_modified=head.last_modified, tags=head.tags)


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
    if why and decision.by is not None:
        return Outcome(decision, "skip", decision.by.when_locked(decision, why).reason)
    return None


class Throughput:
    """The conversion throughput seen in this process (MiB/s of source read), starting from the model's assumption."""

    def __init__(self) -> None:
        self.mib_per_s = float(econ.value("assumptions", "lambda_read_mib_per_s"))

    def observe(self, outcome: Outcome) -> None:
        """Learn from a written output (a running average weighted towards recent objects over 1 MiB)."""
        if outcome.status == "ok" and outcome.output_key and outcome.seconds > 0 and outcome.bytes_before >= 1 << 20:
            seen = outcome.bytes_before / (1 << 20) / outcome.seconds
            self.mib_per_s = 0.7 * self.mib_per_s + 0.3 * seen


THROUGHPUT = Throughput()


def time_guard(decision: Decision, ctx: RunContext) -> Outcome | None:
    """A skip for a write that cannot finish in the time this invocation has left, at the throughput seen.

    Lambda stops an invocation at 15 minutes, Batch Operations' tasks too: such an object is left
    for ``leanlake apply`` on a machine, which the reason says (and ``ObjectsLeftForApply`` counts)."""
    if ctx.time_left is None or decision.by is None or not decision.by.writes_output or not decision.ref or not decision.ref.size:
        return None
    left = ctx.time_left()
    needed = decision.ref.size / (1 << 20) / THROUGHPUT.mib_per_s
    if needed <= left:
        return None
    return Outcome(decision, "skip", f"{decision.ref.size:,} B would take about {needed:,.0f} s at {THROUGHPUT.mib_per_s:.1f} MiB/s, "
                   f"more than the {max(left, 0):,.0f} s this Lambda invocation has left; run `leanlake apply` on a machine "
                   "for it", detail={"left_for_apply": True})


def act(decision: Decision, ctx: RunContext) -> list[Outcome]:
    """Carry out one object-level decision through the action that made it; an exception becomes an
    ``error`` Outcome, never a crash. Deletions may come back later, in their batch (``Deletions.flush``)."""
    started = time.monotonic()
    try:
        if decision.by is None:
            raise LookupError(f"no action carries out a {decision.action} decision")
        guarded = time_guard(decision, ctx) or deletion_guard(decision, ctx)
        if guarded:
            return [guarded]
        outcomes = decision.by.act(decision, ctx)
        for outcome in outcomes:
            THROUGHPUT.observe(outcome)
        return outcomes
    except Exception as exc:  # one object's failure must not stop the others
        reason, transient = describe_error(exc)
        logger.exception(f"{decision.action} s3://{decision.bucket}/{decision.key} failed: {reason}")
        return [Outcome(decision, "error", reason, seconds=time.monotonic() - started, detail={"transient": transient})]


def acts_on_upload(decision: Decision) -> bool:
    """True for decisions an upload runs at once: those of object-scope kinds (deletions wait for the sweep)."""
    kind = REGISTRY.get(decision.action)
    return kind is not None and kind.scope == "object" and decision.by is not None


def _is_object_policy(ctx: RunContext, decision: Decision) -> bool:
    return any(a.scope == "object" for a in ctx.policies.named(decision.policy).policy.actions)


def decide_and_act(refs: Iterable[ObjectRef], ctx: RunContext, ledger: Ledger) -> list[Outcome]:
    """Plan the refs and carry out their object-level decisions; skips of object policies are recorded too."""
    outcomes: list[Outcome] = []
    for decision in plan_objects(refs, ctx.policies, ctx.now):
        if acts_on_upload(decision):
            outcomes.extend(ledger.record(outcome) for outcome in act(decision, ctx))
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
