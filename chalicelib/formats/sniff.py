"""Content sniffing: text or not, JSON array / JSON Lines / delimited text, and the delimiter.

Decided on the decompressed head only (no file names):

* first non-space character ``[`` → JSON array, ``{`` → JSON Lines, else delimited text;
* the delimiter is the candidate among ``,`` ``;`` ``\\t`` ``|`` that splits the head's complete
  records (parsed quote-aware with :mod:`csv`) into the same number (>1) of fields most often;
  ties go to the earlier candidate, and a file no candidate splits is one ``,`` column.

>>> sniff_format(b'a;b\\n1;"x;y"\\n')
('csv', ';')
>>> sniff_format(b'  [{"a": 1}]')
('json', None)
"""
from __future__ import annotations

import csv
import io
from typing import Optional, Tuple

from .errors import ConversionError

__all__ = ["sniff_format", "check_text"]

CANDIDATES = (",", "\t", ";", "|")
_MAX_SNIFF_RECORDS = 200


def check_text(head: bytes) -> str:
    """Decode the head as UTF-8 or raise ConversionError("not text: ...")/("empty file")."""
    if not head.strip():
        raise ConversionError("empty file")
    nul = head.find(b"\x00")
    if nul >= 0:
        raise ConversionError(f"not text: NUL byte at offset {nul}")
    try:
        return head.decode("utf-8")
    except UnicodeDecodeError as exc:
        if exc.start >= len(head) - 3 and exc.reason in ("unexpected end of data",):
            return head[: exc.start].decode("utf-8")  # a character cut by the head boundary
        raise ConversionError(f"not text: invalid UTF-8 at byte {exc.start}") from None


def _complete_records(text: str) -> str:
    """Drop the last (possibly cut) line of the head."""
    cut = text.rfind("\n")
    return text[: cut + 1] if cut > 0 else text


def _score(sample: str, delim: str) -> Tuple[float, int]:
    reader = csv.reader(io.StringIO(sample), delimiter=delim, quotechar='"', doublequote=True, strict=False)
    counts = []
    try:
        for row in reader:
            if row:
                counts.append(len(row))
            if len(counts) >= _MAX_SNIFF_RECORDS:
                break
    except csv.Error:
        return (0.0, 0)
    if not counts or counts[0] < 2:
        return (0.0, 0)
    same = sum(1 for c in counts if c == counts[0])
    return (same / len(counts), counts[0])


def sniff_format(head: bytes) -> Tuple[str, Optional[str]]:
    """Return ``(input_format, delimiter)``: ``("json"|"jsonl", None)`` or ``("csv"|"tsv", d)``."""
    text = check_text(head)
    stripped = text.lstrip()
    if stripped.startswith("["):
        return "json", None
    if stripped.startswith("{"):
        return "jsonl", None
    sample = _complete_records(text)
    best, best_score = ",", (0.0, 0)
    for delim in CANDIDATES:
        score = _score(sample, delim)
        if score > best_score:
            best, best_score = delim, score
    return ("tsv" if best == "\t" else "csv"), best
