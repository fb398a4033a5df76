"""``leanlake batch``: a backfill at any scale, as an S3 Batch Operations job that invokes ``batch_task``.

For each bucket: the plan's object-level decisions that act (those an upload would carry out: their
action's scope is ``object`` and an action carries them out) become a manifest,
``_leanlake/batch/<run>/manifest.csv`` in the bucket (``Bucket,Key`` with the key URL-encoded, no
header: ``S3BatchOperations_CSV_20180820``; one line per object however many policies match it).
Then S3 Control ``CreateJob``: ``LambdaInvoke`` of the stage's ``batch_task`` function (schema 2.0,
``userArguments.run``), a completion report of every task under ``_leanlake/batch/<run>/``, the
job's role, a priority, and the run id as the idempotency token, so a retried request for the same
run and bucket creates no second job. The function runs each object through the upload pipeline
(``chalicelib.batch``); deletions and bucket configuration stay with ``leanlake apply`` and the
daily sweep.

Example:
    >>> manifest_line("ml-lake", "raw/2026/a b+c.csv")
    'ml-lake,raw/2026/a%20b%2Bc.csv\\n'
    >>> manifest_key("20261130T063112Z-3f9a1c2e")
    '_leanlake/batch/20261130T063112Z-3f9a1c2e/manifest.csv'
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable
from urllib.parse import quote

from chalicelib import s3 as s3util
from chalicelib.decision import Decision
from chalicelib.multipart import MultipartSink
from chalicelib.pipeline import acts_on_upload
from chalicelib.refs import RESERVED_PREFIX

#: Where a run's manifest and the job's completion reports live, in each bucket.
BATCH_PREFIX = f"{RESERVED_PREFIX}batch/"
MANIFEST_FORMAT = "S3BatchOperations_CSV_20180820"
REPORT_FORMAT = "Report_CSV_20180820"
#: The Chalice function (``@app.lambda_function(name=...)``) the job invokes.
FUNCTION_NAME = "batch_task"
#: The invocation schema the job asks for (2.0 carries ``userArguments``).
INVOCATION_SCHEMA = "2.0"
#: A run id: letters, digits, ``-`` and ``_``; short enough to stay a valid ClientRequestToken (≤ 64) with the bucket's digest.
_RUN_ID = re.compile(r"[A-Za-z0-9_-]{1,48}")
#: CreateJob's limit on a job's description.
MAX_DESCRIPTION = 256


class BatchError(Exception):
    """A batch job cannot be prepared or created; the message is the one-line reason."""


def new_run_id(now: datetime | None = None) -> str:
    """A fresh run id: the UTC time and a random suffix (``20261130T063112Z-3f9a1c2e``)."""
    moment = now or datetime.now(timezone.utc)
    return f"{moment:%Y%m%dT%H%M%SZ}-{secrets.token_hex(4)}"


def check_run_id(run: str) -> str:
    """``run`` when it can name a run (a key prefix and an idempotency token), else BatchError.

    >>> check_run_id("backfill-2026-11")
    'backfill-2026-11'
    >>> check_run_id("a/b")
    Traceback (most recent call last):
    ...
    leanlake.batch.BatchError: run id 'a/b' must be 1 to 48 letters, digits, '-' or '_'
    """
    if not _RUN_ID.fullmatch(run):
        raise BatchError(f"run id {run!r} must be 1 to 48 letters, digits, '-' or '_'")
    return run


def manifest_key(run: str) -> str:
    return f"{BATCH_PREFIX}{run}/manifest.csv"


def report_prefix(run: str) -> str:
    """Where S3 writes the job's completion report (it adds ``/job-<id>/…``)."""
    return f"{BATCH_PREFIX}{run}"


def manifest_line(bucket: str, key: str) -> str:
    """One manifest line: the bucket, and the key URL-encoded (as Batch Operations requires; ``,`` too)."""
    return f"{bucket},{quote(key, safe='/')}\n"


def request_token(run: str, bucket: str) -> str:
    """CreateJob's ClientRequestToken: the run id, and a digest of the bucket (one run makes one job per bucket).

    >>> request_token("r1", "ml-lake")
    'r1-344f48443e87'
    """
    return f"{run}-{hashlib.sha256(bucket.encode()).hexdigest()[:12]}"


def acting_keys(decisions: Iterable[Decision]) -> dict[str, list[str]]:
    """Bucket → the keys of the object-level decisions that act, in plan order, each key once."""
    found: dict[str, dict[str, None]] = {}
    for decision in decisions:
        if decision.key is not None and acts_on_upload(decision):
            found.setdefault(decision.bucket, {})[decision.key] = None
    return {bucket: list(keys) for bucket, keys in found.items()}


@dataclass(frozen=True)
class Manifest:
    """A manifest written to S3: where, its ETag (CreateJob pins it) and how many objects it lists."""

    bucket: str
    key: str
    etag: str
    objects: int

    @property
    def uri(self) -> str:
        return f"s3://{self.bucket}/{self.key}"

    def arn(self, partition: str = "aws") -> str:
        return f"arn:{partition}:s3:::{self.bucket}/{self.key}"


def write_manifest(s3: Any, bucket: str, run: str, keys: Iterable[str]) -> Manifest:
    """Write the run's manifest for ``bucket``, streamed to S3 as it is produced (millions of lines
    need no local disk), only if it does not exist yet: a run id names one list (BatchError otherwise)."""
    key = manifest_key(run)
    sink = MultipartSink(s3, bucket, key, extra={"ContentType": "text/csv"})
    count = 0
    try:
        for object_key in keys:
            sink.write(manifest_line(bucket, object_key).encode())
            count += 1
        written = sink.commit()
    except s3util.ConditionFailed:
        raise BatchError(f"{key} exists already: run {run} has its manifest; give another --run") from None
    except BaseException:
        sink.abort()
        raise
    return Manifest(bucket=bucket, key=key, etag=written.etag, objects=count)


def function_arn_from_deployed(chalice_dir: Path, stage: str) -> str:
    """The ``batch_task`` function's ARN from Chalice's deployed state, ``.chalice/deployed/<stage>.json``."""
    state = chalice_dir / "deployed" / f"{stage}.json"
    try:
        resources = json.loads(state.read_text(encoding="utf-8")).get("resources", [])
    except FileNotFoundError:
        raise BatchError(f"{state} does not exist: deploy the stage first (leanlake deploy --stage {stage}) "
                         "or pass --function-arn") from None
    except ValueError as exc:
        raise BatchError(f"{state} is not JSON: {exc}") from None
    for resource in resources if isinstance(resources, list) else ():
        if isinstance(resource, dict) and resource.get("name") == FUNCTION_NAME and resource.get("lambda_arn"):
            return str(resource["lambda_arn"])
    raise BatchError(f"{state} has no {FUNCTION_NAME} function: deploy a version of leanlake that has it, or pass --function-arn")


def partition_of(arn: str) -> str:
    """The partition an ARN is in (``aws``, ``aws-cn``, ``aws-us-gov``), for the ARNs the job names.

    >>> partition_of("arn:aws-cn:lambda:cn-north-1:123456789012:function:leanlake-prod-batch_task")
    'aws-cn'
    """
    parts = arn.split(":")
    if len(parts) < 6 or parts[0] != "arn" or not parts[1]:
        raise BatchError(f"{arn!r} is not an ARN")
    return parts[1]


def job_request(manifest: Manifest, *, account_id: str, run: str, function_arn: str, role_arn: str,
                priority: int = 10, confirmation_required: bool = True, description: str = "") -> dict[str, Any]:
    """The S3 Control ``CreateJob`` request for one bucket's manifest.

    >>> request = job_request(Manifest("lake", manifest_key("r1"), "abc", 2), account_id="123456789012", run="r1",
    ...     function_arn="arn:aws:lambda:us-east-1:123456789012:function:leanlake-dev-batch_task",
    ...     role_arn="arn:aws:iam::123456789012:role/leanlake-batch")
    >>> request["Operation"]["LambdaInvoke"]["UserArguments"], request["Report"]["Prefix"]
    ({'run': 'r1'}, '_leanlake/batch/r1')
    """
    partition = partition_of(function_arn)
    return {
        "AccountId": account_id,
        "ConfirmationRequired": confirmation_required,
        "Operation": {"LambdaInvoke": {"FunctionArn": function_arn, "InvocationSchemaVersion": INVOCATION_SCHEMA,
                                       "UserArguments": {"run": run}}},
        "Report": {"Bucket": f"arn:{partition}:s3:::{manifest.bucket}", "Format": REPORT_FORMAT, "Enabled": True,
                   "Prefix": report_prefix(run), "ReportScope": "AllTasks"},
        "ClientRequestToken": request_token(run, manifest.bucket),
        "Manifest": {"Spec": {"Format": MANIFEST_FORMAT, "Fields": ["Bucket", "Key"]},
                     "Location": {"ObjectArn": manifest.arn(partition), "ETag": manifest.etag}},
        "Description": (description or f"leanlake run {run}: {manifest.objects} objects in s3://{manifest.bucket}")[:MAX_DESCRIPTION],
        "Priority": priority,
        "RoleArn": role_arn,
    }


def s3control_client(region: str) -> Any:
    """The S3 Control client that creates jobs in ``region``."""
    import boto3

    return boto3.client("s3control", region_name=region)


def caller_account(region: str) -> str:
    """The account of the credentials in use (STS ``GetCallerIdentity``)."""
    import boto3

    return str(boto3.client("sts", region_name=region).get_caller_identity()["Account"])


def create_job(s3control: Any, request: dict[str, Any]) -> str:
    """Create the job; its id."""
    return str(s3control.create_job(**request)["JobId"])
