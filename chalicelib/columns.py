"""Arrow columns from Python values, without pandas; and ``Objects``, a batch of listed objects as columns.

Why: planning a million objects one Python object at a time costs microseconds an object in
allocations alone. The planner works on batches of objects held as Arrow columns and prices them
with Arrow compute kernels, so that the per-object cost is the kernels' (tens of nanoseconds).

In pyarrow 26, ``pa.array(list)``, ``pa.scalar(x)`` and a Python number given to a compute
function all import pandas when it is installed (tens of MiB, and a second on a cold start); so
every array made from Python values here is assembled from buffers (``pa.Array.from_buffers``),
which imports nothing. Arrow compute only: the Lambda package carries no NumPy.

Example:
    >>> floats([1.5, None]).to_pylist(), strings(["a", None, "é"]).to_pylist(), int64s([3, None]).to_pylist()
    ([1.5, None], ['a', None, 'é'], [3, None])
    >>> f64(2.5).as_py(), i64(-7).as_py()
    (2.5, -7)
"""

from __future__ import annotations

import array
import itertools
import struct
from dataclasses import dataclass, field, replace
from functools import cached_property
from datetime import datetime, timedelta, timezone
from typing import Any, Mapping, Sequence
from urllib.parse import unquote_plus

from chalicelib.refs import RESERVED_PREFIX, ObjectRef

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_NAIVE_EPOCH = datetime(1970, 1, 1)
_MICROSECOND = timedelta(microseconds=1)
#: Objects planned as one batch: enough that a kernel's fixed cost is nothing an object, few enough that a batch's
#: columns (and the Decisions a consumer makes of them) stay some MiB.
BATCH_OBJECTS = 32_768


def _pa() -> Any:
    import pyarrow as pa

    return pa


def _validity(values: Sequence[Any]) -> Any:
    """The validity bitmap of ``values`` (a buffer, bit set where the value is not None), or None when none is None."""
    if None not in values:
        return None
    return flags([v is not None for v in values]).buffers()[1]


def _scalar(arrow_type: Any, raw: bytes) -> Any:
    """A scalar of a fixed-width ``arrow_type`` from its little-endian bytes."""
    pa = _pa()
    return pa.Array.from_buffers(arrow_type, 1, [None, pa.py_buffer(raw)])[0]


def f64(value: float) -> Any:
    """``value`` as an Arrow float64 scalar, for a compute function's argument (see the module docstring)."""
    return _scalar(_pa().float64(), struct.pack("<d", value))


def i64(value: int) -> Any:
    """``value`` as an Arrow int64 scalar."""
    return _scalar(_pa().int64(), struct.pack("<q", value))


def i32(value: int) -> Any:
    """``value`` as an Arrow int32 scalar."""
    return _scalar(_pa().int32(), struct.pack("<i", value))


def _fixed(arrow_type: Any, code: str, values: Sequence[Any], fill: Any) -> Any:
    pa = _pa()
    data = array.array(code, [fill if v is None else v for v in values])
    return pa.Array.from_buffers(arrow_type, len(values), [_validity(values), pa.py_buffer(data.tobytes())])


def flags(values: Sequence[bool]) -> Any:
    """A boolean array of ``values``."""
    pa = _pa()
    import pyarrow.compute as pc

    as_bytes = pa.Array.from_buffers(pa.uint8(), len(values), [None, pa.py_buffer(bytes(values))])
    return pc.not_equal(as_bytes, _scalar(pa.uint8(), b"\x00"))


def flag(value: bool) -> Any:
    """``value`` as an Arrow boolean scalar."""
    return flags([value])[0]


def text(value: str) -> Any:
    """``value`` as an Arrow string scalar, over its bytes (``whole_text``: no kernel, a tenth of ``strings``' cost;
    planning makes thousands of them for a million objects)."""
    return whole_text(value.encode("utf-8", "surrogatepass"))[0]


def zeros(n: int) -> Any:
    """``n`` float64 zeros."""
    pa = _pa()
    return pa.Array.from_buffers(pa.float64(), n, [None, pa.py_buffer(bytes(8 * n))])


def same_int32s(value: int, n: int) -> Any:
    """``n`` int32s, each ``value``: one packed value repeated (``int32s`` of ``[value] * n`` reads n Python ints)."""
    pa = _pa()
    return pa.Array.from_buffers(pa.int32(), n, [None, pa.py_buffer(struct.pack("<i", value) * n)])


def one_chunk(column: Any) -> Any:
    """``column`` as one Array: a ChunkedArray's chunks combined (kernels mixing columns and scalars want Arrays)."""
    if isinstance(column, _pa().ChunkedArray):
        return column.combine_chunks() if column.num_chunks != 1 else column.chunk(0)
    return column


def floats(values: Sequence[float | None]) -> Any:
    """A float64 array of ``values`` (None: null)."""
    return _fixed(_pa().float64(), "d", values, 0.0)


def int64s(values: Sequence[int | None]) -> Any:
    """An int64 array of ``values`` (None: null)."""
    return _fixed(_pa().int64(), "q", values, 0)


def int32s(values: Sequence[int | None]) -> Any:
    """An int32 array of ``values`` (None: null)."""
    return _fixed(_pa().int32(), "i", values, 0)


def strings(values: Sequence[str | None]) -> Any:
    """A string array of ``values`` (None: null); ``large_string`` past 2 GiB of text.

    Without nulls, the values are joined with NUL (no S3 key, ETag or class holds one: XML 1.0 can't carry it),
    encoded once and split by one kernel: a quarter of the cost of encoding each."""
    pa = _pa()
    if values and None not in values:
        joined = "\x00".join(values)  # type: ignore[arg-type]  # no None: checked above
        if joined.count("\x00") == len(values) - 1:
            import pyarrow.compute as pc

            return pc.split_pattern(whole_text(joined.encode("utf-8", "surrogatepass")), pattern="\x00").flatten()
    encoded = [b"" if v is None else v.encode("utf-8", "surrogatepass") for v in values]
    offsets = list(itertools.accumulate(map(len, encoded), initial=0))
    large = offsets[-1] >= 2**31
    packed = array.array("q" if large else "i", offsets)
    return pa.Array.from_buffers(pa.large_string() if large else pa.string(), len(values),
                                 [_validity(values), pa.py_buffer(packed.tobytes()), pa.py_buffer(b"".join(encoded))])


def url_decoded(keys: Any) -> Any:
    """``keys`` (an Arrow string column of URL-encoded keys, as S3 lists them with ``encoding-type=url`` and writes
    them in an Inventory) decoded with ``unquote_plus`` (``+`` is a space), only the rows that hold ``%`` or ``+``.

        >>> url_decoded(strings(["a%20b+c.csv", "plain"])).to_pylist()
        ['a b c.csv', 'plain']
    """
    import pyarrow.compute as pc

    if isinstance(keys, _pa().Array) and not _holds_escapes(keys.buffers()[2]):
        return keys
    if not pc.any(pc.match_substring_regex(keys, "[%+]")).as_py():
        return keys
    return strings([unquote_plus(key) if "%" in key or "+" in key else key for key in keys.to_pylist()])


def _holds_escapes(data: Any) -> bool:
    """Whether a string column's data buffer (all its values' bytes, and maybe more when it is a slice) holds ``%``
    or ``+``: two ``memchr`` over the bytes, a fiftieth of matching ``[%+]`` value by value (1.4 ms a block of the
    inventory); True for a column without a buffer, to be checked value by value."""
    if data is None:
        return True
    raw = data.to_pybytes()
    return b"%" in raw or b"+" in raw


def whole_text(data: bytes) -> Any:
    """``data`` (UTF-8, not checked) as a string array of one value, over the bytes without a copy;
    ``large_string`` past 2 GiB."""
    pa = _pa()
    large = len(data) >= 2**31
    offsets = array.array("q" if large else "i", [0, len(data)])
    buffers = [None, pa.py_buffer(offsets.tobytes()), pa.py_buffer(data)]
    return pa.Array.from_buffers(pa.large_string() if large else pa.string(), 1, buffers)


def repeated(values: Sequence[str]) -> Any:
    """A string array of ``values`` that repeat (storage classes): each distinct value encoded once."""
    index: dict[str, int] = {}
    codes = [index.setdefault(v, len(index)) for v in values]
    return strings(list(index)).take(int32s(codes))


def timestamps(values: Sequence[datetime | None]) -> Any:
    """A ``timestamp[us, tz=UTC]`` array of ``values``; a naive datetime is taken as UTC, as planning always has
    (None: null)."""
    micros = [None if v is None else (v - (_EPOCH if v.tzinfo is not None else _NAIVE_EPOCH)) // _MICROSECOND for v in values]
    pa = _pa()
    return _fixed(pa.timestamp("us", tz="UTC"), "q", micros, 0)


#: The columns of ``Objects``, one value a row, in their order as fields.
_COLUMNS = ("keys", "sizes", "etags", "version_ids", "classes", "modified")


@dataclass(frozen=True, eq=False)
class Objects:
    """One bucket's listed objects as Arrow columns, a row per object: what the planner works on.

    ``classes`` holds the storage class as listed (null: not said, which S3 means as STANDARD);
    ``modified`` is ``timestamp[us, tz=UTC]`` (``timestamps``). ``tags`` (one mapping or None per row) is there when a policy of the
    bucket filters on tags. ``refs(rows)`` gives the rows as ``ObjectRef`` values, only for the
    objects a consumer reads one of: the refs the batch was made from, when it was (``from_refs``).

        >>> from chalicelib.refs import ObjectRef
        >>> batch = Objects.from_refs("b", [ObjectRef("b", "k1", 5), ObjectRef("b", "k2", None, storage_class="GLACIER")])
        >>> len(batch), batch.sizes.to_pylist(), batch.refs([1])[0].key
        (2, [5, None], 'k2')
    """

    bucket: str
    keys: Any
    sizes: Any
    etags: Any
    version_ids: Any
    classes: Any
    modified: Any
    tags: Sequence[Mapping[str, str] | None] | None = None
    _refs: Sequence[ObjectRef] | None = field(default=None, repr=False)

    def __len__(self) -> int:
        return len(self.keys)

    @classmethod
    def from_refs(cls, bucket: str, refs: Sequence[ObjectRef]) -> "Objects":
        """The batch of ``refs`` (all of ``bucket``); ``refs(rows)`` gives back these very refs."""
        tags = [ref.tags for ref in refs]
        return cls(bucket, strings([ref.key for ref in refs]), int64s([ref.size for ref in refs]),
                   strings([ref.etag for ref in refs]), strings([ref.version_id for ref in refs]),
                   strings([ref.storage_class for ref in refs]), timestamps([ref.last_modified for ref in refs]),
                   None if all(t is None for t in tags) else tags, refs)

    @classmethod
    def joined(cls, bucket: str, parts: Sequence["Objects"]) -> "Objects":
        """One batch of the ``parts`` (without tags or refs), their rows in order."""
        if len(parts) == 1:
            return parts[0]
        pa = _pa()
        return cls(bucket, *(pa.concat_arrays([getattr(part, name) for part in parts]) for name in _COLUMNS))

    def sliced(self, start: int, length: int) -> "Objects":
        """Rows ``start`` to ``start + length`` (fewer at the end) of the batch, without copying its columns."""
        if start == 0 and length >= len(self):
            return self
        tags = None if self.tags is None else self.tags[start:start + length]
        refs = None if self._refs is None else self._refs[start:start + length]
        return replace(self, tags=tags, _refs=refs, **{name: getattr(self, name).slice(start, length) for name in _COLUMNS})

    def without_reserved(self) -> "Objects":
        """The batch without leanlake's own objects (``_leanlake/``): never planned."""
        import pyarrow.compute as pc

        reserved = pc.starts_with(self.keys, pattern=RESERVED_PREFIX)
        if not pc.any(reserved).as_py():
            return self
        kept = pc.invert(reserved)
        return Objects(self.bucket, *(getattr(self, name).filter(kept) for name in _COLUMNS))

    @classmethod
    def from_listing(cls, bucket: str, contents: Sequence[Mapping[str, Any]]) -> "Objects":
        """The objects of a ListObjectsV2 page's ``Contents`` (as boto3 returns them): what ``ObjectRef``s of the
        listing would say, a column at a time."""
        import pyarrow.compute as pc

        pa = _pa()
        return cls(bucket, strings([item["Key"] for item in contents]), int64s([item["Size"] for item in contents]),
                   pc.utf8_trim(strings([item.get("ETag", "") for item in contents]), characters='"'),
                   pa.nulls(len(contents), pa.string()), repeated([item.get("StorageClass") or "STANDARD" for item in contents]),
                   timestamps([item["LastModified"] for item in contents]))

    def effective_classes(self, rows: Any) -> Any:
        """The storage classes of ``rows`` (Arrow int64), STANDARD where the listing said none: dictionary-encoded
        (once a batch), so that pricing finds each row's class by its index."""
        return self._effective_classes.take(rows)

    @cached_property
    def _effective_classes(self) -> Any:
        import pyarrow.compute as pc

        return pc.dictionary_encode(pc.coalesce(self.classes, text("STANDARD")))

    def refs(self, rows: Sequence[int]) -> list[ObjectRef]:
        """The ``ObjectRef`` of each of ``rows``."""
        if self._refs is not None:
            given = self._refs
            return [given[row] for row in rows]
        pa = _pa()
        taken = int64s(rows)
        columns = [column.take(taken).to_pylist() for column in (self.keys, self.sizes, self.etags, self.version_ids, self.classes)]
        micros = self.modified.take(taken).cast(pa.int64()).to_pylist()
        tags = [self.tags[row] for row in rows] if self.tags is not None else [None] * len(rows)
        return [ObjectRef(self.bucket, key, size, etag, version, cls, None if us is None else _EPOCH + us * _MICROSECOND, tag)
                for key, size, etag, version, cls, us, tag in zip(*columns, micros, tags, strict=True)]
