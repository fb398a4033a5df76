"""S3 plumbing shared by every action: the client, HEAD as the truth, safe writes and in-place copies.

- ``client()``: boto3 S3 client with botocore's adaptive retries; honours ``AWS_ENDPOINT_URL``
  (and ``AWS_ENDPOINT_URL_S3``) natively, so the same code runs on AWS, moto and SeaweedFS.
- ``head()``: what an object really is (size, ETag, class, metadata, SSE, Object Lock).
- Objects leanlake writes carry the metadata key ``leanlake`` (the loop-guard marker) and name
  their source (key percent-encoded: S3 metadata is ASCII, 2 KB in all).
- ``write_condition()``: every write is conditional, ``If-None-Match: *`` for a new object,
  ``If-Match: ETAG`` to replace a known one; a destination that is not as expected raises
  ``ConditionFailed`` and nothing is overwritten. Outputs are streamed to S3 as they are
  produced (``chalicelib.multipart``).
- ``read_range()`` / ``RangedReader``: bytes of an object pinned to the ETag HEAD reported, so
  an output can be checked without downloading it.

Example:
    >>> s3 = client()                                   # doctest: +SKIP
    >>> head(s3, "ml-lake", "raw/a.csv").size            # doctest: +SKIP
    2048
"""

from __future__ import annotations

import contextlib
import functools
import io
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Iterator, Mapping
from urllib.parse import quote, unquote

#: Metadata key on everything leanlake writes; its value says what the object is.
MARKER = "leanlake"
MARKER_OUTPUT = "output"      # written by convert/recompress
MARKER_COPY = "copy"          # an in-place storage-class copy (fires ObjectCreated:Copy)
#: Metadata keys naming an output's source.
SOURCE_KEY, SOURCE_ETAG, SOURCE_SIZE = "leanlake-source-key", "leanlake-source-etag", "leanlake-source-size"
SOURCE_POLICY = "leanlake-policy"
#: Metadata key on a Parquet output written in one PUT (and on every one the previous version wrote): the
#: rows it holds, checked against its footer before it is trusted. A multipart output's metadata is fixed
#: before its rows are known: its Parquet footer records its source and rows instead.
ROWS = "leanlake-rows"
#: Longest percent-encoded source key recorded (S3 allows 2 KB of user metadata in all).
MAX_RECORDED_KEY = 1024
#: Single-request copy limit; above it copies go multipart.
MAX_SINGLE_COPY = 5 * 1024**3
#: The most parts a multipart upload may have.
MAX_PARTS = 10_000
#: Smallest part of a multipart in-place copy (over 5 GB).
COPY_PART_SIZE = 512 * 1024**2
#: Part copies in flight at once.
UPLOAD_THREADS = 4
#: S3 error codes saying a conditional request found the object not as expected.
_CONDITION_CODES = ("PreconditionFailed", "ConditionalRequestConflict", "412")


class ConditionFailed(Exception):
    """A conditional request found the object not as expected (someone wrote or deleted it meanwhile)."""


@functools.cache
def client(region: str | None = None) -> Any:
    """A cached S3 client with adaptive retries (throttling and 5xx are retried with backoff)."""
    import boto3
    from botocore.config import Config

    config = Config(retries={"mode": "adaptive", "max_attempts": 10}, region_name=region)
    return boto3.session.Session().client("s3", config=config)


@dataclass(frozen=True, slots=True)
class Head:
    """The truth about one object, from HEAD (and GetObjectTagging when tags were asked for)."""

    bucket: str
    key: str
    size: int
    etag: str
    last_modified: datetime
    storage_class: str
    content_type: str | None
    metadata: Mapping[str, str]
    version_id: str | None = None
    sse: Mapping[str, Any] = field(default_factory=dict)
    lock_mode: str | None = None
    lock_until: datetime | None = None
    legal_hold: bool = False
    tags: Mapping[str, str] | None = None
    #: SSE-C objects cannot be read without the customer's key: leanlake leaves them alone.
    customer_key: bool = False

    @property
    def marker(self) -> str | None:
        """What leanlake wrote this object as, or None for objects leanlake did not write."""
        return self.metadata.get(MARKER)

    def lock_reason(self) -> str | None:
        """Why this object must not be deleted or replaced, or None (leanlake loses no data).

        Always against the real clock: ``apply --as-of`` may pretend objects are older, never that
        a retention period is over."""
        if self.legal_hold:
            return "under legal hold"
        now = datetime.now(timezone.utc)
        if self.lock_mode and self.lock_until and self.lock_until > now:
            return f"Object Lock {self.lock_mode.lower()} retention until {self.lock_until:%Y-%m-%d}"
        return None

    def write_args(self) -> dict[str, Any]:
        """Content type and SSE settings to carry over to an object written from this one."""
        args: dict[str, Any] = dict(self.sse)
        if self.content_type:
            args["ContentType"] = self.content_type
        return args


#: SSE settings HEAD reports and PutObject/CopyObject take under the same names.
_SSE_FIELDS = ("ServerSideEncryption", "SSEKMSKeyId", "BucketKeyEnabled")


def head(s3: Any, bucket: str, key: str, *, version_id: str | None = None, with_tags: bool = False) -> Head | None:
    """HEAD an object; None when it does not exist (any other error propagates)."""
    from botocore.exceptions import ClientError

    kwargs: dict[str, Any] = {"Bucket": bucket, "Key": key}
    if version_id:
        kwargs["VersionId"] = version_id
    try:
        response = s3.head_object(**kwargs)
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
            return None
        raise
    tags = read_tags(s3, bucket, key, response.get("VersionId")) if with_tags else None
    return Head(
        bucket=bucket,
        key=key,
        size=int(response["ContentLength"]),
        etag=response["ETag"].strip('"'),
        last_modified=response["LastModified"],
        storage_class=response.get("StorageClass") or "STANDARD",
        content_type=response.get("ContentType"),
        metadata={k.lower(): v for k, v in (response.get("Metadata") or {}).items()},
        version_id=response.get("VersionId"),
        sse={name: response[name] for name in _SSE_FIELDS if response.get(name)},
        customer_key=bool(response.get("SSECustomerAlgorithm")),
        lock_mode=response.get("ObjectLockMode"),
        lock_until=response.get("ObjectLockRetainUntilDate"),
        legal_hold=response.get("ObjectLockLegalHoldStatus") == "ON",
        tags=tags,
    )


def read_tags(s3: Any, bucket: str, key: str, version_id: str | None = None) -> dict[str, str]:
    kwargs: dict[str, Any] = {"Bucket": bucket, "Key": key}
    if version_id:
        kwargs["VersionId"] = version_id
    return {t["Key"]: t["Value"] for t in s3.get_object_tagging(**kwargs).get("TagSet", [])}


def encode_tags(tags: Mapping[str, str]) -> str:
    """Tags in the URL-query form PutObject's ``Tagging`` takes."""
    from urllib.parse import urlencode

    return urlencode(dict(tags))


def recorded_key(key: str) -> str:
    """``key`` as an output's metadata records its source: percent-encoded (ASCII), at most 1024 characters.

    >>> recorded_key("raw/a b+c.csv")
    'raw/a%20b%2Bc.csv'
    """
    return quote(key, safe="/")[:MAX_RECORDED_KEY]


def source_metadata(source: Head, policy: str, *, rows: int | None = None) -> dict[str, str]:
    """Metadata for an output: the marker, its source, and (for Parquet) the rows it holds."""
    metadata = {
        MARKER: MARKER_OUTPUT,
        SOURCE_KEY: recorded_key(source.key),
        SOURCE_ETAG: source.etag,
        SOURCE_SIZE: str(source.size),
        SOURCE_POLICY: policy,
    }
    if rows is not None:
        metadata[ROWS] = str(rows)
    return metadata


def output_arguments(source: Head, metadata: Mapping[str, str], content_type: str) -> dict[str, Any]:
    """PutObject / CreateMultipartUpload arguments of an output of ``source``: its metadata and content
    type, and the source's SSE settings and tags carried over."""
    extra: dict[str, Any] = {**source.write_args(), "Metadata": dict(metadata), "ContentType": content_type}
    if source.tags:
        extra["Tagging"] = encode_tags(source.tags)
    return extra


def made_from(output: Head) -> str | None:
    """The source key an output's metadata names (decoded), or None when it names none."""
    recorded = output.metadata.get(SOURCE_KEY)
    return None if recorded is None else unquote(recorded)


def write_condition(replacing: str | None) -> dict[str, str]:
    """The precondition of a write: the key must not exist, or must still hold the ETag ``replacing``.

    >>> write_condition(None), write_condition("abc")
    ({'IfNoneMatch': '*'}, {'IfMatch': '"abc"'})
    """
    return {"IfNoneMatch": "*"} if replacing is None else {"IfMatch": f'"{replacing.strip(chr(34))}"'}


def is_condition_failure(exc: Exception, *, replacing: str | None) -> bool:
    """True when ``exc`` is S3 refusing a conditional request (or, for If-Match, the object being gone)."""
    from botocore.exceptions import ClientError

    if not isinstance(exc, ClientError):
        return False
    code = str(exc.response.get("Error", {}).get("Code"))
    return code in _CONDITION_CODES or (replacing is not None and code in ("NoSuchKey", "404"))


def part_size_for(size: int, minimum: int) -> int:
    """The part size that copies ``size`` bytes in at most 10,000 parts of at least ``minimum`` bytes.

    >>> part_size_for(100 * 1024**3, 8 * 1024**2) // 1024**2
    10
    """
    return max(minimum, -(-size // MAX_PARTS))


@contextlib.contextmanager
def _aborted_on_failure(s3: Any, bucket: str, key: str, upload_id: str) -> Iterator[None]:
    """Abort the multipart upload when the block fails (a refused condition included): no parts left behind."""
    try:
        yield
    except BaseException:
        try:
            s3.abort_multipart_upload(Bucket=bucket, Key=key, UploadId=upload_id)
        except Exception:
            pass  # the original failure is what matters; an abort_multipart rule collects leftovers
        raise


def read_range(s3: Any, obj: Head, start: int, end: int) -> bytes:
    """Bytes ``[start, end)`` of ``obj``, pinned to the ETag (and version) HEAD reported.

    Raises ConditionFailed when the object changed since that HEAD.
    """
    if end <= start:
        return b""
    kwargs: dict[str, Any] = {"Bucket": obj.bucket, "Key": obj.key, "Range": f"bytes={start}-{end - 1}",
                              "IfMatch": f'"{obj.etag}"'}
    if obj.version_id:
        kwargs["VersionId"] = obj.version_id
    try:
        return s3.get_object(**kwargs)["Body"].read()
    except Exception as exc:
        if is_condition_failure(exc, replacing=obj.etag):
            raise ConditionFailed(f"s3://{obj.bucket}/{obj.key} changed while being read") from exc
        raise


class RangedReader(io.RawIOBase):
    """A read-only, seekable file over one object version: each read is one ranged GET (``read_range``).

    Lets a reader that seeks (``pyarrow.parquet.read_metadata`` reads a Parquet footer from the
    end) look at a large object with a few small requests; ``requests`` counts them.
    """

    def __init__(self, s3: Any, obj: Head) -> None:
        super().__init__()
        self.s3, self.obj, self.position, self.requests = s3, obj, 0, 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self.position

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self.position, io.SEEK_END: self.obj.size}[whence]
        self.position = max(0, base + offset)
        return self.position

    def readinto(self, buffer: Any) -> int:
        end = min(self.position + len(buffer), self.obj.size)
        if end <= self.position:
            return 0
        data = read_range(self.s3, self.obj, self.position, end)
        self.requests += 1
        buffer[: len(data)] = data
        self.position += len(data)
        return len(data)


def copy_in_place(s3: Any, source: Head, storage_class: str, *, marker: str = MARKER_COPY) -> None:
    """Copy an object onto itself in ``storage_class`` (the form AWS, moto and SeaweedFS accept), conditionally.

    ``MetadataDirective=REPLACE`` with the metadata and content type re-supplied, tags kept; the
    marker lets triggers recognise the ``ObjectCreated:Copy`` this fires. The copy reads the
    source only while it still has the ETag ``source`` was decided on (``CopySourceIfMatch``) and
    replaces the key only while it still holds that ETag (``IfMatch``); otherwise ConditionFailed.
    Above 5 GB the copy goes multipart (``UploadPartCopy``), the condition on its completion.
    """
    etag = f'"{source.etag}"'
    extra: dict[str, Any] = {
        **source.write_args(),
        "StorageClass": storage_class,
        "Metadata": {**source.metadata, MARKER: marker},
    }
    copy_source = {"Bucket": source.bucket, "Key": source.key}
    if source.version_id:
        copy_source["VersionId"] = source.version_id
    try:
        if source.size <= MAX_SINGLE_COPY:
            s3.copy_object(CopySource=copy_source, Bucket=source.bucket, Key=source.key, TaggingDirective="COPY",
                           MetadataDirective="REPLACE", CopySourceIfMatch=etag, IfMatch=etag, **extra)
            return
        tags = source.tags if source.tags is not None else read_tags(s3, source.bucket, source.key, source.version_id)
        if tags:
            extra["Tagging"] = encode_tags(tags)
        _copy_multipart(s3, source, copy_source, extra, etag)
    except Exception as exc:
        if is_condition_failure(exc, replacing=source.etag):
            raise ConditionFailed(f"s3://{source.bucket}/{source.key} changed since it was decided") from exc
        raise


def _copy_multipart(s3: Any, source: Head, copy_source: Mapping[str, str], extra: Mapping[str, Any], etag: str) -> None:
    """Copy ``source`` onto itself in parts (``UploadPartCopy``, each pinned to ``etag``), completed under
    ``If-Match: etag``; any failure aborts the upload."""
    bucket, key = source.bucket, source.key
    part_size = part_size_for(source.size, COPY_PART_SIZE)
    upload_id = s3.create_multipart_upload(Bucket=bucket, Key=key, **extra)["UploadId"]

    def copy(number: int) -> dict[str, Any]:
        first = (number - 1) * part_size
        last = min(first + part_size, source.size) - 1
        done = s3.upload_part_copy(Bucket=bucket, Key=key, UploadId=upload_id, PartNumber=number, CopySource=copy_source,
                                   CopySourceRange=f"bytes={first}-{last}", CopySourceIfMatch=etag)
        return {"PartNumber": number, "ETag": done["CopyPartResult"]["ETag"]}

    with _aborted_on_failure(s3, bucket, key, upload_id):
        with ThreadPoolExecutor(max_workers=UPLOAD_THREADS) as pool:
            parts = list(pool.map(copy, range(1, -(-source.size // part_size) + 1)))
        s3.complete_multipart_upload(Bucket=bucket, Key=key, UploadId=upload_id, MultipartUpload={"Parts": parts}, IfMatch=etag)

