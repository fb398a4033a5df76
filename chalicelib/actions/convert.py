"""``convert``: tabular uploads (CSV, TSV, JSON, JSON Lines; plain, gzip, bz2, zstd) become Parquet (zstd)."""

from __future__ import annotations

from typing import Any, Callable, ClassVar, Literal

from pydantic import Field, field_validator

from chalicelib.actions.base import register
from chalicelib.actions.writer import WriterAction, output_ratio
from chalicelib.formats import ConvertOptions, convert_to_parquet
from chalicelib.formats.outputs import Output
from chalicelib.policy.templates import KeyParts, check_template, render, render_columns
from chalicelib.policy.units import parse_size

MiB = 1024 * 1024


@register
class Convert(WriterAction):
    """Convert a tabular object to Parquet with zstd pages; then keep, delete or re-class the source."""

    name: ClassVar[str] = "convert"
    metric: ClassVar[str | None] = "ObjectsConverted"
    output_suffix: ClassVar[str] = ".parquet"
    content_type: ClassVar[str] = "application/vnd.apache.parquet"
    min_input_assumption: ClassVar[str] = "min_input_bytes_parquet"

    to: Literal["parquet"] = "parquet"
    compression: Literal["zstd"] = "zstd"
    level: int | None = Field(default=None, ge=1, le=22,
                              description="zstd level for every column; default: 3, and 6 for columns where it pays")
    destination: str = "{dir}{stem}.parquet"
    sort: Literal["none", "auto"] = Field(default="none", description="auto: order the rows inside each row group "
                                          "by the columns that shrink the file most (measured); none: keep row order")
    compat: bool = Field(default=False, description="true: Parquet V1 encodings only (plain, dictionary) for older "
                                                    "engines; the file is a few percent larger")
    max_row_size: int = Field(default=64 * MiB, ge=1 * MiB, le=1024 * MiB,
                              description="longest row accepted (e.g. '64 MiB'); a longer one fails the conversion early, "
                                          "since converting holds a few rows in memory at once")

    _check_destination = field_validator("destination")(classmethod(lambda cls, v: check_template(v)))
    _parse_size = field_validator("max_row_size", mode="before")(classmethod(lambda cls, v: parse_size(v)))

    def destination_key(self, parts: KeyParts) -> str:
        return render(self.destination, parts)

    def destination_template(self) -> str:
        return self.destination

    def destination_columns(self, parts: dict[str, Any]) -> Any:
        return render_columns(self.destination, parts)

    def output_ratio(self, compression_suffix: str) -> tuple[float, str]:
        return output_ratio("parquet_from_compressed_text" if compression_suffix else "parquet_from_text")

    def produce(self, open_source: Callable[[], Any], output: Output) -> tuple[int, dict[str, Any]]:
        """Convert to Parquet into ``output``, its footer labelled with the source and rows; the rows
        are checked against the footer once the output is in S3 (``output.untrusted``)."""
        options = ConvertOptions(level=self.level, sort=self.sort, compat=self.compat, max_row_size=self.max_row_size)
        result = convert_to_parquet(open_source, output, options)
        return result.bytes_out, {"rows": result.rows, "columns": result.columns, "format": result.input_format}
