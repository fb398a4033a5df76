"""S3 Batch Operations: the ``batch_task`` handler on the moto server (both invocation schemas), the
manifest ``leanlake batch`` writes, the ``CreateJob`` request (botocore's Stubber: S3 Control is not
on moto) and the job's IAM role."""

from __future__ import annotations

import copy
import io
import json
from pathlib import Path
from urllib.parse import quote

import boto3
import pyarrow.parquet as pq
import pytest
from botocore.config import Config
from botocore.stub import Stubber
from typer.testing import CliRunner

from chalicelib.batch import handle_batch_event
from chalicelib.context import RunContext
from chalicelib.ledger import Ledger
from chalicelib.policy import PolicySet
from tests.test_deletion_safety import Inject

ROWS = 2000


def csv_body(rows: int = ROWS) -> bytes:
    return ("id,city,value\n" + "".join(f"{i},{['Windhoek', 'Oslo', 'Lima'][i % 3]},{i / 8}\n" for i in range(rows))).encode()


def policies_for(bucket: str) -> PolicySet:
    return PolicySet.from_dicts([{"name": "raw-csv", "bucket": bucket, "filters": {"prefix": "raw/", "suffix": ".csv"},
                                  "actions": [{"convert": {}}]}])


def context(s3, bucket: str) -> RunContext:
    return RunContext(policies=policies_for(bucket), s3=s3)


def one_try_client(endpoint: str):
    """An S3 client that does not retry, so an injected 503 reaches the handler at once."""
    return boto3.client("s3", endpoint_url=endpoint, config=Config(retries={"mode": "standard", "max_attempts": 1}))


def invocation(bucket: str, *keys: str, schema: str = "2.0", run: str = "run-1") -> dict:
    """An invocation as S3 Batch Operations sends it (schema 1.0: URL-encoded keys, bucket as an ARN)."""
    if schema == "1.0":
        tasks = [{"taskId": f"task-{i}", "s3Key": quote(key), "s3VersionId": None, "s3BucketArn": f"arn:aws:s3:::{bucket}"}
                 for i, key in enumerate(keys)]
        job = {"id": "job-1"}
    else:
        tasks = [{"taskId": f"task-{i}", "s3Bucket": bucket, "s3Key": key, "s3VersionId": None} for i, key in enumerate(keys)]
        job = {"id": "job-1", "userArguments": {"run": run}}
    return {"invocationSchemaVersion": schema, "invocationId": f"inv-{schema}", "job": job, "tasks": tasks}


def run(event: dict, ctx: RunContext) -> dict:
    return handle_batch_event(event, ctx, Ledger(emit_metrics=False))


def results(response: dict) -> list[tuple[str, str]]:
    return [(r["resultCode"], r["resultString"]) for r in response["results"]]


# --- the handler ------------------------------------------------------------------------------------

@pytest.mark.parametrize("schema", ["1.0", "2.0"])
def test_a_csv_is_converted_and_the_task_succeeds_with_the_reason(s3, bucket, schema):
    s3.put_object(Bucket=bucket, Key="raw/a.csv", Body=csv_body())
    response = run(invocation(bucket, "raw/a.csv", schema=schema), context(s3, bucket))
    assert response["invocationSchemaVersion"] == schema and response["invocationId"] == f"inv-{schema}"
    assert response["treatMissingKeysAs"] == "PermanentFailure"
    assert [r["taskId"] for r in response["results"]] == ["task-0"]
    assert results(response) == [("Succeeded", f"s3://{bucket}/raw/a.csv: convert: wrote s3://{bucket}/raw/a.parquet; source: kept")]
    assert pq.read_table(io.BytesIO(s3.get_object(Bucket=bucket, Key="raw/a.parquet")["Body"].read())).num_rows == ROWS


def test_garbage_csv_is_a_permanent_failure_naming_the_object_and_the_source_stays(s3, bucket):
    garbage = bytes(range(256)) * 64
    s3.put_object(Bucket=bucket, Key="raw/garbage.csv", Body=garbage)
    [(code, text)] = results(run(invocation(bucket, "raw/garbage.csv"), context(s3, bucket)))
    assert code == "PermanentFailure"
    assert text.startswith(f"s3://{bucket}/raw/garbage.csv: convert failed: ") and "\n" not in text
    assert s3.get_object(Bucket=bucket, Key="raw/garbage.csv")["Body"].read() == garbage
    assert "Contents" not in s3.list_objects_v2(Bucket=bucket, Prefix="raw/garbage.parquet")


def test_a_missing_object_is_a_permanent_failure(s3, bucket):
    assert results(run(invocation(bucket, "raw/gone.csv"), context(s3, bucket))) == [
        ("PermanentFailure", f"s3://{bucket}/raw/gone.csv: no such object")]


def test_slowdown_on_get_object_is_a_temporary_failure(moto_endpoint, s3, bucket):
    s3.put_object(Bucket=bucket, Key="raw/a.csv", Body=csv_body())
    client = one_try_client(moto_endpoint)
    with Inject(client, "GetObject", status=503, code="SlowDown") as injected:
        [(code, text)] = results(run(invocation(bucket, "raw/a.csv"), context(client, bucket)))
    assert injected.hits >= 1
    assert code == "TemporaryFailure" and text.startswith(f"s3://{bucket}/raw/a.csv: convert failed: SlowDown"), text
    assert "Contents" not in s3.list_objects_v2(Bucket=bucket, Prefix="raw/a.parquet")


def test_slowdown_on_head_is_a_temporary_failure(moto_endpoint, s3, bucket):
    s3.put_object(Bucket=bucket, Key="raw/a.csv", Body=csv_body())
    client = one_try_client(moto_endpoint)
    with Inject(client, "HeadObject", status=503, code="SlowDown"):
        [(code, text)] = results(run(invocation(bucket, "raw/a.csv"), context(client, bucket)))
    assert code == "TemporaryFailure" and text.startswith(f"s3://{bucket}/raw/a.csv: "), text


@pytest.mark.parametrize("key", ["raw/two words.csv", "raw/plus+sign.csv", "raw/both + of them%.csv"])
def test_schema_1_keys_are_url_decoded(s3, bucket, key):
    s3.put_object(Bucket=bucket, Key=key, Body=csv_body())
    event = invocation(bucket, key, schema="1.0")
    event["tasks"][0]["s3Key"] = quote(key).replace("%20", "+")  # the form-encoding S3 may use: + for a space
    [(code, text)] = results(run(event, context(s3, bucket)))
    output = key.removesuffix(".csv") + ".parquet"
    assert (code, text) == ("Succeeded", f"s3://{bucket}/{key}: convert: wrote s3://{bucket}/{output}; source: kept")


def test_schema_2_key_is_taken_as_given_and_decoded_only_when_missing(s3, bucket):
    s3.put_object(Bucket=bucket, Key="raw/a%20b.csv", Body=csv_body())   # a key that looks encoded, stored as is
    s3.put_object(Bucket=bucket, Key="raw/c d.csv", Body=csv_body())
    response = run(invocation(bucket, "raw/a%20b.csv", "raw/c%20d.csv"), context(s3, bucket))
    assert results(response) == [
        ("Succeeded", f"s3://{bucket}/raw/a%20b.csv: convert: wrote s3://{bucket}/raw/a%20b.parquet; source: kept"),
        ("Succeeded", f"s3://{bucket}/raw/c d.csv: convert: wrote s3://{bucket}/raw/c d.parquet; source: kept"),
    ]
    assert "Contents" not in s3.list_objects_v2(Bucket=bucket, Prefix="raw/a b")


def test_a_redelivered_task_succeeds_as_already_made_with_one_output_version(s3, bucket):
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    s3.put_object(Bucket=bucket, Key="raw/a.csv", Body=csv_body())
    event = invocation(bucket, "raw/a.csv")
    first = run(event, context(s3, bucket))
    again = run(copy.deepcopy(event), context(s3, bucket))
    assert results(first)[0][0] == "Succeeded" and "wrote" in results(first)[0][1]
    [(code, text)] = results(again)
    assert code == "Succeeded"
    assert text == (f"s3://{bucket}/raw/a.csv: convert skipped: output s3://{bucket}/raw/a.parquet already made "
                    "from this ETag; source: kept")
    versions = s3.list_object_versions(Bucket=bucket, Prefix="raw/a.parquet").get("Versions", [])
    assert len(versions) == 1


def test_skips_succeed_with_their_reason(s3, bucket):
    s3.put_object(Bucket=bucket, Key="raw/tiny.csv", Body=b"a\n1\n")            # too small to pay
    s3.put_object(Bucket=bucket, Key="other/x.csv", Body=csv_body())             # no policy matches
    s3.put_object(Bucket=bucket, Key="_leanlake/batch/r/manifest.csv", Body=b"x")  # leanlake's own
    response = run(invocation(bucket, "raw/tiny.csv", "other/x.csv", "_leanlake/batch/r/manifest.csv"), context(s3, bucket))
    codes = [code for code, _ in results(response)]
    assert codes == ["Succeeded"] * 3
    texts = [text for _, text in results(response)]
    assert texts[0].startswith(f"s3://{bucket}/raw/tiny.csv: skipped: ")
    assert texts[1] == f"s3://{bucket}/other/x.csv: skipped: no policy with an object action matches it"
    assert texts[2] == f"s3://{bucket}/_leanlake/batch/r/manifest.csv: skipped: under _leanlake/, leanlake's own"


def test_a_bucket_no_policy_names_is_a_permanent_failure(s3, bucket):
    s3.put_object(Bucket=bucket, Key="raw/a.csv", Body=csv_body())
    ctx = RunContext(policies=policies_for("some-other-bucket"), s3=s3)
    assert results(run(invocation(bucket, "raw/a.csv"), ctx)) == [
        ("PermanentFailure", f"s3://{bucket}/raw/a.csv: no leanlake policy names bucket {bucket}")]


@pytest.mark.parametrize("event, expected", [
    (None, []),
    ({"invocationSchemaVersion": "2.0", "invocationId": "i"}, []),
    ({"invocationSchemaVersion": "2.0", "invocationId": "i", "tasks": "nope"}, []),
    ({"invocationSchemaVersion": "2.0", "invocationId": "i", "tasks": [{"s3Key": "raw/a.csv", "s3Bucket": "b"}, 7]}, []),
    ({"invocationSchemaVersion": "2.0", "invocationId": "i", "tasks": [{"taskId": "t", "s3Bucket": "b"}]},
     [("PermanentFailure", "task t: malformed: s3Key is None, not a non-empty string")]),
    ({"invocationSchemaVersion": "1.0", "invocationId": "i", "tasks": [{"taskId": "t", "s3Key": "k", "s3BucketArn": "arn:aws:s3:::"}]},
     [("PermanentFailure", "task t: malformed: s3BucketArn 'arn:aws:s3:::' is not an S3 bucket ARN")]),
    ({"invocationSchemaVersion": "1.0", "invocationId": "i", "tasks": [{"taskId": "t", "s3Key": "k"}]},
     [("PermanentFailure", "task t: malformed: s3BucketArn None is not an S3 bucket ARN")]),
    ({"invocationSchemaVersion": "3.0", "invocationId": "i", "tasks": [{"taskId": "t", "s3Key": "k", "s3Bucket": "b"}]},
     [("PermanentFailure", "task t: malformed: invocationSchemaVersion '3.0' is not one of 1.0, 2.0")]),
])
def test_a_malformed_event_is_answered_for_what_can_be_answered_and_never_raises(s3, bucket, event, expected):
    response = run(event, context(s3, bucket))
    assert results(response) == expected
    assert response["treatMissingKeysAs"] == "PermanentFailure"


def test_one_bad_task_does_not_cost_the_others(s3, bucket):
    s3.put_object(Bucket=bucket, Key="raw/a.csv", Body=csv_body())
    event = invocation(bucket, "raw/gone.csv", "raw/a.csv")
    event["tasks"].insert(0, {"taskId": "broken"})
    codes = [(r["taskId"], r["resultCode"]) for r in run(event, context(s3, bucket))["results"]]
    assert codes == [("broken", "PermanentFailure"), ("task-0", "PermanentFailure"), ("task-1", "Succeeded")]


def test_the_run_is_logged_with_every_line_of_the_invocation(s3, bucket, capsys):
    s3.put_object(Bucket=bucket, Key="raw/a.csv", Body=csv_body())
    run(invocation(bucket, "raw/a.csv", run="backfill-42"), context(s3, bucket))
    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines() if line.startswith("{")]
    task_lines = [line for line in lines if str(line.get("message", "")).startswith("batch task task-0")]
    assert task_lines and all(line.get("run") == "backfill-42" and line.get("batch_job") == "job-1" for line in task_lines)
    from chalicelib.log import logger
    assert "run" not in logger.get_current_keys()


# --- the manifest and the job: `leanlake batch` ---------------------------------------------------------

FUNCTION_ARN = "arn:aws:lambda:us-east-1:123456789012:function:leanlake-dev-batch_task"
ROLE_ARN = "arn:aws:iam::123456789012:role/leanlake-dev-batch"


def policy_file(tmp_path: Path, bucket: str) -> Path:
    path = tmp_path / "policies.yaml"
    path.write_text(f"""policies:
  - name: raw-csv
    bucket: {bucket}
    filters: {{prefix: raw/, suffix: .csv}}
    actions:
      - convert: {{}}
  - name: scratch
    bucket: {bucket}
    filters: {{prefix: tmp/}}
    actions:
      - expire: {{days: 1}}
""")
    return path


def chalice_dir(tmp_path: Path, arn: str = FUNCTION_ARN) -> Path:
    """A Chalice project's config directory with a deployed stage, as ``chalice deploy`` leaves it."""
    directory = tmp_path / ".chalice"
    (directory / "deployed").mkdir(parents=True)
    (directory / "config.json").write_text(json.dumps({"app_name": "leanlake", "stages": {"dev": {}}}))
    (directory / "deployed" / "dev.json").write_text(json.dumps({"schema_version": "2.0", "backend": "api", "resources": [
        {"name": "daily_sweep", "resource_type": "lambda_function", "lambda_arn": arn.replace("batch_task", "daily_sweep")},
        {"name": "batch_task", "resource_type": "lambda_function", "lambda_arn": arn},
    ]}))
    return directory


def seed(s3, bucket: str) -> None:
    for key in ("raw/a.csv", "raw/b c+d,é.csv", "raw/deep/e.csv"):
        s3.put_object(Bucket=bucket, Key=key, Body=csv_body(200))
    s3.put_object(Bucket=bucket, Key="raw/tiny.csv", Body=b"a\n1\n")   # planned, but a skip
    s3.put_object(Bucket=bucket, Key="raw/notes.txt", Body=b"x" * 4096)  # matches no policy
    s3.put_object(Bucket=bucket, Key="tmp/old.bin", Body=b"x" * 4096)    # expiry: not the job's


def invoke_cli(*args: str):
    from leanlake.cli import app

    return CliRunner().invoke(app, list(args))


def stubbed_s3control(calls: list):
    """A real S3 Control client whose requests botocore's Stubber answers (moto does not serve S3 Control)."""
    client = boto3.client("s3control", region_name="us-east-1")
    stubber = Stubber(client)
    stubber.activate()
    calls.append(stubber)
    return client, stubber


def test_the_manifest_lists_the_plans_acting_decisions_url_encoded_and_the_job_request_is_checked(s3, bucket, tmp_path, monkeypatch):
    from chalicelib.actions import REGISTRY
    import leanlake.batch as jobs

    seed(s3, bucket)
    policies = policy_file(tmp_path, bucket)
    planned = json.loads(invoke_cli("plan", "--policies", str(policies), "--bucket", bucket, "--json").stdout)["decisions"]
    acting = [d["key"] for d in planned if d["key"] and d["action"] in REGISTRY and REGISTRY[d["action"]].scope == "object"]
    assert sorted(acting) == ["raw/a.csv", "raw/b c+d,é.csv", "raw/deep/e.csv"]
    assert any(d["action"] == "lifecycle" for d in planned) and any(d["key"] == "raw/tiny.csv" for d in planned)

    made: list = []

    def s3control(region: str):
        assert region == "us-east-1"
        client, stubber = stubbed_s3control(made)
        manifest = s3.head_object(Bucket=bucket, Key="_leanlake/batch/r1/manifest.csv")
        stubber.add_response("create_job", {"JobId": "job-0001"}, {
            "AccountId": "123456789012",
            "ConfirmationRequired": True,
            "Operation": {"LambdaInvoke": {"FunctionArn": FUNCTION_ARN, "InvocationSchemaVersion": "2.0", "UserArguments": {"run": "r1"}}},
            "Report": {"Bucket": f"arn:aws:s3:::{bucket}", "Format": "Report_CSV_20180820", "Enabled": True,
                       "Prefix": "_leanlake/batch/r1", "ReportScope": "AllTasks"},
            "ClientRequestToken": jobs.request_token("r1", bucket),
            "Manifest": {"Spec": {"Format": "S3BatchOperations_CSV_20180820", "Fields": ["Bucket", "Key"]},
                         "Location": {"ObjectArn": f"arn:aws:s3:::{bucket}/_leanlake/batch/r1/manifest.csv",
                                      "ETag": manifest["ETag"].strip('"')}},
            "Description": f"leanlake run r1: 3 objects in s3://{bucket}",
            "Priority": 10,
            "RoleArn": ROLE_ARN,
        })
        return client

    monkeypatch.setattr(jobs, "s3control_client", s3control)
    result = invoke_cli("batch", "--policies", str(policies), "--bucket", bucket, "--run", "r1", "--role-arn", ROLE_ARN,
                        "--chalice-dir", str(chalice_dir(tmp_path)), "--json")
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert document == {"run": "r1", "dry_run": False, "jobs": [
        {"bucket": bucket, "objects": 3, "manifest": f"s3://{bucket}/_leanlake/batch/r1/manifest.csv", "job_id": "job-0001"}]}
    [stubber] = made
    stubber.assert_no_pending_responses()
    lines = s3.get_object(Bucket=bucket, Key="_leanlake/batch/r1/manifest.csv")["Body"].read().decode().splitlines()
    assert lines == [f"{bucket},{quote(key)}" for key in acting]
    assert f"{bucket},raw/b%20c%2Bd%2C%C3%A9.csv" in lines   # one field per column: no bare comma, plus or space


def test_dry_run_writes_the_manifest_prints_the_request_and_calls_no_s3_control(s3, bucket, tmp_path, monkeypatch):
    import leanlake.batch as jobs

    seed(s3, bucket)
    made: list = []
    monkeypatch.setattr(jobs, "s3control_client", lambda region: stubbed_s3control(made)[0])
    result = invoke_cli("batch", "--policies", str(policy_file(tmp_path, bucket)), "--run", "dry", "--role-arn", ROLE_ARN,
                        "--function-arn", FUNCTION_ARN, "--dry-run", "--yes", "--json")   # the account: STS, on moto
    assert result.exit_code == 0, result.output
    [job] = json.loads(result.stdout)["jobs"]
    assert made == [] and job["job_id"] is None and job["objects"] == 3
    request = job["request"]
    assert request["AccountId"] == "123456789012" and request["ConfirmationRequired"] is False
    written = s3.head_object(Bucket=bucket, Key="_leanlake/batch/dry/manifest.csv")
    assert request["Manifest"]["Location"]["ETag"] == written["ETag"].strip('"')
    # the printed request is one CreateJob accepts: botocore validates it against the S3 Control model
    client, stubber = stubbed_s3control([])
    stubber.add_response("create_job", {"JobId": "job-1"}, request)
    assert client.create_job(**request)["JobId"] == "job-1"


def test_human_output_names_the_job_and_the_manifest(s3, bucket, tmp_path, monkeypatch):
    import leanlake.batch as jobs

    seed(s3, bucket)

    def s3control(region: str):
        client, stubber = stubbed_s3control([])
        stubber.add_response("create_job", {"JobId": "job-0002"})
        return client

    monkeypatch.setattr(jobs, "s3control_client", s3control)
    result = invoke_cli("batch", "--policies", str(policy_file(tmp_path, bucket)), "--run", "h1", "--role-arn", ROLE_ARN,
                        "--function-arn", FUNCTION_ARN, "--account-id", "111122223333")
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == (f"s3://{bucket}: job job-0002, 3 objects in s3://{bucket}/_leanlake/batch/h1/manifest.csv "
                                     "(confirm it in the S3 console, or create it with --yes)")


def test_a_run_id_makes_one_manifest_per_bucket_never_two(s3, bucket, tmp_path, monkeypatch):
    import leanlake.batch as jobs

    seed(s3, bucket)
    monkeypatch.setattr(jobs, "s3control_client", lambda region: pytest.fail("no job may be created"))
    args = ("batch", "--policies", str(policy_file(tmp_path, bucket)), "--run", "once", "--role-arn", ROLE_ARN,
            "--function-arn", FUNCTION_ARN, "--account-id", "111122223333", "--dry-run")
    assert invoke_cli(*args).exit_code == 0
    again = invoke_cli(*args)
    assert again.exit_code == 1
    assert again.output.strip().splitlines()[-1] == (f"leanlake: s3://{bucket}: _leanlake/batch/once/manifest.csv exists already: "
                                                     "run once has its manifest; give another --run")


def test_errors_are_one_line_naming_the_bucket_or_the_option(s3, bucket, tmp_path, monkeypatch):
    import leanlake.batch as jobs

    seed(s3, bucket)
    policies = str(policy_file(tmp_path, bucket))

    def refusing(region: str):
        client, stubber = stubbed_s3control([])
        stubber.add_client_error("create_job", "AccessDenied", "not authorized to perform iam:PassRole", http_status_code=403)
        return client

    monkeypatch.setattr(jobs, "s3control_client", refusing)
    denied = invoke_cli("batch", "--policies", policies, "--role-arn", ROLE_ARN, "--function-arn", FUNCTION_ARN, "--account-id", "1")
    assert denied.exit_code == 1
    assert denied.output.strip() == f"leanlake: s3://{bucket}: AccessDenied: not authorized to perform iam:PassRole"

    no_state = invoke_cli("batch", "--policies", policies, "--role-arn", ROLE_ARN, "--chalice-dir", str(tmp_path / "nowhere"))
    assert no_state.exit_code == 1 and no_state.output.startswith("leanlake: --function-arn: ")
    assert "deploy the stage first" in no_state.output and len(no_state.output.strip().splitlines()) == 1

    bad_run = invoke_cli("batch", "--policies", policies, "--role-arn", ROLE_ARN, "--function-arn", FUNCTION_ARN, "--run", "a/b")
    assert bad_run.exit_code == 2 and bad_run.output.strip() == "leanlake: --run: run id 'a/b' must be 1 to 48 letters, digits, '-' or '_'"

    gone = invoke_cli("batch", "--policies", str(policy_file(tmp_path, "no-such-bucket-here")), "--role-arn", ROLE_ARN,
                      "--function-arn", FUNCTION_ARN, "--account-id", "1")
    assert gone.exit_code == 1 and gone.output.strip().startswith("leanlake: s3://no-such-bucket-here: NoSuchBucket")


def test_a_bucket_with_nothing_to_do_gets_no_job(s3, bucket, tmp_path, monkeypatch):
    import leanlake.batch as jobs

    s3.put_object(Bucket=bucket, Key="raw/tiny.csv", Body=b"a\n1\n")
    monkeypatch.setattr(jobs, "s3control_client", lambda region: pytest.fail("no job for nothing"))
    result = invoke_cli("batch", "--policies", str(policy_file(tmp_path, bucket)), "--role-arn", ROLE_ARN,
                        "--function-arn", FUNCTION_ARN, "--account-id", "1", "--json")
    assert result.exit_code == 0, result.output
    assert [(j["bucket"], j["objects"], j["job_id"]) for j in json.loads(result.stdout)["jobs"]] == [(bucket, 0, None)]
    assert "Contents" not in s3.list_objects_v2(Bucket=bucket, Prefix="_leanlake/batch/")


# --- the job's role ---------------------------------------------------------------------------------------

def test_the_batch_role_reads_manifests_writes_reports_and_invokes_batch_task_only():
    from leanlake.deploy.iam import batch_role_documents, least_privilege_problems
    from leanlake.deploy.project import ChaliceConfig

    ps = PolicySet.from_dicts([
        {"name": "a", "bucket": ["lake-one", "lake-two"], "actions": [{"convert": {}}]},
        {"name": "b", "bucket": "lake-three", "actions": [{"expire": {"days": 30}}]},
    ])
    config = ChaliceConfig({"app_name": "leanlake", "stages": {"prod": {}}})
    docs = batch_role_documents(ps, config, "prod")
    assert docs["trust"] == {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Principal": {"Service": "batchoperations.s3.amazonaws.com"}, "Action": "sts:AssumeRole"}]}
    runs = [f"arn:aws:s3:::{b}/_leanlake/batch/*" for b in ("lake-one", "lake-two", "lake-three")]
    grants = {s["Sid"]: (s["Action"], s["Resource"]) for s in docs["permissions"]["Statement"]}
    assert grants == {
        "ReadManifests": (["s3:GetObject", "s3:GetObjectVersion"], runs),
        "WriteReports": (["s3:PutObject"], runs),
        "InvokeBatchTask": (["lambda:InvokeFunction"], ["arn:aws:lambda:*:*:function:leanlake-prod-batch_task"]),
    }
    assert least_privilege_problems(docs["permissions"]) == []


def test_iam_batch_role_prints_the_documents(tmp_path):
    from leanlake.deploy.iam import batch_role_documents
    from leanlake.deploy.project import ChaliceConfig
    from chalicelib.policy import load_policies

    policies = policy_file(tmp_path, "ml-lake")
    directory = chalice_dir(tmp_path)
    result = invoke_cli("iam", "--policies", str(policies), "--chalice-dir", str(directory), "--stage", "dev", "--batch-role")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == batch_role_documents(load_policies([policies]), ChaliceConfig.load(directory), "dev")
    clash = invoke_cli("iam", "--policies", str(policies), "--chalice-dir", str(directory), "--batch-role", "--write")
    assert clash.exit_code == 2 and "--batch-role" in clash.output


def test_a_manifest_larger_than_a_part_streams_as_a_multipart_upload(s3, bucket):
    from leanlake.batch import write_manifest

    keys = (f"raw/{i:07d}/a file {i}.csv" for i in range(200_000))
    manifest = write_manifest(s3, bucket, "big", keys)
    body = s3.get_object(Bucket=bucket, Key=manifest.key)["Body"].read().decode()
    lines = body.splitlines()
    assert len(body) > 8 * 2**20 and manifest.etag.endswith("-2")   # two parts: nothing held whole, on disk or in memory
    assert manifest.objects == len(lines) == 200_000
    assert lines[0] == f"{bucket},raw/0000000/a%20file%200.csv" and lines[-1] == f"{bucket},raw/0199999/a%20file%20199999.csv"
    assert manifest.etag == s3.head_object(Bucket=bucket, Key=manifest.key)["ETag"].strip('"')


def test_the_lambda_entry_point_loads_the_deployed_policies_and_answers(s3, bucket, tmp_path, monkeypatch):
    """What the ``batch_task`` function runs: the deployment's policies ($LEANLAKE_POLICIES), its own run and ledger."""
    from chalicelib import runtime
    from chalicelib.batch import handle_batch_invocation

    monkeypatch.setenv("LEANLAKE_POLICIES", str(policy_file(tmp_path, bucket)))
    runtime.policies.cache_clear()
    try:
        s3.put_object(Bucket=bucket, Key="raw/a.csv", Body=csv_body())
        response = handle_batch_invocation(invocation(bucket, "raw/a.csv", "raw/none.csv"))
    finally:
        runtime.policies.cache_clear()
    assert response["invocationId"] == "inv-2.0" and results(response) == [
        ("Succeeded", f"s3://{bucket}/raw/a.csv: convert: wrote s3://{bucket}/raw/a.parquet; source: kept"),
        ("PermanentFailure", f"s3://{bucket}/raw/none.csv: no such object"),
    ]
