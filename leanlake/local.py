"""The embedded AWS stack for ``leanlake demo`` and the tests: moto in server mode on 127.0.0.1.

It speaks the real S3/SQS/EventBridge/CloudWatch wire protocols, so boto3 and the handlers run
unchanged; nothing leaves loopback. While it runs, ``AWS_ENDPOINT_URL`` points at it and dummy
credentials are set, so no real account can be touched by accident.

Example:
    >>> with embedded_aws() as endpoint:        # doctest: +SKIP
    ...     boto3.client("s3").create_bucket(Bucket="ml-lake")
"""

from __future__ import annotations

import contextlib
import logging
import os
from typing import Iterator

#: The environment a local run sets (and restores afterwards).
_ENV = {
    "AWS_ACCESS_KEY_ID": "leanlake-local",
    "AWS_SECRET_ACCESS_KEY": "leanlake-local",
    "AWS_SESSION_TOKEN": "leanlake-local",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_REGION": "us-east-1",
    "AWS_EC2_METADATA_DISABLED": "true",
}


class MissingDemoExtra(RuntimeError):
    """moto is not installed."""


@contextlib.contextmanager
def patched_environ(values: dict[str, str]) -> Iterator[None]:
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@contextlib.contextmanager
def embedded_aws() -> Iterator[str]:
    """Start moto's server on a free loopback port; yield its endpoint URL; stop it on exit."""
    try:
        from moto.server import ThreadedMotoServer
    except ImportError as exc:
        raise MissingDemoExtra("the embedded S3 needs moto: pip install 'leanlake[demo]'") from exc
    from chalicelib import s3

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    try:
        with patched_environ({**_ENV, "AWS_ENDPOINT_URL": endpoint}):
            s3.client.cache_clear()
            yield endpoint
    finally:
        s3.client.cache_clear()
        server.stop()
