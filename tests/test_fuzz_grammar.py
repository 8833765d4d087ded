"""Property-based fuzzing of every protocol's grammar (issue 11), in-process.

For hostile requests of IIP, IIIF, DeepZoom and Zoomify (tests/grammar_strategies.py:
numbers of any size, floats, Unicode digits, duplicated and conflicting
parameters, random bytes, every method), the application must

* never answer 5xx, and never log a traceback;
* answer errors in the protocol's own form: IIP ``Error/…`` lines
  (``application/vnd.netfpx``) or a one-line ``text/plain`` message; IIIF,
  DeepZoom and Zoomify a one-line ``text/plain`` message; 405 with ``Allow``;
* send headers that are latin-1 text without CR, LF or other controls
  (nothing from the request can split a header), a Content-Length that is the
  body's, no filesystem path in any body;
* send no IIIF image larger than MAX_CVT on either side (rotations included).

CI runs a fixed, derandomized budget (:data:`EXAMPLES` per grammar, a few
seconds); ``pytest -m fuzz_long tests/test_fuzz_grammar.py`` runs
:data:`LONG_EXAMPLES` per grammar with fresh random seeds.
"""

from __future__ import annotations

import io
import logging
import re

import pytest
from grammar_strategies import Call, requests
from hypothesis import HealthCheck, given, settings
from PIL import Image
from wsgi import Result, call, make_app

EXAMPLES = 400
LONG_EXAMPLES = 20_000
MAX_CVT = 320
PROTOCOLS = ("iip", "iiif", "deepzoom", "zoomify")
IIP_ERRORS = re.compile(rb"(?:Error/\d+:[^\r\n]*\r\n)+\Z")
CONTROL = re.compile(r"[\x00-\x1f\x7f]")
IMAGE_TYPES = ("image/jpeg", "image/png", "image/webp", "image/tiff")
SETTINGS = dict(suppress_health_check=list(HealthCheck), deadline=None, database=None)


class Tracebacks(logging.Handler):
    """Every log record that carries an exception (``log.exception``)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.exc_info:
            self.records.append(record)


@pytest.fixture(scope="module")
def fuzz(image_dir, images):
    """The application under fuzz (small MAX_CVT keeps every render cheap), the
    image directory, and the traceback collector."""
    app = make_app(FILESYSTEM_PREFIX=str(image_dir) + "/", MAX_CVT=str(MAX_CVT),
                   IIIF_DELIMITER="_", CORS="*")
    handler = Tracebacks()
    logger = logging.getLogger("iipy")
    logger.addHandler(handler)
    yield app, str(image_dir), handler
    logger.removeHandler(handler)


def send(app, request: Call) -> Result:
    return call(app, request.query, method=request.method, headers=request.headers,
                uri=request.uri, body=request.body)


def check(protocol: str, request: Call, result: Result, image_dir: str,
          handler: Tracebacks) -> None:
    """Every property a response must have; the request is in every message."""
    where = f"{request.method} {request.uri!r} body={request.body[:60]!r}"
    assert result.status < 500, f"{result.status} for {where}: {result.body[:200]!r}"
    assert not handler.records, f"traceback logged for {where}: {handler.records[0].getMessage()}"
    assert b"Traceback" not in result.body, where
    assert image_dir.encode() not in result.body, f"path in the body for {where}"
    for name, value in result.headers:
        assert isinstance(value, str) and not CONTROL.search(name + value), (where, name, value)
        try:  # what a WSGI server must be able to send
            value.encode("latin-1")
        except UnicodeEncodeError:
            raise AssertionError(f"header {name} is not latin-1 for {where}") from None
    ctype = result.header("Content-Type") or ""
    if request.method.upper() != "HEAD" and result.status not in (204, 304):
        assert result.header("Content-Length") == str(len(result.body)), where
    if result.status == 405:
        assert result.header("Allow"), where
    if result.status >= 400 and request.method.upper() != "HEAD":
        if protocol == "iip" and ctype == "application/vnd.netfpx":
            assert IIP_ERRORS.match(result.body), f"IIP error form for {where}: {result.body!r}"
        else:
            assert ctype == "text/plain; charset=utf-8", f"{ctype} for {where}"
            assert result.body.endswith(b"\n") and result.body.count(b"\n") == 1, where
            assert len(result.body) < 400, where
    if (protocol == "iiif" and result.status == 200 and ctype in IMAGE_TYPES
            and request.method.upper() != "HEAD"):
        width, height = Image.open(io.BytesIO(result.body)).size
        assert width <= MAX_CVT and height <= MAX_CVT, f"{width}x{height} for {where}"


def fuzz_protocol(protocol: str, examples: int, derandomize: bool):
    @settings(max_examples=examples, derandomize=derandomize, **SETTINGS)
    @given(request=requests(protocol))
    def run(fuzz, request: Call) -> None:
        app, image_dir, handler = fuzz
        handler.records.clear()
        check(protocol, request, send(app, request), image_dir, handler)

    return run


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_grammar_fuzz(fuzz, protocol):
    """A fixed budget of derandomized examples per grammar (the same in every CI run)."""
    fuzz_protocol(protocol, EXAMPLES, derandomize=True)(fuzz)


@pytest.mark.fuzz_long
@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_grammar_fuzz_long(fuzz, protocol):
    """The long run, fresh random examples: ``pytest -m fuzz_long``."""
    fuzz_protocol(protocol, LONG_EXAMPLES, derandomize=False)(fuzz)
