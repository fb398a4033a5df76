"""A validated set of policies and the one question asked of it: which policies match this object?

Matching is pure: it needs the ``ObjectRef`` (with tags when a policy filters on tags).

Example:
    >>> from chalicelib.refs import ObjectRef
    >>> ps = PolicySet.from_dicts([{"name": "p", "bucket": "ml-lake", "filters": {"prefix": "raw/", "suffix": ".csv"},
    ...                             "actions": [{"convert": {}}]}])
    >>> [m.policy.name for m in ps.match(ObjectRef("ml-lake", "raw/x.csv", size=10))]
    ['p']
"""

from __future__ import annotations

from dataclasses import dataclass, field
from itertools import repeat
from operator import attrgetter
from typing import TYPE_CHECKING, Any, Iterable, Iterator, Mapping, Sequence

from chalicelib.policy.problems import LoadedPolicy, Problem
from chalicelib.policy.models import Filters, Policy, Settings
from chalicelib.refs import RESERVED_PREFIX, ObjectRef

if TYPE_CHECKING:
    from chalicelib.policy.matching import ColumnMatch


@dataclass(frozen=True, slots=True)
class Match:
    """A policy whose filters hold for an object, and the prefix that matched (for ``{rel_dir}``)."""

    loaded: LoadedPolicy
    prefix: str

    @property
    def policy(self) -> Policy:
        return self.loaded.policy

    @property
    def settings(self) -> Settings:
        return self.loaded.settings


def matched_prefix(filters: Filters, key: str) -> str | None:
    """The longest of the filter's prefixes that ``key`` starts with ("" with no prefix filter); None if none."""
    if not filters.prefix:
        return ""
    hits = [p for p in filters.prefix if key.startswith(p)]
    return max(hits, key=len) if hits else None


def filters_hold(filters: Filters, ref: ObjectRef) -> str | None:
    """The matched prefix when every filter holds for ``ref``, else None. Unknown size counts as a match."""
    prefix = matched_prefix(filters, ref.key)
    if prefix is None:
        return None
    if filters.suffix and not ref.key.lower().endswith(tuple(s.lower() for s in filters.suffix)):
        return None
    if filters.size is not None and ref.size is not None:
        if filters.size.min is not None and ref.size < filters.size.min:
            return None
        if filters.size.max is not None and ref.size > filters.size.max:
            return None
    if filters.tags:
        if ref.tags is None:
            raise ValueError(f"{ref.uri}: tags are needed to match but were not read")
        if any(ref.tags.get(k) != v for k, v in filters.tags.items()):
            return None
    return prefix


@dataclass(frozen=True)
class PolicySet:
    """All loaded policies; each with the settings of its file."""

    loaded: tuple[LoadedPolicy, ...]
    #: bucket → the compiled filters of the bucket's policies, filled as ``match_batch`` and ``match_columns`` meet them.
    _by_bucket: dict[str, "_Bucket"] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def from_dicts(cls, entries: Iterable[dict[str, Any]], settings: Settings | None = None) -> "PolicySet":
        """Build from plain dicts (tests, embedded demo); raises pydantic's ValidationError."""
        return cls(tuple(LoadedPolicy(Policy.model_validate(e), settings or Settings(), "<dict>", 0) for e in entries))

    @property
    def policies(self) -> tuple[Policy, ...]:
        return tuple(lp.policy for lp in self.loaded)

    @property
    def buckets(self) -> tuple[str, ...]:
        """Every bucket any policy names, in first-seen order."""
        return tuple(dict.fromkeys(b for lp in self.loaded for b in lp.policy.buckets))

    def for_bucket(self, bucket: str) -> tuple[LoadedPolicy, ...]:
        return tuple(lp for lp in self.loaded if bucket in lp.policy.buckets)

    def named(self, name: str) -> LoadedPolicy:
        for lp in self.loaded:
            if lp.policy.name == name:
                return lp
        raise KeyError(f"no policy named {name!r}")

    def for_alarm(self, alarm_name: str) -> tuple[LoadedPolicy, ...]:
        return tuple(lp for lp in self.loaded if alarm_name in lp.policy.on_alarm)

    def needs_tags(self, bucket: str) -> bool:
        """True when matching objects of ``bucket`` needs their tags (one GetObjectTagging per object)."""
        return any(lp.policy.filters.tags for lp in self.for_bucket(bucket))

    def match(self, ref: ObjectRef) -> Iterator[Match]:
        """The policies whose bucket and filters hold for ``ref``; nothing under ``_leanlake/`` ever matches."""
        for lp, prefix in self.matches(ref):
            yield Match(lp, prefix)

    def matches(self, ref: ObjectRef) -> list[tuple[LoadedPolicy, str]]:
        """``match`` as (policy, matched prefix) pairs: ``match_batch`` of one."""
        return [(lp, prefixes[0]) for lp, _, prefixes in self.match_batch((ref,))]

    def match_batch(self, refs: Sequence[ObjectRef]) -> list[tuple[LoadedPolicy, list[int], list[str]]]:
        """For each policy that matches any of ``refs`` (in the policies' order): the positions of the refs it
        matches, in order, and the prefix each matched through. The hot path of planning: a policy's filters
        are tested on a batch's keys a filter at a time (one ``str.startswith`` / ``str.endswith`` per key
        with the prefixes and lower-cased suffixes as tuples), with what ``filters_hold`` says for each ref;
        nothing under ``_leanlake/`` ever matches.

            >>> ps = PolicySet.from_dicts([{"name": "csv", "bucket": "lake", "filters": {"prefix": ["raw/", "raw/2026/"],
            ...                             "suffix": ".CSV"}, "actions": [{"convert": {}}]}])
            >>> [(lp.policy.name, rows, prefixes) for lp, rows, prefixes in ps.match_batch(
            ...     [ObjectRef("lake", "raw/a.csv"), ObjectRef("lake", "raw/a.json"), ObjectRef("lake", "raw/2026/b.Csv")])]
            [('csv', [0, 2], ['raw/', 'raw/2026/'])]
        """
        buckets = set(map(_BUCKET, refs))
        if len(buckets) > 1:  # a sweep's batch can span buckets: each bucket's refs against its policies, then in order
            merged: dict[int, tuple[LoadedPolicy, list[tuple[int, str]]]] = {}
            for name in buckets:
                positions = [i for i, ref in enumerate(refs) if ref.bucket == name]
                for lp, rows, through in self.match_batch([refs[i] for i in positions]):
                    hits = merged.setdefault(id(lp), (lp, []))[1]
                    hits.extend((positions[row], prefix) for row, prefix in zip(rows, through, strict=True))
            order = {id(lp): n for n, lp in enumerate(self.loaded)}
            found = []
            for _, (lp, hits) in sorted(merged.items(), key=lambda item: order[item[0]]):
                hits.sort()
                found.append((lp, [row for row, _ in hits], [prefix for _, prefix in hits]))
            return found
        if not refs:
            return []
        bucket = self._compiled(refs[0].bucket)
        keys = list(map(_KEY, refs))
        everyone = list(range(len(keys)))
        if any(map(str.startswith, keys, repeat(RESERVED_PREFIX))):
            everyone = [i for i in everyone if not keys[i].startswith(RESERVED_PREFIX)]
        # The rows each policy's prefixes take in: one dictionary look-up by a key's first ``width`` characters
        # finds the policies with a prefix that can start it (usually one), instead of testing every policy.
        by_prefix: list[list[int]] = [[] for _ in bucket.compiled]
        table, width = bucket.table, bucket.width
        for i in everyone:
            key = keys[i]
            for n in table.get(key[:width], ()):
                if key.startswith(bucket.compiled[n].prefixes):
                    by_prefix[n].append(i)
        lower: list[str] | None = None
        found = []
        for c, rows in zip(bucket.compiled, by_prefix, strict=True):
            prefixes = c.prefixes
            if not prefixes:
                rows = everyone
            if c.suffixes and rows:
                if lower is None:
                    lower = list(map(str.lower, keys))
                suffixes = c.suffixes
                rows = [i for i in rows if lower[i].endswith(suffixes)]
            low, high = c.size_min, c.size_max
            if (low is not None or high is not None) and rows:
                rows = [i for i in rows if (size := refs[i].size) is None
                        or ((low is None or size >= low) and (high is None or size <= high))]
            if c.tags and rows:
                rows = [i for i in rows if _tags_hold(c.tags, refs[i])]
            if rows:
                if not prefixes:
                    matched = [""] * len(rows)
                elif c.single_prefix:
                    matched = [prefixes[0]] * len(rows)
                else:
                    matched = [max((p for p in prefixes if keys[i].startswith(p)), key=len) for i in rows]
                found.append((c.loaded, rows, matched))
        return found

    def match_columns(self, bucket: str, keys: Any, sizes: Any,
                      tags: Sequence[Mapping[str, str] | None] | None = None) -> list[ColumnMatch]:
        """``match_batch`` for a batch of ``bucket``'s objects held as Arrow columns (``keys`` a string array,
        ``sizes`` an int64 array, null when unknown; ``tags`` None or one mapping per row), in Arrow compute:
        for each policy that matches any row, in order, ``(policy, rows, prefixes)`` with ``rows`` an Arrow
        int64 array and ``prefixes`` a dictionary-encoded string array (see ``matching.match_columns``).

            >>> import pyarrow as pa
            >>> ps = PolicySet.from_dicts([{"name": "csv", "bucket": "lake", "filters": {"prefix": ["raw/", "raw/2026/"],
            ...                             "suffix": ".CSV"}, "actions": [{"convert": {}}]}])
            >>> [(lp.policy.name, rows.to_pylist(), prefixes.to_pylist()) for lp, rows, prefixes in ps.match_columns(
            ...     "lake", pa.array(["raw/a.csv", "raw/a.json", "raw/2026/b.Csv"]), pa.array([1, 2, None]))]
            [('csv', [0, 2], ['raw/', 'raw/2026/'])]
        """
        from chalicelib.policy.matching import match_columns  # here: pyarrow is imported by column work only

        return match_columns(self._compiled(bucket).compiled, bucket, keys, sizes, tags)

    def _compiled(self, bucket: str) -> "_Bucket":
        """``bucket``'s policies compiled for matching, compiled once."""
        compiled = self._by_bucket.get(bucket)
        if compiled is None:
            compiled = self._by_bucket[bucket] = _Bucket.of(self.for_bucket(bucket))
        return compiled


_BUCKET, _KEY = attrgetter("bucket"), attrgetter("key")


def _tags_hold(tags: dict[str, str], ref: ObjectRef) -> bool:
    """True when ``ref`` carries every one of ``tags``; ValueError when its tags were not read."""
    if ref.tags is None:
        raise ValueError(f"{ref.uri}: tags are needed to match but were not read")
    return all(ref.tags.get(k) == v for k, v in tags.items())


@dataclass(frozen=True, slots=True)
class _Compiled:
    """One policy's filters in the shape ``PolicySet.matches`` tests fastest."""

    loaded: LoadedPolicy
    prefixes: tuple[str, ...]
    single_prefix: bool
    suffixes: tuple[str, ...]
    size_min: int | None
    size_max: int | None
    tags: dict[str, str]

    @classmethod
    def of(cls, lp: LoadedPolicy) -> "_Compiled":
        f = lp.policy.filters
        return cls(lp, tuple(f.prefix), len(f.prefix) == 1, tuple(s.lower() for s in f.suffix),
                   f.size.min if f.size is not None else None, f.size.max if f.size is not None else None, dict(f.tags))


@dataclass(frozen=True, slots=True)
class _Bucket:
    """A bucket's policies compiled for ``match_batch``: their filters, and which of them have a prefix that
    starts with a given ``width`` characters (``width``: the shortest prefix's length)."""

    compiled: tuple[_Compiled, ...]
    width: int
    table: dict[str, tuple[int, ...]]

    @classmethod
    def of(cls, loaded: Iterable[LoadedPolicy]) -> "_Bucket":
        compiled = tuple(_Compiled.of(lp) for lp in loaded)
        width = min((len(p) for c in compiled for p in c.prefixes), default=0)
        table: dict[str, tuple[int, ...]] = {}
        for n, c in enumerate(compiled):
            for start in dict.fromkeys(p[:width] for p in c.prefixes):
                table[start] = table.get(start, ()) + (n,)
        return cls(compiled, width, table)


def _may_overlap(a: Filters, b: Filters) -> bool:
    """Conservative: False only when no key/size/tags can satisfy both filter sets."""
    if a.prefix and b.prefix and not any(p.startswith(q) or q.startswith(p) for p in a.prefix for q in b.prefix):
        return False
    if a.suffix and b.suffix and not any(
        s.lower().endswith(t.lower()) or t.lower().endswith(s.lower()) for s in a.suffix for t in b.suffix
    ):
        return False
    if a.size and b.size:
        low = max(a.size.min or 0, b.size.min or 0)
        high = min(a.size.max if a.size.max is not None else float("inf"), b.size.max if b.size.max is not None else float("inf"))
        if low > high:
            return False
    if any(k in b.tags and b.tags[k] != v for k, v in a.tags.items()):
        return False
    return True


def check_overlaps(loaded: list[LoadedPolicy]) -> list[Problem]:
    """At most one convert or recompress may apply to an object: overlapping writers are problems."""
    writers = [lp for lp in loaded if any(a.writes_output for a in lp.policy.actions)]
    problems = []
    for i, a in enumerate(writers):
        for b in writers[i + 1 :]:
            shared = set(a.policy.buckets) & set(b.policy.buckets)
            if shared and _may_overlap(a.policy.filters, b.policy.filters):
                problems.append(Problem(b.file, b.line, (
                    f"policy {b.policy.name!r} may convert/recompress the same objects as {a.policy.name!r} "
                    f"({a.file}:{a.line}) in bucket {sorted(shared)[0]}: make their prefix/suffix filters disjoint")))
    return problems
