"""Reasons written for a whole segment at once (``verdicts.per_rows``) read as they did one row at a time.

``plan --json`` writes the reasons of planned writes, moves and expiries with one ``str.format`` loop per
segment. Each must give, for every row, the text the per-row f-string gave (kept here as the reference),
and a single row (``Decision.reason``, read for the table and for apply) must read the same as the whole.
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from chalicelib.actions.lifecycle import _expire_reasons
from chalicelib.actions.storage_class import _move_reasons
from chalicelib.actions.writer import _write_reasons
from chalicelib.columns import floats, int64s, strings
from chalicelib.verdicts import per_rows

numbers = st.one_of(st.floats(allow_nan=False, allow_infinity=False), st.sampled_from([0.0, -0.0, 1e-7, -1e-7, 0.5, 1e300, -1e300]))
names = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=12)


def _each_row_and_all(reasons: per_rows[str], n: int) -> list[str]:
    """The reasons, checked to read the same row by row as all at once."""
    every = reasons.every()
    assert [reasons(j) for j in range(n)] == every
    return every


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(names, st.floats(min_value=0, max_value=10), st.integers(0, 2**62), names, numbers, numbers),
                max_size=8), names)
def test_write_reasons_read_as_the_per_row_text(rows, action):
    reasons = per_rows(_write_reasons, action, strings([r[0] for r in rows]), floats([r[1] for r in rows]),
                       strings([r[3] for r in rows]), int64s([r[2] for r in rows]), floats([r[4] for r in rows]),
                       floats([r[5] for r in rows]))
    assert _each_row_and_all(reasons, len(rows)) == [
        f"{action} to {destination}: output assumed {ratio:.0%} of {size:,} B (ASSUMPTION: {note}); "
        f"saves ${usd:.6f} and {kgco2e:.6f} kg CO2e a month" for destination, ratio, size, note, usd, kgco2e in rows]


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["STANDARD", "STANDARD_IA", "GLACIER_IR"]), numbers, numbers), max_size=8),
       st.sampled_from(["ONEZONE_IA", "GLACIER_IR"]), st.integers(1, 3650))
def test_move_reasons_read_as_the_per_row_text(rows, target, horizon):
    reasons = per_rows(_move_reasons, strings([r[0] for r in rows]), target, floats([r[1] for r in rows]), horizon,
                       floats([r[2] for r in rows]))
    expected = []
    for cls, net, kgco2e in rows:
        co2e = (f"{kgco2e:.6f} kg CO2e a month" if kgco2e > 0
                else "no CO2e (CCF: class changes save dollars, not CO2e, except into ONEZONE_IA)")
        expected.append(f"{cls} → {target}: net ${net:.6f} over {horizon} days; saves {co2e}")
    assert _each_row_and_all(reasons, len(rows)) == expected


@settings(max_examples=150, deadline=None)
@given(st.lists(numbers, max_size=8), st.integers(1, 10_000), st.sampled_from(["marker", "all"]))
def test_expire_reasons_read_as_the_per_row_text(ages, days, versions):
    reasons = per_rows(_expire_reasons, floats(ages), days, versions)
    assert _each_row_and_all(reasons, len(ages)) == [f"{age:.0f} days old, older than {days}: expire ({versions})" for age in ages]
