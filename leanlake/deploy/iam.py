"""The deployed IAM policy, derived from the policies (least privilege that works on every bucket).

Each action class declares the S3 requests it makes; ``chalicelib.actions.permissions`` maps each
request (with and without a VersionId) to the IAM actions AWS documents for it. A bucket gets, on
its objects (``arn:aws:s3:::BUCKET/*``) and on itself (``arn:aws:s3:::BUCKET``), exactly what the
requests of the policies naming it need — versioned and Object Lock buckets included. Around that:
writing the functions' logs, consuming the stage's work queue, and sending to its dead-letter
queue (Lambda delivers failed asynchronous events there with the function's role). Metrics are
EMF log lines, so no ``cloudwatch:PutMetricData``. Nothing else: no wildcard action, no
``Resource: "*"``, no object action on every bucket.

``batch_role_documents`` gives the other role leanlake needs, the one its S3 Batch Operations jobs run
with (``leanlake batch``): trusted by Batch Operations only, it reads the runs' manifests and writes
their reports under ``_leanlake/batch/`` of the policies' buckets, and invokes the stage's
``batch_task`` function; nothing else (the function's own role does the work).

Example:
    >>> from chalicelib.policy import PolicySet
    >>> from leanlake.deploy.project import ChaliceConfig
    >>> ps = PolicySet.from_dicts([{"name": "p", "bucket": "lake-one", "actions": [{"storage_class": "ONEZONE_IA"}]}])
    >>> cfg = ChaliceConfig({"app_name": "leanlake", "stages": {"dev": {}}})
    >>> doc = policy_document(ps, cfg, "dev")
    >>> doc["Statement"][0]["Resource"], doc["Statement"][0]["Action"][:3]
    (['arn:aws:s3:::lake-one/*'], ['s3:AbortMultipartUpload', 's3:GetObject', 's3:GetObjectTagging'])
    >>> least_privilege_problems(doc)
    []
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Iterable, Sequence

from chalicelib.actions.permissions import needs, policy_calls
from leanlake.batch import BATCH_PREFIX, FUNCTION_NAME
from leanlake.deploy.project import ChaliceConfig, dead_letter_queue
from chalicelib.policy import PolicySet, load_policies

#: IAM's limit for an inline role policy (Chalice attaches the file as one), whitespace excluded.
INLINE_POLICY_LIMIT = 10_240
#: What Lambda's SQS event source does with the work queue, with the function's role (the actions of
#: AWSLambdaSQSQueueExecutionRole), and SendMessage: sweeps fan out through it (chalicelib.fanout).
QUEUE_ACTIONS = ("sqs:DeleteMessage", "sqs:GetQueueAttributes", "sqs:ReceiveMessage", "sqs:SendMessage")
LOG_ACTIONS = ("logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents")


def _sid(*words: str) -> str:
    """A statement id (IAM allows only letters and digits): ``("objects", "ml-lake")`` → ``ObjectsMlLake``."""
    return "".join(part.capitalize() for word in words for part in re.split(r"[^A-Za-z0-9]+", word) if part)


def _grouped(perms: dict[str, set[str]], arn: str, sid: str) -> list[dict[str, Any]]:
    """One statement per distinct action set, listing every bucket that needs exactly that set."""
    by_actions: dict[tuple[str, ...], list[str]] = {}
    for bucket, actions in perms.items():
        if actions:
            by_actions.setdefault(tuple(sorted(actions)), []).append(bucket)
    statements = []
    for actions, buckets in by_actions.items():
        statements.append({
            "Sid": _sid(sid, *buckets) if len(buckets) == 1 else _sid(sid, buckets[0], f"and {len(buckets) - 1} more"),
            "Effect": "Allow",
            "Action": list(actions),
            "Resource": [arn.format(bucket=b) for b in buckets],
        })
    return statements


def policy_document(policy_set: PolicySet, config: ChaliceConfig, stage: str) -> dict[str, Any]:
    """The IAM policy document for ``stage``: S3 from the policies' requests, then logs and queues."""
    objects: dict[str, set[str]] = {}
    buckets: dict[str, set[str]] = {}
    for bucket in policy_set.buckets:
        grant = needs(call for loaded in policy_set.for_bucket(bucket) for call in policy_calls(loaded.policy))
        objects[bucket], buckets[bucket] = set(grant.objects), set(grant.bucket)
    statements = _grouped(objects, "arn:aws:s3:::{bucket}/*", "objects in") + _grouped(buckets, "arn:aws:s3:::{bucket}", "bucket")

    log_group = f"arn:aws:logs:*:*:log-group:/aws/lambda/{config.function_prefix(stage)}*"
    statements.append({"Sid": "Logs", "Effect": "Allow", "Action": list(LOG_ACTIONS),
                       "Resource": [log_group, f"{log_group}:log-stream:*"]})
    queue = config.queue(stage)
    if queue:
        statements.append({"Sid": "WorkQueue", "Effect": "Allow", "Action": list(QUEUE_ACTIONS),
                           "Resource": [f"arn:aws:sqs:*:*:{queue}"]})
        # Lambda's asynchronous dead-letter queue is written with the function's own role.
        statements.append({"Sid": "DeadLetters", "Effect": "Allow", "Action": ["sqs:SendMessage"],
                           "Resource": [f"arn:aws:sqs:*:*:{dead_letter_queue(queue)}"]})
    seen: dict[str, int] = {}
    for statement in statements:  # IAM wants unique Sids; "a.b" and "a-b" would both be "AB"
        seen[statement["Sid"]] = seen.get(statement["Sid"], 0) + 1
        if seen[statement["Sid"]] > 1:
            statement["Sid"] += str(seen[statement["Sid"]])
    return {"Version": "2012-10-17", "Statement": statements}


def _listed(value: str | Iterable[str]) -> list[str]:
    return [value] if isinstance(value, str) else list(value)


def least_privilege_problems(document: dict[str, Any]) -> list[str]:
    """What in ``document`` breaks least privilege (empty when nothing does)."""
    problems = []
    for statement in document["Statement"]:
        sid = statement.get("Sid", "?")
        actions, resources = _listed(statement.get("Action", [])), _listed(statement.get("Resource", []))
        if statement.get("Effect") != "Allow" or "NotAction" in statement or "NotResource" in statement:
            problems.append(f"{sid}: only plain Allow statements are expected")
        for action in actions:
            if "*" in action:
                problems.append(f"{sid}: wildcard action {action}")
        if "*" in resources:
            problems.append(f"{sid}: Resource '*' for {', '.join(actions)}")
        for resource in resources:
            if resource.startswith("arn:aws:s3:::") and "*" in resource.removeprefix("arn:aws:s3:::").removesuffix("/*"):
                problems.append(f"{sid}: bucket wildcard in {resource}")
    size = len(json.dumps(document, separators=(",", ":")))
    if size > INLINE_POLICY_LIMIT:
        problems.append(f"policy is {size} characters, over IAM's inline limit of {INLINE_POLICY_LIMIT}")
    return problems


def render(document: dict[str, Any]) -> str:
    """The committed form of a policy document: stable key order, two-space indent, final newline."""
    return json.dumps(document, indent=2) + "\n"


def policy_file(config: ChaliceConfig, stage: str) -> str:
    """The file name Chalice reads the stage's policy from (``iam_policy_file``, default ``policy-STAGE.json``)."""
    return config.setting(stage, "iam_policy_file") or f"policy-{stage}.json"


def generate(policies: Sequence[str | Path] = ("policies",), chalice_dir: str | Path = ".chalice",
             stages: Sequence[str] | None = None, *, policy_set: PolicySet | None = None) -> dict[Path, str]:
    """Path → text of every stage's policy file, derived from ``policies`` (or an already loaded
    ``policy_set``) and ``.chalice/config.json``.

    Raises PolicyError when the policies do not validate, ValueError when a document would break
    least privilege (e.g. too many buckets for one inline policy).
    """
    config = ChaliceConfig.load(chalice_dir)
    policy_set = policy_set or load_policies(list(policies))
    out: dict[Path, str] = {}
    for stage in stages or config.stages:
        document = policy_document(policy_set, config, stage)
        problems = least_privilege_problems(document)
        if problems:
            raise ValueError(f"stage {stage}: " + "; ".join(problems))
        out[Path(chalice_dir) / policy_file(config, stage)] = render(document)
    return out


def write_policies(policies: Sequence[str | Path] = ("policies",), chalice_dir: str | Path = ".chalice",
                   stages: Sequence[str] | None = None, check: bool = False, *,
                   policy_set: PolicySet | None = None) -> list[Path]:
    """Write ``.chalice/policy-<stage>.json`` for every stage; return the files that changed.

    With ``check=True`` nothing is written: the returned files are those that are stale
    (CI fails when the committed policy no longer matches the policies).
    """
    changed = []
    for path, text in generate(policies, chalice_dir, stages, policy_set=policy_set).items():
        if path.exists() and path.read_text(encoding="utf-8") == text:
            continue
        changed.append(path)
        if not check:
            path.write_text(text, encoding="utf-8")
    return changed


#: The service principal that assumes the role of an S3 Batch Operations job.
BATCH_SERVICE = "batchoperations.s3.amazonaws.com"


def batch_role_documents(policy_set: PolicySet, config: ChaliceConfig, stage: str) -> dict[str, dict[str, Any]]:
    """The trust policy and the permissions policy of the role ``leanlake batch`` jobs run with in ``stage``.

    >>> from chalicelib.policy import PolicySet
    >>> ps = PolicySet.from_dicts([{"name": "p", "bucket": "lake-one", "actions": [{"storage_class": "ONEZONE_IA"}]}])
    >>> docs = batch_role_documents(ps, ChaliceConfig({"app_name": "leanlake", "stages": {"dev": {}}}), "dev")
    >>> docs["trust"]["Statement"][0]["Principal"], docs["permissions"]["Statement"][2]["Resource"]
    ({'Service': 'batchoperations.s3.amazonaws.com'}, ['arn:aws:lambda:*:*:function:leanlake-dev-batch_task'])
    """
    runs = [f"arn:aws:s3:::{bucket}/{BATCH_PREFIX}*" for bucket in policy_set.buckets]
    if not runs:
        raise ValueError(f"stage {stage}: no policy names a bucket, so no batch job has a manifest to read")
    trust = {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Principal": {"Service": BATCH_SERVICE}, "Action": "sts:AssumeRole"}]}
    permissions = {"Version": "2012-10-17", "Statement": [
        {"Sid": "ReadManifests", "Effect": "Allow", "Action": ["s3:GetObject", "s3:GetObjectVersion"], "Resource": runs},
        {"Sid": "WriteReports", "Effect": "Allow", "Action": ["s3:PutObject"], "Resource": runs},
        {"Sid": "InvokeBatchTask", "Effect": "Allow", "Action": ["lambda:InvokeFunction"],
         "Resource": [f"arn:aws:lambda:*:*:function:{config.function_prefix(stage)}{FUNCTION_NAME}"]},
    ]}
    problems = least_privilege_problems(permissions)
    if problems:
        raise ValueError(f"stage {stage}: batch role: " + "; ".join(problems))
    return {"trust": trust, "permissions": permissions}
