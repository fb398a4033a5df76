"""``leanlake report``: what the buckets store (``footprint``, from S3's free daily storage metrics) and what
leanlake saved (``savings``, from the metrics it published), both read from CloudWatch.

In AWS the handlers' EMF output becomes CloudWatch metrics (namespace ``leanlake``, dimensions
``bucket``, ``policy``, ``service``); this sums them over a window, per (bucket, policy). The
savings are the sums of ``MonthlyUsdSaved`` and ``MonthlyKgCO2eSaved``, each outcome's estimate
(conversions priced from their real bytes, class changes and expirations as planned). Data
published by an older version has no such metric: its row prices ``BytesSaved`` at S3 Standard in
``region`` instead, and its ``note`` says so.

The ledger also publishes the two savings metrics per action (an ``action`` dimension besides ``bucket`` and
``policy``): ``savings_by_action`` sums those, and ``savings`` leaves them out, so that no saving is counted
twice. ``document`` is the whole report (what ``leanlake report --json`` prints and ``--html`` draws);
``planned_savings`` sums what a plan of the policies' buckets would still save, per (policy, action).

Example:
    >>> rows = savings(cloudwatch_client, days=30)      # doctest: +SKIP
    >>> rows[0]["bytes_saved"], rows[0]["monthly_usd_saved"], rows[0]["note"]   # doctest: +SKIP
    (10774563, 0.412, None)
"""

from __future__ import annotations

from collections import defaultdict
from operator import itemgetter
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any, Callable, Iterable, Mapping

from chalicelib.economics import storage_month
from chalicelib.ledger import KGCO2E_SAVED, SAVINGS_METRICS, USD_SAVED, count_metrics, snake
from chalicelib.plan import Totals

if TYPE_CHECKING:
    from chalicelib.decision import Decision

#: A report row's key: (bucket, policy).
Row = tuple[str, str]


def metrics() -> tuple[str, ...]:
    """The ledger's metrics that a report sums: bytes, each action's count, skips, errors and the savings."""
    return ("BytesIn", "BytesOut", "BytesSaved", *count_metrics().values(), "ObjectsSkipped", "ConversionErrors",
            *SAVINGS_METRICS)


def priced(values: Mapping[str, float], published: bool, region: str) -> dict[str, Any]:
    """A row's monthly USD and kg CO2e saved, and its ``note``: the published savings' sums, or (for
    data of a version that published none) the ``BytesSaved`` priced at S3 Standard in ``region``.

    >>> priced({"MonthlyUsdSaved": 1.5, "MonthlyKgCO2eSaved": 0.25, "BytesSaved": 0}, True, "us-east-1")
    {'monthly_usd_saved': 1.5, 'monthly_kgco2e_saved': 0.25, 'note': None}
    >>> priced({"BytesSaved": 2**30}, False, "us-east-1")["note"]
    'no MonthlyUsdSaved published (an older leanlake): only BytesSaved, priced at S3 Standard in us-east-1'
    """
    if published:
        return {"monthly_usd_saved": round(values.get(USD_SAVED, 0.0), 6),
                "monthly_kgco2e_saved": round(values.get(KGCO2E_SAVED, 0.0), 9), "note": None}
    saved = storage_month(int(max(values.get("BytesSaved", 0.0), 0)), "STANDARD", region)
    return {"monthly_usd_saved": round(saved.usd, 6), "monthly_kgco2e_saved": round(saved.kgco2e, 9),
            "note": f"no {USD_SAVED} published (an older leanlake): only BytesSaved, priced at S3 Standard in {region}"}


#: The sums of one namespace's metrics over a window: (dimensions as sorted (name, value) pairs) → metric → sum.
Published = dict[tuple[tuple[str, str], ...], dict[str, float]]


def published(cloudwatch: Any, *, days: int = 30, namespace: str = "leanlake", buckets: set[str] | None = None,
              now: datetime | None = None) -> Published:
    """Every ledger metric (``metrics()``) with a ``bucket`` dimension in ``namespace``, summed over the last ``days``:
    one ``list_metrics`` walk, then ``GetMetricData`` with one period as long as the window (500 metrics a call, each
    matched on its exact dimensions), read once for ``savings_rows`` and ``action_rows``."""
    end = (now or datetime.now(timezone.utc)) + timedelta(minutes=1)  # include the current minute
    start = end - timedelta(days=days)
    names = set(metrics())
    found: list[tuple[tuple[tuple[str, str], ...], dict[str, Any]]] = []  # (sorted dimensions, the metric as listed)
    listed: set[tuple[tuple[tuple[str, str], ...], str]] = set()
    for page in cloudwatch.get_paginator("list_metrics").paginate(Namespace=namespace):
        for metric in page.get("Metrics", ()):
            dims = tuple(sorted((d["Name"], d["Value"]) for d in metric.get("Dimensions", ())))
            name = metric["MetricName"]
            labels = dict(dims)
            if name not in names or "bucket" not in labels or (dims, name) in listed:  # list_metrics may repeat entries
                continue
            if buckets and labels["bucket"] not in buckets:
                continue
            listed.add((dims, name))
            found.append((dims, metric))
    # Each metric is asked for with its dimensions in the order list_metrics gave them: CloudWatch matches them in any
    # order, moto (5.x) only in the order they were put.
    stats = [{"Metric": {"Namespace": namespace, "MetricName": metric["MetricName"], "Dimensions": metric.get("Dimensions", [])},
              "Period": max(60, days * 86400), "Stat": "Sum"} for _, metric in found]
    sums: Published = defaultdict(dict)
    for (dims, metric), points in zip(found, metric_points(cloudwatch, stats, start, end), strict=True):
        sums[dims][metric["MetricName"]] = sum(value for _, value in points)
    return dict(sums)


def savings_rows(sums: Published, region: str = "us-east-1") -> list[dict[str, Any]]:
    """One row per (bucket, policy): the metric sums and the monthly $ / kg CO2e saved. Metrics with an ``action``
    dimension are left out: they repeat the savings by action (``action_rows``), and would count them twice.

    >>> dims = (("bucket", "lake"), ("policy", "archive"), ("service", "leanlake"))
    >>> sums = {dims: {"MonthlyUsdSaved": 2.0, "MonthlyKgCO2eSaved": 0.5, "ObjectsExpired": 3},
    ...         (("action", "expire"), *dims): {"MonthlyUsdSaved": 2.0, "MonthlyKgCO2eSaved": 0.5}}
    >>> [(r["policy"], r["objects_expired"], r["monthly_usd_saved"]) for r in savings_rows(sums)]
    [('archive', 3, 2.0)]
    """
    names = metrics()
    rows: dict[Row, dict[str, float]] = defaultdict(lambda: dict.fromkeys(names, 0.0))
    with_savings: set[Row] = set()
    for dims, values in sums.items():
        labels = dict(dims)
        if "action" in labels:
            continue
        row = (labels["bucket"], labels.get("policy", ""))
        for name, value in values.items():
            rows[row][name] += value
        if any(name in SAVINGS_METRICS for name in values):
            with_savings.add(row)
    return [{"bucket": bucket, "policy": policy,
             **{snake(k): int(v) for k, v in values.items() if k not in SAVINGS_METRICS},
             **priced(values, (bucket, policy) in with_savings, region)}
            for (bucket, policy), values in sorted(rows.items())]


def action_rows(sums: Published) -> list[dict[str, Any]]:
    """One row per (bucket, policy, action): the sums of the savings the ledger published per action.

    >>> dims = (("action", "expire"), ("bucket", "lake"), ("policy", "archive"), ("service", "leanlake"))
    >>> action_rows({dims: {"MonthlyUsdSaved": 2.0, "MonthlyKgCO2eSaved": 0.5},
    ...              dims[1:]: {"MonthlyUsdSaved": 2.0, "MonthlyKgCO2eSaved": 0.5}})
    [{'bucket': 'lake', 'policy': 'archive', 'action': 'expire', 'monthly_usd_saved': 2.0, 'monthly_kgco2e_saved': 0.5}]
    """
    rows: dict[tuple[str, str, str], list[float]] = defaultdict(lambda: [0.0, 0.0])
    for dims, values in sums.items():
        labels = dict(dims)
        if "action" not in labels:
            continue
        row = rows[(labels["bucket"], labels.get("policy", ""), labels["action"])]
        row[0] += values.get(USD_SAVED, 0.0)
        row[1] += values.get(KGCO2E_SAVED, 0.0)
    return [{"bucket": bucket, "policy": policy, "action": action, "monthly_usd_saved": round(usd, 6),
             "monthly_kgco2e_saved": round(kg, 9)}
            for (bucket, policy, action), (usd, kg) in sorted(rows.items())]


def savings(cloudwatch: Any, *, days: int = 30, namespace: str = "leanlake", region: str = "us-east-1",
            buckets: set[str] | None = None, now: datetime | None = None) -> list[dict[str, Any]]:
    """One row per (bucket, policy): the metric sums over the last ``days`` and the monthly $ / kg CO2e saved.

    ``region`` prices only rows without published savings (see ``priced``)."""
    return savings_rows(published(cloudwatch, days=days, namespace=namespace, buckets=buckets, now=now), region)


def savings_by_action(cloudwatch: Any, *, days: int = 30, namespace: str = "leanlake", buckets: set[str] | None = None,
                      now: datetime | None = None) -> list[dict[str, Any]]:
    """One row per (bucket, policy, action): the monthly $ / kg CO2e saved that the ledger published per action
    over the last ``days`` (data of a leanlake that published savings per policy only has none)."""
    return action_rows(published(cloudwatch, days=days, namespace=namespace, buckets=buckets, now=now))


#: S3's daily ``BucketSizeBytes`` storage types (CloudWatch namespace ``AWS/S3``) and the storage class each
#: is billed as. Intelligent-Tiering's tiers are summed into its class; overhead types (``…SizeOverhead``,
#: ``…ObjectOverhead``) are left out: ``storage_month`` prices the bytes stored, not S3's padding.
STORAGE_TYPES: dict[str, str] = {
    "StandardStorage": "STANDARD",
    "StandardIAStorage": "STANDARD_IA",
    "OneZoneIAStorage": "ONEZONE_IA",
    "GlacierInstantRetrievalStorage": "GLACIER_IR",
    "GlacierStorage": "GLACIER",
    "DeepArchiveStorage": "DEEP_ARCHIVE",
    "IntelligentTieringFAStorage": "INTELLIGENT_TIERING",
    "IntelligentTieringIAStorage": "INTELLIGENT_TIERING",
    "IntelligentTieringAIAStorage": "INTELLIGENT_TIERING",
    "IntelligentTieringAAStorage": "INTELLIGENT_TIERING",
    "IntelligentTieringDAAStorage": "INTELLIGENT_TIERING",
}

#: The ``NumberOfObjects`` storage type: S3 counts objects only over all classes.
ALL_STORAGE_TYPES = "AllStorageTypes"

#: ``GetMetricData`` takes at most this many queries a call.
MAX_QUERIES = 500

#: A daily series: (UTC date, value), oldest first.
Series = list[tuple[str, float]]


def s3_query(bucket: str, metric: str, storage_type: str) -> dict[str, Any]:
    """The ``MetricStat`` of one of S3's free daily storage metrics: Average over a day, as S3 publishes it once a day.

    CloudWatch matches dimensions in any order; moto (5.x) only in the order they were put, so this order
    (BucketName first) also keeps out the points moto makes up for its own buckets, whose bytes are not the
    objects' (the embedded stack and the tests publish real ones in this order)."""
    return {"Metric": {"Namespace": "AWS/S3", "MetricName": metric,
                       "Dimensions": [{"Name": "BucketName", "Value": bucket}, {"Name": "StorageType", "Value": storage_type}]},
            "Period": 86400, "Stat": "Average"}


def metric_points(cloudwatch: Any, stats: list[dict[str, Any]], start: datetime, end: datetime) -> list[list[tuple[datetime, float]]]:
    """Each ``MetricStat``'s (timestamp, value) points between ``start`` and ``end``, in the order given, oldest first,
    through ``GetMetricData`` (500 queries a call, every page): one request per 500 series, not one per series."""
    found: list[list[tuple[datetime, float]]] = [[] for _ in stats]
    for first in range(0, len(stats), MAX_QUERIES):
        queries = [{"Id": f"q{first + i}", "MetricStat": stat, "ReturnData": True}
                   for i, stat in enumerate(stats[first:first + MAX_QUERIES])]
        for page in cloudwatch.get_paginator("get_metric_data").paginate(
                MetricDataQueries=queries, StartTime=start, EndTime=end, ScanBy="TimestampAscending"):
            for result in page.get("MetricDataResults", ()):
                found[int(result["Id"][1:])].extend(zip(result.get("Timestamps", ()), result.get("Values", ()), strict=True))
    return found


def daily_series(cloudwatch: Any, stats: list[dict[str, Any]], start: datetime, end: datetime) -> list[Series]:
    """Each daily ``MetricStat``'s points between ``start`` and ``end`` by UTC date, in the order given (``metric_points``)."""
    return [sorted({stamp.astimezone(timezone.utc).date().isoformat(): value for stamp, value in points}.items())
            for points in metric_points(cloudwatch, stats, start, end)]


def footprint(cloudwatch: Any, buckets: set[str], *, days: int = 30, region: str = "us-east-1",
              now: datetime | None = None) -> dict[str, list[dict[str, Any]]]:
    """What the ``buckets`` store now, from S3's free daily CloudWatch metrics over the last ``days`` (no S3 request).

    ``footprint``: one row per (bucket, storage class) with ``bytes``: its ``BucketSizeBytes`` on the bucket's
    latest day with data in the window, ``objects``: the bucket's latest ``NumberOfObjects`` (S3 counts them over
    all classes, so every row of a bucket carries the same count), and the month's USD and kg CO2e of those bytes
    in ``region`` (``storage_month``; Intelligent-Tiering priced at its Frequent Access tier). ``trend``: one point a day per
    bucket, its bytes summed over the classes. Days are UTC, as S3 publishes them.
    """
    end = datetime.combine((now or datetime.now(timezone.utc)).date() + timedelta(days=1), datetime.min.time(),
                           timezone.utc)  # day-aligned, so each period is one of S3's days
    start = end - timedelta(days=days)
    names = sorted(buckets)
    keys = [(bucket, storage_type) for bucket in names for storage_type in STORAGE_TYPES]
    stats = [s3_query(b, "BucketSizeBytes", t) for b, t in keys] + [s3_query(b, "NumberOfObjects", ALL_STORAGE_TYPES)
                                                                     for b in names]
    series = daily_series(cloudwatch, stats, start, end)
    sizes, counts = series[:len(keys)], series[len(keys):]
    objects = {bucket: int(points[-1][1]) if points else 0 for bucket, points in zip(names, counts, strict=True)}
    daily: dict[tuple[str, str], float] = defaultdict(float)  # (date, bucket) → bytes over the classes
    by_class: dict[tuple[str, str, str], float] = defaultdict(float)  # (bucket, date, class) → bytes
    for (bucket, storage_type), points in zip(keys, sizes, strict=True):
        for date, value in points:
            daily[(date, bucket)] += value
            by_class[(bucket, date, STORAGE_TYPES[storage_type])] += value
    latest = {bucket: date for date, bucket in sorted(daily)}  # each bucket's last day with data
    rows = []
    for (bucket, date, cls), size in sorted(by_class.items()):
        if date == latest[bucket]:
            month = storage_month(int(size), cls, region)
            rows.append({"bucket": bucket, "storage_class": cls, "bytes": int(size), "objects": objects[bucket],
                         "monthly_usd": round(month.usd, 6), "monthly_kgco2e": round(month.kgco2e, 9)})
    trend = [{"date": date, "bucket": bucket, "bytes": int(size)}
             for (date, bucket), size in sorted(daily.items())]
    return {"footprint": rows, "trend": trend}


def totals(footprint_rows: list[dict[str, Any]], savings_rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The report's totals: bytes, objects (once per bucket), the month's USD and kg CO2e stored, and saved."""
    objects = {r["bucket"]: r["objects"] for r in footprint_rows}
    return {"bytes": sum(r["bytes"] for r in footprint_rows), "objects": sum(objects.values()),
            "monthly_usd": round(sum(r["monthly_usd"] for r in footprint_rows), 6),
            "monthly_kgco2e": round(sum(r["monthly_kgco2e"] for r in footprint_rows), 9),
            "monthly_usd_saved": round(sum(r["monthly_usd_saved"] for r in savings_rows), 6),
            "monthly_kgco2e_saved": round(sum(r["monthly_kgco2e_saved"] for r in savings_rows), 9)}


def document(cloudwatch_in: Callable[[str], Any], regions: Mapping[str, str], *, days: int, namespace: str,
             now: datetime | None = None) -> dict[str, Any]:
    """The whole report over the last ``days``, as ``leanlake report --json`` prints it: ``days``, ``namespace``,
    ``regions`` (bucket → Region), ``footprint`` and ``trend`` (``footprint``), ``savings`` per (bucket, policy),
    ``savings_by_action`` per (bucket, policy, action) and ``totals``.

    Each bucket is read from CloudWatch in its Region (``cloudwatch_in(region)``), where S3 publishes its storage
    metrics and where the functions that act on it (in that Region, as S3 notifications require) publish theirs,
    and priced there; the savings are read once for both lists."""
    by_region: dict[str, set[str]] = defaultdict(set)
    for bucket, region in regions.items():
        by_region[region].add(bucket)
    found: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for region, buckets in sorted(by_region.items()):
        cloudwatch = cloudwatch_in(region)
        stored = footprint(cloudwatch, buckets, days=days, region=region, now=now)
        sums = published(cloudwatch, days=days, namespace=namespace, buckets=buckets, now=now)
        for part, rows in (*stored.items(), ("savings", savings_rows(sums, region)), ("savings_by_action", action_rows(sums))):
            found[part] += rows
    parts = {"footprint": ("bucket", "storage_class"), "trend": ("date", "bucket"), "savings": ("bucket", "policy"),
             "savings_by_action": ("bucket", "policy", "action")}
    ordered = {part: sorted(found[part], key=itemgetter(*key)) for part, key in parts.items()}
    return {"days": days, "namespace": namespace, "regions": dict(sorted(regions.items())), **ordered,
            "totals": totals(ordered["footprint"], ordered["savings"])}


#: The figures ``planned_savings`` keeps of ``chalicelib.plan``'s totals.
PLANNED_FIGURES = ("decisions", "monthly_usd_saved", "monthly_kgco2e_saved", "one_off_usd")


def planned_savings(decisions: Iterable[Decision]) -> dict[str, Any]:
    """What the policies still plan to save: per (policy, action), from ``chalicelib.plan``'s totals, the decisions,
    the monthly USD and kg CO2e saved and the one-off USD; ``skipped``: the decisions that do nothing (no row).

    ``rows``: [{policy, action, decisions, monthly_usd_saved, monthly_kgco2e_saved, one_off_usd}], sorted;
    ``totals``: the same figures over every row.

    >>> from chalicelib.decision import Decision
    >>> planned = planned_savings([Decision("lake", "a.csv", "tables", "convert", "csv", 0.5, 0.01, 0.002),
    ...                            Decision("lake", "b.csv", "tables", "convert", "csv", 0.25, 0.005, 0.001),
    ...                            Decision("lake", "c.txt", "tables", "skip", "not csv")])
    >>> [(r["policy"], r["action"], r["decisions"], r["monthly_usd_saved"], r["one_off_usd"]) for r in planned["rows"]]
    [('tables', 'convert', 2, 0.75, 0.003)]
    >>> planned["skipped"], planned["totals"]["monthly_kgco2e_saved"]
    (1, 0.015)
    """
    groups: dict[tuple[str, str], Totals] = defaultdict(Totals)
    acting, skipped = Totals(), 0
    for decision in decisions:
        if decision.action == "skip":
            skipped += 1
            continue
        groups[(decision.policy, decision.action)].add(decision)
        acting.add(decision)

    def figures(summed: Totals) -> dict[str, Any]:
        overall = summed.as_dict()["overall"]
        return {name: overall[name] for name in PLANNED_FIGURES}

    return {"rows": [{"policy": policy, "action": action, **figures(summed)} for (policy, action), summed in sorted(groups.items())],
            "skipped": skipped, "totals": figures(acting)}
