"""One malformed record never stops its batch: through the runtime's handlers, against moto.

Good objects delivered next to bad records are really converted (their outputs exist in S3); every
bad record is logged on one line naming it and counted as ``BadRecords`` in the EMF output;
``s3:TestEvent`` is not bad; only transient failures raise RetryLater; an event's ETag is a hint.
"""

from __future__ import annotations

import http.client
import http.server
import io
import json
import logging
import threading
from typing import Any, Iterator
from urllib.parse import unquote, unquote_plus, urlsplit

import pytest

from chalicelib import runtime

#: The shape S3 really sends to a queue when a notification configuration is saved.
TEST_EVENT = {"Service": "Amazon S3", "Event": "s3:TestEvent", "Time": "2026-11-27T10:00:00.000Z", "Bucket": "lake",
              "RequestId": "5582815E1AEA5ADF", "HostId": "8cLeGAmw098X5cv4Zkwcmo8vvZa3eH3eKxsPzbB9wrR+YstdA6Knx4Ip8EXAMPLE"}


def csv_body(rows: int = 2000) -> bytes:
    return ("id,country\n" + "".join(f"{i},{['NA', 'DE'][i % 2]}\n" for i in range(rows))).encode()


@pytest.fixture
def lake(bucket, tmp_path, monkeypatch):
    """``bucket`` under a convert policy (raw/*.csv → curated/*.parquet, sources kept), as the runtime loads it."""
    (tmp_path / "p.yaml").write_text(
        "policies:\n"
        "  - name: tables\n"
        f"    bucket: {bucket}\n"
        "    filters: {prefix: raw/, suffix: .csv}\n"
        '    actions: [{convert: {destination: "curated/{rel_dir}{stem}.parquet"}}]\n')
    monkeypatch.setenv("LEANLAKE_POLICIES", str(tmp_path / "p.yaml"))
    runtime.policies.cache_clear()
    yield bucket
    runtime.policies.cache_clear()


def s3_record(bucket: str, key: str, etag: str = "0" * 32) -> dict[str, Any]:
    return {"eventVersion": "2.1", "eventSource": "aws:s3", "eventName": "ObjectCreated:Put", "awsRegion": "us-east-1",
            "s3": {"s3SchemaVersion": "1.0", "bucket": {"name": bucket, "arn": f"arn:aws:s3:::{bucket}"},
                   "object": {"key": key, "size": 1, "eTag": etag}}}


def sqs_event(bodies: list[str | None]) -> dict[str, Any]:
    """An SQS batch as Lambda builds it; message ``m<i>`` holds ``bodies[i]`` (None: no ``body`` at all)."""
    records = []
    for i, body in enumerate(bodies):
        record = {"messageId": f"m{i}", "receiptHandle": f"r{i}", "attributes": {}, "messageAttributes": {}, "md5OfBody": "",
                  "eventSource": "aws:sqs", "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:uploads", "awsRegion": "us-east-1"}
        if body is not None:
            record["body"] = body
        records.append(record)
    return {"Records": records}


def queued_notifications(s3, bucket: str, uploads: list[tuple[str, bytes]]) -> list[dict[str, Any]]:
    """Upload with S3 → SQS notifications on; return the S3 notifications moto queued (test event included)."""
    import boto3

    sqs = boto3.client("sqs")
    url = sqs.create_queue(QueueName=f"{bucket}-q")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    s3.put_bucket_notification_configuration(Bucket=bucket, NotificationConfiguration={
        "QueueConfigurations": [{"QueueArn": arn, "Events": ["s3:ObjectCreated:*"]}]})
    for key, body in uploads:
        s3.put_object(Bucket=bucket, Key=key, Body=body)
    bodies = []
    while messages := sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", []):
        bodies += [json.loads(m["Body"]) for m in messages]
        sqs.delete_message_batch(QueueUrl=url, Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)])
    return bodies


def emitted(captured) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """The EMF metrics in captured output (stdout in Lambda, stderr in CLI mode): {(name, dimensions): value}."""
    found = {}
    for line in (captured.out + captured.err).splitlines():
        if not line.startswith("{") or '"_aws"' not in line:
            continue
        doc = json.loads(line)
        (directive,) = doc["_aws"]["CloudWatchMetrics"]
        assert directive["Namespace"] == "leanlake"
        dims = tuple(sorted((d, doc[d]) for d in directive["Dimensions"][0] if d != "service"))
        for metric in directive["Metrics"]:
            value = doc[metric["Name"]]
            found[(metric["Name"], dims)] = sum(value) if isinstance(value, list) else value
    return found


def keys(s3, bucket: str, prefix: str = "") -> list[str]:
    return sorted(o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", []))


def parquet_rows(s3, bucket: str, key: str) -> int:
    import pyarrow.parquet as pq

    return pq.read_table(io.BytesIO(s3.get_object(Bucket=bucket, Key=key)["Body"].read())).num_rows


def test_every_kind_of_bad_sqs_message_is_counted_and_the_good_ones_are_converted(s3, lake, capsys, caplog):
    caplog.set_level(logging.INFO, logger="leanlake")  # whatever an earlier import of app.py left it at
    bucket = lake
    delivered = queued_notifications(s3, bucket, [("raw/a.csv", csv_body()), ("raw/b b.csv", csv_body())])
    created = {unquote_plus(n["Records"][0]["s3"]["object"]["key"]): n for n in delivered if "Records" in n}
    test_event = next(n for n in delivered if n.get("Event") == "s3:TestEvent")
    no_s3 = {"Records": [{k: v for k, v in s3_record(bucket, "raw/x.csv").items() if k != "s3"}]}
    no_key = s3_record(bucket, "raw/x.csv")
    del no_key["s3"]["object"]["key"]
    eventbridge_no_detail = {"version": "0", "id": "eb-1", "source": "aws.s3", "detail-type": "Object Created", "time": "2026-11-27T10:00:00Z"}
    bodies = [
        json.dumps(created["raw/a.csv"]),                                            # m0 good
        "not json",                                                                  # m1
        json.dumps(["Records"]),                                                     # m2 JSON, not an object
        json.dumps(test_event),                                                      # m3 moto's own test event: ignored
        json.dumps({**TEST_EVENT, "Bucket": bucket}),                                # m4 AWS's test event: ignored
        None,                                                                        # m5 no body
        json.dumps({"Type": "Notification", "TopicArn": "arn:aws:sns:us-east-1:1:t", "Message": "{not json"}),  # m6
        json.dumps(no_s3),                                                           # m7
        json.dumps({"Records": [no_key]}),                                           # m8
        json.dumps(eventbridge_no_detail),                                           # m9
        json.dumps({"Type": "Notification", "TopicArn": "arn:aws:sns:us-east-1:1:t",
                    "Message": json.dumps(created["raw/b b.csv"])}),                 # m10 good, through SNS
    ]
    payload = runtime.handle_sqs(sqs_event(bodies))

    assert keys(s3, bucket, "curated/") == ["curated/a.parquet", "curated/b b.parquet"]
    assert sorted((o["key"], o["status"]) for o in payload["outcomes"]) == [("raw/a.csv", "ok"), ("raw/b b.csv", "ok")]
    assert [b["record"] for b in payload["bad_records"]] == [
        "SQS message m1", "SQS message m2", "SQS message m5", "SQS message m6",
        "SQS message m7 record 0", "SQS message m8 record 0", "SQS message m9"]
    assert {b["trigger"] for b in payload["bad_records"]} == {"sqs"}
    captured = capsys.readouterr()
    assert "bad record: SQS message m1: body is not JSON" in captured.err  # one line naming the record and why
    assert "bad record: SQS message m9: has no detail" in captured.err
    assert "ignored SQS message m3: s3:TestEvent" in captured.err and "ignored SQS message m4: s3:TestEvent" in captured.err
    metrics = emitted(captured)
    assert metrics[("BadRecords", (("trigger", "sqs"),))] == 7
    assert metrics[("ObjectsConverted", (("bucket", bucket), ("policy", "tables")))] == 2


def test_a_malformed_later_record_of_an_s3_notification_costs_only_itself(s3, lake, capsys):
    bucket = lake
    for key in ("raw/first.csv", "raw/last.csv"):
        s3.put_object(Bucket=bucket, Key=key, Body=csv_body())
    no_s3 = {k: v for k, v in s3_record(bucket, "raw/x.csv").items() if k != "s3"}
    no_key = s3_record(bucket, "raw/x.csv")
    del no_key["s3"]["object"]["key"]
    event = {"Records": [s3_record(bucket, "raw/first.csv"), no_s3, no_key, s3_record(bucket, "raw/last.csv")]}

    payload = runtime.handle_s3_notification(event)

    assert keys(s3, bucket, "curated/") == ["curated/first.parquet", "curated/last.parquet"]
    assert [(b["record"], b["reason"]) for b in payload["bad_records"]] == [
        ("S3 notification record 1", "has no s3"), ("S3 notification record 2", "has no s3.object.key")]
    metrics = emitted(capsys.readouterr())
    assert metrics[("BadRecords", (("trigger", "s3"),))] == 2
    assert metrics[("ObjectsConverted", (("bucket", bucket), ("policy", "tables")))] == 2


def test_an_eventbridge_event_without_detail_or_key_is_counted_not_raised(s3, lake, capsys):
    base = {"version": "0", "id": "eb-7", "source": "aws.s3", "detail-type": "Object Created", "account": "123456789012",
            "time": "2026-11-27T10:00:00Z", "region": "us-east-1", "resources": []}
    assert runtime.handle_eventbridge(base)["bad_records"] == [
        {"trigger": "eventbridge", "record": "EventBridge event eb-7", "reason": "has no detail"}]
    no_key = {**base, "detail": {"bucket": {"name": lake}, "object": {"size": 3}}}
    assert [b["reason"] for b in runtime.handle_eventbridge(no_key)["bad_records"]] == ["has no detail.object.key"]
    assert emitted(capsys.readouterr())[("BadRecords", (("trigger", "eventbridge"),))] == 1  # one EMF document per invocation


def test_an_event_for_an_overwritten_object_converts_the_current_object(s3, lake):
    """The event's ETag and size are hints: HEAD is the truth, and the object there now is what gets converted."""
    bucket = lake
    delivered = queued_notifications(s3, bucket, [("raw/t.csv", csv_body(rows=1000))])
    (first_upload,) = [n for n in delivered if "Records" in n]
    first_etag = first_upload["Records"][0]["s3"]["object"]["eTag"]
    current_etag = s3.put_object(Bucket=bucket, Key="raw/t.csv", Body=csv_body(rows=3000))["ETag"].strip('"')
    assert first_etag != current_etag

    payload = runtime.handle_sqs(sqs_event([json.dumps(first_upload)]))

    assert [(o["key"], o["status"]) for o in payload["outcomes"]] == [("raw/t.csv", "ok")]
    assert parquet_rows(s3, bucket, "curated/t.parquet") == 3000
    metadata = s3.head_object(Bucket=bucket, Key="curated/t.parquet")["Metadata"]
    assert metadata["leanlake-source-etag"] == current_etag


class _Failing(http.server.BaseHTTPRequestHandler):
    """Forwards requests to moto, except those for the keys in ``failures``, answered with that status."""

    protocol_version = "HTTP/1.1"
    upstream: str = ""
    failures: dict[str, int] = {}

    def _handle(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else None
        key = unquote(urlsplit(self.path).path).split("/", 2)[-1]
        if key in self.failures:
            self.send_response(self.failures[key])
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        upstream = urlsplit(self.upstream)
        connection = http.client.HTTPConnection(upstream.hostname, upstream.port, timeout=30)
        headers = {k: v for k, v in self.headers.items() if k.lower() not in ("expect", "connection")}
        connection.request(self.command, self.path, body=body, headers=headers)
        response = connection.getresponse()
        data = response.read()
        self.send_response(response.status)
        for name, value in response.getheaders():
            if name.lower() not in ("transfer-encoding", "connection", "content-length", "server", "date"):
                self.send_header(name, value)
        # a HEAD answer has no body but tells the object's length
        self.send_header("Content-Length", response.getheader("Content-Length", "0") if self.command == "HEAD" else str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)
        connection.close()

    do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _handle

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def failing_s3(aws, monkeypatch) -> Iterator[dict[str, int]]:
    """An S3 endpoint in front of moto that fails the keys put in the returned dict with their status; the
    runtime's client talks to it with no retries (botocore's own backoff would wait for minutes)."""
    import boto3
    from botocore.config import Config

    from chalicelib import s3 as s3util

    failures: dict[str, int] = {}
    handler = type("Handler", (_Failing,), {"upstream": aws, "failures": failures})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    endpoint = f"http://127.0.0.1:{server.server_address[1]}"
    client = boto3.client("s3", endpoint_url=endpoint, config=Config(retries={"mode": "standard", "max_attempts": 1}))
    with monkeypatch.context() as patch:  # undone before the aws fixture's teardown clears the real client
        patch.setattr(s3util, "client", lambda region=None: client)
        yield failures
    server.shutdown()
    server.server_close()


def test_an_object_that_cannot_be_read_is_a_bad_record_and_the_batch_goes_on(s3, lake, failing_s3, capsys):
    bucket = lake
    for key in ("raw/good.csv", "raw/forbidden.csv"):
        s3.put_object(Bucket=bucket, Key=key, Body=csv_body())
    failing_s3["raw/forbidden.csv"] = 403
    batch = sqs_event([json.dumps({"Records": [s3_record(bucket, "raw/forbidden.csv")]}), "not json",
                       json.dumps({"Records": [s3_record(bucket, "raw/good.csv")]})])

    payload = runtime.handle_sqs(batch)  # no RetryLater: a 403 will not go away by itself

    assert keys(s3, bucket, "curated/") == ["curated/good.parquet"]
    assert [(b["record"], b["reason"].split(":")[0]) for b in payload["bad_records"]] == [
        (f"s3://{bucket}/raw/forbidden.csv", "cannot be read"), ("SQS message m1", "body is not JSON (Expecting value")]
    assert "403" in payload["bad_records"][0]["reason"]
    assert emitted(capsys.readouterr())[("BadRecords", (("trigger", "sqs"),))] == 2


def test_only_a_transient_failure_makes_the_batch_retry_after_the_others_are_done(s3, lake, failing_s3, capsys):
    bucket = lake
    for key in ("raw/good.csv", "raw/throttled.csv"):
        s3.put_object(Bucket=bucket, Key=key, Body=csv_body())
    failing_s3["raw/throttled.csv"] = 503
    batch = sqs_event([json.dumps({"Records": [s3_record(bucket, "raw/throttled.csv")]}), "not json",
                       json.dumps({"Records": [s3_record(bucket, "raw/good.csv")]})])

    with pytest.raises(runtime.RetryLater, match=r"1 object\(s\) failed transiently, first: s3://.*/raw/throttled.csv: 503"):
        runtime.handle_sqs(batch)

    assert keys(s3, bucket, "curated/") == ["curated/good.parquet"]  # the rest of the batch was done first
    assert emitted(capsys.readouterr())[("BadRecords", (("trigger", "sqs"),))] == 1  # and the metrics flushed
    failing_s3.clear()
    payload = runtime.handle_sqs(batch)  # the redelivery converts what was throttled and redoes nothing else
    assert sorted((o["key"], o["status"]) for o in payload["outcomes"]) == [("raw/good.csv", "skip"), ("raw/throttled.csv", "ok")]
    assert keys(s3, bucket, "curated/") == ["curated/good.parquet", "curated/throttled.parquet"]
