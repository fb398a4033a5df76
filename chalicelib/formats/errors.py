"""The one exception the formats package raises.

Every failure of a conversion or recompression — malformed input, truncated compressed
stream, I/O error, a bug surfacing as a pyarrow exception — reaches the caller as a
:class:`ConversionError` whose ``str()`` is one line (except a failed S3 request, which passes
through for the caller to retry: ``is_request_failure``), so it can go straight into a log line,
an audit record or a CLI message.

>>> str(ConversionError("expected 3 fields, saw 4", line=7))
'line 7: expected 3 fields, saw 4'
"""
from __future__ import annotations

import contextlib
from typing import Any, Callable, Iterator, Optional

__all__ = ["ConversionError", "one_line", "failing_cleanly", "is_request_failure", "size_text", "row_too_long"]


def one_line(text: object, limit: int = 300) -> str:
    """Collapse ``text`` to a single trimmed line of at most ``limit`` characters."""
    s = " ".join(str(text).split())
    return s if len(s) <= limit else s[: limit - 1] + "…"


def size_text(n: int) -> str:
    """A byte count as people write it: ``size_text(64 << 20) == "64 MiB"``, else plain bytes.

    >>> size_text(64 << 20), size_text(1536), size_text(1000)
    ('64 MiB', '1.5 KiB', '1,000 bytes')
    """
    for unit, shift in (("GiB", 30), ("MiB", 20), ("KiB", 10)):
        if n >= 1 << shift and (n * 10) % (1 << shift) == 0:
            return f"{n / (1 << shift):g} {unit}"
    return f"{n:,} bytes"


class ConversionError(Exception):
    """A conversion failed; ``str(e)`` is one line, ``e.line`` the 1-based input line or None."""

    def __init__(self, reason: str, line: Optional[int] = None) -> None:
        self.reason = one_line(reason)
        self.line = line
        super().__init__(self.reason if line is None else f"line {line}: {self.reason}")


def is_request_failure(exc: BaseException) -> bool:
    """True for a failed request to S3 (botocore's exceptions: throttling, 5xx, network, a missing key).

    Those pass through unwrapped: whether retrying may help is the caller's to say
    (``chalicelib.errors.describe_error``), and a throttled read is not bad input.

    >>> is_request_failure(ValueError("bad header"))
    False
    """
    return type(exc).__module__.partition(".")[0] == "botocore"


@contextlib.contextmanager
def failing_cleanly(discard: Callable[[], None], what: str, source: Callable[[], Any] = lambda: None) -> Iterator[None]:
    """Any failure inside calls ``discard`` (the partial output is dropped: a file removed, an upload
    aborted) and surfaces as one ConversionError: the decompression error the
    ``source()`` stream recorded (pyarrow may have wrapped it), or ``<what> failed: <reason>``; a failed
    S3 request (``is_request_failure``) passes through as it is."""
    try:
        yield
    except ConversionError:
        discard()
        raise
    except MemoryError:
        discard()
        raise ConversionError("out of memory") from None
    except Exception as exc:
        discard()
        if is_request_failure(exc):
            raise
        recorded = getattr(source(), "error", None)
        if recorded is not None:
            raise recorded from exc
        raise ConversionError(f"{what} failed: {one_line(exc)}") from exc
    except BaseException:
        discard()
        raise


def row_too_long(limit: int, line: Optional[int] = None) -> "ConversionError":
    """The one reason for a row over ``max_row_size`` (CSV record, JSON line or array element)."""
    return ConversionError(f"a row longer than {size_text(limit)} (max_row_size); refusing to hold it in memory", line=line)
