"""Decisions as columns: what one policy decided for some objects of a batch, without an object per decision.

A policy's actions decide on a batch of objects (``chalicelib.columns.Objects``) a column at a
time. What one action decided for some of the batch's rows is a ``Verdict``: the rows, the action
(or ``skip``), the savings as Arrow float64 columns, and functions that write the j-th row's reason
and params when read. A ``Decision`` is made only for a consumer that reads one (a JSON row, the
table's first rows, an action to carry out): totals are summed from the columns.

An action that decides one object at a time (``Action.decide_batch``) still can: its Decisions
come back as a ``Decided``, which reads the same to the planner.

Example:
    >>> from chalicelib.columns import Objects, int64s, floats
    >>> from chalicelib.refs import ObjectRef
    >>> batch = Objects.from_refs("b", [ObjectRef("b", "a", 1), ObjectRef("b", "c", 2)])
    >>> v = Verdict(int64s([1]), "expire", None, lambda j: "old", floats([0.5]), floats([0.01]), floats([0.0]))
    >>> [(d.key, d.action, d.reason, d.monthly_usd_saved) for d in v.decisions(batch, "p")]
    [('c', 'expire', 'old', 0.5)]
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any, Callable, Generic, Sequence, TypeVar

from chalicelib.columns import flags
from chalicelib.decision import SAVED_DIGITS, ActionParams, Decision, Encoder, Reason, SavedColumns, decision_lines
from chalicelib.rounding import rounded

T = TypeVar("T")

if TYPE_CHECKING:
    from chalicelib.actions.base import Action
    from chalicelib.columns import Objects


@dataclass(frozen=True, eq=False)
class Verdict:
    """One action's decisions (or one kind of skip) for ``rows`` of a batch (an Arrow int64 array, ascending).

    ``usd``, ``kgco2e`` and ``one_off`` are float64 columns, one value per row, or None: nothing saved (a
    skip). ``reason(j)`` and ``params(j)`` write the j-th row's reason and params; they run only when a
    Decision is made and read, or, for ``plan --json``, for every row (a ``per_rows`` reason writes them all at once)."""

    rows: Any
    action: str
    by: "Action | None"
    reason: Callable[[int], Reason]
    usd: Any = None
    kgco2e: Any = None
    one_off: Any = None
    params: Callable[[int], ActionParams] | None = None

    def __len__(self) -> int:
        return len(self.rows)

    def deletes(self) -> bool:
        """True when acting on these decisions deletes objects (an expiry, a write that deletes its source)."""
        return self.action != "skip" and self.by is not None and self.by.deletes() and len(self.rows) > 0

    def positions(self) -> list[int]:
        """The rows as Python ints."""
        rows: list[int] = self.rows.to_pylist()
        return rows

    def rounded_savings(self) -> SavedColumns | None:
        """``savings()`` as ``plan --json`` gives them, rounded (``decision.SAVED_DIGITS``) by Arrow's kernel where it
        rounds as Python's ``round`` (``chalicelib.rounding``); None for a skip."""
        if self.usd is None:
            return None
        usd_digits, kgco2e_digits, one_off_digits = SAVED_DIGITS
        return rounded(self.usd, usd_digits), rounded(self.kgco2e, kgco2e_digits), rounded(self.one_off, one_off_digits)

    def savings(self) -> tuple[list[float], list[float], list[float]]:
        """Monthly USD and kg CO2e saved and one-off USD, per row, as Python floats (zeros for a skip)."""
        if self.usd is None:
            zeros = [0.0] * len(self.rows)
            return zeros, zeros, zeros
        return self.usd.to_pylist(), self.kgco2e.to_pylist(), self.one_off.to_pylist()

    def decisions(self, objects: "Objects", policy: str) -> list[Decision]:
        """A Decision per row, its reason and params written when read."""
        rows = self.positions()
        refs = objects.refs(rows)
        usd, kgco2e, one_off = self.savings()
        reason, params, action, by = self.reason, self.params, self.action, self.by
        return [Decision(objects.bucket, ref.key, policy, action, partial(_written, reason, j), u, k, o, ref,
                         None if params is None else partial(params, j), by)
                for j, (ref, u, k, o) in enumerate(zip(refs, usd, kgco2e, one_off, strict=True))]


    def json_lines(self, objects: "Objects", policy: str, encode: Encoder) -> list[bytes]:
        """Each row's ``plan --json`` row as text (``decision_lines``), made from the columns without a Decision."""
        reason, n = self.reason, len(self.rows)
        texts = (reason.every() if isinstance(reason, per_rows) else [reason.text] * n if isinstance(reason, same_text)
                 else [_written(reason, j) for j in range(n)])
        return decision_lines(encode, objects.bucket, objects.keys.take(self.rows).to_pylist(), policy, self.action, texts,
                              self.rounded_savings())


def _written(reason: Callable[[int], Reason], j: int) -> str:
    """The j-th reason as text (a reason function may itself return a function that writes it)."""
    text = reason(j)
    return text if isinstance(text, str) else text()


@dataclass(frozen=True, eq=False)
class Decided:
    """Decisions an action made one object at a time (``Action.decide_batch``), for ``rows`` of a batch."""

    rows: Sequence[int]
    given: Sequence[Decision]

    def __len__(self) -> int:
        return len(self.rows)

    def deletes(self) -> bool:
        return any(d.by is not None and d.by.deletes() for d in self.given)

    def positions(self) -> list[int]:
        return list(self.rows)

    def decisions(self, objects: "Objects", policy: str) -> list[Decision]:
        return list(self.given)

    def json_lines(self, objects: "Objects", policy: str, encode: Encoder) -> list[bytes]:
        return [encode(decision.as_dict()) for decision in self.given]


#: What a policy's actions decided for some rows of a batch.
Segment = Verdict | Decided


class per_row(Generic[T]):
    """``function(*args, j)`` for the j-th row of a segment (its reason or params), where each Arrow array among
    ``args`` is read as a list of Python values, once, when the first row is (a row's ``as_py()`` costs a
    microsecond; a column's ``to_pylist()``, nanoseconds a row)."""

    __slots__ = ("_function", "_args", "_read")

    def __init__(self, function: Callable[..., T], *args: Any) -> None:
        self._function: Callable[..., Any] = function
        self._args = args
        self._read: list[Any] | None = None

    def __call__(self, j: int) -> T:
        value: T = self._function(*self._values(), j)
        return value

    def _values(self) -> list[Any]:
        """``args``, each Arrow array among them read as a list (once)."""
        read = self._read
        if read is None:
            read = self._read = [a.to_pylist() if hasattr(a, "to_pylist") else a for a in self._args]
        return read


class per_rows(per_row[T]):
    """A ``per_row`` whose ``function(*args)`` gives every row's value at once, a list with one value per item of
    its columns (the Arrow arrays and lists among ``args``; any other argument is the same for every row).

    Writing a reason for a whole segment in one call lets the function use a C-level loop
    (``map(TEMPLATE.format, column, …)``) in place of three Python calls a row (``per_row``, the function, its
    f-string's): a fifth less per reason, which ``plan --json`` writes for a million rows. The j-th row alone is
    the function's of the columns' j-th items, so the text is written one way.

        >>> reasons = per_rows(lambda sizes, unit: [f"{s} {unit}" for s in sizes], [1, 2], "B")
        >>> reasons.every(), reasons(1)
        (['1 B', '2 B'], '2 B')
    """

    __slots__ = ()

    def __init__(self, function: Callable[..., list[T]], *args: Any) -> None:
        self._function, self._args, self._read = function, args, None

    def __call__(self, j: int) -> T:
        one_row = [a[j:j + 1] if isinstance(a, list) else a for a in self._values()]
        value: T
        [value] = self._function(*one_row)
        return value

    def every(self) -> list[T]:
        """Every row's value, in order (``Verdict.json_lines``)."""
        values: list[T] = self._function(*self._values())
        return values


class same_text:
    """The same reason for every row of a segment (``PolicyView.skips`` of one text): ``plan --json`` repeats it
    rather than asking for it a row at a time (two Python calls a row, for a fifth of the decisions of the benchmark's
    million objects).

        >>> reason = same_text("handled by Lifecycle rule leanlake-p-1")
        >>> reason(7)
        'handled by Lifecycle rule leanlake-p-1'
    """

    __slots__ = ("text",)

    def __init__(self, text: str) -> None:
        self.text = text

    def __call__(self, j: int) -> str:
        return self.text


def keep(rows: Any, prefixes: Any, mask: Any) -> tuple[Any, Any]:
    """The ``rows`` and ``prefixes`` (Arrow arrays) where ``mask`` (Arrow booleans, or Python bools) holds: what an
    action leaves to the policy's next action."""
    if isinstance(mask, list):
        mask = flags(mask)
    return rows.filter(mask), prefixes.filter(mask)
