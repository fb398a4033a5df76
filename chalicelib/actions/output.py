"""Writing an output from a source object, safely: the shared steps of ``convert`` and ``recompress``.

1. HEAD the source (the truth) and refuse what must not be touched (archived, SSE-C, leanlake's own).
2. Idempotency: an output already made from the same source ETag is not written again.
3. Produce the output in a temp file from a fresh GET (pinned to the ETag/version), verify it.
4. Worth it: a policy-driven action writes only when the output is smaller than the source.
5. Upload with metadata naming the source and the loop-guard marker, tags/SSE carried over; verify.
6. Only then handle the source as the policy says (keep, delete, storage_class:CLASS),
   never when it changed meanwhile or is under Object Lock retention or legal hold.
"""

from __future__ import annotations

import os
import tempfile
import time
from typing import Any, Callable

from chalicelib import refs, s3 as s3util
from chalicelib.context import RunContext
from chalicelib.decision import Decision, Outcome
from chalicelib.policy.units import ARCHIVE_CLASSES

#: Produces the output at the given path from a source opener; returns (bytes_out, detail).
Producer = Callable[[Callable[[], Any], str], tuple[int, dict[str, Any]]]


def refusal(source: s3util.Head) -> str | None:
    """Why leanlake must not read or rewrite ``source``, or None."""
    if source.marker:
        return f"written by leanlake ({source.marker}); ignored"
    if source.storage_class in ARCHIVE_CLASSES:
        return f"in {source.storage_class}: cannot be read without a restore"
    if source.customer_key:
        return "encrypted with a customer-provided key (SSE-C): cannot be read"
    return None


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
        return outcome("error", f"destination {destination} is under {refs.RESERVED_PREFIX}, reserved for leanlake; not written", bytes_before=source.size)

    existing = s3util.head(s3, bucket, destination)
    if existing is not None:
        if existing.metadata.get(s3util.SOURCE_ETAG) == source.etag:
            handled = handle_source(ctx, source, source_disposition)
            return outcome("skip", f"output s3://{bucket}/{destination} already made from this ETag; source: {handled}",
                           bytes_before=source.size, bytes_after=existing.size, output_key=destination)
        if existing.marker != s3util.MARKER_OUTPUT:
            return outcome("error", f"destination s3://{bucket}/{destination} exists and was not written by leanlake",
                           bytes_before=source.size)

    def open_source() -> Any:
        kwargs: dict[str, Any] = {"Bucket": bucket, "Key": key, "IfMatch": source.etag}
        if source.version_id:
            kwargs["VersionId"] = source.version_id
        return s3.get_object(**kwargs)["Body"]

    fd, tmp = tempfile.mkstemp(prefix="leanlake-", suffix=".out")
    os.close(fd)
    try:
        from chalicelib.formats import ConversionError

        try:
            bytes_out, detail = produce(open_source, tmp)
        except ConversionError as exc:
            return outcome("error", f"s3://{bucket}/{key}: {exc}", bytes_before=source.size)
        if require_smaller and bytes_out >= source.size:
            return outcome("skip", f"output would not be smaller ({source.size} → {bytes_out} bytes); left as it is",
                           bytes_before=source.size, bytes_after=bytes_out, detail=detail)
        if ctx.dry_run:
            return outcome("skip", f"dry run: would write s3://{bucket}/{destination} ({bytes_out} bytes)",
                           bytes_before=source.size, bytes_after=bytes_out, detail=detail)
        written = s3util.upload(s3, tmp, bucket, destination, metadata=s3util.source_metadata(source, decision.policy),
                                content_type=content_type, source=source)
        if written.size != bytes_out:
            return outcome("error", f"uploaded s3://{bucket}/{destination} has {written.size} bytes, expected {bytes_out}; source kept",
                           bytes_before=source.size)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    handled = handle_source(ctx, source, source_disposition)
    return outcome("ok", f"wrote s3://{bucket}/{destination}; source: {handled}", bytes_before=source.size,
                   bytes_after=bytes_out, output_key=destination, detail=detail)


def handle_source(ctx: RunContext, source: s3util.Head, disposition: str) -> str:
    """Keep, delete or re-class the source once its output is verified; say what happened."""
    if disposition == "keep" or ctx.dry_run:
        return "kept"
    current = s3util.head(ctx.s3, source.bucket, source.key)
    if current is None:
        return "already gone"
    if current.etag != source.etag:
        return "kept (it changed while being converted)"
    locked = current.lock_reason()
    if locked:
        return f"kept ({locked})"
    if disposition == "delete":
        ctx.s3.delete_object(Bucket=source.bucket, Key=source.key)
        return "deleted"
    storage_class = disposition.partition(":")[2]
    if current.storage_class == storage_class:
        return f"kept (already {storage_class})"
    s3util.copy_in_place(ctx.s3, current, storage_class)
    return f"moved to {storage_class}"
