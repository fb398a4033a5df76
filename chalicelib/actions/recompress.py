"""``recompress``: gzip / bz2 / plain blobs (logs) become zstd, verified by decompressing first."""

from __future__ import annotations

from typing import Any, Callable, ClassVar, Literal

from pydantic import Field, field_validator

from chalicelib.actions.base import register
from chalicelib.actions.writer import WriterAction, output_ratio
from chalicelib.formats import recompress_to_zstd
from chalicelib.formats.outputs import Output
from chalicelib.policy.templates import KeyParts, check_template, render, render_columns


@register
class Recompress(WriterAction):
    """Recompress an object to zstd; the default destination is ``{dir}{stem}{format suffix}.zst``."""

    name: ClassVar[str] = "recompress"
    metric: ClassVar[str | None] = "ObjectsRecompressed"
    output_suffix: ClassVar[str] = ".zst"
    content_type: ClassVar[str] = "application/zstd"
    min_input_assumption: ClassVar[str] = "min_input_bytes_zstd"
    #: The assumed ratio by the source's compression suffix; plain text otherwise.
    ratio_by_compression: ClassVar[dict[str, str]] = {".gz": "zstd_from_gzip", ".gzip": "zstd_from_gzip",
                                                      ".bz2": "zstd_from_bz2", ".zst": "zstd_from_zstd", ".zstd": "zstd_from_zstd"}

    codec: Literal["zstd"] = "zstd"
    level: int = Field(default=19, ge=1, le=22)
    destination: str | None = None

    _check_destination = field_validator("destination")(
        classmethod(lambda cls, v: None if v is None else check_template(v))
    )

    def destination_key(self, parts: KeyParts) -> str:
        if self.destination is not None:
            return render(self.destination, parts)
        return f"{parts.dir}{parts.stem}{parts.format_suffix}.zst"

    def destination_template(self) -> str:
        return self.destination if self.destination is not None else "{dir}{stem}.zst"  # the default adds the format suffix

    def destination_columns(self, parts: dict[str, Any]) -> Any:
        return render_columns(self.destination or "{dir}{stem}{format_suffix}.zst", parts)  # as ``destination_key``

    def output_ratio(self, compression_suffix: str) -> tuple[float, str]:
        return output_ratio(self.ratio_by_compression.get(compression_suffix.lower(), "zstd_from_plain"))

    def produce(self, open_source: Callable[[], Any], output: Output) -> tuple[int, dict[str, Any]]:
        """Recompress to zstd into ``output``; the converter verifies by decompressing what it writes."""
        result = recompress_to_zstd(open_source, output, level=self.level)
        return result.bytes_out, {"raw_bytes": result.raw_bytes, "source_compression": result.source_compression}
