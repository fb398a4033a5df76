"""Object-key parts and destination templates.

A destination template may use ``{key}``, ``{dir}``, ``{rel_dir}``, ``{name}``, ``{stem}``
and ``{ext}``. ``{dir}`` is the key up to its last ``/``; ``{rel_dir}`` the part of it after the
policy's matched prefix; ``{name}`` the rest. ``{stem}`` is the name without its format and
compression suffixes; ``{ext}`` is what was removed. A template that drops part of the key
(``{stem}`` without ``{ext}``, or no directory) can give two sources one output:
``chalicelib.policy.collisions`` finds those at ``validate`` time, and at run time the second
source is skipped and kept.

Example:
    >>> parts = KeyParts.of("raw/2024/a.csv.gz", prefix="raw/")
    >>> parts.stem, parts.ext, parts.rel_dir, parts.format_suffix
    ('a', '.csv.gz', '2024/', '.csv')
    >>> render("curated/{rel_dir}{stem}.parquet", parts)
    'curated/2024/a.parquet'
"""

from __future__ import annotations

import string
from functools import cache
from typing import Any, NamedTuple

from chalicelib.columns import i32, strings, text
from chalicelib.refs import RESERVED_PREFIX

TEMPLATE_VARIABLES = ("key", "dir", "rel_dir", "name", "stem", "ext")
COMPRESSION_SUFFIXES = (".gz", ".gzip", ".bz2", ".zst", ".zstd")
FORMAT_SUFFIXES = (".csv", ".tsv", ".txt", ".psv", ".json", ".jsonl", ".ndjson", ".log", ".tar", ".parquet")
_COMPRESSION, _FORMAT = frozenset(COMPRESSION_SUFFIXES), frozenset(FORMAT_SUFFIXES)
assert all(s.count(".") == 1 and s.startswith(".") for s in _COMPRESSION | _FORMAT), "KeyParts.of matches from the last dot"


#: ``tuple.__new__``: a KeyParts from its eight values without the named tuple's own ``__new__`` (a Python function).
_new = tuple.__new__


class KeyParts(NamedTuple):
    """The template variables of one key (a named tuple: planning makes one per planned write, and a frozen
    dataclass of eight fields cost ~2 µs more to build)."""

    key: str
    dir: str
    rel_dir: str
    name: str
    stem: str
    ext: str
    format_suffix: str
    compression_suffix: str

    @classmethod
    def of(cls, key: str, prefix: str = "") -> "KeyParts":
        slash = key.rfind("/")
        directory, name = key[: slash + 1], key[slash + 1 :]
        # The part of {dir} after the matched prefix; empty when the prefix reaches into the name.
        rel_dir = directory[len(prefix) :].lstrip("/") if directory.startswith(prefix) else ""
        # Every known suffix is one dot and a word, so the one that can match is the text from the last dot;
        # a name without a dot past its first character has none to strip.
        dot = name.rfind(".")
        if dot <= 0:
            return _new(cls, (key, directory, rel_dir, name, name, "", "", ""))
        stem, compression, fmt = name, "", ""
        suffix = name[dot:].lower()
        if suffix in _COMPRESSION:
            compression, stem = name[dot:], name[:dot]
            dot = stem.rfind(".")
            suffix = stem[dot:].lower() if dot > 0 else ""
        if suffix in _FORMAT:
            fmt, stem = stem[dot:], stem[:dot]
        return _new(cls, (key, directory, rel_dir, name, stem, fmt + compression, fmt, compression))

    def variables(self) -> dict[str, str]:
        """The values of ``TEMPLATE_VARIABLES``, by name (spelled out: it runs once per planned write)."""
        return {"key": self.key, "dir": self.dir, "rel_dir": self.rel_dir, "name": self.name, "stem": self.stem, "ext": self.ext}


def check_template(template: str) -> str:
    """The template itself, or ValueError saying what is wrong with it."""
    try:
        fields = list(string.Formatter().parse(template))
    except ValueError as exc:
        raise ValueError(f"bad destination template {template!r}: {exc}") from None
    names = [name for _, name, spec, conv in fields if name is not None]
    for _, name, spec, conv in fields:
        if name is None:
            continue
        if name not in TEMPLATE_VARIABLES:
            raise ValueError(
                f"unknown variable {{{name}}} in destination {template!r}; "
                f"use {', '.join('{' + v + '}' for v in TEMPLATE_VARIABLES)}"
            )
        if spec or conv:
            raise ValueError(f"destination {template!r}: format specs and conversions are not allowed")
    if not names:
        raise ValueError(f"destination {template!r} names no variable: every object would overwrite one key")
    if template.startswith("/"):
        raise ValueError(f"destination {template!r} must not start with '/'")
    if template.startswith(RESERVED_PREFIX):
        raise ValueError(f"destination {template!r} is under {RESERVED_PREFIX}, which is reserved for leanlake")
    return template


def render(template: str, parts: KeyParts) -> str:
    """The destination key for ``parts`` (through ``_positional``: one ``str.format`` of the tuple itself)."""
    positional = _positional(template)
    if positional is None:
        return template.format(**parts.variables())
    return positional.format(*parts)


def parts_columns(keys: Any, prefixes: Any) -> dict[str, Any]:
    """``KeyParts.of`` of each key (an Arrow string array) and the prefix it matched through (Arrow strings), as one
    Arrow string column per part (``KeyParts._fields``), computed by Arrow's kernels: the same values, row for row.
    A suffix is looked up ASCII-lower-cased: no other character lower-cases onto the suffixes' letters, so that is
    ``str.lower``'s answer too.

        >>> from chalicelib.columns import strings
        >>> parts = parts_columns(strings(["raw/2024/a.csv.gz", "x"]), strings(["raw/", ""]))
        >>> [parts[f].to_pylist() for f in ("rel_dir", "stem", "ext", "compression_suffix")]
        [['2024/', ''], ['a', 'x'], ['.csv.gz', ''], ['.gz', '']]
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    empty = text("")
    head, name, has_slash = _last_split(keys, "/")
    directory = pc.if_else(has_slash, pc.binary_join_element_wise(head, text("/"), empty), empty)
    rel_dir = pa.nulls(len(keys), pa.string())
    for prefix in pc.unique(prefixes).to_pylist():
        here = pc.and_(pc.equal(prefixes, text(prefix)), pc.starts_with(directory, pattern=prefix))
        # the part of {dir} after the matched prefix, "/" trimmed from its start
        after = pc.utf8_ltrim(pc.utf8_slice_codeunits(directory, start=len(prefix)), characters="/")
        rel_dir = pc.if_else(here, after, rel_dir)
    rel_dir = pc.coalesce(rel_dir, empty)  # a prefix that reaches into the name
    stem, compression = _strip_suffix(name, COMPRESSION_SUFFIXES)
    stem, fmt = _strip_suffix(stem, FORMAT_SUFFIXES)
    return {"key": keys, "dir": directory, "rel_dir": rel_dir, "name": name, "stem": stem,
            "ext": pc.binary_join_element_wise(fmt, compression, empty), "format_suffix": fmt, "compression_suffix": compression}


def _last_split(values: Any, separator: str) -> tuple[Any, Any, Any]:
    """Each value split at its last ``separator``: the text before it, after it, and whether there is one (without
    one, both texts are the whole value)."""
    import pyarrow.compute as pc

    split = pc.split_pattern(values, pattern=separator, max_splits=1, reverse=True)
    starts, ends = split.offsets[:-1], split.offsets[1:]
    return (split.values.take(starts), split.values.take(pc.subtract(ends, i32(1))),
            pc.equal(pc.subtract(ends, starts), i32(2)))


def _strip_suffix(names: Any, suffixes: tuple[str, ...]) -> tuple[Any, Any]:
    """``KeyParts.of``'s step: a name's text from its last dot, when that dot is not its first character and the text
    is one of ``suffixes`` in any case, is split off. Returns the names without it, and it (or "")."""
    import pyarrow.compute as pc

    empty = text("")
    head, tail, has_dot = _last_split(names, ".")
    suffix = pc.binary_join_element_wise(text("."), tail, empty)
    known = pc.and_(pc.and_(has_dot, pc.not_equal(head, empty)), pc.is_in(pc.ascii_lower(suffix), value_set=strings(list(suffixes))))
    return pc.if_else(known, head, names), pc.if_else(known, suffix, empty)


def render_columns(template: str, parts: dict[str, Any]) -> Any:
    """``render`` of each row of ``parts`` (``parts_columns``): the template's text and variables joined by one kernel."""
    import pyarrow.compute as pc

    pieces: list[Any] = []
    for literal, name, _, _ in string.Formatter().parse(template):
        if literal:
            pieces.append(text(literal))
        if name is not None:
            pieces.append(parts[name])
    return pc.binary_join_element_wise(*pieces, text(""))


@cache
def _positional(template: str) -> str | None:
    """``template`` with each variable as its index in ``KeyParts`` (``{stem}.parquet`` → ``{4}.parquet``), or
    None for a template ``check_template`` would refuse (rendered by name, failing as before).

        >>> _positional("curated/{rel_dir}{{x}}{stem}.parquet")
        'curated/{2}{{x}}{4}.parquet'
    """
    try:
        fields = list(string.Formatter().parse(template))
    except ValueError:
        return None
    out = []
    for literal, name, spec, conv in fields:
        out.append(literal.replace("{", "{{").replace("}", "}}"))
        if name is None:
            continue
        if name not in TEMPLATE_VARIABLES or spec or conv:
            return None
        out.append("{" + str(KeyParts._fields.index(name)) + "}")
    return "".join(out)
