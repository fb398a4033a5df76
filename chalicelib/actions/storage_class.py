"""``storage_class``: copy an object in place into another class (on upload and in sweeps).

Planning (``plan_moves``, shared with the ``transition`` steps the sweep runs): act only if the net
USD saving over ``settings.horizon_days`` (storage, COPY request, retrieval, minimum-duration and
minimum-size penalties) is positive; skip objects already in the class, in an archive class,
smaller than the class's minimum billable size ("billed as 128 KiB"), or expiring (the policy's
``expire``) before the class's minimum duration. Under ``settings.objective: co2e`` a CO2e saving
is required too, which under the CCF carbon method only a move into ONEZONE_IA has (the reason
says so). The class facts (rank, minimum days and size) come from the economics model.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from functools import cache, partial
from typing import TYPE_CHECKING, ClassVar, Literal, Sequence

from pydantic import field_validator

from chalicelib import economics as econ
from chalicelib import s3 as s3util
from chalicelib.actions import permissions as s3calls
from chalicelib.actions.base import Action, Scope, register
from chalicelib.actions.output import refusal
from chalicelib.decision import ActionParams, Decision, Outcome, Status
from chalicelib.economics.core import net_usd
from chalicelib.policy.units import check_storage_class
from chalicelib.refs import ObjectRef

if TYPE_CHECKING:
    from chalicelib.actions.planning import PolicyView
    from chalicelib.context import RunContext

Via = Literal["copy", "transition"]


@dataclass(frozen=True, slots=True)
class MoveParams(ActionParams):
    """A planned class change: the target class, and whether it is a ``storage_class`` copy or a ``transition`` step."""

    storage_class: str
    via: Via = "copy"
    notes: tuple[str, ...] = ()


def plan_moves(refs: Sequence[ObjectRef], view: "PolicyView", targets: Sequence[str], ages: Sequence[float | None], via: Via,
               by: Action) -> list[Decision]:
    """For each ref, a ``storage_class`` Decision moving it into its target class when the move pays, else a skip
    saying why; the moves are priced a column per (class, target) pair (``econ.class_changes``)."""
    out: list[Decision | None] = [None] * len(refs)
    expires_after = view.expires_after
    # Rows to price, by (class, target): (row, ref, size, age, days until the policy expires the object).
    priced: dict[tuple[str, str], list[tuple[int, ObjectRef, int, float | None, float | None]]] = {}
    for row, (ref, target, age) in enumerate(zip(refs, targets, ages, strict=True)):
        cls = ref.storage_class or "STANDARD"
        refused, min_billable, min_days = _move_gate(cls, target, via)
        size = ref.size
        if refused is not None:
            out[row] = view.skip(ref, refused)
        elif size is None:
            out[row] = view.skip(ref, "size unknown: saving can't be judged")
        elif size < min_billable:
            out[row] = view.skip(ref, f"small object ({size:,} B): billed as {min_billable // 1024} KiB in {target}")
        elif expires_after is None:
            priced.setdefault((cls, target), []).append((row, ref, size, age, None))
        else:
            expires_in = expires_after - (age or 0.0)
            if expires_in < min_days:
                out[row] = view.skip(ref, f"expires at day {expires_after} ({max(expires_in, 0):.0f} days from now), "
                                          f"before the {min_days}-day minimum of {target}")
            else:
                priced.setdefault((cls, target), []).append((row, ref, size, age, expires_in))
    horizon, co2e = view.horizon, view.co2e
    for (cls, target), rows in priced.items():
        # Priced as an in-place copy either way: the sweep carries a transition step out with one.
        usd, kgco2e, one_off, lasts, notes = econ.class_changes(
            [r[2] for r in rows], cls, target, view.region, [r[3] for r in rows],
            None if expires_after is None else [r[4] for r in rows])  # type: ignore[misc]
        params = _move_params(target, via, notes)
        for i, ((row, ref, *_), u, k, o) in enumerate(zip(rows, usd, kgco2e, one_off, strict=True)):
            net = net_usd(u, o, None if lasts is None else lasts[i], horizon)
            if net <= 0:
                out[row] = view.skip(ref, partial(_unpaid_reason, cls, target, net, horizon, u, o))
            elif co2e and k <= 0:
                out[row] = view.skip(ref, f"objective co2e: {cls} → {target} saves no CO2e ({econ.CCF_CLASS_NOTE})")
            else:
                out[row] = Decision(ref.bucket, ref.key, view.name, StorageClass.name,
                                    partial(_move_reason, cls, target, net, horizon, k), u, k, o, ref, params, by)
    return out  # type: ignore[return-value]  # every row got its decision above


@cache
def _move_gate(cls: str, target: str, via: Via) -> tuple[str | None, int, int]:
    """Why no object of ``cls`` moves into ``target`` by ``via`` (None when one may), and the target's minimum
    billable bytes and days: what ``plan_moves`` checks first depends on the classes only, so once per pair.

        >>> _move_gate("DEEP_ARCHIVE", "GLACIER_IR", "copy")[0], _move_gate("STANDARD", "GLACIER_IR", "transition")
        ('in DEEP_ARCHIVE: cannot be read without a restore', (None, 131072, 90))
    """
    if cls == target:
        return f"already in {target}", 0, 0
    if econ.needs_restore(cls):
        return f"in {cls}: cannot be read without a restore", 0, 0
    facts = econ.storage_class(target)
    if via == "transition" and cls in econ.class_names() and econ.storage_class(cls).rank >= facts.rank:
        return f"already in {cls}, at or past {target}", 0, 0
    return None, facts.min_billable, facts.min_days


@cache
def _move_params(target: str, via: Via, notes: tuple[str, ...]) -> MoveParams:
    """One MoveParams per (class, via, notes): the values repeat across objects, so planning makes each once."""
    return MoveParams(target, via, notes)


def _unpaid_reason(cls: str, target: str, net: float, horizon: int, usd: float, one_off: float) -> str:
    """Why a move that does not pay is skipped (written when read)."""
    unmodelled = (" — Intelligent-Tiering is priced at its Frequent Access tier: savings from later tiers "
                  "depend on access and are not modelled") if target == "INTELLIGENT_TIERING" else ""
    return (f"{cls} → {target} not worth it: net ${net:.6f} over {horizon} days "
            f"(${usd:.6f}/month, one-off ${one_off:.6f}){unmodelled}")


def _move_reason(cls: str, target: str, net: float, horizon: int, kgco2e: float) -> str:
    """The reason of a planned move (written when read).

        >>> _move_reason("STANDARD", "ONEZONE_IA", 1.5, 365, 0.25)
        'STANDARD → ONEZONE_IA: net $1.500000 over 365 days; saves 0.250000 kg CO2e a month'
    """
    co2e = (f"{kgco2e:.6f} kg CO2e a month" if kgco2e > 0
            else "no CO2e (CCF: class changes save dollars, not CO2e, except into ONEZONE_IA)")
    return f"{cls} → {target}: net ${net:.6f} over {horizon} days; saves {co2e}"


def move_in_place(decision: Decision, ctx: "RunContext") -> Outcome:
    """Copy the decision's object in place into its planned class, after a fresh HEAD confirms it is still worth doing."""
    if not isinstance(decision.params, MoveParams):
        raise TypeError(f"a class change needs MoveParams, not {decision.params!r}")
    target = decision.params.storage_class
    started = time.monotonic()
    current = s3util.head(ctx.s3, decision.bucket, decision.key or "")

    def outcome(status: Status, reason: str) -> Outcome:
        size = current.size if current else 0
        return Outcome(decision, status, reason, bytes_before=size, bytes_after=size, seconds=time.monotonic() - started)

    if current is None:
        return outcome("skip", "object no longer exists")
    decided = decision.ref.etag if decision.ref else None
    if decided and current.etag != decided:
        return outcome("skip", "changed since it was decided: not moved")
    if current.storage_class == target:
        return outcome("skip", f"already in {target}")
    why_not = refusal(current)
    if why_not:
        return outcome("skip", why_not)
    if ctx.dry_run:
        return outcome("skip", f"dry run: would copy in place to {target}")
    try:
        s3util.copy_in_place(ctx.s3, current, target)
    except s3util.ConditionFailed as exc:
        return outcome("skip", f"{exc}: not moved")
    return outcome("ok", f"moved {current.storage_class} → {target}")


@register
class StorageClass(Action):
    """Move an object to ``storage_class`` with an in-place copy, when the move pays (the "worth it" guarantee)."""

    name: ClassVar[str] = "storage_class"
    metric: ClassVar[str | None] = "ObjectsReclassed"
    scope: ClassVar[Scope] = "object"
    plan_rank: ClassVar[int] = 30
    shorthand_field: ClassVar[str] = "storage_class"
    s3_calls: ClassVar[s3calls.Calls] = (s3calls.Call("HeadObject"),) + s3calls.COPY_IN_PLACE

    storage_class: str

    _check_class = field_validator("storage_class")(classmethod(lambda cls, v: check_storage_class(v)))

    def decide_batch(self, refs: Sequence[ObjectRef], prefixes: Sequence[str], view: "PolicyView",
                     ages: Sequence[float | None]) -> list[Decision | None]:
        return plan_moves(refs, view, [self.storage_class] * len(refs), ages, "copy", self)  # type: ignore[return-value]

    def execute(self, decision: Decision, ctx: "RunContext") -> Outcome:
        return move_in_place(decision, ctx)
