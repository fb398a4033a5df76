"""The ledger: every Outcome becomes EMF metrics (Powertools Metrics), a structured log line and totals.

Metrics (namespace ``$POWERTOOLS_METRICS_NAMESPACE``, default ``leanlake``), dimensioned by
``bucket`` and ``policy``: ``BytesIn``, ``BytesOut``, ``BytesSaved`` (of actions that write an
output), the Count metric each action declares for its ``ok`` outcomes (``ObjectsConverted``,
``ObjectsRecompressed``, ``ObjectsReclassed``, ``ObjectsExpired``), ``ObjectsSkipped``,
``ConversionErrors``, and the estimated monthly savings of every outcome (``Outcome.monthly_saved``)
as ``MonthlyUsdSaved`` and ``MonthlyKgCO2eSaved`` (unit None; skips and errors add 0, so each
(bucket, policy) with outcomes has them, even at 0: the report can tell them from older data). The two
savings metrics are also published per action, in a second EMF document per (bucket, policy, action)
dimensioned by ``bucket``, ``policy`` and ``action`` and holding only them, for every action but a
``skip`` decision (which saves nothing by definition, and would only add custom metrics to pay for):
``leanlake report`` shows savings by action from these, and its per-policy rows only from the first
documents, so nothing is counted twice; and
``BadRecords``, dimensioned by ``trigger`` (``sqs``, ``s3``, ``eventbridge``): event records
leanlake could not act on (malformed, or naming an object it could not read), each also logged on
one line naming the record and the reason. In CLI runs EMF and logs go to stderr so stdout stays
one JSON document.

Example:
    >>> ledger = Ledger(emit_metrics=False)
    >>> ledger.totals()["objects_converted"], ledger.totals()["monthly_usd_saved"]
    (0, 0.0)
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections import defaultdict
from typing import Any, Iterator, TextIO

from chalicelib.actions import REGISTRY
from chalicelib.decision import Outcome, Saving

#: EMF goes to stdout in Lambda (CloudWatch reads it there) and to stderr in CLI runs.
_emf_to_stderr = False


def metrics_to_stderr(enabled: bool = True) -> None:
    """Route every ledger's EMF output to stderr (the CLI does, so stdout holds only its result)."""
    global _emf_to_stderr
    _emf_to_stderr = enabled


@contextlib.contextmanager
def metrics_to(stream: TextIO) -> Iterator[TextIO]:
    """Send every ledger's EMF output to ``stream`` while the block runs (the demo hands it to its embedded
    CloudWatch, as CloudWatch Logs does with a Lambda function's EMF lines); the routing before is restored.

    >>> import io, json
    >>> ledger = Ledger()
    >>> ledger.count("SweepsFinished", bucket="ml-lake")
    >>> with metrics_to(io.StringIO()) as captured:
    ...     ledger.flush()
    >>> json.loads(captured.getvalue())["SweepsFinished"]
    [1.0]
    """
    global _emf_to_stderr
    before, _emf_to_stderr = _emf_to_stderr, False
    try:
        with contextlib.redirect_stdout(stream):
            yield stream
    finally:
        _emf_to_stderr = before


#: An EMF document's dimensions, as (name, value) pairs: one document per distinct set.
Dimensions = tuple[tuple[str, str], ...]

#: The metrics of the estimated monthly savings (USD, kg CO2e) of a (bucket, policy)'s outcomes.
USD_SAVED, KGCO2E_SAVED = SAVINGS_METRICS = ("MonthlyUsdSaved", "MonthlyKgCO2eSaved")


def unit_of(metric: str) -> str:
    """The EMF unit of a ledger metric: ``Bytes`` for byte counts, ``None`` for the savings, else ``Count``.

    >>> unit_of("BytesSaved"), unit_of("MonthlyUsdSaved"), unit_of("ObjectsExpired")
    ('Bytes', 'None', 'Count')
    """
    if metric.startswith("Bytes"):
        return "Bytes"
    return "None" if metric in SAVINGS_METRICS else "Count"


def count_metrics() -> dict[str, str]:
    """Action name → the Count metric of its ``ok`` outcomes, as each registered action declares it."""
    return {name: cls.metric for name, cls in REGISTRY.items() if cls.metric}


def snake(metric: str) -> str:
    """``ObjectsConverted`` → ``objects_converted`` (the key of a metric in totals and reports)."""
    return "".join(f"_{c.lower()}" if c.isupper() else c for c in metric).lstrip("_")


class Ledger:
    """Collects Outcomes (and bad event records) of one run; ``flush()`` emits their metrics, grouped
    by (bucket, policy) for outcomes and by trigger for bad records."""

    def __init__(self, *, emit_metrics: bool = True, metrics_stream: TextIO | None = None, keep_outcomes: bool = True):
        #: Every outcome recorded, unless ``keep_outcomes`` is False: a sweep of millions of objects keeps
        #: only the running totals, so its memory does not grow with the bucket.
        self.outcomes: list[Outcome] = []
        self._keep = keep_outcomes
        self._totals: dict[str, float] = defaultdict(float)
        #: Event records that could not be acted on: ``{"trigger", "record", "reason"}`` each.
        self.bad_records: list[dict[str, str]] = []
        self._emit = emit_metrics
        self._stream = metrics_stream
        self._pending: dict[Dimensions, dict[str, float]] = defaultdict(lambda: defaultdict(float))

    def record(self, outcome: Outcome) -> Outcome:
        """Log and count one outcome; return it."""
        from chalicelib.log import logger  # imported on first use: the CLI's local convert loads no AWS library

        if self._keep:
            self.outcomes.append(outcome)
        d = outcome.decision
        saved = outcome.monthly_saved  # priced once: the metrics and the totals both use it
        self._add_to_totals(outcome, saved)
        log = logger.error if outcome.status == "error" else logger.info
        log(f"{outcome.status}: {d.action} s3://{d.bucket}/{d.key or ''}: {outcome.reason}", extra={
            "bucket": d.bucket, "key": d.key, "policy": d.policy, "action": d.action, "status": outcome.status,
            "bytes_before": outcome.bytes_before, "bytes_after": outcome.bytes_after, "output_key": outcome.output_key,
        })
        pending = self._pending[(("bucket", d.bucket), ("policy", d.policy))]
        pending[USD_SAVED] += saved.usd
        pending[KGCO2E_SAVED] += saved.kgco2e
        if d.action != "skip":
            by_action = self._pending[(("bucket", d.bucket), ("policy", d.policy), ("action", d.action))]
            by_action[USD_SAVED] += saved.usd
            by_action[KGCO2E_SAVED] += saved.kgco2e
        if outcome.status == "ok":
            pending["BytesIn"] += outcome.bytes_before
            pending["BytesOut"] += outcome.bytes_after
            pending["BytesSaved"] += outcome.bytes_saved
            metric = count_metrics().get(d.action)
            if metric:
                pending[metric] += 1
        elif outcome.status == "skip":
            pending["ObjectsSkipped"] += 1
            if outcome.detail.get("left_for_apply"):
                pending["ObjectsLeftForApply"] += 1
        else:
            pending["ConversionErrors"] += 1
        return outcome

    def bad_record(self, trigger: str, record: str, reason: str) -> None:
        """Log and count one event record that could not be acted on (``BadRecords``, by trigger).

        ``record`` names it (an SQS messageId, an index in ``Records``, an object's URI) so that the
        one log line says which record and why.

        >>> ledger = Ledger(emit_metrics=False)
        >>> ledger.bad_record("sqs", "SQS message 42", "body is not JSON")
        >>> ledger.bad_records
        [{'trigger': 'sqs', 'record': 'SQS message 42', 'reason': 'body is not JSON'}]
        """
        from chalicelib.log import logger

        self.bad_records.append({"trigger": trigger, "record": record, "reason": reason})
        logger.error(f"bad record: {record}: {reason}", extra={"trigger": trigger, "record": record, "reason": reason})
        self._pending[(("trigger", trigger),)]["BadRecords"] += 1

    def count(self, metric: str, value: float = 1, **dimensions: str) -> None:
        """Count a run-level event (``SweepsFinished``, ``WorkItemsRequeued``…), emitted with the given dimensions.

        >>> ledger = Ledger(emit_metrics=False)
        >>> ledger.count("SweepsFinished", bucket="ml-lake")
        >>> ledger.counted("SweepsFinished")
        1.0
        """
        self._pending[tuple(sorted(dimensions.items()))][metric] += value

    def counted(self, metric: str) -> float:
        """The pending total of ``metric`` over every dimension (what ``flush`` will emit), savings by action
        left out: they repeat the per-(bucket, policy) savings.

        >>> from chalicelib.decision import Decision
        >>> ledger = Ledger(emit_metrics=False)
        >>> _ = ledger.record(Outcome(Decision("b", "k", "p", "expire", "old", 0.5, 0.001), "ok", "deleted"))
        >>> ledger.counted("MonthlyUsdSaved")
        0.5
        """
        return sum(values.get(metric, 0.0) for dims, values in self._pending.items()
                   if not any(name == "action" for name, _ in dims))

    def flush(self) -> None:
        """Emit one EMF document per (bucket, policy), per (bucket, policy, action) with the savings, and per trigger
        with bad records, for this run."""
        pending, self._pending = self._pending, defaultdict(lambda: defaultdict(float))
        if not self._emit or not pending:
            return
        from aws_lambda_powertools.metrics import EphemeralMetrics, MetricUnit

        namespace = os.environ.get("POWERTOOLS_METRICS_NAMESPACE", "leanlake")
        stream = self._stream or (sys.stderr if _emf_to_stderr else None)
        redirect = contextlib.redirect_stdout(stream) if stream else contextlib.nullcontext()
        with redirect:
            for dimensions, values in pending.items():
                metrics = EphemeralMetrics(namespace=namespace, service="leanlake")
                for dimension, label in dimensions:
                    metrics.add_dimension(name=dimension, value=label)
                for name, value in values.items():
                    metrics.add_metric(name=name, unit=MetricUnit(unit_of(name)), value=value)
                metrics.flush_metrics()

    def _add_to_totals(self, outcome: Outcome, saved: Saving) -> None:
        """Count ``outcome`` into the run's totals as it is recorded (``totals`` reads them)."""
        count = self._totals
        if outcome.status == "skip":
            count["objects_skipped"] += 1
        elif outcome.status == "error":
            count["errors"] += 1
        else:
            action = outcome.decision.action
            metric = count_metrics().get(action)
            if metric:
                count[snake(metric)] += 1
            if action in REGISTRY and REGISTRY[action].writes_output:
                count["bytes_before"] += outcome.bytes_before
                count["bytes_after"] += outcome.bytes_after
                count["bytes_saved"] += outcome.bytes_saved
            count["monthly_usd_saved"] += saved.usd
            count["monthly_kgco2e_saved"] += saved.kgco2e

    def totals(self) -> dict[str, Any]:
        """Counts, bytes and estimated monthly savings of this run (the CLI and demo summary), kept as it goes.

        >>> Ledger(emit_metrics=False, keep_outcomes=False).totals()["errors"]
        0
        """
        count = self._totals
        return {
            **{snake(metric): int(count[snake(metric)]) for metric in count_metrics().values()},
            **{key: int(count[key]) for key in ("objects_skipped", "errors", "bytes_before", "bytes_after", "bytes_saved")},
            "monthly_usd_saved": round(count["monthly_usd_saved"], 6),
            "monthly_kgco2e_saved": round(count["monthly_kgco2e_saved"], 9),
        }
