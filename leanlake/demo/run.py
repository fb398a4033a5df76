"""Run the demo: embedded S3, a bucket with S3 → SQS notifications, the demo policies, realistic
uploads, and the queued events delivered to the same handler code the Lambda runs.

Example:
    >>> summary = run_demo()          # doctest: +SKIP
    >>> summary["bytes_saved"] > 0    # doctest: +SKIP
    True
"""

from __future__ import annotations

import io
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Callable

from leanlake.local import embedded_aws, patched_environ, publish_emf, publish_storage_metrics
from chalicelib.refs import is_reserved

BUCKET = "leanlake-demo"
QUEUE = "leanlake-demo-uploads"
POLICY_FILE = Path(__file__).with_name("policies.yaml")
MULTIPART_THRESHOLD = 5 * 1024 * 1024

Say = Callable[[str], None]


def _sqs_lambda_event(messages: list[dict[str, Any]], queue_arn: str) -> dict[str, Any]:
    """The event Lambda's SQS integration builds from received messages."""
    return {"Records": [{
        "messageId": m["MessageId"], "receiptHandle": m["ReceiptHandle"], "body": m["Body"],
        "attributes": m.get("Attributes", {}), "messageAttributes": {}, "md5OfBody": m.get("MD5OfBody", ""),
        "eventSource": "aws:sqs", "eventSourceARN": queue_arn, "awsRegion": "us-east-1",
    } for m in messages]}


def deliver(sqs: Any, queue_url: str, queue_arn: str, handler: Callable[[dict[str, Any]], dict[str, Any]]) -> list[dict[str, Any]]:
    """Poll the queue like Lambda's event source mapping until it stays empty; return the handler results."""
    results = []
    empty_polls = 0
    while empty_polls < 2:
        messages = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=0).get("Messages", [])
        if not messages:
            empty_polls += 1
            time.sleep(0.05)
            continue
        empty_polls = 0
        results.append(handler(_sqs_lambda_event(messages, queue_arn)))
        entries = [{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)]
        sqs.delete_message_batch(QueueUrl=queue_url, Entries=entries)
    return results


def run_demo(rows: int = 60_000, say: Say = lambda _: None, *, port: int = 0,
             serve: Callable[[dict[str, Any]], None] | None = None) -> dict[str, Any]:
    """The whole loop on an embedded S3; returns the summary ``leanlake demo --json`` prints.

    The handlers' EMF metrics go into the embedded CloudWatch (as CloudWatch Logs puts them in AWS), so the
    summary's ``report`` is what ``leanlake report`` reads there: the demo lake's footprint and its savings.
    ``serve``, when given, is called with the summary while the embedded stack still runs (``--serve``)."""
    import boto3
    from boto3.s3.transfer import TransferConfig

    from chalicelib import runtime
    from chalicelib.ledger import metrics_to
    from leanlake.demo.data import demo_files

    started = time.monotonic()
    with embedded_aws(port) as endpoint, patched_environ({"LEANLAKE_POLICIES": str(POLICY_FILE)}):
        runtime.policies.cache_clear()
        try:
            say(f"embedded S3 at {endpoint}; bucket {BUCKET}; policies {POLICY_FILE.name}")
            s3, sqs, cloudwatch = boto3.client("s3"), boto3.client("sqs"), boto3.client("cloudwatch")
            s3.create_bucket(Bucket=BUCKET)
            queue_url = sqs.create_queue(QueueName=QUEUE)["QueueUrl"]
            queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
            s3.put_bucket_notification_configuration(Bucket=BUCKET, NotificationConfiguration={
                "QueueConfigurations": [{"QueueArn": queue_arn, "Events": ["s3:ObjectCreated:*"]}]})

            uploaded: dict[str, int] = {}
            multipart = TransferConfig(multipart_threshold=MULTIPART_THRESHOLD, multipart_chunksize=MULTIPART_THRESHOLD)
            for key, body in demo_files(rows=rows):
                s3.upload_fileobj(io.BytesIO(body), BUCKET, key, Config=multipart)
                uploaded[key] = len(body)
                say(f"uploaded s3://{BUCKET}/{key} ({len(body):,} bytes{', multipart' if len(body) > MULTIPART_THRESHOLD else ''})")

            today = datetime.now(timezone.utc)
            publish_storage_metrics(s3, cloudwatch, BUCKET, today - timedelta(days=1))
            say("the lake as uploaded is yesterday's S3 storage metric in the embedded CloudWatch; after the run, today's")
            say("delivering the queued S3 events to the Lambda handler (on_queued_upload)")
            with metrics_to(io.StringIO()) as emf:
                results = deliver(sqs, queue_url, queue_arn, runtime.handle_sqs)
            say(f"{publish_emf(cloudwatch, emf.getvalue().splitlines())} metric values into the embedded CloudWatch")
            publish_storage_metrics(s3, cloudwatch, BUCKET, today)
            outcomes = [o for r in results for o in r["outcomes"]]
            listed = [o for page in s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET) for o in page.get("Contents", ())]
            summary = {**_summary(endpoint, uploaded, results, outcomes, listed), **measured(cloudwatch, s3)}
            summary["seconds"] = round(time.monotonic() - started, 2)
            if serve:
                serve(summary)
        finally:
            runtime.policies.cache_clear()
    return summary


def measured(cloudwatch: Any, s3: Any) -> dict[str, Any]:
    """What ``leanlake report --html`` shows for the demo bucket over two days: ``report``, the document of
    ``report --json`` (its footprint, yesterday as uploaded and today after leanlake, and the savings the run
    published), and ``planned``, what the demo policies still plan to save there (a read-only plan)."""
    from chalicelib import runtime
    from chalicelib.context import RunContext
    from chalicelib.report import document, planned_savings
    from chalicelib.sweep import bucket_decisions

    policies = runtime.policies()
    planned = planned_savings(bucket_decisions(RunContext(policies=policies, s3=s3), BUCKET, policies))
    report = document(lambda region: cloudwatch, {BUCKET: "us-east-1"}, days=2, namespace="leanlake")
    return {"report": report, "planned": planned}


def _summary(endpoint: str, uploaded: dict[str, int], results: list[dict[str, Any]], outcomes: list[dict[str, Any]],
             listed: list[dict[str, Any]]) -> dict[str, Any]:
    """``leanlake demo --json`` (with ``measured``): what was uploaded, what each event did, the bucket after."""
    from chalicelib.economics import storage_month

    done = [o for o in outcomes if o["status"] == "ok"]
    before = sum(o["bytes_before"] for o in done)
    after = sum(o["bytes_after"] for o in done)
    saved_share = (before - after) / before if before else 0.0
    per_tib = storage_month(int(2**40 * saved_share), "STANDARD", "us-east-1")
    return {
        "endpoint": endpoint,
        "bucket": BUCKET,
        "objects_uploaded": len(uploaded),
        "bytes_uploaded": sum(uploaded.values()),
        "events_delivered": sum(len(r["outcomes"]) for r in results),
        "objects_converted": sum(o["action"] == "convert" for o in done),
        "objects_recompressed": sum(o["action"] == "recompress" for o in done),
        "objects_skipped": sum(o["status"] == "skip" for o in outcomes),
        "errors": sum(o["status"] == "error" for o in outcomes),
        "bytes_before": before,
        "bytes_after": after,
        "bytes_saved": before - after,
        "per_tib_month": {"usd": round(per_tib.usd, 4), "kgco2e": round(per_tib.kgco2e, 6)},
        "outcomes": outcomes,
        "bucket_after": {o["Key"]: o["Size"] for o in listed if not is_reserved(o["Key"])},
        "audit_objects": {o["Key"]: o["Size"] for o in listed if is_reserved(o["Key"])},
    }
