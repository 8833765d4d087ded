"""Metadata carried into outputs (issue 16): EXIF, ICC and XMP into exports and
tiles, resolution in each format's own unit, OBJ=metadata as valid JSON.

Expected values come from the format specifications, read from the output
bytes by tests/metaread.py: JFIF 1.02 (units 1 = dots per inch, 2 = per cm),
PNG pHYs (pixels per metre, unit 1), TIFF 6.0 X/YResolution with
ResolutionUnit (2 inch, 3 cm), ICC.1 annex B.4 (APP2 chunks of at most
65519 bytes, numbered 1..n), EXIF 2.3 (APP1 "Exif\\0\\0"), PNG eXIf, WebP
RIFF EXIF/ICCP chunks.  iipsrv 1.3 bugs done right here: the ICC profile of
a pass-through tile loses its last two bytes; TIFF resolution is labelled
centimetres whatever the unit; PNG pHYs is the dpi times 25.4; OBJ=metadata
dumps the EXIF block into the JSON (cut at its first NUL: invalid JSON).
"""

from __future__ import annotations

import io
import json

import pytest
from images import SAMPLE_XMP, srgb_profile
from metafixtures import BIG_ICC_SIZE, big_icc, make_meta_images
from metaread import (
    jfif_density,
    jpeg_exif,
    jpeg_icc,
    jpeg_segments,
    jpeg_xmp,
    png_chunks,
    png_icc,
    png_phys,
    tiff_ifd,
    tiff_rational,
    tiff_short,
    webp_chunks,
)
from PIL import Image
from wsgi import call, make_app

from iipy.decoders import decoder_for
from iipy.jpeg.markers import icc_app2, jfif_app0


@pytest.fixture(scope="module")
def meta(tmp_path_factory):
    directory = tmp_path_factory.mktemp("meta")
    images = make_meta_images(directory)
    images["dir"] = directory
    return images


@pytest.fixture(scope="module")
def app(meta):
    return make_app(FILESYSTEM_PREFIX=str(meta["dir"]) + "/")


def get(app, query: str) -> bytes:
    result = call(app, query)
    assert result.status == 200, (query, result.body[:200])
    return result.body


# -- EXIF -------------------------------------------------------------------


def test_exif_goes_into_every_export_format_that_has_a_place_for_it(app, meta):
    exif = decoder_for(str(meta["exif"])).info.exif
    assert exif
    assert jpeg_exif(get(app, "FIF=exif.tif&WID=300&CVT=jpeg")) == exif
    assert png_chunks(get(app, "FIF=exif.tif&WID=300&CVT=png"))[b"eXIf"] == exif
    assert webp_chunks(get(app, "FIF=exif.tif&WID=300&CVT=webp"))[b"EXIF"] == exif
    avif = Image.open(io.BytesIO(get(app, "FIF=exif.tif&WID=300&CVT=avif")))
    assert avif.info["exif"].removeprefix(b"Exif\0\0") == exif
    iiif = get(app, "IIIF=exif.tif/full/300,/0/default.jpg")
    assert jpeg_exif(iiif) == exif


def test_tiles_carry_no_exif_nor_xmp_as_in_iipsrv_13(app):
    for query in ("FIF=exif.tif&JTL=2,0", "FIF=exif.tif&QLT=80&JTL=2,0"):
        tile = get(app, query)
        assert jpeg_exif(tile) is None and jpeg_xmp(tile) is None


def test_jpeg_export_segments_follow_jfif_then_exif_xmp_icc(app):
    body = get(app, "FIF=exif.tif&WID=300&CVT=jpeg")
    kinds = [(m, p[:4]) for m, p in jpeg_segments(body) if 0xE0 <= m <= 0xEF]
    assert kinds[:4] == [(0xE0, b"JFIF"), (0xE1, b"Exif"), (0xE1, b"http"), (0xE2, b"ICC_")]
    assert jpeg_xmp(body) == SAMPLE_XMP


# -- ICC, byte for byte -------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "kind"),
    [
        ("FIF=exif.tif&JTL=2,0", "jpeg"),  # pass-through (stored YCbCr tile)
        ("FIF=exif_rgb.tif&JTL=2,0", "jpeg"),  # pass-through (stored RGB tile)
        ("FIF=exif.tif&QLT=80&JTL=2,0", "jpeg"),  # decoded and encoded
        ("FIF=exif.tif&WID=200&CVT=jpeg", "jpeg"),
        ("FIF=exif.tif&WID=200&CVT=png", "png"),
        ("FIF=exif.tif&WID=200&CVT=webp", "webp"),
        ("FIF=exif.tif&WID=200&CVT=tif", "tiff"),
        ("FIF=exif.tif&WID=200&CVT=avif", "avif"),
    ],
)
def test_icc_profile_arrives_byte_exact(app, query, kind):
    assert _icc(get(app, query), kind) == srgb_profile()


def _icc(body: bytes, kind: str) -> bytes | None:
    if kind == "jpeg":
        return jpeg_icc(body)
    if kind == "png":
        return png_icc(body)
    if kind == "webp":
        return webp_chunks(body).get(b"ICCP")
    if kind == "tiff":
        return tiff_ifd(body)[34675][2]
    return Image.open(io.BytesIO(body)).info.get("icc_profile")


@pytest.mark.parametrize("query", ["FIF=big_icc.tif&JTL=1,0", "FIF=big_icc.tif&QLT=80&JTL=1,0",
                                   "FIF=big_icc.tif&WID=100&CVT=jpeg"])
def test_large_profile_spans_app2_chunks_per_icc_spec(meta, query):
    app = make_app(FILESYSTEM_PREFIX=str(meta["dir"]) + "/", MAX_ICC="-1")
    body = get(app, query)
    chunks = [p for m, p in jpeg_segments(body) if m == 0xE2]
    assert [(c[12], c[13]) for c in chunks] == [(1, 3), (2, 3), (3, 3)]
    assert [len(c) - 14 for c in chunks] == [65519, 65519, BIG_ICC_SIZE - 2 * 65519]
    assert jpeg_icc(body) == big_icc()
    # MAX_ICC (default 65536 bytes): a larger profile is not embedded at all
    default = make_app(FILESYSTEM_PREFIX=str(meta["dir"]) + "/")
    assert jpeg_icc(get(default, query)) is None


def test_pass_through_tile_is_the_stored_tile_with_jfif_and_icc_added(app, meta):
    decoder = decoder_for(str(meta["exif"]))
    raw = decoder.raw_tile(0, 1, 1)  # full resolution, interior tile
    columns = decoder.info.levels[0].columns
    body = get(app, f"FIF=exif.tif&JTL={decoder.info.resolutions - 1},{columns + 1}")
    header = jfif_app0(1, 300, 150) + icc_app2(srgb_profile())
    assert body == raw[:2] + header + raw[2:]
    rgb = decoder_for(str(meta["exif_rgb"]))
    stored = rgb.raw_tile(0, 1, 1)
    assert stored[2:4] == b"\xff\xee"  # Adobe APP14: RGB; JFIF would say YCbCr
    body = get(app, f"FIF=exif_rgb.tif&JTL={rgb.info.resolutions - 1},{columns + 1}")
    assert body == stored[:2] + icc_app2(srgb_profile()) + stored[2:]


def test_pass_through_tile_without_icc_is_the_stored_tile_untouched(images):
    # no profile: nothing to add, so no copy of the tile (as iipsrv 1.3 sends it)
    app = make_app(FILESYSTEM_PREFIX=str(images.rgb_ycbcr.parent) + "/")
    decoder = decoder_for(str(images.rgb_ycbcr))
    assert decoder.info.icc is None and decoder.info.dpi
    columns = decoder.info.levels[0].columns
    body = get(app, f"FIF=rgb_ycbcr.tif&JTL={decoder.info.resolutions - 1},{columns + 1}")
    assert body == decoder.raw_tile(0, 1, 1)
    assert jfif_density(get(app, f"FIF=rgb_ycbcr.tif&QLT=80&JTL=2,{columns + 1}"))[0] == 1


# -- resolution -------------------------------------------------------------

# exif.tif: 1024 x 768 at 300 x 150 dpi; cm.tif: 1000 x 700 at 120 pixels/cm
# (expected: the source's density times output pixels / source pixels, per axis)
JPEG_DENSITY = [
    ("FIF=exif.tif&CVT=jpeg", (1, 300, 150)),
    ("FIF=exif.tif&WID=256&CVT=jpeg", (1, 75, 38)),  # 1/4: 75 x 37.5 dpi
    ("FIF=exif.tif&WID=256&ROT=90&CVT=jpeg", (1, 38, 75)),  # a quarter turn swaps x and y
    ("FIF=exif.tif&RGN=0,0,0.5,0.5&WID=256&CVT=jpeg", (1, 150, 75)),  # half the width
    ("IIIF=exif.tif/full/512,96/0/default.jpg", (1, 150, 19)),  # 150 x 18.75 dpi
    ("FIF=cm.tif&WID=250&CVT=jpeg", (2, 30, 30)),  # 120 px/cm at 1/4: 30 dots/cm
    ("FIF=exif.tif&JTL=2,0", (1, 300, 150)),  # full resolution tile, pass-through
    ("FIF=exif.tif&JTL=1,0", (1, 150, 75)),  # one level down
    ("FIF=exif.tif&QLT=80&JTL=1,0", (1, 150, 75)),  # decoded tile: the same
    ("FIF=cm.tif&JTL=1,0", (2, 60, 60)),
]


@pytest.mark.parametrize(("query", "expected"), JPEG_DENSITY)
def test_jfif_density_in_the_sources_unit_scaled_to_the_output(app, query, expected):
    assert jfif_density(get(app, query)) == expected


@pytest.mark.parametrize(
    ("query", "expected"),
    [  # pHYs: pixels per metre (unit 1), whatever unit the source used
        ("FIF=exif.tif&WID=256&CVT=png", (2953, 1476, 1)),  # 75 / 0.0254, 37.5 / 0.0254
        ("FIF=cm.tif&WID=250&CVT=png", (3000, 3000, 1)),  # 30 px/cm
        ("FIF=cm.tif&CVT=png", (12000, 12000, 1)),
    ],
)
def test_png_phys_is_pixels_per_metre(app, query, expected):
    assert png_phys(get(app, query)) == expected


@pytest.mark.parametrize(
    ("query", "unit", "x", "y"),
    [
        ("FIF=exif.tif&WID=256&CVT=tif", 2, 75, 37.5),
        ("FIF=cm.tif&WID=250&CVT=tif", 3, 30, 30),
        ("FIF=cm.tif&WID=250&QLT=lzw:1&CVT=tif", 3, 30, 30),  # Pillow's writer
        ("FIF=exif.tif&WID=512&QLT=jpeg:80&CVT=tif", 2, 150, 75),
    ],
)
def test_tiff_resolution_unit_matches_its_values(app, query, unit, x, y):
    body = get(app, query)
    tags = tiff_ifd(body)
    assert tiff_short(body, tags[296][2]) == unit
    assert tiff_rational(body, tags[282][2]) == pytest.approx(x, rel=1e-4)
    assert tiff_rational(body, tags[283][2]) == pytest.approx(y, rel=1e-4)


def test_resolution_without_a_unit_is_not_written_as_a_size(app):
    # TIFF ResolutionUnit 1: X/YResolution are a pixel aspect ratio, no physical size
    assert jfif_density(get(app, "FIF=ratio.tif&WID=100&CVT=jpeg")) == (0, 1, 1)
    assert png_phys(get(app, "FIF=ratio.tif&WID=100&CVT=png")) is None
    assert 296 not in tiff_ifd(get(app, "FIF=ratio.tif&WID=100&CVT=tif"))


# -- OBJ=metadata -----------------------------------------------------------


def test_obj_metadata_is_valid_json_with_odd_text(app):
    result = call(app, "FIF=odd_text.tif&OBJ=metadata")
    assert result.status == 200
    data = json.loads(result.body.decode("utf-8"))
    assert data["creator"] == "Jos\u00e9 M\u00fcller"
    assert data["rights"] == "(c) Photo; (c) Editor"
    assert data["description"] == 'say "hi"\\\ttab\nline'
    assert data["make"] == "Caf\u00e9 \u2603"


def test_obj_metadata_of_an_image_with_exif_is_valid_json(app):
    result = call(app, "FIF=exif.tif&OBJ=metadata")
    data = json.loads(result.body.decode("utf-8"))
    assert data == {"creator": "Jane Artist", "make": "Camera Maker", "model": "Model 7"}
    assert b"\0" not in result.body and b"Exif" not in result.body
