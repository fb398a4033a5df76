"""Destination templates that map two source keys to one output key, found before anything runs.

``{stem}`` drops the format and compression suffixes, so ``raw/a.csv``, ``raw/a.jsonl`` and
``raw/a.csv.gz`` all render ``curated/{rel_dir}{stem}.parquet`` as ``curated/a.parquet`` (and
``logs/app.gz`` and ``logs/app.bz2`` both recompress to ``logs/app.zst`` by default). At run time
the second source finds the first one's output and is skipped, its source kept; ``validate``
says so beforehand, with a template that has no collision.

How: each policy that writes outputs is probed with keys its prefix and suffix filters match
(two stems; the known format and compression suffixes and the policy's own suffixes; the
prefix itself and a subdirectory). Two probes rendering to one destination are a collision, shown
by that example. Policies writing into one bucket are probed together, so two policies whose
outputs meet are reported too. The probes are a fixed set, so the warnings are deterministic;
keys differing only in the case of a suffix (``a.CSV``, ``a.csv``) are left to the run-time check.

Example:
    >>> from chalicelib.policy import PolicySet
    >>> ps = PolicySet.from_dicts([{"name": "tables", "bucket": "ml-lake",
    ...     "filters": {"prefix": "raw/", "suffix": [".csv", ".jsonl"]},
    ...     "actions": [{"convert": {"destination": "curated/{rel_dir}{stem}.parquet"}}]}])
    >>> print(collision_warnings(ps)[0])  # doctest: +NORMALIZE_WHITESPACE
    policy 'tables': destination 'curated/{rel_dir}{stem}.parquet' maps raw/a.csv and raw/a.jsonl to one output,
    curated/a.parquet: whichever comes first is written, the other is skipped and kept;
    use 'curated/{rel_dir}{name}.parquet'
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Iterator

from chalicelib.actions.writer import WriterAction
from chalicelib.policy.policyset import matched_prefix
from chalicelib.policy.templates import COMPRESSION_SUFFIXES, FORMAT_SUFFIXES, KeyParts, check_template

if TYPE_CHECKING:
    from chalicelib.policy.models import Filters, Policy
    from chalicelib.policy.policyset import PolicySet

_STEMS = ("a", "b")
#: Every format suffix with every compression suffix (and none of either).
_ENDINGS = tuple(dict.fromkeys(f + c for f in ("", *FORMAT_SUFFIXES) for c in ("", *COMPRESSION_SUFFIXES)))
#: What the recompress default destination is called in messages (it is not a template).
_RECOMPRESS_DEFAULT = "{dir}{stem}{format suffix}.zst"


def probe_keys(filters: "Filters") -> Iterator[tuple[str, str]]:
    """Keys the filters match, each with its matched prefix: the probes of the collision check.

    >>> from chalicelib.policy.models import Filters
    >>> [key for key, prefix in probe_keys(Filters(prefix="logs/", suffix=".bz2"))][:4]
    ['logs/a.bz2', 'logs/a.csv.bz2', 'logs/a.tsv.bz2', 'logs/a.txt.bz2']
    """
    suffixes = tuple(s.lower() for s in filters.suffix)
    endings = dict.fromkeys(_ENDINGS + tuple(e + s for e in _ENDINGS for s in filters.suffix))
    keys = dict.fromkeys(prefix + subdir + stem + ending
                         for prefix in filters.prefix or ("",)
                         for subdir in (("", "x/") if not prefix or prefix.endswith("/") else ("", "x/", "/", "/x/"))
                         for stem in _STEMS for ending in endings)
    for key in keys:
        if suffixes and not key.lower().endswith(suffixes):
            continue
        matched = matched_prefix(filters, key)
        if matched is not None:
            yield key, matched


def _writer(policy: "Policy") -> WriterAction | None:
    return next((a for a in policy.actions if isinstance(a, WriterAction)), None)


def first_collision(filters: "Filters", writer: WriterAction) -> tuple[str, str, str] | None:
    """Two probe keys and the one destination ``writer`` gives both, or None when every probe has its own."""
    seen: dict[str, str] = {}
    for key, prefix in probe_keys(filters):
        destination = writer.destination_key(KeyParts.of(key, prefix))
        if destination == key:
            continue  # plan skips these: the destination is the source itself
        first = seen.setdefault(destination, key)
        if first != key:
            return first, key, destination
    return None


def _template_of(writer: WriterAction) -> str:
    return getattr(writer, "destination", None) or _RECOMPRESS_DEFAULT


def _candidates(writer: WriterAction) -> Iterator[str]:
    """Templates close to the writer's own that keep more of the key: the suffix, then the directory."""
    extension = writer.output_suffix
    template = getattr(writer, "destination", None)
    if template is None:
        yield f"{{dir}}{{name}}{extension}"
    else:
        kept_suffix = template.replace("{stem}", "{name}")
        yield kept_suffix
        with_dir = kept_suffix.replace("{rel_dir}", "{dir}")
        yield with_dir
        if not any(v in with_dir for v in ("{dir}", "{key}")):
            yield with_dir.replace("{name}", "{dir}{name}", 1)
    yield f"{{key}}{extension}"


def suggestion(filters: "Filters", writer: WriterAction) -> str | None:
    """A valid destination template with no collision for these filters, or None when none is found."""
    for candidate in _candidates(writer):
        try:
            check_template(candidate)
            fixed = writer.model_copy(update={"destination": candidate})
        except ValueError:
            continue
        if candidate != getattr(writer, "destination", None) and first_collision(filters, fixed) is None:
            return candidate
    return None


def collision_warnings(policies: "PolicySet") -> list[str]:
    """One line per policy whose destination can map two keys to one output, and per pair of policies
    whose outputs can meet in one bucket; each names an example and, where one is found, a fix."""
    warnings: list[str] = []
    for lp in policies.loaded:
        policy, writer = lp.policy, _writer(lp.policy)
        if writer is None:
            continue
        collision = first_collision(policy.filters, writer)
        if collision is None:
            continue
        first, second, destination = collision
        fix = suggestion(policy.filters, writer)
        warnings.append(f"policy {policy.name!r}: destination {_template_of(writer)!r} maps {first} and {second} "
                        f"to one output, {destination}: whichever comes first is written, the other is skipped and kept"
                        + (f"; use {fix!r}" if fix else ""))
    warnings.extend(_between_policies(policies))
    return warnings


def _between_policies(policies: "PolicySet") -> Iterator[str]:
    """Pairs of writing policies on one bucket whose outputs can have one key."""
    reported: set[tuple[str, str]] = set()
    for bucket in policies.buckets:
        owner: dict[str, tuple[str, str]] = {}  # destination → (policy, key)
        for lp in policies.for_bucket(bucket):
            writer = _writer(lp.policy)
            if writer is None:
                continue
            for key, prefix in probe_keys(lp.policy.filters):
                destination = writer.destination_key(KeyParts.of(key, prefix))
                if destination == key:
                    continue
                other_policy, other_key = owner.setdefault(destination, (lp.policy.name, key))
                pair = (other_policy, lp.policy.name)
                if other_policy != lp.policy.name and other_key != key and pair not in reported:
                    reported.add(pair)
                    yield (f"policies {other_policy!r} and {lp.policy.name!r} in bucket {bucket} can write one output: "
                           f"{other_key} and {key} both map to {destination}; give them destinations that differ")
