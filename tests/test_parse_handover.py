"""The hand-over between the chunked CSV parse and the Parquet writer thread.

While the writer encodes a row group (``writer_busy`` set) on two cores or fewer, the chunked reader
parses one piece at a time, leaving the writer a core; while the writer waits for rows, or where
there are cores enough, two pieces parse at once. The
output does not depend on it: the same rows, in the same order, whichever way the pieces parsed.
"""
from __future__ import annotations

import io
import threading
import time

import pyarrow.parquet as pq

from chalicelib.formats import ConvertOptions, convert_to_parquet
from chalicelib.formats.csv_reader import ChunkedCsvBatches, CsvPlan, _byte_counter, record_chunks
from chalicelib.formats.parquet_writer import write_batches


def _csv(rows: int) -> bytes:
    return b"id,name,score\n" + b"".join(b"%d,n%d,%d.5\n" % (i, i % 97, i % 13) for i in range(rows))


def _most_parsing_at_once(data: bytes, busy: threading.Event, cores: int = 2) -> int:
    """Iterate a chunked pass over ``data`` (small pieces) on ``cores`` cores and return how many
    pieces parsed at once."""
    batches = ChunkedCsvBatches(io.BytesIO(data), CsvPlan(",", 1 << 20))
    batches.PIECE = 4096
    batches.writer_busy = busy
    batches.cores = cores
    batches.open()
    parse, running, most, lock = batches._parse, [0], [0], threading.Lock()

    def slow_parse(*args, **kwargs):
        with lock:
            running[0] += 1
            most[0] = max(most[0], running[0])
        try:
            time.sleep(0.02)  # long enough for a second piece to start, were it allowed to
            return parse(*args, **kwargs)
        finally:
            with lock:
                running[0] -= 1

    batches._parse = slow_parse  # type: ignore[method-assign]
    try:
        rows = sum(batch.num_rows for batch in batches)
    finally:
        batches.close()
    assert rows == 5000
    return most[0]


def test_pieces_parse_one_at_a_time_while_the_writer_encodes():
    busy = threading.Event()
    busy.set()
    assert _most_parsing_at_once(_csv(5000), busy) == 1


def test_pieces_parse_two_at_a_time_while_the_writer_waits():
    assert _most_parsing_at_once(_csv(5000), threading.Event()) == 2


def test_pieces_parse_two_at_a_time_where_the_writer_has_a_core_of_its_own():
    busy = threading.Event()
    busy.set()
    assert _most_parsing_at_once(_csv(5000), busy, cores=3) == 2


def test_the_writer_is_busy_only_while_it_works(tmp_path):
    """``busy`` is set while the writer thread has a row group, clear while it waits and at the end."""
    import pyarrow as pa

    busy, done, states = threading.Event(), threading.Event(), set()
    batch = pa.record_batch({"x": list(range(20_000)), "s": [f"v{i % 977}" for i in range(20_000)]})

    def watch() -> None:
        while not done.is_set():
            states.add(busy.is_set())
            time.sleep(0.0005)

    def batches():
        for _ in range(8):
            yield batch
            time.sleep(0.05)  # the writer is done with the previous group by now, and waits

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        with open(tmp_path / "out.parquet", "wb") as f:
            rows = write_batches(batches(), batch.schema, f, ConvertOptions(row_group_rows=40_000), busy=busy)
    finally:
        done.set()
        watcher.join()
    assert rows == 160_000 and not busy.is_set()
    assert states == {True, False}
    assert pq.read_table(tmp_path / "out.parquet").column("x").to_pylist() == list(range(20_000)) * 8


def test_the_converted_rows_keep_their_order(tmp_path):
    data = _csv(200_000)
    out = tmp_path / "out.parquet"
    convert_to_parquet(lambda: io.BytesIO(data), out, ConvertOptions(row_group_rows=30_000))
    assert pq.read_table(out).column("id").to_pylist() == list(range(200_000))


def test_counting_quotes_and_newlines_matches_bytes_count():
    count = _byte_counter()
    data = b'a,"b\n""c",d\n' * 50_000 + b'x"'
    for end in (0, 1, 13, 262_144, 262_145, len(data)):
        assert count(data, ord('"'), end) == data.count(b'"', 0, end)
        assert count(data, ord("\n"), end) == data.count(b"\n", 0, end)


def test_pieces_still_end_at_record_boundaries_past_quoted_newlines():
    data = b"a,b\n" + b'1,"x\ny"\n' * 100_000
    pieces = list(record_chunks(io.BytesIO(data), 1 << 16, 1 << 20))
    assert b"".join(pieces) == data
    assert all(piece.count(b'"') % 2 == 0 and piece.endswith(b"\n") for piece in pieces)
