"""What Chalice's templates leave out, added to its output: the work queue, dead letters, log retention.

Chalice's config has no dead-letter setting, does not create the queue ``on_sqs_message`` reads,
and its terraform output has no log groups (``log_retention_in_days`` is refused there) and names
EventBridge rules without the stage (dev and prod would collide in one account). So after
``chalice package``:

* both formats get the stage's work queue (``$LEANLAKE_QUEUE``; visibility 6 × the function timeout,
  as Lambda advises for SQS sources; S3 of the policies' buckets may send to it) and its dead-letter
  queue (after 5 receives; kept 14 days), the SQS event source wired to the queue it creates, and
  for every asynchronously invoked function (S3, EventBridge, schedule) an event-invoke config:
  2 retries, then the event goes to the dead-letter queue;
* terraform gets ``leanlake.tf.json`` (new resources) and ``leanlake_override.tf.json`` (Terraform's
  override files: stage-prefixed rule names, the queue reference, log groups created before the functions);
  the SAM template is completed in place.

Example:
    >>> from leanlake.deploy.project import ChaliceConfig
    >>> cfg = ChaliceConfig({"app_name": "leanlake", "lambda_timeout": 900,
    ...                      "stages": {"dev": {"environment_variables": {"LEANLAKE_QUEUE": "q"}}}})
    >>> sam = {"Resources": {"Fn": {"Type": "AWS::Serverless::Function", "Properties": {"Events": {}}}}}
    >>> sorted(complete_sam(sam, cfg, "dev", ["b"])["Resources"])
    ['Fn', 'FnEventInvokeConfig', 'LeanlakeDeadLetters', 'LeanlakeWork', 'LeanlakeWorkPolicy']
"""

from __future__ import annotations

import copy
import json
import re
from typing import Any, Sequence

from leanlake.deploy.project import ChaliceConfig, dead_letter_queue

#: Lambda retries a failed asynchronous invocation this often before giving up (to the dead-letter queue).
ASYNC_RETRIES = 2
#: Receives of one message before SQS moves it to the dead-letter queue.
MAX_RECEIVES = 5
WORK_RETENTION_SECONDS = 4 * 24 * 3600
DEAD_LETTER_RETENTION_SECONDS = 14 * 24 * 3600


def _visibility(config: ChaliceConfig, stage: str) -> int:
    """Lambda's advice for SQS event sources: visibility timeout at least 6 × the function timeout (SQS max 12 h)."""
    return min(6 * int(config.setting(stage, "lambda_timeout", 60)), 12 * 3600)


def _queue_policy(queue_arn: Any, buckets: Sequence[str], account: Any) -> dict[str, Any]:
    """S3 notifications from the policies' buckets (in this account) may be sent to the work queue."""
    return {"Version": "2012-10-17", "Statement": [{
        "Sid": "S3NotificationsFromPolicyBuckets", "Effect": "Allow",
        "Principal": {"Service": "s3.amazonaws.com"}, "Action": "sqs:SendMessage", "Resource": queue_arn,
        "Condition": {"ArnLike": {"aws:SourceArn": [f"arn:aws:s3:::{b}" for b in buckets]},
                      "StringEquals": {"aws:SourceAccount": account}},
    }]}


def complete_sam(template: dict[str, Any], config: ChaliceConfig, stage: str, buckets: Sequence[str]) -> dict[str, Any]:
    """The SAM template with the work queue, its dead-letter queue and the functions' failure destinations."""
    out = copy.deepcopy(template)
    queue = config.queue(stage)
    if not queue:
        return out
    resources = out.setdefault("Resources", {})
    dead_letters = {"Fn::GetAtt": ["LeanlakeDeadLetters", "Arn"]}
    resources["LeanlakeDeadLetters"] = {"Type": "AWS::SQS::Queue", "Properties": {
        "QueueName": dead_letter_queue(queue), "MessageRetentionPeriod": DEAD_LETTER_RETENTION_SECONDS,
        "SqsManagedSseEnabled": True}}
    resources["LeanlakeWork"] = {"Type": "AWS::SQS::Queue", "Properties": {
        "QueueName": queue, "VisibilityTimeout": _visibility(config, stage), "MessageRetentionPeriod": WORK_RETENTION_SECONDS,
        "SqsManagedSseEnabled": True, "RedrivePolicy": {"deadLetterTargetArn": dead_letters, "maxReceiveCount": MAX_RECEIVES}}}
    resources["LeanlakeWorkPolicy"] = {"Type": "AWS::SQS::QueuePolicy", "Properties": {
        "Queues": [{"Ref": "LeanlakeWork"}],
        "PolicyDocument": _queue_policy({"Fn::GetAtt": ["LeanlakeWork", "Arn"]}, buckets, {"Ref": "AWS::AccountId"})}}
    for name, resource in list(resources.items()):
        if resource.get("Type") != "AWS::Serverless::Function":
            continue
        events = resource["Properties"].get("Events", {})
        sqs = [e for e in events.values() if e.get("Type") == "SQS"]
        for event in sqs:
            arn = event["Properties"].get("Queue", "")
            arn = arn.get("Fn::Sub", "") if isinstance(arn, dict) else arn  # Chalice writes {"Fn::Sub": "arn:...:name"}
            if isinstance(arn, str) and arn.endswith(f":{queue}"):
                event["Properties"]["Queue"] = {"Fn::GetAtt": ["LeanlakeWork", "Arn"]}
        if not sqs:  # invoked asynchronously: failures go to the dead-letter queue after the retries
            resources[f"{name}EventInvokeConfig"] = {"Type": "AWS::Lambda::EventInvokeConfig", "Properties": {
                "FunctionName": {"Ref": name}, "Qualifier": "$LATEST", "MaximumRetryAttempts": ASYNC_RETRIES,
                "DestinationConfig": {"OnFailure": {"Destination": dead_letters}}}}
    return out


def terraform_files(chalice_tf: dict[str, Any], config: ChaliceConfig, stage: str,
                    buckets: Sequence[str]) -> dict[str, dict[str, Any]]:
    """File name → content of the files written beside ``chalice.tf.json`` (Terraform reads every ``*.tf.json``)."""
    resources = chalice_tf.get("resource", {})
    functions = resources.get("aws_lambda_function", {})
    mappings = resources.get("aws_lambda_event_source_mapping", {})
    added: dict[str, dict[str, Any]] = {}
    override: dict[str, dict[str, Any]] = {}

    for rule in resources.get("aws_cloudwatch_event_rule", {}):
        override.setdefault("aws_cloudwatch_event_rule", {})[rule] = {"name": f"{config.function_prefix(stage)}{rule}"}

    retention = config.setting(stage, "log_retention_in_days")
    if retention:
        for name, function in functions.items():
            added.setdefault("aws_cloudwatch_log_group", {})[name] = {
                "name": f"/aws/lambda/{function['function_name']}", "retention_in_days": int(retention)}
            override.setdefault("aws_lambda_function", {})[name] = {"depends_on": [f"aws_cloudwatch_log_group.{name}"]}

    queue = config.queue(stage)
    if queue:
        dead_letters = "${aws_sqs_queue.leanlake_dead_letters.arn}"
        added.setdefault("aws_sqs_queue", {})["leanlake_dead_letters"] = {
            "name": dead_letter_queue(queue), "message_retention_seconds": DEAD_LETTER_RETENTION_SECONDS,
            "sqs_managed_sse_enabled": True}
        added["aws_sqs_queue"]["leanlake_work"] = {
            "name": queue, "visibility_timeout_seconds": _visibility(config, stage),
            "message_retention_seconds": WORK_RETENTION_SECONDS, "sqs_managed_sse_enabled": True,
            "redrive_policy": json.dumps({"deadLetterTargetArn": dead_letters, "maxReceiveCount": MAX_RECEIVES})}
        added["aws_sqs_queue_policy"] = {"leanlake_work": {
            "queue_url": "${aws_sqs_queue.leanlake_work.id}",
            "policy": json.dumps(_queue_policy("${aws_sqs_queue.leanlake_work.arn}", buckets,
                                               "${data.aws_caller_identity.chalice.account_id}"))}}
        consumers = set()
        for name, mapping in mappings.items():
            if str(mapping.get("event_source_arn", "")).endswith(f":{queue}"):
                override.setdefault("aws_lambda_event_source_mapping", {})[name] = {
                    "event_source_arn": "${aws_sqs_queue.leanlake_work.arn}"}
                consumers.add(re.sub(r"^\$\{aws_lambda_function\.([^.]+)\.arn\}$", r"\1", mapping.get("function_name", "")))
        for name, function in functions.items():
            if name in consumers:
                continue
            role_policy = re.sub(r"^\$\{aws_iam_role\.([^.]+)\.arn\}$", r"aws_iam_role_policy.\1", function.get("role", ""))
            added.setdefault("aws_lambda_function_event_invoke_config", {})[name] = {
                "function_name": f"${{aws_lambda_function.{name}.function_name}}",
                "maximum_retry_attempts": ASYNC_RETRIES,
                "destination_config": {"on_failure": {"destination": dead_letters}},
                # Lambda checks the role may send to the destination: wait for the role's policy.
                **({"depends_on": [role_policy]} if role_policy.startswith("aws_iam_role_policy.") else {}),
            }
    files = {}
    if added:
        files["leanlake.tf.json"] = {"resource": added}
    if override:
        files["leanlake_override.tf.json"] = {"resource": override}
    return files


def terraform_config(config_json: dict[str, Any]) -> dict[str, Any]:
    """``.chalice/config.json`` for ``chalice package --pkg-format terraform``, which refuses log groups."""
    out = copy.deepcopy(config_json)
    for level in (out, *out.get("stages", {}).values(),
                  *(f for s in out.get("stages", {}).values() for f in s.get("lambda_functions", {}).values())):
        level.pop("log_retention_in_days", None)
    return out
