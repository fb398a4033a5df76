"""S3 Inventory → ObjectRefs, so sweeps of buckets with millions of objects need no listing.

Reads an inventory ``manifest.json`` (``s3://dest/prefix/source-bucket/config/YYYY-MM-DDTHH-MMZ/manifest.json``)
and its data files: CSV (gzip; keys URL-encoded, decoded here with ``unquote_plus``, once) or
Parquet (keys as stored). ORC is not read (say so, rather than guess). Rows stream file by file;
delete markers and non-current versions are skipped.

CSV data files are read with pyarrow's streaming CSV reader (column names from the manifest's
``fileSchema``), a block at a time straight from the GetObject body: reading a million-row
inventory then costs seconds and a few MiB, not a Python ``csv`` row at a time. A data file that
is not gzip CSV with the schema's columns fails with an ``InventoryError`` naming it.

Example:
    >>> refs = refs_from_inventory(s3, "s3://inventory-bucket/ml-lake/daily/2026-11-26T01-00Z/manifest.json")  # doctest: +SKIP
"""

from __future__ import annotations

import io
import json
import re
from datetime import datetime
from typing import Any, Iterator
from urllib.parse import unquote_plus

from chalicelib.columns import Objects, text, url_decoded
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


#: Rows decoded per batch of the CSV reader (bytes of uncompressed CSV): about 22,000 rows, a batch the planner
#: decides on at once. `plan --inventory … --json` of 1M objects (bench/RESULTS.md): 4 MiB blocks peaked at
#: 253-261 MiB; 1 MiB at 185-191 MiB but took 13.7-14.6 s (the kernels' cost a call, paid a batch); 2 MiB, 225-231
#: MiB and 9.4-10.9 s. With mimalloc's arenas committed lazily (``leanlake.cli``): 2 MiB, 186-189 MiB; 3 MiB,
#: 199-204 MiB and fewer Arrow calls; 4 MiB, 221-234 MiB (too near the 256 MiB budget).
_CSV_BLOCK_BYTES = 3 << 20


def csv_objects(source: str, columns: list[str], body: Any, name: str) -> Iterator[Objects]:
    """The current objects of one gzip CSV data file (``body``: a readable binary stream), a block at a time, as
    columns: straight from the CSV reader's batches, with Arrow kernels (no object per row).

    Equal to ``_row_to_ref`` of each ``csv`` row: keys ``unquote_plus``-decoded, empty fields None, delete
    markers, non-current versions and ``_leanlake/`` keys left out. ``name`` is the file's URI, for errors.

        >>> import gzip, io
        >>> data = gzip.compress(b'"lake","raw/a%20b.csv","7","2026-01-01T00:00:00.000Z","e1",""\\n')
        >>> [batch] = csv_objects("lake", ["Bucket", "Key", "Size", "LastModifiedDate", "ETag", "StorageClass"], io.BytesIO(data), "x")
        >>> [ref] = batch.refs([0])
        >>> ref.key, ref.size, ref.etag, ref.storage_class, ref.last_modified.isoformat()
        ('raw/a b.csv', 7, 'e1', None, '2026-01-01T00:00:00+00:00')
    """
    import pyarrow as pa
    import pyarrow.csv as pacsv

    def failed(exc: BaseException) -> InventoryError:
        return InventoryError(f"{name}: not a gzip CSV inventory data file with columns {', '.join(columns)} ({_first_line(exc)})")

    types = {c: (pa.int64() if c == "Size" else pa.string()) for c in columns}
    try:
        reader = pacsv.open_csv(pa.CompressedInputStream(pa.PythonFile(body, mode="r"), "gzip"),
                                read_options=pacsv.ReadOptions(column_names=columns, block_size=_CSV_BLOCK_BYTES, use_threads=False),
                                convert_options=pacsv.ConvertOptions(column_types=types, strings_can_be_null=False))
    except (pa.ArrowException, OSError) as exc:
        raise failed(exc) from None
    while True:
        try:
            batch = reader.read_next_batch()
        except StopIteration:
            return
        except (pa.ArrowException, OSError) as exc:
            raise failed(exc) from None
        try:
            yield _batch_objects(source, batch, columns)
        except pa.ArrowException as exc:
            raise failed(exc) from None


def _batch_objects(source: str, batch: Any, columns: list[str]) -> Objects:
    """The objects of one record batch of a CSV data file (see ``csv_objects``)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if "IsDeleteMarker" in columns:
        batch = _without(batch, "IsDeleteMarker", "true", usual="false")
    if "IsLatest" in columns:
        batch = _without(batch, "IsLatest", "false", usual="true")
    keys = url_decoded(batch.column("Key"))
    mine = pc.starts_with(keys, pattern=RESERVED_PREFIX)
    if pc.any(mine).as_py():
        theirs = pc.invert(mine)
        batch, keys = batch.filter(theirs), keys.filter(theirs)
    rows = batch.num_rows

    def column(field: str) -> Any:
        """A text field, empty as null; all nulls when the inventory does not list it."""
        if field not in columns:
            return pa.nulls(rows, pa.string())
        values = batch.column(field)
        return pc.if_else(pc.equal(values, text("")), pa.nulls(1, pa.string())[0], values)

    sizes = batch.column("Size") if "Size" in columns else pa.nulls(rows, pa.int64())
    return Objects(source, keys, sizes, column("ETag"), column("VersionId"), column("StorageClass"),
                   column("LastModifiedDate").cast(pa.timestamp("us", tz="UTC")))


def _without(batch: Any, field: str, word: str, usual: str) -> Any:
    """``batch`` without the rows whose ``field`` is ``word`` in any case; the batch itself when every row's is
    ``usual`` (as S3 writes it: one comparison, where matching the pattern and filtering the batch cost a pass each,
    0.2 s a million rows)."""
    import pyarrow.compute as pc

    values = batch.column(field)
    if pc.all(pc.equal(values, text(usual)), skip_nulls=False).as_py():
        return batch
    # A pattern, not a scalar: a pyarrow scalar imports pandas (tens of MiB), which reading refs has no use for.
    return batch.filter(pc.invert(pc.match_substring_regex(values, f"^{word}$", ignore_case=True)))


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


def refs_from_inventory(s3: Any, manifest_uri: str, manifest: dict[str, Any] | None = None) -> Iterator[ObjectRef]:
    """Refs of every current object the inventory lists, file by file (``inventory_objects``' rows)."""
    for batch in inventory_objects(s3, manifest_uri, manifest):
        yield from batch.refs(range(len(batch)))


def inventory_objects(s3: Any, manifest_uri: str, manifest: dict[str, Any] | None = None) -> Iterator[Objects]:
    """Every current object the inventory lists, file by file, as batches of columns (what planning reads)."""
    manifest = manifest or read_manifest(s3, manifest_uri)
    source, file_format, files = manifest["sourceBucket"], manifest["fileFormat"].upper(), manifest["files"]
    data_bucket = manifest["destinationBucket"].split(":")[-1]
    if file_format == "CSV":
        columns = [c.strip() for c in manifest["fileSchema"].split(",")]
        for item in files:
            body = s3.get_object(Bucket=data_bucket, Key=item["key"])["Body"]
            yield from csv_objects(source, columns, body, f"s3://{data_bucket}/{item['key']}")
    elif file_format == "PARQUET":
        import pyarrow.parquet as pq

        for item in files:
            data = s3.get_object(Bucket=data_bucket, Key=item["key"])["Body"].read()
            for batch in pq.ParquetFile(io.BytesIO(data)).iter_batches(batch_size=10_000):
                refs = [_row_to_ref(source, {_PARQUET_NAMES.get(k, k): v for k, v in row.items()}, encoded=False)
                        for row in batch.to_pylist()]
                yield Objects.from_refs(source, [ref for ref in refs if ref])
    else:
        raise InventoryError(f"{manifest_uri}: inventory format {manifest['fileFormat']} is not supported (use CSV or Parquet)")
