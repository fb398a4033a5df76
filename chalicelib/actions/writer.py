"""What ``convert`` and ``recompress`` share: they write a new object from a source, then handle the source.

The source disposition is ``keep``, ``delete`` or ``storage_class:CLASS`` (copy in place into
CLASS); the I/O steps live in ``chalicelib.actions.output``.

Example:
    >>> check_source_disposition("storage_class:glacier_ir")
    'storage_class:GLACIER_IR'
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, ClassVar, Mapping

from pydantic import field_validator

from chalicelib.actions import permissions as s3calls
from chalicelib.actions.base import Action, Scope
from chalicelib.policy.templates import KeyParts
from chalicelib.policy.units import check_storage_class

if TYPE_CHECKING:
    from chalicelib.context import RunContext
    from chalicelib.decision import Decision, Outcome


def check_source_disposition(value: str) -> str:
    """The normalised disposition, or ValueError naming the valid forms."""
    text = str(value).strip()
    if text in ("keep", "delete"):
        return text
    head, _, cls = text.partition(":")
    if head == "storage_class" and cls:
        return f"storage_class:{check_storage_class(cls)}"
    raise ValueError(f"source must be keep, delete or storage_class:CLASS, not {value!r}")


class WriterAction(Action):
    """Base of actions that write an output object (at most one applies to an object)."""

    scope: ClassVar[Scope] = "object"
    s3_calls: ClassVar[s3calls.Calls] = s3calls.READ_SOURCE + s3calls.WRITE_OUTPUT
    #: handling the source: ``delete`` deletes it, ``storage_class:CLASS`` copies it in place unless locked
    s3_calls_by_option: ClassVar[dict[str, dict[str, s3calls.Calls]]] = {"source": {
        "delete": s3calls.DELETE, "storage_class": s3calls.READ_LOCKS + s3calls.COPY_IN_PLACE}}
    #: Content type of the outputs.
    content_type: ClassVar[str]

    source: str = "keep"

    _check_source = field_validator("source")(classmethod(lambda cls, v: check_source_disposition(v)))

    writes_output: ClassVar[bool] = True

    @classmethod
    def deletes(cls, params: Mapping[str, Any]) -> bool:
        """A write deletes its source once the output is verified when the policy says ``source: delete``."""
        return params.get("source") == "delete"
    #: The suffix an output's key usually ends with (``.parquet``), for suggested destination templates.
    output_suffix: ClassVar[str]

    def destination_key(self, parts: KeyParts) -> str:
        raise NotImplementedError

    def produce(self, open_source: Callable[[], Any], path: str) -> tuple[int, dict[str, Any]]:
        """Write the verified output to ``path``; return its size and details for the Outcome."""
        raise NotImplementedError

    def execute(self, decision: "Decision", ctx: "RunContext") -> "Outcome":
        from chalicelib.actions.output import write_output

        return write_output(decision, ctx, destination=decision.params["destination"], source_disposition=self.source,
                            produce=self.produce, content_type=self.content_type)
