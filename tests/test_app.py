"""app.py as Lambda runs it: imports with no environment, and its handlers, invoked through Chalice's
test client with events that moto really delivered (S3 → SQS, S3 → EventBridge → SQS)."""

from __future__ import annotations

import importlib
import io
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from chalicelib import runtime
from leanlake.demo.run import deliver
from chalicelib.refs import RESERVED_PREFIX

ROOT = Path(__file__).resolve().parents[1]


def test_app_imports_with_no_environment_and_without_pyarrow():
    code = "import sys, app; assert 'pyarrow' not in sys.modules; print(app.UPLOAD_BUCKET, app.BUCKETS)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT,
                            env={"PATH": os.environ["PATH"], "PYTHONPATH": str(ROOT)})
    assert result.returncode == 0, result.stderr
    assert result.stdout.split()[0] == "ml-lake"


def test_app_imports_without_botocores_handlers():
    """A cold start pays no AWS library it does not use yet: the listing looks botocore's 200-error check up at its
    first listing, not when imported (``botocore.handlers`` alone added a quarter of a second to importing the app)."""
    code = "import sys, app; assert 'botocore.handlers' not in sys.modules, 'botocore.handlers imported'"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT,
                            env={"PATH": os.environ["PATH"], "PYTHONPATH": str(ROOT)})
    assert result.returncode == 0, result.stderr


def test_importing_app_leaves_leanlake_logging_to_chalicelib():
    """Chalice must not take over the ``leanlake`` logger: every ok/skip line stays, errors print once."""
    code = ("import logging, app; log = logging.getLogger('leanlake'); "
            "print(log.getEffectiveLevel(), len(log.handlers))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT,
                            env={"PATH": os.environ["PATH"], "PYTHONPATH": str(ROOT)})
    assert result.returncode == 0, result.stderr
    level, handlers = map(int, result.stdout.split())
    assert level <= 20 and handlers == 1  # INFO reaches the one stderr handler


@pytest.fixture
def app_for(tmp_path, monkeypatch):
    """Import app.py with policies for the given bucket (as the deployed package would carry them).

    Chalice configures the logger named after the app (``leanlake``, the one chalicelib logs to) on
    import; its state is put back afterwards so that later tests see the logger as they left it."""
    import logging

    log = logging.getLogger("leanlake")
    saved = (list(log.handlers), log.level, log.propagate)
    loaded = []

    def load(bucket: str):
        (tmp_path / "p.yaml").write_text(textwrap.dedent(f"""\
            policies:
              - name: tables
                bucket: {bucket}
                filters: {{prefix: raw/, suffix: [.csv, .jsonl]}}
                actions: [{{convert: {{destination: "curated/{{rel_dir}}{{stem}}.parquet", source: delete}}}}]
              - name: scratch
                bucket: {bucket}
                filters: {{prefix: tmp/, suffix: .tmp}}
                actions: [{{expire: {{days: 7}}}}]
                on_alarm: [lake-growth]
              - name: backfill
                bucket: {bucket}
                filters: {{prefix: old/, suffix: .csv}}
                actions: [{{convert: {{}}}}]
                on_alarm: [lake-growth]
            """))
        monkeypatch.setenv("LEANLAKE_POLICIES", str(tmp_path / "p.yaml"))
        monkeypatch.setenv("LEANLAKE_QUEUE", "uploads")
        runtime.policies.cache_clear()
        import app

        module = importlib.reload(app)
        loaded.append(module)
        return module

    yield load
    runtime.policies.cache_clear()
    log.handlers[:], log.propagate = saved[0], saved[2]
    log.setLevel(saved[1])  # setLevel, not assignment: it also clears the logger's cached level checks


def lake_keys(s3, bucket: str, prefix: str = "") -> list[str]:
    """The bucket's keys, without leanlake's own records under the reserved prefix (its audit trail)."""
    listed = s3.list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", [])
    return sorted(o["Key"] for o in listed if not o["Key"].startswith(RESERVED_PREFIX))


def csv_body(rows: int = 3000) -> bytes:
    return ("id,country\n" + "".join(f"{i},{['NA', 'DE'][i % 2]}\n" for i in range(rows))).encode()


def test_s3_to_sqs_notifications_reach_the_sqs_handler(s3, bucket, aws, app_for):
    from chalice.test import Client

    import boto3

    module = app_for(bucket)
    sqs = boto3.client("sqs")
    url = sqs.create_queue(QueueName=f"{bucket}-q")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    s3.put_bucket_notification_configuration(Bucket=bucket, NotificationConfiguration={
        "QueueConfigurations": [{"QueueArn": arn, "Events": ["s3:ObjectCreated:*"]}]})
    key = "raw/x y/a+b é.csv"
    s3.put_object(Bucket=bucket, Key=key, Body=csv_body())
    # A multipart upload: moto also emits an extra ObjectCreated:Put for it (a duplicate event).
    big = csv_body(700_000)
    assert len(big) > 5 * 2**20  # two parts
    from boto3.s3.transfer import TransferConfig

    s3.upload_fileobj(io.BytesIO(big), bucket, "raw/big.csv", Config=TransferConfig(multipart_threshold=5 * 2**20, multipart_chunksize=5 * 2**20))
    with Client(module.app) as client:
        results = deliver(sqs, url, arn, lambda event: client.lambda_.invoke("on_queued_upload", event).payload)
    outcomes = sorted((o["key"], o["status"]) for r in results for o in r["outcomes"])
    # one conversion each; the duplicate, the outputs' own events and the deleted sources do nothing
    assert outcomes == [("raw/big.csv", "ok"), (key, "ok")]
    assert lake_keys(s3, bucket) == ["curated/big.parquet", "curated/x y/a+b é.parquet"]


def test_s3_to_eventbridge_reaches_the_object_created_handler(s3, bucket, aws, app_for):
    from chalice.test import Client

    import boto3

    module = app_for(bucket)
    sqs, events = boto3.client("sqs"), boto3.client("events")
    url = sqs.create_queue(QueueName=f"{bucket}-eb")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    events.put_rule(Name=f"{bucket}-rule", EventPattern=json.dumps(
        {"source": ["aws.s3"], "detail-type": ["Object Created"], "detail": {"bucket": {"name": [bucket]}}}))
    events.put_targets(Rule=f"{bucket}-rule", Targets=[{"Id": "q", "Arn": arn}])
    s3.put_bucket_notification_configuration(Bucket=bucket, NotificationConfiguration={"EventBridgeConfiguration": {}})
    s3.put_object(Bucket=bucket, Key="raw/a b+c.csv", Body=csv_body())
    messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
    assert messages
    with Client(module.app) as client:
        payloads = [client.lambda_.invoke("on_object_created", json.loads(m["Body"])).payload for m in messages]
    assert [o["status"] for p in payloads for o in p["outcomes"]] == ["ok"]
    assert lake_keys(s3, bucket) == ["curated/a b+c.parquet"]


def alarm_event(name: str, state: str, previous: str = "OK") -> dict:
    return {"version": "0", "id": "1", "detail-type": "CloudWatch Alarm State Change", "source": "aws.cloudwatch",
            "account": "123456789012", "time": "2026-11-27T00:00:00Z", "region": "us-east-1",
            "resources": [f"arn:aws:cloudwatch:us-east-1:123456789012:alarm:{name}"],
            "detail": {"alarmName": name, "state": {"value": state, "reason": "test", "timestamp": "2026-11-27T00:00:00.000+0000"},
                       "previousState": {"value": previous, "reason": "test", "timestamp": "2026-11-26T00:00:00.000+0000"}}}


def test_alarm_runs_the_sweep_of_policies_that_name_it(s3, bucket, aws, app_for):
    from chalice.test import Client

    module = app_for(bucket)
    s3.put_object(Bucket=bucket, Key="old/history.csv", Body=csv_body())
    with Client(module.app) as client:
        ignored = [client.lambda_.invoke("on_alarm", alarm_event("lake-growth", "OK", "ALARM")).payload,
                   client.lambda_.invoke("on_alarm", alarm_event("other-alarm", "ALARM")).payload]
        assert [p["swept"] for p in ignored] == [[], []]
        assert lake_keys(s3, bucket) == ["old/history.csv"]
        payload = client.lambda_.invoke("on_alarm", alarm_event("lake-growth", "ALARM")).payload
    assert sorted(payload["swept"]) == ["backfill", "scratch"]
    assert lake_keys(s3, bucket) == ["old/history.csv", "old/history.parquet"]


def test_on_s3_event_handler_converts_the_upload_it_names(s3, bucket, aws, app_for):
    from chalice.test import Client

    module = app_for(bucket)
    assert module.UPLOAD_BUCKET == bucket  # the first bucket of a policy with an object action
    s3.put_object(Bucket=bucket, Key="raw/one two.csv", Body=csv_body())
    with Client(module.app) as client:
        event = client.events.generate_s3_event(bucket=bucket, key="raw/one+two.csv")  # S3 form-encodes the space
        payload = client.lambda_.invoke("on_upload", event).payload
    assert [(o["key"], o["status"]) for o in payload["outcomes"]] == [("raw/one two.csv", "ok")]
    assert lake_keys(s3, bucket) == ["curated/one two.parquet"]


def bad_record_counts(captured) -> dict[str, float]:
    """``BadRecords`` summed over the EMF documents in captured output, by trigger."""
    counts: dict[str, float] = {}
    for line in (captured.out + captured.err).splitlines():
        if line.startswith("{") and '"BadRecords"' in line:
            doc = json.loads(line)
            assert doc["_aws"]["CloudWatchMetrics"][0]["Namespace"] == "leanlake"
            counts[doc["trigger"]] = counts.get(doc["trigger"], 0) + sum(doc["BadRecords"])
    return counts


def test_bad_messages_queued_with_real_uploads_cost_only_themselves(s3, bucket, aws, app_for, capsys):
    """Every kind of bad message, sent to the queue S3 notifies, next to the uploads' real notifications."""
    from chalice.test import Client

    import boto3

    module = app_for(bucket)
    sqs = boto3.client("sqs")
    url = sqs.create_queue(QueueName=f"{bucket}-bad")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    s3.put_bucket_notification_configuration(Bucket=bucket, NotificationConfiguration={
        "QueueConfigurations": [{"QueueArn": arn, "Events": ["s3:ObjectCreated:*"]}]})  # moto queues its s3:TestEvent
    s3.put_object(Bucket=bucket, Key="raw/first.csv", Body=csv_body())
    record = {"eventVersion": "2.1", "eventSource": "aws:s3", "eventName": "ObjectCreated:Put",
              "s3": {"bucket": {"name": bucket}, "object": {"size": 1}}}
    bad_bodies = [
        "not json",
        json.dumps([1, 2]),
        "DROP-BODY",  # SQS requires a body: this one loses it on its way to the handler
        json.dumps({"Type": "Notification", "TopicArn": "arn:aws:sns:us-east-1:123456789012:t", "Message": "{not json"}),
        json.dumps({"Records": [{k: v for k, v in record.items() if k != "s3"}]}),
        json.dumps({"Records": [record]}),  # no key
        json.dumps({"version": "0", "id": "e1", "source": "aws.s3", "detail-type": "Object Created"}),  # no detail
    ]
    aws_test_event = {"Service": "Amazon S3", "Event": "s3:TestEvent", "Time": "2026-11-27T10:00:00.000Z", "Bucket": bucket,
                      "RequestId": "5582815E1AEA5ADF", "HostId": "8cLeGAmw098X5cv4Zkwcmo8vvZa3eH3eKxsPzbB9wrR+YstdA6Knx4Ip8EXAMPLE"}
    for body in [*bad_bodies, json.dumps(aws_test_event)]:
        sqs.send_message(QueueUrl=url, MessageBody=body)
    s3.put_object(Bucket=bucket, Key="raw/last.csv", Body=csv_body())

    def invoke(event):
        for r in event["Records"]:
            if r["body"] == "DROP-BODY":
                del r["body"]
        return client.lambda_.invoke("on_queued_upload", event).payload

    with Client(module.app) as client:
        results = deliver(sqs, url, arn, invoke)

    assert lake_keys(s3, bucket, "curated/") == [
        "curated/first.parquet", "curated/last.parquet"]
    bad = [b for r in results for b in r["bad_records"]]
    assert len(bad) == len(bad_bodies) and all(b["record"].startswith("SQS message ") for b in bad), bad
    assert bad_record_counts(capsys.readouterr()) == {"sqs": len(bad_bodies)}


def test_on_s3_event_survives_a_malformed_later_record(s3, bucket, aws, app_for, capsys):
    """Chalice's wrapper reads the first record itself; the later ones are ours to survive."""
    import copy

    from chalice.test import Client

    module = app_for(bucket)
    for key in ("raw/one.csv", "raw/two.csv"):
        s3.put_object(Bucket=bucket, Key=key, Body=csv_body())
    with Client(module.app) as client:
        event = client.events.generate_s3_event(bucket=bucket, key="raw/one.csv")
        first = event["Records"][0]
        no_s3 = {k: v for k, v in first.items() if k != "s3"}
        no_key = copy.deepcopy(first)
        del no_key["s3"]["object"]["key"]
        good = copy.deepcopy(first)
        good["s3"]["object"]["key"] = "raw/two.csv"
        event["Records"] += [no_s3, no_key, good]
        payload = client.lambda_.invoke("on_upload", event).payload
    assert lake_keys(s3, bucket, "curated/") == [
        "curated/one.parquet", "curated/two.parquet"]
    assert [(b["record"], b["reason"]) for b in payload["bad_records"]] == [
        ("S3 notification record 1", "has no s3"), ("S3 notification record 2", "has no s3.object.key")]
    assert bad_record_counts(capsys.readouterr()) == {"s3": 2}


def test_an_eventbridge_event_without_a_key_is_counted_by_the_object_created_handler(s3, bucket, aws, app_for, capsys):
    from chalice.test import Client

    module = app_for(bucket)
    s3.put_object(Bucket=bucket, Key="raw/e.csv", Body=csv_body())
    with Client(module.app) as client:
        no_key = client.events.generate_cw_event("aws.s3", "Object Created", {"bucket": {"name": bucket}, "object": {"size": 3}}, [])
        bad = client.lambda_.invoke("on_object_created", no_key).payload
        good = client.lambda_.invoke("on_object_created", client.events.generate_cw_event(
            "aws.s3", "Object Created", {"bucket": {"name": bucket}, "object": {"key": "raw/e.csv"}}, [])).payload
    assert [b["reason"] for b in bad["bad_records"]] == ["has no detail.object.key"] and bad["outcomes"] == []
    assert [(o["key"], o["status"]) for o in good["outcomes"]] == [("raw/e.csv", "ok")]
    assert bad_record_counts(capsys.readouterr()) == {"eventbridge": 1}
