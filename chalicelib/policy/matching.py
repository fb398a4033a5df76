"""Which policies match which objects of a batch held as Arrow columns: ``PolicySet.match_batch`` in Arrow compute.

Planning a million listed objects one ``ObjectRef`` at a time costs microseconds an object in Python; a batch's
keys and sizes as Arrow columns are tested a filter at a time by Arrow's kernels (``starts_with``,
``ends_with``, comparisons, ``indices_nonzero``) in nanoseconds an object. The answer is exactly what
``match_batch`` says for the same objects as refs, row positions and matched prefixes included.

Two corners go through Python, a row at a time, because only Python gives Python's answer:

- The suffix test lower-cases the key with Python's ``str.lower``. For an ASCII key that is Arrow's
  ``ascii_lower`` (both change A-Z and nothing else); a key with any other character (Arrow's ``utf8_lower``
  differs from Python on 'İ', final sigma, …) is lower-cased by ``str.lower`` itself.
- A tags filter tests each row left by the other filters against the row's tags (a Python mapping).

No NumPy (the Lambda package has none), and nothing that makes pyarrow import pandas (tens of MiB): no
``pa.array`` of a Python list, no ``pa.scalar``, no Python number given to a compute function; numbers and
short string arrays are built from buffers.

Example:
    >>> import pyarrow as pa
    >>> from chalicelib.policy import PolicySet
    >>> ps = PolicySet.from_dicts([{"name": "csv", "bucket": "lake", "filters": {"prefix": ["raw/", "raw/2026/"],
    ...                             "suffix": ".CSV", "size": {"min": 10}}, "actions": [{"convert": {}}]}])
    >>> keys = pa.array(["raw/a.csv", "raw/a.json", "raw/2026/b.Csv", "_leanlake/raw/c.csv", "raw/d.csv"])
    >>> [(lp.policy.name, rows.to_pylist(), prefixes.to_pylist())
    ...  for lp, rows, prefixes in ps.match_columns("lake", keys, pa.array([10, 10, None, 10, 9]))]
    [('csv', [0, 2], ['raw/', 'raw/2026/'])]
"""

from __future__ import annotations

import functools
from array import array
from itertools import compress
from typing import TYPE_CHECKING, Any, Mapping, Sequence, cast

import pyarrow as pa
import pyarrow.compute as pc

from chalicelib.columns import i32, i64, one_chunk, same_int32s, strings
from chalicelib.refs import RESERVED_PREFIX, ObjectRef, reaches_reserved

if TYPE_CHECKING:
    from chalicelib.policy.policyset import _Compiled
    from chalicelib.policy.problems import LoadedPolicy

#: One policy's matches in a batch: the policy; the positions of the rows it matches, ascending (an Arrow
#: ``int64`` array); and the prefix each matched through (an Arrow ``dictionary<int32, string>`` array, see
#: ``match_columns``).
ColumnMatch = tuple["LoadedPolicy", Any, Any]

_INT64_MIN, _INT64_MAX = -(1 << 63), (1 << 63) - 1


def match_columns(compiled: Sequence[_Compiled], bucket: str, keys: Any, sizes: Any,
                  tags: Sequence[Mapping[str, str] | None] | None = None) -> list[ColumnMatch]:
    """For each of ``compiled`` (a bucket's policies, see ``PolicySet.match_columns``) that matches any row, in
    their order: ``(policy, rows, prefixes)``, what ``match_batch`` returns for the same objects as refs.

    ``keys``: an Arrow string or large_string array (or ChunkedArray) without nulls; ``sizes``: an Arrow
    integer array as long, null where the size is unknown (which counts as a match); ``tags``: None when
    no tags were read, else one mapping (or None: not read) per row. ``rows`` is an ``int64`` array;
    ``prefixes`` a ``DictionaryArray`` whose dictionary is the policy's distinct prefixes in the order
    written (``[""]`` with no prefix filter; none UTF-8 can't encode) and whose ``int32`` indices give, per
    matched row, the longest of them the key starts with: ``prefixes.to_pylist()`` is ``match_batch``'s
    list, and a caller can work a prefix at a time (``{rel_dir}``) through ``prefixes.dictionary``. Nothing
    under ``_leanlake/`` matches; a tags filter meeting a row whose tags were not read raises
    ``match_batch``'s ValueError for that row.

    Each policy's prefixes pick its rows from the whole batch (one ``starts_with`` per distinct prefix, shared
    by the policies); its other filters then test only those rows, cheapest first (sizes, suffixes, tags).
    """
    keys, sizes = one_chunk(keys), one_chunk(sizes)
    if not (pa.types.is_string(keys.type) or pa.types.is_large_string(keys.type)):
        raise TypeError(f"keys must be an Arrow string array, got {keys.type}")
    if keys.null_count:
        raise ValueError("keys must not be null")
    if len(sizes) != len(keys) or (tags is not None and len(tags) != len(keys)):
        raise ValueError(f"{len(keys)} keys but {len(sizes)} sizes" + ("" if tags is None else f" and {len(tags)} tags"))
    if not len(keys):
        return []
    if sizes.type != pa.int64():
        sizes = pc.cast(sizes, pa.int64())
    batch = _Batch(keys, sizes)
    found: list[ColumnMatch] = []
    for c in compiled:
        taken = batch.taken_in(c.prefixes)
        if not taken.true_count:  # a popcount: a batch under other prefixes costs no index search
            continue
        rows = pc.indices_nonzero(taken)
        if c.size_min is not None or c.size_max is not None:
            rows = rows.filter(batch.size_within(rows, c.size_min, c.size_max))
        if c.suffixes and len(rows):
            rows = rows.filter(batch.any_suffix(rows, c.suffixes))
        if c.tags and len(rows):
            rows = _tags_hold(c.tags, rows, bucket, keys, tags)
        if len(rows):
            rows = pc.cast(rows, pa.int64())
            found.append((c.loaded, rows, batch.matched_prefixes(c.prefixes, rows)))
    return found


class _Batch:
    """One batch's columns, and the whole-batch masks policies share computed once (``raw/`` for three
    policies is one ``starts_with``): per prefix, and which keys are not under ``_leanlake/``."""

    def __init__(self, keys: Any, sizes: Any) -> None:
        self.keys, self.sizes = keys, sizes
        self._starts: dict[str, Any] = {}
        self._eligible: Any = None

    def starts(self, prefix: str) -> Any:
        """Which keys start with ``prefix`` (a boolean array); byte and character prefixes agree in UTF-8."""
        mask = self._starts.get(prefix)
        if mask is None:
            mask = self._starts[prefix] = _test(pc.starts_with, self.keys, prefix)
        return mask

    def eligible(self) -> Any:
        """Which keys are not under ``RESERVED_PREFIX``: nothing there ever matches."""
        if self._eligible is None:
            self._eligible = pc.invert(self.starts(RESERVED_PREFIX))
        return self._eligible

    def taken_in(self, prefixes: tuple[str, ...]) -> Any:
        """Which keys start with any of ``prefixes`` (every key with none) and are not under ``_leanlake/``.
        A key under ``_leanlake/`` can only start with a prefix that reaches it (``""``, ``"_"``, …): only
        those need the reserved test."""
        if not prefixes:
            return self.eligible()
        mask = functools.reduce(pc.or_, (self.starts(p) for p in prefixes))
        return pc.and_(mask, self.eligible()) if any(map(reaches_reserved, prefixes)) else mask

    def size_within(self, rows: Any, low: int | None, high: int | None) -> Any:
        """Which of ``rows`` have an unknown size or one within ``low``..``high`` (inclusive, either None for
        no bound): int64 comparisons against bounds built from buffers (a Python int given to a compute
        function imports pandas), bounds beyond int64's range taken for what they mean."""
        sizes = pc.take(self.sizes, rows)
        if (low is not None and low > _INT64_MAX) or (high is not None and high < _INT64_MIN):
            return pc.is_null(sizes)  # no int64 is within: only the unknown sizes match
        tests = []
        if low is not None and low > _INT64_MIN:  # a bound at or beyond int64's range bounds nothing
            tests.append(pc.greater_equal(sizes, i64(low)))
        if high is not None and high < _INT64_MAX:
            tests.append(pc.less_equal(sizes, i64(high)))
        within = functools.reduce(pc.and_kleene, tests) if tests else pc.is_valid(sizes)  # null where a size is unknown
        # unknown sizes match: the tests are null there, and null OR true is true in Kleene logic
        return pc.or_kleene(pc.is_null(sizes), within) if sizes.null_count else within

    def any_suffix(self, rows: Any, suffixes: tuple[str, ...]) -> Any:
        """Which of ``rows``' keys, lower-cased as Python does, end with any of ``suffixes`` (already
        lower-cased, as ``_Compiled`` keeps them): ``key.lower().endswith(suffixes)``."""
        lowered = _python_lower(pc.take(self.keys, rows))
        return functools.reduce(pc.or_, (_test(pc.ends_with, lowered, s) for s in suffixes))

    def matched_prefixes(self, prefixes: tuple[str, ...], rows: Any) -> Any:
        """Per row of ``rows``, the longest of ``prefixes`` its key starts with (``""`` with none), as a
        ``DictionaryArray`` over the distinct prefixes (but those no key can start with, see ``_in_utf8``):
        ``max(hits, key=len)`` of ``matched_prefix``."""
        distinct = tuple(p for p in dict.fromkeys(prefixes) if _in_utf8(p)) if prefixes else ("",)
        by_length = sorted(range(len(distinct)), key=lambda n: len(distinct[n]))
        # Every row starts with one prefix at least: begin with the shortest, then let each longer one that
        # holds take over; two different prefixes of the same length never both start one key.
        indices = same_int32s(by_length[0], len(rows))
        for n in by_length[1:]:
            indices = pc.if_else(pc.take(self.starts(distinct[n]), rows), i32(n), indices)
        return pa.DictionaryArray.from_arrays(indices, strings(distinct).cast(pa.string()))


def _test(kernel: Any, keys: Any, pattern: str) -> Any:
    """``kernel(keys, pattern=pattern)``, or all false for a pattern that is in no key (see ``_in_utf8``)."""
    return kernel(keys, pattern=pattern) if _in_utf8(pattern) else pc.is_null(keys)  # keys have no nulls


def _in_utf8(pattern: str) -> bool:
    """Whether UTF-8 can encode ``pattern``: not when it holds a lone surrogate (YAML's ``"\\ud800"`` makes
    one), which no key holds (Arrow's keys are UTF-8) and Arrow can't take, where ``str.startswith`` says False."""
    try:
        pattern.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _python_lower(keys: Any) -> Any:
    """``keys`` through Python's ``str.lower``: ``ascii_lower`` for ASCII keys (the same A-Z to a-z and nothing
    else), ``str.lower`` itself for the others, where Arrow's Unicode case mapping differs ('İ', final sigma)."""
    lowered = pc.ascii_lower(keys)
    data = keys.buffers()[2]
    if data is None or data.to_pybytes().isascii():  # every byte ASCII (a quick test): every key is
        return lowered
    other = pc.invert(pc.string_is_ascii(keys))
    if not pc.any(other).as_py():
        return lowered
    python = [key.lower() for key in keys.filter(other).to_pylist()]
    return pc.replace_with_mask(lowered, other, strings(python).cast(keys.type))


def _tags_hold(wanted: dict[str, str], rows: Any, bucket: str, keys: Any, tags: Sequence[Mapping[str, str] | None] | None) -> Any:
    """Those of ``rows`` whose tags carry every one of ``wanted``, in order; the ValueError of
    ``policyset._tags_hold`` (naming the object's URI) at the first whose tags were not read."""
    positions = rows.to_pylist()
    have = [None] * len(positions) if tags is None else [tags[row] for row in positions]
    if None in have:
        row = positions[have.index(None)]
        raise ValueError(f"{ObjectRef(bucket, keys[row].as_py()).uri}: tags are needed to match but were not read")
    read = cast("list[Mapping[str, str]]", have)
    for k, v in wanted.items():  # a tag at a time, each pass over the rows the ones before kept
        holds = [them.get(k) == v for them in read]
        positions, read = list(compress(positions, holds)), list(compress(read, holds))
    kept = array("q", positions)
    return pa.Array.from_buffers(pa.int64(), len(kept), [None, pa.py_buffer(kept)])
