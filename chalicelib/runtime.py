"""What the Lambda handlers share: policies loaded once per container, the S3 client, one ledger per event.

Policies come from ``$LEANLAKE_POLICIES`` (a directory or file; relative paths are relative to
the app's directory) or else ``policies/`` beside ``app.py`` (DESIGN "Policies in Lambda").
Nothing here runs at import: ``app.py`` imports with no environment set and without pyarrow.

Example:
    >>> from chalicelib import runtime
    >>> runtime.policies_path("/var/task")     # doctest: +SKIP
    PosixPath('/var/task/policies')
"""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import Any, Mapping

from chalicelib.context import RunContext
from chalicelib.ledger import Ledger
from chalicelib.log import logger
from chalicelib.policy import PolicySet, load_policies
from chalicelib.refs import ObjectRef

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


def context() -> RunContext:
    from chalicelib.s3 import client

    return RunContext(policies=policies(), s3=client())


def handle_refs(refs: list[ObjectRef], *, key_maybe_encoded: bool = False) -> dict[str, Any]:
    """Run uploads through the pipeline; emit metrics; return the run's totals."""
    from chalicelib.pipeline import handle_uploads

    ledger = Ledger()
    try:
        outcomes = handle_uploads(refs, context(), ledger, key_maybe_encoded=key_maybe_encoded)
    finally:
        ledger.flush()
    return {**ledger.totals(), "outcomes": [o.as_dict() for o in outcomes]}


def handle_s3_notification(event: Mapping[str, Any]) -> dict[str, Any]:
    from chalicelib.events import refs_from_s3_notification

    return handle_refs(list(refs_from_s3_notification(event)))


def handle_eventbridge(event: Mapping[str, Any]) -> dict[str, Any]:
    from chalicelib.events import refs_from_eventbridge

    return handle_refs(list(refs_from_eventbridge(event)), key_maybe_encoded=True)


class RetryLater(RuntimeError):
    """Raised so Lambda redelivers an SQS batch whose objects failed transiently (Chalice has no partial
    batch responses); the objects that succeeded are skipped on redelivery, as outputs already made."""


def handle_sqs(event: Mapping[str, Any]) -> dict[str, Any]:
    """S3 notifications (direct, SNS-wrapped or EventBridge) queued in SQS. Bad inputs are logged and
    counted, not retried; transient failures (throttling, 5xx, network) raise RetryLater."""
    from chalicelib.events import refs_from_sqs
    from chalicelib.pipeline import handle_uploads

    ledger = Ledger()
    ctx = context()
    try:
        outcomes = handle_uploads(refs_from_sqs(event), ctx, ledger)
    finally:
        ledger.flush()
    transient = [o for o in outcomes if o.status == "error" and o.detail.get("transient")]
    if transient:
        raise RetryLater(f"{len(transient)} object(s) failed transiently, first: {transient[0].reason}")
    return {**ledger.totals(), "outcomes": [o.as_dict() for o in outcomes]}


def handle_alarm(event: Mapping[str, Any]) -> dict[str, Any]:
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
    from chalicelib.sweep import sweep

    ledger = Ledger()
    try:
        report = sweep(context(), ledger, policy_names=[lp.policy.name for lp in selected])
    finally:
        ledger.flush()
    return {"swept": [lp.policy.name for lp in selected], **report}


def scheduled_sweep() -> dict[str, Any]:
    """The daily sweep: every policy, every bucket."""
    from chalicelib.sweep import sweep

    ledger = Ledger()
    try:
        return sweep(context(), ledger)
    finally:
        ledger.flush()
