"""Lambda events → ObjectRefs. Keys are URL-decoded exactly once, where the event encodes them.

| event | where the key is | decoded here |
|---|---|---|
| S3 notification (direct, via SQS, via SNS → SQS) | ``Records[].s3.object.key`` | ``unquote_plus`` |
| EventBridge "Object Created" | ``detail.object.key`` | no (AWS does not document encoding; moto sends it as stored) |
| Chalice ``S3Event`` | ``event.key`` | already decoded by Chalice |

Only ``ObjectCreated:*`` events yield refs; ``s3:TestEvent``, tagging, ACL and delete events yield none.
The event's size and ETag are hints: the executor's HEAD is the truth.

Example:
    >>> event = {"Records": [{"eventSource": "aws:s3", "eventName": "ObjectCreated:Put",
    ...     "s3": {"bucket": {"name": "ml-lake"}, "object": {"key": "raw/a+b%2B.csv", "size": 5}}}]}
    >>> [r.key for r in refs_from_s3_notification(event)]
    ['raw/a b+.csv']
"""

from __future__ import annotations

import json
from typing import Any, Iterator, Mapping
from urllib.parse import unquote_plus

from chalicelib.refs import ObjectRef


def refs_from_s3_notification(event: Mapping[str, Any]) -> Iterator[ObjectRef]:
    """Refs of the ``ObjectCreated:*`` records of an S3 notification (``{"Records": [...]}``)."""
    for record in event.get("Records") or ():
        if record.get("eventSource") != "aws:s3" or not str(record.get("eventName", "")).startswith("ObjectCreated:"):
            continue
        s3 = record["s3"]
        obj = s3["object"]
        yield ObjectRef(
            bucket=s3["bucket"]["name"],
            key=unquote_plus(obj["key"]),
            size=obj.get("size"),
            etag=obj.get("eTag") or obj.get("etag"),
            version_id=obj.get("versionId"),
        )


def refs_from_eventbridge(event: Mapping[str, Any]) -> Iterator[ObjectRef]:
    """Refs of an EventBridge ``Object Created`` event (moto spells the ETag ``eTag``, AWS ``etag``)."""
    if event.get("source") != "aws.s3" or event.get("detail-type") != "Object Created":
        return
    detail = event.get("detail") or {}
    obj = detail.get("object") or {}
    yield ObjectRef(
        bucket=detail["bucket"]["name"],
        key=obj["key"],
        size=obj.get("size"),
        etag=obj.get("etag") or obj.get("eTag"),
        version_id=obj.get("version-id"),
    )


def refs_from_message(body: str | Mapping[str, Any]) -> Iterator[ObjectRef]:
    """Refs of one queued message: an S3 notification, an SNS envelope around one, or an EventBridge event."""
    message = json.loads(body) if isinstance(body, str) else body
    if not isinstance(message, Mapping):
        return
    if message.get("Type") == "Notification" and "Message" in message:  # SNS → SQS without raw delivery
        yield from refs_from_message(message["Message"])
    elif "Records" in message:
        yield from refs_from_s3_notification(message)
    elif "detail-type" in message:
        yield from refs_from_eventbridge(message)
    # anything else (s3:TestEvent, unknown shapes) holds no object


def refs_from_sqs(event: Mapping[str, Any]) -> Iterator[ObjectRef]:
    """Refs of every object in an SQS batch event (Powertools' SQSEvent data class reads the records)."""
    from aws_lambda_powertools.utilities.data_classes import SQSEvent

    for record in SQSEvent(dict(event)).records:
        yield from refs_from_message(record.body)
