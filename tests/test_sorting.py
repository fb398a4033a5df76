"""The rank-based sort of ``sort="auto"`` gives exactly pyarrow's order (nulls last, ties stable)."""
from __future__ import annotations

import datetime as dt
import math
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chalicelib.formats.sorting import order_of, rankable, ranks, sort_indices

# few distinct values, so that keys tie and the order of equal rows (stability) is tested too
words = st.sampled_from(["", "a", "A", "ab", "b", "é", "e\u0301", "z\x00", "😀", "Ωmega", "a" * 30])
short_ints = st.integers(-3, 3)
big_ints = st.sampled_from([-(2**63), -1, 0, 1, 2**63 - 1])
COLUMN_TYPES = {
    "s": (words, pa.string()),
    "ls": (words, pa.large_string()),
    "b": (st.binary(max_size=2), pa.binary()),
    "i8": (short_ints, pa.int8()),
    "u64": (st.sampled_from([0, 1, 2**64 - 1]), pa.uint64()),
    "i64": (big_ints, pa.int64()),
    "flag": (st.booleans(), pa.bool_()),
    "day": (st.dates(dt.date(1969, 12, 30), dt.date(1970, 1, 3)), pa.date32()),
    "ts": (st.sampled_from([-1, 0, 10**12]), pa.timestamp("ms", "UTC")),
}


@st.composite
def tables(draw):
    rows = draw(st.integers(0, 60))
    names = draw(st.lists(st.sampled_from(sorted(COLUMN_TYPES)), min_size=1, max_size=4, unique=True))
    columns = []
    for name in names:
        values, arrow_type = COLUMN_TYPES[name]
        cells = draw(st.lists(st.one_of(st.none(), values), min_size=rows, max_size=rows))
        columns.append(pa.array(cells, type=arrow_type))
    table = pa.table(dict(zip(names, columns, strict=True)))
    if rows > 2 and draw(st.booleans()):  # several chunks, as a gathered row group has
        cut = draw(st.integers(1, rows - 1))
        table = pa.concat_tables([table.slice(0, cut), table.slice(cut)])
    keys = draw(st.permutations(names).map(lambda p: p[:draw(st.integers(1, len(p)))]))
    return table, keys


def pyarrow_order(table, keys):
    return pc.sort_indices(table, sort_keys=[(k, "ascending", "at_end") for k in keys]).to_pylist()


@settings(max_examples=300, deadline=None)
@given(tables())
def test_rank_sort_is_pyarrow_sort_exactly(case):
    table, keys = case
    cache: dict = {}
    assert sort_indices(table, keys, cache).to_pylist() == pyarrow_order(table, keys)
    assert set(cache) == set(keys)
    assert sort_indices(table, keys, cache).to_pylist() == pyarrow_order(table, keys)  # from the cached ranks


def test_equal_rows_keep_their_input_order_and_nulls_come_last():
    table = pa.table({"k": ["b", None, "a", "b", None, "a"], "row": list(range(6))})
    order = sort_indices(table, ["k"]).to_pylist()
    assert order == [2, 5, 0, 3, 1, 4]
    assert table.take(order).column("row").to_pylist() == [2, 5, 0, 3, 1, 4]


def test_keys_whose_ranks_multiply_beyond_64_bits_sort_exactly():
    """Seven keys of ~3,000 ranks each (~2**70 together): no key combination is too wide to sort."""
    import random

    rng = random.Random(7)
    rows = 3000
    table = pa.table({f"k{j}": [rng.randrange(1 << 16) if j else rng.randrange(3) for _ in range(rows)]
                      for j in range(7)})
    table = table.append_column("pad", pa.array([f"{i:05d}" for i in range(rows)]))
    spans = [ranks(table.column(k))[1] for k in table.schema.names[:7]]
    assert math.prod(spans) >= 1 << 64
    keys = table.schema.names
    assert sort_indices(table, keys).to_pylist() == pyarrow_order(table, keys)


def test_other_types_fall_back_to_pyarrow():
    table = pa.table({"f": [1.0, float("nan"), None, -0.0, 0.0, 1.0], "s": ["x", "y", "x", "y", "x", "y"]})
    assert not rankable(table.schema.field("f").type)
    assert sort_indices(table, ["f", "s"]).to_pylist() == pyarrow_order(table, ["f", "s"])


def test_order_of_needs_a_key():
    with pytest.raises(ValueError):
        order_of([])


def test_sorting_imports_no_pandas():
    """``Array.to_numpy``, ``pa.array`` and ``pa.scalar`` import pandas in pyarrow 26 (~35 MiB of peak
    RSS for a conversion that never uses it); the sort goes around them."""
    import subprocess

    code = ("import sys, pyarrow as pa, pyarrow.compute as pc\n"
            "from chalicelib.formats.sorting import sort_indices\n"
            "t = pa.Table.from_batches([pa.RecordBatch.from_arrays([pc.cast(pc.random(50), pa.string())], ['s'])])\n"
            "assert 'pandas' not in sys.modules\n"
            "t.take(sort_indices(t, ['s']))\n"
            "print('pandas' in sys.modules)\n")
    root = Path(__file__).resolve().parents[1]
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=root).stdout
    assert out.strip() == "False"


def decoded(table):
    """``table`` with its dictionary columns cast back to their value types."""
    return pa.table({name: column.cast(column.type.value_type) if pa.types.is_dictionary(column.type) else column
                     for name, column in zip(table.column_names, table.columns, strict=True)})


@settings(max_examples=300, deadline=None)
@given(tables())
def test_sorted_table_is_pyarrow_sort_with_text_keys_as_sorted_dictionaries(case):
    """The rows are pyarrow's order exactly; a text key comes back dictionary-encoded, its dictionary its distinct
    non-null values ascending (nulls stay nulls), so that the writer need not hash it; nothing else changes."""
    from chalicelib.formats.sorting import sorted_table

    table, keys = case
    out = sorted_table(table, keys)
    assert all(column.num_chunks == 1 for column in out.columns)
    assert decoded(out).equals(table.take(pa.array(pyarrow_order(table, keys), pa.uint64())))
    for field in out.schema:
        original = table.schema.field(field.name).type
        if pa.types.is_dictionary(field.type):
            assert field.name in keys and field.type.value_type == original
            assert pa.types.is_string(original) or pa.types.is_large_string(original) or pa.types.is_binary(original)
            dictionary = out.column(field.name).chunk(0).dictionary
            assert dictionary.null_count == 0
            assert dictionary.to_pylist() == pc.unique(table.column(field.name).drop_null()).sort().to_pylist()
        else:
            assert field.type == original


def test_sorter_hands_the_writer_the_group_it_handed_before():
    """One chunk per column, the rows in pyarrow's order: the writer cuts pages as it did when the
    group was combined and sorted with ``pc.sort_indices``; the text key is a dictionary of the same values."""
    from chalicelib.formats.parquet_writer import _Sorter

    table = pa.table({"k": [f"k{i % 7}" if i % 11 else None for i in range(3000)], "v": list(range(3000))})
    batches = table.to_batches(max_chunksize=700)
    sorter = _Sorter(table.schema)
    sorter.keys = ["k"]
    (group,) = sorter(batches)
    assert all(column.num_chunks == 1 for column in group.columns)
    assert pa.types.is_dictionary(group.schema.field("k").type)
    assert decoded(group).equals(table.take(pyarrow_order(table, ["k"])))
    sorter.keys = []
    (kept,) = sorter(batches)
    assert all(column.num_chunks == 1 for column in kept.columns) and kept.equals(table)


def test_keys_of_more_ranks_than_one_digit_sort_exactly():
    """Ranks wider than ``DIGIT_BITS`` are sorted a digit at a time (two passes for 20,000 distinct values)."""
    import random

    from chalicelib.formats.sorting import DIGIT_BITS

    rng = random.Random(11)
    rows = 30_000
    table = pa.table({"coarse": [rng.randrange(3) for _ in range(rows)],
                      "fine": [None if i % 97 == 0 else f"{rng.randrange(20_000):06d}" for i in range(rows)],
                      "row": list(range(rows))})
    assert ranks(table.column("fine"))[1] > 1 << DIGIT_BITS
    for keys in (["fine"], ["coarse", "fine"], ["fine", "coarse"]):
        assert sort_indices(table, keys).to_pylist() == pyarrow_order(table, keys)


def test_sort_auto_converts_without_numpy(tmp_path):
    """The Lambda package carries no NumPy (pyarrow does not need it): ``sort="auto"`` converts with it blocked."""
    import subprocess

    source = tmp_path / "t.csv"
    source.write_text("city,country,n\n" + "".join(f"c{i % 37},k{i % 5},{i}\n" for i in range(5000)))
    code = ("import sys; sys.modules['numpy'] = None\n"
            "from chalicelib.formats import ConvertOptions, convert_to_parquet\n"
            f"r = convert_to_parquet(lambda: open({str(source)!r}, 'rb'), {str(tmp_path / 'out.parquet')!r}, ConvertOptions(sort='auto'))\n"
            "print(r.rows)\n")
    root = Path(__file__).resolve().parents[1]
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=root).stdout
    assert out.strip() == "5000"

    assert pq.read_table(tmp_path / "out.parquet").num_rows == 5000


def test_a_failing_search_trial_fails_the_conversion_cleanly(tmp_path, monkeypatch):
    """The key search's trials run on its own threads: a failure there is the conversion's one-line error,
    nothing is left at the output, and the threads are gone."""
    import threading

    from chalicelib.formats import ConversionError, ConvertOptions, convert_to_parquet
    from chalicelib.formats import parquet_writer

    real = parquet_writer._sample_size
    on_helper = []

    def sample_size(table, encodings):
        if threading.current_thread().name.startswith("leanlake-sort-search"):
            on_helper.append(table.num_rows)
            raise RuntimeError("trial could not write its sample")
        return real(table, encodings)

    monkeypatch.setattr(parquet_writer, "_sample_size", sample_size)
    source = tmp_path / "t.csv"
    source.write_text("city,country,n\n" + "".join(f"c{i % 37},k{i % 5},{i}\n" for i in range(5000)))
    out = tmp_path / "out.parquet"
    with pytest.raises(ConversionError) as failed:
        convert_to_parquet(lambda: open(source, "rb"), out, ConvertOptions(sort="auto"))
    assert on_helper, "no trial ran on the helper thread"
    message = str(failed.value)
    assert "\n" not in message and "trial could not write its sample" in message
    assert not out.exists()
    assert not [t for t in threading.enumerate() if t.name.startswith("leanlake-sort-search")]


@pytest.mark.parametrize("fails_in", ["sorting", "reading"])
def test_a_failure_in_a_later_group_stops_all_three_stages(monkeypatch, fails_in):
    """With sort="auto" a group passes three threads (gathered, sorted, written). A failure in the sorting thread on
    the third group is the conversion's one-line error, one in the input after three groups propagates as it is,
    and either way no thread of the conversion is left behind."""
    import io
    import random
    import threading

    from chalicelib.formats import ConversionError
    from chalicelib.formats import parquet_writer as pw
    from chalicelib.formats.options import ConvertOptions

    monkeypatch.setattr(pw, "SORT_SAMPLE_ROWS", 2_000)
    real = pw.sorted_table
    sorted_groups = []

    def sorted_table(table, keys):
        sorted_groups.append(table.num_rows)
        if fails_in == "sorting" and len(sorted_groups) == 3:
            raise RuntimeError("the sort ran out of memory")
        return real(table, keys)

    monkeypatch.setattr(pw, "sorted_table", sorted_table)
    rng = random.Random(7)
    countries = [rng.randrange(13) for _ in range(40_000)]
    table = pa.table({"country": [f"country-{c}" for c in countries],
                      "city": [f"city-{c}-{rng.randrange(4)}-of-a-long-name" for c in countries]})

    def batches():
        for i, batch in enumerate(table.to_batches(max_chunksize=1_000)):
            if fails_in == "reading" and i == 35:
                raise OSError("the connection was reset")
            yield batch

    expected = ConversionError if fails_in == "sorting" else OSError
    with pytest.raises(expected) as failed:
        pw.write_batches(batches(), table.schema, io.BytesIO(), ConvertOptions(sort="auto", row_group_rows=10_000))
    assert "\n" not in str(failed.value)
    assert ("the sort ran out of memory" if fails_in == "sorting" else "the connection was reset") in str(failed.value)
    assert len(sorted_groups) == 3, sorted_groups
    assert not [t.name for t in threading.enumerate() if t.name.startswith("leanlake")]


def test_the_key_search_starts_on_the_first_rows_and_writes_what_a_late_search_writes(monkeypatch, tmp_path):
    """The search runs in its own thread as soon as the first row group's first ``SORT_SAMPLE_ROWS`` rows are
    gathered (it only reads those), and the file is byte for byte the one a search at the end of the group writes."""
    import io
    import threading

    from chalicelib.formats import parquet_writer as pw
    from chalicelib.formats.options import ConvertOptions

    monkeypatch.setattr(pw, "SORT_SAMPLE_ROWS", 2_000)
    import random

    rng = random.Random(5)
    countries = [rng.randrange(13) for _ in range(20_000)]  # shuffled rows whose cities follow their country
    table = pa.table({"country": [f"country-{c}" for c in countries],
                      "city": [f"city-{c}-{rng.randrange(4)}-of-a-long-name" for c in countries]})
    searched_in: list[str] = []
    choose = pw.choose_sort_keys

    def spy(sample):
        searched_in.append(threading.current_thread().name)
        return choose(sample)

    monkeypatch.setattr(pw, "choose_sort_keys", spy)

    def written() -> bytes:
        out = io.BytesIO()
        pw.write_batches(table.to_batches(max_chunksize=500), table.schema, out, ConvertOptions(sort="auto"))
        return out.getvalue()

    early = written()
    monkeypatch.setattr(pw._Sorter, "search", lambda self, first_rows: None)  # the search at the group's end
    late = written()

    assert searched_in == ["leanlake-sort-search", "leanlake-sort"]  # the late one in the sorting stage
    assert early == late

    assert pq.read_metadata(io.BytesIO(early)).metadata[pw.SORT_KEY.encode()] not in (b"", b"[]")  # it sorted


def test_the_search_measures_text_with_nulls_and_bytes_and_finds_the_keys():
    """The search's sample has its text and binary dictionary columns encoded once for every trial
    (``_dictionary_encoded``): nulls stay nulls, other types stay as they are, and a table whose rows
    follow a null-bearing text key and a binary one is sorted by them."""
    import random

    from chalicelib.formats import parquet_writer as pw

    rng = random.Random(3)
    groups = [rng.randrange(40) for _ in range(20_000)]
    table = pa.table({
        "region": [None if g % 7 == 0 else f"region-{g % 8}" for g in groups],
        "code": pa.array([b"\x00k" + bytes([g]) for g in groups], pa.binary()),
        "reading": [round(g * 1.5 + rng.random() / 1000, 4) for g in groups],
        "note": [f"station {g} of a long descriptive name" for g in groups],
    })
    encoded = pw._dictionary_encoded(table, ["region", "code", "reading", "note"])
    assert [str(f.type).split("<")[0] for f in encoded.schema] == ["dictionary", "dictionary", "double", "dictionary"]
    assert encoded.column("region").null_count == table.column("region").null_count > 0
    assert encoded.column("code").to_pylist() == table.column("code").to_pylist()
    keys = pw.choose_sort_keys(table)
    assert keys and set(keys) <= {"region", "code", "note"}


def test_encoding_trials_on_two_threads_choose_what_one_thread_chooses():
    """``choose_encodings(threads=2)`` tries two columns at a time and returns the very choice one thread makes,
    in column order, also with the small-file level ladder."""
    import random

    from chalicelib.formats.parquet_writer import choose_encodings

    rng = random.Random(9)
    n = 30_000
    table = pa.table({
        "ts": pa.array([1_600_000_000_000 + i * 1000 for i in range(n)], pa.timestamp("ms")),
        "feature": [round(rng.gauss(0, 1), 6) for _ in range(n)],
        "city": [f"city-{rng.randrange(300)}" for _ in range(n)],
        "id": [f"id-{i:08d}" for i in range(n)],
        "flag": [i % 3 == 0 for i in range(n)],
        "tags": pa.array([[i % 4] for i in range(n)], pa.list_(pa.int8())),
    })
    for kwargs in ({}, {"max_level": 19}, {"compat": True}):
        assert choose_encodings(table, None, threads=2, **kwargs) == choose_encodings(table, None, threads=1, **kwargs)


def test_an_unsorted_file_of_many_groups_tries_encodings_on_the_writer_thread_alone(monkeypatch):
    """Beside the reader of an unsorted file a second trial thread costs peak memory (25-35 MiB on 1.1 GB):
    its trials run on the writer thread; a sorted file's first group gets two (the reader waits then)."""
    import io

    from chalicelib.formats import parquet_writer as pw
    from chalicelib.formats.options import ConvertOptions

    calls: list[int] = []
    real = pw.choose_encodings

    def spy(*args, threads: int = 1, **kwargs):
        calls.append(threads)
        return real(*args, threads=threads, **kwargs)

    monkeypatch.setattr(pw, "choose_encodings", spy)
    monkeypatch.setattr(pw, "TRIAL_ROWS", 1_000)
    monkeypatch.setattr(pw, "SORT_SAMPLE_ROWS", 1_000)
    import random

    rng = random.Random(5)
    countries = [rng.randrange(13) for _ in range(40_000)]  # shuffled rows whose cities follow their country
    table = pa.table({"country": [f"country-{c}" for c in countries],
                      "city": [f"city-{c}-{rng.randrange(4)}-of-a-long-name" for c in countries]})
    for sort, expected in (("none", [1]), ("auto", [pw.TRIAL_THREADS, pw.TRIAL_THREADS])):  # auto: the search's, the group's
        calls.clear()
        out = io.BytesIO()
        pw.write_batches(table.to_batches(max_chunksize=1_000), table.schema, out, ConvertOptions(row_group_rows=10_000, sort=sort))
        assert calls == expected
    assert pq.read_metadata(io.BytesIO(out.getvalue())).metadata[pw.SORT_KEY.encode()] not in (b"", b"[]")  # it sorted
