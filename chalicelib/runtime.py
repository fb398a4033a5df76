"""What the Lambda handlers share: policies loaded once per container, the S3 client, one ledger per event.

Policies come from ``$LEANLAKE_POLICIES`` (a directory or file; relative paths are relative to
the app's directory) or else ``policies/`` beside ``app.py`` (the deployed package carries them there).
Nothing here runs at import: ``app.py`` imports with no environment set and without pyarrow.

Example:
    >>> from chalicelib import runtime
    >>> runtime.policies_path("/var/task")     # doctest: +SKIP
    PosixPath('/var/task/policies')
"""

from __future__ import annotations

import functools
import os
from datetime import datetime
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

from chalicelib import fanout
from chalicelib.context import RunContext
from chalicelib.decision import Outcome
from chalicelib.errors import describe_error
from chalicelib.events import OnBad, refs_from_eventbridge, refs_from_s3_notification, refs_from_sqs
from chalicelib.ledger import Ledger
from chalicelib.log import logger
from chalicelib.pipeline import handle_uploads
from chalicelib.policy import PolicySet, load_policies
from chalicelib.refs import ObjectRef
from chalicelib import s3 as s3util
from chalicelib.sweep import sweep

APP_DIR = Path(__file__).resolve().parent.parent


def policies_path(app_dir: Path = APP_DIR) -> Path:
    configured = os.environ.get("LEANLAKE_POLICIES")
    return app_dir / (configured or "policies") if not (configured and os.path.isabs(configured)) else Path(configured)


@functools.cache
def policies() -> PolicySet:
    """The deployment's policies, validated once per container; an empty set when none are there."""
    path = policies_path()
    if not path.exists():
        logger.warning(f"no policies at {path}: every event will be ignored")
        return PolicySet(())
    return load_policies([path])


def upload_bucket() -> str | None:
    """The bucket of ``on_s3_event``: ``$LEANLAKE_UPLOAD_BUCKET`` (empty disables), else the first bucket of
    a policy with an object action (convert, recompress, storage_class)."""
    configured = os.environ.get("LEANLAKE_UPLOAD_BUCKET")
    if configured is not None:
        return configured or None
    return next((b for lp in policies().loaded if any(a.scope == "object" for a in lp.policy.actions) for b in lp.policy.buckets), None)


def context(as_of: datetime | None = None, lambda_context: Any = None) -> RunContext:
    """A run's context: the deployment's policies, the S3 client, the clock (``as_of``: a fanned-out run's
    date) and, in Lambda, the time an object may still take (the invocation's remaining time less a margin)."""
    ctx = RunContext(policies=policies(), s3=s3util.client())
    if as_of is not None:
        ctx.now = as_of
    remaining = getattr(lambda_context, "get_remaining_time_in_millis", None)
    if remaining is not None:
        ctx.time_left = lambda: fanout.usable(remaining() / 1000)
    return ctx


@functools.cache
def _sqs() -> Any:
    import boto3
    from botocore.config import Config

    return boto3.session.Session().client("sqs", config=Config(retries={"mode": "adaptive", "max_attempts": 10}))


def work_queue(lambda_context: Any = None) -> fanout.WorkQueue | None:
    """The stage's work queue (by URL, see ``fanout.queue_url``), or None when the stage has none."""
    url = fanout.queue_url(getattr(lambda_context, "invoked_function_arn", None))
    return fanout.WorkQueue(_sqs(), url) if url else None


class RetryLater(RuntimeError):
    """Raised so Lambda delivers the event again (SQS redelivers the batch, async invocations retry) when
    objects failed transiently (Chalice has no partial batch responses); objects that succeeded are
    skipped on redelivery, as outputs already made. Nothing else raises: bad records are counted."""


def handle_records(trigger: str, read: Callable[[OnBad], Iterable[ObjectRef]], *,
                   key_maybe_encoded: bool = False, lambda_context: Any = None) -> dict[str, Any]:
    """Run the objects of one event's records through the pipeline, one at a time; return the totals,
    the bad records and the outcomes.

    ``read(on_bad)`` yields the refs and reports malformed records through ``on_bad``; those are
    logged and counted as ``BadRecords`` (by ``trigger``), as is a record whose object cannot be read
    (a non-transient HEAD error). The other records are still handled. Transient failures (throttling,
    5xx, network) raise RetryLater once every record has had its turn and metrics are flushed.
    """
    ledger = Ledger(keep_outcomes=False)  # totals as it goes: memory flat however many objects
    ctx = context(lambda_context=lambda_context)
    outcomes: list[Outcome] = []
    retry: list[str] = []
    try:
        for ref in read(functools.partial(ledger.bad_record, trigger)):
            try:
                outcomes.extend(handle_uploads([ref], ctx, ledger, key_maybe_encoded=key_maybe_encoded))
            except Exception as exc:  # an object that cannot be read must not cost the rest of the batch
                reason, transient = describe_error(exc)
                if transient:
                    logger.warning(f"{ref.uri}: {reason}: the event will be delivered again")
                    retry.append(f"{ref.uri}: {reason}")
                else:
                    ledger.bad_record(trigger, ref.uri, f"cannot be read: {reason}")
    finally:
        ledger.flush()
    retry += [f"s3://{o.decision.bucket}/{o.decision.key}: {o.reason}" for o in outcomes
              if o.status == "error" and o.detail.get("transient")]
    if retry:
        raise RetryLater(f"{len(retry)} object(s) failed transiently, first: {retry[0]}")
    return {**ledger.totals(), "bad_records": ledger.bad_records, "outcomes": [o.as_dict() for o in outcomes]}


def handle_s3_notification(event: Mapping[str, Any], lambda_context: Any = None) -> dict[str, Any]:
    """An S3 notification invoking Lambda directly (``on_s3_event``)."""
    return handle_records("s3", lambda on_bad: refs_from_s3_notification(event, on_bad), lambda_context=lambda_context)


def handle_eventbridge(event: Mapping[str, Any], lambda_context: Any = None) -> dict[str, Any]:
    """An EventBridge ``Object Created`` event (its key's encoding is undocumented: maybe encoded)."""
    return handle_records("eventbridge", lambda on_bad: refs_from_eventbridge(event, on_bad), key_maybe_encoded=True,
                          lambda_context=lambda_context)


def handle_sqs(event: Mapping[str, Any], lambda_context: Any = None) -> dict[str, Any]:
    """The work queue: S3 notifications (direct, SNS-wrapped or EventBridge) and leanlake's own messages
    (sweep continuations and work items, ``chalicelib.fanout``), message by message under the budget.

    Messages not started when the budget is spent go back to the queue as new messages, and so do the
    work items a message could not finish: the batch itself then succeeds."""
    records = event.get("Records") if isinstance(event, Mapping) else None
    if not isinstance(records, list) or not any(fanout.is_leanlake_message(r.get("body")) for r in records if isinstance(r, Mapping)):
        return handle_records("sqs", lambda on_bad: refs_from_sqs(event, on_bad), lambda_context=lambda_context)
    budget = fanout.Budget.of(lambda_context)
    queue = work_queue(lambda_context)
    if queue is None:
        raise RuntimeError("leanlake messages on the queue, but the stage has no work queue configured ($LEANLAKE_QUEUE)")
    ledger = Ledger(keep_outcomes=False)  # totals as it goes: memory flat however many objects
    results: list[dict[str, Any]] = []

    def ctx_for(as_of: datetime | None) -> RunContext:
        return context(as_of, lambda_context)

    try:
        for index, record in enumerate(records):
            body = record.get("body") if isinstance(record, Mapping) else None
            if index and budget.spent():
                rest = [r.get("body") for r in records[index:] if isinstance(r, Mapping) and r.get("body")]
                queue.sqs.send_message_batch(QueueUrl=queue.url, Entries=[{"Id": str(i), "MessageBody": b} for i, b in enumerate(rest)])
                ledger.count("MessagesRequeued", len(rest))
                break
            message = fanout.is_leanlake_message(body)
            if message is None:
                results.append(handle_records("sqs", functools.partial(_one_notification, record), lambda_context=lambda_context))
            elif message[fanout.KIND] == "continue":
                results.append(fanout.resume(message, ctx_for, ledger, queue, budget))
            else:
                outcomes = fanout.work(message, ctx_for, ledger, queue, budget, first=not index)
                results.append({"run": message.get("run"), "outcomes": [o.as_dict() for o in outcomes]})
    finally:
        ledger.flush()
    return {"results": results}


def _one_notification(record: Any, on_bad: OnBad) -> Iterable[ObjectRef]:
    return refs_from_sqs({"Records": [record]}, on_bad)


def handle_alarm(event: Mapping[str, Any], lambda_context: Any = None) -> dict[str, Any]:
    """On a transition to ALARM, sweep every policy whose ``on_alarm`` names the alarm, for its buckets."""
    detail = event.get("detail") or {}
    name = detail.get("alarmName")
    state = (detail.get("state") or {}).get("value")
    previous = (detail.get("previousState") or {}).get("value")
    if event.get("detail-type") != "CloudWatch Alarm State Change" or state != "ALARM" or previous == "ALARM":
        return {"swept": []}
    selected = policies().for_alarm(name)
    if not selected:
        logger.info(f"alarm {name} is in ALARM but no policy names it in on_alarm")
        return {"swept": []}
    return {"swept": [lp.policy.name for lp in selected],
            **run_sweep([lp.policy.name for lp in selected], lambda_context)}


def scheduled_sweep(lambda_context: Any = None) -> dict[str, Any]:
    """The daily sweep: every policy, every bucket."""
    return run_sweep(None, lambda_context)


def run_sweep(policy_names: list[str] | None, lambda_context: Any = None) -> dict[str, Any]:
    """Fan the sweep out through the work queue when the stage has one (it then finishes at any size);
    else sweep within this invocation."""
    ledger = Ledger(keep_outcomes=False)  # totals as it goes: memory flat however many objects
    queue = work_queue(lambda_context)
    try:
        if queue is not None:
            return fanout.start(context(), ledger, queue, policy_names=policy_names)
        return sweep(context(), ledger, policy_names=policy_names)
    finally:
        ledger.flush()
