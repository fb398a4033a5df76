"""``convert``: tabular uploads (CSV, TSV, JSON, JSON Lines; plain, gzip, bz2, zstd) become Parquet (zstd)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, ClassVar, Literal

from pydantic import Field, field_validator

from chalicelib.actions.base import Action, register
from chalicelib.actions.source import SOURCE_PERMISSIONS, check_source_disposition
from chalicelib.policy.templates import KeyParts, check_template, render

if TYPE_CHECKING:
    from chalicelib.context import RunContext
    from chalicelib.decision import Decision, Outcome

PARQUET_CONTENT_TYPE = "application/vnd.apache.parquet"


@register
class Convert(Action):
    """Convert a tabular object to Parquet with zstd pages; then keep, delete or re-class the source."""

    name: ClassVar[str] = "convert"
    scope: ClassVar[str] = "object"
    object_permissions: ClassVar[tuple[str, ...]] = ("s3:GetObject", "s3:GetObjectTagging", "s3:PutObject", "s3:PutObjectTagging", *SOURCE_PERMISSIONS)
    bucket_permissions: ClassVar[tuple[str, ...]] = ("s3:ListBucket",)

    to: Literal["parquet"] = "parquet"
    compression: Literal["zstd"] = "zstd"
    level: int | None = Field(default=None, ge=1, le=22, description="zstd level; default: the converter's tuned default")
    destination: str = "{dir}{stem}.parquet"
    source: str = "keep"
    sort: Literal["none", "auto"] = "none"

    _check_destination = field_validator("destination")(classmethod(lambda cls, v: check_template(v)))
    _check_source = field_validator("source")(classmethod(lambda cls, v: check_source_disposition(v)))

    @property
    def writes_output(self) -> bool:
        return True

    def destination_key(self, parts: KeyParts) -> str:
        return render(self.destination, parts)

    def execute(self, decision: "Decision", ctx: "RunContext") -> "Outcome":
        from chalicelib.actions.output import write_output

        return write_output(decision, ctx, destination=decision.params["destination"], source_disposition=self.source,
                            produce=self.produce, content_type=PARQUET_CONTENT_TYPE)

    def produce(self, open_source: Callable[[], Any], path: str) -> tuple[int, dict[str, Any]]:
        """Convert to Parquet at ``path`` and verify it (footer readable, row count equal to rows read)."""
        from chalicelib.formats import ConvertOptions, convert_to_parquet, verify_parquet

        options = ConvertOptions(sort=self.sort) if self.level is None else ConvertOptions(level=self.level, sort=self.sort)
        result = convert_to_parquet(open_source, path, options)
        verify_parquet(path, result.rows)
        return result.bytes_out, {"rows": result.rows, "columns": result.columns, "format": result.input_format}
