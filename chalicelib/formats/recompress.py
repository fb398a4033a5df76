"""recompress_to_zstd: gzip / bz2 / zstd / plain → one zstd frame, verified before returning.

Streams in 1 MiB pieces (bounded memory): the decoded input (recognised by magic bytes,
decompressed by Arrow's codecs, which report truncation) is hashed (blake2b) and counted while a
multi-threaded ``zstandard`` compressor (``threads=-1``) writes the output with a frame
checksum. The output is then decompressed again and its length and hash compared with the
input's; any difference, corrupt or truncated input removes the output and raises
ConversionError.
"""
from __future__ import annotations

import hashlib
import os
import time
from typing import BinaryIO, Callable, Iterator, Union

from .errors import ConversionError, failing_cleanly
from .options import RecompressResult
from .streams import open_decoded

__all__ = ["recompress_to_zstd"]

PIECE = 1 << 20


def _digest_zstd(path: str):
    import zstandard

    h = hashlib.blake2b(digest_size=32)
    n = 0
    with open(path, "rb") as f:
        for piece in _pieces(zstandard.ZstdDecompressor().stream_reader(f, read_across_frames=True)):
            h.update(piece)
            n += len(piece)
    return n, h.digest()


def _pieces(stream) -> Iterator[bytes]:
    """``stream`` read ``PIECE`` bytes at a time, to its end."""
    while piece := stream.read(PIECE):
        yield piece


def recompress_to_zstd(open_source: Callable[[], BinaryIO], sink_path: Union[str, "os.PathLike[str]"],
                       level: int = 19) -> RecompressResult:
    """Recompress the source to zstd at ``sink_path`` and verify it (see module docstring)."""
    import zstandard

    t0 = time.perf_counter()
    path = os.fspath(sink_path)
    src = None
    try:
        with failing_cleanly(path, "recompress", lambda: src):
            src = open_decoded(open_source, strip_bom=False)
            h = hashlib.blake2b(digest_size=32)
            raw = 0
            cctx = zstandard.ZstdCompressor(level=level, threads=-1, write_checksum=True)
            with open(path, "wb") as out:
                with cctx.stream_writer(out, closefd=False) as writer:
                    for piece in _pieces(src):
                        h.update(piece)
                        raw += len(piece)
                        writer.write(piece)
            compression, bytes_in = src.compression, src.bytes_in
            src.close()
            src = None
            n, digest = _digest_zstd(path)
            if n != raw or digest != h.digest():
                raise ConversionError(f"verification failed: output decompresses to {n} bytes, input had {raw}")
            return RecompressResult(bytes_in=bytes_in, bytes_out=os.path.getsize(path), raw_bytes=raw,
                                    source_compression=compression, seconds=time.perf_counter() - t0)
    finally:
        if src is not None:
            try:
                src.close()
            except Exception:
                pass
