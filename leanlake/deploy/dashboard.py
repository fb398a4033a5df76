"""The stage's CloudWatch dashboard: what leanlake saved, what it acted on, what failed, and what the buckets store.

``make deploy`` puts it after ``chalice deploy`` (``PutDashboard`` is an upsert: the dashboard is
created, or replaced whole) and ``make destroy`` deletes it, so the team sees leanlake where it
already looks. One dashboard per stage, ``leanlake-<stage>`` (dashboards are global to an account).

What is on it (the last 30 days; each graph keeps its own period):

* savings: ``MonthlyUsdSaved`` and ``MonthlyKgCO2eSaved`` per (bucket, policy), summed per day;
* objects acted on: each action's Count metric (``count_metrics()``) per day, over all buckets, and
  ``BytesSaved`` per (bucket, policy);
* errors: ``ConversionErrors``, ``BadRecords`` by trigger, the stage's functions' ``AWS/Lambda``
  ``Errors`` and ``Throttles``, and the messages waiting in the dead-letter queue;
* storage by class: S3's daily ``BucketSizeBytes`` per ``StorageType`` of ``report.STORAGE_TYPES``.

leanlake's own metrics are read with CloudWatch ``SEARCH`` expressions, so a bucket or policy that
starts publishing shows up without a redeploy. A search's metric schema matches metrics with exactly
those dimensions, and Powertools adds ``service`` to every dimension set the ledger emits: hence
``{leanlake,bucket,policy,service}`` and ``{leanlake,service,trigger}``.

Storage: up to ``BUCKETS_ONE_PER_GRAPH`` buckets get one stacked graph each with explicit metrics
(11 storage types); more buckets are graphed ``BUCKETS_PER_GROUP`` to a graph, by SEARCH
expressions naming the buckets (each at most 1,024 characters), so that no graph can draw more
than CloudWatch's 500 time series. A search retrieves only the storage types a bucket has (most
have one to three of the 11), so hundreds of buckets stay under the 2,500 metrics CloudWatch
retrieves for a dashboard; were every type used in over ~220 buckets, some storage graphs would
not load (``leanlake report`` still shows them all). ``check_limits`` refuses a body over what can
be counted before anything is sent: widgets, entries and searches per graph, expression lengths,
explicit metrics and bytes.

Example:
    >>> dashboard_name("prod")
    'leanlake-prod'
    >>> body = dashboard_body("prod", "eu-west-1", ["ml-lake"], "leanlake", ["leanlake-prod-on_upload"])
    >>> [w["properties"]["title"] for w in body["widgets"] if w["type"] == "metric"][:2]
    ['Estimated monthly USD saved (per day of actions)', 'Estimated monthly kg CO2e saved (per day of actions)']
    >>> print(search("leanlake", ("bucket", "policy", "service"), "MonthlyUsdSaved"))
    SEARCH('{leanlake,bucket,policy,service} MetricName="MonthlyUsdSaved"', 'Sum', 86400)
"""

from __future__ import annotations

import json
import re
from collections import Counter
from typing import Any, Callable, Iterable, Sequence

from chalicelib.ledger import KGCO2E_SAVED, USD_SAVED, count_metrics
from chalicelib.report import STORAGE_TYPES, s3_query
from leanlake.deploy.deploy import DeployError

# CloudWatch's limits (Dashboard Body Structure and Syntax; CloudWatch service quotas, "Dashboards";
# "CloudWatch search expression syntax", search expression limits).
#: Widgets on one dashboard.
MAX_WIDGETS = 500
#: Metrics and expressions in one graph's ``metrics`` array; also the time series one graph draws.
MAX_METRICS_PER_GRAPH = 500
#: Metrics on one dashboard, across all widgets (metrics retrieved for metric math count too).
MAX_METRICS_PER_DASHBOARD = 2500
#: SEARCH expressions in one graph.
MAX_SEARCHES_PER_GRAPH = 100
#: Characters of one expression (a search query is at most 1,024).
MAX_EXPRESSION_CHARS = 1024
#: The body's size this module stays under (the counts above bind long before).
MAX_BODY_BYTES = 1_000_000

#: Seconds in a day: the period of the savings and storage graphs (S3 publishes its storage metrics daily).
DAY = 86400
#: The period of the error graphs: hours, so that a burst shows.
HOUR = 3600
#: Up to this many buckets, each gets a storage graph of its own; more are grouped (a page one still scrolls).
BUCKETS_ONE_PER_GRAPH = 30
#: Buckets per grouped storage graph: at most 11 storage types each, so a graph never draws over 500 series.
BUCKETS_PER_GROUP = MAX_METRICS_PER_GRAPH // len(STORAGE_TYPES)

#: The dimension sets the ledger's EMF documents carry (Powertools adds ``service`` to each).
OUTCOME_DIMENSIONS = ("bucket", "policy", "service")
BAD_RECORD_DIMENSIONS = ("service", "trigger")
#: The namespace of leanlake's metrics when the stage does not set ``POWERTOOLS_METRICS_NAMESPACE``.
DEFAULT_NAMESPACE = "leanlake"

_GRID = 24  # columns of a dashboard
_NAME = re.compile(r"[A-Za-z0-9_-]{1,255}")  # what PutDashboard accepts as a name
_PER_BUCKET = "${PROP('Dim.bucket')} · ${PROP('Dim.policy')}"  # a dynamic label: one line per (bucket, policy)


def dashboard_name(stage: str, app: str = "leanlake") -> str:
    """``<app>-<stage>``, the name of the stage's dashboard; ValueError when CloudWatch would refuse it.

    >>> dashboard_name("dev team")
    Traceback (most recent call last):
    ...
    ValueError: dashboard name 'leanlake-dev team': only letters, digits, - and _ (at most 255)
    """
    name = f"{app}-{stage}"
    if not _NAME.fullmatch(name):
        raise ValueError(f"dashboard name {name!r}: only letters, digits, - and _ (at most 255)")
    return name


def console_url(name: str, region: str) -> str:
    """Where the dashboard opens in the AWS console."""
    return f"https://{region}.console.aws.amazon.com/cloudwatch/home?region={region}#dashboards/dashboard/{name}"


def _schema_name(name: str) -> str:
    """A namespace or dimension name in a metric schema: double-quoted unless plain (``AWS/S3`` is plain)."""
    return name if re.fullmatch(r"[A-Za-z0-9/]+", name) else '"' + name.replace('"', '\\"') + '"'


def search(namespace: str, dimensions: Sequence[str], metric: str, *terms: str, stat: str = "Sum", period: int = DAY) -> str:
    """A CloudWatch SEARCH expression: the metrics named ``metric`` with exactly ``dimensions``, narrowed by ``terms``."""
    schema = ",".join(_schema_name(n) for n in (namespace, *dimensions))
    query = " ".join((f"{{{schema}}}", f'MetricName="{metric}"', *terms))
    return f"SEARCH('{query}', '{stat}', {period})"


class _Grid:
    """Places widgets left to right on the 24-column grid, starting a new row when one does not fit."""

    def __init__(self) -> None:
        self.widgets: list[dict[str, Any]] = []
        self._x = self._y = self._row_height = 0

    def add(self, widget: dict[str, Any], width: int, height: int) -> None:
        if self._x + width > _GRID:
            self._x, self._y, self._row_height = 0, self._y + self._row_height, 0
        self.widgets.append({**widget, "x": self._x, "y": self._y, "width": width, "height": height})
        self._x += width
        self._row_height = max(self._row_height, height)


def _text(markdown: str) -> dict[str, Any]:
    return {"type": "text", "properties": {"markdown": markdown}}


def _graph(title: str, region: str, metrics: list[list[Any]], *, stat: str = "Sum", period: int = DAY,
           stacked: bool = False, unit: str = "") -> dict[str, Any]:
    """A time-series metric widget; ``unit`` labels the y axis (which starts at 0)."""
    return {"type": "metric", "properties": {
        "title": title, "region": region, "view": "timeSeries", "stacked": stacked, "stat": stat, "period": period,
        "metrics": metrics, "yAxis": {"left": {"min": 0, **({"label": unit} if unit else {})}}}}


def _expression(expression: str, id_: str, label: str = "") -> list[Any]:
    """One entry of a ``metrics`` array that is an expression (a metric entry is ``[namespace, name, dims…]``)."""
    return [{"expression": expression, "id": id_, **({"label": label} if label else {})}]


def _storage_label(storage_type: str) -> str:
    """A storage type's class, with the type itself where several types bill as one class (Intelligent-Tiering).

    >>> _storage_label("StandardStorage"), _storage_label("IntelligentTieringFAStorage")
    ('STANDARD', 'INTELLIGENT_TIERING (IntelligentTieringFAStorage)')
    """
    storage_class = STORAGE_TYPES[storage_type]
    shared = Counter(STORAGE_TYPES.values())[storage_class] > 1
    return f"{storage_class} ({storage_type})" if shared else storage_class


def _metric(stat: dict[str, Any], label: str) -> list[Any]:
    """A ``MetricStat`` (as ``GetMetricData`` takes it) as an entry of a graph's ``metrics`` array."""
    metric = stat["Metric"]
    dimensions = [part for d in metric.get("Dimensions", ()) for part in (d["Name"], d["Value"])]
    return [metric["Namespace"], metric["MetricName"], *dimensions, {"label": label, "stat": stat["Stat"], "period": stat["Period"]}]


def _bucket_storage(bucket: str, region: str) -> dict[str, Any]:
    """One bucket's bytes per storage type (the queries ``leanlake report`` makes), stacked: the top is what it stores."""
    metrics = [_metric(s3_query(bucket, "BucketSizeBytes", storage_type), _storage_label(storage_type))
               for storage_type in STORAGE_TYPES]
    return _graph(f"s3://{bucket}: bytes by storage class", region, metrics, stat="Average", stacked=True, unit="Bytes")


def _storage_query(storage_type: str, buckets: Sequence[str]) -> str:
    names = " OR ".join(f'BucketName="{b}"' for b in buckets)
    return search("AWS/S3", ("BucketName", "StorageType"), "BucketSizeBytes", f'StorageType="{storage_type}"', f"({names})",
                  stat="Average")


def _chunks(buckets: Sequence[str]) -> list[list[str]]:
    """The buckets split so that every storage type's SEARCH over one part fits in ``MAX_EXPRESSION_CHARS``."""
    longest = max(STORAGE_TYPES, key=len)
    chunks: list[list[str]] = [[]]
    for bucket in buckets:
        if chunks[-1] and len(_storage_query(longest, [*chunks[-1], bucket])) > MAX_EXPRESSION_CHARS:
            chunks.append([])
        chunks[-1].append(bucket)
    return chunks


def _group_storage(buckets: Sequence[str], region: str, first: int, total: int) -> dict[str, Any]:
    """Several buckets' bytes per storage type, stacked, found by SEARCH expressions naming the buckets."""
    metrics = [_expression(_storage_query(storage_type, chunk), f"s{t}_{c}",
                           f"${{PROP('Dim.BucketName')}} {_storage_label(storage_type)}")
               for t, storage_type in enumerate(STORAGE_TYPES) for c, chunk in enumerate(_chunks(buckets))]
    title = f"Buckets {first + 1}–{first + len(buckets)} of {total} ({buckets[0]} … {buckets[-1]}): bytes by storage class"
    return _graph(title, region, metrics, stat="Average", stacked=True, unit="Bytes")


def _title(stage: str, region: str, buckets: Sequence[str], namespace: str) -> str:
    return "\n".join((
        f"# leanlake · stage {stage}",
        f"What leanlake did for the {len(buckets)} bucket(s) of its policies in {region}: from the metrics its functions "
        f"publish to the CloudWatch namespace `{namespace}` (one line per bucket · policy; new ones appear by themselves) "
        "and from S3's free daily storage metrics.",
        "",
        "* **Savings**: the estimated monthly USD and kg CO2e saved by each day's actions (conversions priced from their "
        "real bytes, class changes and expirations as planned); `leanlake report` sums a period.",
        "* **Objects acted on**: objects converted, recompressed, re-classed and expired per day over all buckets, "
        "and the bytes saved.",
        "* **Errors**: objects that failed (ConversionErrors), event records leanlake could not act on (BadRecords), "
        "the functions' errors and throttles, and failed events waiting in the dead-letter queue.",
        "* **Storage by class**: S3's BucketSizeBytes per storage class (published once a day).",
        "",
        "Put by `make deploy` and replaced on every deploy (edits made here are lost); removed by `make destroy`. "
        "Stages publishing to the same namespace share its graphs.",
    ))


def dashboard_body(stage: str, region: str, buckets: Iterable[str], namespace: str = DEFAULT_NAMESPACE,
                   functions: Iterable[str] = (), dead_letter_queue: str | None = None) -> dict[str, Any]:
    """The stage's dashboard (``DashboardBody`` as a dict): see the module docstring; DeployError if over the limits.

    ``buckets``: the policies' buckets (storage graphs); ``functions``: the stage's Lambda functions
    (errors and throttles); ``dead_letter_queue``: the stage's ``-dlq`` (messages waiting), if any.
    """
    buckets = sorted(set(buckets))
    functions = sorted(set(functions))
    grid = _Grid()
    grid.add(_text(_title(stage, region, buckets, namespace)), _GRID, 6)

    def per_bucket(metric: str) -> list[list[Any]]:
        return [_expression(search(namespace, OUTCOME_DIMENSIONS, metric), "e1", _PER_BUCKET)]

    def total(metric: str, dimensions: Sequence[str] = OUTCOME_DIMENSIONS, period: int = DAY) -> list[Any]:
        return _expression(f"SUM({search(namespace, dimensions, metric, period=period)})", metric.lower(), metric)

    grid.add(_graph("Estimated monthly USD saved (per day of actions)", region, per_bucket(USD_SAVED),
                    stacked=True, unit="USD / month"), 12, 6)
    grid.add(_graph("Estimated monthly kg CO2e saved (per day of actions)", region, per_bucket(KGCO2E_SAVED),
                    stacked=True, unit="kg CO2e / month"), 12, 6)
    grid.add(_graph("Objects acted on per day (all buckets)", region, [total(m) for m in count_metrics().values()],
                    unit="Objects"), 12, 6)
    grid.add(_graph("Bytes saved per day (outputs smaller than their sources)", region, per_bucket("BytesSaved"),
                    stacked=True, unit="Bytes"), 12, 6)

    errors = [total("ConversionErrors", period=HOUR),
              _expression(search(namespace, BAD_RECORD_DIMENSIONS, "BadRecords", period=HOUR), "badrecords",
                          "BadRecords ${PROP('Dim.trigger')}")]
    grid.add(_graph("leanlake errors per hour", region, errors, period=HOUR, unit="Count"), 8, 6)
    if functions:
        lambda_metrics = [["AWS/Lambda", metric, "FunctionName", function, {"label": f"{function} {metric}"}]
                          for function in functions for metric in ("Errors", "Throttles")]
        grid.add(_graph("Lambda errors and throttles per hour", region, lambda_metrics, period=HOUR, unit="Count"), 8, 6)
    if dead_letter_queue:
        waiting = [["AWS/SQS", "ApproximateNumberOfMessagesVisible", "QueueName", dead_letter_queue,
                    {"label": dead_letter_queue}]]
        grid.add(_graph("Failed events waiting in the dead-letter queue", region, waiting, stat="Maximum", period=HOUR,
                        unit="Messages"), 8, 6)

    if len(buckets) <= BUCKETS_ONE_PER_GRAPH:
        layout = "one graph per bucket"
        storage = [_bucket_storage(bucket, region) for bucket in buckets]
    else:
        layout = f"{BUCKETS_PER_GROUP} buckets to a graph, found by SEARCH"
        groups = [buckets[i:i + BUCKETS_PER_GROUP] for i in range(0, len(buckets), BUCKETS_PER_GROUP)]
        storage = [_group_storage(group, region, i * BUCKETS_PER_GROUP, len(buckets)) for i, group in enumerate(groups)]
    grid.add(_text(f"## Storage by class\nS3's BucketSizeBytes (daily average) per storage class, stacked, for the "
                   f"{len(buckets)} bucket(s) the policies name: {layout}. Overhead types are left out; "
                   "`leanlake report` prices it."), _GRID, 2)
    for widget in storage:
        grid.add(widget, 8, 6)

    body = {"start": "-P30D", "periodOverride": "inherit", "widgets": grid.widgets}
    check_limits(body)
    return body


def limit_problems(body: dict[str, Any]) -> list[str]:
    """Each CloudWatch limit ``body`` breaks, as a short sentence (none: it fits).

    Counts what can be known before CloudWatch runs a search: widgets, entries of a graph's
    ``metrics`` array, searches per graph, expression lengths, explicit metrics and bytes.
    """
    problems = []
    widgets = body.get("widgets", [])
    if len(widgets) > MAX_WIDGETS:
        problems.append(f"{len(widgets)} widgets (at most {MAX_WIDGETS})")
    explicit = 0
    for widget in widgets:
        metrics = widget.get("properties", {}).get("metrics", [])
        title = widget.get("properties", {}).get("title", "?")
        expressions = [m[0]["expression"] for m in metrics if m and isinstance(m[0], dict) and "expression" in m[0]]
        explicit += len(metrics) - len(expressions)
        if len(metrics) > MAX_METRICS_PER_GRAPH:
            problems.append(f"graph {title!r}: {len(metrics)} metrics and expressions (at most {MAX_METRICS_PER_GRAPH})")
        searches = sum(e.count("SEARCH(") for e in expressions)
        if searches > MAX_SEARCHES_PER_GRAPH:
            problems.append(f"graph {title!r}: {searches} SEARCH expressions (at most {MAX_SEARCHES_PER_GRAPH})")
        longest = max(map(len, expressions), default=0)
        if longest > MAX_EXPRESSION_CHARS:
            problems.append(f"graph {title!r}: an expression of {longest} characters (at most {MAX_EXPRESSION_CHARS})")
    if explicit > MAX_METRICS_PER_DASHBOARD:
        problems.append(f"{explicit} metrics (at most {MAX_METRICS_PER_DASHBOARD} on a dashboard)")
    size = len(json.dumps(body).encode())
    if size > MAX_BODY_BYTES:
        problems.append(f"{size:,} bytes (at most {MAX_BODY_BYTES:,})")
    return problems


def check_limits(body: dict[str, Any]) -> None:
    """DeployError (one line) naming every CloudWatch limit ``body`` breaks."""
    problems = limit_problems(body)
    if problems:
        raise DeployError(f"CloudWatch dashboard over CloudWatch's limits: {'; '.join(problems)}")


def _code(exc: Exception) -> str:
    return getattr(exc, "response", {}).get("Error", {}).get("Code", "")


def ensure_dashboard(cloudwatch: Any, name: str, body: dict[str, Any], log: Callable[[str], None] = print) -> bool:
    """Put the dashboard ``name`` (created, or replaced whole); True when it was created.

    CloudWatch refuses an invalid body with ``InvalidParameterInput`` and its validation messages:
    that becomes a one-line DeployError. Messages in a successful answer are warnings (something
    might not render): logged.
    """
    from botocore.exceptions import ClientError

    check_limits(body)
    try:
        cloudwatch.get_dashboard(DashboardName=name)
        existed = True
    except ClientError as exc:
        if _code(exc) != "ResourceNotFound":
            raise
        existed = False
    try:
        answer = cloudwatch.put_dashboard(DashboardName=name, DashboardBody=json.dumps(body))
    except ClientError as exc:
        if _code(exc) != "InvalidParameterInput":
            raise
        raise DeployError(f"CloudWatch dashboard {name} refused: {' '.join(str(exc).split())}") from None
    for message in answer.get("DashboardValidationMessages", []):
        log(f"CloudWatch dashboard {name}: warning at {message.get('DataPath', '?')}: {message.get('Message', '')}")
    log(f"CloudWatch dashboard {name} exists (replaced with this deploy's)" if existed else f"created CloudWatch dashboard {name}")
    return not existed


def delete_dashboard(cloudwatch: Any, name: str, log: Callable[[str], None] = print) -> bool:
    """Delete the dashboard ``name``; True when it was there (absent is fine, and said)."""
    from botocore.exceptions import ClientError

    try:
        cloudwatch.delete_dashboards(DashboardNames=[name])
    except ClientError as exc:
        if _code(exc) != "ResourceNotFound":
            raise
        log(f"CloudWatch dashboard {name}: not there")
        return False
    log(f"deleted CloudWatch dashboard {name}")
    return True
