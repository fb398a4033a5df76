"""``leanlake report``: what the buckets store (``footprint``, from S3's free daily storage metrics) and what
leanlake saved (``savings``, from the metrics it published), both read from CloudWatch.

In AWS the handlers' EMF output becomes CloudWatch metrics (namespace ``leanlake``, dimensions
``bucket``, ``policy``, ``service``); this sums them over a window, per (bucket, policy). The
savings are the sums of ``MonthlyUsdSaved`` and ``MonthlyKgCO2eSaved``, each outcome's estimate
(conversions priced from their real bytes, class changes and expirations as planned). Data
published by an older version has no such metric: its row prices ``BytesSaved`` at S3 Standard in
``region`` instead, and its ``note`` says so.

Example:
    >>> rows = savings(cloudwatch_client, days=30)      # doctest: +SKIP
    >>> rows[0]["bytes_saved"], rows[0]["monthly_usd_saved"], rows[0]["note"]   # doctest: +SKIP
    (10774563, 0.412, None)
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime, timedelta, timezone
from typing import Any, Mapping

from chalicelib.economics import storage_month
from chalicelib.ledger import KGCO2E_SAVED, SAVINGS_METRICS, USD_SAVED, count_metrics, snake

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


def savings(cloudwatch: Any, *, days: int = 30, namespace: str = "leanlake", region: str = "us-east-1",
            buckets: set[str] | None = None, now: datetime | None = None) -> list[dict[str, Any]]:
    """One row per (bucket, policy): the metric sums over the last ``days`` and the monthly $ / kg CO2e saved.

    ``region`` prices only rows without published savings (see ``priced``)."""
    end = (now or datetime.now(timezone.utc)) + timedelta(minutes=1)  # include the current minute
    start = end - timedelta(days=days)
    names = metrics()
    sums: dict[Row, dict[str, float]] = defaultdict(lambda: dict.fromkeys(names, 0.0))
    published: set[Row] = set()
    seen: set[tuple[str, tuple]] = set()
    for page in cloudwatch.get_paginator("list_metrics").paginate(Namespace=namespace):
        for metric in page.get("Metrics", ()):
            dims = tuple(sorted((d["Name"], d["Value"]) for d in metric.get("Dimensions", ())))
            name = metric["MetricName"]
            labels = dict(dims)
            if name not in names or "bucket" not in labels or (name, dims) in seen:  # list_metrics may repeat entries
                continue
            seen.add((name, dims))
            if buckets and labels["bucket"] not in buckets:
                continue
            row = (labels["bucket"], labels.get("policy", ""))
            if name in SAVINGS_METRICS:
                published.add(row)
            stats = cloudwatch.get_metric_statistics(
                Namespace=namespace, MetricName=name, Dimensions=[{"Name": k, "Value": v} for k, v in dims],
                StartTime=start, EndTime=end, Period=max(60, days * 86400), Statistics=["Sum"])
            sums[row][name] += sum(p["Sum"] for p in stats.get("Datapoints", ()))
    return [{"bucket": bucket, "policy": policy,
             **{snake(k): int(v) for k, v in values.items() if k not in SAVINGS_METRICS},
             **priced(values, (bucket, policy) in published, region)}
            for (bucket, policy), values in sorted(sums.items())]


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
    """The ``MetricStat`` of one of S3's free daily storage metrics: Average over a day, as S3 publishes it once a day."""
    return {"Metric": {"Namespace": "AWS/S3", "MetricName": metric,
                       "Dimensions": [{"Name": "BucketName", "Value": bucket}, {"Name": "StorageType", "Value": storage_type}]},
            "Period": 86400, "Stat": "Average"}


def daily_series(cloudwatch: Any, stats: list[dict[str, Any]], start: datetime, end: datetime) -> list[Series]:
    """Each ``MetricStat``'s daily points between ``start`` and ``end``, in the order given, through
    ``GetMetricData`` (500 queries a call, every page): one request per 500 series, not one per series."""
    found: list[dict[str, float]] = [{} for _ in stats]
    for first in range(0, len(stats), MAX_QUERIES):
        queries = [{"Id": f"q{first + i}", "MetricStat": stat, "ReturnData": True}
                   for i, stat in enumerate(stats[first:first + MAX_QUERIES])]
        for page in cloudwatch.get_paginator("get_metric_data").paginate(
                MetricDataQueries=queries, StartTime=start, EndTime=end, ScanBy="TimestampAscending"):
            for result in page.get("MetricDataResults", ()):
                points = found[int(result["Id"][1:])]
                for stamp, value in zip(result.get("Timestamps", ()), result.get("Values", ()), strict=True):
                    points[stamp.astimezone(timezone.utc).date().isoformat()] = value
    return [sorted(points.items()) for points in found]


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
