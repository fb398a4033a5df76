"""S3 plumbing shared by every action: the client, HEAD as the truth, safe writes and in-place copies.

- ``client()``: boto3 S3 client with botocore's adaptive retries; honours ``AWS_ENDPOINT_URL``
  (and ``AWS_ENDPOINT_URL_S3``) natively, so the same code runs on AWS, moto and SeaweedFS.
- ``head()``: what an object really is (size, ETag, class, metadata, SSE, Object Lock).
- Objects leanlake writes carry the metadata key ``leanlake`` (the loop-guard marker) and name
  their source (key percent-encoded: S3 metadata is ASCII, 2 KB in all).

Example:
    >>> s3 = client()                                   # doctest: +SKIP
    >>> head(s3, "ml-lake", "raw/a.csv").size            # doctest: +SKIP
    2048
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Mapping
from urllib.parse import quote

#: Metadata key on everything leanlake writes; its value says what the object is.
MARKER = "leanlake"
MARKER_OUTPUT = "output"      # written by convert/recompress
MARKER_COPY = "copy"          # an in-place storage-class copy (fires ObjectCreated:Copy)
#: Metadata keys naming an output's source.
SOURCE_KEY, SOURCE_ETAG, SOURCE_SIZE, SOURCE_POLICY = "leanlake-source-key", "leanlake-source-etag", "leanlake-source-size", "leanlake-policy"
#: Single-request copy limit; above it copies go multipart.
MAX_SINGLE_COPY = 5 * 1024**3


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
        """Why this object must not be deleted or replaced, or None (DESIGN invariant 1).

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


def source_metadata(source: Head, policy: str) -> dict[str, str]:
    """Metadata for an output: the marker and its source (key percent-encoded to stay ASCII and short)."""
    return {
        MARKER: MARKER_OUTPUT,
        SOURCE_KEY: quote(source.key, safe="/")[:1024],
        SOURCE_ETAG: source.etag,
        SOURCE_SIZE: str(source.size),
        SOURCE_POLICY: policy,
    }


def upload(s3: Any, path: str, bucket: str, key: str, *, metadata: Mapping[str, str], content_type: str,
           source: Head) -> Head:
    """Upload a local file (multipart when large), carrying tags and SSE from ``source``; return its HEAD."""
    extra: dict[str, Any] = {**source.write_args(), "Metadata": dict(metadata), "ContentType": content_type}
    if source.tags:
        extra["Tagging"] = encode_tags(source.tags)
    s3.upload_file(path, bucket, key, ExtraArgs=extra)
    written = head(s3, bucket, key)
    if written is None:
        raise IOError(f"s3://{bucket}/{key}: upload reported success but HEAD finds no object")
    return written


def copy_in_place(s3: Any, source: Head, storage_class: str, *, marker: str = MARKER_COPY) -> None:
    """Copy an object onto itself in ``storage_class`` (the form AWS, moto and SeaweedFS accept).

    ``MetadataDirective=REPLACE`` with the metadata and content type re-supplied, tags kept; the
    marker lets triggers recognise the ``ObjectCreated:Copy`` this fires. Multipart above 5 GB.
    """
    from boto3.s3.transfer import TransferConfig

    extra: dict[str, Any] = {
        **source.write_args(),
        "StorageClass": storage_class,
        "MetadataDirective": "REPLACE",
        "Metadata": {**source.metadata, MARKER: marker},
    }
    copy_source = {"Bucket": source.bucket, "Key": source.key}
    if source.version_id:
        copy_source["VersionId"] = source.version_id
    if source.size <= MAX_SINGLE_COPY:
        s3.copy_object(CopySource=copy_source, Bucket=source.bucket, Key=source.key, TaggingDirective="COPY", **extra)
        return
    extra.pop("MetadataDirective")  # multipart copies take metadata directly
    s3.copy(copy_source, source.bucket, source.key, ExtraArgs=extra, Config=TransferConfig(multipart_chunksize=512 * 1024**2))
    tags = source.tags if source.tags is not None else read_tags(s3, source.bucket, source.key, source.version_id)
    if tags:
        s3.put_object_tagging(Bucket=source.bucket, Key=source.key, Tagging={"TagSet": [{"Key": k, "Value": v} for k, v in tags.items()]})
