"""Byte streams: compression detection by magic bytes, decompression, counting, replay.

The converter never trusts file names. :func:`open_decoded` opens the source, counts the bytes
read as stored (``bytes_in``), recognises gzip / bz2 / zstd by their magic bytes, decompresses
with Arrow's C++ codecs (``pyarrow.CompressedInputStream`` — off the GIL, and it reports a
truncated stream as an error where Python's ``zstandard.stream_reader`` silently stops), reads a
head for sniffing and hands back a stream that replays the head first. A UTF-8 BOM is stripped.

>>> detect_compression(b"\\x1f\\x8b\\x08\\x00")
'gzip'
"""
from __future__ import annotations

import io
import time
from typing import Any, BinaryIO, Callable, Optional

from .errors import ConversionError, is_request_failure, one_line

__all__ = ["detect_compression", "open_decoded", "DecodedSource", "HEAD_BYTES", "truncation_reason"]

HEAD_BYTES = 256 * 1024
_BOM = b"\xef\xbb\xbf"
_MAGIC = ((b"\x1f\x8b", "gzip"), (b"BZh", "bz2"), (b"\x28\xb5\x2f\xfd", "zstd"))
_ARROW_CODEC = {"gzip": "gzip", "bz2": "bz2", "zstd": "zstd"}


def detect_compression(head: bytes) -> Optional[str]:
    """Return ``"gzip"``, ``"bz2"``, ``"zstd"`` or None from the first bytes of a stream."""
    for magic, name in _MAGIC:
        if head.startswith(magic):
            if name == "bz2" and not (len(head) > 3 and head[3:4] in b"123456789"):
                continue  # "BZh" followed by a block-size digit; plain text may start with BZh
            return name
    return None


class _CountingReader(io.RawIOBase):
    """Wraps the raw source stream; counts bytes as stored; peeks the first bytes once."""

    def __init__(self, raw: BinaryIO) -> None:
        self.raw = raw
        self.count = 0
        self._pending = b""

    def readable(self) -> bool:
        return True

    def peek_head(self, n: int) -> bytes:
        while len(self._pending) < n:
            chunk = self.raw.read(n - len(self._pending))
            if not chunk:
                break
            self.count += len(chunk)
            self._pending += chunk
        return self._pending

    def read(self, n: int = -1) -> bytes:
        if self._pending:
            if n is None or n < 0:
                out, self._pending = self._pending, b""
                more = self.raw.read() or b""
                self.count += len(more)
                return out + more
            out, self._pending = self._pending[:n], self._pending[n:]
            return out
        data = self.raw.read() if n is None or n < 0 else self.raw.read(n)
        data = data or b""
        self.count += len(data)
        return data

    def readinto(self, b: Any) -> int:
        data = self.read(len(b))
        b[: len(data)] = data
        return len(data)


def truncation_reason(compression: Optional[str], exc: BaseException) -> str:
    """Turn a decompressor's exception into a one-line reason."""
    msg = one_line(exc)
    if "runcated" in msg or "end of" in msg.lower():
        return f"truncated {compression} stream"
    return f"corrupt {compression} stream: {msg}"


class DecodedSource(io.RawIOBase):
    """A readable, decompressed stream of one opened source, replaying the sniffed head.

    Attributes: ``compression``, ``head`` (decompressed, BOM stripped), ``bytes_in`` (stored bytes
    read so far), ``error`` (the ConversionError a decompression failure became, if any — kept so
    the caller can report it even when pyarrow wraps the exception raised from ``read``).
    """

    def __init__(self, raw: BinaryIO, head_bytes: int = HEAD_BYTES, strip_bom: bool = True) -> None:
        import pyarrow as pa

        self._raw = raw
        self._counter = _CountingReader(raw)
        self.compression = detect_compression(self._counter.peek_head(4))
        self.error: Optional[ConversionError] = None
        if self.compression is None:
            self._inner = self._counter
            self._native = None
        else:
            self._native = pa.CompressedInputStream(
                pa.PythonFile(self._counter, mode="r"), _ARROW_CODEC[self.compression]
            )
            self._inner = self._native
        head = self._read_exact(head_bytes)
        if strip_bom and head.startswith(_BOM):
            head = head[len(_BOM):]
        self.head = head
        self._replay = memoryview(head)
        self._stopped = False
        self._reads = self._active = 0  # reads begun, reads under way (Arrow reads from its own threads)

    @property
    def bytes_in(self) -> int:
        return self._counter.count

    def peek(self, n: int) -> bytes:
        """The next ``n`` bytes (fewer at the end) without consuming them: they stay for ``read``.

        Only the bytes not yet read can be peeked, so a reader sees the same stream either way.
        """
        if len(self._replay) < n:
            self._replay = memoryview(bytes(self._replay) + self._read_exact(n - len(self._replay)))
        return bytes(self._replay[:n])

    def readable(self) -> bool:
        return True

    def _read_inner(self, n: int) -> bytes:
        try:
            return self._inner.read(n)
        except ConversionError:
            raise
        except Exception as exc:  # decompressor or I/O failure
            if self.compression:
                self.error = ConversionError(truncation_reason(self.compression, exc))
            else:
                self.error = ConversionError(f"read failed: {one_line(exc)}")
            raise self.error from exc

    def _read_exact(self, n: int) -> bytes:
        parts, got = [], 0
        while got < n:
            chunk = self._read_inner(n - got)
            if not chunk:
                break
            parts.append(bytes(chunk))
            got += len(chunk)
        return b"".join(parts)

    def stop_readers(self, quiet: float = 0.02, limit: float = 2.0) -> None:
        """Make further reads return end of stream, and wait until no thread is reading.

        Arrow's streaming CSV reader reads ahead from its own threads. One still reading when the
        process exits wants the GIL during finalization, which CPython answers with
        ``pthread_exit`` inside Arrow's C++ thread pool: the process aborts ("terminate called
        without an active exception") instead of exiting with its one-line error. So a pass that
        ends early stops its stream and waits (GIL released) until ``quiet`` seconds pass without
        a read, at most ``limit`` seconds.
        """
        self._stopped = True
        deadline = time.monotonic() + limit
        seen = -1
        while time.monotonic() < deadline and (self._active or self._reads != seen):
            seen = self._reads
            time.sleep(quiet)

    def read(self, n: int = -1) -> bytes:
        if self._stopped:
            return b""
        self._reads += 1
        self._active += 1
        try:
            return self._read(n)
        finally:
            self._active -= 1

    def _read(self, n: int) -> bytes:
        if n is None or n < 0:
            out = bytes(self._replay)
            self._replay = memoryview(b"")
            rest = []
            while True:
                chunk = self._read_inner(1 << 20)
                if not chunk:
                    break
                rest.append(bytes(chunk))
            return out + b"".join(rest)
        if len(self._replay):
            out = bytes(self._replay[:n])
            self._replay = self._replay[n:]
            return out
        return bytes(self._read_inner(n))

    def readinto(self, b: Any) -> int:
        data = self.read(len(b))
        b[: len(data)] = data
        return len(data)

    def close(self) -> None:
        try:
            if self._native is not None:
                self._native.close()
        except Exception:
            pass
        try:
            self._raw.close()
        except Exception:
            pass
        super().close()


def open_decoded(open_source: Callable[[], BinaryIO], strip_bom: bool = True) -> DecodedSource:
    """Open the source once and return its decoded stream (caller closes it)."""
    try:
        raw = open_source()
    except Exception as exc:
        if is_request_failure(exc):  # throttled, 5xx, network: not bad input; the caller retries
            raise
        raise ConversionError(f"cannot open source: {one_line(exc)}") from exc
    try:
        return DecodedSource(raw, strip_bom=strip_bom)
    except ConversionError:
        try:
            raw.close()
        except Exception:
            pass
        raise
    except Exception as exc:
        try:
            raw.close()
        except Exception:
            pass
        raise ConversionError(f"cannot read source: {one_line(exc)}") from exc
