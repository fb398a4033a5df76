"""Matching a batch held as Arrow columns says exactly what matching the same objects as refs says.

``PolicySet.match_columns`` tests a batch's keys and sizes with Arrow kernels; ``match_batch`` tests
``ObjectRef``s in Python. Random policy sets (nested prefixes, prefixes reaching ``_leanlake/``, suffixes
in mixed case and non-ASCII, size bounds, tags) meet random keys (ASCII and characters that Python and
Arrow lower-case differently, keys under ``_leanlake/``) and sizes (unknown, on the bounds), and both must
give the same policies, rows and prefixes, or the same ValueError.
"""

from __future__ import annotations

import random
import subprocess
import sys
from pathlib import Path
from types import MappingProxyType
from typing import Any, Iterator, Mapping

import pyarrow as pa
import pyarrow.compute as pc
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chalicelib.policy import PolicySet
from chalicelib.refs import ObjectRef

BUCKET = "lake"
#: Prefixes that nest ("raw/" and "raw/2026/"), take in everything ("") or reach _leanlake/ ("_", "_leanlake").
PREFIXES = ("", "_", "_lean", "_leanlake", "r", "raw/", "raw/2026/", "logs/", "İ", "i\u0307", "Σ", "%2", "+")
#: Prefix lists where a key can start with several: the longest is the matched one.
NESTED = (["raw/", "raw/2026/"], ["raw/2026/", "r", "logs/"], ["", "raw/"], ["_", "_lean", "_leanlake", "raw/"], ["i\u0307", "İ", ""])
#: Suffixes in mixed case, and some whose lower case differs between Python and Arrow ('İ', final sigma, Kelvin
#: sign, a letter newer than Python 3.11's Unicode tables).
SUFFIXES = (".csv", ".CSV", ".Csv", ".gz", ".json.gz", "", "x", "İ", "i\u0307", "i", "ς", "σ", "Σ", "ß", "ẞ", "ss", "k", "\u212a",
            "\ua7cb", "%", "+", ".TXT")
#: Pieces of keys: case variants, the characters above, separators, URL-encoding-looking characters.
PIECES = ("raw/", "raw/2026/", "logs/", "_leanlake/", "_leanlake", "_", "a", "A", "r", "R", ".csv", ".CSV", ".cSv", ".gz", ".json",
          "/", "İ", "ı", "i\u0307", "\u0307", "ẞ", "ß", "SS", "Σ", "σ", "ς", "ΑΣ", "\u212a", "K", "k", "\ua7cb", "%", "%2B", "+", "x", "X",
          ".TXT", " ")
TAGS = ({}, {"keep": "yes"}, {"keep": "no"}, {"keep": "yes", "team": "ml"})
SIZES = (0, 1, 9, 10, 11, 99, 100, 101, 1024)


def _filters(draw: Any) -> dict[str, Any]:
    filters: dict[str, Any] = {}
    if draw(st.booleans()):
        filters["prefix"] = draw(st.one_of(st.lists(st.sampled_from(PREFIXES), min_size=1, max_size=4), st.sampled_from(NESTED)))
    if draw(st.integers(0, 2)) == 0:
        filters["suffix"] = draw(st.lists(st.sampled_from(SUFFIXES), min_size=1, max_size=4))
    if draw(st.integers(0, 2)) == 0:
        low, high = sorted(draw(st.lists(st.sampled_from(SIZES), min_size=2, max_size=2)))
        filters["size"] = draw(st.sampled_from([{"min": low}, {"max": high}, {"min": low, "max": high}]))
    if draw(st.integers(0, 3)) == 0:
        filters["tags"] = draw(st.sampled_from(TAGS[1:]))
    return filters


@st.composite
def policy_sets(draw: Any) -> PolicySet:
    count = draw(st.integers(1, 6))
    return PolicySet.from_dicts([{"name": f"p{n}", "bucket": draw(st.sampled_from([BUCKET, BUCKET, [BUCKET, "other"], "other"])),
                                  "filters": _filters(draw), "actions": [{"expire": {"days": 30}}]} for n in range(count)])


RESERVED = ("_leanlake/", "_leanlake/audit/")
#: Keys' starts: any prefix, the nested ones more often (so that several prefixes of a policy start a key).
STARTS = PREFIXES + RESERVED + tuple(p for group in NESTED for p in group)
middles = st.lists(st.sampled_from(PIECES), max_size=3).map("".join)
keys_strategy = st.one_of(
    st.builds(lambda p, m, s: p + m + s, st.sampled_from(STARTS), middles, st.sampled_from(SUFFIXES)),
    st.lists(st.sampled_from(PIECES), max_size=5).map("".join),
    st.builds(str.__add__, st.sampled_from(PREFIXES + RESERVED), st.text(max_size=6)))
#: Tags mostly read: a tags filter meeting one row whose tags were not read raises, which hides every other answer.
tags_strategy = st.sampled_from(TAGS * 8 + (None,))
rows_strategy = st.lists(st.tuples(keys_strategy, st.one_of(st.none(), st.sampled_from(SIZES), st.integers(0, 2**40)), tags_strategy),
                         max_size=40)


def _arrays(keys: list[str], sizes: list[int | None], large: bool = False, chunks: int = 1) -> tuple[Any, Any]:
    """The columns a batch arrives as (here from lists; the planner's come from a listing or an inventory):
    slices of longer arrays (their buffers start with a row that is not theirs, non-ASCII), or ChunkedArrays."""
    key_array = pa.array(["ΑΣ.csv.İ"] + keys, pa.large_string() if large else pa.string()).slice(1)
    size_array = pa.array([5] + sizes, pa.int64()).slice(1)
    if chunks > 1 and len(keys) > 1:
        cut = len(keys) // 2
        return (pa.chunked_array([key_array[:cut], key_array[cut:]]), pa.chunked_array([size_array[:cut], size_array[cut:]]))
    return key_array, size_array


def _outcome(call: Any) -> Any:
    """What ``call`` returns, as plain lists, or the ValueError it raises (type and message)."""
    try:
        return [(id(lp), list(rows), list(prefixes)) for lp, rows, prefixes in call()]
    except ValueError as exc:
        return ("ValueError", str(exc))


def _by_columns(policies: PolicySet, keys: list[str], sizes: list[int | None], tags: list[Any] | None,
                large: bool = False, chunks: int = 1) -> Any:
    def call() -> Any:
        found = policies.match_columns(BUCKET, *_arrays(keys, sizes, large, chunks), tags)
        for _, rows, prefixes in found:
            assert rows.type == pa.int64() and pa.types.is_dictionary(prefixes.type) and len(prefixes) == len(rows)
            assert pa.types.is_string(prefixes.dictionary.type) and prefixes.dictionary.null_count == 0
        return [(lp, rows.to_pylist(), prefixes.to_pylist()) for lp, rows, prefixes in found]
    return _outcome(call)


def _by_refs(policies: PolicySet, keys: list[str], sizes: list[int | None], tags: list[Any] | None) -> Any:
    refs = [ObjectRef(BUCKET, k, s, tags=None if tags is None else t) for k, s, t in zip(keys, sizes, tags or keys, strict=True)]
    return _outcome(lambda: policies.match_batch(refs))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(policies=policy_sets(), rows=rows_strategy, tags_read=st.integers(0, 5).map(bool), large=st.booleans(), chunks=st.integers(1, 2))
def test_columns_match_what_refs_match(policies, rows, tags_read, large, chunks):
    keys, sizes, tags = [r[0] for r in rows], [r[1] for r in rows], [r[2] for r in rows] if tags_read else None
    assert _by_columns(policies, keys, sizes, tags, large, chunks) == _by_refs(policies, keys, sizes, tags)


@settings(max_examples=100, deadline=None)
@given(policies=policy_sets(), rows=st.lists(st.tuples(keys_strategy, st.one_of(st.none(), st.sampled_from(SIZES))), max_size=30))
def test_columns_match_what_refs_match_with_every_tag_read(policies, rows):
    """With every row's tags read no ValueError hides a wrong answer: the rows and prefixes are compared."""
    keys, sizes = [r[0] for r in rows], [r[1] for r in rows]
    tags = [TAGS[len(k) % len(TAGS)] for k in keys]
    assert _by_columns(policies, keys, sizes, tags) == _by_refs(policies, keys, sizes, tags)


def test_a_batch_of_thousands_matches_what_refs_match():
    """A batch the size the planner sees: every policy kind at once, on keys mixed as in a lake."""
    rng = random.Random(7)
    every_kind = [{"prefix": ["raw/", "raw/2026/"], "suffix": [".csv", ".json.gz"], "size": {"min": 10, "max": 1024}},
                  {"prefix": NESTED[3], "suffix": ["İ", "ς", "\u212a"]}, {"suffix": [".CSV", "x"]},
                  {"prefix": "logs/", "tags": {"keep": "yes"}}, {"size": {"max": 99}}, {"prefix": ""}]
    policies = PolicySet.from_dicts([{"name": f"p{n}", "bucket": BUCKET, "filters": filters, "actions": [{"expire": {"days": 30}}]}
                                     for n, filters in enumerate(every_kind)])
    keys = [rng.choice(STARTS) + "".join(rng.choices(PIECES, k=3)) + rng.choice(SUFFIXES) for _ in range(5000)]
    sizes = [rng.choice((None,) + SIZES) for _ in keys]
    tags = [rng.choice(TAGS) for _ in keys]
    found = _by_columns(policies, keys, sizes, tags, chunks=2)
    assert found == _by_refs(policies, keys, sizes, tags) and len(found) == 6 and all(len(rows) > 50 for _, rows, _ in found)


def test_python_and_arrow_lower_case_ascii_alike():
    """Why ASCII keys need no Python: ``ascii_lower`` changes exactly what ``str.lower`` changes in ASCII."""
    ascii_chars = [chr(c) for c in range(128)]
    assert pc.ascii_lower(pa.array(ascii_chars)).to_pylist() == [c.lower() for c in ascii_chars]


def _one(filters: dict[str, Any], keys: list[str], sizes: list[int | None] | None = None, tags: list[Any] | None = None) -> Any:
    """``match_columns`` of one policy with ``filters`` on ``keys``: (rows, prefixes, prefixes' dictionary), or None."""
    policies = PolicySet.from_dicts([{"name": "p", "bucket": BUCKET, "filters": filters, "actions": [{"expire": {"days": 30}}]}])
    found = policies.match_columns(BUCKET, *_arrays(keys, sizes or [None] * len(keys)), tags)
    assert _by_columns(policies, keys, sizes or [None] * len(keys), tags) == _by_refs(policies, keys, sizes or [None] * len(keys), tags)
    if not found:
        return None
    ((_, rows, prefixes),) = found
    return rows.to_pylist(), prefixes.to_pylist(), prefixes.dictionary.to_pylist()


def test_the_longest_prefix_is_the_matched_one_and_the_dictionary_is_the_written_prefixes():
    keys = ["raw/a.csv", "raw/2026/b.csv", "logs/c.csv", "misc/d.csv", "raw/2026"]
    assert _one({"prefix": ["raw/2026/", "logs/", "raw/", "raw/"]}, keys) == (
        [0, 1, 2, 4], ["raw/", "raw/2026/", "logs/", "raw/"], ["raw/2026/", "logs/", "raw/"])
    assert _one({"prefix": "raw/"}, keys) == ([0, 1, 4], ["raw/"] * 3, ["raw/"])
    assert _one({"suffix": ".csv"}, keys) == ([0, 1, 2, 3], [""] * 4, [""])
    assert _one({"prefix": ["", "raw/"]}, keys) == ([0, 1, 2, 3, 4], ["raw/", "raw/", "", "", "raw/"], ["", "raw/"])


def test_nothing_under_leanlake_matches_even_a_prefix_that_reaches_it():
    keys = ["_leanlake/audit/x.csv", "_leanlake-old/x.csv", "_leanlakex.csv", "raw/_leanlake/x.csv"]
    for filters in ({}, {"prefix": ""}, {"prefix": ["_", "_leanlake"]}, {"suffix": ".csv"}):
        rows = _one(filters, keys)
        assert rows is not None and 0 not in rows[0]
    assert _one({"prefix": "_leanlake"}, keys) == ([1, 2], ["_leanlake"] * 2, ["_leanlake"])


def test_suffixes_ignore_case_as_python_does_for_keys_arrow_lower_cases_otherwise():
    """'İ' lower-cases to 'i̇' in Python and to 'i' in Arrow, a final 'Σ' to 'ς' and 'σ', the Kelvin sign
    to ASCII 'k' (which ``ascii_lower`` leaves alone): these keys go through ``str.lower``."""
    keys = ["a.CSV", "a.İ", "a.I", "ΑΣ", "a.\u212aEY", "a.KEY", "b.csv"]
    assert _one({"suffix": "i\u0307"}, keys)[0] == [1]
    assert _one({"suffix": "ς"}, keys)[0] == [3]
    assert _one({"suffix": "σ"}, keys) is None
    assert _one({"suffix": [".key", ".Csv"]}, keys)[0] == [0, 4, 5, 6]
    assert _one({"suffix": "\u212aey"}, keys)[0] == [4, 5]  # the suffix is lower-cased by Python too: 'key'


def test_a_pattern_with_a_lone_surrogate_matches_nothing():
    """YAML's "\\ud800" is a lone surrogate: no key holds one (Arrow's keys are UTF-8), nor can Arrow take it."""
    keys = ["raw/a.csv", "raw"]
    assert _one({"prefix": "raw\ud800"}, keys) is None
    assert _one({"prefix": ["raw\ud800", "raw/"]}, keys) == ([0], ["raw/"], ["raw/"])
    assert _one({"suffix": ["\udc00", ".CSV"]}, keys)[0] == [0]


def test_size_bounds_are_inclusive_and_unknown_sizes_match():
    keys = [f"k{i}" for i in range(6)]
    sizes = [9, 10, 11, 100, 101, None]
    assert _one({"size": {"min": 10, "max": 100}}, keys, sizes)[0] == [1, 2, 3, 5]
    assert _one({"size": {"min": 101}}, keys, sizes)[0] == [4, 5]
    assert _one({"size": {"max": 9}}, keys, sizes)[0] == [0, 5]
    assert _one({"size": {"min": 2**70}}, keys, sizes)[0] == [5]  # beyond int64: only the unknown size
    assert _one({"size": {"max": 2**70}}, keys, sizes)[0] == [0, 1, 2, 3, 4, 5]
    assert _one({"size": {"min": 2**63 - 1}}, keys, [2**63 - 1, 2**63 - 2, None, 0, 0, 0])[0] == [0, 2]


def test_a_tags_filter_without_tags_read_names_the_object_as_match_batch_does():
    keys, sizes = ["misc/a", "raw/b", "raw/c"], [1, 2, 3]
    policies = PolicySet.from_dicts([{"name": "t", "bucket": BUCKET, "filters": {"prefix": "raw/", "tags": {"keep": "no"}},
                                      "actions": [{"expire": {"days": 10}}]}])
    for tags in (None, [None, None, {"keep": "no"}], [{}, None, None]):
        with pytest.raises(ValueError, match=r"^s3://lake/raw/b: tags are needed to match but were not read$"):
            policies.match_columns(BUCKET, *_arrays(keys, sizes), tags)
    # rows that no other filter lets through need no tags
    ((_, rows, _),) = policies.match_columns(BUCKET, *_arrays(keys, sizes), [None, {"keep": "yes"}, {"keep": "no"}])
    assert rows.to_pylist() == [2]


def test_tags_may_be_any_mapping():
    class Tags(Mapping[str, str]):
        def __init__(self, **items: str) -> None:
            self._items = items

        def __getitem__(self, key: str) -> str:
            return self._items[key]

        def __iter__(self) -> Iterator[str]:
            return iter(self._items)

        def __len__(self) -> int:
            return len(self._items)

    keys = ["a", "b", "c", "d"]
    tags = [Tags(keep="yes"), Tags(keep="yes", team="ml"), Tags(team="ml"), MappingProxyType({"keep": "yes", "team": "ml"})]
    assert _one({"tags": {"keep": "yes", "team": "ml"}}, keys, tags=tags)[0] == [1, 3]
    assert _one({"tags": {"keep": "yes"}}, keys, tags=tags)[0] == [0, 1, 3]


def test_empty_batches_other_buckets_and_bad_columns():
    policies = PolicySet.from_dicts([{"name": "p", "bucket": BUCKET, "actions": [{"expire": {"days": 30}}]}])
    assert policies.match_columns(BUCKET, *_arrays([], [])) == []
    assert policies.match_columns("elsewhere", *_arrays(["a"], [1])) == []
    with pytest.raises(ValueError, match="must not be null"):
        policies.match_columns(BUCKET, pa.array(["a", None]), pa.array([1, 2]))
    with pytest.raises(ValueError, match="2 keys but 1 sizes"):
        policies.match_columns(BUCKET, pa.array(["a", "b"]), pa.array([1]))
    with pytest.raises(ValueError, match="and 1 tags"):
        policies.match_columns(BUCKET, pa.array(["a", "b"]), pa.array([1, 2]), [{}])
    with pytest.raises(TypeError, match="string array"):
        policies.match_columns(BUCKET, pa.array([1, 2]), pa.array([1, 2]))
    ((_, rows, _),) = policies.match_columns(BUCKET, pa.array(["a", "b"]), pa.array([1, None], pa.int32()))
    assert rows.to_pylist() == [0, 1]


def test_matching_columns_imports_no_pandas():
    """Keys and sizes as an inventory's CSV reader gives them, matched by every kind of filter (the Python
    route for a non-ASCII key and for tags included): pyarrow must not import pandas (tens of MiB)."""
    code = """if True:
        import io, sys
        import pyarrow.csv as pcsv
        from chalicelib.policy import PolicySet
        ps = PolicySet.from_dicts([
            {"name": "t", "bucket": "lake", "filters": {"prefix": ["raw/", "raw/2026/"], "suffix": [".csv", ".CSV.gz"],
             "size": {"min": 2, "max": 2**70}}, "actions": [{"expire": {"days": 30}}]},
            {"name": "g", "bucket": "lake", "filters": {"prefix": "f/", "tags": {"keep": "no"}}, "actions": [{"expire": {"days": 9}}]}])
        text = "Key,Size\\nraw/a.csv,1\\nraw/2026/b.CSV,\\nraw/İ.csv.GZ,5\\nf/x,3\\n_leanlake/raw/c.csv,9\\n".encode()
        table = pcsv.read_csv(io.BytesIO(text))
        assert "pandas" not in sys.modules
        found = ps.match_columns("lake", table.column("Key"), table.column("Size"), [None, None, None, {"keep": "no"}, None])
        print([(lp.policy.name, rows.to_pylist(), prefixes.to_pylist()) for lp, rows, prefixes in found])
        print("pandas" in sys.modules)
    """
    pytest.importorskip("pandas")  # without pandas installed the test proves nothing
    root = Path(__file__).resolve().parents[1]
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=root,
                         ).stdout.splitlines()
    assert out == ["[('t', [1, 2], ['raw/2026/', 'raw/']), ('g', [3], ['f/'])]", "False"]
