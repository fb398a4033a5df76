"""JSON Lines and JSON arrays → Arrow tables, in bounded chunks, widening instead of failing.

* **JSON Lines** are cut into chunks of whole lines (``CHUNK_BYTES``) and each chunk is parsed by
  ``pyarrow.json.read_json`` (multi-threaded, nested objects → structs, arrays → lists).
* **A JSON array of objects** (``[{...}, {...}]``, pretty-printed or not, any size) is turned into
  JSON Lines incrementally: :class:`ArrayToLines` finds each element's extent by a structural scan
  (strings skipped by a regular expression, brackets counted; no Python objects are built) and
  emits it on one line (raw line breaks can only be whitespace in valid JSON). Nothing ever
  loads the whole file.
* **Bounded memory for any input**: a line or element longer than ``max_row_size`` fails as soon
  as that many bytes were read without its end; nesting deeper than :data:`MAX_DEPTH` fails
  before Arrow parses it (measured: a line nested 10,000 deep crashed the process in Arrow, and
  Parquet readers refuse schemas deeper than 100 levels). Arrow does not check UTF-8 in JSON strings, so
  every chunk is validated first: invalid text never reaches a Parquet string column.
* **Schemas**: every chunk is conformed to the target schema with Arrow's permissive promotion
  (missing fields → null, int → float, struct fields merged). When a chunk needs a wider target
  (a new field, a promoted type) the caller takes another pass from a fresh source with that
  target. A field whose values mix kinds that cannot be unified (number and string, object and
  string) is kept losslessly as text: strings as they are, other values as their JSON text.
"""
from __future__ import annotations

import json
import re
from typing import Any, Iterator, List, Optional, Set, Tuple

from .csv_reader import Widen
from .errors import ConversionError, one_line, row_too_long
from .options import ConvertOptions

__all__ = ["JsonPlan", "ArrayToLines", "JsonBatches", "MAX_DEPTH", "too_deep_line"]

CHUNK_BYTES = 16 << 20
_READ = 4 << 20
#: Deepest nesting accepted, counting the record itself: ``{"a": [1]}`` is 2. Parquet readers refuse
#: schemas deeper than 100 levels and a JSON list takes two of them (measured: 49 nested lists in a
#: record read back, 50 do not).
MAX_DEPTH = 50
#: Lines up to this size are diagnosed with :func:`json.loads` (good messages); longer ones by
#: Arrow, since Python objects of a hostile line can take 20× its bytes.
_PY_DIAGNOSE_MAX = 1 << 20
_CONFLICT = re.compile(r"Column\(/([^/)]*)")
_MERGE = re.compile(r"Field (.+?) has incompatible types")
#: Everything up to the next bracket or unfinished string: runs of other bytes and whole strings
#: (on one line; a raw line break inside a string is invalid JSON), possessive so nothing is kept
#: for backtracking however long the run.
_RUN = rb'[^"\[\]{}]*+(?:"[^"\\\n\r]*+(?:\\.[^"\\\n\r]*+)*+"[^"\[\]{}]*+)*+'


def _nests(depth: int) -> List[bytes]:
    """Patterns by depth ``k``: runs of other bytes, strings and nests whose brackets balance within
    ``k`` levels (kinds unchecked: the parser checks those)."""
    patterns = [_RUN]
    for _ in range(depth):
        patterns.append(rb"%s(?:[{[]%s[]}]%s)*+" % (_RUN, patterns[-1], _RUN))
    return patterns


_FAST_DEPTH = 6
_NESTS = [re.compile(p) for p in _nests(_FAST_DEPTH)]
_FAST_ELEMENT = re.compile(rb"\{%s[]}]" % _nests(_FAST_DEPTH - 1)[-1])  # a whole element up to 6 levels
_STRING = re.compile(rb'"[^"\\\n]*(?:\\.[^"\\\n]*)*"')
_NON_SPACE = re.compile(rb"[^ \t\r\n]")
_BREAKS_TO_SPACES = bytes.maketrans(b"\r\n", b"  ")
_OPEN, _CLOSE = b"{[", b"}]"
_NESTING = bytes.maketrans(b"{[}]", b"(())")  # both kinds of bracket count alike
_NOT_NESTING = bytes(c for c in range(256) if c not in b"{[}]\n")
_NOT_OPENING = bytes(c for c in range(256) if c not in b"{[\n")


class JsonPlan:
    """State carried across passes: target schema, the fields kept as JSON text, the row limit."""

    def __init__(self, max_row_size: int = ConvertOptions.max_row_size) -> None:
        self.schema = None
        self.stringify: Set[str] = set()
        self.passes = 0
        self.max_row_size = max_row_size


def too_deep(line: Optional[int]) -> ConversionError:
    return ConversionError(f"JSON nested deeper than {MAX_DEPTH} levels", line=line)


def too_deep_line(chunk: bytes, limit: int = MAX_DEPTH) -> Optional[int]:
    """0-based index of the first line of ``chunk`` nested deeper than ``limit``, or None.

    No line can be deeper than its count of ``{`` and ``[``, which rules out almost every chunk in
    one pass. Otherwise strings are removed, brackets kept, and innermost pairs deleted ``limit``
    times (:meth:`bytes.replace` deletes the pairs present when it starts, one level per round):
    a pair left over is a nest deeper than ``limit``. Malformed lines are left to the parser.

    >>> too_deep_line(b'{"a": [1, {"b": "]]]"}]}\\n' + b'[' * 60 + b']' * 60 + b'\\n', 50)
    1
    >>> too_deep_line(b'{"a": "[[[[[[[["}\\n', 3) is None
    True
    """
    if max(map(len, chunk.translate(None, _NOT_OPENING).split(b"\n"))) <= limit:
        return None
    nesting = _STRING.sub(b"", chunk).translate(None, _NOT_NESTING).translate(_NESTING)
    for _ in range(limit):
        fewer = nesting.replace(b"()", b"")
        if len(fewer) == len(nesting):
            return None
        nesting = fewer
    pair = nesting.find(b"()")
    return None if pair < 0 else nesting.count(b"\n", 0, pair)


def check_utf8(chunk: bytes) -> Optional[int]:
    """Byte offset of the first invalid UTF-8 in ``chunk``, or None (Arrow validates; Python only
    decodes to find the offset once it is known to be bad)."""
    import pyarrow as pa

    offsets = pa.array([0, len(chunk)], pa.int64()).buffers()[1]
    try:
        pa.Array.from_buffers(pa.large_string(), 1, [None, offsets, pa.py_buffer(chunk)]).validate(full=True)
        return None
    except pa.ArrowInvalid:
        try:
            chunk.decode("utf-8")
        except UnicodeDecodeError as exc:
            return exc.start
        return 0


def _string_end(buf: bytes, at: int) -> int:
    """Index after the string that starts with the quote at ``at``, or -1 if ``buf`` ends first
    (``bytes.find``, fast on a long string)."""
    j = at
    while True:
        j = buf.find(b'"', j + 1)
        if j < 0:
            return -1
        k = j - 1
        while buf[k] == 0x5C:  # backslash
            k -= 1
        if (j - 1 - k) % 2 == 0:  # an even run of backslashes: the quote is not escaped
            return j + 1


class ArrayToLines:
    """Iterate JSON Lines chunks (bytes) from a stream holding one JSON array of objects.

    An element's extent is found without building Python objects, so it costs its own bytes and
    nothing more: first by one regular expression matching a bracket-balanced element up to
    ``_FAST_DEPTH`` levels (nearly every real record, in C), else by a scan that skips strings and
    counts brackets. An element longer than ``max_row_size`` or deeper than :data:`MAX_DEPTH` fails
    as soon as the scan sees it. ``element_lines`` holds the 1-based line where each element of
    the chunk last yielded starts, for error messages.

    >>> import io
    >>> list(ArrayToLines(io.BytesIO(b'[{"a": "}"},\\n {"a": [2]}]'), 1 << 20).chunks())
    [(b'{"a": "}"}\\n{"a": [2]}\\n', 2)]
    """

    def __init__(self, stream, max_row_size: int) -> None:
        self.stream = stream
        self.max_row_size = max_row_size
        self.buf = b""
        self.pos = 0
        self.eof = False
        self._counted, self._lines = 0, 1  # line number at buffer offset _counted (counted lazily)
        self.element_lines: List[int] = []

    def _more(self, at_least: int = _READ) -> bool:
        """Append at least ``at_least`` bytes to the buffer (dropping what lies before ``pos``)."""
        if self.eof:
            return False
        data = self.stream.read(max(at_least, _READ))
        if not data:
            self.eof = True
            return False
        self._drop_consumed()
        self.buf += data
        return True

    def _drop_consumed(self) -> None:
        self._line_at(self.pos)
        self.buf = self.buf[self.pos:]
        self._counted -= self.pos
        self.pos = 0

    def _line_at(self, at: int) -> int:
        """Line number of buffer offset ``at`` (``at`` ≥ every offset asked before)."""
        self._lines += self.buf.count(b"\n", self._counted, at)
        self._counted = at
        return self._lines

    def _skip_ws(self) -> Optional[int]:
        """Move ``pos`` to the next non-space byte and return it, or None at the end of the stream."""
        while True:
            m = _NON_SPACE.search(self.buf, self.pos)
            if m is not None:
                self.pos = m.start()
                return self.buf[self.pos]
            self.pos = len(self.buf)
            if not self._more():
                return None

    def _expect(self, chars: bytes) -> int:
        c = self._skip_ws()
        if c is None or c not in chars:
            seen = "end of file" if c is None else repr(chr(c))
            raise ConversionError(f"invalid JSON: expected {' or '.join(repr(chr(x)) for x in chars)}, saw {seen}",
                                  line=self._line_at(self.pos))
        self.pos += 1
        return c

    def _element(self) -> bytes:
        """The element at ``pos`` (after spaces) on one line; ``pos`` moves past it."""
        c = self._skip_ws()
        if c != _OPEN[0]:
            if c is None:
                raise ConversionError("invalid JSON: the array is not closed", line=self._line_at(self.pos))
            raise ConversionError("JSON array element is not an object", line=self._line_at(self.pos))
        m = _FAST_ELEMENT.match(self.buf, self.pos)
        end = m.end() if m is not None else self._scan_element()
        if end - self.pos > self.max_row_size:
            raise row_too_long(self.max_row_size, line=self._line_at(self.pos))
        text = self.buf[self.pos:end].translate(_BREAKS_TO_SPACES)
        self.pos = end
        if end > _READ:  # a long element: do not keep its bytes twice
            self._drop_consumed()
        return text

    def _scan_element(self) -> int:
        """End offset of the element at ``pos``, counting brackets, reading more as needed.

        Between brackets one pattern skips, in C, everything that cannot change the depth: other
        bytes, strings, and nests balanced within the levels still allowed. Python sees only the
        brackets of deeper or unfinished nests, so a long element costs few steps."""
        depth, scan = 0, self.pos
        buf = self.buf
        while True:
            found = _NESTS[min(_FAST_DEPTH, MAX_DEPTH - depth)].match(buf, scan)
            at = found.end() if found else scan
            if at < len(buf):
                c = buf[at]
                if c in _OPEN:
                    depth += 1
                    if depth > MAX_DEPTH:
                        raise too_deep(self._line_at(self.pos))
                    scan = at + 1
                    continue
                if c in _CLOSE:
                    depth -= 1
                    scan = at + 1
                    if depth == 0:
                        return scan
                    continue
                if _string_end(buf, at) > 0:  # a string the pattern did not take: unfinished here, or broken
                    raise ConversionError("invalid JSON: a raw line break inside a string", line=self._line_at(at))
            scan = self._read_on(at)
            buf = self.buf
            while scan < len(buf) and buf[scan] == 0x22 and _string_end(buf, scan) < 0:
                scan = self._read_on(scan)  # a long string: find its end with bytes.find, not the pattern
                buf = self.buf

    def _read_on(self, at: int) -> int:
        """Read more of the element being scanned; return offset ``at`` in the new buffer."""
        if len(self.buf) - self.pos > self.max_row_size:
            raise row_too_long(self.max_row_size, line=self._line_at(self.pos))
        at -= self.pos
        if not self._more(min(max(len(self.buf) - self.pos, _READ), CHUNK_BYTES)):
            raise ConversionError("invalid JSON: the file ends inside an array element", line=self._line_at(self.pos))
        return self.pos + at

    def _chunk(self, out: List[bytes], lines: List[int]) -> Tuple[bytes, int]:
        """The elements as one JSON Lines chunk; ``out`` is emptied so they are not held twice."""
        self.element_lines = lines
        count = len(out)
        out.append(b"")
        chunk = b"\n".join(out)
        out.clear()
        return chunk, count

    def chunks(self, chunk_bytes: int = CHUNK_BYTES) -> Iterator[Tuple[bytes, int]]:
        """``(lines, count)``: elements as JSON Lines, about ``chunk_bytes`` at a time."""
        self._expect(b"[")
        out: List[bytes] = []
        lines: List[int] = []
        size = 0
        if self._skip_ws() == ord("]"):
            self.pos += 1
        else:
            while True:
                self._skip_ws()
                lines.append(self._line_at(self.pos))
                element = self._element()
                out.append(element)
                size += len(element) + 1
                if size >= chunk_bytes:
                    yield self._chunk(out, lines)
                    out, lines, size = [], [], 0
                if self._expect(b",]") == ord("]"):
                    break
        if out:
            yield self._chunk(out, lines)
        if self._skip_ws() is not None:
            raise ConversionError("invalid JSON: data after the closing ]", line=self._line_at(self.pos))


def _line_chunks(stream, max_row_size: int, chunk_bytes: int = CHUNK_BYTES) -> Iterator[Tuple[bytes, int]]:
    """``(lines, count)``: whole-line chunks of a JSON Lines stream. A line longer than
    ``max_row_size`` fails once that much of it was read (its pieces are kept as a list
    meanwhile, never re-copied)."""
    parts: List[bytes] = []  # the unfinished line
    pending = lines = 0
    while True:
        data = stream.read(min(chunk_bytes, max_row_size))  # a longer line spans reads, so it is seen
        if not data:
            break
        cut = data.rfind(b"\n")
        if cut < 0 or (parts and pending + data.find(b"\n") + 1 > max_row_size):
            pending += len(data)
            if pending > max_row_size:
                raise row_too_long(max_row_size, line=lines + 1)
            parts.append(data)
            continue
        parts.append(data[: cut + 1])
        chunk = b"".join(parts)
        count = chunk.count(b"\n")
        lines += count
        yield chunk, count
        rest = data[cut + 1:]
        parts, pending = ([rest] if rest else []), len(rest)
    tail = b"".join(parts)
    if tail.strip():
        yield tail + b"\n", tail.count(b"\n") + 1


def _line_problem(line: bytes) -> Optional[str]:
    """Why one JSON line is not a JSON object, or None when it is (blank lines pass)."""
    if not line.strip():
        return None
    if len(line) > _PY_DIAGNOSE_MAX:
        import pyarrow as pa
        import pyarrow.json as pj

        try:
            pj.read_json(pa.BufferReader(line + b"\n"), read_options=pj.ReadOptions(block_size=len(line) + 2))
            return None
        except pa.ArrowInvalid as exc:
            return f"invalid JSON ({one_line(exc, 120)})"
    try:
        obj = json.loads(line)
    except ValueError as exc:
        return f"invalid JSON ({exc.__class__.__name__ if not str(exc) else one_line(exc, 120)})"
    return None if isinstance(obj, dict) else "not a JSON object"


def _first_bad_line(chunk: bytes) -> Optional[int]:
    """0-based index of the first line of ``chunk`` that is not a JSON object (blank lines pass)."""
    for i, line in enumerate(chunk.split(b"\n")):
        if _line_problem(line) is not None:
            return i
    return None


def _stringify(chunk: bytes, fields: Set[str]) -> bytes:
    """Rewrite lines so the given top-level fields hold strings (non-strings as JSON text)."""
    out = []
    for line in chunk.split(b"\n"):
        if not line.strip():
            continue
        obj = json.loads(line)
        for f in fields:
            v = obj.get(f)
            if v is not None and not isinstance(v, str):
                obj[f] = json.dumps(v, ensure_ascii=False, separators=(",", ":"))
        out.append(json.dumps(obj, ensure_ascii=False))
    return ("\n".join(out) + "\n").encode("utf-8")


def _read_json(chunk: bytes):
    """Parse whole JSON lines with Arrow: 4 MiB blocks on several threads, or, when a line is longer
    than a block (Arrow: "straddling object"), the chunk as one block."""
    import pyarrow as pa
    import pyarrow.json as pj

    try:
        return pj.read_json(pa.BufferReader(chunk), read_options=pj.ReadOptions(use_threads=True, block_size=4 << 20))
    except pa.ArrowInvalid as exc:
        if "straddl" not in str(exc):
            raise
    return pj.read_json(pa.BufferReader(chunk), read_options=pj.ReadOptions(use_threads=False, block_size=len(chunk) + 1))


class JsonBatches:
    """One pass over JSON Lines (or an array turned into lines); yields conformed record batches."""

    def __init__(self, stream, plan: JsonPlan, is_array: bool) -> None:
        self.stream = stream
        self.plan = plan
        self.is_array = is_array
        self.first = None
        self.lines: Optional[ArrayToLines] = None

    def _tables(self) -> Iterator[Any]:
        import pyarrow as pa

        limit = self.plan.max_row_size
        self.lines = ArrayToLines(self.stream, limit) if self.is_array else None
        chunks = self.lines.chunks() if self.lines is not None else _line_chunks(self.stream, limit)
        line0 = 0
        for chunk, nlines in chunks:
            bad = check_utf8(chunk)
            if bad is not None:
                raise ConversionError("not text: invalid UTF-8", line=self._line(line0, chunk.count(b"\n", 0, bad)))
            if self.lines is None:  # an array's elements were measured while they were cut out
                deep = too_deep_line(chunk)
                if deep is not None:
                    raise too_deep(line0 + deep + 1)
            if self.plan.stringify:
                if _first_bad_line(chunk) is not None:
                    self._bad_line(chunk, line0)
                chunk = _stringify(chunk, self.plan.stringify)
            try:
                table = _read_json(chunk)
            except pa.ArrowInvalid as exc:
                msg = str(exc)
                m = _CONFLICT.search(msg)
                if "changed from" in msg and m:
                    self.plan.stringify.add(m.group(1))
                    self.plan.schema = None
                    raise Widen(f"field {m.group(1)!r} has mixed kinds") from None
                self._bad_line(chunk, line0, msg)
                raise
            line0 += nlines
            yield table

    def _line(self, line0: int, index: int) -> Optional[int]:
        """The input line of line ``index`` (0-based) of the chunk that starts after ``line0`` lines."""
        if self.lines is None:
            return line0 + index + 1
        starts = self.lines.element_lines
        return starts[index] if index < len(starts) else None

    def _bad_line(self, chunk: bytes, line0: int, msg: str = "") -> None:
        for index, text in enumerate(chunk.split(b"\n")):
            reason = _line_problem(text)
            if reason is not None:
                raise ConversionError(reason, line=self._line(line0, index))
        raise ConversionError(f"invalid JSON: {one_line(msg)}")

    def _conform(self, table):
        import pyarrow as pa

        target = self.plan.schema
        if target is None:
            self.plan.schema = table.schema
            return table
        if table.schema == target:
            return table
        try:
            merged = pa.concat_tables([pa.Table.from_batches([], schema=target), table], promote_options="permissive")
        except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError) as exc:
            m = _MERGE.search(str(exc))
            name = m.group(1) if m else None
            if name is None or name in self.plan.stringify:
                raise ConversionError(f"cannot reconcile JSON types: {one_line(exc)}") from None
            top = name.split(".")[0]
            if top not in target.names and name not in target.names:
                top = next((n for n in table.schema.names if n in target.names), name)
            self.plan.stringify.add(top)
            self.plan.schema = None
            raise Widen(f"field {top!r} has mixed kinds") from None
        if merged.schema != target:
            self.plan.schema = merged.schema
            raise Widen("JSON schema grew")
        return merged

    def open(self):
        """Read the first chunk; return the target schema (pass-wide)."""
        import pyarrow as pa

        self.plan.passes += 1
        self._tables_iter = self._tables()
        try:
            first = next(self._tables_iter)
        except StopIteration:
            first = None
        if first is None:
            if self.plan.schema is None:
                self.plan.schema = pa.schema([])
            return self.plan.schema
        self.first = self._conform(first)
        return self.plan.schema

    def __iter__(self) -> Iterator[Any]:
        tables: list[Any] = [] if self.first is None else [self.first]
        for t in tables:
            yield from t.to_batches()
        for t in self._tables_iter:
            yield from self._conform(t).to_batches()
