"""S3 Batch Operations: each task of a ``LambdaInvoke`` invocation goes the upload path, and is answered.

A backfill of millions of objects (``leanlake batch``) hands S3 Batch Operations a manifest; the job
invokes the ``batch_task`` function with a few tasks at a time, and this module runs each task's
object through ``pipeline.handle_uploads`` (HEAD is the truth, the loop guard holds, only object
actions run: expiry waits for the sweep; a ``source: delete`` conversion deletes its verified source
as an upload's does, conditionally, audited and counted against ``max_deletions`` per invocation)
and answers each task for the job's completion report:

| outcome | resultCode | resultString |
|---|---|---|
| done, or a skip (already made, not smaller, nothing to do) | ``Succeeded`` | what was done, or why not |
| throttling, 5xx, network (``describe_error``, an Outcome's ``detail["transient"]``) | ``TemporaryFailure`` | the error; the job retries |
| bad input: a conversion error, a missing object, a malformed task, a bucket no policy names | ``PermanentFailure`` | the reason |

Every resultString is one line naming the object (``s3://bucket/key: …``). The response echoes
``invocationSchemaVersion`` and ``invocationId`` and says ``treatMissingKeysAs: PermanentFailure``.

Keys: schema 1.0 tasks carry URL-encoded keys and the bucket as ``s3BucketArn``; 2.0 tasks carry
``s3Bucket`` and a key whose encoding AWS does not document, so it is tried as given and decoded only
when no object has the key as given (``handle_uploads(key_maybe_encoded=True)``). Powertools'
``S3BatchOperationTask`` is not used for these: it decodes every key, and takes whatever follows
``:::`` in any ARN as a bucket. A task's ``s3VersionId`` is a hint like an event's: the object's
current version is what HEAD finds and what is handled. A malformed event never raises: every task with a ``taskId`` gets
its answer, the others are logged. The job's ``userArguments.run`` (2.0) names the leanlake run and
is logged with every line of the invocation.

Example:
    >>> event = {"invocationSchemaVersion": "1.0", "invocationId": "inv-1", "job": {"id": "job-1"},
    ...          "tasks": [{"taskId": "t-1", "s3Key": "raw/a.csv", "s3BucketArn": "arn:aws:s3:::"}]}
    >>> response = handle_batch_event(event, None, None)
    >>> response["results"][0]["resultCode"], response["results"][0]["resultString"]
    ('PermanentFailure', "task t-1: malformed: s3BucketArn 'arn:aws:s3:::' is not an S3 bucket ARN")
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Literal, Mapping
from urllib.parse import unquote_plus

from chalicelib import runtime
from chalicelib import s3 as s3util
from chalicelib.context import RunContext
from chalicelib.decision import Outcome
from chalicelib.errors import describe_error
from chalicelib.ledger import Ledger
from chalicelib.log import logger
from chalicelib.pipeline import handle_uploads
from chalicelib.refs import RESERVED_PREFIX, ObjectRef

ResultCode = Literal["Succeeded", "TemporaryFailure", "PermanentFailure"]
SUCCEEDED: ResultCode = "Succeeded"
TEMPORARY: ResultCode = "TemporaryFailure"
PERMANENT: ResultCode = "PermanentFailure"
#: The invocation schemas this handler reads.
SCHEMAS = ("1.0", "2.0")
#: Longest resultString answered: the report is a CSV meant to be read, so long reasons are cut.
MAX_RESULT_STRING = 1024
#: A bucket ARN in any partition (``arn:aws:s3:::b``, ``arn:aws-cn:s3:::b``); access points and objects are not buckets.
_BUCKET_ARN = re.compile(r"arn:aws[a-z-]*:s3:::([a-z0-9][a-z0-9.-]{1,61}[a-z0-9])")


class MalformedTask(ValueError):
    """A task that names no object leanlake can look for; the message says why."""


@dataclass(frozen=True, slots=True)
class Task:
    """One task of an invocation: the object it names, and whether its key may still be URL-encoded."""

    task_id: str
    bucket: str
    key: str
    version_id: str | None = None
    key_maybe_encoded: bool = False

    @property
    def uri(self) -> str:
        return f"s3://{self.bucket}/{self.key}"


def bucket_from_arn(arn: Any) -> str:
    """The bucket a 1.0 task's ``s3BucketArn`` names; MalformedTask for anything but a bucket ARN.

    >>> bucket_from_arn("arn:aws:s3:::ml-lake"), bucket_from_arn("arn:aws-cn:s3:::ml-lake")
    ('ml-lake', 'ml-lake')
    >>> bucket_from_arn("arn:aws:s3:us-east-1:123456789012:accesspoint/lake")
    Traceback (most recent call last):
    ...
    chalicelib.batch.MalformedTask: s3BucketArn 'arn:aws:s3:us-east-1:123456789012:accesspoint/lake' is not an S3 bucket ARN
    """
    found = _BUCKET_ARN.fullmatch(arn) if isinstance(arn, str) else None
    if found is None:
        raise MalformedTask(f"s3BucketArn {arn!r} is not an S3 bucket ARN")
    return found.group(1)


def read_task(task: Mapping[str, Any], schema: str) -> Task:
    """The object a task names (its ``taskId`` already checked); MalformedTask when it names none.

    >>> read_task({"taskId": "t", "s3Key": "raw/a%20b+c.csv", "s3BucketArn": "arn:aws:s3:::lake"}, "1.0").key
    'raw/a b c.csv'
    >>> read_task({"taskId": "t", "s3Key": "raw/a b+c.csv", "s3Bucket": "lake"}, "2.0")
    Task(task_id='t', bucket='lake', key='raw/a b+c.csv', version_id=None, key_maybe_encoded=True)
    """
    if schema not in SCHEMAS:
        raise MalformedTask(f"invocationSchemaVersion {schema!r} is not one of {', '.join(SCHEMAS)}")
    key = task.get("s3Key")
    if not isinstance(key, str) or not key:
        raise MalformedTask(f"s3Key is {key!r}, not a non-empty string")
    bucket = task.get("s3Bucket")
    if bucket is None:
        bucket = bucket_from_arn(task.get("s3BucketArn"))
    elif not isinstance(bucket, str) or not bucket:
        raise MalformedTask(f"s3Bucket is {bucket!r}, not a bucket name")
    version = task.get("s3VersionId")
    encoded = schema == "1.0"
    return Task(task_id=str(task["taskId"]), bucket=bucket, key=unquote_plus(key) if encoded else key,
                version_id=version if isinstance(version, str) and version else None, key_maybe_encoded=not encoded)


def one_line(text: str) -> str:
    """``text`` on one line, at most ``MAX_RESULT_STRING`` characters.

    >>> one_line("bad header\\n  at line 2")
    'bad header at line 2'
    """
    flat = " ".join(text.split())
    return flat if len(flat) <= MAX_RESULT_STRING else flat[:MAX_RESULT_STRING - 1] + "…"


def describe_outcome(outcome: Outcome) -> str:
    """What one Outcome says in a report: ``convert: wrote …``, ``convert skipped: …``, ``skipped: …``."""
    action, status = outcome.decision.action, outcome.status
    if status == "ok":
        return f"{action}: {outcome.reason}"
    if action == "skip":
        return f"skipped: {outcome.reason}"
    return f"{action} {'skipped' if status == 'skip' else 'failed'}: {outcome.reason}"


def result_of_outcomes(task: Task, outcomes: list[Outcome]) -> tuple[ResultCode, str]:
    """One answer for a task's outcomes (one per matching policy): any error fails the task, temporarily
    when every error is transient; otherwise it succeeded, and the string says what each did."""
    errors = [o for o in outcomes if o.status == "error"]
    code = SUCCEEDED
    if errors:
        code = TEMPORARY if all(o.detail.get("transient") for o in errors) else PERMANENT
    shown = errors or outcomes
    key = shown[0].decision.key or task.key
    return code, f"s3://{task.bucket}/{key}: " + "; ".join(describe_outcome(o) for o in shown)


def why_nothing_ran(task: Task, ctx: RunContext) -> tuple[ResultCode, str]:
    """The answer when the pipeline produced no outcome: the object is missing (a permanent failure,
    as the job is told to treat missing keys), leanlake's own, or no object action applies to it."""
    if not ctx.policies.for_bucket(task.bucket):
        return PERMANENT, f"{task.uri}: no leanlake policy names bucket {task.bucket}"
    if task.key.startswith(RESERVED_PREFIX):
        return SUCCEEDED, f"{task.uri}: skipped: under {RESERVED_PREFIX}, leanlake's own"
    with_tags = ctx.policies.needs_tags(task.bucket)
    head = s3util.head(ctx.s3, task.bucket, task.key, with_tags=with_tags)
    if head is None and task.key_maybe_encoded and unquote_plus(task.key) != task.key:
        head = s3util.head(ctx.s3, task.bucket, unquote_plus(task.key), with_tags=with_tags)
    if head is None:
        return PERMANENT, f"{task.uri}: no such object"
    uri = f"s3://{head.bucket}/{head.key}"
    if head.marker:
        return SUCCEEDED, f"{uri}: skipped: written by leanlake ({head.marker})"
    return SUCCEEDED, f"{uri}: skipped: no policy with an object action matches it"


def run_task(task: Task, ctx: RunContext, ledger: Ledger) -> tuple[ResultCode, str]:
    """Run one task's object through the upload pipeline and answer it; never raises."""
    try:
        ref = ObjectRef(bucket=task.bucket, key=task.key, version_id=task.version_id)
        outcomes = handle_uploads([ref], ctx, ledger, key_maybe_encoded=task.key_maybe_encoded)
        return result_of_outcomes(task, outcomes) if outcomes else why_nothing_ran(task, ctx)
    except Exception as exc:  # HEAD throttled, the object unreadable: this task's answer, not the invocation's end
        reason, transient = describe_error(exc)
        logger.warning(f"{task.uri}: {reason}")
        return (TEMPORARY if transient else PERMANENT), f"{task.uri}: {reason}"


def answer(task: Mapping[str, Any], schema: str, ctx: RunContext, ledger: Ledger) -> dict[str, str]:
    """The result of one task with a ``taskId``: a malformed one fails permanently, naming what is wrong."""
    try:
        parsed = read_task(task, schema)
    except MalformedTask as exc:
        code, text = PERMANENT, f"task {task['taskId']}: malformed: {exc}"
    else:
        code, text = run_task(parsed, ctx, ledger)
    log = logger.info if code == SUCCEEDED else logger.warning
    log(f"batch task {task['taskId']}: {code}: {text}", extra={"task_id": task["taskId"], "result_code": code})
    return {"taskId": str(task["taskId"]), "resultCode": code, "resultString": one_line(text)}


def mapping(value: Any) -> Mapping[str, Any]:
    """``value`` when it is a JSON object, else an empty one (a malformed event still gets its answer)."""
    return value if isinstance(value, Mapping) else {}


def handle_batch_event(event: Any, ctx: RunContext, ledger: Ledger) -> dict[str, Any]:
    """Answer one ``LambdaInvoke`` invocation: a result for every task that has a ``taskId``.

    ``ctx`` and ``ledger`` are the run's (``handle_batch_invocation`` makes them per invocation);
    metrics are the ledger's to flush. Nothing raises: an event without tasks gets no results.
    """
    body = mapping(event)
    schema = str(body.get("invocationSchemaVersion", ""))
    job = mapping(body.get("job"))
    arguments = mapping(job.get("userArguments"))
    tasks = body.get("tasks")
    log_keys = {"batch_job": job.get("id"), "batch_invocation": body.get("invocationId"), "run": arguments.get("run")}
    logger.append_keys(**log_keys)
    try:
        if not isinstance(tasks, list) or not tasks:
            logger.error(f"batch invocation {body.get('invocationId')!r} has no tasks list: nothing to answer")
            tasks = []
        else:
            logger.info(f"batch invocation of job {job.get('id')} (run {arguments.get('run')}): {len(tasks)} task(s)")
        results = []
        for index, task in enumerate(tasks):
            if not isinstance(task, Mapping) or task.get("taskId") in (None, ""):
                logger.error(f"batch task {index}: has no taskId, so it cannot be answered: {str(task)[:200]}")
                continue
            results.append(answer(task, schema, ctx, ledger))
    finally:
        logger.remove_keys(list(log_keys))
    return {"invocationSchemaVersion": body.get("invocationSchemaVersion", schema), "treatMissingKeysAs": PERMANENT,
            "invocationId": body.get("invocationId"), "results": results}


def handle_batch_invocation(event: Any, lambda_context: Any = None) -> dict[str, Any]:
    """The ``batch_task`` function's body: one run (policies, S3 client, deletions, the time left) and
    one ledger per invocation, metrics flushed whatever happens. A conversion that cannot finish in
    the time left is a skip naming ``leanlake apply`` (``pipeline.time_guard``), answered Succeeded."""
    ledger = Ledger()
    try:
        return handle_batch_event(event, runtime.context(lambda_context=lambda_context), ledger)
    finally:
        ledger.flush()
