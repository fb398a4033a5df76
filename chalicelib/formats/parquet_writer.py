"""Parquet writing: bounded row groups, per-column encodings, optional clustering, a writer thread.

* **Row groups** collect record batches until ``row_group_rows`` or ``row_group_bytes`` (Arrow
  size) is reached, so they are big enough for dictionaries and zstd to pay, and memory stays
  bounded whatever the file size.
* **Encodings** are chosen once, on the first row group: every flat column is written on its own
  (a sample of at most ``TRIAL_ROWS`` rows) with each candidate encoding — dictionary, plain,
  ``DELTA_BINARY_PACKED`` (ints, timestamps), ``BYTE_STREAM_SPLIT`` (floats, ints),
  ``DELTA_LENGTH_BYTE_ARRAY`` / ``DELTA_BYTE_ARRAY`` (strings) — compressed with the chosen zstd
  level, and the smallest wins. Sorted timestamps then get deltas, high-cardinality floats byte
  stream split, and low-cardinality strings dictionaries, without a fixed rule per type. A file
  that is one row group (``whole_file``) also tries higher zstd levels (``SMALL_FILE_LEVELS``) and
  gets pages of up to ``DATA_PAGE_SIZE`` bytes instead of 20,000 rows, as sorted files do.
* **sort="auto"** searches, on a sample of the first row group, greedily for up to four sort
  columns among the not-nearly-unique ones (lowest cardinality first) that shrink the sample
  most, and sorts every row group by them (row order changes; the multiset of rows does not).
  If no sort pays, rows keep their order. The file's ``sorting_columns`` metadata says so. Row
  groups are bigger (``SORTED_ROW_GROUP_BYTES``): runs and dictionaries only span a group. The
  sorting runs in a thread of its own, between the producer and the writer (see ``_Sorter``), and
  hands the writer the text keys as dictionaries it need not hash (``sorting.sorted_table``).
* **Footer metadata** records the choices: ``leanlake.encodings`` (each leaf column's
  ``LABEL:LEVEL`` in schema order, see ``encodings_record`` and ``read_encodings``),
  ``leanlake.sort`` (with sort="auto": the sort columns, JSON) and ``leanlake.compat``.
* **Threads**: the caller's thread reads and decodes input and gathers batches into row groups
  (pyarrow releases the GIL) while a writer thread encodes and compresses the previous row group;
  the hand-over waits until the writer has taken the previous group (except after the first, which
  waits in the queue while the writer runs the trials: the reader goes on with the second, and
  then waits to hand it over), so at most two row groups are alive (one being encoded, one being
  gathered or queued); with sort="auto" a sorting thread sits between the two, and three are (one
  being encoded, one sorted, one gathered). While the writer works, the chunked CSV reader parses on one thread
  instead of two (``busy``), so the writer keeps a core. The writer, the slower of the two, runs the
  encoding trials on the first ``TRIAL_ROWS`` rows as soon as they are gathered (a ``_Sample``),
  while the rest of the first row group is read, instead of after it.
"""
from __future__ import annotations

import io
import json
import queue
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Dict, Iterable, List, Mapping, Optional, Tuple

from .errors import ConversionError, one_line
from .options import ConvertOptions
from .outputs import FOOTER_ROWS
from .sorting import Ranks, is_text, rank_encoding, rankable, sort_indices, sorted_table
from .sorting import ranks as rank_of

__all__ = ["write_batches", "choose_encodings", "choose_sort_keys", "read_encodings", "TRIAL_ROWS", "ENCODINGS_KEY",
           "SORT_KEY", "COMPAT_KEY"]

#: Footer key-value metadata keys: what the writer chose (JSON), see ``_RowGroupWriter.metadata``.
ENCODINGS_KEY = "leanlake.encodings"
SORT_KEY = "leanlake.sort"
COMPAT_KEY = "leanlake.compat"
#: The labels ``leanlake.encodings`` uses (short: on a 13 KB CSV the footer metadata is ~5 % of the file).
ENCODING_LABELS = {"dict": "RLE_DICTIONARY", "plain": "PLAIN", "delta": "DELTA_BINARY_PACKED",
                   "dlba": "DELTA_LENGTH_BYTE_ARRAY", "dba": "DELTA_BYTE_ARRAY", "bss": "BYTE_STREAM_SPLIT"}


def encodings_record(choices: List[Tuple[str, int]]) -> str:
    """The ``leanlake.encodings`` value: each leaf column's ``LABEL:LEVEL`` in the schema's leaf
    order, space-separated, a run of N equal ones written once as ``LABEL:LEVEL*N``. Positional, not
    named: column names are already in the footer's schema, and the JSON with names cost ~120 bytes,
    3 % of penguins.csv's Parquet file.

    >>> encodings_record([("plain", 3), ("dict", 3), ("delta", 3), ("delta", 3), ("bss", 6)])
    'plain:3 dict:3 delta:3*2 bss:6'
    """
    runs: List[List[Any]] = []
    for choice in choices:
        if runs and runs[-1][0] == choice:
            runs[-1][1] += 1
        else:
            runs.append([choice, 1])
    return " ".join(f"{label}:{level}" + (f"*{n}" if n > 1 else "") for (label, level), n in runs)


def read_encodings(metadata) -> Dict[str, Tuple[str, int]]:
    """Each leaf column's (encoding label, zstd level) from a leanlake file's footer
    (:class:`pyarrow.parquet.FileMetaData`), by dotted leaf path; ``{}`` when the footer has no record.
    Raises ValueError when the record does not name one choice per leaf column."""
    record = (metadata.metadata or {}).get(ENCODINGS_KEY.encode())
    if record is None:
        return {}
    choices: List[Tuple[str, int]] = []
    for entry in record.decode().split():
        choice, _, count = entry.partition("*")
        label, _, level = choice.partition(":")
        if label not in ENCODING_LABELS or not level.isdigit() or count and not count.isdigit():
            raise ValueError(f"{ENCODINGS_KEY}: {entry!r} is not LABEL:LEVEL[*COUNT]")
        choices += [(label, int(level))] * int(count or 1)
    paths = [metadata.schema.column(i).path for i in range(metadata.num_columns)]
    if len(choices) != len(paths):
        raise ValueError(f"{ENCODINGS_KEY}: {len(choices)} choices for {len(paths)} leaf columns")
    return dict(zip(paths, choices, strict=True))


TRIAL_ROWS = 65_536
#: The key search's sample: the first row group's first rows, as many as the encoding trials'. 100,000 took 1.5x the
#: search time for the same keys on every benchmark table (bench/RESULTS.md; other keys, a file 0.2 % smaller, on the
#: shuffled text-heavy 300 MB one).
SORT_SAMPLE_ROWS = TRIAL_ROWS
SORT_CANDIDATES = 10
SORT_MAX_KEYS = 4
SORT_FOLLOWUPS = 4
SORT_MIN_GAIN = 0.99
SORT_PROXY_LEVEL = 1
DATA_PAGE_SIZE = 1 << 20
#: Rows per data page at most: pyarrow's default, except in a file that is one row group
#: (``whole_file``), whose pages end at ``DATA_PAGE_SIZE`` bytes only (``WHOLE_FILE_PAGE_ROWS``). Each
#: page is one zstd frame, so bigger pages compress better: measured, airports.csv (28k rows, 2 pages
#: per column before) 2.1 % smaller, weather.csv 1.8 %. Not in files of many groups: there they cost
#: memory (airports_x100: 2 % smaller for 21 MiB more peak RSS, 150 -> 171 MiB), except sorted ones
#: (sort="auto" found keys), whose runs they keep in one frame.
PAGE_ROWS = 20_000
WHOLE_FILE_PAGE_ROWS = 1 << 30
QUEUE_DEPTH = 1
#: Wide tables get row groups of at least this many Arrow bytes per column, up to WIDE_GROUP_MAX.
#: Measured at 10,000 columns: 12 MiB row groups held 217 rows, the footer (~180 B per column chunk)
#: was 93 % of the file and the writer's metadata (~875 B per column chunk) grew 8 MiB per group.
GROUP_BYTES_PER_COLUMN = 16 << 10
WIDE_GROUP_MAX = 128 << 20
#: A gathered row group's batches are merged into one once they hold this many arrays: each array
#: costs ~1 KiB beside its values, so 10,000 columns in 70-row batches held 3× more in array
#: objects than in values.
MERGE_ARRAYS = 50_000
#: The most column chunks (columns × row groups) a file may get. The writer keeps ~875 B of metadata
#: per chunk until it closes, and reading the footer back costs as much, so this bounds both near
#: 1 GiB: 10,000 columns × 100 row groups of 128 MiB, or 100 columns × 10,000 of 12 MiB.
MAX_COLUMN_CHUNKS = 1_000_000
_END = object()


def _leaf_paths(schema) -> Dict[str, List[str]]:
    """Map each top-level column to its Parquet leaf column paths (dotted)."""
    import pyarrow.parquet as pq

    import pyarrow as pa

    buf = io.BytesIO()
    # Table.from_batches, not schema.empty_table() / pa.table(): those make pyarrow import pandas (~150 ms)
    pq.write_table(pa.Table.from_batches([], schema=schema), buf, store_schema=False)
    buf.seek(0)
    meta_schema = pq.ParquetFile(buf).schema
    out: Dict[str, List[str]] = {}
    for i in range(len(meta_schema)):
        path = meta_schema.column(i).path
        out.setdefault(path.split(".")[0], []).append(path)
    return out


def _candidates(arrow_type, compat: bool = False) -> List[Tuple[str, Optional[str]]]:
    """(label, encoding) pairs worth trying for one flat column; encoding None = plain.

    ``compat`` keeps to Parquet V1 encodings (dictionary, plain).

    >>> import pyarrow as pa
    >>> [label for label, _ in _candidates(pa.float64())], [label for label, _ in _candidates(pa.float64(), True)]
    (['dict', 'plain', 'bss'], ['dict', 'plain'])
    """
    import pyarrow as pa

    t = arrow_type
    cands: List[Tuple[str, Optional[str]]] = [("dict", None), ("plain", None)]
    if compat:
        if pa.types.is_nested(t) or pa.types.is_dictionary(t):
            return []
        return cands
    if pa.types.is_integer(t) and t.bit_width >= 32 or pa.types.is_timestamp(t) or pa.types.is_date(t) \
            or pa.types.is_time(t):
        cands += [("delta", "DELTA_BINARY_PACKED")]
        if pa.types.is_integer(t) or pa.types.is_timestamp(t):
            cands += [("bss", "BYTE_STREAM_SPLIT")]
    elif pa.types.is_floating(t):
        cands += [("bss", "BYTE_STREAM_SPLIT")]
    elif pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_binary(t):
        cands += [("dlba", "DELTA_LENGTH_BYTE_ARRAY"), ("dba", "DELTA_BYTE_ARRAY")]
    else:
        return []
    return cands


#: A column is compressed at this level instead when its sample shrinks by more than LEVEL_GAIN there:
#: measured, text-born floats (features, scores) shrink ~10 % from level 3 to 6, most other columns < 1 %.
DEFAULT_LEVEL = 3
HIGH_LEVEL = 6
LEVEL_GAIN = 0.03
#: Columns tried at once where the trials would otherwise leave a core idle (``choose_encodings``'s
#: ``threads``): in the key search, on a sorted file's first group (the reader waits for the writer then)
#: and on a file that is one group (the input has ended). The trials are pyarrow's work, which drops the
#: GIL. Not beside the reader of an unsorted file: there a second trial thread took 25-35 MiB more peak
#: RSS (flights_x35, 1.1 GB: 175 -> 200-211 MiB).
TRIAL_THREADS = 2
#: A file that is one small row group (its first group ended below the row-group bounds, so it is the
#: last) gets, per column, the smallest of these levels up to the one its Arrow size allows
#: (``SMALL_FILE_LEVELS``: Arrow bytes at most -> highest level tried). Where the whole file is a few
#: MB the time is the interpreter's, not zstd's: measured on airports.csv (3 MB, text) levels up to
#: 15 made it 3.6 % smaller than 3 and 6, on penguins.csv (15 KB) up to 19 2.6 %. Levels 9 and 12
#: in the ladder changed no benchmark file's size, and cost a trial each.
LEVEL_LADDER = (3, 6, 15, 19)
SMALL_FILE_LEVELS = ((1 << 20, 19), (8 << 20, 15))


def whole_file(table, options: ConvertOptions, columns: int, nbytes: Optional[int] = None) -> bool:
    """Whether the first row group, ``table``, is the whole file: it ended below the row-group bounds,
    so the input ended (a full group may be followed by more). ``nbytes``: its Arrow size as gathered, when
    a sort has changed it since (``sorted_table`` dictionary-encodes the text keys); ``table.nbytes`` if None.

    >>> import pyarrow as pa
    >>> t = pa.table({"x": list(range(1000))})
    >>> whole_file(t, ConvertOptions(), 1), whole_file(t, ConvertOptions(row_group_rows=1000), 1)
    (True, False)
    """
    size = table.nbytes if nbytes is None else nbytes
    return table.num_rows < options.row_group_rows and size < group_bytes(columns, options)


def small_file_level(table, options: ConvertOptions, columns: int, nbytes: Optional[int] = None) -> int:
    """The highest zstd level worth trying for a file whose first row group is ``table`` (``nbytes``: as in
    ``whole_file``): from ``SMALL_FILE_LEVELS`` when that group is the whole file, else ``HIGH_LEVEL`` (each
    group would pay the higher levels' time).

    >>> import pyarrow as pa
    >>> t = pa.table({"x": list(range(1000))})
    >>> small_file_level(t, ConvertOptions(), 1), small_file_level(t, ConvertOptions(row_group_rows=1000), 1)
    (19, 6)
    """
    size = table.nbytes if nbytes is None else nbytes
    if options.level is not None or not whole_file(table, options, columns, size):
        return HIGH_LEVEL
    return next((level for limit, level in SMALL_FILE_LEVELS if size <= limit), HIGH_LEVEL)


def _trial(col, name: str, label: str, enc: Optional[str], level: int, page_rows: int = PAGE_ROWS) -> int:
    """Bytes of one column written with one encoding at one zstd level (a huge number if it fails)."""
    import pyarrow.parquet as pq

    buf = io.BytesIO()
    try:
        pq.write_table(col, buf, compression="zstd", compression_level=level, use_dictionary=(label == "dict"),
                       column_encoding=({name: enc} if enc else None), data_page_size=DATA_PAGE_SIZE,
                       max_rows_per_page=page_rows, store_schema=False, write_statistics=False)
    except Exception:
        return 1 << 62
    return buf.tell()


def choose_encodings(table, level: Optional[int], compat: bool = False, max_level: int = HIGH_LEVEL,
                     page_rows: int = PAGE_ROWS, threads: int = 1) -> Tuple[List[str], Dict[str, str], Dict[str, int]]:
    """Pick, per column, the encoding (and zstd level) that compresses a sample of ``table`` smallest.

    Returns ``(dictionary_columns, column_encoding, column_level)`` for
    :class:`pyarrow.parquet.ParquetWriter` (leaf paths). Nested and unusual columns keep the default
    (dictionary where possible). With ``level`` None, columns are tried at ``DEFAULT_LEVEL`` and go to
    ``HIGH_LEVEL`` where that pays; with a ``max_level`` above ``HIGH_LEVEL`` (a small file, see
    ``small_file_level``), each column's encoding is tried at every ``LEVEL_LADDER`` level up to it
    and the smallest wins. An explicit ``level`` is used for every column. ``compat`` keeps to
    Parquet V1 encodings (dictionary or plain). ``page_rows``: the file's rows per page at most.
    ``threads``: columns tried at once (the choice is the same).
    """
    adaptive = level is None
    level = DEFAULT_LEVEL if level is None else level
    sample = _decoded(table.slice(0, TRIAL_ROWS))
    leaves = _leaf_paths(sample.schema)

    def choose(i: int) -> Tuple[List[str], Optional[str], Optional[int]]:
        """Column ``i``'s choice: its leaf paths, its encoding (None: dictionary, "": plain) and its level
        (None: ``level``)."""
        field = sample.schema.field(i)
        cands = _candidates(field.type, compat)
        paths = leaves.get(field.name, [])
        if not cands or len(paths) != 1 or sample.num_rows == 0:
            return paths, None, None
        col = sample.select([i])
        size, label, enc = min((_trial(col, field.name, label, enc, level, page_rows), label, enc)
                               for label, enc in cands)
        encoding = None if label == "dict" else enc or ""
        if adaptive and max_level > HIGH_LEVEL:
            best = min((_trial(col, field.name, label, enc, high, page_rows), high)
                       for high in LEVEL_LADDER if level < high <= max_level)
            return paths, encoding, best[1] if best[0] < size else None
        if adaptive and _trial(col, field.name, label, enc, HIGH_LEVEL, page_rows) < size * (1 - LEVEL_GAIN):
            return paths, encoding, HIGH_LEVEL
        return paths, encoding, None

    columns = range(len(table.schema))
    if threads > 1:
        with ThreadPoolExecutor(max_workers=threads, thread_name_prefix="leanlake-trials") as pool:
            choices = list(pool.map(choose, columns))  # in column order
    else:
        choices = [choose(i) for i in columns]
    dict_cols: List[str] = []
    encodings: Dict[str, str] = {}
    levels: Dict[str, int] = {}
    for paths, encoding, high in choices:
        if encoding is None:
            dict_cols.extend(paths)
        elif encoding:
            encodings[paths[0]] = encoding
        if high is not None:
            levels[paths[0]] = high
    return dict_cols, encodings, levels


def _decoded(table):
    """``table`` with its dictionary columns (a sorted group's text keys, see ``sorted_table``) decoded: a
    trial of a few rows then writes the dictionary of their values, as for any other column, not the group's.

    >>> import pyarrow as pa
    >>> t = pa.table({"k": pa.array(["b", "a", "b"]).dictionary_encode(), "n": [1, 2, 3]})
    >>> _decoded(t.slice(0, 1)).schema.field("k").type, _decoded(t).column("k").to_pylist()
    (DataType(string), ['b', 'a', 'b'])
    """
    import pyarrow as pa

    if not any(pa.types.is_dictionary(field.type) for field in table.schema):
        return table
    columns = [column.cast(field.type.value_type) if pa.types.is_dictionary(field.type) else column
               for field, column in zip(table.schema, table.columns, strict=True)]
    return pa.Table.from_arrays(columns, names=table.schema.names)


def _sample_size(table, encodings: Tuple[List[str], Dict[str, str], Dict[str, int]]) -> int:
    """Bytes of ``table`` as quick zstd Parquet with per-column ``encodings`` (as from
    :func:`choose_encodings`): the proxy the sort search minimises. With the encodings the file will
    have, not dictionaries everywhere: an order that makes a number column's deltas small only
    shows with ``DELTA_BINARY_PACKED`` (measured on penguins.csv: body mass, 5.7 % smaller)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    dict_cols, column_encoding, _ = encodings
    sink = pa.MockOutputStream()  # counts the bytes, keeps none
    pq.write_table(table, sink, compression="zstd", compression_level=SORT_PROXY_LEVEL, store_schema=False,
                   use_dictionary=dict_cols or False, column_encoding=column_encoding or None,
                   data_page_size=DATA_PAGE_SIZE, max_rows_per_page=WHOLE_FILE_PAGE_ROWS,
                   write_statistics=False, row_group_size=max(1, table.num_rows))
    return sink.size()


def _dictionary_encoded(sample, dict_cols: List[str], encoded: Mapping[str, Any] | None = None):
    """``sample`` with its text and binary ``dict_cols`` dictionary-encoded (``encoded`` holds those done
    already), once for every trial of the key search: a trial then takes integer indices instead of
    strings, and the writer writes the dictionary as it is instead of hashing the strings again
    (measured on airports_x100's sample: 42 -> 31 ms a trial). Every trial writes the same dictionary
    page (in the sample's order, where a trial's own would be in its order of first appearance), so
    trials differ in their data pages only; the search chose the same keys on every benchmark table.
    Other types gain nothing (Parquet hashes their values whatever it is given) and stay as they are.

    >>> import pyarrow as pa
    >>> t = _dictionary_encoded(pa.table({"s": ["a", "b", "a"], "x": [1.0, 2.0, 1.0]}), ["s", "x"])
    >>> str(t.schema.field("s").type), str(t.schema.field("x").type)
    ('dictionary<values=string, indices=int32, ordered=0>', 'double')
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    wanted = set(dict_cols)
    done = encoded or {}
    columns = []
    for field, column in zip(sample.schema, sample.columns, strict=True):
        if field.name in wanted and is_text(field.type):
            column = done[field.name] if field.name in done else pc.dictionary_encode(column)
        columns.append(column)
    return pa.Table.from_arrays(columns, names=sample.schema.names)


def choose_sort_keys(table) -> List[str]:
    """Greedy search for sort columns that make a sample of ``table`` compress smallest.

    Candidates are the :func:`.sorting.rankable` columns that are not nearly unique (distinct ≤ rows/2), the
    ``SORT_CANDIDATES`` lowest-cardinality ones. Starting from no sort, each round adds the
    candidate whose sort shrinks the sample most, while it shrinks it by at least 1 %, in its place
    by cardinality: before the first key with more distinct values (the region goes before an
    airport name chosen first, and a finer key after the others). The next
    round tries the ``SORT_FOLLOWUPS`` runners-up only; at most ``SORT_MAX_KEYS`` rounds. An empty
    result means sorting does not pay (row order is kept). The sample is measured with the
    encodings :func:`choose_encodings` picks for it (see ``_sample_size``).
    """
    import pyarrow.compute as pc

    sample = table.slice(0, SORT_SAMPLE_ROWS).combine_chunks()  # one chunk: sorts and takes ~30 % faster
    rows = sample.num_rows
    if rows < 2:
        return []
    # Each rankable column encoded once: its dictionary counts its distinct values, and gives a candidate's ranks.
    encoded: Dict[str, Any] = {}
    for field in sample.schema:
        if rankable(field.type):
            try:
                encoded[field.name] = rank_encoding(sample.column(field.name))
            except Exception:
                continue
    distinct = {name: len(e.dictionary) for name, e in encoded.items() if 1 < len(e.dictionary) <= rows // 2}
    candidates = sorted(distinct, key=lambda name: distinct[name])[:SORT_CANDIDATES]
    if not candidates:
        return []
    keys: List[str] = []
    # The writer waits for the search, so both cores are free: the trials run two at a time (they are
    # pyarrow's work, which drops the GIL), and this thread ranks while the encodings are tried.
    with ThreadPoolExecutor(max_workers=2, thread_name_prefix="leanlake-sort-search") as pool:
        chosen = pool.submit(choose_encodings, sample, 1, page_rows=WHOLE_FILE_PAGE_ROWS, threads=TRIAL_THREADS)
        # each candidate's ranks in the sample, computed once for every trial order
        ranks: Dict[str, Ranks] = {name: rank_of(sample.column(name), encoded[name]) for name in candidates}
        del encoded
        # the text columns' dictionaries for the proxy, while the encodings are still being tried
        text = {}
        for field in sample.schema:
            if chosen.done():
                break
            if is_text(field.type):
                text[field.name] = pc.dictionary_encode(sample.column(field.name))
        encodings = chosen.result()
        proxy = _dictionary_encoded(sample, encodings[0], text)
        del text
        unsorted = pool.submit(_sample_size, proxy, encodings)

        def trial(name: str) -> Tuple[int, str]:
            return _sample_size(proxy.take(sort_indices(sample, placed(name), ranks)), encodings), name

        def placed(name: str) -> List[str]:
            """``keys`` with ``name`` before the first key of more distinct values (a hierarchy: coarse first)."""
            at = next((j for j, key in enumerate(keys) if distinct[key] > distinct[name]), len(keys))
            return keys[:at] + [name] + keys[at:]

        best = None
        while candidates and len(keys) < SORT_MAX_KEYS:
            trials = [pool.submit(trial, name) for name in candidates]
            sizes = sorted(f.result() for f in trials)  # ties: by name
            best = unsorted.result() if best is None else best
            size, name = sizes[0]
            if size > best * SORT_MIN_GAIN:
                break
            best, keys = size, placed(name)
            # later rounds try only the candidates that did best in this one (measured: the same keys
            # on the benchmark tables, 40 % fewer trials)
            candidates = [n for _, n in sizes[1:SORT_FOLLOWUPS + 1]]
    return keys


class _RowGroupWriter:
    """Accumulates batches into row groups and writes them (runs in the writer thread)."""

    def __init__(self, stream: Any, schema, options: ConvertOptions, labels: Mapping[str, str]) -> None:
        self.stream = stream
        self.labels = labels
        self.schema = schema
        self.options = options
        self.level = DEFAULT_LEVEL if options.level is None else options.level
        self.pending: List[Any] = []
        self.rows = 0
        self.writer: Any = None
        self.sort_keys: List[str] = []
        self.choices: List[Tuple[str, int]] = []  # (label, level) per leaf column, in schema order
        self.encodings: Optional[Tuple[List[str], Dict[str, str], Dict[str, int]]] = None
        self.first_bytes: Optional[int] = None  # the first group's Arrow size as gathered, when a sort changed it
        self.chosen = threading.Event()  # set once the encodings are chosen (or the writer failed or stopped)

    def prepare(self, sample: Any) -> None:
        """Choose the encodings on ``sample``, the first row group's first ``TRIAL_ROWS`` (or more) rows
        in the same chunks: the choice is the one the whole group would give (``choose_encodings``
        tries only its first ``TRIAL_ROWS`` rows) when the file has more row groups; a file that turns
        out to be one row group chooses again in ``_open``, with the higher levels and bigger pages."""
        self.encodings = choose_encodings(sample, self.options.level, self.options.compat)

    def add(self, batches: List[Any]) -> None:
        """Write one row group made of ``batches``."""
        self.pending = batches
        self.flush()

    def _open(self, first: Any) -> Any:
        import pyarrow.parquet as pq

        leaves = [p for ps in _leaf_paths(self.schema).values() for p in ps]
        page_rows = PAGE_ROWS
        if first is not None and first.num_rows:
            threads = 1
            if whole_file(first, self.options, len(self.schema), self.first_bytes) or self.sort_keys:
                page_rows = WHOLE_FILE_PAGE_ROWS  # sorted runs, too, compress better in bigger pages
                self.encodings = None  # chosen on the sample for pages of PAGE_ROWS and levels up to HIGH_LEVEL
                threads = TRIAL_THREADS  # the reader has ended, or waits for this first sorted group
            dict_cols, encodings, levels = self.encodings or choose_encodings(
                first, self.options.level, self.options.compat,
                max_level=small_file_level(first, self.options, len(self.schema), self.first_bytes), page_rows=page_rows,
                threads=threads)
        else:
            dict_cols, encodings, levels = leaves, {}, {}
        labels = {enc: label for label, enc in ENCODING_LABELS.items()}
        for p in leaves:
            label = labels[encodings[p]] if p in encodings else "dict" if p in dict_cols else "plain"
            self.choices.append((label, levels.get(p, self.level)))
        sorting = None
        if self.sort_keys:
            names = self.schema.names
            sorting = [pq.SortingColumn(names.index(k)) for k in self.sort_keys]
        self.writer = pq.ParquetWriter(
            # a sorted group's text keys are dictionaries (see ``sorted_table``): the same Parquet schema
            self.stream, first.schema if self.sort_keys and first is not None else self.schema, compression="zstd",
            compression_level={p: levels.get(p, self.level) for p in leaves} if levels else self.level,
            use_dictionary=dict_cols or False, column_encoding=encodings or None,
            data_page_size=DATA_PAGE_SIZE, max_rows_per_page=page_rows, store_schema=False, write_statistics=True,
            sorting_columns=sorting,  # data pages stay V1 (pyarrow's default), which compat needs
        )
        self.chosen.set()
        return first

    def flush(self) -> None:
        import pyarrow as pa

        if not self.pending:
            return
        first = self.pending[0]
        table = first if isinstance(first, pa.Table) else pa.Table.from_batches(self.pending, schema=self.schema)
        self.pending = []
        if self.writer is None:
            table = self._open(table)
        self.writer.write_table(table, row_group_size=max(1, table.num_rows))
        self.rows += table.num_rows

    def close(self) -> int:
        self.flush()
        if self.writer is None:
            self._open(None)
        self.writer.add_key_value_metadata({**self.labels, **self.metadata(), FOOTER_ROWS: str(self.rows)})
        self.writer.close()
        return self.rows

    def metadata(self) -> Dict[str, str]:
        """What the writer chose, for the footer's key-value metadata: under ``ENCODINGS_KEY`` each leaf
        column's ``LABEL:LEVEL`` (an ``ENCODING_LABELS`` label, the zstd level) in schema order, e.g.
        ``dba:6 dict:3*2`` (see ``encodings_record``); with sort="auto", under ``SORT_KEY`` the sort
        columns (JSON, ``[]``: no order paid, row order kept)."""
        meta = {ENCODINGS_KEY: encodings_record(self.choices)}
        if self.options.sort == "auto":
            meta[SORT_KEY] = json.dumps(self.sort_keys, ensure_ascii=False)
        if self.options.compat:
            meta[COMPAT_KEY] = "true"
        return meta

    def abort(self) -> None:
        try:
            if self.writer is not None:
                self.writer.close()
        except Exception:
            pass


class _Sample:
    """Queue item: the first row group's first rows, for :meth:`_RowGroupWriter.prepare`."""

    def __init__(self, table: Any) -> None:
        self.table = table


class _Sorter:
    """``sort="auto"``: orders each gathered row group, in a sorting thread between the producer and the
    writer (``write_batches``), so that the next group is gathered while one is sorted: with the
    sorted file's bigger row groups (``SORTED_ROW_GROUP_BYTES``) the writer, with fewer bytes to
    compress, waited for a producer that parsed and sorted in turn (0.6-0.8 s of a 4 s conversion of the
    300 MB text-heavy CSV); with 12 MiB groups the writer was the slower side and a third thread only
    took its core (bench/RESULTS.md). Sorting in the writer's thread cost 1.9x the default's time.
    The keys are chosen on the first row group's first ``SORT_SAMPLE_ROWS``
    rows and kept for the file: the search starts in a thread of its own as soon as those rows are
    gathered (``search``), while the rest of the first row group is read, since the writer can start
    nothing before the keys are known. The sort is :func:`.sorting.sorted_table`: the order of
    ``pc.sort_indices`` (nulls last, ties stable) from integer ranks, ~2x faster per row group (sort and
    take) on string keys, with the text keys as sorted dictionaries."""

    def __init__(self, schema) -> None:
        self.schema = schema
        self.keys: Optional[List[str]] = None
        self._search: Optional[Future] = None

    def search(self, first_rows: Any) -> None:
        """Start choosing the keys on ``first_rows`` (a table of the first row group's first rows, at least
        ``SORT_SAMPLE_ROWS`` of them), in a thread of its own; the first call of the sorter waits for it."""
        if self._search is None and self.keys is None:
            self._search = Future()
            threading.Thread(target=_settle, args=(self._search, choose_sort_keys, first_rows),
                             name="leanlake-sort-search", daemon=True).start()

    def __call__(self, group: List[Any]) -> List[Any]:
        import pyarrow as pa

        # not combined into one chunk: the ranks combine the key columns only, and take on the chunks was
        # faster (115k rows: 17 ms against 2 ms to combine + 25 ms) with no copy of the group alive
        table = pa.Table.from_batches(group, schema=self.schema)
        if self.keys is None:
            self.keys = choose_sort_keys(table) if self._search is None else self._search.result()
        if not self.keys:
            return [table.combine_chunks()]  # one chunk, as before: the writer's pages are cut the same way
        return [sorted_table(table, self.keys)]  # one chunk, text keys as dictionaries


def _settle(future: Future, function: Any, *args: Any) -> None:
    """Run ``function(*args)`` and settle ``future`` with what it returns or raises (a thread's target)."""
    try:
        future.set_result(function(*args))
    except BaseException as exc:  # noqa: BLE001 - raised where the result is read
        future.set_exception(exc)


def group_bytes(columns: int, options: ConvertOptions) -> int:
    """The Arrow size at which a row group is written: ``options.group_bytes_limit``, more for wide tables.

    >>> group_bytes(10, ConvertOptions()) >> 20, group_bytes(10_000, ConvertOptions()) >> 20
    (12, 128)
    """
    return max(options.group_bytes_limit, min(columns * GROUP_BYTES_PER_COLUMN, WIDE_GROUP_MAX))


def write_batches(batches: Iterable[Any], schema, stream: Any, options: ConvertOptions,
                  labels: Mapping[str, str] | None = None, busy: Optional[threading.Event] = None) -> int:
    """Write ``batches`` (all of ``schema``) as Parquet to the writable ``stream`` in a writer thread; return rows written.

    ``labels`` (with the rows written, ``FOOTER_ROWS``) go into the footer's key-value metadata.
    ``busy``, if given, is set while the writer thread works on a row group (or the encoding trials)
    and clear while it waits for one, so the producer can leave it a core (see ``CsvBatches.writer_busy``).
    Exceptions from iterating ``batches`` propagate unchanged (after the writer stopped);
    failures of the writer become ConversionError. On failure what ``stream`` holds is partial:
    the caller discards it. The stream is not closed.
    """
    import pyarrow as pa

    q: "queue.Queue[Any]" = queue.Queue(maxsize=QUEUE_DEPTH)
    state: Dict[str, Any] = {"error": None, "rows": 0}
    sink = _RowGroupWriter(stream, schema, options, labels or {})
    sorter = _Sorter(schema) if options.sort == "auto" else None

    def run() -> None:
        while True:
            item = q.get()
            q.task_done()  # the producer may start the next row group now
            if item is _END or item is None:
                break
            if state["error"] is not None:
                continue  # drain so the producer never blocks
            if busy is not None:
                busy.set()
            try:
                if isinstance(item, _Sample):
                    sink.prepare(item.table)
                else:
                    sink.add(item)
            except BaseException as exc:  # noqa: BLE001 - reported to the producer
                state["error"] = exc
                sink.chosen.set()
            finally:
                if busy is not None:
                    busy.clear()
        sink.chosen.set()
        if item is _END and state["error"] is None:
            try:
                state["rows"] = sink.close()
                return
            except BaseException as exc:  # noqa: BLE001
                state["error"] = exc
        sink.abort()

    # sort="auto": a third stage between the two sorts each gathered group while the next is gathered
    sorting: "queue.Queue[Any]" = queue.Queue(maxsize=QUEUE_DEPTH)

    def sort_run(sorter: _Sorter) -> None:
        while True:
            item = sorting.get()
            sorting.task_done()  # the producer may start gathering the next group
            if item is _END or item is None:
                q.put(item)  # the end (or the abort) reaches the writer after every sorted group
                return
            if state["error"] is not None:
                continue  # drain so the producer never blocks
            try:
                group = sorter(item)
                sink.sort_keys = sorter.keys or []  # read by the writer when it opens, after this put
            except BaseException as exc:  # noqa: BLE001 - reported to the producer
                state["error"] = exc
                continue
            del item
            q.put(group)
            del group
            q.join()  # hold no sorted group while the writer has one waiting
            # the writer's trials on the first group, then its first pages, wait for nothing else: let them have
            # the cores before sorting the second (measured, airports_x100: 1.25x the default's time, not 1.33x)
            sink.chosen.wait()

    threads = [threading.Thread(target=run, name="leanlake-parquet-writer", daemon=True)]
    if sorter is not None:
        threads.insert(0, threading.Thread(target=sort_run, args=(sorter,), name="leanlake-sort", daemon=True))
    for thread in threads:
        thread.start()
    inbox = q if sorter is None else sorting  # where the producer puts its groups and the end
    ok = False
    try:
        limit = group_bytes(len(schema), options)
        max_groups = max(1, MAX_COLUMN_CHUNKS // max(1, len(schema)))
        groups = 0

        def put(group: List[Any]) -> None:
            nonlocal groups
            groups += 1
            if groups > max_groups:
                raise ConversionError(f"more than {MAX_COLUMN_CHUNKS:,} column chunks ({len(schema):,} columns × "
                                      f"{groups:,} row groups): the footer would not fit in memory")
            if sorter is not None and groups == 1:
                sink.first_bytes = sum(batch.nbytes for batch in group)
            inbox.put(group)

        group: List[Any] = []
        rows = nbytes = merged = 0  # group[:merged] are batches merged already (or kept as sampled)
        sample_due = sorter is None  # a sorted group's first rows are known only once it is complete
        for batch in batches:
            if batch.num_rows == 0:
                continue
            group.append(batch)
            rows += batch.num_rows
            nbytes += batch.nbytes
            if (len(group) - merged) * len(schema) >= MERGE_ARRAYS and len(group) - merged > 1:
                group[merged:] = [pa.concat_batches(group[merged:])]
                merged = len(group)
            if sorter is not None and groups == 0 and rows >= SORT_SAMPLE_ROWS:
                sorter.search(pa.Table.from_batches(group, schema=schema))  # once: the search's sample is gathered
            if sample_due and rows >= TRIAL_ROWS and rows < options.row_group_rows and nbytes < limit:
                q.put(_Sample(pa.Table.from_batches(group, schema=schema)))  # no join: the writer is idle
                merged = len(group)  # the group keeps the sample's chunks, so the trials see the same data
                sample_due = False
            if rows >= options.row_group_rows or nbytes >= limit:
                put(group)
                group, rows, nbytes, merged, sample_due = [], 0, 0, 0, False
                if groups > 1:  # the first waits in the queue while the writer runs the trials: go on gathering
                    # at most two row groups alive (one being written, one gathered or queued), three when sorted
                    # (one being written, one sorted, one gathered)
                    inbox.join()
                if state["error"] is not None:
                    break
        if group and state["error"] is None:
            put(group)
        del group
        inbox.put(_END)
        for thread in threads:
            thread.join()
        if state["error"] is not None:
            exc = state["error"]
            if isinstance(exc, ConversionError):
                raise exc
            raise ConversionError(f"writing Parquet failed: {one_line(exc)}") from exc
        ok = True
        return state["rows"]
    finally:
        if not ok and threads[-1].is_alive():
            inbox.put(None)
            for thread in threads:
                thread.join()
