"""Deciding, purely: which action each matched object gets, why, and what it is estimated to save.

What:
- ``plan_objects(refs, policies, as_of)`` yields exactly one ``Decision`` per (bucket, key, policy)
  for every policy whose filters match the ref, and nothing for unmatched refs. The action is
  ``convert``, ``recompress``, ``storage_class``, ``expire`` or ``skip`` (always with the reason).
  It streams: one ref in, its decisions out; memory does not grow with the number of refs.
- ``plan_buckets(policies, buckets)`` yields the bucket-level decisions: ``lifecycle`` for each
  policy with ``transition``/``expire``/``noncurrent``/``abort_multipart`` and no suffix filter
  (key None, ``params["rules"]``: none or only abort-multipart ones when its prefixes reach
  ``_leanlake/``; applying it still removes leanlake's older rules), ``intelligent_tiering`` for that action.
- ``totals(decisions)`` / ``Totals``: counts per action and savings per policy and overall,
  accumulated incrementally (``Totals.watch(decisions)`` passes decisions through).

Why: the "worth it" guarantee (README). Per object, in this order, the first that applies decides:
1. ``expire`` run by the sweep (not ``lifecycle.expressible``: a suffix filter, or no prefix or one
   that ``_leanlake/`` starts with, which Lifecycle can't keep off the audit trail) and due → ``expire``
   (``params["versions"]``: ``marker`` or ``all``).
2. ``convert``/``recompress`` → act with an estimated saving, unless the object is in
   GLACIER/DEEP_ARCHIVE (it can't be read without a restore), so small the output can't be smaller
   (1–511 B for Parquet, whose smallest file is ~500 B; 1–63 B for zstd — an empty object goes on
   so the executor reports it as bad input) or its destination is itself or under ``_leanlake/``
   (a key like ``raw/_leanlake/audit/x.csv`` can render one). Output sizes are ASSUMPTIONS stated in the reason
   (Parquet ~20% of plain CSV/JSON, ~85% of compressed text; zstd-19 ~85% of gzip, …); the
   executor checks the real size. ``params["destination"]`` is the output key.
3. ``storage_class`` → act only if the net USD saving over ``settings.horizon_days`` (storage,
   COPY request, retrieval, minimum-duration and minimum-size penalties) is positive; skip objects
   already in the class, in GLACIER/DEEP_ARCHIVE, under 128 KiB going to STANDARD_IA/ONEZONE_IA/
   GLACIER_IR ("billed as 128 KiB"), or expiring (same policy's ``expire``) before the class's
   minimum duration. Under ``settings.objective: co2e`` a CO2e saving is required too — which,
   under the CCF carbon method, only a move into ONEZONE_IA has (the reason says so).
4. ``transition`` run by the sweep (as in 1) → the step due at the object's age, judged as
   in 3 (``params["storage_class"]`` and ``params["via"] = "transition"``).
5. Otherwise ``skip``: "N days old, expires at day D", or — chosen here — for actions Lifecycle
   runs, "handled by Lifecycle rule leanlake-<policy>-<n>" (a skip, so that every matched policy
   still gets its one decision and reports show why nothing happens per object).

Savings fields of a ``skip`` are 0. ``params["notes"]`` carries the economics' notes (e.g. that
class changes save dollars, not CO2e, under CCF). The region is ``settings.region``, else the
``region`` argument (default us-east-1). Age is ``as_of − last_modified`` in days.

Example:
    >>> from datetime import datetime, timezone
    >>> from chalicelib.policy import PolicySet
    >>> from chalicelib.refs import RESERVED_PREFIX, ObjectRef
    >>> ps = PolicySet.from_dicts([{"name": "raw", "bucket": "lake", "filters": {"prefix": "raw/", "suffix": ".csv"},
    ...                             "actions": [{"convert": {"source": "delete"}}]}])
    >>> now = datetime(2026, 1, 1, tzinfo=timezone.utc)
    >>> [d] = plan_objects([ObjectRef("lake", "raw/x.csv", size=10 * 2**20, last_modified=now)], ps, now)
    >>> d.action, d.params["destination"], round(d.monthly_usd_saved, 6)
    ('convert', 'raw/x.parquet', 0.00018)
    >>> totals([d])["overall"]["actions"]
    {'convert': 1}
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Iterable, Iterator

from chalicelib import economics as econ
from chalicelib.actions import REGISTRY
from chalicelib.actions.convert import Convert
from chalicelib.actions.intelligent_tiering import IntelligentTiering, configurations
from chalicelib.actions.lifecycle import Expire, Transition
from chalicelib.actions.recompress import Recompress
from chalicelib.actions.storage_class import StorageClass
from chalicelib.decision import Decision
from chalicelib.lifecycle import LIFECYCLE_ACTIONS, LifecycleError, expressible, lifecycle_warnings, policy_rules, rule_id
from chalicelib.policy.problems import LoadedPolicy
from chalicelib.policy.policyset import PolicySet
from chalicelib.policy.templates import KeyParts
from chalicelib.refs import RESERVED_PREFIX, ObjectRef, is_reserved

_DAY = 86400.0


def _ratios() -> dict[str, tuple[float, str]]:
    node = econ.model()["assumptions"]["output_ratio"]
    return {k: (v["value"], v["note"]) for k, v in node.items() if not k.startswith("min_input_bytes")}


@dataclass(frozen=True)
class _PolicyPlan:
    """What is needed to decide for one policy, computed once per run."""

    name: str
    region: str
    horizon: int
    co2e: bool
    by_lifecycle: bool
    writer: Convert | Recompress | None
    storage_class: StorageClass | None
    transition: Transition | None
    expire: Expire | None
    tiering: bool
    prefixes: tuple[str, ...]
    ratios: dict[str, tuple[float, str]] = field(repr=False)
    min_input: int = 512

    @classmethod
    def of(cls, lp: LoadedPolicy, region: str) -> "_PolicyPlan":
        p = lp.policy
        writer = p.action(Convert.name) or p.action(Recompress.name)
        return cls(
            name=p.name, region=lp.settings.region or region, horizon=lp.settings.horizon_days,
            co2e=lp.settings.objective == "co2e", by_lifecycle=expressible(p.filters),
            writer=writer if isinstance(writer, (Convert, Recompress)) else None,
            storage_class=p.action(StorageClass.name),  # type: ignore[arg-type]
            transition=p.action(Transition.name),  # type: ignore[arg-type]
            expire=p.action(Expire.name),  # type: ignore[arg-type]
            tiering=p.action(IntelligentTiering.name) is not None, prefixes=p.filters.prefix or ("",),
            ratios=_ratios(), min_input=econ.value("assumptions", "output_ratio",
                                                  "min_input_bytes_parquet" if isinstance(writer, Convert) else "min_input_bytes_zstd"),
        )


def _age_days(ref: ObjectRef, as_of: datetime) -> float | None:
    modified = ref.last_modified
    if modified is None:
        return None
    try:
        return (as_of - modified).total_seconds() / _DAY
    except TypeError:  # one naive, one aware: naive means UTC
        a = as_of if as_of.tzinfo else as_of.replace(tzinfo=timezone.utc)
        m = modified if modified.tzinfo else modified.replace(tzinfo=timezone.utc)
        return (a - m).total_seconds() / _DAY


def _skip(ref: ObjectRef, pp: _PolicyPlan, reason: str) -> Decision:
    return Decision(ref.bucket, ref.key, pp.name, "skip", reason, ref=ref)


def _output_ratio(pp: _PolicyPlan, writer: Convert | Recompress, parts: KeyParts) -> tuple[float, str]:
    comp = parts.compression_suffix.lower()
    if isinstance(writer, Convert):
        return pp.ratios["parquet_from_compressed_text" if comp else "parquet_from_text"]
    if comp in (".gz", ".gzip"):
        return pp.ratios["zstd_from_gzip"]
    if comp == ".bz2":
        return pp.ratios["zstd_from_bz2"]
    if comp in (".zst", ".zstd"):
        return pp.ratios["zstd_from_zstd"]
    return pp.ratios["zstd_from_plain"]


def _write(ref: ObjectRef, prefix: str, pp: _PolicyPlan, writer: Convert | Recompress, age: float | None) -> Decision:
    cls = ref.effective_storage_class
    if econ.needs_restore(cls):
        return _skip(ref, pp, f"in {cls}: cannot be read without a restore")
    size = ref.size
    if size is not None and 0 < size < pp.min_input:  # an empty object goes on: the executor reports it as bad input
        return _skip(ref, pp, f"{size} B: under {pp.min_input} B the output would not be smaller")
    parts = KeyParts.of(ref.key, prefix)
    destination = writer.destination_key(parts)
    if destination == ref.key:
        return _skip(ref, pp, f"destination {destination} is the source itself")
    if is_reserved(destination):
        return _skip(ref, pp, f"destination {destination} is under {RESERVED_PREFIX}, which is reserved for leanlake")
    verb = writer.name
    ratio, assumption = _output_ratio(pp, writer, parts)
    params: dict[str, Any] = {"destination": destination, "source": writer.source, "output_ratio": ratio,
                              "assumption": assumption}
    if size is None:
        return Decision(ref.bucket, ref.key, pp.name, verb, f"{verb} to {destination}; size unknown, saving not estimated",
                        ref=ref, params=params)
    est = econ.conversion(size, size * ratio, cls, pp.region, source=writer.source, age_days=age)
    params["notes"] = est.notes
    reason = (f"{verb} to {destination}: output assumed {ratio:.0%} of {size:,} B (ASSUMPTION: {assumption}); "
              f"saves ${est.monthly_usd_saved:.6f} and {est.monthly_kgco2e_saved:.6f} kg CO2e a month")
    return Decision(ref.bucket, ref.key, pp.name, verb, reason, est.monthly_usd_saved, est.monthly_kgco2e_saved,
                    est.one_off_usd, ref=ref, params=params)


def _move(ref: ObjectRef, pp: _PolicyPlan, target: str, age: float | None, via: str) -> Decision:
    cls = ref.effective_storage_class
    if cls == target:
        return _skip(ref, pp, f"already in {target}")
    if econ.needs_restore(cls):
        return _skip(ref, pp, f"in {cls}: cannot be read without a restore")
    facts = econ.storage_class(target)
    if via == "transition" and cls in econ.class_names() and econ.storage_class(cls).rank >= facts.rank:
        return _skip(ref, pp, f"already in {cls}, at or past {target}")
    size = ref.size
    if size is None:
        return _skip(ref, pp, "size unknown: saving can't be judged")
    if size < facts.min_billable:
        return _skip(ref, pp, f"small object ({size:,} B): billed as {facts.min_billable // 1024} KiB in {target}")
    expires_in = None
    if pp.expire is not None:
        expires_in = pp.expire.days - (age or 0.0)
        minimum = facts.min_days
        if expires_in < minimum:
            return _skip(ref, pp, f"expires at day {pp.expire.days} ({max(expires_in, 0):.0f} days from now), "
                                  f"before the {minimum}-day minimum of {target}")
    est = econ.class_change(size, cls, target, pp.region, age_days=age, expires_in_days=expires_in)
    net = est.net_usd(pp.horizon)
    if net <= 0:
        unmodelled = (" — Intelligent-Tiering is priced at its Frequent Access tier: savings from later tiers "
                      "depend on access and are not modelled") if target == "INTELLIGENT_TIERING" else ""
        return _skip(ref, pp, f"{cls} → {target} not worth it: net ${net:.6f} over {pp.horizon} days "
                              f"(${est.monthly_usd_saved:.6f}/month, one-off ${est.one_off_usd:.6f}){unmodelled}")
    if pp.co2e and est.monthly_kgco2e_saved <= 0:
        return _skip(ref, pp, f"objective co2e: {cls} → {target} saves no CO2e ({econ.CCF_CLASS_NOTE})")
    co2e = (f"{est.monthly_kgco2e_saved:.6f} kg CO2e a month" if est.monthly_kgco2e_saved > 0
            else "no CO2e (CCF: class changes save dollars, not CO2e, except into ONEZONE_IA)")
    reason = f"{cls} → {target}: net ${net:.6f} over {pp.horizon} days; saves {co2e}"
    params = {"storage_class": target, "via": via, "notes": est.notes}
    return Decision(ref.bucket, ref.key, pp.name, "storage_class", reason, est.monthly_usd_saved,
                    est.monthly_kgco2e_saved, est.one_off_usd, ref=ref, params=params)


def _expire(ref: ObjectRef, pp: _PolicyPlan, expire: Expire, age: float) -> Decision:
    est = econ.deletion(ref.size or 0, ref.effective_storage_class, pp.region, age)
    reason = f"{age:.0f} days old, older than {expire.days}: expire ({expire.versions})"
    return Decision(ref.bucket, ref.key, pp.name, "expire", reason, est.monthly_usd_saved, est.monthly_kgco2e_saved,
                    est.one_off_usd, ref=ref, params={"versions": expire.versions})


def decide(ref: ObjectRef, prefix: str, pp: _PolicyPlan, as_of: datetime) -> Decision:
    """The one decision of one policy for one matched object (see the module docstring for the order)."""
    age = _age_days(ref, as_of)
    expire = pp.expire
    if expire is not None and not pp.by_lifecycle:
        if age is None:
            return _skip(ref, pp, "age unknown (no last_modified): expiry can't be judged")
        if age >= expire.days:
            return _expire(ref, pp, expire, age)
    if pp.writer is not None:
        return _write(ref, prefix, pp, pp.writer, age)
    if pp.storage_class is not None:
        return _move(ref, pp, pp.storage_class.storage_class, age, "copy")
    if pp.transition is not None and not pp.by_lifecycle:
        days = age or 0.0
        due = None
        for step in pp.transition.steps:
            if step.days <= days:
                due = step
        if due is not None:
            return _move(ref, pp, due.storage_class, age, "transition")
        if expire is None:
            first = pp.transition.steps[0]
            return _skip(ref, pp, f"{days:.0f} days old, first transition at day {first.days}")
    if expire is not None and not pp.by_lifecycle:
        return _skip(ref, pp, f"{age:.0f} days old, expires at day {expire.days}")
    if pp.by_lifecycle and (pp.transition is not None or expire is not None):
        n = pp.prefixes.index(prefix) + 1 if prefix in pp.prefixes else 1
        return _skip(ref, pp, f"handled by Lifecycle rule {rule_id(pp.name, n)}")
    if pp.tiering:
        return _skip(ref, pp, "handled by the bucket's Intelligent-Tiering configuration")
    return _skip(ref, pp, "no object-level action: the policy's actions are bucket-level")


def plan_objects(refs: Iterable[ObjectRef], policies: PolicySet, as_of: datetime, *,
                 region: str = econ.figures.DEFAULT_REGION) -> Iterator[Decision]:
    """One Decision per (ref, matching policy), streamed; nothing for refs no policy matches (``PolicySet.match``)."""
    plans = {id(lp): _PolicyPlan.of(lp, region) for lp in policies.loaded}
    for ref in refs:
        for match in policies.match(ref):
            yield decide(ref, match.prefix, plans[id(match.loaded)], as_of)


def plan_buckets(policies: PolicySet, buckets: Iterable[str] | None = None) -> Iterator[Decision]:
    """Bucket-level decisions (key None): ``lifecycle`` and ``intelligent_tiering``, one per policy and bucket."""
    for bucket in (policies.buckets if buckets is None else buckets):
        for lp in policies.for_bucket(bucket):
            p = lp.policy
            warnings = lifecycle_warnings(PolicySet((lp,)))
            # Suffix filters: no rule at all, the sweep decides per object. Prefixes reaching _leanlake/
            # (not expressible): abort_multipart rules only, maybe none; applying still removes older rules.
            if any(p.action(name) is not None for name in LIFECYCLE_ACTIONS) and not p.filters.suffix:
                try:
                    rules = policy_rules(p)
                except LifecycleError as exc:
                    yield Decision(bucket, None, p.name, "skip", str(exc), params={"warnings": warnings})
                else:
                    ids = [r["ID"] for r in rules]
                    swept = ("" if expressible(p.filters)
                             else f"; transition/expire run in the sweep (Lifecycle can't exclude {RESERVED_PREFIX})")
                    yield Decision(bucket, None, p.name, "lifecycle", f"Lifecycle rule(s) {', '.join(ids) or 'none'}{swept}",
                                   params={"rules": rules, "rule_ids": ids, "warnings": warnings})
            if p.action(IntelligentTiering.name) is not None:
                try:
                    configs = configurations(p)
                except ValueError as exc:
                    yield Decision(bucket, None, p.name, "skip", str(exc))
                else:
                    tiers = ", ".join(f"{t['AccessTier']} after {t['Days']} days" for t in configs[0]["Tierings"])
                    yield Decision(bucket, None, p.name, "intelligent_tiering",
                                   f"Intelligent-Tiering {', '.join(c['Id'] for c in configs)}: {tiers} without access",
                                   params={"configurations": configs})


@dataclass
class _Sum:
    decisions: int = 0
    actions: dict[str, int] = field(default_factory=dict)
    monthly_usd_saved: float = 0.0
    monthly_kgco2e_saved: float = 0.0
    one_off_usd: float = 0.0
    bytes: int = 0

    def add(self, d: Decision) -> None:
        self.decisions += 1
        self.actions[d.action] = self.actions.get(d.action, 0) + 1
        if d.action != "skip":
            self.monthly_usd_saved += d.monthly_usd_saved
            self.monthly_kgco2e_saved += d.monthly_kgco2e_saved
            self.one_off_usd += d.one_off_usd
            if d.ref is not None and d.ref.size:
                self.bytes += d.ref.size

    def as_dict(self) -> dict[str, Any]:
        return {"decisions": self.decisions, "actions": dict(sorted(self.actions.items())),
                "monthly_usd_saved": round(self.monthly_usd_saved, 6),
                "monthly_kgco2e_saved": round(self.monthly_kgco2e_saved, 9),
                "one_off_usd": round(self.one_off_usd, 6), "bytes_acted_on": self.bytes}


class Totals:
    """Running totals of decisions, per policy and overall; constant memory per policy.

        >>> t = Totals()
        >>> t.add(Decision("b", "k", "p", "skip", "why"))
        >>> t.as_dict()["policies"]["p"]["actions"]
        {'skip': 1}
    """

    def __init__(self) -> None:
        self.overall = _Sum()
        self.policies: dict[str, _Sum] = {}

    def add(self, decision: Decision) -> None:
        self.overall.add(decision)
        acc = self.policies.get(decision.policy)
        if acc is None:
            acc = self.policies[decision.policy] = _Sum()
        acc.add(decision)

    def watch(self, decisions: Iterable[Decision]) -> Iterator[Decision]:
        """Pass decisions through, counting them."""
        for d in decisions:
            self.add(d)
            yield d

    def as_dict(self) -> dict[str, Any]:
        return {"overall": self.overall.as_dict(), "policies": {k: v.as_dict() for k, v in sorted(self.policies.items())}}


def totals(decisions: Iterable[Decision]) -> dict[str, Any]:
    """Counts per action, monthly USD and kg CO2e saved and one-off USD, per policy and overall (skips count 0)."""
    t = Totals()
    for d in decisions:
        t.add(d)
    return t.as_dict()


def deletes(decision: Decision) -> bool:
    """True when acting on ``decision`` deletes an object: an expiry, or a write whose source is then deleted."""
    action = REGISTRY.get(decision.action)
    return action is not None and action.deletes(decision.params)


def locked(decision: Decision, why: str, policies: PolicySet, *, region: str = econ.figures.DEFAULT_REGION) -> Decision:
    """What ``apply`` does with a deleting decision whose object is locked (or whose lock state can't be read): a skip.

    An expiry is not done. A conversion with ``source: delete`` would keep its locked source, so
    the output would only add storage: it is not worth it, and the reason prices what it would add.

        >>> d = Decision("b", "tmp/a.tmp", "p", "expire", "400 days old", 0.1)
        >>> locked(d, "under legal hold", PolicySet(())).reason
        'under legal hold: not deleted'
    """
    if decision.action == "expire":
        return Decision(decision.bucket, decision.key, decision.policy, "skip", f"{why}: not deleted", ref=decision.ref)
    ref = decision.ref
    added = ""
    if ref is not None and ref.size:
        lp = policies.named(decision.policy)
        est = econ.conversion(ref.size, ref.size * float(decision.params.get("output_ratio", 1.0)), ref.effective_storage_class,
                              lp.settings.region or region, source="keep")
        added = f"; the output would add ${-est.monthly_usd_saved:.6f} a month"
    return Decision(decision.bucket, decision.key, decision.policy, "skip",
                    f"source {why}: it would stay, so {decision.action} is not worth it{added}", ref=ref)
