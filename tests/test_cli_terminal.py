"""The CLI as a person sees it: ``leanlake`` run under a pseudo-terminal, reading what the terminal shows.

On a terminal the result (table, summary) stands alone: no Powertools JSON log line, no EMF document;
``-v`` adds short human lines, ``--log-format json`` brings the JSON lines back, ``--quiet`` leaves only
the result, ``--json`` keeps stdout one document, ``NO_COLOR`` takes the colours away.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import pty
import re
import select
import struct
import subprocess
import sys
import termios
import textwrap
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CONTROL = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
SGR = re.compile(r"\x1b\[([0-9;]*)m")
DEMO = ["demo", "--rows", "200"]
TABLE_TITLE = "What leanlake did in s3://leanlake-demo"


@dataclass
class Run:
    code: int
    terminal: str  # what the terminal received, control sequences included
    piped: str     # stdout or stderr, when sent to a file instead of the terminal

    @property
    def screen(self) -> str:
        return CONTROL.sub("", self.terminal).replace("\r", "\n")

    def json_lines(self, text: str | None = None) -> list[dict]:
        found = []
        for line in (self.screen if text is None else text).splitlines():
            try:
                value = json.loads(line.strip())
            except ValueError:
                continue
            if isinstance(value, dict):
                found.append(value)
        return found


def has_colour(text: str) -> bool:
    """Any SGR sequence setting a foreground or background colour (bold or italic alone is not colour)."""
    return any(30 <= int(p) <= 49 or 90 <= int(p) <= 107 for params in SGR.findall(text) for p in params.split(";") if p)


def run_in_terminal(args: list[str], *, env: dict[str, str] | None = None, pipe: str | None = None,
                    tmp_path: Path, timeout: float = 120) -> Run:
    """``python -m leanlake ARGS`` with stdin, stdout and stderr on a 120×50 pseudo-terminal; ``pipe``
    ("stdout" or "stderr") sends that one to a file instead, as ``| jq`` or ``2>log`` would."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 50, 120, 0, 0))
    environment = {k: v for k, v in os.environ.items()
                   if k not in ("NO_COLOR", "FORCE_COLOR", "COLUMNS", "LINES", "POWERTOOLS_METRICS_DISABLED", "TTY_COMPATIBLE")}
    environment.update({"TERM": "xterm-256color", "PYTHONPATH": str(ROOT), **(env or {})})
    piped_path = tmp_path / f"{pipe or 'none'}.txt"
    with open(piped_path, "w", encoding="utf-8") as piped:
        streams = {"stdout": slave, "stderr": slave}
        if pipe:
            streams[pipe] = piped
        child = subprocess.Popen([sys.executable, "-m", "leanlake", *args], stdin=slave, cwd=tmp_path, env=environment,
                                 **streams)
    os.close(slave)
    received = bytearray()
    try:
        while True:
            ready, _, _ = select.select([master], [], [], timeout)
            if not ready:
                child.kill()
                raise AssertionError(f"leanlake {' '.join(args)}: no output for {timeout} s")
            try:
                chunk = os.read(master, 65536)
            except OSError:  # EIO: every end of the terminal is closed, the child is done
                break
            if not chunk:
                break
            received += chunk
    finally:
        os.close(master)
    code = child.wait(timeout=timeout)
    return Run(code, received.decode("utf-8", "replace"), piped_path.read_text(encoding="utf-8") if pipe else "")


def test_demo_on_a_terminal_shows_the_result_and_no_json_log_line(tmp_path):
    run = run_in_terminal(DEMO, tmp_path=tmp_path)
    assert run.code == 0, run.screen[-2000:]
    assert TABLE_TITLE in run.screen and "saved" in run.screen
    assert run.json_lines() == []  # neither Powertools log lines nor EMF documents
    assert has_colour(run.terminal)  # what NO_COLOR turns off (below)


def test_verbose_adds_short_human_lines(tmp_path):
    run = run_in_terminal(["-v", *DEMO], tmp_path=tmp_path)
    assert run.code == 0 and run.json_lines() == []
    lines = run.screen.splitlines()
    assert any(line.startswith("ok: convert s3://leanlake-demo/raw/events/") for line in lines)
    assert any(line.startswith("uploaded s3://leanlake-demo/") for line in lines)
    assert TABLE_TITLE in run.screen


def test_log_format_json_brings_the_json_lines_back(tmp_path):
    run = run_in_terminal(["--log-format", "json", *DEMO], tmp_path=tmp_path)
    assert run.code == 0
    logs = [line for line in run.json_lines() if "level" in line]
    assert any(line["message"].startswith("ok: convert s3://leanlake-demo/") and line["service"] == "leanlake" for line in logs)
    # the demo's EMF documents go where Lambda's go, into (the embedded) CloudWatch, and come back as the report
    assert not any("_aws" in line for line in run.json_lines())
    assert TABLE_TITLE in run.screen and "leanlake savings, last 2 days" in run.screen


def test_quiet_prints_nothing_but_the_result(tmp_path):
    run = run_in_terminal(["--quiet", *DEMO], tmp_path=tmp_path)
    assert run.code == 0 and run.json_lines() == []
    assert run.screen.lstrip().startswith(TABLE_TITLE)  # nothing before the table: no narration, no spinner
    assert "uploaded s3://" not in run.screen and "embedded S3 at" not in run.screen
    stderr = run_in_terminal(["--quiet", *DEMO], pipe="stderr", tmp_path=tmp_path)  # 2>file: JSON logs, but quiet
    assert stderr.code == 0 and stderr.piped == "" and TABLE_TITLE in stderr.screen


def test_json_keeps_stdout_one_document_and_the_terminal_free_of_json(tmp_path):
    run = run_in_terminal([*DEMO, "--json"], pipe="stdout", tmp_path=tmp_path)
    assert run.code == 0
    summary = json.loads(run.piped)  # exactly one document, or this raises
    assert summary["bucket"] == "leanlake-demo" and summary["objects_converted"] >= 1
    assert run.json_lines() == []  # stderr on the terminal: human (here: no) log lines


def test_no_color_is_respected(tmp_path):
    run = run_in_terminal(DEMO, env={"NO_COLOR": "1"}, tmp_path=tmp_path)
    assert run.code == 0 and TABLE_TITLE in run.screen
    assert not has_colour(run.terminal)


def test_apply_on_a_terminal_shows_its_outcomes_without_json_lines(bucket, s3, aws, tmp_path):
    s3.put_object(Bucket=bucket, Key="raw/a.csv", Body=b"id,kind\n" + b"".join(b"%d,%s\n" % (i, b"ab"[i % 2:i % 2 + 1])
                                                                                for i in range(3000)))
    (tmp_path / "policies.yaml").write_text(textwrap.dedent(f"""\
        policies:
          - name: tables
            bucket: {bucket}
            filters: {{prefix: raw/, suffix: .csv}}
            actions: [{{convert: {{}}}}]
        """), encoding="utf-8")
    env = {"AWS_ENDPOINT_URL": aws}
    run = run_in_terminal(["apply", "--yes", "-p", "policies.yaml"], env=env, tmp_path=tmp_path)
    assert run.code == 0, run.screen[-2000:]
    assert f"ok    convert       s3://{bucket}/raw/a.csv" in run.screen and run.json_lines()[-1:] != []  # totals: the result
    assert [line for line in run.json_lines() if "level" in line or "_aws" in line] == []
    s3.put_object(Bucket=bucket, Key="raw/b.csv", Body=b"id\n" + b"".join(b"%d\n" % i for i in range(3000)))
    run = run_in_terminal(["--log-format", "json", "apply", "--yes", "-p", "policies.yaml"], env=env, tmp_path=tmp_path)
    assert run.code == 0
    assert any(line.get("message", "").startswith(f"ok: convert s3://{bucket}/raw/b.csv") for line in run.json_lines()), run.screen


def test_each_run_sets_the_logger_afresh_and_json_is_what_chalicelib_log_made():
    """In one process (the in-process CLI tests run many commands) a human or quiet run leaves nothing behind."""
    from chalicelib.log import logger
    from leanlake.console import METRICS_DISABLED_ENV, HumanFormatter, configure

    handler = logger.registered_handler
    before = (type(handler.formatter), logging.getLogger(logger.name).level, os.environ.get(METRICS_DISABLED_ENV))
    try:
        assert configure("human", verbosity=1).human and isinstance(handler.formatter, HumanFormatter)
        assert logging.getLogger(logger.name).level == logging.INFO and os.environ[METRICS_DISABLED_ENV] == "true"
        configure("json", quiet=True)
        assert logging.getLogger(logger.name).level > logging.CRITICAL
    finally:
        configure("json")
    assert (type(handler.formatter), logging.getLogger(logger.name).level, os.environ.get(METRICS_DISABLED_ENV)) == before
