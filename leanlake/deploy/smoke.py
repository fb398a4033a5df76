"""Run the packaged code the way Lambda does: from the extracted zip, first on ``sys.path``.

Run as a script with the interpreter of the Lambda runtime (Python 3.12) and isolated flags, so
neither the repository nor a dev environment's pyarrow can stand in for what the zip holds::

    python3.12 -I leanlake/deploy/smoke.py EXTRACTED_DIR TEMPLATE_JSON [--handler]

Checks, each printed: pyarrow (with zstd) is imported from the package; the packaged
``chalicelib.formats`` converts a generated CSV to Parquet that the packaged pyarrow reads back
with every row; with ``--handler``, the packaged ``app.py``'s SQS handler, given an S3 notification
for that CSV, converts it on a local moto S3 server (moto must be importable, as in CI's gate venv),
with the function's environment variables taken from the packaged template.
"""

from __future__ import annotations

import csv
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROWS = 20_000
#: The packaged function the handler check invokes: S3 notifications delivered through SQS.
HANDLER = "on_queued_upload"


def _say(message: str) -> None:
    print(f"smoke: {message}", flush=True)


def write_csv(path: Path, rows: int = ROWS) -> None:
    """A CSV that Parquet makes much smaller (repetitive categories, small ints): worth converting."""
    with path.open("w", newline="", encoding="utf-8") as fh:
        out = csv.writer(fh)
        out.writerow(["id", "label", "split", "score", "city"])
        for i in range(rows):
            out.writerow([i, i % 10, ("train", "valid", "test")[i % 3], f"{(i % 997) / 997:.4f}", ("Oslo", "Lima", "Pune")[i % 3]])


def check_pyarrow(package: Path) -> None:
    import pyarrow

    where = Path(pyarrow.__file__).resolve()
    if package.resolve() not in where.parents:
        raise SystemExit(f"smoke: pyarrow came from {where}, not from the package")
    if not pyarrow.Codec.is_available("zstd"):
        raise SystemExit("smoke: the packaged pyarrow has no zstd codec")
    _say(f"pyarrow {pyarrow.__version__} from the package, zstd available")


def check_formats(work: Path) -> None:
    import pyarrow.parquet as pq
    from chalicelib.formats import ConvertOptions, convert_to_parquet

    source, target = work / "table.csv", work / "table.parquet"
    write_csv(source)
    result = convert_to_parquet(lambda: open(source, "rb"), str(target), ConvertOptions())
    table = pq.read_table(target)
    codecs = {pq.ParquetFile(target).metadata.row_group(0).column(i).compression for i in range(table.num_columns)}
    if result.rows != ROWS or table.num_rows != ROWS or codecs != {"ZSTD"}:
        raise SystemExit(f"smoke: conversion gave {result.rows} rows, read back {table.num_rows}, codecs {codecs}")
    _say(f"formats: {source.stat().st_size:,d} B CSV → {target.stat().st_size:,d} B Parquet (zstd), {table.num_rows} rows read back")


def function_environment(template: dict, handler: str) -> dict[str, str]:
    """The environment variables the packaged template gives the function whose handler is ``app.<handler>``."""
    for function in template.get("resource", {}).get("aws_lambda_function", {}).values():  # terraform
        if function.get("handler") == f"app.{handler}":
            return function.get("environment", {}).get("variables", {})
    for resource in template.get("Resources", {}).values():  # SAM
        props = resource.get("Properties", {})
        if resource.get("Type") == "AWS::Serverless::Function" and props.get("Handler") == f"app.{handler}":
            return props.get("Environment", {}).get("Variables", {})
    raise SystemExit(f"smoke: no function with handler app.{handler} in the template")


def check_handler(package: Path, template: dict, work: Path) -> None:
    """The SQS handler of the packaged app converts an uploaded CSV on a local moto S3."""
    import logging

    import boto3
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # no request log

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    os.environ.update({"AWS_ENDPOINT_URL": f"http://{host}:{port}", "AWS_ACCESS_KEY_ID": "smoke",
                       "AWS_SECRET_ACCESS_KEY": "smoke", "AWS_DEFAULT_REGION": "us-east-1", "AWS_REGION": "us-east-1"})
    try:
        os.environ.update(function_environment(template, HANDLER))  # Lambda sets them before importing app.py
        os.chdir(package)  # Lambda's working directory is the task root
        import app as packaged

        from chalicelib.runtime import policies

        policy = next(lp.policy for lp in policies().loaded if lp.policy.action("convert"))
        bucket, prefix = policy.buckets[0], (policy.filters.prefix or ("",))[0]
        key = f"{prefix}smoke/table.csv"
        s3 = boto3.client("s3")
        s3.create_bucket(Bucket=bucket)
        write_csv(work / "upload.csv")
        s3.upload_file(str(work / "upload.csv"), bucket, key)
        head = s3.head_object(Bucket=bucket, Key=key)
        notification = {"Records": [{
            "eventVersion": "2.1", "eventSource": "aws:s3", "awsRegion": "us-east-1", "eventName": "ObjectCreated:Put",
            "eventTime": time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime()),
            "s3": {"s3SchemaVersion": "1.0", "bucket": {"name": bucket, "arn": f"arn:aws:s3:::{bucket}"},
                   "object": {"key": key, "size": head["ContentLength"], "eTag": head["ETag"].strip('"'), "sequencer": "0"}}}]}
        event = {"Records": [{"messageId": "smoke-1", "receiptHandle": "smoke", "body": json.dumps(notification),
                              "attributes": {"ApproximateReceiveCount": "1"}, "messageAttributes": {}, "md5OfBody": "",
                              "eventSource": "aws:sqs", "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:smoke",
                              "awsRegion": "us-east-1"}]}
        result = getattr(packaged, HANDLER)(event, None)
        written = [o for o in result.get("outcomes", []) if o.get("status") == "ok"]
        listed = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", [])]
        parquet = [k for k in listed if k.endswith(".parquet")]
        if not written or not parquet:
            raise SystemExit(f"smoke: the handler wrote no Parquet (objects now {listed}; result {json.dumps(result)[:600]})")
        import pyarrow.parquet as pq

        s3.download_file(bucket, parquet[0], str(work / "out.parquet"))
        rows = pq.read_metadata(work / "out.parquet").num_rows
        if rows != ROWS:
            raise SystemExit(f"smoke: s3://{bucket}/{parquet[0]} has {rows} rows, expected {ROWS}")
        _say(f"handler app.{HANDLER}: s3://{bucket}/{key} → s3://{bucket}/{parquet[0]} ({rows} rows) on moto")
    finally:
        server.stop()


def main(argv: list[str]) -> int:
    if len(argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    package, template_path = Path(argv[0]).resolve(), Path(argv[1])
    sys.path.insert(0, str(package))  # what Lambda does with /var/task
    template = json.loads(template_path.read_text(encoding="utf-8"))
    with tempfile.TemporaryDirectory(prefix="leanlake-smoke-") as tmp:
        check_pyarrow(package)
        check_formats(Path(tmp))
        if "--handler" in argv[2:]:
            check_handler(package, template, Path(tmp))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
