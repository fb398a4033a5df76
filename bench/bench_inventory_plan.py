"""Benchmark: ``leanlake plan --inventory s3://…/manifest.json --json`` over a 1,000,000-object CSV S3 Inventory.

What: starts a moto S3 server in a process of its own, seeds it with an inventory of N objects of the
bucket ``ml-lake`` (a ``manifest.json`` and gzip CSV data files of 100,000 rows each, the columns and
URL-encoding S3 Inventory writes; the key shapes, sizes, ages and classes of ``bench_plan.py``), writes
``bench_plan.py``'s policies as a policy file (the tag-filtered one without its tag filter: an inventory
carries no tags, so tags would be one GetObjectTagging per object), then runs
``python -m leanlake plan --inventory … --json`` as a subprocess and measures that process alone: wall
seconds from start to exit, and its peak RSS from ``os.wait4``. Linux counts in a child's ``ru_maxrss``
the RSS of the parent it was forked from (``exec`` records the old address space's high-water mark), so
this process stays small: seeding and checking the output (parsing it as one JSON document, decision
count against the totals and against N objects' worth) run in subprocesses of their own, and this
process's own peak is printed beside the figure (``bench_parent_rss_mib``: the figure is that process's
only when above it).

Why: the issue's goal, 1,000,000 objects planned from an inventory in at most 10 s and 256 MiB as a
whole process (imports, reading the inventory, planning, writing the JSON).

Run:
    .venv/bin/python bench/bench_inventory_plan.py            # 1,000,000 objects
    .venv/bin/python bench/bench_inventory_plan.py 100000     # another count
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import os
import resource
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from datetime import timedelta
from typing import Any
from urllib.parse import quote_plus

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import bench_plan  # noqa: E402  (the same objects and policies as the listing benchmark)

SOURCE = bench_plan.BUCKET
DEST = "inventory-dest"
PREFIX = f"{SOURCE}/daily/2026-11-26T01-00Z"
SCHEMA = "Bucket, Key, VersionId, IsLatest, IsDeleteMarker, Size, LastModifiedDate, ETag, StorageClass"
ROWS_PER_FILE = 100_000
ENV = {**os.environ, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_SESSION_TOKEN": "testing",
       "AWS_DEFAULT_REGION": "us-east-1", "AWS_EC2_METADATA_DISABLED": "true", "PYTHONPATH": ROOT}


def data_files(n: int) -> list[bytes]:
    """The gzip CSV data files of an inventory of ``n`` objects (every field quoted, keys URL-encoded, as S3 writes them)."""
    files, out, writer, rows = [], io.StringIO(), None, 0
    writer = csv.writer(out, quoting=csv.QUOTE_ALL)
    for key, modified, etag, size, storage_class in bench_plan.objects(n):
        modified -= timedelta(microseconds=modified.microsecond)
        writer.writerow([SOURCE, quote_plus(key, safe="/"), "", "true", "false", size,
                         modified.strftime("%Y-%m-%dT%H:%M:%S.000Z"), etag, storage_class])
        rows += 1
        if rows % ROWS_PER_FILE == 0:
            files.append(gzip.compress(out.getvalue().encode(), 6))
            out.seek(0)
            out.truncate()
    if out.getvalue():
        files.append(gzip.compress(out.getvalue().encode(), 6))
    return files


def policy_file(directory: str) -> str:
    """``bench_plan``'s policies as YAML (JSON is YAML), without tag filters (an inventory lists no tags)."""
    policies = []
    for entry in bench_plan.POLICIES:
        filters = {k: v for k, v in entry["filters"].items() if k != "tags"}
        policies.append({**entry, "filters": filters})
    path = os.path.join(directory, "policies.yaml")
    with open(path, "w") as f:
        json.dump({"policies": policies}, f)
    return path


def start_moto() -> tuple[subprocess.Popen, str]:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=ENV)
    endpoint = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            urllib.request.urlopen(f"{endpoint}/moto-api/", timeout=1).close()
            return server, endpoint
        except OSError:
            time.sleep(0.1)
    server.kill()
    raise SystemExit("the moto server did not start")


def seed(endpoint: str, n: int) -> str:
    import boto3

    s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="testing",
                      aws_secret_access_key="testing")
    s3.create_bucket(Bucket=SOURCE)
    s3.create_bucket(Bucket=DEST)
    files = []
    for i, body in enumerate(data_files(n)):
        key = f"{SOURCE}/daily/data/{i:04d}.csv.gz"
        s3.put_object(Bucket=DEST, Key=key, Body=body)
        files.append({"key": key, "size": len(body), "MD5checksum": "-"})
    manifest = {"sourceBucket": SOURCE, "destinationBucket": f"arn:aws:s3:::{DEST}", "version": "2016-11-30",
                "creationTimestamp": "1795651200000", "fileFormat": "CSV", "fileSchema": SCHEMA, "files": files}
    s3.put_object(Bucket=DEST, Key=f"{PREFIX}/manifest.json", Body=json.dumps(manifest).encode())
    return f"s3://{DEST}/{PREFIX}/manifest.json"


def run_plan(endpoint: str, manifest: str, policies: str, out_path: str) -> dict[str, Any]:
    """One ``leanlake plan`` process: wall seconds and its own peak RSS (``os.wait4``)."""
    with open(out_path, "wb") as out:
        started = time.perf_counter()
        child = subprocess.Popen([sys.executable, "-m", "leanlake", "plan", "--policies", policies, "--inventory", manifest,
                                  "--as-of", bench_plan.NOW.date().isoformat(), "--json"],
                                 stdout=out, stderr=subprocess.PIPE, env={**ENV, "AWS_ENDPOINT_URL": endpoint})
        _, status, usage = os.wait4(child.pid, 0)
        seconds = time.perf_counter() - started
        child.returncode = os.waitstatus_to_exitcode(status)
        stderr = child.stderr.read().decode() if child.stderr else ""
    if child.returncode != 0:
        raise SystemExit(f"leanlake plan exited {child.returncode}: {stderr.strip()}")
    return {"seconds": round(seconds, 2), "peak_rss_mib": round(usage.ru_maxrss / 1024, 1),
            "user_s": round(usage.ru_utime, 2), "sys_s": round(usage.ru_stime, 2)}


def check(out_path: str, n: int) -> dict[str, Any]:
    """The output is one JSON document whose decisions are those of the inventory's objects."""
    with open(out_path) as f:
        document = json.load(f)
    decisions = len(document["decisions"])
    overall = document["totals"]["overall"]
    assert decisions == overall["decisions"], (decisions, overall["decisions"])
    objects = {d["key"] for d in document["decisions"] if d["key"] is not None}
    assert decisions > n // 2, decisions  # 6 of the 8 key shapes match a policy
    return {"decisions": decisions, "objects_with_decisions": len(objects), "actions": overall["actions"],
            "monthly_usd_saved": overall["monthly_usd_saved"], "output_mib": round(os.path.getsize(out_path) / 2**20, 1)}


def in_own_process(*args: str) -> Any:
    """Run ``main``'s ``--seed`` / ``--check`` step in a fresh process (so this one stays small); its JSON result."""
    out = subprocess.run([sys.executable, __file__, *args], check=True, capture_output=True, text=True, env=ENV)
    return json.loads(out.stdout)


def main(argv: list[str]) -> None:
    if argv and argv[0] == "--seed":
        print(json.dumps(seed(argv[1], int(argv[2]))))
        return
    if argv and argv[0] == "--check":
        print(json.dumps(check(argv[1], int(argv[2]))))
        return
    n = int(argv[0]) if argv else 1_000_000
    repeat = int(argv[1]) if len(argv) > 1 else 3
    print(json.dumps({"machine": bench_plan.machine(), "load_average": os.getloadavg()}))
    server, endpoint = start_moto()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            started = time.perf_counter()
            manifest = in_own_process("--seed", endpoint, str(n))
            print(json.dumps({"objects": n, "seeded_s": round(time.perf_counter() - started, 1)}))
            policies, out_path = policy_file(tmp), os.path.join(tmp, "plan.json")
            for _ in range(repeat):
                result = run_plan(endpoint, manifest, policies, out_path)
                parent = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
                print(json.dumps({"objects": n, **result, "bench_parent_rss_mib": parent,
                                  **in_own_process("--check", out_path, str(n))}))
    finally:
        server.terminate()
        server.wait(timeout=30)


if __name__ == "__main__":
    main(sys.argv[1:])
