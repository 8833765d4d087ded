"""The IIP protocol through the WSGI application (iip-protocol.md §1-4, §8, §14)."""

from __future__ import annotations

import io

import pytest
from PIL import Image
from wsgi import call, make_app


@pytest.fixture(scope="module")
def app(image_dir, images):
    return make_app(FILESYSTEM_PREFIX=str(image_dir) + "/")


def jpeg_size(body: bytes) -> tuple[int, int]:
    image = Image.open(io.BytesIO(body))
    image.load()
    return image.size


FULL_OBJ = (
    "OBJ=IIP,1.0&OBJ=Max-size&OBJ=Tile-size&OBJ=Resolution-number&OBJ=Bits-per-channel"
    "&OBJ=Vertical-views&OBJ=Horizontal-views&OBJ=Min-Max-sample-values&OBJ=Resolutions"
    "&OBJ=colorspace,0-2,0&OBJ=IIP-server"
)


@pytest.mark.parametrize(
    ("query", "body"),
    [  # bodies as iipsrv 1.1 sends them
        (
            "FIF=rgb.tif&" + FULL_OBJ,
            "IIP:1.0\r\nMax-size:1000 700\r\nTile-size:256 256\r\nResolution-number:3\r\n"
            "Bits-per-channel:8\r\nVertical-views:90\r\nHorizontal-views:0\r\n"
            "Min-Max-sample-values: 0  255  0  255  0  255\r\n"
            "Resolutions:250 175,500 350,1000 700\r\nColorspace,0-2,0:0 0 3 3 0 1 2\r\n"
            "IIP-server:3.65\r\n",
        ),
        (
            "FIF=grey16.tif&OBJ=Bits-per-channel&OBJ=Min-Max-sample-values&OBJ=colorspace,0-2,0",
            "\r\nBits-per-channel:16\r\nMin-Max-sample-values: 0  65535\r\n"
            "Colorspace,0-2,0:0 0 1 1 0\r\n",
        ),
        (
            "FIF=meta.tif&OBJ=copyright&OBJ=subject&OBJ=author",
            "\r\ncopyright/14:(c) Test Owner\r\nsubject/13:A description\r\n"
            "author/11:Jane Artist\r\n",
        ),
        ("FIF=rgb.tif&OBJ=Max-size", "\r\nMax-size:1000 700\r\n"),
        ("fif=rgb.tif&obj=max-size", "\r\nMax-size:1000 700\r\n"),
        ("FIF=rgb_odd.tif&OBJ=Resolutions",
         "\r\nResolutions:176 99,352 198,705 396,1410 793\r\n"),
        ("FIF=rect_tiles.tif&OBJ=Tile-size", "\r\nTile-size:256 128\r\n"),
        ("FIF=rgb.tif&OBJ=IIP-opt-comm",
         "\r\nIIP-opt-comm:CVT CNT QLT JTL JTLS WID HEI RGN MINMAX SHD CMP INV CTW\r\n"),
        ("OBJ=IIP,1.0&OBJ=IIP-server", "IIP:1.0\r\nIIP-server:3.65\r\n"),
        ("FIF=rgb.tif&OBJ=basic-info",
         "\r\nIIP-server:3.65\r\nMax-size:1000 700\r\nResolution-number:3\r\n"
         "Colorspace,0-2,0:0 0 3 3 0 1 2\r\n"),
        ("FIF=meta.tif&OBJ=summary-info",
         "\r\ncopyright/14:(c) Test Owner\r\nsubject/13:A description\r\n"
         "author/11:Jane Artist\r\ncreate-dtm/19:2024:01:02 03:04:05\r\n"
         "app-name/17:iipy test factory\r\n"),
        ("&&FIF=rgb.tif&&OBJ=Max-size&", "\r\nMax-size:1000 700\r\n"),
    ],
)
def test_obj_bodies_are_byte_exact(app, query, body):
    result = call(app, query)
    assert result.status == 200
    assert result.header("Content-Type") == "application/vnd.netfpx"
    assert result.body == body.encode()


def test_iipmooviewer_handshake_with_dpi_answers_200(app):
    query = (
        "FIF=meta.tif&obj=IIP,1.0&obj=Max-size&obj=Tile-size&obj=Resolution-number"
        "&obj=Resolutions&obj=dpi"
    )
    result = call(app, query)
    assert result.status == 200
    lines = result.body.decode().split("\r\n")
    assert lines[:5] == [
        "IIP:1.0", "Max-size:1000 700", "Tile-size:256 256", "Resolution-number:3",
        "Resolutions:250 175,500 350,1000 700",
    ]
    # 300 dpi in pixels per metre, printed with %f, last (no commas after Resolutions)
    assert lines[5] == "DPI:11811.023622 11811.023622"
    assert lines[6:] == [""]


def test_dpi_line_is_omitted_when_the_image_has_no_resolution():
    from iipy.models import ImageInfo, Level
    from iipy.protocols import iipobj

    info = ImageInfo("tiff", (Level(10, 10, 256, 256),), 3, 8, dpi=None)
    assert iipobj.lookup("dpi")(info, False) == []
    with_dpi = ImageInfo("tiff", (Level(10, 10, 256, 256),), 3, 8, dpi=(2834.0, 2834.5))
    assert iipobj.lookup("dpi")(with_dpi, False) == ["DPI:2834.000000 2834.500000"]


@pytest.mark.parametrize(
    ("query", "body"),
    [  # iipsrv 1.1 error lines, truncated to 31 characters
        ("CVT=jpeg&FIF=rgb.tif", "Error/4:1 3 "),
        ("FIF=rgb.tif&FOO=1", "Error/7:2 2 FOO"),
        ("FIF=rgb.tif&OBJ=foo", "Error/7:3 2 foo"),
        ("FIF=rgb.tif&OBJ=foo&OBJ=Max-size", "Error/7:3 2 foo"),
        ("OBJ=Max-size", "Error/12:1 3 max-size"),
        ("OBJ", "Error/7:3 2 obj"),
        ("JTL=0,0", "Error/4:1 3 "),
        ("FIF=rgb.tif", "Error/15:2 1 FIF=rgb.tif"),
        ("FIF=rgb.tif&OBJ=title&OBJ=keywords",
         "Error/38:2 1 FIF=rgb.tif&OBJ=ti"),
        ("FIF=rgb.tif&FOO=1&BAR=2", "Error/7:2 2 FOO\r\nError/7:2 2 BAR"),
    ],
)
def test_iip_errors_are_byte_exact(app, query, body):
    result = call(app, query)
    assert result.status == 400
    assert result.body == (body + "\r\n").encode()
    assert result.header("Cache-Control") == "no-cache"
    assert result.header("Content-Disposition") == (
        'inline;filename="IIPisAMadGameClosedToOurUnderstanding.netfpx"'
    )


@pytest.mark.parametrize(
    ("query", "size"),
    [
        ("FIF=rgb.tif&JTL=2,0", (256, 256)),
        ("FIF=rgb.tif&JTL=2,3", (232, 256)),
        ("FIF=rgb.tif&JTL=2,11", (232, 188)),
        ("FIF=rgb.tif&JTL=0,0", (250, 175)),
        ("FIF=rgb.tif&JTL=1,1", (244, 256)),
        ("FIF=rgb_odd.tif&JTL=3,5", (130, 256)),
        ("FIF=rgb.tif&JTL=2,5?1700000000000", (256, 256)),  # IIPMooViewer's retry
        ("FIF=rgb.tif&CNT=1&SDS=0,90&GAM=1&JTL=2,0", (256, 256)),
        ("FIF=rect_tiles.tif&JTL=3,23", (232, 60)),
        ("FIF=subifd.tif&JTL=2,11", (232, 188)),
        ("FIF=bigtiff.tif&JTL=2,11", (232, 188)),
        ("FIF=grey16.tif&JTL=2,11", (232, 188)),
        ("FIF=float32.tif&JTL=1,0", (256, 256)),
        ("FIF=lzw.tif&JTL=2,4", (256, 256)),
    ],
)
def test_jtl_tiles_are_cropped_not_padded(app, query, size):
    result = call(app, query)
    assert result.status == 200, result.body[:200]
    assert result.header("Content-Type") == "image/jpeg"
    assert int(result.header("Content-Length")) == len(result.body)
    assert jpeg_size(result.body) == size


def test_ptl_and_wtl_give_png_and_webp(app):
    png = call(app, "FIF=rgb.tif&PTL=2,11")
    assert png.header("Content-Type") == "image/png"
    assert Image.open(io.BytesIO(png.body)).format == "PNG"
    assert jpeg_size(png.body) == (232, 188)
    webp = call(app, "FIF=rgb.tif&WTL=0,0")
    assert webp.header("Content-Type") == "image/webp"
    assert jpeg_size(webp.body) == (250, 175)


@pytest.mark.parametrize(
    ("query", "status"),
    [
        ("FIF=rgb.tif&JTL=2,12", 404),
        ("FIF=rgb.tif&JTL=3,0", 404),
        ("FIF=rgb.tif&JTL=999999999,0", 404),  # no such resolution
        ("FIF=rgb.tif&JTL=99999999999999999999,0", 400),  # beyond a C int (iipy.numeric)
        ("FIF=rgb.tif&JTL=-1,0", 400),
        ("FIF=rgb.tif&JTL=0,-1", 400),
        ("FIF=rgb.tif&JTL=abc", 400),
        ("FIF=rgb.tif&JTL=1", 400),
        ("FIF=rgb.tif&WID=abc&CVT=jpeg", 400),
        ("FIF=rgb.tif&RGN=2,2,1,1&CVT=jpeg", 400),
        ("FIF=rgb.tif&CVT=bmp", 400),
        ("FIF=missing.tif&JTL=0,0", 404),
        ("FIF=untiled.tif&JTL=9,0", 404),  # strip TIFFs are served (4 synthesised levels)
        ("FIF=text.tif&OBJ=Max-size", 400),
        ("FIF=corrupt.tif&OBJ=Max-size", 404),
        ("FIF=truncated_raw.tif&JTL=0,0", 404),
    ],
)
def test_bad_requests_get_clean_4xx(app, query, status):
    result = call(app, query)
    assert result.status == status
    assert b"Traceback" not in result.body


def test_truncated_tile_data_is_a_clean_error_and_other_tiles_still_work(app):
    bad = call(app, "FIF=truncated.tif&JTL=2,8")
    assert bad.status == 404
    good = call(app, "FIF=truncated.tif&JTL=2,0")
    assert good.status == 200
    assert jpeg_size(good.body) == (256, 256)


def test_missing_image_body_does_not_reveal_the_filesystem_path(app, image_dir):
    result = call(app, "FIF=/nothing/here.tif&JTL=0,0")
    assert result.status == 404
    assert str(image_dir).encode() not in result.body
    assert b"/nothing/here.tif" not in result.body


def test_paths_cannot_escape_the_prefix(tmp_path, images):
    import os

    root = tmp_path / "root"
    root.mkdir()
    os.symlink(images.rgb, root / "out.tif")
    app = make_app(FILESYSTEM_PREFIX=str(root) + "/")
    assert call(app, "FIF=out.tif&OBJ=Max-size").status == 404
    assert call(app, f"FIF=../{images.rgb.parent.name}/rgb.tif&OBJ=Max-size").status == 404
    assert call(app, "FIF=%2e%2e%2frgb.tif&OBJ=Max-size").status == 404


def test_fif_is_url_decoded(app, image_dir):
    import shutil

    from images import make_tiff

    make_tiff(image_dir / "with space.tif", 300, 200)
    shutil.copy(image_dir / "with space.tif", image_dir / "with space2.tif")
    assert call(app, "FIF=with%20space.tif&OBJ=Max-size").body == b"\r\nMax-size:300 200\r\n"
    assert call(app, "FIF=with+space2.tif&OBJ=Max-size").body == b"\r\nMax-size:300 200\r\n"


def test_thumbnail_directories_are_not_levels(app):
    for name in ("thumbnail.tif", "thumbnail_svs.tif"):
        result = call(app, f"FIF={name}&OBJ=Resolutions")
        assert result.body == b"\r\nResolutions:250 175,500 350,1000 700\r\n"


def test_cvt_whole_image_and_width(app):
    result = call(app, "FIF=rgb.tif&WID=300&CVT=jpeg")
    assert result.status == 200
    assert jpeg_size(result.body) == (300, 210)
    assert result.header("Content-Disposition") == 'inline;filename="rgb.jpg"'
    thumb = call(app, "FIF=rgb.tif&WID=240&QLT=98&CVT=jpeg")  # IIPMooViewer's navigation image
    assert jpeg_size(thumb.body) == (240, 168)
    region = call(app, "FIF=rgb.tif&WID=100&RGN=0.25,0.25,0.5,0.5&CVT=jpeg")
    assert jpeg_size(region.body) == (100, 70)
    png = call(app, "FIF=rgb.tif&HEI=300&CVT=png")
    assert png.header("Content-Type") == "image/png"
    assert jpeg_size(png.body) == (429, 300)
