"""``intelligent_tiering``: opt a policy's objects into the Intelligent-Tiering archive tiers.

What: a bucket-level action that writes an S3 Intelligent-Tiering configuration (Id
``leanlake-<policy>``) for the policy's prefix and tags: objects *already in* the
INTELLIGENT_TIERING class that are not read for ``archive_days`` (≥ 90) move to the Archive
Access tier, and after ``deep_archive_days`` (≥ 180) to Deep Archive Access. Objects get into the
class through ``storage_class: INTELLIGENT_TIERING`` or a ``transition``.

Why: S3 moves data by access pattern without retrieval fees for these tiers (standard restores are
free), but archived objects need a restore before they can be read — opt in only for data that
can wait hours.

Intelligent-Tiering configurations filter by prefix and tags only: suffix and size filters
can't be expressed and are an error here. A policy with several prefixes gets one configuration
per prefix (``leanlake-<policy>-<n>``). S3 limits an Id to 64 characters; longer ones are
shortened with a hash.

Example:
    >>> from chalicelib.policy import Policy
    >>> p = Policy.model_validate({"name": "cold", "bucket": "ml-lake", "filters": {"prefix": "archive/"},
    ...     "actions": [{"intelligent_tiering": {"archive_days": 90, "deep_archive_days": 180}}]})
    >>> configuration(p)["Tierings"]
    [{'Days': 90, 'AccessTier': 'ARCHIVE_ACCESS'}, {'Days': 180, 'AccessTier': 'DEEP_ARCHIVE_ACCESS'}]
    >>> configuration(p)["Id"], configuration(p)["Filter"]
    ('leanlake-cold', {'Prefix': 'archive/'})
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Iterator

from pydantic import Field, model_validator

from chalicelib.actions import permissions as s3calls
from chalicelib.actions.base import Action, Scope, register
from chalicelib.decision import ActionParams, Decision

if TYPE_CHECKING:
    from chalicelib.actions.planning import PolicyView
    from chalicelib.columns import Objects
    from chalicelib.verdicts import Segment
    from chalicelib.policy.models import Policy

ID_PREFIX = "leanlake-"
_MAX_ID = 64


@dataclass(frozen=True, slots=True)
class TieringParams(ActionParams):
    """The ``put_bucket_intelligent_tiering_configuration`` bodies planned for one bucket."""

    configurations: tuple[dict[str, Any], ...]


@register
class IntelligentTiering(Action):
    """Archive tiers for the policy's Intelligent-Tiering objects, after days without access."""

    name: ClassVar[str] = "intelligent_tiering"
    scope: ClassVar[Scope] = "bucket"
    s3_calls: ClassVar[s3calls.Calls] = s3calls.INTELLIGENT_TIERING

    archive_days: int | None = Field(default=None, ge=90, le=730)
    deep_archive_days: int | None = Field(default=None, ge=180, le=730)

    @model_validator(mode="after")
    def _some_tier(self) -> "IntelligentTiering":
        if self.archive_days is None and self.deep_archive_days is None:
            raise ValueError("give archive_days (>= 90) and/or deep_archive_days (>= 180)")
        if self.archive_days is not None and self.deep_archive_days is not None and self.deep_archive_days <= self.archive_days:
            raise ValueError(f"deep_archive_days ({self.deep_archive_days}) must be after archive_days ({self.archive_days})")
        return self

    plan_rank: ClassVar[int] = 50

    def plan_bucket(self, bucket: str, policy: "Policy") -> Iterator[Decision]:
        """One decision per bucket: write the policy's configurations, or a skip when its filters can't be said."""
        try:
            configs = configurations(policy)
        except ValueError as exc:
            yield Decision(bucket, None, policy.name, "skip", str(exc))
            return
        tiers = ", ".join(f"{t['AccessTier']} after {t['Days']} days" for t in configs[0]["Tierings"])
        yield Decision(bucket, None, policy.name, self.name,
                       f"Intelligent-Tiering {', '.join(c['Id'] for c in configs)}: {tiers} without access",
                       params=TieringParams(tuple(configs)), by=self)

    def idle_columns(self, objects: "Objects", rows: Any, prefixes: Any, view: "PolicyView",
                     ages: Any) -> "tuple[list[Segment], Any, Any]":
        return [view.skips(rows, "handled by the bucket's Intelligent-Tiering configuration")], rows[:0], prefixes[:0]

    def apply_to_bucket(self, s3: Any, decision: Decision) -> str:
        """Write the planned Intelligent-Tiering configuration(s) (Id ``leanlake-<policy>``)."""
        if not isinstance(decision.params, TieringParams):
            raise TypeError(f"an {self.name} decision needs TieringParams, not {decision.params!r}")
        configs = decision.params.configurations
        for config in configs:
            s3.put_bucket_intelligent_tiering_configuration(Bucket=decision.bucket, Id=config["Id"], IntelligentTieringConfiguration=config)
        return f"Intelligent-Tiering: {', '.join(c['Id'] for c in configs)} written"

    def tierings(self) -> list[dict[str, Any]]:
        out = []
        if self.archive_days is not None:
            out.append({"Days": self.archive_days, "AccessTier": "ARCHIVE_ACCESS"})
        if self.deep_archive_days is not None:
            out.append({"Days": self.deep_archive_days, "AccessTier": "DEEP_ARCHIVE_ACCESS"})
        return out


def configuration_id(policy_name: str, n: int | None = None) -> str:
    """``leanlake-<policy>[-<n>]``, shortened with a hash to S3's 64 characters."""
    ident = f"{ID_PREFIX}{policy_name}" + (f"-{n}" if n is not None else "")
    if len(ident) <= _MAX_ID:
        return ident
    digest = hashlib.sha1(ident.encode()).hexdigest()[:8]
    return f"{ident[: _MAX_ID - 9]}-{digest}"


def _filter(prefix: str, tags: dict[str, str]) -> dict[str, Any]:
    tag_list = [{"Key": k, "Value": v} for k, v in sorted(tags.items())]
    if not tag_list:
        return {"Prefix": prefix}
    if not prefix and len(tag_list) == 1:
        return {"Tag": tag_list[0]}
    return {"And": {**({"Prefix": prefix} if prefix else {}), "Tags": tag_list}}


def configurations(policy: "Policy") -> list[dict[str, Any]]:
    """The ``put_bucket_intelligent_tiering_configuration`` bodies of ``policy`` (one per prefix)."""
    action = policy.action(IntelligentTiering.name)
    if action is None:
        return []
    assert isinstance(action, IntelligentTiering)
    filters = policy.filters
    if filters.suffix or filters.size is not None:
        raise ValueError(f"policy {policy.name!r}: Intelligent-Tiering configurations filter by prefix and tags only, "
                         "not suffix or size")
    prefixes = filters.prefix or ("",)
    several = len(prefixes) > 1
    return [
        {"Id": configuration_id(policy.name, i if several else None), "Filter": _filter(prefix, dict(filters.tags)),
         "Status": "Enabled", "Tierings": action.tierings()}
        for i, prefix in enumerate(prefixes, start=1)
    ]


def configuration(policy: "Policy") -> dict[str, Any]:
    """The one configuration of a single-prefix policy (``Id`` ``leanlake-<policy>``)."""
    configs = configurations(policy)
    if len(configs) != 1:
        raise ValueError(f"policy {policy.name!r} has {len(configs)} Intelligent-Tiering configurations; use configurations()")
    return configs[0]
