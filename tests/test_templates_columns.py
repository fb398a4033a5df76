"""Key parts and destinations of a batch, by Arrow's kernels, are ``KeyParts.of`` and ``render`` of each key.

The writers (convert, recompress) render a batch's destinations as columns; any difference from the
per-object functions would put an output somewhere else than ``plan`` of one object says.
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from chalicelib.columns import strings
from chalicelib.policy.templates import COMPRESSION_SUFFIXES, FORMAT_SUFFIXES, KeyParts, parts_columns, render, render_columns

_SUFFIX = st.sampled_from(FORMAT_SUFFIXES + COMPRESSION_SUFFIXES + (".CSV", ".Gz", ".cſv", ".gİz", ".", "..", ".x", ""))
_WORD = st.text(alphabet=st.sampled_from("ab/._-é \nİſK"), max_size=6)
keys = st.builds(lambda head, a, b, c: head + a + b + c, _WORD, _SUFFIX, _SUFFIX, _SUFFIX)
prefixes = st.sampled_from(["", "a", "a/", "ab/", "é/", "/", "a/b"])


@settings(max_examples=400, deadline=None)
@given(st.lists(st.tuples(keys, prefixes), min_size=1, max_size=30))
def test_parts_of_a_batch_are_keyparts_of_each_key(rows):
    parts = parts_columns(strings([k for k, _ in rows]), strings([p for _, p in rows]))
    got = [tuple(parts[f][i].as_py() for f in KeyParts._fields) for i in range(len(rows))]
    assert got == [tuple(KeyParts.of(k, p)) for k, p in rows]


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(keys, prefixes), min_size=1, max_size=20),
       st.sampled_from(["curated/{rel_dir}{stem}.parquet", "{dir}{stem}{ext}.zst", "{key}.zst", "x/{{lit}}/{name}", "{dir}_{stem}"]))
def test_destinations_of_a_batch_are_each_keys(rows, template):
    parts = parts_columns(strings([k for k, _ in rows]), strings([p for _, p in rows]))
    assert render_columns(template, parts).to_pylist() == [render(template, KeyParts.of(k, p)) for k, p in rows]
