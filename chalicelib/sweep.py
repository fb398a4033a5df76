"""The sweep: list a bucket (or read refs from elsewhere), decide per object, act, and record.

What Lifecycle can't express runs here (suffix filters, backfill of object actions, retention
with Object Lock awareness). Deleting goes through ``chalicelib.deletion`` (conditional on what
was decided, Object Lock read first and failing closed, capped, audited before and after):

- ``expire: {versions: marker}`` deletes the current version (a delete marker on versioned buckets),
  ``versions: all`` removes every version, each one checked for locks;
- at most ``settings.max_deletions`` deletions per run and bucket (every version, every converted
  source counts), then the run stops deleting and says so.

``plan`` tells the same truth ``apply`` acts on: on an Object Lock bucket the decisions that would
delete (``expire``, a conversion with ``source: delete``) read the object's retention and legal
hold, and a locked object's decision is a ``skip`` with the reason.

Example:
    >>> report = sweep(ctx, Ledger(), policy_names=["scratch"])   # doctest: +SKIP
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any, Callable, Iterable, Iterator

from chalicelib import listing
from chalicelib import s3 as s3util
from chalicelib.actions.lifecycle_rules import apply_to_bucket
from chalicelib.context import RunContext
from chalicelib.decision import Decision, Outcome
from chalicelib.deletion import Target
from chalicelib.errors import describe_error
from chalicelib.ledger import Ledger
from chalicelib.pipeline import act
from chalicelib.columns import Objects
from chalicelib.plan import Piece, Planned, decisions_of, deletes, plan_batches, plan_buckets
from chalicelib.policy import PolicySet
from chalicelib.policy.models import Filters
from chalicelib.policy.policyset import matched_prefix
from chalicelib.refs import RESERVED_PREFIX, ObjectRef

OnOutcome = Callable[[Outcome], None]


def listing_prefixes(policies: PolicySet, bucket: str) -> list[str]:
    """The prefixes to list so that every object the bucket's policies can match is listed exactly once.

        >>> ps = PolicySet.from_dicts([{"name": "a", "bucket": "lake", "filters": {"prefix": ["raw/", "raw/x/", "logs/"]},
        ...                             "actions": [{"convert": {}}]}])
        >>> listing_prefixes(ps, "lake")
        ['logs/', 'raw/']
    """
    wanted = [lp.policy.filters.prefix for lp in policies.for_bucket(bucket)]
    prefixes = [""] if any(not p for p in wanted) else sorted({p for ps in wanted for p in ps})
    return [p for p in prefixes if not any(p != q and p.startswith(q) for q in prefixes)]


def list_objects(s3: Any, bucket: str, policies: PolicySet) -> Iterator[Objects]:
    """A bucket's current objects under the policies' prefixes (each prefix listed once), as batches of about
    ``BATCH_OBJECTS`` objects held as columns (``listing.batches``: leanlake's own objects left out), each page
    read as columns (``listing.read_pages``)."""
    paginator = s3.get_paginator("list_objects_v2")
    pages = (page for prefix in listing_prefixes(policies, bucket) for page in paginator.paginate(Bucket=bucket, Prefix=prefix))
    yield from listing.batches(bucket, listing.read_pages(s3, pages))


def with_tags(s3: Any, refs: Iterable[ObjectRef], policies: PolicySet) -> Iterator[ObjectRef]:
    """The refs, with tags read (one GetObjectTagging each) only where a tag-filtered policy could match."""
    by_bucket: dict[str, list[Filters]] = {}
    for ref in refs:
        if ref.bucket not in by_bucket:
            by_bucket[ref.bucket] = _tag_filters(policies, ref.bucket)
        if ref.tags is None and _could_need_tags(by_bucket[ref.bucket], ref.key):
            ref = ref.with_tags(s3util.read_tags(s3, ref.bucket, ref.key, ref.version_id))
        yield ref


def tagged(s3: Any, batches: Iterable[Objects], policies: PolicySet) -> Iterator[Objects]:
    """The batches, with the tags of their objects read (one GetObjectTagging each) where a tag-filtered policy
    could match; ``with_tags`` for batches."""
    for batch in batches:
        if batch.tags is not None:
            yield batch
            continue
        filters = _tag_filters(policies, batch.bucket)
        keys, versions = batch.keys.to_pylist(), batch.version_ids.to_pylist()
        yield replace(batch, tags=[s3util.read_tags(s3, batch.bucket, key, version) if _could_need_tags(filters, key) else None
                                   for key, version in zip(keys, versions, strict=True)])


def _tag_filters(policies: PolicySet, bucket: str) -> list[Filters]:
    """The filters of ``bucket``'s policies that filter on tags (looked up once a bucket or batch, not per object)."""
    return [lp.policy.filters for lp in policies.for_bucket(bucket) if lp.policy.filters.tags]


def _could_need_tags(tag_filters: list[Filters], key: str) -> bool:
    """True when one of ``tag_filters`` has a prefix that ``key`` starts with (never for leanlake's own objects)."""
    return not key.startswith(RESERVED_PREFIX) and any(matched_prefix(filters, key) is not None for filters in tag_filters)


def bucket_plans(ctx: RunContext, bucket: str, policies: PolicySet, batches: Iterable[Objects] | None = None) -> Iterator[Planned]:
    """The object-level plan of one bucket, as columns (``plan_batches``), from a listing or given batches (an
    inventory's), with tags read where a policy filters on them."""
    listed = list_objects(ctx.s3, bucket, policies) if batches is None else batches
    if policies.needs_tags(bucket):  # else ``tagged`` would only pass the batches through
        listed = tagged(ctx.s3, listed, policies)
    return plan_batches(listed, policies, ctx.now)


def bucket_plan(ctx: RunContext, bucket: str, policies: PolicySet, batches: Iterable[Objects] | None = None,
                ) -> Iterator[Piece]:
    """One bucket's plan, from a listing or given batches (an inventory's): the bucket-level decisions, then each
    batch's as columns (``bucket_plans``). On an Object Lock bucket, a batch with decisions that would delete comes
    as its Decisions instead, those of locked objects turned into skips (``with_locks``)."""
    yield from plan_buckets(policies, [bucket])
    for planned in bucket_plans(ctx, bucket, policies, batches):
        if planned.deletes() and ctx.deletions_in(bucket).lock_enabled():
            yield from with_locks(ctx, bucket, planned.decisions())
        else:
            yield planned


def bucket_decisions(ctx: RunContext, bucket: str, policies: PolicySet, batches: Iterable[Objects] | None = None) -> Iterator[Decision]:
    """Every decision of ``bucket_plan``, one at a time."""
    for piece in bucket_plan(ctx, bucket, policies, batches):
        yield from decisions_of(piece)


def with_locks(ctx: RunContext, bucket: str, decisions: Iterable[Decision]) -> Iterator[Decision]:
    """The decisions, with those that would delete a locked object (or one whose lock state can't be
    read) turned into what ``apply`` will do; one HEAD per deleting decision, on Object Lock buckets only."""
    deletions = ctx.deletions_in(bucket)
    decisions = iter(decisions)
    for decision in decisions:
        if decision.key is not None and decision.by is not None and deletes(decision):
            if not deletions.lock_enabled():  # read once: no lock, so the rest pass through as they are
                yield decision
                yield from decisions
                return
            ref = decision.ref
            why = deletions.lock_reason(Target(decision.key, version_id=ref.version_id if ref else None))
            if why:
                decision = decision.by.when_locked(decision, why)
        yield decision


def apply_bucket_decision(decision: Decision, ctx: RunContext) -> Outcome:
    """Lifecycle and Intelligent-Tiering decisions: merge leanlake's rules into the bucket's configuration."""
    if ctx.dry_run:
        return Outcome(decision, "skip", "dry run: bucket configuration not changed")
    try:
        return Outcome(decision, "ok", apply_to_bucket(ctx.s3, decision, ctx.policies))
    except Exception as exc:  # the bucket's other work goes on; apply exits 1
        reason, transient = describe_error(exc)
        return Outcome(decision, "error", reason, detail={"transient": transient})


def sweep(ctx: RunContext, ledger: Ledger, *, policy_names: Iterable[str] | None = None, buckets: Iterable[str] | None = None,
          decisions: Iterable[Decision] | None = None, on_outcome: OnOutcome | None = None) -> dict[str, Any]:
    """Sweep the buckets of the selected policies (all by default): decide and act; return a report.

    Given ``decisions`` (``apply``'s), they are read once, in their order, and may be a one-shot iterator
    over several buckets: those of other buckets than the selected ones are left out, and a bucket's queued
    deletions are sent when the decisions move on to another bucket (and at the end). Nothing is held but
    the current bucket's deletion batch, so applying a million decisions runs in flat memory.
    """
    names = set(policy_names) if policy_names is not None else None
    selected = PolicySet(tuple(lp for lp in ctx.policies.loaded if names is None or lp.policy.name in names))
    chosen = set(buckets) if buckets is not None else None
    wanted = [b for b in selected.buckets if chosen is None or b in chosen]
    report: dict[str, Any] = {"buckets": {}}

    def record(outcome: Outcome) -> None:
        ledger.record(outcome)
        if on_outcome:
            on_outcome(outcome)

    def act_on(decision: Decision) -> None:
        if decision.action == "skip":
            outcomes = [Outcome(decision, "skip", decision.reason)]
        elif decision.key is None:  # the bucket's configuration (Lifecycle, Intelligent-Tiering)
            outcomes = [apply_bucket_decision(decision, ctx)]
        else:
            outcomes = act(decision, ctx)
        for outcome in outcomes:
            record(outcome)

    def flush(bucket: str) -> None:
        for outcome in ctx.deletions_in(bucket).flush():
            record(outcome)

    def finish(bucket: str) -> None:
        flush(bucket)
        deletions = ctx.deletions_in(bucket)
        if deletions.refused:  # fail closed is an error of the run, even where plan already said skip
            record(Outcome(Decision(bucket, None, "-", "skip", deletions.refused), "error", deletions.refused))
        report["buckets"][bucket] = {"deleted": deletions.deleted, "deletion_cap_reached": deletions.capped,
                                     "audit_key": deletions.audit_keys[-1] if deletions.audit_keys else None,
                                     **({"deletions_refused": deletions.refused} if deletions.refused else {})}

    if decisions is None:
        for bucket in wanted:
            ctx.deletions.pop(bucket, None)  # a sweep that plans is a run of its own: a fresh cap and audit trail
            for decision in bucket_decisions(ctx, bucket, selected):
                act_on(decision)
            finish(bucket)
    else:
        included, current = set(wanted), None
        for decision in decisions:
            if decision.bucket not in included:
                continue
            if decision.bucket != current:
                if current is not None:
                    flush(current)  # the bucket's batch goes now; its report waits in case it comes back
                current = decision.bucket
            act_on(decision)
        for bucket in wanted:
            finish(bucket)
    report["totals"] = ledger.totals()
    return report
