"""The ``leanlake`` command: validate, plan, apply, duplicates, batch, convert, report, regions, demo, iam, package, deploy,
destroy.

Conventions: with ``--json`` stdout holds exactly one JSON document (logs and EMF metrics go to
stderr); a bad input ends with one line, ``leanlake: <input>: <reason>``, exit status 1, and no
traceback. ``convert`` on local files imports no AWS library. Global options (before the command):
``--log-format``, ``-v``/``--verbose``, ``-q``/``--quiet``: short human log lines on a terminal,
Powertools JSON lines elsewhere (see ``leanlake.console``).
"""

from __future__ import annotations

import json
import os
import sys
from datetime import datetime, timezone
from pathlib import Path
from contextlib import contextmanager
from typing import Any, Callable, Iterator, NoReturn, Optional

import typer

try:  # the fast JSON encoder of `plan --json` (a CLI dependency); json does the same, slower
    import orjson as _orjson
except ImportError:  # pragma: no cover - orjson is a dependency of the CLI
    _orjson = None

#: mimalloc (Arrow's default allocator) reads its options when pyarrow loads, which the commands defer: without eager
#: commits of its arenas, `plan --inventory --json` over 1M objects peaked 186-189 MiB where it peaked 218-230 MiB,
#: room for bigger CSV blocks (``chalicelib.inventory``). A value set in the environment is kept.
os.environ.setdefault("MIMALLOC_ARENA_EAGER_COMMIT", "0")

app = typer.Typer(
    name="leanlake",
    help="Cut the storage footprint of ML data lakes on Amazon S3 in bytes, dollars and kg CO2e.\n\n"
    "Policies (policies/*.yaml) say what to convert, recompress, re-class and expire; `plan` shows what "
    "would change and what it saves, `apply` does it, the deployed Lambda keeps doing it on uploads, "
    "a daily schedule and CloudWatch alarms. Uses the standard AWS environment (AWS_PROFILE, AWS_REGION, "
    "AWS_ENDPOINT_URL for S3-compatible stores). The options below go before the command; "
    "NO_COLOR turns colours off.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

PoliciesOption = typer.Option(None, "--policies", "-p", help="Policy files or directories (default: $LEANLAKE_POLICIES, else ./policies).")
BucketOption = typer.Option(None, "--bucket", "-b", help="Only this bucket (repeatable).")
JsonOption = typer.Option(False, "--json", help="Print one JSON document on stdout (logs go to stderr).")
InventoryOption = typer.Option(None, "--inventory", help="Read objects from an S3 Inventory manifest "
                               "(s3://…/manifest.json, CSV or Parquet) instead of listing the bucket.")


#: Commands that write no log line: the logger is left alone, so a local ``convert`` imports no AWS library.
COMMANDS_WITHOUT_LOGS = ("convert",)


@app.callback()
def global_options(
    ctx: typer.Context,
    log_format: str = typer.Option("auto", "--log-format", metavar="auto|human|json",
                                   help="Log lines on stderr: short human lines, or Powertools JSON as in Lambda; "
                                        "auto: human on a terminal, JSON otherwise."),
    verbose: int = typer.Option(0, "--verbose", "-v", count=True,
                                help="Human logs: -v adds info lines, -vv debug and tracebacks (default: warnings and errors)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Only the result: no logs, no progress, no narration."),
) -> None:
    """Options for every command; NO_COLOR turns colours off."""
    from leanlake.console import LOG_FORMATS, configure

    if log_format not in LOG_FORMATS:
        fail("--log-format", f"{log_format!r} is not one of {', '.join(LOG_FORMATS)}", 2)
    if quiet and verbose:
        fail("--quiet", "give --quiet or --verbose, not both", 2)
    logs = ctx.invoked_subcommand not in COMMANDS_WITHOUT_LOGS
    configure(log_format, verbosity=verbose, quiet=quiet, logger=logs)
    if logs and _route_metrics_to_stderr:
        from chalicelib import ledger  # imports every action (pydantic, YAML, powertools): ~0.3 s a local convert skips

        ledger.metrics_to_stderr()


def fail(subject: str, reason: str, code: int = 1) -> NoReturn:
    """One line on stderr, no traceback."""
    typer.echo(f"leanlake: {subject}: {reason}", err=True)
    raise typer.Exit(code)


def emit_json(document: Any) -> None:
    sys.stdout.write(json.dumps(document, indent=2, default=str) + "\n")


def _policy_paths(paths: Optional[list[Path]]) -> list[Path]:
    if paths:
        return paths
    return [Path(os.environ.get("LEANLAKE_POLICIES") or "policies")]


def _load(paths: Optional[list[Path]]) -> Any:
    from chalicelib.policy import PolicyError, load_policies

    try:
        return load_policies(_policy_paths(paths))
    except PolicyError as exc:
        for problem in exc.problems:
            typer.echo(str(problem), err=True)
        raise typer.Exit(1) from None


@app.command()
def validate(paths: Optional[list[Path]] = typer.Argument(None, help="Policy files or directories (default: ./policies).")) -> None:
    """Check policy files; print `file:line: message` for each problem and exit 1 if there is any."""
    policies = _load(paths)
    from chalicelib.actions.lifecycle_rules import lifecycle_warnings
    from chalicelib.policy.collisions import collision_warnings

    for warning in lifecycle_warnings(policies) + collision_warnings(policies):
        typer.echo(f"warning: {warning}", err=True)
    files = sorted({lp.file for lp in policies.loaded})
    typer.echo(f"{len(policies.loaded)} policies valid in {len(files)} file(s); buckets: {', '.join(policies.buckets) or '-'}")


def _as_of(value: Optional[str]) -> datetime:
    if not value:
        return datetime.now(timezone.utc)
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        fail("--as-of", f"not a date: {value!r} (use YYYY-MM-DD)", 2)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


def _context(paths: Optional[list[Path]], as_of: Optional[str], dry_run: bool = False) -> Any:
    from chalicelib.context import RunContext
    from chalicelib.s3 import client

    return RunContext(policies=_load(paths), s3=client(), now=_as_of(as_of), dry_run=dry_run)


def _buckets(ctx: Any, bucket: Optional[list[str]]) -> list[str]:
    if not bucket:
        return list(ctx.policies.buckets)
    unknown = [b for b in bucket if b not in ctx.policies.buckets]
    if unknown:
        fail(unknown[0], "no policy names this bucket")
    return bucket


def _collect_decisions(ctx: Any, buckets: list[str], inventory: Optional[str] = None) -> list[Any]:
    """Decisions for the buckets, from a listing or, with ``inventory``, from an S3 Inventory report, as a list."""
    return list(_stream_decisions(ctx, buckets, inventory))


def _stream_decisions(ctx: Any, buckets: list[str], inventory: Optional[str] = None) -> Iterator[Any]:
    """Decisions for the buckets, from a listing or, with ``inventory``, from an S3 Inventory report, one at a time
    (a million objects' decisions are never held): ``_stream_plan``'s, each batch's made when it comes."""
    from chalicelib.plan import decisions_of

    for piece in _stream_plan(ctx, buckets, inventory):
        yield from decisions_of(piece)


def _stream_plan(ctx: Any, buckets: list[str], inventory: Optional[str] = None) -> Iterator[Any]:
    """The plan of the buckets, from a listing or, with ``inventory``, from an S3 Inventory report: bucket-level
    Decisions and batches of object-level decisions held as columns (``chalicelib.sweep.bucket_plan``); a failure
    of S3 or of the inventory, before or during the stream, exits with one line naming what failed."""
    from botocore.exceptions import BotoCoreError, ClientError

    from chalicelib.inventory import InventoryError, inventory_objects, read_manifest
    from chalicelib.pipeline import describe_error
    from chalicelib.sweep import bucket_plan

    subject = inventory or ""
    try:
        if inventory:
            manifest = read_manifest(ctx.s3, inventory)
            bucket = manifest["sourceBucket"]
            if bucket not in ctx.policies.buckets:
                fail(inventory, f"inventory of bucket {bucket}, which no policy names")
            yield from bucket_plan(ctx, bucket, ctx.policies, batches=inventory_objects(ctx.s3, inventory, manifest))
            return
        for bucket in buckets:
            subject = f"s3://{bucket}"
            yield from bucket_plan(ctx, bucket, ctx.policies)
    except InventoryError as exc:  # its message starts with the manifest's or the data file's URI
        named, _, reason = str(exc).partition(": ")
        fail(named, reason)
    except (ClientError, BotoCoreError) as exc:
        fail(subject, describe_error(exc)[0])


#: Decisions the human table of ``plan`` shows (``--json`` has them all).
SHOWN_DECISIONS = 500


def _print_decisions(decisions: list[Any], totals: dict[str, Any], count: Optional[int] = None) -> None:
    """The first ``SHOWN_DECISIONS`` of ``decisions`` as a table, how many more there are (of ``count`` in all), and the totals."""
    from rich.console import Console
    from rich.table import Table

    console = Console()
    count = len(decisions) if count is None else count
    table = Table(title=f"{count} decisions", show_lines=False)
    for column in ("policy", "object", "action", "reason", "$/month", "kgCO2e/month", "one-off $"):
        table.add_column(column, overflow="fold")
    for d in decisions[:SHOWN_DECISIONS]:
        table.add_row(d.policy, f"s3://{d.bucket}/{d.key or ''}", d.action, d.reason, f"{d.monthly_usd_saved:.4f}",
                      f"{d.monthly_kgco2e_saved:.6f}", f"{d.one_off_usd:.4f}")
    console.print(table)
    if count > SHOWN_DECISIONS:
        console.print(f"… {count - SHOWN_DECISIONS} more (use --json for all)")
    console.print_json(data=totals)


def _json_encode(value: Any) -> bytes:
    """``value`` as ``json`` writes it in UTF-8, without spaces after ``,`` and ``:`` (``_encode`` without orjson)."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()


#: How ``plan --json`` encodes its rows (``chalicelib.decision.Encoder``): orjson when installed, which encodes a
#: million decisions' columns in a fraction of a second where ``json`` takes several (its floats are the shortest that
#: read back the same, as ``json``'s, though ``1e-5`` where ``json`` writes ``1e-05``: the same document once parsed).
_encode: Callable[[Any], bytes] = _orjson.dumps if _orjson is not None else _json_encode


def _stdout_bytes() -> Callable[[bytes], Any]:
    """A function that writes UTF-8 bytes to stdout: to its binary buffer, after the text written so far (a stdout
    without one, such as a ``StringIO``, is given the text)."""
    buffer = getattr(sys.stdout, "buffer", None)
    if buffer is None:
        text = sys.stdout.write
        return lambda data: text(data.decode())
    sys.stdout.flush()
    return buffer.write


def _emit_plan_json(pieces: Iterator[Any], totals: Any) -> None:
    """``{"decisions": [...], "totals": {...}}`` written as the plan comes: one JSON document, the shape
    ``emit_json`` gives, without holding more than a batch's decisions. ``totals`` (a ``chalicelib.plan.Totals``)
    must be counting ``pieces`` (``Totals.watch_plan``); nothing is written before the first decision, so an early failure
    prints no half document."""
    from chalicelib.plan import Planned

    def chunks() -> Iterator[list[bytes]]:
        # A batch's rows (from its columns) or a Decision's, as the plan comes.
        for piece in pieces:
            lines = piece.json_lines(_encode) if isinstance(piece, Planned) else [_encode(piece.as_dict())]
            if lines:
                yield lines

    rows = chunks()
    first = next(rows, None)
    write = _stdout_bytes()
    write(b'{\n  "decisions": [')
    if first is not None:
        write(b"\n    ")
        _write_lines(write, first)
        for chunk in rows:
            write(_ROW_SEPARATOR)
            _write_lines(write, chunk)
        write(b"\n  ")
    write(('],\n  "totals": ' + json.dumps(totals.as_dict(), indent=2).replace("\n", "\n  ") + "\n}\n").encode())


#: Between two rows of ``plan --json``'s decisions: one a line.
_ROW_SEPARATOR = b",\n    "


def _write_lines(write: Callable[[bytes], Any], lines: list[bytes]) -> None:
    """``lines`` with ``_ROW_SEPARATOR`` between them, joined 1,000 at a time: a batch's rows joined at once (megabytes)
    cost a fresh mapping of memory each time, and its page faults (half a second of system time a million rows)."""
    for start in range(0, len(lines), 1000):
        if start:
            write(_ROW_SEPARATOR)
        write(_ROW_SEPARATOR.join(lines[start:start + 1000]))


@app.command()
def plan(
    policies: Optional[list[Path]] = PoliciesOption,
    bucket: Optional[list[str]] = BucketOption,
    as_of: Optional[str] = typer.Option(None, "--as-of", help="Evaluate ages as of this date (YYYY-MM-DD)."),
    inventory: Optional[str] = InventoryOption,
    as_json: bool = JsonOption,
) -> None:
    """Show, read-only, every decision the policies make for the buckets, and what each saves.

    Decisions stream: --json writes each as it is made, and the table keeps only the ones it shows,
    so planning millions of objects (an --inventory) runs in flat memory."""
    from chalicelib.plan import Totals, decisions_of

    ctx = _context(policies, as_of)
    running = Totals()
    pieces = running.watch_plan(_stream_plan(ctx, _buckets(ctx, bucket), inventory))
    if as_json:
        _emit_plan_json(pieces, running)
    else:
        shown: list[Any] = []
        for piece in pieces:  # the batches after the shown decisions are only counted, from their columns
            if len(shown) < SHOWN_DECISIONS:
                shown.extend(decisions_of(piece)[:SHOWN_DECISIONS - len(shown)])
        _print_decisions(shown, running.as_dict(), running.overall.decisions)


@app.command()
def apply(
    policies: Optional[list[Path]] = PoliciesOption,
    bucket: Optional[list[str]] = BucketOption,
    as_of: Optional[str] = typer.Option(None, "--as-of", help="Act as if today were this date (tries retention ahead of time)."),
    yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask for confirmation."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Go through every step up to acting, change nothing."),
    inventory: Optional[str] = InventoryOption,
    as_json: bool = JsonOption,
) -> None:
    """Execute the plan: convert, recompress, re-class, expire (audited, lock-aware) and merge Lifecycle rules.

    Exit status 1 when any action failed (after doing the rest)."""
    from rich.progress import Progress

    from chalicelib.ledger import Ledger
    from chalicelib.sweep import sweep
    from leanlake.applying import ApplyJson, only_confirmed, preview
    from leanlake.console import output

    out = output()
    err = out.err
    if as_of:
        err.print(f"[yellow]warning:[/] --as-of {as_of}: ages are computed as of that date; expirations due then happen now")
    ctx = _context(policies, as_of, dry_run=dry_run)
    buckets = _buckets(ctx, bucket)
    decisions = _stream_decisions(ctx, buckets, inventory)
    total: Optional[int] = None
    if not yes and not dry_run:
        # A first pass for the prompt (counts, totals, the first decisions shown); the second acts only on what it
        # confirmed. Neither holds every decision.
        first = preview(decisions)
        total = first.count
        if not first.acting:
            err.print("nothing to do")
        else:
            if not sys.stdin.isatty():
                fail("apply", "refusing to act without confirmation: pass --yes (or --dry-run)", 2)
            _print_decisions(first.shown, first.totals.as_dict(), first.count)
            typer.confirm(f"Apply {first.acting} actions?", abort=True, err=True)
        ctx.deletions.clear()  # the second pass reads lock states afresh, in the run that acts
        decisions = only_confirmed(_stream_decisions(ctx, buckets, inventory), first.fingerprints)
    document = ApplyJson() if as_json else None
    if document is not None:
        decisions = document.watch(decisions)
    ledger = Ledger(keep_outcomes=False)
    acted = {"any": False, "error": False}

    def on_outcome(o: Any) -> None:
        progress.advance(task)
        acted["any"] = acted["any"] or o.decision.action != "skip"
        acted["error"] = acted["error"] or o.status == "error"
        if document is not None:
            document.add(o)
        elif o.status != "skip" or o.decision.action != "skip":
            typer.echo(f"{o.status:5} {o.decision.action:13} s3://{o.decision.bucket}/{o.decision.key or ''}: {o.reason}")

    # A bar only for a person reading human logs: JSON log lines must reach stderr whole, not re-wrapped above a bar.
    try:
        with Progress(console=err, transient=True, disable=out.quiet or not out.human or not err.is_terminal) as progress:
            task = progress.add_task("applying", total=total)
            report = sweep(ctx, ledger, buckets=buckets, decisions=decisions, on_outcome=on_outcome)
    finally:  # a listing that fails half way (one line, exit 1) still publishes the metrics of what was done
        ledger.flush()
    if (yes or dry_run) and not acted["any"]:
        err.print("nothing to do")
    if document is not None:
        document.finish(report)
    else:
        typer.echo(json.dumps(report["totals"]))
    if acted["error"]:
        raise typer.Exit(1)


@app.command()
def duplicates(
    policies: Optional[list[Path]] = PoliciesOption,
    bucket: Optional[list[str]] = BucketOption,
    inventory: Optional[list[str]] = InventoryOption,
    min_size: str = typer.Option("1 KiB", "--min-size",
                                 help="Leave out objects smaller than this, e.g. 1, '64 KiB', '1 MB' (empty objects always are)."),
    region: str = typer.Option("us-east-1", "--region", help="Region whose prices and grid price the wasted copies."),
    top: int = typer.Option(20, "--top", min=1, help="Groups shown in the table (--json has them all)."),
    as_json: bool = JsonOption,
) -> None:
    """Report groups of byte-identical objects across the buckets, and the bytes, $ and kg CO2e a month their extra
    copies cost. Report only: nothing is deleted.

    Buckets: each --bucket (no policies read), else the policies'. Each is listed whole (leanlake's _leanlake/ keys
    left out), or read from an --inventory of it (repeatable, one per bucket; it must list Size and ETag).
    Same bytes are proved, never guessed from names: the same size and the same single-part ETag, the same
    multipart ETag, or the same full-object CRC64NVME/SHA-256/SHA-1 checksum (HeadObject, only for sizes a
    multipart upload shares). Objects of a shared size that nothing can match or tell apart are counted as
    not comparable. The copy kept is the one in the warmest class; the others are the waste."""
    from chalicelib.policy.units import parse_size
    from chalicelib.s3 import client
    from leanlake.duplicates import ScanError, find_duplicates, inventory_source, listed

    try:
        smallest = parse_size(min_size)
    except ValueError as exc:
        fail("--min-size", str(exc), 2)
    buckets = list(dict.fromkeys(bucket or _load(policies).buckets))
    s3 = client()
    readers: dict[str, tuple[str, Any]] = {}
    try:
        for uri in inventory or ():
            source, rows = inventory_source(s3, uri)
            if source not in buckets:
                fail(uri, f"inventory of bucket {source}, which is not among the buckets scanned ({', '.join(buckets) or '-'})")
            if source in readers:
                fail(uri, f"a second inventory of bucket {source} (the first: {readers[source][0]})")
            readers[source] = (uri, rows)
        sources = [readers.get(b) or (f"s3://{b}", listed(s3, b)) for b in buckets]
        with _narration() as say:
            found = find_duplicates(s3, sources, min_size=smallest, region=region, say=say)
    except ScanError as exc:
        fail(exc.subject, exc.reason)
    if as_json:
        emit_json(found.as_dict())
        return
    _print_duplicates(found, top)


def _print_duplicates(found: Any, top: int) -> None:
    """``duplicates``' table of the groups wasting most, then the totals, said plainly."""
    from rich.console import Console
    from rich.table import Table

    console = Console()
    if found.groups:
        table = Table(title=f"Byte-identical objects: the {min(top, len(found.groups))} of {len(found.groups)} groups wasting "
                            "most bytes (each group's first copy is the one kept)")
        for column in ("bytes each", "copies", "wasted bytes", "$/month", "kg CO2e/month", "proved by"):
            table.add_column(column, justify="right" if column not in ("copies", "proved by") else "left", overflow="fold")
        for g in found.groups[:top]:
            shown = [f"{c.uri} ({c.storage_class})" for c in g.copies[:6]]
            if len(g.copies) > 6:
                shown.append(f"… {len(g.copies) - 6} more (use --json)")
            table.add_row(f"{g.size:,}", "\n".join(shown), f"{g.wasted_bytes:,}", _figure(g.wasted_monthly_usd, 4),
                          _figure(g.wasted_monthly_kgco2e, 6), ", ".join(g.proved_by))
        console.print(table)
    t = found.totals()
    usd, kg = sum(g.wasted_monthly_usd for g in found.groups), sum(g.wasted_monthly_kgco2e for g in found.groups)  # unrounded
    console.print(f"{t['groups']:,} groups of identical objects, {t['copies']:,} copies among {t['objects_scanned']:,} objects "
                  f"(from {found.min_size:,} bytes): {t['wasted_bytes']:,} bytes wasted, ${_figure(usd, 2)} and "
                  f"{_figure(kg, 4)} kg CO2e a month ({found.region}). Report only: nothing was deleted.")
    if t["not_comparable"]:
        console.print(f"{t['not_comparable']:,} objects share their size with objects nothing can match or tell apart "
                      "(multipart uploads without a full-object checksum): not comparable, not grouped.")
    for note in found.notes:
        console.print(f"note: {note}")


@app.command()
def batch(
    policies: Optional[list[Path]] = PoliciesOption,
    bucket: Optional[list[str]] = BucketOption,
    as_of: Optional[str] = typer.Option(None, "--as-of", help="Plan as of this date (YYYY-MM-DD)."),
    inventory: Optional[str] = InventoryOption,
    role_arn: str = typer.Option(..., "--role-arn",
                                 help="The role the job runs with (its documents: `leanlake iam --batch-role`)."),
    stage: str = typer.Option("dev", "--stage", help="The stage whose batch_task function the job invokes."),
    function_arn: Optional[str] = typer.Option(None, "--function-arn",
                                               help="The function to invoke (default: batch_task from .chalice/deployed/STAGE.json)."),
    chalice_dir: Path = typer.Option(Path(".chalice"), "--chalice-dir", help="The Chalice project's config directory."),
    account_id: Optional[str] = typer.Option(None, "--account-id",
                                             help="The account that owns the job (default: the caller's, from STS)."),
    priority: int = typer.Option(10, "--priority", min=0, max=2147483647, help="The job's priority (higher runs first)."),
    run: Optional[str] = typer.Option(None, "--run",
                                      help="The run id (default: new, from the time); the same run and bucket never make two jobs."),
    yes: bool = typer.Option(False, "--yes", "-y",
                             help="Create the job ready to run (default: it waits for confirmation in the S3 console)."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Write the manifests and print the job requests; create no job."),
    as_json: bool = JsonOption,
) -> None:
    """Backfill at any scale: the plan's object actions as an S3 Batch Operations job per bucket.

    Writes s3://BUCKET/_leanlake/batch/RUN/manifest.csv, the objects an object action (convert,
    recompress, storage_class) acts on, and creates a job that invokes the stage's batch_task function
    on each; the job's report lands beside it. Deletions and bucket configuration stay with `apply`
    and the daily sweep. See docs/batch.md."""
    from botocore.exceptions import BotoCoreError, ClientError

    from chalicelib.pipeline import describe_error
    from leanlake import batch as jobs
    from leanlake.regions import bucket_region

    ctx = _context(policies, as_of)
    try:
        run_id = jobs.check_run_id(run) if run else jobs.new_run_id()
    except jobs.BatchError as exc:
        fail("--run", str(exc), 2)
    try:
        arn = function_arn or jobs.function_arn_from_deployed(chalice_dir, stage)
        jobs.partition_of(arn)
    except jobs.BatchError as exc:
        fail("--function-arn", str(exc))
    selected = _buckets(ctx, bucket)
    decisions = _collect_decisions(ctx, selected, inventory)
    planned = jobs.acting_keys(decisions)
    done: list[dict[str, Any]] = []
    for name in sorted({d.bucket for d in decisions} | (set() if inventory else set(selected))):
        keys = planned.get(name, [])
        if not keys:
            done.append({"bucket": name, "objects": 0, "manifest": None, "job_id": None,
                         "reason": "nothing for an object action to do"})
            continue
        try:
            region = bucket_region(ctx.s3, name)  # a job, its manifest and its report live in the bucket's Region
            account = account_id or jobs.caller_account(region)
            manifest = jobs.write_manifest(ctx.s3, name, run_id, keys)
            request = jobs.job_request(manifest, account_id=account, run=run_id, function_arn=arn, role_arn=role_arn,
                                       priority=priority, confirmation_required=not yes)
            job_id = None if dry_run else jobs.create_job(jobs.s3control_client(region), request)
        except (ClientError, BotoCoreError) as exc:
            fail(f"s3://{name}", describe_error(exc)[0])
        except jobs.BatchError as exc:
            fail(f"s3://{name}", str(exc))
        entry: dict[str, Any] = {"bucket": name, "objects": manifest.objects, "manifest": manifest.uri, "job_id": job_id}
        done.append({**entry, "request": request} if dry_run else entry)
    if as_json:
        emit_json({"run": run_id, "dry_run": dry_run, "jobs": done})
        return
    for entry in done:
        if not entry["objects"]:
            typer.echo(f"s3://{entry['bucket']}: no job: {entry['reason']}")
        elif dry_run:
            typer.echo(f"s3://{entry['bucket']}: dry run: {entry['objects']} objects in {entry['manifest']}; the job request:")
            typer.echo(json.dumps(entry["request"], indent=2))
        else:
            waiting = "" if yes else " (confirm it in the S3 console, or create it with --yes)"
            typer.echo(f"s3://{entry['bucket']}: job {entry['job_id']}, {entry['objects']} objects in {entry['manifest']}{waiting}")


def _s3() -> Any:
    """The S3 client, imported only when an s3:// URI needs it (local converts load no AWS library)."""
    from chalicelib.s3 import client

    return client()


def _is_s3(uri: str) -> bool:
    return uri.startswith("s3://")


def _split_s3(uri: str) -> tuple[str, str]:
    bucket, _, key = uri[5:].partition("/")
    if not bucket or not key:
        fail(uri, "expected s3://BUCKET/KEY", 2)
    return bucket, key


@app.command()
def convert(
    src: str = typer.Argument(..., help="Input: a local path or s3://BUCKET/KEY (CSV, TSV, JSON, JSON Lines; "
                              "plain, gzip, bz2 or zstd)."),
    dst: str = typer.Argument(..., help="Output Parquet: a local path or s3://BUCKET/KEY; replaced atomically."),
    level: Optional[int] = typer.Option(None, "--level", min=1, max=22, help="zstd level for every column (default: "
                                        "3, or 6 for the columns where it pays; a small file tries up to 19)."),
    sort: str = typer.Option("none", "--sort", help="auto: order the rows in each row group by the columns that shrink "
                             "the file most, chosen by trial (smaller; row order changes); none: keep row order."),
    compat: bool = typer.Option(False, "--compat", help="Parquet V1 encodings only (plain, dictionary), for older "
                                "engines; a few percent larger."),
    max_row_size: str = typer.Option("64 MiB", "--max-row-size", help="Longest row accepted, e.g. '16 MiB'; a "
                                     "longer one fails early instead of exhausting memory."),
    as_json: bool = JsonOption,
) -> None:
    """Convert one file to Parquet (zstd). Run by hand it always writes DST, even when it is not smaller."""
    import tempfile
    import time

    from chalicelib.formats import ConversionError, ConvertOptions, convert_to_parquet, verify_parquet
    from chalicelib.policy.units import parse_size

    if sort not in ("none", "auto"):
        fail("--sort", f"must be auto or none, not {sort!r}", 2)
    try:
        options = ConvertOptions(level=level, sort=sort, compat=compat,  # type: ignore[arg-type]
                                 max_row_size=parse_size(max_row_size))
    except ValueError as exc:
        fail("--max-row-size", str(exc), 2)
    started = time.monotonic()
    if _is_s3(src):
        src_bucket, src_key = _split_s3(src)
        open_source = lambda: _s3().get_object(Bucket=src_bucket, Key=src_key)["Body"]  # noqa: E731
    else:
        if not os.path.isfile(src):
            fail(src, "no such file")
        open_source = lambda: open(src, "rb")  # noqa: E731
    if dst.endswith("/") or (not _is_s3(dst) and os.path.isdir(dst)):  # a directory: name the file after the source
        from chalicelib.policy.templates import KeyParts

        dst = dst.rstrip("/") + "/" + KeyParts.of(src.rstrip("/").rsplit("/", 1)[-1]).stem + ".parquet"
    out_dir = None if _is_s3(dst) else (os.path.dirname(os.path.abspath(dst)) or ".")
    if out_dir is not None and not os.path.isdir(out_dir):
        fail(dst, f"directory {out_dir} does not exist")
    fd, tmp = tempfile.mkstemp(prefix=".leanlake-", suffix=".parquet.tmp", dir=out_dir)
    os.close(fd)
    try:
        try:
            result = convert_to_parquet(open_source, tmp, options)
            verify_parquet(tmp, result.rows)
        except ConversionError as exc:
            fail(src, str(exc))
        except Exception as exc:  # S3 errors and the like: still one line
            fail(src, _one_line(exc))
        try:
            if _is_s3(dst):
                dst_bucket, dst_key = _split_s3(dst)
                _s3().upload_file(tmp, dst_bucket, dst_key, ExtraArgs={"ContentType": "application/vnd.apache.parquet"})
            else:
                umask = os.umask(0)
                os.umask(umask)
                os.chmod(tmp, 0o666 & ~umask)  # mkstemp made it private; the output gets the usual permissions
                os.replace(tmp, dst)
        except Exception as exc:
            fail(dst, _one_line(exc))
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    document = {
        "input": src, "output": dst, "rows": result.rows, "columns": result.columns, "bytes_in": result.bytes_in,
        "bytes_out": result.bytes_out, "ratio": round(result.bytes_out / result.bytes_in, 4) if result.bytes_in else None,
        "seconds": round(time.monotonic() - started, 3), "input_format": result.input_format, "compression": result.compression,
    }
    if as_json:
        emit_json(document)
    else:
        typer.echo(f"{src} → {dst}: {result.rows:,} rows, {result.bytes_in:,} → {result.bytes_out:,} bytes "
                   f"({document['ratio']:.1%}) in {document['seconds']} s")


def _one_line(exc: BaseException) -> str:
    try:
        from chalicelib.pipeline import describe_error

        return describe_error(exc)[0]
    except ImportError:
        return f"{type(exc).__name__}: {exc}".splitlines()[0]


HtmlReportOption = typer.Option(None, "--html", metavar="FILE",
                                help="Also write the report as one self-contained HTML page with charts (storage by class, "
                                     "footprint over time, savings by policy and action, what the policies still plan to "
                                     "save); it needs no network to view.")


@app.command()
def report(
    days: int = typer.Option(30, "--days", min=1, max=455, help="Read this many days of metrics (CloudWatch keeps 15 months)."),
    policies: Optional[list[Path]] = PoliciesOption,
    bucket: Optional[list[str]] = BucketOption,
    region: str = typer.Option("us-east-1", "--region",
                               help="The Region of every --bucket, and of the policies' buckets whose policies set no "
                                    "settings.region: where their metrics are read, and whose prices and grid price them."),
    html: Optional[Path] = HtmlReportOption,
    no_plan: bool = typer.Option(False, "--no-plan", help="With --html: leave out what the policies still plan to save "
                                                          "(planning lists the buckets, read-only)."),
    as_json: bool = JsonOption,
) -> None:
    """Show what the policies' buckets store and what leanlake saved, both from CloudWatch: S3's free daily storage
    metrics (bytes per storage class, objects, $ and kg CO2e a month, a daily trend), then leanlake's own metrics
    (bytes, objects, errors, $ and kg CO2e a month saved) per bucket and policy. No S3 request; with --bucket, no
    policies are read either. --html FILE also writes the page, and plans the policies' buckets for it (an S3
    listing, read-only) unless --no-plan."""
    from botocore.exceptions import BotoCoreError, ClientError

    from chalicelib.pipeline import describe_error
    from chalicelib.report import document
    from leanlake.regions import cloudwatch_client

    if html is not None and not html.parent.is_dir():
        fail(str(html), f"directory {html.parent} does not exist")
    regions = dict.fromkeys(bucket, region) if bucket else _bucket_regions(_load(policies), region)
    namespace = os.environ.get("POWERTOOLS_METRICS_NAMESPACE", "leanlake")
    try:
        found = document(cloudwatch_client, regions, days=days, namespace=namespace)
    except (ClientError, BotoCoreError) as exc:
        fail("cloudwatch", describe_error(exc)[0])
    if html is not None:
        _write_html_report(html, found, *_report_plan(policies, bucket, no_plan))
    if as_json:
        emit_json(found)
        return
    from rich.console import Console

    rows = found["savings"]
    console = Console()
    console.print(_footprint_table(found["footprint"], days) if found["footprint"] else "no S3 storage metrics in this window")
    console.print(_savings_table(rows, days, namespace) if rows else "no leanlake metrics in this window")
    for r in rows:
        if r["note"]:
            console.print(f"* {r['bucket']} / {r['policy']}: {r['note']}")


def _bucket_regions(policy_set: Any, default: str) -> dict[str, str]:
    """Each policy bucket's Region: the ``settings.region`` of its policies, else ``default``."""
    return {name: next((lp.settings.region for lp in policy_set.for_bucket(name) if lp.settings.region), default)
            for name in policy_set.buckets}


def _report_plan(policies: Optional[list[Path]], bucket: Optional[list[str]], skip: bool) -> tuple[Optional[dict[str, Any]], str]:
    """What the policies still plan to save in the report's buckets (``planned_savings``), or None and why there is
    none: ``--no-plan``, no policies (``--bucket`` needs none), none naming the buckets, or a listing that failed,
    which is a warning, never the report's failure."""
    from botocore.exceptions import BotoCoreError, ClientError

    from chalicelib.context import RunContext
    from chalicelib.pipeline import describe_error
    from chalicelib.policy import PolicyError, load_policies
    from chalicelib.report import planned_savings
    from chalicelib.s3 import client
    from chalicelib.sweep import bucket_decisions

    if skip:
        return None, "no plan: --no-plan was given"
    try:
        loaded = load_policies(_policy_paths(policies))
    except PolicyError as exc:
        return None, f"no plan: no policies to plan with ({exc.problems[0]})"
    targets = [b for b in (bucket or loaded.buckets) if b in loaded.buckets]
    if not targets:
        return None, f"no plan: no policy names {', '.join(bucket or [])}"
    ctx = RunContext(policies=loaded, s3=client(), now=datetime.now(timezone.utc))
    subject = ""
    try:
        def decisions() -> Iterator[Any]:
            nonlocal subject
            for name in targets:
                subject = f"s3://{name}"
                yield from bucket_decisions(ctx, name, loaded)

        return planned_savings(decisions()), ""
    except (ClientError, BotoCoreError) as exc:
        reason = describe_error(exc)[0]
        typer.echo(f"warning: {subject}: {reason}: the page has no plan", err=True)
        return None, f"no plan: planning {subject} failed: {reason}"


def _write_html_report(path: Path, found: dict[str, Any], planned: Optional[dict[str, Any]], no_plan: str) -> None:
    """Write ``report --html``'s page and say where, on stderr (stdout stays the report)."""
    from leanlake.html_report import render

    try:
        path.write_text(render(found, planned, no_plan=no_plan), encoding="utf-8")
    except OSError as exc:
        fail(str(path), exc.strerror or str(exc))
    typer.echo(f"wrote {path}: the report as one page, no network needed to view it", err=True)


def _footprint_table(rows: list[dict[str, Any]], days: int) -> Any:
    """``report``'s first table: bytes, objects and the month's $ and kg CO2e per bucket and storage class."""
    from rich.table import Table

    table = Table(title=f"S3 footprint, latest day of the last {days} (objects: the bucket's, over all classes)")
    for column in ("bucket", "storage class", "bytes", "objects", "$/month", "kg CO2e/month"):
        table.add_column(column, justify="left" if column in ("bucket", "storage class") else "right")
    for r in rows:
        table.add_row(r["bucket"], r["storage_class"], f"{r['bytes']:,}", f"{r['objects']:,}", _figure(r["monthly_usd"], 2),
                      _figure(r["monthly_kgco2e"], 4))
    return table


def _savings_table(rows: list[dict[str, Any]], days: int, namespace: str) -> Any:
    """``report``'s second table: leanlake's metrics summed per bucket and policy; ``*`` marks a saving priced from bytes."""
    from rich.table import Table

    from chalicelib.ledger import count_metrics, snake

    table = Table(title=f"leanlake savings, last {days} days (namespace {namespace})")
    for column in ("bucket", "policy", "objects", "bytes in", "bytes out", "saved", "errors", "$/month", "kg CO2e/month"):
        table.add_column(column, justify="left" if column in ("bucket", "policy") else "right")
    for r in rows:
        objects = sum(r[snake(metric)] for metric in count_metrics().values())
        table.add_row(r["bucket"], r["policy"], f"{objects:,}", f"{r['bytes_in']:,}", f"{r['bytes_out']:,}", f"{r['bytes_saved']:,}",
                      f"{r['conversion_errors']:,}", _figure(r["monthly_usd_saved"], 2) + ("*" if r["note"] else ""),
                      _figure(r["monthly_kgco2e_saved"], 4))
    return table



@app.command()
def regions(
    policies: Optional[list[Path]] = PoliciesOption,
    bucket: Optional[list[str]] = BucketOption,
    top: int = typer.Option(3, "--top", min=1, max=40, help="Show this many of the cleanest Regions."),
    carbon_method: str = typer.Option("ccf", "--carbon-method", metavar="ccf|electricity_maps_2025|gsf_2023",
                                      help="The grid factors that rank the Regions and price the CO2e: Cloud Carbon "
                                           "Footprint's (default), Electricity Maps 2025, or the Green Software Foundation's 2023."),
    days: int = typer.Option(3, "--days", min=1, max=455,
                             help="Read S3's daily storage metrics over this many days (a bucket with none is listed instead)."),
    as_json: bool = JsonOption,
) -> None:
    """Where to store it: each bucket's Region, its grid intensity (g CO2e/kWh) and S3 Standard price, beside the
    cleanest Regions the economics model prices, and what moving the bucket's current footprint would save a month
    ($ and kg CO2e) against the one-off move (inter-Region transfer, a GET and a PUT per object, the transfer's CO2e),
    with the payback in months. Regulation, latency and egress to where the data is used come first: this compares
    storage price and grid carbon only. Reads GetBucketLocation and CloudWatch AWS/S3 in each bucket's Region; with
    --bucket, no policies are read."""
    from chalicelib.economics import grid_tables
    from chalicelib.s3 import client
    from leanlake.regions import RegionsError, advise

    if carbon_method not in grid_tables():
        fail("--carbon-method", f"{carbon_method!r} is not one of {', '.join(grid_tables())}")
    buckets = bucket or list(_load(policies).buckets)
    if not buckets:
        fail("regions", "no bucket: name one with --bucket, or give policies that name buckets")
    try:
        document = advise(client(), buckets, top=top, carbon_method=carbon_method, days=days)
    except RegionsError as exc:
        fail(exc.subject, exc.reason)
    if as_json:
        emit_json(document)
        return
    _print_regions(document)


def _payback(value: Any) -> str:
    return value if isinstance(value, str) else f"{value:,.1f} months"


def _figure(value: float, decimals: int) -> str:
    """``value`` with ``decimals`` decimals, or two significant digits when that would show a non-zero as 0."""
    return f"{value:,.{decimals}f}" if value == 0 or abs(value) >= 10**-decimals else f"{value:.2g}"


def _print_regions(document: dict[str, Any]) -> None:
    """``regions``' tables, one a bucket, then its notes, the caveat, the carbon method and the sources."""
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    from chalicelib.economics import value
    from leanlake.regions import METHOD_NAMES

    console = Console()
    method = document["carbon_method"]
    for b in document["buckets"]:
        grid = "no grid factor" if b["grid_gco2e_per_kwh"] is None else f"{b['grid_gco2e_per_kwh']:,.1f} g CO2e/kWh"
        price = "no price" if b["storage_usd_per_gb_month"] is None else f"${b['storage_usd_per_gb_month']}/GB-month"
        source = "S3 storage metrics" if b["footprint_source"] == "cloudwatch" else "a listing"
        table = Table(title=f"s3://{b['bucket']} in {b['region']}: {grid}, Standard {price}; {b['bytes']:,} bytes in "
                            f"{b['objects']:,} objects (from {source}), ${_figure(b['monthly_usd'], 2)} and "
                            f"{_figure(b['monthly_kgco2e'], 4)} kg CO2e a month")
        for column in ("move to", "g CO2e/kWh", "$/GB-month", "$/month saved", "kg CO2e/month saved", "one-off $",
                       "one-off kg CO2e", "payback $", "payback CO2e"):
            table.add_column(column, justify="left" if column == "move to" else "right")
        for c in b["candidates"]:
            here = c["region"] == b["region"]
            table.add_row(c["region"] + (" (here)" if here else ""), f"{c['grid_gco2e_per_kwh']:,.1f}", f"{c['storage_usd_per_gb_month']}",
                          _figure(c["monthly_usd_saved"], 2), _figure(c["monthly_kgco2e_saved"], 4), _figure(c["one_off_usd"], 2),
                          _figure(c["one_off_kgco2e"], 4), "-" if here else _payback(c["payback_months_usd"]),
                          "-" if here else _payback(c["payback_months_kgco2e"]))
        console.print(table)
        for note in b["notes"]:
            console.print(f"* {escape(note)}")
    console.print(f"[bold]{escape(document['note'])}[/]")
    others = [m for m in document["carbon_methods"] if m != method]
    console.print(f"Carbon: {METHOD_NAMES.get(method, method)} grid factors, CCF's PUE of {value('carbon', 'pue', 'ccf')}; "
                  f"also available: --carbon-method {' or '.join(others)}.")
    console.print("Sources:")
    for name, cited in document["sources"].items():
        console.print(f"  {name}: {cited['figure']}: {escape(cited['source'])} (as of {cited['as_of']})")

@contextmanager
def _narration() -> Iterator[Callable[[str], None]]:
    """``say(line)`` for what a long command is doing: an info log line (``-v`` shows it on a terminal, JSON logs
    carry it), and on a terminal a transient spinner showing the latest, so the screen ends with only the result."""
    from chalicelib.log import logger
    from leanlake.console import output

    out = output()
    if not out.human or out.quiet or not out.err.is_terminal:
        yield lambda line: logger.info(line)
        return
    with out.err.status("starting", spinner="dots") as status:
        def say(line: str) -> None:
            room = max(out.err.width - 3, 10)  # the spinner and a space; one line, so it never scrolls
            status.update(line if len(line) <= room else line[:room - 1] + "…")
            logger.info(line)

        yield say


@app.command()
def demo(
    as_json: bool = JsonOption,
    rows: int = typer.Option(60_000, "--rows", min=10, help="Rows in each generated events table."),
    serve: bool = typer.Option(False, "--serve", help="Keep the embedded S3 running afterwards and print the environment "
                                                      "to try plan, apply, report and duplicates on it by hand; Ctrl-C stops it."),
    port: int = typer.Option(0, "--port", min=0, max=65535, help="With --serve: the loopback port (default: a free one)."),
    html: Optional[Path] = HtmlReportOption,
) -> None:
    """Run the whole loop on an embedded local S3 (moto, 127.0.0.1): no AWS account, no network.

    Creates a bucket with S3 → SQS notifications, applies the demo policies, uploads realistic
    ML-lake data (CSV, JSON Lines, gzip logs, one multipart upload), delivers the queued events to
    the Lambda handler code, and prints what happened, then the demo lake's footprint and savings as
    `leanlake report` reads them from the embedded CloudWatch (--html FILE: as the report's page)."""
    from leanlake.demo.run import run_demo
    from leanlake.local import MissingDemoExtra

    if html is not None and not html.parent.is_dir():
        fail(str(html), f"directory {html.parent} does not exist")

    def show(summary: dict[str, Any]) -> None:
        if html is not None:
            _write_html_report(html, summary["report"], summary["planned"], "")
        if serve:
            _serve_demo(summary)

    try:
        with _narration() as say:
            summary = run_demo(rows=rows, say=say, port=port, serve=show)
    except MissingDemoExtra as exc:
        fail("demo", str(exc))
    except OSError as exc:
        fail(f"--port {port}", f"cannot listen on 127.0.0.1:{port}: {exc.strerror or exc}")
    if not serve:
        _print_demo(summary, as_json)


def _print_demo(summary: dict[str, Any], as_json: bool) -> None:
    """The demo's result: its JSON document, or the outcomes, the savings ratio, the footprint and the savings."""
    if as_json:
        emit_json(summary)
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"What leanlake did in s3://{summary['bucket']} (embedded S3)")
    for column, justify in (("object", "left"), ("action", "left"), ("before", "right"), ("after", "right"), ("result", "left")):
        table.add_column(column, justify=justify, overflow="fold")  # type: ignore[arg-type]
    for o in summary["outcomes"]:
        result = f"→ {o['output_key']}" if o["status"] == "ok" else f"{o['status']}: {o['outcome_reason']}"
        after = f"{o['bytes_after']:,}" if o["status"] == "ok" else ""
        table.add_row(o["key"] or "", o["action"], f"{o['bytes_before']:,}" if o["bytes_before"] else "", after, result)
    console = Console()
    console.print(table)
    saved, before = summary["bytes_saved"], summary["bytes_before"] or 1
    per_tib = summary["per_tib_month"]
    console.print(f"converted {summary['objects_converted']}, recompressed {summary['objects_recompressed']}, "
                  f"skipped {summary['objects_skipped']}, errors {summary['errors']}; "
                  f"{summary['bytes_before']:,} → {summary['bytes_after']:,} bytes: [bold]saved {saved:,} ({saved / before:.0%})[/] "
                  f"in {summary['seconds']} s.")
    console.print(f"At this ratio, every TiB in S3 Standard (us-east-1) saves ${per_tib['usd']:.2f} and "
                  f"{per_tib['kgco2e']:.3f} kg CO2e a month (Cloud Carbon Footprint method).")
    report = summary["report"]
    console.print(_footprint_table(report["footprint"], report["days"]))
    console.print(_savings_table(report["savings"], report["days"], report["namespace"]))
    as_uploaded, now = report["trend"][0]["bytes"], report["trend"][-1]["bytes"]
    console.print(f"The demo lake: {as_uploaded:,} bytes as uploaded (yesterday's S3 storage metric), {now:,} after leanlake "
                  f"(today's); `leanlake demo --html report.html` draws it, `--serve` keeps the stack up to try more.")


def _serve_demo(summary: dict[str, Any]) -> None:
    """``demo --serve``: print the result and the environment that points the CLI at the embedded stack, then
    wait (the stack stays up) until Ctrl-C or SIGTERM."""
    import signal
    import threading

    from leanlake.demo.run import POLICY_FILE
    from leanlake.local import LOCAL_ENV

    _print_demo(summary, as_json=False)
    env = {**LOCAL_ENV, "AWS_ENDPOINT_URL": summary["endpoint"], "LEANLAKE_POLICIES": str(POLICY_FILE)}
    print("\nThe embedded S3 keeps running. In another shell:\n")
    for name, value in env.items():
        print(f"export {name}={value}")
    print("\nleanlake plan          # what the demo policies would still do")
    print("leanlake apply --yes   # do it")
    print("leanlake report        # the demo lake's footprint and savings")
    print("leanlake duplicates    # identical objects in the demo bucket")
    print("\nCtrl-C stops it.", flush=True)
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    stop.wait()


@app.command()
def iam(
    policies: Optional[list[Path]] = typer.Option(None, "--policies", "-p", help="Policy files or directories (default: policies)."),
    chalice_dir: Path = typer.Option(Path(".chalice"), "--chalice-dir", help="The Chalice project's config directory."),
    stage: Optional[list[str]] = typer.Option(None, "--stage", help="Repeatable; default: every stage in config.json."),
    write: bool = typer.Option(False, "--write", help="Write .chalice/policy-<stage>.json instead of printing."),
    check: bool = typer.Option(False, "--check", help="Write nothing; exit 1 when a committed file is stale."),
    batch_role: bool = typer.Option(False, "--batch-role",
                                    help="Print the trust and permissions policies of the role `leanlake batch` jobs run with."),
) -> None:
    """Print the functions' least-privilege IAM policy for a stage, derived from the policies; or write
    (--write) or check (--check) the .chalice/policy-<stage>.json files Chalice deploys; or (--batch-role)
    the documents of the S3 Batch Operations job role, as one JSON document {"trust", "permissions"}."""
    from leanlake.deploy.iam import batch_role_documents, generate, write_policies
    from leanlake.deploy.project import ChaliceConfig
    from chalicelib.policy import PolicyError, load_policies

    if write and check:
        fail("iam", "give --write or --check, not both", 2)
    if batch_role and (write or check):
        fail("--batch-role", "prints the role's documents: give it without --write or --check", 2)
    paths = policies or [Path("policies")]
    try:
        if batch_role:
            config = ChaliceConfig.load(chalice_dir)
            stages = stage or config.stages
            if len(stages) != 1:
                fail("--stage", f"name the one stage whose batch role to print (one of: {', '.join(stages)})")
            config.stage(stages[0])
            emit_json(batch_role_documents(load_policies(paths), config, stages[0]))
            return
        if write or check:
            changed = write_policies(paths, chalice_dir, stage, check=check)
        else:
            stages = stage or ChaliceConfig.load(chalice_dir).stages
            if len(stages) != 1:
                fail("--stage", f"name the one stage to print (one of: {', '.join(stages)}), or --write them all")
            [text] = generate(paths, chalice_dir, stages).values()
            sys.stdout.write(text)
            return
    except PolicyError as exc:
        for problem in exc.problems:
            typer.echo(str(problem), err=True)
        raise typer.Exit(1) from None
    except FileNotFoundError as exc:
        fail(str(chalice_dir), str(exc).removeprefix(f"{chalice_dir / 'config.json'}: "))
    except KeyError as exc:  # a stage config.json does not have
        fail("--stage", str(exc).strip("'\""))
    except ValueError as exc:  # a document that would break least privilege (e.g. over IAM's size limit)
        fail("iam", str(exc))
    for path in changed:
        typer.echo(f"{'stale' if check else 'wrote'} {path}")
    if check and changed:
        fail("iam", "policy files are stale: regenerate with `leanlake iam --write` (or `make iam`) and commit")
    if not changed:
        typer.echo("IAM policies up to date")


StageOption = typer.Option("dev", "--stage", help="The Chalice stage (.chalice/config.json).")
ProjectOption = typer.Option(Path("."), "--project", help="Project root.")
Python312Option = typer.Option(None, "--python", help="A Python 3.12 interpreter (default: found on PATH, pyenv or uv).")
PyarrowVersionOption = typer.Option(None, "--pyarrow-version", help="The pyarrow to vendor (default: the version installed here).")
CacheDirOption = typer.Option(None, "--cache-dir", help="Build venvs and wheels (default: $LEANLAKE_BUILD_CACHE or ~/.cache/leanlake).")


def _build_step(subject: str, run: Any) -> Any:
    """Run a deployment step with its progress on stderr; its error is one ``leanlake: SUBJECT: reason`` line."""
    from leanlake.deploy.package import PackageError

    try:
        return run(lambda line: typer.echo(line, err=True))
    except PackageError as exc:  # DeployError is one
        fail(subject, str(exc))
    except KeyboardInterrupt:
        fail(subject, "interrupted", 130)


@app.command()
def package(
    stage: str = StageOption,
    formats: Optional[list[str]] = typer.Option(None, "--format", help="terraform or cloudformation; repeatable (default: both)."),
    out: Path = typer.Option(Path("dist"), "--out", help="Output directory."),
    project: Path = ProjectOption,
    python: Optional[str] = Python312Option,
    pyarrow_version: Optional[str] = PyarrowVersionOption,
    cache_dir: Optional[str] = CacheDirOption,
    keep_build: bool = typer.Option(False, "--keep-build", help="Keep the temporary build copy and print where."),
) -> None:
    """Build the Lambda packages into OUT/<format>/ and check them against Lambda's limits.

    Python 3.12, a trimmed pyarrow and the policies inside; prints the report's path. Also `make package`."""
    from leanlake.deploy import commands
    from leanlake.deploy.package import FORMATS

    unknown = [f for f in formats or () if f not in FORMATS]
    if unknown:
        fail("--format", f"{unknown[0]!r} is not one of {', '.join(FORMATS)}", 2)
    report_path = _build_step(f"package {stage}", lambda log: commands.package(
        project=project, out=out, stage=stage, formats=formats or (), python=python, pyarrow_version=pyarrow_version,
        cache_dir=cache_dir, keep_build=keep_build, log=log))
    typer.echo(str(report_path))


@app.command()
def deploy(
    stage: str = StageOption,
    dry_run: bool = typer.Option(False, "--dry-run", help="Build and check the package, print the plan; no AWS calls."),
    project: Path = ProjectOption,
    python: Optional[str] = Python312Option,
    pyarrow_version: Optional[str] = PyarrowVersionOption,
    cache_dir: Optional[str] = CacheDirOption,
) -> None:
    """Create the stage's SQS work queue and its -dlq, then chalice deploy it from the build copy.

    The build copy is the package's: Python 3.12, a trimmed pyarrow, the policies. Also `make deploy`."""
    from leanlake.deploy import commands

    lines = _build_step(f"deploy {stage}", lambda log: commands.deploy_stage(
        project=project, stage=stage, dry_run=dry_run, python=python, pyarrow_version=pyarrow_version,
        cache_dir=cache_dir, log=log))
    for line in lines:
        typer.echo(line)


@app.command()
def destroy(
    stage: str = StageOption,
    yes: bool = typer.Option(False, "--yes", help="Do it without asking."),
    project: Path = ProjectOption,
    python: Optional[str] = Python312Option,
    cache_dir: Optional[str] = CacheDirOption,
) -> None:
    """chalice delete the stage (from .chalice/deployed/STAGE.json), then delete its SQS queues.

    Asks for the stage name unless --yes; refuses when it cannot ask. Also `make destroy`."""
    from leanlake.deploy import commands

    _build_step(f"destroy {stage}", lambda log: commands.destroy_stage(
        project=project, stage=stage, yes=yes, python=python, cache_dir=cache_dir, log=log))


#: Set by :func:`main`: the ledger's EMF metrics go to stderr (``global_options`` routes them once the command is known).
_route_metrics_to_stderr = False


def main() -> None:
    """Console-script entry point: results on stdout, logs and EMF metrics on stderr."""
    global _route_metrics_to_stderr

    _route_metrics_to_stderr = True
    # pyarrow imports NumPy, whose OpenBLAS starts a thread a core that spins before it sleeps: 0.15 s of CPU a
    # command (measured), for a BLAS that leanlake never calls. Set before the first import of pyarrow; a
    # user's own setting stands.
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    try:
        app()
    except SystemExit as done:
        exit_past_arrow_threads(done.code)
    exit_past_arrow_threads(0)


def exit_past_arrow_threads(code: int | str | None) -> None:
    """Exit with ``code``, skipping interpreter finalization once pyarrow has been loaded.

    A conversion given up early (a hostile row, a type widening) can leave one of Arrow's read-ahead
    threads about to call back into Python. If that happens while CPython finalizes, the thread is
    ended inside Arrow's C++ pool and the process aborts ("terminate called without an active
    exception", exit 250) after printing its one-line error: seen once in CI on a loaded machine.
    The stream is already stopped (``DecodedSource.stop_readers``); this removes the window: output
    is flushed and atexit handlers run, then the process ends without finalizing.
    """
    if code is None:
        code = 0
    elif not isinstance(code, int):
        sys.stderr.write(f"{code}\n")
        code = 1
    if "pyarrow" not in sys.modules:
        raise SystemExit(code)
    import atexit
    import logging

    atexit._run_exitfuncs()
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(code)


if __name__ == "__main__":
    main()
