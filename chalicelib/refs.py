"""ObjectRef: the one shape every trigger turns its event into.

S3 events, EventBridge events, sweeps, inventory manifests and the CLI all produce
``ObjectRef`` values; the planner and the executor only ever see these.

Example:
    >>> ref = ObjectRef(bucket="ml-lake", key="raw/a.csv", size=2048)
    >>> ref.uri
    's3://ml-lake/raw/a.csv'
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Mapping

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


@dataclass(frozen=True, slots=True)
class ObjectRef:
    """An S3 object as a trigger saw it. Fields other than bucket and key are hints; HEAD is the truth."""

    bucket: str
    key: str
    size: int | None = None
    etag: str | None = None
    version_id: str | None = None
    storage_class: str | None = None
    last_modified: datetime | None = None
    tags: Mapping[str, str] | None = field(default=None, compare=False)

    @property
    def uri(self) -> str:
        return f"s3://{self.bucket}/{self.key}"

    @property
    def effective_storage_class(self) -> str:
        """S3 omits STANDARD from HEAD and listings in places; None means STANDARD."""
        return self.storage_class or "STANDARD"
