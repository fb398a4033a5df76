"""``plan --json`` rows written from columns (``decision.decision_lines``) are the rows' dicts encoded one by one.

``decision_lines`` encodes each column once and splits it into its items; whatever the keys, reasons, names and
floats, each line must be, to the byte, what the encoder makes of ``decision_rows``' dict for that row, with
orjson and with the ``json`` fallback of ``plan --json``.
"""

from __future__ import annotations

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chalicelib.decision import decision_lines, decision_rows, rounded_saved
from leanlake.cli import _json_encode

texts = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=10)
numbers = st.one_of(st.floats(), st.sampled_from([0.0, -0.0, 1e-7, -1e-10, 5e-7, 0.0078125, 1e300, -1e300]))


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(texts, texts, numbers, numbers, numbers), max_size=6), texts, texts, texts, st.booleans(),
       st.sampled_from([orjson.dumps, _json_encode]))
def test_lines_are_each_rows_dict_encoded(rows, bucket, policy, action, saves, encode):
    keys, reasons = [r[0] for r in rows], [r[1] for r in rows]
    saved = ([r[2] for r in rows], [r[3] for r in rows], [r[4] for r in rows]) if saves else None
    expected = [encode(row) for row in decision_rows(bucket, keys, policy, action, reasons, saved)]
    assert decision_lines(encode, bucket, keys, policy, action, reasons, rounded_saved(saved, len(keys))) == expected


@pytest.mark.parametrize("keys", [[None], [None, "k"], ["k", None], ["k", None, "l"]])
@pytest.mark.parametrize("encode", [orjson.dumps, _json_encode])
def test_a_key_that_is_not_a_string_is_refused(keys, encode):
    with pytest.raises(ValueError, match="not a JSON column"):
        decision_lines(encode, "b", keys, "p", "skip", ["why"] * len(keys), None)
