"""Sweeps from an S3 Inventory report instead of a listing: CSV keys are decoded once, delete markers skipped."""

from __future__ import annotations

import csv
import gzip
import io
import json
import textwrap
from urllib.parse import quote_plus

from typer.testing import CliRunner

from leanlake.cli import app
from chalicelib.inventory import refs_from_inventory

SCHEMA = "Bucket, Key, VersionId, IsLatest, IsDeleteMarker, Size, LastModifiedDate, ETag, StorageClass"


def write_inventory(s3, source: str, dest: str, rows: list[list[str]]) -> str:
    out = io.StringIO()
    csv.writer(out).writerows(rows)
    s3.put_object(Bucket=dest, Key="inv/data/part-0.csv.gz", Body=gzip.compress(out.getvalue().encode()))
    manifest = {"sourceBucket": source, "destinationBucket": f"arn:aws:s3:::{dest}", "version": "2016-11-30",
                "creationTimestamp": "1795651200000", "fileFormat": "CSV", "fileSchema": SCHEMA,
                "files": [{"key": "inv/data/part-0.csv.gz", "size": 1, "MD5checksum": "x"}]}
    s3.put_object(Bucket=dest, Key="inv/2026-11-26T01-00Z/manifest.json", Body=json.dumps(manifest).encode())
    return f"s3://{dest}/inv/2026-11-26T01-00Z/manifest.json"


def test_inventory_rows_become_refs(s3, bucket):
    uri = write_inventory(s3, "ml-lake", bucket, [
        ["ml-lake", quote_plus("tmp/a b+c.tmp"), "v1", "true", "false", "12", "2026-01-01T00:00:00.000Z", "e1", "STANDARD"],
        ["ml-lake", "tmp/gone.tmp", "v2", "true", "true", "", "2026-01-01T00:00:00.000Z", "", ""],
        ["ml-lake", "tmp/old.tmp", "v3", "false", "false", "5", "2025-01-01T00:00:00.000Z", "e3", "STANDARD"],
        ["ml-lake", "_leanlake/audit/x.jsonl", "v4", "true", "false", "5", "2025-01-01T00:00:00.000Z", "e4", "STANDARD"],
    ])
    (ref,) = refs_from_inventory(s3, uri)
    assert (ref.bucket, ref.key, ref.size, ref.version_id, ref.last_modified.year) == ("ml-lake", "tmp/a b+c.tmp", 12, "v1", 2026)


def test_plan_and_apply_from_an_inventory(s3, bucket, tmp_path):
    source = bucket + "-src"
    s3.create_bucket(Bucket=source)
    etag = {key: s3.put_object(Bucket=source, Key=key, Body=b"x")["ETag"].strip('"') for key in ("tmp/a b.tmp", "tmp/keep.tmp")}
    uri = write_inventory(s3, source, bucket, [  # the ETags as S3 Inventory lists them: what a deletion is conditional on
        [source, quote_plus("tmp/a b.tmp"), "", "true", "false", "1", "2026-01-01T00:00:00.000Z", etag["tmp/a b.tmp"], "STANDARD"],
        [source, "tmp/keep.tmp", "", "true", "false", "1", "2026-11-26T00:00:00.000Z", etag["tmp/keep.tmp"], "STANDARD"],
    ])
    policies = tmp_path / "p.yaml"
    policies.write_text(textwrap.dedent(f"""\
        policies:
          - name: scratch
            bucket: {source}
            filters: {{prefix: tmp/, suffix: .tmp}}
            actions: [{{expire: {{days: 30}}}}]
        """))
    result = CliRunner().invoke(app, ["plan", "--policies", str(policies), "--inventory", uri, "--as-of", "2026-11-27", "--json"])
    assert result.exit_code == 0, result.output
    decisions = {d["key"]: d["action"] for d in json.loads(result.stdout)["decisions"]}
    assert decisions == {"tmp/a b.tmp": "expire", "tmp/keep.tmp": "skip"}
    result = CliRunner().invoke(app, ["apply", "--policies", str(policies), "--inventory", uri, "--as-of", "2026-11-27", "--yes", "--json"])
    assert result.exit_code == 0, result.output
    assert sorted(o["Key"] for o in s3.list_objects_v2(Bucket=source, Prefix="tmp/")["Contents"]) == ["tmp/keep.tmp"]
    bad = CliRunner().invoke(app, ["plan", "--policies", str(policies), "--inventory", f"s3://{bucket}/inv/data/part-0.csv.gz"])
    assert bad.exit_code == 1 and "not an S3 Inventory manifest" in bad.output
