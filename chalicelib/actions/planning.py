"""What an action sees of its policy when it plans an object (``PolicyView``), and what planners share.

Planning asks each action of a matched policy, in ``Action.plan_rank`` order, to ``decide`` on the
object; the first Decision wins. When none decides, the first ``idle_reason`` becomes the skip's
reason ("10 days old, expires at day 30"). ``chalicelib.plan`` drives this; the actions hold the
rules, so an action's planning lives in its own module.

Example:
    >>> expressible_prefixes = [expressible((p,), ()) for p in ("logs/", "_", "")]
    >>> expressible_prefixes
    [True, False, False]
    >>> rule_id("checkpoints", 2)
    'leanlake-checkpoints-2'
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any, Callable

from chalicelib.columns import f64, i64, text
from chalicelib.decision import Decision, Reason
from chalicelib.refs import ObjectRef, reaches_reserved
from chalicelib.verdicts import Verdict, same_text

if TYPE_CHECKING:
    from chalicelib.actions.base import Action
    from chalicelib.policy.problems import LoadedPolicy

#: leanlake's Lifecycle rules and bucket configurations have IDs that start with this.
OWNED_PREFIX = "leanlake-"
_DAY = 86400.0
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_MICROSECOND = timedelta(microseconds=1)


def rule_id(policy_name: str, n: int) -> str:
    """``leanlake-<policy>-<n>``, the ID of a policy's n-th Lifecycle rule; ``n`` counts from 1."""
    return f"{OWNED_PREFIX}{policy_name}-{n}"


def expressible(prefixes: tuple[str, ...], suffixes: tuple[str, ...]) -> bool:
    """True when S3 Lifecycle, not the sweep, runs the lifecycle-scope actions of a policy with these filters.

    Lifecycle can say a prefix, tags and size, but not a suffix; and it can't exclude a prefix, so
    filters whose prefixes take in ``_leanlake/`` (none at all, "_", "_lean", …) would expire
    leanlake's audit trail too. Both go to the sweep, which skips ``_leanlake/``. This is the one
    place that decides; planning and the Lifecycle compiler follow it.
    """
    return not suffixes and not any(reaches_reserved(prefix) for prefix in prefixes or ("",))


def ages_column(modified: Any, as_of: datetime) -> Any:
    """Days from each object's LastModified (an ``Objects.modified`` column) to ``as_of`` (a naive datetime is UTC),
    as an Arrow float64 column; null where unknown. The same floats as ``(as_of - modified).total_seconds() / 86400``:
    microseconds apart (exact in int64) over 10**6, then over 86,400, each a correctly rounded division.

        >>> from chalicelib.columns import timestamps
        >>> ages_column(timestamps([datetime(2026, 1, 1), None]), datetime(2026, 1, 11, 12)).to_pylist()
        [10.5, None]
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    aware = as_of if as_of.tzinfo is not None else as_of.replace(tzinfo=timezone.utc)
    now = (aware - _EPOCH) // _MICROSECOND
    apart = pc.subtract(i64(now), modified.cast(pa.int64()))
    return pc.divide(pc.divide(apart.cast(pa.float64()), f64(1e6)), f64(_DAY))


@dataclass(frozen=True)
class PolicyView:
    """One policy as its actions plan with it, computed once per run."""

    name: str
    region: str
    horizon: int
    co2e: bool
    #: True when S3 Lifecycle runs the policy's lifecycle-scope actions (``expressible``); else the sweep does.
    by_lifecycle: bool
    prefixes: tuple[str, ...]
    #: The policy's actions in plan order (``Action.plan_rank``).
    actions: tuple["Action", ...]
    #: The age at which the policy expires objects, if it does (a move must pay before then).
    expires_after: int | None

    @classmethod
    def of(cls, lp: "LoadedPolicy", region: str) -> "PolicyView":
        policy, settings = lp.policy, lp.settings
        filters = policy.filters
        expiries = [a.expires_after_days for a in policy.actions if a.expires_after_days is not None]
        return cls(name=policy.name, region=settings.region or region, horizon=settings.horizon_days,
                   co2e=settings.objective == "co2e", by_lifecycle=expressible(filters.prefix, filters.suffix),
                   prefixes=filters.prefix or ("",), actions=tuple(sorted(policy.actions, key=lambda a: a.plan_rank)),
                   expires_after=min(expiries, default=None))

    def skip(self, ref: ObjectRef, reason: Reason) -> Decision:
        """This policy's ``skip`` of ``ref``, saying why (or with a function that says it when read)."""
        return Decision(ref.bucket, ref.key, self.name, "skip", reason, 0.0, 0.0, 0.0, ref)  # positional: one per skip

    def skips(self, rows: Any, reason: str | Callable[[int], Reason]) -> Verdict:
        """This policy's skips of ``rows`` of a batch (Arrow int64), saying why: one text for all, or ``reason(j)``
        for the j-th."""
        return Verdict(rows, "skip", None, same_text(reason) if isinstance(reason, str) else reason)

    def lifecycle_skips(self, rows: Any, prefixes: Any) -> list[Verdict]:
        """The skips of rows S3 Lifecycle acts on, one segment per matched prefix ("handled by Lifecycle rule <id>")."""
        import pyarrow.compute as pc

        if len(self.prefixes) == 1:
            return [self.skips(rows, self.handled_by_lifecycle(self.prefixes[0]))]
        return [self.skips(rows.filter(pc.equal(prefixes, text(prefix))), self.handled_by_lifecycle(prefix))
                for prefix in pc.unique(prefixes).to_pylist()]

    def lifecycle_rule(self, prefix: str) -> str:
        """The ID of the Lifecycle rule that covers objects matched through ``prefix``."""
        return rule_id(self.name, self.prefixes.index(prefix) + 1 if prefix in self.prefixes else 1)

    def handled_by_lifecycle(self, prefix: str) -> str:
        """"handled by Lifecycle rule <id>": the skip of an object S3 Lifecycle acts on (one string per prefix)."""
        return _handled_by(self.name, self.prefixes, prefix)


@cache
def _handled_by(name: str, prefixes: tuple[str, ...], prefix: str) -> str:
    return f"handled by Lifecycle rule {rule_id(name, prefixes.index(prefix) + 1 if prefix in prefixes else 1)}"
