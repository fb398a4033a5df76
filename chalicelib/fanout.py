"""Sweeps that finish at any size: in Lambda a sweep fans out through the stage's work queue and resumes.

One Lambda invocation cannot sweep millions of objects in 15 minutes, and a sweep that is killed
starts again from the top the next day. So in Lambda (when the stage has a work queue) a sweep is a
*run* made of many short invocations:

- ``start`` (the daily schedule, an alarm) applies each bucket's configuration (Lifecycle,
  Intelligent-Tiering), writes the bucket's checkpoint ``_leanlake/sweeps/<run>.json`` and queues
  a continuation for it. A run still unfinished from before is reported (``SweepsUnfinished``, an
  error line) and superseded: its next continuation stops.
- ``resume`` (a continuation from the queue) claims the checkpoint (a conditional write: of two
  deliveries of the same continuation, one works and the other stops), lists on from where the
  run stopped (``StartAfter`` the last key handled), plans each listing page as one batch and, object
  by object,
  * runs deletions itself, through ``chalicelib.deletion`` (locks, audit), counted against the
    run's cap with the count the checkpoint carries;
  * hands object work (conversions, class changes) to the queue as work items, 100 to a message;
    a conversion that will delete its source reserves that deletion against the cap first, and is
    not handed on (a skip saying why) when the cap is spent;
  * stops starting new objects when its time budget is spent, saves the checkpoint (conditional on
    its claim) and queues the next continuation; the last one marks the run finished
    (``SweepsFinished``).
- ``work`` (a work item from the queue) plans the object again with the run's date and acts, under
  the same budget; the items it did not start go back to the queue as a new message (Chalice's SQS
  event source has no partial batch failures). Items are idempotent: an output already made from
  the object's ETag is not written again, a class change or deletion is conditional on what was
  decided. A consumer deletes at most the sources its items reserved.

The budget is ``$LEANLAKE_SWEEP_BUDGET_S`` seconds where set, else the invocation's remaining time
less a margin (``usable``); every invocation starts at least one object, so a run always progresses. The
queue is addressed by its URL: ``$LEANLAKE_QUEUE_URL``, else built from ``$LEANLAKE_QUEUE`` and the
function's ARN (no ``GetQueueUrl``). ``leanlake apply`` on a machine does not fan out
(``chalicelib.sweep``).

Example:
    >>> queue_url("arn:aws:lambda:eu-west-1:123456789012:function:leanlake-dev", "leanlake-dev-work")
    'https://sqs.eu-west-1.amazonaws.com/123456789012/leanlake-dev-work'
    >>> Budget(seconds=0.0).spent()
    True
"""

from __future__ import annotations

import json
import os
import time
import uuid
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from typing import Any, Iterable, Iterator, Mapping

from chalicelib import listing
from chalicelib import s3 as s3util
from chalicelib.columns import Objects
from chalicelib.context import RunContext
from chalicelib.decision import Decision, Outcome
from chalicelib.deletion import Deletions
from chalicelib.ledger import Ledger
from chalicelib.log import logger
from chalicelib.pipeline import act, acts_on_upload
from chalicelib.plan import decisions_of, deletes, plan_batches, plan_buckets, plan_objects
from chalicelib.policy import PolicySet
from chalicelib.refs import RESERVED_PREFIX, ObjectRef
from chalicelib.sweep import apply_bucket_decision, listing_prefixes, tagged, with_locks, with_tags

QUEUE_ENV = "LEANLAKE_QUEUE"
QUEUE_URL_ENV = "LEANLAKE_QUEUE_URL"
BUDGET_ENV = "LEANLAKE_SWEEP_BUDGET_S"
#: Seconds kept back from the invocation's remaining time (at most a tenth of it): to save the
#: checkpoint and queue what is left.
MARGIN_S = 30.0
#: Work items per SQS message (about 300 bytes each: ten messages fit one SendMessageBatch of 256 KiB).
ITEMS_PER_MESSAGE = 50
#: SQS's limit on a message, and on the sum of a SendMessageBatch's messages.
SQS_BATCH_BYTES = 256 * 1024
CHECKPOINTS = f"{RESERVED_PREFIX}sweeps/"
#: Keys in a continuation's first listing page; each next page is four times larger, up to S3's 1,000, so
#: that an invocation with little budget left does not list a thousand keys to handle a few.
FIRST_PAGE = 100
#: S3's largest listing page.
FULL_PAGE = 1000
#: Objects planned at once where a policy filters on tags: each needs a GetObjectTagging before it is planned, so
#: that many requests (~0.05 s each) is what a continuation can overrun its budget by.
TAGGED_CHUNK = 50
#: Deletions a continuation queues before sending them: its budget is overrun by at most one such batch.
DELETE_BATCH = 100
#: Marks leanlake's own messages on the work queue (the rest are S3 notifications).
KIND = "leanlake"


# --- time and the queue --------------------------------------------------------------------------------

@dataclass
class Budget:
    """Seconds this invocation may spend starting new work, from when it was made."""

    seconds: float
    started: float = field(default_factory=time.monotonic)

    @classmethod
    def of(cls, lambda_context: Any = None) -> "Budget":
        """``$LEANLAKE_SWEEP_BUDGET_S``, else the invocation's remaining time less ``MARGIN_S`` (never negative)."""
        configured = os.environ.get(BUDGET_ENV)
        if configured:
            return cls(float(configured))
        remaining = getattr(lambda_context, "get_remaining_time_in_millis", None)
        return cls(usable(remaining() / 1000) if remaining else 600.0)

    def spent(self) -> bool:
        return time.monotonic() - self.started >= self.seconds

    def elapsed(self) -> float:
        return time.monotonic() - self.started


def usable(remaining_s: float) -> float:
    """Of the seconds an invocation has left, those work may use: less ``MARGIN_S``, or a tenth when that is less.

        >>> usable(900.0), usable(3.0)
        (870.0, 2.7)
    """
    return max(remaining_s - min(MARGIN_S, remaining_s / 10), 0.0)


def queue_url(function_arn: str | None, queue: str | None = None) -> str | None:
    """The work queue's URL: ``$LEANLAKE_QUEUE_URL``, else ``$LEANLAKE_QUEUE`` in the function's account and Region."""
    configured = os.environ.get(QUEUE_URL_ENV)
    if configured:
        return configured
    name = queue or os.environ.get(QUEUE_ENV)
    parts = (function_arn or "").split(":")
    if not name or len(parts) < 5 or parts[0] != "arn":
        return None
    region, account = parts[3], parts[4]
    return f"https://sqs.{region}.amazonaws.com/{account}/{name}"


class WorkQueue:
    """Sends leanlake's messages to the work queue, up to ten (and 256 KiB) to a ``SendMessageBatch``."""

    def __init__(self, sqs: Any, url: str) -> None:
        self.sqs = sqs
        self.url = url
        self.sent = 0

    def send(self, bodies: Iterable[Mapping[str, Any]]) -> None:
        """Send every body as one message; raise when SQS refuses one (the invocation then fails and is retried)."""
        batch: list[dict[str, str]] = []
        size = 0
        for body in bodies:
            text = json.dumps(body, separators=(",", ":"))
            if batch and (len(batch) == 10 or size + len(text.encode()) > SQS_BATCH_BYTES):
                self._send(batch)
                batch, size = [], 0
            batch.append({"Id": str(len(batch)), "MessageBody": text})
            size += len(text.encode())
        if batch:
            self._send(batch)

    def _send(self, entries: list[dict[str, str]]) -> None:
        response = self.sqs.send_message_batch(QueueUrl=self.url, Entries=entries)
        failed = response.get("Failed") or []
        if failed:
            raise RuntimeError(f"SQS refused {len(failed)} message(s) to {self.url}: {failed[0].get('Message') or failed[0].get('Code')}")
        self.sent += len(entries)


# --- the checkpoint ------------------------------------------------------------------------------------

@dataclass
class Checkpoint:
    """Where one run stopped in one bucket, saved under ``_leanlake/sweeps/`` between invocations."""

    run: str
    bucket: str
    as_of: str
    policies: list[str] | None
    cap: int
    seq: int = 0
    prefixes: list[str] = field(default_factory=list)
    prefix_index: int = 0
    start_after: str = ""
    deleted: int = 0
    reserved: int = 0
    queued: int = 0
    handled: int = 0
    invocations: int = 0
    done: bool = False
    superseded_by: str | None = None
    claimed_by: str | None = None

    @staticmethod
    def key(run: str) -> str:
        return f"{CHECKPOINTS}{run}.json"

    def as_of_time(self) -> datetime:
        return datetime.fromisoformat(self.as_of)

    @classmethod
    def load(cls, s3: Any, bucket: str, run: str) -> tuple["Checkpoint", str] | None:
        """The checkpoint and its ETag, or None when there is none."""
        from botocore.exceptions import ClientError

        try:
            response = s3.get_object(Bucket=bucket, Key=cls.key(run))
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
                return None
            raise
        return cls(**json.loads(response["Body"].read())), response["ETag"].strip('"')

    def save(self, s3: Any, etag: str | None) -> str:
        """Write it if it is still at ``etag`` (absent when None); its new ETag, or ConditionFailed."""
        from botocore.exceptions import ClientError

        try:
            response = s3.put_object(Bucket=self.bucket, Key=self.key(self.run), Body=json.dumps(asdict(self)).encode(),
                                     ContentType="application/json", Metadata={s3util.MARKER: "checkpoint"},
                                     **s3util.write_condition(etag))
        except ClientError as exc:
            if str(exc.response.get("Error", {}).get("Code")) in ("PreconditionFailed", "ConditionalRequestConflict", "412"):
                raise s3util.ConditionFailed(f"checkpoint {self.key(self.run)} changed meanwhile") from None
            raise
        return response["ETag"].strip('"')


LATEST = f"{CHECKPOINTS}latest.json"


def _continuation(cp: Checkpoint) -> dict[str, Any]:
    return {KIND: "continue", "run": cp.run, "bucket": cp.bucket, "seq": cp.seq}


def _selected(policies: PolicySet, names: list[str] | None) -> PolicySet:
    return PolicySet(tuple(lp for lp in policies.loaded if names is None or lp.policy.name in names))


def new_run_id(now: datetime) -> str:
    """A sortable, unique run id: ``20261130T030000-1a2b3c``."""
    return f"{now.astimezone(timezone.utc):%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:6]}"


# --- starting a run ------------------------------------------------------------------------------------

def start(ctx: RunContext, ledger: Ledger, queue: WorkQueue, *, policy_names: Iterable[str] | None = None) -> dict[str, Any]:
    """Begin a fanned-out sweep: bucket configurations now, then one continuation per bucket on the queue."""
    names = sorted(set(policy_names)) if policy_names is not None else None
    selected = _selected(ctx.policies, names)
    run = new_run_id(ctx.now)
    report: dict[str, Any] = {"run": run, "buckets": {}}
    for bucket in selected.buckets:
        for decision in plan_buckets(selected, [bucket]):
            ledger.record(apply_bucket_decision(decision, ctx) if decision.action != "skip"
                          else Outcome(decision, "skip", decision.reason))
        _supersede_unfinished(ctx.s3, bucket, run, ledger)
        cap = ctx.deletions_in(bucket).max_deletions
        cp = Checkpoint(run=run, bucket=bucket, as_of=ctx.now.isoformat(), policies=names, cap=cap,
                        prefixes=listing_prefixes(selected, bucket))
        cp.save(ctx.s3, None)
        ctx.s3.put_object(Bucket=bucket, Key=LATEST, Body=json.dumps({"run": run}).encode(),
                          ContentType="application/json", Metadata={s3util.MARKER: "checkpoint"})
        queue.send([_continuation(cp)])
        report["buckets"][bucket] = {"checkpoint": cp.key(run), "deletion_cap": cap}
    logger.info(f"sweep run {run} started for {len(report['buckets'])} bucket(s): continuing through the work queue")
    return report


def _supersede_unfinished(s3: Any, bucket: str, run: str, ledger: Ledger) -> None:
    """Report the bucket's previous run if it never finished, and stop it: this run starts from the top."""
    from botocore.exceptions import ClientError

    try:
        previous = json.loads(s3.get_object(Bucket=bucket, Key=LATEST)["Body"].read()).get("run")
    except ClientError:
        return
    loaded = Checkpoint.load(s3, bucket, previous) if previous else None
    if loaded is None or loaded[0].done or loaded[0].superseded_by:
        return
    old, etag = loaded
    logger.error(f"sweep run {old.run} of s3://{bucket} did not finish: it stopped after {old.invocations} invocation(s), "
                 f"{old.handled} object(s) handled, at {old.prefixes[old.prefix_index] if old.prefix_index < len(old.prefixes) else ''}"
                 f"{old.start_after!r}; run {run} starts again from the top")
    ledger.count("SweepsUnfinished", bucket=bucket)
    old.superseded_by = run
    try:
        old.save(s3, etag)
    except s3util.ConditionFailed:
        pass  # it moved meanwhile: its next continuation sees the newer run in latest.json anyway


# --- continuing a run ----------------------------------------------------------------------------------

def resume(message: Mapping[str, Any], ctx_for: Any, ledger: Ledger, queue: WorkQueue, budget: Budget) -> dict[str, Any]:
    """Run one continuation: claim, list and plan on from the checkpoint until the budget is spent, save, continue.

    ``ctx_for(as_of)`` makes the RunContext at the run's date."""
    bucket, run, seq = str(message["bucket"]), str(message["run"]), int(message["seq"])
    s3 = ctx_for(None).s3
    loaded = Checkpoint.load(s3, bucket, run)
    if loaded is None:
        logger.error(f"sweep run {run}: no checkpoint in s3://{bucket}; continuation dropped")
        return {"run": run, "status": "no checkpoint"}
    cp, etag = loaded
    if cp.done or cp.superseded_by or cp.seq != seq:
        logger.info(f"sweep run {run} of s3://{bucket}: continuation {seq} already handled (at {cp.seq}); dropped")
        return {"run": run, "status": "duplicate"}
    unsaved_claim = cp.claimed_by is not None  # an earlier delivery claimed this continuation and never saved it
    cp.invocations += 1
    cp.claimed_by = uuid.uuid4().hex[:12]
    try:
        etag = cp.save(s3, etag)
    except s3util.ConditionFailed:
        logger.info(f"sweep run {run} of s3://{bucket}: continuation {seq} claimed by another invocation; dropped")
        return {"run": run, "status": "claimed elsewhere"}

    ctx = ctx_for(cp.as_of_time())
    selected = _selected(ctx.policies, cp.policies)
    audit_prefix = ctx.deletions_in(bucket).audit_prefix
    if unsaved_claim:
        cp.deleted += _deleted_by_unsaved_claims(ctx, bucket, audit_prefix, f"{run}.{cp.seq:05d}.")
    # each claim audits under its own name: a redelivery never overwrites the audit lines of a killed claim
    deletions = ctx.deletions[bucket] = Deletions(ctx, bucket, audit_prefix=audit_prefix,
                                                  max_deletions=cp.cap - cp.deleted - cp.reserved,
                                                  run_id=f"{run}.{cp.seq:05d}.{cp.claimed_by}")
    items: list[dict[str, Any]] = []
    handled = 0
    for key, decisions in _listed(ctx, cp, selected, budget):
        for decision in decisions:
            _dispatch(decision, ctx, ledger, deletions, items)
        handled += 1
        cp.start_after = key
        if deletions.pending() >= DELETE_BATCH:
            for outcome in deletions.flush():
                ledger.record(outcome)
    for outcome in deletions.flush():
        ledger.record(outcome)
    if deletions.refused:
        ledger.record(Outcome(Decision(bucket, None, "-", "skip", deletions.refused), "error", deletions.refused))
    queue.send(_work_messages(run, cp.as_of, items))
    cp.handled += handled
    cp.queued += len(items)
    cp.deleted += deletions.deleted
    cp.reserved += deletions.reserved
    cp.seq += 1
    cp.claimed_by = None
    cp.save(s3, etag)
    ledger.count("SweepInvocations", bucket=bucket)
    if cp.done:
        ledger.count("SweepsFinished", bucket=bucket)
        logger.info(f"sweep run {run} of s3://{bucket} finished: {cp.handled} object(s) in {cp.invocations} invocation(s), "
                    f"{cp.queued} work item(s) queued, {cp.deleted} deleted here and {cp.reserved} source deletion(s) reserved "
                    f"(cap {cp.cap})")
    else:
        queue.send([_continuation(cp)])
    return {"run": run, "bucket": bucket, "seq": cp.seq, "handled": handled, "queued": len(items), "done": cp.done,
            "deleted": deletions.deleted, "seconds": round(budget.elapsed(), 3)}


def _deleted_by_unsaved_claims(ctx: RunContext, bucket: str, audit_prefix: str, claims: str) -> int:
    """Deletions that invocations killed after claiming this continuation made (or may have made: a line
    still ``deleting``), read from their audit objects, so that the run's cap still holds after a kill."""
    prefix = f"{audit_prefix}{ctx.now:%Y/%m/%d}/{ctx.now:%H%M%S}-{claims}"
    count = 0
    for page in ctx.s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for item in page.get("Contents", ()):
            body = ctx.s3.get_object(Bucket=bucket, Key=item["Key"])["Body"].read()
            count += sum(json.loads(line).get("status") in ("deleting", "deleted") for line in body.splitlines() if line.strip())
    if count:
        logger.warning(f"s3://{bucket}: {count} deletion(s) by an invocation of this continuation that never finished "
                       f"({prefix}*) count against the run's cap")
    return count


def _listed(ctx: RunContext, cp: Checkpoint, selected: PolicySet, budget: Budget) -> Iterator[tuple[str, list[Decision]]]:
    """The keys after the checkpoint with their decisions, one at a time, until the budget is spent (at least one).

    Each listing page is read as columns (``listing.read_pages``) and planned as one batch: planning objects
    one at a time cost ~1.1 ms of CPU an object in Arrow kernels' fixed costs; a continuation now spends ~40 µs
    an object, its listing included (bench/bench_sweep.py). Leanlake's own objects come too, with no decisions,
    so that a long run of them is checkpointed past like any other. Where a policy
    filters on tags, a page is planned ``TAGGED_CHUNK`` objects at a time, since their tags are read first (a
    request each) and the budget is checked between objects."""
    chunk = TAGGED_CHUNK if any(lp.policy.filters.tags for lp in selected.for_bucket(cp.bucket)) else FULL_PAGE
    first = True
    for page in listing.read_pages(ctx.s3, _pages(ctx, cp)):
        batch = listing.page_objects(cp.bucket, page)  # leanlake's own too (no decisions): the checkpoint moves past them
        for start in range(0, len(batch), chunk):
            for key, decisions in _planned(ctx, next(tagged(ctx.s3, [batch.sliced(start, chunk)], selected)), selected):
                if not first and budget.spent():
                    return
                first = False
                yield key, decisions
    cp.done = True


def _pages(ctx: RunContext, cp: Checkpoint) -> Iterator[dict[str, Any]]:
    """ListObjectsV2 pages of the checkpoint's prefixes after its last key: the first of ``FIRST_PAGE`` keys,
    each next four times larger, up to S3's 1,000 (a continuation with little budget left lists few)."""
    page_size = FIRST_PAGE
    while cp.prefix_index < len(cp.prefixes):
        token = None
        while True:
            kwargs: dict[str, Any] = {"Bucket": cp.bucket, "Prefix": cp.prefixes[cp.prefix_index], "MaxKeys": page_size}
            if token:
                kwargs["ContinuationToken"] = token
            elif cp.start_after:
                kwargs["StartAfter"] = cp.start_after
            page = ctx.s3.list_objects_v2(**kwargs)
            page_size = min(page_size * 4, FULL_PAGE)
            yield page
            token = page.get("NextContinuationToken")
            if not page.get("IsTruncated") or not token:
                break
        cp.prefix_index += 1
        cp.start_after = ""


def _planned(ctx: RunContext, batch: Objects, selected: PolicySet) -> Iterator[tuple[str, list[Decision]]]:
    """Each key of ``batch`` with its decisions (none where no policy matches), the batch planned at once;
    a decision that would delete on an Object Lock bucket is checked (``with_locks``) when its key is reached."""
    decided = with_locks(ctx, batch.bucket, (d for piece in plan_batches([batch], selected, ctx.now) for d in decisions_of(piece)))
    pending = next(decided, None)
    for key in batch.keys.to_pylist():
        mine: list[Decision] = []
        while pending is not None and pending.key == key:
            mine.append(pending)
            pending = next(decided, None)
        yield key, mine


def _dispatch(decision: Decision, ctx: RunContext, ledger: Ledger, deletions: Deletions, items: list[dict[str, Any]]) -> None:
    """A skip is recorded, object work is queued (reserving a source deletion), a deletion is done here."""
    if decision.action == "skip":
        ledger.record(Outcome(decision, "skip", decision.reason))
    elif acts_on_upload(decision):
        reserve = deletes(decision)
        refused = deletions.reserve(1) if reserve else None
        if refused:
            ledger.record(Outcome(decision, "skip", f"source would not be deleted: {refused}; not converted in this run"))
        else:
            items.append(_item(decision, reserve))
    else:
        for outcome in act(decision, ctx):
            ledger.record(outcome)


def _item(decision: Decision, reserved: bool) -> dict[str, Any]:
    ref = decision.ref
    assert ref is not None
    return {"p": decision.policy, "k": ref.key, "e": ref.etag, "v": ref.version_id, "s": ref.size,
            "c": ref.storage_class, "m": ref.last_modified.isoformat() if ref.last_modified else None, "d": reserved,
            "b": ref.bucket}


def _work_messages(run: str, as_of: str, items: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for start_at in range(0, len(items), ITEMS_PER_MESSAGE):
        yield {KIND: "work", "run": run, "as_of": as_of, "items": items[start_at:start_at + ITEMS_PER_MESSAGE]}


# --- work items ----------------------------------------------------------------------------------------

def work(message: Mapping[str, Any], ctx_for: Any, ledger: Ledger, queue: WorkQueue, budget: Budget,
         *, first: bool = True) -> list[Outcome]:
    """Act on a message's work items until the budget is spent (at least one when ``first``); requeue the rest."""
    run, as_of = str(message["run"]), str(message["as_of"])
    items = list(message.get("items") or ())
    ctx = ctx_for(datetime.fromisoformat(as_of))
    reserved: dict[str, int] = {}
    for item in items:
        reserved[item["b"]] = reserved.get(item["b"], 0) + bool(item.get("d"))
    for bucket, count in reserved.items():  # a consumer deletes at most the sources its items reserved
        ctx.deletions[bucket] = Deletions(ctx, bucket, audit_prefix=ctx.deletions_in(bucket).audit_prefix, max_deletions=count,
                                          run_id=f"{run}.w{uuid.uuid4().hex[:6]}")
    outcomes: list[Outcome] = []
    for index, item in enumerate(items):
        if (index or not first) and budget.spent():
            rest = items[index:]
            queue.send([{**message, "items": rest}])
            ledger.count("WorkItemsRequeued", len(rest))
            logger.info(f"sweep run {run}: budget spent after {index} work item(s); {len(rest)} requeued")
            break
        outcomes.extend(_work_item(item, ctx, ledger))
    return outcomes


def _work_item(item: Mapping[str, Any], ctx: RunContext, ledger: Ledger) -> list[Outcome]:
    try:
        loaded = ctx.policies.named(item["p"])
    except KeyError:
        logger.warning(f"work item s3://{item['b']}/{item['k']}: policy {item['p']!r} is no longer deployed; dropped")
        return []
    single = PolicySet((loaded,))
    ref = ObjectRef(bucket=item["b"], key=item["k"], size=item.get("s"), etag=item.get("e"), version_id=item.get("v"),
                    storage_class=item.get("c"), last_modified=datetime.fromisoformat(item["m"]) if item.get("m") else None)
    outcomes = []
    for decision in plan_objects(with_tags(ctx.s3, [ref], single), single, ctx.now):
        if not acts_on_upload(decision):
            continue
        if deletes(decision) and not item.get("d"):
            outcomes.append(ledger.record(Outcome(decision, "skip", "its source deletion was not reserved by the sweep; not converted")))
            continue
        outcomes.extend(ledger.record(outcome) for outcome in act(decision, ctx))
    return outcomes


def is_leanlake_message(body: Any) -> dict[str, Any] | None:
    """The decoded body when it is one of leanlake's own messages (a continuation or work items), else None."""
    if not isinstance(body, str) or not body.startswith("{") or f'"{KIND}"' not in body:
        return None
    try:
        decoded = json.loads(body)
    except ValueError:
        return None
    return decoded if isinstance(decoded, dict) and decoded.get(KIND) in ("continue", "work") else None

