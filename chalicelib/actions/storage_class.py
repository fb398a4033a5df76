"""``storage_class``: copy an object in place into another class (on upload and in sweeps)."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, ClassVar

from pydantic import field_validator

from chalicelib.actions import permissions as s3calls
from chalicelib.actions.base import Action, Scope, register
from chalicelib.policy.units import check_storage_class

if TYPE_CHECKING:
    from chalicelib.context import RunContext
    from chalicelib.decision import Decision, Outcome


@register
class StorageClass(Action):
    """Move an object to ``storage_class`` with an in-place copy, when the move pays (the "worth it" guarantee)."""

    name: ClassVar[str] = "storage_class"
    metric: ClassVar[str | None] = "ObjectsReclassed"
    scope: ClassVar[Scope] = "object"
    shorthand_field: ClassVar[str] = "storage_class"
    s3_calls: ClassVar[s3calls.Calls] = (s3calls.Call("HeadObject"),) + s3calls.COPY_IN_PLACE

    storage_class: str

    _check_class = field_validator("storage_class")(classmethod(lambda cls, v: check_storage_class(v)))

    def execute(self, decision: "Decision", ctx: "RunContext") -> "Outcome":
        """Copy in place into the class, after a fresh HEAD confirms it is still worth doing."""
        from chalicelib import s3 as s3util
        from chalicelib.actions.output import refusal
        from chalicelib.decision import Outcome

        started = time.monotonic()
        current = s3util.head(ctx.s3, decision.bucket, decision.key or "")

        def outcome(status: str, reason: str) -> Outcome:
            size = current.size if current else 0
            return Outcome(decision, status, reason, bytes_before=size, bytes_after=size,  # type: ignore[arg-type]
                           seconds=time.monotonic() - started)

        if current is None:
            return outcome("skip", "object no longer exists")
        decided = decision.ref.etag if decision.ref else None
        if decided and current.etag != decided:
            return outcome("skip", "changed since it was decided: not moved")
        if current.storage_class == self.storage_class:
            return outcome("skip", f"already in {self.storage_class}")
        why_not = refusal(current)
        if why_not:
            return outcome("skip", why_not)
        if ctx.dry_run:
            return outcome("skip", f"dry run: would copy in place to {self.storage_class}")
        try:
            s3util.copy_in_place(ctx.s3, current, self.storage_class)
        except s3util.ConditionFailed as exc:
            return outcome("skip", f"{exc}: not moved")
        return outcome("ok", f"moved {current.storage_class} → {self.storage_class}")
