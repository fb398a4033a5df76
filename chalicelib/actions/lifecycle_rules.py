"""Policies → S3 Lifecycle rules, merged into a bucket's configuration without touching rules leanlake doesn't own.

What:
- ``lifecycle_decision(bucket, policies)``: the one ``lifecycle`` Decision of a bucket (key None),
  planned from every policy on it with a lifecycle-scope action and no suffix filter; its
  ``LifecycleParams`` hold the compiled rules. Applying it writes the bucket's whole set of
  leanlake rules (and removes leanlake's older ones), so there is one per bucket, not per policy.
- ``compile_rules(policies, bucket)``: the ``transition``, ``expire``, ``noncurrent`` and
  ``abort_multipart`` actions of every policy on ``bucket`` whose filters Lifecycle can express
  (``expressible``: prefix, tags, size — not suffix) become rules in the
  ``put_bucket_lifecycle_configuration`` shape, with IDs ``leanlake-<policy>-<n>`` and Status
  Enabled. A policy gets one rule per prefix (``n`` = 1, 2, … in the order of its prefixes); rules
  that can't carry tag/size filters (``abort_multipart``: S3 refuses it with tags or size) follow
  as prefix-only rules (``n`` = k+1, …).
- A policy with a writer action (``convert``, ``recompress``) also gets an
  ``AbortIncompleteMultipartUpload`` rule per destination prefix (``destination_rules``): outputs
  are streamed through multipart uploads, and one interrupted mid-write (a Lambda timing out)
  leaves parts that are billed until aborted. Its days are the policy's ``abort_multipart`` days,
  else ``DESTINATION_ABORT_DAYS``; its IDs continue the policy's numbering; a destination its
  ``abort_multipart`` rules already cover gets none. A suffix filter does not matter: the rule is
  about the destination, not the sources.
- No rule ever expires, transitions or removes versions of leanlake's audit trail under
  ``_leanlake/``: Lifecycle can't exclude a prefix, so a policy without a prefix, or with one that
  ``_leanlake/`` starts with ("_", "_lean"), is not ``expressible``. Its ``transition`` and
  ``expire`` run in the sweep (which skips ``_leanlake/``), its ``noncurrent`` is not compiled,
  and only its ``abort_multipart`` becomes a rule (incomplete uploads hold no audit data).
- ``merge(existing, ours)``: rules leanlake does not own stay exactly as they were; leanlake's
  rules are replaced by ID (and disappear with their policy); ``TransitionDefaultMinimumObjectSize``
  is kept; more than 1,000 rules is an error.
- ``lifecycle_warnings(policies)``: rules that validate but lose money, can't be compiled, or
  run in the sweep because they would reach ``_leanlake/``.
- ``apply_to_bucket(s3, decision, policies)``: the only I/O here — read, merge, write (or a
  bucket-scope action's own configuration).

``expire`` compiles to ``Expiration: {Days}``. On a versioned bucket that adds a delete marker
(``versions: marker``, the default): the data stays as a noncurrent version until a
``noncurrent`` action removes it. ``versions: all`` also adds ``NoncurrentVersionExpiration:
{NoncurrentDays: 1}`` (unless a ``noncurrent`` action says otherwise), so old versions go one day
after they become noncurrent; S3 then removes the expired delete markers itself because the rule
has ``Expiration: Days`` (AWS: "When you specify the Days tag, Amazon S3 automatically performs
ExpiredObjectDeleteMarker cleanup"). Object size bounds are inclusive in policies and exclusive in
Lifecycle: ``size: {min: 1 KiB}`` becomes ``ObjectSizeGreaterThan: 1023``.

Example:
    >>> from chalicelib.policy import PolicySet
    >>> ps = PolicySet.from_dicts([{"name": "checkpoints", "bucket": "ml-lake", "filters": {"prefix": "checkpoints/"},
    ...     "actions": [{"transition": [{"days": 30, "class": "GLACIER_IR"}]}, {"expire": {"days": 730}}]}])
    >>> compile_rules(ps, "ml-lake")[0]  # doctest: +NORMALIZE_WHITESPACE
    {'ID': 'leanlake-checkpoints-1', 'Status': 'Enabled', 'Filter': {'Prefix': 'checkpoints/'},
     'Transitions': [{'Days': 30, 'StorageClass': 'GLACIER_IR'}], 'Expiration': {'Days': 730}}
    >>> mine = {"ID": "my-logs", "Status": "Enabled", "Filter": {"Prefix": "logs/"}, "Expiration": {"Days": 9}}
    >>> [r["ID"] for r in merge({"Rules": [mine]}, compile_rules(ps, "ml-lake"))["Rules"]]
    ['my-logs', 'leanlake-checkpoints-1']
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Iterable

from chalicelib import economics as econ
from chalicelib.actions.lifecycle import AbortMultipart, Expire, Noncurrent, Transition
from chalicelib.actions.planning import OWNED_PREFIX, rule_id
from chalicelib.actions.planning import expressible as _expressible
from chalicelib.actions.writer import WriterAction
from chalicelib.decision import ActionParams, Decision
from chalicelib.economics.figures import storage_class
from chalicelib.refs import RESERVED_PREFIX, reaches_reserved

if TYPE_CHECKING:
    from chalicelib.policy.models import Filters, Policy
    from chalicelib.policy.policyset import PolicySet
    from chalicelib.policy.problems import LoadedPolicy

MAX_RULES = 1000
#: Days after which an incomplete upload under a writer's destination is aborted, unless the policy's
#: ``abort_multipart`` says otherwise: a conversion runs for minutes, so a week-old upload is abandoned.
DESTINATION_ABORT_DAYS = 7
#: The kind of the one bucket-level Decision that writes the bucket's Lifecycle configuration.
LIFECYCLE = "lifecycle"


@dataclass(frozen=True, slots=True)
class LifecycleParams(ActionParams):
    """The leanlake rules planned for a bucket, and the warnings of the policies they come from."""

    rules: list[dict[str, Any]]
    rule_ids: list[str]
    warnings: list[str]


class LifecycleError(ValueError):
    """A configuration S3 would refuse (more than 1,000 rules, expiry not after the last transition, …)."""


def expressible(filters: "Filters") -> bool:
    """True when S3 Lifecycle, not the sweep, runs the ``transition`` and ``expire`` of a policy with
    these filters (see ``chalicelib.actions.planning.expressible``).

        >>> from chalicelib.policy.models import Filters
        >>> [expressible(Filters(**f)) for f in ({"prefix": "logs/"}, {"prefix": "logs/", "suffix": ".gz"}, {}, {"prefix": ["a/", "_"]})]
        [True, False, False, False]
    """
    return _expressible(filters.prefix, filters.suffix)


def _filter(prefix: str, filters: "Filters", *, with_tags_and_size: bool = True) -> dict[str, Any]:
    preds: dict[str, Any] = {}
    if prefix:
        preds["Prefix"] = prefix
    tags = [{"Key": k, "Value": v} for k, v in sorted(filters.tags.items())] if with_tags_and_size else []
    if tags:
        preds["Tags"] = tags
    if with_tags_and_size and filters.size is not None:
        if filters.size.min:
            preds["ObjectSizeGreaterThan"] = filters.size.min - 1
        if filters.size.max is not None:
            preds["ObjectSizeLessThan"] = filters.size.max + 1
    count = len(preds) - ("Tags" in preds) + len(tags)
    if count == 0:
        return {"Prefix": ""}
    if count == 1:
        return {"Tag": tags[0]} if tags else preds
    return {"And": preds}


def policy_rules(policy: "Policy") -> list[dict[str, Any]]:
    """The Lifecycle rules of one policy: its Lifecycle actions' (none with a suffix filter; only
    ``abort_multipart`` ones when the policy's prefixes reach ``_leanlake/``, see ``expressible``),
    then the abort rules of its writers' destinations (``destination_rules``)."""
    rules = _action_rules(policy)
    return rules + destination_rules(policy, len(rules) + 1)


def destination_rules(policy: "Policy", start: int = 1) -> list[dict[str, Any]]:
    """``AbortIncompleteMultipartUpload`` rules for where the policy's writer actions write, numbered from ``start``.

        >>> from chalicelib.policy.models import Policy
        >>> p = Policy.model_validate({"name": "t", "bucket": "ml-lake", "filters": {"prefix": "raw/", "suffix": ".csv"},
        ...     "actions": [{"convert": {"destination": "curated/{rel_dir}{stem}.parquet"}}]})
        >>> destination_rules(p)  # doctest: +NORMALIZE_WHITESPACE
        [{'ID': 'leanlake-t-1', 'Status': 'Enabled', 'Filter': {'Prefix': 'curated/'},
          'AbortIncompleteMultipartUpload': {'DaysAfterInitiation': 7}}]
    """
    abort = policy.find(AbortMultipart)
    covered = (policy.filters.prefix or ("",)) if abort is not None and not policy.filters.suffix else ()
    prefixes: list[str] = []
    for action in policy.actions:
        if isinstance(action, WriterAction):
            prefixes += [p for p in action.destination_prefixes(policy.filters.prefix) if p not in prefixes]
    # one rule per prefix that no shorter one (nor the policy's own abort rules) covers already
    wanted = [p for p in prefixes
              if not any(p.startswith(c) for c in covered) and not any(p != q and p.startswith(q) for q in prefixes)]
    days = abort.days if abort is not None else DESTINATION_ABORT_DAYS
    return [{"ID": rule_id(policy.name, start + i), "Status": "Enabled", "Filter": {"Prefix": p},
             "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": days}} for i, p in enumerate(wanted)]


def _action_rules(policy: "Policy") -> list[dict[str, Any]]:
    """The rules of a policy's Lifecycle actions (see ``policy_rules``)."""
    if policy.filters.suffix:
        return []
    transition = policy.find(Transition)
    expire = policy.find(Expire)
    noncurrent = policy.find(Noncurrent)
    abort = policy.find(AbortMultipart)
    if not expressible(policy.filters):  # the sweep transitions and expires; nothing may touch _leanlake/
        transition = expire = noncurrent = None
    body: dict[str, Any] = {}
    if transition is not None:
        body["Transitions"] = [{"Days": s.days, "StorageClass": s.storage_class} for s in transition.steps]
    if expire is not None:  # after the last transition: the policy model enforces it
        body["Expiration"] = {"Days": expire.days}
    if noncurrent is not None:
        body["NoncurrentVersionExpiration"] = {"NoncurrentDays": noncurrent.days,
                                               **({"NewerNoncurrentVersions": noncurrent.keep} if noncurrent.keep else {})}
    elif expire is not None and expire.versions == "all":
        body["NoncurrentVersionExpiration"] = {"NoncurrentDays": 1}
    filters = policy.filters
    plain = not filters.tags and filters.size is None
    if abort is not None and plain and body:
        body["AbortIncompleteMultipartUpload"] = {"DaysAfterInitiation": abort.days}
        abort = None
    prefixes = filters.prefix or ("",)
    rules = []
    if body:
        rules = [{"ID": rule_id(policy.name, n), "Status": "Enabled", "Filter": _filter(p, filters), **copy.deepcopy(body)}
                 for n, p in enumerate(prefixes, start=1)]
    if abort is not None:
        start = len(rules) + 1
        rules += [{"ID": rule_id(policy.name, start + i), "Status": "Enabled",
                   "Filter": _filter(p, filters, with_tags_and_size=False),
                   "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": abort.days}}
                  for i, p in enumerate(prefixes)]
    return rules


def compile_rules(policies: "PolicySet", bucket: str) -> list[dict[str, Any]]:
    """Every leanlake Lifecycle rule for ``bucket``, in policy order."""
    rules: list[dict[str, Any]] = []
    for lp in policies.for_bucket(bucket):
        rules.extend(policy_rules(lp.policy))
    return rules


def merge(existing: dict[str, Any] | None, ours: list[dict[str, Any]], owned_prefix: str = OWNED_PREFIX) -> dict[str, Any]:
    """The configuration to write: others' rules unchanged and in order, then ours; leanlake's old rules dropped.

    ``existing`` is a ``get_bucket_lifecycle_configuration`` response (or None when the bucket has
    none). The result has ``Rules`` and, when the bucket had it, ``TransitionDefaultMinimumObjectSize``;
    pass it on with ``put_arguments``. An empty ``Rules`` means: delete the configuration (S3
    refuses to store an empty one).
    """
    existing = existing or {}
    theirs = [copy.deepcopy(r) for r in existing.get("Rules", ()) if not str(r.get("ID", "")).startswith(owned_prefix)]
    ids = [str(r.get("ID")) for r in ours]
    if any(not str(i).startswith(owned_prefix) for i in ids):
        raise LifecycleError(f"leanlake rule IDs must start with {owned_prefix!r}: {ids}")
    if len(set(ids)) != len(ids):
        raise LifecycleError(f"duplicate leanlake rule IDs: {sorted(i for i in set(ids) if ids.count(i) > 1)}")
    rules = theirs + copy.deepcopy(ours)
    if len(rules) > MAX_RULES:
        raise LifecycleError(f"{len(rules)} Lifecycle rules ({len(theirs)} not leanlake's, {len(ours)} leanlake's): "
                             f"S3 allows at most {MAX_RULES}")
    merged: dict[str, Any] = {"Rules": rules}
    if "TransitionDefaultMinimumObjectSize" in existing:
        merged["TransitionDefaultMinimumObjectSize"] = existing["TransitionDefaultMinimumObjectSize"]
    return merged


def put_arguments(bucket: str, merged: dict[str, Any]) -> dict[str, Any]:
    """Keyword arguments of ``put_bucket_lifecycle_configuration`` for a merged configuration."""
    kwargs: dict[str, Any] = {"Bucket": bucket, "LifecycleConfiguration": {"Rules": merged["Rules"]}}
    if "TransitionDefaultMinimumObjectSize" in merged:
        kwargs["TransitionDefaultMinimumObjectSize"] = merged["TransitionDefaultMinimumObjectSize"]
    return kwargs


def lifecycle_warnings(policies: "PolicySet") -> list[str]:
    """Lifecycle actions that validate but lose money over the policy's horizon, or won't be compiled."""
    return [warning for lp in policies.loaded for warning in policy_warnings(lp)]


def policy_warnings(lp: "LoadedPolicy") -> list[str]:
    """``lifecycle_warnings`` of one policy."""
    warnings: list[str] = []
    policy, settings = lp.policy, lp.settings
    name, filters = policy.name, policy.filters
    region = settings.region or econ.figures.DEFAULT_REGION
    horizon = settings.horizon_days
    transition, expire = policy.find(Transition), policy.find(Expire)
    smallest = filters.size.min if filters.size is not None and filters.size.min else 0
    if filters.suffix:
        for action in (Noncurrent.name, AbortMultipart.name):
            if policy.action(action) is not None:
                warnings.append(f"policy {name!r}: {action} is not compiled: Lifecycle has no suffix filter "
                                "and the sweep does not handle it; drop the suffix filter or the action")
    elif not expressible(filters):
        reaching = ", ".join(repr(p) for p in filters.prefix if reaches_reserved(p))
        why = (f"S3 Lifecycle can't exclude leanlake's audit trail under {RESERVED_PREFIX} "
               f"from {f'prefix {reaching}' if reaching else 'a policy without a prefix'}")
        swept = [kind.name for kind in (Transition, Expire) if policy.find(kind) is not None]
        if swept:
            warnings.append(f"policy {name!r}: {' and '.join(swept)} run in the sweep, not in Lifecycle: {why}; "
                            f"give the policy prefixes that {RESERVED_PREFIX} does not start with to use Lifecycle")
        if policy.find(Noncurrent) is not None:
            warnings.append(f"policy {name!r}: {Noncurrent.name} is not compiled: {why}, and the sweep does not "
                            f"remove noncurrent versions; give the policy prefixes that {RESERVED_PREFIX} does not start with")
    if not filters.suffix and policy.find(AbortMultipart) is not None and (filters.tags or filters.size is not None):
        warnings.append(f"policy {name!r}: abort_multipart applies to every incomplete upload under the prefix; "
                        "S3 can't filter incomplete uploads by tags or size")
    if transition is not None:
        previous, since = "STANDARD", 0
        for step in transition.steps:
            # Intelligent-Tiering's savings depend on access, which the model doesn't know: no verdict.
            unknown = step.storage_class == "INTELLIGENT_TIERING"
            needed = 0.0 if unknown else econ.break_even_bytes(previous, step.storage_class, horizon, region)
            if smallest < needed:
                if needed == float("inf"):
                    what = "for every object size"
                else:
                    what = f"for objects under {needed / 1024:,.0f} KiB"
                archive = econ.needs_restore(step.storage_class)
                floor = "" if archive else " (S3 does not transition objects under 128 KiB by default)"
                warnings.append(f"policy {name!r}: transition {previous} → {step.storage_class} at day {step.days} "
                                f"loses money {what} over {horizon} days{floor}; set filters.size.min")
            stay = step.days - since
            minimum = storage_class(previous).min_days
            if stay < minimum:
                per_gb = econ.penalty_usd(econ.GB, previous, stay, region)
                warnings.append(f"policy {name!r}: objects leave {previous} after {stay} days, before its "
                                f"{minimum}-day minimum (about ${per_gb:.4f} per GB in penalties)")
            previous, since = step.storage_class, step.days
        if expire is not None:
            last = transition.steps[-1]
            if expire.days <= last.days:
                warnings.append(f"policy {name!r}: expire at day {expire.days} is not after the last transition "
                                f"(day {last.days}): S3 refuses this rule")
            elif expire.days - last.days < storage_class(last.storage_class).min_days:
                stay = expire.days - last.days
                per_gb = econ.penalty_usd(econ.GB, last.storage_class, stay, region)
                warnings.append(f"policy {name!r}: objects expire {stay} days after moving to {last.storage_class}, "
                                f"before its {storage_class(last.storage_class).min_days}-day minimum "
                                f"(about ${per_gb:.4f} per GB in penalties)")
    return warnings


# --- I/O: the one place this module talks to S3 ------------------------------------------------------

def _current(s3: Any, bucket: str) -> dict[str, Any] | None:
    from botocore.exceptions import ClientError

    try:
        response = s3.get_bucket_lifecycle_configuration(Bucket=bucket)
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") == "NoSuchLifecycleConfiguration":
            return None
        raise
    return {k: v for k, v in response.items() if k != "ResponseMetadata"}


def apply_lifecycle(s3: Any, bucket: str, policies: "PolicySet") -> str:
    """Merge the rules of all ``policies`` on ``bucket`` into its Lifecycle configuration; say what changed."""
    existing = _current(s3, bucket)
    ours = compile_rules(policies, bucket)
    merged = merge(existing, ours)
    before = (existing or {}).get("Rules", [])
    if merged["Rules"] == before:
        return f"Lifecycle unchanged ({len(ours)} leanlake rule(s))"
    if not merged["Rules"]:
        s3.delete_bucket_lifecycle(Bucket=bucket)
        return "Lifecycle configuration removed (no rules left)"
    s3.put_bucket_lifecycle_configuration(**put_arguments(bucket, merged))
    return f"Lifecycle: {len(ours)} leanlake rule(s) written, {len(merged['Rules']) - len(ours)} other rule(s) kept"


def apply_to_bucket(s3: Any, decision: Decision, policies: "PolicySet") -> str:
    """Act on a bucket-level decision of ``plan_buckets``: the bucket's ``lifecycle``, or a bucket-scope action's own.

    ``policies`` must be every policy (not a selection): leanlake rules of policies missing from
    it are removed from the bucket.
    """
    if decision.action == LIFECYCLE:
        return apply_lifecycle(s3, decision.bucket, policies)
    if decision.by is None or decision.by.scope != "bucket":
        raise ValueError(f"not a bucket-level decision: {decision.action}")
    return decision.by.apply_to_bucket(s3, decision)


def lifecycle_decision(bucket: str, loaded: Iterable["LoadedPolicy"]) -> Decision | None:
    """The bucket's one ``lifecycle`` Decision, or None when no policy on it has a rule to say.

    Its policy is the names of the policies it compiles, joined by ", ". A policy whose prefixes
    reach ``_leanlake/`` compiles to ``abort_multipart`` rules only, maybe none; the reason says
    its transition/expire run in the sweep. Applying the decision also removes leanlake's older rules.
    """
    def has_lifecycle(lp: "LoadedPolicy") -> bool:
        return not lp.policy.filters.suffix and any(a.scope == "lifecycle" for a in lp.policy.actions)

    contributing = [lp for lp in loaded if has_lifecycle(lp) or any(isinstance(a, WriterAction) for a in lp.policy.actions)]
    if not contributing:
        return None
    rules = [rule for lp in contributing for rule in policy_rules(lp.policy)]
    ids = [r["ID"] for r in rules]
    swept = [lp.policy.name for lp in contributing if has_lifecycle(lp) and not expressible(lp.policy.filters)]
    why = f"run in the sweep (Lifecycle can't exclude {RESERVED_PREFIX})"
    if not swept:
        note = ""
    elif len(contributing) == 1:
        note = f"; transition/expire {why}"
    else:
        note = f"; transition/expire of {', '.join(swept)} {why}"
    return Decision(bucket, None, ", ".join(lp.policy.name for lp in contributing), LIFECYCLE,
                    f"Lifecycle rule(s) {', '.join(ids) or 'none'}{note}",
                    params=LifecycleParams(rules, ids, [w for lp in contributing for w in policy_warnings(lp)]))


def owned_rule_ids(config: dict[str, Any] | None, owned_prefix: str = OWNED_PREFIX) -> list[str]:
    """IDs of leanlake's rules in a configuration."""
    return [r["ID"] for r in (config or {}).get("Rules", ()) if str(r.get("ID", "")).startswith(owned_prefix)]
