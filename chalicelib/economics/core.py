"""Monthly cost and CO2e of stored bytes, and the net saving of changing them (the Cloud Carbon Footprint method).

Units: sizes in bytes; GB = 2^30 bytes (AWS billing); USD per month; kg CO2e per month.
A month of savings is 30 days (the model's proration ASSUMPTION), used for horizons and payback;
CCF's 30.42 days appear only inside the byte-hour → energy conversion (section 3).

Example:
    >>> GiB = 2**30
    >>> round(storage_month(10_000 * GiB, "STANDARD", "us-east-1", objects=1_000_000).usd, 2)
    230.0
    >>> e = class_change(2_000 * GiB, "STANDARD", "ONEZONE_IA", objects=100_000, via="transition")
    >>> round(e.monthly_usd_saved, 2), round(e.monthly_kgco2e_saved, 2), round(e.one_off_usd, 2)
    (26.0, 1.63, 1.0)
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Any, Literal, Sequence

from chalicelib.economics.figures import CCF, DEFAULT_REGION, CarbonMethod, Rates, model, rates, value

GB = value("units", "gb_bytes")
DAYS_PER_MONTH = value("units", "prorate_days_per_month")
_TBH_PER_GB_MONTH = value("units", "hours_per_day") * value("units", "ccf_days_in_month") / value("units", "ccf_gb_per_tb")
_HDD_WH_PER_TBH = value("carbon", "hdd_wh_per_tbh")

CCF_CLASS_NOTE = ("CO2e (CCF): every S3 class is HDD with replication 6, so changing class saves dollars, not CO2e; "
                  "only ONEZONE_IA (replication 2) cuts storage CO2e, by 2/3")
ONEZONE_NOTE = "ONEZONE_IA keeps one copy in one Availability Zone: only for data that can be re-created"


@dataclass(frozen=True, slots=True)
class Footprint:
    """Monthly cost (USD), emissions (kg CO2e) and energy (kWh) of stored objects; billable bytes at the class rate."""

    usd: float
    kgco2e: float
    billable_bytes: float
    kwh: float = 0.0
    notes: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Estimate:
    """The economics of one change: monthly savings, one-off costs, and how long the saving lasts.

    ``lasts_days`` is None when the saving runs for the whole horizon, else the day it stops
    (e.g. the object expires). Negative savings are losses.
    """

    monthly_usd_saved: float
    monthly_kgco2e_saved: float
    one_off_usd: float
    one_off_kgco2e: float = 0.0
    lasts_days: float | None = None
    notes: tuple[str, ...] = ()

    def _months(self, horizon_days: float) -> float:
        return _months(horizon_days, self.lasts_days)

    def net_usd(self, horizon_days: float) -> float:
        """Section 6: ``H × Δcost_month − one_off``, H in 30-day months (capped at ``lasts_days``)."""
        return net_usd(self.monthly_usd_saved, self.one_off_usd, self.lasts_days, horizon_days)

    def net_kgco2e(self, horizon_days: float) -> float:
        return self._months(horizon_days) * self.monthly_kgco2e_saved - self.one_off_kgco2e

    @property
    def payback_days(self) -> float:
        """Days until the USD saving repays the one-off cost; 0 with no cost, ``inf`` when it never does."""
        return _payback(self.one_off_usd, self.monthly_usd_saved)

    @property
    def payback_days_co2e(self) -> float:
        return _payback(self.one_off_kgco2e, self.monthly_kgco2e_saved)


def _months(horizon_days: float, lasts_days: float | None) -> float:
    days = horizon_days if lasts_days is None else min(horizon_days, max(lasts_days, 0.0))
    return days / DAYS_PER_MONTH


def net_usd(monthly_usd_saved: float, one_off_usd: float, lasts_days: float | None, horizon_days: float) -> float:
    """``Estimate.net_usd`` of an estimate's figures (planning judges a move per object without building one)."""
    return _months(horizon_days, lasts_days) * monthly_usd_saved - one_off_usd


def _payback(one_off: float, monthly: float) -> float:
    if one_off <= 0:
        return 0.0
    if monthly <= 0:
        return math.inf
    return one_off / monthly * DAYS_PER_MONTH


def _price(r: Rates, cls: str, gb: float) -> float:
    """USD per month for ``gb`` GB in ``cls``, through volume bands where the class has them (marginal)."""
    bands = r.bands.get(cls)
    if bands is None or len(bands) == 1 or gb <= (bands[0][0] or math.inf):
        return gb * r.storage[cls]
    total, lower = 0.0, 0.0
    for upper, price in bands:
        top = gb if upper is None else min(gb, upper)
        if top > lower:
            total += (top - lower) * price
        if upper is None or gb <= upper:
            break
        lower = upper
    return total


def _check_class(cls: str) -> str:
    if cls not in rates().storage:
        raise ValueError(f"unknown storage class {cls!r}")
    return cls


def storage_month(size_bytes: float, storage_class: str = "STANDARD", region: str = DEFAULT_REGION,
                  objects: int = 1, *, carbon: CarbonMethod = CCF) -> Footprint:
    """Sections 1–3: a month of ``size_bytes`` in total, spread evenly over ``objects`` objects.

    Per object: STANDARD_IA/ONEZONE_IA/GLACIER_IR bill at least 128 KiB; GLACIER/DEEP_ARCHIVE add
    32 KiB at the class rate and 8 KiB at the STANDARD rate; INTELLIGENT_TIERING is priced at its
    Frequent Access tier (later tiers depend on access, not modelled) plus the monitoring fee for
    objects of 128 KiB or more. STANDARD's us-east-1 volume bands apply to the total given.
    Energy: CCF, ``billable GB/1000 × 24 × 30.42 × 0.65 Wh × RF × PUE``.

        >>> f = storage_month(16 * 1024 * 1_000_000, "GLACIER_IR", objects=1_000_000)
        >>> round(f.billable_bytes / 2**30, 1), round(f.usd, 3)
        (122.1, 0.488)
    """
    usd, kgco2e, billable, kwh, notes = _month(size_bytes, storage_class, region, objects, carbon)
    return Footprint(usd, kgco2e, billable, kwh, notes)


@functools.cache
def _class_figures(storage_class: str, region: str, carbon: CarbonMethod) -> tuple[Any, ...]:
    """What ``_month`` reads of ``rates`` for one class, gathered once (planning prices a million objects)."""
    r = rates(region, carbon)
    cls = storage_class if storage_class in r.storage else _check_class(storage_class)
    bands = r.bands.get(cls)
    # Up to this many GB ``_price`` is ``gb × price`` (all of it, for a class without volume bands).
    flat_up_to = math.inf if bands is None or len(bands) == 1 else (bands[0][0] or math.inf)
    return (r, cls, r.min_billable[cls], r.overhead_class[cls], r.overhead_std[cls], r.rf[cls], r.energy_multiplier[cls],
            r.storage["STANDARD"], r.rf["STANDARD"], cls == "INTELLIGENT_TIERING", r.int_min_bytes, r.int_monitoring,
            r.pue, r.ef, r.notes, flat_up_to, r.storage[cls])


def _rates(region: str, carbon: CarbonMethod) -> Rates:
    """``rates(region, carbon)``, without hashing the default ``CarbonMethod`` for the cache's key (per object in planning)."""
    return rates(region) if carbon is CCF else rates(region, carbon)


#: ``_class_figures`` under the default carbon method by (class, region): hashing a ``CarbonMethod`` (a dataclass)
#: for the cache's key cost more than the arithmetic it saves, and planning prices two or three months per object.
_CCF_FIGURES: dict[tuple[str, str], tuple[Any, ...]] = {}


def _figures(storage_class: str, region: str, carbon: CarbonMethod) -> tuple[Any, ...]:
    """``_class_figures``, cached by (class, region) under the default carbon method."""
    figures = _CCF_FIGURES.get((storage_class, region)) if carbon is CCF else None
    if figures is None:
        figures = _class_figures(storage_class, region, carbon)
        if carbon is CCF:
            _CCF_FIGURES[(storage_class, region)] = figures
    return figures


def _month(size_bytes: float, storage_class: str, region: str, objects: int,
           carbon: CarbonMethod) -> tuple[float, float, float, float, tuple[str, ...]]:
    """``storage_month``'s figures (usd, kg CO2e, billable bytes, kWh, notes) without building a Footprint."""
    usd, kgco2e, billable, kwh, notes = months([size_bytes], storage_class, region, objects, carbon)
    return usd[0], kgco2e[0], billable[0], kwh[0], notes


def months(sizes: Sequence[float], storage_class: str, region: str = DEFAULT_REGION, objects: int = 1,
           carbon: CarbonMethod = CCF) -> tuple[list[float], list[float], list[float], list[float], tuple[str, ...]]:
    """``storage_month``'s figures for many sizes in one class, as columns (usd, kg CO2e, billable bytes, kWh)
    and the notes: the one place the month is computed. Planning prices a batch of objects with one call,
    a column at a time (a list comprehension per step costs ~0.05 µs an object; a call per object, ~1 µs).

        >>> usd, kg, billable, kwh, _ = months([0, 2**30], "STANDARD_IA")
        >>> billable[0] == 128 * 1024, round(usd[1], 4)
        (True, 0.0125)
    """
    (r, cls, min_billable, overhead, overhead_std, rf, multiplier, std_price, std_rf, intelligent, int_min, int_fee,
     pue, ef, notes, flat_up_to, price) = _figures(storage_class, region, carbon)
    avgs = [size / objects for size in sizes] if objects else [0.0] * len(sizes)
    billable = [objects * (max(avg, min_billable) + overhead) for avg in avgs]
    gbs = [b / GB for b in billable]
    usd = [gb * price if gb <= flat_up_to else _price(r, cls, gb) for gb in gbs]  # _price's own first case, inline
    energy_gb = [gb * rf * multiplier for gb in gbs]
    std_bytes = objects * overhead_std
    if std_bytes:
        std_gb = std_bytes / GB
        std_usd, std_energy = std_gb * std_price, std_gb * std_rf
        usd = [u + std_usd for u in usd]
        energy_gb = [e + std_energy for e in energy_gb]
    if intelligent:
        fee = objects * int_fee
        usd = [u + fee if avg >= int_min else u for u, avg in zip(usd, avgs, strict=True)]
    kwh = [e * _TBH_PER_GB_MONTH * _HDD_WH_PER_TBH * pue / 1000 for e in energy_gb]
    return usd, [k * ef * 1000 for k in kwh], billable, kwh, notes


def penalty_usd(size_bytes: float, storage_class: str, days_stored: float | None, region: str = DEFAULT_REGION,
                objects: int = 1) -> float:
    """Section 4: leaving ``storage_class`` after ``days_stored`` days, below its minimum, costs
    ``billable GB × price × (min_days − d) / 30`` (the /30 proration is an ASSUMPTION). Unknown age: 0.

        >>> round(penalty_usd(2_000 * 2**30, "GLACIER_IR", 40, objects=100_000), 2)
        13.33
    """
    return penalties([size_bytes], storage_class, [days_stored], region, objects)[0]


def penalties(sizes: Sequence[float], storage_class: str, days_stored: Sequence[float | None],
              region: str = DEFAULT_REGION, objects: int = 1) -> list[float]:
    """``penalty_usd`` for many (size, days stored) pairs in one class, as a column."""
    r = rates(region)
    minimum = r.min_days[storage_class]
    min_billable, overhead, price = r.min_billable[storage_class], r.overhead_class[storage_class], r.storage[storage_class]
    return [0.0 if days is None or days >= minimum else
            objects * (max(size / objects if objects else 0.0, min_billable) + overhead) / GB * price * (minimum - days) / DAYS_PER_MONTH
            for size, days in zip(sizes, days_stored, strict=True)]


def transition_usd(to_class: str, region: str = DEFAULT_REGION, objects: int = 1) -> float:
    """Lifecycle transitions: ``objects × price into the destination`` (us-east-1: $0.01–$0.05 per 1,000)."""
    return objects * rates(region).transition[to_class]


def requests_usd(storage_class: str, region: str = DEFAULT_REGION, *, puts: int = 0, gets: int = 0) -> float:
    """PUT/COPY/POST/LIST and GET requests billed at ``storage_class``'s rates."""
    r = rates(region)
    return puts * r.put[storage_class] + gets * r.get[storage_class]


def retrieval_usd(size_bytes: float, storage_class: str, region: str = DEFAULT_REGION) -> float:
    """Per-GB retrieval fee of reading from ``storage_class`` (standard restore speed for archives)."""
    return size_bytes / GB * rates(region).retrieval[storage_class]


def class_change(size_bytes: float, from_class: str, to_class: str, region: str = DEFAULT_REGION, *,
                 age_days: float | None = 0, expires_in_days: float | None = None, objects: int = 1,
                 via: Literal["copy", "transition"] = "copy", carbon: CarbonMethod = CCF) -> Estimate:
    """Moving objects from one class to another, by in-place copy (``storage_class`` action) or Lifecycle.

    One-off: the COPY request at the destination's PUT rate plus the retrieval fee of reading an
    IA/GIR source (``copy``), or the transition price (``transition``); the minimum-duration penalty
    of leaving the source early (``age_days``); and, when the objects expire ``expires_in_days``
    from now, below the destination's minimum, that penalty too. The saving stops at expiry.

        >>> e = class_change(2_000 * 2**30, "STANDARD", "GLACIER_IR", objects=100_000, via="transition", age_days=30)
        >>> round(e.monthly_usd_saved, 2), round(e.one_off_usd, 2), e.monthly_kgco2e_saved
        (38.0, 2.0, 0.0)
    """
    return Estimate(*_class_change(size_bytes, from_class, to_class, region, age_days, expires_in_days, objects, via, carbon))


def _minus(before: list[float], after: list[float]) -> list[float]:
    """A column of savings: ``before − after`` per object."""
    return [b - a for b, a in zip(before, after, strict=True)]


def _class_change(size_bytes: float, from_class: str, to_class: str, region: str, age_days: float | None,
                  expires_in_days: float | None, objects: int, via: str,
                  carbon: CarbonMethod) -> tuple[float, float, float, float, float | None, tuple[str, ...]]:
    """``class_change``'s Estimate fields as a tuple."""
    usd, kgco2e, one_off, lasts, notes = class_changes([size_bytes], from_class, to_class, region, [age_days],
                                                       None if expires_in_days is None else [expires_in_days], objects, via, carbon)
    return usd[0], kgco2e[0], one_off[0], 0.0, None if lasts is None else lasts[0], notes


def class_changes(sizes: Sequence[float], from_class: str, to_class: str, region: str, ages: Sequence[float | None],
                  expires_in_days: Sequence[float] | None = None, objects: int = 1, via: str = "copy", carbon: CarbonMethod = CCF,
                  ) -> tuple[list[float], list[float], list[float], list[float] | None, tuple[str, ...]]:
    """``class_change`` for many (size, age[, days to expiry]) in one pair of classes, as columns: monthly USD and
    kg CO2e saved, one-off USD, and the days each saving lasts (None: the whole horizon for every object)."""
    r = _rates(region, carbon)
    before_usd, before_kg, *_ = months(sizes, from_class, region, objects, carbon)
    after_usd, after_kg, *_ = months(sizes, to_class, region, objects, carbon)
    if via == "copy":
        put, retrieval = objects * r.put[to_class], r.retrieval[from_class]
        one_off = [put + size / GB * retrieval for size in sizes]
    else:
        one_off = [objects * r.transition[to_class]] * len(sizes)
    one_off = [o + p for o, p in zip(one_off, penalties(sizes, from_class, ages, region, objects), strict=True)]
    notes: tuple[str, ...] = r.notes
    if "ONEZONE_IA" not in (from_class, to_class):
        notes += (CCF_CLASS_NOTE,) if carbon.archive_multiplier == 1.0 else ()
    elif to_class == "ONEZONE_IA":
        notes += (ONEZONE_NOTE,)
    lasts = None
    if expires_in_days is not None:
        lasts = [max(days, 0.0) for days in expires_in_days]
        one_off = [o + p for o, p in zip(one_off, penalties(sizes, to_class, lasts, region, objects), strict=True)]
    return (_minus(before_usd, after_usd), _minus(before_kg, after_kg), one_off, lasts, notes)


def deletion(size_bytes: float, storage_class: str = "STANDARD", region: str = DEFAULT_REGION,
             age_days: float | None = None, *, objects: int = 1, carbon: CarbonMethod = CCF) -> Estimate:
    """Deleting objects: saves their whole footprint; DELETE is free; early deletion pays the penalty.

        >>> round(deletion(2_000 * 2**30, "GLACIER_IR", age_days=40, objects=100_000).one_off_usd, 2)
        13.33
    """
    return Estimate(*_deletion(size_bytes, storage_class, region, age_days, objects, carbon))


def _deletion(size_bytes: float, storage_class: str, region: str, age_days: float | None, objects: int,
              carbon: CarbonMethod) -> tuple[float, float, float, float, None, tuple[str, ...]]:
    """``deletion``'s Estimate fields as a tuple."""
    usd, kgco2e, one_off, notes = deletions([size_bytes], storage_class, region, [age_days], objects, carbon)
    return usd[0], kgco2e[0], one_off[0], 0.0, None, notes


def deletions(sizes: Sequence[float], storage_class: str, region: str, ages: Sequence[float | None], objects: int = 1,
              carbon: CarbonMethod = CCF) -> tuple[list[float], list[float], list[float], tuple[str, ...]]:
    """``deletion`` for many (size, age) in one class, as columns: monthly USD and kg CO2e saved, one-off USD."""
    usd, kgco2e, _, _, notes = months(sizes, storage_class, region, objects, carbon)
    return usd, kgco2e, penalties(sizes, storage_class, ages, region, objects), notes


@dataclass(frozen=True, slots=True)
class LambdaRun:
    """Section 5: cost and energy of a conversion job on Lambda (CCF)."""

    seconds: float
    gb_seconds: float
    usd: float
    kwh: float
    kgco2e: float


@functools.cache
def _lambda_setup(memory_mb: int | None, arch: str | None, read_mib_per_s: float | None) -> tuple[int, str, float, float]:
    """Defaults filled in, and ``W × vCPU`` with ``W = min + 50% × (max − min)`` and ``vCPU = memory / 1792``."""
    memory_mb = memory_mb or value("assumptions", "lambda_memory_mb")
    arch = arch or value("assumptions", "lambda_arch")
    read_mib_per_s = read_mib_per_s or value("assumptions", "lambda_read_mib_per_s")
    watts = model()["lambda"]["watts_per_vcpu"][arch]
    util = value("lambda", "avg_cpu_utilization_pct") / 100
    w = watts["min"]["value"] + util * (watts["max"]["value"] - watts["min"]["value"])
    return memory_mb, arch, read_mib_per_s, w * memory_mb / value("lambda", "mb_per_vcpu_ccf")


def lambda_run(size_in_bytes: float, region: str = DEFAULT_REGION, *, invocations: int = 1,
               memory_mb: int | None = None, arch: str | None = None, read_mib_per_s: float | None = None,
               carbon: CarbonMethod = CCF) -> LambdaRun:
    """Reading ``size_in_bytes`` at ``read_mib_per_s``: ``W × h × (memory/1792) × PUE`` kWh; GB-s × price + requests.

    Defaults (ASSUMPTIONS of the worked example): x86_64, 2,048 MB, 25 MiB/s. Lambda prices are us-east-1's
    everywhere (ASSUMPTION). ``W = min + 50% × (max − min)`` per vCPU: 2.12 W (x86), 1.08 W (arm64).
    """
    return LambdaRun(*_lambda_run(size_in_bytes, region, invocations, memory_mb, arch, read_mib_per_s, carbon))


def _lambda_run(size_in_bytes: float, region: str, invocations: int, memory_mb: int | None, arch: str | None,
                read_mib_per_s: float | None, carbon: CarbonMethod) -> tuple[float, float, float, float, float]:
    """``lambda_run``'s fields as a tuple."""
    seconds, gb_s, usd, kwh, kgco2e = lambda_runs([size_in_bytes], region, invocations, memory_mb, arch, read_mib_per_s, carbon)
    return seconds[0], gb_s[0], usd[0], kwh[0], kgco2e[0]


def lambda_runs(sizes: Sequence[float], region: str, invocations: int, memory_mb: int | None = None, arch: str | None = None,
                read_mib_per_s: float | None = None, carbon: CarbonMethod = CCF,
                ) -> tuple[list[float], list[float], list[float], list[float], list[float]]:
    """``lambda_run`` for many input sizes, as columns: seconds, GB-s, USD, kWh, kg CO2e."""
    r = _rates(region, carbon)
    memory_mb, arch, read_mib_per_s, watts_x_vcpu = _lambda_setup(memory_mb, arch, read_mib_per_s)
    per_s, gb_s_price, requests, pue, ef = read_mib_per_s * 2**20, r.lambda_gb_s[arch], invocations * r.lambda_request, r.pue, r.ef
    seconds = [size / per_s for size in sizes]
    gb_s = [sec * memory_mb / 1024 for sec in seconds]
    kwh = [watts_x_vcpu * sec / 3600 * pue / 1000 for sec in seconds]
    return seconds, gb_s, [g * gb_s_price + requests for g in gb_s], kwh, [k * ef * 1000 for k in kwh]


def conversion(size_in: float, size_out: float, storage_class: str = "STANDARD", region: str = DEFAULT_REGION, *,
               objects_in: int = 1, objects_out: int = 1, source: str = "delete", output_class: str = "STANDARD",
               age_days: float | None = None, invocations: int | None = None, memory_mb: int | None = None,
               arch: str | None = None, read_mib_per_s: float | None = None,
               carbon: CarbonMethod = CCF) -> Estimate:
    """Converting or recompressing ``size_in`` bytes into ``size_out`` bytes, then handling the source.

    ``source`` is ``delete`` (saves the source's footprint), ``keep`` (the output adds storage: a
    loss, said in the notes) or ``storage_class:CLASS``. One-off: Lambda (``invocations`` defaults
    to ``objects_out``), GETs and retrieval fees on the source, PUTs of the outputs, and the
    minimum-duration penalty (and copy) of a source deleted or re-classed early.

        >>> e = conversion(10_000 * 2**30, 2_000 * 2**30, objects_in=1_000_000, objects_out=100_000)
        >>> round(e.one_off_usd, 2), round(e.one_off_kgco2e, 3), round(e.monthly_usd_saved, 2)
        (14.57, 0.119, 184.0)
    """
    return Estimate(*_conversion(size_in, size_out, storage_class, region, objects_in, objects_out, source, output_class,
                                 age_days, invocations, memory_mb, arch, read_mib_per_s, carbon))


def _conversion(size_in: float, size_out: float, storage_class: str, region: str, objects_in: int, objects_out: int,
                source: str, output_class: str, age_days: float | None, invocations: int | None, memory_mb: int | None,
                arch: str | None, read_mib_per_s: float | None,
                carbon: CarbonMethod) -> tuple[float, float, float, float, None, tuple[str, ...]]:
    """``conversion``'s Estimate fields as a tuple."""
    usd, kgco2e, one_off, run_kgco2e, notes = conversions([size_in], [size_out], storage_class, region, [age_days], source,
                                                          objects_in, objects_out, output_class, invocations, memory_mb, arch,
                                                          read_mib_per_s, carbon)
    return usd[0], kgco2e[0], one_off[0], run_kgco2e[0], None, notes


def conversions(sizes_in: Sequence[float], sizes_out: Sequence[float], storage_class: str, region: str,
                ages: Sequence[float | None], source: str = "delete", objects_in: int = 1, objects_out: int = 1,
                output_class: str = "STANDARD", invocations: int | None = None, memory_mb: int | None = None,
                arch: str | None = None, read_mib_per_s: float | None = None, carbon: CarbonMethod = CCF,
                ) -> tuple[list[float], list[float], list[float], list[float], tuple[str, ...]]:
    """``conversion`` for many (size in, size out, age) from one class, as columns: monthly USD and kg CO2e saved,
    one-off USD and one-off kg CO2e (the Lambda run), and the notes."""
    r = _rates(region, carbon)
    before_usd, before_kg, *_ = months(sizes_in, storage_class, region, objects_in, carbon)
    out_usd, out_kg, *_ = months(sizes_out, output_class, region, objects_out, carbon)
    _, _, run_usd, _, run_kgco2e = lambda_runs(sizes_in, region, objects_out if invocations is None else invocations,
                                               memory_mb, arch, read_mib_per_s, carbon)
    gets, retrieval, puts = objects_in * r.get[storage_class], r.retrieval[storage_class], objects_out * r.put[output_class]
    one_off = [run + gets + size / GB * retrieval + puts for run, size in zip(run_usd, sizes_in, strict=True)]
    notes = r.notes
    if region != DEFAULT_REGION:
        notes += ("Lambda priced at us-east-1 rates (ASSUMPTION: no open regional price table)",)
    if source == "keep":
        after_usd = [o + b for o, b in zip(out_usd, before_usd, strict=True)]
        after_kg = [o + b for o, b in zip(out_kg, before_kg, strict=True)]
        notes += ("source kept: the output adds storage until the source is deleted",)
    elif source.startswith("storage_class:"):
        cls = source.split(":", 1)[1]
        kept_usd, kept_kg, *_ = months(sizes_in, cls, region, objects_in, carbon)
        after_usd = [o + k for o, k in zip(out_usd, kept_usd, strict=True)]
        after_kg = [o + k for o, k in zip(out_kg, kept_kg, strict=True)]
        moved = objects_in * r.put[cls]
        one_off = [o + (moved + p) for o, p in zip(one_off, penalties(sizes_in, storage_class, ages, region, objects_in), strict=True)]
    else:
        after_usd, after_kg = out_usd, out_kg
        one_off = [o + p for o, p in zip(one_off, penalties(sizes_in, storage_class, ages, region, objects_in), strict=True)]
    return _minus(before_usd, after_usd), _minus(before_kg, after_kg), one_off, run_kgco2e, notes


def break_even_bytes(from_class: str, to_class: str, horizon_days: float, region: str = DEFAULT_REGION, *,
                     via: Literal["copy", "transition"] = "transition") -> float:
    """The smallest object size whose move from ``from_class`` to ``to_class`` pays within the horizon (inf: never).

        >>> round(break_even_bytes("STANDARD", "DEEP_ARCHIVE", 365) / 1024)
        206
    """
    def net(size: float) -> float:
        return class_change(size, from_class, to_class, region, via=via, age_days=None).net_usd(horizon_days)

    low, high = 0.0, float(2**40)
    if net(high) <= 0:
        return math.inf
    if net(1.0) > 0:
        return 0.0
    for _ in range(60):
        mid = (low + high) / 2
        low, high = (low, mid) if net(mid) > 0 else (mid, high)
    return high
