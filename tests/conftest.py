"""Shared fixtures: a real S3 API (moto in server mode on 127.0.0.1), never mocks of boto3."""

from __future__ import annotations

import contextlib
import itertools
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Iterator

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

# No test may reach a real account: dummy credentials, no instance metadata.
os.environ.update({
    "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "us-east-1", "AWS_EC2_METADATA_DISABLED": "true",
})
os.environ.pop("AWS_PROFILE", None)

_names = itertools.count()


@pytest.fixture(scope="session")
def moto_endpoint():
    """One moto server for the session; every test gets its own buckets."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@contextlib.contextmanager
def moto_in_own_process() -> Iterator[str]:
    """A moto server in a process of its own, for tests whose state or settings (IAM enforcement,
    deployed functions) other tests must not see: moto's state is per process. Yields its endpoint."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    endpoint = f"http://127.0.0.1:{port}"
    try:
        for _ in range(150):
            try:
                urllib.request.urlopen(f"{endpoint}/moto-api/", timeout=1).close()
                break
            except OSError:
                time.sleep(0.1)
        else:
            pytest.fail("the moto server did not start")
        yield endpoint
    finally:
        server.terminate()
        server.wait(timeout=10)


@pytest.fixture
def aws(moto_endpoint, monkeypatch):
    """Point boto3 (and chalicelib.s3.client) at the moto server for this test."""
    from chalicelib import s3

    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_endpoint)
    s3.client.cache_clear()
    yield moto_endpoint
    s3.client.cache_clear()


@pytest.fixture
def s3(aws):
    from chalicelib.s3 import client

    return client()


@pytest.fixture
def bucket(s3):
    """A fresh, empty bucket."""
    name = f"test-bucket-{next(_names)}-{os.getpid()}"
    s3.create_bucket(Bucket=name)
    return name
