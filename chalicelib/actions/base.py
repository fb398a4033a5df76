"""The action registry: each action is a class that owns its whole life, from schema to metric.

Like Cloud Custodian's action registry, a policy's ``actions:`` entries are looked up here by
name and validated against the class's pydantic schema before anything runs. The class also says
which S3 requests it makes (the deployed IAM policy is derived from them,
``chalicelib.actions.permissions``), how it plans an object (``decide``, ``idle_reason``) or a
bucket (``plan_bucket``), how it carries a decision out (``execute`` / ``act``,
``apply_to_bucket``), whether that deletes (``deletes``, ``when_locked``) and which metric counts
it (``metric``). Planning, the pipeline, the sweep, the ledger and the report dispatch through
these hooks and never name an action.

Example:
    >>> from chalicelib.actions import REGISTRY
    >>> from chalicelib.actions.permissions import needs
    >>> REGISTRY["convert"].scope, "s3:PutObject" in needs(REGISTRY["convert"].s3_calls).objects
    ('object', True)
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, ClassVar, Iterator, Literal, Mapping, Sequence

from pydantic import BaseModel, ConfigDict, model_validator

from chalicelib.actions.permissions import Calls
from chalicelib.verdicts import Decided, Segment, keep

if TYPE_CHECKING:
    from chalicelib.actions.planning import PolicyView
    from chalicelib.columns import Objects
    from chalicelib.context import RunContext
    from chalicelib.decision import Decision, Outcome, Reason
    from chalicelib.policy.models import Policy
    from chalicelib.refs import ObjectRef

#: How an action reaches objects: ``object`` actions run on upload and in sweeps (backfill);
#: ``lifecycle`` actions compile to the bucket's S3 Lifecycle configuration where it can say
#: them and run in sweeps where it can't; ``bucket`` actions configure the bucket itself.
Scope = Literal["object", "lifecycle", "bucket"]

REGISTRY: dict[str, type["Action"]] = {}
#: Called after the registry changes (the policy model rebuilds its ``actions:`` schema).
ON_CHANGE: list[Callable[[], None]] = []


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
    #: The order in which a policy's actions are asked to ``decide`` on an object, lowest first.
    plan_rank: ClassVar[int] = 100

    # --- planning (pure) ----------------------------------------------------------------------------

    def decide(self, ref: "ObjectRef", prefix: str, view: "PolicyView", age: float | None) -> "Decision | None":
        """This action's Decision on a matched object (``prefix``: the policy prefix it matched
        through; ``age``: days since LastModified, None when unknown), or None to let the next
        action of the policy decide. Default: object-level actions never decide; an action that
        plans in batches (it overrides ``decide_batch``) answers for one object with a batch of one."""
        if type(self).decide_batch is not Action.decide_batch:
            return self.decide_batch((ref,), (prefix,), view, (age,))[0]
        return None

    def decide_batch(self, refs: Sequence["ObjectRef"], prefixes: Sequence[str], view: "PolicyView",
                     ages: Sequence[float | None]) -> "list[Decision | None]":
        """``decide`` for each of a batch of matched objects: planning asks a policy's actions with every
        matched object of a batch at once. Override it instead of ``decide`` to price a batch a column at a
        time (``chalicelib.economics.conversions``…), as the built-in actions do. Default: ``decide`` each."""
        return [self.decide(ref, prefix, view, age) for ref, prefix, age in zip(refs, prefixes, ages, strict=True)]

    def decide_columns(self, objects: "Objects", rows: Any, prefixes: Any, view: "PolicyView",
                       ages: Any) -> "tuple[list[Segment], Any, Any]":
        """What this action decides for ``rows`` of a batch of objects held as columns (``rows``: positions in the
        batch, an Arrow int64 array; ``prefixes``: the policy prefix each row matched through, Arrow strings;
        ``ages``: the whole batch's ages in days, an Arrow float64 column, null when unknown): the segments it
        decided (``chalicelib.verdicts``), and the rows it left, with their prefixes, for the policy's next action.
        Override it to decide a column at a time with Arrow compute. Default: ``decide_batch`` on the rows as
        ObjectRefs."""
        positions = rows.to_pylist()
        decided = self.decide_batch(objects.refs(positions), prefixes.to_pylist(), view, ages.take(rows).to_pylist())
        made = [(row, decision) for row, decision in zip(positions, decided, strict=True) if decision is not None]
        segments: list[Segment] = [Decided([row for row, _ in made], [d for _, d in made])] if made else []
        return segments, *keep(rows, prefixes, [decision is None for decision in decided])

    def idle_reason(self, ref: "ObjectRef", prefix: str, view: "PolicyView", age: float | None) -> "Reason | None":
        """Why nothing happens to the object now although this action is in its policy ("expires at
        day 30", "handled by Lifecycle rule …"), asked when no action decided; None: nothing to say.
        A function that writes the reason will do (``chalicelib.decision.Reason``): it is written when read."""
        return None

    def idle_columns(self, objects: "Objects", rows: Any, prefixes: Any, view: "PolicyView",
                     ages: Any) -> "tuple[list[Segment], Any, Any]":
        """``idle_reason`` for rows of a batch no action decided on (arguments as ``decide_columns``'): skips for
        the rows this action says why for, and the rows left for the next action's reason. Override it to say
        why for many rows at once (``PolicyView.skips``). Default: ``idle_reason`` per row as an ObjectRef."""
        positions = rows.to_pylist()
        whys = [self.idle_reason(ref, prefix, view, age) for ref, prefix, age in
                zip(objects.refs(positions), prefixes.to_pylist(), ages.take(rows).to_pylist(), strict=True)]
        made = [(row, view.skip(ref, why)) for row, ref, why in zip(positions, objects.refs(positions), whys, strict=True) if why]
        segments: list[Segment] = [Decided([row for row, _ in made], [d for _, d in made])] if made else []
        return segments, *keep(rows, prefixes, [not why for why in whys])

    def plan_bucket(self, bucket: str, policy: "Policy") -> Iterator["Decision"]:
        """The bucket-level Decisions of a ``bucket``-scope action (key None). Default: none."""
        return iter(())

    @property
    def expires_after_days(self) -> int | None:
        """The age at which this action deletes objects, if it does by age (a move must pay before)."""
        return None

    # --- acting ---------------------------------------------------------------------------------------

    def deletes(self) -> bool:
        """True when carrying out this action's decisions deletes an object (default: never)."""
        return False

    def when_locked(self, decision: "Decision", why: str) -> "Decision":
        """What a deleting decision becomes when its object is locked (``why``): a skip saying so."""
        raise NotImplementedError(f"{self.name} does not delete")

    def check_with(self, actions: Sequence["Action"]) -> None:
        """Raise ValueError when this action contradicts another action of the same policy (default: never)."""

    def apply_to_bucket(self, s3: Any, decision: "Decision") -> str:
        """Write the bucket configuration a ``bucket``-scope decision plans; say what changed."""
        raise NotImplementedError(f"{self.name} is not a bucket action")

    def execute(self, decision: "Decision", ctx: "RunContext") -> "Outcome":
        """Act on one object-level decision."""
        raise NotImplementedError(f"{self.name} does not act on objects")

    def act(self, decision: "Decision", ctx: "RunContext") -> list["Outcome"]:
        """Carry out a decision in a run; the outcomes may be of earlier decisions an action batches
        (deletions go in batches of a DeleteObjects request). Default: ``execute`` it."""
        return [self.execute(decision, ctx)]


def register(cls: type[Action]) -> type[Action]:
    """Class decorator: make an action available to policies under ``cls.name``."""
    if cls.name in REGISTRY:
        raise ValueError(f"action {cls.name!r} registered twice")
    REGISTRY[cls.name] = cls
    for listener in ON_CHANGE:
        listener()
    return cls


def unregister(name: str) -> None:
    """Remove an action registered at run time (a test's throwaway action): policies no longer accept it."""
    del REGISTRY[name]
    for listener in ON_CHANGE:
        listener()
