"""Outputs streamed to S3 as they are produced: nothing is staged on local disk.

Lambda's ``/tmp`` is small (512 MB), so an output is not written to a file and uploaded after: it
goes through ``MultipartSink``, a writable binary stream that buffers one part, uploads each full
part (``UploadPart`` with a CRC32 checksum) in a background thread while the next one fills, and
keeps at most two parts in memory (one filling, one in flight).

- Parts start at ``FIRST_PART_SIZE`` (8 MiB) and double every ``PARTS_PER_SIZE`` (1,000) parts
  (``part_size``), so 10,000 parts hold about 8.6 TB (S3's largest object is 5 TiB) and no part
  passes S3's 5 GiB limit; every part but the last is at least 5 MiB.
- ``commit`` ends the write under the same condition as every leanlake write
  (``s3.write_condition``: ``If-None-Match: *`` for a new object, ``If-Match: ETAG`` to replace
  leanlake's own older output), on ``CompleteMultipartUpload``. An output smaller than one part is
  a single conditional ``PutObject`` instead (no upload was created), which may carry metadata
  only known once the output is complete (the rows of a Parquet file).
- Any failure (a part refused, a condition refused, the producer failing) aborts the upload:
  ``abort`` is idempotent and leaves no parts behind. A refused condition raises
  ``s3.ConditionFailed``.

``S3Output`` is the converters' view of it (``chalicelib.formats.outputs.Output``): each
``start`` discards the previous attempt (its upload aborted) and begins a new one, since a CSV
conversion may start over with wider column types. ``CountingOutput`` counts and discards (a dry
run writes nothing).

Example:
    >>> [part_size(n) // 2**20 for n in (1, 1000, 1001, 10_000)]
    [8, 8, 16, 4096]
    >>> out = CountingOutput()
    >>> out.start().write(b"12345"), out.finish()
    (5, 5)
"""

from __future__ import annotations

import io
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Mapping

from chalicelib import s3 as s3util

#: The first parts' size; S3's smallest part (all but the last) is 5 MiB.
FIRST_PART_SIZE = 8 * 1024**2
MIN_PART_SIZE = 5 * 1024**2
MAX_PART_SIZE = 5 * 1024**3
#: The part size doubles after this many parts.
PARTS_PER_SIZE = 1000


def part_size(number: int, first: int = FIRST_PART_SIZE) -> int:
    """The size of part ``number`` (1-based): ``first``, doubled every ``PARTS_PER_SIZE`` parts.

    >>> part_size(1), part_size(1001) == 2 * part_size(1000)
    (8388608, True)
    """
    return first << ((number - 1) // PARTS_PER_SIZE)


class MultipartSink(io.RawIOBase):
    """A write-only stream to ``s3://bucket/key``, uploaded part by part as it is written (see module docstring).

    ``extra`` holds the CreateMultipartUpload/PutObject arguments (``Metadata``, ``ContentType``,
    ``Tagging``, SSE); ``replacing`` is None for a new object or the ETag it replaces.
    ``single_put=False`` makes even a small output a multipart upload.
    """

    def __init__(self, s3: Any, bucket: str, key: str, *, extra: Mapping[str, Any], replacing: str | None = None,
                 first_part_size: int = FIRST_PART_SIZE, single_put: bool = True) -> None:
        super().__init__()
        if first_part_size < MIN_PART_SIZE:
            raise ValueError(f"parts must be at least {MIN_PART_SIZE} bytes, not {first_part_size}")
        self.s3, self.bucket, self.key = s3, bucket, key
        self.extra, self.replacing = dict(extra), replacing
        self.first_part_size, self.single_put = first_part_size, single_put
        self.size = 0
        self.upload_id: str | None = None
        self._buffer = bytearray()
        self._parts: list[dict[str, Any]] = []
        self._in_flight: Future[dict[str, Any]] | None = None
        self._pool: ThreadPoolExecutor | None = None
        self._ended = False

    def writable(self) -> bool:
        return True

    def tell(self) -> int:
        return self.size

    def write(self, data: Any) -> int:
        """Buffer ``data``; every full part goes to S3 (waiting for the previous one first)."""
        if self._ended:
            raise ValueError(f"s3://{self.bucket}/{self.key}: write after the upload ended")
        view = memoryview(data).cast("B")
        self._buffer += view
        self.size += len(view)
        while len(self._buffer) >= self._next_part_size():
            size = self._next_part_size()
            with memoryview(self._buffer) as buffered:
                body = bytes(buffered[:size])  # one copy, not a slice and then a copy
            del self._buffer[:size]
            self._send(body)
        return len(view)

    def _next_part_size(self) -> int:
        return part_size(len(self._parts) + (self._in_flight is not None) + 1, self.first_part_size)

    def _send(self, body: bytes) -> None:
        """Upload ``body`` as the next part in the background, once the part before it is done."""
        if self.upload_id is None:
            self.upload_id = self.s3.create_multipart_upload(Bucket=self.bucket, Key=self.key, ChecksumAlgorithm="CRC32",
                                                             **self.extra)["UploadId"]
            self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="leanlake-part")
        self._settle()
        number = len(self._parts) + 1
        if number > s3util.MAX_PARTS:
            raise ValueError(f"s3://{self.bucket}/{self.key}: output needs more than {s3util.MAX_PARTS:,} parts")
        assert self._pool is not None
        self._in_flight = self._pool.submit(self._upload_part, self.upload_id, number, body)

    def _upload_part(self, upload_id: str, number: int, body: bytes) -> dict[str, Any]:
        sent = self.s3.upload_part(Bucket=self.bucket, Key=self.key, UploadId=upload_id, PartNumber=number, Body=body,
                                   ChecksumAlgorithm="CRC32")
        part = {"PartNumber": number, "ETag": sent["ETag"]}
        if sent.get("ChecksumCRC32"):
            part["ChecksumCRC32"] = sent["ChecksumCRC32"]
        return part

    def _settle(self) -> None:
        """Wait for the part in flight (its failure is raised here)."""
        if self._in_flight is not None:
            future, self._in_flight = self._in_flight, None
            self._parts.append(future.result())

    def commit(self, late_metadata: Mapping[str, str] | None = None) -> s3util.Head:
        """Finish the write under its condition and return the HEAD of what S3 now holds.

        ``late_metadata`` is added to the metadata of a single PutObject (a multipart upload's was
        fixed when it began). Aborts on any failure; raises ConditionFailed when the destination
        is not as expected, or was replaced or deleted right after our write.
        """
        if self._ended:
            raise ValueError(f"s3://{self.bucket}/{self.key}: the upload already ended")
        condition = s3util.write_condition(self.replacing)
        try:
            if self.upload_id is None and self.single_put:
                metadata = {**self.extra.get("Metadata", {}), **(late_metadata or {})}
                etag = self.s3.put_object(Bucket=self.bucket, Key=self.key, Body=bytes(self._buffer),
                                          **{**self.extra, "Metadata": metadata}, **condition)["ETag"]
            else:
                if self._buffer or not (self._parts or self._in_flight):
                    self._send(bytes(self._buffer))  # the last part may be short (or empty: an empty output)
                    self._buffer = bytearray()
                self._settle()
                etag = self.s3.complete_multipart_upload(Bucket=self.bucket, Key=self.key, UploadId=self.upload_id,
                                                         MultipartUpload={"Parts": self._parts}, **condition)["ETag"]
                self.upload_id = None  # completed: nothing to abort
        except Exception as exc:
            self.abort()
            if s3util.is_condition_failure(exc, replacing=self.replacing):
                expected = f"no longer ETag {self.replacing}" if self.replacing else "it exists now"
                raise s3util.ConditionFailed(f"s3://{self.bucket}/{self.key} changed meanwhile ({expected})") from exc
            raise
        self._end()
        written = s3util.head(self.s3, self.bucket, self.key)
        if written is None:
            raise s3util.ConditionFailed(f"s3://{self.bucket}/{self.key} was deleted right after it was written")
        if written.etag != str(etag).strip('"'):
            raise s3util.ConditionFailed(f"s3://{self.bucket}/{self.key} was replaced right after it was written")
        return written

    def abort(self) -> None:
        """Drop everything written: the buffer, and the multipart upload if one began (no parts left behind)."""
        if self._in_flight is not None:
            self._in_flight.exception()  # let the part finish (or fail) before the abort
            self._in_flight = None
        upload_id, self.upload_id = self.upload_id, None
        self._end()
        if upload_id is not None:
            try:
                self.s3.abort_multipart_upload(Bucket=self.bucket, Key=self.key, UploadId=upload_id)
            except Exception:
                pass  # the original failure is what matters; the destination's abort-multipart rule collects leftovers

    def _end(self) -> None:
        self._ended = True
        self._buffer = bytearray()
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None


class S3Output:
    """Where a converter writes an S3 object (``chalicelib.formats.outputs.Output``): each attempt a new
    ``MultipartSink``; the caller commits the finished attempt or discards it."""

    def __init__(self, s3: Any, bucket: str, key: str, *, extra: Mapping[str, Any], replacing: str | None,
                 labels: Mapping[str, str] | None = None, first_part_size: int = FIRST_PART_SIZE) -> None:
        self.s3, self.bucket, self.key, self.extra, self.replacing = s3, bucket, key, dict(extra), replacing
        self.labels: Mapping[str, str] = dict(labels or {})
        self.first_part_size = first_part_size
        self.sink: MultipartSink | None = None

    def start(self) -> MultipartSink:
        """A new attempt: the previous one (if any) is aborted."""
        self.discard()
        self.sink = MultipartSink(self.s3, self.bucket, self.key, extra=self.extra, replacing=self.replacing,
                                  first_part_size=self.first_part_size)
        return self.sink

    def finish(self) -> int:
        """The attempt is written in full; its size (it is kept only by ``commit``)."""
        if self.sink is None:
            raise ValueError(f"s3://{self.bucket}/{self.key}: nothing was started")
        return self.sink.size

    def discard(self) -> None:
        """Abort the current attempt; a no-op when there is none or it was committed."""
        sink, self.sink = self.sink, None
        if sink is not None:
            sink.abort()

    def commit(self, late_metadata: Mapping[str, str] | None = None) -> s3util.Head:
        """Keep the finished attempt (``MultipartSink.commit``)."""
        sink, self.sink = self.sink, None
        if sink is None:
            raise ValueError(f"s3://{self.bucket}/{self.key}: nothing to commit")
        return sink.commit(late_metadata)


class _Counter(io.RawIOBase):
    """A write-only stream that counts what it is given and keeps none of it."""

    def __init__(self) -> None:
        super().__init__()
        self.size = 0

    def writable(self) -> bool:
        return True

    def tell(self) -> int:
        return self.size

    def write(self, data: Any) -> int:
        n = memoryview(data).nbytes
        self.size += n
        return n


class CountingOutput:
    """An output that counts the bytes written and keeps none (dry runs)."""

    def __init__(self, labels: Mapping[str, str] | None = None) -> None:
        self.labels: Mapping[str, str] = dict(labels or {})
        self.counter = _Counter()

    def start(self) -> _Counter:
        """A new attempt: the count starts again."""
        self.counter = _Counter()
        return self.counter

    def finish(self) -> int:
        return self.counter.size

    def discard(self) -> None:
        self.counter = _Counter()
