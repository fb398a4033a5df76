"""The deployed IAM policy is derived from the policies and is least privilege that works on plain,
versioned and Object Lock buckets: one table maps each S3 request (with and without a VersionId)
to the IAM actions AWS documents for it, the action classes declare the requests they make, and a
static scan of chalicelib/ keeps the table from going stale. tests/test_iam_enforced.py runs the
derived document under enforced IAM."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from functools import cache
from pathlib import Path

import pytest

from chalicelib.actions import REGISTRY
from chalicelib.actions.permissions import REQUESTS, TRANSFERS, Call, calls_of, needs, policy_calls
from leanlake.deploy.iam import generate, least_privilege_problems, policy_document, write_policies
from leanlake.deploy.project import ChaliceConfig
from chalicelib.policy import Policy, PolicySet, load_policies

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ChaliceConfig.load(ROOT / ".chalice")


def _statements(document, sid_prefix=""):
    return [s for s in document["Statement"] if s["Sid"].startswith(sid_prefix)]


def _actions_on(document, resource):
    return {a for s in document["Statement"] if resource in s["Resource"] for a in s["Action"]}


def _cli(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "leanlake.cli", *args], cwd=cwd, capture_output=True, text=True,
                          env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)})


# --- The table, against what AWS documents ------------------------------------------------------------------

# Written out from the S3 API reference's Permissions sections and the Service Authorization
# Reference, independently of REQUESTS: (request, with a VersionId) → (object actions, bucket actions).
AWS_DOCUMENTS = [
    ("HeadObject", False, {"s3:GetObject"}, {"s3:ListBucket"}),  # ListBucket: a missing key is 404, not 403
    ("HeadObject", True, {"s3:GetObject", "s3:GetObjectVersion"}, {"s3:ListBucket"}),
    ("HeadObject+lock", True, {"s3:GetObject", "s3:GetObjectVersion", "s3:GetObjectRetention", "s3:GetObjectLegalHold"},
     {"s3:ListBucket"}),
    ("GetObject", False, {"s3:GetObject"}, {"s3:ListBucket"}),
    ("GetObject", True, {"s3:GetObject", "s3:GetObjectVersion"}, {"s3:ListBucket"}),
    ("GetObjectTagging", False, {"s3:GetObjectTagging"}, set()),
    ("GetObjectTagging", True, {"s3:GetObjectTagging", "s3:GetObjectVersionTagging"}, set()),
    ("PutObjectTagging", False, {"s3:PutObjectTagging"}, set()),
    ("PutObjectTagging", True, {"s3:PutObjectTagging", "s3:PutObjectVersionTagging"}, set()),
    ("PutObject", False, {"s3:PutObject"}, set()),
    ("PutObject+tags", False, {"s3:PutObject", "s3:PutObjectTagging"}, set()),
    ("CopyObject", True, {"s3:PutObject", "s3:GetObject", "s3:GetObjectVersion"}, set()),
    ("CopyObject+tags", True, {"s3:PutObject", "s3:PutObjectTagging", "s3:GetObject", "s3:GetObjectVersion",
                               "s3:GetObjectTagging", "s3:GetObjectVersionTagging"}, set()),
    ("CreateMultipartUpload", False, {"s3:PutObject"}, set()),
    ("CreateMultipartUpload+tags", False, {"s3:PutObject", "s3:PutObjectTagging"}, set()),
    ("UploadPart", False, {"s3:PutObject"}, set()),
    ("UploadPartCopy", True, {"s3:PutObject", "s3:GetObject", "s3:GetObjectVersion"}, set()),
    ("CompleteMultipartUpload", False, {"s3:PutObject"}, set()),
    ("AbortMultipartUpload", False, {"s3:AbortMultipartUpload"}, set()),
    ("DeleteObject", False, {"s3:DeleteObject"}, set()),
    ("DeleteObject", True, {"s3:DeleteObject", "s3:DeleteObjectVersion"}, set()),
    ("DeleteObjects", True, {"s3:DeleteObject", "s3:DeleteObjectVersion"}, set()),
    ("ListObjectsV2", False, set(), {"s3:ListBucket"}),
    ("ListObjectVersions", False, set(), {"s3:ListBucketVersions"}),
    ("GetObjectLockConfiguration", False, set(), {"s3:GetBucketObjectLockConfiguration"}),
    ("GetBucketVersioning", False, set(), {"s3:GetBucketVersioning"}),
    ("GetBucketLifecycleConfiguration", False, set(), {"s3:GetLifecycleConfiguration"}),
    ("PutBucketLifecycleConfiguration", False, set(), {"s3:PutLifecycleConfiguration"}),
    ("DeleteBucketLifecycle", False, set(), {"s3:PutLifecycleConfiguration"}),
    ("GetBucketIntelligentTieringConfiguration", False, set(), {"s3:GetIntelligentTieringConfiguration"}),
    ("PutBucketIntelligentTieringConfiguration", False, set(), {"s3:PutIntelligentTieringConfiguration"}),
]


@pytest.mark.parametrize("request_, version_id, objects, bucket", AWS_DOCUMENTS,
                         ids=[f"{r}{'-version' if v else ''}" for r, v, *_ in AWS_DOCUMENTS])
def test_each_request_needs_what_aws_documents(request_, version_id, objects, bucket):
    assert needs([Call(request_, version_id=version_id)]) == (objects, bucket)


def test_a_version_id_on_a_request_that_takes_none_is_a_declaration_error():
    with pytest.raises(ValueError, match="PutObject takes no VersionId"):
        needs([Call("PutObject", version_id=True)])
    with pytest.raises(KeyError):
        needs([Call("GetBucketAcl")])


def test_every_declared_call_is_a_row_of_the_table_and_no_permission_is_a_wildcard():
    for name, cls in REGISTRY.items():
        declared = [*cls.s3_calls, *(c for by_value in cls.s3_calls_by_option.values() for cs in by_value.values() for c in cs)]
        assert declared, f"{name} declares no S3 request"
        grant = needs(declared)  # raises on an unknown request or a VersionId where none is taken
        for permission in grant.objects | grant.bucket:
            assert permission.startswith("s3:") and "*" not in permission, f"{name}: {permission}"


# --- Each action's permissions come from the requests it declares -----------------------------------------------

def _grant(config: dict, name: str, **filters) -> tuple[set[str], set[str]]:
    """What one policy with one action needs on its bucket (what every bucket gets included)."""
    policy = Policy.model_validate({"name": "p", "bucket": "lake", "filters": filters, "actions": [{name: config}]})
    objects, bucket = needs(policy_calls(policy))
    return set(objects), set(bucket)


VERSION_READS = {"s3:GetObjectVersion", "s3:GetObjectVersionTagging"}
LOCK_READS = {"s3:GetObjectRetention", "s3:GetObjectLegalHold"}
DELETES = {"s3:DeleteObject", "s3:DeleteObjectVersion"}
#: A writer's bucket gets an abort-incomplete-upload rule for its destinations (merged into its Lifecycle).
LIFECYCLE_CONFIG = {"s3:GetLifecycleConfiguration", "s3:PutLifecycleConfiguration"}


def test_every_bucket_is_listed_its_uploads_headed_and_its_sweep_checkpointed_whatever_the_actions():
    objects, bucket = _grant({"archive_days": 90}, "intelligent_tiering")
    assert objects == {"s3:GetObject", "s3:PutObject"}  # PutObject: the fanned-out sweep's checkpoint (chalicelib.fanout)
    assert bucket == {"s3:ListBucket", "s3:PutIntelligentTieringConfiguration"}  # no Get…Configuration: never read


@pytest.mark.parametrize("name", ["convert", "recompress"])
def test_a_writer_that_keeps_its_source_reads_by_version_writes_with_tags_and_deletes_nothing(name):
    objects, bucket = _grant({"source": "keep"}, name)
    assert objects == {"s3:GetObject", "s3:GetObjectVersion", "s3:GetObjectTagging", "s3:GetObjectVersionTagging",
                       "s3:PutObject", "s3:PutObjectTagging", "s3:AbortMultipartUpload"}
    assert bucket == {"s3:ListBucket"} | LIFECYCLE_CONFIG


@pytest.mark.parametrize("name", ["convert", "recompress"])
def test_a_writer_that_deletes_its_source_reads_locks_audits_and_deletes_conditionally(name):
    objects, bucket = _grant({"source": "delete"}, name)
    keep, _ = _grant({"source": "keep"}, name)
    assert objects - keep == LOCK_READS | {"s3:DeleteObject"}  # If-Match on the current object: no version deleted
    assert bucket == {"s3:ListBucket", "s3:GetBucketObjectLockConfiguration"} | LIFECYCLE_CONFIG


def test_a_writer_that_reclasses_its_source_reads_locks_and_copies_with_tags():
    objects, bucket = _grant({"source": "storage_class:GLACIER_IR"}, "convert")
    keep, _ = _grant({"source": "keep"}, "convert")
    assert objects - keep == LOCK_READS and not objects & DELETES
    assert bucket == {"s3:ListBucket", "s3:GetBucketObjectLockConfiguration"} | LIFECYCLE_CONFIG


def test_storage_class_copies_in_place_by_version_with_tags_and_deletes_nothing():
    objects, bucket = _grant({"storage_class": "ONEZONE_IA"}, "storage_class")
    assert objects == {"s3:GetObject", "s3:GetObjectVersion", "s3:GetObjectTagging", "s3:GetObjectVersionTagging",
                       "s3:PutObject", "s3:PutObjectTagging", "s3:AbortMultipartUpload"}
    assert bucket == {"s3:ListBucket"}


def test_expire_reads_locks_and_audits_and_only_versions_all_deletes_versions():
    marker_objects, marker_bucket = _grant({"days": 7}, "expire")
    all_objects, all_bucket = _grant({"days": 7, "versions": "all"}, "expire")
    assert marker_objects == {"s3:GetObject", "s3:GetObjectVersion", *LOCK_READS, "s3:PutObject", "s3:DeleteObject"}
    assert all_objects - marker_objects == {"s3:DeleteObjectVersion"}
    assert marker_bucket == {"s3:ListBucket", "s3:GetBucketObjectLockConfiguration", "s3:GetLifecycleConfiguration",
                             "s3:PutLifecycleConfiguration"}
    assert all_bucket - marker_bucket == {"s3:ListBucketVersions"}
    assert "s3:GetBucketVersioning" not in all_bucket  # no code path asks a bucket whether it is versioned


def test_tag_filters_add_reading_tags_by_version():
    plain, _ = _grant({"days": 7}, "expire")
    tagged, _ = _grant({"days": 7}, "expire", tags={"tmp": "yes"})
    assert tagged - plain == {"s3:GetObjectTagging", "s3:GetObjectVersionTagging"}


@pytest.mark.parametrize("name, config", [("noncurrent", {"days": 30}), ("abort_multipart", 7)])
def test_lifecycle_only_actions_need_the_configuration_and_the_listing(name, config):
    objects, bucket = _grant(config, name)
    assert objects == {"s3:GetObject", "s3:PutObject"}  # the sweep's checkpoint
    assert bucket == {"s3:ListBucket", "s3:GetLifecycleConfiguration", "s3:PutLifecycleConfiguration"}


def test_each_bucket_gets_exactly_the_union_of_its_policies_requests():
    policy_set = PolicySet.from_dicts([
        {"name": "classes", "bucket": "features", "actions": [{"storage_class": "ONEZONE_IA"}]},
        {"name": "tables", "bucket": ["raw-a", "raw-b"], "filters": {"prefix": "raw/"},
         "actions": [{"convert": {"source": "delete"}}]},
        {"name": "old", "bucket": "raw-b", "filters": {"prefix": "old/"}, "actions": [{"expire": {"days": 30, "versions": "all"}}]},
    ])
    document = policy_document(policy_set, CONFIG, "dev")
    for bucket in ("features", "raw-a", "raw-b"):
        expected = needs(c for lp in policy_set.for_bucket(bucket) for c in policy_calls(lp.policy))
        assert _actions_on(document, f"arn:aws:s3:::{bucket}/*") == expected.objects
        assert _actions_on(document, f"arn:aws:s3:::{bucket}") == expected.bucket
    # a bucket that only gets a storage class may not delete anything; only versions: all deletes versions
    assert not {a for a in _actions_on(document, "arn:aws:s3:::features/*") if "Delete" in a}
    assert "s3:DeleteObjectVersion" not in _actions_on(document, "arn:aws:s3:::raw-a/*")
    assert "s3:DeleteObjectVersion" in _actions_on(document, "arn:aws:s3:::raw-b/*")
    assert least_privilege_problems(document) == []
    assert len({s["Sid"] for s in document["Statement"]}) == len(document["Statement"])


def test_calls_of_reads_the_option_value_up_to_the_colon():
    convert = REGISTRY["convert"]
    reclass = convert.model_validate({"source": "storage_class:GLACIER_IR"})
    assert calls_of(reclass) == convert.s3_calls + convert.s3_calls_by_option["source"]["storage_class"]
    assert calls_of(convert.model_validate({"source": "keep"})) == convert.s3_calls


# --- The table cannot silently go stale: a static scan of chalicelib/ ---------------------------------------------

_S3_RECEIVER = r"\b_?s3(?:\(\))?"  # s3.x(, ctx.s3.x(, self.ctx.s3.x(, _s3().x(
_TRANSFER_CALL = re.compile(_S3_RECEIVER + r"\.(" + "|".join(TRANSFERS) + r")\(")
_METHOD_CALL = re.compile(r"\.([a-z][a-z0-9_]*)\(")
_PAGINATOR = re.compile(r"get_paginator\(\s*[\"']([a-z0-9_]+)[\"']")


@cache
def _s3_methods() -> dict[str, str]:
    """boto3 S3 client method → S3 API operation, from botocore's service model."""
    import botocore.session
    from botocore import xform_name

    model = botocore.session.get_session().get_service_model("s3")
    return {xform_name(op): op for op in model.operation_names}


def operations_called(source: str) -> set[str]:
    """The S3 operations a piece of source calls: client methods (on any receiver: their names are
    S3's own), paginators, and boto3's managed transfers on an S3 client (expanded to what they send)."""
    methods = _s3_methods()
    found = {methods[m] for m in _METHOD_CALL.findall(source) if m in methods}
    found |= {methods[m] for m in _PAGINATOR.findall(source) if m in methods}
    for transfer in _TRANSFER_CALL.findall(source):
        found |= set(TRANSFERS[transfer])
    return found


def _chalicelib_operations() -> dict[str, list[str]]:
    where: dict[str, list[str]] = {}
    for path in sorted((ROOT / "chalicelib").rglob("*.py")):
        for op in operations_called(path.read_text(encoding="utf-8")):
            where.setdefault(op, []).append(str(path.relative_to(ROOT)))
    return where


def test_the_scan_finds_client_calls_paginators_and_transfers():
    source = '''
        head = ctx.s3.head_object(Bucket=b, Key=k)
        for page in s3.get_paginator("list_object_versions").paginate(Bucket=b): pass
        cloudwatch.get_paginator("list_metrics")
        _s3().upload_file(tmp, b, k)
        extra.copy()
        client.get_bucket_acl(Bucket=b)
    '''
    assert operations_called(source) == {"HeadObject", "ListObjectVersions", "GetBucketAcl", *TRANSFERS["upload_file"]}
    assert "GetBucketAcl" not in {Call(r).operation for r in REQUESTS}  # so a new call like it would fail the next test


def test_every_s3_operation_chalicelib_calls_has_a_row_in_the_table():
    called = _chalicelib_operations()
    assert {"HeadObject", "GetObject", "ListObjectsV2", "PutBucketLifecycleConfiguration"} <= set(called)  # the scan works
    in_table = {Call(r).operation for r in REQUESTS}
    missing = {op: files for op, files in called.items() if op not in in_table}
    assert not missing, f"add these S3 requests to chalicelib/actions/permissions.py REQUESTS (and declare them): {missing}"


def test_every_declared_request_is_made_somewhere_in_chalicelib():
    """Nothing is granted that no code path uses: a declared operation the code never calls is stale."""
    called = set(_chalicelib_operations())
    declared = {c.operation for cls in REGISTRY.values()
                for c in (*cls.s3_calls, *(c for bv in cls.s3_calls_by_option.values() for cs in bv.values() for c in cs))}
    declared |= {c.operation for c in policy_calls(Policy.model_validate(
        {"name": "p", "bucket": "lake", "filters": {"tags": {"a": "b"}}, "actions": [{"expire": {"days": 1}}]}))}
    assert declared - called == set()


# --- The documents ----------------------------------------------------------------------------------------------

def test_committed_policy_files_are_what_the_policies_derive_now():
    generated = generate([ROOT / "policies"], ROOT / ".chalice")
    assert {p.name for p in generated} == {"policy-dev.json", "policy-prod.json"}
    for path, text in generated.items():
        assert path.read_text(encoding="utf-8") == text, f"{path.name} is stale: run `make iam` and commit"


def test_config_uses_the_generated_files_and_no_autogenerated_policy():
    assert CONFIG.data["autogen_policy"] is False
    for stage in CONFIG.stages:
        assert CONFIG.setting(stage, "iam_policy_file") == f"policy-{stage}.json"
        assert (ROOT / ".chalice" / f"policy-{stage}.json").is_file()


@pytest.mark.parametrize("stage", CONFIG.stages)
def test_committed_policies_are_least_privilege(stage):
    document = json.loads((ROOT / ".chalice" / f"policy-{stage}.json").read_text(encoding="utf-8"))
    assert least_privilege_problems(document) == []
    for statement in document["Statement"]:
        assert isinstance(statement["Resource"], list) and "*" not in statement["Resource"]
        assert all("*" not in action for action in statement["Action"])
    actions = {a for s in document["Statement"] for a in s["Action"]}
    assert not {a for a in actions if a.startswith("cloudwatch:")}  # metrics are EMF log lines
    # S3 only on the buckets the policies name
    buckets = set(load_policies([ROOT / "policies"]).buckets)
    s3_resources = {r for s in document["Statement"] for r in s["Resource"] if r.startswith("arn:aws:s3:::")}
    assert {r.removeprefix("arn:aws:s3:::").removesuffix("/*") for r in s3_resources} == buckets
    # logs only for this stage's functions; the work queue consumed, the dead-letter queue written
    logs = _statements(document, "Logs")[0]["Resource"]
    assert all(r.startswith(f"arn:aws:logs:*:*:log-group:/aws/lambda/leanlake-{stage}-") for r in logs)
    (work,), (dead,) = _statements(document, "WorkQueue"), _statements(document, "DeadLetters")
    assert work["Resource"] == [f"arn:aws:sqs:*:*:leanlake-{stage}-work"]
    assert work["Action"] == ["sqs:DeleteMessage", "sqs:GetQueueAttributes", "sqs:ReceiveMessage", "sqs:SendMessage"]
    assert dead["Resource"] == [f"arn:aws:sqs:*:*:leanlake-{stage}-work-dlq"] and dead["Action"] == ["sqs:SendMessage"]
    assert [s["Sid"] for s in document["Statement"]][-3:] == ["Logs", "WorkQueue", "DeadLetters"]


def test_buckets_with_the_same_needs_share_one_statement():
    policy_set = PolicySet.from_dicts([{"name": f"p{i}", "bucket": f"bucket-{i}", "actions": [{"storage_class": "GLACIER_IR"}]}
                                       for i in range(3)])
    objects = [s for s in policy_document(policy_set, CONFIG, "prod")["Statement"] if s["Sid"].startswith("Objects")]
    assert len(objects) == 1 and objects[0]["Resource"] == [f"arn:aws:s3:::bucket-{i}/*" for i in range(3)]


@pytest.mark.parametrize("statement, problem", [
    ({"Sid": "A", "Effect": "Allow", "Action": ["s3:*"], "Resource": ["arn:aws:s3:::b/*"]}, "wildcard action"),
    ({"Sid": "B", "Effect": "Allow", "Action": ["s3:GetObject"], "Resource": "*"}, "Resource '*'"),
    ({"Sid": "C", "Effect": "Allow", "Action": ["cloudwatch:PutMetricData"], "Resource": "*",
      "Condition": {"StringEquals": {"cloudwatch:namespace": "leanlake"}}}, "Resource '*'"),
    ({"Sid": "D", "Effect": "Allow", "Action": ["s3:GetObject"], "Resource": ["arn:aws:s3:::ml-*/*"]}, "bucket wildcard"),
    ({"Sid": "E", "Effect": "Allow", "NotAction": ["s3:GetObject"], "Resource": ["arn:aws:s3:::b/*"]}, "plain Allow"),
])
def test_least_privilege_problems_are_found(statement, problem):
    problems = least_privilege_problems({"Version": "2012-10-17", "Statement": [statement]})
    assert len(problems) == 1 and problem in problems[0]


def test_a_policy_over_the_inline_size_limit_is_refused():
    policy_set = PolicySet.from_dicts([
        {"name": f"p{i}", "bucket": f"a-rather-long-bucket-name-number-{i:04d}",
         "actions": [{"storage_class": "GLACIER_IR"}] if i % 2 else [{"expire": {"days": 30}}]} for i in range(400)])
    problems = least_privilege_problems(policy_document(policy_set, CONFIG, "dev"))
    assert any("inline limit" in p for p in problems)


def test_write_policies_check_mode_reports_stale_files_and_writes_nothing(tmp_path):
    chalice_dir = tmp_path / ".chalice"
    shutil.copytree(ROOT / ".chalice", chalice_dir, ignore=shutil.ignore_patterns("deployments", "deployed"))
    (chalice_dir / "policy-dev.json").write_text("{}\n", encoding="utf-8")
    assert write_policies([ROOT / "policies"], chalice_dir, check=True) == [chalice_dir / "policy-dev.json"]
    assert (chalice_dir / "policy-dev.json").read_text(encoding="utf-8") == "{}\n"
    assert write_policies([ROOT / "policies"], chalice_dir) == [chalice_dir / "policy-dev.json"]
    assert write_policies([ROOT / "policies"], chalice_dir, check=True) == []


def test_deploy_module_iam_check_passes_on_the_repository():
    done = subprocess.run([sys.executable, "-m", "leanlake.deploy", "iam", "--check"], cwd=ROOT,
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "up to date" in done.stdout


# --- leanlake iam -------------------------------------------------------------------------------------------------

def test_leanlake_iam_prints_the_committed_document_of_a_stage():
    done = _cli("iam", "--stage", "prod")
    assert done.returncode == 0, done.stderr
    assert done.stdout == (ROOT / ".chalice" / "policy-prod.json").read_text(encoding="utf-8")


def test_leanlake_iam_check_and_write(tmp_path):
    assert _cli("iam", "--check").returncode == 0
    chalice_dir = tmp_path / ".chalice"
    shutil.copytree(ROOT / ".chalice", chalice_dir, ignore=shutil.ignore_patterns("deployments", "deployed"))
    (tmp_path / "p.yaml").write_text("policies:\n  - {name: t, bucket: other-lake, actions: [{expire: {days: 3}}]}\n")
    args = ("--policies", str(tmp_path / "p.yaml"), "--chalice-dir", str(chalice_dir), "--stage", "dev")
    stale = _cli("iam", *args, "--check")
    assert stale.returncode == 1 and stale.stdout.strip() == f"stale {chalice_dir / 'policy-dev.json'}"
    assert stale.stderr.count("\n") == 1 and "leanlake iam --write" in stale.stderr
    assert _cli("iam", *args, "--write").stdout.strip() == f"wrote {chalice_dir / 'policy-dev.json'}"
    written = json.loads((chalice_dir / "policy-dev.json").read_text(encoding="utf-8"))
    assert _actions_on(written, "arn:aws:s3:::other-lake/*") >= {"s3:DeleteObject", "s3:PutObject"}
    assert (chalice_dir / "policy-prod.json").read_text() == (ROOT / ".chalice" / "policy-prod.json").read_text()
    assert _cli("iam", *args, "--check").stdout.strip() == "IAM policies up to date"


@pytest.mark.parametrize("args, message", [
    ((), "leanlake: --stage: name the one stage to print (one of: dev, prod), or --write them all"),
    (("--stage", "qa"), "leanlake: --stage: no stage 'qa' in .chalice/config.json (stages: dev, prod)"),
    (("--stage", "dev", "--chalice-dir", "nowhere"), "leanlake: nowhere: no Chalice config (run from the project root)"),
    (("--write", "--check"), "leanlake: iam: give --write or --check, not both"),
])
def test_leanlake_iam_bad_inputs_are_one_line(args, message):
    done = _cli("iam", *args)
    assert done.returncode in (1, 2) and done.stdout == ""
    assert done.stderr == message + "\n"
