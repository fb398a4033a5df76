"""What the ``leanlake`` command shows a person, and what it shows a machine.

The logger (``chalicelib.log``) writes one Powertools JSON object per line to stderr: what Lambda
and CloudWatch Logs want, and what this module leaves alone unless a CLI run asks otherwise. The
CLI's global options pick, once per run:

* ``--log-format human`` (the default when stderr is a terminal): short plain lines, warnings and
  errors only (``-v``: also info; ``-vv``: also debug and tracebacks). The EMF metrics documents,
  which only CloudWatch reads, are not printed. Tables go to stdout, the progress bar and spinner
  to stderr, and log lines print above them without breaking them.
* ``--log-format json`` (the default when stderr is not a terminal, as in CI, pipes and files):
  the Powertools JSON lines and EMF, exactly as before, on stderr.
* ``--quiet``: no logs, no progress, no narrative: only the result (and a failure's one line).

``NO_COLOR`` is honoured: every console here is rich's, which reads it; the log lines have no colour.
``--json`` is independent: stdout holds one JSON document whatever the log format.

Example:
    >>> resolve_log_format("auto", stderr_is_terminal=True), resolve_log_format("auto", stderr_is_terminal=False)
    ('human', 'json')
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import Literal

from rich.console import Console

LogFormat = Literal["human", "json"]
LOG_FORMATS = ("auto", "human", "json")
#: Powertools' own switch: EMF documents are not printed when it is true.
METRICS_DISABLED_ENV = "POWERTOOLS_METRICS_DISABLED"


def resolve_log_format(requested: str, *, stderr_is_terminal: bool) -> LogFormat:
    """``auto`` is human for a person at a terminal and JSON for everything else."""
    if requested not in LOG_FORMATS:
        raise ValueError(f"{requested!r} is not one of {', '.join(LOG_FORMATS)}")
    if requested == "auto":
        return "human" if stderr_is_terminal else "json"
    return requested  # type: ignore[return-value]


class HumanFormatter(logging.Formatter):
    """One short line per record: the message, with ``warning: ``/``error: `` in front unless it says so already.

    >>> line = lambda level, msg: HumanFormatter().format(logging.LogRecord("leanlake", level, "", 0, msg, None, None))
    >>> line(logging.INFO, "ok: convert s3://b/a.csv: wrote s3://b/a.parquet")
    'ok: convert s3://b/a.csv: wrote s3://b/a.parquet'
    >>> line(logging.WARNING, "s3://b: deletion cap of 10 reached"), line(logging.ERROR, "error: convert s3://b/a.csv: bad")
    ('warning: s3://b: deletion cap of 10 reached', 'error: convert s3://b/a.csv: bad')
    """

    def __init__(self, tracebacks: bool = False):
        super().__init__()
        self.tracebacks = tracebacks

    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        if record.levelno >= logging.WARNING:
            label = "error" if record.levelno >= logging.ERROR else "warning"
            if not message.startswith(f"{label}:"):
                message = f"{label}: {message}"
        if self.tracebacks and record.exc_info:
            message += "\n" + self.formatException(record.exc_info)
        return message


@dataclass(frozen=True)
class Output:
    """How this run talks to its user: the log format, how much, and the stderr console for progress."""

    log_format: LogFormat
    verbosity: int
    quiet: bool
    err: Console

    @property
    def human(self) -> bool:
        return self.log_format == "human"


def _stderr_console(quiet: bool) -> Console:
    return Console(stderr=True, quiet=quiet)


#: The logger's level and formatter and the metrics switch as found before the first run changed them.
_defaults: dict = {}
_output = Output(log_format="json", verbosity=0, quiet=False, err=_stderr_console(False))


def output() -> Output:
    """This run's settings (JSON logs and a plain stderr console until ``configure`` is called)."""
    return _output


def configure(log_format: str = "auto", verbosity: int = 0, quiet: bool = False, logger: bool = True) -> Output:
    """Set up the stderr console and (unless ``logger`` is false: a command that logs nothing) the logger
    for this CLI run; returns (and remembers) the settings.

    Only the CLI calls this: the Lambda functions never import ``leanlake``, so their logging stays as
    ``chalicelib.log`` makes it.
    """
    global _output
    err = _stderr_console(quiet)
    resolved = resolve_log_format(log_format, stderr_is_terminal=err.is_terminal)
    _output = Output(log_format=resolved, verbosity=verbosity, quiet=quiet, err=err)
    if logger:
        _configure_logger(_output)
    return _output


def _configure_logger(settings: Output) -> None:
    from chalicelib.log import logger

    resolved, verbosity, quiet = settings.log_format, settings.verbosity, settings.quiet
    handler, std_logger = logger.registered_handler, logging.getLogger(logger.name)
    if not _defaults:  # what chalicelib.log set up, restored by each run that does not change it (tests run many)
        _defaults.update(level=std_logger.level, formatter=handler.formatter, metrics=os.environ.get(METRICS_DISABLED_ENV))
    if quiet:
        level = logging.CRITICAL + 1
    elif resolved == "human":
        level = logging.DEBUG if verbosity >= 2 else logging.INFO if verbosity == 1 else logging.WARNING
    else:
        level = logging.DEBUG if verbosity >= 1 else _defaults["level"]
    std_logger.setLevel(level)  # the standard logger: Powertools' setLevel accepts only named levels
    handler.setFormatter(HumanFormatter(tracebacks=verbosity >= 2) if resolved == "human" else _defaults["formatter"])
    if quiet or resolved == "human":
        os.environ[METRICS_DISABLED_ENV] = "true"
    elif _defaults["metrics"] is None:
        os.environ.pop(METRICS_DISABLED_ENV, None)
    else:
        os.environ[METRICS_DISABLED_ENV] = _defaults["metrics"]

