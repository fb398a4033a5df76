"""The one structured logger (Powertools Logger), writing to stderr.

Lambda sends stdout and stderr alike to CloudWatch Logs; in CLI runs stdout is reserved for
results (``--json`` prints exactly one document), so logs always go to stderr.

Example:
    >>> from chalicelib.log import logger
    >>> logger.info("converted", extra={"bucket": "ml-lake"})   # doctest: +SKIP
"""

from __future__ import annotations

import logging
import os
import sys

from aws_lambda_powertools import Logger


class _StderrHandler(logging.StreamHandler):
    """Looks up ``sys.stderr`` at each write, so redirected or captured stderr is honoured."""

    @property
    def stream(self):  # noqa: D401
        return sys.stderr

    @stream.setter
    def stream(self, _value) -> None:
        pass


logger = Logger(service=os.environ.get("POWERTOOLS_SERVICE_NAME", "leanlake"), logger_handler=_StderrHandler())
