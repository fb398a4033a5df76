"""Deciding, purely: which action each matched object gets, why, and what it is estimated to save.

What:
- ``plan_batches(batches, policies, as_of)`` plans batches of one bucket's objects held as Arrow
  columns (``chalicelib.columns.Objects``: a listing's pages, an inventory's CSV blocks): each policy's
  actions decide on its matched rows with Arrow compute, and a batch's decisions are segments
  (``chalicelib.verdicts``), a ``Planned``. It makes exactly one decision per (bucket, key, policy) for
  every policy whose filters match the object, and none for unmatched objects; ``Planned.decisions()``
  makes them ``Decision``s (only for a consumer that reads them), ``Planned.json_lines()`` their JSON rows' text.
- ``plan_objects(refs, policies, as_of)`` yields the Decisions of refs, planned a batch (``BATCH``) at a
  time; memory does not grow with the number of refs.
- ``plan_buckets(policies, buckets)`` yields the bucket-level decisions (key None): the bucket's one
  ``lifecycle`` decision (``chalicelib.actions.lifecycle_rules``), then those of bucket-scope actions.
- ``totals(decisions)`` / ``Totals``: counts per action and savings per policy and overall,
  accumulated incrementally (``Totals.watch(decisions)`` passes decisions through;
  ``Totals.add_planned`` counts a planned batch from its columns, to the same floats).

Why: the "worth it" guarantee (README). The rules live with the actions: each action of a matched
policy is asked, in ``plan_rank`` order, to decide (``decide_columns``: a due ``expire`` the sweep
runs comes first, then a conversion or recompression, then a ``storage_class`` move, then a due
``transition`` step); the first decision wins. When none decides, the first idle reason is the
skip's reason ("10 days old, first transition at day 30", "handled by Lifecycle rule
leanlake-<policy>-<n>"): every matched policy gets its one decision, and reports show why nothing
happens to an object. Savings of a ``skip`` are 0; the region is ``settings.region``, else the
``region`` argument (default us-east-1); age is ``as_of − last_modified`` in days.

Example:
    >>> from datetime import datetime, timezone
    >>> from chalicelib.policy import PolicySet
    >>> from chalicelib.refs import ObjectRef
    >>> ps = PolicySet.from_dicts([{"name": "raw", "bucket": "lake", "filters": {"prefix": "raw/", "suffix": ".csv"},
    ...                             "actions": [{"convert": {"source": "delete"}}]}])
    >>> now = datetime(2026, 1, 1, tzinfo=timezone.utc)
    >>> [d] = plan_objects([ObjectRef("lake", "raw/x.csv", size=10 * 2**20, last_modified=now)], ps, now)
    >>> d.action, d.params.destination, round(d.monthly_usd_saved, 6)
    ('convert', 'raw/x.parquet', 0.00018)
    >>> totals([d])["overall"]["actions"]
    {'convert': 1}
"""

from __future__ import annotations

import functools
import itertools
import operator
from dataclasses import dataclass, field
from datetime import datetime
from operator import attrgetter
from typing import Any, Callable, Iterable, Iterator, TypeVar

from chalicelib import collector
from chalicelib import economics as econ
from chalicelib.actions.lifecycle_rules import lifecycle_decision
from chalicelib.actions.planning import PolicyView, ages_column
from chalicelib.columns import Objects, floats, i32, int64s, same_int32s
from chalicelib.decision import Decision, Encoder
from chalicelib.policy.policyset import PolicySet
from chalicelib.refs import ObjectRef
from chalicelib.verdicts import Segment, Verdict

T = TypeVar("T")

#: The skip of a matched policy none of whose actions acts on objects.
NOTHING_PER_OBJECT = "no object-level action: the policy's actions are bucket-level"


def _decide(view: PolicyView, objects: Objects, rows: Any, prefixes: Any, ages: Any) -> list[Segment]:
    """One policy's decisions for its matched ``rows`` of a batch (Arrow int64, with the prefix each matched through,
    Arrow strings): each action decides on the rows no action before it decided on, all at once
    (``Action.decide_columns``); then the rows left get the first idle reason's skip (``Action.idle_columns``),
    else ``NOTHING_PER_OBJECT``."""
    decided, rows, prefixes = _in_turn(view, "decide_columns", objects, rows, prefixes, ages)
    idle, rows, _ = _in_turn(view, "idle_columns", objects, rows, prefixes, ages)
    return decided + idle + ([view.skips(rows, _nothing_per_object)] if len(rows) else [])


def _in_turn(view: PolicyView, step: str, objects: Objects, rows: Any, prefixes: Any, ages: Any) -> tuple[list[Segment], Any, Any]:
    """Ask the policy's actions in turn, by their ``step`` method, about the rows the ones before left."""
    segments: list[Segment] = []
    for action in view.actions:
        if not len(rows):
            break
        made, rows, prefixes = getattr(action, step)(objects, rows, prefixes, view, ages)
        segments.extend(made)
    return segments, rows, prefixes


def _nothing_per_object(_: int) -> str:
    return NOTHING_PER_OBJECT


@dataclass(frozen=True, eq=False)
class Planned:
    """A batch of objects and each matching policy's decisions on its rows, as segments, in the policies' order."""

    objects: Objects
    policies: list[tuple[PolicyView, list[Segment]]]

    def deletes(self) -> bool:
        """True when acting on any of the batch's decisions would delete an object (``deletes``)."""
        return any(segment.deletes() for _, segments in self.policies for segment in segments)

    def decisions(self) -> list[Decision]:
        """Every Decision, in the order of the rows and, for each, of its policies."""
        return self._in_order(lambda segment, policy: segment.decisions(self.objects, policy))

    def json_lines(self, encode: Encoder) -> list[bytes]:
        """Every decision's ``plan --json`` row (``Decision.as_dict``) as ``encode`` writes it, in ``decisions()``' order,
        made from the columns without a Decision (``decision.decision_lines``)."""
        return self._in_order(lambda segment, policy: segment.json_lines(self.objects, policy, encode))

    def _in_order(self, made: Callable[[Segment, str], list[T]]) -> list[T]:
        """What ``made`` gives for each segment (one item a row), in the order of the rows and, for each, of its policies.

        The segments' items are put in order by one stable Arrow sort of their rows (a row's decisions stay in their
        policies' order): a fifth of a second less a million decisions than sorting (row, item) pairs in Python."""
        if len(self.policies) == 1 and len(self.policies[0][1]) == 1:
            view, [segment] = self.policies[0]
            return made(segment, view.name)
        import pyarrow as pa
        import pyarrow.compute as pc

        items: list[T] = []
        rows = []
        for view, segments in self.policies:
            for segment in segments:
                made_items = made(segment, view.name)
                if len(made_items) != len(segment):
                    raise ValueError(f"{len(made_items)} items made for a segment of {len(segment)} rows")
                items += made_items
                rows.append(segment.rows if isinstance(segment, Verdict) else int64s(list(segment.rows)))
        if not items:
            return items
        return list(map(items.__getitem__, pc.sort_indices(pa.concat_arrays(rows)).to_pylist()))


#: Objects planned together: each action decides on a batch's rows with one call (``Action.decide_columns``).
#: A batch is read ahead of its first decision, so it stays about a listing page.
BATCH = 1000


#: What planning a bucket yields (``chalicelib.sweep.bucket_plan``): a Decision (bucket-level, or an object's whose
#: lock was read) or a planned batch of objects.
Piece = Decision | Planned


def decisions_of(piece: Piece) -> list[Decision]:
    """A piece of a plan as its Decisions."""
    return piece.decisions() if isinstance(piece, Planned) else [piece]


def plan_batches(batches: Iterable[Objects], policies: PolicySet, as_of: datetime, *,
                 region: str = econ.figures.DEFAULT_REGION) -> Iterator[Planned]:
    """Every matching policy's decisions on each batch of one bucket's objects, as columns (``Planned``): what
    ``plan_objects`` makes its Decisions from, and what a consumer that only counts reads (``Totals.add_planned``).
    The first call in a process sets the garbage collector for the stream (``collector.for_streaming``)."""
    collector.for_streaming()  # once per process: a full collection would walk every module imported, per few batches
    views = {id(lp): PolicyView.of(lp, region) for lp in policies.loaded}
    for objects in batches:
        yield plan_batch(objects, policies, as_of, views)


def plan_batch(objects: Objects, policies: PolicySet, as_of: datetime, views: dict[int, PolicyView]) -> Planned:
    """Every matching policy's decisions on a batch of one bucket's objects (``views``: each loaded policy's
    ``PolicyView`` by ``id``)."""
    ages = ages_column(objects.modified, as_of)
    planned = []
    for lp, rows, prefixes in policies.match_columns(objects.bucket, objects.keys, objects.sizes, objects.tags):
        view = views[id(lp)]
        planned.append((view, _decide(view, objects, rows, prefixes, ages)))
    return Planned(objects, planned)


def plan_objects(refs: Iterable[ObjectRef], policies: PolicySet, as_of: datetime, *,
                 region: str = econ.figures.DEFAULT_REGION) -> Iterator[Decision]:
    """One Decision per (ref, matching policy), in the order of the refs and, for each, of its policies; nothing
    for refs no policy matches (``PolicySet.match``). It streams a batch of ``BATCH`` refs at a time (each run of
    one bucket's refs planned as columns, ``plan_batches``): memory does not grow with the number of refs."""
    for planned in plan_batches(_batches(refs), policies, as_of, region=region):
        yield from planned.decisions()


def _batches(refs: Iterable[ObjectRef]) -> Iterator[Objects]:
    """``refs`` as batches of at most ``BATCH``, each of one bucket, in order."""
    refs = iter(refs)
    while batch := list(itertools.islice(refs, BATCH)):
        for bucket, run in itertools.groupby(batch, key=attrgetter("bucket")):
            yield Objects.from_refs(bucket, list(run))


def plan_buckets(policies: PolicySet, buckets: Iterable[str] | None = None) -> Iterator[Decision]:
    """Bucket-level decisions (key None): one ``lifecycle`` per bucket, then each bucket-scope action's."""
    for bucket in (policies.buckets if buckets is None else buckets):
        loaded = policies.for_bucket(bucket)
        lifecycle = lifecycle_decision(bucket, loaded)
        if lifecycle is not None:
            yield lifecycle
        for lp in loaded:
            for action in lp.policy.actions:
                yield from action.plan_bucket(bucket, lp.policy)


def deletes(decision: Decision) -> bool:
    """True when acting on ``decision`` deletes an object: an expiry, or a write whose source is then deleted."""
    return decision.by is not None and decision.by.deletes()


@dataclass(slots=True)
class _Sum:
    """One policy's (or all policies') running totals; ``Totals.add`` counts into two at once. Skips count 0."""

    decisions: int = 0
    actions: dict[str, int] = field(default_factory=dict)
    monthly_usd_saved: float = 0.0
    monthly_kgco2e_saved: float = 0.0
    one_off_usd: float = 0.0
    bytes: int = 0

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
        """Count one decision, overall and for its policy (``_Sum.add`` twice, in one call: it runs per decision)."""
        overall = self.overall
        acc = self.policies.get(decision.policy)
        if acc is None:
            acc = self.policies[decision.policy] = _Sum()
        action = decision.action
        overall.decisions += 1
        acc.decisions += 1
        actions = overall.actions
        actions[action] = actions.get(action, 0) + 1
        actions = acc.actions
        actions[action] = actions.get(action, 0) + 1
        if action != "skip":
            usd, kgco2e, one_off = decision.monthly_usd_saved, decision.monthly_kgco2e_saved, decision.one_off_usd
            overall.monthly_usd_saved += usd
            overall.monthly_kgco2e_saved += kgco2e
            overall.one_off_usd += one_off
            acc.monthly_usd_saved += usd
            acc.monthly_kgco2e_saved += kgco2e
            acc.one_off_usd += one_off
            ref = decision.ref
            if ref is not None and ref.size:
                overall.bytes += ref.size
                acc.bytes += ref.size

    def add_planned(self, planned: Planned) -> None:
        """Count a planned batch from its columns, without making its Decisions: the same totals as ``add`` of each
        of ``planned.decisions()`` in turn. Each sum is added to in that order (the rows ascending, a row's policies in
        order), so the floats are the same too; counts and bytes are exact in any order."""
        import pyarrow as pa
        import pyarrow.compute as pc

        objects, overall = planned.objects, self.overall
        rows, policy_of, usd, kgco2e, one_off = [], [], [], [], []
        for n, (view, segments) in enumerate(planned.policies):
            acc = self.policies.get(view.name)
            if acc is None:
                acc = self.policies[view.name] = _Sum()
            for segment in segments:
                for action, count in _actions(segment).items():
                    for into in (overall, acc):
                        into.decisions += count
                        into.actions[action] = into.actions.get(action, 0) + count
                acted = _acted(segment, objects)
                if acted is None:
                    continue
                at, sizes, u, k, o = acted
                size = pc.sum(sizes).as_py() or 0
                overall.bytes += size
                acc.bytes += size
                rows.append(at)
                policy_of.append(same_int32s(n, len(at)))
                usd.append(u)
                kgco2e.append(k)
                one_off.append(o)
        if not rows:
            return
        table = pa.table({"row": pa.concat_arrays(rows), "policy": pa.concat_arrays(policy_of), "usd": pa.concat_arrays(usd),
                          "kgco2e": pa.concat_arrays(kgco2e), "one_off": pa.concat_arrays(one_off)})
        table = table.take(pc.sort_indices(table, [("row", "ascending"), ("policy", "ascending")]))
        _add_in_order(overall, table)
        for n, (view, _) in enumerate(planned.policies):
            mine = table.filter(pc.equal(table.column("policy"), i32(n)))
            if mine.num_rows:
                _add_in_order(self.policies[view.name], mine)

    def watch(self, decisions: Iterable[Decision]) -> Iterator[Decision]:
        """Pass decisions through, counting them."""
        add = self.add
        for d in decisions:
            add(d)
            yield d

    def watch_plan(self, pieces: Iterable[Piece]) -> Iterator[Piece]:
        """Pass a plan's pieces through, counting them: a planned batch from its columns, a Decision as itself."""
        for piece in pieces:
            if isinstance(piece, Planned):
                self.add_planned(piece)
            else:
                self.add(piece)
            yield piece

    def as_dict(self) -> dict[str, Any]:
        return {"overall": self.overall.as_dict(), "policies": {k: v.as_dict() for k, v in sorted(self.policies.items())}}


def _actions(segment: Segment) -> dict[str, int]:
    """How many decisions of each action a segment holds."""
    if isinstance(segment, Verdict):
        return {segment.action: len(segment)}
    counts: dict[str, int] = {}
    for decision in segment.given:
        counts[decision.action] = counts.get(decision.action, 0) + 1
    return counts


def _acted(segment: Segment, objects: Objects) -> tuple[Any, Any, Any, Any, Any] | None:
    """The rows of a segment's decisions that act (not skips), as Arrow columns: rows, sizes, monthly USD and kg
    CO2e saved, one-off USD; None when there are none."""
    if isinstance(segment, Verdict):
        if segment.action == "skip" or not len(segment):
            return None
        return segment.rows, objects.sizes.take(segment.rows), segment.usd, segment.kgco2e, segment.one_off
    acting = [(row, d) for row, d in zip(segment.rows, segment.given, strict=True) if d.action != "skip"]
    if not acting:
        return None
    return (int64s([row for row, _ in acting]), int64s([d.ref.size if d.ref is not None else None for _, d in acting]),
            floats([d.monthly_usd_saved for _, d in acting]), floats([d.monthly_kgco2e_saved for _, d in acting]),
            floats([d.one_off_usd for _, d in acting]))


def _add_in_order(into: _Sum, table: Any) -> None:
    """Add a table's ``usd``, ``kgco2e`` and ``one_off`` to ``into``'s sums one value at a time, in the table's order."""
    into.monthly_usd_saved = functools.reduce(operator.add, table.column("usd").to_pylist(), into.monthly_usd_saved)
    into.monthly_kgco2e_saved = functools.reduce(operator.add, table.column("kgco2e").to_pylist(), into.monthly_kgco2e_saved)
    into.one_off_usd = functools.reduce(operator.add, table.column("one_off").to_pylist(), into.one_off_usd)


def totals(decisions: Iterable[Decision]) -> dict[str, Any]:
    """Counts per action, monthly USD and kg CO2e saved and one-off USD, per policy and overall (skips count 0)."""
    t = Totals()
    for d in decisions:
        t.add(d)
    return t.as_dict()
