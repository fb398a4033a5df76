"""Delimited text → Arrow record batches, with type widening instead of data loss.

pyarrow's streaming reader (``pyarrow.csv.open_csv``) infers column types from the first block
and fails when a later block does not fit (``A12`` in a column that was integer for 300,000
rows). :class:`CsvBatches` turns that failure into :class:`Widen`: the caller drops what it wrote
and takes another pass from a fresh ``open_source()`` with that column pinned to a wider type
(null → int64 → float64 → string, chosen from the offending value so usually one pass suffices;
other types → string), repeating until the whole file fits. Every value therefore survives with
the narrowest type that holds all of them.

Nulls: ``strings_can_be_null=False``, so a non-empty string — ``NA`` (Namibia), ``nan`` (a
first name) — and an empty string in a text column stay values; numeric and temporal columns read
``""``, ``NA``, ``N/A``, ``NaN``, ``nan``, ``null``, ``NULL``, ``None`` as null.

Column names are kept as written; duplicates (which Parquet readers cannot address) are renamed
deterministically: the second ``x`` becomes ``x_2``, the third ``x_3`` (skipping names taken).
"""
from __future__ import annotations

import csv
import io
import itertools
import re
from typing import Any, Callable, Dict, Iterator, List, Optional, Union

from .errors import ConversionError, one_line, row_too_long
from .options import ConvertOptions

__all__ = ["CsvPlan", "Widen", "dedupe_names", "find_ragged_line", "check_header_width", "NULL_VALUES"]

NULL_VALUES = ["", "NA", "N/A", "NaN", "nan", "null", "NULL", "None"]
USE_THREADS = True
_CONV = re.compile(r"In CSV column #(\d+): (?:Row #\d+: )?CSV conversion error to ([^:]+): invalid value '(.*)'", re.S)
_RAGGED = re.compile(r"Expected (\d+) columns, got (\d+)")
_INT64 = (-(1 << 63), (1 << 63) - 1)


class Widen(Exception):
    """Internal: the plan changed (wider type, bigger block, renamed columns); take a new pass."""


class CsvPlan:
    """What the next pass of the CSV reader does differently from pyarrow's defaults."""

    def __init__(self, delimiter: str, block_size: int, max_row_size: int = ConvertOptions.max_row_size) -> None:
        self.delimiter = delimiter
        self.block_size = min(block_size, max_row_size)
        self.max_row_size = max_row_size
        self.column_names: Optional[List[str]] = None  # set when duplicates were renamed
        self.column_types: Dict[str, Any] = {}
        self.passes = 0


def dedupe_names(names: List[str]) -> List[str]:
    """Rename repeated column names deterministically: ``a, a, a`` → ``a, a_2, a_3``."""
    seen = set(names)
    out: List[str] = []
    used: set = set()
    for name in names:
        if name not in used:
            out.append(name)
            used.add(name)
            continue
        k = 2
        while f"{name}_{k}" in used or f"{name}_{k}" in seen:
            k += 1
        out.append(f"{name}_{k}")
        used.add(f"{name}_{k}")
    return out


def _wider_type(current: str, value: str):
    """The type to pin a column to after ``value`` did not convert to ``current``."""
    import pyarrow as pa

    v = value.strip()
    if current == "null":
        try:
            n = int(v)
            if _INT64[0] <= n <= _INT64[1]:
                return pa.int64()
        except ValueError:
            pass
    if current in ("null", "int64"):
        try:
            int(v)
            return pa.string()  # an integer beyond int64: keep it exact as text
        except ValueError:
            pass
        try:
            float(v)
            return pa.float64()
        except ValueError:
            pass
    return pa.string()


def _reader(stream, plan: CsvPlan):
    import pyarrow.csv as pcsv

    read_opts = pcsv.ReadOptions(block_size=plan.block_size, use_threads=USE_THREADS)
    if plan.column_names is not None:
        read_opts = pcsv.ReadOptions(block_size=plan.block_size, use_threads=USE_THREADS,
                                     column_names=plan.column_names, skip_rows=1)
    parse_opts = pcsv.ParseOptions(delimiter=plan.delimiter, newlines_in_values=True)
    conv_opts = pcsv.ConvertOptions(
        null_values=NULL_VALUES, strings_can_be_null=False, quoted_strings_can_be_null=True,
        column_types=plan.column_types or None,
    )
    return pcsv.open_csv(stream, read_options=read_opts, parse_options=parse_opts, convert_options=conv_opts)


def find_ragged_line(stream, delimiter: str, expected: int, actual: Optional[int]) -> Optional[int]:
    """Re-scan decoded text; return the 1-based physical line where the first ragged record starts."""
    text = io.TextIOWrapper(stream, encoding="utf-8", errors="replace", newline="")
    reader = csv.reader(text, delimiter=delimiter, quotechar='"', doublequote=True, strict=False)
    prev = 0
    try:
        for row in reader:
            start = prev + 1
            prev = reader.line_num
            if row and len(row) != expected:
                return start
    except csv.Error:
        return prev + 1
    return None


class CsvBatches:
    """One pass over delimited text. Iterate for record batches; ``schema`` after ``open()``."""

    #: A ``threading.Event`` the caller may set while the Parquet writer thread encodes a row group
    #: (``write_batches(busy=…)``): :class:`ChunkedCsvBatches` then parses one piece at a time where
    #: there are too few cores for both parsing threads and the writer, so the parsing takes one core
    #: and the writer, the slower stage, keeps the other.
    writer_busy: Optional[Any] = None
    #: Cores this process may run on; None: ask the system (``available_cores``).
    cores: Optional[int] = None

    def __init__(self, stream, plan: CsvPlan) -> None:
        self.stream = stream
        self.plan = plan
        self.reader: Any = None

    def open(self):
        self.plan.passes += 1
        try:
            self.reader = _reader(self.stream, self.plan)
        except Exception as exc:
            self._fail(exc)
        names = self.reader.schema.names
        if self.plan.column_names is None and len(set(names)) != len(names):
            self.plan.column_names = dedupe_names(names)
            raise Widen("duplicate column names")
        return self.reader.schema

    def close(self) -> None:
        """End the pass: the streaming reader may still be reading ahead from the stream in Arrow's
        threads (a pass given up for a bigger block, a failure), so it is closed and the stream
        waits until they are out (see :meth:`~.streams.DecodedSource.stop_readers`)."""
        reader, self.reader = self.reader, None
        if reader is None:
            return
        try:
            reader.close()
        except Exception:
            pass
        stop = getattr(self.stream, "stop_readers", None)
        if stop is not None:
            stop()

    def __iter__(self) -> Iterator[Any]:
        while True:
            try:
                batch = self.reader.read_next_batch()
            except StopIteration:
                return
            except Exception as exc:
                self._fail(exc)
            yield batch

    def _fail(self, exc: BaseException) -> None:
        err = getattr(self.stream, "error", None)
        if err is not None:
            raise err from exc
        if isinstance(exc, ConversionError):
            raise exc
        msg = str(exc)
        m = _CONV.search(msg)
        if m:
            idx, typ, value = int(m.group(1)), m.group(2).strip(), m.group(3)
            names = self._column_names()
            if typ.startswith("string") or typ.startswith("utf8"):
                raise ConversionError(f"not text: invalid UTF-8 in column {idx + 1}") from None
            if names is None:
                raise ConversionError(one_line(msg)) from None
            name = names[idx]
            new = _wider_type(typ, value)
            if self.plan.column_types.get(name) == new:
                new = self._string()
                if self.plan.column_types.get(name) == new:
                    raise ConversionError(f"column {name!r}: cannot convert value {value!r}") from None
            self.plan.column_types[name] = new
            raise Widen(f"column {name!r}: {typ} → {new}") from None
        m = _RAGGED.search(msg)
        if m:
            raise RaggedRow(int(m.group(1)), int(m.group(2))) from None
        if "straddl" in msg or "block size" in msg.lower() or "larger than" in msg.lower():
            if self.plan.block_size >= self.plan.max_row_size:  # a block holds any row up to its size
                raise row_too_long(self.plan.max_row_size) from None
            self.plan.block_size = min(self.plan.block_size * 4, self.plan.max_row_size)
            raise Widen("bigger block") from None
        if "UTF8" in msg or "UTF-8" in msg:
            raise ConversionError("not text: invalid UTF-8") from None
        if "Empty CSV file" in msg:
            raise ConversionError("empty file") from None
        raise ConversionError(one_line(msg)) from None

    def _column_names(self) -> Optional[List[str]]:
        return self.reader.schema.names if self.reader is not None else self.plan.column_names

    @staticmethod
    def _string():
        import pyarrow as pa

        return pa.string()


class RaggedRow(Exception):
    """Internal: a record with the wrong number of fields; the caller finds its line number."""

    def __init__(self, expected: int, actual: int) -> None:
        super().__init__(f"expected {expected} fields, saw {actual}")
        self.expected = expected
        self.actual = actual


class Sequential(Exception):
    """Internal: chunked parsing cannot be trusted for this file; take another pass with the streaming reader."""


def record_chunks(stream, size: int, max_record: int) -> Iterator[bytes]:
    """Cut decoded text into pieces of about ``size`` bytes that end at a record boundary.

    A newline ends a record when the number of quote characters before it is even (RFC 4180:
    ``""`` inside a quoted field keeps the parity). The bytes of an unfinished record are kept as
    a list of reads (no re-copying while a long record grows). Reads are at most ``max_record``
    bytes, so a longer record spans reads and is seen, at the latest when ``max_record`` bytes of
    it were read:

    * with no newline in it, no reading of the quotes can end the record in time, so the row is
      too long: ConversionError naming its line;
    * with newlines that parity calls quoted (a stray quote in an unquoted field, or a long quoted
      field), raise :class:`Sequential`: the streaming reader, which needs no cuts, takes over and
      applies the same limit through its block size.

    >>> list(record_chunks(io.BytesIO(b'a,b\\n1,"x\\ny"\\n2,z\\n'), 9, 64))
    [b'a,b\\n', b'1,"x\\ny"\\n2,z\\n']
    """
    count = _byte_counter()
    parts: List[Union[bytes, memoryview]] = []  # reads since the last record boundary
    pending = quotes = 0  # their length and quote count
    has_newline = False
    lines = 0  # newlines in the pieces yielded so far
    size = min(size, max_record)

    def too_long() -> Exception:
        if has_newline:
            return Sequential(f"no record boundary within {max_record:,} bytes")
        return row_too_long(max_record, line=lines + 1)

    while True:
        data = stream.read(size)
        if not data:
            if parts:
                yield b"".join(parts)
            return
        cut = data.rfind(b"\n")
        for _ in range(64):
            if cut == -1 or (quotes + count(data, QUOTE, cut)) % 2 == 0:
                break
            cut = data.rfind(b"\n", 0, cut)
        else:
            cut = -1
        if cut == -1:
            parts.append(data)
            pending += len(data)
            quotes += data.count(b'"')
            has_newline = has_newline or b"\n" in data
            if pending > max_record:
                raise too_long()
            continue
        if parts and pending + data.find(b"\n") + 1 > max_record:  # the record ends at or after that newline
            raise too_long()
        parts.append(memoryview(data)[: cut + 1])  # a view: the join below is the one copy
        piece = b"".join(parts) if len(parts) > 1 or cut + 1 < len(data) else data
        lines += count(piece, NEWLINE, len(piece))
        yield piece
        rest = data[cut + 1 :]
        parts = [rest] if rest else []
        pending, quotes, has_newline = len(rest), rest.count(b'"'), b"\n" in rest


def available_cores() -> int:
    """Cores this process may run on (its CPU affinity where the system has one).

    >>> available_cores() >= 1
    True
    """
    import os

    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - macOS, Windows
        return os.cpu_count() or 1


QUOTE, NEWLINE = ord('"'), ord("\n")
_COUNT_STEP = 256 << 10  # bytes compared at a time: the comparison's temporary stays small


def _byte_counter() -> Callable[[bytes, int, int], int]:
    """``count(data, byte, end)``: how often ``byte`` occurs in ``data[:end]``. With NumPy (a dependency
    of the CLI; the Lambda package does not carry it, and there ``bytes.count`` counts), a vector compare: measured 0.3 ms per 2 MiB
    piece against 1.6 ms for ``bytes.count`` of one byte, which counted quotes and newlines over every
    piece in the reading thread: ~0.5 s of CPU per 300 MB.

    >>> _byte_counter()(b'a"b"\\n"', QUOTE, 4), _byte_counter()(b'a\\nb\\n', NEWLINE, 3)
    (2, 1)
    """
    try:
        import numpy as np
    except ImportError:  # pragma: no cover - pyarrow runs without NumPy
        return lambda data, byte, end: data.count(bytes((byte,)), 0, end)

    def count(data: bytes, byte: int, end: int) -> int:
        if end <= 0:
            return 0
        view = np.frombuffer(data, np.uint8, count=end)
        return sum(int(np.count_nonzero(view[at:at + _COUNT_STEP] == byte)) for at in range(0, end, _COUNT_STEP))

    return count


class ChunkedCsvBatches(CsvBatches):
    """One pass that parses record-aligned pieces on two threads (pyarrow releases the GIL).

    pyarrow's streaming CSV reader parses on one core; cutting the text at record boundaries and
    parsing the pieces with ``read_csv`` in a small pool uses both. Types are inferred from the
    first piece and pinned for the rest, so a later piece that does not fit raises the same
    conversion error the streaming reader would, and the same widening follows. Any parse error
    makes the caller retry with the streaming reader (a cut could have been wrong), which then
    reports a genuinely ragged row with its line number.

    On two cores or fewer, two pieces parse at once only while ``writer_busy`` is clear. There, two
    parsing threads beside the writer thread took a third of its core, so the writer (the critical
    path) ran at ~2/3 speed while the parsing ran ahead, and then one core idled while the reader
    waited for the writer to take the next row group (1.5-5 s per 300 MB file): now the writer
    keeps a core while it encodes, and both cores parse while it waits for rows.
    """

    PIECE = 2 << 20      # measured: 2 MiB pieces, 2 in flight keep both cores busy at the lowest peak RSS
    IN_FLIGHT = 2
    LOOKAHEAD = 16 << 20

    def open(self):
        self.plan.passes += 1
        self.pieces = record_chunks(self.stream, self.PIECE, self.plan.max_row_size)
        first = next(self.pieces, b"")
        if not first.strip():
            raise ConversionError("empty file")
        header = first[: first.find(b"\n") + 1 or len(first)].decode("utf-8", errors="replace")
        self.header_names = next(csv.reader([header], delimiter=self.plan.delimiter), [])
        self.schema = None
        try:
            self.first = self._parse(first, header=True, types=self.plan.column_types or None)
        except Exception as exc:
            self._fail(exc)
        names = self.first.schema.names
        if self.plan.column_names is None and len(set(names)) != len(names):
            self.plan.column_names = dedupe_names(names)
            raise Widen("duplicate column names")
        padded = self._zero_padded(first)
        if padded:
            import pyarrow as pa

            self.plan.column_types.update({name: pa.string() for name in padded})
            raise Widen(f"leading zeros in {', '.join(padded)}")
        self.schema = self.first.schema
        self.lookahead, typed = self._type_empty_columns()
        if typed:  # parse the first piece again with those types: "" stays "" in a text column
            try:
                self.first = self._parse(first, header=True, types=self.plan.column_types)
            except Exception as exc:
                self._fail(exc)
            self.schema = self.first.schema
        return self.schema

    def _type_empty_columns(self) -> tuple[List[bytes], bool]:
        """Columns that are empty all through the first piece get their type from the next pieces
        (read ahead, at most ``LOOKAHEAD`` bytes, kept for the pass), so a sparse column whose first
        value comes a few MiB in needs no second pass. Returns the pieces read ahead, and whether a
        column got a type."""
        import pyarrow as pa

        empty = [f.name for f in self.first.schema if pa.types.is_null(f.type) and f.name not in self.plan.column_types]
        ahead: List[bytes] = []
        size, typed_any = 0, False
        while empty and size < self.LOOKAHEAD:
            piece = next(self.pieces, None)
            if piece is None:
                break
            ahead.append(piece)
            size += len(piece)
            try:
                found = self._parse(piece, header=False, types=None, include=empty).schema
            except Exception:
                break  # the pass itself will meet this piece and say what is wrong with it
            typed = {f.name: f.type for f in found if not pa.types.is_null(f.type)}
            self.plan.column_types.update(typed)
            typed_any = typed_any or bool(typed)
            empty = [name for name in empty if name not in typed]
        return ahead, typed_any

    def _zero_padded(self, piece: bytes) -> List[str]:
        """Numeric columns of the first piece holding zero-padded values (``007``, a ZIP code ``02134``):
        as numbers they would lose the zeros, so they stay text."""
        import pyarrow as pa
        import pyarrow.compute as pc
        import pyarrow.csv as pcsv

        numeric = [f.name for f in self.first.schema
                   if (pa.types.is_integer(f.type) or pa.types.is_floating(f.type)) and f.name not in self.plan.column_types]
        if not numeric:
            return []
        names = self.plan.column_names
        text = pcsv.read_csv(
            pa.py_buffer(piece),
            read_options=pcsv.ReadOptions(block_size=len(piece) + 1, use_threads=False, column_names=names,
                                          skip_rows=1 if names else 0),
            parse_options=pcsv.ParseOptions(delimiter=self.plan.delimiter, newlines_in_values=True),
            convert_options=pcsv.ConvertOptions(include_columns=numeric, column_types={n: pa.string() for n in numeric},
                                                strings_can_be_null=False))
        return [n for n in numeric if pc.any(pc.match_substring_regex(text.column(n), r"^\s*[-+]?0[0-9]")).as_py()]

    def _parse(self, piece: bytes, *, header: bool, types, include: Optional[List[str]] = None):
        import pyarrow as pa
        import pyarrow.csv as pcsv

        names = self.plan.column_names if header else (self.plan.column_names or self.schema.names)
        read_opts = pcsv.ReadOptions(block_size=len(piece) + 1, use_threads=False, column_names=names,
                                     skip_rows=1 if header and names else 0)
        parse_opts = pcsv.ParseOptions(delimiter=self.plan.delimiter, newlines_in_values=True)
        conv_opts = pcsv.ConvertOptions(null_values=NULL_VALUES, strings_can_be_null=False,
                                        quoted_strings_can_be_null=True, column_types=types, include_columns=include)
        return pcsv.read_csv(pa.py_buffer(piece), read_options=read_opts, parse_options=parse_opts, convert_options=conv_opts)

    def __iter__(self) -> Iterator[Any]:
        from collections import deque
        from concurrent.futures import ThreadPoolExecutor

        yield from self.first.to_batches()
        self.first = None
        types = {f.name: f.type for f in self.schema}
        lookahead, self.lookahead = self.lookahead, []
        cores = self.cores if self.cores is not None else available_cores()
        busy = self.writer_busy if cores <= self.IN_FLIGHT else None  # with a core each, no need to yield
        with ThreadPoolExecutor(max_workers=self.IN_FLIGHT, thread_name_prefix="leanlake-csv") as pool:
            futures: deque = deque()
            try:
                for piece in itertools.chain(lookahead, self.pieces):  # read while the previous pieces parse
                    parsed = []
                    while futures and (len(futures) >= self.IN_FLIGHT or busy is not None and busy.is_set()):
                        parsed.append(self._result(futures.popleft()))
                    # the next piece parses while the caller takes these rows (and maybe waits for the writer)
                    futures.append(pool.submit(self._parse, piece, header=False, types=types))
                    for table in parsed:
                        yield from table.to_batches()
                while futures:
                    yield from self._result(futures.popleft()).to_batches()
            finally:
                for future in futures:
                    future.cancel()

    def _result(self, future) -> Any:
        try:
            table = future.result()
        except Exception as exc:
            self._fail(exc)
        if table.schema != self.schema:
            table = table.cast(self.schema)
        return table

    def _column_names(self) -> Optional[List[str]]:
        if self.schema is not None:
            return self.schema.names
        return self.plan.column_names or self.header_names

    def _fail(self, exc: BaseException) -> None:
        if isinstance(exc, Sequential):
            raise exc
        try:
            super()._fail(exc)
        except RaggedRow:
            raise Sequential("a piece did not parse; the streaming reader decides") from None


_QUOTED_FIELD = re.compile(rb'"[^"]*(?:""[^"]*)*"')


def check_header_width(stream, delimiter: str, max_columns: int, max_row_size: int) -> None:
    """Refuse a header of more than ``max_columns`` fields before Arrow parses it.

    Arrow's CSV reader costs ~9 KiB of memory per column for every parse (measured: 50,000
    columns, 450 MiB per 2 MiB piece), so the width is counted here, quote-aware, on bytes peeked
    from ``stream`` (a :class:`~.streams.DecodedSource`; nothing is consumed), reading further than
    the sniffed head only when the header is longer. A header longer than ``max_row_size`` is a
    row too long.
    """
    delim = delimiter.encode()
    stops = re.compile(b"[" + re.escape(delim) + b"\n]")
    size = len(stream.head) or 1
    while True:
        data = stream.peek(size)
        fields, pos, complete = 0, 0, False
        while fields <= max_columns:
            fields += 1
            if data.startswith(b'"', pos):
                m = _QUOTED_FIELD.match(data, pos)
                if m is None:
                    break  # the quoted field goes on beyond what was peeked
                pos = m.end()
            stop = stops.search(data, pos)
            if stop is None:
                break
            pos = stop.end()
            if data[stop.start()] == 10:  # newline: the header is complete
                complete = True
                break
        if fields > max_columns:
            raise ConversionError(f"more than {max_columns:,} columns (max_columns)", line=1)
        if complete or len(data) < size:
            return
        if size > max_row_size:
            raise row_too_long(max_row_size, line=1)
        size = min(size * 4, max_row_size + 1)
