"""The policy language: the example validates, every kind of mistake is reported as file:line."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from chalicelib.policy import PolicyError, PolicySet, load_policies
from chalicelib.policy.templates import KeyParts, render
from chalicelib.policy.units import parse_size
from chalicelib.refs import ObjectRef

ROOT = Path(__file__).resolve().parents[1]


def problems(tmp_path: Path, text: str) -> list[str]:
    path = tmp_path / "p.yaml"
    path.write_text(textwrap.dedent(text))
    with pytest.raises(PolicyError) as info:
        load_policies([path])
    return [str(p) for p in info.value.problems]


def test_shipped_example_validates():
    policies = load_policies([ROOT / "policies"])
    assert {p.name for p in policies.policies} >= {"raw-tables-to-parquet", "logs-to-zstd", "recreatable-features", "checkpoints", "scratch"}
    convert = policies.named("raw-tables-to-parquet").policy.action("convert")
    assert convert.level == 6 and convert.source == "delete"
    assert policies.for_alarm("ml-lake-size-growth")[0].policy.name == "scratch"
    assert policies.named("scratch").settings.horizon_days == 365


def test_demo_policies_validate():
    load_policies([ROOT / "leanlake" / "demo" / "policies.yaml"])


@pytest.mark.parametrize("snippet, line, fragment", [
    ("filters: {prefix: raw/, size: {min: 1 KiX}}", 4, "not a size"),
    ("filters: {prefix: raw/, size: {min: 2 KiB, max: 1 KiB}}", 4, "above max"),
    ("filtres: {prefix: raw/}", 4, "unknown key 'filtres'"),
])
def test_filter_problems_name_file_and_line(tmp_path, snippet, line, fragment):
    found = problems(tmp_path, f"""\
        policies:
          - name: a
            bucket: ml-lake
            {snippet}
            actions: [{{convert: {{}}}}]
        """)
    assert len(found) == 1, found
    assert found[0].startswith(f"{tmp_path / 'p.yaml'}:{line}: ") and fragment in found[0]


def test_every_problem_is_reported_with_its_line(tmp_path):
    found = problems(tmp_path, """\
        policies:
          - name: a
            bucket: ml-lake
            filters: {prefix: raw/}
            actions:
              - convert: {destination: "x/{foo}.parquet", levle: 3}
              - storage_class: WARM
          - name: a
            bucket: ml-lake
            actions: [{expire: {days: 3}}]
          - name: c
            bucket: "ml_lake*"
            actions: [{shrink: {}}]
        """)
    text = "\n".join(found)
    assert ":6: " in text and "unknown variable {foo}" in text
    assert ":6: " in text and "unknown key 'levle'" in text
    assert ":7: " in text and "unknown storage class 'WARM'" in text
    assert ":8: " in text and "duplicate policy name 'a'" in text
    assert ":12: " in text and "not an S3 bucket name" in text
    assert ":13: " in text and "an action is one of" in text


def test_duplicate_names_across_files(tmp_path):
    for name in ("one.yaml", "two.yaml"):
        (tmp_path / name).write_text("policies:\n  - name: same\n    bucket: ml-lake\n    actions: [{expire: {days: 3}}]\n")
    with pytest.raises(PolicyError) as info:
        load_policies([tmp_path])
    assert "two.yaml:2: duplicate policy name 'same'" in str(info.value)


def test_overlapping_converters_are_rejected(tmp_path):
    found = problems(tmp_path, """\
        policies:
          - name: a
            bucket: ml-lake
            filters: {prefix: raw/, suffix: .csv}
            actions: [{convert: {}}]
          - name: b
            bucket: ml-lake
            filters: {prefix: raw/tables/}
            actions: [{recompress: {}}]
          - name: c
            bucket: ml-lake
            filters: {prefix: logs/}
            actions: [{recompress: {}}]
        """)
    assert len(found) == 1 and ":6: " in found[0] and "'b' may convert/recompress the same objects as 'a'" in found[0]


@pytest.mark.parametrize("steps, fragment", [
    ("[{days: 10, class: STANDARD_IA}]", "days >= 30"),
    ("[{days: 90, class: GLACIER}, {days: 120, class: GLACIER_IR}]", "uphill"),
    ("[{days: 30, class: GLACIER_IR}, {days: 30, class: DEEP_ARCHIVE}]", "must increase"),
    ("[{days: 30, class: STANDARD_IA}, {days: 40, class: GLACIER}]", "30 days in STANDARD_IA"),
])
def test_bad_transition_staircases(tmp_path, steps, fragment):
    found = problems(tmp_path, f"""\
        policies:
          - name: a
            bucket: ml-lake
            actions:
              - transition: {steps}
        """)
    assert any(fragment in p for p in found), found


def test_expire_must_come_after_the_last_transition(tmp_path):
    found = problems(tmp_path, """\
        policies:
          - name: a
            bucket: ml-lake
            actions:
              - transition: [{days: 30, class: GLACIER_IR}, {days: 180, class: DEEP_ARCHIVE}]
              - expire: {days: 90}
        """)
    assert found == [f"{tmp_path / 'p.yaml'}:2: policies.0: expire days (90) must be after the last transition (day 180); "
                     "S3 refuses such a Lifecycle rule"]


def test_reserved_prefix_and_yaml_errors(tmp_path):
    found = problems(tmp_path, "policies:\n  - name: a\n    bucket: ml-lake\n    filters: {prefix: _leanlake/x/}\n    actions: [{expire: {days: 1}}]\n")
    assert "reserved for leanlake" in found[0]
    found = problems(tmp_path, "policies:\n  - name: a\n    bucket: [ml-lake\n")
    assert "not valid YAML" in found[0]


def test_sizes():
    assert parse_size("1 KiB") == 1024 and parse_size("20 GiB") == 20 * 1024**3 and parse_size("5MB") == 5_000_000
    with pytest.raises(ValueError):
        parse_size("lots")


@pytest.mark.parametrize("key, prefix, template, expected", [
    ("raw/2024/a.csv.gz", "raw/", "curated/{rel_dir}{stem}.parquet", "curated/2024/a.parquet"),
    ("raw/a.tsv", "raw/", "{dir}{stem}{ext}.parquet", "raw/a.tsv.parquet"),
    ("raw/x/y/b.jsonl", "raw/x", "out/{rel_dir}{name}", "out/y/b.jsonl"),
    ("a b+c.csv", "", "{key}.parquet", "a b+c.csv.parquet"),
])
def test_destination_templates(key, prefix, template, expected):
    assert render(template, KeyParts.of(key, prefix)) == expected


def test_matching_is_pure_and_never_matches_reserved_keys():
    ps = PolicySet.from_dicts([
        {"name": "t", "bucket": "ml-lake", "filters": {"prefix": ["raw/", "in/"], "suffix": ".CSV", "size": {"min": "1 KiB"}},
         "actions": [{"convert": {}}]},
        {"name": "f", "bucket": "ml-lake", "filters": {"tags": {"recreatable": True}}, "actions": [{"storage_class": "ONEZONE_IA"}]},
    ])
    hits = lambda ref: [m.policy.name for m in ps.match(ref)]  # noqa: E731
    assert hits(ObjectRef("ml-lake", "in/a.csv", size=2048, tags={})) == ["t"]
    assert hits(ObjectRef("ml-lake", "in/a.csv", size=10, tags={})) == []
    assert hits(ObjectRef("other", "in/a.csv", size=2048, tags={})) == []
    assert hits(ObjectRef("ml-lake", "x.bin", size=1, tags={"recreatable": "true"})) == ["f"]
    assert hits(ObjectRef("ml-lake", "_leanlake/audit/x.csv", size=2048, tags={"recreatable": "true"})) == []
    assert ps.needs_tags("ml-lake") and not ps.needs_tags("other")


# --- Safe YAML: alias expansion and nesting are bounded -------------------------------------------------

BILLION_LAUGHS = """\
a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]
b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]
c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]
d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]
e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]
f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]
g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]
h: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]
i: &i [*h,*h,*h,*h,*h,*h,*h,*h,*h]
policies: *i
"""


def validate_in_subprocess(path: Path) -> tuple[subprocess.CompletedProcess, float]:
    """``leanlake validate`` in its own process, so a runaway parse is killed after 20 s instead of hanging the suite."""
    started = time.monotonic()
    result = subprocess.run([sys.executable, "-m", "leanlake.cli", "validate", str(path)], capture_output=True,
                            text=True, timeout=20, cwd=ROOT)
    return result, time.monotonic() - started


@pytest.mark.parametrize("name, text, line, fragment", [
    # 9^9 "lol"s from 355 bytes: unbounded, over 20 s and more than a gigabyte of memory before failing.
    ("billion-laughs", BILLION_LAUGHS, 5, "aliases repeat more than 10,000 nodes"),
    # Every alias doubles the one before: 2^40 nodes, each level on its own line.
    ("doubling", "".join(f"l{i}: &l{i} [*l{i - 1}, *l{i - 1}]\n" if i else "l0: &l0 [x]\n" for i in range(41))
     + "policies: *l40\n", 12, "aliases repeat more than 10,000 nodes"),
    # 20,000 nested flow sequences: PyYAML's scanner is quadratic in the depth, its composer recursive.
    ("deep-flow", "policies: " + "[" * 20_000 + "]" * 20_000 + "\n", 1, "nested too deeply"),
    ("deep-block", "policies:\n" + "".join("  " * i + "-\n" for i in range(1, 500)), 101, "nested too deeply"),
])
def test_yaml_bombs_are_refused_quickly_with_file_and_line(tmp_path, name, text, line, fragment):
    path = tmp_path / f"{name}.yaml"
    path.write_text(text)
    result, seconds = validate_in_subprocess(path)
    print(f"{name}: {len(text.encode())} B refused in {seconds:.2f} s")
    assert result.returncode == 1, result.stderr
    [message] = result.stderr.strip().splitlines()
    assert message.startswith(f"{path}:{line}: ") and fragment in message, message


@pytest.mark.parametrize("text, fragment", [
    ("policies: &p [{name: a, bucket: b, actions: *p}]\n", "1: alias refers to the node that contains it"),
    ("policies:\n  ? [a, b]\n  : 1\n", "2: a mapping key must be a plain value"),
    ("policies:\n  - <<: [x]\n", "2: '<<' merges a mapping or a list of mappings"),
    ("x: &a " + "[" * 60 + "]" * 60 + "\npolicies: " + "[" * 60 + "*a" + "]" * 60 + "\n", "2: nested too deeply"),
])
def test_self_referencing_aliases_and_odd_keys_are_problems(tmp_path, text, fragment):
    [found] = problems(tmp_path, text)
    assert found.startswith(f"{tmp_path / 'p.yaml'}:{fragment}"), found


def test_modest_anchors_aliases_and_merge_keys_still_work(tmp_path):
    path = tmp_path / "p.yaml"
    path.write_text(textwrap.dedent("""\
        policies:
          - name: raw
            bucket: ml-lake
            filters: &csv {prefix: raw/, suffix: .csv, size: {min: 1 KiB}}
            actions:
              - convert: &convert {destination: "curated/{rel_dir}{stem}.parquet", source: keep}
          - name: landing
            bucket: ml-lake
            filters:
              <<: *csv
              prefix: landing/
            actions:
              - convert:
                  <<: *convert
                  source: delete
        """))
    raw, landing = load_policies([path]).policies
    assert landing.filters.prefix == ("landing/",) and landing.filters.suffix == raw.filters.suffix == (".csv",)
    assert landing.filters.size == raw.filters.size and raw.filters.size.min == 1024
    assert raw.actions[0].destination == landing.actions[0].destination == "curated/{rel_dir}{stem}.parquet"
    assert (raw.actions[0].source, landing.actions[0].source) == ("keep", "delete")


def test_a_mistake_inside_a_merged_mapping_points_at_the_policy(tmp_path):
    found = problems(tmp_path, """\
        policies:
          - name: a
            bucket: ml-lake
            filters: {prefix: a/}
            actions: [{expire: {days: 1}}]
          - name: b
            <<: {bucket: ml-lake, filters: {prefix: b/}}
            actions: [{expire: {days: 0}}]
        """)
    assert len(found) == 1 and found[0].startswith(f"{tmp_path / 'p.yaml'}:8: "), found
