"""Lambda events → ObjectRefs, one record at a time: a malformed record is reported, never raised.

Keys are URL-decoded exactly once, where the event encodes them.

| event | where the key is | decoded here |
|---|---|---|
| S3 notification (direct, via SQS, via SNS → SQS) | ``Records[].s3.object.key`` | ``unquote_plus`` |
| EventBridge "Object Created" | ``detail.object.key`` | no (AWS does not document encoding; moto sends it as stored) |
| Chalice ``S3Event`` | ``event.key`` | already decoded by Chalice |

Every reader takes ``on_bad(record, reason)`` and calls it once for each record it cannot read,
naming the record (SQS ``messageId``, index in ``Records``, EventBridge ``id``) and saying why; the
other records of the batch are still read, so one bad record never costs the good ones.

Only ``ObjectCreated:*`` events yield refs. Events that create nothing (``s3:TestEvent``, tagging,
ACL, delete, SNS subscription confirmations) are ignored: they are not bad. The event's size and
ETag are hints: the executor's HEAD is the truth, so an event for an overwritten object still gets
the current object handled.

Example:
    >>> event = {"Records": [{"eventSource": "aws:s3", "eventName": "ObjectCreated:Put",
    ...     "s3": {"bucket": {"name": "ml-lake"}, "object": {"key": "raw/a+b%2B.csv", "size": 5}}},
    ...     {"eventSource": "aws:s3", "eventName": "ObjectCreated:Put"}]}
    >>> bad = []
    >>> [r.key for r in refs_from_s3_notification(event, lambda record, reason: bad.append(f"{record}: {reason}"))]
    ['raw/a b+.csv']
    >>> bad
    ['S3 notification record 1: has no s3']
"""

from __future__ import annotations

import json
from typing import Any, Callable, Iterator, Mapping
from urllib.parse import unquote_plus

from chalicelib.log import logger
from chalicelib.refs import ObjectRef

#: Called with (the record's name, why it cannot be read) for each malformed record.
OnBad = Callable[[str, str], None]

#: SNS message types that carry no event (sent when a queue subscribes or unsubscribes).
_SNS_CONTROL_TYPES = ("SubscriptionConfirmation", "UnsubscribeConfirmation")


class MalformedRecord(ValueError):
    """One record cannot be read; the message says why (the readers report it through ``on_bad``)."""


def _text(container: Any, path: str) -> str:
    """The non-empty string at a dotted ``path``, or MalformedRecord naming the first part missing.

    >>> _text({"s3": {"object": {}}}, "s3.object.key")
    Traceback (most recent call last):
    ...
    chalicelib.events.MalformedRecord: has no s3.object.key
    >>> _text({"s3": "raw/a.csv"}, "s3.object.key")
    Traceback (most recent call last):
    ...
    chalicelib.events.MalformedRecord: s3 is a str, not an object
    """
    parts = path.split(".")
    value = container
    for depth, part in enumerate(parts):
        if not isinstance(value, Mapping):
            raise MalformedRecord(f"{'.'.join(parts[:depth]) or 'record'} is a {type(value).__name__}, not an object")
        if value.get(part) is None:
            raise MalformedRecord(f"has no {'.'.join(parts[:depth + 1])}")
        value = value[part]
    if not isinstance(value, str) or not value:
        raise MalformedRecord(f"{path} is {value!r}, not a non-empty string")
    return value


def _reason(exc: Exception) -> str:
    """The one-line reason for a record that could not be read."""
    return str(exc) if isinstance(exc, MalformedRecord) else f"{type(exc).__name__}: {exc}"


def _hint(value: Any, kind: type) -> Any:
    """An event's size or ETag only when it has the expected type: hints, never trusted."""
    return value if isinstance(value, kind) and not isinstance(value, bool) else None


def ref_from_s3_record(record: Any) -> ObjectRef | None:
    """The object one S3 notification record announces; None for records that create nothing.

    Raises MalformedRecord when the record is not an S3 record or lacks its bucket or key."""
    if not isinstance(record, Mapping):
        raise MalformedRecord(f"is a JSON {type(record).__name__}, not an object")
    source, name = record.get("eventSource"), record.get("eventName")
    if source != "aws:s3" or not isinstance(name, str):
        raise MalformedRecord(f"is not an S3 event record (eventSource {source!r}, eventName {name!r})")
    if not name.startswith("ObjectCreated:"):
        return None
    bucket, key = _text(record, "s3.bucket.name"), _text(record, "s3.object.key")
    obj = record["s3"]["object"]
    return ObjectRef(bucket=bucket, key=unquote_plus(key), size=_hint(obj.get("size"), int),
                     etag=_hint(obj.get("eTag") or obj.get("etag"), str), version_id=_hint(obj.get("versionId"), str))


def ref_from_eventbridge(event: Any) -> ObjectRef | None:
    """The object an EventBridge ``Object Created`` event announces (moto spells the ETag ``eTag``, AWS
    ``etag``); None for other events. Raises MalformedRecord when the detail, bucket or key is missing."""
    if not isinstance(event, Mapping):
        raise MalformedRecord(f"is a JSON {type(event).__name__}, not an object")
    if event.get("source") != "aws.s3" or event.get("detail-type") != "Object Created":
        return None
    bucket, key = _text(event, "detail.bucket.name"), _text(event, "detail.object.key")
    obj = event["detail"]["object"]
    return ObjectRef(bucket=bucket, key=key, size=_hint(obj.get("size"), int),
                     etag=_hint(obj.get("etag") or obj.get("eTag"), str), version_id=_hint(obj.get("version-id"), str))


def refs_from_s3_notification(event: Any, on_bad: OnBad, *, name: str = "S3 notification") -> Iterator[ObjectRef]:
    """Refs of the ``ObjectCreated:*`` records of an S3 notification (``{"Records": [...]}``); each
    malformed record goes to ``on_bad`` as ``<name> record <index>``."""
    records = event.get("Records") if isinstance(event, Mapping) else None
    if not isinstance(records, list):
        on_bad(name, "has no Records list")
        return
    for index, record in enumerate(records):
        try:
            ref = ref_from_s3_record(record)
        except Exception as exc:  # one record's fault must not cost the others
            on_bad(f"{name} record {index}", _reason(exc))
            continue
        if ref is not None:
            yield ref


def refs_from_eventbridge(event: Any, on_bad: OnBad, *, name: str | None = None) -> Iterator[ObjectRef]:
    """The ref of an EventBridge event (none unless ``Object Created``); a malformed one goes to ``on_bad``."""
    if name is None:
        event_id = event.get("id") if isinstance(event, Mapping) else None
        name = f"EventBridge event {event_id}" if event_id else "EventBridge event"
    try:
        ref = ref_from_eventbridge(event)
    except Exception as exc:
        on_bad(name, _reason(exc))
        return
    if ref is not None:
        yield ref


def _json_object(text: Any, what: str) -> Mapping[str, Any]:
    """``text`` parsed as a JSON object (a mapping passes through); MalformedRecord otherwise."""
    if isinstance(text, Mapping):
        return text
    if not isinstance(text, (str, bytes)):
        raise MalformedRecord(f"{what} is a {type(text).__name__}, not JSON text")
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise MalformedRecord(f"{what} is not JSON ({exc})") from None
    if not isinstance(value, Mapping):
        raise MalformedRecord(f"{what} is JSON but a {type(value).__name__}, not an object")
    return value


def refs_from_message(body: Any, on_bad: OnBad, *, name: str = "message") -> Iterator[ObjectRef]:
    """Refs of one queued message: an S3 notification, an SNS envelope around one, or an EventBridge
    event. ``s3:TestEvent`` and SNS subscription messages are ignored; anything else is bad."""
    try:
        message = _json_object(body, "body")
        if message.get("Type") == "Notification":  # SNS → SQS without raw message delivery
            if "Message" not in message:
                raise MalformedRecord("is an SNS envelope with no Message")
            message = _json_object(message["Message"], "SNS Message")
    except MalformedRecord as exc:
        on_bad(name, str(exc))
        return
    if message.get("Event") == "s3:TestEvent":
        logger.info(f"ignored {name}: s3:TestEvent for bucket {message.get('Bucket')}")
    elif message.get("Type") in _SNS_CONTROL_TYPES:
        logger.info(f"ignored {name}: SNS {message['Type']}")
    elif "Records" in message:
        yield from refs_from_s3_notification(message, on_bad, name=name)
    elif "detail-type" in message:
        yield from refs_from_eventbridge(message, on_bad, name=name)
    else:
        fields = ", ".join(sorted(map(str, message))[:8]) or "none"
        on_bad(name, f"is neither an S3 notification, an SNS envelope nor an EventBridge event (fields: {fields})")


def refs_from_sqs(event: Any, on_bad: OnBad) -> Iterator[ObjectRef]:
    """Refs of every object in an SQS batch event, message by message; a message is named by its
    ``messageId`` (or its index when it has none)."""
    records = event.get("Records") if isinstance(event, Mapping) else None
    if not isinstance(records, list):
        on_bad("SQS event", "has no Records list")
        return
    for index, record in enumerate(records):
        message_id = record.get("messageId") if isinstance(record, Mapping) else None
        name = f"SQS message {message_id}" if message_id else f"SQS record {index}"
        if not isinstance(record, Mapping):
            on_bad(name, f"is a {type(record).__name__}, not an object")
        elif record.get("body") is None:
            on_bad(name, "has no body")
        else:
            yield from refs_from_message(record["body"], on_bad, name=name)
