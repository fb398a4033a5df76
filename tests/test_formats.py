"""Tests of chalicelib.formats: awkward valid files survive intact, bad files fail cleanly."""
from __future__ import annotations

import bz2
import csv
import gzip
import io
import json
import os
from collections import Counter
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import zstandard
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chalicelib.formats import (
    ConversionError,
    ConvertOptions,
    convert_to_parquet,
    detect_compression,
    recompress_to_zstd,
    verify_parquet,
)


def opener(data: bytes):
    return lambda: io.BytesIO(data)


class Unseekable(io.RawIOBase):
    """Like a botocore StreamingBody: read() only."""

    def __init__(self, data: bytes) -> None:
        self._b = io.BytesIO(data)

    def readable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:
        return self._b.read(n)

    def readinto(self, b) -> int:  # type: ignore[override]
        return self._b.readinto(b)


def convert(tmp_path: Path, data: bytes, **opts):
    out = tmp_path / "out.parquet"
    res = convert_to_parquet(lambda: Unseekable(data), out, ConvertOptions(**opts))
    verify_parquet(out, res.rows)
    return res, pq.read_table(out)


def csv_bytes(rows, delimiter=",", lineterminator="\n") -> bytes:
    buf = io.StringIO()
    csv.writer(buf, delimiter=delimiter, lineterminator=lineterminator).writerows(rows)
    return buf.getvalue().encode("utf-8")


def fails(tmp_path: Path, data: bytes, match: str):
    out = tmp_path / "bad.parquet"
    with pytest.raises(ConversionError, match=match) as info:
        convert_to_parquet(opener(data), out)
    assert not out.exists()
    assert "\n" not in str(info.value)
    return info.value


# ---------------------------------------------------------------- valid, awkward files
def test_quoted_newlines_and_quotes(tmp_path):
    rows = [["id", "text"], [1, "line one\nline two"], [2, 'say "hi", ok'], [3, "a\r\nb"]]
    res, t = convert(tmp_path, csv_bytes(rows))
    assert res.rows == 3 and res.input_format == "csv"
    assert t.column("text").to_pylist() == ["line one\nline two", 'say "hi", ok', "a\r\nb"]


def test_bom_is_stripped(tmp_path):
    _, t = convert(tmp_path, b"\xef\xbb\xbfa,b\n1,x\n")
    assert t.column_names == ["a", "b"]


def test_late_type_change_keeps_every_value(tmp_path):
    lines = ["n,s"] + [f"{i},x" for i in range(300_000)] + ["A12,y"]
    res, t = convert(tmp_path, ("\n".join(lines) + "\n").encode())
    assert res.rows == 300_001
    col = t.column("n").to_pylist()
    assert col[-1] == "A12" and col[0] == "0" and col[299_999] == "299999"


def test_late_float_widens_int(tmp_path):
    lines = ["n"] + [str(i) for i in range(200_000)] + ["2.5"]
    _, t = convert(tmp_path, ("\n".join(lines) + "\n").encode())
    col = t.column("n").to_pylist()
    assert col[-1] == 2.5 and col[7] == 7.0


def test_late_values_after_nulls(tmp_path):
    lines = ["a,b,c"] + ["1,,NA" for _ in range(200_000)] + ["2,hello,7"]
    res, t = convert(tmp_path, ("\n".join(lines) + "\n").encode())
    assert res.rows == 200_001
    assert t.column("b").to_pylist()[-1] == "hello"
    assert t.column("b").to_pylist()[0] == ""  # empty string stays a value in a text column
    assert t.column("c").to_pylist()[-1] == 7 and t.column("c").to_pylist()[0] is None


def test_na_and_nan_in_text_columns_are_values(tmp_path):
    data = b"country,name,score\nNA,nan,1\nDE,anna,NA\nFR,,2\n"
    _, t = convert(tmp_path, data)
    assert t.column("country").to_pylist() == ["NA", "DE", "FR"]
    assert t.column("name").to_pylist() == ["nan", "anna", ""]
    assert t.column("score").to_pylist() == [1, None, 2]


def test_8mb_field(tmp_path):
    big = "x" * (8 * 1024 * 1024)
    rows = [["id", "blob", "z"], [1, "small", 3], [2, big, 4], [3, "tail", 5]]
    _, t = convert(tmp_path, csv_bytes(rows))
    assert t.column("blob").to_pylist() == ["small", big, "tail"]
    assert t.column("z").to_pylist() == [3, 4, 5]


def test_semicolon_delimiter(tmp_path):
    res, t = convert(tmp_path, b'a;b;c\n1;"x;y";2,5\n3;z;4,0\n')
    assert res.input_format == "csv"
    assert t.column_names == ["a", "b", "c"]
    assert t.column("b").to_pylist() == ["x;y", "z"]
    assert t.column("c").to_pylist() == ["2,5", "4,0"]


def test_pipe_delimiter(tmp_path):
    _, t = convert(tmp_path, b"a|b\n1|x\n2|y\n")
    assert t.column("b").to_pylist() == ["x", "y"]


def test_tsv(tmp_path):
    res, t = convert(tmp_path, b"a\tb c\n1\thello, world\n2\tx\n")
    assert res.input_format == "tsv"
    assert t.column("b c").to_pylist() == ["hello, world", "x"]


CSV = csv_bytes([["a", "b"]] + [[i, f"v{i % 7}"] for i in range(5000)])


@pytest.mark.parametrize("name,compress", [
    ("gzip", gzip.compress),
    ("zstd", lambda d: zstandard.ZstdCompressor().compress(d)),
    ("bz2", bz2.compress),
])
def test_compressed_inputs(tmp_path, name, compress):
    blob = compress(CSV)
    res, t = convert(tmp_path, blob)
    assert res.compression == name and res.bytes_in == len(blob)
    assert t.column("a").to_pylist() == list(range(5000))
    assert t.column("b").to_pylist()[:3] == ["v0", "v1", "v2"]


def test_nested_json_lines(tmp_path):
    recs = [{"id": i, "user": {"name": f"u{i}", "tags": ["a", "b"][: i % 3]}, "score": i / 2} for i in range(1000)]
    recs.append({"id": 1000, "user": {"name": "late", "tags": [], "extra": 1}, "score": None, "new": "x"})
    data = "\n".join(json.dumps(r) for r in recs).encode() + b"\n"
    res, t = convert(tmp_path, data)
    assert res.input_format == "jsonl" and res.rows == 1001
    rows = t.to_pylist()
    assert rows[5]["user"]["name"] == "u5" and rows[5]["user"]["tags"] == ["a", "b"]
    assert rows[-1]["user"]["extra"] == 1 and rows[-1]["new"] == "x"


def test_json_mixed_kinds_kept_as_text(tmp_path):
    data = b'{"a": 1}\n{"a": "x"}\n{"a": {"k": 2}}\n'
    _, t = convert(tmp_path, data)
    assert t.column("a").to_pylist() == ["1", "x", '{"k":2}']


def test_json_array_pretty_printed(tmp_path):
    recs = [{"id": i, "name": f"n{i}", "nested": {"x": [i, i + 1]}, "s": "brace } [ in string"} for i in range(3000)]
    data = json.dumps(recs, indent=2).encode()
    res, t = convert(tmp_path, data)
    assert res.input_format == "json" and res.rows == 3000
    assert t.to_pylist() == recs


def test_empty_json_array(tmp_path):
    res, _ = convert(tmp_path, b"  [ ]  ")
    assert res.rows == 0


def test_header_only_csv(tmp_path):
    res, t = convert(tmp_path, b"a,b,c\n")
    assert res.rows == 0 and t.num_rows == 0 and t.column_names == ["a", "b", "c"]


def test_duplicate_column_names_are_deduped(tmp_path):
    _, t = convert(tmp_path, b"a,a,b,a\n1,2,3,4\n")
    assert t.column_names == ["a", "a_2", "b", "a_3"]
    assert t.to_pylist() == [{"a": 1, "a_2": 2, "b": 3, "a_3": 4}]


# ---------------------------------------------------------------- bad inputs
def test_empty_file(tmp_path):
    fails(tmp_path, b"", "empty file")


def test_binary_file(tmp_path):
    fails(tmp_path, bytes(range(256)) * 100, "not text")


def test_truncated_gzip(tmp_path):
    fails(tmp_path, gzip.compress(CSV * 20)[:-200], "truncated gzip stream")


def test_truncated_zstd(tmp_path):
    fails(tmp_path, zstandard.ZstdCompressor().compress(CSV * 20)[:-200], "truncated zstd stream")


def test_ragged_row_reports_line(tmp_path):
    data = b'a,b,c\n1,2,3\n4,"x\ny",6\n7,8,9\n1,2,3,4\n5,6,7\n'
    err = fails(tmp_path, data, r"^line 6: expected 3 fields, saw 4$")
    assert err.line == 6


def test_ragged_row_late(tmp_path):
    lines = ["a,b"] + ["1,2"] * 100_000 + ["1"] + ["3,4"]
    err = fails(tmp_path, ("\n".join(lines) + "\n").encode(), "expected 2 fields, saw 1")
    assert err.line == 100_002


def test_broken_json_line(tmp_path):
    data = b'{"a": 1}\n{"a": 2}\n{"a": 3}\n{"a": 4,,}\n{"a": 5}\n'
    err = fails(tmp_path, data, r"^line 4: invalid JSON")
    assert err.line == 4


def test_broken_json_array(tmp_path):
    data = b'[\n {"a": 1},\n {"a": 2,}\n]\n'
    err = fails(tmp_path, data, "invalid JSON")
    assert err.line == 3


# ---------------------------------------------------------------- recompress
def test_detect_compression():
    assert detect_compression(gzip.compress(b"x")) == "gzip"
    assert detect_compression(bz2.compress(b"x")) == "bz2"
    assert detect_compression(zstandard.ZstdCompressor().compress(b"x")) == "zstd"
    assert detect_compression(b"BZh hello") is None
    assert detect_compression(b"a,b\n") is None


@pytest.mark.parametrize("compress", [gzip.compress, bz2.compress, lambda d: d])
def test_recompress_round_trip(tmp_path, compress):
    raw = b"\xef\xbb\xbflog line with bom\n" + os.urandom(1000) + CSV * 10
    out = tmp_path / "x.zst"
    res = recompress_to_zstd(opener(compress(raw)), out, level=3)
    assert res.raw_bytes == len(raw) and res.bytes_out == out.stat().st_size
    assert zstandard.ZstdDecompressor().stream_reader(io.BytesIO(out.read_bytes())).read() == raw


def test_recompress_corrupt_input(tmp_path):
    out = tmp_path / "x.zst"
    with pytest.raises(ConversionError, match="truncated gzip stream"):
        recompress_to_zstd(opener(gzip.compress(CSV * 10)[:-50]), out)
    assert not out.exists()
    with pytest.raises(ConversionError):
        recompress_to_zstd(opener(b"\x1f\x8b\x08\x00garbage-garbage-garbage"), out)
    assert not out.exists()


# ---------------------------------------------------------------- sort and round trip
def test_sort_auto_keeps_multiset(tmp_path):
    rows = [["k", "g", "v"]] + [[i % 5, f"g{i % 3}", i * 7 % 101] for i in range(20_000)]
    data = csv_bytes(rows)
    _, plain = convert(tmp_path, data)
    _, sorted_ = convert(tmp_path, data, sort="auto")
    assert plain.to_pylist() == [dict(zip(rows[0], r)) for r in rows[1:]]  # default keeps order
    key = lambda t: Counter(tuple(r.values()) for r in t.to_pylist())  # noqa: E731
    assert key(plain) == key(sorted_)


text = st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=12)
cell = st.one_of(text, st.sampled_from(["NA", "", "nan", "a,b", 'q"q', "x\ny", "ü€😀"]))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    ints=st.lists(st.integers(-(2**63), 2**63 - 1), min_size=1, max_size=30),
    floats=st.lists(st.floats(allow_nan=False, allow_infinity=False), min_size=1, max_size=30),
    strs=st.lists(cell, min_size=1, max_size=30),
)
def test_round_trip_hypothesis(tmp_path, ints, floats, strs):
    n = max(len(ints), len(floats), len(strs))
    ints = (ints * n)[:n]
    floats = (floats * n)[:n]
    strs = (strs * n)[:n]
    # "\r\n" line ends make the csv module quote fields holding a lone "\r" too
    data = csv_bytes([["i", "f", "s"]] + [[a, repr(b), c] for a, b, c in zip(ints, floats, strs)],
                     lineterminator="\r\n")
    _, t = convert(tmp_path, data)
    assert t.num_rows == n
    assert t.column("i").to_pylist() == ints
    got_f = t.column("f").to_pylist()
    assert [float(x) for x in got_f] == floats
    got_s = t.column("s").to_pylist()
    if all(s in ("", "NA", "nan") for s in strs):
        # a column of nothing but null markers reads as a null column
        assert all(g in (None, s) for g, s in zip(got_s, strs))
    else:
        assert [str(g) if not isinstance(g, str) else g for g in got_s] == strs or \
            [g for g in got_s] == [typed(g, s) for g, s in zip(got_s, strs)]


def typed(parsed, text: str):
    """What ``text`` means in the type it was inferred as (a column of TRUE/false reads as booleans)."""
    if parsed is None:
        return None
    if isinstance(parsed, bool):
        return text in ("1", "True", "TRUE", "true")
    return type(parsed)(text)


def test_a_column_of_only_na_tokens_stays_text_and_an_empty_one_stays_null(tmp_path):
    body = ("id,country,empty,late\n" + "".join(f"{i},NA,,{'' if i < 200_000 else i}\n" for i in range(300_000))).encode()
    out = tmp_path / "o.parquet"
    convert_to_parquet(opener(body), out)
    table = pq.read_table(out)
    assert table.column("country").to_pylist() == ["NA"] * 300_000  # Namibia, every row
    assert table.column("empty").null_count == 300_000
    assert table.column("late").to_pylist()[-1] == 299_999 and table.schema.field("late").type == "int64"


def test_pieces_cut_only_at_record_boundaries_and_stray_quotes_fall_back(tmp_path):
    from chalicelib.formats import csv_reader

    rows = [f'{i},"line one\nline two, with ""quotes""",{i * 2}' for i in range(200_000)]
    body = ("id,text,double\n" + "\n".join(rows) + "\n").encode()
    pieces = list(csv_reader.record_chunks(io.BytesIO(body), 1 << 16, 1 << 22))
    assert b"".join(pieces) == body and all(p.count(b'"') % 2 == 0 for p in pieces)
    out = tmp_path / "q.parquet"
    assert convert_to_parquet(opener(body), out).rows == 200_000
    assert pq.read_table(out).column("text")[199_999].as_py() == 'line one\nline two, with "quotes"'
    # A stray quote in an unquoted field breaks the parity rule; the streaming reader takes over.
    stray = ("size,label\n" + "".join(f'{i}",pipe {i}\n' for i in range(100_000))).encode()
    assert convert_to_parquet(opener(stray), out).rows == 100_000
    assert pq.read_table(out).column("size")[5].as_py() == '5"'


def test_zero_padded_numbers_stay_text(tmp_path):
    body = ("zip,id,amount\n" + "".join(f"{z:05d},{i},{i / 2}\n" for i, z in enumerate([2134, 10001, 60601] * 1000))).encode()
    out = tmp_path / "z.parquet"
    convert_to_parquet(opener(body), out)
    table = pq.read_table(out)
    assert table.column("zip").to_pylist()[:3] == ["02134", "10001", "60601"]
    assert str(table.schema.field("id").type) == "int64" and str(table.schema.field("amount").type) == "double"


def test_noisy_floats_get_a_higher_zstd_level_and_small_ints_do_not():
    import random

    import pyarrow as pa

    from chalicelib.formats.parquet_writer import HIGH_LEVEL, choose_encodings

    rng = random.Random(7)
    table = pa.Table.from_batches([pa.record_batch(
        [pa.array([round(rng.gauss(0, 1), 6) for _ in range(50_000)]), pa.array([i % 5 for i in range(50_000)])],
        names=["feature", "bucket"])])
    _, _, levels = choose_encodings(table, None)
    assert levels == {"feature": HIGH_LEVEL}
    assert choose_encodings(table, 3)[2] == {}  # an explicit level is every column's level


def test_a_sparse_column_is_typed_from_the_pieces_ahead_without_a_second_pass():
    from chalicelib.formats.csv_reader import ChunkedCsvBatches, CsvPlan
    from chalicelib.formats.streams import open_decoded

    body = ("id,discount,note\n" + "".join(f"{i},{'' if i < 120_000 else i / 4},n{i % 7}\n" for i in range(200_000))).encode()
    plan = CsvPlan(",", 1 << 20)
    batches = ChunkedCsvBatches(open_decoded(opener(body)), plan)
    schema = batches.open()
    rows = list(batches)
    assert plan.passes == 1 and str(schema.field("discount").type) == "double"
    values = [v for b in rows for v in b.column(1).to_pylist()]
    assert len(values) == 200_000 and values[119_999] is None and values[-1] == 199_999 / 4


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rows=st.lists(st.lists(st.text(alphabet=st.sampled_from(list('ab,"\n\r é')), max_size=10), min_size=2, max_size=2),
                     max_size=30),
       size=st.integers(1, 40), limit=st.integers(8, 120))
def test_record_chunks_cut_only_between_records_and_refuse_only_long_ones(rows, size, limit):
    """Pieces join to the input and end where records end, whatever the read size; a record over the
    limit may stop the cutting (too long, or the streaming reader decides), a record within it never."""
    from chalicelib.formats.csv_reader import Sequential, record_chunks

    records = [csv_bytes([row]) for row in [["x", "y"]] + rows]
    body = b"".join(records)
    ends = {sum(len(r) for r in records[: i + 1]) for i in range(len(records))}
    try:
        pieces = list(record_chunks(io.BytesIO(body), size, limit))
    except (ConversionError, Sequential):
        assert max(map(len, records)) > limit
        return
    assert b"".join(pieces) == body
    offsets = [sum(len(p) for p in pieces[: i + 1]) for i in range(len(pieces))]
    assert set(offsets) <= ends and all(p.count(b'"') % 2 == 0 for p in pieces)


def _encodings(path) -> set:
    meta = pq.read_metadata(path)
    return {e for g in range(meta.num_row_groups) for i in range(meta.num_columns)
            for e in meta.row_group(g).column(i).encodings}


def test_compat_writes_only_v1_encodings_and_the_footer_records_every_choice(tmp_path):
    import random

    from chalicelib.formats.parquet_writer import ENCODING_LABELS, read_encodings

    rng = random.Random(3)
    rows = [["id", "name", "score", "when"]] + [
        [i, f"station {i:06d} north", round(rng.gauss(0, 1), 6), f"2024-01-01T00:{i // 60 % 60:02d}:{i % 60:02d}"]
        for i in range(30_000)]
    data = csv_bytes(rows)
    out = tmp_path / "out.parquet"
    default = convert_to_parquet(opener(data), out, ConvertOptions())
    modern, default_rows = _encodings(out), pq.read_table(out).to_pylist()
    meta = pq.read_metadata(out).metadata
    choices = read_encodings(pq.read_metadata(out))
    assert sorted(choices) == ["id", "name", "score", "when"]
    assert all(ENCODING_LABELS[label] in modern | {"RLE_DICTIONARY"} and 1 <= level <= 22
               for label, level in choices.values())
    assert b"leanlake.sort" not in meta and b"leanlake.compat" not in meta
    assert modern & {"DELTA_BINARY_PACKED", "DELTA_BYTE_ARRAY", "DELTA_LENGTH_BYTE_ARRAY", "BYTE_STREAM_SPLIT"}

    compat = convert_to_parquet(opener(data), out, ConvertOptions(compat=True))
    assert _encodings(out) <= {"PLAIN", "RLE", "RLE_DICTIONARY", "PLAIN_DICTIONARY"}
    assert pq.read_metadata(out).metadata[b"leanlake.compat"] == b"true"
    assert pq.read_table(out).to_pylist() == default_rows
    assert compat.rows == default.rows == 30_000 and compat.bytes_out > default.bytes_out


def test_sort_auto_records_its_keys_in_the_footer(tmp_path):
    import random

    rng = random.Random(5)
    rows = [["k", "g", "v"]] + [[rng.randrange(5), f"g{rng.randrange(3)}", rng.randrange(101)] for _ in range(20_000)]
    out = tmp_path / "out.parquet"
    unsorted = convert_to_parquet(opener(csv_bytes(rows)), out).bytes_out
    assert convert_to_parquet(opener(csv_bytes(rows)), out, ConvertOptions(sort="auto")).bytes_out < unsorted / 5
    keys = json.loads(pq.read_metadata(out).metadata[b"leanlake.sort"])
    assert keys and set(keys) <= {"k", "g", "v"}
    sorting = pq.read_metadata(out).row_group(0).sorting_columns
    assert [pq.read_schema(out).names[c.column_index] for c in sorting] == keys


def test_sort_auto_keeps_row_order_where_the_file_s_own_encodings_see_no_gain(tmp_path):
    """Periodic rows compress to ~850 bytes as they are; sorting them by the columns looked 40 % smaller
    to a dictionary-everywhere proxy but made the file 40 % larger. The search now measures with the
    encodings the file gets, and keeps the order."""
    rows = [["k", "g", "v"]] + [[i % 5, f"g{i % 3}", i * 7 % 101] for i in range(20_000)]
    out = tmp_path / "out.parquet"
    kept = convert_to_parquet(opener(csv_bytes(rows)), out).bytes_out
    auto = convert_to_parquet(opener(csv_bytes(rows)), out, ConvertOptions(sort="auto")).bytes_out
    assert json.loads(pq.read_metadata(out).metadata[b"leanlake.sort"]) == []
    assert pq.read_table(out).to_pylist()[:3] == [{"k": 0, "g": "g0", "v": 0}, {"k": 1, "g": "g1", "v": 7},
                                                  {"k": 2, "g": "g2", "v": 14}]
    assert auto <= kept + 40  # the same file but for the footer's record of the (empty) sort


def test_the_encodings_record_names_every_leaf_column_with_its_encoding_and_level(tmp_path):
    import pyarrow as pa

    from chalicelib.formats.parquet_writer import ENCODING_LABELS, ENCODINGS_KEY, read_encodings, write_batches

    batch = pa.record_batch({"id": pa.array(range(5000)), "city": pa.array([f"c{i % 7}" for i in range(5000)]),
                             "tags": pa.array([[i, i + 1] for i in range(5000)]),
                             "pos": pa.array([{"lat": i / 3, "lon": -i / 7} for i in range(5000)])})
    out = tmp_path / "n.parquet"
    with open(out, "wb") as f:
        write_batches([batch], batch.schema, f, ConvertOptions())
    meta = pq.read_metadata(out)
    choices = read_encodings(meta)
    assert list(choices) == ["id", "city", "tags.list.element", "pos.lat", "pos.lon"]
    assert all(1 <= level <= 22 for _, level in choices.values())
    record = meta.metadata[ENCODINGS_KEY.encode()].decode()
    assert len(record) < 60 and "*" in record  # one short entry per column, runs written once
    # the chunks say the same: a "dict" column has a dictionary page, the others the encoding named
    for i in range(meta.num_columns):
        chunk = meta.row_group(0).column(i)
        label, _ = choices[chunk.path_in_schema]
        assert (label == "dict") == chunk.has_dictionary_page
        assert label == "dict" or ENCODING_LABELS[label] in chunk.encodings


def test_a_small_file_tries_higher_zstd_levels_and_a_file_of_many_row_groups_does_not(tmp_path):
    """A file that is one small row group gets per column the smallest of levels up to 15 or 19 (its
    time is the interpreter's, not zstd's); a file of many groups keeps to 3 and 6 (each group
    would pay the higher levels' time)."""
    import random

    import pyarrow as pa

    from chalicelib.formats.parquet_writer import HIGH_LEVEL, read_encodings, write_batches

    rng = random.Random(11)
    batches = [pa.record_batch({
        "place": [f"{rng.choice(['North', 'South', 'Old'])} {rng.choice(['Harbor', 'Ridge'])} {rng.randrange(300)}"
                  for _ in range(1_000)],
        "lat": [round(rng.uniform(-90, 90), 6) for _ in range(1_000)]}) for _ in range(5)]

    def write(options: ConvertOptions) -> tuple:
        out = tmp_path / "s.parquet"
        with open(out, "wb") as f:
            write_batches(batches, batches[0].schema, f, options)
        meta = pq.read_metadata(out)
        return out.stat().st_size, meta.num_row_groups, max(level for _, level in read_encodings(meta).values())

    small, groups, top = write(ConvertOptions())
    assert groups == 1 and top > HIGH_LEVEL
    assert write(ConvertOptions(row_group_rows=1_000))[1:] == (5, HIGH_LEVEL)  # more may follow: 3 or 6
    assert write(ConvertOptions(level=3))[0] > small
