"""``leanlake report``: what leanlake saved, from the metrics it published to CloudWatch.

In AWS the handlers' EMF output becomes CloudWatch metrics (namespace ``leanlake``, dimensions
``bucket``, ``policy``, ``service``); this sums them over a window and prices the bytes saved with
the cost and carbon model (S3 Standard in the policies' region).

Example:
    >>> rows = savings(cloudwatch_client, days=30)      # doctest: +SKIP
    >>> rows[0]["bytes_saved"]                          # doctest: +SKIP
    10774563
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime, timedelta, timezone
from typing import Any

from chalicelib.economics import storage_month
from chalicelib.ledger import count_metrics, snake



def metrics() -> tuple[str, ...]:
    """The ledger's metrics that a report sums: bytes, each action's count, skips and errors."""
    return ("BytesIn", "BytesOut", "BytesSaved", *count_metrics().values(), "ObjectsSkipped", "ConversionErrors")


def savings(cloudwatch: Any, *, days: int = 30, namespace: str = "leanlake", region: str = "us-east-1",
            buckets: set[str] | None = None, now: datetime | None = None) -> list[dict[str, Any]]:
    """One row per (bucket, policy): the metric sums over the last ``days`` and the monthly $ / kg CO2e saved."""
    end = (now or datetime.now(timezone.utc)) + timedelta(minutes=1)  # include the current minute
    start = end - timedelta(days=days)
    names = metrics()
    sums: dict[tuple[str, str], dict[str, float]] = defaultdict(lambda: dict.fromkeys(names, 0.0))
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
            stats = cloudwatch.get_metric_statistics(
                Namespace=namespace, MetricName=name, Dimensions=[{"Name": k, "Value": v} for k, v in dims],
                StartTime=start, EndTime=end, Period=max(60, days * 86400), Statistics=["Sum"])
            sums[(labels["bucket"], labels.get("policy", ""))][name] += sum(p["Sum"] for p in stats.get("Datapoints", ()))
    rows = []
    for (bucket, policy), values in sorted(sums.items()):
        saved = storage_month(int(max(values["BytesSaved"], 0)), "STANDARD", region)
        rows.append({"bucket": bucket, "policy": policy, **{snake(k): int(v) for k, v in values.items()},
                     "monthly_usd_saved": round(saved.usd, 6), "monthly_kgco2e_saved": round(saved.kgco2e, 9)})
    return rows
