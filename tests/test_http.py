import pytest

from iipy.http import cors_headers, http_date, make_etag, not_modified, parse_http_date

MTIME = 1_700_000_000.7  # Tue, 14 Nov 2023 22:13:20 GMT


def test_http_date_format():
    assert http_date(MTIME) == "Tue, 14 Nov 2023 22:13:20 GMT"
    assert parse_http_date("Tue, 14 Nov 2023 22:13:20 GMT") == 1_700_000_000


@pytest.mark.parametrize("value", ["", "yesterday", "Tue, 99 Nov 2023 22:13:20 GMT"])
def test_unparsable_dates_are_none(value):
    assert parse_http_date(value) is None


@pytest.mark.parametrize(
    ("ims", "expected"),
    [
        ("Tue, 14 Nov 2023 22:13:20 GMT", True),  # same second
        ("Tue, 14 Nov 2023 22:13:21 GMT", True),  # later
        ("Tue, 14 Nov 2023 22:13:19 GMT", False),  # earlier: modified since
        ("garbage", False),
    ],
)
def test_if_modified_since(ims, expected):
    assert not_modified(None, ims, None, MTIME) is expected


def test_if_none_match_wins_over_if_modified_since():
    etag = make_etag("a", 1)
    later = "Tue, 14 Nov 2030 22:13:20 GMT"
    assert not_modified(etag, later, etag, MTIME)
    assert not not_modified('W/"other"', later, etag, MTIME)
    assert not_modified(f'"x", {etag}', None, etag, MTIME)
    assert not_modified("*", None, etag, MTIME)
    assert not_modified(etag.removeprefix("W/"), None, etag, MTIME)  # weak comparison


def test_etag_depends_on_every_part():
    assert make_etag("a", 1) == make_etag("a", 1)
    assert make_etag("a", 1) != make_etag("a", 2)
    assert make_etag("a", 1).startswith('W/"')


def test_cors_headers_only_when_configured():
    assert cors_headers("") == []
    headers = dict(cors_headers("*"))
    assert headers["Access-Control-Allow-Origin"] == "*"
    assert "X-Requested-With" in headers["Access-Control-Allow-Headers"]
