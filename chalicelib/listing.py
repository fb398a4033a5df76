"""A ListObjectsV2 listing read as Arrow columns: a million listed objects in seconds, not minutes.

Why: botocore turns a page of 1,000 listed objects into dicts in about 125 ms of CPU, 90 of them
in dateutil reading ``LastModified`` (bench/RESULTS.md). A sweep that lists a million objects
spent two minutes there before planning them, which costs two seconds. Here the page's
``Contents`` are read a column at a time by Arrow kernels, in about 2 µs an object (bench/bench_plan.py).

How: while ``read_pages`` reads a page, a handler on botocore's ``before-parse`` event of ListObjectsV2
takes the ``<Contents>`` elements out of the response body and reads them (``read_contents``); botocore
parses what is left (``IsTruncated``, the continuation token, ``EncodingType``…) as always, and the
page carries the objects under ``COLUMNS`` instead of ``Contents``. An ``after-call`` handler
URL-decodes the keys where botocore would have (``encoding-type=url``, which botocore asks for).
Signing, retries, errors and pagination stay botocore's. On such a client the handler stands in for
botocore's 200-error check, which parsed every page whole before botocore parsed it again: the check's
own test runs on what is left of a page read here, so a cut-off page or a 200 ``<Error>`` is still
retried, never read, and every other response gets botocore's check itself.

Only a page of the shape S3 sends is read here: UTF-8, every ``<Contents>`` with one each of
``Key``, ``LastModified``, ``ETag``, ``Size`` and ``StorageClass``, none of them empty-tagged,
no CDATA, no carriage return (which XML would normalise), sizes and times that parse. Any other
page is left to botocore whole (``read_contents`` gives None). A key or ETag holding an XML
character reference is read by the XML parser. The handlers act only on a request made by
``read_pages``, in its thread: every other call of the client gets its ``Contents`` as usual.

Example (a page as S3 sends it):
    >>> body = (b'<?xml version="1.0" encoding="UTF-8"?><ListBucketResult><Name>b</Name><KeyCount>1</KeyCount>'
    ...         b'<IsTruncated>false</IsTruncated><Contents><Key>raw/a&amp;b.csv</Key>'
    ...         b'<LastModified>2026-11-30T10:00:00.000Z</LastModified><ETag>&quot;9b2c&quot;</ETag>'
    ...         b'<Size>2048</Size><StorageClass>STANDARD</StorageClass></Contents></ListBucketResult>')
    >>> listed, rest = read_contents(body)
    >>> listed.keys.to_pylist(), listed.sizes.to_pylist(), listed.etags.to_pylist(), listed.classes.to_pylist()
    (['raw/a&b.csv'], [2048], ['9b2c'], ['STANDARD'])
    >>> rest.decode().partition("?>")[2]
    '<ListBucketResult><Name>b</Name><KeyCount>1</KeyCount><IsTruncated>false</IsTruncated></ListBucketResult>'
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from functools import cache
from typing import Any, Iterable, Iterator, Mapping

from chalicelib.columns import BATCH_OBJECTS, Objects, strings, url_decoded, whole_text

#: The page key under which ``read_pages`` gives a page's objects as columns (``Listed``), in place of ``Contents``.
COLUMNS = "LeanlakeListed"

_FIELDS = ("Key", "LastModified", "ETag", "Size", "StorageClass")
_OPERATION = "ListObjectsV2"
_EVENT = f"s3.{_OPERATION}"
_reading = threading.local()
#: Past any token's length (an ``int32`` offset): ``binary_slice`` without a stop fails in pyarrow 26.
_TOKEN_MAX = 2**31 - 1


@dataclass(frozen=True)
class Listed:
    """One page's objects as Arrow columns, as ``Objects.from_listing`` would hold them: ``etags`` without their
    quotes, ``modified`` as ``timestamp[us, tz=UTC]``."""

    keys: Any
    sizes: Any
    etags: Any
    classes: Any
    modified: Any

    def __len__(self) -> int:
        return len(self.keys)

    def objects(self, bucket: str) -> Objects:
        """The page's objects as a batch of ``bucket``'s."""
        import pyarrow as pa

        return Objects(bucket, self.keys, self.sizes, self.etags, pa.nulls(len(self), pa.string()), self.classes, self.modified)

    def url_decoded(self) -> "Listed":
        """The page with its keys URL-decoded (``+`` as a space), as botocore decodes ``Contents[].Key``."""
        return Listed(url_decoded(self.keys), self.sizes, self.etags, self.classes, self.modified)


def batches(bucket: str, pages: Iterable[Mapping[str, Any]]) -> Iterator[Objects]:
    """The objects of ``bucket``'s ListObjectsV2 pages, leanlake's own left out, in batches of about
    ``BATCH_OBJECTS``: a batch that size spreads each Arrow kernel's fixed cost (microseconds) over enough objects
    to vanish."""
    run: list[Objects] = []
    count = 0
    for page in pages:
        part = page_objects(bucket, page).without_reserved()
        run.append(part)
        count += len(part)
        if count >= BATCH_OBJECTS:
            yield Objects.joined(bucket, run)
            run, count = [], 0
    if count:
        yield Objects.joined(bucket, run)


def page_objects(bucket: str, page: Mapping[str, Any]) -> Objects:
    """One page's objects, leanlake's own (``_leanlake/``) among them, from its columns (``read_pages``, under
    ``COLUMNS``) or from boto3's ``Contents`` dicts. Planning never matches leanlake's own; a sweep continuation
    still passes them, to checkpoint past them."""
    listed = page.get(COLUMNS)
    return Objects.from_listing(bucket, page.get("Contents", ())) if listed is None else listed.objects(bucket)


def read_pages(s3: Any, pages: Iterable[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """The ListObjectsV2 ``pages`` (a paginator's, of the client ``s3``), each read with its objects as columns
    under ``COLUMNS`` where the page has the shape S3 sends (else under ``Contents``, as botocore parsed it)."""
    events = s3.meta.events
    botocore_check, _ = _botocore_200_check()
    if botocore_check is None:  # a botocore without it by that name: read after its own check
        events.register(f"before-parse.{_EVENT}", _take_contents, unique_id="leanlake-listing-read")
    else:  # in its place, on this client only (each client has its emitter): see _take_contents. Registered before
        # botocore's is unregistered, so a response another thread gets meanwhile has one check or both, never none.
        events.register_first("before-parse.s3.*", _take_contents, unique_id="leanlake-listing-read")
        events.unregister("before-parse.s3.*", botocore_check)
    events.register(f"after-call.{_EVENT}", _decode_keys, unique_id="leanlake-listing-decode")
    iterator = iter(pages)
    while True:
        _reading.on = True  # only this page's request, in this thread: the consumer's own calls run below, with it off
        try:
            page = next(iterator, None)
        finally:
            _reading.on = False
        if page is None:
            return
        yield page


@cache
def _botocore_200_check() -> tuple[Any, Any]:
    """botocore's ``before-parse`` check of an S3 response (``_handle_200_error``: a 200 whose body is an
    ``<Error>`` or is cut off is made a 500, which is retried) and the test it applies to a body, or (None, None)
    where this botocore has none by those names. Looked up at the first listing, not at import: ``botocore.handlers``
    would add a quarter of a second to importing the app."""
    try:
        from botocore.handlers import _handle_200_error, _looks_like_special_case_error
    except ImportError:
        return None, None
    return _handle_200_error, _looks_like_special_case_error


def _take_contents(operation_model: Any, response_dict: dict[str, Any], customized_response_dict: dict[str, Any],
                   **kwargs: Any) -> None:
    """botocore's ``before-parse`` handler, on a client ``read_pages`` reads, in place of botocore's 200-error check:
    that check parses every page's XML whole (~10 µs an object, more than reading it here), and botocore then
    parses it again. A page ``read_pages`` asked for has its ``Contents`` read as columns and taken out of the body,
    and botocore's test runs on what is left (the page's own fields): a cut-off page is cut in what is left, past
    the last whole ``</Contents>``, and an ``<Error>`` has no ``Contents`` to read. Any other response, and a page
    that is not read here, gets botocore's check as ever."""
    body = response_dict.get("body")
    botocore_check, error_or_cut = _botocore_200_check()
    if (getattr(_reading, "on", False) and operation_model.name == _OPERATION and response_dict.get("status_code") == 200
            and isinstance(body, bytes)):
        read = read_contents(body)
        if read is not None and (error_or_cut is None or not error_or_cut(200, read[1])):
            customized_response_dict[COLUMNS], response_dict["body"] = read
            return
    if botocore_check is not None:
        botocore_check(operation_model=operation_model, response_dict=response_dict, **kwargs)


def _decode_keys(parsed: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
    """botocore's ``after-call`` handler: the keys URL-decoded when botocore asked for them encoded (its
    ``decode_list_object_v2``, for ``Contents`` it did not see)."""
    listed = parsed.get(COLUMNS)
    if listed is not None and parsed.get("EncodingType") == "url" and context.get("encoding_type_auto_set"):
        parsed[COLUMNS] = listed.url_decoded()


def read_contents(body: bytes) -> tuple[Listed, bytes] | None:
    """The ``<Contents>`` of a ListObjectsV2 response body as columns, and the body without them; None when the
    page is not of the shape S3 sends (see the module docstring), for botocore to parse whole."""
    first, last = body.find(b"<Contents>"), body.rfind(b"</Contents>")
    if first < 0 or last < first or b"\r" in body or b"<![CDATA[" in body:
        return None
    end = last + len(b"</Contents>")
    contents = body[first:end]
    if b"<CommonPrefixes>" in contents:  # not one run of Contents: botocore's to read
        return None
    import pyarrow as pa
    import pyarrow.compute as pc

    try:
        whole = whole_text(contents)
        whole.validate(full=True)  # UTF-8, as S3 sends
        tokens = pc.split_pattern(whole, pattern="<").flatten()  # each "Tag>text" (or "/Tag>", whitespace)
        owner = pc.cumulative_sum(pc.starts_with(tokens, pattern="Contents>").cast(pa.int32()))  # each token's object, from 1
        count = owner[-1].as_py()
        fields = {}
        for tag in _FIELDS:
            opened = pc.starts_with(tokens, pattern=f"{tag}>")
            owners = owner.filter(opened)
            # one of each field an object: ``count`` of them, in ``count`` objects, each after the one before
            if len(owners) != count or not pc.all(pc.less(owners[:-1], owners[1:]), min_count=0).as_py():
                return None
            # past "Tag>" (ASCII, so on a character boundary): as bytes, which is not a walk over code points
            fields[tag] = pc.binary_slice(tokens.filter(opened).view(pa.binary()), start=len(tag) + 1,
                                          stop=_TOKEN_MAX).view(pa.string())
        keys = _unescaped(fields["Key"])
        etags = pc.utf8_trim(_unescaped(pc.replace_substring(fields["ETag"], pattern="&quot;", replacement='"')), characters='"')
        sizes = fields["Size"].cast(pa.int64())
        modified = fields["LastModified"].cast(pa.timestamp("us", tz="UTC"))
    except (pa.ArrowInvalid, SyntaxError):  # not UTF-8, a size or a time that does not parse, a bad reference
        return None
    classes = fields["StorageClass"]
    if pc.min(pc.binary_length(classes)).as_py() == 0:  # said as empty: STANDARD, as a class not said
        classes = pc.replace_substring_regex(classes, pattern="^$", replacement="STANDARD")
    return Listed(keys, sizes, etags, classes, modified), body[:first] + body[end:]


def _unescaped(texts: Any) -> Any:
    """``texts`` (an Arrow string column of XML character data) with their character references resolved: by the
    XML parser, for the few that hold one."""
    import pyarrow.compute as pc

    if not pc.any(pc.match_substring(texts, "&")).as_py():
        return texts
    from xml.etree.ElementTree import fromstring

    return strings([fromstring(f"<t>{text}</t>").text or "" if "&" in text else text for text in texts.to_pylist()])
