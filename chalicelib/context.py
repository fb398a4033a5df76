"""RunContext: what an action needs to act (policies, an S3 client, the clock, dry-run) and the run's deletions."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Callable

from chalicelib.deletion import Deletions
from chalicelib.policy import PolicySet


@dataclass
class RunContext:
    """One run of the pipeline: a Lambda invocation, a sweep, or a CLI command.

    The run's deletions are per bucket (``deletions_in``): whichever action deletes, expire or a
    converted source, counts against the same cap and writes to the same audit trail.
    """

    policies: PolicySet
    s3: Any
    now: datetime = field(default_factory=lambda: datetime.now(timezone.utc))
    dry_run: bool = False
    deletions: dict[str, Deletions] = field(default_factory=dict)
    #: Seconds this run may still spend on one object (a Lambda invocation's remaining time less a
    #: margin), or None on a machine, where there is no limit.
    time_left: Callable[[], float] | None = None

    def deletions_in(self, bucket: str) -> Deletions:
        """This run's deletions in ``bucket``, with the strictest cap and the audit prefix of its policies."""
        found = self.deletions.get(bucket)
        if found is None:
            settings = [lp.settings for lp in self.policies.for_bucket(bucket)]
            found = self.deletions[bucket] = Deletions(
                self, bucket, audit_prefix=settings[0].audit_prefix if settings else "_leanlake/audit/",
                max_deletions=min((s.max_deletions for s in settings), default=0))
        return found
