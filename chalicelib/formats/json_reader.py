"""JSON Lines and JSON arrays → Arrow tables, in bounded chunks, widening instead of failing.

* **JSON Lines** are cut into chunks of whole lines (``CHUNK_BYTES``) and each chunk is parsed by
  ``pyarrow.json.read_json`` (multi-threaded, nested objects → structs, arrays → lists).
* **A JSON array of objects** (``[{...}, {...}]``, pretty-printed or not, any size) is turned into
  JSON Lines incrementally: :class:`ArrayToLines` finds each element's extent with
  ``json.JSONDecoder.raw_decode`` on a sliding text window and emits it on one line (raw newlines
  can only be whitespace in valid JSON). Nothing ever ``json.load``s the whole file.
* **Schemas**: every chunk is conformed to the target schema with Arrow's permissive promotion
  (missing fields → null, int → float, struct fields merged). When a chunk needs a wider target
  (a new field, a promoted type) the caller takes another pass from a fresh source with that
  target. A field whose values mix kinds that cannot be unified (number and string, object and
  string) is kept losslessly as text: strings as they are, other values as their JSON text.
"""
from __future__ import annotations

import io
import json
import re
from typing import Any, Iterator, List, Optional, Set

from .csv_reader import Widen
from .errors import ConversionError, one_line

__all__ = ["JsonPlan", "ArrayToLines", "JsonBatches"]

CHUNK_BYTES = 16 << 20
_TEXT_READ = 4 << 20
_CONFLICT = re.compile(r"Column\(/([^/)]*)")
_MERGE = re.compile(r"Field (.+?) has incompatible types")


class JsonPlan:
    """State carried across passes: target schema and the fields kept as JSON text."""

    def __init__(self) -> None:
        self.schema = None
        self.stringify: Set[str] = set()
        self.passes = 0


class ArrayToLines:
    """Iterate JSON Lines chunks (bytes) from a stream holding one JSON array of objects."""

    def __init__(self, stream) -> None:
        self.text = io.TextIOWrapper(stream, encoding="utf-8", errors="strict", newline="")
        self.buf = ""
        self.pos = 0
        self.eof = False
        self.lines_before = 0  # newlines in text already dropped from buf
        self.decoder = json.JSONDecoder()
        self.count = 0

    def _more(self, at_least: int = _TEXT_READ) -> bool:
        if self.eof:
            return False
        try:
            data = self.text.read(max(at_least, _TEXT_READ))
        except UnicodeDecodeError as exc:
            raise ConversionError(f"not text: invalid UTF-8 ({exc.reason})") from None
        if not data:
            self.eof = True
            return False
        if self.pos:
            self.lines_before += self.buf.count("\n", 0, self.pos)
            self.buf = self.buf[self.pos:]
            self.pos = 0
        self.buf += data
        return True

    def _line_at(self, pos: int) -> int:
        return self.lines_before + self.buf.count("\n", 0, pos) + 1

    def _skip_ws(self) -> Optional[str]:
        while True:
            n = len(self.buf)
            p = self.pos
            while p < n and self.buf[p] in " \t\r\n":
                p += 1
            self.pos = p
            if p < n:
                return self.buf[p]
            if not self._more():
                return None

    def _expect(self, chars: str) -> str:
        c = self._skip_ws()
        if c is None or c not in chars:
            where = self._line_at(self.pos)
            seen = "end of file" if c is None else repr(c)
            raise ConversionError(f"invalid JSON: expected {' or '.join(map(repr, chars))}, saw {seen}", line=where)
        self.pos += 1
        return c

    def _element(self) -> str:
        grow = _TEXT_READ
        self._skip_ws()
        while True:
            try:
                obj, end = self.decoder.raw_decode(self.buf, self.pos)
            except json.JSONDecodeError as exc:
                incomplete = exc.pos >= len(self.buf) - 1 or exc.msg.startswith("Unterminated")
                if incomplete and self._more(grow):
                    grow *= 2
                    continue
                raise ConversionError(f"invalid JSON: {exc.msg}", line=self._line_at(exc.pos)) from None
            if not isinstance(obj, dict):
                raise ConversionError("JSON array element is not an object", line=self._line_at(self.pos))
            text = self.buf[self.pos:end]
            self.pos = end
            return text.replace("\r", " ").replace("\n", " ")

    def chunks(self, chunk_bytes: int = CHUNK_BYTES) -> Iterator[bytes]:
        self._expect("[")
        out: List[str] = []
        size = 0
        if self._skip_ws() == "]":
            self.pos += 1
        else:
            while True:
                line = self._element()
                out.append(line)
                size += len(line) + 1
                if size >= chunk_bytes:
                    yield ("\n".join(out) + "\n").encode("utf-8")
                    out, size = [], 0
                if self._expect(",]") == "]":
                    break
        if out:
            yield ("\n".join(out) + "\n").encode("utf-8")
        if self._skip_ws() is not None:
            raise ConversionError("invalid JSON: data after the closing ]", line=self._line_at(self.pos))


def _line_chunks(stream, chunk_bytes: int = CHUNK_BYTES) -> Iterator[bytes]:
    """Whole-line chunks of a JSON Lines stream."""
    rest = b""
    while True:
        data = stream.read(chunk_bytes)
        if not data:
            break
        data = rest + data
        cut = data.rfind(b"\n")
        if cut < 0:
            rest = data
            continue
        rest = data[cut + 1:]
        yield data[: cut + 1]
    if rest.strip():
        yield rest + b"\n"


def _first_bad_line(chunk: bytes) -> Optional[int]:
    """0-based index of the first line of ``chunk`` that is not a JSON object (blank lines pass)."""
    for i, line in enumerate(chunk.split(b"\n")):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except ValueError:
            return i
        if not isinstance(obj, dict):
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


class JsonBatches:
    """One pass over JSON Lines (or an array turned into lines); yields conformed record batches."""

    def __init__(self, stream, plan: JsonPlan, is_array: bool) -> None:
        self.stream = stream
        self.plan = plan
        self.is_array = is_array
        self.first = None
        self._chunks: Optional[Iterator[Any]] = None

    def _tables(self) -> Iterator[Any]:
        import pyarrow as pa
        import pyarrow.json as pj

        chunks = ArrayToLines(self.stream).chunks() if self.is_array else _line_chunks(self.stream)
        line0 = 0
        read_opts = pj.ReadOptions(use_threads=True, block_size=4 << 20)
        try:
            for chunk in chunks:
                nlines = chunk.count(b"\n")
                if self.plan.stringify:
                    bad = _first_bad_line(chunk)
                    if bad is not None:
                        self._bad_line(chunk, line0)
                    chunk = _stringify(chunk, self.plan.stringify)
                try:
                    table = pj.read_json(pa.BufferReader(chunk), read_options=read_opts)
                except pa.ArrowInvalid as exc:
                    msg = str(exc)
                    m = _CONFLICT.search(msg)
                    if "changed from" in msg and m:
                        self.plan.stringify.add(m.group(1))
                        self.plan.schema = None
                        raise Widen(f"field {m.group(1)!r} has mixed kinds") from None
                    self._bad_line(chunk, line0, msg)
                    raise
                if not self.is_array:
                    line0 += nlines
                yield table
        except UnicodeDecodeError as exc:
            raise ConversionError(f"not text: invalid UTF-8 ({exc.reason})") from None

    def _bad_line(self, chunk: bytes, line0: int, msg: str = "") -> None:
        bad = _first_bad_line(chunk)
        if bad is None:
            raise ConversionError(f"invalid JSON: {one_line(msg)}")
        line = None if self.is_array else line0 + bad + 1
        text = chunk.split(b"\n")[bad]
        try:
            json.loads(text)
            reason = "not a JSON object"
        except ValueError as exc:
            reason = f"invalid JSON ({exc.__class__.__name__ if not str(exc) else one_line(exc, 120)})"
        raise ConversionError(reason, line=line)

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
        tables = [] if self.first is None else [self.first]
        for t in tables:
            yield from t.to_batches()
        for t in self._tables_iter:
            yield from self._conform(t).to_batches()
