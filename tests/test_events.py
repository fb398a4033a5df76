"""Events → ObjectRefs: keys decoded exactly once where the event encodes them; only ObjectCreated;
every malformed record reported by name and reason while the good records around it are still read."""

from __future__ import annotations

import json
from urllib.parse import quote_plus

import pytest

from chalicelib.events import refs_from_eventbridge, refs_from_message, refs_from_s3_notification, refs_from_sqs

KEY = "raw/a b+c@d%e.csv"

#: The shape S3 really sends to a queue or topic when a notification configuration is saved.
TEST_EVENT = {"Service": "Amazon S3", "Event": "s3:TestEvent", "Time": "2026-11-27T10:00:00.000Z", "Bucket": "ml-lake",
              "RequestId": "5582815E1AEA5ADF", "HostId": "8cLeGAmw098X5cv4Zkwcmo8vvZa3eH3eKxsPzbB9wrR+YstdA6Knx4Ip8EXAMPLE"}


def s3_record(key: str, name: str = "ObjectCreated:Put") -> dict:
    return {"eventVersion": "2.1", "eventSource": "aws:s3", "eventName": name,
            "s3": {"bucket": {"name": "ml-lake"}, "object": {"key": quote_plus(key, safe="/"), "size": 7, "eTag": "abc"}}}


def sqs_event(*bodies) -> dict:
    """An SQS batch as Lambda builds it; ``None`` stands for a record without ``body``."""
    records = []
    for i, body in enumerate(bodies):
        record = {"messageId": f"m{i}", "receiptHandle": "r", "attributes": {}, "messageAttributes": {}, "md5OfBody": "",
                  "eventSource": "aws:sqs", "eventSourceARN": "arn:aws:sqs:us-east-1:1:q", "awsRegion": "us-east-1"}
        if body is not None:
            record["body"] = body
        records.append(record)
    return {"Records": records}


def eventbridge_event(key: str | None = KEY, **detail_fields) -> dict:
    obj = {"size": 5, "etag": "e1", **({"key": key} if key is not None else {})}
    return {"version": "0", "id": "eb-1", "source": "aws.s3", "detail-type": "Object Created", "account": "1",
            "time": "2026-11-27T10:00:00Z", "region": "us-east-1", "resources": [],
            "detail": {"bucket": {"name": "ml-lake"}, "object": obj, **detail_fields}}


class Collector(list):
    """An ``on_bad`` that keeps ``(record, reason)`` pairs."""

    def __call__(self, record: str, reason: str) -> None:
        self.append((record, reason))


def test_s3_notification_keys_are_decoded_once():
    bad = Collector()
    refs = list(refs_from_s3_notification({"Records": [s3_record(KEY)]}, bad))
    assert [(r.bucket, r.key, r.size, r.etag) for r in refs] == [("ml-lake", KEY, 7, "abc")]
    assert bad == []


def test_only_object_created_events_count_and_the_others_are_not_bad():
    records = [s3_record(KEY, n) for n in ("ObjectRemoved:Delete", "ObjectTagging:Put", "ObjectCreated:Copy", "LifecycleTransition")]
    bad = Collector()
    assert [r.key for r in refs_from_s3_notification({"Records": records}, bad)] == [KEY]
    assert bad == []


def test_sqs_wrapped_sns_wrapped_and_test_events():
    direct = json.dumps({"Records": [s3_record(KEY)]})
    via_sns = json.dumps({"Type": "Notification", "TopicArn": "arn:aws:sns:us-east-1:1:t", "Message": direct})
    test_event_via_sns = json.dumps({"Type": "Notification", "Message": json.dumps(TEST_EVENT)})
    subscription = json.dumps({"Type": "SubscriptionConfirmation", "Message": "You have chosen to subscribe", "TopicArn": "t"})
    bad = Collector()
    event = sqs_event(direct, via_sns, json.dumps(TEST_EVENT), test_event_via_sns, subscription)
    assert [r.key for r in refs_from_sqs(event, bad)] == [KEY, KEY]
    assert bad == []  # test events and subscription confirmations are recognised, not bad


def test_eventbridge_keys_are_taken_as_given_and_both_etag_spellings_read():
    bad = Collector()
    for etag_field in ("etag", "eTag"):
        event = {"source": "aws.s3", "detail-type": "Object Created",
                 "detail": {"bucket": {"name": "ml-lake"}, "object": {"key": KEY, "size": 5, etag_field: "e1"}}}
        (ref,) = refs_from_eventbridge(event, bad)
        assert (ref.key, ref.etag, ref.size) == (KEY, "e1", 5)
    deleted = {"source": "aws.s3", "detail-type": "Object Deleted", "detail": {"bucket": {"name": "b"}, "object": {"key": "k"}}}
    assert list(refs_from_eventbridge(deleted, bad)) == []
    assert list(refs_from_message(json.dumps(event), bad))[0].key == KEY
    assert bad == []


def test_hints_of_the_wrong_type_are_dropped_not_trusted():
    record = s3_record(KEY)
    record["s3"]["object"].update(size="7", eTag=42)
    (ref,) = refs_from_s3_notification({"Records": [record]}, Collector())
    assert (ref.key, ref.size, ref.etag) == (KEY, None, None)


BAD_BODIES = [
    pytest.param("not json", "SQS message m1", "body is not JSON", id="not-json"),
    pytest.param('["Records"]', "SQS message m1", "body is JSON but a list, not an object", id="json-list"),
    pytest.param("42", "SQS message m1", "body is JSON but a int, not an object", id="json-number"),
    pytest.param(None, "SQS message m1", "has no body", id="no-body"),
    pytest.param(json.dumps({"Type": "Notification", "Message": "{broken"}), "SQS message m1", "SNS Message is not JSON", id="sns-broken"),
    pytest.param(json.dumps({"Type": "Notification", "TopicArn": "t"}), "SQS message m1", "SNS envelope with no Message", id="sns-no-message"),
    pytest.param(json.dumps({"Records": [{"eventSource": "aws:s3", "eventName": "ObjectCreated:Put"}]}),
                 "SQS message m1 record 0", "has no s3", id="s3-record-without-s3"),
    pytest.param(json.dumps({"Records": [{**s3_record(KEY), "s3": {"bucket": {"name": "ml-lake"}, "object": {"size": 1}}}]}),
                 "SQS message m1 record 0", "has no s3.object.key", id="s3-record-without-key"),
    pytest.param(json.dumps({"Records": [{**s3_record(KEY), "s3": {"bucket": {"name": "ml-lake"}, "object": {"key": ""}}}]}),
                 "SQS message m1 record 0", "s3.object.key is '', not a non-empty string", id="s3-record-empty-key"),
    pytest.param(json.dumps({"Records": ["not a record"]}), "SQS message m1 record 0", "is a JSON str, not an object", id="s3-record-a-string"),
    pytest.param(json.dumps({"Records": [{"eventName": "ObjectCreated:Put"}]}), "SQS message m1 record 0",
                 "is not an S3 event record", id="record-without-eventSource"),
    pytest.param(json.dumps({"Records": "x"}), "SQS message m1", "has no Records list", id="records-not-a-list"),
    pytest.param(json.dumps({k: v for k, v in eventbridge_event().items() if k != "detail"}), "SQS message m1",
                 "has no detail", id="eventbridge-without-detail"),
    pytest.param(json.dumps(eventbridge_event(key=None)), "SQS message m1", "has no detail.object.key", id="eventbridge-without-key"),
    pytest.param(json.dumps({"hello": "world"}), "SQS message m1", "is neither an S3 notification", id="unknown-shape"),
]


@pytest.mark.parametrize("body, record, reason", BAD_BODIES)
def test_a_bad_message_is_reported_by_name_and_the_good_ones_around_it_are_read(body, record, reason):
    good = json.dumps({"Records": [s3_record(KEY)]})
    other = json.dumps({"Records": [s3_record("raw/other.csv")]})
    bad = Collector()
    refs = list(refs_from_sqs(sqs_event(good, body, other), bad))
    assert [r.key for r in refs] == [KEY, "raw/other.csv"]
    assert len(bad) == 1, bad
    assert bad[0][0] == record and reason in bad[0][1], bad


def test_a_bad_record_inside_a_notification_costs_only_itself():
    records = [s3_record("raw/1.csv"), {"eventSource": "aws:s3", "eventName": "ObjectCreated:Put"},
               {**s3_record(KEY), "s3": {"bucket": {}, "object": {"key": "k"}}}, s3_record("raw/2.csv")]
    bad = Collector()
    assert [r.key for r in refs_from_s3_notification({"Records": records}, bad)] == ["raw/1.csv", "raw/2.csv"]
    assert bad == [("S3 notification record 1", "has no s3"), ("S3 notification record 2", "has no s3.bucket.name")]


def test_malformed_batches_and_records_are_named_by_index_when_they_have_no_id():
    bad = Collector()
    assert list(refs_from_sqs({"Records": ["junk", {"body": json.dumps({"Records": [s3_record(KEY)]})}]}, bad))[0].key == KEY
    assert bad == [("SQS record 0", "is a str, not an object")]
    bad = Collector()
    assert list(refs_from_sqs({}, bad)) == []
    assert bad == [("SQS event", "has no Records list")]


def test_an_eventbridge_event_without_detail_is_bad_and_named_by_its_id():
    bad = Collector()
    event = {k: v for k, v in eventbridge_event().items() if k != "detail"}
    assert list(refs_from_eventbridge(event, bad)) == []
    assert bad == [("EventBridge event eb-1", "has no detail")]
