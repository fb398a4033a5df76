"""Hostile inputs convert in bounded memory or fail early with one line, losing nothing.

Each hostile file is generated on the fly (a gzip of a huge field is tiny) and converted by the
``leanlake convert`` CLI in a child process whose peak RSS (``wait4``) is asserted: before the
limits, a 700 KB ``.csv.gz`` holding one 700 MiB field took 5.1 GiB, 50,000 columns 2 GiB and a
JSON line nested 10,000 deep crashed the process. The same files go through the upload pipeline
on a real S3 API (moto): an error Outcome naming the object, the source untouched, no output.
"""

from __future__ import annotations

import gzip
import io
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Callable, Iterator

import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chalicelib.formats import ConversionError, ConvertOptions, convert_to_parquet
from chalicelib.formats.json_reader import MAX_DEPTH, ArrayToLines, too_deep_line

ROOT = Path(__file__).resolve().parents[1]
MiB = 1 << 20
BUDGET = 512 * MiB  # peak RSS a hostile file may cost the whole converting process
ROW_LIMIT = "a row longer than 64 MiB (max_row_size); refusing to hold it in memory"


# ---------------------------------------------------------------- hostile files, written streaming
def gzip_of(path: Path, parts: Iterator[bytes]) -> Path:
    """Write ``parts`` through gzip without ever holding more than one part."""
    with gzip.GzipFile(path, "wb", compresslevel=6, mtime=0) as out:
        for part in parts:
            out.write(part)
    return path


def repeated(chunk: bytes, total: int) -> Iterator[bytes]:
    for _ in range(total // len(chunk)):
        yield chunk


def huge_field_csv(path: Path, field: int) -> Path:
    """Three rows; the second has a ``field``-byte unquoted field (line 3 of the file)."""
    return gzip_of(path, iter([b"id,blob,z\n1,small,3\n2,", *repeated(b"x" * MiB, field), b",4\n3,tail,5\n"]))


def long_line_csv(path: Path, line: int) -> Path:
    return gzip_of(path, iter([b"a,b\n1,2\n", *repeated(b"1,2," * (MiB // 4), line), b"\n"]))


def quoted_field_csv(path: Path, field: int) -> Path:
    """A quoted field full of newlines: the parity rule cannot cut it, the streaming reader must refuse it."""
    return gzip_of(path, iter([b"id,blob\n1,\"", *repeated((b"y" * 1023 + b"\n") * 1024, field), b"\"\n2,z\n"]))


def wide_csv(path: Path, columns: int, rows: int) -> Path:
    header = ",".join(f"c{i}" for i in range(columns)).encode() + b"\n"
    return gzip_of(path, iter([header, *([b",".join(b"%d" % (i % 10) for i in range(columns)) + b"\n"] * rows)]))


def long_json_line(path: Path, line: int) -> Path:
    return gzip_of(path, iter([b'{"id": 1}\n{"id": 2, "blob": "', *repeated(b"j" * MiB, line), b'"}\n']))


def deep_json_line(path: Path, depth: int) -> Path:
    return gzip_of(path, iter([b'{"id": 1}\n', b'{"a": ' * depth, b"1", b"}" * depth, b"\n"]))


def huge_json_element(path: Path, field: int) -> Path:
    return gzip_of(path, iter([b'[{"id": 1},\n {"id": 2, "blob": "', *repeated(b"k" * MiB, field), b'"}]\n']))


def deep_json_array(path: Path, depth: int) -> Path:
    return gzip_of(path, iter([b'[{"id": 1},\n', b'{"a": [' * depth, b"1", b"]}" * depth, b"]\n"]))


# ---------------------------------------------------------------- the CLI in a child, with its peak RSS
#: Runs argv[1:] and reports its peak RSS. A child forked straight from pytest would inherit pytest's
#: high-water mark (Linux carries ``maxrss`` across exec from the mm it forked with), so the measured
#: process is started from this small launcher instead and only its own peak is reported.
_MEASURE = ("import os, subprocess, sys\n"
            "child = subprocess.Popen(sys.argv[1:])\n"
            "_, status, usage = os.wait4(child.pid, 0)\n"
            "sys.stderr.write(f'\\npeak-rss-kib={usage.ru_maxrss}\\n')\n"
            "sys.exit(os.waitstatus_to_exitcode(status))\n")


def convert_in_child(src: Path, dst: Path, *flags: str) -> tuple[int, str, int]:
    """Run ``leanlake convert SRC DST`` in a child process: (exit code, stderr, peak RSS in bytes)."""
    with tempfile.TemporaryFile() as err:
        done = subprocess.run([sys.executable, "-c", _MEASURE, sys.executable, "-m", "leanlake.cli", "convert", str(src), str(dst),
                               *flags], stdout=subprocess.DEVNULL, stderr=err, cwd=ROOT, check=False)
        err.seek(0)
        text, _, peak = err.read().decode().rpartition("\npeak-rss-kib=")
        return done.returncode, text, int(peak) * 1024  # Linux reports KiB


HOSTILE: list[tuple[str, Callable[[Path], Path], str]] = [
    ("700 MiB field in a 700 KB csv.gz", lambda d: huge_field_csv(d / "field.csv.gz", 700 * MiB), f"line 3: {ROW_LIMIT}"),
    ("200 MiB line of short fields", lambda d: long_line_csv(d / "line.csv.gz", 200 * MiB), f"line 3: {ROW_LIMIT}"),
    ("100 MiB quoted field of lines", lambda d: quoted_field_csv(d / "quoted.csv.gz", 100 * MiB), ROW_LIMIT),
    ("50,000 columns", lambda d: wide_csv(d / "wide.csv.gz", 50_000, 20), "line 1: more than 10,000 columns (max_columns)"),
    ("200 MiB JSON line", lambda d: long_json_line(d / "line.jsonl.gz", 200 * MiB), f"line 2: {ROW_LIMIT}"),
    ("JSON line nested 100,000 deep", lambda d: deep_json_line(d / "deep.jsonl.gz", 100_000),
     f"line 2: JSON nested deeper than {MAX_DEPTH} levels"),
    ("700 MiB JSON array element", lambda d: huge_json_element(d / "element.json.gz", 700 * MiB), f"line 2: {ROW_LIMIT}"),
    ("JSON array element nested 100,000 deep", lambda d: deep_json_array(d / "deep.json.gz", 100_000),
     f"line 2: JSON nested deeper than {MAX_DEPTH} levels"),
]


@pytest.mark.parametrize("make, reason", [(make, reason) for _, make, reason in HOSTILE], ids=[h[0] for h in HOSTILE])
def test_hostile_file_fails_early_with_one_line_in_bounded_memory(tmp_path, make, reason):
    src = make(tmp_path)
    dst = tmp_path / "out.parquet"
    code, stderr, peak = convert_in_child(src, dst)
    assert (code, stderr) == (1, f"leanlake: {src}: {reason}\n")
    assert peak < BUDGET, f"peak RSS {peak / MiB:.0f} MiB"
    assert sorted(p.name for p in tmp_path.iterdir()) == [src.name]  # no output, no temporary file left


def gigabyte_csv_zst(path: Path) -> tuple[Path, int]:
    """A 1 GiB CSV as a small ``.csv.zst`` (a shuffled 1 MiB block of rows, repeated): (its path, its rows).
    Places repeat within their country, so ``sort: auto`` finds keys and sorts every group."""
    import random

    import zstandard

    rng = random.Random(1)
    lines: list[str] = []
    size = 0
    while size < MiB - 100:
        c = rng.randrange(40)
        lines.append(f"country-{c},place-{c}-{rng.randrange(50)},{rng.randrange(10**6)},{rng.random():.6f}\n")
        size += len(lines[-1])
    block = "".join(lines).encode()
    copies = (1 << 30) // len(block)
    with zstandard.ZstdCompressor(level=1).stream_writer(open(path, "wb"), closefd=True) as out:
        out.write(b"country,place,n,x\n")
        for _ in range(copies):
            out.write(block)
    return path, copies * len(lines)


@pytest.fixture(scope="module")
def gigabyte_csv(tmp_path_factory) -> tuple[Path, int]:
    return gigabyte_csv_zst(tmp_path_factory.mktemp("big") / "big.csv.zst")


@pytest.mark.parametrize("flags, budget", [((), 256 * MiB), (("--sort", "auto"), 512 * MiB)], ids=["default", "sort-auto"])
def test_a_1_gib_csv_converts_in_bounded_memory(tmp_path, gigabyte_csv, flags, budget):
    """The README's bounded-memory guarantee: a 1 GiB CSV (1.3 GiB as Arrow arrays) converts in under 256 MiB of peak
    RSS, and under 512 MiB with ``sort: auto``, whose row groups are bigger (three alive at once)."""
    src, rows = gigabyte_csv
    dst = tmp_path / "big.parquet"
    code, stderr, peak = convert_in_child(src, dst, *flags)
    assert (code, stderr) == (0, "")
    assert peak < budget, f"peak RSS {peak / MiB:.0f} MiB"
    meta = pq.read_metadata(dst)
    assert meta.num_rows == rows and meta.num_row_groups > 10
    if flags:
        assert json.loads(meta.metadata[b"leanlake.sort"])[0] == "country"


def test_a_16_mib_field_converts_by_default_and_the_flag_lowers_the_limit(tmp_path):
    src = huge_field_csv(tmp_path / "f16.csv.gz", 16 * MiB)
    dst = tmp_path / "f16.parquet"
    code, stderr, peak = convert_in_child(src, dst)
    assert (code, stderr) == (0, "")
    assert peak < BUDGET, f"peak RSS {peak / MiB:.0f} MiB"
    table = pq.read_table(dst)
    assert table.column("blob").to_pylist() == ["small", "x" * (16 * MiB), "tail"]
    assert table.column("z").to_pylist() == [3, 4, 5]
    os.remove(dst)
    code, stderr, _ = convert_in_child(src, dst, "--max-row-size", "8 MiB")
    assert (code, stderr) == (1, f"leanlake: {src}: line 3: a row longer than 8 MiB (max_row_size); refusing to hold it in memory\n")
    assert not dst.exists()
    code, stderr, _ = convert_in_child(src, dst, "--max-row-size", "lots")
    assert code == 2 and stderr.startswith("leanlake: --max-row-size: not a size: 'lots'") and stderr.count("\n") == 1


def test_a_row_at_the_limit_converts_and_one_byte_more_fails(tmp_path):
    limit = 1 * MiB
    row = b"2," + b"x" * (limit - 3) + b"\n"  # exactly ``limit`` bytes with its newline
    for body, ok in ((b"id,blob\n1,a\n" + row + b"3,c\n", True), (b"id,blob\n1,a\n2,x" + row[2:] + b"3,c\n", False)):
        out = tmp_path / "limit.parquet"
        options = ConvertOptions(max_row_size=limit)
        if ok:
            assert convert_to_parquet(lambda: io.BytesIO(body), out, options).rows == 3
        else:
            with pytest.raises(ConversionError, match=r"^line 3: a row longer than 1 MiB"):
                convert_to_parquet(lambda: io.BytesIO(body), out, options)
            assert not out.exists()


def test_a_json_line_longer_than_arrows_block_converts(tmp_path):
    """Arrow's JSON reader refused lines over its 4 MiB block ("straddling object"); 16 MiB is fine now."""
    blob = "j" * (16 * MiB)
    body = json.dumps({"id": 1}).encode() + b"\n" + json.dumps({"id": 2, "blob": blob}).encode() + b"\n"
    out = tmp_path / "j.parquet"
    assert convert_to_parquet(lambda: io.BytesIO(body), out).rows == 2
    assert pq.read_table(out).column("blob").to_pylist() == [None, blob]


# ---------------------------------------------------------------- wide files
def test_columns_up_to_the_limit_convert_and_one_more_is_refused_from_the_header(tmp_path):
    out = tmp_path / "w.parquet"
    body = wide_csv(tmp_path / "w.csv.gz", 300, 50).read_bytes()
    assert convert_to_parquet(lambda: io.BytesIO(body), out, ConvertOptions(max_columns=300)).columns == 300
    with pytest.raises(ConversionError, match=r"^line 1: more than 299 columns \(max_columns\)$"):
        convert_to_parquet(lambda: io.BytesIO(body), out, ConvertOptions(max_columns=299))
    assert not out.exists()
    # Quoted delimiters and newlines in the header are one field each.
    quoted = b'a,"b,c","d\ne"\n1,2,3\n'
    assert convert_to_parquet(lambda: io.BytesIO(quoted), out, ConvertOptions(max_columns=3)).columns == 3


def test_wide_tables_get_row_groups_big_enough_for_their_footer(tmp_path):
    """3,000 columns × 1,000 int64 rows is 24 MB of Arrow data: at the plain 12 MiB bound it made row
    groups of ~500 rows, each adding 3,000 column chunks of metadata; the width-scaled bound keeps one."""
    out = tmp_path / "wide.parquet"
    body = wide_csv(tmp_path / "wide.csv.gz", 3000, 1000).read_bytes()
    result = convert_to_parquet(lambda: io.BytesIO(body), out)
    meta = pq.read_metadata(out)
    assert (result.rows, result.columns, meta.num_row_groups) == (1000, 3000, 1)


def test_too_many_column_chunks_fail_instead_of_growing_the_footer_without_bound(tmp_path, monkeypatch):
    from chalicelib.formats import parquet_writer

    monkeypatch.setattr(parquet_writer, "MAX_COLUMN_CHUNKS", 20)
    options = ConvertOptions(row_group_rows=10, max_row_size=1024)  # 1 KiB pieces: a row group each
    out = tmp_path / "chunks.parquet"
    body = b"a,b,c,d\n" + b"1,2,3,4\n" * 1000
    with pytest.raises(ConversionError, match=r"^more than 20 column chunks \(4 columns × 6 row groups\): "):
        convert_to_parquet(lambda: io.BytesIO(body), out, options)
    assert not out.exists()
    assert convert_to_parquet(lambda: io.BytesIO(body[:8 + 8 * 500]), out, options).rows == 500
    assert 1 < pq.read_metadata(out).num_row_groups <= 20 // 4


# ---------------------------------------------------------------- JSON nesting and text
def test_json_nesting_up_to_the_limit_converts_and_reads_back(tmp_path):
    """Depth 50 (49 nested lists in a record) is the deepest Parquet readers accept; 51 fails early."""
    out = tmp_path / "d.parquet"
    ok = b'{"a": ' + b"[" * (MAX_DEPTH - 1) + b"1" + b"]" * (MAX_DEPTH - 1) + b"}\n"
    assert convert_to_parquet(lambda: io.BytesIO(ok * 3), out).rows == 3
    assert pq.read_table(out).num_rows == 3
    deep = b'{"a": ' + b"[" * MAX_DEPTH + b"1" + b"]" * MAX_DEPTH + b"}\n"
    for body in (ok + deep, b"[" + ok.strip() + b",\n" + deep.strip() + b"]"):
        with pytest.raises(ConversionError, match=rf"^line 2: JSON nested deeper than {MAX_DEPTH} levels$"):
            convert_to_parquet(lambda: io.BytesIO(body), out)
        assert not out.exists()


def test_depth_is_exact_for_alternating_brackets_and_ignores_brackets_in_strings():
    alternating = b"[{" * 30 + b"}]" * 30  # depth 60: brackets of both kinds count alike
    assert too_deep_line(b'{"ok": 1}\n' + alternating + b"\n", 59) == 1
    assert too_deep_line(alternating + b"\n", 60) is None
    assert too_deep_line(b'{"s": "' + b"[" * 100 + b'"}\n', 3) is None
    assert too_deep_line(b'{"s": "\\"[[[[", "t": [[[1]]]}\n', 3) == 0  # an escaped quote does not end the string


PAST_THE_HEAD = 30_000  # lines of 10 bytes: the sniffed head (256 KiB) only sees valid text


@pytest.mark.parametrize("body, reason", [
    (b'{"a": "o"}\n' * PAST_THE_HEAD + b'{"a": "\xff\xfe"}\n', rf"^line {PAST_THE_HEAD + 1}: not text: invalid UTF-8$"),
    (b"[" + b'{"a": "o"},\n' * PAST_THE_HEAD + b'{"a": "\xc3"}]', rf"^line {PAST_THE_HEAD + 1}: not text: invalid UTF-8$"),
    (b'[{"a": "line\nbreak"}]', r"^line 1: invalid JSON: a raw line break inside a string$"),
    (b'[{"a": 1},\n {"a": [1, 2}', r"^line 2: invalid JSON: the file ends inside an array element$"),
    (b'[{"a": 1},\n 7]', r"^line 2: JSON array element is not an object$"),
])
def test_json_text_problems_name_their_line(tmp_path, body, reason):
    out = tmp_path / "bad.parquet"
    with pytest.raises(ConversionError, match=reason):
        convert_to_parquet(lambda: io.BytesIO(body), out)
    assert not out.exists()


class Trickle(io.RawIOBase):
    """A stream that returns at most ``step`` bytes per read, so every token meets a buffer end."""

    def __init__(self, data: bytes, step: int) -> None:
        self._b, self._step = io.BytesIO(data), step

    def readable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:
        return self._b.read(min(self._step, n if n is not None and n >= 0 else self._step))


_JSON_TEXT = st.text(alphabet=st.sampled_from(list('ab"\\{}[],: \n\t\réø😀')), max_size=12)
_JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-10**6, 10**6) | _JSON_TEXT,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_JSON_TEXT, inner, max_size=4),
    max_leaves=12)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(records=st.lists(st.dictionaries(_JSON_TEXT, _JSON_VALUES, max_size=4), max_size=6),
       indent=st.sampled_from([None, 1]), step=st.integers(1, 9))
def test_array_elements_are_cut_exactly_whatever_the_reads(records, indent, step):
    """Every element comes out whole, on one line, equal to what was written, however the bytes arrive
    (strings holding brackets, quotes, escapes and non-ASCII; pretty-printed or not)."""
    data = json.dumps(records, indent=indent, ensure_ascii=False).encode()
    lines = ArrayToLines(Trickle(data, step), 1 << 20)
    out = [line for chunk, _ in lines.chunks(chunk_bytes=64) for line in chunk.split(b"\n") if line]
    assert [json.loads(line) for line in out] == records


# ---------------------------------------------------------------- through the upload pipeline on S3
def run_uploads(s3, bucket: str, key: str, convert: dict):
    from chalicelib.context import RunContext
    from chalicelib.ledger import Ledger
    from chalicelib.pipeline import handle_uploads
    from chalicelib.policy import PolicySet
    from chalicelib.refs import ObjectRef

    policies = PolicySet.from_dicts([{"name": "tables", "bucket": bucket, "filters": {"prefix": "raw/"},
                                      "actions": [{"convert": {"destination": "curated/{rel_dir}{stem}.parquet",
                                                               "source": "delete", **convert}}]}])
    return handle_uploads([ObjectRef(bucket, key)], RunContext(policies=policies, s3=s3), Ledger(emit_metrics=False))


def keys(s3, bucket: str) -> list[str]:
    """The bucket's keys but the audit trail's."""
    return sorted(o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", []) if not o["Key"].startswith("_leanlake/"))


@pytest.mark.parametrize("make, name, reason", [
    (lambda p: huge_field_csv(p, 700 * MiB), "field.csv.gz", f"line 3: {ROW_LIMIT}"),
    (lambda p: long_json_line(p, 200 * MiB), "line.jsonl.gz", f"line 2: {ROW_LIMIT}"),
    (lambda p: wide_csv(p, 50_000, 20), "wide.csv.gz", "line 1: more than 10,000 columns (max_columns)"),
], ids=["700 MiB CSV field", "200 MiB JSON line", "50,000 columns"])
def test_pipeline_reports_the_object_and_reason_and_keeps_the_source(s3, bucket, tmp_path, make, name, reason):
    body = make(tmp_path / name).read_bytes()
    s3.put_object(Bucket=bucket, Key=f"raw/{name}", Body=body)
    etag = s3.head_object(Bucket=bucket, Key=f"raw/{name}")["ETag"]
    (outcome,) = run_uploads(s3, bucket, f"raw/{name}", {})
    assert outcome.status == "error" and "\n" not in outcome.reason
    assert outcome.reason == f"s3://{bucket}/raw/{name}: {reason}"
    assert keys(s3, bucket) == [f"raw/{name}"]  # the source kept (though the policy deletes it), no output
    assert s3.head_object(Bucket=bucket, Key=f"raw/{name}")["ETag"] == etag
    assert s3.get_object(Bucket=bucket, Key=f"raw/{name}")["Body"].read() == body


def test_the_policy_max_row_size_reaches_the_converter(s3, bucket, tmp_path):
    body = huge_field_csv(tmp_path / "f16.csv.gz", 16 * MiB).read_bytes()
    s3.put_object(Bucket=bucket, Key="raw/f16.csv.gz", Body=body)
    (refused,) = run_uploads(s3, bucket, "raw/f16.csv.gz", {"max_row_size": "8 MiB"})
    assert refused.status == "error" and "line 3: a row longer than 8 MiB (max_row_size)" in refused.reason
    assert keys(s3, bucket) == ["raw/f16.csv.gz"]
    (converted,) = run_uploads(s3, bucket, "raw/f16.csv.gz", {})  # the 64 MiB default takes it
    assert converted.status == "ok", converted.reason
    assert keys(s3, bucket) == ["curated/f16.parquet"]
    table = pq.read_table(io.BytesIO(s3.get_object(Bucket=bucket, Key="curated/f16.parquet")["Body"].read()))
    assert table.column("blob").to_pylist()[1] == "x" * (16 * MiB)


@pytest.mark.parametrize("value, error", [
    ("2 GiB", "less than or equal to 1073741824"), ("512 KiB", "greater than or equal to 1048576"), ("lots", "not a size"),
])
def test_the_policy_max_row_size_is_validated(value, error):
    from chalicelib.policy import PolicySet

    with pytest.raises(ValueError, match=error):
        PolicySet.from_dicts([{"name": "t", "bucket": "some-bucket", "actions": [{"convert": {"max_row_size": value}}]}])


@pytest.mark.parametrize("cut", ["csv", "jsonl", "json"])
def test_a_long_row_is_refused_having_read_about_the_limit_only(cut):
    """The refusal comes after about ``max_row_size`` bytes of the row, not after the whole row."""
    from chalicelib.formats.csv_reader import record_chunks
    from chalicelib.formats.json_reader import _line_chunks

    head, filler = {"csv": (b"a,b\n1,", b"x"), "jsonl": (b'{"a": 1}\n{"a": "', b"x"), "json": (b'[{"a": 1},\n{"a": "', b"x")}[cut]
    stream = io.BytesIO(head + filler * (40 * MiB))
    pieces = {"csv": lambda: record_chunks(stream, 2 * MiB, 4 * MiB),
              "jsonl": lambda: (chunk for chunk, _ in _line_chunks(stream, 4 * MiB)),
              "json": lambda: (chunk for chunk, _ in ArrayToLines(stream, 4 * MiB).chunks())}[cut]
    with pytest.raises(ConversionError, match=r"^line 2: a row longer than 4 MiB \(max_row_size\)"):
        list(pieces())
    assert stream.tell() <= len(head) + 2 * 4 * MiB  # the limit, plus at most one read of as much
