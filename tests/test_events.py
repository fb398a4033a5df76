"""Events → ObjectRefs: keys decoded exactly once where the event encodes them; only ObjectCreated."""

from __future__ import annotations

import json
from urllib.parse import quote_plus

from chalicelib.events import refs_from_eventbridge, refs_from_message, refs_from_s3_notification, refs_from_sqs

KEY = "raw/a b+c@d%e.csv"


def s3_record(key: str, name: str = "ObjectCreated:Put") -> dict:
    return {"eventVersion": "2.1", "eventSource": "aws:s3", "eventName": name,
            "s3": {"bucket": {"name": "ml-lake"}, "object": {"key": quote_plus(key, safe="/"), "size": 7, "eTag": "abc"}}}


def test_s3_notification_keys_are_decoded_once():
    refs = list(refs_from_s3_notification({"Records": [s3_record(KEY)]}))
    assert [(r.bucket, r.key, r.size, r.etag) for r in refs] == [("ml-lake", KEY, 7, "abc")]


def test_only_object_created_events_count():
    records = [s3_record(KEY, n) for n in ("ObjectRemoved:Delete", "ObjectTagging:Put", "ObjectCreated:Copy", "LifecycleTransition")]
    assert [r.key for r in refs_from_s3_notification({"Records": records})] == [KEY]


def test_sqs_wrapped_sns_wrapped_and_test_events():
    direct = json.dumps({"Records": [s3_record(KEY)]})
    via_sns = json.dumps({"Type": "Notification", "Message": direct})
    test_event = json.dumps({"Service": "Amazon S3", "Event": "s3:TestEvent", "Bucket": "ml-lake"})
    event = {"Records": [{"messageId": str(i), "receiptHandle": "r", "body": body, "attributes": {}, "messageAttributes": {},
                          "md5OfBody": "", "eventSource": "aws:sqs", "eventSourceARN": "arn:aws:sqs:us-east-1:1:q", "awsRegion": "us-east-1"}
                         for i, body in enumerate([direct, via_sns, test_event])]}
    assert [r.key for r in refs_from_sqs(event)] == [KEY, KEY]


def test_eventbridge_keys_are_taken_as_given_and_both_etag_spellings_read():
    for etag_field in ("etag", "eTag"):
        event = {"source": "aws.s3", "detail-type": "Object Created",
                 "detail": {"bucket": {"name": "ml-lake"}, "object": {"key": KEY, "size": 5, etag_field: "e1"}}}
        (ref,) = refs_from_eventbridge(event)
        assert (ref.key, ref.etag, ref.size) == (KEY, "e1", 5)
    deleted = {"source": "aws.s3", "detail-type": "Object Deleted", "detail": {"bucket": {"name": "b"}, "object": {"key": "k"}}}
    assert list(refs_from_eventbridge(deleted)) == []
    assert list(refs_from_message(json.dumps(event)))[0].key == KEY
