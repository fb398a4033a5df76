"""Benchmark: planning N listed objects (ListObjectsV2 response bodies → Arrow columns → plan_batches → Totals).

What: generates N objects as ListObjectsV2 response bodies of 1,000 objects, as S3 sends them (XML with
ETags, checksums, sizes, classes and times), and spools them to a temporary file before the clock starts: S3's
part of a sweep, not leanlake's. The timed run reads the bodies back a page at a time, as a sweep receives
them, reads each the way the sweep does (``listing.read_contents``: the page's objects as Arrow columns, what
leanlake's botocore handler runs; ``listing.batches`` gathers them), plans them against the example ml-lake
policies plus a storage-class policy, and totals the decisions. Each size runs in a fresh subprocess so that
its peak RSS (``ru_maxrss``) is its own.

Why: the plan must stream, with memory that does not grow with the count, and be quick: issue 11's
goal is 1,000,000 objects in at most 5 s on one core (see bench/RESULTS.md for where it stands). CPU
seconds (user + system) are printed beside wall seconds, with the load average: on a shared machine
they are the steadier figure. ``cpu_s_writing_xml`` is what writing the bodies cost before the clock (not
in the total); ``cpu_s_harness`` is the benchmark's own part of the timed run (reading the spool, and the tags
it stands in for GetObjectTagging with); ``cpu_s_leanlake`` is the rest, ``cpu_s_reading`` (the pages read as
columns) and ``cpu_s_planning`` (planning and totalling), each counted in the same run as it happens.
``botocore_parse_us_per_object`` is what botocore's own parsing of the same bodies costs, on up to 20,000
objects: what a sweep paid before it read its listings as columns.

Run:
    .venv/bin/python bench/bench_plan.py            # 100k and 1M
    .venv/bin/python bench/bench_plan.py 50000      # one size
"""

from __future__ import annotations

import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from typing import Any, BinaryIO, Iterator

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

BUCKET = "ml-lake"
NOW = datetime(2026, 11, 27, tzinfo=timezone.utc)
POLICIES = [
    {"name": "raw-tables-to-parquet", "bucket": BUCKET,
     "filters": {"prefix": "raw/", "suffix": [".csv", ".csv.gz", ".tsv", ".jsonl", ".jsonl.gz", ".json"],
                 "size": {"min": "1 KiB", "max": "20 GiB"}},
     "actions": [{"convert": {"destination": "curated/{rel_dir}{stem}.parquet", "source": "delete"}}]},
    {"name": "logs-to-zstd", "bucket": BUCKET, "filters": {"prefix": "logs/", "suffix": [".gz", ".bz2", ".log"]},
     "actions": [{"recompress": {"codec": "zstd", "level": 19, "source": "delete"}}]},
    {"name": "recreatable-features", "bucket": BUCKET, "filters": {"prefix": "features/", "tags": {"recreatable": "true"}},
     "actions": [{"storage_class": "ONEZONE_IA"}]},
    {"name": "checkpoints", "bucket": BUCKET, "filters": {"prefix": "checkpoints/"},
     "actions": [{"transition": [{"days": 30, "class": "GLACIER_IR"}, {"days": 180, "class": "DEEP_ARCHIVE"}]},
                 {"expire": {"days": 730}}]},
    {"name": "scratch", "bucket": BUCKET, "filters": {"prefix": "tmp/", "suffix": ".tmp"}, "actions": [{"expire": {"days": 7}}]},
    {"name": "cold-embeddings", "bucket": BUCKET, "filters": {"prefix": "embeddings/", "suffix": ".npy"},
     "actions": [{"transition": [{"days": 30, "class": "GLACIER_IR"}]}]},
]
CLASSES = ("STANDARD", "STANDARD", "STANDARD", "STANDARD_IA", "GLACIER_IR", "DEEP_ARCHIVE", "STANDARD", "STANDARD")
KEYS = ("raw/2026/{i}/part.csv", "logs/app/{i}.log.gz", "features/v1/{i}.parquet", "checkpoints/run/{i}.pt",
        "tmp/job/{i}.tmp", "embeddings/{i}.npy", "misc/{i}.bin", "raw/2026/{i}/notes.txt")
PAGE = 1000


def objects(n: int) -> Iterator[tuple[str, datetime, str, int, str]]:
    """The generated objects (key, last modified, ETag, size, storage class): varied sizes, ages, classes."""
    for i in range(n):
        yield (KEYS[i % len(KEYS)].format(i=i), NOW - timedelta(days=(i * 7919) % 900, seconds=i % 86400), f"{i:032x}",
               200 + (i * 104729) % (512 * 2**20), CLASSES[(i // len(KEYS)) % len(CLASSES)])


def bodies(n: int) -> Iterator[bytes]:
    """``objects(n)`` as ListObjectsV2 response bodies of 1,000, as S3 sends them (what botocore, or leanlake's listing,
    reads). The times are written from a table of days: ``strftime`` an object would cost the harness more than
    leanlake spends reading it."""
    days = [(NOW - timedelta(days=d)).strftime("%Y-%m-%dT") for d in range(902)]
    head = ('<?xml version="1.0" encoding="UTF-8"?>\n<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">'
            f"<Name>{BUCKET}</Name><Prefix></Prefix><KeyCount>{{}}</KeyCount><MaxKeys>{PAGE}</MaxKeys>"
            "<EncodingType>url</EncodingType><IsTruncated>{}</IsTruncated>")
    items: list[str] = []
    for start in range(0, n, PAGE):
        items.clear()
        for i in range(start, min(start + PAGE, n)):
            back = i % 86400  # seconds before midnight, NOW, on the day (i * 7919) % 900 days before
            day = (i * 7919) % 900 + (back > 0)
            clock = (86400 - back) % 86400
            items.append(f"<Contents><Key>{KEYS[i % len(KEYS)].format(i=i)}</Key><LastModified>{days[day]}"
                         f"{clock // 3600:02d}:{clock // 60 % 60:02d}:{clock % 60:02d}.000Z</LastModified>"
                         f"<ETag>&quot;{i:032x}&quot;</ETag><ChecksumAlgorithm>CRC64NVME</ChecksumAlgorithm><ChecksumType>FULL_OBJECT</ChecksumType>"
                         f"<Size>{200 + (i * 104729) % (512 * 2**20)}</Size>"
                         f"<StorageClass>{CLASSES[(i // len(KEYS)) % len(CLASSES)]}</StorageClass></Contents>")
        truncated = "true" if start + PAGE < n else "false"
        tail = "<NextContinuationToken>t</NextContinuationToken></ListBucketResult>"
        yield (head.format(len(items), truncated) + "".join(items) + tail).encode()


def spool(n: int, file: BinaryIO) -> None:
    """``bodies(n)`` written to ``file``, each after its length (4 bytes, little-endian), and ``file`` rewound."""
    for body in bodies(n):
        file.write(len(body).to_bytes(4, "little") + body)
    file.seek(0)


class Clock:
    """CPU seconds spent in parts of one run, counted as they happen (``time.process_time`` around each call): the
    harness's own and leanlake's reading of the bodies, attributed within the same run rather than by a second
    pass, which on a machine whose speed drifts by half within minutes would not compare."""

    def __init__(self) -> None:
        self.harness = self.reading = 0.0

    def bodies(self, spooled: BinaryIO) -> Iterator[bytes]:
        """The spooled bodies, one at a time, as a sweep receives its pages."""
        while True:
            started = time.process_time()
            length = int.from_bytes(spooled.read(4) or b"\0", "little")
            body = spooled.read(length)
            self.harness += time.process_time() - started
            if not body:
                return
            yield body


def batches(spooled: BinaryIO, clock: Clock) -> Iterator[Any]:
    """The bodies as leanlake's sweep reads a listing: each page's objects read as columns
    (``listing.read_contents``, what its botocore handler runs), gathered into ``Objects`` batches
    (``listing.batches``), with the tags a sweep reads (GetObjectTagging) where a tag-filtered policy could match
    (here, under ``features/``: the harness's part, standing in for S3's answers)."""
    from dataclasses import replace

    from chalicelib import listing

    recreatable = {"recreatable": "true"}

    def pages() -> Iterator[dict[str, Any]]:
        for body in clock.bodies(spooled):
            started = time.process_time()
            read = listing.read_contents(body)
            clock.reading += time.process_time() - started
            assert read is not None, "a page leanlake's listing does not read"
            yield {listing.COLUMNS: read[0]}

    for batch in listing.batches(BUCKET, pages()):
        started = time.process_time()
        tags = [recreatable if key.startswith("features/") else None for key in batch.keys.to_pylist()]
        clock.harness += time.process_time() - started
        yield replace(batch, tags=tags)


def botocore_us_per_object(n: int) -> float:
    """What botocore's own parsing of the same bodies costs (µs an object, over ``n`` objects' pages): what a
    sweep paid before it read listings as columns."""
    import botocore.session
    from botocore.parsers import RestXMLParser

    shape = botocore.session.get_session().get_service_model("s3").operation_model("ListObjectsV2").output_shape
    parser = RestXMLParser()
    started = cpu_seconds()
    parsed = sum(len(parser.parse({"body": body, "headers": {}, "status_code": 200}, shape)["Contents"]) for body in bodies(n))
    return (cpu_seconds() - started) / parsed * 1e6


def cpu_seconds() -> float:
    """User + system CPU seconds of this process: on a shared machine, steadier than wall seconds."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def run_one(n: int) -> dict[str, Any]:
    from chalicelib import collector
    from chalicelib.plan import Totals, plan_batches
    from chalicelib.policy import PolicySet

    policies = PolicySet.from_dicts(POLICIES)
    collector.for_streaming()  # as plan_objects does first
    with tempfile.TemporaryFile() as spooled:
        writing_started = cpu_seconds()
        spool(n, spooled)
        writing = cpu_seconds() - writing_started
        rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        clock = Clock()
        started, cpu_started = time.perf_counter(), cpu_seconds()
        totals = Totals()
        for planned in plan_batches(batches(spooled, clock), policies, NOW):
            totals.add_planned(planned)
        total_s, total_cpu = time.perf_counter() - started, cpu_seconds() - cpu_started
    result = totals.as_dict()["overall"]
    leanlake = total_cpu - clock.harness
    return {"objects": n, "seconds_total": round(total_s, 2), "cpu_s_total": round(total_cpu, 2),
            "cpu_s_writing_xml": round(writing, 2), "cpu_s_harness": round(clock.harness, 2), "cpu_s_leanlake": round(leanlake, 2),
            "cpu_s_reading": round(clock.reading, 2), "cpu_s_planning": round(leanlake - clock.reading, 2),
            "load_average": round(os.getloadavg()[0], 2), "leanlake_us_per_object": round(leanlake / n * 1e6, 2),
            "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
            "rss_after_imports_mb": round(rss_before / 1024, 1), "decisions": result["decisions"], "actions": result["actions"],
            "monthly_usd_saved": result["monthly_usd_saved"], "one_off_usd": result["one_off_usd"],
            "botocore_parse_us_per_object": round(botocore_us_per_object(min(n, 20_000)), 1)}


def machine() -> dict[str, Any]:
    cpu = "unknown"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    ram_gb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    import pydantic
    import yaml
    return {"nproc": os.cpu_count(), "cpu": cpu, "ram_gb": round(ram_gb, 1), "python": platform.python_version(),
            "pydantic": pydantic.VERSION, "pyyaml": yaml.__version__, "platform": platform.platform()}


def main(argv: list[str]) -> None:
    if argv and argv[0] == "--child":
        print(json.dumps(run_one(int(argv[1]))))
        return
    sizes = [int(a) for a in argv] or [100_000, 1_000_000]
    print(json.dumps({"machine": machine()}, indent=None))
    for n in sizes:
        out = subprocess.run([sys.executable, __file__, "--child", str(n)], check=True, capture_output=True, text=True)
        print(out.stdout.strip())


if __name__ == "__main__":
    main(sys.argv[1:])
