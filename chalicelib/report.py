"""``leanlake report``: what leanlake saved, from the metrics it published to CloudWatch.

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
