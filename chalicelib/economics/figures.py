"""The figures of the cost and carbon model, loaded once from ``model.yaml`` and resolved per region.

``model.yaml`` (beside this module) holds every figure with its ``source`` and ``as_of``
(public price lists and carbon factors). ``rates(region, carbon)`` turns it into flat
per-class numbers for one region and one carbon method, cached, so the per-object arithmetic in
``plan`` is a handful of dict lookups. Regions missing from a table fall back to us-east-1 and
say so in ``Rates.notes``.

Example:
    >>> r = rates("us-east-1")
    >>> r.storage["STANDARD"], r.storage["GLACIER_IR"], r.rf["ONEZONE_IA"]
    (0.023, 0.004, 2)
    >>> rates("eu-west-1").storage["STANDARD_IA"], rates("eu-west-1").ef
    (0.0125, 0.0002786)
    >>> rates("xx-nowhere-1").notes[0]
    'xx-nowhere-1: no S3 prices in the model, us-east-1 figures used'
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Mapping

import yaml

MODEL_PATH = Path(__file__).with_name("model.yaml")
DEFAULT_REGION = "us-east-1"
GridTable = Literal["ccf", "electricity_maps_2025", "gsf_2023"]
PueSource = Literal["ccf", "aws_2025"]


@functools.cache
def model() -> Mapping[str, Any]:
    """The parsed ``model.yaml`` (about 7 ms with libyaml, once per process)."""
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    with MODEL_PATH.open(encoding="utf-8") as fh:
        return yaml.load(fh, Loader=loader)


def value(*path: str) -> Any:
    """The ``value`` of a scalar figure: ``value("units", "gb_bytes")`` → 1073741824."""
    node: Any = model()
    for part in path:
        node = node[part]
    return node["value"]


@dataclass(frozen=True, slots=True)
class StorageClassFacts:
    """What decides what leanlake may do with a class: its Lifecycle rank, minimum storage days,
    minimum billable object size, the days Lifecycle wants an object to be old before it enters
    the class (and stays in it before moving on), and whether reading needs a restore (all from
    the model)."""

    name: str
    rank: int
    min_days: int
    min_billable: int
    min_days_before_transition: int
    needs_restore: bool


@functools.cache
def class_names() -> tuple[str, ...]:
    """The storage classes the model knows and prices (S3's names), in the model's order.

        >>> class_names()[:3]
        ('STANDARD', 'STANDARD_IA', 'ONEZONE_IA')
    """
    return tuple(model()["storage_classes"]["lifecycle_rank"]["values"])


@functools.cache
def needs_restore(name: str) -> bool:
    """True for a class whose objects can't be read without a restore (GLACIER, DEEP_ARCHIVE); False for
    classes the model does not know (reading them says what S3 thinks)."""
    return name in class_names() and storage_class(name).needs_restore


@functools.cache
def storage_class(name: str) -> StorageClassFacts:
    """The facts of one storage class; KeyError for a class the model does not know.

        >>> storage_class("GLACIER_IR").min_days, storage_class("ONEZONE_IA").min_billable, storage_class("GLACIER").needs_restore
        (90, 131072, True)
    """
    m = model()
    facts, storage = m["storage_classes"], m["storage"][name]
    return StorageClassFacts(name=name, rank=facts["lifecycle_rank"]["values"][name],
                             min_days=storage["min_storage_days"]["value"], min_billable=storage["min_billable_bytes"]["value"],
                             min_days_before_transition=storage.get("min_days_before_lifecycle_transition", {"value": 0})["value"],
                             needs_restore=facts["needs_restore"]["values"][name])


@dataclass(frozen=True, slots=True)
class CarbonMethod:
    """How kWh become kg CO2e. Default: Cloud Carbon Footprint (CCF grid factors, PUE 1.135).

    ``grid`` picks the grid-factor table (``ccf``, ``electricity_maps_2025``, ``gsf_2023``),
    ``pue`` picks CCF's 1.135 or AWS's published per-region CY2025 values. ``archive_multiplier``
    scales storage energy of GLACIER_IR/GLACIER/DEEP_ARCHIVE: 1.0 is CCF's behaviour; any other
    value is an ASSUMPTION (no published coefficient) and is reported as such.
    """

    grid: GridTable = "ccf"
    pue: PueSource = "ccf"
    archive_multiplier: float = 1.0


CCF = CarbonMethod()


@dataclass(frozen=True)
class Rates:
    """Flat figures for one region and carbon method (USD per GB-month, per request, per GB)."""

    region: str
    storage: dict[str, float]
    #: Volume bands of STANDARD / INTELLIGENT_TIERING (Frequent Access): ((upper bound GB or None, price), ...).
    bands: dict[str, tuple[tuple[float | None, float], ...]]
    put: dict[str, float]
    get: dict[str, float]
    transition: dict[str, float]
    retrieval: dict[str, float]
    min_days: dict[str, int]
    min_billable: dict[str, int]
    overhead_class: dict[str, int]
    overhead_std: dict[str, int]
    rf: dict[str, int]
    energy_multiplier: dict[str, float]
    int_monitoring: float
    int_min_bytes: int
    pue: float
    ef: float
    lambda_gb_s: dict[str, float]
    lambda_request: float
    notes: tuple[str, ...] = field(default=())


def _table(node: Mapping[str, Any], key: str) -> Any:
    """A regional value of a table figure, or None where the table lacks the region."""
    return node["values"].get(key) if node else None


@functools.cache
def rates(region: str = DEFAULT_REGION, carbon: CarbonMethod = CCF) -> Rates:
    """The figures for ``region`` under ``carbon``; missing regional figures fall back to us-east-1 (noted)."""
    m = model()
    notes: list[str] = []
    st = m["storage"]
    known = region == DEFAULT_REGION or region in st["STANDARD"]["price_by_region"]["values"]
    if not known:
        notes.append(f"{region}: no S3 prices in the model, us-east-1 figures used")
    r = region if known else DEFAULT_REGION
    east = r == DEFAULT_REGION

    storage: dict[str, float] = {}
    bands: dict[str, tuple[tuple[float | None, float], ...]] = {}
    tb_gb = value("assumptions", "tb_gb")
    for cls in class_names():
        node = st[cls]
        if "price_us_east_1_bands" in node:
            if east:
                bands[cls] = tuple((b["up_to_tb"] * tb_gb if b["up_to_tb"] else None, b["value"]) for b in node["price_us_east_1_bands"])
            else:
                bands[cls] = ((None, _table(node["price_by_region"], r)),)
            storage[cls] = bands[cls][0][1]
        else:
            storage[cls] = node["price_us_east_1"]["value"] if east else _table(node["price_by_region"], r)

    req = m["requests"]["us_east_1"]
    put = {c: req[c]["put_per_1000"]["value"] / 1000 for c in class_names()}
    get = {c: req[c]["get_per_1000"]["value"] / 1000 for c in class_names()}
    transition = {c: req[c]["transition_into_per_1000"]["value"] / 1000 for c in class_names() if "transition_into_per_1000" in req[c]}
    retr = m["retrieval"]["us_east_1_per_gb"]
    retrieval = {c: 0.0 for c in class_names()}
    retrieval.update({"STANDARD_IA": retr["STANDARD_IA"]["value"], "ONEZONE_IA": retr["ONEZONE_IA"]["value"],
                      "GLACIER_IR": retr["GLACIER_IR"]["value"], "GLACIER": retr["GLACIER_standard"]["value"],
                      "DEEP_ARCHIVE": retr["DEEP_ARCHIVE_standard"]["value"]})
    if not east:
        by = m["requests"]["by_region_per_request"]
        for cls in ("STANDARD", "INTELLIGENT_TIERING"):
            put[cls], get[cls] = _table(by["STANDARD_put"], r), _table(by["STANDARD_get"], r)
        put["GLACIER"] = transition["GLACIER"] = _table(by["GLACIER_put"], r)
        put["DEEP_ARCHIVE"] = transition["DEEP_ARCHIVE"] = _table(by["DEEP_ARCHIVE_transition"], r)
        notes.append(f"{region}: request and transition prices of STANDARD_IA/ONEZONE_IA/GLACIER_IR/INTELLIGENT_TIERING "
                     "are us-east-1's (ASSUMPTION: equal to the class PUT price, as in us-east-1)")
        rby = m["retrieval"]["by_region_per_gb"]
        for cls, key in (("STANDARD_IA", "STANDARD_IA"), ("ONEZONE_IA", "ONEZONE_IA"), ("GLACIER_IR", "GLACIER_IR"),
                         ("GLACIER", "GLACIER_standard"), ("DEEP_ARCHIVE", "DEEP_ARCHIVE_standard")):
            retrieval[cls] = _table(rby[key], r)

    it = st["INTELLIGENT_TIERING"]
    carbon_node = m["carbon"]
    pue = carbon_node["pue"]["ccf"]["value"]
    if carbon.pue == "aws_2025":
        regional = _table(carbon_node["pue"]["aws_by_region_cy2025"], region)
        if regional is None:
            notes.append(f"{region}: no AWS PUE for CY2025, CCF's {pue} used")
        else:
            pue = regional
    grid = carbon_node["grid_tco2e_per_kwh"][carbon.grid]
    ef = _table(grid, region)
    if ef is None:
        ef = _table(grid, DEFAULT_REGION)
        notes.append(f"{region}: no {carbon.grid} grid factor, us-east-1's used")
    archive = carbon.archive_multiplier
    if archive != 1.0:
        notes.append(f"archive storage energy x{archive}: ASSUMPTION, no published coefficient (CCF uses 1.0)")
    lam = m["lambda"]
    return Rates(
        region=region,
        storage=storage,
        bands=bands,
        put=put,
        get=get,
        transition=transition,
        retrieval=retrieval,
        min_days={c: st[c]["min_storage_days"]["value"] for c in class_names()},
        min_billable={c: st[c]["min_billable_bytes"]["value"] for c in class_names()},
        overhead_class={c: st[c].get("overhead_bytes_at_class_rate", {"value": 0})["value"] for c in class_names()},
        overhead_std={c: st[c].get("overhead_bytes_at_standard_rate", {"value": 0})["value"] for c in class_names()},
        rf={c: st[c]["replication_factor"]["value"] for c in class_names()},
        energy_multiplier={c: (archive if c in ("GLACIER_IR", "GLACIER", "DEEP_ARCHIVE") else 1.0) for c in class_names()},
        int_monitoring=it["monitoring_fee_per_1000"]["value"] / 1000,
        int_min_bytes=it["monitoring_min_object_bytes"]["value"],
        pue=pue,
        ef=ef,
        lambda_gb_s={a: lam["price_per_gb_s"][a]["value"] for a in ("x86_64", "arm64")},
        lambda_request=lam["price_per_million_requests"]["value"] / 1e6,
        notes=tuple(notes),
    )
