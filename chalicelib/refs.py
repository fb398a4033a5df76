"""ObjectRef: the one shape every trigger turns its event into.

S3 events, EventBridge events, sweeps, inventory manifests and the CLI all produce
``ObjectRef`` values; the planner and the executor only ever see these.

Example:
    >>> ref = ObjectRef(bucket="ml-lake", key="raw/a.csv", size=2048)
    >>> ref.uri
    's3://ml-lake/raw/a.csv'
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Mapping

#: Everything leanlake writes for itself lives under this prefix; no policy ever matches it.
RESERVED_PREFIX = "_leanlake/"


def is_reserved(key: str) -> bool:
    """True for a key under ``RESERVED_PREFIX``: leanlake's own (the audit trail), never a source or a destination.

        >>> is_reserved("_leanlake/audit/2026/01/01/run.jsonl"), is_reserved("raw/_leanlake/audit/x.csv")
        (True, False)
    """
    return key.startswith(RESERVED_PREFIX)


def reaches_reserved(prefix: str) -> bool:
    """True when a key prefix takes in keys under ``RESERVED_PREFIX`` too ("" and "_lean" do, "raw/" does not).

    S3 Lifecycle can't exclude a prefix, so a rule on such a prefix would also act on leanlake's audit trail.

        >>> [reaches_reserved(p) for p in ("", "_", "_leanlake", "_leanlake/audit/", "raw/", "_leanlake-old/")]
        [True, True, True, True, False, False]
    """
    return RESERVED_PREFIX.startswith(prefix) or is_reserved(prefix)


class SlotsValue:
    """A value made of ``__slots__``: equal and hashed by what ``_fields`` returns (the ``__eq__`` and
    ``__hash__`` a frozen dataclass would write, for classes made once per object, where a frozen
    dataclass costs seconds a million)."""

    __slots__ = ()

    def _fields(self) -> tuple[Any, ...]:
        raise NotImplementedError

    def __eq__(self, other: object) -> bool:
        if other.__class__ is not self.__class__:
            return NotImplemented
        return self._fields() == other._fields()

    def __hash__(self) -> int:
        return hash(self._fields())


class ObjectRef(SlotsValue):
    """An S3 object as a trigger saw it. Fields other than bucket and key are hints; HEAD is the truth.

    A value: compared and hashed by every field but ``tags``, printed like a dataclass, never changed once
    made (``with_tags`` makes a copy). A plain ``__slots__`` class, not a frozen dataclass, because a
    sweep or an inventory makes one per listed object: a million frozen dataclasses cost seconds.

        >>> ObjectRef("b", "k", 1, tags={"a": "1"}) == ObjectRef("b", "k", 1), ObjectRef("b", "k").with_tags({"a": "1"}).tags
        (True, {'a': '1'})
    """

    __slots__ = ("bucket", "key", "size", "etag", "version_id", "storage_class", "last_modified", "tags")
    __match_args__ = ("bucket", "key", "size", "etag", "version_id", "storage_class", "last_modified")

    bucket: str
    key: str
    size: int | None
    etag: str | None
    version_id: str | None
    storage_class: str | None
    last_modified: datetime | None
    tags: Mapping[str, str] | None

    def __init__(self, bucket: str, key: str, size: int | None = None, etag: str | None = None, version_id: str | None = None,
                 storage_class: str | None = None, last_modified: datetime | None = None,
                 tags: Mapping[str, str] | None = None) -> None:
        self.bucket = bucket
        self.key = key
        self.size = size
        self.etag = etag
        self.version_id = version_id
        self.storage_class = storage_class
        self.last_modified = last_modified
        self.tags = tags

    def _fields(self) -> tuple[Any, ...]:
        return (self.bucket, self.key, self.size, self.etag, self.version_id, self.storage_class, self.last_modified)

    def __repr__(self) -> str:
        return (f"ObjectRef(bucket={self.bucket!r}, key={self.key!r}, size={self.size!r}, etag={self.etag!r}, "
                f"version_id={self.version_id!r}, storage_class={self.storage_class!r}, "
                f"last_modified={self.last_modified!r}, tags={self.tags!r})")

    def with_tags(self, tags: Mapping[str, str] | None) -> "ObjectRef":
        """The same object with ``tags`` (read by GetObjectTagging)."""
        return ObjectRef(self.bucket, self.key, self.size, self.etag, self.version_id, self.storage_class,
                         self.last_modified, tags)

    @property
    def uri(self) -> str:
        return f"s3://{self.bucket}/{self.key}"

    @property
    def effective_storage_class(self) -> str:
        """S3 omits STANDARD from HEAD and listings in places; None means STANDARD."""
        return self.storage_class or "STANDARD"
