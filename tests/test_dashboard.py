"""The stage's CloudWatch dashboard: a body CloudWatch can draw (checked widget by widget), searches that match the
dimensions the ledger really emits, storage metrics that match what S3 publishes, the limits kept at 300 buckets,
and put / replaced in place / deleted against a real CloudWatch API (moto)."""

from __future__ import annotations

import io
import json
import os
import re
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import boto3
import pytest

from chalicelib.decision import Decision, Outcome
from chalicelib.ledger import SAVINGS_METRICS, Ledger, count_metrics
from chalicelib.policy import load_policies
from chalicelib.refs import ObjectRef
from chalicelib.report import STORAGE_TYPES
from leanlake.deploy.commands import destroy_stage
from leanlake.deploy.dashboard import (BUCKETS_ONE_PER_GRAPH, MAX_EXPRESSION_CHARS, MAX_METRICS_PER_DASHBOARD,
                                       MAX_METRICS_PER_GRAPH, MAX_SEARCHES_PER_GRAPH, MAX_WIDGETS, check_limits,
                                       dashboard_body, dashboard_name, delete_dashboard, ensure_dashboard, limit_problems)
from leanlake.deploy.deploy import DeployError, Plan

ROOT = Path(__file__).resolve().parents[1]
BUCKETS = sorted(load_policies([str(ROOT / "policies")]).buckets)
FUNCTIONS = [f"leanlake-dev-{name}" for name in ("on_upload", "on_object_created", "on_alarm", "daily_sweep",
                                                  "on_queued_upload", "batch_task")]
DLQ = "leanlake-dev-work-dlq"
STAT_NAMES = {"SampleCount", "Average", "Sum", "Minimum", "Maximum"}
SEARCH = re.compile(r"SEARCH\('\{([^}]*)\}([^']*)', '(\w+)', (\d+)\)")


def _metric_widgets(body: dict[str, Any]) -> list[dict[str, Any]]:
    return [w for w in body["widgets"] if w["type"] == "metric"]


def _expressions(widget: dict[str, Any]) -> list[str]:
    return [entry[0]["expression"] for entry in widget["properties"]["metrics"] if isinstance(entry[0], dict)]


def _searches(body: dict[str, Any]) -> list[tuple[str, frozenset[str], str, str, str]]:
    """Every SEARCH of the body: (namespace, dimension names, metric name, rest of the query, statistic)."""
    found = []
    for widget in _metric_widgets(body):
        for expression in _expressions(widget):
            for schema, terms, stat, _ in SEARCH.findall(expression):
                namespace, *dimensions = schema.split(",")
                metric = re.search(r'MetricName="([^"]+)"', terms)
                assert metric, expression
                found.append((namespace, frozenset(dimensions), metric.group(1), terms, stat))
    return found


def assert_drawable(body: dict[str, Any], region: str) -> None:
    """What CloudWatch's Dashboard Body Structure asks of each widget, checked one by one."""
    assert set(body) <= {"widgets", "start", "end", "periodOverride", "variables"} and isinstance(body["widgets"], list)
    taken: set[tuple[int, int]] = set()
    for widget in body["widgets"]:
        assert widget["type"] in ("metric", "text")
        x, y, width, height = widget["x"], widget["y"], widget["width"], widget["height"]
        assert 0 <= x <= 23 and y >= 0 and 1 <= width <= 24 - x and 1 <= height <= 1000, widget
        cells = {(x + i, y + j) for i in range(width) for j in range(height)}
        assert not cells & taken, f"widgets overlap at {sorted(cells & taken)[:3]}"
        taken |= cells
        properties = widget["properties"]
        if widget["type"] == "text":
            assert properties["markdown"].strip()
            continue
        assert properties["title"] and properties["region"] == region
        assert properties["stat"] in STAT_NAMES and properties["period"] % 60 == 0
        metrics = properties["metrics"]
        assert metrics and len(metrics) <= MAX_METRICS_PER_GRAPH, properties["title"]
        ids = []
        for entry in metrics:
            if isinstance(entry[0], dict):  # an expression: [{"expression", "id", "label"?}]
                assert len(entry) == 1 and entry[0]["expression"] and len(entry[0]["expression"]) <= MAX_EXPRESSION_CHARS
                ids.append(entry[0]["id"])
                assert entry[0]["expression"].count("(") == entry[0]["expression"].count(")")
            else:  # a metric: [namespace, name, dimension name, value, …, {rendering}?]
                names = entry[:-1] if isinstance(entry[-1], dict) else entry
                assert all(isinstance(n, str) and n for n in names) and len(names) % 2 == 0, entry
        assert all(re.fullmatch(r"[a-z][A-Za-z0-9_]*", i) for i in ids) and len(ids) == len(set(ids)), ids
        assert all(stat in STAT_NAMES for *_, stat in _searches({"widgets": [widget]}))
    assert limit_problems(body) == []


def test_the_body_is_a_dashboard_cloudwatch_can_draw_with_everything_the_issue_asks_for():
    body = dashboard_body("dev", "eu-west-1", BUCKETS, "leanlake", FUNCTIONS, DLQ)
    assert_drawable(body, "eu-west-1")
    assert body["widgets"][0]["type"] == "text" and "stage dev" in body["widgets"][0]["properties"]["markdown"]
    searched = {metric for _, _, metric, _, _ in _searches(body)}
    assert {*SAVINGS_METRICS, *count_metrics().values(), "BytesSaved", "ConversionErrors", "BadRecords"} <= searched
    explicit = [entry for w in _metric_widgets(body) for entry in w["properties"]["metrics"] if isinstance(entry[0], str)]
    for function in FUNCTIONS:
        assert ["AWS/Lambda", "Errors", "FunctionName", function] in [e[:4] for e in explicit]
        assert ["AWS/Lambda", "Throttles", "FunctionName", function] in [e[:4] for e in explicit]
    assert ["AWS/SQS", "ApproximateNumberOfMessagesVisible", "QueueName", DLQ] in [e[:4] for e in explicit]
    storage = [e for e in explicit if e[:2] == ["AWS/S3", "BucketSizeBytes"]]
    assert {(e[3], e[5]) for e in storage} == {(b, t) for b in BUCKETS for t in STORAGE_TYPES}


def test_the_searches_ask_for_exactly_the_dimensions_the_ledger_emits():
    """A SEARCH schema matches metrics with exactly its dimensions: a missing ``service`` would draw nothing."""
    stream = io.StringIO()
    ledger = Ledger(metrics_stream=stream)
    expired = Decision("b", "tmp/a", "p", "expire", "old", 0.5, 0.001, ref=ObjectRef("b", "tmp/a", size=100))
    ledger.record(Outcome(expired, "ok", "deleted", bytes_before=100))
    ledger.record(Outcome(Decision("b", "raw/a.csv", "p", "convert", "csv"), "error", "broken"))
    ledger.bad_record("sqs", "SQS message 1", "body is not JSON")
    ledger.flush()
    emitted: dict[str, set[frozenset[str]]] = {}
    for line in stream.getvalue().splitlines():
        for directive in json.loads(line)["_aws"]["CloudWatchMetrics"]:
            for metric in directive["Metrics"]:
                for dimensions in directive["Dimensions"]:
                    emitted.setdefault(metric["Name"], set()).add(frozenset(dimensions))
    assert emitted["ObjectsExpired"] == {frozenset({"bucket", "policy", "service"})}
    searches = [s for s in _searches(dashboard_body("dev", "us-east-1", BUCKETS, "leanlake", FUNCTIONS)) if s[0] == "leanlake"]
    assert searches
    for _, dimensions, metric, _, _ in searches:
        # the count metrics of the other actions are emitted exactly like ObjectsExpired
        expected = emitted.get(metric) or (emitted["ObjectsExpired"] if metric in count_metrics().values() else set())
        assert dimensions in expected, (metric, dimensions, expected)
    # the savings are emitted per policy and again per action: the dashboard sums the per-policy set only
    assert emitted["MonthlyUsdSaved"] == {frozenset({"bucket", "policy", "service"}), frozenset({"bucket", "policy", "action", "service"})}
    assert {d for _, d, metric, _, _ in searches if metric == "MonthlyUsdSaved"} == {frozenset({"bucket", "policy", "service"})}


def test_the_namespace_is_the_stages_and_quoted_when_it_has_to_be():
    body = dashboard_body("prod", "us-east-1", BUCKETS, "team data/leanlake", FUNCTIONS)
    namespaces = {s[0] for s in _searches(body)}
    assert namespaces == {'"team data/leanlake"'}  # the storage graphs are explicit metrics here: one bucket
    assert "`team data/leanlake`" in body["widgets"][0]["properties"]["markdown"]


def test_a_buckets_storage_graph_reads_s3s_daily_storage_metrics(aws):
    """The graph's metrics, queried as they stand, find S3's BucketSizeBytes per storage type, labelled by class."""
    cloudwatch = boto3.client("cloudwatch")
    bucket = f"stored-{os.getpid()}"
    midnight = datetime.now(timezone.utc).replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(days=1)
    cloudwatch.put_metric_data(Namespace="AWS/S3", MetricData=[
        {"MetricName": "BucketSizeBytes", "Timestamp": midnight, "Value": value, "Unit": "Bytes",
         "Dimensions": [{"Name": "BucketName", "Value": bucket}, {"Name": "StorageType", "Value": storage_type}]}
        for storage_type, value in (("StandardStorage", 1234.0), ("IntelligentTieringAIAStorage", 99.0),
                                    ("StandardIASizeOverhead", 5.0))])
    body = dashboard_body("dev", "us-east-1", [bucket], "leanlake", FUNCTIONS)
    [graph] = [w for w in _metric_widgets(body) if bucket in w["properties"]["title"]]
    queries = []
    for i, (namespace, name, *dimensions, rendering) in enumerate(graph["properties"]["metrics"]):
        pairs = [{"Name": n, "Value": v} for n, v in zip(dimensions[::2], dimensions[1::2], strict=True)]
        queries.append({"Id": f"m{i}", "Label": rendering["label"], "MetricStat": {
            "Metric": {"Namespace": namespace, "MetricName": name, "Dimensions": pairs},
            "Period": rendering["period"], "Stat": rendering["stat"]}})
    results = cloudwatch.get_metric_data(MetricDataQueries=queries, StartTime=midnight - timedelta(days=1),
                                         EndTime=midnight + timedelta(days=1))["MetricDataResults"]
    values = {r["Label"]: r["Values"] for r in results if r["Values"]}
    assert values == {"STANDARD": [1234.0], "INTELLIGENT_TIERING (IntelligentTieringAIAStorage)": [99.0]}  # no overhead


def test_three_hundred_buckets_are_all_graphed_within_cloudwatchs_limits():
    buckets = [f"bucket-{i:03d}-" + "x" * 52 for i in range(300)]  # 63 characters: the longest a bucket name can be
    body = dashboard_body("prod", "us-east-1", buckets, "leanlake", FUNCTIONS, DLQ)
    assert_drawable(body, "us-east-1")
    assert len(body["widgets"]) <= MAX_WIDGETS and len(json.dumps(body)) < 1_000_000
    storage = [s for s in _searches(body) if s[0] == "AWS/S3"]
    graphed: list[str] = []
    for widget in _metric_widgets(body):
        searches = [s for s in _searches({"widgets": [widget]}) if s[0] == "AWS/S3"]
        if not searches:
            continue
        assert len(searches) <= MAX_SEARCHES_PER_GRAPH
        in_graph = {b for s in searches for b in re.findall(r'BucketName="([^"]+)"', s[3])}
        types = {re.search(r'StorageType="([^"]+)"', s[3]).group(1) for s in searches}
        assert types == set(STORAGE_TYPES)
        assert len(in_graph) * len(types) <= MAX_METRICS_PER_GRAPH  # series a graph could draw, at worst
        graphed += sorted(in_graph)
    assert sorted(graphed) == buckets  # every bucket, once
    assert {s[1] for s in storage} == {frozenset({"BucketName", "StorageType"})}
    explicit = sum(len(w["properties"]["metrics"]) - len(_expressions(w)) for w in _metric_widgets(body))
    assert explicit <= MAX_METRICS_PER_DASHBOARD


def test_up_to_the_threshold_each_bucket_has_its_own_graph_and_past_it_they_are_grouped():
    def storage_graphs(n: int) -> int:
        body = dashboard_body("dev", "us-east-1", [f"b{i:03d}" for i in range(n)], "leanlake", FUNCTIONS)
        return sum("storage class" in w["properties"]["title"] for w in _metric_widgets(body))

    assert storage_graphs(BUCKETS_ONE_PER_GRAPH) == BUCKETS_ONE_PER_GRAPH
    assert storage_graphs(BUCKETS_ONE_PER_GRAPH + 1) == 1  # 31 short names: one group
    assert storage_graphs(0) == 0


def test_a_body_over_the_limits_is_refused_in_one_line_before_anything_is_sent(aws):
    graph = {"type": "metric", "x": 0, "y": 0, "width": 6, "height": 6, "properties": {
        "title": "too much", "region": "us-east-1", "metrics": [["AWS/S3", "BucketSizeBytes", "BucketName", f"b{i}"]
                                                               for i in range(MAX_METRICS_PER_GRAPH + 1)]}}
    long_search = {"type": "metric", "properties": {"title": "long", "metrics": [
        [{"expression": "SEARCH('" + "x" * MAX_EXPRESSION_CHARS + "', 'Sum', 60)", "id": "e1"}]]}}
    body = {"widgets": [graph] * 5 + [long_search] + [{"type": "text", "properties": {"markdown": "."}}] * MAX_WIDGETS}
    problems = limit_problems(body)
    assert any("widgets (at most 500)" in p for p in problems)
    assert any("'too much': 501 metrics" in p for p in problems)
    assert any("'long': an expression of" in p for p in problems)
    assert any("2505 metrics (at most 2500" in p for p in problems)
    with pytest.raises(DeployError) as refused:
        check_limits(body)
    assert "\n" not in str(refused.value)
    cloudwatch = boto3.client("cloudwatch")
    name = f"leanlake-toolarge{os.getpid()}"
    with pytest.raises(DeployError):
        ensure_dashboard(cloudwatch, name, body, log=lambda _: None)
    assert cloudwatch.list_dashboards(DashboardNamePrefix=name)["DashboardEntries"] == []


def test_the_dashboard_is_created_replaced_in_place_and_deleted_once(aws):
    cloudwatch = boto3.client("cloudwatch")
    name = dashboard_name(f"test{os.getpid()}")
    logged: list[str] = []
    first = dashboard_body("dev", "us-east-1", BUCKETS, "leanlake", FUNCTIONS, DLQ)
    assert ensure_dashboard(cloudwatch, name, first, logged.append) is True
    assert json.loads(cloudwatch.get_dashboard(DashboardName=name)["DashboardBody"]) == first

    second = dashboard_body("dev", "us-east-1", [*BUCKETS, "raw-zone"], "leanlake", FUNCTIONS[:2], DLQ)
    assert ensure_dashboard(cloudwatch, name, second, logged.append) is False
    assert json.loads(cloudwatch.get_dashboard(DashboardName=name)["DashboardBody"]) == second
    assert [e["DashboardName"] for e in cloudwatch.list_dashboards(DashboardNamePrefix=name)["DashboardEntries"]] == [name]

    assert delete_dashboard(cloudwatch, name, logged.append) is True
    assert cloudwatch.list_dashboards(DashboardNamePrefix=name)["DashboardEntries"] == []
    assert delete_dashboard(cloudwatch, name, logged.append) is False  # absent is fine
    assert logged == [f"created CloudWatch dashboard {name}", f"CloudWatch dashboard {name} exists (replaced with this deploy's)",
                      f"deleted CloudWatch dashboard {name}", f"CloudWatch dashboard {name}: not there"]


def test_the_plan_and_the_destroy_question_name_the_dashboard(capsys):
    plan = Plan(stage="dev", region="us-east-1", functions=(), rules=(), s3_notifications=(), sqs_sources=(), queues=(),
                zip_bytes=0, unzipped_bytes=0, pyarrow_version="26", update=False, dashboard="leanlake-dev")
    assert "  cloudwatch dashboard leanlake-dev (created/updated after chalice deploy)" in plan.lines()
    said: list[str] = []
    with pytest.raises(DeployError):  # pytest's stdin is no terminal: it refuses after saying what would go
        destroy_stage(project=ROOT, stage="prod", log=said.append)
    assert said and said[0].endswith("and the CloudWatch dashboard leanlake-prod")
