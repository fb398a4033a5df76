"""Python's ``round(x, digits)`` of a float64 column, to the bit, at the cost of an Arrow kernel.

Why: ``plan --json`` rounds three saved values a decision (``decision.SAVED_DIGITS``); Python's ``round``
costs ~0.4 µs a value (a correctly rounded decimal conversion each), over half a second for a million
decisions, where Arrow's ``round`` kernel costs nanoseconds. The two differ only where Arrow's shortcut
does: it rounds ``s = fl(x * 10**digits)``, not the exact product, so it can be wrong where the product's
rounding made ``s`` a whole or half number (returning ``x`` itself for a whole one, breaking a tie the exact
product does not have); and it fails where ``s`` overflows. Everywhere else ``s`` lies strictly between the
same two half numbers as the exact product (rounding is monotonic and, below 2**52, half numbers are
doubles), so ``round(s) / 10**digits`` is the nearest double to the same decimal as Python's. So the rows
whose ``2 * s`` is whole (with those, any infinity) are rounded by Python again; a column Arrow cannot round
(an overflow) is rounded by Python throughout.

Example:
    >>> from chalicelib.columns import floats
    >>> rounded(floats([0.1234567, 2.5e-7, -1e-12, 0.0078125]), 6)
    [0.123457, 0.0, -0.0, 0.007812]
"""

from __future__ import annotations

from itertools import repeat
from typing import Any

from chalicelib.columns import f64


def rounded(column: Any, digits: int) -> list[float]:
    """``[round(x, digits) for x in column.to_pylist()]`` (``column``: Arrow float64 without nulls; ``digits`` >= 0)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    try:
        values: list[float] = pc.round(column, ndigits=digits).to_pylist()
    except pa.ArrowInvalid:  # x * 10**digits overflowed
        return list(map(round, column.to_pylist(), repeat(digits)))
    doubled = pc.multiply(column, f64(2.0 * 10.0 ** digits))  # 2 * s: exact, a power of two apart
    suspects = pc.indices_nonzero(pc.equal(pc.floor(doubled), doubled))
    if len(suspects):
        for row, value in zip(suspects.to_pylist(), column.take(suspects).to_pylist(), strict=True):
            values[row] = round(value, digits)
    return values
