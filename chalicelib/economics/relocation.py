"""Moving stored data to another Region: what it would save a month, and what the move costs once.

What: ``relocation(bytes_by_class, objects, from_region, to_region)`` prices a bucket's footprint for a
month in both Regions (``storage_month``, the same classes) and the one-off copy between them:

- USD: S3's inter-Region data transfer per GB out of the source (``transfer.*`` in ``model.yaml``),
  a GET per object at the source and a PUT per object at the destination (``requests_usd``), and
  the retrieval fee of reading IA/Glacier classes (``retrieval_usd``);
- kg CO2e: Cloud Carbon Footprint's networking energy, ``GB × 0.001 kWh × PUE``, at the source
  Region's grid factor (``carbon.networking_kwh_per_gb``).

``cleanest_regions(carbon)`` ranks the Regions the model can price both ways (a grid factor in the
chosen table and an S3 Standard price) by grid intensity; ``sources(carbon)`` names the figures
used, with their public source and date.

Why: ``leanlake regions`` shows, beside each bucket's Region, the cleanest ones and whether moving
pays back. Regulation, latency and egress to where the data is used come first; this compares
storage price and grid carbon only.

Example (1,000 GiB of Standard in 100,000 objects, from us-east-1 to eu-north-1):
    >>> r = relocation({"STANDARD": 1_000 * 2**30}, 100_000, "us-east-1", "eu-north-1")
    >>> round(r.monthly_usd_saved, 2), round(r.monthly_kgco2e_saved, 3)
    (0.0, 1.197)
    >>> round(r.transfer_usd, 2), round(r.requests_usd, 2), round(r.one_off_kgco2e, 3)
    (20.0, 0.54, 0.43)
    >>> r.payback_months_usd, round(r.payback_months_kgco2e, 2)
    (inf, 0.36)
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any, Mapping

from chalicelib.economics.core import DAYS_PER_MONTH, GB, Estimate, Footprint, requests_usd, retrieval_usd, storage_month
from chalicelib.economics.figures import CCF, CarbonMethod, model, rates, value

#: The classes whose objects must be restored before they can be read, hence copied.
_RESTORE_FIRST = ("GLACIER", "DEEP_ARCHIVE")
#: The classes whose request prices outside us-east-1 are us-east-1's (``rates``' note, which names them).
_ASSUMED_REQUEST_PRICES = ("STANDARD_IA", "ONEZONE_IA", "GLACIER_IR", "INTELLIGENT_TIERING")


@dataclass(frozen=True, slots=True)
class Relocation:
    """A month of the data in ``from_region`` (``before``) and in ``to_region`` (``after``), and the one-off move.

    ``requests_usd`` holds the GETs, the PUTs and the retrieval fees; negative savings are losses.
    """

    from_region: str
    to_region: str
    before: Footprint
    after: Footprint
    transfer_usd: float
    requests_usd: float
    one_off_kgco2e: float
    notes: tuple[str, ...] = ()

    @property
    def one_off_usd(self) -> float:
        return self.transfer_usd + self.requests_usd

    @property
    def monthly_usd_saved(self) -> float:
        return self.before.usd - self.after.usd

    @property
    def monthly_kgco2e_saved(self) -> float:
        return self.before.kgco2e - self.after.kgco2e

    @property
    def estimate(self) -> Estimate:
        """The move as any other change: monthly savings, one-off costs, net over a horizon, payback."""
        return Estimate(self.monthly_usd_saved, self.monthly_kgco2e_saved, self.one_off_usd, self.one_off_kgco2e,
                        None, self.notes)

    @property
    def payback_months_usd(self) -> float:
        """Months of USD savings that repay the move; 0 when nothing is paid, ``inf`` when it never pays."""
        return self.estimate.payback_days / DAYS_PER_MONTH

    @property
    def payback_months_kgco2e(self) -> float:
        return self.estimate.payback_days_co2e / DAYS_PER_MONTH


def grid_tables() -> tuple[str, ...]:
    """The carbon methods' grid-factor tables the model holds, the default (CCF's) first.

        >>> grid_tables()
        ('ccf', 'electricity_maps_2025', 'gsf_2023')
    """
    return tuple(model()["carbon"]["grid_tco2e_per_kwh"])


def grid_factor(region: str, carbon: CarbonMethod = CCF) -> float | None:
    """The Region's grid factor in tCO2e/kWh in ``carbon``'s table; None where the table lacks it.

        >>> grid_factor("eu-north-1"), grid_factor("ca-west-1")
        (8.8e-06, None)
    """
    value_ = model()["carbon"]["grid_tco2e_per_kwh"][carbon.grid]["values"].get(region)
    return None if value_ is None else float(value_)


def standard_price(region: str) -> float | None:
    """S3 Standard's USD per GB-month in the Region (us-east-1: its first volume band); None where the model lacks it.

        >>> standard_price("sa-east-1"), standard_price("cn-north-1")
        (0.0405, None)
    """
    price = model()["storage"]["STANDARD"]["price_by_region"]["values"].get(region)
    return None if price is None else float(price)


@functools.cache
def cleanest_regions(carbon: CarbonMethod = CCF) -> tuple[tuple[str, float], ...]:
    """(Region, tCO2e/kWh) for every Region with a grid factor in ``carbon``'s table and an S3 Standard price,
    the cleanest grid first (ties: the cheaper storage, then the name).

        >>> [name for name, _ in cleanest_regions()[:3]]
        ['eu-north-1', 'eu-west-3', 'sa-east-1']
    """
    priced = [(name, factor) for name in model()["carbon"]["grid_tco2e_per_kwh"][carbon.grid]["values"]
              if (factor := grid_factor(name, carbon)) is not None and standard_price(name) is not None]
    return tuple(sorted(priced, key=lambda item: (item[1], standard_price(item[0]) or 0.0, item[0])))


def transfer_per_gb(from_region: str, to_region: str) -> tuple[float, str | None]:
    """USD per GB that S3 bills to send data from one Region to another, and a note when it is the model's ASSUMPTION.

        >>> transfer_per_gb("us-east-1", "us-east-2"), transfer_per_gb("sa-east-1", "us-east-1")
        ((0.01, None), (0.138, None))
        >>> transfer_per_gb("eu-central-2", "eu-north-1")[1]
        'eu-central-2: no inter-Region transfer price in the model, $0.02 per GB assumed'
    """
    table = model()["transfer"]
    pair = table["pair_per_gb"]["values"].get(f"{from_region}>{to_region}")
    if pair is not None:
        return float(pair), None
    price = table["inter_region_out_per_gb"]["values"].get(from_region)
    if price is not None:
        return float(price), None
    default = float(value("transfer", "inter_region_out_default_per_gb"))
    return default, f"{from_region}: no inter-Region transfer price in the model, ${default:g} per GB assumed"


def _spread(bytes_by_class: Mapping[str, float], objects: int) -> dict[str, int]:
    """The objects of each class, in proportion to its bytes (S3 counts objects over all classes); at least one."""
    total = sum(bytes_by_class.values())
    return {cls: max(1, round(objects * size / total)) for cls, size in bytes_by_class.items()}


def _relevant(notes: tuple[str, ...], sizes: Mapping[str, float]) -> tuple[str, ...]:
    """The rates' notes that concern these classes, once each: the assumed IA/GIR/INT request prices only when they are used."""
    assumed_used = any(cls in _ASSUMED_REQUEST_PRICES for cls in sizes)
    return tuple(dict.fromkeys(n for n in notes if assumed_used or "request and transition prices" not in n))


def _month(bytes_by_class: Mapping[str, float], counts: Mapping[str, int], region: str, carbon: CarbonMethod) -> Footprint:
    months = [storage_month(size, cls, region, counts[cls], carbon=carbon) for cls, size in bytes_by_class.items()]
    return Footprint(sum(m.usd for m in months), sum(m.kgco2e for m in months), sum(m.billable_bytes for m in months),
                     sum(m.kwh for m in months), tuple(dict.fromkeys(n for m in months for n in m.notes)))


def relocation(bytes_by_class: Mapping[str, float], objects: int, from_region: str, to_region: str, *,
               carbon: CarbonMethod = CCF) -> Relocation:
    """Moving ``bytes_by_class`` (storage class → bytes) in ``objects`` objects from one Region to another,
    each class kept. The objects are spread over the classes in proportion to their bytes (S3's
    ``NumberOfObjects`` counts all classes together); that decides only per-object minimums and requests.

    One-off USD: transfer (per GB out of ``from_region``), a GET per object at the source, a PUT per
    object at the destination, the retrieval fee of IA/Glacier sources. One-off CO2e: CCF networking,
    ``GB × networking_kwh_per_gb × PUE × grid(from_region)``. The same Region: nothing moves, nothing is paid.

        >>> r = relocation({"STANDARD_IA": 100 * 2**30}, 1_000, "eu-west-1", "eu-west-1")
        >>> r.one_off_usd, r.monthly_usd_saved, r.payback_months_usd
        (0.0, 0.0, 0.0)
    """
    sizes = {cls: float(size) for cls, size in bytes_by_class.items() if size > 0}
    counts = _spread(sizes, objects) if sizes else {}
    before = _month(sizes, counts, from_region, carbon)
    if from_region == to_region:
        return Relocation(from_region, to_region, before, before, 0.0, 0.0, 0.0, _relevant(before.notes, sizes))
    after = _month(sizes, counts, to_region, carbon)
    gb = sum(sizes.values()) / GB
    per_gb, transfer_note = transfer_per_gb(from_region, to_region)
    requests = sum(requests_usd(cls, from_region, gets=counts[cls]) + requests_usd(cls, to_region, puts=counts[cls])
                   + retrieval_usd(size, cls, from_region) for cls, size in sizes.items())
    source = rates(from_region, carbon)
    kwh = gb * value("carbon", "networking_kwh_per_gb") * source.pue
    notes = [*_relevant(before.notes + after.notes, sizes), *([transfer_note] if transfer_note else [])]
    if any(cls in _RESTORE_FIRST for cls in sizes):
        notes.append("GLACIER/DEEP_ARCHIVE objects are restored before they are copied: the retrieval per GB is counted, "
                     "the restore requests and the days the restored copies are kept are not")
    if any(cls != "STANDARD" for cls in sizes):
        notes.append("deleting IA/Glacier sources younger than their class minimum adds early-deletion fees (ages unknown, not counted)")
    return Relocation(from_region, to_region, before, after, gb * per_gb, requests, kwh * source.ef * 1000,
                      tuple(dict.fromkeys(notes)))


def _cited(node: Mapping[str, Any], figure: str) -> dict[str, str]:
    return {"figure": figure, "source": str(node["source"]), "as_of": str(node["as_of"])}


def sources(carbon: CarbonMethod = CCF) -> dict[str, dict[str, str]]:
    """The figures a relocation uses, each with its dotted place in ``model.yaml``, public source and date.

        >>> sorted(sources())[:3], sources()["grid"]["figure"]
        (['grid', 'networking_kwh_per_gb', 'pue'], 'carbon.grid_tco2e_per_kwh.ccf')
    """
    m = model()
    pue = ("carbon.pue.ccf", m["carbon"]["pue"]["ccf"]) if carbon.pue == "ccf" else \
        ("carbon.pue.aws_by_region_cy2025", m["carbon"]["pue"]["aws_by_region_cy2025"])
    return {
        "storage_price": _cited(m["storage"]["STANDARD"]["price_by_region"], "storage.STANDARD.price_by_region"),
        "storage_price_us_east_1": _cited(m["storage"]["STANDARD"]["price_us_east_1_bands"][0], "storage.STANDARD.price_us_east_1_bands"),
        "grid": _cited(m["carbon"]["grid_tco2e_per_kwh"][carbon.grid], f"carbon.grid_tco2e_per_kwh.{carbon.grid}"),
        "pue": _cited(pue[1], pue[0]),
        "storage_energy": _cited(m["carbon"]["hdd_wh_per_tbh"], "carbon.hdd_wh_per_tbh"),
        "networking_kwh_per_gb": _cited(m["carbon"]["networking_kwh_per_gb"], "carbon.networking_kwh_per_gb"),
        "transfer_per_gb": _cited(m["transfer"]["inter_region_out_per_gb"], "transfer.inter_region_out_per_gb"),
        "transfer_pairs": _cited(m["transfer"]["pair_per_gb"], "transfer.pair_per_gb"),
        "transfer_default": _cited(m["transfer"]["inter_region_out_default_per_gb"], "transfer.inter_region_out_default_per_gb"),
        "requests": _cited(m["requests"]["by_region_per_request"]["STANDARD_put"], "requests.by_region_per_request"),
    }
