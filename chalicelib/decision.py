"""Decision (what to do and why, pure) and Outcome (what was done), the two records of the pipeline.

``plan`` turns ObjectRefs into Decisions without I/O; the executor turns Decisions into Outcomes;
the ledger records Outcomes. Every skip carries its reason: nothing is skipped silently. Each
Outcome carries its estimated monthly saving (``Outcome.monthly_saved``), which the ledger publishes.

Example:
    >>> d = Decision(bucket="b", key="raw/a.csv", policy="p", action="skip", reason="output would not be smaller")
    >>> d.as_dict()["key"]
    'raw/a.csv'
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from itertools import repeat
from typing import TYPE_CHECKING, Any, Callable, Literal, Mapping, NamedTuple, Protocol, Union, runtime_checkable

from chalicelib import economics as econ
from chalicelib.refs import ObjectRef, SlotsValue

if TYPE_CHECKING:
    from chalicelib.actions.base import Action

Status = Literal["ok", "skip", "error"]


@dataclass(frozen=True, slots=True)
class ActionParams:
    """Base of the typed parameters an action plans into a Decision (each action module defines its own)."""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class Saving(NamedTuple):
    """An estimated monthly saving in USD and kg CO2e (negative: the change costs, e.g. an output kept beside its source)."""

    usd: float
    kgco2e: float


#: What a skip or an error saves.
NOTHING = Saving(0.0, 0.0)


@runtime_checkable
class OutputPlan(Protocol):
    """What the params of an action that writes an output say about the write (``WriteParams`` has both):
    the policy's region and what then happens to the source (``keep``, ``delete``, ``storage_class:CLASS``)."""

    region: str
    source: str


#: A decision's reason: the text, or a function that writes it when it is first read (``Decision.reason``).
Reason = Union[str, Callable[[], str]]
#: A decision's params: the ActionParams, or a function that makes them when they are first read (``Decision.params``).
Params = Union[ActionParams, Callable[[], ActionParams]]


class Decision(SlotsValue):
    """One decision per (bucket, key, policy); ``key`` is None for bucket-level (Lifecycle) decisions.

    A value: compared, hashed and printed by its first eight fields, like a frozen dataclass, and never
    changed once made (nothing assigns to its fields). It is a plain ``__slots__`` class because
    planning makes one per matched object and policy: a million of them cost seconds as frozen
    dataclasses. ``reason`` may be given as a function that writes it: it is written when first read
    (a table, ``--json``, an outcome) and never for decisions only counted, and it reads the same;
    so may ``params`` (a function that makes them).

        >>> lazy = Decision("b", "k", "p", "skip", lambda: f"{2 + 2} days old")
        >>> lazy.reason, lazy == Decision("b", "k", "p", "skip", "4 days old")
        ('4 days old', True)
        >>> Decision("b", "k", "p", "skip", "why")
        Decision(bucket='b', key='k', policy='p', action='skip', reason='why', monthly_usd_saved=0.0, \
monthly_kgco2e_saved=0.0, one_off_usd=0.0, params=None)
    """

    __slots__ = ("bucket", "key", "policy", "action", "_reason", "monthly_usd_saved", "monthly_kgco2e_saved", "one_off_usd",
                 "ref", "_params", "by")
    __match_args__ = ("bucket", "key", "policy", "action", "reason", "monthly_usd_saved", "monthly_kgco2e_saved", "one_off_usd")

    bucket: str
    key: str | None
    policy: str
    #: A registered action's name, ``lifecycle`` (the bucket's Lifecycle configuration) or ``skip``
    #: (nothing to do, said in ``reason``): the kinds are the registry's, not listed here.
    action: str
    monthly_usd_saved: float
    monthly_kgco2e_saved: float
    one_off_usd: float
    ref: ObjectRef | None
    #: The configured action that carries the decision out (None for a skip).
    by: Action | None

    def __init__(self, bucket: str, key: str | None, policy: str, action: str, reason: Reason,
                 monthly_usd_saved: float = 0.0, monthly_kgco2e_saved: float = 0.0, one_off_usd: float = 0.0,
                 ref: ObjectRef | None = None, params: Params | None = None, by: Action | None = None) -> None:
        self.bucket = bucket
        self.key = key
        self.policy = policy
        self.action = action
        self._reason = reason
        self.monthly_usd_saved = monthly_usd_saved
        self.monthly_kgco2e_saved = monthly_kgco2e_saved
        self.one_off_usd = one_off_usd
        self.ref = ref
        self._params = params
        self.by = by

    @property
    def reason(self) -> str:
        """Why: written now if it was given as a function (then kept)."""
        reason = self._reason
        if not isinstance(reason, str):
            reason = self._reason = reason()
        return reason

    @property
    def params(self) -> ActionParams | None:
        """What the deciding action planned (a destination, a class, …), typed by that action; None for a skip.
        Made now if it was given as a function (then kept)."""
        params = self._params
        if params is not None and not isinstance(params, ActionParams):
            params = self._params = params()
        return params

    def _fields(self) -> tuple[Any, ...]:
        return (self.bucket, self.key, self.policy, self.action, self.reason, self.monthly_usd_saved,
                self.monthly_kgco2e_saved, self.one_off_usd)

    def __repr__(self) -> str:
        return (f"Decision(bucket={self.bucket!r}, key={self.key!r}, policy={self.policy!r}, action={self.action!r}, "
                f"reason={self.reason!r}, monthly_usd_saved={self.monthly_usd_saved!r}, "
                f"monthly_kgco2e_saved={self.monthly_kgco2e_saved!r}, one_off_usd={self.one_off_usd!r}, params={self.params!r})")

    def as_dict(self) -> dict[str, Any]:
        """The ``plan --json`` shape (``decision_rows`` of one)."""
        [row] = decision_rows(self.bucket, [self.key], self.policy, self.action, [self.reason],
                              ([self.monthly_usd_saved], [self.monthly_kgco2e_saved], [self.one_off_usd]))
        return row


#: The fields of a ``plan --json`` row, in order (``decision_rows``, ``decision_lines``).
ROW_FIELDS = ("bucket", "key", "policy", "action", "reason", "monthly_usd_saved", "monthly_kgco2e_saved", "one_off_usd")
#: What decisions save, as columns: monthly USD, monthly kg CO2e and one-off USD, a list each, a value a row.
SavedColumns = tuple[list[float], list[float], list[float]]
#: Encodes a JSON value as UTF-8 without spaces after ``,`` and ``:`` (``orjson.dumps``, or ``json``'s equivalent).
Encoder = Callable[[Any], bytes]


def decision_rows(bucket: str, keys: list[str | None], policy: str, action: str, reasons: list[str],
                  saved: SavedColumns | None) -> list[dict[str, Any]]:
    """The ``plan --json`` rows of one policy's decisions of one action in one bucket, given as columns, as dicts
    (``Decision.as_dict``; ``decision_lines`` writes a planned batch's as text). ``saved``: see ``rounded_saved``."""
    n = len(keys)
    return [dict(zip(ROW_FIELDS, values, strict=True))
            for values in zip(repeat(bucket, n), keys, repeat(policy, n), repeat(action, n), reasons,
                              *rounded_saved(saved, n), strict=True)]


def decision_lines(encode: Encoder, bucket: str, keys: list[str], policy: str, action: str, reasons: list[str],
                   rounded: SavedColumns | None) -> list[bytes]:
    """``decision_rows`` (the same arguments, but the saved columns given already rounded, as ``rounded_saved`` or
    ``chalicelib.rounding`` gives them; every key an object's) as ``encode`` writes them, a JSON object's text a row,
    made without a dict a row: each column is encoded once and split into its items, and a row's items are put in a
    template: a million dicts made, encoded and freed cost half a second more.

        >>> import json
        >>> encode = lambda value: json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()
        >>> columns = ("b", ["k", 'a","b'], "p", "expire", ["old", "→"])
        >>> saved = ([0.5, 0.1234567], [1e-10, 0.0], [0.0, 2.0])
        >>> lines = decision_lines(encode, *columns, rounded_saved(saved, 2))
        >>> lines[1][:48]
        b'{"bucket":"b","key":"a\\\\",\\\\"b","policy":"p","acti'
        >>> [json.loads(line) for line in lines] == decision_rows(*columns, saved)
        True
    """
    if not keys:
        return []
    constants = {"bucket": bucket, "policy": policy, "action": action}
    template = b"{" + b",".join(encode(field) + b":" + (encode(constants[field]).replace(b"%", b"%%") if field in constants
                                                         else b'"%b"' if field in ("key", "reason") else b"%b")
                                 for field in ROW_FIELDS) + b"}"
    columns = [_items(encode, keys, quoted=True), _items(encode, reasons, quoted=True)]
    columns += [_items(encode, column, quoted=False) for column in rounded or rounded_saved(None, len(keys))]
    return list(map(template.__mod__, zip(*columns, strict=True)))


#: The decimals ``plan --json`` rounds the saved columns to: monthly USD, monthly kg CO2e, one-off USD.
SAVED_DIGITS = (6, 9, 6)


def rounded_saved(saved: SavedColumns | None, n: int) -> SavedColumns:
    """``saved`` as ``plan --json`` gives it: rounded to ``SAVED_DIGITS`` a column at a time (``map``: no Python
    call a value; ``round`` still costs half a microsecond a value, which ``chalicelib.rounding`` saves a planned
    batch's columns); None: nothing saved (skips) for ``n`` rows, zeros that need no rounding."""
    if saved is None:
        zeros = [0.0] * n
        return zeros, zeros, zeros
    (usd, kgco2e, one_off), (usd_digits, kgco2e_digits, one_off_digits) = saved, SAVED_DIGITS
    return (list(map(round, usd, repeat(usd_digits))), list(map(round, kgco2e, repeat(kgco2e_digits))),
            list(map(round, one_off, repeat(one_off_digits))))


def _items(encode: Encoder, values: list[Any], quoted: bool) -> list[bytes]:
    """Each of ``values`` (strings, without their quotes when ``quoted``, or numbers) as JSON, from one encoding of
    the list: items of a JSON array of strings are split at ``","`` (inside a string a quote is escaped), of numbers
    at ``,``. A string column that holds anything else (a None) is refused: its split would not be its items."""
    encoded = encode(values)
    items = encoded[2:-2].split(b'","') if quoted else encoded[1:-1].split(b",")
    if len(items) != len(values) or quoted and not (encoded.startswith(b'["') and encoded.endswith(b'"]')):
        raise ValueError(f"{len(values)} values, not all strings or all numbers, are not a JSON column")
    return items


@dataclass(frozen=True, slots=True)
class Outcome:
    """What acting on a Decision did: ``ok``, ``skip`` or ``error``, always with a reason."""

    decision: Decision
    status: Status
    reason: str
    bytes_before: int = 0
    bytes_after: int = 0
    output_key: str | None = None
    seconds: float = 0.0
    detail: Mapping[str, Any] = field(default_factory=dict)

    @property
    def bytes_saved(self) -> int:
        return self.bytes_before - self.bytes_after if self.status == "ok" else 0

    @property
    def monthly_saved(self) -> Saving:
        """The estimated monthly USD and kg CO2e this outcome saves: what the ledger publishes.

        Skips and errors save nothing. An ``ok`` outcome of an action that writes an output is priced
        again from the real bytes before and after (the plan only assumed the output's size), with the
        action's source disposition in the policy's region, or as kept when the source stayed (locked, or
        changed meanwhile: ``detail["source_kept"]``). Any other ``ok`` outcome (a class change,
        an expiration) saves what its decision estimated, for the bytes it handled: an expiration of
        every version deletes more than the current object the decision priced.

            >>> from chalicelib.refs import ObjectRef
            >>> d = Decision("b", "tmp/a", "p", "expire", "old", 0.5, 0.001, ref=ObjectRef("b", "tmp/a", size=100))
            >>> Outcome(d, "ok", "deleted", bytes_before=100).monthly_saved
            Saving(usd=0.5, kgco2e=0.001)
            >>> Outcome(d, "ok", "deleted an older version", bytes_before=50).monthly_saved
            Saving(usd=0.25, kgco2e=0.0005)
            >>> Outcome(d, "skip", "dry run: would delete", bytes_before=100).monthly_saved
            Saving(usd=0.0, kgco2e=0.0)
        """
        if self.status != "ok":
            return NOTHING
        d = self.decision
        if d.by is not None and d.by.writes_output and isinstance(d.params, OutputPlan):
            source_class = d.ref.effective_storage_class if d.ref else "STANDARD"
            source = "keep" if self.detail.get("source_kept") else d.params.source
            est = econ.conversion(self.bytes_before, self.bytes_after, source_class, d.params.region, source=source)
            return Saving(est.monthly_usd_saved, est.monthly_kgco2e_saved)
        planned = d.ref.size if d.ref else None
        share = self.bytes_before / planned if planned and self.bytes_before else 1.0
        return Saving(d.monthly_usd_saved * share, d.monthly_kgco2e_saved * share)

    def as_dict(self) -> dict[str, Any]:
        """The ``apply --json`` shape: the decision's, with this outcome's own saving in place of the plan's estimate."""
        saved = self.monthly_saved
        return {
            **self.decision.as_dict(),
            "monthly_usd_saved": round(saved.usd, 6),
            "monthly_kgco2e_saved": round(saved.kgco2e, 9),
            "status": self.status,
            "outcome_reason": self.reason,
            "bytes_before": self.bytes_before,
            "bytes_after": self.bytes_after,
            "output_key": self.output_key,
            "seconds": round(self.seconds, 3),
            **({"detail": dict(self.detail)} if self.detail else {}),
        }
