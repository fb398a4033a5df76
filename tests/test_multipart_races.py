"""Races on the multipart (streamed) output path keep the source: issue 7's cases 1, 3 and 4 where the
output is too large for one PutObject and ends with ``CompleteMultipartUpload``.

Each test runs convert's real producer through ``write_output`` into a real multipart upload on the
moto server (first part 5 MiB, S3's smallest, so that a ~6 MiB Parquet output takes two parts), and
something else writes at the worst moment: after our HEAD of the destination, before our completion.

moto honours ``If-None-Match: *`` on ``CompleteMultipartUpload`` but ignores ``If-Match`` there; the
test of a replaced output of ours therefore checks that the completion carries ``If-Match`` with
the ETag we judged (observed on the real request), and answers that request as S3 documents
(412 when the object's ETag differs) from a botocore ``before-call`` handler.
"""

from __future__ import annotations

import io

import pyarrow.parquet as pq
import pytest

from chalicelib import s3 as s3util
from chalicelib.actions import REGISTRY
from chalicelib.actions.output import write_output
from chalicelib.context import RunContext
from test_conditional_writes import convert_decision
from test_streamed_outputs import count_requests, policies, put_generated_csv

PARQUET = "application/vnd.apache.parquet"
ROWS = 700_000
PART = 5 * 1024**2


def racing_producer(source: str, meanwhile):
    """Convert's real producer with 5 MiB parts, running ``meanwhile()`` once the output is written, before it is committed."""
    convert = REGISTRY["convert"](source=source)

    def produce(open_source, output):
        output.first_part_size = PART
        produced = convert.produce(open_source, output)
        meanwhile()
        return produced

    return produce


def body(s3, bucket: str, key: str) -> bytes:
    return s3.get_object(Bucket=bucket, Key=key)["Body"].read()


def run(s3, bucket: str, meanwhile, *, destination: str = "curated/t.parquet", source: str = "delete"):
    ctx = RunContext(policies=policies(bucket), s3=s3)
    return write_output(convert_decision(bucket, "raw/t.csv", destination), ctx, destination=destination,
                        source_disposition=source, produce=racing_producer(source, meanwhile), content_type=PARQUET)


@pytest.fixture
def table(s3, bucket) -> bytes:
    put_generated_csv(s3, bucket, "raw/t.csv", ROWS)
    return body(s3, bucket, "raw/t.csv")


def test_a_destination_created_during_a_multipart_output_is_not_overwritten(s3, bucket, table):
    requests = count_requests(s3)
    outcome = run(s3, bucket, lambda: s3.put_object(Bucket=bucket, Key="curated/t.parquet", Body=b"theirs"))

    assert requests.get("UploadPart", 0) >= 2 and requests.get("CompleteMultipartUpload") == 1  # the multipart path
    assert outcome.status == "skip" and "(it exists now)" in outcome.reason and outcome.reason.endswith("source kept")
    assert body(s3, bucket, "curated/t.parquet") == b"theirs" and body(s3, bucket, "raw/t.csv") == table
    assert not s3.list_multipart_uploads(Bucket=bucket).get("Uploads")  # aborted: no parts left behind


def test_another_sources_output_at_the_destination_is_a_collision_and_nothing_is_uploaded(s3, bucket, table):
    """Case 1 where the existing output is itself a multipart leanlake output of another source."""
    s3.put_object(Bucket=bucket, Key="raw/t.jsonl", Body=b'{"id": 1}\n' * 10)
    other = s3util.head(s3, bucket, "raw/t.jsonl")
    theirs = b"PAR1" + b"\0" * (PART + 10) + b"PAR1"
    upload = s3.create_multipart_upload(Bucket=bucket, Key="curated/t.parquet",
                                        Metadata=s3util.source_metadata(other, "tables"))["UploadId"]
    parts = [{"PartNumber": n, "ETag": s3.upload_part(Bucket=bucket, Key="curated/t.parquet", UploadId=upload, PartNumber=n,
                                                      Body=chunk)["ETag"]}
             for n, chunk in enumerate((theirs[:PART], theirs[PART:]), start=1)]
    s3.complete_multipart_upload(Bucket=bucket, Key="curated/t.parquet", UploadId=upload, MultipartUpload={"Parts": parts})
    requests = count_requests(s3)

    outcome = run(s3, bucket, lambda: None)

    assert outcome.status == "skip" and outcome.reason.startswith("collision: destination") and "source kept" in outcome.reason
    assert not {"CreateMultipartUpload", "PutObject", "DeleteObject"} & set(requests)
    assert body(s3, bucket, "curated/t.parquet") == theirs and body(s3, bucket, "raw/t.csv") == table


def test_a_source_overwritten_during_a_multipart_conversion_is_kept(s3, bucket, table):
    """Case 3 on the multipart path: the output made from the version read is kept and verified; the
    newer source is not deleted (its rows are in no output yet)."""
    newer = b"id,city,token,score,seen_at\n1,Oslo,00000000,1.0000,2026-11-01T00:00:00Z\n"
    outcome = run(s3, bucket, lambda: s3.put_object(Bucket=bucket, Key="raw/t.csv", Body=newer))

    assert outcome.status == "ok" and outcome.reason.endswith("source: kept (it changed while being converted)"), outcome.reason
    assert body(s3, bucket, "raw/t.csv") == newer
    written = s3.head_object(Bucket=bucket, Key="curated/t.parquet")
    assert written["ETag"].strip('"').endswith("-2") and written["Metadata"]["leanlake"] == "output"
    assert pq.read_metadata(io.BytesIO(body(s3, bucket, "curated/t.parquet"))).num_rows == ROWS


def s3_if_match_on_completion(s3, bucket: str, key: str) -> list[str | None]:
    """Answer CompleteMultipartUpload's ``If-Match`` on ``key`` as S3 does (moto ignores it): 412 when the
    object's ETag differs. Returns the ``If-Match`` header of each completion, as sent."""
    from botocore.awsrequest import AWSResponse

    sent: list[str | None] = []

    def check(params, **_):
        if_match = params["headers"].get("If-Match")
        sent.append(if_match)
        current = s3util.head(s3, bucket, key)
        if if_match is None or (current is not None and f'"{current.etag}"' == if_match):
            return None
        error = {"Error": {"Code": "PreconditionFailed", "Message": "At least one of the pre-conditions you specified did not hold"},
                 "ResponseMetadata": {"HTTPStatusCode": 412}}
        return AWSResponse("", 412, {}, None), error

    s3.meta.events.register("before-call.s3.CompleteMultipartUpload", check)
    return sent


def test_our_older_output_replaced_during_a_multipart_output_is_not_overwritten(s3, bucket, table):
    """Case 4's other side: replacing our own older output is conditional on the ETag judged, so an output
    written by someone else meanwhile is neither overwritten nor taken for ours, and the source stays."""
    s3.put_object(Bucket=bucket, Key="raw/t.csv", Body=b"id,city\n1,Oslo\n")
    old = s3util.head(s3, bucket, "raw/t.csv")
    s3.put_object(Bucket=bucket, Key="curated/t.parquet", Body=b"our older output",
                  Metadata=s3util.source_metadata(old, "tables"))
    ours = s3util.head(s3, bucket, "curated/t.parquet")
    put_generated_csv(s3, bucket, "raw/t.csv", ROWS)  # a new version of the source: its output is to be replaced
    sent = s3_if_match_on_completion(s3, bucket, "curated/t.parquet")

    outcome = run(s3, bucket, lambda: s3.put_object(Bucket=bucket, Key="curated/t.parquet", Body=b"theirs"))

    assert sent == [f'"{ours.etag}"'], (sent, outcome.reason)
    assert outcome.status == "skip" and f"(no longer ETag {ours.etag})" in outcome.reason and outcome.reason.endswith("source kept")
    assert body(s3, bucket, "curated/t.parquet") == b"theirs" and body(s3, bucket, "raw/t.csv") == table
    assert not s3.list_multipart_uploads(Bucket=bucket).get("Uploads")
