"""The ledger's totals are kept as outcomes are recorded, so a sweep that keeps no outcome (the Lambda
handlers' ledgers) reports exactly what one that keeps them all does, in memory that does not grow."""

from __future__ import annotations

from chalicelib.actions import Convert, Expire
from chalicelib.actions.writer import WriteParams
from chalicelib.decision import Decision, Outcome
from chalicelib.ledger import Ledger
from chalicelib.refs import ObjectRef


def outcomes() -> list[Outcome]:
    """A conversion (priced from its bytes), an expiration (priced as planned), a skip and an error."""
    csv = ObjectRef("lake", "raw/a.csv", size=10_000_000)
    convert = Decision("lake", "raw/a.csv", "tables", "convert", "csv", 0.1, 0.001, ref=csv,
                       params=WriteParams("curated/a.parquet", "delete", 0.2, region="us-east-1"), by=Convert(source="delete"))
    old = ObjectRef("lake", "tmp/b.tmp", size=4_000)
    expire = Decision("lake", "tmp/b.tmp", "scratch", "expire", "old", 0.5, 0.002, ref=old, by=Expire(days=7))
    return [Outcome(convert, "ok", "wrote", bytes_before=10_000_000, bytes_after=1_500_000),
            Outcome(expire, "ok", "deleted", bytes_before=4_000),
            Outcome(expire, "skip", "changed since it was decided"),
            Outcome(convert, "error", "broken row")]


def test_totals_without_keeping_outcomes_equal_those_kept_from_every_outcome():
    keeping, flat = Ledger(emit_metrics=False), Ledger(emit_metrics=False, keep_outcomes=False)
    for outcome in outcomes():
        keeping.record(outcome)
        flat.record(outcome)
    assert flat.outcomes == [] and len(keeping.outcomes) == 4
    assert flat.totals() == keeping.totals()
    totals = flat.totals()
    assert (totals["objects_converted"], totals["objects_expired"], totals["objects_skipped"], totals["errors"]) == (1, 1, 1, 1)
    assert (totals["bytes_before"], totals["bytes_after"], totals["bytes_saved"]) == (10_000_000, 1_500_000, 8_500_000)
    saved = [o.monthly_saved for o in outcomes()[:2]]
    assert totals["monthly_usd_saved"] == round(sum(s.usd for s in saved), 6) > 0.5
