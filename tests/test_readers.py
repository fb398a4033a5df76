"""Readable everywhere: what leanlake writes reads back identically in pyarrow, DuckDB, polars and pandas.

Each table is converted with the default options, ``sort="auto"`` (rows reordered: compared as
multisets) and ``compat`` (Parquet V1 encodings only), then read by every engine installed (DuckDB,
polars and pandas are bench extras: skipped when absent) and compared with the source's values.
The tables are big enough (3,000 rows) for the per-column trial to pick the non-dictionary encodings
(DELTA_*, BYTE_STREAM_SPLIT) that older readers get wrong, and for ``sort="auto"`` to sort.
"""
from __future__ import annotations

import csv
import datetime as dt
import io
import json
import math
import random
from collections import Counter
from pathlib import Path
from typing import Any, Callable, Dict, List

import pyarrow.parquet as pq
import pytest

from chalicelib.formats import ConvertOptions, convert_to_parquet

ROWS = 3_000
WORDS = ["Zürich", "東京", "", "São Paulo", "😀 emoji", "a,b", 'q"q', "x\ny", "NA", "Ñandú"]
MODES = {"default": ConvertOptions(), "sort=auto": ConvertOptions(sort="auto"), "compat": ConvertOptions(compat=True)}


def flat_rows() -> List[Dict[str, Any]]:
    """Strings (unicode, empty, embedded quotes and newlines), ints, floats, bools, timestamps, dates;
    missing cells (None) in every non-string column."""
    out = []
    for i in range(ROWS):
        gap = i % 97 == 5
        out.append({
            "city": WORDS[i % len(WORDS)] + ("" if i % 3 else f" {i}"),
            "country": ["CH", "JP", "BR", "NA", "US"][i % 5],
            "n": None if gap else i * 7919 % 100_003 - 50_000,
            "x": None if gap else round(math.sin(i) * 1000, 6),
            "ok": None if gap else i % 4 == 0,
            "at": None if gap else dt.datetime(2024, 1, 1) + dt.timedelta(seconds=i * 3_607),
            "day": None if gap else dt.date(2020, 1, 1) + dt.timedelta(days=i % 1_500),
        })
    random.Random(5).shuffle(out)  # unordered, as a lake holds rows: sorting them pays
    return out


def csv_of(rows: List[Dict[str, Any]]) -> bytes:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(list(rows[0]))
    for row in rows:
        writer.writerow(["" if v is None else ("true" if v is True else "false" if v is False else
                         v.strftime("%Y-%m-%d %H:%M:%S") if isinstance(v, dt.datetime) else v) for v in row.values()])
    return buf.getvalue().encode("utf-8")


def nested_rows() -> List[Dict[str, Any]]:
    """JSON Lines with lists, objects, nulls and unicode."""
    return [{"id": i, "name": None if i % 11 == 0 else WORDS[i % len(WORDS)],
             "tags": [WORDS[(i + k) % len(WORDS)] for k in range(i % 4)],
             "where": {"lat": round(i * 0.001, 6), "code": f"K{i % 50:03d}"},
             "score": None if i % 13 == 0 else i / 8}
            for i in range(ROWS)]


def jsonl_of(rows: List[Dict[str, Any]]) -> bytes:
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows).encode("utf-8")


# ---------------------------------------------------------------- readers, each to a list of plain dicts
def _plain(v: Any) -> Any:
    """One engine's value as a plain, hashable Python value: NaN / NaT -> None, numpy -> Python,
    pandas Timestamp -> datetime, lists and dicts -> tuples."""
    if v is None or type(v).__name__ == "NaTType":
        return None
    if hasattr(v, "to_pydatetime"):
        return v.to_pydatetime()
    if hasattr(v, "tolist") and not isinstance(v, (str, bytes)):
        v = v.tolist()
    if isinstance(v, float) and math.isnan(v):
        return None
    if isinstance(v, dict):
        return tuple(sorted((k, _plain(x)) for k, x in v.items()))
    if isinstance(v, (list, tuple)):
        return tuple(_plain(x) for x in v)
    return v


def read_pyarrow(path: Path) -> List[Dict[str, Any]]:
    return pq.read_table(path).to_pylist()


def read_duckdb(path: Path) -> List[Dict[str, Any]]:
    duckdb = pytest.importorskip("duckdb")
    rel = duckdb.connect().sql(f"SELECT * FROM read_parquet('{path}')")
    names = [d[0] for d in rel.description]
    return [dict(zip(names, row, strict=True)) for row in rel.fetchall()]


def read_polars(path: Path) -> List[Dict[str, Any]]:
    pl = pytest.importorskip("polars")
    return pl.read_parquet(path).to_dicts()


def read_pandas(path: Path) -> List[Dict[str, Any]]:
    pd = pytest.importorskip("pandas")
    return pd.read_parquet(path).to_dict("records")


READERS: Dict[str, Callable[[Path], List[Dict[str, Any]]]] = {
    "pyarrow": read_pyarrow, "duckdb": read_duckdb, "polars": read_polars, "pandas": read_pandas}


def multiset(rows: List[Dict[str, Any]], columns: List[str]) -> Counter:
    return Counter(tuple(_plain(r[c]) for c in columns) for r in rows)


# ---------------------------------------------------------------- the tests
@pytest.mark.parametrize("reader", list(READERS))
@pytest.mark.parametrize("mode", list(MODES))
@pytest.mark.parametrize("table", ["csv", "jsonl"])
def test_every_engine_reads_what_the_source_holds(tmp_path, table, mode, reader):
    rows = flat_rows() if table == "csv" else nested_rows()
    data = csv_of(rows) if table == "csv" else jsonl_of(rows)
    out = tmp_path / "out.parquet"
    result = convert_to_parquet(lambda: io.BytesIO(data), out, MODES[mode])
    assert result.rows == ROWS
    got = READERS[reader](out)
    columns = list(rows[0])
    assert len(got) == ROWS and sorted(got[0]) == sorted(columns)
    assert multiset(got, columns) == multiset(rows, columns)
    if mode != "sort=auto":  # row order is kept
        assert [_plain(r[columns[0]]) for r in got] == [_plain(r[columns[0]]) for r in rows]


def test_the_tables_exercise_the_encodings_compat_leaves_out(tmp_path):
    """Not vacuous: by default these tables get DELTA_* / BYTE_STREAM_SPLIT pages and sort=auto sorts."""
    out = tmp_path / "out.parquet"
    seen = set()
    for data in (csv_of(flat_rows()), jsonl_of(nested_rows())):
        convert_to_parquet(lambda d=data: io.BytesIO(d), out, ConvertOptions())
        meta = pq.read_metadata(out)
        seen |= {e for i in range(meta.num_columns) for e in meta.row_group(0).column(i).encodings}
    assert seen & {"DELTA_BINARY_PACKED", "DELTA_BYTE_ARRAY", "DELTA_LENGTH_BYTE_ARRAY", "BYTE_STREAM_SPLIT"}
    convert_to_parquet(lambda: io.BytesIO(csv_of(flat_rows())), out, ConvertOptions(sort="auto"))
    assert json.loads(pq.read_metadata(out).metadata[b"leanlake.sort"])


@pytest.mark.parametrize("reader", list(READERS))
def test_without_the_arrow_schema_in_the_footer_instants_and_dates_read_back_the_same(tmp_path, reader):
    """The footer holds no ``ARROW:schema`` (pyarrow's base64 copy of the Arrow schema: ~10 % of a small
    file): the Parquet schema alone says what every engine needs. Times with offsets become UTC
    instants that read back tz-aware, dates stay dates (nested columns: the test above)."""
    rows = [{"at": f"2024-03-{i % 28 + 1:02d}T10:{i % 60:02d}:00+02:00", "day": f"2020-02-{i % 29 + 1:02d}"}
            for i in range(ROWS)]
    out = tmp_path / "out.parquet"
    for data in (jsonl_of(nested_rows()), csv_of(rows)):
        convert_to_parquet(lambda d=data: io.BytesIO(d), out, ConvertOptions())
        assert not any(key.startswith(b"ARROW:") for key in pq.read_metadata(out).metadata)
    got = READERS[reader](out)
    assert len(got) == ROWS
    for g, r in zip(got, rows, strict=True):
        at = _plain(g["at"])
        assert at.tzinfo is not None and at == dt.datetime.fromisoformat(r["at"])  # the same instant, tz-aware
        assert _plain(g["day"]) == dt.date.fromisoformat(r["day"])
