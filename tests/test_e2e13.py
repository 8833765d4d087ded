"""The iipsrv 1.3 commands and outputs through a real lighttpd spawning iipy
(issue 15): TIL bodies, TIFF compression from QLT and the environment, AVIF
tiles and exports, OBJ=xmp, IIIF extension qualities and info.json."""

from __future__ import annotations

import io
import json
import re
import struct

import pytest
from images import SAMPLE_XMP
from PIL import Image
from servers import Spawn, iipy_argv, iipy_environment, start_lighttpd


@pytest.fixture(scope="module")
def web(images, image_dir, tmp_path_factory):
    directory = tmp_path_factory.mktemp("web13")
    env = iipy_environment({
        "FILESYSTEM_PREFIX": f"{image_dir}/", "LOGFILE": str(directory / "iipy.log"),
        "IIIF_EXTENSIONS": "1", "TIFF_COMPRESSION": "5", "TIFF_QUALITY": "3",
        "AVIF_QUALITY": "40", "COPYRIGHT": "https://creativecommons.org/licenses/by/4.0/",
    })
    with start_lighttpd(Spawn(iipy_argv(), env, processes=2), directory / "lighttpd") as server:
        yield server


def size(body: bytes) -> tuple[int, int]:
    image = Image.open(io.BytesIO(body))
    image.load()
    return image.size


def compression(body: bytes) -> int:
    (offset,) = struct.unpack_from("<I", body, 4)
    (count,) = struct.unpack_from("<H", body, offset)
    for i in range(count):
        tag, _, _, value = struct.unpack_from("<HHIH", body, offset + 2 + 12 * i)
        if tag == 259:
            return value
    raise AssertionError("no Compression tag")


def test_til_through_lighttpd(web):
    result = web.get("FIF=rgb.tif&TIL=2,1-6")
    assert result.status == 200
    assert result.header("Content-Type") == "application/vnd.netfpx"
    frames = re.findall(rb"Tile,2,(\d+),0/(\d+):", result.body)
    assert [int(n) for n, _ in frames] == [1, 5, 2, 6]
    assert int(result.header("Content-Length")) == len(result.body)
    assert web.get("FIF=rgb.tif&TIL=2,0-40").status == 404


def test_tiff_compression_through_lighttpd(web):
    assert compression(web.get("FIF=rgb.tif&TTL=2,0").body) == 50000  # TIFF_COMPRESSION=5
    assert compression(web.get("FIF=rgb.tif&QLT=lzw:0&TTL=2,0").body) == 5
    export = web.get("FIF=grey8.tif&QLT=deflate:6&WID=200&CVT=tiff")
    assert compression(export.body) == 8
    image = Image.open(io.BytesIO(export.body))
    assert image.mode == "L" and image.size == (200, 140)


def test_avif_through_lighttpd(web):
    tile = web.get("FIF=rgb.tif&ATL=2,5")
    assert tile.header("Content-Type") == "image/avif" and size(tile.body) == (256, 256)
    export = web.get("FIF=rgb.tif&WID=300&CVT=avif")
    assert export.header("Content-Type") == "image/avif" and size(export.body) == (300, 210)
    iiif = web.get("IIIF=rgb.tif/full/200,/0/negative.avif")
    assert iiif.status == 200 and size(iiif.body) == (200, 140)


def test_obj_xmp_and_jtls_through_lighttpd(web):
    xmp = web.get("FIF=meta.tif&OBJ=xmp")
    assert xmp.header("Content-Type") == "application/xml"
    assert xmp.body.rstrip(b"\r\n") == SAMPLE_XMP
    assert size(web.get("FIF=rgb.tif&JTLS=0,2,5,90").body) == (256, 256)


def test_iiif_info_through_lighttpd(web):
    doc = json.loads(web.get("IIIF=meta.tif/info.json").body)
    assert "equalization" in doc["extraQualities"]
    assert doc["requiredStatement"]["value"] == {"none": ["(c) Test Owner"]}
    assert doc["service"][0]["physicalUnits"] == "in"
    assert "avif" in doc["extraFormats"]
    assert json.loads(web.get("IIIF=rgb.tif/info.json").body)["rights"].startswith("https://")
