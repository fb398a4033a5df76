"""Where a converter writes: an ``Output`` that can start again and discard on failure.

A conversion may take several passes (a CSV column found wider than inferred restarts it from a
fresh ``open_source()``), so a converter does not write to one stream: it asks its ``Output`` for
a new attempt each pass (``start``, which discards the previous one), says when an attempt is
complete (``finish``, which returns its size), and on any failure ``discard``s it. Keeping a
finished attempt is the caller's decision: a local file stays where it was written, an S3 output
(``chalicelib.multipart.S3Output``) is committed or aborted by the action that wrote it.

``labels`` is key-value metadata a format that carries its own records in the output: the
Parquet writer puts it, with the rows written (``FOOTER_ROWS``), in the footer. An S3 output
labels itself with its source's key and ETag, so an output whose S3 metadata was fixed before its
rows were known (a multipart upload) still says what it was made from and how many rows it holds.

Example:
    >>> import os, tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "out.bin")
    >>> out = as_output(path)
    >>> _ = out.start().write(b"first try")
    >>> _ = out.start().write(b"ok")           # a new attempt replaces the first
    >>> out.finish(), open(path, "rb").read()
    (2, b'ok')
    >>> out.discard(); os.path.exists(path)
    False
"""
from __future__ import annotations

import contextlib
import os
from typing import Any, BinaryIO, Mapping, Protocol, Union, runtime_checkable

__all__ = ["Output", "FileOutput", "as_output", "FOOTER_SOURCE_KEY", "FOOTER_SOURCE_ETAG", "FOOTER_ROWS"]

#: Parquet footer key-value metadata of an output leanlake wrote to S3: its source key (as S3 metadata
#: records it, percent-encoded), the source's ETag, and the rows written.
FOOTER_SOURCE_KEY = "leanlake.source_key"
FOOTER_SOURCE_ETAG = "leanlake.source_etag"
FOOTER_ROWS = "leanlake.rows"


@runtime_checkable
class Output(Protocol):
    """Where a converter writes (see module docstring)."""

    labels: Mapping[str, str]

    def start(self) -> Any:
        """Begin a new attempt, discarding any earlier one; return the writable binary stream for it."""

    def finish(self) -> int:
        """The current attempt is written in full; its size in bytes."""

    def discard(self) -> None:
        """Drop the current attempt; a no-op when there is none."""


class FileOutput:
    """A local file written in place (``leanlake convert`` makes it atomic with a temp name it renames)."""

    def __init__(self, path: str, labels: Mapping[str, str] | None = None) -> None:
        self.path = path
        self.labels: Mapping[str, str] = dict(labels or {})
        self._file: BinaryIO | None = None

    def start(self) -> BinaryIO:
        self._close()
        self._file = open(self.path, "wb")  # truncates: the previous attempt is gone
        return self._file

    def finish(self) -> int:
        self._close()
        return os.path.getsize(self.path)

    def discard(self) -> None:
        self._close()
        with contextlib.suppress(OSError):
            os.remove(self.path)

    def _close(self) -> None:
        file, self._file = self._file, None
        if file is not None:
            with contextlib.suppress(OSError):
                file.close()


def as_output(sink: Union[Output, str, "os.PathLike[str]"]) -> Output:
    """``sink`` as an Output: a path becomes a ``FileOutput``."""
    if isinstance(sink, (str, os.PathLike)):
        return FileOutput(os.fspath(sink))
    return sink
