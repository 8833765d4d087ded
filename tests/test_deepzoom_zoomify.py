"""DeepZoom and Zoomify (iip-protocol.md §7, clients.md §2, §4, §5): the bytes the
viewers parse, every level's tile sizes, and the tile path for stored tiles."""

from __future__ import annotations

import io
import math
import re
import xml.etree.ElementTree as ET

import pytest
from PIL import Image
from wsgi import call, make_app


@pytest.fixture(scope="module")
def app(image_dir, images):
    return make_app(FILESYSTEM_PREFIX=str(image_dir) + "/", CORS="*")


def size_of(result) -> tuple[int, int]:
    assert result.status == 200, result.body
    image = Image.open(io.BytesIO(result.body))
    image.load()
    return image.size


# -- DeepZoom ------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "width", "height"), [
    ("rgb.tif", 1000, 700), ("rgb_odd.tif", 1410, 793),
])
def test_dzi_bytes(app, name, width, height):
    result = call(app, f"DeepZoom={name}.dzi")
    assert result.header("Content-Type") == "application/xml"
    assert result.body == (
        b'<?xml version="1.0" encoding="UTF-8"?>\r\n'
        b'<Image xmlns="http://schemas.microsoft.com/deepzoom/2008"\r\n'
        b'TileSize="256" Overlap="0" Format="jpg"><Size Width="%d" Height="%d"/></Image>'
        % (width, height))
    text = result.body.decode()
    # IIPMooViewer's regexes and OpenSeadragon's DOM parse
    assert re.search(r'Format="(\w+)', text).group(1) == "jpg"
    assert int(re.search(r'TileSize="(\d+)', text).group(1)) == 256
    assert int(re.search(r'Width="(\d+)', text).group(1)) == width
    root = ET.fromstring(result.body)
    assert root.tag == "{http://schemas.microsoft.com/deepzoom/2008}Image"
    assert root[0].attrib == {"Width": str(width), "Height": str(height)}


def dz_level_size(level: int, width: int, height: int, file_levels: list) -> tuple[int, int]:
    """The file's level where it has one for the scale, else the DeepZoom size."""
    top = math.ceil(math.log2(max(width, height)))
    scale = 2 ** (top - level)
    for w, h in file_levels:
        if round(width / w) == scale:
            return w, h
    return math.ceil(width / scale), math.ceil(height / scale)


@pytest.mark.parametrize(("name", "width", "height", "file_levels"), [
    ("rgb.tif", 1000, 700, [(1000, 700), (500, 350), (250, 175)]),
    ("rgb_odd.tif", 1410, 793, [(1410, 793), (705, 396), (352, 198), (176, 99)]),
])
def test_every_deepzoom_level_and_tile(app, name, width, height, file_levels):
    stem = name
    top = math.ceil(math.log2(max(width, height)))
    for level in range(top + 1):
        lw, lh = dz_level_size(level, width, height, file_levels)
        columns, rows = math.ceil(lw / 256), math.ceil(lh / 256)
        for y in range(rows):
            for x in range(columns):
                expected = (min(256, lw - x * 256), min(256, lh - y * 256))
                got = size_of(call(app, f"DeepZoom={stem}_files/{level}/{x}_{y}.jpg"))
                assert got == expected, (level, x, y)
        assert call(app, f"DeepZoom={stem}_files/{level}/{columns}_0.jpg").status == 404
    assert call(app, f"DeepZoom={stem}_files/{top + 1}/0_0.jpg").status == 404


def test_levels_below_the_file_are_downscaled_to_the_deepzoom_size(app):
    """iipsrv returns the smallest level (176×99) here; clients.md says 89×50."""
    assert size_of(call(app, "DeepZoom=rgb_odd.tif_files/7/0_0.jpg")) == (89, 50)
    assert size_of(call(app, "DeepZoom=rgb_odd.tif_files/0/0_0.jpg")) == (1, 1)
    assert size_of(call(app, "DeepZoom=rgb.tif_files/8/0_0.jpg")) == (250, 175)


def test_stored_levels_are_the_tile_path(app):
    for dz, jtl in [("10/0_0", "2,0"), ("10/3_2", "2,11"), ("9/1_1", "1,3"), ("8/0_0", "0,0")]:
        assert call(app, f"DeepZoom=rgb.tif_files/{dz}.jpg").body == call(
            app, f"FIF=rgb.tif&JTL={jtl}").body


def test_deepzoom_with_rectangular_file_tiles(app):
    """256×128 stored tiles: DeepZoom's 256×256 tiles are assembled (region path)."""
    assert size_of(call(app, "DeepZoom=rect_tiles.tif_files/10/0_0.jpg")) == (256, 256)
    assert size_of(call(app, "DeepZoom=rect_tiles.tif_files/10/3_2.jpg")) == (232, 188)


@pytest.mark.parametrize(("argument", "status"), [
    ("rgb.tif_files/10/0_0.gif", 400), ("rgb.tif_files/10/0-0.jpg", 400),
    ("rgb.tif_files/x/0_0.jpg", 400), ("rgb.tif", 400), ("nothing.tif.dzi", 404),
    ("nothing.tif_files/1/0_0.jpg", 404), ("rgb.tif_files/10/0_0.png", 200),
])
def test_deepzoom_errors(app, argument, status):
    result = call(app, "DeepZoom=" + argument)
    assert result.status == status
    assert result.header("Access-Control-Allow-Origin") == "*"


# -- Zoomify -------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "width", "height", "tiles"), [
    ("rgb.tif", 1000, 700, 1 + 4 + 12),
    ("rgb_odd.tif", 1410, 793, 1 + 2 + 6 + 24),
])
def test_image_properties_bytes(app, name, width, height, tiles):
    result = call(app, f"Zoomify={name}/ImageProperties.xml")
    assert result.header("Content-Type") == "application/xml"
    assert result.body == (
        b'<IMAGE_PROPERTIES WIDTH="%d" HEIGHT="%d" NUMTILES="%d" NUMIMAGES="1" '
        b'VERSION="1.8" TILESIZE="256" />' % (width, height, tiles))
    parts = result.body.decode().split('"')  # IIPMooViewer's parser
    assert (int(parts[1]), int(parts[3]), int(parts[11])) == (width, height, 256)
    assert ET.fromstring(result.body).attrib["TILESIZE"] == "256"


def zoomify_sizes(width: int, height: int) -> list[tuple[int, int]]:
    sizes = [(width, height)]
    while max(sizes[-1]) > 256:
        sizes.append((sizes[-1][0] // 2, sizes[-1][1] // 2))
    return sizes[::-1]


@pytest.mark.parametrize(("name", "width", "height"), [
    ("rgb.tif", 1000, 700), ("rgb_odd.tif", 1410, 793),
])
def test_every_zoomify_tile_any_group(app, name, width, height):
    for z, (lw, lh) in enumerate(zoomify_sizes(width, height)):
        for y in range(math.ceil(lh / 256)):
            for x in range(math.ceil(lw / 256)):
                expected = (min(256, lw - x * 256), min(256, lh - y * 256))
                group = (x + y) % 3
                result = call(app, f"Zoomify={name}/TileGroup{group}/{z}-{x}-{y}.jpg")
                assert size_of(result) == expected, (z, x, y)
    levels = len(zoomify_sizes(width, height))
    assert call(app, f"Zoomify={name}/TileGroup0/{levels}-0-0.jpg").status == 404


def test_zoomify_tiles_are_the_stored_tiles(app):
    assert call(app, "Zoomify=rgb.tif/TileGroup0/2-3-2.jpg").body == call(
        app, "FIF=rgb.tif&JTL=2,11").body
    assert call(app, "Zoomify=rgb.tif/TileGroup7/0-0-0.jpg").body == call(
        app, "FIF=rgb.tif&JTL=0,0").body


def test_zoomify_renders_levels_the_file_lacks(tmp_path):
    from images import make_tiff

    make_tiff(tmp_path / "flat.tif", 600, 300, pyramid=False)
    app = make_app(FILESYSTEM_PREFIX=str(tmp_path) + "/")
    props = call(app, "Zoomify=flat.tif/ImageProperties.xml").body
    assert b'NUMTILES="%d"' % (1 + 2 + 6) in props  # 150×75, 300×150, 600×300
    assert size_of(call(app, "Zoomify=flat.tif/TileGroup0/0-0-0.jpg")) == (150, 75)
    assert size_of(call(app, "Zoomify=flat.tif/TileGroup0/1-1-0.jpg")) == (44, 150)
    assert size_of(call(app, "Zoomify=flat.tif/TileGroup0/2-2-1.jpg")) == (88, 44)


@pytest.mark.parametrize(("argument", "status"), [
    ("rgb.tif/TileGroup0/0-0.jpg", 400), ("rgb.tif/TileGroupX/0-0-0.jpg", 400),
    ("rgb.tif/TileGroup0/0-0-0.bmp", 400), ("rgb.tif", 400),
    ("nothing.tif/ImageProperties.xml", 404), ("rgb.tif/TileGroup0/0-1-0.jpg", 404),
])
def test_zoomify_errors(app, argument, status):
    result = call(app, "Zoomify=" + argument)
    assert result.status == status
    assert result.header("Access-Control-Allow-Origin") == "*"


# -- routes and headers ----------------------------------------------------------------


def test_paths_and_uri_map(app, image_dir):
    assert call(app, "", uri="/deepzoom/rgb.tif.dzi").status == 200
    assert size_of(call(app, "", uri="/deepzoom/rgb.tif_files/9/1_1.jpg")) == (244, 94)
    assert call(app, "", uri="/zoomify/rgb.tif/ImageProperties.xml").status == 200
    mapped = make_app(FILESYSTEM_PREFIX=str(image_dir) + "/", URI_MAP="zoom=>Zoomify")
    assert size_of(call(mapped, "", uri="/zoom/rgb.tif/TileGroup0/0-0-0.jpg")) == (250, 175)


def test_cors_and_validators_on_every_response(app):
    for query in ("DeepZoom=rgb.tif.dzi", "DeepZoom=rgb.tif_files/10/0_0.jpg",
                  "Zoomify=rgb.tif/ImageProperties.xml", "Zoomify=rgb.tif/TileGroup0/0-0-0.jpg"):
        result = call(app, query)
        assert result.header("Access-Control-Allow-Origin") == "*"
        assert result.header("Last-Modified")
        again = call(app, query, headers={"If-None-Match": result.header("ETag")})
        assert again.status == 304
