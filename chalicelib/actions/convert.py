"""``convert``: tabular uploads (CSV, TSV, JSON, JSON Lines; plain, gzip, bz2, zstd) become Parquet (zstd)."""

from __future__ import annotations

from typing import Any, Callable, ClassVar, Literal

from pydantic import Field, field_validator

from chalicelib.actions.base import register
from chalicelib.actions.writer import WriterAction
from chalicelib.policy.templates import KeyParts, check_template, render


@register
class Convert(WriterAction):
    """Convert a tabular object to Parquet with zstd pages; then keep, delete or re-class the source."""

    name: ClassVar[str] = "convert"
    content_type: ClassVar[str] = "application/vnd.apache.parquet"

    to: Literal["parquet"] = "parquet"
    compression: Literal["zstd"] = "zstd"
    level: int | None = Field(default=None, ge=1, le=22, description="zstd level for every column; default: 3, and 6 for columns where it pays")
    destination: str = "{dir}{stem}.parquet"
    sort: Literal["none", "auto"] = "none"

    _check_destination = field_validator("destination")(classmethod(lambda cls, v: check_template(v)))

    def destination_key(self, parts: KeyParts) -> str:
        return render(self.destination, parts)

    def produce(self, open_source: Callable[[], Any], path: str) -> tuple[int, dict[str, Any]]:
        """Convert to Parquet at ``path`` and verify it (footer readable, row count equal to rows read)."""
        from chalicelib.formats import ConvertOptions, convert_to_parquet, verify_parquet

        result = convert_to_parquet(open_source, path, ConvertOptions(level=self.level, sort=self.sort))
        verify_parquet(path, result.rows)
        return result.bytes_out, {"rows": result.rows, "columns": result.columns, "format": result.input_format}
