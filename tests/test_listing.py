"""A listing read as columns (chalicelib.listing) says exactly what botocore's parsing of the same page says.

Against moto's real ListObjectsV2 (keys that need XML escaping and URL encoding, pages of three, leanlake's own
objects), and, by hypothesis, against botocore's own parser on bodies shaped as S3 sends them. A page of any
other shape is left to botocore whole, and calls of the same client outside the listing are untouched."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from urllib.parse import quote_plus
from xml.sax.saxutils import escape

import botocore.session
import pytest
from botocore.handlers import decode_list_object_v2
from botocore.parsers import RestXMLParser
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from chalicelib import listing
from chalicelib.columns import Objects

ODD_KEYS = ["raw/a b.csv", "raw/a+b.csv", "raw/100%.csv", "raw/a&b<c>.csv", "raw/é/ü 名.csv", "raw/'q\".csv",
            "raw/~x", "raw/tab\tx", "_leanlake/audit/x.json", "raw/plain.csv"]
COLUMNS = ("keys", "sizes", "etags", "classes", "modified")


def _same(got: Objects, want: Objects) -> None:
    for name in COLUMNS:
        assert getattr(got, name).to_pylist() == getattr(want, name).to_pylist(), name


def test_a_listing_read_as_columns_says_what_botocore_says(s3, bucket):
    for i, key in enumerate(ODD_KEYS):
        s3.put_object(Bucket=bucket, Key=key, Body=b"x" * (i + 1), **({"StorageClass": "STANDARD_IA"} if i % 3 else {}))
    paginate = s3.get_paginator("list_objects_v2").paginate
    pages = list(listing.read_pages(s3, paginate(Bucket=bucket, PaginationConfig={"PageSize": 3})))

    assert len(pages) == 4 and all(listing.COLUMNS in page and "Contents" not in page for page in pages)
    [got] = listing.batches(bucket, pages)
    plain = [item for page in paginate(Bucket=bucket) for item in page["Contents"]]
    _same(got, Objects.from_listing(bucket, plain).without_reserved())
    assert sorted(got.keys.to_pylist()) == sorted(k for k in ODD_KEYS if not k.startswith("_leanlake/"))


def test_the_clients_other_calls_get_their_contents_as_ever(s3, bucket):
    for key in ("a", "b", "c"):
        s3.put_object(Bucket=bucket, Key=key, Body=b"x")
    pages = listing.read_pages(s3, s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, PaginationConfig={"PageSize": 2}))
    first = next(pages)
    between = s3.list_objects_v2(Bucket=bucket)  # the consumer's own call, while the listing is half read
    rest = list(pages)

    assert listing.COLUMNS in first and all(listing.COLUMNS in page for page in rest)
    assert [item["Key"] for item in between["Contents"]] == ["a", "b", "c"] and listing.COLUMNS not in between
    again = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket)
    assert [item["Key"] for page in again for item in page["Contents"]] == ["a", "b", "c"]


def test_threads_sharing_a_client_each_get_what_they_asked_for(s3, bucket):
    """The handlers act per thread: while some threads read listings as columns, others listing through the same
    client at the same moments still get botocore's ``Contents``."""
    import threading
    from concurrent.futures import ThreadPoolExecutor

    for i in range(12):
        s3.put_object(Bucket=bucket, Key=f"k{i:02d}", Body=b"x")
    start = threading.Barrier(8)
    paginate = s3.get_paginator("list_objects_v2").paginate

    def columns(_: int) -> list[bool]:
        start.wait()
        return [listing.COLUMNS in page and "Contents" not in page
                for _ in range(5) for page in listing.read_pages(s3, paginate(Bucket=bucket, PaginationConfig={"PageSize": 4}))]

    def plain(_: int) -> list[bool]:
        start.wait()
        return [len(s3.list_objects_v2(Bucket=bucket, MaxKeys=4).get("Contents", ())) == 4 for _ in range(15)]

    with ThreadPoolExecutor(8) as pool:
        read = [pool.submit(columns, i) for i in range(4)]
        asked = [pool.submit(plain, i) for i in range(4)]
        assert all(all(f.result()) for f in read) and all(all(f.result()) for f in asked)


def test_a_missing_bucket_fails_as_botocore_fails(s3):
    from botocore.exceptions import ClientError

    with pytest.raises(ClientError, match="NoSuchBucket"):
        list(listing.read_pages(s3, s3.get_paginator("list_objects_v2").paginate(Bucket="no-such-bucket-here")))


_CUT_OR_ERROR = [
    lambda body: body[:body.rfind(b"</Contents>") - 7],  # cut off inside an object, as a dropped connection leaves it
    lambda body: body[:body.rfind(b"</Contents>") + len(b"</Contents>")],  # every object whole, the page's end missing
    lambda body: (b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>InternalError</Code>'
                  b"<Message>We encountered an internal error. Please try again.</Message></Error>"),  # S3's 200 error
]


def _spoil_first(s3, spoil) -> list[bytes]:
    """Spoil the next ListObjectsV2 response body the client gets once armed (the list returned, appended to, arms
    it), before any other ``before-parse`` handler sees it: registered first on the event botocore's check is on,
    before leanlake's handler takes that check's place."""
    armed: list[bytes] = []

    def spoil_once(operation_model, response_dict, **_):
        if armed == [b"armed"] and operation_model.name == "ListObjectsV2" and response_dict["status_code"] == 200:
            armed.append(response_dict["body"])
            response_dict["body"] = spoil(response_dict["body"])

    s3.meta.events.register_first("before-parse.s3.*", spoil_once)
    return armed


@pytest.mark.parametrize("spoil", _CUT_OR_ERROR)
def test_a_page_cut_off_or_holding_an_error_is_retried_never_read(s3, bucket, spoil):
    for key in "abcde":
        s3.put_object(Bucket=bucket, Key=key, Body=b"x")
    armed = _spoil_first(s3, spoil)
    armed.append(b"armed")
    pages = listing.read_pages(s3, s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, PaginationConfig={"PageSize": 2}))

    assert [key for batch in listing.batches(bucket, pages) for key in batch.keys.to_pylist()] == list("abcde")
    assert len(armed) == 2  # the first page was spoilt once, and asked for again


@pytest.mark.parametrize("spoil", _CUT_OR_ERROR)
def test_the_clients_other_calls_keep_botocores_check(s3, bucket, spoil):
    for key in "abc":
        s3.put_object(Bucket=bucket, Key=key, Body=b"x")
    armed = _spoil_first(s3, spoil)
    list(listing.read_pages(s3, s3.get_paginator("list_objects_v2").paginate(Bucket=bucket)))  # leanlake's handler in place
    armed.append(b"armed")

    assert [item["Key"] for item in s3.list_objects_v2(Bucket=bucket)["Contents"]] == ["a", "b", "c"]
    assert len(armed) == 2  # spoilt once, retried by botocore's check


def test_a_page_read_as_columns_is_parsed_once(s3, bucket, monkeypatch):
    """botocore's 200-error test runs on what is left of a page read here (its own fields), not on its objects
    again: the whole page is parsed once."""
    for key in "abcde":
        s3.put_object(Bucket=bucket, Key=key, Body=b"x")
    checked: list[bytes] = []
    check, test = listing._botocore_200_check()
    monkeypatch.setattr(listing, "_botocore_200_check", lambda: (check, lambda status, body: checked.append(body) or test(status, body)))
    pages = list(listing.read_pages(s3, s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, PaginationConfig={"PageSize": 2})))

    assert all(listing.COLUMNS in page for page in pages) and len(checked) == len(pages) == 3
    assert not any(b"<Contents>" in body for body in checked) and all(b"<IsTruncated>" in body for body in checked)


def test_the_botocore_check_leanlake_stands_in_for_is_botocores_own():
    """leanlake's listing handler replaces botocore's 200-error check on the clients it reads listings with: this
    botocore has that check, by that name, where leanlake unregisters it (else listings are read after it, and
    parsed twice)."""
    from botocore.handlers import BUILTIN_HANDLERS

    check, _ = listing._botocore_200_check()
    assert check is not None
    assert any(event == "before-parse.s3.*" and handler is check for event, handler, *_ in BUILTIN_HANDLERS)


# --- against botocore's parser, on bodies shaped as S3 sends them --------------------------------------------------

_OPERATION = botocore.session.get_session().get_service_model("s3").operation_model("ListObjectsV2")
_KEY_TEXT = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00\ufffe\uffff"), min_size=1, max_size=40)
_CLASSES = st.sampled_from(["STANDARD", "STANDARD_IA", "GLACIER_IR", "DEEP_ARCHIVE", "INTELLIGENT_TIERING", ""])
_ETAG = st.text("0123456789abcdef-", min_size=1, max_size=40)
_OBJECT = st.tuples(_KEY_TEXT, st.integers(0, 5 * 2**40), st.integers(0, 10**9), _ETAG, _CLASSES)


def _xml_text(text: str) -> str:
    """``text`` as S3 writes element text: the XML specials escaped, a carriage return as a reference."""
    return escape(text, {'"': "&quot;", "\r": "&#13;"})


def _xml_safe(key: str) -> bool:
    """True when XML 1.0 can carry ``key`` unencoded (S3 lists other keys only with ``encoding-type=url``)."""
    return all(c in "\t\n\r" or ord(c) >= 0x20 for c in key)


def _body(objects: list[tuple[str, int, int, str, str]], url: bool, spaced: bool) -> bytes:
    gap = "\n  " if spaced else ""
    epoch = datetime(2000, 1, 1, tzinfo=timezone.utc)
    items = "".join(
        f"{gap}<Contents>{gap}<Key>{_xml_text(quote_plus(key, safe='/~') if url else key)}</Key>"
        f"{gap}<LastModified>{(epoch + timedelta(milliseconds=ms)).strftime('%Y-%m-%dT%H:%M:%S.%f')[:-3]}Z</LastModified>"
        f"{gap}<ETag>&quot;{etag}&quot;</ETag><ChecksumAlgorithm>CRC32</ChecksumAlgorithm>{gap}<Size>{size}</Size>"
        f"{gap}<StorageClass>{cls}</StorageClass></Contents>"
        for key, size, ms, etag, cls in objects)
    return ('<?xml version="1.0" encoding="UTF-8"?>\n<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">'
            f"<Name>lake</Name><Prefix></Prefix><KeyCount>{len(objects)}</KeyCount><MaxKeys>1000</MaxKeys>"
            f"{'<EncodingType>url</EncodingType>' if url else ''}<IsTruncated>true</IsTruncated>{items}"
            "<NextContinuationToken>token+/=</NextContinuationToken></ListBucketResult>").encode()


def _botocore(body: bytes) -> dict:
    parsed = RestXMLParser().parse({"body": body, "headers": {}, "status_code": 200}, _OPERATION.output_shape)
    decode_list_object_v2(parsed, {"encoding_type_auto_set": True})
    return parsed


def _ours(body: bytes) -> tuple[Objects, dict]:
    read = listing.read_contents(body)
    assert read is not None
    listed, rest = read
    parsed = RestXMLParser().parse({"body": rest, "headers": {}, "status_code": 200}, _OPERATION.output_shape)
    parsed[listing.COLUMNS] = listed
    listing._decode_keys(parsed, {"encoding_type_auto_set": True})  # what botocore's after-call runs
    return parsed.pop(listing.COLUMNS).objects("lake"), parsed


@settings(max_examples=300, deadline=None)
@given(st.lists(_OBJECT, min_size=1, max_size=30), st.booleans(), st.booleans())
def test_any_page_reads_as_botocore_reads_it(objects, url, spaced):
    assume(url or all(_xml_safe(key) for key, *_ in objects))
    body = _body(objects, url, spaced)
    want = _botocore(body)
    got, rest = _ours(body)

    _same(got, Objects.from_listing("lake", want["Contents"]))
    assert {k: v for k, v in rest.items() if k != "ResponseMetadata"} == {
        k: v for k, v in want.items() if k not in ("Contents", "ResponseMetadata")}


@pytest.mark.parametrize("mangle", [
    lambda b: b.replace(b"<Key>", b"<Key>\r", 1),                     # XML would normalise the carriage return
    lambda b: b.replace(b"<Key>", b"<Key><![CDATA[x]]>", 1),          # CDATA
    lambda b: b.replace(b"<StorageClass>STANDARD</StorageClass>", b"", 1),  # a field missing
    lambda b: b.replace(b"<Size>1</Size>", b"<Size>one</Size>", 1),   # a size that is not one
    lambda b: b.replace(b"<Key>a</Key>", b"<Key/>", 1),               # an empty-tagged field
    lambda b: b.replace(b"<Key>a</Key>", b"<Key>\xff</Key>", 1),      # not UTF-8
    lambda b: b.replace(b"2000-01-01T00:00:00.000Z", b"yesterday", 1),  # a time that does not parse
    lambda b: b.replace(b"<Key>b</Key>", b"").replace(b"<Key>a</Key>", b"<Key>a</Key><Key>b</Key>"),  # counts right, one object two keys
    lambda b: b.replace(b"</Contents><Contents>", b"</Contents><CommonPrefixes><Prefix>p/</Prefix></CommonPrefixes><Contents>", 1),
])
def test_a_page_of_any_other_shape_is_left_to_botocore(mangle):
    body = mangle(_body([("a", 1, 0, "e1", "STANDARD"), ("b", 2, 0, "e2", "STANDARD")], url=False, spaced=False))
    assert listing.read_contents(body) is None


def test_a_page_without_contents_is_left_to_botocore():
    assert listing.read_contents(_body([], url=False, spaced=False)) is None


@pytest.mark.parametrize("written", ["2026-11-30T10:00:00.000Z", "2026-11-30T10:00:00Z", "2026-11-30T10:00:00.123456Z",
                                     "2026-11-30T10:00:00+02:00", "2026-11-30T10:00:00.5-05:30"])
def test_times_in_any_iso_form_an_s3_compatible_server_writes_read_as_botocore_reads_them(written):
    body = _body([("a", 1, 0, "e", "STANDARD")], url=False, spaced=False).replace(b"2000-01-01T00:00:00.000Z", written.encode())
    got, _ = _ours(body)
    assert got.modified.to_pylist() == Objects.from_listing("lake", _botocore(body)["Contents"]).modified.to_pylist()
