"""Metadata in outputs through a real lighttpd spawning iipy (issue 16): a
pass-through tile with its JFIF density and byte-exact ICC profile, an
export with the TIFF's EXIF, XMP and a scaled resolution, OBJ=metadata as
JSON."""

from __future__ import annotations

import json

import pytest
from images import SAMPLE_XMP, srgb_profile
from metafixtures import make_meta_images
from metaread import jfif_density, jpeg_exif, jpeg_icc, jpeg_xmp, png_chunks, png_phys
from servers import Spawn, iipy_argv, iipy_environment, start_lighttpd

from iipy.decoders import decoder_for


@pytest.fixture(scope="module")
def web(tmp_path_factory):
    images = tmp_path_factory.mktemp("web_meta_images")
    make_meta_images(images)
    directory = tmp_path_factory.mktemp("web_meta")
    env = iipy_environment({"FILESYSTEM_PREFIX": f"{images}/",
                            "LOGFILE": str(directory / "iipy.log")})
    with start_lighttpd(Spawn(iipy_argv(), env, processes=2), directory / "lighttpd") as server:
        yield server, images


def test_metadata_through_lighttpd(web):
    server, images = web
    exif = decoder_for(str(images / "exif.tif")).info.exif
    tile = server.get("FIF=exif.tif&JTL=2,5")
    assert tile.status == 200 and tile.header("Content-Type") == "image/jpeg"
    assert jpeg_icc(tile.body) == srgb_profile()
    assert jfif_density(tile.body) == (1, 300, 150)
    export = server.get("FIF=exif.tif&WID=256&CVT=jpeg").body
    assert jpeg_exif(export) == exif and jpeg_xmp(export) == SAMPLE_XMP
    assert jfif_density(export) == (1, 75, 38)
    png = server.get("IIIF=cm.tif/full/250,/0/default.png").body
    assert png_phys(png) == (3000, 3000, 1)
    assert b"eXIf" not in png_chunks(png)  # cm.tif has no EXIF
    metadata = server.get("FIF=odd_text.tif&OBJ=metadata")
    assert metadata.header("Content-Type").startswith("application/json")
    assert json.loads(metadata.body)["creator"] == "Jos\u00e9 M\u00fcller"
