"""Benchmark: what a Lambda sweep continuation spends listing and planning each object, on a real S3 API (moto).

What: starts a moto S3 server in a process of its own, puts N objects of ``bench_plan.py``'s shapes (keys,
classes; a byte each) into the bucket ``ml-lake``, and runs a sweep continuation's listing and planning
(``chalicelib.fanout._listed``: ListObjectsV2 pages from the checkpoint on, each object's decisions) over
them with an unlimited budget, against ``bench_plan.py``'s policies without the tag filter (tags would be a
GetObjectTagging each). It prints the wall and CPU seconds of this process (moto's own work runs in its
process, so the CPU is leanlake's and botocore's) and microseconds an object, twice: "cold" (the first
continuation of a process, paying the imports and pyarrow's first calls, as a cold Lambda does) and "warm" (the
same continuation again, as the next one in a warm Lambda).

Why: a sweep in Lambda is a run of continuations, each listing and planning as many objects as its budget
allows; what it spends an object sets how many invocations a bucket takes (docs/scale.md). It planned
one object at a time until stop 13, ~1.5 ms an object in Arrow kernels' fixed costs, and botocore parsed
each listing page into dicts (~110 µs an object).

Run:
    .venv/bin/python bench/bench_sweep.py            # 20,000 objects
    .venv/bin/python bench/bench_sweep.py 5000
"""

from __future__ import annotations

import json
import os
import resource
import sys
import time
from concurrent.futures import ThreadPoolExecutor

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import bench_inventory_plan  # noqa: E402  (its moto server and its policies without tag filters)
import bench_plan  # noqa: E402  (the same objects and policies as the planning benchmark)


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def main(argv: list[str]) -> None:
    n = int(argv[0]) if argv else 20_000
    server, endpoint = bench_inventory_plan.start_moto()
    try:
        os.environ.update({k: v for k, v in bench_inventory_plan.ENV.items() if k.startswith("AWS_")})
        os.environ["AWS_ENDPOINT_URL"] = endpoint
        import boto3

        from chalicelib import fanout
        from chalicelib.context import RunContext
        from chalicelib.policy import PolicySet

        s3 = boto3.client("s3")
        s3.create_bucket(Bucket=bench_plan.BUCKET)
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(lambda item: s3.put_object(Bucket=bench_plan.BUCKET, Key=item[0], Body=b"x", StorageClass=item[4]),
                          bench_plan.objects(n)))
        with open(bench_inventory_plan.policy_file(os.environ.get("TMPDIR", "/tmp"))) as f:
            policies = PolicySet.from_dicts(json.load(f)["policies"])
        ctx = RunContext(s3=s3, policies=policies, now=bench_plan.NOW)
        for run in ("cold", "warm"):  # the first pays the imports and pyarrow's first calls, as a cold Lambda does
            cp = fanout.Checkpoint(bucket=bench_plan.BUCKET, run="bench", as_of=bench_plan.NOW.isoformat(), policies=None,
                                   prefixes=fanout.listing_prefixes(policies, bench_plan.BUCKET), cap=0)
            started, cpu_started = time.perf_counter(), cpu_seconds()
            handled = decisions = 0
            for _, decided in fanout._listed(ctx, cp, policies, fanout.Budget(seconds=1e9)):
                handled += 1
                decisions += len(decided)
            seconds, cpu = time.perf_counter() - started, cpu_seconds() - cpu_started
            print(json.dumps({"run": run, "objects": handled, "decisions": decisions, "seconds": round(seconds, 2),
                              "cpu_s": round(cpu, 2), "us_per_object": round(seconds / max(handled, 1) * 1e6, 1),
                              "cpu_us_per_object": round(cpu / max(handled, 1) * 1e6, 1)}))
    finally:
        server.terminate()


if __name__ == "__main__":
    main(sys.argv[1:])
