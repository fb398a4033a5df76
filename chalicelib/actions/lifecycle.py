"""Lifecycle actions: ``transition``, ``expire``, ``noncurrent`` and ``abort_multipart``.

``transition`` and ``expire`` compile to the bucket's S3 Lifecycle configuration where Lifecycle
can express the policy's filters (prefix, tags, size) and run in the sweep where it can't (suffix
filters, or prefixes that would take in ``_leanlake/``). ``noncurrent`` (delete old versions) and
``abort_multipart`` (clean up incomplete uploads) only compile to Lifecycle:
``chalicelib.actions.lifecycle_rules`` compiles the bucket's rules and warns where it can't.

In the sweep, per object: a due ``expire`` decides first (before any conversion), with its
``versions`` (``marker`` or ``all``); a ``transition`` step due at the object's age is a
``storage_class`` move judged like one (``chalicelib.actions.storage_class``). Otherwise the skip
says when the next step comes, or which Lifecycle rule handles the object.

Example:
    >>> Transition.model_validate([{"days": 30, "class": "GLACIER_IR"}, {"days": 180, "class": "DEEP_ARCHIVE"}]).steps[1].storage_class
    'DEEP_ARCHIVE'
    >>> Noncurrent.model_validate({"days": 30, "keep": 3}).keep, AbortMultipart.model_validate(7).days
    (3, 7)
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from itertools import repeat
from typing import TYPE_CHECKING, Any, ClassVar, Literal, Sequence

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from chalicelib.actions import permissions as s3calls
from chalicelib.actions.base import Action, Scope, register
from chalicelib.actions.storage_class import move_in_place, plan_moves
from chalicelib.columns import f64, flag, flags, i64
from chalicelib.decision import ActionParams, Decision, Outcome
from chalicelib.verdicts import Verdict, keep, per_row, per_rows
from chalicelib.economics.figures import storage_class
from chalicelib.policy.units import check_storage_class

if TYPE_CHECKING:
    from chalicelib.actions.planning import PolicyView
    from chalicelib.columns import Objects
    from chalicelib.verdicts import Segment
    from chalicelib.context import RunContext



class TransitionStep(BaseModel):
    """One step of a transition staircase: after ``days`` days, move to ``class``."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    days: int = Field(ge=0)
    storage_class: str = Field(alias="class")

    _check_class = field_validator("storage_class")(classmethod(lambda cls, v: check_storage_class(v)))

    @field_validator("storage_class")
    @classmethod
    def _not_standard(cls, value: str) -> str:
        if value == "STANDARD":
            raise ValueError("a Lifecycle transition cannot go to STANDARD")
        return value


@register
class Transition(Action):
    """Move objects down a staircase of classes by age."""

    name: ClassVar[str] = "transition"
    scope: ClassVar[Scope] = "lifecycle"
    shorthand_field: ClassVar[str] = "steps"
    #: Lifecycle where it can say the policy; where it can't (suffix filters) the sweep moves objects in place
    s3_calls: ClassVar[s3calls.Calls] = s3calls.LIFECYCLE + (s3calls.Call("HeadObject"),) + s3calls.COPY_IN_PLACE

    plan_rank: ClassVar[int] = 40

    steps: tuple[TransitionStep, ...] = Field(min_length=1)

    def decide_columns(self, objects: "Objects", rows: Any, prefixes: Any, view: "PolicyView",
                       ages: Any) -> "tuple[list[Segment], Any, Any]":
        """In the sweep: the step due at each object's age (the last whose day it has reached; unknown age reads as
        0), as a move (``plan_moves``); before the first step, a skip saying when (unless the policy also expires:
        its skip says more)."""
        import pyarrow.compute as pc

        if view.by_lifecycle:
            return [], rows, prefixes
        days = pc.coalesce(ages.take(rows), f64(0.0))
        segments: list[Segment] = []
        undue = flags([True] * len(rows))
        for step in reversed(self.steps):  # the latest step due wins
            due = pc.and_(undue, pc.greater_equal(days, f64(step.days)))
            if pc.any(due).as_py():
                segments.extend(plan_moves(objects, rows.filter(due), view, step.storage_class, ages, "transition", self))
            undue = pc.and_(undue, pc.invert(due))
        if view.expires_after is not None or not pc.any(undue).as_py():
            return segments, *keep(rows, prefixes, undue)
        segments.append(view.skips(rows.filter(undue), per_row(_first_transition_reason, days.filter(undue), self.steps[0].days)))
        return segments, rows[:0], prefixes[:0]

    def idle_columns(self, objects: "Objects", rows: Any, prefixes: Any, view: "PolicyView",
                     ages: Any) -> "tuple[list[Segment], Any, Any]":
        """Where S3 Lifecycle runs the policy, the rule that does; in the sweep, nothing to add (the expiry says more)."""
        if view.by_lifecycle:
            return list(view.lifecycle_skips(rows, prefixes)), rows[:0], prefixes[:0]  # as list[Segment]
        return [], rows, prefixes

    def execute(self, decision: Decision, ctx: "RunContext") -> Outcome:
        """A step the sweep runs: the same in-place copy as ``storage_class``."""
        return move_in_place(decision, ctx)

    @model_validator(mode="after")
    def _check_staircase(self) -> "Transition":
        previous: TransitionStep | None = None
        for step in self.steps:
            entry = storage_class(step.storage_class).min_days_before_transition
            if step.days < entry:
                raise ValueError(f"transition to {step.storage_class} needs days >= {entry} (S3 minimum), got {step.days}")
            if previous is not None:
                if step.days <= previous.days:
                    raise ValueError(f"transition days must increase: {previous.days} then {step.days}")
                if storage_class(step.storage_class).rank <= storage_class(previous.storage_class).rank:
                    raise ValueError(
                        f"transition from {previous.storage_class} to {step.storage_class} goes uphill; "
                        f"Lifecycle only moves STANDARD_IA/INTELLIGENT_TIERING → ONEZONE_IA → GLACIER_IR → GLACIER → DEEP_ARCHIVE"
                    )
                stay = storage_class(previous.storage_class).min_days_before_transition
                if step.days - previous.days < stay:
                    raise ValueError(
                        f"objects must stay {stay} days in {previous.storage_class} before moving on "
                        f"(day {previous.days} then day {step.days})"
                    )
            previous = step
        return self


@dataclass(frozen=True, slots=True)
class ExpiryParams(ActionParams):
    """A planned expiry: ``marker`` deletes the current version (a delete marker on a versioned
    bucket), ``all`` every version."""

    versions: Literal["marker", "all"] = "marker"


@cache
def _expiry_params(versions: Literal["marker", "all"]) -> ExpiryParams:
    """One ExpiryParams per ``versions``: every expiry of a policy plans the same."""
    return ExpiryParams(versions)


#: A due expiry's reason: the object's age in days, the policy's days, and which versions go.
EXPIRE_REASON = "{:.0f} days old, older than {}: expire ({})"


def _expire_reasons(ages: list[float], days: int, versions: str) -> list[str]:
    """The reasons of a segment's due expiries, one an age (written when read, all at once: ``verdicts.per_rows``).

        >>> _expire_reasons([40.4, 30.0], 30, "marker")
        ['40 days old, older than 30: expire (marker)', '30 days old, older than 30: expire (marker)']
    """
    return list(map(EXPIRE_REASON.format, ages, repeat(days), repeat(versions)))


def _expiry_params_at(versions: Literal["marker", "all"], _: int) -> ExpiryParams:
    return _expiry_params(versions)


def _expires_later(ages: Any, days: int, j: int) -> str:
    """The skip of an object the sweep will expire later (its age: the j-th of ``ages``; unknown reads as 0)."""
    return f"{ages[j] or 0:.0f} days old, expires at day {days}"


def _first_transition_reason(days: Any, first: int, j: int) -> str:
    return f"{days[j]:.0f} days old, first transition at day {first}"


@register
class Expire(Action):
    """Delete objects older than ``days``; on versioned buckets leave a delete marker or remove every version."""

    name: ClassVar[str] = "expire"
    metric: ClassVar[str | None] = "ObjectsExpired"
    scope: ClassVar[Scope] = "lifecycle"
    #: Lifecycle where it can say the policy; where it can't (suffix filters) the sweep deletes
    s3_calls: ClassVar[s3calls.Calls] = s3calls.LIFECYCLE + s3calls.DELETE
    s3_calls_by_option: ClassVar[dict[str, dict[str, s3calls.Calls]]] = {"versions": {"all": s3calls.DELETE_VERSIONS}}

    plan_rank: ClassVar[int] = 10

    days: int = Field(ge=1)
    versions: Literal["marker", "all"] = "marker"

    @property
    def expires_after_days(self) -> int:
        return self.days

    def deletes(self) -> bool:
        return True

    def decide_columns(self, objects: "Objects", rows: Any, prefixes: Any, view: "PolicyView",
                       ages: Any) -> "tuple[list[Segment], Any, Any]":
        """In the sweep, an object at or past ``days`` is expired before anything else is done to it; the batch's
        due objects are priced in one pass (``economics.arrays.deletions``)."""
        import pyarrow.compute as pc

        from chalicelib.economics import arrays as priced  # pyarrow: loaded by planning only, not by the app

        if view.by_lifecycle:
            return [], rows, prefixes
        at_ages = ages.take(rows)
        unknown = pc.is_null(at_ages)
        due = pc.fill_null(pc.greater_equal(at_ages, f64(self.days)), flag(False))
        segments: list[Segment] = []
        if pc.any(unknown).as_py():
            segments.append(view.skips(rows.filter(unknown), "age unknown (no last_modified): expiry can't be judged"))
        if pc.any(due).as_py():
            due_rows, due_ages = rows.filter(due), at_ages.filter(due)
            usd, kgco2e, one_off = priced.deletions(pc.fill_null(objects.sizes.take(due_rows), i64(0)),
                                                    objects.effective_classes(due_rows), view.region, due_ages)
            segments.append(Verdict(due_rows, self.name, self, per_rows(_expire_reasons, due_ages, self.days, self.versions),
                                    usd, kgco2e, one_off, per_row(_expiry_params_at, self.versions)))
        return segments, *keep(rows, prefixes, pc.invert(pc.or_(unknown, due)))

    def idle_columns(self, objects: "Objects", rows: Any, prefixes: Any, view: "PolicyView",
                     ages: Any) -> "tuple[list[Segment], Any, Any]":
        """The rule that expires the objects, or the day the sweep will."""
        if view.by_lifecycle:
            return list(view.lifecycle_skips(rows, prefixes)), rows[:0], prefixes[:0]  # as list[Segment]
        return [view.skips(rows, per_row(_expires_later, ages.take(rows), self.days))], rows[:0], prefixes[:0]

    def when_locked(self, decision: Decision, why: str) -> Decision:
        """A locked object is not expired.

            >>> d = Decision("b", "tmp/a.tmp", "p", "expire", "400 days old", 0.1)
            >>> Expire(days=7).when_locked(d, "under legal hold").reason
            'under legal hold: not deleted'
        """
        return Decision(decision.bucket, decision.key, decision.policy, "skip", f"{why}: not deleted", ref=decision.ref)

    def act(self, decision: Decision, ctx: "RunContext") -> list[Outcome]:
        """Queue the deletions with the run's others in the bucket: locks read, cap counted, audited (``chalicelib.deletion``)."""
        return ctx.deletions_in(decision.bucket).add(decision, self.versions)

    def check_with(self, actions: Sequence[Action]) -> None:
        """Expiry must come after the policy's last transition: S3 refuses such a Lifecycle rule."""
        for action in actions:
            if isinstance(action, Transition) and self.days <= action.steps[-1].days:
                raise ValueError(f"expire days ({self.days}) must be after the last transition "
                                 f"(day {action.steps[-1].days}); S3 refuses such a Lifecycle rule")


@register
class Noncurrent(Action):
    """On versioned buckets, delete a version ``days`` after it became noncurrent, keeping the newest ``keep``.

    Compiles to ``NoncurrentVersionExpiration`` (``NoncurrentDays``, ``NewerNoncurrentVersions``).
    """

    name: ClassVar[str] = "noncurrent"
    scope: ClassVar[Scope] = "lifecycle"
    plan_rank: ClassVar[int] = 60
    s3_calls: ClassVar[s3calls.Calls] = s3calls.LIFECYCLE

    days: int = Field(ge=1)
    keep: int = Field(default=0, ge=0, le=100, description="newest noncurrent versions to keep (S3 allows up to 100)")


@register
class AbortMultipart(Action):
    """Abort multipart uploads still incomplete ``days`` after they started (their parts are billed as storage).

    Compiles to ``AbortIncompleteMultipartUpload``. S3 cannot filter incomplete uploads by tags or
    size, so the rule uses the policy's prefixes only.
    """

    name: ClassVar[str] = "abort_multipart"
    scope: ClassVar[Scope] = "lifecycle"
    plan_rank: ClassVar[int] = 60
    shorthand_field: ClassVar[str] = "days"
    s3_calls: ClassVar[s3calls.Calls] = s3calls.LIFECYCLE

    days: int = Field(ge=1)
