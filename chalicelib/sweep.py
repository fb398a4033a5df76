"""The sweep: list a bucket (or read refs from elsewhere), decide per object, act, and record.

What Lifecycle can't express runs here (suffix filters, backfill of object actions, retention
with Object Lock awareness). Deleting is safe by construction:

- Object Lock retention and legal holds are read before deleting: a locked object is skipped and
  reported — no delete and no delete marker;
- ``expire: {versions: marker}`` deletes the current version (a delete marker on versioned buckets),
  ``versions: all`` removes every version, each one checked for locks;
- at most ``settings.max_deletions`` per run and bucket, then the run stops deleting and says so;
- ``DeleteObjects`` in batches of 1,000;
- every deletion is in the run's audit object (JSON Lines, ``<audit_prefix>YYYY/MM/DD/<run>.jsonl``
  in the bucket), written before each batch is deleted and rewritten with the results after it.

Example:
    >>> report = sweep(ctx, Ledger(), policy_names=["scratch"])   # doctest: +SKIP
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Iterable, Iterator

from chalicelib import s3 as s3util
from chalicelib.context import RunContext
from chalicelib.decision import Decision, Outcome
from chalicelib.ledger import Ledger
from chalicelib.log import logger
from chalicelib.policy import PolicySet
from chalicelib.policy.policyset import matched_prefix
from chalicelib.refs import RESERVED_PREFIX, ObjectRef

DELETE_BATCH = 1000
OnOutcome = Callable[[Outcome], None]


def list_refs(s3: Any, bucket: str, policies: PolicySet) -> Iterator[ObjectRef]:
    """ObjectRefs of a bucket's current objects under the policies' prefixes (each prefix listed once)."""
    wanted = [lp.policy.filters.prefix for lp in policies.for_bucket(bucket)]
    prefixes = [""] if any(not p for p in wanted) else sorted({p for ps in wanted for p in ps})
    prefixes = [p for p in prefixes if not any(p != q and p.startswith(q) for q in prefixes)]
    paginator = s3.get_paginator("list_objects_v2")
    for prefix in prefixes:
        for page in paginator.paginate(Bucket=bucket, Prefix=prefix):
            for item in page.get("Contents", ()):
                if not item["Key"].startswith(RESERVED_PREFIX):
                    yield ObjectRef(bucket=bucket, key=item["Key"], size=item["Size"], etag=item.get("ETag", "").strip('"'),
                                    storage_class=item.get("StorageClass") or "STANDARD", last_modified=item["LastModified"])


def with_tags(s3: Any, refs: Iterable[ObjectRef], policies: PolicySet) -> Iterator[ObjectRef]:
    """The refs, with tags read (one GetObjectTagging each) only where a tag-filtered policy could match."""
    by_bucket: dict[str, list[Any]] = {}
    for ref in refs:
        if ref.bucket not in by_bucket:
            by_bucket[ref.bucket] = [lp.policy.filters for lp in policies.for_bucket(ref.bucket) if lp.policy.filters.tags]
        if ref.tags is None and any(matched_prefix(f, ref.key) is not None for f in by_bucket[ref.bucket]):
            ref = replace(ref, tags=s3util.read_tags(s3, ref.bucket, ref.key, ref.version_id))
        yield ref


def bucket_decisions(ctx: RunContext, bucket: str, policies: PolicySet, refs: Iterable[ObjectRef] | None = None) -> Iterator[Decision]:
    """Every decision for one bucket, from a listing or given refs (an inventory): bucket-level first, then per object."""
    from chalicelib.plan import plan_buckets, plan_objects

    yield from plan_buckets(policies, [bucket])
    listed = list_refs(ctx.s3, bucket, policies) if refs is None else refs
    yield from plan_objects(with_tags(ctx.s3, listed, policies), policies, ctx.now)


def _lock_enabled(s3: Any, bucket: str) -> bool:
    from botocore.exceptions import ClientError

    try:
        config = s3.get_object_lock_configuration(Bucket=bucket)
    except ClientError:
        return False
    return config.get("ObjectLockConfiguration", {}).get("ObjectLockEnabled") == "Enabled"


@dataclass
class Deleter:
    """Batches the deletions of one bucket in one run: lock checks, the cap, the audit object."""

    ctx: RunContext
    bucket: str
    ledger: Ledger
    audit_prefix: str
    max_deletions: int
    on_outcome: OnOutcome | None = None
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex[:12])
    deleted: int = 0
    capped: bool = False
    _batch: list[tuple[Decision, dict[str, Any]]] = field(default_factory=list)
    _audit: list[dict[str, Any]] = field(default_factory=list)
    _locks: bool | None = None

    @property
    def audited(self) -> bool:
        """True once this run wrote its audit object."""
        return bool(self._audit)

    @property
    def audit_key(self) -> str:
        return f"{self.audit_prefix}{self.ctx.now:%Y/%m/%d}/{self.ctx.now:%H%M%S}-{self.run_id}.jsonl"

    def _record(self, outcome: Outcome) -> None:
        self.ledger.record(outcome)
        if self.on_outcome:
            self.on_outcome(outcome)

    def _versions_to_delete(self, decision: Decision) -> list[tuple[dict[str, Any], bool]]:
        """(DeleteObjects ``Objects`` item, is a delete marker); with ``versions: all`` one per version."""
        key = decision.key or ""
        if decision.params.get("versions") != "all":
            return [({"Key": key}, False)]
        versions: list[tuple[dict[str, Any], bool]] = []
        for page in self.ctx.s3.get_paginator("list_object_versions").paginate(Bucket=self.bucket, Prefix=key):
            for kind, is_marker in (("Versions", False), ("DeleteMarkers", True)):
                versions.extend(({"Key": key, "VersionId": v["VersionId"]}, is_marker) for v in page.get(kind, ()) if v["Key"] == key)
        return versions or [({"Key": key}, False)]

    def add(self, decision: Decision) -> None:
        """Queue one expire decision (locks are read now, against the real clock); deletes a full batch."""
        if self.deleted + len(self._batch) >= self.max_deletions:
            if not self.capped:
                logger.warning(f"s3://{self.bucket}: deletion cap of {self.max_deletions} reached; run again to continue")
            self.capped = True
            self._record(Outcome(decision, "skip", f"deletion cap of {self.max_deletions} per run reached"))
            return
        if self._locks is None:
            self._locks = _lock_enabled(self.ctx.s3, self.bucket)
        for item, is_marker in self._versions_to_delete(decision):
            if self._locks and not is_marker:
                head = s3util.head(self.ctx.s3, self.bucket, item["Key"], version_id=item.get("VersionId"))
                locked = head.lock_reason() if head else None
                if locked:
                    self._record(Outcome(decision, "skip", f"{locked}: not deleted", bytes_before=head.size if head else 0,
                                         detail={"version_id": item.get("VersionId")}))
                    continue
            if self.ctx.dry_run:
                self._record(Outcome(decision, "skip", "dry run: would delete", bytes_before=decision.ref.size if decision.ref else 0))
                continue
            self._batch.append((decision, item))
        if len(self._batch) >= DELETE_BATCH:
            self.flush()

    def flush(self) -> None:
        """Delete the queued batch: audit first (intent), then DeleteObjects, then audit with the results."""
        if not self._batch:
            return
        batch, self._batch = self._batch, []
        start = len(self._audit)
        for decision, item in batch:
            self._audit.append({
                "time": self.ctx.now.isoformat(), "run": self.run_id, "bucket": self.bucket, "key": item["Key"],
                "version_id": item.get("VersionId"), "policy": decision.policy, "reason": decision.reason,
                "size": decision.ref.size if decision.ref else None, "status": "deleting",
            })
        self._write_audit()
        response = self.ctx.s3.delete_objects(Bucket=self.bucket, Delete={"Objects": [item for _, item in batch], "Quiet": False})
        errors = {(e["Key"], e.get("VersionId")): f"{e.get('Code')}: {e.get('Message')}" for e in response.get("Errors", ())}
        for offset, (decision, item) in enumerate(batch):
            error = errors.get((item["Key"], item.get("VersionId")))
            self._audit[start + offset]["status"] = "error: " + error if error else "deleted"
            size = decision.ref.size if decision.ref and decision.ref.size else 0
            if error:
                self._record(Outcome(decision, "error", error, bytes_before=size))
            else:
                self.deleted += 1
                self._record(Outcome(decision, "ok", "deleted" + (f" version {item['VersionId']}" if item.get("VersionId") else ""),
                                     bytes_before=size, detail={"audit": self.audit_key}))
        self._write_audit()

    def _write_audit(self) -> None:
        body = "".join(json.dumps(line, sort_keys=True) + "\n" for line in self._audit).encode()
        self.ctx.s3.put_object(Bucket=self.bucket, Key=self.audit_key, Body=body, ContentType="application/x-ndjson",
                               Metadata={s3util.MARKER: "audit"})


def apply_bucket_decision(decision: Decision, ctx: RunContext) -> Outcome:
    """Lifecycle and Intelligent-Tiering decisions: merge leanlake's rules into the bucket's configuration."""
    from chalicelib.lifecycle import apply_to_bucket
    from chalicelib.pipeline import describe_error

    if ctx.dry_run:
        return Outcome(decision, "skip", "dry run: bucket configuration not changed")
    try:
        return Outcome(decision, "ok", apply_to_bucket(ctx.s3, decision, ctx.policies))
    except Exception as exc:  # the bucket's other work goes on; apply exits 1
        reason, transient = describe_error(exc)
        return Outcome(decision, "error", reason, detail={"transient": transient})


def sweep(ctx: RunContext, ledger: Ledger, *, policy_names: Iterable[str] | None = None, buckets: Iterable[str] | None = None,
          decisions: Iterable[Decision] | None = None, on_outcome: OnOutcome | None = None) -> dict[str, Any]:
    """Sweep the buckets of the selected policies (all by default): decide and act; return a report."""
    from chalicelib.pipeline import OBJECT_ACTIONS, execute

    names = set(policy_names) if policy_names is not None else None
    selected = PolicySet(tuple(lp for lp in ctx.policies.loaded if names is None or lp.policy.name in names))
    wanted = set(buckets) if buckets is not None else None
    report: dict[str, Any] = {"buckets": {}}
    for bucket in selected.buckets:
        if wanted is not None and bucket not in wanted:
            continue
        settings = [lp.settings for lp in selected.for_bucket(bucket)]
        deleter = Deleter(ctx, bucket, ledger, audit_prefix=settings[0].audit_prefix,
                          max_deletions=min(s.max_deletions for s in settings), on_outcome=on_outcome)
        source = (d for d in decisions if d.bucket == bucket) if decisions is not None else bucket_decisions(ctx, bucket, selected)
        for decision in source:
            if decision.action == "expire":
                deleter.add(decision)
                continue
            if decision.action in OBJECT_ACTIONS:
                outcome = execute(decision, ctx)
            elif decision.action in ("lifecycle", "intelligent_tiering"):
                outcome = apply_bucket_decision(decision, ctx)
            else:
                outcome = Outcome(decision, "skip", decision.reason)
            ledger.record(outcome)
            if on_outcome:
                on_outcome(outcome)
        deleter.flush()
        report["buckets"][bucket] = {"deleted": deleter.deleted, "deletion_cap_reached": deleter.capped,
                                     "audit_key": deleter.audit_key if deleter.audited else None}
    report["totals"] = ledger.totals()
    return report
