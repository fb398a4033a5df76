"""``leanlake report --html FILE``: the report as one self-contained HTML page, with plotly charts.

What: ``render(document, planned)`` turns the report's document (``chalicelib.report.document``, what
``--json`` prints) and, optionally, what the policies still plan to save (``chalicelib.report.planned_savings``)
into one page: the totals, the window and when it was made; stacked bars of the bytes in each storage class
per bucket (with the month's USD and kg CO2e in the hover and a table); a line of each bucket's bytes a day;
bars of the savings per (bucket, policy) and per action, in USD and in kg CO2e a month, with the notes of
rows priced from bytes; and bars and a table of the plan's savings per policy and action. A section with
nothing to show says why instead.

Why this way: the page is read anywhere, offline, and can be mailed or archived: plotly.js is embedded once,
inline, for every chart (each chart's data is a JSON script the page hands to ``Plotly.newPlot``), and the page
names no external resource (no ``src``/``href`` outside it, no CSS ``url()``, system fonts). Every name from
the data (buckets, policies, actions) is HTML-escaped, in the tables and in the charts' labels (plotly reads
labels as a small HTML subset and shows the escaped characters as they were).

Example:
    >>> page = render({"days": 7, "namespace": "leanlake", "footprint": [], "trend": [], "savings": [],
    ...                "savings_by_action": [], "totals": {}})
    >>> page.startswith("<!DOCTYPE html>") and "no S3 storage metrics in this window" in page
    True
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from datetime import datetime, timezone
from html import escape
from typing import Any, Iterable

#: Storage classes in the order their bars stack (hot to cold), each with its colour.
CLASS_COLOURS: dict[str, str] = {
    "STANDARD": "#1f77b4", "INTELLIGENT_TIERING": "#17becf", "STANDARD_IA": "#2ca02c", "ONEZONE_IA": "#bcbd22",
    "GLACIER_IR": "#ff7f0e", "GLACIER": "#9467bd", "DEEP_ARCHIVE": "#8c564b",
}
#: A day on a date axis (plotly counts milliseconds).
DAY_MS = 86_400_000
#: Binary byte units, largest first.
UNITS = (("TiB", 2**40), ("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10), ("bytes", 1))
#: System fonts only: nothing for the page to download.
FONT = "system-ui, -apple-system, 'Segoe UI', Roboto, 'Helvetica Neue', Arial, sans-serif"
#: What plotly draws with: no logo (a link to plotly.com), no "Share chart" button (an upload to Plotly Cloud),
#: charts that follow the window's width.
PLOT_CONFIG = {"displaylogo": False, "showSendToCloud": False, "responsive": True}
#: Why the savings by action are empty though savings are not: data older than the per-action metrics.
NO_ACTIONS = "no savings by action in this window (a leanlake that published savings per policy only has none)"

CSS = f"""
body {{ font-family: {FONT}; margin: 0 auto; max-width: 1200px; padding: 1.5rem; color: #222; line-height: 1.4; }}
h1 {{ margin-bottom: .2rem; }} h2 {{ margin-top: 2.2rem; border-bottom: 1px solid #ddd; padding-bottom: .2rem; }}
.meta {{ color: #555; margin-top: 0; }}
table {{ border-collapse: collapse; margin: .8rem 0; font-size: .92rem; }}
th, td {{ border-bottom: 1px solid #e4e4e4; padding: .25rem .7rem; text-align: right; }}
th {{ background: #f5f5f5; }} td.name, th.name {{ text-align: left; }}
.empty {{ color: #8a5a00; background: #fff8e6; border-left: 4px solid #f0b429; padding: .5rem .8rem; }}
.chart {{ width: 100%; }}
ul.notes {{ color: #555; font-size: .92rem; }}
"""

#: Hands each chart's JSON to plotly.js; runs once the page (and the inline plotly.js above it) is loaded.
LOADER = """
document.querySelectorAll("div.chart").forEach(function (div) {
  var spec = JSON.parse(document.getElementById(div.dataset.spec).textContent);
  Plotly.newPlot(div, spec.data, spec.layout, %s);
});
""" % json.dumps(PLOT_CONFIG)


def byte_unit(largest: float) -> tuple[str, int]:
    """The binary unit to show values up to ``largest`` bytes in: the biggest one that ``largest`` reaches.

    >>> byte_unit(3 * 2**30), byte_unit(1500), byte_unit(0)
    (('GiB', 1073741824), ('KiB', 1024), ('bytes', 1))
    """
    return next((name, size) for name, size in UNITS if largest >= size or size == 1)


def bytes_cell(count: int) -> str:
    """A table's bytes: exact, and in a binary unit when there is one.

    >>> bytes_cell(7 * 2**30), bytes_cell(128)
    ('7,516,192,768 (7.00 GiB)', '128')
    """
    return f"{count:,}" if abs(count) < 1024 else f"{count:,} ({human_bytes(count)})"


def human_bytes(count: float) -> str:
    """``7516192768`` → ``'7.00 GiB'``.

    >>> human_bytes(7 * 2**30), human_bytes(512)
    ('7.00 GiB', '512 bytes')
    """
    name, size = byte_unit(abs(count))
    return f"{count:,.0f} bytes" if size == 1 else f"{count / size:,.2f} {name}"


def safe_json(value: Any) -> str:
    """JSON that can sit inside a ``<script>`` element: ``<``, ``>`` and ``&`` written as ``\\u`` escapes.

    >>> safe_json({"name": "</script><b>"})
    '{"name": "\\\\u003c/script\\\\u003e\\\\u003cb\\\\u003e"}'
    """
    return json.dumps(value).replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def label(name: str) -> str:
    """A name as a chart label: ``<``, ``>`` and ``&`` escaped, as plotly reads labels as a little HTML (and shows these
    entities as the characters they were; quotes need none, outside a tag, and plotly would show ``&quot;`` as is).

    >>> label('<img src="x">&co')
    '&lt;img src="x"&gt;&amp;co'
    """
    return escape(name, quote=False)


def decimals(value: float, significant: int = 3, least: int = 2) -> int:
    """Decimals that show ``value`` to ``significant`` digits, at least ``least``: savings are often fractions of a cent.

    >>> decimals(2.5), decimals(0.0000181), decimals(1234.5), decimals(0)
    (2, 7, 2, 2)
    """
    if not value:
        return least
    return max(least, significant - 1 - math.floor(math.log10(abs(value))))


def layout(title: str, *, height: int = 420, **extra: Any) -> dict[str, Any]:
    """The layout every chart shares: white, system fonts, legend at the top."""
    return {"title": {"text": title, "x": 0, "xanchor": "left"}, "height": height, "template": "plotly_white",
            "font": {"family": FONT, "size": 13}, "margin": {"l": 70, "r": 30, "t": 90, "b": 60},
            "legend": {"orientation": "h", "x": 0, "y": 1.02, "yanchor": "bottom"}, **extra}


def storage_chart(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Stacked bars: each bucket's bytes in each storage class on its latest day, the month's USD and kg CO2e in the hover."""
    unit, size = byte_unit(max((sum(r["bytes"] for r in rows if r["bucket"] == b) for b in {r["bucket"] for r in rows}),
                               default=0))
    buckets = sorted({r["bucket"] for r in rows})
    by_class: dict[str, dict[str, dict[str, Any]]] = defaultdict(dict)
    for r in rows:
        by_class[r["storage_class"]][r["bucket"]] = r
    order = [c for c in CLASS_COLOURS if c in by_class] + sorted(c for c in by_class if c not in CLASS_COLOURS)
    data = []
    for cls in order:
        mine = [by_class[cls].get(b) for b in buckets]
        data.append({
            "type": "bar", "name": label(cls), "x": [label(b) for b in buckets],
            "y": [r["bytes"] / size if r else 0 for r in mine], "marker": {"color": CLASS_COLOURS.get(cls)},
            "customdata": [[r["bytes"], r["monthly_usd"], r["monthly_kgco2e"], r["objects"]] if r else [0, 0, 0, 0] for r in mine],
            "hovertemplate": f"<b>%{{x}}</b> · {label(cls)}<br>%{{y:,.2f}} {unit} (%{{customdata[0]:,}} bytes)"
                             "<br>$%{customdata[1]:,.2f} and %{customdata[2]:,.3f} kg CO2e a month<extra></extra>"})
    return {"data": data, "layout": layout("Bytes stored per storage class, latest day", barmode="stack",
                                           yaxis={"title": {"text": unit}, "tickformat": ",.3~f"},
                                           xaxis={"title": {"text": "bucket"}, "automargin": True})}


def trend_chart(points: list[dict[str, Any]]) -> dict[str, Any]:
    """A line per bucket: its bytes over all classes, one point a day."""
    unit, size = byte_unit(max((p["bytes"] for p in points), default=0))
    series: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for p in points:
        series[p["bucket"]].append(p)
    data = [{"type": "scatter", "mode": "lines+markers", "name": label(bucket), "x": [p["date"] for p in mine],
             "y": [p["bytes"] / size for p in mine], "customdata": [p["bytes"] for p in mine],
             "hovertemplate": f"<b>{label(bucket)}</b> %{{x}}<br>%{{y:,.2f}} {unit} (%{{customdata:,}} bytes)<extra></extra>"}
            for bucket, mine in sorted(series.items())]
    days = len({p["date"] for p in points})
    return {"data": data, "layout": layout("Bytes stored per bucket, a point a day (UTC)",
                                           yaxis={"title": {"text": unit}, "tickformat": ",.3~f", "rangemode": "tozero"},
                                           xaxis={"title": {"text": "day (UTC)"}, "type": "date", "tickformat": "%Y-%m-%d",
                                                  "dtick": DAY_MS * max(1, math.ceil(days / 12))})}


def savings_chart(title: str, rows: Iterable[dict[str, Any]], *, category: str, series: str) -> dict[str, Any]:
    """Two bar charts side by side, USD and kg CO2e a month saved: a horizontal bar per ``category`` value (long names
    stay readable), stacked by ``series`` (keys of each row, joined with `` / `` when several; no legend when they are
    the category's); negative savings (an output kept beside its source) go left of 0."""
    rows = list(rows)
    categories = sorted({name(r, category) for r in rows}, reverse=True)  # plotly draws the first at the bottom
    grouped: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(lambda: [0.0, 0.0]))
    for r in rows:
        cell = grouped[name(r, series)][name(r, category)]
        cell[0] += r["monthly_usd_saved"]
        cell[1] += r["monthly_kgco2e_saved"]
    data = []
    for index, (stack, cells) in enumerate(sorted(grouped.items())):
        for axis, figure in enumerate((f"$%{{x:,.{decimals(max_abs(grouped, 0), 2)}f}} a month",
                                       f"%{{x:,.{decimals(max_abs(grouped, 1), least=3)}f}} kg CO2e a month")):
            data.append({
                "type": "bar", "orientation": "h", "name": label(stack), "legendgroup": label(stack),
                "showlegend": axis == 0 and series != category, "y": [label(c) for c in categories],
                "x": [cells[c][axis] if c in cells else 0 for c in categories], "xaxis": "x" if axis == 0 else "x2",
                "marker": {"color": PALETTE[index % len(PALETTE)]},
                "hovertemplate": f"<b>%{{y}}</b> · {label(stack)}<br>{figure}<extra></extra>"})
    return {"data": data, "layout": layout(
        title, height=200 + 34 * len(categories), barmode="relative",
        yaxis={"automargin": True, "title": {"text": category.replace("+", " / ")}},
        xaxis={"domain": [0, 0.47], "title": {"text": "USD a month"}, "tickformat": f"$,.{decimals(max_abs(grouped, 0), 2)}~f",
               "rangemode": "tozero"},
        xaxis2={"domain": [0.53, 1], "anchor": "y", "title": {"text": "kg CO2e a month"}, "rangemode": "tozero",
                "tickformat": f",.{decimals(max_abs(grouped, 1), 2, least=3)}~f"})}


def max_abs(grouped: dict[str, dict[str, list[float]]], axis: int) -> float:
    """The largest magnitude of a bar on ``axis`` (0: USD, 1: kg CO2e), which sets the decimals its axis shows."""
    return max((abs(cell[axis]) for cells in grouped.values() for cell in cells.values()), default=0.0)


#: Colours of the savings' stacks (plotly's default sequence).
PALETTE = ("#636efa", "#ef553b", "#00cc96", "#ab63fa", "#ffa15a", "#19d3f3", "#ff6692", "#b6e880", "#ff97ff", "#fecb52")


def name(row: dict[str, Any], keys: str) -> str:
    """The row's values of ``keys`` (``bucket+policy``) joined with `` / ``.

    >>> name({"bucket": "lake", "policy": "tables"}, "bucket+policy")
    'lake / tables'
    """
    return " / ".join(str(row[k]) for k in keys.split("+"))


def chart(chart_id: str, spec: dict[str, Any]) -> str:
    """A chart's place in the page and its data, which the loader draws; plotly checks the spec first (a misspelt
    property is an error here, not a chart that silently lacks it)."""
    import plotly.graph_objects as go

    figure = go.Figure(data=spec["data"], layout=spec["layout"]).to_plotly_json()
    return (f'<div class="chart" id="{chart_id}" data-spec="{chart_id}-data"></div>\n'
            f'<script type="application/json" id="{chart_id}-data">{safe_json(figure)}</script>')


def table(columns: list[str], rows: Iterable[Iterable[Any]], names: int = 1) -> str:
    """An HTML table; the first ``names`` columns are names (left-aligned), the others figures; every cell escaped."""
    head = "".join(f'<th{" class=name" if i < names else ""}>{escape(c)}</th>' for i, c in enumerate(columns))
    body = "".join("<tr>" + "".join(f'<td{" class=name" if i < names else ""}>{escape(str(v))}</td>' for i, v in enumerate(row))
                   + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def empty(reason: str) -> str:
    """What a section without data says instead of a chart."""
    return f'<p class="empty">{escape(reason)}</p>'


def money(value: float) -> str:
    """USD to two significant digits, cents at least.

    >>> money(1234.5), money(0.0000181), money(-0.25)
    ('$1,234.50', '$0.000018', '-$0.25')
    """
    return f"{'-' if value < 0 else ''}${abs(value):,.{decimals(value, significant=2)}f}"


def carbon(value: float) -> str:
    """kg CO2e to three significant digits, grams at least.

    >>> carbon(0.0625), carbon(0.000003190)
    ('0.0625', '0.00000319')
    """
    return f"{value:,.{decimals(value, least=3)}f}"


def totals_section(document: dict[str, Any], planned: dict[str, Any] | None) -> str:
    """The totals: stored now (bytes, objects, the month's USD and kg CO2e), saved a month, and planned."""
    t = document.get("totals") or {}
    rows = [("bytes stored (latest day)", bytes_cell(t.get("bytes", 0))),
            ("objects", f"{t.get('objects', 0):,}"),
            ("storage, USD a month", money(t.get("monthly_usd", 0.0))),
            ("storage, kg CO2e a month", carbon(t.get("monthly_kgco2e", 0.0))),
            ("saved by leanlake, USD a month", money(t.get("monthly_usd_saved", 0.0))),
            ("saved by leanlake, kg CO2e a month", carbon(t.get("monthly_kgco2e_saved", 0.0)))]
    if planned is not None:
        p = planned["totals"]
        rows += [("still planned: decisions that act", f"{p['decisions']:,}"),
                 ("still planned: USD a month saved", money(p["monthly_usd_saved"])),
                 ("still planned: kg CO2e a month saved", carbon(p["monthly_kgco2e_saved"])),
                 ("still planned: one-off USD", money(p["one_off_usd"]))]
    return table(["total", "value"], rows)


def storage_section(document: dict[str, Any]) -> str:
    rows = document["footprint"]
    if not rows:
        return empty("no S3 storage metrics in this window (S3 publishes them once a day, for buckets with data)")
    return chart("storage", storage_chart(rows)) + table(
        ["bucket", "storage class", "bytes", "objects (bucket)", "USD a month", "kg CO2e a month"],
        ([r["bucket"], r["storage_class"], bytes_cell(r["bytes"]), f"{r['objects']:,}",
          money(r["monthly_usd"]), carbon(r["monthly_kgco2e"])] for r in rows), names=2)


def trend_section(document: dict[str, Any]) -> str:
    if not document["trend"]:
        return empty("no S3 storage metrics in this window: no day to draw")
    return chart("trend", trend_chart(document["trend"]))


def savings_section(document: dict[str, Any]) -> str:
    rows = document["savings"]
    if not rows:
        return empty(f"no leanlake savings metrics in this window (namespace {document['namespace']})")
    notes = [f"{r['bucket']} / {r['policy']}: {r['note']}" for r in rows if r.get("note")]
    notes_html = ('<ul class="notes">' + "".join(f"<li>* {escape(n)}</li>" for n in notes) + "</ul>") if notes else ""
    return chart("savings", savings_chart("Saved a month, per bucket and policy", rows, category="bucket+policy",
                                          series="bucket+policy")) + table(
        ["bucket", "policy", "bytes saved", "USD a month", "kg CO2e a month"],
        ([r["bucket"], r["policy"], bytes_cell(r.get("bytes_saved", 0)), money(r["monthly_usd_saved"]) + ("*" if r.get("note") else ""),
          carbon(r["monthly_kgco2e_saved"])] for r in rows), names=2) + notes_html


def actions_section(document: dict[str, Any]) -> str:
    rows = document.get("savings_by_action") or []
    if not rows:
        return empty(NO_ACTIONS if document["savings"] else "no leanlake savings metrics in this window")
    return chart("actions", savings_chart("Saved a month, per action (stacked by bucket and policy)", rows,
                                          category="action", series="bucket+policy"))


def planned_section(planned: dict[str, Any] | None, no_plan: str) -> str:
    if planned is None:
        return empty(no_plan)
    if not planned["rows"]:
        return empty(f"the policies plan nothing more for their buckets ({planned['skipped']:,} decisions skip)")
    rows = planned["rows"]
    return chart("planned", savings_chart("What the policies still plan to save a month, per action (stacked by policy)",
                                          rows, category="action", series="policy")) + table(
        ["policy", "action", "decisions", "USD a month", "kg CO2e a month", "one-off USD"],
        ([r["policy"], r["action"], f"{r['decisions']:,}", money(r["monthly_usd_saved"]), carbon(r["monthly_kgco2e_saved"]),
          money(r["one_off_usd"])] for r in rows), names=2) + (
        f'<p class="meta">and {planned["skipped"]:,} decisions that skip (nothing to do yet)</p>' if planned["skipped"] else "")


def render(document: dict[str, Any], planned: dict[str, Any] | None = None, *,
           no_plan: str = "no plan: the report was made without the policies' plan",
           generated: datetime | None = None) -> str:
    """The report page: ``document`` as ``chalicelib.report.document`` builds it; ``planned`` as
    ``chalicelib.report.planned_savings`` builds it, or None, and then ``no_plan`` says why there is none."""
    from plotly.offline import get_plotlyjs

    when = (generated or datetime.now(timezone.utc)).astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    sections = [
        ("Totals", totals_section(document, planned)),
        ("Storage by class", storage_section(document)),
        ("Footprint over time", trend_section(document)),
        ("Savings by policy", savings_section(document)),
        ("Savings by action", actions_section(document)),
        ("What the policies still plan to save", planned_section(planned, no_plan)),
    ]
    body = "\n".join(f"<section><h2>{escape(title)}</h2>\n{html}\n</section>" for title, html in sections)
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>leanlake report</title>
<style>{CSS}</style>
<script>{get_plotlyjs()}</script>
</head>
<body>
<h1>leanlake report</h1>
<p class="meta">Generated {escape(when)} · the last {int(document['days'])} days of CloudWatch metrics · namespace
{escape(str(document['namespace']))} · S3's daily storage metrics and the savings leanlake published; prices and
kg CO2e from leanlake's economics model.</p>
{body}
<script>{LOADER}</script>
</body>
</html>
"""
