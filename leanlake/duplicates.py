"""Byte-identical objects across buckets, found only where S3 itself proves them identical: never a guess from names.

``leanlake duplicates`` reads the buckets (ListObjectsV2, every page, or an S3 Inventory report) and
reports groups of objects holding the same bytes, with what every copy but one costs a month. It is
a report only: nothing is deleted, moved or written.

What proves that two objects of the same size hold the same bytes:

- the same single-part ETag (32 hex digits): the MD5 of the content for unencrypted and SSE-S3
  objects. SSE-KMS and SSE-C objects' ETags are not MD5s, and a listing cannot tell them apart:
  copies of such an object have different ETags and simply do not group (a missed group, never a
  false one);
- the same multipart ETag (``…-N``): the MD5 of the parts' MD5s, equal only when every part is. The
  same bytes uploaded in other parts get another ETag, so a different multipart ETag proves nothing;
- the same full-object checksum, read with HeadObject(ChecksumMode=ENABLED): ChecksumType
  FULL_OBJECT, or any checksum of a single-part object (S3 computes it over the whole body), in an
  algorithm long enough to identify content among many objects of one size: CRC64NVME, SHA-256,
  SHA-1. CRC32 and CRC32C are not used: with 32 bits, among ~77,000 objects of one size (fixed-shape
  ``.npy`` shards, say) two share a CRC by chance as often as not. A COMPOSITE checksum (of the
  parts' checksums, ``…-N``) is not used: like the multipart ETag it is equal only for the same
  parts, and beside a full-object checksum of the same algorithm it would differ for the same bytes,
  "proving" them different. A multipart object's checksum without a ChecksumType may be COMPOSITE
  and is not used either.

Proofs join transitively: when A's ETag equals B's and B's checksum equals C's, A, B and C are one group.
HEAD requests go only where they can prove something: to objects whose size a multipart upload shares,
and to the single-part ones of that size only when a multipart one has a checksum to compare with.

*Not comparable*: an object that some same-size object outside its group can be neither matched with
nor told apart from, because they share no kind of proof (a multipart upload without a usable
checksum beside a single PUT of its size, or two multipart uploads in different parts). They may
be copies this report cannot show: they are counted, never grouped.

Left out: zero-byte objects (nothing is wasted, and markers such as ``_SUCCESS`` are identical by
design), objects smaller than ``min_size``, leanlake's own ``_leanlake/`` keys, and versions other
than the current one.

The kept copy of a group is the one in the warmest storage class (S3's Lifecycle order: STANDARD,
then STANDARD_IA and INTELLIGENT_TIERING, ONEZONE_IA, GLACIER_IR, GLACIER, DEEP_ARCHIVE; ties by
bucket and key); every other copy is waste, priced with ``storage_month`` in its own class and the
region given. A class the cost model does not know is priced as STANDARD, and a note says so.

Memory: objects are indexed by size in a private temporary SQLite database on disk (SQLite keeps
a few MB of it in memory), then read back one size at a time, so memory holds one size's objects
and the groups found, never the whole lake.

Example:
    >>> found = find_duplicates(s3, [("s3://ml-lake", listed(s3, "ml-lake"))], min_size=1024)  # doctest: +SKIP
    >>> found.totals()["wasted_bytes"]                                                          # doctest: +SKIP
    3145728
"""

from __future__ import annotations

import contextlib
import re
import sqlite3
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from itertools import groupby
from typing import Any, Callable, Iterable, Iterator, Mapping

from chalicelib.economics import class_names, storage_class, storage_month
from chalicelib.refs import is_reserved

SINGLE_PART_ETAG = re.compile(r"[0-9a-f]{32}")
MULTIPART_ETAG = re.compile(r"[0-9a-f]{32}-[1-9][0-9]*")
#: Full-object checksum algorithms that identify content among many same-size objects (64 bits or more).
IDENTIFYING_CHECKSUMS = ("CRC64NVME", "SHA256", "SHA1")
#: HEAD requests in flight at once.
HEAD_THREADS = 8
#: Rows written to the size index at a time.
_BATCH = 10_000
#: A HEAD found the object gone (or changed) since it was listed: it is left out.
_GONE = "gone"

Say = Callable[[str], None]


@dataclass(frozen=True, slots=True)
class Listed:
    """An object as a listing or an inventory row shows it: where it is, its size, ETag and class."""

    bucket: str
    key: str
    size: int
    etag: str
    storage_class: str

    @property
    def uri(self) -> str:
        return f"s3://{self.bucket}/{self.key}"


class ScanError(Exception):
    """Reading a bucket, an inventory or an object failed: ``subject`` says which, ``reason`` why, in one line."""

    def __init__(self, subject: str, reason: str) -> None:
        super().__init__(f"{subject}: {reason}")
        self.subject, self.reason = subject, reason


def _one_line(exc: BaseException) -> str:
    from chalicelib.errors import describe_error

    return describe_error(exc)[0]


def listed(s3: Any, bucket: str) -> Iterator[Listed]:
    """The bucket's current objects, every ListObjectsV2 page, leanlake's own ``_leanlake/`` keys left out."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
            for item in page.get("Contents", ()):
                if not is_reserved(item["Key"]):
                    yield Listed(bucket, item["Key"], int(item["Size"]), item.get("ETag", "").strip('"'),
                                 item.get("StorageClass") or "STANDARD")
    except (ClientError, BotoCoreError) as exc:
        raise ScanError(f"s3://{bucket}", _one_line(exc)) from None


def inventory_source(s3: Any, manifest_uri: str) -> tuple[str, Iterator[Listed]]:
    """The source bucket of an S3 Inventory report and its current objects (``_leanlake/`` left out).

    The inventory must list Size and ETag (optional fields of an inventory configuration)."""
    from botocore.exceptions import BotoCoreError, ClientError

    from chalicelib.inventory import InventoryError, listed_fields, read_manifest, refs_from_inventory

    def failing(exc: Exception) -> ScanError:
        reason = str(exc).removeprefix(f"{manifest_uri}: ") if isinstance(exc, InventoryError) else _one_line(exc)
        return ScanError(manifest_uri, reason)

    try:
        manifest = read_manifest(s3, manifest_uri)
    except (InventoryError, ClientError, BotoCoreError) as exc:
        raise failing(exc) from None
    missing = sorted({"Size", "ETag"} - (listed_fields(manifest) or {"Size", "ETag"}))
    if missing:
        raise ScanError(manifest_uri, f"the inventory does not list {' or '.join(missing)}: add the field to the "
                                      "inventory configuration (duplicates are proved by size and ETag)")

    def rows() -> Iterator[Listed]:
        try:
            for ref in refs_from_inventory(s3, manifest_uri, manifest):
                if ref.size is None:
                    raise ScanError(manifest_uri, f"{ref.uri}: the row has no Size")
                yield Listed(ref.bucket, ref.key, ref.size, (ref.etag or "").strip('"'), ref.effective_storage_class)
        except (InventoryError, ClientError, BotoCoreError) as exc:
            raise failing(exc) from None

    return manifest["sourceBucket"], rows()


def full_object_checksum(head: Mapping[str, Any], *, multipart: bool) -> str | None:
    """The identifying full-object checksum a HeadObject(ChecksumMode=ENABLED) response holds, as
    ``ALGORITHM:value``, or None.

        >>> full_object_checksum({"ChecksumCRC64NVME": "leQ7hwAAAAA=", "ChecksumType": "FULL_OBJECT"}, multipart=True)
        'CRC64NVME:leQ7hwAAAAA='
        >>> full_object_checksum({"ChecksumSHA256": "rfqFtxuAALhVNLHv="}, multipart=False)   # a single PUT's: whole body
        'SHA256:rfqFtxuAALhVNLHv='
        >>> [full_object_checksum(h, multipart=True) for h in (
        ...     {"ChecksumSHA256": "IKqcPSO1bIhF7WaQ="},                                 # no type: maybe COMPOSITE
        ...     {"ChecksumSHA256": "IKqcPSO1bIhF7WaQ=-2", "ChecksumType": "COMPOSITE"},  # the parts' checksum
        ...     {"ChecksumCRC32": "leQ7hw==", "ChecksumType": "FULL_OBJECT"})]          # 32 bits: not identifying
        [None, None, None]
    """
    kind = head.get("ChecksumType")
    if kind not in ("FULL_OBJECT", None) or (kind is None and multipart):
        return None
    for algorithm in IDENTIFYING_CHECKSUMS:
        value = head.get(f"Checksum{algorithm}")
        if value and "-" not in value:  # base64 has no "-": "…-N" is a composite's part count
            return f"{algorithm}:{value}"
    return None


def proofs(etag: str, checksum: str | None) -> tuple[list[str], frozenset[str]]:
    """What an object can be matched on (equal tokens: same bytes) and the kinds of proof it can be told apart
    by (two objects sharing a kind but no token differ).

        >>> proofs("9e107d9d372bb6826bd81d3542a419d6", None)
        (['ETag:9e107d9d372bb6826bd81d3542a419d6'], frozenset({'ETag'}))
        >>> proofs("326078dc9f7f9af267714c26f3d05fc3-2", "CRC64NVME:leQ7hw==")
        (['multipart ETag:326078dc9f7f9af267714c26f3d05fc3-2', 'CRC64NVME:leQ7hw=='], frozenset({'CRC64NVME'}))
        >>> proofs("not-an-md5", None)
        ([], frozenset())
    """
    tokens, kinds = [], set()
    if SINGLE_PART_ETAG.fullmatch(etag):
        tokens.append(f"ETag:{etag}")
        kinds.add("ETag")
    elif MULTIPART_ETAG.fullmatch(etag):
        tokens.append(f"multipart ETag:{etag}")  # equal proves the same bytes; different proves nothing
    if checksum:
        tokens.append(checksum)
        kinds.add(checksum.split(":", 1)[0])
    return tokens, frozenset(kinds)


def warmth(name: str) -> int:
    """A class's place in S3's Lifecycle order (0: warmest); classes the cost model does not know count as warmest.

        >>> [warmth(c) for c in ("STANDARD", "INTELLIGENT_TIERING", "GLACIER_IR", "DEEP_ARCHIVE", "REDUCED_REDUNDANCY")]
        [0, 1, 3, 5, 0]
    """
    return storage_class(name).rank if name in class_names() else 0


@dataclass(frozen=True)
class Group:
    """Objects proved to hold the same ``size`` bytes; ``copies[0]`` is the one kept, the others are waste."""

    size: int
    copies: tuple[Listed, ...]
    proved_by: tuple[str, ...]
    wasted_monthly_usd: float
    wasted_monthly_kgco2e: float

    @property
    def wasted_bytes(self) -> int:
        return self.size * (len(self.copies) - 1)

    def as_dict(self) -> dict[str, Any]:
        return {"size": self.size, "proved_by": list(self.proved_by), "wasted_bytes": self.wasted_bytes,
                "wasted_monthly_usd": round(self.wasted_monthly_usd, 6), "wasted_monthly_kgco2e": round(self.wasted_monthly_kgco2e, 9),
                "copies": [{"bucket": c.bucket, "key": c.key, "storage_class": c.storage_class, "kept": i == 0}
                           for i, c in enumerate(self.copies)]}


@dataclass(frozen=True)
class Duplicates:
    """What a scan found: the groups, most wasted bytes first, and what it read and could not compare."""

    groups: list[Group]
    objects_scanned: int
    not_comparable: int
    region: str
    min_size: int
    notes: tuple[str, ...] = ()

    def totals(self) -> dict[str, Any]:
        return {"groups": len(self.groups), "copies": sum(len(g.copies) for g in self.groups),
                "wasted_bytes": sum(g.wasted_bytes for g in self.groups),
                "wasted_monthly_usd": round(sum(g.wasted_monthly_usd for g in self.groups), 6),
                "wasted_monthly_kgco2e": round(sum(g.wasted_monthly_kgco2e for g in self.groups), 9),
                "objects_scanned": self.objects_scanned, "not_comparable": self.not_comparable}

    def as_dict(self) -> dict[str, Any]:
        return {"region": self.region, "min_size": self.min_size, "groups": [g.as_dict() for g in self.groups],
                "totals": self.totals(), "notes": list(self.notes)}


class _BySize:
    """Objects indexed by size in a private temporary SQLite database (on disk, deleted when closed)."""

    def __init__(self) -> None:
        self._db = sqlite3.connect("")
        self._db.execute("CREATE TABLE objects (size INTEGER, bucket TEXT, key TEXT, etag TEXT, class TEXT)")

    def add(self, objects: Iterable[Listed]) -> None:
        self._db.executemany("INSERT INTO objects VALUES (?, ?, ?, ?, ?)",
                             ((o.size, o.bucket, o.key, o.etag, o.storage_class) for o in objects))

    def shared_sizes(self) -> Iterator[list[Listed]]:
        """The objects of each size held by more than one object, one size at a time."""
        rows = self._db.execute("SELECT size, bucket, key, etag, class FROM objects WHERE size IN "
                                "(SELECT size FROM objects GROUP BY size HAVING COUNT(*) > 1) ORDER BY size, bucket, key")
        for _, same in groupby(rows, key=lambda row: row[0]):
            yield [Listed(bucket, key, size, etag, cls) for size, bucket, key, etag, cls in same]

    def close(self) -> None:
        self._db.close()


def _head_checksums(s3: Any, objects: list[Listed], *, multipart: bool) -> dict[Listed, str | None]:
    """Each object's identifying full-object checksum (None: none, or HEAD refused), or ``_GONE`` when the
    object was deleted or replaced since it was listed."""
    from botocore.exceptions import BotoCoreError, ClientError

    from chalicelib.log import logger

    def one(obj: Listed) -> tuple[Listed, str | None]:
        try:
            head = s3.head_object(Bucket=obj.bucket, Key=obj.key, ChecksumMode="ENABLED")
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code")
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            if code in ("404", "NoSuchKey", "NotFound"):
                return obj, _GONE
            if status in (400, 403):  # SSE-C without its key; SSE-KMS checksums need kms:Decrypt
                logger.warning(f"{obj.uri}: HEAD refused ({_one_line(exc)}): compared by its ETag only")
                return obj, None
            raise ScanError(obj.uri, _one_line(exc)) from None
        except BotoCoreError as exc:
            raise ScanError(obj.uri, _one_line(exc)) from None
        if head.get("ETag", "").strip('"') != obj.etag or int(head.get("ContentLength", -1)) != obj.size:
            return obj, _GONE  # replaced since it was listed: what was listed is gone
        return obj, full_object_checksum(head, multipart=multipart)

    with ThreadPoolExecutor(HEAD_THREADS) as pool:
        return dict(pool.map(one, objects))


def _components(tokens: list[list[str]]) -> list[int]:
    """Union-find: objects sharing a token are in one component; each object's component root.

        >>> _components([["a"], ["b"], ["a", "c"], ["c"], []])
        [0, 1, 0, 0, 4]
    """
    parent = list(range(len(tokens)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    first: dict[str, int] = {}
    for i, held in enumerate(tokens):
        for token in held:
            j = first.setdefault(token, i)
            a, b = root(i), root(j)
            if a != b:
                parent[max(a, b)] = min(a, b)
    return [root(i) for i in range(len(tokens))]


def _not_comparable(kinds: list[frozenset[str]], component: list[int]) -> int:
    """How many objects are in a component that some other component can be neither matched with nor told apart from.

    A component holds equal bytes, so it can be told apart from another when any member of one shares a kind of
    proof with any member of the other (their tokens then differ): its kinds are its members' together.

        >>> _not_comparable([frozenset({"ETag"}), frozenset(), frozenset({"ETag"})], [0, 1, 2])   # the middle one: no proof
        3
        >>> _not_comparable([frozenset({"ETag"}), frozenset({"ETag"}), frozenset()], [0, 1, 1])  # 2 is 1, which is not 0
        0
    """
    held: dict[int, frozenset[str]] = {}
    size: Counter[int] = Counter(component)
    for comp, mine in zip(component, kinds, strict=True):
        held[comp] = held.get(comp, frozenset()) | mine
    per_kinds: Counter[frozenset[str]] = Counter(held.values())

    def unsure(mine: frozenset[str]) -> bool:
        return any(not (mine & theirs) and count - (theirs == mine) > 0 for theirs, count in per_kinds.items())

    return sum(size[comp] for comp, mine in held.items() if unsure(mine))


def compare(s3: Any, objects: list[Listed]) -> tuple[list[tuple[list[Listed], tuple[str, ...]]], int]:
    """Objects of one size → the groups proved identical (each with the kinds of proof it shares) and how
    many objects are not comparable. HEADs only where a multipart upload is among them."""
    multipart = [o for o in objects if not SINGLE_PART_ETAG.fullmatch(o.etag)]
    checksums: dict[Listed, str | None] = {}
    if multipart:
        checksums = _head_checksums(s3, multipart, multipart=True)
        if any(c not in (None, _GONE) for c in checksums.values()):
            checksums.update(_head_checksums(s3, [o for o in objects if o not in checksums], multipart=False))
        objects = [o for o in objects if checksums.get(o) != _GONE]
    held = [proofs(o.etag, checksums.get(o)) for o in objects]
    component = _components([tokens for tokens, _ in held])
    members: dict[int, list[int]] = {}
    for i, comp in enumerate(component):
        members.setdefault(comp, []).append(i)
    groups = []
    for indices in members.values():
        if len(indices) > 1:
            shared = Counter(t for i in indices for t in held[i][0])
            kinds = sorted({t.split(":", 1)[0] for t, n in shared.items() if n > 1})
            groups.append(([objects[i] for i in indices], tuple(kinds)))
    return groups, _not_comparable([kinds for _, kinds in held], component)


def _priced(size: int, copies: list[Listed], proved_by: tuple[str, ...], region: str, notes: set[str]) -> Group:
    """The group with its kept copy first (warmest class, then bucket and key) and its other copies priced."""
    ordered = sorted(copies, key=lambda c: (warmth(c.storage_class), c.bucket, c.key))
    usd = kg = 0.0
    for copy in ordered[1:]:
        priced_as = copy.storage_class if copy.storage_class in class_names() else "STANDARD"
        if priced_as != copy.storage_class:
            notes.add(f"{copy.storage_class}: not in the cost model, priced as STANDARD")
        month = storage_month(size, priced_as, region)
        usd, kg = usd + month.usd, kg + month.kgco2e
        notes.update(month.notes)
    return Group(size, tuple(ordered), proved_by, usd, kg)


def find_duplicates(s3: Any, sources: Iterable[tuple[str, Iterable[Listed]]], *, min_size: int = 1024,
                    region: str = "us-east-1", say: Say | None = None) -> Duplicates:
    """Groups of byte-identical objects among the ``(label, objects)`` sources, and what their extra copies cost.

    Objects under ``min_size`` bytes (and every empty one) are left out. ``say`` hears progress lines."""
    say = say or (lambda _: None)
    min_size = max(min_size, 1)
    scanned = 0
    notes: set[str] = set()
    found: list[Group] = []
    not_comparable = 0
    index = _BySize()
    with contextlib.closing(index):
        for label, objects in sources:
            batch: list[Listed] = []
            read = 0
            for read, obj in enumerate(objects, 1):
                if obj.size >= min_size:
                    batch.append(obj)
                if len(batch) >= _BATCH:
                    index.add(batch)
                    batch.clear()
                    say(f"{label}: {read:,} objects read")
            index.add(batch)
            scanned += read
            say(f"{label}: {read:,} objects read")
        say("comparing objects of the same size")
        for same_size in index.shared_sizes():
            groups, unsure = compare(s3, same_size)
            not_comparable += unsure
            found.extend(_priced(same_size[0].size, copies, proved_by, region, notes) for copies, proved_by in groups)
    found.sort(key=lambda g: (-g.wasted_bytes, -g.wasted_monthly_usd, g.copies[0].uri))
    return Duplicates(found, scanned, not_comparable, region, min_size, tuple(sorted(notes)))
