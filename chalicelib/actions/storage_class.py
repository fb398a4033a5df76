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
from functools import cache
from itertools import repeat
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from pydantic import field_validator

from chalicelib import economics as econ
from chalicelib import s3 as s3util
from chalicelib.actions import permissions as s3calls
from chalicelib.actions.base import Action, Scope, register
from chalicelib.actions.output import refusal
from chalicelib.columns import f64, flag, i64, text
from chalicelib.decision import ActionParams, Decision, Outcome, Status
from chalicelib.policy.units import check_storage_class
from chalicelib.verdicts import Verdict, per_row, per_rows

if TYPE_CHECKING:
    from chalicelib.actions.planning import PolicyView
    from chalicelib.columns import Objects
    from chalicelib.context import RunContext
    from chalicelib.verdicts import Segment

Via = Literal["copy", "transition"]


@dataclass(frozen=True, slots=True)
class MoveParams(ActionParams):
    """A planned class change: the target class, and whether it is a ``storage_class`` copy or a ``transition`` step."""

    storage_class: str
    via: Via = "copy"
    notes: tuple[str, ...] = ()


def plan_moves(objects: "Objects", rows: Any, view: "PolicyView", target: str, ages: Any, via: Via, by: Action) -> list[Segment]:
    """For ``rows`` of a batch (Arrow int64), a ``storage_class`` move into ``target`` where it pays, else a skip
    saying why: the gates the classes decide first (``_move_gate``), the target's minimum billable size, an
    expiry before its minimum duration; then the moves are priced in one pass (``economics.arrays.class_changes``)
    and kept where the net saving over the horizon is positive (and, under ``objective: co2e``, CO2e is saved).
    ``ages``: the whole batch's."""
    import pyarrow.compute as pc

    from chalicelib.economics import arrays as priced  # pyarrow: loaded by planning only, not by the app

    classes, sizes, at_ages = objects.effective_classes(rows), objects.sizes.take(rows), ages.take(rows)
    segments: list[Segment] = []
    open_ = None  # rows no gate refused
    min_billable = min_days = 0
    for cls in pc.unique(classes).to_pylist():
        refused, billable, days = _move_gate(cls, target, via)
        in_class = pc.equal(classes, text(cls))
        if refused is not None:
            segments.append(view.skips(rows.filter(in_class), refused))
        else:
            open_ = in_class if open_ is None else pc.or_(open_, in_class)
            min_billable, min_days = billable, days  # the target's: the same for every class it lets in
    if open_ is None:
        return segments
    unknown = pc.and_(open_, pc.is_null(sizes))
    if pc.any(unknown).as_py():
        segments.append(view.skips(rows.filter(unknown), "size unknown: saving can't be judged"))
    open_ = pc.and_(open_, pc.invert(pc.is_null(sizes)))
    small = pc.fill_null(pc.and_(open_, pc.less(sizes, i64(min_billable))), flag(False))
    if pc.any(small).as_py():
        segments.append(view.skips(rows.filter(small), per_row(_small_reason, sizes.filter(small), min_billable, target)))
    open_ = pc.and_(open_, pc.invert(small))
    expires_in = None
    if view.expires_after is not None:
        expires_in = pc.subtract(f64(view.expires_after), pc.coalesce(at_ages, f64(0.0)))
        early = pc.and_(open_, pc.less(expires_in, f64(min_days)))
        if pc.any(early).as_py():
            segments.append(view.skips(rows.filter(early), per_row(_early_reason, expires_in.filter(early), view.expires_after,
                                                                   min_days, target)))
        open_ = pc.and_(open_, pc.invert(early))
    if not pc.any(open_).as_py():
        return segments
    at, cls_at = rows.filter(open_), classes.filter(open_)
    # Priced as an in-place copy either way: the sweep carries a transition step out with one.
    usd, kgco2e, one_off, lasts = priced.class_changes(sizes.filter(open_), cls_at, target, view.region, at_ages.filter(open_),
                                                       None if expires_in is None else expires_in.filter(open_))
    net = priced.net_usd(usd, one_off, lasts, view.horizon)
    unpaid = pc.less_equal(net, f64(0.0))
    if pc.any(unpaid).as_py():
        segments.append(view.skips(at.filter(unpaid), per_row(
            _unpaid_reason, cls_at.filter(unpaid), target, net.filter(unpaid), view.horizon, usd.filter(unpaid), one_off.filter(unpaid))))
    moved = pc.invert(unpaid)
    if view.co2e:
        no_co2e = pc.and_(moved, pc.less_equal(kgco2e, f64(0.0)))
        if pc.any(no_co2e).as_py():
            segments.append(view.skips(at.filter(no_co2e), per_row(_no_co2e_reason, cls_at.filter(no_co2e), target)))
        moved = pc.and_(moved, pc.invert(no_co2e))
    if pc.any(moved).as_py():
        cls_moved = cls_at.filter(moved)
        segments.append(Verdict(at.filter(moved), StorageClass.name, by,
                                per_rows(_move_reasons, cls_moved, target, net.filter(moved), view.horizon, kgco2e.filter(moved)),
                                usd.filter(moved), kgco2e.filter(moved), one_off.filter(moved),
                                per_row(_params_at, cls_moved, target, via, view.region, expires_in is not None)))
    return segments


def _small_reason(sizes: Any, min_billable: int, target: str, j: int) -> str:
    return f"small object ({sizes[j]:,} B): billed as {min_billable // 1024} KiB in {target}"


def _early_reason(expires_in: Any, expires_after: int, min_days: int, target: str, j: int) -> str:
    return (f"expires at day {expires_after} ({max(expires_in[j], 0):.0f} days from now), "
            f"before the {min_days}-day minimum of {target}")


def _no_co2e_reason(classes: Any, target: str, j: int) -> str:
    return f"objective co2e: {classes[j]} → {target} saves no CO2e ({econ.CCF_CLASS_NOTE})"


def _params_at(classes: Any, target: str, via: Via, region: str, expires: bool, j: int) -> MoveParams:
    """The j-th move's params: its class pair's notes (``economics.arrays.class_changes_notes``)."""
    from chalicelib.economics import arrays as priced  # pyarrow: loaded by planning only, not by the app

    return _move_params(target, via, priced.class_changes_notes(classes[j], target, region, expires))


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


def _unpaid_reason(classes: Any, target: str, nets: Any, horizon: int, usds: Any, one_offs: Any, j: int) -> str:
    """Why the j-th move, which does not pay, is skipped (written when read)."""
    cls, net, usd, one_off = classes[j], nets[j], usds[j], one_offs[j]
    unmodelled = (" — Intelligent-Tiering is priced at its Frequent Access tier: savings from later tiers "
                  "depend on access and are not modelled") if target == "INTELLIGENT_TIERING" else ""
    return (f"{cls} → {target} not worth it: net ${net:.6f} over {horizon} days "
            f"(${usd:.6f}/month, one-off ${one_off:.6f}){unmodelled}")


#: A planned move's reason: its class, target class, net USD over the horizon of days, and what it saves in CO2e.
MOVE_REASON = "{} → {}: net ${:.6f} over {} days; saves {}"
#: What a move saves in CO2e, when it does (``MOVE_REASON``'s last part).
CO2E_SAVED = "{:.6f} kg CO2e a month"
#: What a move that saves no CO2e says instead.
NO_CO2E_SAVED = "no CO2e (CCF: class changes save dollars, not CO2e, except into ONEZONE_IA)"


def _move_reasons(classes: list[str], target: str, nets: list[float], horizon: int, kgco2es: list[float]) -> list[str]:
    """The reasons of a segment's planned moves, one a row of the columns (written when read, all at once:
    ``verdicts.per_rows``).

        >>> saves, not_co2e = _move_reasons(["STANDARD", "STANDARD_IA"], "ONEZONE_IA", [1.5, 0.25], 365, [0.25, 0.0])
        >>> saves
        'STANDARD → ONEZONE_IA: net $1.500000 over 365 days; saves 0.250000 kg CO2e a month'
        >>> not_co2e.replace(NO_CO2E_SAVED, "NO_CO2E_SAVED")
        'STANDARD_IA → ONEZONE_IA: net $0.250000 over 365 days; saves NO_CO2E_SAVED'
    """
    co2e = [CO2E_SAVED.format(kgco2e) if kgco2e > 0 else NO_CO2E_SAVED for kgco2e in kgco2es]
    return list(map(MOVE_REASON.format, classes, repeat(target), nets, repeat(horizon), co2e))


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

    def decide_columns(self, objects: "Objects", rows: Any, prefixes: Any, view: "PolicyView",
                       ages: Any) -> "tuple[list[Segment], Any, Any]":
        """A move, or the skip that says why not, for every row (``plan_moves``)."""
        return plan_moves(objects, rows, view, self.storage_class, ages, "copy", self), rows[:0], prefixes[:0]

    def execute(self, decision: Decision, ctx: "RunContext") -> Outcome:
        return move_in_place(decision, ctx)
