"""The Arrow-compute pricing (``economics.arrays``) gives, bit for bit, the floats of ``economics.core``'s list functions.

Each property builds a batch of rows of mixed storage classes, prices it with one ``arrays`` call, and
prices the same rows with ``core``'s function once per class (the rows of that class, in order), then
compares every element by ``float.hex``: not approximately, exactly. The batches cover every class of the
model, regions with and without volume bands (and one the model lacks), every carbon method's kind, sizes
from 0 to past the last volume band and past 2**53, one and many objects, ages unknown, negative, zero
and large, and every source, via and expiry. A fresh interpreter checks that none of it imports pandas.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any, Callable, Sequence

import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chalicelib.economics import arrays, core
from chalicelib.economics.figures import CCF, CarbonMethod, class_names, rates

ROOT = Path(__file__).resolve().parents[1]
CLASSES = class_names()
#: us-east-1 has STANDARD's and INTELLIGENT_TIERING's volume bands; the others one price; xx-nowhere-1 falls back
REGIONS = ["us-east-1", "eu-west-1", "ap-southeast-2", "sa-east-1", "xx-nowhere-1"]
CARBON = [CCF, CarbonMethod(grid="electricity_maps_2025", pue="aws_2025"), CarbonMethod(grid="gsf_2023"),
          CarbonMethod(archive_multiplier=2.0), CarbonMethod(grid="electricity_maps_2025", archive_multiplier=0.0)]
TiB, PiB = 2**40, 2**50
#: sizes on every edge: the 128 KiB minimum, the 50 TB and 500 TB band bounds (51,200 GB, 512,000 GB), 10 PB, 2**53
SIZES = [0, 1, 1023, 128 * 1024 - 1, 128 * 1024, 128 * 1024 + 1, 2**30, 50 * TiB, 50 * TiB + 1, 500 * TiB, 500 * TiB + 1,
         10 * PiB, 2**53 - 1, 2**53, 2**53 + 1, 2**60 + 12345, 2**63 - 1]
AGES = [-30.0, -0.0, 0.0, 29.9, 30.0, 89.0, 90.0, 179.5, 180.0, 10_000.0]
OBJECTS = [0, 1, 2, 3, 7, 1_000, 1_000_000]

FEW = settings(max_examples=30, deadline=None)

sizes_st = st.one_of(st.sampled_from(SIZES), st.integers(0, 2**63 - 1), st.integers(0, 2**45))
ages_st = st.one_of(st.none(), st.sampled_from(AGES), st.floats(-1e4, 1e6, allow_nan=False))
row_st = st.tuples(sizes_st, st.sampled_from(CLASSES), ages_st)
rows_st = st.lists(row_st, min_size=1, max_size=40)


# --- Helpers -------------------------------------------------------------------------------------------------

def _hex(value: Any) -> str | None:
    return None if value is None else float(value).hex()


def _same(got: Any, expected: Sequence[Any]) -> None:
    """Every element of the Arrow array ``got`` is, bit for bit, ``expected``'s."""
    values = got.to_pylist()
    assert len(values) == len(expected)
    for i, (g, e) in enumerate(zip(values, expected, strict=True)):
        assert _hex(g) == _hex(e), (i, g, e)


def _by_class(classes: Sequence[str], price: Callable[..., Sequence[Sequence[Any]]], *columns: Sequence[Any]) -> list[list[Any]]:
    """``price(cls, *columns of cls's rows)`` for each class, its output columns put back in row order."""
    out: list[list[Any]] | None = None
    groups: dict[str, list[int]] = {}
    for i, cls in enumerate(classes):
        groups.setdefault(cls, []).append(i)
    for cls, rows in groups.items():
        results = price(cls, *[[column[i] for i in rows] for column in columns])
        if out is None:
            out = [[None] * len(classes) for _ in results]
        for column_out, result in zip(out, results, strict=True):
            for i, value in zip(rows, result, strict=True):
                column_out[i] = value
    assert out is not None
    return out


def _ints(values: Sequence[int]) -> pa.Array:
    return pa.array(values, pa.int64())


def _floats(values: Sequence[float | None]) -> pa.Array:
    return pa.array(values, pa.float64())


def _class_column(classes: Sequence[str], dictionary: bool) -> pa.Array:
    column = pa.array(classes, pa.string())
    return column.dictionary_encode() if dictionary else column


def _sizes(sizes: Sequence[int], as_floats: bool) -> tuple[pa.Array, list[Any]]:
    """The sizes as an int64 or float64 column, and what ``core`` is given for them (ints, or the floats)."""
    if as_floats:
        column = _floats([float(s) for s in sizes])
        return column, column.to_pylist()
    return _ints(sizes), list(sizes)


# --- Properties ----------------------------------------------------------------------------------------------

@FEW
@given(rows_st, st.sampled_from(REGIONS), st.sampled_from(OBJECTS), st.sampled_from(CARBON), st.booleans(), st.booleans())
def test_months_is_core_months_bit_for_bit(rows, region, objects, carbon, as_floats, dictionary):
    sizes, classes, _ = zip(*rows, strict=True)
    column, given_sizes = _sizes(sizes, as_floats)
    got = arrays.months(column, _class_column(classes, dictionary), region, objects, carbon)
    expected = _by_class(classes, lambda cls, s: core.months(s, cls, region, objects, carbon)[:4], given_sizes)
    for g, e in zip(got, expected, strict=True):
        _same(g, e)


@FEW
@given(rows_st, st.sampled_from(REGIONS), st.sampled_from(OBJECTS), st.booleans())
def test_penalties_are_core_penalties_bit_for_bit(rows, region, objects, as_floats):
    sizes, classes, ages = zip(*rows, strict=True)
    column, given_sizes = _sizes(sizes, as_floats)
    got = arrays.penalties(column, _class_column(classes, False), _floats(ages), region, objects)
    expected = _by_class(classes, lambda cls, s, a: [core.penalties(s, cls, a, region, objects)], given_sizes, ages)
    _same(got, expected[0])


@FEW
@given(st.lists(sizes_st, min_size=1, max_size=40), st.sampled_from(REGIONS), st.sampled_from([1, 3, 1_000]),
       st.sampled_from([None, 1024, 3008]), st.sampled_from([None, "arm64", "x86_64"]), st.sampled_from([None, 25, 12.5, 100]),
       st.sampled_from(CARBON), st.booleans())
def test_lambda_runs_are_core_lambda_runs_bit_for_bit(sizes, region, invocations, memory_mb, arch, read, carbon, as_floats):
    column, given_sizes = _sizes(sizes, as_floats)
    got = arrays.lambda_runs(column, region, invocations, memory_mb, arch, read, carbon)
    expected = core.lambda_runs(given_sizes, region, invocations, memory_mb, arch, read, carbon)
    for g, e in zip(got, expected, strict=True):
        _same(g, e)


@FEW
@given(rows_st, st.lists(st.sampled_from([0.0, 0.1, 0.2, 0.37, 1.0, 3.0]), min_size=40, max_size=40), st.sampled_from(REGIONS),
       st.sampled_from(["delete", "keep", *(f"storage_class:{c}" for c in CLASSES)]), st.sampled_from(OBJECTS),
       st.sampled_from([1, 10, 100_000]), st.sampled_from(CLASSES), st.sampled_from([None, 5]), st.sampled_from(CARBON),
       st.booleans())
def test_conversions_are_core_conversions_bit_for_bit(rows, ratios, region, source, objects_in, objects_out, output_class,
                                                      invocations, carbon, dictionary):
    sizes, classes, ages = zip(*rows, strict=True)
    sizes_out = [s * r for s, r in zip(sizes, ratios, strict=False)]  # floats, as the planner's size × ratio
    got = arrays.conversions(_ints(sizes), _floats(sizes_out), _class_column(classes, dictionary), region, _floats(ages), source,
                             objects_in, objects_out, output_class, invocations, carbon=carbon)
    expected = _by_class(classes, lambda cls, s, o, a: core.conversions(s, o, cls, region, a, source, objects_in, objects_out,
                                                                       output_class, invocations, carbon=carbon)[:4],
                         sizes, sizes_out, ages)
    for g, e in zip(got, expected, strict=True):
        _same(g, e)


@FEW
@given(rows_st, st.sampled_from(REGIONS), st.sampled_from(OBJECTS), st.sampled_from(CARBON), st.booleans())
def test_deletions_are_core_deletions_bit_for_bit(rows, region, objects, carbon, as_floats):
    sizes, classes, ages = zip(*rows, strict=True)
    column, given_sizes = _sizes(sizes, as_floats)
    got = arrays.deletions(column, _class_column(classes, True), region, _floats(ages), objects, carbon)
    expected = _by_class(classes, lambda cls, s, a: core.deletions(s, cls, region, a, objects, carbon)[:3], given_sizes, ages)
    for g, e in zip(got, expected, strict=True):
        _same(g, e)


@FEW
@given(rows_st, st.lists(st.one_of(st.sampled_from([-5.0, -0.0, 0.0, 29.0, 30.0, 90.0, 365.0]), st.floats(-1e3, 1e5)),
                         min_size=40, max_size=40),
       st.sampled_from(CLASSES), st.sampled_from(REGIONS), st.booleans(), st.sampled_from(OBJECTS), st.sampled_from(["copy", "transition"]),
       st.sampled_from(CARBON), st.booleans())
def test_class_changes_are_core_class_changes_bit_for_bit(rows, expiries, to_class, region, expires, objects, via, carbon, as_floats):
    sizes, classes, ages = zip(*rows, strict=True)
    expiries = expiries[:len(rows)]
    column, given_sizes = _sizes(sizes, as_floats)

    def arrow() -> tuple[Any, ...]:
        return arrays.class_changes(column, _class_column(classes, False), to_class, region, _floats(ages),
                                    _floats(expiries) if expires else None, objects, via, carbon)

    def listed(cls: str, s: list[Any], a: list[Any], e: list[float]) -> list[Any]:
        usd, kg, one_off, lasts, _ = core.class_changes(s, cls, to_class, region, a, e if expires else None, objects, via, carbon)
        return [usd, kg, one_off, lasts if lasts is not None else [None] * len(s)]

    if via == "transition" and to_class not in rates(region).transition:  # Lifecycle can't transition into STANDARD
        with pytest.raises(KeyError):
            core.class_changes(given_sizes, classes[0], to_class, region, ages, via=via)
        with pytest.raises(KeyError):
            arrow()
        return
    got = arrow()
    expected = _by_class(classes, listed, given_sizes, ages, expiries)
    for g, e in zip(got[:3], expected[:3], strict=True):
        _same(g, e)
    if expires:
        _same(got[3], expected[3])
    else:
        assert got[3] is None


@FEW
@given(st.lists(st.tuples(st.floats(-1e6, 1e6), st.floats(-1e6, 1e6),
                          st.one_of(st.none(), st.sampled_from([-1.0, -0.0, 0.0, 30.0, 364.0, 365.0, 1e9]), st.floats(-1e3, 1e4))),
                min_size=1, max_size=40),
       st.sampled_from([0, 1, 30, 365, 365.25, 3650]), st.booleans())
def test_net_usd_is_core_net_usd_bit_for_bit(rows, horizon, whole):
    usd, one_off, lasts = (list(c) for c in zip(*rows, strict=True))
    if whole:
        lasts = [None] * len(rows)
    got = arrays.net_usd(_floats(usd), _floats(one_off), None if whole else _floats(lasts), horizon)
    _same(got, [core.net_usd(u, o, d, horizon) for u, o, d in zip(usd, one_off, lasts, strict=True)])


# --- Examples that once needed care --------------------------------------------------------------------------

def test_integer_sizes_past_2_53_divide_as_python_does():
    """Python's ``int / int`` rounds once: (2**53 + 1) / 3 is 3002399751580331 exactly, a float division of the
    cast 2**53 gives 3002399751580330.5. So a row's mean object size must come from Python for such sizes."""
    sizes = [2**53 + 1, 2**60 + 3, 5]
    assert (2**53 + 1) / 3 != float(2**53 + 1) / 3
    _same(arrays.months(_ints(sizes), pa.array(["STANDARD"] * 3), objects=3)[2], core.months(sizes, "STANDARD", objects=3)[2])
    _same(arrays.lambda_runs(_ints(sizes), "us-east-1", 1)[0], core.lambda_runs(sizes, "us-east-1", 1)[0])


def test_volume_bands_of_a_mixed_batch_are_priced_by_core():
    """10 PB in STANDARD and INTELLIGENT_TIERING in us-east-1 crosses both band bounds: those rows are ``_price``'s."""
    sizes = [10 * PiB, 1, 10 * PiB, 10 * PiB, 500 * TiB + 1]
    classes = ["STANDARD", "GLACIER", "INTELLIGENT_TIERING", "DEEP_ARCHIVE", "STANDARD"]
    expected = _by_class(classes, lambda cls, s: core.months(s, cls, "us-east-1")[:1], sizes)
    _same(arrays.months(_ints(sizes), pa.array(classes))[0], expected[0])


def test_one_class_batches_and_chunked_columns():
    sizes = pa.chunked_array([[1, 2**30], [], [5 * TiB]], pa.int64())
    got = arrays.deletions(sizes, pa.chunked_array([["GLACIER_IR"] * 2, [], ["GLACIER_IR"]]), "eu-west-1",
                           pa.chunked_array([[None, 10.0], [], [100.0]], pa.float64()))
    expected = core.deletions([1, 2**30, 5 * TiB], "GLACIER_IR", "eu-west-1", [None, 10.0, 100.0])
    for g, e in zip(got, expected[:3], strict=True):
        _same(g, e)


def test_empty_batch():
    empty = pa.array([], pa.int64())
    assert [len(c) for c in arrays.months(empty, pa.array([], pa.string()))] == [0, 0, 0, 0]
    assert len(arrays.class_changes(empty, pa.array([], pa.string()), "GLACIER_IR", "us-east-1", pa.array([], pa.float64()))[0]) == 0


def test_unknown_or_missing_classes_are_refused_as_core_does():
    with pytest.raises(ValueError, match="unknown storage class 'REDUCED_REDUNDANCY'"):
        arrays.months(_ints([1, 2]), pa.array(["STANDARD", "REDUCED_REDUNDANCY"]))
    with pytest.raises(ValueError, match="unknown storage class"):
        core.months([1], "REDUCED_REDUNDANCY")
    with pytest.raises(ValueError, match="no storage class"):
        arrays.months(_ints([1, 2]), pa.array(["STANDARD", None]))
    with pytest.raises(ValueError, match="1 storage classes for 2 rows"):
        arrays.months(_ints([1, 2]), pa.array(["STANDARD"]))
    with pytest.raises(ValueError, match="unknown storage class 'NOPE'"):
        arrays.class_changes(_ints([1]), pa.array(["STANDARD"]), "NOPE", "us-east-1", _floats([None]))


def test_dictionary_entries_no_row_uses_are_ignored():
    column = pa.DictionaryArray.from_arrays(pa.array([1, 1, 2], pa.int32()), pa.array(["NOPE", "GLACIER", "STANDARD"]))
    _same(arrays.months(_ints([7, 8, 9]), column)[0], [*core.months([7, 8], "GLACIER")[0], *core.months([9], "STANDARD")[0]])


@pytest.mark.parametrize("region", ["us-east-1", "eu-west-1", "xx-nowhere-1"])
def test_notes_are_core_notes(region):
    carbon = CarbonMethod(archive_multiplier=2.0)
    for cls in CLASSES:
        for source in ("keep", "delete", "storage_class:GLACIER"):
            assert arrays.conversions_notes(cls, region, source) == core.conversions([1], [1], cls, region, [None], source)[4]
        for to_class in CLASSES:
            assert (arrays.class_changes_notes(cls, to_class, region, expires=True, carbon=carbon)
                    == core.class_changes([1], cls, to_class, region, [None], [10.0], carbon=carbon)[4])


def test_pricing_a_batch_imports_no_pandas():
    """pyarrow 26 imports pandas for ``pa.array``, ``pa.scalar`` and Python numbers given to compute functions;
    the Lambda's 256 MiB can't carry it. A fresh interpreter prices a realistic batch with every function."""
    script = r"""
import sys
from array import array
import pyarrow as pa
import pyarrow.compute as pc
from chalicelib.economics import arrays
from chalicelib.economics.figures import CarbonMethod, class_names

assert 'pandas' not in sys.modules
n = 65_536
names = list(class_names())
values = array('q', [(i * 7919) % (2**34) for i in range(n)])
values[5] = 2**53 + 1
sizes = pa.Array.from_buffers(pa.int64(), n, [None, pa.py_buffer(values)])
ages = pa.Array.from_buffers(pa.float64(), n, [None, pa.py_buffer(array('d', [(i % 400) - 20.0 for i in range(n)]))])
offsets = array('i', [0])
for name in names:
    offsets.append(offsets[-1] + len(name))
raw = pa.Array.from_buffers(pa.string(), len(names), [None, pa.py_buffer(offsets), pa.py_buffer(''.join(names).encode())])
classes = pc.take(raw, pa.Array.from_buffers(pa.int32(), n, [None, pa.py_buffer(array('i', [i % len(names) for i in range(n)]))]))
big = pa.Array.from_buffers(pa.int64(), 2, [None, pa.py_buffer(array('q', [10 * 2**50, 1]))])
two = pc.take(raw, pa.Array.from_buffers(pa.int32(), 2, [None, pa.py_buffer(array('i', [0, 3]))]))
carbon = CarbonMethod(grid='electricity_maps_2025', pue='aws_2025', archive_multiplier=2.0)
arrays.months(big, two, 'us-east-1', 3)
arrays.months(sizes, classes, 'us-east-1', 1, carbon)
arrays.penalties(sizes, classes, ages, 'eu-west-1', 2)
arrays.lambda_runs(sizes, 'us-east-1', 10)
arrays.deletions(sizes, classes, 'us-east-1', ages)
for source in ('delete', 'keep', 'storage_class:GLACIER_IR'):
    arrays.conversions(sizes, sizes, classes, 'us-east-1', ages, source, 3, 1)
usd, kg, one_off, lasts = arrays.class_changes(sizes, classes, 'GLACIER_IR', 'us-east-1', ages, ages, 2, 'copy')
arrays.class_changes(sizes, classes, 'DEEP_ARCHIVE', 'eu-west-1', ages, None, 1, 'transition')
arrays.net_usd(usd, one_off, lasts, 365)
arrays.net_usd(usd, one_off, None, 365)
arrays.class_changes_notes('STANDARD', 'ONEZONE_IA', 'us-east-1')
usd.to_pylist()
print('pandas' in sys.modules, len(usd))
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=ROOT,
                          env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"}, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["False", "65536"]
