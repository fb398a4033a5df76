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


def _reference_refs(source: str, rows: list[list[str]]) -> list:
    """What the row-at-a-time ``csv`` reader made of the rows: the pyarrow reader must make the same refs."""
    from chalicelib.inventory import _row_to_ref

    columns = [c.strip() for c in SCHEMA.split(",")]
    refs = (_row_to_ref(source, dict(zip(columns, row, strict=False)), encoded=True) for row in rows)
    return [r for r in refs if r]


def _fields(ref) -> tuple:
    return (ref.bucket, ref.key, ref.size, ref.etag, ref.version_id, ref.storage_class, ref.last_modified,
            ref.last_modified.utcoffset() if ref.last_modified else None)


def test_pyarrow_csv_reader_gives_the_refs_of_the_row_reader(s3, bucket, monkeypatch):
    from chalicelib import inventory

    monkeypatch.setattr(inventory, "_CSV_BLOCK_BYTES", 4096)  # many batches, so batch edges are crossed
    keys = ["raw/a b.csv", "raw/ünïcødé/データ.csv", "raw/plus+sign.csv", "raw/100%.csv", 'raw/"quoted",comma.csv',
            "plain/key.txt", "_leanlake/audit/x.jsonl"]
    rows = []
    for i in range(3000):
        key = keys[i % len(keys)].replace(".", f"-{i}.")
        rows.append(["ml-lake", quote_plus(key), f"v{i}" if i % 3 else "", ("true", "TRUE", "false")[i % 3] if i % 11 else "",
                     "true" if i % 17 == 0 else "false", str(i * 1013) if i % 5 else "",
                     f"2026-0{1 + i % 9}-0{1 + i % 9}T0{i % 10}:00:00.000Z" if i % 7 else "",
                     f"{i:032x}" if i % 4 else "", ("STANDARD", "GLACIER_IR", "", "DEEP_ARCHIVE")[i % 4]])
    uri = write_inventory(s3, "ml-lake", bucket, rows)
    got = list(refs_from_inventory(s3, uri))
    expected = _reference_refs("ml-lake", rows)
    assert len(got) == len(expected) > 1500
    assert [_fields(r) for r in got] == [_fields(r) for r in expected]
    for shape in (" ", "+", "%", '"quoted",', "データ"):  # each hard key shape came through decoded
        assert any(shape in r.key for r in got), shape
    assert not any(r.key.startswith("_leanlake/") for r in got)


def test_a_malformed_data_file_is_named_in_one_line(s3, bucket, tmp_path):
    uri = write_inventory(s3, "ml-lake", bucket, [["ml-lake", "raw/a.csv", "v1"]])  # 3 columns where the schema has 9
    bad = CliRunner().invoke(app, ["plan", "--inventory", uri, "--policies", str(_scratch_policy(tmp_path))])
    assert bad.exit_code == 1
    line = f"leanlake: s3://{bucket}/inv/data/part-0.csv.gz: not a gzip CSV inventory data file"
    assert bad.output.startswith(line) and bad.output.count("\n") == 1, bad.output
    s3.put_object(Bucket=bucket, Key="inv/data/part-0.csv.gz", Body=b"Bucket,Key\nnot,gzip\n")
    bad = CliRunner().invoke(app, ["plan", "--inventory", uri, "--policies", str(_scratch_policy(tmp_path))])
    assert bad.exit_code == 1 and bad.output.startswith(line) and bad.output.count("\n") == 1, bad.output
    for garbage in (["ml-lake", "raw/a.csv", "", "true", "false", "12", "yesterday", "e", "STANDARD"],  # a date that is none
                    ["ml-lake", "raw/a.csv", "", "true", "false", "twelve", "2026-01-01T00:00:00.000Z", "e", "STANDARD"]):
        write_inventory(s3, "ml-lake", bucket, [garbage])
        bad = CliRunner().invoke(app, ["plan", "--inventory", uri, "--policies", str(_scratch_policy(tmp_path))])
        assert bad.exit_code == 1 and bad.output.startswith(line) and bad.output.count("\n") == 1, bad.output


def _scratch_policy(tmp_path):
    path = tmp_path / "p.yaml"
    path.write_text("policies:\n  - name: scratch\n    bucket: ml-lake\n    filters: {prefix: raw/}\n"
                    "    actions: [{expire: {days: 30}}]\n")
    return path
