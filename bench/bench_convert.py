#!/usr/bin/env python3
"""Benchmark CSV → Parquet: leanlake (default and sort=auto) against DuckDB, polars, pyarrow
defaults and pandas (what awswrangler does), each engine a separate subprocess so that wall time
and peak RSS (``/usr/bin/time``-style, from ``wait4`` rusage) are per engine and whole-process.

Usage::

    python bench/bench_convert.py                # datasets + a generated ~300 MB CSV
    python bench/bench_convert.py --big          # also a ~1 GiB CSV (memory figure)
    python bench/bench_convert.py --datasets DIR --repeat 3 --no-write

"leanlake" runs the library API in ``python -c``; "leanlake cli" runs ``leanlake convert SRC DST``
(the whole CLI process, this repository's code). Peak RSS is each child's own high-water mark
(``VmHWM``, printed by the child as it exits): ``wait4``'s ``ru_maxrss`` would also count the
parent's, since exec inherits the high-water mark of the process it replaces.
Datasets default to ``<repo>/../shared/datasets/*.csv`` (skipped if absent). Generated files go to
a temporary directory, never into the repo: flights_x10 / flights_x35 (flights.csv repeated, a
numeric table) and airports_x100 (airports.csv, the text-heavy table of place names, 100 copies
with the id made unique per copy and every row shuffled, as a lake holds them). Results (with machine info and library versions)
replace the "## CSV/JSON → Parquet" section of bench/RESULTS.md unless ``--no-write``.
"""
from __future__ import annotations

import argparse
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, List, Optional, Tuple

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATASETS = REPO.parent / "shared" / "datasets"
RESULTS = Path(__file__).resolve().parent / "RESULTS.md"
SECTION = "## CSV/JSON → Parquet"

ENGINES: Dict[str, str] = {
    "leanlake": (
        "import sys; sys.path.insert(0, {repo!r});"
        "from chalicelib.formats import convert_to_parquet, ConvertOptions;"
        "convert_to_parquet(lambda: open({src!r}, 'rb'), {dst!r}, ConvertOptions())"
    ),
    "leanlake sort=auto": (
        "import sys; sys.path.insert(0, {repo!r});"
        "from chalicelib.formats import convert_to_parquet, ConvertOptions;"
        "convert_to_parquet(lambda: open({src!r}, 'rb'), {dst!r}, ConvertOptions(sort='auto'))"
    ),
    "leanlake compat": (
        "import sys; sys.path.insert(0, {repo!r});"
        "from chalicelib.formats import convert_to_parquet, ConvertOptions;"
        "convert_to_parquet(lambda: open({src!r}, 'rb'), {dst!r}, ConvertOptions(compat=True))"
    ),
    "leanlake cli": (
        "import sys; sys.path.insert(0, {repo!r}); sys.argv = ['leanlake', 'convert', {src!r}, {dst!r}];"
        "from leanlake.cli import main; main()"
    ),
    "duckdb": (
        "import duckdb; duckdb.sql(\"COPY (SELECT * FROM read_csv('{src}', nullstr='NA')) "
        "TO '{dst}' (FORMAT parquet, COMPRESSION zstd)\")"
    ),
    "polars": (
        "import polars as pl; pl.read_csv({src!r}, infer_schema_length=None, null_values=['NA'])"
        ".write_parquet({dst!r}, compression='zstd')"
    ),
    "pyarrow": (
        "import pyarrow.csv as c, pyarrow.parquet as pq; "
        "pq.write_table(c.read_csv({src!r}), {dst!r}, compression='zstd')"
    ),
    "pandas": (
        "import pandas as pd; pd.read_csv({src!r}).to_parquet({dst!r})"
    ),
}

#: Run first in every child: at exit it prints its own peak RSS (VmHWM, kB) as the last line of stderr.
HWM_PROLOGUE = (
    "import atexit, sys\n"
    "def _hwm():\n"
    "    for line in open('/proc/self/status'):\n"
    "        if line.startswith('VmHWM:'):\n"
    "            sys.stderr.write('\\nBENCH_VMHWM_KB ' + line.split()[1] + '\\n'); sys.stderr.flush()\n"
    "atexit.register(_hwm)\n"
)


def engine_argv(eng: str, src: Path, dst: Path) -> List[str]:
    """The command line of one engine run."""
    return [sys.executable, "-c", HWM_PROLOGUE + ENGINES[eng].format(repo=str(REPO), src=str(src), dst=str(dst))]


def run_engine(argv: List[str]) -> Tuple[float, int, Optional[str]]:
    """Run ``argv``; return (wall seconds, peak RSS bytes, error or None).

    The peak is the child's own ``VmHWM``; ``wait4``'s ``ru_maxrss`` only when the child printed none.
    """
    t0 = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    err_bytes = proc.stderr.read() if proc.stderr else b""  # read to EOF first: a full pipe would block the child
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    lines = err_bytes.decode(errors="replace").strip().splitlines()
    rss = usage.ru_maxrss * 1024
    if lines and lines[-1].startswith("BENCH_VMHWM_KB "):
        rss = int(lines.pop().split()[1]) * 1024
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        return wall, rss, ([ln for ln in lines if ln.strip()] or ["failed"])[-1][:120]
    return wall, rss, None


def make_big(dst: Path, base: Path, times: int) -> Path:
    """Concatenate ``base``'s rows ``times`` times (header once)."""
    with open(base, "rb") as f:
        header = f.readline()
        body = f.read()
    with open(dst, "wb") as out:
        out.write(header)
        for _ in range(times):
            out.write(body)
    return dst


#: Builds the shuffled text-heavy file in a child process, so the parent's memory stays small.
SHUFFLED_COPIES = """
import random, sys
src, dst, times = sys.argv[1], sys.argv[2], int(sys.argv[3])
with open(src, 'rb') as f:
    header = f.readline()
    body = [line if line.endswith(b'\\n') else line + b'\\n' for line in f]
rng = random.Random(11)
with open(dst, 'wb') as out:
    out.write(header)
    rows = []
    for copy in range(times):
        for line in body:  # the first field is the id: made unique per copy ("00AA" -> "00AA-37")
            first, sep, rest = line.partition(b',')
            rows.append(first[:-1] + b'-%d"' % copy + sep + rest if first.endswith(b'"') else line)
    rng.shuffle(rows)
    out.writelines(rows)
"""


def make_shuffled(dst: Path, base: Path, times: int) -> Path:
    """``base``'s rows ``times`` times, the first field (an id) suffixed per copy, in random order."""
    subprocess.run([sys.executable, "-c", SHUFFLED_COPIES, str(base), str(dst), str(times)], check=True)
    return dst


def machine_info() -> List[str]:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    ram = "unknown"
    try:
        kb = int(re.search(r"MemTotal:\s+(\d+)", Path("/proc/meminfo").read_text()).group(1))
        ram = f"{kb / 1024 / 1024:.1f} GiB"
    except Exception:
        pass
    versions = []
    for mod in ("pyarrow", "duckdb", "polars", "pandas", "zstandard"):
        try:
            versions.append(f"{mod} {__import__(mod).__version__}")
        except Exception:
            versions.append(f"{mod} (absent)")
    return [f"nproc {os.cpu_count()}, RAM {ram}, CPU {cpu}",
            f"Python {platform.python_version()} on {platform.platform()}",
            ", ".join(versions)]


def mb(n: float) -> str:
    return f"{n / 1e6:.2f}"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--datasets", type=Path, default=DEFAULT_DATASETS)
    ap.add_argument("--big", action="store_true", help="also a ~1 GiB CSV for the memory figure")
    ap.add_argument("--no-generated", action="store_true", help="skip the ~300 MB CSV")
    ap.add_argument("--repeat", type=int, default=1, help="rounds per file, each running every engine once; an "
                    "engine's fastest run counts, and ratios are the median of the rounds' own")
    default_engines = ",".join(ENGINES)
    ap.add_argument("--engines", default=default_engines, help="comma-separated subset")
    ap.add_argument("--no-write", action="store_true", help="do not update bench/RESULTS.md")
    args = ap.parse_args()
    engines = [e.strip() for e in args.engines.split(",") if e.strip()]

    tmp = Path(tempfile.mkdtemp(prefix="leanlake-bench-"))
    files: List[Path] = []
    if args.datasets.is_dir():
        files = sorted(args.datasets.glob("*.csv"), key=lambda p: -p.stat().st_size)
    else:
        print(f"datasets directory {args.datasets} not found: skipping real datasets", file=sys.stderr)
    flights = args.datasets / "flights.csv"
    if flights.exists() and not args.no_generated:
        files.append(make_big(tmp / "flights_x10.csv", flights, 10))
    if flights.exists() and args.big:
        files.append(make_big(tmp / "flights_x35.csv", flights, 35))
    airports = args.datasets / "airports.csv"
    if airports.exists() and not args.no_generated:
        files.append(make_shuffled(tmp / "airports_x100.csv", airports, 100))
    if not files:
        print("nothing to benchmark", file=sys.stderr)
        return 1

    rows_out: List[List[str]] = []
    header = ["file", "MB in", "engine", "MB out", "vs duckdb size", "s", "vs duckdb time", "vs default time", "MB/s",
              "peak RSS MiB"]
    try:
        for src in files:
            size_in = src.stat().st_size
            res: Dict[str, Tuple[int, float, int, Optional[str]]] = {}
            walls: Dict[str, List[Optional[float]]] = {eng: [] for eng in engines}  # each round's, None: failed
            # Rounds: each runs every engine once, alternately forwards and backwards, so that a drift of the
            # machine's speed over a few minutes (±50 % on a shared VM) falls on all engines alike rather than on
            # the last ones; a ratio is taken within each round (runs minutes apart are not compared) and the
            # median of the rounds' ratios is reported.
            for round_no in range(max(1, args.repeat)):
                for eng in engines if round_no % 2 == 0 else engines[::-1]:
                    dst = tmp / f"out-{re.sub(r'[^a-z]', '_', eng)}.parquet"
                    dst.unlink(missing_ok=True)
                    wall, rss, err = run_engine(engine_argv(eng, src, dst))
                    out = dst.stat().st_size if dst.exists() and err is None else 0
                    walls[eng].append(None if err else wall)
                    best = res.get(eng)
                    if best is None or (err is None and (best[3] is not None or wall < best[1])):
                        res[eng] = (out, wall, rss, err)
                    dst.unlink(missing_ok=True)
            duck = res.get("duckdb")
            for eng in engines:
                out, wall, rss, err = res[eng]
                if err:
                    rows_out.append([src.name, mb(size_in), eng, "fail", "", f"{wall:.2f}", "", "", "", f"{rss / 2**20:.0f}"])
                    print(f"{src.name}: {eng} failed: {err}", file=sys.stderr)
                    continue
                vs_size = f"{out / duck[0]:.3f}" if duck and duck[0] else ""
                vs_default = paired_ratio(walls[eng], walls["leanlake"]) if eng.startswith("leanlake ") and "leanlake" in walls else ""
                rows_out.append([src.name, mb(size_in), eng, mb(out), vs_size, f"{wall:.2f}",
                                 paired_ratio(walls[eng], walls.get("duckdb", [])), vs_default,
                                 f"{size_in / 1e6 / wall:.0f}", f"{rss / 2**20:.0f}"])
            print_table(header, [r for r in rows_out if r[0] == src.name])
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    if not args.no_write:
        write_results(header, rows_out, args)
    return 0


def paired_ratio(walls: List[Optional[float]], base: List[Optional[float]]) -> str:
    """The median over rounds of ``walls[r] / base[r]`` (rounds where both ran), as text; "" when none did."""
    if len(walls) != len(base):
        return ""
    ratios = [w / b for w, b in zip(walls, base, strict=True) if w is not None and b]
    return f"{statistics.median(ratios):.2f}" if ratios else ""


def table_lines(header: List[str], rows: List[List[str]]) -> List[str]:
    right = {1, 3, 4, 5, 6, 7, 8, 9}
    out = ["| " + " | ".join(header) + " |",
           "|" + "|".join("---:" if i in right else "---" for i in range(len(header))) + "|"]
    out += ["| " + " | ".join(r) + " |" for r in rows]
    return out


def print_table(header: List[str], rows: List[List[str]]) -> None:
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]
    print("  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)))
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)))
    print()


def write_results(header: List[str], rows: List[List[str]], args) -> None:
    cmd = "python bench/bench_convert.py" + (" --big" if args.big else "") + \
        (f" --repeat {args.repeat}" if args.repeat > 1 else "")
    body = [SECTION, "",
            f"Measured {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} with `{cmd}`: each engine is a",
            "separate `python -c` process; seconds and peak RSS (the child's own VmHWM) are whole-process",
            "(interpreter start and imports included). `vs duckdb` < 1 is better. flights_x10 / flights_x35",
            "are flights.csv rows repeated 10 / 35 times (header once); airports_x100 is airports.csv x100,",
            "ids made unique per copy, rows shuffled.",
            f"{args.repeat} round(s), each running every engine once in turn (forwards, then backwards): `s`, `MB/s` and",
            "peak RSS are an engine's fastest run; `vs duckdb time` and `vs default time` (against leanlake's default) are",
            "the median of the ratios taken within each round, so that a drift of the machine's speed between rounds",
            f"does not enter them. Load average at the start: {os.getloadavg()[0]:.2f}.",
            "", *[f"- {line}" for line in machine_info()], "", *table_lines(header, rows), ""]
    text = RESULTS.read_text() if RESULTS.exists() else "# Benchmark results\n\n"
    start = text.find(SECTION)
    if start < 0:
        text = text.rstrip("\n") + "\n\n" + "\n".join(body)
    else:
        nxt = text.find("\n## ", start + len(SECTION))
        before = text[:start].rstrip("\n") + "\n\n" if text[:start].strip() else ""
        text = before + "\n".join(body) + (text[nxt:] if nxt >= 0 else "")
    RESULTS.write_text(text.rstrip("\n") + "\n")
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    sys.exit(main())
