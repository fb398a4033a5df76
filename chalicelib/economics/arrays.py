"""``core``'s column functions in Arrow compute: a whole batch of objects, of mixed storage classes, priced in one pass.

What: ``months``, ``penalties``, ``lambda_runs``, ``conversions``, ``deletions``, ``class_changes`` and
``net_usd`` take Arrow columns (sizes, ages, one storage class per row) and return float64 Arrow arrays
whose every element is, bit for bit, what ``core``'s function of the same name returns for that row
when called with the rows of its class. ``core`` stays the reference (and the one-object path).

Why: planning a million objects spends most of its time in ``core``'s list comprehensions (~0.05 µs a
row a step, and a call per class group); Arrow's kernels run the same steps in C over ~65,536 rows at once.

How the floats stay identical:

- each distinct class's figures come from the same cached helpers ``core`` reads (``_figures``,
  ``rates``), computed once per class, and are spread over the rows with ``pc.take`` on the class
  column's dictionary indices (a batch of one class uses them as scalars);
- every step is the same IEEE operation, on the same operands, in the same order as ``core``'s
  expression (``a * b * c`` is ``(a * b) * c``); Python's ``max(a, b)``/``min(a, b)`` become the
  ``if_else`` of the comparison Python makes (``b if b > a else a``), so NaN and -0.0 come out alike;
- where ``core`` branches per row (volume bands above the flat band, the Intelligent-Tiering fee,
  ``days is None or days >= minimum``) both sides are computed and a mask picks; rows only Python
  prices (bands above ``flat_up_to``) are priced by ``core._price`` and put back;
- integer columns become float64 as Python's ``float(int)`` does, and an ``int / int`` that Python
  rounds once (an integer size of 2**53 or more over a count) is done in Python for those rows.

No NumPy (the Lambda package has none), and no ``pa.array``/``pa.scalar`` or Python numbers handed to a
compute function: in pyarrow 26 those import pandas (tens of MiB). Arrays and scalars are built from
bytes (``struct``/``array``) instead.

Example:
    >>> from array import array
    >>> sizes = pa.Array.from_buffers(pa.int64(), 2, [None, pa.py_buffer(array("q", [0, 2**30]))])
    >>> classes = pc.dictionary_encode(pa.Array.from_buffers(pa.string(), 2, [None, pa.py_buffer(array("i", [0, 11, 22])),
    ...                                                                        pa.py_buffer(b"STANDARD_IASTANDARD_IA")]))
    >>> usd, kg, billable, kwh = months(sizes, classes)
    >>> billable[0].as_py() == 128 * 1024, round(usd[1].as_py(), 4)
    (True, 0.0125)
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Any, Sequence

import pyarrow as pa
import pyarrow.compute as pc

from chalicelib.columns import f64, flag, floats, one_chunk, zeros
from chalicelib.economics import core
from chalicelib.economics.core import _HDD_WH_PER_TBH, _TBH_PER_GB_MONTH, DAYS_PER_MONTH, GB, _figures, _lambda_setup, _price, _rates
from chalicelib.economics.figures import CCF, DEFAULT_REGION, CarbonMethod, rates

#: From here on not every integer is a float64: Python's ``int / int`` rounds the exact quotient once,
#: a cast then a float division would round twice.
_EXACT = 2**53


# --- Arrow values built from bytes (pa.scalar / pa.array import pandas in pyarrow 26) ---------------------

_ZERO = f64(0.0)
_FALSE = flag(False)
_GB = f64(GB)
_DAYS_PER_MONTH = f64(DAYS_PER_MONTH)
_THOUSAND = f64(1000)


# --- Inputs -----------------------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class _Column:
    """A numeric column as ``core`` sees it: ``floats`` holds Python's ``float(v)`` of each row; for an integer
    column with values of 2**53 or more, ``big`` masks those rows and ``raw`` keeps them (see ``_divide``)."""

    floats: pa.Array
    raw: pa.Array
    big: pa.Array | None = None


def _numbers(values: Any) -> _Column:
    """A column of sizes or days (any Arrow integer or float type; nulls stay null) as a :class:`_Column`."""
    raw = one_chunk(values)
    if pa.types.is_integer(raw.type):
        cast = pc.cast(raw, pa.float64(), safe=False)
        big = pc.greater_equal(pc.abs(cast), f64(_EXACT))
        if not big.true_count:
            return _Column(cast, raw)
        # Python's float(int), correctly rounded, for the rows a cast might not round alike
        exact = [float(v) for v in raw.filter(big).to_pylist()]
        return _Column(pc.replace_with_mask(cast, big, floats(exact)), raw, big)
    if pa.types.is_floating(raw.type) or pa.types.is_null(raw.type):
        return _Column(raw if raw.type == pa.float64() else pc.cast(raw, pa.float64()), raw)
    raise TypeError(f"a column of numbers was expected, not {raw.type}")


def _divide(column: _Column, divisor: float) -> pa.Array:
    """``[v / divisor for v in column]`` bit for bit: a float division, except that Python divides an integer
    of 2**53 or more by an integer exactly and rounds once, so those rows are divided in Python."""
    if isinstance(divisor, int) and abs(divisor) >= _EXACT:
        return floats([v / divisor for v in column.raw.to_pylist()])
    out = pc.divide(column.floats, f64(divisor))
    if column.big is not None and isinstance(divisor, int):
        out = pc.replace_with_mask(out, column.big, floats([v / divisor for v in column.raw.filter(column.big).to_pylist()]))
    return out


def _count(objects: int) -> int:
    """``objects`` checked to be a float64 exactly: ``objects × n`` must round as Python's ``int × int`` does."""
    if abs(objects) >= _EXACT:
        raise ValueError(f"objects={objects}: 2**53 or more objects can't be priced exactly in float64")
    return objects


@dataclass(frozen=True, slots=True)
class _Classes:
    """A batch's storage classes: the distinct ``names`` and each row's index into them (``indices``, None
    when every row has ``names[0]``: then per-class figures are scalars)."""

    names: tuple[str, ...]
    indices: pa.Array | None
    #: columns already spread, by their per-class figures (a month and a penalty take some of the same)
    spread_: dict[tuple[str, ...], pa.Array] = field(default_factory=dict)

    def spread(self, values: Sequence[float]) -> Any:
        """Per-class figures (one per name) as each row's figure: a float64 column, or a scalar when every class has
        the same figure (one class, or e.g. the same replication factor)."""
        key = tuple(float(v).hex() for v in values)  # by their bits: 0.0 == -0.0, but they don't add alike
        if self.indices is None or len(set(key)) == 1:
            return f64(values[0])
        column = self.spread_.get(key)
        if column is None:
            column = self.spread_[key] = pc.take(floats(values), self.indices)
        return column

    def of(self, rows: pa.Array, count: int) -> list[str]:
        """The classes of the ``count`` rows ``rows`` (a boolean mask) selects, as Python strings."""
        if self.indices is None:
            return [self.names[0]] * count
        return [self.names[i] for i in self.indices.filter(rows).to_pylist()]


def _classes(classes: Any, rows: int) -> _Classes:
    """A per-row class column (string, large string or dictionary; Array or ChunkedArray) of ``rows`` rows as
    :class:`_Classes`. Like ``core``: ValueError for a class the model does not know (dictionary entries no row uses
    are ignored), for a row without a class (S3 lists STANDARD objects without one: fill those in first), and for
    a column of another length than the sizes' (a batch of one class would otherwise broadcast its figures)."""
    column = one_chunk(classes)
    if len(column) != rows:
        raise ValueError(f"{len(column)} storage classes for {rows} rows")
    if column.null_count:
        raise ValueError("a row has no storage class (a null): fill in STANDARD, as S3 means it, first")
    encoded = column if pa.types.is_dictionary(column.type) else pc.dictionary_encode(column)
    names: list[Any] = encoded.dictionary.to_pylist()
    known = rates().storage
    unknown = [i for i, name in enumerate(names) if name not in known]
    if unknown:
        used = set(pc.unique(encoded.indices).to_pylist())
        for i in unknown:
            if i in used:
                raise ValueError(f"unknown storage class {names[i]!r}")
        names = [name if name in known else "STANDARD" for name in names]  # entries no row has: any figures do
    return _Classes(tuple(names), None if len(names) == 1 else encoded.indices)


def _one(storage_class: str) -> _Classes:
    """Every row in ``storage_class`` (an output's or a policy's target class)."""
    return _Classes((core._check_class(storage_class),), None)


# --- Months and penalties -------------------------------------------------------------------------------

def _gb(sizes: _Column, classes: _Classes, figures: Sequence[tuple[Any, ...]], objects: float) -> tuple[pa.Array, pa.Array, pa.Array]:
    """``months``' first steps: each row's mean object size, billable bytes and billable GB.

    ``core``: ``avg = size / objects`` (0.0 without objects), ``billable = objects × (max(avg, min billable) +
    overhead)``, ``gb = billable / GB``. ``figures``: ``_figures`` of each class name (``penalties`` reads the
    same numbers from ``rates(region)``: a class's sizes and days don't depend on the carbon method).
    """
    avg = _divide(sizes, objects) if objects else zeros(len(sizes.floats))
    minimum, overhead = classes.spread([f[2] for f in figures]), classes.spread([f[3] for f in figures])
    # max(avg, minimum) is ``minimum if minimum > avg else avg``: avg's NaN and -0.0 stay
    billable = pc.multiply(f64(objects), pc.add(pc.if_else(pc.greater(minimum, avg), minimum, avg), overhead))
    return avg, billable, pc.divide(billable, _GB)


def _past(gb: pa.Array, flat_up_to: Any) -> pa.Array:
    """Rows whose billable GB is past ``flat_up_to`` (a bound per row, or one for all), or NaN: ``not gb <= flat``."""
    return pc.invert(pc.less_equal(gb, flat_up_to))


def _months(sizes: _Column, classes: _Classes, region: str, objects: float,
            carbon: CarbonMethod) -> tuple[pa.Array, pa.Array, pa.Array, pa.Array, pa.Array]:
    """``months``' columns (usd, kg CO2e, billable bytes, kWh) and the billable GB (``penalties`` starts from them)."""
    r = _rates(region, carbon)
    figures = [_figures(name, region, carbon) for name in classes.names]
    avg, billable, gb = _gb(sizes, classes, figures, objects)
    usd = pc.multiply(gb, classes.spread([f[16] for f in figures]))
    # ``gb × price if gb <= flat_up_to else _price(...)``: rows past their class's flat band (or NaN) are priced by
    # core's _price. A first look against the batch's lowest bound finds none in nearly every batch.
    lowest = min((f[15] for f in figures), default=float("inf"))
    if lowest != float("inf") and _past(gb, f64(lowest)).true_count:
        banded = _past(gb, classes.spread([f[15] for f in figures]))
        count = banded.true_count
        if count:
            priced = [_price(r, name, g)
                      for name, g in zip(classes.of(banded, count), gb.filter(banded).to_pylist(), strict=True)]
            usd = pc.replace_with_mask(usd, banded, floats(priced))
    energy = pc.multiply(pc.multiply(gb, classes.spread([f[5] for f in figures])), classes.spread([f[6] for f in figures]))
    std_bytes = [objects * f[4] for f in figures]
    if any(std_bytes):
        # ``if std_bytes:`` per class, without a mask: the classes without add -0.0, which leaves every float as it is
        # (x + -0.0 is x, -0.0 and NaN included; + 0.0 would turn a -0.0 into 0.0)
        std_gb = [b / GB if b else None for b in std_bytes]
        std_usd = classes.spread([-0.0 if g is None else g * f[7] for g, f in zip(std_gb, figures, strict=True)])
        std_energy = classes.spread([-0.0 if g is None else g * f[8] for g, f in zip(std_gb, figures, strict=True)])
        usd, energy = pc.add(usd, std_usd), pc.add(energy, std_energy)
    if any(f[9] for f in figures):
        # ``u + fee if avg >= int_min``, in Intelligent-Tiering only: other classes compare with NaN, never true
        at_least = classes.spread([f[10] if f[9] else float("nan") for f in figures])
        usd = pc.if_else(pc.greater_equal(avg, at_least), pc.add(usd, f64(objects * r.int_monitoring)), usd)
    kwh = pc.divide(pc.multiply(pc.multiply(pc.multiply(energy, f64(_TBH_PER_GB_MONTH)), f64(_HDD_WH_PER_TBH)), f64(r.pue)),
                    _THOUSAND)
    return usd, pc.multiply(pc.multiply(kwh, f64(r.ef)), _THOUSAND), billable, kwh, gb


def months(sizes: Any, classes: Any, region: str = DEFAULT_REGION, objects: int = 1,
           carbon: CarbonMethod = CCF) -> tuple[pa.Array, pa.Array, pa.Array, pa.Array]:
    """``core.months`` over a batch of mixed classes: each row's (usd, kg CO2e, billable bytes, kWh) a month.

    ``sizes``: an Arrow integer or float column (bytes; each row's total over ``objects`` objects, as in
    ``core``); ``classes``: one storage class per row (string or dictionary column). Four float64 arrays; the
    notes are ``core.months``'. ValueError for an unknown class, or a row without one.
    """
    column = _numbers(sizes)
    usd, kgco2e, billable, kwh, _ = _months(column, _classes(classes, len(column.floats)), region, _count(objects), carbon)
    return usd, kgco2e, billable, kwh


def _penalties(gb: pa.Array, classes: _Classes, days_stored: pa.Array, region: str) -> pa.Array:
    """``penalties`` from the rows' billable GB: ``gb × price × (min days − days) / 30`` below the minimum, else 0.

    ``core``'s condition ``days is None or days >= minimum`` gives 0.0: its negation (true for NaN, as Python's
    ``>=`` is false) picks the penalty, and a null (unknown age) picks 0.0.
    """
    r = rates(region)
    minimum = classes.spread([r.min_days[name] for name in classes.names])
    penalty = pc.divide(pc.multiply(pc.multiply(gb, classes.spread([r.storage[name] for name in classes.names])),
                                    pc.subtract(minimum, days_stored)), _DAYS_PER_MONTH)
    early = pc.fill_null(pc.invert(pc.greater_equal(days_stored, minimum)), _FALSE)
    return pc.if_else(early, penalty, _ZERO)


def penalties(sizes: Any, classes: Any, days_stored: Any, region: str = DEFAULT_REGION, objects: int = 1) -> pa.Array:
    """``core.penalties`` over a batch of mixed classes: the USD of leaving each row's class after ``days_stored``
    days (a nullable number column: null is an unknown age, which costs 0), as a float64 array."""
    column = _numbers(sizes)
    cls = _classes(classes, len(column.floats))
    _, _, gb = _gb(column, cls, [_figures(name, region, CCF) for name in cls.names], _count(objects))
    return _penalties(gb, cls, _numbers(days_stored).floats, region)


# --- Lambda runs, conversions, deletions, class changes -------------------------------------------------------

def _lambda(sizes: _Column, region: str, invocations: int, memory_mb: int | None, arch: str | None, read_mib_per_s: float | None,
            carbon: CarbonMethod) -> tuple[pa.Array, pa.Array, pa.Array, pa.Array, pa.Array]:
    """``lambda_runs``' columns from a :class:`_Column` of input sizes (``conversions`` shares its column)."""
    r = _rates(region, carbon)
    memory_mb, arch, read_mib_per_s, watts_x_vcpu = _lambda_setup(memory_mb, arch, read_mib_per_s)
    seconds = _divide(sizes, read_mib_per_s * 2**20)
    gb_s = pc.divide(pc.multiply(seconds, f64(memory_mb)), f64(1024))
    kwh = pc.divide(pc.multiply(pc.divide(pc.multiply(f64(watts_x_vcpu), seconds), f64(3600)), f64(r.pue)), _THOUSAND)
    usd = pc.add(pc.multiply(gb_s, f64(r.lambda_gb_s[arch])), f64(invocations * r.lambda_request))
    return seconds, gb_s, usd, kwh, pc.multiply(pc.multiply(kwh, f64(r.ef)), _THOUSAND)


def lambda_runs(sizes: Any, region: str, invocations: int, memory_mb: int | None = None, arch: str | None = None,
                read_mib_per_s: float | None = None,
                carbon: CarbonMethod = CCF) -> tuple[pa.Array, pa.Array, pa.Array, pa.Array, pa.Array]:
    """``core.lambda_runs`` over an Arrow column of input sizes: (seconds, GB-s, USD, kWh, kg CO2e) float64 arrays."""
    return _lambda(_numbers(sizes), region, invocations, memory_mb, arch, read_mib_per_s, carbon)


def conversions(sizes_in: Any, sizes_out: Any, classes: Any, region: str, ages: Any, source: str = "delete", objects_in: int = 1,
                objects_out: int = 1, output_class: str = "STANDARD", invocations: int | None = None, memory_mb: int | None = None,
                arch: str | None = None, read_mib_per_s: float | None = None,
                carbon: CarbonMethod = CCF) -> tuple[pa.Array, pa.Array, pa.Array, pa.Array]:
    """``core.conversions`` over a batch whose sources are of mixed classes (``classes``, one per row): monthly USD
    and kg CO2e saved, one-off USD and one-off kg CO2e (the Lambda run), as float64 arrays. ``ages``: nullable
    days. ``source`` is ``delete``, ``keep`` or ``storage_class:CLASS``; the notes are :func:`conversions_notes`'.
    """
    r = _rates(region, carbon)
    objects_in, objects_out = _count(objects_in), _count(objects_out)
    column_in = _numbers(sizes_in)
    cls = _classes(classes, len(column_in.floats))
    before_usd, before_kg, _, _, gb_in = _months(column_in, cls, region, objects_in, carbon)
    out_usd, out_kg, *_ = _months(_numbers(sizes_out), _one(output_class), region, objects_out, carbon)
    _, _, run_usd, _, run_kgco2e = _lambda(column_in, region, objects_out if invocations is None else invocations,
                                           memory_mb, arch, read_mib_per_s, carbon)
    gets = cls.spread([objects_in * r.get[name] for name in cls.names])
    retrieval = cls.spread([r.retrieval[name] for name in cls.names])
    # run + gets + size / GB × retrieval + puts
    one_off = pc.add(pc.add(pc.add(run_usd, gets), pc.multiply(_divide(column_in, GB), retrieval)), f64(objects_out * r.put[output_class]))
    if source == "keep":
        after_usd, after_kg = pc.add(out_usd, before_usd), pc.add(out_kg, before_kg)
    elif source.startswith("storage_class:"):
        kept = source.split(":", 1)[1]
        kept_usd, kept_kg, *_ = _months(column_in, _one(kept), region, objects_in, carbon)
        after_usd, after_kg = pc.add(out_usd, kept_usd), pc.add(out_kg, kept_kg)
        moved = f64(objects_in * r.put[kept])
        one_off = pc.add(one_off, pc.add(moved, _penalties(gb_in, cls, _numbers(ages).floats, region)))
    else:
        after_usd, after_kg = out_usd, out_kg
        one_off = pc.add(one_off, _penalties(gb_in, cls, _numbers(ages).floats, region))
    return pc.subtract(before_usd, after_usd), pc.subtract(before_kg, after_kg), one_off, run_kgco2e


def deletions(sizes: Any, classes: Any, region: str, ages: Any, objects: int = 1,
              carbon: CarbonMethod = CCF) -> tuple[pa.Array, pa.Array, pa.Array]:
    """``core.deletions`` over a batch of mixed classes: monthly USD and kg CO2e saved, one-off USD (the early
    deletion penalty; ``ages`` nullable days), as float64 arrays. The notes are ``core.deletions``'."""
    column = _numbers(sizes)
    cls = _classes(classes, len(column.floats))
    usd, kgco2e, _, _, gb = _months(column, cls, region, _count(objects), carbon)
    return usd, kgco2e, _penalties(gb, cls, _numbers(ages).floats, region)


def _not_below_zero(days: pa.Array) -> pa.Array:
    """Python's ``max(days, 0.0)``: ``0.0 if 0.0 > days else days`` (so -0.0 and NaN stay)."""
    return pc.if_else(pc.greater(_ZERO, days), _ZERO, days)


def class_changes(sizes: Any, from_classes: Any, to_class: str, region: str, ages: Any, expires_in_days: Any = None,
                  objects: int = 1, via: str = "copy",
                  carbon: CarbonMethod = CCF) -> tuple[pa.Array, pa.Array, pa.Array, pa.Array | None]:
    """``core.class_changes`` for a batch moving from mixed classes (``from_classes``, one per row) to one
    ``to_class`` (a policy's target): monthly USD and kg CO2e saved, one-off USD, and the days each saving lasts
    (None when ``expires_in_days``, an optional number column, is None: the whole horizon). The notes, which
    depend on the pair of classes, are :func:`class_changes_notes`'.
    """
    r = _rates(region, carbon)
    objects = _count(objects)
    column = _numbers(sizes)
    source, target = _classes(from_classes, len(column.floats)), _one(to_class)
    before_usd, before_kg, _, _, gb_from = _months(column, source, region, objects, carbon)
    after_usd, after_kg, _, _, gb_to = _months(column, target, region, objects, carbon)
    if via == "copy":  # put + size / GB × retrieval
        retrieval = source.spread([r.retrieval[name] for name in source.names])
        one_off = pc.add(f64(objects * r.put[to_class]), pc.multiply(_divide(column, GB), retrieval))
    else:
        one_off = f64(objects * r.transition[to_class])
    one_off = pc.add(one_off, _penalties(gb_from, source, _numbers(ages).floats, region))
    lasts = None
    if expires_in_days is not None:
        lasts = _not_below_zero(_numbers(expires_in_days).floats)
        one_off = pc.add(one_off, _penalties(gb_to, target, lasts, region))
    return pc.subtract(before_usd, after_usd), pc.subtract(before_kg, after_kg), one_off, lasts


def net_usd(usd: Any, one_off: Any, lasts: Any, horizon_days: float) -> pa.Array:
    """``core.net_usd`` per row: ``months × usd − one_off``, months the horizon (capped at each row's ``lasts``,
    a float column, or None for the whole horizon; a null row is the whole horizon too) in 30-day months."""
    usd, one_off = one_chunk(usd), one_chunk(one_off)
    whole = f64(horizon_days / DAYS_PER_MONTH)  # Python's division, as core's (an int horizon: int / int)
    if lasts is None:
        return pc.subtract(pc.multiply(whole, usd), one_off)
    days = _not_below_zero(_numbers(lasts).floats)
    # min(horizon, days) is ``days if days < horizon else horizon``; then / 30
    months_ = pc.fill_null(pc.if_else(pc.less(days, f64(horizon_days)), pc.divide(days, _DAYS_PER_MONTH), whole), whole)
    return pc.subtract(pc.multiply(months_, usd), one_off)


# --- Notes: what core's list functions return beside the columns ---------------------------------------------

@functools.cache
def conversions_notes(storage_class: str, region: str, source: str = "delete", objects_in: int = 1, objects_out: int = 1,
                      output_class: str = "STANDARD", carbon: CarbonMethod = CCF) -> tuple[str, ...]:
    """The notes ``core.conversions`` returns for sources in ``storage_class`` (core's function on no rows)."""
    return core.conversions([], [], storage_class, region, [], source, objects_in, objects_out, output_class, carbon=carbon)[4]


@functools.cache
def class_changes_notes(from_class: str, to_class: str, region: str, expires: bool = False, objects: int = 1, via: str = "copy",
                        carbon: CarbonMethod = CCF) -> tuple[str, ...]:
    """The notes ``core.class_changes`` returns for ``from_class`` → ``to_class`` (core's function on no rows;
    ``expires``: whether a days-to-expiry column is given)."""
    return core.class_changes([], from_class, to_class, region, [], [] if expires else None, objects, via, carbon)[4]
