"""Oracle for the 1.3 commands Debian's iipsrv 1.1 already has: TIL, JTLS and
IIIF 2 info.json's scaleFactors, compared with 1.1 on the same images.

TIL bodies are compared frame by frame: the same tiles in the same order with
the same ``Tile,r,n,0/len:`` prefix shape and 8-byte type header; the JPEG
bytes differ (1.1 re-encodes every tile, iipy sends the stored one), so their
pixels are compared.  Where iipy deliberately differs (a range past the image),
the difference is asserted.
"""

from __future__ import annotations

import io
import json
import re

import numpy as np
import pytest
from PIL import Image
from servers import iipy_argv, iipy_environment, start_fcgi_command, start_iipsrv


@pytest.fixture(scope="module")
def servers(images, image_dir, tmp_path_factory):
    env = {"FILESYSTEM_PREFIX": f"{image_dir}/", "VERBOSITY": "1"}
    iipsrv = start_iipsrv(env, workdir=tmp_path_factory.mktemp("iipsrv13"))
    iipy = start_fcgi_command(iipy_argv(), iipy_environment(env),
                              workdir=tmp_path_factory.mktemp("iipy13"),
                              extra_args=["--processes", "1"], name="iipy")
    yield iipsrv, iipy
    iipy.stop()
    iipsrv.stop()


FRAME = re.compile(rb"Tile,(\d+),(\d+),0/(\d+):")


def frames(body: bytes) -> list[tuple[int, int, bytes, bytes]]:
    out, pos = [], 0
    while pos < len(body):
        match = FRAME.match(body, pos)
        if match is None:
            break
        length = int(match.group(3))
        chunk = body[match.end():match.end() + length]
        out.append((int(match.group(1)), int(match.group(2)), chunk[:8], chunk[8:]))
        pos = match.end() + length + 2
    return out


def decode(body: bytes) -> np.ndarray:
    image = Image.open(io.BytesIO(body))
    image.load()
    return np.asarray(image).astype(np.float64)


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a - b) ** 2))
    return 99.0 if mse == 0 else 10 * np.log10(255.0**2 / mse)


TIL_QUERIES = [
    "FIF=rgb.tif&TIL=2,1-6",
    "FIF=rgb.tif&TIL=2,3-4",
    "FIF=rgb.tif&TIL=2,5-2",
    "FIF=rgb.tif&TIL=0,0",
    "FIF=rgb_odd.tif&TIL=3,0-11",
    "FIF=rect_tiles.tif&TIL=3,2-9",
    "FIF=grey8.tif&TIL=1,0-3",
]


@pytest.mark.parametrize("query", TIL_QUERIES)
def test_til_frames_as_iipsrv(servers, query):
    iipsrv, iipy = servers
    ref, got = iipsrv.request(query), iipy.request(query)
    assert (got.status, got.header("Content-Type")) == (ref.status, ref.header("Content-Type"))
    ref_frames, got_frames = frames(ref.body), frames(got.body)
    assert [f[:3] for f in got_frames] == [f[:3] for f in ref_frames]
    assert len(got_frames) >= 1
    for (_, _, _, mine), (_, _, _, theirs) in zip(got_frames, ref_frames, strict=True):
        a, b = decode(mine), decode(theirs)
        assert a.shape == b.shape
        assert psnr(a, b) > 30


def test_til_past_the_image(servers):
    """1.1 sends the tiles it has, then fails; iipy refuses the range with a 404."""
    iipsrv, iipy = servers
    query = "FIF=rgb.tif&TIL=2,0-40"
    ref = iipsrv.request(query)
    assert ref.status == 200 and frames(ref.body)
    got = iipy.request(query)
    assert got.status == 404 and not frames(got.body)


@pytest.mark.parametrize("query", ["FIF=rgb.tif&JTLS=0,2,5,90", "FIF=rgb_odd.tif&JTLS=0,3,11,90",
                                   "FIF=grey8.tif&JTLS=0,1,2,90"])
def test_jtls_as_iipsrv(servers, query):
    iipsrv, iipy = servers
    ref, got = iipsrv.request(query), iipy.request(query)
    assert (got.status, got.header("Content-Type")) == (ref.status, ref.header("Content-Type"))
    a, b = decode(got.body), decode(ref.body)
    assert a.shape == b.shape and psnr(a, b) > 30


@pytest.mark.parametrize("name", ["rgb", "rgb_odd", "rect_tiles", "grey16"])
def test_iiif_scale_factors_as_iipsrv(servers, name):
    """On halving TIFF pyramids 1.1's powers of two are right; iipy agrees."""
    iipsrv, iipy = servers
    query = f"IIIF={name}.tif/info.json"
    ref = json.loads(iipsrv.request(query).body)
    got = json.loads(iipy.request(query, headers={
        "Accept": 'application/ld+json;profile="http://iiif.io/api/image/2/context.json"'}).body)
    assert got["tiles"][0]["scaleFactors"] == ref["tiles"][0]["scaleFactors"]
