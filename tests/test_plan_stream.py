"""``plan`` streams: ``--json`` is written decision by decision yet is one JSON document with the content the
whole-list version had; the human table keeps only the decisions it shows."""

from __future__ import annotations

import io
import json
import textwrap
from datetime import datetime, timezone
from urllib.parse import quote_plus

from typer.testing import CliRunner

from chalicelib.context import RunContext
from chalicelib.decision import Decision
from chalicelib.columns import Objects
from chalicelib.inventory import refs_from_inventory, read_manifest
from chalicelib.plan import Totals, totals
from chalicelib.policy import load_policies
from chalicelib.sweep import bucket_decisions
from leanlake import cli
from leanlake.cli import app
from tests.test_inventory import write_inventory

AS_OF = datetime(2026, 11, 27, tzinfo=timezone.utc)


def _policies(tmp_path, bucket: str):
    path = tmp_path / "p.yaml"
    path.write_text(textwrap.dedent(f"""\
        policies:
          - name: tables
            bucket: {bucket}
            filters: {{prefix: raw/, suffix: .csv}}
            actions: [{{convert: {{source: delete}}}}]
          - name: scratch
            bucket: {bucket}
            filters: {{prefix: tmp/, suffix: .tmp}}
            actions: [{{expire: {{days: 30}}}}]
          - name: cold
            bucket: {bucket}
            filters: {{prefix: ["raw/", "models/"]}}
            actions: [{{transition: [{{days: 30, class: GLACIER_IR}}]}}]
        """))
    return path


def _whole_document(decisions: list[Decision]) -> dict:
    """The document as ``plan --json`` built it before it streamed: every decision in a list, then the totals."""
    return json.loads(json.dumps({"decisions": [d.as_dict() for d in decisions], "totals": totals(decisions)}, default=str))


def _plan_json(*args: str) -> dict:
    result = CliRunner().invoke(app, ["plan", *args, "--as-of", "2026-11-27", "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)  # one valid document, nothing else on stdout


def test_streamed_json_of_a_bucket_is_the_whole_document(s3, bucket, tmp_path):
    for i in range(40):
        s3.put_object(Bucket=bucket, Key=f"raw/{i}/t.csv", Body=b"a,b\n" * (300 + i))
        s3.put_object(Bucket=bucket, Key=f"tmp/{i}.tmp", Body=b"x")
        s3.put_object(Bucket=bucket, Key=f"models/{i}.bin", Body=b"m" * 10)
    path = _policies(tmp_path, bucket)
    ctx = RunContext(policies=load_policies([path]), s3=s3, now=AS_OF)
    expected = _whole_document(list(bucket_decisions(ctx, bucket, ctx.policies)))
    assert len(expected["decisions"]) > 120 and expected["totals"]["overall"]["actions"]["convert"] == 40
    assert _plan_json("--policies", str(path), "--bucket", bucket) == expected


def test_streamed_json_of_an_inventory_is_the_whole_document(s3, bucket, tmp_path):
    source = bucket + "-src"
    rows = [[source, quote_plus(f"raw/ü {i}/t.csv"), "", "true", "false", str(10_000 * i), "2026-01-01T00:00:00.000Z",
             f"{i:032x}", "STANDARD"] for i in range(50)]
    rows += [[source, f"tmp/{i}.tmp", "", "true", "false", "5", "2026-11-20T00:00:00.000Z", "e", "STANDARD"] for i in range(30)]
    uri = write_inventory(s3, source, bucket, rows)
    path = _policies(tmp_path, source)
    ctx = RunContext(policies=load_policies([path]), s3=s3, now=AS_OF)
    refs = list(refs_from_inventory(s3, uri, read_manifest(s3, uri)))
    expected = _whole_document(list(bucket_decisions(ctx, source, ctx.policies, batches=[Objects.from_refs(source, refs)])))
    assert len(expected["decisions"]) > 100
    assert _plan_json("--policies", str(path), "--inventory", uri) == expected


def test_no_decisions_is_still_one_document(s3, bucket, tmp_path):
    path = tmp_path / "p.yaml"
    path.write_text(f"policies:\n  - name: s\n    bucket: {bucket}\n    filters: {{prefix: tmp/, suffix: .tmp}}\n"
                    "    actions: [{expire: {days: 30}}]\n")
    assert _plan_json("--policies", str(path), "--bucket", bucket) == {"decisions": [], "totals": totals([])}


def test_json_is_written_while_decisions_are_still_being_made(monkeypatch):
    out = io.StringIO()
    monkeypatch.setattr(cli.sys, "stdout", out)
    seen_while_streaming = []

    def decisions():
        for i in range(5000):
            if i == 4000:
                seen_while_streaming.append(out.getvalue().count('"key"'))
            yield Decision("b", f"k{i}", "p", "skip", "why")

    running = Totals()
    cli._emit_plan_json(running.watch(decisions()), running)
    assert seen_while_streaming[0] >= 3000  # written in chunks, not after the last decision
    document = json.loads(out.getvalue())
    assert len(document["decisions"]) == 5000 and document["totals"]["overall"]["decisions"] == 5000


def test_the_table_keeps_the_decisions_it_shows_and_counts_the_rest(monkeypatch):
    shown: list = []

    def fake_print(decisions, summary, count):
        shown.append((len(decisions), count, summary["overall"]["decisions"]))

    def stream(ctx, buckets, inventory):
        return (Decision("b", f"k{i}", "p", "skip", "why") for i in range(1234))

    monkeypatch.setattr(cli, "_stream_plan", stream)
    monkeypatch.setattr(cli, "_print_decisions", fake_print)
    monkeypatch.setattr(cli, "_context", lambda *a: type("Ctx", (), {"policies": type("P", (), {"buckets": ("b",)})()})())
    result = CliRunner().invoke(app, ["plan"])
    assert result.exit_code == 0, result.output
    assert shown == [(cli.SHOWN_DECISIONS, 1234, 1234)]


def test_a_batchs_rows_are_written_a_thousand_at_a_time_as_one_joined_text():
    written: list[bytes] = []
    lines = [b'{"key":"k%d"}' % i for i in range(2500)]
    cli._write_lines(written.append, lines)
    assert b"".join(written) == cli._ROW_SEPARATOR.join(lines)
    assert [w.count(b"\n") for w in written] == [999, 1, 999, 1, 499]  # three joins, two separators
