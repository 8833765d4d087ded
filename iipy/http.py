"""Pure HTTP helpers: dates, entity tags, conditional requests, CORS headers,
and the Response value every protocol returns."""

from __future__ import annotations

import email.utils
import functools
import hashlib
import re
from dataclasses import dataclass, field

from .errors import BadRequest

CORS_ALLOW_METHODS = "GET, POST, OPTIONS"
CORS_ALLOW_HEADERS = "Accept, Content-Type, X-Requested-With, If-Modified-Since, If-None-Match"
CORS_MAX_AGE = "86400"
#: C0 controls and DEL: never in a request target (RFC 9112 §3.2)
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
#: the same, but a header value may hold a tab (RFC 9110 §5.5)
_HEADER_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
#: what a URI keeps as it is in a header: printable ASCII but space
_URI_UNSAFE = re.compile(r"[^\x21-\x7e]+")


def _as_text(value: str) -> str:
    """A WSGI environ string decoded as UTF-8, once.

    PEP 3333 hands request bytes over as latin-1 text (so raw UTF-8 ``é``
    arrives as ``Ã©``); their bytes are decoded as UTF-8 here, invalid
    sequences kept by surrogateescape (file names in other encodings still
    reach the filesystem).  Text that is not latin-1 (an in-process caller
    passing real text) is already decoded.
    """
    if value.isascii():  # the common case: ASCII is the same text in UTF-8
        return value
    try:
        raw = value.encode("latin-1")
    except UnicodeEncodeError:
        return value
    return raw.decode("utf-8", "surrogateescape")


def request_text(environ: dict, name: str) -> str:
    """REQUEST_URI, QUERY_STRING or PATH_INFO as text, decoded once;
    a control character (raw CR, LF, NUL…) is a 400."""
    text = _as_text(environ.get(name) or "")
    if _CONTROL.search(text):
        raise BadRequest(f"control character in {name}")
    return text


def header_value(environ: dict, name: str, default: str = "") -> str:
    """A request header (``HTTP_HOST``…) decoded once; controls but tab are a 400,
    so nothing a client sends can end a response header line early."""
    value = environ.get(name)
    if not value:  # absent (most headers on most requests): the caller's default
        return default
    text = _as_text(value)
    if _HEADER_CONTROL.search(text):
        header = name[5:] if name.startswith("HTTP_") else name
        raise BadRequest(f"control character in header {header}")
    return text


def uri_safe(text: str) -> str:
    """``text`` (a URI or IRI) with every byte that is not printable ASCII
    percent-encoded (UTF-8), so it can stand in a Location or Link header."""

    def encode(match: re.Match[str]) -> str:
        data = match.group().encode("utf-8", "surrogateescape")
        return "".join(f"%{byte:02X}" for byte in data)

    return _URI_UNSAFE.sub(encode, text)


@dataclass
class Response:
    """A response before the common headers are added.

    ``last_modified`` (seconds since the epoch) and ``etag`` come from the
    image file; ``cacheable`` False sends ``Cache-Control: no-cache``.
    """

    status: int
    body: bytes = b""
    content_type: str = ""
    headers: list[tuple[str, str]] = field(default_factory=list)
    last_modified: float | None = None
    etag: str | None = None
    cacheable: bool = True
    cors: bool = True


@functools.lru_cache(maxsize=4096)
def _http_date(seconds: int) -> str:
    return email.utils.formatdate(seconds, usegmt=True)


def http_date(timestamp: float) -> str:
    """RFC 1123 date in GMT, e.g. ``Sat, 21 Nov 2026 04:38:30 GMT`` (memoised:
    the same few file dates are formatted on every request)."""
    return _http_date(int(timestamp))


def parse_http_date(value: str) -> float | None:
    """Seconds since the epoch for an HTTP date, or None if unparsable."""
    try:  # OverflowError: a year or zone of 20 digits (a 500 before)
        parsed = email.utils.parsedate_to_datetime(value.strip())
        if parsed is None:
            return None
        if parsed.tzinfo is None:
            import datetime as _dt

            parsed = parsed.replace(tzinfo=_dt.timezone.utc)
        return parsed.timestamp()
    except (TypeError, ValueError, IndexError, OverflowError):
        return None


def make_etag(*parts: object) -> str:
    """A weak entity tag from the parts that decide a response's bytes."""
    digest = hashlib.blake2b(repr(parts).encode("utf-8", "surrogateescape"), digest_size=12)
    return f'W/"{digest.hexdigest()}"'


def _etag_matches(header: str, etag: str) -> bool:
    header = header.strip()
    if header == "*":
        return True
    opaque = etag[2:] if etag.startswith("W/") else etag
    for candidate in header.split(","):
        candidate = candidate.strip()
        if candidate.startswith("W/"):
            candidate = candidate[2:]
        if candidate == opaque:
            return True
    return False


def not_modified(
    if_none_match: str | None,
    if_modified_since: str | None,
    etag: str | None,
    last_modified: float | None,
) -> bool:
    """RFC 9110 §13.2.2: If-None-Match decides when present, else If-Modified-Since.

    A resource is unmodified since a date if its (whole-second) mtime is not
    later than it.  iipsrv 1.1 compares with an uninitialised ``struct tm``
    and 1.2+ demands equality; neither is what caches expect.
    """
    if if_none_match:
        return etag is not None and _etag_matches(if_none_match, etag)
    if if_modified_since and last_modified is not None:
        since = parse_http_date(if_modified_since)
        return since is not None and int(last_modified) <= since
    return False


def cors_headers(origin: str) -> list[tuple[str, str]]:
    """Headers for every response when CORS is configured (value used as is)."""
    if not origin:
        return []
    return [
        ("Access-Control-Allow-Origin", origin),
        ("Access-Control-Allow-Methods", CORS_ALLOW_METHODS),
        ("Access-Control-Allow-Headers", CORS_ALLOW_HEADERS),
        ("Access-Control-Max-Age", CORS_MAX_AGE),
    ]


@dataclass(frozen=True)
class Request:
    """The parts of a web request that protocols read (built once by the app)."""

    method: str = "GET"
    query: str = ""  # the IIP request string (query string, POST body or URI_MAP result)
    uri: str = ""  # REQUEST_URI as sent
    host: str = "localhost"
    https: bool = False
    accept: str = ""
    if_none_match: str = ""
    if_modified_since: str = ""
    iiif_id: str = ""  # X-IIIF-ID header


class NotModified(Exception):
    """Control flow, not an error: the client's copy is current (304)."""

    def __init__(self, etag: str | None, last_modified: float | None) -> None:
        super().__init__("not modified")
        self.etag = etag
        self.last_modified = last_modified
