"""Untiled sources and odd-bit TIFFs through a real lighttpd spawning iipy
(issue 16 item 3): a plain JPEG, a PNG, a strip TIFF and a 12-bit tiled TIFF
served in IIP, IIIF, DeepZoom and Zoomify by the processes lighttpd starts."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image
from servers import Spawn, iipy_argv, iipy_environment, start_lighttpd
from test_flat_sources import gradient, vips_image
from tiffwriter import write_tiff


@pytest.fixture(scope="module")
def web(tmp_path_factory):
    images = tmp_path_factory.mktemp("sources-web")
    rgb = gradient(1100, 700)
    vips_image(rgb).jpegsave(str(images / "photo.jpg"), Q=95)
    vips_image(rgb).pngsave(str(images / "image.png"))
    vips_image(rgb).tiffsave(str(images / "strip.tif"), tile=False)
    write_tiff(str(images / "deep.tif"), rgb.astype(np.uint16) * 16, 12, tile=256)
    whole = (images / "photo.jpg").read_bytes()
    (images / "trunc.jpg").write_bytes(whole[:len(whole) // 2])
    directory = tmp_path_factory.mktemp("sources-lighttpd")
    env = iipy_environment({"FILESYSTEM_PREFIX": f"{images}/",
                            "LOGFILE": str(directory / "iipy.log")})
    with start_lighttpd(Spawn(iipy_argv(), env, processes=2), directory / "lighttpd") as server:
        yield server, rgb


def pixels(body: bytes) -> np.ndarray:
    image = Image.open(io.BytesIO(body))
    image.load()
    return np.asarray(image).astype(np.float64)


@pytest.mark.parametrize("name", ["photo.jpg", "image.png", "strip.tif", "deep.tif"])
def test_untiled_and_12_bit_sources_through_lighttpd(web, name):
    server, rgb = web
    meta = server.get(f"FIF={name}&OBJ=Max-size")
    assert meta.status == 200 and b"Max-size:1100 700" in meta.body
    levels = 4 if name != "deep.tif" else 1  # deep.tif: one tiled level, no pyramid
    tile = server.get(f"FIF={name}&JTL={levels - 1},0")
    assert tile.status == 200 and tile.header("Content-Type") == "image/jpeg"
    assert np.abs(pixels(tile.body) - rgb[:256, :256]).mean() < 3.0
    info = server.get("", path=f"/fcgi-bin/iipsrv.fcgi?IIIF={name}/info.json")
    assert info.status == 200 and b"1100" in info.body
    region = server.get(f"IIIF={name}/0,0,512,512/256,/0/default.png")
    assert region.status == 200
    want = rgb[:512, :512].reshape(256, 2, 256, 2, 3).mean(axis=(1, 3))
    assert np.abs(pixels(region.body) - want).mean() < 3.0
    assert server.get(f"DeepZoom={name}.dzi").status == 200
    assert server.get(f"Zoomify={name}/TileGroup0/0-0-0.jpg").status == 200


def test_a_truncated_jpeg_is_the_protocols_error_through_lighttpd(web):
    server, _ = web
    # the header is intact, the scan cut: described, but no tile of it decodes
    assert b"Max-size:1100 700" in server.get("FIF=trunc.jpg&OBJ=Max-size").body
    for query in ("FIF=trunc.jpg&JTL=3,0", "IIIF=trunc.jpg/full/max/0/default.jpg"):
        answer = server.get(query)
        assert answer.status == 404, query
        assert answer.body and b"Traceback" not in answer.body
    assert server.get("FIF=photo.jpg&JTL=0,0").status == 200  # the worker still serves
