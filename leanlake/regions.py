"""``leanlake regions``: each bucket's Region beside the cleanest ones, and what moving its data would save.

For every bucket: its Region (``GetBucketLocation``), what it stores now (S3's daily storage metrics
in CloudWatch ``AWS/S3``, read in the bucket's own Region through ``chalicelib.report.footprint``;
a bucket without metrics in the window yet is listed instead, and ``footprint_source`` says which),
its Region's grid intensity and S3 Standard price, and for the ``top`` cleanest Regions of the
model (``chalicelib.economics.cleanest_regions``) what moving that footprint would save a month in
USD and kg CO2e against the one-off transfer (``chalicelib.economics.relocation``), with the payback.

Why: the grid a byte is stored on can matter more than its storage class; but regulation, latency
and egress decide first, so every answer carries ``NOTE``.

Example:
    >>> document = advise(s3_client, ["ml-lake"], top=3)          # doctest: +SKIP
    >>> [c["region"] for c in document["buckets"][0]["candidates"]]  # doctest: +SKIP
    ['eu-north-1', 'eu-west-3', 'sa-east-1']
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Callable, Iterable, cast

from chalicelib.economics import (
    CarbonMethod,
    class_names,
    cleanest_regions,
    grid_factor,
    grid_tables,
    relocation,
    sources,
    standard_price,
)
from chalicelib.economics.figures import GridTable

NOTE = ("Regulation (data residency, sovereignty), latency to users and compute, and egress to where the data is used "
        "come first; this compares storage price and grid carbon only.")

#: What each grid table of the model (``grid_tables()``) is, for people.
METHOD_NAMES = {
    "ccf": "Cloud Carbon Footprint (the default)",
    "electricity_maps_2025": "Electricity Maps, 2025 yearly averages",
    "gsf_2023": "Green Software Foundation real-time-cloud, 2023",
}

#: Where a bucket's footprint came from.
CLOUDWATCH, LISTING = "cloudwatch", "listing"


class RegionsError(Exception):
    """A request that failed, with what it was about (``s3://bucket``, ``cloudwatch REGION``) and a one-line reason."""

    def __init__(self, subject: str, reason: str) -> None:
        super().__init__(f"{subject}: {reason}")
        self.subject, self.reason = subject, reason


@dataclass(frozen=True, slots=True)
class Stored:
    """What a bucket stores: bytes per storage class, its objects, and where that was read."""

    bytes_by_class: dict[str, int]
    objects: int
    source: str
    notes: tuple[str, ...] = ()

    @property
    def bytes(self) -> int:
        return sum(self.bytes_by_class.values())


def region_of(location: str | None) -> str:
    """A bucket's Region from its ``LocationConstraint``: none means us-east-1, ``EU`` is eu-west-1's old name.

        >>> region_of(None), region_of(""), region_of("EU"), region_of("eu-north-1")
        ('us-east-1', 'us-east-1', 'eu-west-1', 'eu-north-1')
    """
    if not location:
        return "us-east-1"
    return "eu-west-1" if location == "EU" else location


def bucket_region(s3: Any, bucket: str) -> str:
    """The Region ``bucket`` lives in (``GetBucketLocation``, through ``region_of``)."""
    return region_of(s3.get_bucket_location(Bucket=bucket).get("LocationConstraint"))


def cloudwatch_client(region: str) -> Any:
    """A CloudWatch client in ``region``: S3 publishes a bucket's storage metrics in the bucket's own Region."""
    import boto3

    return boto3.session.Session().client("cloudwatch", region_name=region)


def _failed(subject: str, exc: Exception) -> RegionsError:
    from chalicelib.errors import describe_error

    return RegionsError(subject, describe_error(exc)[0])


def from_listing(s3: Any, bucket: str) -> Stored:
    """The bucket's current objects, summed per storage class from a listing (LIST requests are billed)."""
    known = set(class_names())
    sizes: dict[str, int] = defaultdict(int)
    objects, unpriced = 0, set()
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        for obj in page.get("Contents", ()):
            cls = obj.get("StorageClass") or "STANDARD"
            if cls not in known:
                unpriced.add(cls)
                cls = "STANDARD"
            sizes[cls] += obj["Size"]
            objects += 1
    notes = ["no S3 storage metrics in CloudWatch yet: the bucket was listed (current versions only)"]
    notes += [f"{cls}: a class the model does not price, counted as STANDARD" for cls in sorted(unpriced)]
    return Stored(dict(sizes), objects, LISTING, tuple(notes))


def from_metrics(cloudwatch: Any, buckets: set[str], region: str, *, days: int, now: datetime | None) -> dict[str, Stored]:
    """The buckets of one Region that have storage metrics in the last ``days``: their latest day, per class."""
    from chalicelib.report import footprint

    found: dict[str, dict[str, int]] = defaultdict(dict)
    objects: dict[str, int] = {}
    for row in footprint(cloudwatch, buckets, days=days, region=region, now=now)["footprint"]:
        found[row["bucket"]][row["storage_class"]] = row["bytes"]
        objects[row["bucket"]] = row["objects"]
    return {bucket: Stored(sizes, objects[bucket], CLOUDWATCH) for bucket, sizes in found.items()}


def _months(value: float) -> float | str:
    return "never" if math.isinf(value) else value


def _g_per_kwh(region: str, carbon: CarbonMethod) -> float | None:
    factor = grid_factor(region, carbon)
    return None if factor is None else round(factor * 1e6, 6)


def _candidates(stored: Stored, region: str, top: list[tuple[str, float]], carbon: CarbonMethod) -> tuple[list[dict[str, Any]], list[str]]:
    rows, notes = [], []
    for name, factor in top:
        move = relocation(stored.bytes_by_class, stored.objects, region, name, carbon=carbon)
        notes += move.notes
        rows.append({"region": name, "grid_gco2e_per_kwh": round(factor * 1e6, 6), "storage_usd_per_gb_month": standard_price(name),
                     "monthly_usd_saved": move.monthly_usd_saved, "monthly_kgco2e_saved": move.monthly_kgco2e_saved,
                     "one_off_usd": move.one_off_usd, "one_off_kgco2e": move.one_off_kgco2e,
                     "payback_months_usd": _months(move.payback_months_usd),
                     "payback_months_kgco2e": _months(move.payback_months_kgco2e)})
    return rows, notes


def advise(s3: Any, buckets: Iterable[str], *, top: int = 3, carbon_method: str = "ccf", days: int = 3,
           now: datetime | None = None, cloudwatch: Callable[[str], Any] = cloudwatch_client) -> dict[str, Any]:
    """The ``leanlake regions --json`` document for ``buckets``: ``note``, ``carbon_method``, ``sources`` and
    ``buckets``, each with its Region, footprint (``footprint_source``: ``cloudwatch`` or ``listing``), grid
    intensity (g CO2e/kWh), Standard price and the ``top`` cleanest Regions as ``candidates``. ``now`` ends the
    metrics window (default: today). Raises ``RegionsError`` naming the bucket or Region a request failed for."""
    from botocore.exceptions import BotoCoreError, ClientError

    carbon = CarbonMethod(grid=cast(GridTable, carbon_method))  # one of grid_tables(): the CLI checks
    names = list(dict.fromkeys(buckets))
    regions: dict[str, str] = {}
    for bucket in names:
        try:
            regions[bucket] = bucket_region(s3, bucket)
        except (ClientError, BotoCoreError) as exc:
            raise _failed(f"s3://{bucket}", exc) from exc
    stored: dict[str, Stored] = {}
    by_region: dict[str, set[str]] = defaultdict(set)
    for bucket, region in regions.items():
        by_region[region].add(bucket)
    for region, members in sorted(by_region.items()):
        try:
            stored.update(from_metrics(cloudwatch(region), members, region, days=days, now=now))
        except (ClientError, BotoCoreError) as exc:
            raise _failed(f"cloudwatch {region}", exc) from exc
    for bucket in names:
        if bucket not in stored:
            try:
                stored[bucket] = from_listing(s3, bucket)
            except (ClientError, BotoCoreError) as exc:
                raise _failed(f"s3://{bucket}", exc) from exc
    cleanest = list(cleanest_regions(carbon)[:top])
    rows = []
    for bucket in names:
        region, footprint = regions[bucket], stored[bucket]
        candidates, notes = _candidates(footprint, region, cleanest, carbon)
        staying = relocation(footprint.bytes_by_class, footprint.objects, region, region, carbon=carbon)
        now_month = staying.before
        rows.append({"bucket": bucket, "region": region, "bytes": footprint.bytes, "objects": footprint.objects,
                     "footprint_source": footprint.source, "bytes_by_class": footprint.bytes_by_class,
                     "grid_gco2e_per_kwh": _g_per_kwh(region, carbon), "storage_usd_per_gb_month": standard_price(region),
                     "monthly_usd": now_month.usd, "monthly_kgco2e": now_month.kgco2e, "candidates": candidates,
                     "notes": list(dict.fromkeys([*footprint.notes, *staying.notes, *notes]))})
    return {"note": NOTE, "carbon_method": carbon_method, "carbon_methods": list(grid_tables()), "days": days,
            "sources": sources(carbon), "buckets": rows}
