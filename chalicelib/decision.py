"""Decision (what to do and why, pure) and Outcome (what was done), the two records of the pipeline.

``plan`` turns ObjectRefs into Decisions without I/O; the executor turns Decisions into Outcomes;
the ledger records Outcomes. Every skip carries its reason: nothing is skipped silently.

Example:
    >>> d = Decision(bucket="b", key="raw/a.csv", policy="p", action="skip", reason="output would not be smaller")
    >>> d.as_dict()["key"]
    'raw/a.csv'
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Mapping

from chalicelib.refs import ObjectRef

if TYPE_CHECKING:
    from chalicelib.actions.base import Action

Status = Literal["ok", "skip", "error"]


@dataclass(frozen=True, slots=True)
class ActionParams:
    """Base of the typed parameters an action plans into a Decision (each action module defines its own)."""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class Decision:
    """One decision per (bucket, key, policy); ``key`` is None for bucket-level (Lifecycle) decisions."""

    bucket: str
    key: str | None
    policy: str
    #: A registered action's name, ``lifecycle`` (the bucket's Lifecycle configuration) or ``skip``
    #: (nothing to do, said in ``reason``): the kinds are the registry's, not listed here.
    action: str
    reason: str
    monthly_usd_saved: float = 0.0
    monthly_kgco2e_saved: float = 0.0
    one_off_usd: float = 0.0
    ref: ObjectRef | None = field(default=None, compare=False, repr=False)
    #: What the deciding action planned (a destination, a class, …), typed by that action; None for a skip.
    params: ActionParams | None = field(default=None, compare=False)
    #: The configured action that carries the decision out (None for a skip).
    by: Action | None = field(default=None, compare=False, repr=False)

    def as_dict(self) -> dict[str, Any]:
        """The ``plan --json`` shape."""
        return {
            "bucket": self.bucket,
            "key": self.key,
            "policy": self.policy,
            "action": self.action,
            "reason": self.reason,
            "monthly_usd_saved": round(self.monthly_usd_saved, 6),
            "monthly_kgco2e_saved": round(self.monthly_kgco2e_saved, 9),
            "one_off_usd": round(self.one_off_usd, 6),
        }


@dataclass(frozen=True, slots=True)
class Outcome:
    """What acting on a Decision did: ``ok``, ``skip`` or ``error``, always with a reason."""

    decision: Decision
    status: Status
    reason: str
    bytes_before: int = 0
    bytes_after: int = 0
    output_key: str | None = None
    seconds: float = 0.0
    detail: Mapping[str, Any] = field(default_factory=dict)

    @property
    def bytes_saved(self) -> int:
        return self.bytes_before - self.bytes_after if self.status == "ok" else 0

    def as_dict(self) -> dict[str, Any]:
        return {
            **self.decision.as_dict(),
            "status": self.status,
            "outcome_reason": self.reason,
            "bytes_before": self.bytes_before,
            "bytes_after": self.bytes_after,
            "output_key": self.output_key,
            "seconds": round(self.seconds, 3),
            **({"detail": dict(self.detail)} if self.detail else {}),
        }
