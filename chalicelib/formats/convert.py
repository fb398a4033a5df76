"""convert_to_parquet / verify_parquet: the orchestration of one conversion.

A pass opens the source, sniffs the format on the decompressed head, streams record batches into
the Parquet writer thread and returns. When the reader finds that the data needs a different
plan (a wider column type, a bigger block, renamed duplicate columns, a grown JSON schema) the
pass is abandoned, and another pass starts from a fresh ``open_source()`` on a new attempt of the
output (``outputs.Output.start`` discards the previous one: a file truncated, an S3 upload
aborted). Any failure discards the output (no file left at a path, no upload left in S3) and
surfaces as ConversionError.
"""
from __future__ import annotations

import os
import threading
import time
from typing import BinaryIO, Callable, Tuple, Union

from .csv_reader import (ChunkedCsvBatches, CsvBatches, CsvPlan, RaggedRow, Sequential, Widen, check_header_width,
                         find_ragged_line)
from .errors import ConversionError, failing_cleanly, one_line
from .json_reader import JsonBatches, JsonPlan
from .parquet_writer import write_batches
from .options import ConvertOptions, ConvertResult
from .outputs import Output, as_output
from .sniff import sniff_format
from .streams import DecodedSource, open_decoded

__all__ = ["convert_to_parquet", "verify_parquet", "MAX_PASSES"]

MAX_PASSES = 64
#: How long jemalloc keeps freed pages before returning them to the system (see ``use_jemalloc``).
JEMALLOC_DECAY_MS = 250
PathLike = Union[str, "os.PathLike[str]"]


def _close(src) -> None:
    try:
        src.close()
    except Exception:
        pass


def _convert_csv(first: DecodedSource, open_source, delimiter: str, output: Output,
                 options: ConvertOptions) -> Tuple[int, int, int]:
    check_header_width(first, delimiter, options.max_columns, options.max_row_size)
    plan = CsvPlan(delimiter, options.block_size, options.max_row_size)
    chunked = True  # parse on both cores until the file shows it needs the streaming reader
    src: DecodedSource | None = first
    head = first.head
    while True:
        if src is None:
            src = open_decoded(open_source)
        batches = None
        try:
            batches = (ChunkedCsvBatches if chunked else CsvBatches)(src, plan)
            schema = batches.open()
            batches.writer_busy = threading.Event()  # the parse yields a core to the writer while it encodes
            rows = write_batches(batches, schema, output.start(), options, output.labels, batches.writer_busy)
            if _pin_literal_null_columns(schema, head, plan):
                continue  # the next pass's start() discards this one
            return rows, len(schema), src.bytes_in
        except Widen:
            if plan.passes >= MAX_PASSES:
                raise ConversionError(f"gave up after {plan.passes} passes widening column types") from None
        except Sequential:
            chunked = False
        except RaggedRow as ragged:
            output.discard()
            _close(src)
            src = open_decoded(open_source)
            line = find_ragged_line(src, delimiter, ragged.expected, ragged.actual)
            raise ConversionError(str(ragged), line=line) from None
        finally:
            if batches is not None:
                batches.close()
            if src is not None:
                _close(src)
                src = None


def _pin_literal_null_columns(schema, head: bytes, plan) -> bool:
    """A column read as all-null whose values were literal tokens (``NA``, ``null``…) in the head is
    text, not missing data (``NA`` is Namibia): pin it to string for another pass. Columns that were
    only empty stay null. True when a column was pinned."""
    import csv
    import io

    import pyarrow as pa

    nulls = [i for i, field in enumerate(schema) if pa.types.is_null(field.type) and field.name not in plan.column_types]
    if not nulls:
        return False
    text = head.decode("utf-8", errors="replace")
    rows = csv.reader(io.StringIO(text[: text.rfind("\n") + 1] or text, newline=""), delimiter=plan.delimiter)
    next(rows, None)
    literal: set[int] = set()
    try:
        for row in rows:
            literal.update(i for i in nulls if i < len(row) and row[i] != "")
    except csv.Error:
        pass
    for i in literal:
        plan.column_types[schema.field(i).name] = pa.string()
    return bool(literal)


def _convert_json(first: DecodedSource, open_source, is_array: bool, output: Output,
                  options: ConvertOptions) -> Tuple[int, int, int]:
    plan = JsonPlan(options.max_row_size)
    src: DecodedSource | None = first
    while True:
        if src is None:
            src = open_decoded(open_source)
        try:
            batches = JsonBatches(src, plan, is_array)
            schema = batches.open()
            rows = write_batches(batches, schema, output.start(), options, output.labels)
            return rows, len(schema), src.bytes_in
        except Widen:
            if plan.passes >= MAX_PASSES:
                raise ConversionError(f"gave up after {plan.passes} passes reconciling JSON types") from None
        finally:
            _close(src)
            src = None


def use_jemalloc() -> None:
    """Make jemalloc Arrow's memory pool where the build has it.

    Measured on the 300 MB benchmark CSV: with several threads (readers, writer) mimalloc keeps
    ~50 MiB more resident than jemalloc for the same work, which decides the 256 MiB budget.
    jemalloc then returns freed pages after ``JEMALLOC_DECAY_MS`` instead of its default 1 s.
    Measured on the 1 GiB flights_x35 CSV (one run each, load ~8): decay 0 ms took 26.2 s CPU
    (5.1 s of it system time: pages returned and faulted in again for every row group) at a peak
    of 152 MiB; 250 ms took 23.4 s (2.5 s system) at 160 MiB; 1 s took 22.5 s at 169 MiB.
    """
    import pyarrow as pa

    try:
        if pa.default_memory_pool().backend_name != "jemalloc":
            pa.set_memory_pool(pa.jemalloc_memory_pool())
        pa.jemalloc_set_decay_ms(JEMALLOC_DECAY_MS)
    except (NotImplementedError, AttributeError, pa.ArrowNotImplementedError):  # a build without jemalloc
        pass


def convert_to_parquet(open_source: Callable[[], BinaryIO], sink: Union[Output, PathLike],
                       options: ConvertOptions | None = None) -> ConvertResult:
    """Convert CSV / TSV / JSON / JSON Lines (plain, gzip, bz2, zstd) to a zstd Parquet file.

    ``open_source`` returns a fresh binary stream each call (it may be called again for another
    pass). ``sink`` is a local path or an ``outputs.Output`` (an S3 upload); its ``labels`` go
    into the Parquet footer. Raises ConversionError on any failure and then leaves nothing at
    ``sink`` (the output discarded).
    """
    options = options or ConvertOptions()
    use_jemalloc()
    t0 = time.perf_counter()
    output = as_output(sink)
    src = None
    try:
        with failing_cleanly(output.discard, "conversion", lambda: src):
            src = open_decoded(open_source)
            compression = src.compression
            fmt, delimiter = sniff_format(src.head)
            if fmt in ("csv", "tsv"):
                rows, cols, bytes_in = _convert_csv(src, open_source, delimiter or ",", output, options)
            else:
                rows, cols, bytes_in = _convert_json(src, open_source, fmt == "json", output, options)
            src = None
            return ConvertResult(rows=rows, columns=cols, bytes_in=bytes_in, bytes_out=output.finish(),
                                 seconds=time.perf_counter() - t0, input_format=fmt, compression=compression)
    finally:
        if src is not None:
            _close(src)


def verify_parquet(path: PathLike, expected_rows: int) -> None:
    """Raise ConversionError unless ``path``'s footer reads and holds ``expected_rows`` rows."""
    import pyarrow.parquet as pq

    try:
        meta = pq.read_metadata(os.fspath(path))
    except Exception as exc:
        raise ConversionError(f"Parquet footer unreadable: {one_line(exc)}") from None
    if meta.num_rows != expected_rows:
        raise ConversionError(f"Parquet has {meta.num_rows} rows, expected {expected_rows}")
