"""Options and results of conversions (plain dataclasses, no heavy imports)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Optional

__all__ = ["ConvertOptions", "ConvertResult", "RecompressResult"]


#: Row groups of unsorted files hold at most this much Arrow data: with two alive at once (one being encoded, one
#: gathered) a 1 GiB CSV converts in ~176 MiB peak RSS (bench/RESULTS.md).
ROW_GROUP_BYTES = 12 * 1024 * 1024
#: Row groups of ``sort="auto"`` files: the sort orders rows within a group, so a bigger group makes longer runs and
#: fewer copies of each dictionary. Measured on the 300 MB text-heavy benchmark CSV against 12 MiB: 16.7 instead of
#: 32.2 MB, and less CPU (the writer compresses fewer bytes), for ~60 MiB more peak RSS (bench/RESULTS.md).
SORTED_ROW_GROUP_BYTES = 32 * 1024 * 1024


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
    compat:          ``True`` restricts the file to Parquet V1 encodings (PLAIN, dictionary / RLE; no
                     ``DELTA_*``, no ``BYTE_STREAM_SPLIT``) and V1 data pages, for older engines that
                     cannot read the others; the per-column trial then picks dictionary or plain
                     (its size cost is in bench/RESULTS.md).
    row_group_rows:  upper bound of rows in one row group.
    row_group_bytes: upper bound of the in-memory (Arrow) size of one row group; this is what
                     bounds memory, the row bound only matters for very narrow tables. ``None``
                     (the default): ``ROW_GROUP_BYTES``, or ``SORTED_ROW_GROUP_BYTES`` with
                     ``sort="auto"``, whose runs and dictionaries are only as long as a row group
                     (see ``group_bytes_limit``).
    block_size:      initial pyarrow CSV block size; raised automatically for long rows, up to
                     ``max_row_size``.
    max_row_size:    the longest row (a CSV record, a JSON line or array element) accepted, in
                     decoded bytes; a longer one fails the conversion once that much of it was read,
                     so one hostile row (a 700 MiB field in a 700 KB gzip: 5.1 GiB before) costs
                     ~140 MiB. Rows at the limit hold a few copies at once (text, Arrow arrays, the
                     Parquet page): measured with 63 MiB rows, 460 MiB peak for CSV, 390 MiB for JSON
                     Lines, 680 MiB for a JSON array, so the 64 MiB default fits a 3.5 GB function.
    max_columns:     the most columns accepted, counted on the header before Arrow parses it:
                     Arrow's CSV reader costs ~9 KiB per column per parse, so 50,000 columns took
                     2 GiB (10,000 convert in ~750 MiB).
    """

    level: Optional[int] = None
    sort: Literal["none", "auto"] = "none"
    compat: bool = False
    row_group_rows: int = 1_000_000
    row_group_bytes: Optional[int] = None
    block_size: int = 1024 * 1024
    max_row_size: int = 64 * 1024 * 1024
    max_columns: int = 10_000

    def __post_init__(self) -> None:
        for name in ("row_group_rows", "row_group_bytes", "block_size", "max_row_size", "max_columns"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise ValueError(f"{name} must be positive, not {getattr(self, name)}")

    @property
    def group_bytes_limit(self) -> int:
        """``row_group_bytes``, or its default for this ``sort``.

        >>> ConvertOptions().group_bytes_limit >> 20, ConvertOptions(sort="auto").group_bytes_limit >> 20
        (12, 32)
        """
        if self.row_group_bytes is not None:
            return self.row_group_bytes
        return SORTED_ROW_GROUP_BYTES if self.sort == "auto" else ROW_GROUP_BYTES


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
