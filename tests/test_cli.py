"""The leanlake command as a user runs it: a real process, stdout/stderr and exit codes."""

from __future__ import annotations

import gzip
import json
import os
import signal
import socket
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pyarrow.parquet as pq
import pytest

ROOT = Path(__file__).resolve().parents[1]


def leanlake(*args: str, env: dict | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "leanlake.cli", *args], capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}, cwd=cwd or ROOT, timeout=300)


def write_csv(path: Path, rows: int = 5000) -> bytes:
    body = "id,city,value\n" + "".join(f"{i},{['Windhoek', 'NA', 'Oslo'][i % 3]},{i / 4}\n" for i in range(rows))
    path.write_bytes(body.encode())
    return body.encode()


def convert_with_exit_probe(tmp_path: Path, probe: str, env: dict | None = None) -> subprocess.CompletedProcess:
    """``leanlake -q convert a.csv a.parquet`` (in ``tmp_path``) through ``main()`` in a child, with ``probe`` (code
    defining ``probe()``, given ``os`` and ``sys``) run at exit: main() ends the process with os._exit once pyarrow is
    loaded, so whatever the probe prints is what the command left behind."""
    code = ("import atexit, os, sys; from leanlake.cli import main\n"
            "sys.argv = ['leanlake', '-q', 'convert', sys.argv[1], sys.argv[2]]\n"
            f"{probe}atexit.register(probe)\nmain()\n")
    return subprocess.run([sys.executable, "-c", code, str(tmp_path / "a.csv"), str(tmp_path / "a.parquet")],
                          capture_output=True, text=True, env={**(os.environ if env is None else env), "PYTHONPATH": str(ROOT)},
                          cwd=ROOT, timeout=300)


def test_validate_ok_and_problems(tmp_path):
    ok = leanlake("validate", "policies")
    assert ok.returncode == 0 and "policies valid" in ok.stdout
    bad = tmp_path / "bad.yaml"
    bad.write_text("policies:\n  - name: x\n    bucket: ml-lake\n    actions:\n      - storage_class: WARM\n")
    result = leanlake("validate", str(bad))
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [f"{bad}:5: policies.0.actions.0.storage_class: unknown storage class 'WARM'; "
                                                  "one of STANDARD, STANDARD_IA, ONEZONE_IA, INTELLIGENT_TIERING, GLACIER_IR, GLACIER, DEEP_ARCHIVE"]


def test_convert_json_is_the_only_stdout(tmp_path):
    src = tmp_path / "in.csv.gz"
    src.write_bytes(gzip.compress(write_csv(tmp_path / "plain.csv")))
    dst = tmp_path / "out.parquet"
    result = leanlake("convert", str(src), str(dst), "--json")
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    assert document["rows"] == 5000 and document["bytes_in"] == src.stat().st_size
    assert document["bytes_out"] == dst.stat().st_size and document["seconds"] >= 0
    assert pq.read_table(dst).column("city").to_pylist()[:3] == ["Windhoek", "NA", "Oslo"]
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".leanlake-")] == []


def test_convert_by_hand_always_writes_even_when_bigger(tmp_path):
    src = tmp_path / "tiny.csv"
    src.write_text("a\n1\n")
    dst = tmp_path / "tiny.parquet"
    dst.write_bytes(b"old")
    result = leanlake("convert", str(src), str(dst), "--json")
    assert result.returncode == 0 and json.loads(result.stdout)["bytes_out"] > src.stat().st_size
    assert pq.read_table(dst).num_rows == 1


@pytest.mark.parametrize("name, body, fragment", [
    ("empty.csv", b"", "empty"),
    ("ragged.csv", b"a,b\n1,2\n3,4,5\n", "line 3"),
    ("trunc.csv.gz", gzip.compress(b"a,b\n" + b"".join(b"%d,%d\n" % (i, i * i) for i in range(5000)))[:-100], "gzip"),
    ("broken.jsonl", b'{"a": 1}\n{"a": \n', "line 2"),
])
def test_convert_bad_input_one_line_no_output(tmp_path, name, body, fragment):
    src = tmp_path / name
    src.write_bytes(body)
    dst = tmp_path / "out.parquet"
    result = leanlake("convert", str(src), str(dst))
    assert result.returncode == 1 and result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"leanlake: {src}: ") and fragment in lines[0]
    assert "Traceback" not in result.stderr
    assert not dst.exists() and src.read_bytes() == body
    assert [p.name for p in tmp_path.iterdir()] == [name]


def test_convert_missing_input(tmp_path):
    result = leanlake("convert", str(tmp_path / "nope.csv"), str(tmp_path / "o.parquet"))
    assert result.returncode == 1 and result.stderr.strip() == f"leanlake: {tmp_path / 'nope.csv'}: no such file"


def test_convert_local_files_import_no_aws_library(tmp_path):
    """A local convert starts fast: no AWS library, no ledger or actions, no pydantic (typer 0.29 imports it
    to coerce every parameter, 0.3 s at each start, so pyproject keeps typer below it)."""
    write_csv(tmp_path / "a.csv", rows=100)
    result = convert_with_exit_probe(tmp_path, (
        "def probe():\n"
        "    print('imported:', sorted(m for m in sys.modules if m.split('.')[0] in\n"
        "          ('boto3','botocore','aws_lambda_powertools','moto','pydantic','pydantic_settings')\n"
        "          or m in ('chalicelib.ledger','chalicelib.actions','chalicelib.economics')))  # start-up time\n"))
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1] == "imported: []"
    assert (tmp_path / "a.parquet").exists()


@pytest.mark.parametrize("given, kept", [(None, "1"), ("3", "3")])
def test_the_cli_keeps_numpys_blas_to_one_thread_unless_told(tmp_path, given, kept):
    """pyarrow imports NumPy, whose OpenBLAS starts a spinning thread a core (0.15 s of CPU a command) for a BLAS
    leanlake never calls: the CLI sets OPENBLAS_NUM_THREADS=1 before pyarrow loads, and a user's own value stands."""
    write_csv(tmp_path / "a.csv", rows=10)
    env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_NUM_THREADS"}
    if given is not None:
        env["OPENBLAS_NUM_THREADS"] = given
    result = convert_with_exit_probe(tmp_path, "def probe():\n    print('blas threads:', os.environ.get('OPENBLAS_NUM_THREADS'))\n",
                                     env=env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1] == f"blas threads: {kept}"


def test_convert_s3_to_s3_with_the_standard_environment(s3, bucket, aws, tmp_path):
    body = write_csv(tmp_path / "a.csv")
    s3.put_object(Bucket=bucket, Key="in/a.csv", Body=body)
    result = leanlake("convert", f"s3://{bucket}/in/a.csv", f"s3://{bucket}/out/a.parquet", "--json", "--sort", "auto",
                      env={"AWS_ENDPOINT_URL": aws})
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["rows"] == 5000
    data = s3.get_object(Bucket=bucket, Key="out/a.parquet")["Body"].read()
    assert len(data) == json.loads(result.stdout)["bytes_out"]
    missing = leanlake("convert", f"s3://{bucket}/in/nope.csv", str(tmp_path / "x.parquet"), env={"AWS_ENDPOINT_URL": aws})
    assert missing.returncode == 1 and missing.stderr.startswith(f"leanlake: s3://{bucket}/in/nope.csv: ")
    assert len(missing.stderr.strip().splitlines()) == 1


def test_demo_json_reports_conversions_and_savings(tmp_path):
    result = leanlake("demo", "--json", "--rows", "20000", "--html", "demo.html", cwd=tmp_path)  # works from any directory
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["objects_converted"] == 3 and summary["objects_recompressed"] == 1 and summary["errors"] == 0
    assert summary["bytes_saved"] > 0 and summary["bytes_after"] < summary["bytes_before"]
    assert [o["key"] for o in summary["outcomes"] if o["status"] == "skip"] == ["raw/labels/classes.csv"]
    # sources are gone, outputs are there: the bucket's own listing says what happened
    assert sorted(summary["bucket_after"]) == ["curated/events/2026-11-01.parquet", "curated/events/2026-11-02.parquet",
                                               "curated/users/users.parquet", "experiments/exp-42/checkpoint/weights.bin",
                                               "logs/app/2026-11-01.log.zst", "models/ranker-v5/weights.bin",
                                               "raw/labels/classes.csv"]
    # the demo lake's footprint and savings, as `leanlake report` reads them from the embedded CloudWatch
    report = summary["report"]
    today, yesterday = (datetime.now(timezone.utc) - timedelta(days=d) for d in (0, 1))
    assert [(p["date"], p["bytes"]) for p in report["trend"]] == [
        (yesterday.date().isoformat(), summary["bytes_uploaded"]),  # as uploaded
        (today.date().isoformat(), sum(summary["bucket_after"].values()) + sum(summary["audit_objects"].values()))]  # after leanlake
    assert [(r["storage_class"], r["bytes"]) for r in report["footprint"]] == [("STANDARD", report["trend"][-1]["bytes"])]
    assert sum(r["bytes_saved"] for r in report["savings"]) == summary["bytes_saved"]
    assert sum(r["objects_converted"] for r in report["savings"]) == summary["objects_converted"]
    assert report["totals"]["monthly_usd_saved"] > 0 and report["totals"]["monthly_kgco2e_saved"] > 0
    assert summary["planned"]["rows"] == [] or all(r["policy"].startswith("demo-") for r in summary["planned"]["rows"])
    page = (tmp_path / "demo.html").read_text(encoding="utf-8")  # the same report as one page
    assert "leanlake-demo" in page and "demo-tables-to-parquet" in page and "no plan:" not in page


def test_demo_serve_keeps_the_embedded_stack_up_for_the_cli_until_interrupted(tmp_path):
    """``demo --serve`` prints an environment; plan and report run against it; Ctrl-C ends it cleanly."""
    demo = subprocess.Popen([sys.executable, "-m", "leanlake.cli", "demo", "--rows", "500", "--serve"], cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        env = {}
        for line in demo.stdout:
            if line.startswith("export "):
                name, _, value = line.removeprefix("export ").strip().partition("=")
                env[name] = value
            if line.startswith("Ctrl-C"):
                break
        assert env["AWS_ENDPOINT_URL"].startswith("http://127.0.0.1:") and Path(env["LEANLAKE_POLICIES"]).is_file()
        planned = leanlake("plan", "--json", env=env, cwd=tmp_path)
        assert planned.returncode == 0, planned.stderr
        assert {d["bucket"] for d in json.loads(planned.stdout)["decisions"]} == {"leanlake-demo"}
        reported = leanlake("report", "--json", env=env, cwd=tmp_path)
        assert reported.returncode == 0, reported.stderr
        assert {r["bucket"] for r in json.loads(reported.stdout)["footprint"]} == {"leanlake-demo"}
        duplicates = leanlake("duplicates", "--json", env=env, cwd=tmp_path)
        assert duplicates.returncode == 0, duplicates.stderr
        assert [sorted(c["key"] for c in g["copies"]) for g in json.loads(duplicates.stdout)["groups"]] == [
            ["experiments/exp-42/checkpoint/weights.bin", "models/ranker-v5/weights.bin"]]
        demo.send_signal(signal.SIGINT)
        assert demo.wait(timeout=30) == 0, demo.stderr.read()
        gone = leanlake("plan", "--json", env={**env, "AWS_MAX_ATTEMPTS": "1"}, cwd=tmp_path)
        assert gone.returncode == 1 and "leanlake-demo" in gone.stderr  # the stack stopped with the demo
    finally:
        demo.kill()
        demo.wait()


def test_demo_serve_on_a_port_in_use_says_so(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = leanlake("demo", "--rows", "100", "--serve", "--port", str(port), cwd=tmp_path)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1].startswith(f"leanlake: --port {port}: cannot listen on 127.0.0.1:{port}")


def test_convert_output_gets_the_usual_permissions(tmp_path):
    write_csv(tmp_path / "a.csv", rows=10)
    result = leanlake("convert", str(tmp_path / "a.csv"), str(tmp_path / "a.parquet"))
    assert result.returncode == 0
    umask = os.umask(0)
    os.umask(umask)
    assert (tmp_path / "a.parquet").stat().st_mode & 0o777 == 0o666 & ~umask


def test_convert_into_a_directory_names_the_output_after_the_source(tmp_path):
    (tmp_path / "events.csv").write_text("a,b\n1,2\n")
    out = tmp_path / "out"
    out.mkdir()
    result = leanlake("convert", str(tmp_path / "events.csv"), str(out), "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["output"] == f"{out}/events.parquet"
    assert pq.read_table(out / "events.parquet").num_rows == 1
