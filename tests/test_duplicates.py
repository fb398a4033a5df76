"""leanlake duplicates on a real S3 API (moto): every seeded group of identical objects is found with exactly its
members, no other group is, and the waste is priced as storage_month prices the extra copies.

What moto 5.2.5 returns, and what these tests therefore rest on (probed with boto3 1.44 against the server):

- ETags: a single PUT's is the MD5 of its bytes; a multipart upload's is the MD5 of its parts' MD5s plus ``-N``,
  so the same bytes in other parts get another ETag.
- Checksums: boto3 sends CRC32 with every PutObject, and HeadObject(ChecksumMode=ENABLED) returns it without a
  ChecksumType. A multipart upload created with ChecksumType FULL_OBJECT returns its checksum with ChecksumType
  FULL_OBJECT; one with a COMPOSITE checksum returns ChecksumType COMPOSITE, or (created without a type) no type at
  all and no ``-N`` suffix. Without the optional awscrt package moto stores a CRC32 under the CRC64NVME name: equal
  bytes still give equal values, which is all grouping relies on. A PutObject with a client-computed CRC64NVME
  keeps no checksum at all, so a single PUT cannot be matched with a multipart upload here: that path (a
  single-part object's checksum is a full-object one) is covered by the doctests of ``full_object_checksum``.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import random
from collections import defaultdict
from urllib.parse import quote_plus

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from chalicelib.economics import storage_month
from leanlake.cli import app
from leanlake.duplicates import find_duplicates, listed
from tests.test_inventory import write_inventory

MiB = 2**20
PART = 5 * MiB  # moto, like S3, refuses a part under 5 MiB unless it is the last


def blob(seed: int, size: int) -> bytes:
    return random.Random(seed).randbytes(size)


def multipart(s3, bucket: str, key: str, body: bytes, first_part: int, **create) -> str:
    """Upload ``body`` in two parts, the first ``first_part`` bytes; returns the ETag."""
    upload = s3.create_multipart_upload(Bucket=bucket, Key=key, **create)["UploadId"]
    parts = []
    for number, chunk in enumerate((body[:first_part], body[first_part:]), 1):
        etag = s3.upload_part(Bucket=bucket, Key=key, UploadId=upload, PartNumber=number, Body=chunk)["ETag"]
        parts.append({"ETag": etag, "PartNumber": number})
    return s3.complete_multipart_upload(Bucket=bucket, Key=key, UploadId=upload, MultipartUpload={"Parts": parts})["ETag"]


FULL_CRC64 = {"ChecksumAlgorithm": "CRC64NVME", "ChecksumType": "FULL_OBJECT"}
FULL_CRC32 = {"ChecksumAlgorithm": "CRC32", "ChecksumType": "FULL_OBJECT"}


@pytest.fixture
def lake(s3, bucket):
    """Two buckets seeded with identical groups and with traps that must not group; the groups expected."""
    a, b = bucket, f"{bucket}-b"
    s3.create_bucket(Bucket=b)
    x, y, z, w, q, r = blob(1, 4096), blob(2, 2048), blob(3, PART + 3 * MiB), blob(4, PART + 100), blob(5, PART + 7), blob(6, PART + 9)
    put = lambda where, key, body, cls="STANDARD": s3.put_object(Bucket=where, Key=key, Body=body, StorageClass=cls)  # noqa: E731
    # Groups: the same bytes under other names, prefixes and buckets, in several classes.
    put(a, "raw/features.bin", x)
    put(b, "copies/features-renamed.bin", x)
    put(a, "archive/2026/features.bin", x, "GLACIER")  # a group of 3
    put(a, "ia/labels.bin", y, "STANDARD_IA")
    put(b, "labels-backup.bin", y, "ONEZONE_IA")
    multipart(s3, a, "mp/shard-5.bin", z, PART, **FULL_CRC64)  # other parts, other ETags: only the checksum proves it
    multipart(s3, b, "mp/shard-6.bin", z, PART + MiB, **FULL_CRC64)
    multipart(s3, a, "mp/w-1.bin", w, PART)  # the same parts: the same multipart ETag
    multipart(s3, a, "mp/w-2.bin", w, PART)
    # Traps.
    put(a, "t/same-size-other-bytes.bin", blob(7, 4096))  # the size of x, other bytes
    put(a, "data/part-0.bin", blob(8, 3000))  # the same name in both buckets, other bytes
    put(b, "data/part-0.bin", blob(9, 3000))
    multipart(s3, a, "mp/q-multipart.bin", q, PART)  # no checksum: cannot be compared with the single PUT of q
    put(b, "q-single.bin", q)
    multipart(s3, a, "mp/r-1.bin", r, PART, **FULL_CRC32)  # CRC32: 32 bits prove nothing among many objects
    multipart(s3, b, "mp/r-2.bin", r, PART + MiB, **FULL_CRC32)
    s_ = blob(11, PART + 11)  # a COMPOSITE SHA-256 (moto: no type, no -N) is not the single PUT's full-object SHA-256
    multipart(s3, a, "mp/s-composite.bin", s_, PART, ChecksumAlgorithm="SHA256")
    s3.put_object(Bucket=b, Key="s-single.bin", Body=s_, ChecksumAlgorithm="SHA256")
    for where in (a, b):
        put(where, "_SUCCESS", b"")  # empty objects: nothing wasted, never grouped
        put(where, "tiny/schema.json", b'{"v": 1}')  # identical, but under --min-size's default 1 KiB
    put(a, "_leanlake/audit/features.bin", x)  # leanlake's own: never a copy
    expected = {
        frozenset({(a, "raw/features.bin"), (b, "copies/features-renamed.bin"), (a, "archive/2026/features.bin")}),
        frozenset({(a, "ia/labels.bin"), (b, "labels-backup.bin")}),
        frozenset({(a, "mp/shard-5.bin"), (b, "mp/shard-6.bin")}),
        frozenset({(a, "mp/w-1.bin"), (a, "mp/w-2.bin")}),
    }
    return a, b, expected


def members(group: dict) -> frozenset:
    return frozenset((c["bucket"], c["key"]) for c in group["copies"])


def run(*args: str):
    return CliRunner().invoke(app, ["duplicates", *args])


def test_every_seeded_group_found_and_no_false_group(lake):
    a, b, expected = lake
    result = run("--bucket", a, "--bucket", b, "--json")
    assert result.exit_code == 0, result.output
    found = json.loads(result.stdout)
    groups = {members(g): g for g in found["groups"]}
    assert set(groups) == expected
    kept = {members(g): next(c["key"] for c in g["copies"] if c["kept"]) for g in found["groups"]}
    assert kept[frozenset({(a, "raw/features.bin"), (b, "copies/features-renamed.bin"), (a, "archive/2026/features.bin")})] \
        == "raw/features.bin"  # STANDARD before GLACIER, then bucket a before bucket b
    assert kept[frozenset({(a, "ia/labels.bin"), (b, "labels-backup.bin")})] == "ia/labels.bin"  # STANDARD_IA is warmer than ONEZONE_IA
    proof = {members(g): g["proved_by"] for g in found["groups"]}
    assert proof[frozenset({(a, "mp/shard-5.bin"), (b, "mp/shard-6.bin")})] == ["CRC64NVME"]
    assert proof[frozenset({(a, "mp/w-1.bin"), (a, "mp/w-2.bin")})] == ["multipart ETag"]
    # The waste: every copy but the kept one, priced in its own class.
    usd = kg = 0.0
    for g in found["groups"]:
        assert g["wasted_bytes"] == g["size"] * (len(g["copies"]) - 1)
        month = [storage_month(g["size"], c["storage_class"], "us-east-1") for c in g["copies"] if not c["kept"]]
        assert g["wasted_monthly_usd"] == pytest.approx(sum(m.usd for m in month), abs=1e-6)
        assert g["wasted_monthly_kgco2e"] == pytest.approx(sum(m.kgco2e for m in month), abs=1e-9)
        usd, kg = usd + sum(m.usd for m in month), kg + sum(m.kgco2e for m in month)
    assert [g["wasted_bytes"] for g in found["groups"]] == sorted((g["wasted_bytes"] for g in found["groups"]), reverse=True)
    totals = found["totals"]
    listed_objects = len(lake_keys(a)) + len(lake_keys(b))
    assert totals == {
        "groups": 4, "copies": 9, "wasted_bytes": 2 * 4096 + 2048 + (PART + 3 * MiB) + (PART + 100),
        "wasted_monthly_usd": pytest.approx(usd, abs=1e-5), "wasted_monthly_kgco2e": pytest.approx(kg, abs=1e-8),
        "objects_scanned": listed_objects, "not_comparable": 6,  # q's, r's and s's two copies each: not grouped
    }
    assert listed_objects == 22  # every object but leanlake's own


def lake_keys(bucket: str) -> list[str]:
    from chalicelib.s3 import client

    return [o["Key"] for o in client().list_objects_v2(Bucket=bucket)["Contents"] if not o["Key"].startswith("_leanlake/")]


def test_min_size_takes_in_small_objects_but_never_empty_ones(lake):
    a, b, expected = lake
    found = json.loads(run("--bucket", a, "--bucket", b, "--min-size", "1", "--json").stdout)
    assert {members(g) for g in found["groups"]} == expected | {frozenset({(a, "tiny/schema.json"), (b, "tiny/schema.json")})}
    assert found["min_size"] == 1
    only_big = json.loads(run("--bucket", a, "--bucket", b, "--min-size", "5 MiB", "--json").stdout)
    assert {members(g) for g in only_big["groups"]} == {g for g in expected if any(k.startswith("mp/") for _, k in g)}


def inventory_rows(s3, bucket: str) -> list[list[str]]:
    """The bucket's objects as S3 Inventory lists them (CSV: keys URL-encoded, ETags unquoted), leanlake's own included."""
    return [[bucket, quote_plus(o["Key"]), "", "true", "false", str(o["Size"]), o["LastModified"].isoformat(),
             o["ETag"].strip('"'), o["StorageClass"]]
            for o in s3.list_objects_v2(Bucket=bucket)["Contents"]]


def test_an_inventory_gives_the_same_groups(s3, lake):
    a, b, expected = lake
    for where in (f"{a}-inv-a", f"{a}-inv-b"):
        s3.create_bucket(Bucket=where)
    uri_a = write_inventory(s3, a, f"{a}-inv-a", inventory_rows(s3, a))
    uri_b = write_inventory(s3, b, f"{a}-inv-b", inventory_rows(s3, b))
    listing = json.loads(run("--bucket", a, "--bucket", b, "--json").stdout)
    for inventories in ((uri_a, uri_b), (uri_a,)):  # both from inventories; a from its inventory and b listed
        args = [arg for uri in inventories for arg in ("--inventory", uri)]
        result = run("--bucket", a, "--bucket", b, *args, "--json")
        assert result.exit_code == 0, result.output
        found = json.loads(result.stdout)
        assert {members(g) for g in found["groups"]} == expected
        assert found["totals"] == listing["totals"]


def test_bad_inventories_and_buckets_fail_in_one_line(s3, lake, tmp_path):
    a, b, _ = lake
    s3.create_bucket(Bucket=f"{a}-inv")
    no_etag = write_inventory(s3, a, f"{a}-inv", [[a, "raw/features.bin", "", "true", "false", "4096", "2026-01-01T00:00:00Z", "", ""]])
    manifest = json.loads(s3.get_object(Bucket=f"{a}-inv", Key="inv/2026-11-26T01-00Z/manifest.json")["Body"].read())
    manifest["fileSchema"] = "Bucket, Key, Size, LastModifiedDate"
    s3.put_object(Bucket=f"{a}-inv", Key="inv/2026-11-26T01-00Z/manifest.json", Body=json.dumps(manifest).encode())
    cases = [
        (["--bucket", a, "--inventory", no_etag], 1,
         f"leanlake: {no_etag}: the inventory does not list ETag: add the field to the inventory configuration "
         "(duplicates are proved by size and ETag)"),
        (["--bucket", b, "--inventory", no_etag], 1,
         f"leanlake: {no_etag}: the inventory does not list ETag"),
        (["--bucket", a, "--inventory", f"s3://{a}/raw/features.bin"], 1,
         f"leanlake: s3://{a}/raw/features.bin: not an S3 Inventory manifest"),
        (["--bucket", f"{a}-missing"], 1, f"leanlake: s3://{a}-missing: NoSuchBucket: "),
        (["--bucket", a, "--min-size", "big"], 2, "leanlake: --min-size: not a size: 'big'"),
        (["--policies", str(tmp_path / "none.yaml")], 1, ""),
    ]
    for args, code, line in cases:
        result = run(*args)
        assert result.exit_code == code, (args, result.output)
        assert result.output.startswith(line) and "Traceback" not in result.output, (args, result.output)
        if code == 1 and line:
            assert len(result.output.strip().splitlines()) == 1


def test_inventory_of_a_bucket_not_scanned_and_a_second_inventory_fail(s3, lake):
    a, b, _ = lake
    s3.create_bucket(Bucket=f"{a}-inv")
    uri = write_inventory(s3, a, f"{a}-inv", inventory_rows(s3, a))
    other = run("--bucket", b, "--inventory", uri)
    assert (other.exit_code, other.output.strip()) == (
        1, f"leanlake: {uri}: inventory of bucket {a}, which is not among the buckets scanned ({b})")
    twice = run("--bucket", a, "--inventory", uri, "--inventory", uri)
    assert (twice.exit_code, twice.output.strip()) == (1, f"leanlake: {uri}: a second inventory of bucket {a} (the first: {uri})")


def test_policies_buckets_and_the_human_report(lake, tmp_path):
    a, b, _ = lake
    policies = tmp_path / "p.yaml"
    policies.write_text("policies:\n" + "".join(
        f"  - name: p{i}\n    bucket: {name}\n    filters: {{prefix: tmp/}}\n    actions: [{{expire: {{days: 30}}}}]\n"
        for i, name in enumerate((a, b))))
    result = CliRunner().invoke(app, ["duplicates", "--policies", str(policies), "--top", "1"], env={"COLUMNS": "250"})
    assert result.exit_code == 0, result.output
    words = " ".join(result.stdout.split())
    assert "the 1 of 4 groups wasting most bytes" in words
    assert f"s3://{a}/mp/shard-5.bin (STANDARD)" in words and "w-1.bin" not in words  # only the group wasting most
    assert "4 groups of identical objects, 9 copies among 22 objects" in words
    assert "Report only: nothing was deleted." in words
    assert "6 objects share their size with objects nothing can match or tell apart" in words
    assert len(lake_keys(a)) + len(lake_keys(b)) == 22  # nothing deleted


# Random lakes: groups by the bytes themselves, restricted to what S3 can prove, equal what the scan finds.
STYLES = ("put", "mp-5-crc64", "mp-6-crc64", "mp-5-plain")
BIG = blob(10, PART + 2 * MiB)  # parts of 5 or 6 MiB leave a last part
RANDOM_LAKES = itertools.count()


def upload(s3, bucket: str, key: str, body: bytes, style: str) -> None:
    if style == "put":
        s3.put_object(Bucket=bucket, Key=key, Body=body)
    else:
        _, first, checksum = style.split("-")
        multipart(s3, bucket, key, body, int(first) * MiB, **(FULL_CRC64 if checksum == "crc64" else {}))


def provable(objects: dict[tuple[str, str], tuple[bytes, str]]) -> set[frozenset]:
    """The groups S3 can prove, from how each object was uploaded: single PUTs of the same bytes by their ETag;
    multipart uploads of the same bytes by the CRC64NVME checksum or, in the same parts, by their ETag; never a
    single PUT with a multipart upload (boto3's CRC32 is not identifying); never empty objects."""
    by_proof: dict[tuple, set] = defaultdict(set)
    for where, (body, style) in objects.items():
        if body:
            by_proof[(body, style == "put")].add(where)
    groups = set()
    for (_, single), found in by_proof.items():
        if single:
            groups.add(frozenset(found))
            continue
        styles = {where: objects[where][1] for where in found}
        linked = [w for w, s in styles.items() if s.endswith("crc64")]  # one checksum joins every crc64 upload
        plain = [w for w, s in styles.items() if s == "mp-5-plain"]
        if plain and any(styles[w] == "mp-5-crc64" for w in linked):
            linked += plain  # the same parts as an mp-5-crc64 upload: the same ETag
        elif plain:
            groups.add(frozenset(plain))
        groups.add(frozenset(linked))
    return {g for g in groups if len(g) > 1}


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.tuples(st.integers(0, 1), st.text("ab", max_size=2), st.sampled_from(STYLES)), min_size=1, max_size=8))
def test_random_lakes_group_exactly_as_their_bytes_allow(s3, spec):
    run_number = next(RANDOM_LAKES)
    buckets = [f"dup-random-{os.getpid()}-{run_number}-{i}" for i in range(2)]
    for name in buckets:
        s3.create_bucket(Bucket=name)
    objects = {}
    try:
        for n, (which, text, style) in enumerate(spec):
            big = style != "put" or len(text) == 2  # big single PUTs too, so that they meet the multipart uploads
            body = (BIG + text.encode()) if big else text.encode()
            where = (buckets[which], f"k{n}")
            upload(s3, *where, body, style)
            objects[where] = (body, style)
        found = find_duplicates(s3, [(f"s3://{name}", listed(s3, name)) for name in buckets], min_size=1)
        got = {frozenset((c.bucket, c.key) for c in g.copies) for g in found.groups}
        assert got == provable(objects)
        for g in found.groups:  # never a false group: the bytes themselves agree
            assert len({hashlib.sha256(objects[(c.bucket, c.key)][0]).digest() for c in g.copies}) == 1
        assert found.objects_scanned == len(objects)
    finally:
        for name in buckets:
            for key in [k for (bucket_name, k) in objects if bucket_name == name]:
                s3.delete_object(Bucket=name, Key=key)
            s3.delete_bucket(Bucket=name)
