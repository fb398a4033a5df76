"""The S3 requests leanlake makes and the IAM actions AWS documents for each: the one table the
deployed policy is derived from.

Why a table: the policy must work on every bucket a policy may name — plain, versioned and Object
Lock (always versioned) — and grant nothing else. On versioned buckets leanlake passes the
object's VersionId (reading, tagging, copying, deleting, checking locks), and IAM checks a
different action for a request with a VersionId (``s3:GetObjectVersion`` instead of
``s3:GetObject``). Some request headers need more: tags sent or copied need the tagging actions,
and HEAD returns the ``x-amz-object-lock-*`` headers only to a caller holding
``s3:GetObjectRetention`` and ``s3:GetObjectLegalHold``. ``REQUESTS`` has one row per request as
leanlake makes it (a variant such as ``HeadObject+lock`` is a row of its own), with the actions
on objects without and with a VersionId, and on the bucket.

Each action class declares the requests its code paths make (``s3_calls``, plus
``s3_calls_by_option`` for those only some configurations make, e.g. ``source: delete``), as
``Call`` values built from the groups below, one group per code path. ``policy_calls`` adds what
every bucket a policy names gets (listing, the HEAD of an upload, tags for tag filters), and
``needs`` turns calls into IAM actions. A call that may carry a VersionId needs both columns.
tests/test_iam.py keeps this honest: it scans chalicelib/ for every S3 client method called and
fails when its operation has no row here, or when a declared operation is called nowhere.

Sources (AWS documentation):

- Service Authorization Reference, "Actions, resources, and condition keys for Amazon S3",
  section "Actions defined by Amazon S3":
  https://docs.aws.amazon.com/service-authorization/latest/reference/list_amazons3.html
- Amazon S3 User Guide, "Required permissions for Amazon S3 API operations":
  https://docs.aws.amazon.com/AmazonS3/latest/userguide/using-with-s3-policy-actions.html
- Amazon S3 API Reference, the "Permissions" part of each operation's page
  (https://docs.aws.amazon.com/AmazonS3/latest/API/API_<Operation>.html): HeadObject and GetObject
  (``s3:GetObject``, with ``versionId`` ``s3:GetObjectVersion``; a missing key answers 404 only
  to a caller with ``s3:ListBucket``, else 403; HeadObject's ``ObjectLockMode`` and
  ``ObjectLockRetainUntilDate`` are returned only with ``s3:GetObjectRetention``,
  ``ObjectLockLegalHoldStatus`` only with ``s3:GetObjectLegalHold``), PutObject (``Tagging`` needs
  ``s3:PutObjectTagging``), CopyObject and UploadPartCopy (``s3:GetObject`` on the source,
  ``s3:PutObject`` on the target), GetObjectTagging / PutObjectTagging (``…VersionTagging`` with
  ``versionId``), DeleteObject and DeleteObjects (``s3:DeleteObjectVersion`` with ``versionId``),
  ListObjectVersions (``s3:ListBucketVersions``), GetObjectLockConfiguration
  (``s3:GetBucketObjectLockConfiguration``), DeleteBucketLifecycle
  (``s3:PutLifecycleConfiguration``), AbortMultipartUpload (``s3:AbortMultipartUpload``).

Example:
    >>> sorted(needs([Call("GetObject", version_id=True)]).objects)
    ['s3:GetObject', 's3:GetObjectVersion']
    >>> sorted(needs(READ_LOCKS).bucket)
    ['s3:GetBucketObjectLockConfiguration', 's3:ListBucket']
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Iterable, NamedTuple

if TYPE_CHECKING:
    from chalicelib.actions.base import Action
    from chalicelib.policy.models import Policy


class Needs(NamedTuple):
    """What one S3 request needs: IAM actions on ``arn:aws:s3:::BUCKET/*`` without a VersionId, the
    same with a VersionId (empty: the request takes none), and on ``arn:aws:s3:::BUCKET``."""

    objects: tuple[str, ...] = ()
    versioned: tuple[str, ...] = ()
    bucket: tuple[str, ...] = ()


_LOCK_STATE = ("s3:GetObjectRetention", "s3:GetObjectLegalHold")
#: Without it a missing key answers 403 instead of 404 (``s3.head`` returns None only on a 404).
_MISSING_IS_404 = ("s3:ListBucket",)

#: S3 request (``Operation`` or ``Operation+variant``) → the IAM actions AWS documents for it.
REQUESTS: dict[str, Needs] = {
    # objects
    "HeadObject": Needs(("s3:GetObject",), ("s3:GetObjectVersion",), _MISSING_IS_404),
    "HeadObject+lock": Needs(("s3:GetObject", *_LOCK_STATE), ("s3:GetObjectVersion", *_LOCK_STATE), _MISSING_IS_404),
    "GetObject": Needs(("s3:GetObject",), ("s3:GetObjectVersion",), _MISSING_IS_404),
    "GetObjectTagging": Needs(("s3:GetObjectTagging",), ("s3:GetObjectVersionTagging",)),
    "PutObjectTagging": Needs(("s3:PutObjectTagging",), ("s3:PutObjectVersionTagging",)),
    "PutObject": Needs(("s3:PutObject",)),
    "PutObject+tags": Needs(("s3:PutObject", "s3:PutObjectTagging")),
    # source (by version where given) and target are objects of the same bucket: leanlake copies in place
    "CopyObject": Needs(("s3:GetObject", "s3:PutObject"), ("s3:GetObjectVersion", "s3:PutObject")),
    "CopyObject+tags": Needs(("s3:GetObject", "s3:GetObjectTagging", "s3:PutObject", "s3:PutObjectTagging"),
                             ("s3:GetObjectVersion", "s3:GetObjectVersionTagging", "s3:PutObject", "s3:PutObjectTagging")),
    "CreateMultipartUpload": Needs(("s3:PutObject",)),
    "CreateMultipartUpload+tags": Needs(("s3:PutObject", "s3:PutObjectTagging")),
    "UploadPart": Needs(("s3:PutObject",)),
    "UploadPartCopy": Needs(("s3:GetObject", "s3:PutObject"), ("s3:GetObjectVersion", "s3:PutObject")),
    "CompleteMultipartUpload": Needs(("s3:PutObject",)),
    "AbortMultipartUpload": Needs(("s3:AbortMultipartUpload",)),
    "DeleteObject": Needs(("s3:DeleteObject",), ("s3:DeleteObjectVersion",)),
    "DeleteObjects": Needs(("s3:DeleteObject",), ("s3:DeleteObjectVersion",)),  # checked per key
    # buckets
    "ListObjectsV2": Needs(bucket=("s3:ListBucket",)),
    "ListObjectVersions": Needs(bucket=("s3:ListBucketVersions",)),
    "GetObjectLockConfiguration": Needs(bucket=("s3:GetBucketObjectLockConfiguration",)),
    "GetBucketVersioning": Needs(bucket=("s3:GetBucketVersioning",)),
    "GetBucketLifecycleConfiguration": Needs(bucket=("s3:GetLifecycleConfiguration",)),
    "PutBucketLifecycleConfiguration": Needs(bucket=("s3:PutLifecycleConfiguration",)),
    "DeleteBucketLifecycle": Needs(bucket=("s3:PutLifecycleConfiguration",)),
    "GetBucketIntelligentTieringConfiguration": Needs(bucket=("s3:GetIntelligentTieringConfiguration",)),
    "PutBucketIntelligentTieringConfiguration": Needs(bucket=("s3:PutIntelligentTieringConfiguration",)),
    # made by the CLI and the deployment tools with the operator's credentials, never by the functions
    "GetBucketNotificationConfiguration": Needs(bucket=("s3:GetBucketNotification",)),
    "PutBucketNotificationConfiguration": Needs(bucket=("s3:PutBucketNotification",)),
    "CreateBucket": Needs(bucket=("s3:CreateBucket",)),
}

#: boto3's managed transfers → the S3 operations they may send (boto3.s3.transfer / s3transfer).
TRANSFERS: dict[str, tuple[str, ...]] = {
    "upload_file": ("PutObject", "CreateMultipartUpload", "UploadPart", "CompleteMultipartUpload", "AbortMultipartUpload"),
    "upload_fileobj": ("PutObject", "CreateMultipartUpload", "UploadPart", "CompleteMultipartUpload", "AbortMultipartUpload"),
    "download_file": ("HeadObject", "GetObject"),
    "download_fileobj": ("HeadObject", "GetObject"),
    "copy": ("HeadObject", "CopyObject", "CreateMultipartUpload", "UploadPartCopy", "CompleteMultipartUpload", "AbortMultipartUpload"),
}


class Call(NamedTuple):
    """One S3 request a code path makes: a row of ``REQUESTS``, and whether it carries the object's
    VersionId where the object has one (on versioned buckets; so it needs both columns)."""

    request: str
    version_id: bool = False

    @property
    def operation(self) -> str:
        """The S3 API operation (``HeadObject+lock`` → ``HeadObject``)."""
        return self.request.partition("+")[0]


Calls = tuple[Call, ...]


class Grant(NamedTuple):
    """IAM actions on a bucket's objects (``arn:aws:s3:::BUCKET/*``) and on the bucket itself."""

    objects: frozenset[str]
    bucket: frozenset[str]


def needs(calls: Iterable[Call]) -> Grant:
    """The IAM actions ``calls`` need; a call that may carry a VersionId gets both columns.

    Raises KeyError for a request the table lacks, ValueError for a VersionId on a request that takes none.
    """
    objects: set[str] = set()
    bucket: set[str] = set()
    for call in calls:
        row = REQUESTS[call.request]
        if call.version_id and not row.versioned:
            raise ValueError(f"{call.request} takes no VersionId")
        objects.update(row.objects)
        if call.version_id:
            objects.update(row.versioned)
        bucket.update(row.bucket)
    return Grant(frozenset(objects), frozenset(bucket))


# --- The code paths, as the requests they make ----------------------------------------------------

#: A fanned-out sweep's checkpoint, in every bucket it sweeps, whatever the policies' actions
#: (chalicelib.fanout: ``_leanlake/sweeps/<run>.json`` and ``latest.json`` read, then written conditionally).
SWEEP_CHECKPOINT: Calls = (Call("GetObject"), Call("PutObject"))
#: Every bucket a policy names: sweeps list it (with a checkpoint where they fan out), and an upload
#: event's object is HEADed (the truth) before any policy is matched (chalicelib.sweep.list_objects, chalicelib.pipeline).
EVERY_BUCKET: Calls = (Call("ListObjectsV2"), Call("HeadObject")) + SWEEP_CHECKPOINT
#: A policy with tag filters: the object's tags are read to match it, by version where HEAD gave one.
TAG_FILTERS: Calls = (Call("GetObjectTagging", version_id=True),)
#: convert/recompress read their source: HEAD, its tags and a GET pinned to its version (chalicelib.actions.output).
READ_SOURCE: Calls = (Call("HeadObject"), Call("GetObjectTagging", version_id=True), Call("GetObject", version_id=True))
#: Writing an output (chalicelib.multipart, streamed): HEAD of the destination, a conditional PUT or multipart
#: upload carrying the source's tags (aborted on failure), then ranged GETs to verify what was written.
WRITE_OUTPUT: Calls = (Call("HeadObject"), Call("PutObject+tags"), Call("CreateMultipartUpload+tags"), Call("UploadPart"),
                       Call("CompleteMultipartUpload"), Call("AbortMultipartUpload"), Call("GetObject", version_id=True))
#: Copying an object onto itself in another class (chalicelib.s3.copy_in_place): CopyObject with
#: TaggingDirective COPY from its version; above 5 GB a multipart copy (UploadPartCopy from the
#: version) created with the tags read from it.
COPY_IN_PLACE: Calls = (Call("CopyObject+tags", version_id=True), Call("HeadObject", version_id=True),
                        Call("CreateMultipartUpload+tags"), Call("UploadPartCopy", version_id=True), Call("CompleteMultipartUpload"),
                        Call("AbortMultipartUpload"), Call("GetObjectTagging", version_id=True))
#: Reading Object Lock state (chalicelib.deletion, and plan's checks of deleting decisions): the
#: bucket's lock configuration, then each object's or version's retention and legal hold from HEAD.
READ_LOCKS: Calls = (Call("GetObjectLockConfiguration"), Call("HeadObject+lock", version_id=True))
#: Deleting the current object (chalicelib.deletion): locks read first, the audit object written under
#: the audit prefix in the same bucket, then DeleteObject conditional on the ETag decided on (If-Match).
DELETE: Calls = READ_LOCKS + (Call("HeadObject"), Call("PutObject"), Call("DeleteObject"))
#: ``expire: {versions: all}``: the key's versions and delete markers are listed, each deleted by VersionId.
DELETE_VERSIONS: Calls = (Call("ListObjectVersions"), Call("DeleteObject", version_id=True))
#: Merging leanlake's rules into the bucket's Lifecycle configuration (chalicelib.actions.lifecycle_rules.apply_lifecycle).
LIFECYCLE: Calls = (Call("GetBucketLifecycleConfiguration"), Call("PutBucketLifecycleConfiguration"), Call("DeleteBucketLifecycle"))
#: Writing the policy's Intelligent-Tiering configurations (IntelligentTiering.apply_to_bucket).
INTELLIGENT_TIERING: Calls = (Call("PutBucketIntelligentTieringConfiguration"),)


def calls_of(action: "Action") -> Calls:
    """The requests one configured action makes: its class's ``s3_calls``, plus those its options
    ask for (``s3_calls_by_option``: option → value up to ``:`` → calls)."""
    extra: Calls = ()
    for option, by_value in type(action).s3_calls_by_option.items():
        value = str(getattr(action, option)).partition(":")[0]
        extra += by_value.get(value, ())
    return type(action).s3_calls + extra


def policy_calls(policy: "Policy") -> Calls:
    """Every request leanlake makes in a bucket because ``policy`` names it."""
    out: Calls = EVERY_BUCKET + (TAG_FILTERS if policy.filters.tags else ())
    for action in policy.actions:
        out += calls_of(action)
    return out
