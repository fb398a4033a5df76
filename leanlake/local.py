"""The embedded AWS stack for ``leanlake demo`` and the tests: moto in server mode on 127.0.0.1.

It speaks the real S3/SQS/EventBridge/CloudWatch wire protocols, so boto3 and the handlers run
unchanged; nothing leaves loopback. While it runs, ``AWS_ENDPOINT_URL`` points at it and dummy
credentials are set, so no real account can be touched by accident. What AWS does between services
and moto does not, the stack does here: ``publish_emf`` turns the handlers' EMF lines into CloudWatch
metrics, as CloudWatch Logs does for a Lambda function.

Example:
    >>> with embedded_aws() as endpoint:        # doctest: +SKIP
    ...     boto3.client("s3").create_bucket(Bucket="ml-lake")
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
from datetime import datetime, timezone
from typing import Any, Iterable, Iterator

#: The environment a local run sets (and restores afterwards): ``leanlake demo --serve`` prints it.
LOCAL_ENV = {
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
def embedded_aws(port: int = 0) -> Iterator[str]:
    """Start moto's server on loopback (``port``, or a free one); yield its endpoint URL; stop it on exit."""
    try:
        from moto.server import ThreadedMotoServer
    except ImportError as exc:
        raise MissingDemoExtra("the embedded S3 needs moto: pip install 'leanlake[demo]'") from exc
    from chalicelib import s3

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    if port:  # moto's server thread would wait forever on a port it cannot bind: fail here instead (OSError)
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", port))
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    try:
        with patched_environ({**LOCAL_ENV, "AWS_ENDPOINT_URL": endpoint}):
            s3.client.cache_clear()
            yield endpoint
    finally:
        s3.client.cache_clear()
        server.stop()


#: ``PutMetricData`` takes at most this many data points a request.
MAX_DATUMS = 1000


def emf_datums(lines: Iterable[str]) -> Iterator[tuple[str, dict[str, Any]]]:
    """(namespace, ``MetricDatum``) for each value of each metric of the EMF documents among ``lines``
    (other lines are skipped), with the document's dimensions and timestamp, as CloudWatch reads EMF.

    >>> line = ('{"_aws": {"Timestamp": 0, "CloudWatchMetrics": [{"Namespace": "leanlake", "Dimensions": [["bucket"]],'
    ...         ' "Metrics": [{"Name": "BytesSaved", "Unit": "Bytes"}]}]}, "bucket": "ml-lake", "BytesSaved": [7.0]}')
    >>> [(ns, d["MetricName"], d["Value"], d["Dimensions"]) for ns, d in emf_datums(["not EMF", line])]
    [('leanlake', 'BytesSaved', 7.0, [{'Name': 'bucket', 'Value': 'ml-lake'}])]
    """
    for line in lines:
        try:
            document = json.loads(line)
            directives = document["_aws"]["CloudWatchMetrics"]
        except (ValueError, TypeError, KeyError):
            continue
        stamp = datetime.fromtimestamp(document["_aws"].get("Timestamp", 0) / 1000, timezone.utc)
        for directive in directives:
            for dimension_set in directive.get("Dimensions") or [[]]:
                dimensions = [{"Name": name, "Value": str(document[name])} for name in dimension_set]
                for metric in directive["Metrics"]:
                    values = document.get(metric["Name"])
                    for value in values if isinstance(values, list) else [values]:
                        yield directive["Namespace"], {"MetricName": metric["Name"], "Dimensions": dimensions, "Value": float(value),
                                                       "Unit": metric.get("Unit", "None"), "Timestamp": stamp}


def publish_emf(cloudwatch: Any, lines: Iterable[str]) -> int:
    """Put the EMF documents among ``lines`` into CloudWatch (``PutMetricData``, per namespace, 1,000 points a
    request); returns how many points. In AWS, CloudWatch Logs does this with what a Lambda function prints."""
    by_namespace: dict[str, list[dict[str, Any]]] = {}
    for namespace, datum in emf_datums(lines):
        by_namespace.setdefault(namespace, []).append(datum)
    for namespace, datums in by_namespace.items():
        for first in range(0, len(datums), MAX_DATUMS):
            cloudwatch.put_metric_data(Namespace=namespace, MetricData=datums[first:first + MAX_DATUMS])
    return sum(map(len, by_namespace.values()))


def storage_datum(bucket: str, metric: str, storage_type: str, day: datetime, value: float) -> dict[str, Any]:
    """One of S3's daily storage data points (namespace ``AWS/S3``) as S3 publishes it: at 00:00 UTC of ``day``,
    dimensions ``BucketName`` then ``StorageType`` (the order ``chalicelib.report`` reads them in).

    >>> storage_datum("lake", "NumberOfObjects", "AllStorageTypes", datetime(2026, 11, 30, 17, 5), 3)["Timestamp"]
    datetime.datetime(2026, 11, 30, 0, 0, tzinfo=datetime.timezone.utc)
    """
    return {"MetricName": metric, "Value": value, "Unit": "Bytes" if metric == "BucketSizeBytes" else "Count",
            "Timestamp": datetime(day.year, day.month, day.day, tzinfo=timezone.utc),
            "Dimensions": [{"Name": "BucketName", "Value": bucket}, {"Name": "StorageType", "Value": storage_type}]}


def put_storage_metric(cloudwatch: Any, bucket: str, metric: str, storage_type: str, day: datetime, value: float) -> None:
    """Put one ``storage_datum`` into CloudWatch (the tests seed S3's storage metrics with it)."""
    cloudwatch.put_metric_data(Namespace="AWS/S3", MetricData=[storage_datum(bucket, metric, storage_type, day, value)])


def publish_storage_metrics(s3: Any, cloudwatch: Any, bucket: str, day: datetime) -> dict[str, int]:
    """Put ``bucket``'s daily S3 storage metrics for ``day`` (``AWS/S3`` ``BucketSizeBytes`` per storage type,
    ``NumberOfObjects``) into CloudWatch, measured from a listing of every version; returns bytes per class.

    In AWS, S3 publishes these once a day by itself; moto does not split them by storage class, so the embedded
    stack measures and publishes them (leanlake's own ``_leanlake/`` objects included, as S3 counts them)."""
    from chalicelib.report import ALL_STORAGE_TYPES, STORAGE_TYPES

    storage_type = {}
    for name, cls in STORAGE_TYPES.items():
        storage_type.setdefault(cls, name)  # Intelligent-Tiering: its Frequent Access tier
    sizes: dict[str, int] = {}
    objects = 0
    for page in s3.get_paginator("list_object_versions").paginate(Bucket=bucket):
        for version in page.get("Versions", ()):
            cls = version.get("StorageClass", "STANDARD")
            sizes[cls] = sizes.get(cls, 0) + version["Size"]
            objects += 1
    cloudwatch.put_metric_data(Namespace="AWS/S3", MetricData=[
        *(storage_datum(bucket, "BucketSizeBytes", storage_type[cls], day, size) for cls, size in sorted(sizes.items())
          if cls in storage_type),  # a class S3 reports no storage type for (none today) is left out
        storage_datum(bucket, "NumberOfObjects", ALL_STORAGE_TYPES, day, objects)])
    return sizes
