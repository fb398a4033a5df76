"""The cost and time of sweeping 1M, 100M and 1B objects, as Markdown tables (docs/scale.md).

What: for each object count, (1) one daily sweep that only plans, by listing (ListObjectsV2) or
from an S3 Inventory report, and (2) a backfill converting a share of the objects, fanned out
through SQS or run as one S3 Batch Operations job (LambdaInvoke per object); then (3) where each
service limit bites. Every price, limit and assumption comes from
``chalicelib/economics/model.yaml`` (each with its source there); the Lambda memory, timeout and
reserved concurrency are the deployment's, from ``.chalice/config.json`` (stage ``prod``).

Why: so that the figures in docs/scale.md are reproducible and change when the model does.

Run:
    .venv/bin/python bench/scale_costs.py                      # the tables of docs/scale.md
    .venv/bin/python bench/scale_costs.py --fraction 0.5 --object-mib 64 --items-per-message 10

Example (listing 1M objects takes 1,000 LIST requests at the LIST price):
    >>> a = Assumptions.from_model()
    >>> s = plan_sweep(1_000_000, a, inventory=False)
    >>> s.list_requests, round(s.list_usd, 4)
    (1000, 0.005)
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Iterable, Sequence

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from chalicelib.economics import model, value  # noqa: E402

SCALES = (1_000_000, 100_000_000, 1_000_000_000)
STAGE = "prod"
MiB = 2**20
DAY_S = 86_400
#: Storage class whose request prices apply (sources and outputs are STANDARD in a backfill).
CLASS = "STANDARD"
#: API → price group of S3 requests (HEAD and GetObjectTagging are billed as GET, "all other requests").
PRICE_GROUP = {"HeadObject": "get", "GetObjectTagging": "get", "GetObject": "get", "PutObject": "put", "DeleteObject": "delete"}


@dataclass(frozen=True)
class Assumptions:
    """Every input of the tables: prices, limits and assumptions from the model, and the deployment."""

    list_price: float
    get_price: float
    put_price: float
    delete_price: float
    keys_per_page: int
    put_rate_per_prefix: int
    get_rate_per_prefix: int
    requests_per_object: dict[str, int]
    lock_extra_heads: int
    sqs_price: float
    sqs_chunk_bytes: int
    sqs_batch: int
    sqs_max_message_bytes: int
    inventory_price: float
    batch_job_price: float
    batch_object_price: float
    lambda_gb_s_price: float
    lambda_request_price: float
    lambda_timeout_s: int
    account_concurrency: int
    tmp_mb: int
    tmp_max_mb: int
    memory_mb: int
    reserved_concurrency: int
    sqs_batch_size: int
    plan_us_per_object: float
    inventory_plan_us_per_object: float
    list_page_s: float
    small_request_s: float
    budget_s: float
    item_bytes: int
    items_per_message: int
    object_bytes: int
    fraction: float
    inventory_bytes_per_object: int
    read_mib_per_s: float
    output_ratio: float

    @classmethod
    def from_model(cls, config_path: Path = ROOT / ".chalice" / "config.json", stage: str = STAGE) -> Assumptions:
        """The figures as the model and the deployment state them."""
        ops, req, scale = model()["operations"], model()["requests"]["us_east_1"][CLASS], ("assumptions", "scale")
        config = json.loads(config_path.read_text())
        stage_config = config.get("stages", {}).get(stage, {})
        setting = lambda name: stage_config.get(name, config.get(name))  # noqa: E731
        return cls(
            list_price=value("operations", "s3", "list_per_1000") / 1000,
            get_price=req["get_per_1000"]["value"] / 1000,
            put_price=req["put_per_1000"]["value"] / 1000,
            delete_price=value("operations", "s3", "delete_per_1000") / 1000,
            keys_per_page=value("operations", "s3", "keys_per_list_page"),
            put_rate_per_prefix=value("operations", "s3", "put_per_second_per_prefix"),
            get_rate_per_prefix=value("operations", "s3", "get_per_second_per_prefix"),
            requests_per_object=dict(ops["s3"]["requests_per_converted_object"]["values"]),
            lock_extra_heads=value("operations", "s3", "extra_heads_per_deletion_object_lock"),
            sqs_price=value("operations", "sqs", "price_per_million_requests") / 1e6,
            sqs_chunk_bytes=value("operations", "sqs", "billing_chunk_bytes"),
            sqs_batch=value("operations", "sqs", "max_messages_per_batch"),
            sqs_max_message_bytes=value("operations", "sqs", "max_message_bytes"),
            inventory_price=value("operations", "inventory", "price_per_million_objects_listed") / 1e6,
            batch_job_price=value("operations", "batch_operations", "price_per_job"),
            batch_object_price=value("operations", "batch_operations", "price_per_million_objects") / 1e6,
            lambda_gb_s_price=value("lambda", "price_per_gb_s", "x86_64"),
            lambda_request_price=value("lambda", "price_per_million_requests") / 1e6,
            lambda_timeout_s=min(int(setting("lambda_timeout")), value("operations", "lambda_limits", "max_timeout_seconds")),
            account_concurrency=value("operations", "lambda_limits", "account_concurrency_default"),
            tmp_mb=value("operations", "lambda_limits", "tmp_default_mb"),
            tmp_max_mb=value("operations", "lambda_limits", "tmp_max_mb"),
            memory_mb=int(setting("lambda_memory_size")),
            reserved_concurrency=int(setting("reserved_concurrency")),
            sqs_batch_size=10,  # app.py: @app.on_sqs_message(batch_size=10)
            plan_us_per_object=value(*scale, "plan_us_per_object"),
            inventory_plan_us_per_object=value(*scale, "inventory_plan_us_per_object"),
            list_page_s=value(*scale, "list_page_seconds"),
            small_request_s=value(*scale, "small_request_seconds"),
            budget_s=value(*scale, "sweep_budget_seconds"),
            item_bytes=value(*scale, "work_item_bytes"),
            items_per_message=value(*scale, "work_items_per_message"),
            object_bytes=value(*scale, "converted_object_bytes"),
            fraction=value(*scale, "backfill_fraction"),
            inventory_bytes_per_object=value(*scale, "inventory_bytes_per_object"),
            read_mib_per_s=value("assumptions", "lambda_read_mib_per_s"),
            output_ratio=value("assumptions", "output_ratio", "parquet_from_text"),
        )

    @property
    def memory_gb(self) -> float:
        """Lambda bills memory in GB of 1,024 MB."""
        return self.memory_mb / 1024

    def lambda_usd(self, seconds: float, invocations: int) -> float:
        return seconds * self.memory_gb * self.lambda_gb_s_price + invocations * self.lambda_request_price


# --- (a) one daily sweep that only plans ---------------------------------------------------------

@dataclass(frozen=True)
class PlanSweep:
    objects: int
    source: str
    list_requests: int
    list_usd: float
    checkpoint_usd: float  # each continuation GETs and PUTs its checkpoint under _leanlake/sweeps/
    inventory_usd: float
    seconds: float  # Lambda seconds: waiting for pages (or reading the report) plus planning
    invocations: int
    gb_s: float
    lambda_usd: float

    @property
    def usd(self) -> float:
        return self.list_usd + self.checkpoint_usd + self.inventory_usd + self.lambda_usd


def plan_sweep(objects: int, a: Assumptions, *, inventory: bool) -> PlanSweep:
    """One sweep over ``objects`` that lists (or reads a report), plans and checkpoints every ``budget_s``."""
    plan_s = objects * (a.inventory_plan_us_per_object if inventory else a.plan_us_per_object) / 1e6
    if inventory:
        list_requests, list_usd = 0, 0.0
        read_s = objects * a.inventory_bytes_per_object / (a.read_mib_per_s * MiB)
        inventory_usd = objects * a.inventory_price
    else:
        list_requests = math.ceil(objects / a.keys_per_page)
        list_usd = list_requests * a.list_price
        read_s = list_requests * a.list_page_s
        inventory_usd = 0.0
    seconds = read_s + plan_s
    invocations = max(1, math.ceil(seconds / a.budget_s))
    seconds += invocations * 2 * a.small_request_s  # each continuation reads and writes its checkpoint
    checkpoint_usd = invocations * (a.get_price + a.put_price)
    return PlanSweep(objects, "Inventory" if inventory else "ListObjectsV2", list_requests, list_usd, checkpoint_usd,
                     inventory_usd, seconds, invocations, seconds * a.memory_gb, a.lambda_usd(seconds, invocations))


# --- (b) a backfill converting a share of the objects ------------------------------------------

@dataclass(frozen=True)
class Backfill:
    objects: int
    converted: int
    gib_in: float
    get_requests: int
    put_requests: int
    delete_requests: int
    s3_usd: float
    act_seconds_per_object: float
    act_gb_s: float
    lambda_invocations: int
    lambda_usd: float
    route: str
    messages: int = 0
    sqs_requests: int = 0
    sqs_usd: float = 0.0
    batch_usd: float = 0.0

    @property
    def usd(self) -> float:
        return self.s3_usd + self.lambda_usd + self.sqs_usd + self.batch_usd

    def days_at(self, concurrency: int) -> float:
        return self.converted * self.act_seconds_per_object / concurrency / DAY_S


def act_seconds(a: Assumptions) -> float:
    """Seconds of one conversion: streaming the source at the model's throughput, plus its small requests."""
    small = sum(a.requests_per_object.values()) - a.requests_per_object["GetObject"] + 2  # + the two footer GETs are small
    return a.object_bytes / (a.read_mib_per_s * MiB) + small * a.small_request_s


def _s3(a: Assumptions, converted: int) -> tuple[int, int, int, float]:
    counts = {"get": 0, "put": 0, "delete": 0}
    for api, n in a.requests_per_object.items():
        counts[PRICE_GROUP[api]] += n * converted
    usd = counts["get"] * a.get_price + counts["put"] * a.put_price + counts["delete"] * a.delete_price
    return counts["get"], counts["put"], counts["delete"], usd


def backfill_sqs(objects: int, a: Assumptions) -> Backfill:
    """Work items fanned out through SQS: SendMessageBatch by the sweep, receive/delete by Lambda's poller."""
    converted = round(objects * a.fraction)
    get, put, delete, s3_usd = _s3(a, converted)
    per_object = act_seconds(a)
    messages = math.ceil(converted / a.items_per_message)
    message_bytes = a.items_per_message * a.item_bytes
    batches = math.ceil(messages / a.sqs_batch)
    chunks_per_batch = math.ceil(a.sqs_batch * message_bytes / a.sqs_chunk_bytes)
    polls = math.ceil(messages / a.sqs_batch_size)
    # send and receive are billed per 64 KiB chunk of payload; DeleteMessageBatch carries only receipt handles
    sqs_requests = batches * chunks_per_batch + polls * chunks_per_batch + polls
    consumer_s = converted * per_object
    send_s = batches * a.small_request_s  # in the sweep invocations
    invocations = polls + math.ceil(send_s / a.budget_s)
    seconds = consumer_s + send_s
    return Backfill(objects, converted, converted * a.object_bytes / 2**30, get, put, delete, s3_usd, per_object,
                    seconds * a.memory_gb, invocations, a.lambda_usd(seconds, invocations), "SQS fan-out",
                    messages=messages, sqs_requests=sqs_requests, sqs_usd=sqs_requests * a.sqs_price)


def backfill_batch_operations(objects: int, a: Assumptions, *, jobs: int = 1) -> Backfill:
    """One S3 Batch Operations job (LambdaInvoke) over a manifest of the objects to convert."""
    converted = round(objects * a.fraction)
    get, put, delete, s3_usd = _s3(a, converted)
    put += jobs  # the manifest leanlake writes
    s3_usd += jobs * a.put_price
    per_object = act_seconds(a)
    seconds = converted * per_object
    batch_usd = jobs * a.batch_job_price + converted * a.batch_object_price
    return Backfill(objects, converted, converted * a.object_bytes / 2**30, get, put, delete, s3_usd, per_object,
                    seconds * a.memory_gb, converted, a.lambda_usd(seconds, converted), "Batch Operations",
                    batch_usd=batch_usd)


# --- Markdown ------------------------------------------------------------------------------------

def _n(x: float) -> str:
    return f"{x:,.0f}"


def _usd(x: float) -> str:
    return f"${x:,.2f}" if x >= 0.01 or x == 0 else f"${x:,.4f}"


def _time(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 3 * 3600:
        return f"{seconds / 60:.0f} min"
    if seconds < 3 * DAY_S:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / DAY_S:.1f} days"


def _scale(n: int) -> str:
    return {1_000_000: "1M", 100_000_000: "100M", 1_000_000_000: "1B"}.get(n, _n(n))


def table(header: Sequence[str], rows: Iterable[Sequence[Any]], text_columns: int = 1) -> str:
    """A Markdown table; the first ``text_columns`` columns left-aligned, the rest (numbers) right-aligned."""
    rule = "|" + "|".join("---" if i < text_columns else "---:" for i in range(len(header))) + "|"
    lines = ["| " + " | ".join(header) + " |", rule]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def assumptions_table(a: Assumptions) -> str:
    rows = [
        ("Lambda memory (deployment, stage prod)", f"{a.memory_mb:,} MB = {a.memory_gb:.3f} GB"),
        ("reserved concurrency (deployment, stage prod)", a.reserved_concurrency),
        ("planning, listed", f"{a.plan_us_per_object} µs/object on one core (measured: a continuation's listing and planning)"),
        ("planning, from an Inventory", f"{a.inventory_plan_us_per_object} µs/object on one core (measured: batches of 32,768)"),
        ("ListObjectsV2 page", f"{a.keys_per_page:,} keys, {a.list_page_s} s (assumed)"),
        ("small S3/SQS request", f"{a.small_request_s} s (assumed)"),
        ("work per invocation before it continues itself", f"{a.budget_s:.0f} s of {a.lambda_timeout_s} s"),
        ("conversion throughput", f"{a.read_mib_per_s:g} MiB/s (model: assumptions.lambda_read_mib_per_s)"),
        ("average converted object", f"{a.object_bytes / MiB:g} MiB → {a.object_bytes * a.output_ratio / MiB:g} MiB of Parquet"),
        ("share converted by the backfill", f"{a.fraction:.0%}"),
        ("work item / items per message",
         f"{a.item_bytes} B / {a.items_per_message} → {a.item_bytes * a.items_per_message / 1024:.1f} KiB per message"),
        ("S3 requests per converted object (measured)", ", ".join(f"{k} {v}" for k, v in a.requests_per_object.items())),
        ("Inventory report", f"{a.inventory_bytes_per_object} B/object (assumed), read at the conversion throughput"),
    ]
    return table(("assumption", "value"), rows, text_columns=2)


def plan_table(a: Assumptions, scales: Sequence[int]) -> str:
    rows = []
    for n in scales:
        for inventory in (False, True):
            s = plan_sweep(n, a, inventory=inventory)
            rows.append((_scale(n), s.source, _n(s.list_requests), _usd(s.list_usd + s.checkpoint_usd), _usd(s.inventory_usd),
                         _time(s.seconds),
                         _n(s.invocations), _n(s.gb_s), _usd(s.lambda_usd), _usd(s.usd), _usd(30 * s.usd)))
    return table(("objects", "reads", "LIST requests", "LIST + checkpoint $", "Inventory $", "Lambda time (sequential)",
                  "invocations", "GB-s", "Lambda $", "per sweep $", "30 daily sweeps $"), rows, text_columns=2)


def backfill_table(a: Assumptions, scales: Sequence[int]) -> str:
    rows = []
    for n in scales:
        for b in (backfill_sqs(n, a), backfill_batch_operations(n, a)):
            fees = _usd(b.sqs_usd) if b.route == "SQS fan-out" else _usd(b.batch_usd)
            rows.append((_scale(n), b.route, _n(b.converted), _n(b.gib_in), _n(b.get_requests), _n(b.put_requests),
                         _n(b.delete_requests), _usd(b.s3_usd), _n(b.messages) if b.messages else "–",
                         _n(b.sqs_requests) if b.sqs_requests else "–", fees, _n(b.lambda_invocations), _n(b.act_gb_s),
                         _usd(b.lambda_usd), _usd(b.usd), f"{b.days_at(a.reserved_concurrency):,.1f}"))
    return table(("objects", "route", "converted", "GiB read", "GET+HEAD", "PUT", "DELETE", "S3 requests $", "SQS messages",
                  "SQS billed requests", "SQS or Batch Ops fees $", "Lambda invocations", "GB-s", "Lambda $", "total $",
                  f"days at concurrency {a.reserved_concurrency}"), rows, text_columns=2)


def limits_table(a: Assumptions, scales: Sequence[int]) -> str:
    per_object = act_seconds(a)
    puts = sum(n for api, n in a.requests_per_object.items() if PRICE_GROUP[api] in ("put", "delete"))
    gets = sum(n for api, n in a.requests_per_object.items() if PRICE_GROUP[api] == "get")
    per_prefix = min(a.put_rate_per_prefix / puts, a.get_rate_per_prefix / gets)
    per_prefix_locked = min(a.put_rate_per_prefix / puts, a.get_rate_per_prefix / (gets + a.lock_extra_heads))
    workers_per_prefix = per_prefix * per_object
    message_bytes = a.items_per_message * a.item_bytes
    consumer_s = a.sqs_batch_size * a.items_per_message * per_object
    tmp_input = a.tmp_mb * 10**6 / a.output_ratio
    rows: list[tuple[str, str, str]] = []
    for n in scales:
        listing = plan_sweep(n, a, inventory=False)
        rows.append((f"{_scale(n)}: one listing, pages in sequence", f"{_time(listing.seconds)} in {listing.invocations:,} invocation(s)",
                     "fits a day" if listing.seconds < DAY_S else "does not fit a day: list prefixes in parallel or read the Inventory"))
        sqs = backfill_sqs(n, a)
        rows.append((f"{_scale(n)}: backfill at reserved concurrency {a.reserved_concurrency}",
                     f"{sqs.days_at(a.reserved_concurrency):,.1f} days",
                     f"{sqs.days_at(a.account_concurrency):,.2f} days at the account default of {a.account_concurrency:,}"
                     + (" (more workers than one prefix takes: spread the work over prefixes)"
                        if a.account_concurrency > workers_per_prefix else "")))
    rows += [
        ("15-minute cap: one consumer invocation (batch of messages × items × s per item)",
         f"{a.sqs_batch_size} × {a.items_per_message} × {per_object:.2f} s = {consumer_s:.0f} s",
         f"{'within' if consumer_s <= a.budget_s else 'over'} the {a.budget_s:.0f} s budget (items not started by then are "
         f"requeued); the largest object one invocation converts: {a.budget_s * a.read_mib_per_s / 1024:.1f} GiB, "
         "larger ones are left for `leanlake apply`"),
        ("SQS message size",
         f"{message_bytes / 1024:.1f} KiB per message, {a.sqs_batch * message_bytes / 1024:.0f} KiB per batch of {a.sqs_batch}",
         f"max {a.sqs_max_message_bytes // 1024} KiB per message and per batch: "
         f"at most {a.sqs_max_message_bytes // (a.sqs_batch * a.item_bytes)} items "
         f"per message in full batches; billed per {a.sqs_chunk_bytes // 1024} KiB chunk"),
        ("S3 request rate, one prefix", f"{puts} PUT/DELETE and {gets} GET/HEAD per conversion",
         f"≤ {per_prefix:,.0f} conversions/s per prefix ({per_prefix_locked:,.0f} on an Object Lock bucket), reached by "
         f"~{workers_per_prefix:,.0f} concurrent workers"),
        ("Lambda /tmp", f"{a.tmp_mb} MB default, {a.tmp_max_mb:,} MB max",
         f"not a limit: outputs are streamed to S3 as multipart uploads (staged, an input above ~{tmp_input / 1e9:.1f} GB "
         f"would not fit at ×{a.output_ratio})"),
    ]
    return table(("limit", "at these assumptions", "consequence"), rows, text_columns=3)


def render(a: Assumptions, scales: Sequence[int] = SCALES) -> str:
    return "\n\n".join([
        "### Assumptions\n\n" + assumptions_table(a),
        "### (a) One daily sweep that only plans\n\n" + plan_table(a, scales),
        f"### (b) A backfill converting {a.fraction:.0%} of the objects\n\n" + backfill_table(a, scales),
        "### (c) Where the limits are\n\n" + limits_table(a, scales),
    ]) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--fraction", type=float, help="share of the objects the backfill converts")
    parser.add_argument("--object-mib", type=float, help="average size of a converted object, MiB")
    parser.add_argument("--items-per-message", type=int, help="work items per SQS message")
    parser.add_argument("--objects", type=int, nargs="*", help="object counts (default 1M 100M 1B)")
    args = parser.parse_args(argv)
    a = Assumptions.from_model()
    if args.fraction is not None:
        if not 0 < args.fraction <= 1:
            parser.error(f"--fraction {args.fraction}: must be above 0 and at most 1")
        a = replace(a, fraction=args.fraction)
    if args.object_mib is not None:
        if args.object_mib <= 0:
            parser.error(f"--object-mib {args.object_mib}: must be above 0")
        a = replace(a, object_bytes=int(args.object_mib * MiB))
    if args.items_per_message is not None:
        if args.items_per_message < 1:
            parser.error(f"--items-per-message {args.items_per_message}: must be at least 1")
        a = replace(a, items_per_message=args.items_per_message)
    sys.stdout.write(render(a, tuple(args.objects) if args.objects else SCALES))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
