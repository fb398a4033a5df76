"""RunContext: what an action needs to act (policies, an S3 client, the clock, dry-run)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from chalicelib.policy import PolicySet


@dataclass
class RunContext:
    """One run of the pipeline: a Lambda invocation, a sweep, or a CLI command."""

    policies: PolicySet
    s3: Any
    now: datetime = field(default_factory=lambda: datetime.now(timezone.utc))
    dry_run: bool = False
