"""Options and results of conversions (plain dataclasses, no heavy imports)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Optional

__all__ = ["ConvertOptions", "ConvertResult", "RecompressResult"]


@dataclass(frozen=True)
class ConvertOptions:
    """How :func:`convert_to_parquet` writes Parquet.

    level:           zstd level of the Parquet pages for every column; ``None`` (the default) is
                     level 3 (zstd's own default, and DuckDB's) with level 6 for the columns whose
                     sample shrinks by more than 3 % there (text-born floats, ~10 %). A single
                     level 6 made the 300 MB benchmark CSV only 1.5 % smaller for 15 % more time:
                     the per-column encodings, not the level, beat the peers (bench/RESULTS.md).
    sort:            ``"none"`` keeps row order exactly; ``"auto"`` clusters the rows inside each
                     row group by low-cardinality columns (chosen on the first row group), which
                     makes the file smaller but changes row order.
    row_group_rows:  upper bound of rows in one row group.
    row_group_bytes: upper bound of the in-memory (Arrow) size of one row group; this is what
                     bounds memory, the row bound only matters for very narrow tables.
    block_size:      initial pyarrow CSV block size; raised automatically for huge rows.
    """

    level: Optional[int] = None
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
