"""The policy language (a public contract: extended, never renamed; README "Policies") as pydantic models.

Example:
    >>> p = Policy.model_validate({"name": "logs", "bucket": "ml-lake",
    ...     "filters": {"prefix": "logs/", "suffix": [".gz"]}, "actions": [{"recompress": {"level": 19}}]})
    >>> p.buckets, p.actions[0].name
    (('ml-lake',), 'recompress')
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Annotated, Any, Literal, TypeVar, Union

from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag, create_model, field_validator, model_validator

from chalicelib.actions import REGISTRY, Action
from chalicelib.actions.base import ON_CHANGE
from chalicelib.policy.units import parse_size
from chalicelib.refs import RESERVED_PREFIX

_BUCKET_NAME = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
_POLICY_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _as_tuple(value: Any) -> Any:
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,)
    return value


class Settings(_Strict):
    """Settings for the policies of one file (or all files, from ``policies/leanlake.yaml``)."""

    region: str | None = None
    horizon_days: int = Field(default=365, ge=1, le=3650)
    audit_prefix: str = "_leanlake/audit/"
    objective: Literal["usd", "co2e"] = "usd"
    max_deletions: int = Field(default=10_000, ge=0, description="per sweep run and bucket")

    @field_validator("audit_prefix")
    @classmethod
    def _under_reserved(cls, value: str) -> str:
        if not value.startswith(RESERVED_PREFIX) or not value.endswith("/"):
            raise ValueError(f"audit_prefix must start with {RESERVED_PREFIX!r} and end with '/', got {value!r}")
        return value


class SizeRange(_Strict):
    """Inclusive byte range; accepts ``1 KiB``, ``20 GiB``, ``5 MB`` or plain integers."""

    min: int | None = None
    max: int | None = None

    _parse = field_validator("min", "max", mode="before")(
        classmethod(lambda cls, v: None if v is None else parse_size(v))
    )

    @model_validator(mode="after")
    def _ordered(self) -> "SizeRange":
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"size min ({self.min} B) is above max ({self.max} B)")
        return self


class Filters(_Strict):
    """All given filters must hold. ``prefix`` and ``suffix`` take a string or a list (any of)."""

    prefix: tuple[str, ...] = ()
    suffix: tuple[str, ...] = ()
    size: SizeRange | None = None
    tags: dict[str, str] = Field(default_factory=dict)

    _listify = field_validator("prefix", "suffix", mode="before")(classmethod(lambda cls, v: _as_tuple(v)))

    @field_validator("prefix")
    @classmethod
    def _not_reserved(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for prefix in value:
            if prefix.startswith(RESERVED_PREFIX):
                raise ValueError(f"prefix {prefix!r} is under {RESERVED_PREFIX}, which is reserved for leanlake")
        return value

    @field_validator("tags", mode="before")
    @classmethod
    def _tag_values_are_strings(cls, value: Any) -> Any:
        if isinstance(value, dict):
            return {str(k): (str(v).lower() if isinstance(v, bool) else str(v)) for k, v in value.items()}
        return value


def _action_key(value: Any) -> str | None:
    if isinstance(value, dict) and len(value) == 1:
        return next(iter(value))
    return None


def _action_union() -> Any:
    """``{name: config}`` entries, discriminated by their single key, one model per registered action."""
    steps = []
    for name, cls in sorted(REGISTRY.items()):
        fields: dict[str, Any] = {name: (cls, ...)}
        step = create_model(f"{cls.__name__}Step", __config__=ConfigDict(extra="forbid", frozen=True), **fields)
        steps.append(Annotated[step, Tag(name)])
    return Annotated[Union[tuple(steps)], Discriminator(_action_key, custom_error_type="unknown_action",
        custom_error_message=f"an action is one of {', '.join(sorted(REGISTRY))}, written as '- name: config'")]


if TYPE_CHECKING:  # one model per registered action, built at import: a type checker sees Any
    ActionStep = Any
else:
    ActionStep = _action_union()


class Policy(_Strict):
    """One named policy: which objects (bucket + filters) and what to do with them (actions)."""

    name: str
    description: str = ""
    buckets: tuple[str, ...] = Field(alias="bucket")
    filters: Filters = Field(default_factory=Filters)
    steps: tuple[ActionStep, ...] = Field(alias="actions")
    on_alarm: tuple[str, ...] = ()

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not _POLICY_NAME.match(value):
            raise ValueError(f"policy name {value!r}: use letters, digits, '-', '_', '.' (at most 63)")
        return value

    @field_validator("buckets", mode="before")
    @classmethod
    def _buckets(cls, value: Any) -> Any:
        value = _as_tuple(value)
        for bucket in value:
            if not isinstance(bucket, str) or not _BUCKET_NAME.match(bucket) or ".." in bucket:
                raise ValueError(f"{bucket!r} is not an S3 bucket name (no wildcards)")
        if not value:
            raise ValueError("name at least one bucket")
        return value

    @field_validator("steps", mode="before")
    @classmethod
    def _some_actions(cls, value: Any) -> Any:
        if not value:
            raise ValueError("a policy needs at least one action")
        return value

    @field_validator("on_alarm", mode="before")
    @classmethod
    def _alarms(cls, value: Any) -> Any:
        return _as_tuple(value)

    @property
    def actions(self) -> tuple[Action, ...]:
        """The validated actions, in the order written."""
        return tuple(getattr(step, next(iter(type(step).model_fields))) for step in self.steps)

    @model_validator(mode="after")
    def _one_output_action(self) -> "Policy":
        writers = [a.name for a in self.actions if a.writes_output]
        if len(writers) > 1:
            raise ValueError(f"at most one convert or recompress per policy, got {', '.join(writers)}")
        names = [a.name for a in self.actions]
        duplicated = {n for n in names if names.count(n) > 1}
        if duplicated:
            raise ValueError(f"action {', '.join(sorted(duplicated))} given twice")
        for action in self.actions:
            action.check_with(self.actions)
        return self

    def action(self, name: str) -> Action | None:
        """The policy's action registered as ``name``, if it has one."""
        return next((a for a in self.actions if a.name == name), None)

    def find(self, kind: type[A]) -> A | None:
        """The policy's action of class ``kind``, if it has one, typed as that class."""
        return next((a for a in self.actions if isinstance(a, kind)), None)


A = TypeVar("A", bound=Action)


def _accept_registered_actions() -> None:
    """Actions registered (or removed) after this module was imported (a plugin, a test) are valid in ``actions:`` (or no longer)."""
    global ActionStep
    ActionStep = _action_union()
    Policy.model_fields["steps"].annotation = tuple[ActionStep, ...]
    Policy.model_rebuild(force=True)


ON_CHANGE.append(_accept_registered_actions)
