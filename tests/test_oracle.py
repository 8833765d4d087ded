"""Oracle: Debian's iipsrv 1.1 and iipy answer the same requests on the same images.

Both run as standalone FastCGI servers with the same FILESYSTEM_PREFIX.  We
compare OBJ bytes, error bodies, status codes, the tile grid (count and size
of every tile of every resolution) and pixels, except where iipy deliberately
differs (README, "Compatibility"); those differences are asserted too.
"""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image
from servers import iipy_argv, iipy_environment, start_fcgi_command, start_iipsrv

#: images on which 1.1 and the 1.2+ pyramid rules agree
SAME_PYRAMID = ["rgb", "rgb_ycbcr", "rgb_odd", "grey8", "grey16", "deflate", "lzw", "none",
                "bigtiff", "meta", "rect_tiles"]

OBJ_QUERIES = [
    "obj=IIP,1.0&obj=Max-size&obj=Tile-size&obj=Resolution-number&obj=Resolutions",
    "OBJ=IIP,1.0&OBJ=Max-size&OBJ=Tile-size&OBJ=Resolution-number&OBJ=Bits-per-channel"
    "&OBJ=Vertical-views&OBJ=Horizontal-views&OBJ=Min-Max-sample-values&OBJ=Resolutions"
    "&OBJ=colorspace,0-2,0&OBJ=IIP-server",
    "OBJ=basic-info&OBJ=iip-opt-comm&OBJ=iip-opt-obj",
    "OBJ=Max-size",
]


@pytest.fixture(scope="module")
def servers(images, image_dir, tmp_path_factory):
    env = {"FILESYSTEM_PREFIX": f"{image_dir}/", "VERBOSITY": "1"}
    iipsrv = start_iipsrv(env, workdir=tmp_path_factory.mktemp("iipsrv"))
    # iipy names itself by default; asked to, it sends iipsrv's Server header (compared below)
    iipy = start_fcgi_command(iipy_argv(), iipy_environment({**env,
                                                             "IIPY_SERVER_HEADER": "iipsrv"}),
                              workdir=tmp_path_factory.mktemp("iipy"),
                              extra_args=["--processes", "1"], name="iipy")
    yield iipsrv, iipy
    iipy.stop()
    iipsrv.stop()


def decode(body: bytes) -> np.ndarray:
    image = Image.open(io.BytesIO(body))
    image.load()
    return np.asarray(image).astype(np.float64)


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a - b) ** 2))
    return 99.0 if mse == 0 else 10 * np.log10(255.0**2 / mse)


@pytest.mark.parametrize("name", SAME_PYRAMID)
@pytest.mark.parametrize("query", OBJ_QUERIES)
def test_obj_bytes_and_headers_equal(servers, name, query):
    iipsrv, iipy = servers
    full = f"FIF={name}.tif&{query}"
    ref, got = iipsrv.request(full), iipy.request(full)
    assert (got.status, got.body) == (ref.status, ref.body)
    for header in ("Content-Type", "Cache-Control", "Last-Modified", "Server", "X-Powered-By"):
        assert got.header(header) == ref.header(header), header


def test_metadata_objects_equal(servers):
    iipsrv, iipy = servers
    query = "FIF=meta.tif&OBJ=copyright&OBJ=subject&OBJ=author&OBJ=create-dtm&OBJ=app-name"
    assert iipy.request(query).body == iipsrv.request(query).body


@pytest.mark.parametrize(
    "query",
    [
        "CVT=jpeg&FIF=rgb.tif",
        "FIF=rgb.tif&FOO=1",
        "FIF=rgb.tif&OBJ=foo",
        "FIF=rgb.tif&OBJ=foo&OBJ=Max-size",
        "OBJ=Max-size",
        "OBJ",
        "JTL=0,0",
        "FIF=rgb.tif",
        "FIF=rgb.tif&OBJ=IIP,1.0&OBJ=bad-object-with-a-long-name",
        "FIF=rgb.tif&FOO=1&BAR=2",
    ],
)
def test_error_bodies_and_status_equal(servers, query):
    iipsrv, iipy = servers
    ref, got = iipsrv.request(query), iipy.request(query)
    assert ref.status == 400
    assert (got.status, got.body) == (ref.status, ref.body)
    assert got.header("Content-Type") == ref.header("Content-Type")
    assert got.header("Cache-Control") == ref.header("Cache-Control") == "no-cache"


@pytest.mark.parametrize("name", SAME_PYRAMID)
def test_every_tile_has_the_same_size_and_pixels(servers, name):
    iipsrv, iipy = servers
    levels = iipsrv.request(f"FIF={name}.tif&OBJ=Resolution-number").body
    count = int(levels.split(b":")[1])
    for resolution in range(count):
        tile = 0
        while True:
            query = f"FIF={name}.tif&JTL={resolution},{tile}"
            ref, got = iipsrv.request(query), iipy.request(query)
            assert got.status == ref.status, query
            if ref.status != 200:
                assert ref.status == 404  # past the last tile
                break
            a, b = decode(ref.body), decode(got.body)
            assert a.shape == b.shape, query
            assert psnr(a, b) > 30, query
            tile += 1
        assert tile > 0


def test_missing_and_out_of_range_statuses_equal(servers):
    iipsrv, iipy = servers
    for query in ["FIF=nothing.tif&JTL=0,0", "FIF=rgb.tif&JTL=3,0", "FIF=rgb.tif&JTL=2,12",
                  "FIF=rgb.tif&JTL=5,0"]:
        assert iipy.request(query).status == iipsrv.request(query).status == 404, query


def test_404_body_differs_deliberately(servers, image_dir):
    iipsrv, iipy = servers
    query = "FIF=nothing.tif&JTL=0,0"
    assert str(image_dir).encode() in iipsrv.request(query).body  # 1.1 leaks the path
    assert str(image_dir).encode() not in iipy.request(query).body


@pytest.mark.parametrize(
    ("query", "size"),
    [
        ("FIF=rgb.tif&CVT=jpeg", (1000, 700)),
        ("FIF=rgb.tif&WID=300&CVT=jpeg", (300, 210)),
        ("FIF=rgb.tif&HEI=300&CVT=jpeg", (429, 300)),
        ("FIF=rgb.tif&WID=300&HEI=300&CVT=jpeg", (300, 210)),
        ("FIF=rgb.tif&WID=2000&CVT=jpeg", (2000, 1400)),
        ("FIF=rgb.tif&WID=6000&CVT=jpeg", (5000, 3500)),
        ("FIF=rgb.tif&RGN=0.25,0.25,0.5,0.5&CVT=jpeg", (1000, 700)),
        ("FIF=rgb_odd.tif&WID=500&CVT=jpeg", (500, 281)),
    ],
)
def test_cvt_sizes_and_pixels_equal(servers, query, size):
    iipsrv, iipy = servers
    ref, got = iipsrv.request(query), iipy.request(query)
    a, b = decode(ref.body), decode(got.body)
    assert a.shape[:2][::-1] == b.shape[:2][::-1] == size
    assert psnr(a, b) > 28
    assert got.header("Content-Disposition") == ref.header("Content-Disposition")


def test_cvt_region_size_follows_13_where_11_is_off_by_one(servers):
    iipsrv, iipy = servers
    query = "FIF=rgb.tif&RGN=0.25,0.25,0.5,0.5&WID=100&CVT=jpeg"
    assert decode(iipsrv.request(query).body).shape[:2] == (70, 99)
    assert decode(iipy.request(query).body).shape[:2] == (70, 100)


def test_obj_dpi_answered_where_11_fails(servers):
    iipsrv, iipy = servers
    query = ("FIF=meta.tif&obj=IIP,1.0&obj=Max-size&obj=Tile-size&obj=Resolution-number"
             "&obj=Resolutions&obj=dpi")
    assert iipsrv.request(query).status == 400
    got = iipy.request(query)
    assert got.status == 200 and got.body.endswith(b"DPI:11811.023622 11811.023622\r\n")


def test_pyramids_11_misreads(servers):
    """1.1 counts a thumbnail directory as a level and misses SubIFD pyramids."""
    iipsrv, iipy = servers
    for name in ("thumbnail", "subifd"):
        query = f"FIF={name}.tif&OBJ=Resolutions"
        assert iipy.request(query).body == b"\r\nResolutions:250 175,500 350,1000 700\r\n"
        assert iipsrv.request(query).body != iipy.request(query).body
