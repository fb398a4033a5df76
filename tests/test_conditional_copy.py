"""In-place storage-class copies are conditional on the ETag that was decided on.

moto ignores ``CopySourceIfMatch`` and ``IfMatch`` on CopyObject (and conditions on
UploadPartCopy), so the requests themselves are checked with botocore's Stubber; what a skipped
move leaves in S3 is checked on the moto server.
"""

from __future__ import annotations

from datetime import datetime, timezone

import boto3
import pytest
from botocore.stub import ANY, Stubber

from chalicelib import s3 as s3util
from chalicelib.context import RunContext
from chalicelib.ledger import Ledger
from chalicelib.policy import PolicySet
from chalicelib.sweep import bucket_decisions, sweep

GB = 1024**3


def head(size: int, etag: str = "abc") -> s3util.Head:
    return s3util.Head(bucket="lake", key="features/x.bin", size=size, etag=etag, last_modified=datetime.now(timezone.utc),
                       storage_class="STANDARD", content_type="application/octet-stream", metadata={"team": "ml"},
                       version_id="v1", tags={"recreatable": "true"})


def test_a_single_copy_is_pinned_to_the_decided_etag_on_both_ends():
    client = boto3.client("s3", region_name="us-east-1")
    with Stubber(client) as stub:
        stub.add_response("copy_object", {}, {
            "Bucket": "lake", "Key": "features/x.bin", "CopySource": {"Bucket": "lake", "Key": "features/x.bin", "VersionId": "v1"},
            "CopySourceIfMatch": '"abc"', "IfMatch": '"abc"', "TaggingDirective": "COPY", "MetadataDirective": "REPLACE",
            "StorageClass": "ONEZONE_IA", "ContentType": "application/octet-stream",
            "Metadata": {"team": "ml", "leanlake": "copy"}})
        s3util.copy_in_place(client, head(10), "ONEZONE_IA")
        stub.assert_no_pending_responses()


def test_a_refused_copy_condition_is_a_condition_failed():
    client = boto3.client("s3", region_name="us-east-1")
    with Stubber(client) as stub:
        stub.add_client_error("copy_object", "PreconditionFailed", http_status_code=412)
        with pytest.raises(s3util.ConditionFailed, match="changed since it was decided"):
            s3util.copy_in_place(client, head(10), "ONEZONE_IA")


def test_a_multipart_copy_pins_every_part_and_completes_only_over_the_same_object():
    client = boto3.client("s3", region_name="us-east-1")
    size = 6 * GB
    parts = -(-size // s3util.COPY_PART_SIZE)
    with Stubber(client) as stub:
        stub.add_response("create_multipart_upload", {"UploadId": "u1"}, {
            "Bucket": "lake", "Key": "features/x.bin", "StorageClass": "ONEZONE_IA", "ContentType": "application/octet-stream",
            "Metadata": {"team": "ml", "leanlake": "copy"}, "Tagging": "recreatable=true"})
        for _ in range(parts):
            stub.add_response("upload_part_copy", {"CopyPartResult": {"ETag": '"p"'}}, {
                "Bucket": "lake", "Key": "features/x.bin", "UploadId": "u1", "PartNumber": ANY, "CopySourceRange": ANY,
                "CopySource": {"Bucket": "lake", "Key": "features/x.bin", "VersionId": "v1"}, "CopySourceIfMatch": '"abc"'})
        stub.add_response("complete_multipart_upload", {"ETag": '"new"'}, {
            "Bucket": "lake", "Key": "features/x.bin", "UploadId": "u1", "MultipartUpload": ANY, "IfMatch": '"abc"'})
        s3util.copy_in_place(client, head(size), "ONEZONE_IA")
        stub.assert_no_pending_responses()


def test_a_failed_multipart_copy_is_aborted():
    client = boto3.client("s3", region_name="us-east-1")
    with Stubber(client) as stub:
        stub.add_response("create_multipart_upload", {"UploadId": "u1"}, None)
        stub.add_client_error("upload_part_copy", "PreconditionFailed", http_status_code=412)
        stub.add_response("abort_multipart_upload", {}, {"Bucket": "lake", "Key": "features/x.bin", "UploadId": "u1"})
        with pytest.raises(s3util.ConditionFailed):
            s3util.copy_in_place(client, head(6 * GB), "ONEZONE_IA")


def test_an_object_overwritten_after_planning_keeps_its_class(s3, bucket):
    policies = PolicySet.from_dicts([{"name": "features", "bucket": bucket, "filters": {"prefix": "features/"},
                                      "actions": [{"storage_class": "ONEZONE_IA"}]}])
    s3.put_object(Bucket=bucket, Key="features/x.bin", Body=b"a" * 600_000)
    ctx = RunContext(policies=policies, s3=s3)
    decisions = list(bucket_decisions(ctx, bucket, policies))
    assert [d.action for d in decisions if d.key] == ["storage_class"]
    s3.put_object(Bucket=bucket, Key="features/x.bin", Body=b"b" * 600_000)  # a new object, never judged
    ledger = Ledger(emit_metrics=False)
    sweep(ctx, ledger, decisions=decisions)
    [outcome] = [o for o in ledger.outcomes if o.decision.key]
    assert outcome.status == "skip" and "changed since it was decided" in outcome.reason
    assert s3.head_object(Bucket=bucket, Key="features/x.bin").get("StorageClass", "STANDARD") == "STANDARD"
