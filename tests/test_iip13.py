"""IIP commands and outputs of iipsrv 1.3 that 1.1 lacks (issue 15): TIL, JTLS,
TTL, ATL, OBJ=xmp/scale, CVT=avif, TIFF compression by QLT and TIFF_*.

Expected values come from the formats' specifications (TIFF 6.0 tags, the
AVIF/ISOBMFF brand) and iipsrv 1.3's documented framing; pixels are compared
with the generated images' pattern.
"""

from __future__ import annotations

import io
import re
import struct

import numpy as np
import pytest
import pyvips
from images import SAMPLE_XMP, Entry, TiffPatcher, make_tiff
from PIL import Image
from wsgi import call, make_app


@pytest.fixture(scope="module")
def app(image_dir, images):
    return make_app(FILESYSTEM_PREFIX=str(image_dir) + "/")


def decode(body: bytes) -> np.ndarray:
    image = Image.open(io.BytesIO(body))
    image.load()
    array = np.asarray(image)
    return array[:, :, None] if array.ndim == 2 else array


def tiff_tags(body: bytes) -> dict[int, tuple]:
    """Tag → values of the first IFD of a little-endian classic TIFF (spec §2)."""
    assert body[:4] == b"II*\0"
    sizes = {1: 1, 2: 1, 3: 2, 4: 4, 5: 8, 7: 1}
    letters = {3: "H", 4: "I"}
    (offset,) = struct.unpack_from("<I", body, 4)
    (count,) = struct.unpack_from("<H", body, offset)
    tags = {}
    for i in range(count):
        tag, typ, n, value = struct.unpack_from("<HHII", body, offset + 2 + 12 * i)
        size = sizes[typ] * n
        raw = body[offset + 10 + 12 * i: offset + 14 + 12 * i] if size <= 4 else \
            body[value:value + size]
        if typ in letters:
            tags[tag] = struct.unpack("<" + letters[typ] * n, raw[:size])
        else:
            tags[tag] = (raw[:size],)
    return tags


def split_til(body: bytes) -> list[tuple[int, int, bytes, bytes]]:
    """(resolution, tile, 8-byte type header, JPEG) of each framed TIL tile."""
    out, pos = [], 0
    pattern = re.compile(rb"Tile,(\d+),(\d+),0/(\d+):")
    while pos < len(body):
        match = pattern.match(body, pos)
        assert match, body[pos:pos + 40]
        length = int(match.group(3))
        start = match.end()
        chunk = body[start:start + length]
        assert body[start + length:start + length + 2] == b"\r\n"
        out.append((int(match.group(1)), int(match.group(2)), chunk[:8], chunk[8:]))
        pos = start + length + 2
    return out


# -- TIL ---------------------------------------------------------------------


def test_til_frames_each_tile_as_iipsrv(app):
    # level 1000x700 at resolution 2: 4 columns x 3 rows; tiles 1..6 span
    # columns 1-2, rows 0-1 -> sent column by column: 1, 5, 2, 6
    result = call(app, "FIF=rgb.tif&TIL=2,1-6")
    assert result.status == 200
    assert result.header("Content-Type") == "application/vnd.netfpx"
    tiles = split_til(result.body)
    assert [t[1] for t in tiles] == [1, 5, 2, 6]
    for resolution, index, head, jpeg in tiles:
        assert resolution == 2
        assert head == b"\x02\x00\x00\x00\x00\x11\x00\x00"
        assert jpeg == call(app, f"FIF=rgb.tif&JTL=2,{index}").body


def test_til_single_tile_and_reversed_range(app):
    assert [t[1] for t in split_til(call(app, "FIF=rgb.tif&TIL=2,3").body)] == [3]
    # end before start: start alone (iipsrv's rule)
    assert [t[1] for t in split_til(call(app, "FIF=rgb.tif&TIL=2,5-2").body)] == [5]
    # end left of start on a lower row: the columns are swapped to form the rectangle
    assert [t[1] for t in split_til(call(app, "FIF=rgb.tif&TIL=2,3-4").body)] == [0, 4, 1, 5,
                                                                               2, 6, 3, 7]


def test_til_past_the_image_is_a_404_not_a_trailer(app):
    result = call(app, "FIF=rgb.tif&TIL=2,0-40")
    assert result.status == 404
    assert b"Tile," not in result.body
    assert call(app, "FIF=rgb.tif&TIL=9,0").status == 404


def test_til_rectangle_is_bounded():
    from iipy.errors import BadRequest
    from iipy.models import Level
    from iipy.protocols.iiptiles import MAX_TIL_TILES, til_rectangle

    level = Level(20000, 15000, 256, 256)  # 79 x 59 tiles
    assert len(til_rectangle(level, 0, 31 + 31 * 79)) == MAX_TIL_TILES  # 32 x 32
    with pytest.raises(BadRequest):
        til_rectangle(level, 0, 32 + 31 * 79)


@pytest.mark.parametrize("query", ["TIL=2", "TIL=x,1", "TIL=2,-1", "TIL=2,a-b"])
def test_til_malformed_is_400(app, query):
    assert call(app, "FIF=rgb.tif&" + query).status == 400


def test_til_without_image_is_iip_error_1_3(app):
    result = call(app, "TIL=0,0")
    assert result.status == 400
    assert result.body.startswith(b"Error/")
    assert b"1 3" in result.body


# -- JTLS --------------------------------------------------------------------


def test_jtls_is_jtl_with_angles(app):
    assert call(app, "FIF=rgb.tif&JTLS=0,2,5,90").body == call(app, "FIF=rgb.tif&JTL=2,5").body


def test_jtls_selects_the_sequence_view(image_dir):
    seq = image_dir / "seq13"
    seq.mkdir(exist_ok=True)
    for x, bands in ((0, 3), (10, 1)):
        make_tiff(seq / f"obj_pyr_{x:03d}_090.tif", 300, 200, bands=bands)
    app = make_app(FILESYSTEM_PREFIX=str(image_dir) + "/")
    first = decode(call(app, "FIF=seq13/obj&JTLS=0,0,0,90").body)
    second = decode(call(app, "FIF=seq13/obj&JTLS=10,0,0,90").body)
    assert first.shape[2] == 3 and second.shape[2] == 1


@pytest.mark.parametrize("query", ["JTLS=0,2,5", "JTLS=a,2,5,90"])
def test_jtls_malformed_is_400(app, query):
    assert call(app, "FIF=rgb.tif&" + query).status == 400


# -- TTL and TIFF compression -------------------------------------------------

TIFF_CODES = {"none": 1, "lzw": 5, "deflate": 8, "jpeg": 7, "webp": 50001, "zstd": 50000}


@pytest.mark.parametrize("name", list(TIFF_CODES))
def test_ttl_compression_by_qlt(app, images, name):
    result = call(app, f"FIF=rgb.tif&QLT={name}:80&TTL=2,5")
    assert result.status == 200
    assert result.header("Content-Type") == "image/tiff"
    tags = tiff_tags(result.body)
    assert tags[259] == (TIFF_CODES[name],)
    assert tags[256] == (256,) and tags[257] == (256,)
    if name == "webp":  # Pillow's libtiff has no WebP codec; libvips' has
        pixels = np.ndarray((256, 256, 3), np.uint8, pyvips.Image.new_from_buffer(
            result.body, "").write_to_memory())
    else:  # and libvips' has no Zstandard (it reads zeros): Pillow's has
        pixels = decode(result.body)
    reference = decode(call(app, "FIF=rgb.tif&PTL=2,5").body)
    difference = np.abs(pixels.astype(int) - reference)
    if name in ("jpeg", "webp"):
        assert difference.mean() < 4
    else:
        assert difference.max() == 0


def test_tiff_compression_default_from_settings(image_dir, images):
    app = make_app(FILESYSTEM_PREFIX=str(image_dir) + "/", TIFF_COMPRESSION="5",
                   TIFF_QUALITY="3")
    assert tiff_tags(call(app, "FIF=rgb.tif&TTL=2,0").body)[259] == (50000,)
    app = make_app(FILESYSTEM_PREFIX=str(image_dir) + "/")
    assert tiff_tags(call(app, "FIF=rgb.tif&TTL=2,0").body)[259] == (8,)  # deflate


def test_tiff_quality_is_the_deflate_level(image_dir, images):
    sizes = []
    for level in ("1", "9"):
        app = make_app(FILESYSTEM_PREFIX=str(image_dir) + "/", TIFF_QUALITY=level)
        sizes.append(len(call(app, "FIF=rgb.tif&WID=400&CVT=tif").body))
    assert sizes[1] < sizes[0]


def test_jpeg_tiff_quality_changes_the_size(app):
    low = call(app, "FIF=rgb.tif&QLT=jpeg:10&CVT=tif&WID=400").body
    high = call(app, "FIF=rgb.tif&QLT=jpeg:95&CVT=tif&WID=400").body
    assert len(low) < len(high)
    assert tiff_tags(low)[262] == (6,)  # YCbCr, as the JPEG stream is


def test_tile_cache_keeps_compressions_apart(app):
    # iipsrv 1.3's tile cache answers the first compression for every later one
    first = call(app, "FIF=deflate.tif&QLT=none:0&TTL=1,0").body
    second = call(app, "FIF=deflate.tif&QLT=zstd:3&TTL=1,0").body
    assert tiff_tags(first)[259] == (1,) and tiff_tags(second)[259] == (50000,)


def test_grey_tiff_is_a_valid_grey_tiff(app):
    body = call(app, "FIF=grey8.tif&WID=300&CVT=tif").body
    tags = tiff_tags(body)
    assert tags[262] == (1,)  # BlackIsZero, not a one-sample "RGB"
    assert tags[277] == (1,) and tags[258] == (8,)
    assert decode(body).shape == (210, 300, 1)
    # WebP strips need colour: a grey image falls back to deflate, still valid
    webp = call(app, "FIF=grey8.tif&QLT=webp:50&WID=300&CVT=tif").body
    assert tiff_tags(webp)[259] == (8,)
    assert decode(webp).shape == (210, 300, 1)


def test_tiff_alpha_is_an_unassociated_extra_sample(image_dir):
    make_tiff(image_dir / "rgba13.tif", 300, 200, bands=4, compression="deflate")
    app = make_app(FILESYSTEM_PREFIX=str(image_dir) + "/")
    tags = tiff_tags(call(app, "FIF=rgba13.tif&CVT=tif").body)
    assert tags[277] == (4,) and tags[338] == (2,)
    # JPEG has no alpha: the colour bands alone, as the YCbCr the stream holds
    body = call(app, "FIF=rgba13.tif&QLT=jpeg:90&CVT=tif").body
    tags = tiff_tags(body)
    assert tags[277] == (3,) and tags[262] == (6,) and 338 not in tags
    png = decode(call(app, "FIF=rgba13.tif&CVT=png").body)[:, :, :3].astype(int)
    assert np.abs(decode(body).astype(int) - png).mean() < 4


def test_tiff_export_keeps_xmp_icc_and_resolution(app):
    tags = tiff_tags(call(app, "FIF=meta.tif&WID=500&CVT=tif").body)
    assert tags[700][0] == SAMPLE_XMP
    assert 34675 in tags
    assert tags[296] == (2,)
    x = struct.unpack("<II", tags[282][0])
    assert x[0] / x[1] == pytest.approx(150, rel=1e-3)  # 300 dpi at half the width


@pytest.mark.parametrize("query", ["QLT=gzip:5&CVT=tif", "QLT=deflate:x&CVT=tif"])
def test_bad_qlt_compression_is_400(app, query):
    assert call(app, "FIF=rgb.tif&" + query).status == 400


def test_qlt_compression_leaves_jpeg_quality(app):
    plain = call(app, "FIF=rgb.tif&QLT=40&CVT=jpeg&WID=300").body
    prefixed = call(app, "FIF=rgb.tif&QLT=deflate:40&CVT=jpeg&WID=300").body
    assert plain == prefixed


# -- AVIF --------------------------------------------------------------------


def is_avif(body: bytes) -> bool:
    return body[4:8] == b"ftyp" and b"avif" in body[8:32]


def test_atl_tile_is_avif_of_the_tile(app):
    result = call(app, "FIF=rgb.tif&ATL=2,5")
    assert result.status == 200
    assert result.header("Content-Type") == "image/avif"
    assert is_avif(result.body)
    pixels = decode(result.body)
    reference = decode(call(app, "FIF=rgb.tif&PTL=2,5").body)
    assert pixels.shape == reference.shape
    assert np.abs(pixels.astype(int) - reference).mean() < 6


def test_cvt_avif(app):
    result = call(app, "FIF=rgb.tif&WID=400&CVT=avif")
    assert result.status == 200 and is_avif(result.body)
    assert decode(result.body).shape == (280, 400, 3)
    assert "rgb.avif" in result.header("Content-Disposition")


def test_avif_quality_setting_and_qlt(image_dir, images):
    low = make_app(FILESYSTEM_PREFIX=str(image_dir) + "/", AVIF_QUALITY="5")
    high = make_app(FILESYSTEM_PREFIX=str(image_dir) + "/", AVIF_QUALITY="95")
    assert len(call(low, "FIF=rgb.tif&ATL=1,0").body) < len(call(high, "FIF=rgb.tif&ATL=1,0").body)
    app = make_app(FILESYSTEM_PREFIX=str(image_dir) + "/")
    assert len(call(app, "FIF=rgb.tif&QLT=5&ATL=1,1").body) < \
        len(call(app, "FIF=rgb.tif&QLT=95&ATL=1,1").body)


def test_avif_minus_one_is_lossless_for_grey_and_near_for_colour(image_dir, images):
    app = make_app(FILESYSTEM_PREFIX=str(image_dir) + "/", AVIF_QUALITY="-1")
    grey = decode(call(app, "FIF=grey8.tif&ATL=2,5").body)
    assert np.array_equal(grey, decode(call(app, "FIF=grey8.tif&PTL=2,5").body))
    colour = decode(call(app, "FIF=rgb.tif&ATL=2,5").body).astype(int)
    reference = decode(call(app, "FIF=rgb.tif&PTL=2,5").body)
    assert np.abs(colour - reference).max() <= 4  # YCbCr rounding, no subsampling


def test_avif_grey_alpha_keeps_alpha(image_dir):
    make_tiff(image_dir / "la13.tif", 300, 200, bands=2, compression="deflate")
    app = make_app(FILESYSTEM_PREFIX=str(image_dir) + "/")
    assert decode(call(app, "FIF=la13.tif&ATL=0,0").body).shape[2] == 4


# -- OBJ=xmp, OBJ=scale -------------------------------------------------------


def test_obj_xmp_is_the_packet_as_xml(app):
    result = call(app, "FIF=meta.tif&OBJ=xmp")
    assert result.status == 200
    assert result.header("Content-Type") == "application/xml"
    assert result.body == SAMPLE_XMP + b"\r\n"


def test_obj_xmp_absent_is_not_a_crash(app):
    assert call(app, "FIF=rgb.tif&OBJ=xmp").status in (200, 400)
    assert b"xmpmeta" not in call(app, "FIF=rgb.tif&OBJ=xmp").body


def test_obj_scale_from_stonits(image_dir):
    path = make_tiff(image_dir / "scale13.tif", 300, 200, bands=1, dtype="uint16",
                     compression="deflate")
    with TiffPatcher(path) as tiff:
        tiff.update_first_ifd([Entry(37439, 12, 1, struct.pack("<d", 0.0125))])
    app = make_app(FILESYSTEM_PREFIX=str(image_dir) + "/")
    result = call(app, "FIF=scale13.tif&OBJ=scale")
    assert result.status == 200
    assert result.header("Content-Type") == "text/plain"
    assert result.body == b"0.0125\r\n"
    assert '"scale": "0.0125"' in call(app, "FIF=scale13.tif&OBJ=metadata").body.decode()


def test_obj_xmp_needs_an_image(app):
    assert b"1 3" in call(app, "OBJ=xmp").body


def test_advertised_commands_are_answered(app):
    body = call(app, "FIF=rgb.tif&OBJ=IIP-opt-comm").body.decode()
    commands = body.split(":", 1)[1].split()
    arguments = {"CVT": "jpeg", "CNT": "1", "QLT": "50", "JTL": "0,0", "JTLS": "0,0,0,90",
                 "WID": "10", "HEI": "10", "RGN": "0,0,1,1", "MINMAX": "-:0,255",
                 "SHD": "0,0", "CMP": "hot", "INV": "1", "CTW": "[1,0,0;0,1,0;0,0,1]"}
    for name in commands:
        if name in ("CVT", "JTL", "JTLS"):  # output commands: answered alone
            result = call(app, f"FIF=rgb.tif&{name}={arguments[name]}")
        else:  # a setter iipy does not know queues "2 2 NAME": the OBJ would be a 400
            result = call(app, f"FIF=rgb.tif&{name}={arguments[name]}&OBJ=Max-size")
        assert result.status == 200, (name, result.body[:60])


# -- where iipsrv 1.3 is wrong --------------------------------------------------


@pytest.mark.parametrize("query", ["WID=300&CVT=png", "PTL=1,0"])
def test_png_of_an_image_with_a_document_name(app, query):
    # iipsrv 1.3 crashes writing the DocumentName into a PNG
    result = call(app, "FIF=meta.tif&" + query)
    assert result.status == 200
    assert decode(result.body).ndim == 3


@pytest.mark.parametrize("query", ["JTL=9,0", "TTL=9,0", "ATL=9,0", "TIL=9,0"])
def test_missing_resolution_is_a_404_not_a_200_page(app, query):
    # iipsrv 1.3 answers 200 with its HTML home page
    result = call(app, "FIF=rgb.tif&" + query)
    assert result.status == 404
    assert b"<html" not in result.body.lower()


def test_without_avif_atl_is_unknown_and_cvt_avif_a_400(image_dir, images, monkeypatch):
    # a Pillow built without AVIF: iipy answers as an iipsrv built without it
    from iipy.models import OutputFormat
    from iipy.render import encoders

    monkeypatch.setattr(encoders, "_AVAILABLE", frozenset(set(OutputFormat) -
                                                          {OutputFormat.AVIF}))
    app = make_app(FILESYSTEM_PREFIX=str(image_dir) + "/")
    result = call(app, "FIF=rgb.tif&ATL=2,5")
    assert result.status == 400 and b"2 2 ATL" in result.body
    assert call(app, "FIF=rgb.tif&CVT=avif").status == 400
    assert call(app, "FIF=rgb.tif&CVT=png").status == 200


@pytest.mark.parametrize(("raw", "value"), [("-1", -1), ("0", 0), ("75", 75), ("100", 100),
                                            ("", 50)])
def test_avif_quality_setting_range(raw, value):
    from iipy.settings import Settings

    assert Settings.from_environ({"AVIF_QUALITY": raw}).avif_quality == value


@pytest.mark.parametrize("raw", ["best", "150", "-5"])
def test_avif_quality_garbage_or_out_of_range_stops_start_up(raw):
    """iipsrv clamps 150 to 100; iipy stops start-up on every out-of-range value (issue 11)."""
    from iipy.errors import ConfigError
    from iipy.settings import Settings

    with pytest.raises(ConfigError, match="AVIF_QUALITY"):
        Settings.from_environ({"AVIF_QUALITY": raw})
