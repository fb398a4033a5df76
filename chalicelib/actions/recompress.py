"""``recompress``: gzip / bz2 / plain blobs (logs) become zstd, verified by decompressing first."""

from __future__ import annotations

from typing import Any, Callable, ClassVar, Literal

from pydantic import Field, field_validator

from chalicelib.actions.base import register
from chalicelib.actions.writer import WriterAction
from chalicelib.policy.templates import KeyParts, check_template, render


@register
class Recompress(WriterAction):
    """Recompress an object to zstd; the default destination is ``{dir}{stem}{format suffix}.zst``."""

    name: ClassVar[str] = "recompress"
    metric: ClassVar[str | None] = "ObjectsRecompressed"
    output_suffix: ClassVar[str] = ".zst"
    content_type: ClassVar[str] = "application/zstd"

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

    def produce(self, open_source: Callable[[], Any], path: str) -> tuple[int, dict[str, Any]]:
        """Recompress to zstd at ``path``; the converter verifies by decompressing before returning."""
        from chalicelib.formats import recompress_to_zstd

        result = recompress_to_zstd(open_source, path, level=self.level)
        return result.bytes_out, {"raw_bytes": result.raw_bytes, "source_compression": result.source_compression}
