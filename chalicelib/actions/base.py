"""The action registry: each action is a class that declares its schema and the S3 requests it makes.

Like Cloud Custodian's action registry, a policy's ``actions:`` entries are looked up here by
name, validated against the class's pydantic schema before anything runs, and the deployed IAM
policy is derived from the S3 requests the classes declare (``chalicelib.actions.permissions``).

Example:
    >>> from chalicelib.actions import REGISTRY
    >>> from chalicelib.actions.permissions import needs
    >>> REGISTRY["convert"].scope, "s3:PutObject" in needs(REGISTRY["convert"].s3_calls).objects
    ('object', True)
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar, Literal, Mapping, Sequence

from pydantic import BaseModel, ConfigDict, model_validator

from chalicelib.actions.permissions import Calls

if TYPE_CHECKING:
    from chalicelib.context import RunContext
    from chalicelib.decision import Decision, Outcome
    from chalicelib.policy.models import Policy

#: How an action reaches objects: ``object`` actions run on upload and in sweeps (backfill);
#: ``lifecycle`` actions compile to the bucket's S3 Lifecycle configuration where it can say
#: them and run in sweeps where it can't; ``bucket`` actions configure the bucket itself.
Scope = Literal["object", "lifecycle", "bucket"]

REGISTRY: dict[str, type["Action"]] = {}


class Action(BaseModel):
    """Base of every action: a frozen, strictly validated config plus class-level declarations."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: ClassVar[str]
    scope: ClassVar[Scope]
    #: The S3 requests the action's code paths make (``chalicelib.actions.permissions``); the deployed
    #: IAM policy grants what they need and nothing else.
    s3_calls: ClassVar[Calls] = ()
    #: Requests made only under some configurations: option name → option value (up to ``:``) → calls.
    s3_calls_by_option: ClassVar[Mapping[str, Mapping[str, Calls]]] = {}
    #: A YAML scalar or list given as the whole config is put into this field (``storage_class: ONEZONE_IA``).
    shorthand_field: ClassVar[str | None] = None

    @model_validator(mode="before")
    @classmethod
    def _expand_shorthand(cls, data: Any) -> Any:
        if cls.shorthand_field and not isinstance(data, dict):
            return {cls.shorthand_field: data}
        if data is None:
            return {}
        return data

    #: True for actions that write a new object from the source (at most one per object); the ledger
    #: counts their bytes before and after.
    writes_output: ClassVar[bool] = False
    #: The EMF Count metric of its ``ok`` outcomes (``ObjectsConverted``), or None for bucket-level actions.
    metric: ClassVar[str | None] = None

    @classmethod
    def deletes(cls, params: Mapping[str, Any]) -> bool:
        """True when acting on a decision with these parameters deletes an object (default: never)."""
        return False

    def check_with(self, actions: Sequence["Action"]) -> None:
        """Raise ValueError when this action contradicts another action of the same policy (default: never)."""

    @classmethod
    def apply_to_bucket(cls, s3: Any, decision: "Decision", policy: "Policy") -> str:
        """Write the configuration a bucket-scope action of ``policy`` gives the decision's bucket; say what changed."""
        raise NotImplementedError(f"{cls.name} is not a bucket action")

    def execute(self, decision: "Decision", ctx: "RunContext") -> "Outcome":
        """Act on one object-level decision. Lifecycle and bucket actions are applied per bucket instead."""
        raise NotImplementedError(f"{self.name} is not an object action")


def register(cls: type[Action]) -> type[Action]:
    """Class decorator: make an action available to policies under ``cls.name``."""
    if cls.name in REGISTRY:
        raise ValueError(f"action {cls.name!r} registered twice")
    REGISTRY[cls.name] = cls
    return cls
