"""Python's ``round(x, digits)`` of a float64 column, to the bit, at the cost of an Arrow kernel.

Why: ``plan --json`` rounds three saved values a decision (``decision.SAVED_DIGITS``); Python's ``round``
costs ~0.4 µs a value (a correctly rounded decimal conversion each), over half a second for a million
decisions, where Arrow's kernels cost nanoseconds.

How: ``s = x * 10**digits`` in doubles, ``m`` its nearest whole number (Arrow's ``round``), and ``m / 10**digits``,
the double nearest that decimal, as Python's. Python rounds the exact product, not ``s``; but where ``s`` is within
less than a half of ``m`` and below 2**51 (where half numbers are doubles), the exact product is too: rounding to
a double is monotonic, so it cannot carry a product across a half number. The other rows (ties, huge values,
infinities, NaN) are rounded by Python again. Arrow's own shortcuts (it returns ``x`` where ``s`` is whole, it
fails where ``s`` overflows) are why ``round`` is asked for ``m`` alone, with no digits.

Example:
    >>> from chalicelib.columns import floats
    >>> rounded(floats([0.1234567, 2.5e-7, -1e-12, 0.0078125]), 6)
    [0.123457, 0.0, -0.0, 0.007812]
"""

from __future__ import annotations

from functools import cache
from typing import Any

from chalicelib.columns import f64


def rounded(column: Any, digits: int) -> list[float]:
    """``[round(x, digits) for x in column.to_pylist()]`` (``column``: Arrow float64 without nulls; ``digits`` >= 0)."""
    import pyarrow.compute as pc

    scale, half, halves_exact = _scalars(digits)
    scaled = pc.multiply(column, scale)
    whole = pc.round(scaled)
    values: list[float] = pc.divide(whole, scale).to_pylist()
    sure = pc.and_(pc.less(pc.abs(pc.subtract(whole, scaled)), half), pc.less(pc.abs(scaled), halves_exact))
    again = pc.indices_nonzero(pc.invert(sure))
    if len(again):
        for row, value in zip(again.to_pylist(), column.take(again).to_pylist(), strict=True):
            values[row] = round(value, digits)
    return values


@cache
def _scalars(digits: int) -> tuple[Any, Any, Any]:
    """``10**digits``, 0.5 and 2**51 (below which every half number is a double) as Arrow scalars, made once."""
    return f64(10.0 ** digits), f64(0.5), f64(2.0 ** 51)
