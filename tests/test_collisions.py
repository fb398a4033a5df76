"""Two sources, one destination: ``validate`` warns with a fix, and at run time no source loses its data.

The run-time tests use the real pipeline on the moto server with ``source: delete``, and assert
what is left in S3: every source's rows are either still in the source or in a verified output
made from that very source."""

from __future__ import annotations

import bz2
import csv
import gzip
import io
import json
import os
import subprocess
import sys
from pathlib import Path
from urllib.parse import unquote

import pyarrow.parquet as pq
import pytest
import zstandard

from chalicelib.context import RunContext
from chalicelib.ledger import Ledger
from chalicelib.pipeline import handle_uploads
from chalicelib.policy import PolicySet
from chalicelib.policy.collisions import collision_warnings, first_collision, probe_keys
from chalicelib.refs import ObjectRef

ROOT = Path(__file__).resolve().parents[1]


def writer_policy(destination: str | None, *, action: str = "convert", prefix="raw/", suffix=(".csv", ".csv.gz", ".jsonl"),
                  name: str = "tables", bucket: str = "ml-lake") -> dict:
    config: dict = {"source": "delete"}
    if destination is not None:
        config["destination"] = destination
    return {"name": name, "bucket": bucket, "filters": {"prefix": prefix, "suffix": list(suffix)}, "actions": [{action: config}]}


# --- validate: the pure analysis ---------------------------------------------------------------


def test_stem_with_several_suffixes_warns_and_suggests_a_template_without_collisions():
    (warning,) = collision_warnings(PolicySet.from_dicts([writer_policy("curated/{rel_dir}{stem}.parquet")]))
    assert warning == ("policy 'tables': destination 'curated/{rel_dir}{stem}.parquet' maps raw/a.csv and raw/a.csv.gz "
                       "to one output, curated/a.parquet: whichever comes first is written, the other is skipped and kept; "
                       "use 'curated/{rel_dir}{name}.parquet'")
    assert collision_warnings(PolicySet.from_dicts([writer_policy("curated/{rel_dir}{name}.parquet")])) == []


def test_recompress_default_with_gz_and_bz2_warns_and_suggests_keeping_the_suffix():
    policy = writer_policy(None, action="recompress", prefix="logs/", suffix=(".gz", ".bz2"), name="logs")
    (warning,) = collision_warnings(PolicySet.from_dicts([policy]))
    assert "'{dir}{stem}{format suffix}.zst' maps logs/a.gz and logs/a.bz2 to one output, logs/a.zst" in warning
    assert warning.endswith("use '{dir}{name}.zst'")
    policy["actions"][0]["recompress"]["destination"] = "{dir}{name}.zst"
    assert collision_warnings(PolicySet.from_dicts([policy])) == []


@pytest.mark.parametrize("destination, suffix", [
    ("{dir}{stem}.parquet", (".csv",)),                         # one suffix: the stem is the rest of the name
    ("{dir}{stem}{ext}.parquet", (".csv", ".jsonl", ".csv.gz")),
    ("curated/{key}.parquet", ()),
    ("curated/{rel_dir}{name}.parquet", ()),
])
def test_templates_that_keep_the_key_apart_do_not_warn(destination, suffix):
    assert collision_warnings(PolicySet.from_dicts([writer_policy(destination, suffix=suffix)])) == []


@pytest.mark.parametrize("destination, prefix, expected, fix", [
    # No suffix filter: a plain `a` and `a.gz` meet.
    ("{dir}{stem}.parquet", "raw/", ("raw/a", "raw/a.gz", "raw/a.parquet"), "{dir}{name}.parquet"),
    # No directory in the template: raw/a.csv and raw/x/a.csv meet.
    ("curated/{name}.parquet", "raw/", ("raw/a", "raw/x/a", "curated/a.parquet"), "curated/{dir}{name}.parquet"),
    # {rel_dir} with two prefixes: raw/a.csv and in/a.csv meet.
    ("curated/{rel_dir}{name}.parquet", ["raw/", "in/"], ("raw/a", "in/a", "curated/a.parquet"), "curated/{dir}{name}.parquet"),
])
def test_each_way_of_losing_part_of_the_key_is_found(destination, prefix, expected, fix):
    (warning,) = collision_warnings(PolicySet.from_dicts([writer_policy(destination, prefix=prefix, suffix=())]))
    assert f"maps {expected[0]} and {expected[1]} to one output, {expected[2]}" in warning
    assert warning.endswith(f"use {fix!r}")


def test_two_policies_whose_outputs_meet_are_reported():
    policies = PolicySet.from_dicts([
        writer_policy("curated/{rel_dir}{stem}.parquet", name="csv", suffix=(".csv",)),
        writer_policy("curated/{rel_dir}{stem}.parquet", name="jsonl", prefix="in/", suffix=(".jsonl",)),
    ])
    assert collision_warnings(policies) == [
        "policies 'csv' and 'jsonl' in bucket ml-lake can write one output: raw/a.csv and in/a.jsonl both map to "
        "curated/a.parquet; give them destinations that differ"]


def test_probes_match_the_filters_and_the_check_finds_nothing_where_nothing_collides():
    from chalicelib.policy.models import Filters

    filters = Filters(prefix=["raw/", "raw/2024/"], suffix=[".csv", ".tsv.gz"])
    probes = list(probe_keys(filters))
    assert probes and all(k.startswith("raw/") and k.endswith((".csv", ".tsv.gz")) for k, _ in probes)
    assert ("raw/2024/a.csv", "raw/2024/") in probes and ("raw/x/a.csv", "raw/") in probes
    policy = PolicySet.from_dicts([writer_policy("{dir}{name}.parquet")]).policies[0]
    assert first_collision(filters, policy.actions[0]) is None


def test_validate_prints_the_warning_on_stderr_and_still_succeeds(tmp_path):
    path = tmp_path / "p.yaml"
    path.write_text(json.dumps({"policies": [writer_policy(None, action="recompress", prefix="logs/", suffix=(".gz", ".bz2"),
                                                           name="logs")]}))
    result = subprocess.run([sys.executable, "-m", "leanlake.cli", "validate", str(path)], capture_output=True, text=True,
                            env={**os.environ, "PYTHONPATH": str(ROOT)}, cwd=ROOT, timeout=300)
    assert result.returncode == 0 and "1 policies valid" in result.stdout
    warnings = [line for line in result.stderr.splitlines() if line.startswith("warning: policy 'logs': destination")]
    assert len(warnings) == 1 and "logs/a.gz and logs/a.bz2" in warnings[0]


# --- run time: sources that share a destination on a real S3 API --------------------------------


def rows_csv(first: int, count: int) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["id", "origin", "score"])
    for i in range(first, first + count):
        writer.writerow([i, "csv", f"{i * 0.25:.2f}"])
    return out.getvalue().encode()


def rows_jsonl(first: int, count: int) -> bytes:
    return "".join(json.dumps({"id": i, "origin": "jsonl", "score": i * 0.25}) + "\n" for i in range(first, first + count)).encode()


def run(s3, policies: PolicySet, bucket: str, *keys: str):
    ctx = RunContext(policies=policies, s3=s3)
    return handle_uploads([ObjectRef(bucket, k) for k in keys], ctx, Ledger(emit_metrics=False))


def data_keys(s3, bucket: str) -> list[str]:
    """The bucket's keys outside leanlake's reserved prefix (audit records are not data)."""
    listed = s3.list_objects_v2(Bucket=bucket).get("Contents", [])
    return sorted(o["Key"] for o in listed if not o["Key"].startswith("_leanlake/"))


def parquet_ids(s3, bucket: str, key: str) -> list[int]:
    return pq.read_table(io.BytesIO(s3.get_object(Bucket=bucket, Key=key)["Body"].read())).column("id").to_pylist()


def test_three_sources_one_destination_lose_no_table(s3, bucket):
    sources = {
        "raw/a.csv": (rows_csv(0, 3000), list(range(0, 3000))),
        "raw/a.jsonl": (rows_jsonl(10_000, 2000), list(range(10_000, 12_000))),
        "raw/a.csv.gz": (gzip.compress(rows_csv(20_000, 4000)), list(range(20_000, 24_000))),
    }
    for key, (body, _) in sources.items():
        s3.put_object(Bucket=bucket, Key=key, Body=body)
    policies = PolicySet.from_dicts([writer_policy("curated/{rel_dir}{stem}.parquet", bucket=bucket)])

    first, second, third = run(s3, policies, bucket, *sources)
    again = run(s3, policies, bucket, "raw/a.jsonl", "raw/a.csv.gz")  # a retry changes nothing

    assert first.status == "ok" and "source: deleted" in first.reason
    for skipped in (second, third, *again):
        assert skipped.status == "skip" and "\n" not in skipped.reason
        assert (f"collision: destination s3://{bucket}/curated/a.parquet was made from s3://{bucket}/raw/a.csv, "
                f"not from s3://{bucket}/{skipped.decision.key}") in skipped.reason
        assert skipped.reason.endswith("not overwritten, source kept")
    assert data_keys(s3, bucket) == ["curated/a.parquet", "raw/a.csv.gz", "raw/a.jsonl"]
    output = s3.head_object(Bucket=bucket, Key="curated/a.parquet")["Metadata"]
    assert unquote(output["leanlake-source-key"]) == "raw/a.csv" and output["leanlake-rows"] == "3000"
    # Every table still exists: the deleted one in its own output, the others untouched.
    assert parquet_ids(s3, bucket, "curated/a.parquet") == sources["raw/a.csv"][1]
    for key in ("raw/a.jsonl", "raw/a.csv.gz"):
        assert s3.get_object(Bucket=bucket, Key=key)["Body"].read() == sources[key][0]


def test_the_suggested_template_gives_every_source_its_own_verified_output(s3, bucket):
    sources = {"raw/a.csv": rows_csv(0, 3000), "raw/a.jsonl": rows_jsonl(10_000, 2000),
               "raw/a.csv.gz": gzip.compress(rows_csv(20_000, 4000))}
    for key, body in sources.items():
        s3.put_object(Bucket=bucket, Key=key, Body=body)
    policy = writer_policy("curated/{rel_dir}{stem}.parquet", bucket=bucket)
    fix = collision_warnings(PolicySet.from_dicts([policy]))[0].rpartition("use ")[2].strip("'")
    policy["actions"][0]["convert"]["destination"] = fix

    outcomes = run(s3, PolicySet.from_dicts([policy]), bucket, *sources)

    assert [o.status for o in outcomes] == ["ok", "ok", "ok"], [o.reason for o in outcomes]
    assert data_keys(s3, bucket) == ["curated/a.csv.gz.parquet", "curated/a.csv.parquet", "curated/a.jsonl.parquet"]
    assert parquet_ids(s3, bucket, "curated/a.jsonl.parquet") == list(range(10_000, 12_000))
    assert parquet_ids(s3, bucket, "curated/a.csv.gz.parquet") == list(range(20_000, 24_000))


def test_gz_and_bz2_logs_recompress_to_one_zst_without_losing_either(s3, bucket):
    lines = [b"2026-11-01T00:00:%02dZ INFO %s request ok latency_ms=%d\n" % (i % 60, tag, i) for tag in (b"gz", b"bz2")
             for i in range(6000)]
    gz_raw, bz2_raw = b"".join(lines[:6000]), b"".join(lines[6000:])
    s3.put_object(Bucket=bucket, Key="logs/app.gz", Body=gzip.compress(gz_raw))
    s3.put_object(Bucket=bucket, Key="logs/app.bz2", Body=bz2.compress(bz2_raw))
    policies = PolicySet.from_dicts([writer_policy(None, action="recompress", prefix="logs/", suffix=(".gz", ".bz2"),
                                                   name="logs", bucket=bucket)])

    first, second = run(s3, policies, bucket, "logs/app.gz", "logs/app.bz2")

    assert first.status == "ok" and first.output_key == "logs/app.zst" and "source: deleted" in first.reason
    assert second.status == "skip" and "was made from s3://%s/logs/app.gz" % bucket in second.reason
    assert data_keys(s3, bucket) == ["logs/app.bz2", "logs/app.zst"]
    zst = s3.get_object(Bucket=bucket, Key="logs/app.zst")
    assert zst["Metadata"]["leanlake-source-key"] == "logs/app.gz"
    assert zstandard.ZstdDecompressor().decompressobj().decompress(zst["Body"].read()) == gz_raw
    assert bz2.decompress(s3.get_object(Bucket=bucket, Key="logs/app.bz2")["Body"].read()) == bz2_raw
