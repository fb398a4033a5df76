"""Lifecycle compilation and merging: leanlake's rules by ID, everyone else's rules untouched."""

from __future__ import annotations

import copy

import pytest
from pydantic import ValidationError

from chalicelib.actions import REGISTRY
from chalicelib.actions.intelligent_tiering import configuration, configuration_id, configurations
from chalicelib.decision import Decision
from chalicelib.actions.lifecycle_rules import (
    LifecycleError,
    apply_to_bucket,
    compile_rules,
    lifecycle_warnings,
    merge,
    owned_rule_ids,
    put_arguments,
)
from chalicelib.plan import plan_buckets
from chalicelib.policy import PolicySet, Settings

BUCKET = "ml-lake"
USER_RULE = {"ID": "user-archive", "Status": "Enabled", "Filter": {"Prefix": "archive/"},
             "Transitions": [{"Days": 365, "StorageClass": "GLACIER"}]}


def policies(*entries, **settings):
    return PolicySet.from_dicts(entries, Settings(**settings) if settings else None)


def policy(name="p", filters=None, actions=None, bucket=BUCKET):
    return {"name": name, "bucket": bucket, "filters": filters or {}, "actions": actions or [{"expire": {"days": 30}}]}


CHECKPOINTS = policy("checkpoints", {"prefix": ["checkpoints/", "ckpt/"]},
                     [{"transition": [{"days": 30, "class": "GLACIER_IR"}, {"days": 180, "class": "DEEP_ARCHIVE"}]},
                      {"expire": {"days": 730}}])


# --- compile_rules ------------------------------------------------------------------------------------------

def test_one_rule_per_prefix_with_ids_and_status():
    rules = compile_rules(policies(CHECKPOINTS), BUCKET)
    assert [r["ID"] for r in rules] == ["leanlake-checkpoints-1", "leanlake-checkpoints-2"]
    assert all(r["Status"] == "Enabled" for r in rules)
    assert [r["Filter"] for r in rules] == [{"Prefix": "checkpoints/"}, {"Prefix": "ckpt/"}]
    assert rules[0]["Transitions"] == [{"Days": 30, "StorageClass": "GLACIER_IR"}, {"Days": 180, "StorageClass": "DEEP_ARCHIVE"}]
    assert rules[0]["Expiration"] == {"Days": 730}


def test_only_the_bucket_s_policies_compile():
    ps = policies(CHECKPOINTS, policy("elsewhere", {"prefix": "x/"}, bucket="other-bucket"))
    assert [r["ID"] for r in compile_rules(ps, "other-bucket")] == ["leanlake-elsewhere-1"]


def test_suffix_filters_and_object_actions_do_not_compile():
    ps = policies(policy("scratch", {"prefix": "tmp/", "suffix": ".tmp"}),
                  policy("conv", {"prefix": "raw/"}, [{"convert": {}}]),
                  policy("sc", {"prefix": "f/"}, [{"storage_class": "ONEZONE_IA"}]))
    # convert itself does not compile; only the abort rule for its destination ({dir}… : under raw/) does
    assert compile_rules(ps, BUCKET) == [{"ID": "leanlake-conv-1", "Status": "Enabled", "Filter": {"Prefix": "raw/"},
                                          "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 7}}]


def test_filters_tags_and_sizes():
    ps = policies(
        policy("a", {"prefix": "d/", "tags": {"team": "ml", "keep": "no"}, "size": {"min": "1 KiB", "max": "1 MiB"}}),
        policy("b", {"prefix": "b/", "tags": {"team": "ml"}}),
        policy("c", {"prefix": "c/", "size": {"min": "256 KiB"}}),
        policy("d", {"prefix": "e/"}),
    )
    a, b, c, d = compile_rules(ps, BUCKET)
    assert a["Filter"] == {"And": {"Prefix": "d/", "Tags": [{"Key": "keep", "Value": "no"}, {"Key": "team", "Value": "ml"}],
                                   "ObjectSizeGreaterThan": 1023, "ObjectSizeLessThan": 1024 * 1024 + 1}}
    assert b["Filter"] == {"And": {"Prefix": "b/", "Tags": [{"Key": "team", "Value": "ml"}]}}
    assert c["Filter"] == {"And": {"Prefix": "c/", "ObjectSizeGreaterThan": 256 * 1024 - 1}}
    assert d["Filter"] == {"Prefix": "e/"}


#: Rule keys that act on objects (current or noncurrent); an AbortIncompleteMultipartUpload rule acts on none.
OBJECT_RULE_KEYS = {"Expiration", "Transitions", "NoncurrentVersionExpiration", "NoncurrentVersionTransitions"}
EVERY_LIFECYCLE_ACTION = [{"transition": [{"days": 30, "class": "GLACIER_IR"}]}, {"expire": {"days": 120, "versions": "all"}},
                          {"noncurrent": {"days": 30}}, {"abort_multipart": 2}]


@pytest.mark.parametrize("filters", [
    {}, {"tags": {"team": "ml"}}, {"size": {"min": "1 MiB"}}, {"prefix": "_"}, {"prefix": "_lean"},
    {"prefix": "_leanlake"}, {"prefix": ["raw/", "_l"]},
])
def test_no_rule_expires_or_transitions_under_the_reserved_prefix(filters):
    """Lifecycle can't exclude _leanlake/: only the abort-multipart rules of such a policy compile."""
    rules = compile_rules(policies(policy("wide", filters, EVERY_LIFECYCLE_ACTION)), BUCKET)
    prefixes = filters.get("prefix") or [""]
    prefixes = [prefixes] if isinstance(prefixes, str) else prefixes
    assert rules == [{"ID": f"leanlake-wide-{n}", "Status": "Enabled", "Filter": {"Prefix": prefix},
                      "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 2}}
                     for n, prefix in enumerate(prefixes, start=1)]
    assert compile_rules(policies(policy("wide", filters, [{"expire": {"days": 7}}])), BUCKET) == []
    assert compile_rules(policies(policy("wide", filters, [{"noncurrent": {"days": 7}}])), BUCKET) == []


@pytest.mark.parametrize("prefix", ["raw/", "_leanlake-old/", "_x/", "leanlake/"])
def test_prefixes_beside_the_reserved_one_still_compile(prefix):
    [rule] = compile_rules(policies(policy("near", {"prefix": prefix}, EVERY_LIFECYCLE_ACTION)), BUCKET)
    assert rule["Filter"] == {"Prefix": prefix} and OBJECT_RULE_KEYS & rule.keys() == {
        "Expiration", "Transitions", "NoncurrentVersionExpiration"}


def test_expire_versions_all_removes_noncurrent_versions():
    [rule] = compile_rules(policies(policy("p", {"prefix": "t/"}, [{"expire": {"days": 7, "versions": "all"}}])), BUCKET)
    assert rule["Expiration"] == {"Days": 7}
    assert rule["NoncurrentVersionExpiration"] == {"NoncurrentDays": 1}
    assert "ExpiredObjectDeleteMarker" not in rule["Expiration"]  # S3 refuses it with Days; Days cleans markers itself
    [marker] = compile_rules(policies(policy("p", {"prefix": "t/"}, [{"expire": {"days": 7}}])), BUCKET)
    assert "NoncurrentVersionExpiration" not in marker


def test_noncurrent_and_abort_multipart():
    [rule] = compile_rules(policies(policy("p", {"prefix": "t/"}, [
        {"expire": {"days": 7, "versions": "all"}}, {"noncurrent": {"days": 30, "keep": 3}}, {"abort_multipart": 2}])), BUCKET)
    assert rule["NoncurrentVersionExpiration"] == {"NoncurrentDays": 30, "NewerNoncurrentVersions": 3}
    assert rule["AbortIncompleteMultipartUpload"] == {"DaysAfterInitiation": 2}


def test_abort_multipart_with_tags_gets_a_prefix_only_rule():
    rules = compile_rules(policies(policy("p", {"prefix": "t/", "tags": {"a": "b"}},
                                          [{"expire": {"days": 7}}, {"abort_multipart": {"days": 2}}])), BUCKET)
    assert [r["ID"] for r in rules] == ["leanlake-p-1", "leanlake-p-2"]
    assert "AbortIncompleteMultipartUpload" not in rules[0]
    assert rules[1] == {"ID": "leanlake-p-2", "Status": "Enabled", "Filter": {"Prefix": "t/"},
                        "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 2}}
    only = compile_rules(policies(policy("q", {"prefix": "u/", "tags": {"a": "b"}}, [{"abort_multipart": 1}])), BUCKET)
    assert [r["ID"] for r in only] == ["leanlake-q-1"]


def test_expire_must_come_after_the_last_transition():
    with pytest.raises(ValidationError, match="after the last transition"):
        policies(policy("p", {"prefix": "t/"}, [{"transition": [{"days": 30, "class": "GLACIER_IR"}]}, {"expire": {"days": 30}}]))


def test_new_actions_validate():
    with pytest.raises(ValidationError):
        REGISTRY["noncurrent"].model_validate({"days": 0})
    with pytest.raises(ValidationError):
        REGISTRY["noncurrent"].model_validate({"days": 1, "keep": 101})
    with pytest.raises(ValidationError):
        REGISTRY["abort_multipart"].model_validate({"days": 0})


# --- merge ------------------------------------------------------------------------------------------------------

def test_merge_keeps_other_rules_exactly_and_replaces_ours_by_id():
    user_rule = copy.deepcopy(USER_RULE)
    old_ours = {"ID": "leanlake-gone-1", "Status": "Enabled", "Filter": {"Prefix": "gone/"}, "Expiration": {"Days": 1}}
    stale = {"ID": "leanlake-checkpoints-1", "Status": "Enabled", "Filter": {"Prefix": "old/"}, "Expiration": {"Days": 2}}
    existing = {"Rules": [old_ours, user_rule, stale], "TransitionDefaultMinimumObjectSize": "varies_by_storage_class",
                "ResponseMetadata": {"HTTPStatusCode": 200}}
    ours = compile_rules(policies(CHECKPOINTS), BUCKET)
    merged = merge(existing, ours)
    assert merged["Rules"][0] == USER_RULE
    assert merged["Rules"][1:] == ours
    assert merged["TransitionDefaultMinimumObjectSize"] == "varies_by_storage_class"
    assert "ResponseMetadata" not in merged
    assert existing["Rules"][1] == USER_RULE  # input untouched


def test_merge_with_nothing_and_removal_of_a_policy():
    assert merge(None, []) == {"Rules": []}
    ours = compile_rules(policies(CHECKPOINTS), BUCKET)
    first = merge({"Rules": [USER_RULE]}, ours)
    assert merge(first, []) == {"Rules": [USER_RULE]}
    assert owned_rule_ids(first) == ["leanlake-checkpoints-1", "leanlake-checkpoints-2"]


def test_merge_refuses_more_than_1000_rules_and_foreign_ids():
    theirs = [{"ID": f"user-{i}", "Status": "Enabled", "Filter": {"Prefix": f"{i}/"}, "Expiration": {"Days": 1}} for i in range(999)]
    ours = compile_rules(policies(CHECKPOINTS), BUCKET)
    with pytest.raises(LifecycleError, match="at most 1000"):
        merge({"Rules": theirs}, ours)
    assert len(merge({"Rules": theirs}, ours[:1])["Rules"]) == 1000
    with pytest.raises(LifecycleError):
        merge(None, [{"ID": "mine", "Status": "Enabled"}])
    with pytest.raises(LifecycleError):
        merge(None, ours + ours)


def test_put_arguments():
    kwargs = put_arguments(BUCKET, {"Rules": [USER_RULE], "TransitionDefaultMinimumObjectSize": "all_storage_classes_128K"})
    assert kwargs == {"Bucket": BUCKET, "LifecycleConfiguration": {"Rules": [USER_RULE]},
                      "TransitionDefaultMinimumObjectSize": "all_storage_classes_128K"}


# --- warnings ---------------------------------------------------------------------------------------------------

def test_warnings_for_money_losing_rules():
    warnings = lifecycle_warnings(policies(
        policy("deep", {"prefix": "d/"}, [{"transition": [{"days": 30, "class": "DEEP_ARCHIVE"}]}]),
        policy("early", {"prefix": "e/", "size": {"min": "1 MiB"}},
               [{"transition": [{"days": 30, "class": "GLACIER_IR"}]}, {"expire": {"days": 60}}]),
        policy("fine", {"prefix": "f/", "size": {"min": "1 MiB"}}, [{"transition": [{"days": 30, "class": "GLACIER_IR"}]}]),
        policy("sfx", {"prefix": "s/", "suffix": ".x"}, [{"noncurrent": {"days": 3}}]),
    ))
    assert any("'deep'" in w and "loses money for objects under" in w and "DEEP_ARCHIVE" in w for w in warnings)
    assert any("'early'" in w and "90-day minimum" in w for w in warnings)
    assert not any("'fine'" in w for w in warnings)
    assert any("'sfx'" in w and "not compiled" in w for w in warnings)


def test_warnings_say_why_a_policy_reaching_the_reserved_prefix_runs_in_the_sweep():
    warnings = lifecycle_warnings(policies(
        policy("everything", {}, [{"expire": {"days": 400}}]),
        policy("underscored", {"prefix": ["a/", "_"]}, [{"transition": [{"days": 30, "class": "GLACIER_IR"}]},
                                                        {"expire": {"days": 400}}, {"noncurrent": {"days": 3}}]),
        policy("uploads", {}, [{"abort_multipart": 2}]),
        policy("fine", {"prefix": "f/"}, [{"expire": {"days": 400}}, {"noncurrent": {"days": 3}}]),
    ))
    assert [w for w in warnings if "'everything'" in w] == [
        "policy 'everything': expire run in the sweep, not in Lifecycle: S3 Lifecycle can't exclude leanlake's audit "
        "trail under _leanlake/ from a policy without a prefix; give the policy prefixes that _leanlake/ does not "
        "start with to use Lifecycle"]
    underscored = [w for w in warnings if "'underscored'" in w and "_leanlake/" in w]
    assert len(underscored) == 2
    assert "transition and expire run in the sweep" in underscored[0] and "from prefix '_';" in underscored[0]
    assert underscored[1].startswith("policy 'underscored': noncurrent is not compiled: S3 Lifecycle can't exclude")
    assert not any("'uploads'" in w or "'fine'" in w for w in warnings)


def test_warning_when_a_staircase_leaves_a_class_too_early():
    warnings = lifecycle_warnings(policies(policy("s", {"prefix": "s/", "size": {"min": "10 MiB"}},
                                                  [{"transition": [{"days": 30, "class": "GLACIER_IR"}, {"days": 60, "class": "DEEP_ARCHIVE"}]}])))
    assert any("leave GLACIER_IR after 30 days" in w for w in warnings)


# --- Intelligent-Tiering --------------------------------------------------------------------------------------

def _it_policy(filters, **config):
    return PolicySet.from_dicts([policy("cold", filters, [{"intelligent_tiering": config}])]).named("cold").policy


def test_intelligent_tiering_configuration_shapes():
    p = _it_policy({"prefix": "a/", "tags": {"k": "v"}}, deep_archive_days=180)
    assert configuration(p) == {"Id": "leanlake-cold", "Filter": {"And": {"Prefix": "a/", "Tags": [{"Key": "k", "Value": "v"}]}},
                                "Status": "Enabled", "Tierings": [{"Days": 180, "AccessTier": "DEEP_ARCHIVE_ACCESS"}]}
    several = configurations(_it_policy({"prefix": ["a/", "b/"]}, archive_days=90))
    assert [c["Id"] for c in several] == ["leanlake-cold-1", "leanlake-cold-2"]
    with pytest.raises(ValueError, match="suffix"):
        configurations(_it_policy({"prefix": "a/", "suffix": ".x"}, archive_days=90))
    assert len(configuration_id("x" * 63)) == 64


def test_intelligent_tiering_validation_and_permissions():
    cls = REGISTRY["intelligent_tiering"]
    assert cls.scope == "bucket"
    from chalicelib.actions.permissions import needs  # the deployed policy grants what these requests need
    assert needs(cls.s3_calls).bucket == {"s3:PutIntelligentTieringConfiguration"}
    for bad in ({}, {"archive_days": 89}, {"deep_archive_days": 179}, {"archive_days": 200, "deep_archive_days": 190}):
        with pytest.raises(ValidationError):
            cls.model_validate(bad)


# --- Against a local S3 (moto server on 127.0.0.1) ------------------------------------------------------------

@pytest.fixture(scope="module")
def s3():
    boto3 = pytest.importorskip("boto3")
    server_mod = pytest.importorskip("moto.server")
    server = server_mod.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    client = boto3.client("s3", endpoint_url=f"http://{host}:{port}", region_name="us-east-1",
                          aws_access_key_id="testing", aws_secret_access_key="testing")
    yield client
    server.stop()


def test_users_rule_survives_merge_and_put(s3):
    s3.create_bucket(Bucket=BUCKET)
    s3.put_bucket_lifecycle_configuration(Bucket=BUCKET, LifecycleConfiguration={"Rules": [USER_RULE]})
    users_rule = s3.get_bucket_lifecycle_configuration(Bucket=BUCKET)["Rules"][0]  # as S3 stores it
    ps = policies(CHECKPOINTS)
    decision = Decision(BUCKET, None, "checkpoints", "lifecycle", "test")
    assert "written" in apply_to_bucket(s3, decision, ps)
    rules = s3.get_bucket_lifecycle_configuration(Bucket=BUCKET)["Rules"]
    assert [r["ID"] for r in rules] == ["user-archive", "leanlake-checkpoints-1", "leanlake-checkpoints-2"]
    assert rules[0] == users_rule
    assert rules[1]["Transitions"] == [{"Days": 30, "StorageClass": "GLACIER_IR"}, {"Days": 180, "StorageClass": "DEEP_ARCHIVE"}]
    assert apply_to_bucket(s3, decision, ps).startswith("Lifecycle unchanged")
    # the policy is gone: its rules go, the user's rule stays
    assert "written" in apply_to_bucket(s3, decision, policies(policy("other", {"prefix": "x/"}, [{"convert": {}}])))
    assert s3.get_bucket_lifecycle_configuration(Bucket=BUCKET)["Rules"] == [users_rule, {  # and convert's destination rule
        "ID": "leanlake-other-1", "Status": "Enabled", "Filter": {"Prefix": "x/"}, "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 7}}]


def test_size_filters_put_to_local_s3(s3):
    """moto drops ObjectSizeGreaterThan/LessThan on the round trip (aws-local-facts.md); the put itself is accepted."""
    s3.create_bucket(Bucket="sized-bucket")
    ps = policies(policy("sized", {"prefix": "d/", "size": {"min": "1 MiB"}}, [{"expire": {"days": 9}}], bucket="sized-bucket"))
    apply_to_bucket(s3, Decision("sized-bucket", None, "sized", "lifecycle", "test"), ps)
    [rule] = s3.get_bucket_lifecycle_configuration(Bucket="sized-bucket")["Rules"]
    assert rule["ID"] == "leanlake-sized-1" and rule["Expiration"] == {"Days": 9}


def test_intelligent_tiering_put_to_local_s3(s3):
    s3.create_bucket(Bucket="tiered-bucket")
    ps = PolicySet.from_dicts([policy("cold", {"prefix": "a/"}, [{"intelligent_tiering": {"archive_days": 90}}], bucket="tiered-bucket")])
    [decision] = plan_buckets(ps)
    message = apply_to_bucket(s3, decision, ps)
    assert "leanlake-cold" in message
    # botocore validated the request shape and moto accepted it; moto 5.2.5 returns an empty
    # configuration on GET, so the body is checked with a recording client below.
    s3.get_bucket_intelligent_tiering_configuration(Bucket="tiered-bucket", Id="leanlake-cold")


class _Recorder:
    def __init__(self):
        self.calls = []

    def put_bucket_intelligent_tiering_configuration(self, **kwargs):
        self.calls.append(kwargs)


def test_intelligent_tiering_put_body():
    ps = PolicySet.from_dicts([policy("cold", {"prefix": "a/"}, [{"intelligent_tiering": {"archive_days": 90}}])])
    client = _Recorder()
    [decision] = plan_buckets(ps)
    apply_to_bucket(client, decision, ps)
    assert client.calls == [{"Bucket": BUCKET, "Id": "leanlake-cold", "IntelligentTieringConfiguration": {
        "Id": "leanlake-cold", "Filter": {"Prefix": "a/"}, "Status": "Enabled",
        "Tierings": [{"Days": 90, "AccessTier": "ARCHIVE_ACCESS"}]}}]


# --- abort rules for writers' destinations --------------------------------------------------------------------

def abort_rule(rule_id: str, prefix: str, days: int = 7) -> dict:
    return {"ID": rule_id, "Status": "Enabled", "Filter": {"Prefix": prefix},
            "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": days}}


def test_a_writer_gets_an_abort_rule_for_its_destination_whatever_its_source_filters():
    ps = policies(policy("tables", {"prefix": "raw/", "suffix": ".csv", "tags": {"t": "1"}},
                         [{"convert": {"destination": "curated/{rel_dir}{stem}.parquet"}}]),
                  policy("logs", {"prefix": ["logs/", "app/"]}, [{"recompress": {}}]),
                  policy("flat", {"prefix": "in/"}, [{"convert": {"destination": "{rel_dir}{stem}.parquet"}}]))
    assert compile_rules(ps, BUCKET) == [
        abort_rule("leanlake-tables-1", "curated/"),   # the literal text before the first variable
        abort_rule("leanlake-logs-1", "logs/"),        # {dir}…: under the policy's own prefixes
        abort_rule("leanlake-logs-2", "app/"),
        abort_rule("leanlake-flat-1", ""),             # {rel_dir} drops the prefix: anywhere in the bucket
    ]


def test_the_destination_rule_follows_the_policys_rules_and_its_abort_days():
    ps = policies(policy("p", {"prefix": "raw/"}, [{"convert": {"destination": "curated/{stem}.parquet"}},
                                                  {"expire": {"days": 30}}, {"abort_multipart": {"days": 2}}]))
    rules = compile_rules(ps, BUCKET)
    assert [r["ID"] for r in rules] == ["leanlake-p-1", "leanlake-p-2"]
    assert rules[0]["AbortIncompleteMultipartUpload"] == {"DaysAfterInitiation": 2}  # the policy's own, on raw/
    assert rules[1] == abort_rule("leanlake-p-2", "curated/", days=2)


def test_a_destination_the_policys_abort_rule_covers_gets_no_second_rule():
    ps = policies(policy("p", {"prefix": "raw/"}, [{"convert": {}}, {"abort_multipart": {"days": 3}}]))
    assert compile_rules(ps, BUCKET) == [abort_rule("leanlake-p-1", "raw/", days=3)]
    nested = policies(policy("q", {"prefix": ["raw/", "raw/deep/"]}, [{"convert": {}}]))
    assert compile_rules(nested, BUCKET) == [abort_rule("leanlake-q-1", "raw/")]


def test_a_writer_only_bucket_gets_a_lifecycle_decision_that_applies_on_moto(s3):
    s3.create_bucket(Bucket="writer-lake")
    ps = policies(policy("tables", {"prefix": "raw/", "suffix": ".csv"},
                         [{"convert": {"destination": "curated/{rel_dir}{stem}.parquet"}}], bucket="writer-lake"))
    (decision,) = plan_buckets(ps, ["writer-lake"])
    assert decision.action == "lifecycle" and decision.policy == "tables"
    assert decision.reason == "Lifecycle rule(s) leanlake-tables-1"  # no note about the sweep: it has no transition
    assert "written" in apply_to_bucket(s3, decision, ps)
    (rule,) = s3.get_bucket_lifecycle_configuration(Bucket="writer-lake")["Rules"]
    assert rule["ID"] == "leanlake-tables-1" and rule["AbortIncompleteMultipartUpload"] == {"DaysAfterInitiation": 7}
    assert rule["Filter"] == {"Prefix": "curated/"}
    assert apply_to_bucket(s3, decision, ps).startswith("Lifecycle unchanged")
