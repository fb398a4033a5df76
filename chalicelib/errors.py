"""What went wrong, in one line: the reason every ``error`` Outcome carries, and whether to retry.

Example:
    >>> describe_error(ValueError("bad header"))
    ('ValueError: bad header', False)
"""

from __future__ import annotations


def describe_error(exc: BaseException) -> tuple[str, bool]:
    """A one-line reason for an exception, and whether retrying later may succeed."""
    from botocore.exceptions import BotoCoreError, ClientError

    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
        transient = status >= 500 or error.get("Code") in ("SlowDown", "Throttling", "ThrottlingException", "RequestTimeout")
        return f"{error.get('Code', 'Error')}: {error.get('Message', exc)}", transient
    if isinstance(exc, (BotoCoreError, OSError)):
        return f"{type(exc).__name__}: {exc}", True
    return f"{type(exc).__name__}: {exc}", False
