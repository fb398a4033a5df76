"""S3 Inventory → ObjectRefs, so sweeps of buckets with millions of objects need no listing.

Reads an inventory ``manifest.json`` (``s3://dest/prefix/source-bucket/config/YYYY-MM-DDTHH-MMZ/manifest.json``)
and its data files: CSV (gzip; keys URL-encoded, decoded here with ``unquote_plus``, once) or
Parquet (keys as stored). ORC is not read (say so, rather than guess). Rows stream file by file;
delete markers and non-current versions are skipped.

Example:
    >>> refs = refs_from_inventory(s3, "s3://inventory-bucket/ml-lake/daily/2026-11-26T01-00Z/manifest.json")  # doctest: +SKIP
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import re
from datetime import datetime
from typing import Any, Iterator
from urllib.parse import unquote_plus

from chalicelib.refs import RESERVED_PREFIX, ObjectRef


class InventoryError(ValueError):
    """The manifest or a data file cannot be read as an S3 Inventory report."""


def _split(uri: str) -> tuple[str, str]:
    if not uri.startswith("s3://") or "/" not in uri[5:]:
        raise InventoryError(f"{uri}: expected s3://BUCKET/KEY of an inventory manifest.json")
    bucket, _, key = uri[5:].partition("/")
    return bucket, key


def _row_to_ref(bucket: str, row: dict[str, Any], *, encoded: bool) -> ObjectRef | None:
    if str(row.get("IsDeleteMarker", "false")).lower() == "true" or str(row.get("IsLatest", "true")).lower() == "false":
        return None
    key = unquote_plus(row["Key"]) if encoded else row["Key"]
    if key.startswith(RESERVED_PREFIX):
        return None
    modified = row.get("LastModifiedDate")
    if isinstance(modified, str) and modified:
        modified = datetime.fromisoformat(modified.replace("Z", "+00:00"))
    size = row.get("Size")
    return ObjectRef(bucket=bucket, key=key, size=int(size) if size not in (None, "") else None,
                     etag=(row.get("ETag") or None), version_id=row.get("VersionId") or None,
                     storage_class=row.get("StorageClass") or None, last_modified=modified or None)


_PARQUET_NAMES = {"bucket": "Bucket", "key": "Key", "version_id": "VersionId", "is_latest": "IsLatest",
                  "is_delete_marker": "IsDeleteMarker", "size": "Size", "last_modified_date": "LastModifiedDate",
                  "e_tag": "ETag", "storage_class": "StorageClass"}


def listed_fields(manifest: dict[str, Any]) -> frozenset[str] | None:
    """The fields the inventory's rows carry (CSV names: ``Size``, ``ETag``…), from the manifest's ``fileSchema``;
    None when the manifest does not say (a reader that needs a field then finds out row by row).

        >>> sorted(listed_fields({"fileFormat": "CSV", "fileSchema": "Bucket, Key, Size, ETag"}))
        ['Bucket', 'ETag', 'Key', 'Size']
        >>> schema = "message s3.inventory { required binary bucket (STRING); optional int64 size; optional binary e_tag (STRING); }"
        >>> sorted(listed_fields({"fileFormat": "Parquet", "fileSchema": schema}))
        ['Bucket', 'ETag', 'Size']
    """
    schema, file_format = manifest.get("fileSchema"), str(manifest.get("fileFormat", "")).upper()
    if not isinstance(schema, str):
        return None
    if file_format == "CSV":
        return frozenset(c.strip() for c in schema.split(","))
    if file_format == "PARQUET":
        names = re.findall(r"(?:required|optional|repeated)\s+\w+\s+(\w+)", schema)
        return frozenset(_PARQUET_NAMES.get(name, name) for name in names)
    return None


def read_manifest(s3: Any, manifest_uri: str) -> dict[str, Any]:
    """The manifest, checked for the fields this reader needs."""
    bucket, key = _split(manifest_uri)
    try:
        manifest = json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read())
        for field in ("sourceBucket", "fileFormat", "files"):
            manifest[field]
    except (KeyError, ValueError, TypeError) as exc:
        raise InventoryError(f"{manifest_uri}: not an S3 Inventory manifest (missing {exc})") from None
    manifest.setdefault("destinationBucket", f"arn:aws:s3:::{bucket}")
    return manifest


def refs_from_inventory(s3: Any, manifest_uri: str, manifest: dict[str, Any] | None = None) -> Iterator[ObjectRef]:
    """Refs of every current object the inventory lists, file by file."""
    manifest = manifest or read_manifest(s3, manifest_uri)
    source, file_format, files = manifest["sourceBucket"], manifest["fileFormat"].upper(), manifest["files"]
    data_bucket = manifest["destinationBucket"].split(":")[-1]
    if file_format == "CSV":
        columns = [c.strip() for c in manifest["fileSchema"].split(",")]
        for item in files:
            body = s3.get_object(Bucket=data_bucket, Key=item["key"])["Body"]
            with gzip.open(body, "rt", encoding="utf-8", newline="") as text:
                for values in csv.reader(text):
                    ref = _row_to_ref(source, dict(zip(columns, values, strict=False)), encoded=True)
                    if ref:
                        yield ref
    elif file_format == "PARQUET":
        import pyarrow.parquet as pq

        for item in files:
            data = s3.get_object(Bucket=data_bucket, Key=item["key"])["Body"].read()
            for batch in pq.ParquetFile(io.BytesIO(data)).iter_batches(batch_size=10_000):
                for row in batch.to_pylist():
                    ref = _row_to_ref(source, {_PARQUET_NAMES.get(k, k): v for k, v in row.items()}, encoded=False)
                    if ref:
                        yield ref
    else:
        raise InventoryError(f"{manifest_uri}: inventory format {manifest['fileFormat']} is not supported (use CSV or Parquet)")
