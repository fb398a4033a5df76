"""Lifecycle actions: ``transition``, ``expire``, ``noncurrent`` and ``abort_multipart``.

``transition`` and ``expire`` compile to the bucket's S3 Lifecycle configuration where Lifecycle
can express the policy's filters (prefix, tags, size) and run in the sweep where it can't (suffix
filters). ``noncurrent`` (delete old versions) and ``abort_multipart`` (clean up incomplete
uploads) only compile to Lifecycle: ``chalicelib.lifecycle`` warns where they can't.

Example:
    >>> Transition.model_validate([{"days": 30, "class": "GLACIER_IR"}, {"days": 180, "class": "DEEP_ARCHIVE"}]).steps[1].storage_class
    'DEEP_ARCHIVE'
    >>> Noncurrent.model_validate({"days": 30, "keep": 3}).keep, AbortMultipart.model_validate(7).days
    (3, 7)
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal, Mapping, Sequence

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from chalicelib.actions import permissions as s3calls
from chalicelib.actions.base import Action, Scope, register
from chalicelib.economics.figures import storage_class
from chalicelib.policy.units import check_storage_class



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

    steps: tuple[TransitionStep, ...] = Field(min_length=1)

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


@register
class Expire(Action):
    """Delete objects older than ``days``; on versioned buckets leave a delete marker or remove every version."""

    name: ClassVar[str] = "expire"
    metric: ClassVar[str | None] = "ObjectsExpired"
    scope: ClassVar[Scope] = "lifecycle"
    #: Lifecycle where it can say the policy; where it can't (suffix filters) the sweep deletes
    s3_calls: ClassVar[s3calls.Calls] = s3calls.LIFECYCLE + s3calls.DELETE
    s3_calls_by_option: ClassVar[dict[str, dict[str, s3calls.Calls]]] = {"versions": {"all": s3calls.DELETE_VERSIONS}}

    days: int = Field(ge=1)
    versions: Literal["marker", "all"] = "marker"

    @classmethod
    def deletes(cls, params: Mapping[str, Any]) -> bool:
        return True

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
    shorthand_field: ClassVar[str] = "days"
    s3_calls: ClassVar[s3calls.Calls] = s3calls.LIFECYCLE

    days: int = Field(ge=1)
