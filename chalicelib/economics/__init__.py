"""The cost and carbon model: monthly USD and kg CO2e of S3 data, and the net saving of a change.

What: pure functions over the figures in ``model.yaml`` (every one with its public source and date),
following the Cloud Carbon Footprint method:

- ``storage_month(size_bytes, storage_class, region, objects=1) -> Footprint(usd, kgco2e, billable_bytes, kwh, notes)``
- ``class_change(size, from_class, to_class, region, *, age_days, expires_in_days, objects, via="copy"|"transition") -> Estimate``
- ``conversion(size_in, size_out, storage_class, region, *, objects_in, objects_out, source, age_days, ...) -> Estimate``
- ``deletion(size, storage_class, region, age_days, *, objects) -> Estimate``
- ``Estimate(monthly_usd_saved, monthly_kgco2e_saved, one_off_usd, one_off_kgco2e, lasts_days, notes)``
  with ``net_usd(horizon_days)``, ``net_kgco2e(horizon_days)``, ``payback_days``, ``payback_days_co2e``
- the same for many objects at once, as columns (lists): ``months``, ``class_changes``, ``conversions``,
  ``deletions``, ``penalties``, ``lambda_runs`` — planning prices a batch of objects with one call each;
  the one-object functions above are these with a column of one, so both give the same floats
- ``economics.arrays`` (imported on its own: it loads pyarrow): the same columns in Arrow compute for a whole batch
  of mixed storage classes (a class column, not one class a call), bit for bit the floats of the list functions
- helpers: ``penalty_usd``, ``transition_usd``, ``requests_usd``, ``retrieval_usd``, ``lambda_run``,
  ``break_even_bytes``; ``rates(region, carbon)`` for the flat figures; ``CarbonMethod`` to pick
  other grid factors (Electricity Maps 2025, GSF 2023) or AWS's per-region PUE.
- ``relocation(bytes_by_class, objects, from_region, to_region) -> Relocation``: moving data to another Region
  (monthly before/after, one-off transfer, requests and CO2e, payback); ``cleanest_regions``, ``grid_factor``,
  ``standard_price``, ``transfer_per_gb``, ``grid_tables``, ``sources`` (see ``relocation.py``).

Why: ``plan`` acts only when a change is worth it (the "worth it" guarantee) and reports what it saves.

Honesty: under the default carbon method (Cloud Carbon Footprint) every S3 class is the same HDD
storage with replication 6, so changing class saves dollars but not CO2e — except ONEZONE_IA
(replication 2), which cuts storage CO2e by 2/3. Only fewer bytes (conversion, deletion) or One
Zone reduce CO2e; estimates carry this in their ``notes``. Regions the model lacks use us-east-1
figures, also said in ``notes``. A month of savings is 30 days (the model's ASSUMPTION).

Example (a worked example: 10,000 GB of CSV in 1M objects become 2,000 GB of Parquet in 100k):
    >>> from chalicelib.economics import conversion, storage_month
    >>> GiB = 2**30
    >>> round(storage_month(10_000 * GiB, "STANDARD", "us-east-1", objects=1_000_000).kgco2e, 2)
    12.25
    >>> e = conversion(10_000 * GiB, 2_000 * GiB, "STANDARD", "us-east-1", objects_in=1_000_000, objects_out=100_000)
    >>> round(e.net_usd(360)), round(e.net_kgco2e(360), 1), round(e.payback_days, 1), round(e.payback_days_co2e * 24, 1)
    (2193, 117.5, 2.4, 8.7)
"""

from chalicelib.economics.core import (
    CCF_CLASS_NOTE,
    DAYS_PER_MONTH,
    GB,
    Estimate,
    Footprint,
    LambdaRun,
    break_even_bytes,
    class_change,
    class_changes,
    conversion,
    conversions,
    deletion,
    deletions,
    lambda_run,
    lambda_runs,
    months,
    penalties,
    penalty_usd,
    requests_usd,
    retrieval_usd,
    storage_month,
    transition_usd,
)
from chalicelib.economics.figures import (
    CCF,
    CarbonMethod,
    Rates,
    StorageClassFacts,
    class_names,
    model,
    needs_restore,
    rates,
    storage_class,
    value,
)
from chalicelib.economics.relocation import (
    Relocation,
    cleanest_regions,
    grid_factor,
    grid_tables,
    relocation,
    sources,
    standard_price,
    transfer_per_gb,
)

__all__ = [
    "CCF", "CCF_CLASS_NOTE", "DAYS_PER_MONTH", "GB", "CarbonMethod", "Estimate", "Footprint", "LambdaRun", "Rates",
    "StorageClassFacts", "break_even_bytes", "class_change", "class_changes", "class_names", "conversion", "conversions",
    "deletion", "deletions", "lambda_run", "lambda_runs", "months", "penalties",
    "model", "needs_restore", "penalty_usd", "rates", "requests_usd", "retrieval_usd", "storage_class",
    "storage_month", "transition_usd", "value",
    "Relocation", "cleanest_regions", "grid_factor", "grid_tables", "relocation", "sources", "standard_price", "transfer_per_gb",
]
