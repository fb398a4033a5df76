"""Streaming format conversion for leanlake: CSV / TSV / JSON / JSON Lines → Parquet, and
gzip / bz2 / zstd / plain → zstd.

Example::

    from chalicelib.formats import ConvertOptions, convert_to_parquet, verify_parquet

    result = convert_to_parquet(lambda: open("flights.csv.gz", "rb"), "/tmp/flights.parquet")
    verify_parquet("/tmp/flights.parquet", result.rows)

Design
------
* **Sniffing by content** (``sniff``): compression by magic bytes, a UTF-8 BOM stripped, then the
  first non-space character: ``[`` JSON array, ``{`` JSON Lines, else delimited text whose
  delimiter (``,`` ``;`` tab ``|``) splits the head's records most consistently (quote-aware).
* **Streaming, bounded memory**: input is decompressed by Arrow's codecs and read by
  ``pyarrow.csv.open_csv`` (or in whole-line chunks by ``pyarrow.json.read_json``; a JSON array is
  turned into lines incrementally). Batches collect into row groups bounded by
  ``ConvertOptions.row_group_bytes`` / ``row_group_rows`` and are written by a
  ``ParquetWriter``; nothing holds the whole file.
* **Two threads, three when sorting**: the calling thread reads/decodes, a writer thread encodes
  and compresses (pyarrow releases the GIL in both), handed one row group at a time; with
  ``sort="auto"`` a sorting thread between them orders one group while the next is read
  (``parquet_writer``).
* **No value lost to type inference (retry-on-widen)**: when a later block does not fit the
  types inferred from the first one, the column is pinned to a wider type (null → int64 →
  float64 → string, chosen from the offending value) and the conversion restarts from a fresh
  ``open_source()``, until everything fits. ``strings_can_be_null=False`` keeps ``NA``, ``nan``
  and ``""`` in text columns as values; numeric columns read ``NA``/``NaN``/``null``/empty as null.
  Numeric-looking columns whose first 2 MiB hold zero-padded values (``02134``) stay text, and a
  column of nothing but ``NA``-like tokens stays text too.
  Duplicate column names get ``_2``, ``_3``… suffixes (Parquet readers cannot address duplicates);
  all other names are kept exactly.
* **Encodings chosen by measurement**: on the first row group every column is trial-compressed with
  its candidate encodings (dictionary, plain, delta binary packed, byte stream split, delta
  (length) byte array) and the smallest wins — e.g. sorted timestamps get deltas, repetitive
  strings dictionaries. Pages are zstd (default level 3), 1 MiB data pages, statistics on, no
  embedded Arrow schema (it costs bytes on small files; Parquet's own logical types round-trip).
* **sort="auto"** sorts each row group by the low-cardinality columns of the first row group (by
  increasing cardinality) and records them as the file's ``sorting_columns``.
* **Bounded memory for hostile input** (``ConvertOptions.max_row_size``, ``max_columns``): a row
  longer than the limit (64 MiB) fails once that much of it was read — a 700 MiB field in a
  700 KB gzip costs ~140 MiB, not 5 GiB; a header wider than 10,000 columns is refused before
  Arrow parses it; JSON nested deeper than 50 levels fails before Arrow sees it; wide tables get
  bigger row groups (so their footer stays small) and a file is refused before its footer would
  hold a million column chunks.
* **Errors**: every failure is :class:`ConversionError` with a one-line message (``line N: ...``
  where known) and no file left at the sink.

Importing this package is cheap: pyarrow and zstandard are imported inside the functions.
"""
from __future__ import annotations

from .convert import convert_to_parquet, verify_parquet
from .errors import ConversionError
from .options import ConvertOptions, ConvertResult, RecompressResult
from .recompress import recompress_to_zstd
from .streams import detect_compression

__all__ = [
    "ConvertOptions",
    "ConvertResult",
    "ConversionError",
    "convert_to_parquet",
    "verify_parquet",
    "recompress_to_zstd",
    "RecompressResult",
    "detect_compression",
]
