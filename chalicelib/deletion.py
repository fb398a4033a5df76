"""Deleting safely: every deletion leanlake makes goes through here, whatever action asked for it.

A deletion that cannot be proven safe does not happen:

- **Conditional on what was decided.** A current object is deleted with ``If-Match: <ETag>`` (the
  ETag the decision judged); a specific version by its VersionId (immutable). An object that
  changed meanwhile answers 412 and becomes a ``skip`` ("changed since it was decided"), never a
  loss and never the end of the run.
- **Object Lock fails closed.** The bucket's lock configuration is read once per run; when the
  bucket has Object Lock, every object or version is HEADed for its ``x-amz-object-lock-*``
  headers (retention, legal hold) first, and a locked one is skipped: no delete, no delete marker.
  When the configuration or an object's lock state cannot be read (403, 5xx, network), the bucket
  deletes nothing more in this run and each refused deletion is an ``error``.
- **The cap counts every deletion**: each version and each ``source: delete``, per run and bucket
  (``settings.max_deletions``). A key whose versions do not all fit under what is left of the cap
  is not started.
- **Audited before and after.** Each batch is written to the run's audit object (JSON Lines under
  ``<audit_prefix>YYYY/MM/DD/``) with status ``deleting`` before any request is sent, and
  rewritten with each result after; an audit object holds at most ``AUDIT_PART_LINES`` lines, then
  the run starts the next part.
- **Concurrent.** DELETE requests are free; a batch is sent on ``DELETE_WORKERS`` threads. With
  ``versions: all``, a key's current version goes only after all its older versions and delete
  markers are gone, so a failure midway never lets an older version resurface as current.

Example:
    >>> t = Target("tmp/a.tmp", etag="abc", size=3)
    >>> t.request()
    {'Key': 'tmp/a.tmp', 'IfMatch': '"abc"'}
    >>> Target("tmp/a.tmp", version_id="v1", is_latest=False).request()
    {'Key': 'tmp/a.tmp', 'VersionId': 'v1'}
"""

from __future__ import annotations

import json
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from chalicelib import s3 as s3util
from chalicelib.decision import Decision, Outcome
from chalicelib.errors import describe_error
from chalicelib.log import logger

if TYPE_CHECKING:
    from chalicelib.context import RunContext

#: Deletions sent per batch (and audited together).
DELETE_BATCH = 1000
#: Concurrent DELETE requests of one batch.
DELETE_WORKERS = 16
#: Lines per audit object; a run with more deletions writes further parts.
AUDIT_PART_LINES = 1000
#: Error codes that mean "the object is not what was decided on" (a skip, not an error).
_CHANGED = ("PreconditionFailed", "412")
_GONE = ("NoSuchKey", "NoSuchVersion", "404")


class DeletionRefused(RuntimeError):
    """A deletion that cannot be proven safe (lock state unreadable, cap reached): nothing was deleted."""


@dataclass(frozen=True, slots=True)
class Target:
    """One DELETE: the current object, conditional on ``etag``, or one version named by ``version_id``."""

    key: str
    etag: str | None = None
    version_id: str | None = None
    is_marker: bool = False
    is_latest: bool = True
    size: int = 0

    def request(self) -> dict[str, Any]:
        """The DeleteObject arguments (besides the bucket)."""
        if self.version_id:
            return {"Key": self.key, "VersionId": self.version_id}
        if not self.etag:
            raise DeletionRefused(f"{self.key}: no ETag and no VersionId to make the deletion conditional on")
        return {"Key": self.key, "IfMatch": f'"{self.etag}"'}


def _error_code(exc: Exception) -> str:
    response = getattr(exc, "response", None) or {}
    code = str(response.get("Error", {}).get("Code") or response.get("ResponseMetadata", {}).get("HTTPStatusCode") or "")
    return code or type(exc).__name__


def _reason(exc: Exception) -> str:
    return describe_error(exc)[0]


@dataclass
class Deletions:
    """The deletions of one run in one bucket: lock checks, the cap, the audit trail, conditional DELETEs."""

    ctx: "RunContext"
    bucket: str
    audit_prefix: str = "_leanlake/audit/"
    max_deletions: int = 10_000
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex[:12])
    deleted: int = 0
    #: Deletions promised to work handed on (a ``source: delete`` conversion queued for another
    #: invocation): counted against the cap as if done (``reserve``).
    reserved: int = 0
    capped: bool = False
    #: Why this bucket deletes nothing more in this run (lock state unreadable), or None.
    refused: str | None = None
    audit_keys: list[str] = field(default_factory=list)
    _queued: list[tuple[Decision, Target]] = field(default_factory=list)
    _audit: list[dict[str, Any]] = field(default_factory=list)
    _locks: bool | None = None

    # --- deciding what may be deleted ---------------------------------------------------------------

    def lock_enabled(self) -> bool:
        """Whether the bucket has Object Lock (read once); unreadable → ``refused`` is set and True returned."""
        if self._locks is None:
            from botocore.exceptions import BotoCoreError, ClientError

            try:
                config = self.ctx.s3.get_object_lock_configuration(Bucket=self.bucket)
                self._locks = config.get("ObjectLockConfiguration", {}).get("ObjectLockEnabled") == "Enabled"
            except ClientError as exc:
                if _error_code(exc) == "ObjectLockConfigurationNotFoundError":
                    self._locks = False
                else:
                    self._refuse(f"Object Lock configuration unreadable ({_reason(exc)})")
                    self._locks = True
            except BotoCoreError as exc:
                self._refuse(f"Object Lock configuration unreadable ({_reason(exc)})")
                self._locks = True
        return self._locks

    def _refuse(self, why: str) -> None:
        if self.refused is None:
            self.refused = f"{why}: nothing in s3://{self.bucket} is deleted in this run"
            logger.error(self.refused)

    def lock_reason(self, target: Target) -> str | None:
        """Why ``target`` must not be deleted under Object Lock, or None; unreadable lock state refuses the bucket."""
        if target.is_marker or not self.lock_enabled() or self.refused:
            return self.refused
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            head = s3util.head(self.ctx.s3, self.bucket, target.key, version_id=target.version_id)
        except (ClientError, BotoCoreError) as exc:
            self._refuse(f"lock state of s3://{self.bucket}/{target.key} unreadable ({_reason(exc)})")
            return self.refused
        return head.lock_reason() if head is not None else None

    def targets(self, decision: Decision, versions: str = "marker") -> list[Target] | str:
        """What deleting ``decision``'s object means, or why it is not deleted (a skip reason).

        The decision judged the object it saw (its ETag, or its LastModified where the listing gave
        no ETag); an object that is no longer that one is not deleted."""
        ref = decision.ref
        key = decision.key or ""
        etag = ref.etag if ref is not None else None
        if not etag:  # an Inventory without the ETag field: the object must still have the LastModified judged
            head = s3util.head(self.ctx.s3, self.bucket, key)
            if head is None:
                return "no longer exists"
            if ref is None or ref.last_modified is None or head.last_modified != ref.last_modified:
                return "changed since it was decided (not the object whose age was judged)"
            etag = head.etag
        if versions != "all":
            return [Target(key, etag=etag, size=ref.size or 0 if ref else 0)]
        found: list[Target] = []
        for page in self.ctx.s3.get_paginator("list_object_versions").paginate(Bucket=self.bucket, Prefix=key):
            for kind, is_marker in (("Versions", False), ("DeleteMarkers", True)):
                found.extend(Target(key, etag=v.get("ETag", "").strip('"') or None, version_id=v["VersionId"], is_marker=is_marker,
                                    is_latest=bool(v.get("IsLatest")), size=int(v.get("Size") or 0))
                             for v in page.get(kind, ()) if v["Key"] == key)
        current = next((t for t in found if t.is_latest), None)
        if current is None or current.is_marker:
            return "no longer exists (no current version)"
        if current.etag != etag:
            return "changed since it was decided (a newer version is current)"
        if all(t.version_id in (None, "null") for t in found):  # unversioned bucket: the one object, conditionally
            return [Target(key, etag=current.etag, size=current.size)]
        return found

    def admit(self, count: int) -> str | None:
        """None when ``count`` more deletions fit under the cap, else the skip reason."""
        if self.deleted + self.reserved + len(self._queued) + count <= self.max_deletions:
            return None
        if not self.capped:
            logger.warning(f"s3://{self.bucket}: deletion cap of {self.max_deletions} reached; run again to continue")
        self.capped = True
        if count > self.max_deletions:
            return f"{count} versions to delete, more than the deletion cap of {self.max_deletions} per run"
        return f"deletion cap of {self.max_deletions} per run reached"

    def pending(self) -> int:
        """Deletions queued and not yet sent (``flush`` sends them)."""
        return len(self._queued)

    def reserve(self, count: int) -> str | None:
        """Like ``admit``, and count ``count`` against the cap now, for deletions another invocation will make."""
        refused = self.admit(count)
        if refused is None:
            self.reserved += count
        return refused

    # --- the two ways in ----------------------------------------------------------------------------

    def add(self, decision: Decision, versions: str = "marker") -> list[Outcome]:
        """Queue an expire decision's deletions (sent by ``flush`` or when a batch is full); return the
        outcomes known now (skips, refusals, dry-run) and those of any batch sent."""
        size = decision.ref.size or 0 if decision.ref else 0
        if self.refused:
            return [Outcome(decision, "error", self.refused, bytes_before=size)]
        try:
            targets = self.targets(decision, versions)
        except Exception as exc:  # listing versions failed: this key is not deleted, the run goes on
            return [Outcome(decision, "error", _reason(exc), bytes_before=size)]
        if isinstance(targets, str):
            return [Outcome(decision, "skip", targets, bytes_before=size)]
        too_many = self.admit(len(targets))
        if too_many:
            return [Outcome(decision, "skip", too_many, bytes_before=size)]
        outcomes: list[Outcome] = []
        for target in targets:
            locked = self.lock_reason(target)
            if locked and self.refused:
                outcomes.append(Outcome(decision, "error", self.refused, bytes_before=target.size))
            elif locked:
                outcomes.append(Outcome(decision, "skip", f"{locked}: not deleted", bytes_before=target.size,
                                        detail={"version_id": target.version_id}))
            elif self.ctx.dry_run:
                outcomes.append(Outcome(decision, "skip", "dry run: would delete" + _version(target), bytes_before=target.size))
            else:
                self._queued.append((decision, target))
        if len(self._queued) >= DELETE_BATCH:
            outcomes.extend(self.flush())
        return outcomes

    def delete_now(self, decision: Decision, target: Target) -> str:
        """Delete one object at once (a converted source): what happened, as the writer's outcome says it.

        Raises DeletionRefused when the deletion cannot be proven safe (lock state unreadable, cap
        reached): the source stays, and the run reports an error."""
        if self.refused:
            raise DeletionRefused(f"source kept: {self.refused}")
        too_many = self.admit(1)
        if too_many:
            raise DeletionRefused(f"source kept: {too_many}")
        locked = self.lock_reason(target)
        if locked and self.refused:
            raise DeletionRefused(f"source kept: {self.refused}")
        if locked:
            return f"kept ({locked})"
        if self.ctx.dry_run:
            return "kept (dry run: would delete)"
        self._queued.append((decision, target))
        [(_, status)] = self._send()
        if status == "deleted":
            return "deleted"
        if status.startswith("error: "):
            raise DeletionRefused(f"source kept: {status.removeprefix('error: ')}")
        return f"kept ({status})"

    def flush(self) -> list[Outcome]:
        """Send the queued deletions; one Outcome per target."""
        outcomes = []
        for (decision, target), status in self._send():
            size = target.size or (decision.ref.size or 0 if decision.ref else 0)
            if status == "deleted":
                detail = {"audit": self.audit_keys[-1], **({"version_id": target.version_id} if target.version_id else {})}
                outcomes.append(Outcome(decision, "ok", "deleted" + _version(target), bytes_before=size, detail=detail))
            elif status.startswith("error: "):
                outcomes.append(Outcome(decision, "error", status.removeprefix("error: "), bytes_before=size))
            else:
                outcomes.append(Outcome(decision, "skip", status if status == "already gone" else f"{status}: not deleted",
                                        bytes_before=size))
        return outcomes

    # --- sending ------------------------------------------------------------------------------------

    def _send(self) -> list[tuple[tuple[Decision, Target], str]]:
        """Audit (intent), DELETE concurrently (older versions before current ones), audit (results)."""
        batch, self._queued = self._queued, []
        if not batch:
            return []
        if len(self._audit) + len(batch) > AUDIT_PART_LINES and self._audit:
            self._audit = []
        if not self._audit:
            self.audit_keys.append(self._audit_key(len(self.audit_keys)))
        lines = [self._audit_line(decision, target) for decision, target in batch]
        self._audit.extend(lines)
        refusal = self.refused or self._write_audit()
        if refusal:  # nothing is deleted that is not audited first, nor after the bucket was refused
            for line in lines:
                line["status"] = f"not deleted: {refusal}"
            return [(item, f"error: {refusal}") for item in batch]
        statuses: list[str] = [""] * len(batch)
        older = [i for i, (_, t) in enumerate(batch) if not t.is_latest]
        with ThreadPoolExecutor(max_workers=min(DELETE_WORKERS, len(batch))) as pool:
            for i, status in zip(older, pool.map(lambda i: self._delete(batch[i][1]), older), strict=True):
                statuses[i] = status
            failed = {batch[i][1].key for i in older if statuses[i] != "deleted"}
            latest = [i for i, (_, t) in enumerate(batch) if t.is_latest]
            for i in latest:
                if batch[i][1].key in failed:
                    statuses[i] = "an older version of this key could not be deleted"
            send = [i for i in latest if not statuses[i]]
            for i, status in zip(send, pool.map(lambda i: self._delete(batch[i][1]), send), strict=True):
                statuses[i] = status
        for line, status in zip(lines, statuses, strict=True):
            line["status"] = status
        self.deleted += sum(s == "deleted" for s in statuses)
        failed_audit = self._write_audit()
        if failed_audit:
            logger.error(f"s3://{self.bucket}: deletions done, but their results are not in {self.audit_keys[-1]}: {failed_audit}")
        return list(zip(batch, statuses, strict=True))

    def _delete(self, target: Target) -> str:
        """One conditional DELETE: ``deleted``, a skip reason, or ``error: <reason>``."""
        try:
            self.ctx.s3.delete_object(Bucket=self.bucket, **target.request())
        except Exception as exc:
            code = _error_code(exc)
            if code in _CHANGED:
                return "changed since it was decided"
            if code in _GONE:
                return "already gone"
            return f"error: {_reason(exc)}"
        return "deleted"

    def _audit_key(self, part: int) -> str:
        now = self.ctx.now
        return f"{self.audit_prefix}{now:%Y/%m/%d}/{now:%H%M%S}-{self.run_id}-{part:04d}.jsonl"

    def _audit_line(self, decision: Decision, target: Target) -> dict[str, Any]:
        return {"time": datetime.now(self.ctx.now.tzinfo).isoformat(), "run": self.run_id, "bucket": self.bucket,
                "key": target.key, "version_id": target.version_id, "etag": target.etag, "policy": decision.policy,
                "action": decision.action, "reason": decision.reason, "size": target.size, "status": "deleting"}

    def _write_audit(self) -> str | None:
        """Write the current audit part; None when written, else why not."""
        body = "".join(json.dumps(line, sort_keys=True) + "\n" for line in self._audit).encode()
        try:
            self.ctx.s3.put_object(Bucket=self.bucket, Key=self.audit_keys[-1], Body=body, ContentType="application/x-ndjson",
                                   Metadata={s3util.MARKER: "audit"})
        except Exception as exc:
            return f"audit {self.audit_keys[-1]} not written ({_reason(exc)})"
        return None


def _version(target: Target) -> str:
    return f" version {target.version_id}" if target.version_id and target.version_id != "null" else ""
