"""recompress_to_zstd: gzip / bz2 / zstd / plain → one zstd frame, verified before returning.

Streams in 1 MiB pieces (bounded memory): the decoded input (recognised by magic bytes,
decompressed by Arrow's codecs, which report truncation) is hashed (blake2b) and counted while a
multi-threaded ``zstandard`` compressor (``threads=-1``) writes the output with a frame
checksum. Every compressed byte handed to the output is also decompressed as it goes (a
decompressing stream writer, so memory stays bounded and the output is never read back: it may
be an S3 upload), and the decoded length and hash are compared with the input's; any
difference, corrupt or truncated input discards the output and raises ConversionError.

``check_zstd_beginning`` is the cheap check of an output already in S3 (only its first bytes
are fetched): the zstd magic number, a readable frame header, and the beginning decoding.

>>> import zstandard
>>> check_zstd_beginning(zstandard.ZstdCompressor().compress(b"log line\\n" * 100), whole=True)
>>> check_zstd_beginning(b"PAR1 not zstd", whole=True)
Traceback (most recent call last):
...
chalicelib.formats.errors.ConversionError: not a zstd frame (starts with 50415231)
"""
from __future__ import annotations

import hashlib
import io
import os
import time
from typing import Any, BinaryIO, Callable, Iterator, Union, cast

from .errors import ConversionError, failing_cleanly
from .options import RecompressResult
from .outputs import Output, as_output
from .streams import open_decoded

__all__ = ["recompress_to_zstd", "check_zstd_beginning"]

PIECE = 1 << 20
#: The 4 bytes every zstd frame starts with.
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
#: How much of an output ``check_zstd_beginning`` is given to check, and the most it decodes from it.
CHECK_BYTES = 128 * 1024
CHECK_DECODED = 8 * 1024 * 1024
#: Compressed bytes fed per decode step: a forged frame of tiny RLE blocks can expand each feed to
#: at most about 2 MiB, so ``CHECK_DECODED`` bounds the work.
_FEED = 64


class _Digest(io.RawIOBase):
    """Counts and hashes (blake2b) what is written to it: the decoded output."""

    def __init__(self) -> None:
        super().__init__()
        self.hash = hashlib.blake2b(digest_size=32)
        self.size = 0

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        self.hash.update(data)
        n = memoryview(data).nbytes
        self.size += n
        return n


class _Checked(io.RawIOBase):
    """Passes compressed bytes to ``out`` and decompresses them into a ``_Digest`` on the way."""

    def __init__(self, out: Any) -> None:
        import zstandard

        super().__init__()
        self.out = out
        self.decoded = _Digest()
        self.decoder = zstandard.ZstdDecompressor().stream_writer(cast(BinaryIO, self.decoded), closefd=False)

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        self.out.write(data)
        self.decoder.write(data)
        return memoryview(data).nbytes


def _pieces(stream) -> Iterator[bytes]:
    """``stream`` read ``PIECE`` bytes at a time, to its end."""
    while piece := stream.read(PIECE):
        yield piece


def recompress_to_zstd(open_source: Callable[[], BinaryIO], sink: Union[Output, str, "os.PathLike[str]"],
                       level: int = 19) -> RecompressResult:
    """Recompress the source to zstd into ``sink`` (a local path or an ``outputs.Output``) and verify
    it (see module docstring); on failure nothing is left at ``sink``."""
    import zstandard

    t0 = time.perf_counter()
    output = as_output(sink)
    src = None
    try:
        with failing_cleanly(output.discard, "recompress", lambda: src):
            src = open_decoded(open_source, strip_bom=False)
            h = hashlib.blake2b(digest_size=32)
            raw = 0
            cctx = zstandard.ZstdCompressor(level=level, threads=-1, write_checksum=True)
            checked = _Checked(output.start())
            with cctx.stream_writer(cast(BinaryIO, checked), closefd=False) as writer:
                for piece in _pieces(src):
                    h.update(piece)
                    raw += len(piece)
                    writer.write(piece)
            checked.decoder.flush()
            compression, bytes_in = src.compression, src.bytes_in
            src.close()
            src = None
            n, digest = checked.decoded.size, checked.decoded.hash.digest()
            if n != raw or digest != h.digest():
                raise ConversionError(f"verification failed: output decompresses to {n} bytes, input had {raw}")
            return RecompressResult(bytes_in=bytes_in, bytes_out=output.finish(), raw_bytes=raw,
                                    source_compression=compression, seconds=time.perf_counter() - t0)
    finally:
        if src is not None:
            try:
                src.close()
            except Exception:
                pass


def check_zstd_beginning(prefix: bytes, *, whole: bool) -> None:
    """Raise ConversionError unless ``prefix`` (the first bytes of an object) begins a readable zstd frame.

    Checks the magic number and frame header, then decodes up to ``CHECK_DECODED`` bytes. When
    ``whole`` (``prefix`` is the entire object) and decoding got that far, the frame must also end
    within it, its checksum hold, and its length match the content size the header records, if any.
    """
    import zstandard

    if not prefix.startswith(ZSTD_MAGIC):
        raise ConversionError(f"not a zstd frame (starts with {prefix[:4].hex() or 'nothing'})")
    try:
        params = zstandard.get_frame_parameters(prefix)
        decoder = zstandard.ZstdDecompressor().decompressobj()
        decoded = 0
        for start in range(0, len(prefix), _FEED):
            decoded += len(decoder.decompress(prefix[start:start + _FEED]))
            if decoder.eof or decoded > CHECK_DECODED:
                break
    except zstandard.ZstdError as exc:
        raise ConversionError(f"zstd frame unreadable: {exc}") from None
    if not whole or decoded > CHECK_DECODED:
        return
    if not decoder.eof:
        raise ConversionError(f"zstd frame truncated: {len(prefix)} bytes end before the frame does")
    if params.content_size != zstandard.CONTENTSIZE_UNKNOWN and params.content_size != decoded:
        raise ConversionError(f"zstd frame decodes to {decoded} bytes, its header says {params.content_size}")
