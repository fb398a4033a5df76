"""``apply`` in flat memory: a confirmation from a first pass, acting on a second, and ``--json`` written as it goes.

What: ``preview(decisions)`` is the first pass behind the confirmation prompt: the decisions the table shows
(``SHOWN``), the totals, and a fingerprint of every decision that would act (bucket, key, policy, action,
the object's ETag and version, and what it planned: 8 bytes each, sorted). ``only_confirmed(decisions,
fingerprints)`` passes the second pass's decisions through, turning any acting decision that was not in
the confirmed plan (an object that appeared or changed since, or a decision that changed) into a skip that
says so. ``ApplyJson`` writes ``apply --json``'s one document while decisions and outcomes stream: decisions
straight to stdout, outcomes to a spool file that follows them.

Why: ``apply`` used to hold every decision (for its prompt and its JSON) and every outcome. A sweep of a
million objects then held millions of objects. Re-planning between the prompt and the act cannot widen
what the user confirmed: only decisions whose fingerprint was confirmed act, and deletions still go
through ``chalicelib.deletion`` (the ETag of the object decided on, If-Match, Object Lock, the cap).

Example:
    >>> from chalicelib.decision import Decision
    >>> from chalicelib.refs import ObjectRef
    >>> seen = [Decision("b", "tmp/a", "p", "expire", "old", ref=ObjectRef("b", "tmp/a", etag="e1"))]
    >>> confirmed = preview(iter(seen)).fingerprints
    >>> later = [Decision("b", "tmp/a", "p", "expire", "old", ref=ObjectRef("b", "tmp/a", etag="e2"))]
    >>> [(d.action, d.reason) for d in only_confirmed(iter(seen + later), confirmed)]
    [('expire', 'old'), ('skip', 'not in the plan you confirmed (it appeared or changed since): not acted on')]
"""

from __future__ import annotations

import bisect
import json
import sys
import tempfile
from array import array
from dataclasses import dataclass, field
from typing import IO, Any, Iterable, Iterator

from chalicelib.decision import Decision, Outcome
from chalicelib.plan import Totals

#: Decisions the confirmation table shows (as ``plan``'s table).
SHOWN = 500
UNCONFIRMED = "not in the plan you confirmed (it appeared or changed since): not acted on"


def fingerprint(decision: Decision) -> int:
    """A 64-bit digest of what an acting decision would do to which object version (equal in both passes of a run)."""
    ref = decision.ref
    return hash((decision.bucket, decision.key, decision.policy, decision.action, ref.etag if ref else None,
                 ref.version_id if ref else None, repr(decision.params)))  # repr: bucket-level params hold lists


@dataclass
class Preview:
    """What the confirmation prompt says: the first decisions, every decision counted, and what would act."""

    shown: list[Decision] = field(default_factory=list)
    totals: Totals = field(default_factory=Totals)
    count: int = 0
    #: Sorted fingerprints of the decisions that would act.
    fingerprints: array = field(default_factory=lambda: array("q"))

    @property
    def acting(self) -> int:
        return len(self.fingerprints)


def preview(decisions: Iterator[Decision]) -> Preview:
    """The first pass: keep ``SHOWN`` decisions, count all, fingerprint those that act (8 bytes each)."""
    seen = Preview()
    found = array("q")
    for decision in seen.totals.watch(decisions):
        seen.count += 1
        if len(seen.shown) < SHOWN:
            seen.shown.append(decision)
        if decision.action != "skip":
            found.append(fingerprint(decision))
    seen.fingerprints = array("q", sorted(found))
    return seen


def confirmed(fingerprints: array, decision: Decision) -> bool:
    """True when ``decision`` was in the confirmed plan (its fingerprint is among the sorted ``fingerprints``)."""
    wanted = fingerprint(decision)
    at = bisect.bisect_left(fingerprints, wanted)
    return at < len(fingerprints) and fingerprints[at] == wanted


def only_confirmed(decisions: Iterable[Decision], fingerprints: array) -> Iterator[Decision]:
    """The decisions, with those that would act but were not confirmed turned into skips saying so."""
    for decision in decisions:
        if decision.action != "skip" and not confirmed(fingerprints, decision):
            decision = Decision(decision.bucket, decision.key, decision.policy, "skip", UNCONFIRMED, ref=decision.ref)
        yield decision


class ApplyJson:
    """``apply --json``: ``{"decisions": [...], "totals": {...}, "outcomes": [...], "report": {...}}`` written while
    the run goes. Decisions go to stdout as they pass ``watch``; outcomes (``add``) to a spool file (memory up to
    8 MiB, then disk) copied after the decisions by ``finish``. The document is ``emit_json``'s, one item a line.

        >>> import io
        >>> out = io.StringIO()
        >>> doc = ApplyJson(out)
        >>> d = Decision("b", "k", "p", "skip", "why")
        >>> for _ in doc.watch(iter([d])):
        ...     doc.add(Outcome(d, "skip", "why"))
        >>> doc.finish({"totals": {}})
        >>> parsed = json.loads(out.getvalue())
        >>> [x["key"] for x in parsed["decisions"]], parsed["outcomes"][0]["status"], parsed["totals"]["overall"]["decisions"]
        (['k'], 'skip', 1)
    """

    def __init__(self, out: IO[str] | None = None) -> None:
        self.out = out or sys.stdout
        self.totals = Totals()
        self._spool = tempfile.SpooledTemporaryFile(max_size=8 << 20, mode="w+", encoding="utf-8")
        self._decisions = self._outcomes = 0

    def watch(self, decisions: Iterable[Decision]) -> Iterator[Decision]:
        """Pass the decisions through, writing each (and counting it in the totals)."""
        write = self.out.write
        write('{\n  "decisions": [')
        for decision in self.totals.watch(decisions):
            write(("\n    " if self._decisions == 0 else ",\n    ") + json.dumps(decision.as_dict(), default=str))
            self._decisions += 1
            yield decision

    def add(self, outcome: Outcome) -> None:
        """Spool one outcome's line."""
        self._spool.write(("\n    " if self._outcomes == 0 else ",\n    ") + json.dumps(outcome.as_dict(), default=str))
        self._outcomes += 1

    def finish(self, report: dict[str, Any]) -> None:
        """The rest of the document: the totals, the spooled outcomes, the report."""
        write = self.out.write
        write(("\n  " if self._decisions else "") + '],\n  "totals": ' + _indented(self.totals.as_dict()) + ',\n  "outcomes": [')
        self._spool.seek(0)
        for chunk in iter(lambda: self._spool.read(1 << 20), ""):
            write(chunk)
        self._spool.close()
        write(("\n  " if self._outcomes else "") + '],\n  "report": ' + _indented(report) + "\n}\n")


def _indented(document: Any) -> str:
    return json.dumps(document, indent=2, default=str).replace("\n", "\n  ")
