"""Writing an output from a source object, safely: the shared steps of ``convert`` and ``recompress``.

1. HEAD the source (the truth) and refuse what must not be touched (archived, SSE-C, leanlake's own).
2. Look at the destination. Nothing there: write it new (``If-None-Match: *``). Not leanlake's, or
   leanlake's output of **another source key** (two sources whose keys map to one output): never
   overwritten, the source kept. Made from this source's current ETag: not written again, and
   trusted (so the source may be handled) only once verified (see ``untrusted``). Made from an
   older ETag of this source: replaced, conditional on that output's ETag (``If-Match``).
3. Produce the output from a fresh GET (pinned to the ETag/version) straight into a multipart
   upload (``chalicelib.multipart``: nothing on local disk), with metadata naming the source and
   the loop-guard marker, tags/SSE carried over; a Parquet output's footer names the source too.
   A failed conversion aborts the upload.
4. Worth it: a policy-driven action keeps the output only when it is smaller than the source;
   otherwise the upload is aborted (a dry run produces into a counter and writes nothing).
5. Complete the upload under the condition of step 2 (a small output is one conditional PUT, its
   rows in ``leanlake-rows``); someone writing the destination meanwhile makes it a skip, the
   upload aborted. Then verify what S3 holds, as in step 2, and its size against what was produced.
6. Only then handle the source as the policy says (keep, delete, storage_class:CLASS),
   never when it changed meanwhile or is under Object Lock retention or legal hold.

An output is trusted when it carries the ``leanlake: output`` marker, names this source key and
ETag, and reads back: a Parquet footer (fetched with ranged GETs) that records the same source
key and ETag (``leanlake.source_etag``…) and its rows, or holds the rows its ``leanlake-rows``
metadata records (outputs written in one PUT, and by the previous version); or a zstd frame whose
header and beginning decode.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any, Callable

from chalicelib import refs, s3 as s3util
from chalicelib.decision import Decision, Outcome
from chalicelib.deletion import Target
from chalicelib.formats import ConversionError
from chalicelib.formats.errors import one_line
from chalicelib.formats.outputs import FOOTER_ROWS, FOOTER_SOURCE_ETAG, FOOTER_SOURCE_KEY, Output
from chalicelib.formats.recompress import CHECK_BYTES, check_zstd_beginning
from chalicelib.economics.figures import needs_restore
from chalicelib.multipart import CountingOutput, S3Output

if TYPE_CHECKING:
    from chalicelib.context import RunContext

#: Produces the output into the given ``Output`` from a source opener; returns (bytes_out, detail).
Producer = Callable[[Callable[[], Any], Output], tuple[int, dict[str, Any]]]


def refusal(source: s3util.Head) -> str | None:
    """Why leanlake must not read or rewrite ``source``, or None."""
    if source.marker:
        return f"written by leanlake ({source.marker}); ignored"
    if needs_restore(source.storage_class):
        return f"in {source.storage_class}: cannot be read without a restore"
    if source.customer_key:
        return "encrypted with a customer-provided key (SSE-C): cannot be read"
    return None


def _parquet_unreadable(s3: Any, output: s3util.Head, expected_rows: int | None = None) -> str | None:
    """Why ``output`` is not a readable Parquet file that records its rows and source, or None (a few ranged GETs).

    Its rows are recorded by ``leanlake-rows`` metadata (checked against the footer's count), or by
    its footer's key-value metadata, which must then name the same source key and ETag as its S3
    metadata. ``expected_rows``: the rows the conversion wrote, for an output just written.
    """
    import pyarrow.parquet as pq

    rows = output.metadata.get(s3util.ROWS)
    if rows is not None and not rows.isdigit():
        return f"it records no row count ({s3util.ROWS} is {rows!r})"
    if output.size < 12 or s3util.read_range(s3, output, 0, 4) != b"PAR1":
        return "it is not Parquet (no PAR1 magic at its start)"
    try:
        footer = pq.read_metadata(s3util.RangedReader(s3, output))
    except s3util.ConditionFailed:
        raise
    except Exception as exc:
        return f"its Parquet footer is unreadable ({one_line(exc)})"
    labels = {k.decode("utf-8", "replace"): v.decode("utf-8", "replace") for k, v in (footer.metadata or {}).items()}
    if rows is None and FOOTER_SOURCE_ETAG not in labels:
        return f"it records no row count ({s3util.ROWS}) and its Parquet footer names no source ({FOOTER_SOURCE_ETAG})"
    if rows is not None and footer.num_rows != int(rows):
        return f"its Parquet footer holds {footer.num_rows} rows, its metadata records {rows}"
    if FOOTER_SOURCE_ETAG in labels:
        for label, key in ((FOOTER_SOURCE_ETAG, s3util.SOURCE_ETAG), (FOOTER_SOURCE_KEY, s3util.SOURCE_KEY)):
            if labels.get(label) != output.metadata.get(key):
                return f"its Parquet footer names {label} {labels.get(label)!r}, its metadata {output.metadata.get(key)!r}"
        if labels.get(FOOTER_ROWS) != str(footer.num_rows):
            return f"its Parquet footer holds {footer.num_rows} rows, its {FOOTER_ROWS} records {labels.get(FOOTER_ROWS)!r}"
    if expected_rows is not None and footer.num_rows != expected_rows:
        return f"its Parquet footer holds {footer.num_rows} rows, the conversion wrote {expected_rows}"
    return None


def _zstd_unreadable(s3: Any, output: s3util.Head, expected_rows: int | None = None) -> str | None:
    """Why ``output`` does not begin a readable zstd frame (one ranged GET of at most 128 KiB), or None.
    A zstd output has no rows: ``expected_rows`` is not used."""

    length = min(output.size, CHECK_BYTES)
    try:
        check_zstd_beginning(s3util.read_range(s3, output, 0, length), whole=length == output.size)
    except ConversionError as exc:
        return f"it is not readable zstd ({exc})"
    return None


#: How an output of each content type is checked readable without downloading it.
READ_CHECKS: dict[str, Callable[[Any, s3util.Head, int | None], str | None]] = {
    "application/vnd.apache.parquet": _parquet_unreadable,
    "application/zstd": _zstd_unreadable,
}


def untrusted(s3: Any, output: s3util.Head, source: s3util.Head, content_type: str,
              expected_rows: int | None = None) -> str | None:
    """Why ``output`` is not a verified output of ``source`` as it is now, or None when it is.

    Trusted means: leanlake's output marker, this source's key and ETag recorded, and readable as
    ``content_type`` (``READ_CHECKS``; ``expected_rows`` for an output just written). Raises
    ConditionFailed when the output changes while read.
    """
    if output.marker != s3util.MARKER_OUTPUT:
        return "it has no leanlake output marker"
    if output.metadata.get(s3util.SOURCE_KEY) != s3util.recorded_key(source.key):
        return f"it was made from {s3util.made_from(output)!r}, not {source.key!r}"
    if output.metadata.get(s3util.SOURCE_ETAG) != source.etag:
        return f"it was made from ETag {output.metadata.get(s3util.SOURCE_ETAG)!r}, not {source.etag!r}"
    check = READ_CHECKS.get(content_type)
    if check is None:
        return f"leanlake cannot verify {content_type} outputs"
    return check(s3, output, expected_rows)


def write_output(decision: Decision, ctx: RunContext, *, destination: str, source_disposition: str,
                 produce: Producer, content_type: str, require_smaller: bool = True) -> Outcome:
    """Run steps 1–6 for one decision; every failure leaves the source as it was and says why."""
    started = time.monotonic()
    s3 = ctx.s3
    bucket, key = decision.bucket, decision.key or ""

    def outcome(status: str, reason: str, **kw: Any) -> Outcome:
        return Outcome(decision, status, reason, seconds=time.monotonic() - started, **kw)  # type: ignore[arg-type]

    source = s3util.head(s3, bucket, key, with_tags=True)
    if source is None:
        return outcome("skip", "object no longer exists")
    why_not = refusal(source)
    if why_not:
        return outcome("skip", why_not, bytes_before=source.size)
    if destination == key:
        return outcome("error", "destination is the source key; refusing to overwrite", bytes_before=source.size)
    if refs.is_reserved(destination):  # plan skips these; a second line of defence for leanlake's own objects
        return outcome("error", f"destination {destination} is under {refs.RESERVED_PREFIX}, reserved for leanlake; not written",
                       bytes_before=source.size)
    target = f"s3://{bucket}/{destination}"

    try:
        existing = s3util.head(s3, bucket, destination)
        replacing: str | None = None  # None: the destination must not exist when we write it
        if existing is not None:
            if existing.marker != s3util.MARKER_OUTPUT:
                return outcome("error", f"destination {target} exists and was not written by leanlake; source kept",
                               bytes_before=source.size)
            if existing.metadata.get(s3util.SOURCE_KEY) != s3util.recorded_key(key):
                return outcome("skip", f"collision: destination {target} was made from s3://{bucket}/{s3util.made_from(existing)}, "
                               f"not from s3://{bucket}/{key} (two sources map to one output); not overwritten, source kept",
                               bytes_before=source.size)
            if existing.metadata.get(s3util.SOURCE_ETAG) == source.etag:
                distrust = untrusted(s3, existing, source, content_type)
                if distrust:
                    return outcome("error", f"output {target} claims this ETag but is not trusted: {distrust}; "
                                   "not overwritten, source kept", bytes_before=source.size)
                handled = handle_source(ctx, source, source_disposition, decision)
                return outcome("skip", f"output {target} already made from this ETag; source: {handled}",
                               bytes_before=source.size, bytes_after=existing.size, output_key=destination)
            replacing = existing.etag  # our output of an older version of this source

        def open_source() -> Any:
            kwargs: dict[str, Any] = {"Bucket": bucket, "Key": key, "IfMatch": source.etag}
            if source.version_id:
                kwargs["VersionId"] = source.version_id
            return s3.get_object(**kwargs)["Body"]

        metadata = s3util.source_metadata(source, decision.policy)
        labels = {FOOTER_SOURCE_KEY: metadata[s3util.SOURCE_KEY], FOOTER_SOURCE_ETAG: source.etag}
        output: CountingOutput | S3Output
        if ctx.dry_run:
            output = CountingOutput(labels)
        else:
            output = S3Output(s3, bucket, destination, extra=s3util.output_arguments(source, metadata, content_type),
                              replacing=replacing, labels=labels)
        try:
            try:
                bytes_out, detail = produce(open_source, output)
            except ConversionError as exc:
                return outcome("error", f"s3://{bucket}/{key}: {exc}", bytes_before=source.size)
            if require_smaller and bytes_out >= source.size:
                return outcome("skip", f"output would not be smaller ({source.size} → {bytes_out} bytes); left as it is",
                               bytes_before=source.size, bytes_after=bytes_out, detail=detail)
            if isinstance(output, CountingOutput):
                return outcome("skip", f"dry run: would write {target} ({bytes_out} bytes)",
                               bytes_before=source.size, bytes_after=bytes_out, detail=detail)
            rows = detail.get("rows")
            written = output.commit({s3util.ROWS: str(rows)} if rows is not None else None)
        finally:
            output.discard()  # a no-op once committed: any other way out aborts the upload
        if written.size != bytes_out:
            return outcome("error", f"uploaded {target} has {written.size} bytes, expected {bytes_out}; source kept",
                           bytes_before=source.size)
        distrust = untrusted(s3, written, source, content_type, expected_rows=rows)
        if distrust:
            return outcome("error", f"uploaded {target} failed verification: {distrust}; source kept",
                           bytes_before=source.size)
    except s3util.ConditionFailed as exc:
        return outcome("skip", f"destination changed meanwhile: {exc}; not overwritten, source kept",
                       bytes_before=source.size)
    handled = handle_source(ctx, source, source_disposition, decision)
    if source_disposition != "keep" and handled.startswith("kept"):
        detail = {**detail, "source_kept": True}  # locked, changed, already there: priced as kept (Outcome.monthly_saved)
    return outcome("ok", f"wrote {target}; source: {handled}", bytes_before=source.size,
                   bytes_after=bytes_out, output_key=destination, detail=detail)


def handle_source(ctx: RunContext, source: s3util.Head, disposition: str, decision: Decision) -> str:
    """Keep, delete or re-class the source once its output is verified; say what happened.

    A deletion goes through the run's ``Deletions`` (``chalicelib.deletion``): conditional on the
    ETag that was converted, Object Lock read first (failing closed), counted against the cap and
    audited. Raises DeletionRefused when it can't be proven safe (the source stays; an error)."""
    if disposition == "keep" or ctx.dry_run:
        return "kept"
    deletions = ctx.deletions_in(source.bucket)
    current = s3util.head(ctx.s3, source.bucket, source.key)
    if current is None:
        return "already gone"
    if current.etag != source.etag:
        return "kept (it changed while being converted)"
    if disposition == "delete":
        return deletions.delete_now(decision, Target(source.key, etag=source.etag, size=source.size))
    locked = deletions.lock_reason(Target(source.key, version_id=source.version_id))
    if locked:
        return f"kept ({locked})"
    storage_class = disposition.partition(":")[2]
    if current.storage_class == storage_class:
        return f"kept (already {storage_class})"
    try:
        s3util.copy_in_place(ctx.s3, current, storage_class)
    except s3util.ConditionFailed:
        return "kept (it changed since it was converted)"
    return f"moved to {storage_class}"
