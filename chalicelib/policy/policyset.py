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
from typing import Any, Iterable, Iterator

from chalicelib.policy.problems import LoadedPolicy, Problem
from chalicelib.policy.models import Filters, Policy, Settings
from chalicelib.refs import RESERVED_PREFIX, ObjectRef


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
    #: bucket → first character of a key → the compiled filters of the bucket's policies that can match it,
    #: filled as ``matches`` meets them.
    _by_bucket: dict[str, dict[str, tuple["_Compiled", ...]]] = field(default_factory=dict, compare=False, repr=False)

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
        """``match`` as (policy, matched prefix) pairs: the hot path of planning.

        The bucket's policies are compiled once per bucket (prefixes and lower-cased suffixes as tuples
        for one ``str.startswith`` / ``str.endswith`` each), then each filter is a comparison or two;
        the result is what ``filters_hold`` says for each policy.
        """
        key = ref.key
        if key.startswith(RESERVED_PREFIX):
            return []
        # The bucket's policies that can match a key starting with this character: a prefix starts with it, or none is set.
        first = key[:1]
        by_first = self._by_bucket.get(ref.bucket)
        if by_first is None:
            by_first = self._by_bucket[ref.bucket] = {}
        compiled = by_first.get(first)
        if compiled is None:
            everyone = tuple(_Compiled.of(lp) for lp in self.for_bucket(ref.bucket))
            compiled = by_first[first] = tuple(
                c for c in everyone if not c.prefixes or any(p[:1] in ("", first) for p in c.prefixes))
        found = []
        lower = None
        for c in compiled:
            prefixes = c.prefixes
            if prefixes:
                if not key.startswith(prefixes):
                    continue
                prefix = prefixes[0] if c.single_prefix else max((p for p in prefixes if key.startswith(p)), key=len)
            else:
                prefix = ""
            if c.suffixes:
                if lower is None:
                    lower = key.lower()
                if not lower.endswith(c.suffixes):
                    continue
            size = ref.size
            if size is not None and ((c.size_min is not None and size < c.size_min) or (c.size_max is not None and size > c.size_max)):
                continue
            if c.tags:
                if ref.tags is None:
                    raise ValueError(f"{ref.uri}: tags are needed to match but were not read")
                if any(ref.tags.get(k) != v for k, v in c.tags.items()):
                    continue
            found.append((c.loaded, prefix))
        return found


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
