"""``chalice deploy`` done right: the build copy (trimmed pyarrow, policies), the work queues, then Chalice.

Run from the repository, ``chalice deploy`` would package under your Python (3.11 drops pyarrow),
without ``policies/`` and with the untrimmed 59 MB pyarrow (over the 50 MiB it uploads), and it
creates no SQS queue for ``on_queued_upload``. ``deploy`` instead:

1. makes the same build copy as ``package`` (``make_build_copy``: app.py, chalicelib/, .chalice/,
   policies/ into vendor/), regenerates the stage's IAM policy, vendors the
   trimmed pyarrow, and brings along the project's ``.chalice/deployed/<stage>.json`` so Chalice
   updates what it deployed before instead of creating it again;
2. packages it offline once (``chalice package --pkg-format terraform``) and checks the zip like
   ``package`` does (pyarrow for python3.12 and the policies inside, ≤ 50 MiB, ≤ 250 MB unzipped):
   this is also the ``--dry-run`` plan, which never calls AWS;
3. ensures the stage's work queue (``$LEANLAKE_QUEUE`` of the stage) and its ``-dlq`` exist with the
   same settings as the Terraform/SAM output (redrive after 5 receives, visibility 6 × the function
   timeout, a queue policy for S3 notifications from the policies' buckets) — created, or updated
   in place when they exist;
4. runs ``chalice deploy --stage STAGE`` in the build copy under the Python 3.12 build venv;
5. copies ``.chalice/deployed/<stage>.json`` back into the project (gitignored), so ``chalice delete``,
   ``destroy`` and the next deploy know what exists — also after a failed deploy;
6. gives every asynchronously invoked function (S3, EventBridge, schedule) an event-invoke config:
   2 retries, then the event goes to the dead-letter queue (as the packaged formats do);
7. puts the stage's CloudWatch dashboard ``leanlake-<stage>`` (``dashboard``: savings, objects acted
   on, errors, the buckets' storage by class), built and checked against CloudWatch's limits with the
   plan, so a dashboard that cannot be put fails before anything is deployed.

``destroy`` runs ``chalice delete --stage STAGE`` from a build copy carrying that state, then deletes
both queues (messages in the dead-letter queue go with it) and the dashboard.

Example:
    >>> plan = deploy(".", "prod", dry_run=True)                      # doctest: +SKIP
    >>> plan.functions, plan.queues                                   # doctest: +SKIP
    (('leanlake-prod-on_upload', ...), ('leanlake-prod-work-dlq', 'leanlake-prod-work'))
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from collections import deque
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

from leanlake.deploy import package as pkg
from leanlake.deploy.extras import (ASYNC_RETRIES, DEAD_LETTER_RETENTION_SECONDS, MAX_RECEIVES, WORK_RETENTION_SECONDS,
                                      _queue_policy, _visibility, terraform_config)
from leanlake.deploy.package import PackageError
from leanlake.deploy.project import NAMESPACE_ENV, ChaliceConfig, dead_letter_queue
from leanlake.deploy.python import RUNTIME_VERSION

_RUNTIME = "python{}.{}".format(*RUNTIME_VERSION)
NO_CREDENTIALS = ("no AWS credentials found: configure them (aws configure / aws sso login, AWS_PROFILE, or "
                  "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY) and retry")


class DeployError(PackageError):
    """Deploying or destroying failed; the message is one line saying why."""


@dataclass(frozen=True)
class Queue:
    """One SQS queue ``deploy`` manages, with the attributes it sets (SQS wants strings)."""

    name: str
    attributes: dict[str, str]


@dataclass
class Plan:
    """What ``deploy`` creates or updates for a stage (``--dry-run`` prints it and stops)."""

    stage: str
    region: str | None
    functions: tuple[str, ...]
    rules: tuple[str, ...]
    s3_notifications: tuple[str, ...]
    sqs_sources: tuple[str, ...]
    queues: tuple[str, ...]
    zip_bytes: int
    unzipped_bytes: int
    pyarrow_version: str
    update: bool
    async_functions: tuple[str, ...] = ()
    actions: list[str] = field(default_factory=list)
    dashboard: str | None = None

    def lines(self) -> list[str]:
        verb = "update" if self.update else "create"
        out = [f"stage {self.stage} ({_RUNTIME}, region {self.region or '(not set)'}): chalice deploy would {verb}"
               f" ({'from .chalice/deployed/' + self.stage + '.json' if self.update else 'nothing deployed from here yet'})"]
        out += [f"  lambda function  {name}" for name in self.functions]
        out += [f"  eventbridge rule {name}" for name in self.rules]
        out += [f"  s3 notification  s3://{name} → Lambda (merged into the bucket's notifications)" for name in self.s3_notifications]
        out += [f"  sqs event source {name}" for name in self.sqs_sources]
        out += [f"  sqs queue        {name} (created/updated before chalice deploy)" for name in self.queues]
        out += [f"  event-invoke     {name}: {ASYNC_RETRIES} retries, then the dead-letter queue" for name in self.async_functions]
        if self.dashboard:
            out.append(f"  cloudwatch dashboard {self.dashboard} (created/updated after chalice deploy)")
        out.append(f"  package          {self.zip_bytes / 2**20:.1f} MiB zip, {self.unzipped_bytes / 1e6:.1f} MB unzipped, "
                   f"pyarrow {self.pyarrow_version} (limits {pkg.MAX_ZIP_BYTES / 2**20:.0f} MiB, "
                   f"{pkg.MAX_UNZIPPED_BYTES / 1e6:.1f} MB)")
        return out


def stage_queues(config: ChaliceConfig, stage: str, queue_arn: str | None = None, dlq_arn: str | None = None,
                 buckets: tuple[str, ...] = (), account: str | None = None) -> tuple[Queue, ...]:
    """The stage's dead-letter queue and work queue (in creation order), as the Terraform/SAM output has them."""
    name = config.queue(stage)
    if not name:
        return ()
    dlq = Queue(dead_letter_queue(name), {"MessageRetentionPeriod": str(DEAD_LETTER_RETENTION_SECONDS),
                                          "SqsManagedSseEnabled": "true"})
    work = {"VisibilityTimeout": str(_visibility(config, stage)), "MessageRetentionPeriod": str(WORK_RETENTION_SECONDS),
            "SqsManagedSseEnabled": "true"}
    if dlq_arn:
        work["RedrivePolicy"] = json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": MAX_RECEIVES})
    if queue_arn and buckets and account:
        work["Policy"] = json.dumps(_queue_policy(queue_arn, list(buckets), account))
    return dlq, Queue(name, work)


def _error_code(exc: Exception) -> str:
    return getattr(exc, "response", {}).get("Error", {}).get("Code", "")


def _queue_url(sqs, name: str) -> str | None:
    from botocore.exceptions import ClientError

    try:
        return sqs.get_queue_url(QueueName=name)["QueueUrl"]
    except ClientError as exc:
        if _error_code(exc) in ("AWS.SimpleQueueService.NonExistentQueue", "QueueDoesNotExist"):
            return None
        raise


def _ensure_queue(sqs, name: str, attributes: dict[str, str], log: Callable[[str], None]) -> tuple[str, str]:
    """Create ``name`` with ``attributes``, or set them on the existing queue; returns (URL, ARN)."""
    url = _queue_url(sqs, name)
    if url is None:
        url = sqs.create_queue(QueueName=name, Attributes=attributes)["QueueUrl"]
        log(f"created SQS queue {name}")
    else:
        sqs.set_queue_attributes(QueueUrl=url, Attributes=attributes)
        log(f"SQS queue {name} exists (attributes brought up to date)")
    return url, sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]


def ensure_queues(sqs, config: ChaliceConfig, stage: str, buckets: tuple[str, ...] = (), account: str | None = None,
                  log: Callable[[str], None] = print) -> dict[str, str]:
    """Create the stage's dead-letter and work queues, or bring existing ones to the wanted attributes; name → ARN.

    Idempotent: running it again changes nothing. ``buckets`` and ``account``: the queue policy letting
    S3 notifications of the policies' buckets (in this account) send to the work queue.
    """
    queues = stage_queues(config, stage)
    if not queues:
        return {}
    dlq, work = queues
    _, dlq_arn = _ensure_queue(sqs, dlq.name, dlq.attributes, log)
    url, arn = _ensure_queue(sqs, work.name, stage_queues(config, stage, dlq_arn=dlq_arn)[1].attributes, log)
    if buckets and account:
        policy = stage_queues(config, stage, queue_arn=arn, dlq_arn=dlq_arn, buckets=buckets, account=account)[1]
        sqs.set_queue_attributes(QueueUrl=url, Attributes={"Policy": policy.attributes["Policy"]})
    return {dlq.name: dlq_arn, work.name: arn}


def delete_queues(sqs, config: ChaliceConfig, stage: str, log: Callable[[str], None] = print) -> list[str]:
    """Delete the stage's work queue and its dead-letter queue (those that exist); returns the names deleted."""
    deleted = []
    for queue in reversed(stage_queues(config, stage)):
        url = _queue_url(sqs, queue.name)
        if url is None:
            log(f"SQS queue {queue.name}: not there")
            continue
        sqs.delete_queue(QueueUrl=url)
        log(f"deleted SQS queue {queue.name}")
        deleted.append(queue.name)
    return deleted


def _aws(log: Callable[[str], None]) -> tuple[Any, str, str]:
    """A boto3 session with credentials and a region, and the account ID; DeployError (one line) otherwise."""
    import boto3
    from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

    session = boto3.Session()
    if session.get_credentials() is None:
        raise DeployError(NO_CREDENTIALS)
    if not session.region_name:
        raise DeployError("no AWS region: set AWS_DEFAULT_REGION (or a region in your AWS profile) and retry")
    try:
        identity = session.client("sts").get_caller_identity()
    except NoCredentialsError:
        raise DeployError(NO_CREDENTIALS) from None
    except (BotoCoreError, ClientError) as exc:
        raise DeployError(f"AWS credentials do not work: {str(exc).splitlines()[0]}") from None
    log(f"AWS: {identity['Arn']} in {session.region_name}")
    return session, session.region_name, identity["Account"]


@contextmanager
def _build_copy(project: Path, stage: str, *, python: str | Path | None, cache_dir: str | Path | None,
                pyarrow_version: str | None, vendor: bool, log: Callable[[str], None]) -> Iterator[pkg.BuildCopy]:
    """``package``'s build copy, plus the project's deployed state for ``stage`` so Chalice updates what exists."""
    try:
        with pkg.build_copy(project, stage, python=python, cache_dir=cache_dir, pyarrow_version=pyarrow_version,
                            vendor=vendor, log=log) as build:
            state = project / ".chalice" / "deployed" / f"{stage}.json"
            if state.is_file():
                (build.directory / ".chalice" / "deployed").mkdir(exist_ok=True)
                shutil.copy2(state, build.directory / ".chalice" / "deployed" / state.name)
            yield build
    except DeployError:
        raise
    except PackageError as exc:
        raise DeployError(str(exc)) from None


def _copy_state_back(build: pkg.BuildCopy, project: Path, stage: str, log: Callable[[str], None]) -> Path | None:
    source = build.directory / ".chalice" / "deployed" / f"{stage}.json"
    if not source.is_file():
        return None
    target = project / ".chalice" / "deployed" / source.name
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(source, target)
    log(f"deployed state → {target}")
    return target


def _chalice(build: pkg.BuildCopy, args: list[str], env: dict[str, str], what: str, log: Callable[[str], None]) -> None:
    """Run the build venv's chalice in the build copy, its output going to ``log``; DeployError with the reason."""
    proc = subprocess.Popen([str(build.chalice), *args], cwd=build.directory, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    tail: deque[str] = deque(maxlen=40)
    assert proc.stdout is not None
    for line in proc.stdout:
        line = line.rstrip()
        if line.strip():
            tail.append(line.strip())
            log(f"  {line}")
    if proc.wait() != 0:
        text = "\n".join(tail)
        if "Unable to locate credentials" in text or "NoCredentialsError" in text:
            raise DeployError(NO_CREDENTIALS)
        reason = next((line for line in reversed(tail) if not line.startswith(("Traceback", "File ", "^"))), f"exit {proc.returncode}")
        raise DeployError(f"{what} failed: {reason}")


def _plan(build: pkg.BuildCopy, stage: str, region: str | None, log: Callable[[str], None]) -> Plan:
    """Package the build copy offline (terraform format, whose template lists everything) and check it like ``package``."""
    config_path = build.directory / ".chalice" / "config.json"
    original = config_path.read_text(encoding="utf-8")
    out = build.directory.parent / "plan"
    env = {**os.environ, **pkg.OFFLINE_ENV}
    env.pop(pkg.FORMAT_ENV, None)  # chalice deploy reads app.py without it
    env["AWS_DEFAULT_REGION"] = region or "us-east-1"
    try:
        config_path.write_text(json.dumps(terraform_config(json.loads(original)), indent=2), encoding="utf-8")
        _chalice(build, ["package", "--stage", stage, "--pkg-format", "terraform", str(out)], env,
                 "chalice package (the offline check before deploying)", log)
    finally:
        config_path.write_text(original, encoding="utf-8")
    requirements = pkg._requirement_names((build.directory / "requirements.txt").read_text(encoding="utf-8"))
    checked = pkg.check_format("terraform", out, requirements)
    resources = json.loads((out / "chalice.tf.json").read_text(encoding="utf-8")).get("resource", {})
    functions = resources.get("aws_lambda_function", {})
    consumers = {str(m.get("function_name", "")).split(".")[1] for m in resources.get("aws_lambda_event_source_mapping", {}).values()
                 if str(m.get("function_name", "")).startswith("${aws_lambda_function.")}
    prefix = build.config.function_prefix(stage)
    queue = build.config.queue(stage)
    return Plan(
        stage=stage, region=region,
        functions=tuple(sorted(f["function_name"] for f in functions.values())),
        rules=tuple(sorted(f"{prefix}{name}" for name in resources.get("aws_cloudwatch_event_rule", {}))),
        s3_notifications=tuple(sorted(n.get("bucket", "?") for n in resources.get("aws_s3_bucket_notification", {}).values())),
        sqs_sources=tuple(sorted(f"{functions[c]['function_name']} ← {queue}" for c in consumers if c in functions)),
        queues=tuple(q.name for q in stage_queues(build.config, stage)),
        zip_bytes=checked.zip_bytes, unzipped_bytes=checked.unzipped_bytes, pyarrow_version=build.pyarrow_version or "?",
        update=(build.directory / ".chalice" / "deployed" / f"{stage}.json").is_file(),
        async_functions=tuple(sorted(f["function_name"] for key, f in functions.items() if key not in consumers)) if queue else (),
    )


def _deployed(state: Path) -> list[dict[str, Any]]:
    try:
        return json.loads(state.read_text(encoding="utf-8")).get("resources", [])
    except (OSError, ValueError):
        return []


def _failure_destinations(session, state: Path, dlq_arn: str, log: Callable[[str], None]) -> list[str]:
    """Event-invoke configs for the asynchronously invoked functions: 2 retries, then the dead-letter queue."""
    from botocore.exceptions import ClientError

    resources = _deployed(state)
    consumers = {r.get("lambda_arn") for r in resources if r.get("resource_type") == "sqs_event"}
    client = session.client("lambda")
    done = []
    for resource in resources:
        arn = resource.get("lambda_arn")
        if resource.get("resource_type") != "lambda_function" or not arn or arn in consumers:
            continue
        for attempt in range(6):  # Lambda checks the role may send to the queue: IAM takes a moment to propagate
            try:
                client.put_function_event_invoke_config(FunctionName=arn, MaximumRetryAttempts=ASYNC_RETRIES,
                                                        DestinationConfig={"OnFailure": {"Destination": dlq_arn}})
                break
            except ClientError as exc:
                if _error_code(exc) != "InvalidParameterValueException" or attempt == 5:
                    raise
                time.sleep(5)
        done.append(arn.rsplit(":", 1)[-1])
    if done:
        log(f"failures of {', '.join(done)} go to the dead-letter queue after {ASYNC_RETRIES} retries")
    return done


def _dashboard(config: ChaliceConfig, buckets: tuple[str, ...], plan: Plan) -> dict[str, Any]:
    """The stage's dashboard body, checked against CloudWatch's limits (no AWS call); names it in ``plan``."""
    from leanlake.deploy.dashboard import DEFAULT_NAMESPACE, dashboard_body, dashboard_name

    try:
        plan.dashboard = dashboard_name(plan.stage, config.app_name)
    except ValueError as exc:
        raise DeployError(str(exc)) from None
    queue = config.queue(plan.stage)
    return dashboard_body(plan.stage, plan.region or "us-east-1", buckets,
                          config.env(plan.stage).get(NAMESPACE_ENV, DEFAULT_NAMESPACE), plan.functions,
                          dead_letter_queue(queue) if queue else None)


def _put_dashboard(session, plan: Plan, body: dict[str, Any], log: Callable[[str], None]) -> None:
    """Create or replace the stage's dashboard (after chalice deploy: its graphs name the deployed functions)."""
    from botocore.exceptions import BotoCoreError, ClientError

    from leanlake.deploy.dashboard import console_url, ensure_dashboard

    assert plan.dashboard and plan.region
    try:
        ensure_dashboard(session.client("cloudwatch"), plan.dashboard, body, log)
    except (BotoCoreError, ClientError) as exc:
        raise DeployError(f"CloudWatch dashboard: {str(exc).splitlines()[0]}") from None
    log(f"dashboard: {console_url(plan.dashboard, plan.region)}")


def deploy(project_dir: str | Path = ".", stage: str = "dev", *, dry_run: bool = False, python: str | Path | None = None,
           pyarrow_version: str | None = None, cache_dir: str | Path | None = None,
           log: Callable[[str], None] = print) -> Plan:
    """Deploy ``stage`` with ``chalice deploy`` from a proper build copy (see the module docstring); return the plan.

    ``dry_run``: build and check the package, and return the plan, without calling AWS.
    Raises DeployError (one line) when anything fails.
    """
    from botocore.exceptions import BotoCoreError, ClientError

    started = time.monotonic()
    project = Path(project_dir).resolve()
    session = account = None
    if not dry_run:  # before the slow build: missing credentials fail at once
        session, region, account = _aws(log)
    else:
        import boto3

        region = boto3.Session().region_name
    with _build_copy(project, stage, python=python, cache_dir=cache_dir, pyarrow_version=pyarrow_version,
                     vendor=True, log=log) as build:
        plan = _plan(build, stage, region, log)
        dashboard = _dashboard(build.config, build.buckets, plan)
        if dry_run:
            log(f"dry run: nothing deployed ({time.monotonic() - started:.0f} s)")
            return plan
        try:
            arns = ensure_queues(session.client("sqs"), build.config, stage, build.buckets, account, log)
        except (BotoCoreError, ClientError) as exc:
            raise DeployError(f"SQS queues: {str(exc).splitlines()[0]}") from None
        env = {**os.environ, "AWS_DEFAULT_REGION": region}
        env.pop(pkg.FORMAT_ENV, None)
        log(f"chalice deploy --stage {stage} ({_RUNTIME}, {plan.zip_bytes / 2**20:.1f} MiB package)")
        try:
            _chalice(build, ["deploy", "--stage", stage], env, f"chalice deploy --stage {stage}", log)
        finally:
            state = _copy_state_back(build, project, stage, log)
        queue = build.config.queue(stage)
        if queue and state:
            try:
                plan.actions = _failure_destinations(session, state, arns[dead_letter_queue(queue)], log)
            except (BotoCoreError, ClientError) as exc:
                raise DeployError(f"failure destinations: {str(exc).splitlines()[0]}") from None
        _put_dashboard(session, plan, dashboard, log)
    log(f"deployed stage {stage} in {time.monotonic() - started:.0f} s")
    return plan


def destroy(project_dir: str | Path = ".", stage: str = "dev", *, python: str | Path | None = None,
            cache_dir: str | Path | None = None, log: Callable[[str], None] = print) -> list[str]:
    """``chalice delete --stage`` from a build copy carrying the deployed state, then delete the stage's queues.

    Returns the queues deleted. Nothing here asks: the caller confirms first.
    """
    from botocore.exceptions import BotoCoreError, ClientError

    project = Path(project_dir).resolve()
    session, region, _ = _aws(log)
    state = project / ".chalice" / "deployed" / f"{stage}.json"
    with _build_copy(project, stage, python=python, cache_dir=cache_dir, pyarrow_version=None, vendor=False, log=log) as build:
        if _deployed(state):
            env = {**os.environ, "AWS_DEFAULT_REGION": region}
            env.pop(pkg.FORMAT_ENV, None)
            try:
                _chalice(build, ["delete", "--stage", stage], env, f"chalice delete --stage {stage}", log)
            finally:
                _copy_state_back(build, project, stage, log)
        else:
            log(f"no Chalice resources recorded in {state}: nothing for chalice delete")
        try:
            deleted = delete_queues(session.client("sqs"), build.config, stage, log)
        except (BotoCoreError, ClientError) as exc:
            raise DeployError(f"SQS queues: {str(exc).splitlines()[0]}") from None
        from leanlake.deploy.dashboard import dashboard_name, delete_dashboard

        try:
            delete_dashboard(session.client("cloudwatch"), dashboard_name(stage, build.config.app_name), log)
        except (BotoCoreError, ClientError) as exc:
            raise DeployError(f"CloudWatch dashboard: {str(exc).splitlines()[0]}") from None
        return deleted
