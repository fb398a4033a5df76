"""``rounding.rounded`` (Arrow's ``round`` kernel, checked) gives, to the bit, what Python's ``round`` gives.

``plan --json`` writes the saved columns rounded by it where ``Decision.as_dict`` rounds with Python: any
difference, in any bit (a ``-0.0``, a NaN, the last digit of a tie) would change the output. The floats
drawn include the edges (zeros of both signs, NaN, infinities, subnormals, values that overflow when
scaled) and the values where Arrow's shortcut is wrong: decimals that sit on a tie or on a whole number
once scaled by ``10**digits``, and their neighbours a few ulps away.
"""

from __future__ import annotations

import math
import struct

from hypothesis import given, settings
from hypothesis import strategies as st

from chalicelib.columns import floats
from chalicelib.decision import SAVED_DIGITS
from chalicelib.rounding import rounded

EDGES = [0.0, -0.0, math.nan, -math.nan, math.inf, -math.inf, 5e-324, -5e-324, 2.2250738585072014e-308, 1e-7, -1e-10,
         5e-7, -5e-7, 0.0078125, 0.30000000000000004, 1e300, -1e300, 1.7976931348623157e308, 2.0**52, 2.0**53 + 2,
         -0.49999999999999994e-6, 0.49999999999999994e-9]


def _bits(values: list[float]) -> list[bytes]:
    """Each value's bytes: equal for equal values, -0.0 and NaNs included."""
    return [struct.pack("<d", v) for v in values]


@st.composite
def near_decimals(draw: st.DrawFn, digits: int) -> float:
    """A decimal of ``digits`` places or a tie between two (``n / 10**digits``, ``(n + 0.5) / 10**digits``),
    moved a few ulps either way."""
    whole = draw(st.integers(-(10**12), 10**12))
    value = (whole + draw(st.sampled_from([0.0, 0.5, 0.25]))) / 10.0**digits
    for _ in range(draw(st.integers(0, 3))):
        value = math.nextafter(value, draw(st.sampled_from([-math.inf, math.inf])))
    return value


def _values(digits: int) -> st.SearchStrategy[list[float]]:
    return st.lists(st.one_of(st.floats(), st.floats(-1.0, 1.0), st.sampled_from(EDGES), near_decimals(digits)), max_size=40)


@settings(max_examples=400, deadline=None)
@given(st.data(), st.sampled_from(sorted(set(SAVED_DIGITS)) + [0, 2]))
def test_rounded_is_pythons_round_to_the_bit(data, digits):
    values = data.draw(_values(digits))
    assert _bits(rounded(floats(values), digits)) == _bits([round(v, digits) for v in values])


def test_rounded_edges_each_digits():
    for digits in SAVED_DIGITS:
        for value in EDGES:
            assert _bits(rounded(floats([value, 0.5]), digits)) == _bits([round(value, digits), 0.5])


def test_rounded_of_nothing():
    assert rounded(floats([]), 6) == []
