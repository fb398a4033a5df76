"""SIGKILL during ``leanlake apply`` loses nothing, and the next run finishes the job.

``apply`` runs as a real process against the moto server and is killed at several moments of its
work; after each kill, every source's rows are in the source or in a verified output of its own.
A last uninterrupted run converges: every output made once, every expiry done, nothing else gone.
"""

from __future__ import annotations

import gzip
import io
import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from datetime import datetime, timedelta, timezone

import pyarrow.parquet as pq

TABLES, LOGS, SCRATCH = 16, 6, 30
ROWS = 3000


def table(i: int) -> bytes:
    return ("id,name,score\n" + "".join(f"{i * ROWS + r},name-{r % 97},{r * 0.5}\n" for r in range(ROWS))).encode()


def log(i: int) -> bytes:
    return gzip.compress("".join(f"2026-11-30T00:00:{r % 60:02d}Z host-{i} GET /item/{r}\n" for r in range(4000)).encode())


def apply(endpoint: str, policies: str, as_of: str) -> subprocess.Popen:
    env = {**os.environ, "AWS_ENDPOINT_URL": endpoint, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
           "AWS_DEFAULT_REGION": "us-east-1", "AWS_EC2_METADATA_DISABLED": "true"}
    code = "from leanlake.cli import main; main()"
    return subprocess.Popen([sys.executable, "-c", code, "apply", "--policies", policies, "--as-of", as_of, "--yes", "--json"],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def progress(s3, bucket: str) -> int:
    """How much apply has visibly done, never decreasing: outputs written, sources and scratch files gone."""
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", [])]
    count = lambda prefix, suffix="": sum(k.startswith(prefix) and k.endswith(suffix) for k in keys)  # noqa: E731
    return (count("curated/") + count("logs/", ".zst") + TABLES - count("raw/") + LOGS - count("logs/", ".gz")
            + SCRATCH - count("tmp/"))


def nothing_lost(s3, bucket: str) -> dict[str, str]:
    """Where each table's rows are now ('source' or 'output'); fails when a table's rows are nowhere."""
    present = {o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", [])}
    where = {}
    for i in range(TABLES):
        source, output = f"raw/t{i}.csv", f"curated/t{i}.parquet"
        if output in present:
            body = s3.get_object(Bucket=bucket, Key=output)["Body"].read()
            meta = s3.head_object(Bucket=bucket, Key=output)["Metadata"]
            assert pq.ParquetFile(io.BytesIO(body)).metadata.num_rows == ROWS and meta["leanlake"] == "output"
            where[source] = "output"
        if source in present:
            assert s3.get_object(Bucket=bucket, Key=source)["Body"].read() == table(i)
            where[source] = "source"
        assert source in where, f"{source}: rows neither in the source nor in a verified output"
    for i in range(LOGS):
        source, output = f"logs/l{i}.log.gz", f"logs/l{i}.log.zst"
        assert source in present or output in present, f"{source}: neither the source nor its output"
    return where


def test_sigkill_during_apply_loses_nothing_and_the_next_run_finishes(s3, bucket, moto_endpoint, tmp_path):
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    for i in range(TABLES):
        s3.put_object(Bucket=bucket, Key=f"raw/t{i}.csv", Body=table(i))
    for i in range(LOGS):
        s3.put_object(Bucket=bucket, Key=f"logs/l{i}.log.gz", Body=log(i))
    for i in range(SCRATCH):
        s3.put_object(Bucket=bucket, Key=f"tmp/s{i}.tmp", Body=b"x" * 100)
    s3.put_object(Bucket=bucket, Key="keep/me.txt", Body=b"not matched by any policy")
    policies = tmp_path / "p.yaml"
    policies.write_text(textwrap.dedent(f"""\
        policies:
          - name: tables
            bucket: {bucket}
            filters: {{prefix: raw/, suffix: .csv}}
            actions: [{{convert: {{source: delete, destination: "curated/{{rel_dir}}{{stem}}.parquet"}}}}]
          - name: logs
            bucket: {bucket}
            filters: {{prefix: logs/, suffix: .gz}}
            actions: [{{recompress: {{level: 3, source: delete}}}}]
          - name: scratch
            bucket: {bucket}
            filters: {{prefix: tmp/, suffix: .tmp}}
            actions: [{{expire: {{days: 7, versions: all}}}}]
        """))
    as_of = (datetime.now(timezone.utc) + timedelta(days=30)).date().isoformat()
    rng = random.Random(7)
    kills = 0
    for _ in range(4):
        wanted = progress(s3, bucket) + rng.randint(1, 12)  # kill once this run has visibly done some work
        process = apply(moto_endpoint, str(policies), as_of)
        deadline = time.monotonic() + 120
        while process.poll() is None and progress(s3, bucket) < wanted and time.monotonic() < deadline:
            time.sleep(0.02)
        time.sleep(rng.uniform(0.0, 0.2))  # … at a random moment after
        if process.poll() is None:
            process.send_signal(signal.SIGKILL)
            kills += 1
        process.wait(timeout=60)
        nothing_lost(s3, bucket)
    assert kills >= 2, "apply finished before it could be killed: give it more work"

    final = apply(moto_endpoint, str(policies), as_of)
    _, stderr = final.communicate(timeout=300)
    assert final.returncode == 0, stderr.decode()[-2000:]
    assert set(nothing_lost(s3, bucket).values()) == {"output"}
    listing = s3.list_object_versions(Bucket=bucket)
    versions = [v["Key"] for v in listing.get("Versions", []) if not v["Key"].startswith("_leanlake/")]
    for i in range(TABLES):
        assert versions.count(f"curated/t{i}.parquet") == 1  # each output written once, however often killed
    present = {o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", []) if not o["Key"].startswith("_leanlake/")}
    assert not {k for k in present if k.startswith(("tmp/", "raw/"))} and "keep/me.txt" in present
    assert {f"logs/l{i}.log.zst" for i in range(LOGS)} <= present
