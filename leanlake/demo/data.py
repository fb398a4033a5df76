"""Deterministic synthetic ML-lake data of realistic shape for the demo.

- click-stream events (CSV): timestamps, ids, low-cardinality categoricals (country codes
  include ``NA``, Namibia), floats, a label column;
- user features (JSON Lines, gzip): nested objects and lists;
- application logs (gzip text);
- a tiny CSV that Parquet would make bigger (the "worth it" rule leaves it alone);
- a model checkpoint saved twice under two names (what ``leanlake duplicates`` finds).

Example:
    >>> files = dict(demo_files(rows=100))
    >>> files["models/ranker-v5/weights.bin"] == files["experiments/exp-42/checkpoint/weights.bin"]
    True
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import random
from datetime import datetime, timedelta
from typing import Iterator

COUNTRIES = ["US", "DE", "IN", "BR", "NA", "FR", "JP", "GB", "NG", "ZA"]
DEVICES = ["ios", "android", "web", "tv"]
EVENTS = ["view", "click", "add_to_cart", "purchase", "search"]
LEVELS = ["INFO"] * 8 + ["WARN", "ERROR"]


def _events_csv(rng: random.Random, rows: int, day: datetime) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["event_time", "user_id", "session_id", "country", "device", "event", "item_id", "price", "dwell_ms", "label"])
    t = day
    for _ in range(rows):
        t += timedelta(milliseconds=rng.randint(1, 900))
        event = rng.choice(EVENTS)
        writer.writerow([
            t.isoformat(timespec="milliseconds"), rng.randint(1, 50_000), f"{rng.getrandbits(48):012x}",
            rng.choice(COUNTRIES), rng.choice(DEVICES), event, rng.randint(1, 20_000),
            f"{rng.uniform(1, 300):.2f}" if event in ("add_to_cart", "purchase") else "",
            rng.randint(50, 60_000), int(event == "purchase"),
        ])
    return out.getvalue().encode()


def _users_jsonl_gz(rng: random.Random, rows: int) -> bytes:
    lines = []
    for user_id in range(1, rows + 1):
        lines.append(json.dumps({
            "user_id": user_id,
            "country": rng.choice(COUNTRIES),
            "signup": (datetime(2024, 1, 1) + timedelta(days=rng.randint(0, 600))).date().isoformat(),
            "profile": {"age_band": rng.choice(["18-24", "25-34", "35-44", "45+"]), "device": rng.choice(DEVICES)},
            "embedding": [round(rng.gauss(0, 1), 4) for _ in range(8)],
            "segments": rng.sample(["sports", "music", "tech", "travel", "food", "fashion"], k=rng.randint(0, 3)),
        }))
    return gzip.compress(("\n".join(lines) + "\n").encode(), compresslevel=6)


def _logs_gz(rng: random.Random, lines: int, day: datetime) -> bytes:
    paths = ["/api/predict", "/api/features", "/healthz", "/api/train", "/api/batch"]
    out = []
    t = day
    for _ in range(lines):
        t += timedelta(milliseconds=rng.randint(1, 400))
        out.append(f"{t.isoformat(timespec='milliseconds')}Z {rng.choice(LEVELS)} request_id={rng.getrandbits(64):016x} "
                   f"path={rng.choice(paths)} status={rng.choice([200] * 9 + [500])} latency_ms={rng.randint(2, 900)} "
                   f"model=ranker-v{rng.randint(3, 5)}\n")
    return gzip.compress("".join(out).encode(), compresslevel=6)


def demo_files(rows: int = 60_000, seed: int = 2026) -> Iterator[tuple[str, bytes]]:
    """(key, body) pairs to upload, deterministic for a given seed."""
    rng = random.Random(seed)
    day = datetime(2026, 11, 1)
    yield "raw/events/2026-11-01.csv", _events_csv(rng, rows, day)
    yield "raw/events/2026-11-02.csv", _events_csv(rng, rows * 2, day + timedelta(days=1))
    yield "raw/users/users.jsonl.gz", _users_jsonl_gz(rng, max(rows // 4, 1))
    yield "logs/app/2026-11-01.log.gz", _logs_gz(rng, rows, day)
    yield "raw/labels/classes.csv", b"label,name\n0,no_purchase\n1,purchase\n"
    weights = rng.randbytes(256 * 1024)  # a model checkpoint saved twice: what `leanlake duplicates` finds
    yield "models/ranker-v5/weights.bin", weights
    yield "experiments/exp-42/checkpoint/weights.bin", weights
