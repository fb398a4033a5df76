"""``leanlake report --html``: one self-contained page drawn by plotly, from what moto's CloudWatch holds (S3's daily
storage metrics and leanlake's savings, per policy and per action) and a plan of a real bucket on moto's S3.

The page's chart data is read back and compared with what was seeded; names are escaped; the page names no
external resource; and where Debian's ``chromium`` is installed the page is opened headless, with every host
unresolvable and a dead proxy, and plotly must have drawn every chart."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from datetime import datetime, timedelta, timezone
from html.parser import HTMLParser
from itertools import count
from pathlib import Path
from typing import Any

import boto3
import pytest
from typer.testing import CliRunner

from leanlake.cli import app
from leanlake.local import publish_storage_metrics, put_storage_metric

_names = count()
GiB = 2**30
TODAY = datetime.now(timezone.utc).replace(hour=0, minute=0, second=0, microsecond=0)
#: A policy name as hostile as CloudWatch lets a dimension value be.
HOSTILE = '<img src=x onerror="alert(1)">&co'
#: Per seeded bucket: storage type → bytes on each of the last two days (oldest first).
SEEDED = {"lake": {"StandardStorage": (5 * GiB, 7 * GiB), "GlacierStorage": (40 * GiB, 41 * GiB)},
          "logs": {"StandardIAStorage": (1 * GiB, 2 * GiB), "IntelligentTieringFAStorage": (3 * GiB, 3 * GiB)}}
CLASSES = {"StandardStorage": "STANDARD", "GlacierStorage": "GLACIER", "StandardIAStorage": "STANDARD_IA",
           "IntelligentTieringFAStorage": "INTELLIGENT_TIERING"}
#: Savings published per (bucket, policy) and again per action: (short bucket, policy, action) → (USD, kg CO2e).
BY_ACTION = {("lake", "tables", "convert"): (1.25, 0.5), ("lake", "tables", "lifecycle"): (0.0, 0.0),
             ("lake", HOSTILE, "expire"): (0.75, 0.125), ("logs", "archive", "storage_class"): (2.5, 0.0625)}


def saved(cloudwatch: Any, usd: float, kg: float, **dimensions: str) -> None:
    """The two savings metrics, dimensioned as the ledger's EMF documents are (with ``service``)."""
    dims = [{"Name": k, "Value": v} for k, v in {**dimensions, "service": "leanlake"}.items()]
    cloudwatch.put_metric_data(Namespace="leanlake", MetricData=[
        {"MetricName": "MonthlyUsdSaved", "Dimensions": dims, "Value": usd, "Unit": "None"},
        {"MetricName": "MonthlyKgCO2eSaved", "Dimensions": dims, "Value": kg, "Unit": "None"}])


@pytest.fixture
def seeded(aws) -> dict[str, str]:
    """Two days of storage metrics and savings for two buckets unknown to S3 (so moto adds no point of its own)."""
    cloudwatch = boto3.client("cloudwatch")
    names = {short: f"html-{short}-{next(_names)}" for short in SEEDED}
    for short, types in SEEDED.items():
        for day in range(2):
            for storage_type, sizes in types.items():
                put_storage_metric(cloudwatch, names[short], "BucketSizeBytes", storage_type, TODAY - timedelta(days=1 - day), sizes[day])
    per_policy: dict[tuple[str, str], list[float]] = {}
    for (short, policy, action), (usd, kg) in BY_ACTION.items():
        saved(cloudwatch, usd, kg, bucket=names[short], policy=policy, action=action)
        total = per_policy.setdefault((short, policy), [0.0, 0.0])
        total[0] += usd
        total[1] += kg
    for (short, policy), (usd, kg) in per_policy.items():
        saved(cloudwatch, usd, kg, bucket=names[short], policy=policy)
    return names


@pytest.fixture
def planned_lake(s3, bucket, tmp_path) -> Path:
    """A real bucket on moto's S3 with two CSVs to convert, and the policies file that says so; returns the policies' path."""
    for key in ("raw/a.csv", "raw/b.csv"):
        s3.put_object(Bucket=bucket, Key=key, Body=("id,kind\n" + "".join(f"{i},alpha\n" for i in range(2000))).encode())
    path = tmp_path / "policies.yaml"
    path.write_text(f"policies:\n  - name: tables\n    bucket: {bucket}\n    filters: {{prefix: raw/, suffix: .csv}}\n"
                    f"    actions: [{{convert: {{source: delete}}}}]\n")
    return path


def run_report(*args: str) -> Any:
    result = CliRunner().invoke(app, ["report", *args])
    assert result.exit_code == 0, result.output
    return result


def charts(page: str) -> dict[str, dict[str, Any]]:
    """Each chart's plotly spec in the page, by chart id."""
    return {m[1]: json.loads(m[2]) for m in re.finditer(r'<script type="application/json" id="([\w-]+)-data">(.*?)</script>', page, re.S)}


class Resources(HTMLParser):
    """Every URL in the page that a browser would fetch: in an attribute that loads or links (``src``, ``href``…), in a
    CSS ``url(…)`` or ``@import``; ``data:`` URIs and in-page ``#`` links load nothing and are left out. Script text is
    not markup (plotly.js holds URLs in its code: map tiles, its own site), so it is not read."""

    FETCHING = {"src", "href", "xlink:href", "srcset", "poster", "data", "action", "formaction", "background", "manifest"}

    def __init__(self) -> None:
        super().__init__()
        self.found: list[str] = []
        self._in_style = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._in_style = tag == "style"
        for name, value in attrs:
            if name in self.FETCHING and value:
                self.fetches(f"<{tag} {name}>", value)
            elif name == "style" and value:
                self.css(f"<{tag} style>", value)

    def handle_endtag(self, tag: str) -> None:
        self._in_style = False

    def handle_data(self, data: str) -> None:
        if self._in_style:
            self.css("<style>", data)

    def css(self, where: str, text: str) -> None:
        for url in re.findall(r"""url\(\s*['"]?([^'")\s]*)""", text) + re.findall(r"""@import\s+['"]([^'"]+)""", text):
            self.fetches(where, url)

    def fetches(self, where: str, url: str) -> None:
        if not url.strip().lower().startswith(("data:", "#")):
            self.found.append(f"{where}: {url}")


def test_the_page_holds_every_seeded_figure_escaped_and_self_contained(seeded, planned_lake, tmp_path):
    lake, logs = seeded["lake"], seeded["logs"]
    out = tmp_path / "report.html"
    result = run_report("--bucket", lake, "--bucket", logs, "--days", "7", "--policies", str(planned_lake), "--html", str(out), "--json")
    document = json.loads(result.stdout)  # stdout is still the one JSON document
    assert f"wrote {out}" in result.stderr
    page = out.read_text(encoding="utf-8")
    specs = charts(page)
    assert set(specs) == {"storage", "trend", "savings", "actions"}  # no plan: no policy names the two seeded buckets
    assert "no plan: no policy names" in page

    storage = {(trace["name"], x): point[0] for trace in specs["storage"]["data"]
               for x, point in zip(trace["x"], trace["customdata"], strict=True) if point[0]}
    assert storage == {(CLASSES[t], seeded[short]): sizes[-1] for short, types in SEEDED.items() for t, sizes in types.items()}
    assert {row["bucket"] for row in document["footprint"]} == {lake, logs}
    trend = {(trace["name"], x): b for trace in specs["trend"]["data"] for x, b in zip(trace["x"], trace["customdata"], strict=True)}
    days = [(TODAY - timedelta(days=n)).date().isoformat() for n in (1, 0)]
    assert trend == {(seeded[short], days[d]): sum(sizes[d] for sizes in types.values()) for short, types in SEEDED.items() for d in (0, 1)}

    def bars(spec: dict[str, Any]) -> dict[tuple[str, str, str], float]:
        """(stack, bar, axis: x for USD, x2 for kg CO2e) → value of each non-zero (horizontal) bar."""
        return {(trace["name"], y, trace["xaxis"]): x for trace in spec["data"] for x, y in zip(trace["x"], trace["y"], strict=True) if x}

    labelled = HOSTILE.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")  # as plotly reads a label
    by_policy = bars(specs["savings"])
    assert by_policy[(f"{lake} / tables", f"{lake} / tables", "x")] == 1.25  # per policy, not twice (its actions too)
    assert by_policy[(f"{lake} / {labelled}", f"{lake} / {labelled}", "x2")] == 0.125
    assert by_policy[(f"{logs} / archive", f"{logs} / archive", "x")] == 2.5
    assert bars(specs["actions"]) == {
        (f"{lake} / tables", "convert", "x"): 1.25, (f"{lake} / tables", "convert", "x2"): 0.5,
        (f"{lake} / {labelled}", "expire", "x"): 0.75, (f"{lake} / {labelled}", "expire", "x2"): 0.125,
        (f"{logs} / archive", "storage_class", "x"): 2.5, (f"{logs} / archive", "storage_class", "x2"): 0.0625}

    escaped = labelled.replace('"', "&quot;")
    assert HOSTILE not in page and f"<td class=name>{escaped}</td>" in page  # the table's cell, escaped
    data = re.findall(r'<script type="application/json" id="[\w-]+">(.*?)</script>', page, re.S)
    assert len(data) == 4 and not any("<" in text for text in data)  # chart data cannot close its <script>
    parser = Resources()
    parser.feed(page)
    assert parser.found == []  # nothing to fetch: plotly.js is inline, fonts are the system's
    assert page.count("<script>") == 2  # plotly.js once, then the loader


def test_the_page_plans_the_policies_buckets_and_says_why_when_it_cannot(seeded, planned_lake, tmp_path, monkeypatch):
    """Planning lists the policies' bucket (read-only); --no-plan and --bucket without policies each say why there is no plan."""
    bucket = planned_lake.read_text().split("bucket: ")[1].split()[0]
    out = tmp_path / "planned.html"
    stored = publish_storage_metrics(boto3.client("s3"), boto3.client("cloudwatch"), bucket, datetime.now(timezone.utc))
    run_report("--policies", str(planned_lake), "--html", str(out))
    page = out.read_text(encoding="utf-8")
    planned = charts(page)["planned"]
    (usd, kg) = (dict(zip(trace["y"], trace["x"], strict=True)) for trace in planned["data"] if trace["name"] == "tables")
    assert usd["convert"] > 0 and kg["convert"] > 0 and usd.get("lifecycle", 0) == 0  # its Lifecycle rule: a decision too
    assert "<td class=name>tables</td><td class=name>convert</td><td>2</td>" in page  # two CSVs to convert
    listed = boto3.client("s3").list_objects_v2(Bucket=bucket)["Contents"]
    assert len(listed) == 2  # planned, nothing done
    # The bucket's footprint: its storage metrics as S3 would publish them (measured from its listing)
    [storage] = charts(page)["storage"]["data"]
    [(size, _, _, objects)] = storage["customdata"]
    assert (storage["name"], storage["x"], objects, size) == ("STANDARD", [bucket], 2, sum(o["Size"] for o in listed))
    assert stored == {"STANDARD": size}

    run_report("--policies", str(planned_lake), "--html", str(out), "--no-plan")
    assert "no plan: --no-plan was given" in out.read_text(encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("LEANLAKE_POLICIES", raising=False)
    run_report("--bucket", seeded["lake"], "--html", str(out))
    assert "no plan: no policies to plan with" in (page := out.read_text(encoding="utf-8")) and "planned" not in charts(page)


def test_a_plan_that_fails_is_a_warning_and_the_page_says_why(seeded, tmp_path):
    """The policies name a bucket S3 does not have: listing it fails, the report does not."""
    missing = f"html-missing-{next(_names)}"
    policies = tmp_path / "policies.yaml"
    policies.write_text(f"policies:\n  - name: gone\n    bucket: {missing}\n    actions: [{{storage_class: STANDARD_IA}}]\n")
    out = tmp_path / "r.html"
    result = run_report("--bucket", missing, "--policies", str(policies), "--html", str(out))
    assert f"warning: s3://{missing}: " in result.stderr and "the page has no plan" in result.stderr
    page = out.read_text(encoding="utf-8")
    assert f"no plan: planning s3://{missing} failed: " in page and "NoSuchBucket" in page


def test_a_report_to_a_missing_directory_fails_in_one_line(seeded, tmp_path):
    result = CliRunner().invoke(app, ["report", "--bucket", seeded["lake"], "--html", str(tmp_path / "nowhere" / "r.html")])
    assert result.exit_code == 1
    assert result.stderr.strip() == f"leanlake: {tmp_path / 'nowhere' / 'r.html'}: directory {tmp_path / 'nowhere'} does not exist"


def chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


#: Headless, and no network: every host name fails to resolve and any proxied request goes to a closed port.
OFFLINE = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-extensions",
           "--disable-background-networking", "--host-resolver-rules=MAP * ~NOTFOUND", "--proxy-server=127.0.0.1:9",
           "--virtual-time-budget=5000", "--window-size=1280,2400"]


@pytest.mark.skipif(chromium() is None, reason="no chromium on PATH (Debian: apt-get install chromium)")
def test_headless_chromium_draws_every_chart_without_network(seeded, planned_lake, tmp_path):
    """Every chart, the plan's too (the policies' bucket is reported beside the seeded ones)."""
    planned = planned_lake.read_text().split("bucket: ")[1].split()[0]
    out = tmp_path / "report.html"
    run_report(*(f"--bucket={b}" for b in (seeded["lake"], seeded["logs"], planned)), "--days", "7", "--policies", str(planned_lake),
               "--html", str(out))
    shot = tmp_path / "report.png"
    dom = subprocess.run([str(chromium()), *OFFLINE, f"--user-data-dir={tmp_path / 'profile'}", "--dump-dom", f"--screenshot={shot}",
                          out.as_uri()], capture_output=True, text=True, timeout=60, check=True).stdout
    drawn = re.findall(r'<div class="chart js-plotly-plot" id="([\w-]+)"', dom)  # plotly marks each div it drew
    assert sorted(drawn) == ["actions", "planned", "savings", "storage", "trend"]
    assert dom.count('class="main-svg"') >= 2 * len(drawn)  # each plot: its main SVG and its info layer
    assert len(re.findall(r'class="trace bars"', dom)) >= 4 and 'class="scatterlayer' in dom
    assert HOSTILE not in dom and "&lt;img src=x" in dom  # shown as text, in tables and axis labels
    assert 'data-title="Share chart' not in dom  # no button that uploads the chart
    parser = Resources()
    parser.feed(dom)
    assert parser.found == []  # what plotly drew points at nothing outside the page either
    assert shot.stat().st_size > 50_000  # a drawn page, not a blank one
