"""``chalice deploy`` the leanlake way: the queues made first and idempotently, the one-line refusals, and (when a
Python 3.12 is here) the offline plan and a real ``chalice deploy`` / redeploy / ``chalice delete`` against moto."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import boto3
import pytest
from conftest import moto_in_own_process

from leanlake.deploy.__main__ import main
from leanlake.deploy.deploy import deploy, delete_queues, ensure_queues, stage_queues
from leanlake.deploy.project import ChaliceConfig
from leanlake.deploy.python import PythonNotFound, find_python

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ChaliceConfig.load(ROOT / ".chalice")
FUNCTIONS = {f"leanlake-dev-{name}" for name in ("on_upload", "on_object_created", "on_alarm", "daily_sweep", "on_queued_upload", "batch_task")}


def _project(tmp_path: Path) -> Path:
    """A copy of the project, so deployed state never lands in the repository's .chalice/."""
    project = tmp_path / "project"
    project.mkdir()
    for name in ("app.py", "requirements.txt"):
        shutil.copy2(ROOT / name, project / name)
    for name in ("chalicelib", "policies", ".chalice"):
        shutil.copytree(ROOT / name, project / name, ignore=shutil.ignore_patterns("__pycache__", "deployments", "deployed"))
    return project


def _attributes(sqs, name: str) -> dict[str, str]:
    return sqs.get_queue_attributes(QueueUrl=sqs.get_queue_url(QueueName=name)["QueueUrl"], AttributeNames=["All"])["Attributes"]


def test_the_stage_queues_are_named_from_config_json():
    assert [q.name for q in stage_queues(CONFIG, "prod")] == ["leanlake-prod-work-dlq", "leanlake-prod-work"]
    assert stage_queues(ChaliceConfig({"app_name": "x", "stages": {"dev": {}}}), "dev") == ()


def test_queues_are_created_once_with_their_redrive_and_policy_and_repaired_in_place(aws):
    sqs = boto3.client("sqs")
    logged: list[str] = []
    arns = ensure_queues(sqs, CONFIG, "prod", ("ml-lake",), "123456789012", logged.append)
    assert ensure_queues(sqs, CONFIG, "prod", ("ml-lake",), "123456789012", logged.append) == arns  # idempotent
    assert [line.split()[0] for line in logged] == ["created", "created", "SQS", "SQS"]
    work = _attributes(sqs, "leanlake-prod-work")
    assert json.loads(work["RedrivePolicy"]) == {"deadLetterTargetArn": arns["leanlake-prod-work-dlq"], "maxReceiveCount": 5}
    assert work["VisibilityTimeout"] == str(6 * 900)
    statement = json.loads(work["Policy"])["Statement"][0]
    assert statement["Resource"] == arns["leanlake-prod-work"]
    assert statement["Condition"]["ArnLike"]["aws:SourceArn"] == ["arn:aws:s3:::ml-lake"]
    assert _attributes(sqs, "leanlake-prod-work-dlq")["MessageRetentionPeriod"] == str(14 * 24 * 3600)

    url = sqs.get_queue_url(QueueName="leanlake-prod-work")["QueueUrl"]
    sqs.set_queue_attributes(QueueUrl=url, Attributes={"VisibilityTimeout": "30"})  # drifted by hand
    ensure_queues(sqs, CONFIG, "prod", log=logged.append)
    assert _attributes(sqs, "leanlake-prod-work")["VisibilityTimeout"] == str(6 * 900)

    assert delete_queues(sqs, CONFIG, "prod", log=logged.append) == ["leanlake-prod-work", "leanlake-prod-work-dlq"]
    assert delete_queues(sqs, CONFIG, "prod", log=logged.append) == []


def test_deploy_without_credentials_says_so_in_one_line_before_building(monkeypatch, capsys, tmp_path):
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("LEANLAKE_BUILD_PYTHON", "/nonexistent/python3.12")  # would fail the build, were one started
    assert main(["deploy", "--stage", "prod", "--project", str(ROOT)]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: no AWS credentials found") and "\n" not in err


def test_destroy_asks_and_refuses_without_yes_when_it_cannot_ask(capsys, tmp_path):
    assert main(["destroy", "--stage", "prod", "--project", str(_project(tmp_path))]) == 1  # pytest's stdin is no terminal
    err = capsys.readouterr().err
    assert "leanlake-prod-work" in err and err.strip().splitlines()[-1].startswith("error: refusing without --yes")


def test_leanlake_destroy_is_the_same_step_with_the_clis_one_line_error(tmp_path):
    done = subprocess.run([sys.executable, "-m", "leanlake", "destroy", "--stage", "prod", "--project", str(_project(tmp_path))],
                          capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
    assert done.returncode == 1 and done.stdout == ""
    said, error = done.stderr.strip().splitlines()
    assert "leanlake-prod-work" in said and error == "leanlake: destroy prod: refusing without --yes (not asked: stdin is not a terminal)"


def _python312():
    try:
        return find_python()
    except PythonNotFound:
        return None


skip_build = pytest.mark.skipif(os.environ.get("LEANLAKE_SKIP_PACKAGE_BUILD") == "1", reason="LEANLAKE_SKIP_PACKAGE_BUILD=1")
needs_python312 = pytest.mark.skipif(_python312() is None, reason="no Python 3.12 here (the Lambda runtime the package targets)")


@pytest.fixture
def own_moto(monkeypatch):
    """A moto server in a process of its own (moto's state is per process, and other tests share this one's), so
    listing functions, rules and queues sees only what the deploy made."""
    with moto_in_own_process() as endpoint:
        monkeypatch.setenv("AWS_ENDPOINT_URL", endpoint)  # botocore in chalice (the subprocess) uses it too
        yield endpoint


@skip_build
@needs_python312
def test_dry_run_prints_the_plan_and_sizes_without_calling_aws(monkeypatch, capsys, tmp_path):
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")  # nothing listens: any AWS call would fail
    project = _project(tmp_path)
    assert main(["deploy", "--stage", "dev", "--dry-run", "--project", str(project)]) == 0
    out = capsys.readouterr().out
    assert {line.split()[-1] for line in out.splitlines() if line.startswith("  lambda function")} == FUNCTIONS
    for expected in ("sqs queue        leanlake-dev-work-dlq", "sqs queue        leanlake-dev-work ",
                     "sqs event source leanlake-dev-on_queued_upload ← leanlake-dev-work", "s3 notification  s3://ml-lake",
                     "eventbridge rule leanlake-dev-daily_sweep-event", "pyarrow 26", "MiB zip",
                     "cloudwatch dashboard leanlake-dev"):
        assert expected in out
    assert not (project / ".chalice" / "deployed").exists()


@skip_build
@needs_python312
def test_a_real_chalice_deploy_redeploy_and_destroy_against_moto(own_moto, capsys, tmp_path):
    """moto does IAM, Lambda create/update (invoking would need Docker), EventBridge rules and targets, S3 notifications,
    SQS event sources, log groups, concurrency and event-invoke configs: the whole of ``chalice deploy`` and ``delete``."""
    project = _project(tmp_path)
    s3, sqs = boto3.client("s3"), boto3.client("sqs")
    s3.create_bucket(Bucket="ml-lake")  # on_upload's bucket (S3 → Lambda needs it to exist)
    theirs_arn = sqs.get_queue_attributes(QueueUrl=sqs.create_queue(QueueName="theirs")["QueueUrl"],
                                          AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    theirs = [{"Id": "theirs", "QueueArn": theirs_arn, "Events": ["s3:ObjectRemoved:*"]}]
    s3.put_bucket_notification_configuration(Bucket="ml-lake", NotificationConfiguration={"QueueConfigurations": theirs})
    logged: list[str] = []
    plan = deploy(project, "dev", log=logged.append)

    lam, events = boto3.client("lambda"), boto3.client("events")
    functions = {f["FunctionName"]: f for f in lam.list_functions()["Functions"]}
    assert set(functions) == FUNCTIONS == set(plan.functions)
    assert {f["Runtime"] for f in functions.values()} == {"python3.12"}
    assert all(f["CodeSize"] <= 50 * 2**20 for f in functions.values())
    assert {f["Environment"]["Variables"]["LEANLAKE_QUEUE"] for f in functions.values()} == {"leanlake-dev-work"}
    assert {r["Name"] for r in events.list_rules()["Rules"]} == set(plan.rules)
    targets = events.list_targets_by_rule(Rule="leanlake-dev-on_object_created-event")["Targets"]
    assert [t["Arn"].rsplit(":", 1)[-1] for t in targets] == ["leanlake-dev-on_object_created"]
    notifications = s3.get_bucket_notification_configuration(Bucket="ml-lake")
    assert [c["LambdaFunctionArn"].rsplit(":", 1)[-1] for c in notifications["LambdaFunctionConfigurations"]] == ["leanlake-dev-on_upload"]
    assert notifications["QueueConfigurations"] == theirs  # Chalice merges; the bucket's other notifications stay
    work = _attributes(sqs, "leanlake-dev-work")
    assert json.loads(work["RedrivePolicy"])["deadLetterTargetArn"].endswith(":leanlake-dev-work-dlq")
    mappings = lam.list_event_source_mappings()["EventSourceMappings"]  # moto ignores a FunctionName filter by name
    assert [(m["FunctionArn"].rsplit(":", 1)[-1], m["EventSourceArn"]) for m in mappings] == [
        ("leanlake-dev-on_queued_upload", work["QueueArn"])]
    invoke = lam.get_function_event_invoke_config(FunctionName="leanlake-dev-daily_sweep")
    assert invoke["MaximumRetryAttempts"] == 2
    assert invoke["DestinationConfig"]["OnFailure"]["Destination"].endswith(":leanlake-dev-work-dlq")

    cloudwatch = boto3.client("cloudwatch")
    dashboard = cloudwatch.get_dashboard(DashboardName="leanlake-dev")["DashboardBody"]
    assert plan.dashboard == "leanlake-dev" and all(f'"{name}"' in dashboard for name in FUNCTIONS)

    state = project / ".chalice" / "deployed" / "dev.json"
    recorded = json.loads(state.read_text())["resources"]
    assert {r["lambda_arn"].rsplit(":", 1)[-1] for r in recorded if r["resource_type"] == "lambda_function"} == FUNCTIONS

    logged.clear()  # the state copied back makes the next deploy an update, not a second set of functions
    deploy(project, "dev", log=logged.append)
    assert any("Updating lambda function: leanlake-dev-on_alarm" in line for line in logged)
    assert not any("Creating lambda function" in line or "Creating IAM role" in line for line in logged)
    assert len(lam.list_functions()["Functions"]) == len(FUNCTIONS)
    assert "CloudWatch dashboard leanlake-dev exists (replaced with this deploy's)" in logged
    assert [d["DashboardName"] for d in cloudwatch.list_dashboards()["DashboardEntries"]] == ["leanlake-dev"]

    assert main(["destroy", "--stage", "dev", "--yes", "--project", str(project)]) == 0
    assert lam.list_functions()["Functions"] == [] and events.list_rules()["Rules"] == []
    assert cloudwatch.list_dashboards()["DashboardEntries"] == []
    assert [u.rsplit("/", 1)[-1] for u in sqs.list_queues().get("QueueUrls", [])] == ["theirs"]
    after = s3.get_bucket_notification_configuration(Bucket="ml-lake")
    assert after["QueueConfigurations"] == theirs and not after.get("LambdaFunctionConfigurations")
    assert json.loads(state.read_text())["resources"] == []
