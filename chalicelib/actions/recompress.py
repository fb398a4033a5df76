"""``recompress``: gzip / bz2 / plain blobs (logs) become zstd, verified by decompressing first."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, ClassVar, Literal

from pydantic import Field, field_validator

from chalicelib.actions.base import Action, register
from chalicelib.actions.source import SOURCE_PERMISSIONS, check_source_disposition
from chalicelib.policy.templates import KeyParts, check_template, render

if TYPE_CHECKING:
    from chalicelib.context import RunContext
    from chalicelib.decision import Decision, Outcome

ZSTD_CONTENT_TYPE = "application/zstd"


@register
class Recompress(Action):
    """Recompress an object to zstd; the default destination is ``{dir}{stem}{format suffix}.zst``."""

    name: ClassVar[str] = "recompress"
    scope: ClassVar[str] = "object"
    object_permissions: ClassVar[tuple[str, ...]] = ("s3:GetObject", "s3:GetObjectTagging", "s3:PutObject", "s3:PutObjectTagging", *SOURCE_PERMISSIONS)
    bucket_permissions: ClassVar[tuple[str, ...]] = ("s3:ListBucket",)

    codec: Literal["zstd"] = "zstd"
    level: int = Field(default=19, ge=1, le=22)
    destination: str | None = None
    source: str = "keep"

    _check_destination = field_validator("destination")(
        classmethod(lambda cls, v: None if v is None else check_template(v))
    )
    _check_source = field_validator("source")(classmethod(lambda cls, v: check_source_disposition(v)))

    @property
    def writes_output(self) -> bool:
        return True

    def destination_key(self, parts: KeyParts) -> str:
        if self.destination is not None:
            return render(self.destination, parts)
        return f"{parts.dir}{parts.stem}{parts.format_suffix}.zst"

    def execute(self, decision: "Decision", ctx: "RunContext") -> "Outcome":
        from chalicelib.actions.output import write_output

        return write_output(decision, ctx, destination=decision.params["destination"], source_disposition=self.source,
                            produce=self.produce, content_type=ZSTD_CONTENT_TYPE)

    def produce(self, open_source: Callable[[], Any], path: str) -> tuple[int, dict[str, Any]]:
        """Recompress to zstd at ``path``; the converter verifies by decompressing before returning."""
        from chalicelib.formats import recompress_to_zstd

        result = recompress_to_zstd(open_source, path, level=self.level)
        return result.bytes_out, {"raw_bytes": result.raw_bytes, "source_compression": result.source_compression}
