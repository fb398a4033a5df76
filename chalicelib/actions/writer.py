"""What ``convert`` and ``recompress`` share: they write a new object from a source, then handle the source.

The source disposition is ``keep``, ``delete`` or ``storage_class:CLASS`` (copy in place into
CLASS); the I/O steps live in ``chalicelib.actions.output``.

Planning (``decide``): act with an estimated saving, unless the object is in an archive class (it
can't be read without a restore), so small the output can't be smaller (under
``min_input_bytes``; an empty object goes on so the executor reports it as bad input), or its
destination is itself or under ``_leanlake/`` (a key like ``raw/_leanlake/audit/x.csv`` can render
one). Output sizes are ASSUMPTIONS from the economics model, stated in the reason (Parquet ~20% of
plain CSV/JSON, ~85% of compressed text; zstd-19 ~85% of gzip, …); the executor checks the real
size.

Example:
    >>> check_source_disposition("storage_class:glacier_ir")
    'storage_class:GLACIER_IR'
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from itertools import repeat
from typing import TYPE_CHECKING, Any, Callable, ClassVar, TypeVar

from pydantic import field_validator

from chalicelib import economics as econ
from chalicelib.actions import permissions as s3calls
from chalicelib.actions.base import Action, Scope
from chalicelib.actions.output import write_output
from chalicelib.columns import flag, flags, floats, i64, strings, text, zeros
from chalicelib.decision import ActionParams, Decision
from chalicelib.policy.templates import KeyParts, parts_columns
from chalicelib.policy.units import check_storage_class
from chalicelib.refs import RESERVED_PREFIX
from chalicelib.verdicts import Verdict, per_row, per_rows

if TYPE_CHECKING:
    from chalicelib.actions.planning import PolicyView
    from chalicelib.columns import Objects
    from chalicelib.verdicts import Segment
    from chalicelib.formats.outputs import Output
    from chalicelib.context import RunContext
    from chalicelib.decision import Outcome


T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class WriteParams(ActionParams):
    """A planned write: the output key, what then happens to the source, and the assumed output size."""

    destination: str
    source: str = "keep"
    output_ratio: float = 1.0
    assumption: str = ""
    region: str = econ.figures.DEFAULT_REGION
    notes: tuple[str, ...] = ()


@cache
def output_ratio(name: str) -> tuple[float, str]:
    """An assumed output/input size ratio of the economics model (``zstd_from_gzip``…) and its note."""
    node = econ.model()["assumptions"]["output_ratio"][name]
    return node["value"], node["note"]


#: ``econ.needs_restore`` per class, cached (it reads the model twice; planning asks once per planned write).
_needs_restore = cache(econ.needs_restore)


@cache
def min_input_bytes(name: str) -> int:
    """The economics model's smallest input (``min_input_bytes_parquet``…) whose output can be smaller."""
    return int(econ.value("assumptions", "output_ratio", name))


def check_source_disposition(value: str) -> str:
    """The normalised disposition, or ValueError naming the valid forms."""
    text = str(value).strip()
    if text in ("keep", "delete"):
        return text
    head, _, cls = text.partition(":")
    if head == "storage_class" and cls:
        return f"storage_class:{check_storage_class(cls)}"
    raise ValueError(f"source must be keep, delete or storage_class:CLASS, not {value!r}")


#: A planned write's reason: its action, destination, assumed ratio, source size and assumption, and the
#: monthly USD and kg CO2e it saves.
WRITE_REASON = ("{} to {}: output assumed {:.0%} of {:,} B (ASSUMPTION: {}); "
                "saves ${:.6f} and {:.6f} kg CO2e a month")


def _write_reasons(action: str, destinations: list[str], ratios: list[float], notes: list[str], sizes: list[int],
                   usd: list[float], kgco2e: list[float]) -> list[str]:
    """The reasons of a segment's planned writes, one a row of the columns (written when read, all at once:
    ``verdicts.per_rows``; planning only counts most decisions).

        >>> _write_reasons("convert", ["raw/a.parquet"], [0.2], ["text → Parquet"], [2048], [0.5], [0.01])[0]
        'convert to raw/a.parquet: output assumed 20% of 2,048 B (ASSUMPTION: text → Parquet); saves $0.500000 and 0.010000 kg CO2e a month'
    """
    return list(map(WRITE_REASON.format, repeat(action), destinations, ratios, sizes, notes, usd, kgco2e))


def _priced_params(destinations: Any, ratios: Any, notes: Any, classes: Any, source: str, region: str, j: int) -> "WriteParams":
    """The j-th priced write's params, with its source class's notes (``economics.arrays.conversions_notes``)."""
    from chalicelib.economics import arrays as priced  # pyarrow: loaded by planning only, not by the app

    return WriteParams(destinations[j], source, ratios[j], notes[j], region, priced.conversions_notes(classes[j], region, source))


def _unpriced_params(destinations: Any, ratios: Any, notes: Any, source: str, region: str, j: int) -> "WriteParams":
    return WriteParams(destinations[j], source, ratios[j], notes[j], region)


def _unknown_size_reason(action: str, destinations: Any, j: int) -> str:
    return f"{action} to {destinations[j]}; size unknown, saving not estimated"


def _small_reason(sizes: Any, smallest: int, j: int) -> str:
    return f"{sizes[j]} B: under {smallest} B the output would not be smaller"


def _itself_reason(destinations: Any, j: int) -> str:
    return f"destination {destinations[j]} is the source itself"


def _reserved_reason(destinations: Any, j: int) -> str:
    return f"destination {destinations[j]} is under {RESERVED_PREFIX}, which is reserved for leanlake"


class WriterAction(Action):
    """Base of actions that write an output object (at most one applies to an object)."""

    scope: ClassVar[Scope] = "object"
    plan_rank: ClassVar[int] = 20
    #: …and the bucket's Lifecycle configuration: an abort-incomplete-upload rule covers the destinations.
    s3_calls: ClassVar[s3calls.Calls] = s3calls.READ_SOURCE + s3calls.WRITE_OUTPUT + s3calls.LIFECYCLE
    #: handling the source: ``delete`` deletes it, ``storage_class:CLASS`` copies it in place unless locked
    s3_calls_by_option: ClassVar[dict[str, dict[str, s3calls.Calls]]] = {"source": {
        "delete": s3calls.DELETE, "storage_class": s3calls.READ_LOCKS + s3calls.COPY_IN_PLACE}}
    writes_output: ClassVar[bool] = True
    #: Content type of the outputs.
    content_type: ClassVar[str]
    #: The suffix an output's key usually ends with (``.parquet``), for suggested destination templates.
    output_suffix: ClassVar[str]
    #: The economics model's smallest input whose output can be smaller (``min_input_bytes_parquet``).
    min_input_assumption: ClassVar[str]

    source: str = "keep"

    _check_source = field_validator("source")(classmethod(lambda cls, v: check_source_disposition(v)))

    def destination_key(self, parts: KeyParts) -> str:
        raise NotImplementedError

    def destination_template(self) -> str:
        """The template outputs' keys are rendered from (``{dir}{stem}.parquet``…)."""
        raise NotImplementedError

    def destination_prefixes(self, policy_prefixes: tuple[str, ...]) -> tuple[str, ...]:
        """Key prefixes every output of this action is written under (for the abort-incomplete-upload
        rule): the policy's own prefixes when the template starts with ``{dir}`` or ``{key}``, else the
        template's literal text before its first variable (``""``, the whole bucket, for ``{rel_dir}…``).

            >>> from chalicelib.actions import Convert
            >>> Convert(destination="curated/{rel_dir}{stem}.parquet").destination_prefixes(("raw/",))
            ('curated/',)
            >>> Convert().destination_prefixes(("raw/", "landing/"))
            ('raw/', 'landing/')
        """
        template = self.destination_template()
        if template.startswith(("{dir}", "{key}")):
            return policy_prefixes or ("",)
        return (template.partition("{")[0],)

    def destination_columns(self, parts: dict[str, Any]) -> Any:
        """``destination_key`` of each row of a batch's key parts (``templates.parts_columns``), as an Arrow column."""
        raise NotImplementedError

    def output_ratio(self, compression_suffix: str) -> tuple[float, str]:
        """The assumed output/input size ratio for a source with this compression suffix (``.gz``, or ""), and its note."""
        raise NotImplementedError

    def produce(self, open_source: Callable[[], Any], output: "Output") -> tuple[int, dict[str, Any]]:
        """Write the output into ``output`` (streamed: a multipart upload, a counter in a dry run), checked
        as it is produced; return its size and details for the Outcome (``rows`` for a table)."""
        raise NotImplementedError

    def deletes(self) -> bool:
        """A write deletes its source once the output is verified when the policy says ``source: delete``."""
        return self.source == "delete"

    def decide_columns(self, objects: "Objects", rows: Any, prefixes: Any, view: "PolicyView",
                       ages: Any) -> "tuple[list[Segment], Any, Any]":
        """A write with its estimated saving, or a skip saying why not (see the module docstring), for every row; the
        destinations are rendered as columns (``destination_columns``), the estimates priced in one pass
        (``economics.arrays.conversions``)."""
        import pyarrow.compute as pc

        from chalicelib.economics import arrays as priced  # pyarrow: loaded by planning only, not by the app

        classes, sizes = objects.effective_classes(rows), objects.sizes.take(rows)
        segments: list[Segment] = []
        readable = flags([True] * len(rows))
        for cls in pc.unique(classes).to_pylist():
            if _needs_restore(cls):
                archived = pc.equal(classes, text(cls))
                segments.append(view.skips(rows.filter(archived), f"in {cls}: cannot be read without a restore"))
                readable = pc.and_(readable, pc.invert(archived))
        smallest = min_input_bytes(self.min_input_assumption)
        # an empty object goes on: the executor reports it as bad input
        small = pc.fill_null(pc.and_(readable, pc.and_(pc.greater(sizes, i64(0)), pc.less(sizes, i64(smallest)))), flag(False))
        if pc.any(small).as_py():
            segments.append(view.skips(rows.filter(small), per_row(_small_reason, sizes.filter(small), smallest)))
        writable = pc.and_(readable, pc.invert(small))
        if not pc.any(writable).as_py():
            return segments, rows[:0], prefixes[:0]
        at, at_classes, at_sizes = rows.filter(writable), classes.filter(writable), sizes.filter(writable)
        keys = objects.keys.take(at)
        parts = parts_columns(keys, prefixes.filter(writable))
        destinations = self.destination_columns(parts)
        itself = pc.equal(destinations, keys)
        reserved = pc.and_(pc.invert(itself), pc.starts_with(destinations, pattern=RESERVED_PREFIX))
        if pc.any(itself).as_py():
            segments.append(view.skips(at.filter(itself), per_row(_itself_reason, destinations.filter(itself))))
        if pc.any(reserved).as_py():
            segments.append(view.skips(at.filter(reserved), per_row(_reserved_reason, destinations.filter(reserved))))
        go = pc.invert(pc.or_(itself, reserved))
        if not pc.any(go).as_py():
            return segments, rows[:0], prefixes[:0]
        at_ages = ages.take(at).filter(go)
        at, at_classes, at_sizes, destinations = at.filter(go), at_classes.filter(go), at_sizes.filter(go), destinations.filter(go)
        # the assumed output ratio goes by the compression suffix: one look-up per distinct suffix
        suffixes = pc.dictionary_encode(parts["compression_suffix"].filter(go))
        assumed = [self.output_ratio(suffix) for suffix in suffixes.dictionary.to_pylist()]
        ratios = floats([ratio for ratio, _ in assumed]).take(suffixes.indices)
        notes = strings([note for _, note in assumed]).take(suffixes.indices)
        unknown = pc.is_null(at_sizes)
        if pc.any(unknown).as_py():
            nothing = zeros(unknown.true_count)
            picked = destinations.filter(unknown)
            segments.append(Verdict(at.filter(unknown), self.name, self, per_row(_unknown_size_reason, self.name, picked), nothing,
                                    nothing, nothing, per_row(_unpriced_params, picked, ratios.filter(unknown), notes.filter(unknown),
                                                          self.source, view.region)))
        known = pc.invert(unknown)
        if pc.any(known).as_py():
            sizes_in, ratios, notes, cls_in = at_sizes.filter(known), ratios.filter(known), notes.filter(known), at_classes.filter(known)
            sizes_out = pc.multiply(sizes_in.cast("float64"), ratios)
            usd, kgco2e, one_off, _ = priced.conversions(sizes_in, sizes_out, cls_in, view.region, at_ages.filter(known), self.source)
            destinations = destinations.filter(known)
            segments.append(Verdict(at.filter(known), self.name, self,
                                    per_rows(_write_reasons, self.name, destinations, ratios, notes, sizes_in, usd, kgco2e),
                                    usd, kgco2e, one_off,
                                    per_row(_priced_params, destinations, ratios, notes, cls_in, self.source, view.region)))
        return segments, rows[:0], prefixes[:0]

    def when_locked(self, decision: Decision, why: str) -> Decision:
        """A locked source would stay, so the output would only add storage: not worth it, and the
        reason prices what it would add.

            >>> from chalicelib.actions import Convert
            >>> from chalicelib.refs import ObjectRef
            >>> d = Decision("b", "raw/a.csv", "p", "convert", "…", ref=ObjectRef("b", "raw/a.csv", size=2**30),
            ...              params=WriteParams("raw/a.parquet", "delete", 0.2))
            >>> Convert(source="delete").when_locked(d, "under legal hold").reason
            'source under legal hold: it would stay, so convert is not worth it; the output would add $0.004600 a month'
        """
        ref = decision.ref
        added = ""
        if ref is not None and ref.size and isinstance(decision.params, WriteParams):
            est = econ.conversion(ref.size, ref.size * decision.params.output_ratio, ref.effective_storage_class,
                                  decision.params.region, source="keep")
            added = f"; the output would add ${-est.monthly_usd_saved:.6f} a month"
        return Decision(decision.bucket, decision.key, decision.policy, "skip",
                        f"source {why}: it would stay, so {decision.action} is not worth it{added}", ref=ref)

    def execute(self, decision: Decision, ctx: "RunContext") -> "Outcome":
        if not isinstance(decision.params, WriteParams):
            raise TypeError(f"a {self.name} decision needs WriteParams, not {decision.params!r}")
        return write_output(decision, ctx, destination=decision.params.destination, source_disposition=self.source,
                            produce=self.produce, content_type=self.content_type)
