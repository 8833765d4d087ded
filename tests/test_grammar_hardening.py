"""Issue 11, items 3, 5 and 7: numbers, rotated MAX_CVT, raw UTF-8 and controls.

* Every number of every protocol goes through :mod:`iipy.numeric`: more digits
  than Python's 4,300-digit ``int`` limit, values beyond a C ``int``,
  infinities, Unicode digits and regions that would compute to infinity are
  the protocol's 400, never a 500 (``ValueError``/``OverflowError``).
* MAX_CVT bounds what is sent, so an arbitrarily rotated IIIF image fits it too.
* Raw UTF-8 in a request (``/iiif/café.tif``) is decoded from its bytes once and
  works like its percent-encoding; control characters in the request target or
  a header are a 400, and nothing a client sends can split a response header.
"""

from __future__ import annotations

import io
import math
import shutil

import pytest
from PIL import Image
from wsgi import call, make_app

from iipy.errors import BadRequest

HUGE = "9" * 5000  # past sys.get_int_max_str_digits() (4300)
BIG = "1" + "0" * 309  # 10^309: an int whose float is infinite
UNICODE_NAME = "café 中.tif"


def raw(text: str) -> str:
    """Text sent as its UTF-8 bytes, as a web server hands them over (latin-1, PEP 3333)."""
    return text.encode("utf-8").decode("latin-1")


@pytest.fixture(scope="module")
def prefix(image_dir, images):
    shutil.copy(images.rgb, image_dir / UNICODE_NAME)
    return str(image_dir) + "/"


@pytest.fixture(scope="module")
def app(prefix):
    return make_app(FILESYSTEM_PREFIX=prefix, IIIF_DELIMITER="_")


def get(app, query: str = "", uri: str | None = None, **kwargs):
    return call(app, query, uri=uri, **kwargs)


def assert_plain_400(result) -> None:
    assert result.status == 400, result.body[:200]
    assert result.header("Content-Type") == "text/plain; charset=utf-8"
    assert result.body.count(b"\n") == 1 and len(result.body) < 200


# -- numbers: IIP ---------------------------------------------------------------------

IIP_NUMBERS = [
    f"FIF=rgb.tif&JTL=0,{HUGE}", f"FIF=rgb.tif&JTL={HUGE},0", f"FIF=rgb.tif&PTL=0,{HUGE}",
    f"FIF=rgb.tif&WID={HUGE}&CVT=jpeg", f"FIF=rgb.tif&HEI={HUGE}&CVT=jpeg",
    f"FIF=rgb.tif&QLT={HUGE}&JTL=0,0", f"FIF=rgb.tif&SDS={HUGE}&JTL=0,0",
    f"FIF=rgb.tif&SDS=0,{HUGE}&JTL=0,0", f"FIF=rgb.tif&LYR={HUGE}&JTL=0,0",
    f"FIF=rgb.tif&MINMAX={HUGE}:0,1&JTL=0,0", f"FIF=rgb.tif&MINMAX=0:{HUGE},1&JTL=0,0",
    f"FIF=rgb.tif&RGN=0,0,{HUGE},1&CVT=jpeg", f"FIF=rgb.tif&WID={BIG}&CVT=jpeg",
    f"FIF=rgb.tif&HEI={BIG}&CVT=jpeg", f"FIF=rgb.tif&CNT={HUGE}&JTL=0,0",
    f"FIF=rgb.tif&ROT={HUGE}&JTL=0,0", f"FIF=rgb.tif&SHD={HUGE},30&JTL=0,0",
    "FIF=rgb.tif&MINMAX=²:0,1&JTL=0,0",  # str.isdigit() but not int()
    "FIF=rgb.tif&WID=2147483648&CVT=jpeg",  # beyond a C int
    "FIF=rgb.tif&RGN=0,0,1e400,1&CVT=jpeg",  # not finite
    "FIF=rgb.tif&WID=١٠٠&CVT=jpeg",  # Arabic-Indic digits
]


@pytest.mark.parametrize("query", IIP_NUMBERS)
def test_iip_numbers_out_of_bounds_are_400(app, query):
    assert_plain_400(get(app, query))


@pytest.mark.parametrize("query", [
    "FIF=rgb.tif&RGN=0,0,1e-320,1&WID=100&CVT=jpeg",  # the region's aspect is 1e-320
    "FIF=rgb.tif&RGN=0,0,1,1e-320&HEI=100&CVT=jpeg",
    "FIF=rgb.tif&RGN=0,0,1e-320,1e-320&WID=100&HEI=100&CVT=jpeg",
    "FIF=rgb.tif&WID=2147483647&CVT=jpeg",  # the largest C int: MAX_CVT bounds it
])
def test_iip_degenerate_regions_render(app, query):
    result = get(app, query)
    assert result.status == 200, result.body[:200]
    width, height = Image.open(io.BytesIO(result.body)).size
    assert 1 <= width <= 5000 and 1 <= height <= 5000


def test_iip_atoi_reading_is_kept(app):
    """iipsrv reads JTL and WID with atoi: trailing text is ignored (kept)."""
    assert get(app, "FIF=rgb.tif&JTL=0,0abc").status == 200
    result = get(app, "FIF=rgb.tif&WID=100px&CVT=jpeg")
    assert result.status == 200
    assert Image.open(io.BytesIO(result.body)).size[0] == 100


# -- numbers: IIIF, DeepZoom, Zoomify -------------------------------------------------------

PATH_NUMBERS = [
    f"/iiif/rgb.tif/{HUGE},0,10,10/max/0/default.jpg",
    f"/iiif/rgb.tif/0,0,{HUGE},10/max/0/default.jpg",
    f"/iiif/rgb.tif/pct:0,0,{BIG},{BIG}/max/0/default.jpg",  # (x + w) * width would be inf
    f"/iiif/rgb.tif/pct:{HUGE},0,10,10/max/0/default.jpg",
    f"/iiif/rgb.tif/full/{HUGE},/0/default.jpg",
    f"/iiif/rgb.tif/full/,{HUGE}/0/default.jpg",
    f"/iiif/rgb.tif/full/!{HUGE},{HUGE}/0/default.jpg",
    f"/iiif/rgb.tif/full/pct:{HUGE}/0/default.jpg",
    f"/iiif/rgb.tif/full/max/{HUGE}/default.jpg",
    f"/iiif/rgb.tif/full/max/!{HUGE}/default.jpg",
    f"/iiif/rgb.tif_{HUGE}/info.json",  # IIIF_DELIMITER page
    "/iiif/rgb.tif_²/info.json",
    "/iiif/rgb.tif/full/١٠٠,/0/default.jpg",  # Unicode digits are not IIIF's
    "/iiif/rgb.tif/full/max/٤٥/default.jpg",
    "/iiif/rgb.tif/full/2147483648,/0/default.jpg",
    f"/deepzoom/rgb.tif_files/{HUGE}/0_0.jpg",
    f"/deepzoom/rgb.tif_files/1/{HUGE}_0.jpg",
    f"/deepzoom/rgb.tif_files/1/0_{HUGE}.jpg",
    "/deepzoom/rgb.tif_files/²/0_0.jpg",
    "/deepzoom/rgb.tif_files/٣/0_0.jpg",
    f"/zoomify/rgb.tif/TileGroup0/{HUGE}-0-0.jpg",
    f"/zoomify/rgb.tif/TileGroup0/0-{HUGE}-0.jpg",
    f"/zoomify/rgb.tif/TileGroup0/0-0-{HUGE}.jpg",
    "/zoomify/rgb.tif/TileGroup0/١-0-0.jpg",
]


@pytest.mark.parametrize("uri", PATH_NUMBERS)
def test_path_protocol_numbers_out_of_bounds_are_400(app, uri):
    assert_plain_400(get(app, uri=uri))


@pytest.mark.parametrize("command", ["IIIF", "DeepZoom", "Zoomify"])
def test_query_form_numbers_are_400_too(app, command):
    argument = {"IIIF": f"rgb.tif/full/{HUGE},/0/default.jpg",
                "DeepZoom": f"rgb.tif_files/{HUGE}/0_0.jpg",
                "Zoomify": f"rgb.tif/TileGroup0/{HUGE}-0-0.jpg"}[command]
    assert_plain_400(get(app, f"{command}={argument}"))


def test_long_but_valid_numbers_still_work(app):
    assert get(app, uri="/iiif/rgb.tif/0,0,99999999,99999999/max/0/default.jpg").status == 200
    assert get(app, uri="/iiif/rgb.tif/full/max/359.99999999/default.jpg").status == 200
    assert get(app, uri="/deepzoom/rgb.tif_files/10/0_0.jpg").status == 200
    assert get(app, "FIF=rgb.tif&RGN=0.25,0.25,0.5,0.5&WID=100&CVT=jpeg").status == 200


# -- numeric, the layer itself ------------------------------------------------------------

# (imported in the tests, so that on a tree without the module each test fails alone)

@pytest.mark.parametrize(("function", "text", "expected"), [
    ("integer", "42", 42),
    ("integer", "0000042", 42),
    ("decimal", " 2.5e3 ", 2500.0),
    ("leading_integer", "  -12abc", -12),
    ("leading_decimal", "0.5,", 0.5),
])
def test_numeric_accepts(function, text, expected):
    from iipy import numeric

    assert getattr(numeric, function)(text, "X") == expected


@pytest.mark.parametrize(("function", "text"), [
    ("integer", HUGE), ("integer", "-1"), ("integer", "²"),
    ("integer", "١"), ("integer", "1 "), ("integer", "2147483648"),
    ("decimal", "inf"), ("decimal", "nan"), ("decimal", "1e309"),
    ("decimal", "1e16"), ("decimal", HUGE), ("leading_integer", "abc"),
    ("leading_decimal", "-1e400"), ("leading_integer", "\u00a012"),
])
def test_numeric_refuses(function, text):
    from iipy import numeric
    from iipy.errors import BadNumber

    with pytest.raises(BadNumber) as caught:
        getattr(numeric, function)(text, "X")
    assert isinstance(caught.value, BadRequest) and caught.value.status == 400
    assert len(caught.value.message) < 120


# -- MAX_CVT bounds rotated IIIF output ---------------------------------------------------------

def image_size(result) -> tuple[int, int]:
    assert result.status == 200, result.body[:200]
    return Image.open(io.BytesIO(result.body)).size


def test_rotated_output_within_max_cvt_issue_example(prefix):
    """The issue's case: ``full/^5000,/45`` gave 6188×6188 with MAX_CVT=5000."""
    app = make_app(FILESYSTEM_PREFIX=prefix, MAX_CVT="5000")
    width, height = image_size(get(app, uri="/iiif/rgb.tif/full/^5000,/45/default.jpg"))
    assert width <= 5000 and height <= 5000 and width > 4900


@pytest.mark.parametrize("path", [
    "full/max/30/default.jpg", "full/^max/45/default.png", "full/600,/45/default.jpg",
    "full/!600,600/10/default.jpg", "full/pct:60/80/default.jpg", "square/max/!135/gray.png",
    "full/600,420/359.5/default.webp",
])
def test_rotated_output_within_max_cvt(prefix, path):
    app = make_app(FILESYSTEM_PREFIX=prefix, MAX_CVT="600")
    width, height = image_size(get(app, uri=f"/iiif/rgb.tif/{path}"))
    assert width <= 600 and height <= 600
    assert max(width, height) >= 560  # scaled to fit, not shrunk further


def test_rotated_canonical_link_names_the_fitted_size(prefix):
    app = make_app(FILESYSTEM_PREFIX=prefix, MAX_CVT="600")
    result = get(app, uri="/iiif/rgb.tif/full/600,/45/default.jpg")
    link = result.header("Link")
    assert "/full/600,420/" not in link and "/45/default.jpg>" in link


def test_quarter_turns_unchanged(prefix):
    app = make_app(FILESYSTEM_PREFIX=prefix, MAX_CVT="600")
    assert image_size(get(app, uri="/iiif/rgb.tif/full/max/90/default.jpg")) == (420, 600)


@pytest.mark.parametrize(("width", "height", "degrees"), [
    (5000, 2812, 45), (1, 1, 45), (1000, 1, 30), (333, 777, 271.5), (640, 480, 0.001),
])
def test_rotated_size_bounds_the_rendered_canvas(width, height, degrees):
    from iipy.render.geometry import rotated_size

    bound = rotated_size(width, height, degrees)
    turned = Image.new("L", (width, height)).rotate(-degrees, expand=True)
    assert turned.size[0] <= bound[0] <= turned.size[0] + 2
    assert turned.size[1] <= bound[1] <= turned.size[1] + 2


def test_fit_rotated_issue_figures():
    from iipy.render.geometry import fit_rotated, rotated_size

    width, height = fit_rotated(5000, 2812, 45, 5000)
    assert (abs(width - 4524) <= 1, abs(height - 2544) <= 1) == (True, True)
    assert max(rotated_size(width, height, 45)) <= 5000
    assert math.isclose(width / height, 5000 / 2812, rel_tol=0.01)
    assert fit_rotated(100, 50, 45, 5000) == (100, 50)  # fits: unchanged
    assert fit_rotated(7000, 3000, 45, -1) == (7000, 3000)  # no limit


# -- raw UTF-8 and control characters -------------------------------------------------------

@pytest.mark.parametrize("uri", [
    f"/iiif/{UNICODE_NAME}/info.json", f"/iiif/{UNICODE_NAME}/full/120,/0/default.jpg",
    f"/deepzoom/{UNICODE_NAME}.dzi", f"/deepzoom/{UNICODE_NAME}_files/8/0_0.jpg",
    f"/zoomify/{UNICODE_NAME}/ImageProperties.xml",
    f"/zoomify/{UNICODE_NAME}/TileGroup0/0-0-0.jpg",
])
def test_raw_utf8_paths_work(app, uri):
    assert get(app, uri=raw(uri)).status == 200


def test_raw_utf8_in_iip_query_and_post_body(app):
    query = raw(f"FIF={UNICODE_NAME}&OBJ=Max-size")
    assert get(app, query).body == b"\r\nMax-size:1000 700\r\n"
    posted = call(app, "", method="POST", body=f"FIF={UNICODE_NAME}&OBJ=Max-size".encode())
    assert posted.body == b"\r\nMax-size:1000 700\r\n"


def test_raw_utf8_identifier_is_a_uri_in_headers(app):
    result = get(app, uri=raw(f"/iiif/{UNICODE_NAME}"))
    assert result.status == 303
    assert result.header("Location") == "http://localhost/iiif/caf%C3%A9%20%E4%B8%AD.tif/info.json"
    info = get(app, uri=raw(f"/iiif/{UNICODE_NAME}/full/120,/0/default.jpg"))
    assert "/iiif/caf%C3%A9%20%E4%B8%AD.tif/" in info.header("Link")
    info.header("Link").encode("ascii")


@pytest.mark.parametrize(("uri", "headers"), [
    ("/iiif/rgb.tif\r\nSet-Cookie: a=b/info.json", {}),
    ("/iiif/rgb.tif\x00/info.json", {}),
    ("/iiif/rgb.tif", {"X-IIIF-ID": "http://x/\r\nSet-Cookie: a=b"}),
    ("/iiif/rgb.tif", {"Host": "example.org\r\nSet-Cookie: a=b"}),
    ("/iiif/rgb.tif", {"Host": "example.org\nX-A: b"}),
    ("/fcgi-bin/iipsrv.fcgi?FIF=rgb.tif\r\n&OBJ=Max-size", {}),
])
def test_control_characters_are_400_and_never_reach_headers(app, uri, headers):
    result = get(app, uri.split("?", 1)[1] if "?" in uri else "", uri=uri, headers=headers)
    for name, value in result.headers:
        assert "\r" not in value and "\n" not in value and "\0" not in value, (name, value)
    assert_plain_400(result)


def test_controls_in_a_post_body_are_400(app):
    result = call(app, "", method="POST", body=b"FIF=rgb.tif\n&OBJ=Max-size")
    assert_plain_400(result)


def test_a_405_quotes_the_method_printably(app):
    result = call(app, "FIF=rgb.tif&OBJ=Max-size", method="BREW\r\nX: y")
    assert result.status == 405 and result.header("Allow")
    assert result.body.count(b"\n") == 1 and b"\r" not in result.body


@pytest.mark.parametrize("date", [
    "Sat, 21 Nov 99999999999999999999 04:38:30 GMT",  # OverflowError in datetime: a 500
    "Sat, 21 Nov 2026 99999999999999999999:38:30 GMT",
    "Sat, 21 Nov 2026 04:38:30 +99999999999999999999",
    "Sat, 99999999999999999999 Nov 2026 04:38:30 GMT",
])
def test_absurd_if_modified_since_is_ignored(app, date):
    result = get(app, "FIF=rgb.tif&JTL=0,0", headers={"If-Modified-Since": date})
    assert result.status == 200 and result.header("Content-Type") == "image/jpeg"
