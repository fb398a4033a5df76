"""Packaging for Lambda: the checks that fail loudly, the build copy, the templates' additions, and (when a
Python 3.12 is here) a real build of both formats checked against Lambda's limits."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from leanlake.deploy import package as pkg
from leanlake.deploy.extras import complete_sam, terraform_config, terraform_files
from leanlake.deploy.project import ChaliceConfig
from leanlake.deploy.python import PythonNotFound, find_python
from leanlake.deploy.vendor import trimmed

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ChaliceConfig.load(ROOT / ".chalice")
ABI = "cpython-312-x86_64-linux-gnu"
GOOD = {"app.py": b"", "policies/ml-lake.yaml": b"", "pyarrow/__init__.py": b"", f"pyarrow/lib.{ABI}.so": b"",
        "zstandard-0.25.0.dist-info/METADATA": b"", "PyYAML-6.0.dist-info/METADATA": b""}


def _package_dir(tmp_path: Path, members: dict[str, bytes], runtime: str = "python3.12") -> Path:
    out = tmp_path / "terraform"
    out.mkdir()
    (out / "chalice.tf.json").write_text(json.dumps(
        {"resource": {"aws_lambda_function": {"f": {"runtime": runtime, "handler": "app.f"}}}}), encoding="utf-8")
    with zipfile.ZipFile(out / "deployment.zip", "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return out


def test_a_complete_package_passes_and_reports_its_sizes(tmp_path):
    result = pkg.check_format("terraform", _package_dir(tmp_path, GOOD), ["zstandard", "pyyaml"])
    assert result.artifacts[0].path.name == "deployment.zip" and result.zip_bytes > 0


@pytest.mark.parametrize("drop, message", [
    (f"pyarrow/lib.{ABI}.so", "pyarrow for python3.12 is missing"),
    ("policies/ml-lake.yaml", "policies/*.yaml is missing"),
    ("zstandard-0.25.0.dist-info/METADATA", "requirements missing from the package: zstandard"),
])
def test_what_chalice_silently_leaves_out_fails_loudly(tmp_path, drop, message):
    members = {k: v for k, v in GOOD.items() if k != drop}
    with pytest.raises(pkg.PackageError, match=message.replace("*", r"\*")):
        pkg.check_format("terraform", _package_dir(tmp_path, members), ["zstandard", "PyYAML"])


def test_a_package_for_another_runtime_fails(tmp_path):
    with pytest.raises(pkg.PackageError, match="runtime python3.11, not python3.12"):
        pkg.check_format("terraform", _package_dir(tmp_path, GOOD, runtime="python3.11"), [])


def test_limits_are_enforced(tmp_path, monkeypatch):
    directory = _package_dir(tmp_path, {**GOOD, "big.bin": os.urandom(4096)})
    monkeypatch.setattr(pkg, "MAX_ZIP_BYTES", 1024)
    with pytest.raises(pkg.PackageError, match="MiB Chalice uploads directly"):
        pkg.check_format("terraform", directory, [])
    monkeypatch.setattr(pkg, "MAX_ZIP_BYTES", 50 * 2**20)
    monkeypatch.setattr(pkg, "MAX_UNZIPPED_BYTES", 2048)
    with pytest.raises(pkg.PackageError, match="unzipped, over Lambda's"):
        pkg.check_format("terraform", directory, [])


def test_limits_are_lambdas():
    assert pkg.MAX_ZIP_BYTES == 52_428_800 and pkg.MAX_UNZIPPED_BYTES == 262_144_000


def test_pyarrow_is_trimmed_of_what_lambda_never_loads_and_keeps_what_it_links():
    names = frozenset({"pyarrow/libarrow_python.so", "pyarrow/libarrow_python.so.2600", "pyarrow/libarrow_python.so.2600.1.0",
                       "pyarrow/libarrow_substrait.so.2600", f"pyarrow/lib.{ABI}.so", f"pyarrow/_parquet.{ABI}.so",
                       f"pyarrow/_flight.{ABI}.so", "pyarrow/libarrow_flight.so.2600", f"pyarrow/_orc.{ABI}.so",
                       f"pyarrow/_s3fs.{ABI}.so", "pyarrow/libarrow_s3.so.2600", "pyarrow/tests/test_csv.py",
                       "pyarrow/include/arrow/api.h", "pyarrow/lib.pyx", "pyarrow/__init__.pyi", "pyarrow/parquet/core.py",
                       "pyarrow-26.0.1.dist-info/METADATA"})
    kept = {n for n in names if not trimmed(n, names)}
    assert kept == {"pyarrow/libarrow_python.so.2600", "pyarrow/libarrow_substrait.so.2600", f"pyarrow/lib.{ABI}.so",
                    f"pyarrow/_parquet.{ABI}.so", "pyarrow/parquet/core.py", "pyarrow-26.0.1.dist-info/METADATA"}


def test_build_requirements_leave_pyarrow_to_the_vendored_copy():
    text = "# deps\naws-lambda-powertools>=3.0\npyarrow>=17\nPyArrow==26.0.1\nzstandard>=0.22\n"
    assert pkg._build_requirements(text) == "# deps\naws-lambda-powertools>=3.0\nzstandard>=0.22\n"
    assert pkg._requirement_names(pkg._build_requirements(text)) == ["aws-lambda-powertools", "zstandard"]


#: What the Lambda functions never run: the build, deploy, demo, CLI and moto code. It lives in leanlake/,
#: which the build never copies, so none of it can reach a deployment zip.
TOOLING = ("leanlake/", "chalicelib/deploy/", "chalicelib/demo/", "chalicelib/local.py", "chalicelib/cli.py")


def _tooling_in(names) -> list[str]:
    return sorted(n for n in names if n.startswith(TOOLING))


def test_build_copy_puts_policies_beside_app_and_leaves_the_tooling_out(tmp_path):
    project, build = tmp_path / "project", tmp_path / "build"
    project.mkdir()
    build.mkdir()
    for name in ("app.py", "requirements.txt"):
        shutil.copy2(ROOT / name, project / name)
    for name in ("chalicelib", "leanlake", "policies", ".chalice"):
        shutil.copytree(ROOT / name, project / name, ignore=shutil.ignore_patterns("__pycache__", "deployments", "deployed"))
    before = {p: p.stat().st_mtime_ns for p in project.rglob("*")}
    pkg.make_build_copy(project, build)
    assert {p: p.stat().st_mtime_ns for p in project.rglob("*")} == before  # the project is never touched
    assert (build / "vendor" / "policies" / "ml-lake.yaml").is_file()  # lands at the zip root, beside app.py
    assert (build / "policies" / "ml-lake.yaml").is_file()             # what app.py reads while Chalice imports it
    assert (build / "app.py").is_file() and (build / "chalicelib" / "policy").is_dir()
    copied = [p.relative_to(build).as_posix() + ("/" if p.is_dir() else "") for p in build.rglob("*")]
    assert "chalicelib/runtime.py" in copied and _tooling_in(copied) == []
    requirements = pkg._requirement_names((build / "requirements.txt").read_text(encoding="utf-8"))
    assert requirements and "pyarrow" not in [r.lower() for r in requirements]
    assert not list(build.rglob("__pycache__"))


def test_a_policy_that_does_not_validate_fails_the_build_first_with_its_file_and_line(tmp_path):
    (tmp_path / "policies").mkdir()
    (tmp_path / "policies" / "bad.yaml").write_text("policies:\n  - name: x\n    bucket: ml-lake\n    actions: [{shrink: {}}]\n")
    with pytest.raises(pkg.PackageError, match=r"^policies: .*bad.yaml:4: ") as raised:
        pkg.build(tmp_path, tmp_path / "dist", python="/nonexistent/python3.12", log=lambda line: None)
    assert "\n" not in str(raised.value) and not (tmp_path / "dist").exists()


def _leanlake(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "leanlake", *args], cwd=cwd, capture_output=True, text=True, timeout=120,
                          env={**os.environ, "LEANLAKE_BUILD_PYTHON": "/nonexistent/python3.12"})


def test_leanlake_package_is_the_build_with_its_flags_and_a_one_line_error(tmp_path):
    (tmp_path / "policies").mkdir()
    (tmp_path / "policies" / "bad.yaml").write_text("policies:\n  - name: x\n    bucket: ml-lake\n    actions: [{shrink: {}}]\n")
    done = _leanlake("package", "--stage", "prod", "--project", str(tmp_path), "--out", str(tmp_path / "out"),
                     "--format", "terraform", "--keep-build", cwd=tmp_path)
    assert done.returncode == 1 and done.stdout == ""
    assert re.fullmatch(r"leanlake: package prod: policies: .*bad\.yaml:4: .*\n", done.stderr)
    assert not (tmp_path / "out").exists()
    wrong = _leanlake("package", "--format", "zip", cwd=tmp_path)
    assert wrong.returncode == 2 and wrong.stderr == "leanlake: --format: 'zip' is not one of terraform, cloudformation\n"


def test_no_python_312_is_a_clear_error(monkeypatch):
    monkeypatch.setattr("leanlake.deploy.python._candidates", lambda version: [("python3.12 on PATH", "/nonexistent/python3.12")])
    with pytest.raises(PythonNotFound, match=r"no Python 3.12 found .*pyenv install 3.12"):
        find_python()


def test_sam_gets_the_queue_its_dead_letters_and_failure_destinations():
    sam = {"Resources": {
        "OnObjectCreated": {"Type": "AWS::Serverless::Function", "Properties": {"Events": {"E": {"Type": "CloudWatchEvent"}}}},
        "OnQueuedUpload": {"Type": "AWS::Serverless::Function", "Properties": {"Events": {"Q": {"Type": "SQS", "Properties": {
            "Queue": {"Fn::Sub": "arn:${AWS::Partition}:sqs:${AWS::Region}:${AWS::AccountId}:leanlake-dev-work"}}}}}}}}
    out = complete_sam(sam, CONFIG, "dev", ["ml-lake"])["Resources"]
    assert out["LeanlakeWork"]["Properties"]["QueueName"] == "leanlake-dev-work"
    assert out["LeanlakeWork"]["Properties"]["VisibilityTimeout"] == 6 * 900
    assert out["LeanlakeWork"]["Properties"]["RedrivePolicy"]["deadLetterTargetArn"] == {"Fn::GetAtt": ["LeanlakeDeadLetters", "Arn"]}
    assert out["LeanlakeDeadLetters"]["Properties"]["QueueName"] == "leanlake-dev-work-dlq"
    assert out["OnQueuedUpload"]["Properties"]["Events"]["Q"]["Properties"]["Queue"] == {"Fn::GetAtt": ["LeanlakeWork", "Arn"]}
    assert "OnQueuedUploadEventInvokeConfig" not in out  # SQS retries through the queue's redrive policy
    invoke = out["OnObjectCreatedEventInvokeConfig"]["Properties"]
    assert invoke["DestinationConfig"]["OnFailure"]["Destination"] == {"Fn::GetAtt": ["LeanlakeDeadLetters", "Arn"]}
    statement = out["LeanlakeWorkPolicy"]["Properties"]["PolicyDocument"]["Statement"][0]
    assert statement["Condition"]["ArnLike"]["aws:SourceArn"] == ["arn:aws:s3:::ml-lake"]


def test_terraform_gets_stage_named_rules_log_groups_and_the_queue():
    tf = {"resource": {
        "aws_lambda_function": {"sweep": {"function_name": "leanlake-prod-sweep", "role": "${aws_iam_role.sweep_role.arn}"},
                                "q": {"function_name": "leanlake-prod-q", "role": "${aws_iam_role.q_role.arn}"}},
        "aws_cloudwatch_event_rule": {"sweep-event": {"name": "sweep-event"}},
        "aws_lambda_event_source_mapping": {"q-sqs-event-source": {
            "event_source_arn": "arn:${data.aws_partition.chalice.partition}:sqs:r:a:leanlake-prod-work",
            "function_name": "${aws_lambda_function.q.arn}"}}}}
    files = terraform_files(tf, CONFIG, "prod", ["ml-lake"])
    added, override = files["leanlake.tf.json"]["resource"], files["leanlake_override.tf.json"]["resource"]
    assert override["aws_cloudwatch_event_rule"]["sweep-event"]["name"] == "leanlake-prod-sweep-event"
    assert added["aws_cloudwatch_log_group"]["sweep"] == {"name": "/aws/lambda/leanlake-prod-sweep", "retention_in_days": 30}
    assert override["aws_lambda_function"]["sweep"]["depends_on"] == ["aws_cloudwatch_log_group.sweep"]
    assert added["aws_sqs_queue"]["leanlake_work"]["name"] == "leanlake-prod-work"
    assert override["aws_lambda_event_source_mapping"]["q-sqs-event-source"]["event_source_arn"] == "${aws_sqs_queue.leanlake_work.arn}"
    assert set(added["aws_lambda_function_event_invoke_config"]) == {"sweep"}
    assert added["aws_lambda_function_event_invoke_config"]["sweep"]["depends_on"] == ["aws_iam_role_policy.sweep_role"]
    assert "log_retention_in_days" not in json.dumps(terraform_config(CONFIG.data))


def test_config_sizes_the_functions_for_the_converter():
    for stage in CONFIG.stages:
        assert CONFIG.setting(stage, "lambda_memory_size") >= 3538  # 2 vCPUs for the 2-thread converter
        assert CONFIG.setting(stage, "lambda_timeout") == 900
        assert CONFIG.setting(stage, "reserved_concurrency") >= 1
        env = CONFIG.env(stage)
        assert env["LEANLAKE_POLICIES"] == "policies" and env["POWERTOOLS_METRICS_NAMESPACE"] == "leanlake"
        assert env["POWERTOOLS_SERVICE_NAME"] == "leanlake" and env["LEANLAKE_QUEUE"] == f"leanlake-{stage}-work"


def test_a_rebuild_replaces_its_own_files_and_keeps_terraform_state(tmp_path):
    for name in ("deployment.zip", "chalice.tf.json", "leanlake_override.tf.json", "terraform.tfstate", "notes.txt"):
        (tmp_path / name).write_text("old", encoding="utf-8")
    pkg.clear_output(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt", "terraform.tfstate"]


class _NotificationStore:
    """S3's notification API as AWS documents it (moto accepts EventBridgeConfiguration but never returns it)."""

    def __init__(self, config):
        self.config, self.puts = dict(config), 0

    def get_bucket_notification_configuration(self, Bucket):
        return {**self.config, "ResponseMetadata": {}}

    def put_bucket_notification_configuration(self, Bucket, NotificationConfiguration):
        self.config, self.puts = dict(NotificationConfiguration), self.puts + 1


def test_eventbridge_is_turned_on_and_off_idempotently_keeping_other_notifications():
    from leanlake.deploy.notifications import set_eventbridge

    theirs = {"LambdaFunctionConfigurations": [{"Id": "theirs", "LambdaFunctionArn": "arn:aws:lambda:us-east-1:1:function:f",
                                                "Events": ["s3:ObjectCreated:*"]}]}
    store = _NotificationStore(theirs)
    assert set_eventbridge(store, "b", True, dry_run=True) is True and store.puts == 0
    assert set_eventbridge(store, "b", True) is True
    assert store.config == {**theirs, "EventBridgeConfiguration": {}}
    assert set_eventbridge(store, "b", True) is False and store.puts == 1
    assert set_eventbridge(store, "b", False) is True and store.config == theirs


def test_turning_eventbridge_on_keeps_a_real_buckets_queue_notifications(s3, bucket):
    from leanlake.deploy.notifications import set_eventbridge

    sqs = __import__("boto3").client("sqs")
    queue_arn = sqs.get_queue_attributes(QueueUrl=sqs.create_queue(QueueName=f"{bucket}-q")["QueueUrl"],
                                         AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    theirs = [{"Id": "theirs", "QueueArn": queue_arn, "Events": ["s3:ObjectRemoved:*"]}]
    s3.put_bucket_notification_configuration(Bucket=bucket, NotificationConfiguration={"QueueConfigurations": theirs})
    assert set_eventbridge(s3, bucket, True) is True
    assert s3.get_bucket_notification_configuration(Bucket=bucket)["QueueConfigurations"] == theirs


def _python312():
    try:
        return find_python()
    except PythonNotFound:
        return None


@pytest.mark.skipif(os.environ.get("LEANLAKE_SKIP_PACKAGE_BUILD") == "1", reason="LEANLAKE_SKIP_PACKAGE_BUILD=1")
@pytest.mark.skipif(_python312() is None, reason="no Python 3.12 here (the Lambda runtime the package targets)")
def test_both_formats_build_within_lambdas_limits(tmp_path):
    """Slow on a fresh machine (a build venv and the pyarrow wheel are fetched once, then cached)."""
    (tmp_path / "dist" / "terraform").mkdir(parents=True)
    (tmp_path / "dist" / "terraform" / "terraform.tfstate").write_text("{}", encoding="utf-8")
    result = pkg.build(ROOT, tmp_path / "dist", stage="dev", log=lambda line: None)
    assert (tmp_path / "dist" / "terraform" / "terraform.tfstate").read_text() == "{}"
    by_format = {f.format: f for f in result.formats}
    assert set(by_format) == {"terraform", "cloudformation"}
    for fmt in by_format.values():
        assert all(a.zip_bytes <= 50 * 2**20 for a in fmt.artifacts) and fmt.unzipped_bytes <= 262_144_000
        names = frozenset().union(*(a.names for a in fmt.artifacts))
        assert {"app.py", "policies/ml-lake.yaml", "pyarrow/__init__.py", f"pyarrow/lib.{ABI}.so",
                "pyarrow/libarrow_substrait.so.2600"} <= names
        assert "chalicelib/runtime.py" in names and _tooling_in(names) == []  # no build, deploy, demo, CLI or moto code
        assert not [n for n in names if n.startswith(("pyarrow/tests/", "pyarrow/include/", "moto/"))]

    tf = json.loads((tmp_path / "dist" / "terraform" / "chalice.tf.json").read_text())
    functions = tf["resource"]["aws_lambda_function"]
    assert functions and {f["runtime"] for f in functions.values()} == {"python3.12"}
    for name in ("leanlake.tf.json", "leanlake_override.tf.json"):
        json.loads((tmp_path / "dist" / "terraform" / name).read_text())

    sam = json.loads((tmp_path / "dist" / "cloudformation" / "sam.json").read_text())
    resources = sam["Resources"]
    patterns = [e["Properties"].get("Pattern", {}) for r in resources.values() if r["Type"] == "AWS::Serverless::Function"
                for e in r["Properties"].get("Events", {}).values()]
    assert {"source": ["aws.s3"], "detail-type": ["Object Created"], "detail": {"bucket": {"name": ["ml-lake"]}}} in patterns
    assert not any(e.get("Type") == "S3" for r in resources.values() if r["Type"] == "AWS::Serverless::Function"
                   for e in r["Properties"].get("Events", {}).values())
    policy = next(r for r in resources.values() if r["Type"] == "AWS::IAM::Role")["Properties"]["Policies"][0]["PolicyDocument"]
    assert policy == json.loads((ROOT / ".chalice" / "policy-dev.json").read_text())
    report = json.loads((tmp_path / "dist" / "package-report.json").read_text())
    assert report["runtime"] == "python3.12" and report["pyarrow"]
