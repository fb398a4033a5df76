"""Options and results of conversions (plain dataclasses, no heavy imports)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Optional

__all__ = ["ConvertOptions", "ConvertResult", "RecompressResult"]


@dataclass(frozen=True)
class ConvertOptions:
    """How :func:`convert_to_parquet` writes Parquet.

    level:           zstd level of the Parquet pages. 3 (zstd's own default, and DuckDB's):
                     on the 300 MB benchmark CSV level 6 made the file 1.5 % smaller but the
                     whole conversion 15 % slower; the per-column encodings, not the level, are
                     what make the output smaller than the peers' (see bench/RESULTS.md).
    sort:            ``"none"`` keeps row order exactly; ``"auto"`` clusters the rows inside each
                     row group by low-cardinality columns (chosen on the first row group), which
                     makes the file smaller but changes row order.
    row_group_rows:  upper bound of rows in one row group.
    row_group_bytes: upper bound of the in-memory (Arrow) size of one row group; this is what
                     bounds memory, the row bound only matters for very narrow tables.
    block_size:      initial pyarrow CSV block size; raised automatically for huge rows.
    """

    level: int = 3
    sort: Literal["none", "auto"] = "none"
    row_group_rows: int = 1_000_000
    row_group_bytes: int = 12 * 1024 * 1024
    block_size: int = 1024 * 1024


@dataclass
class ConvertResult:
    """What a conversion did. ``bytes_in`` counts bytes read from the source as stored."""

    rows: int
    columns: int
    bytes_in: int
    bytes_out: int
    seconds: float
    input_format: str  # "csv" | "tsv" | "json" | "jsonl"
    compression: Optional[str]  # "gzip" | "bz2" | "zstd" | None


@dataclass
class RecompressResult:
    """What a recompression did. ``raw_bytes`` is the decompressed length."""

    bytes_in: int
    bytes_out: int
    raw_bytes: int
    source_compression: Optional[str]
    seconds: float
