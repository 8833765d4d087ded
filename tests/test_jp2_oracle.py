"""Oracle for JPEG 2000: Debian's iipsrv 1.1 (OpenJPEG build) and iipy on the same files.

Where 1.1 is right we expect the same answer: OBJ sizes and level counts,
tile grid and tile sizes, and the same pixels up to the two JPEG encoders
(PSNR).  Where 1.1 is wrong the deliberate difference is asserted instead
(docs/jpeg2000.md, "Differences from iipsrv 1.1"):

* level sizes: 1.1 halves with floor, iipy reports the codestream's real
  ceil(x/2) sizes, so odd sizes give 1.1 one pixel less (and edge tiles one
  pixel narrower);
* virtual levels: 1.1 kills the worker on the first of them (an off-by-one
  in its count), iipy serves them;
* an image offset on the reference grid: 1.1 decodes the wrong area;
* raw J2K codestreams: 1.1 does not recognise them;
* quality layers: 1.1 decodes all of them whatever LYR and MAX_LAYERS say;
* 12-bit images: 1.1 reports a maximum of 4096 (1 << 12), iipy 4095.
"""

from __future__ import annotations

import io

import numpy as np
import pytest
from fcgi_client import FcgiError
from images import jp2_pattern_array
from PIL import Image
from servers import iipy_argv, iipy_environment, start_fcgi_command, start_iipsrv

#: JPEG 2000 fixtures 1.1 serves correctly (same sizes: every level halves evenly)
SAME = ["jp2_rgb.jp2", "jp2_untiled.jp2", "jp2_grey16.jp2", "jp2_layers.jp2", "jp2_meta.jp2",
        "jpx.jpx"]
OBJ = ("OBJ=IIP,1.0&OBJ=Max-size&OBJ=Tile-size&OBJ=Resolution-number&OBJ=Resolutions"
       "&OBJ=Bits-per-channel&OBJ=Min-Max-sample-values&OBJ=colorspace,0-2,0")


def start_pair(image_dir, tmp_path_factory, name: str):
    env = {"FILESYSTEM_PREFIX": f"{image_dir}/", "VERBOSITY": "1"}
    iipsrv = start_iipsrv(env, workdir=tmp_path_factory.mktemp(f"iipsrv-{name}"))
    iipy = start_fcgi_command(iipy_argv(), iipy_environment(env),
                              workdir=tmp_path_factory.mktemp(f"iipy-{name}"),
                              extra_args=["--processes", "1"], name="iipy")
    return iipsrv, iipy


@pytest.fixture(scope="module")
def servers(images, jp2_images, image_dir, tmp_path_factory):
    iipsrv, iipy = start_pair(image_dir, tmp_path_factory, "jp2")
    yield iipsrv, iipy
    iipy.stop()
    iipsrv.stop()


def decode(body: bytes) -> np.ndarray:
    image = Image.open(io.BytesIO(body))
    image.load()
    array = np.asarray(image).astype(np.float64)
    return array[:, :, None] if array.ndim == 2 else array


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a - b) ** 2))
    return 99.0 if mse == 0 else 10 * np.log10(255.0**2 / mse)


def resolutions(body: bytes) -> list[tuple[int, int]]:
    for line in body.decode().split("\r\n"):
        if line.startswith("Resolutions:"):
            return [tuple(map(int, pair.split())) for pair in line[12:].split(",")]
    raise AssertionError(f"no Resolutions line in {body!r}")


def grid(size: tuple[int, int]) -> list[tuple[int, int]]:
    """Sizes of the tiles of a level on the 256x256 grid, row-major."""
    width, height = size
    return [(min(256, width - x), min(256, height - y))
            for y in range(0, height, 256) for x in range(0, width, 256)]


@pytest.mark.parametrize("name", SAME)
def test_obj_is_byte_identical_where_sizes_agree(servers, name):
    iipsrv, iipy = servers
    ref, got = iipsrv.request(f"FIF={name}&{OBJ}"), iipy.request(f"FIF={name}&{OBJ}")
    assert ref.status == got.status == 200
    assert got.body == ref.body
    assert got.header("Content-Type") == ref.header("Content-Type")


@pytest.mark.parametrize("name", SAME)
def test_every_tile_has_iipsrv_s_size_and_pixels(servers, name):
    iipsrv, iipy = servers
    levels = resolutions(iipy.request(f"FIF={name}&OBJ=Resolutions").body)
    for r, size in enumerate(levels):
        tiles = grid(size)
        for t in sorted({0, len(tiles) - 1, len(tiles) // 2}):
            ref = iipsrv.request(f"FIF={name}&JTL={r},{t}")
            got = iipy.request(f"FIF={name}&JTL={r},{t}")
            assert ref.status == got.status == 200, (r, t)
            a, b = decode(ref.body), decode(got.body)
            assert a.shape == b.shape and (b.shape[1], b.shape[0]) == tiles[t], (r, t)
            assert psnr(a, b) > 35, (r, t)  # same decode, two JPEG encoders
        for statuses in (iipsrv.request(f"FIF={name}&JTL={r},{len(tiles)}").status,
                         iipy.request(f"FIF={name}&JTL={r},{len(tiles)}").status):
            assert statuses == 404


def test_iipsrv_1_1_decodes_every_quality_layer_whatever_lyr_says(servers):
    # 1.1 reads the codestream header before it sets the layer count, and OpenJPEG
    # fixes the count when it reads the header: 1.1 always decodes all layers.
    # iipy follows the documented rule (default: half; LYR=n: n; -1: all).
    iipsrv, iipy = servers
    # 1.1 caches tiles without the layer count: a different tile for each LYR
    for tile, lyr in ((4, ""), (5, "LYR=1&"), (6, "LYR=4&")):
        theirs = decode(iipsrv.request(f"FIF=jp2_layers.jp2&{lyr}JTL=2,{tile}").body)
        every = decode(iipy.request(f"FIF=jp2_layers.jp2&LYR=-1&JTL=2,{tile}").body)
        assert psnr(theirs, every) > 40, lyr
    one = decode(iipy.request("FIF=jp2_layers.jp2&LYR=1&JTL=2,5").body)
    theirs = decode(iipsrv.request("FIF=jp2_layers.jp2&LYR=1&JTL=2,5").body)
    assert psnr(one, theirs) < 30
    assert psnr(decode(iipy.request("FIF=jp2_layers.jp2&LYR=4&JTL=2,6").body),
                decode(iipy.request("FIF=jp2_layers.jp2&LYR=-1&JTL=2,6").body)) == 99.0


def test_odd_sizes_are_the_true_sizes_where_iipsrv_1_1_floors(servers):
    iipsrv, iipy = servers
    ref = resolutions(iipsrv.request("FIF=jp2_odd.jp2&OBJ=Resolutions").body)
    got = resolutions(iipy.request("FIF=jp2_odd.jp2&OBJ=Resolutions").body)
    assert ref == [(250, 175), (500, 351), (1001, 703)]  # floor(x/2)
    assert got == [(251, 176), (501, 352), (1001, 703)]  # ceil(x/2), as the codestream has it
    # full resolution: identical; level 1: the last column/row one pixel wider/higher
    for query, sizes in (("JTL=2,11", ((233, 191), (233, 191))),
                         ("JTL=1,3", ((244, 95), (245, 96)))):
        a = decode(iipsrv.request(f"FIF=jp2_odd.jp2&{query}").body)
        b = decode(iipy.request(f"FIF=jp2_odd.jp2&{query}").body)
        assert ((a.shape[1], a.shape[0]), (b.shape[1], b.shape[0])) == sizes


def test_twelve_bit_maximum_is_4095_not_4096(servers):
    iipsrv, iipy = servers
    query = "FIF=jp2_grey12.jp2&OBJ=Bits-per-channel&OBJ=Min-Max-sample-values"
    head = b"\r\nBits-per-channel:12\r\nMin-Max-sample-values: 0  "
    assert iipsrv.request(query).body == head + b"4096\r\n"
    assert iipy.request(query).body == head + b"4095\r\n"
    a = decode(iipsrv.request("FIF=jp2_grey12.jp2&JTL=2,1").body)
    b = decode(iipy.request("FIF=jp2_grey12.jp2&JTL=2,1").body)
    assert psnr(a, b) > 35


def test_an_image_offset_is_honoured_where_iipsrv_1_1_reads_the_wrong_area(servers):
    iipsrv, iipy = servers
    assert (iipsrv.request("FIF=jp2_offset.jp2&OBJ=Resolutions").body
            == iipy.request("FIF=jp2_offset.jp2&OBJ=Resolutions").body)
    truth = jp2_pattern_array(600, 400).astype(np.float64)[:256, 256:512]
    ours = decode(iipy.request("FIF=jp2_offset.jp2&JTL=2,1").body)
    theirs = decode(iipsrv.request("FIF=jp2_offset.jp2&JTL=2,1").body)
    assert ours.shape == theirs.shape == truth.shape
    assert psnr(ours, truth) > 35 and psnr(theirs, truth) < 20


def test_raw_codestreams_are_served_where_iipsrv_1_1_does_not_know_them(servers):
    iipsrv, iipy = servers
    assert iipsrv.request("FIF=j2k.j2k&OBJ=Max-size").status == 400  # "Unsupported image type"
    got = iipy.request("FIF=j2k.j2k&OBJ=Max-size&OBJ=Resolution-number")
    assert got.body == b"\r\nMax-size:600 400\r\nResolution-number:3\r\n"
    assert iipy.request("FIF=j2k.j2k&JTL=2,0").status == 200


def test_a_virtual_level_kills_an_iipsrv_1_1_worker_and_is_served_by_iipy(
    jp2_images, image_dir, tmp_path_factory
):
    # 1001x703 with 2 resolutions: iipsrv's 3 levels need one virtual level, and 1.1
    # asks OpenJPEG for a reduce factor the codestream does not have (and crashes)
    iipsrv, iipy = start_pair(image_dir, tmp_path_factory, "virtual")
    try:
        same = "FIF=jp2_odd.jp2&OBJ=Resolution-number"
        assert iipsrv.request(same).body == b"\r\nResolution-number:3\r\n"
        assert iipy.request(same).body == b"\r\nResolution-number:3\r\n"
        with pytest.raises((FcgiError, OSError)):  # the connection dies with the worker
            iipsrv.request("FIF=jp2_odd.jp2&JTL=0,0")
        assert iipsrv.process.wait(timeout=10) != 0  # died (SIGSEGV/SIGABRT), not an exit
        got = iipy.request("FIF=jp2_odd.jp2&JTL=0,0")
        assert got.status == 200
        tile = decode(got.body)
        assert tile.shape == (176, 251, 3)
        truth = jp2_pattern_array(1001, 703).astype(np.float64)
        # the virtual level is the 4x4 mean (partial blocks at the edges) of the full image
        means = np.add.reduceat(np.add.reduceat(truth, np.arange(0, 703, 4), axis=0),
                                np.arange(0, 1001, 4), axis=1)
        counts = np.diff(np.r_[np.arange(0, 703, 4), 703])[:, None] * np.diff(
            np.r_[np.arange(0, 1001, 4), 1001])[None, :]
        assert psnr(tile, means / counts[:, :, None]) > 28
        assert iipy.request("FIF=jp2_rgb.jp2&JTL=2,0").status == 200
    finally:
        iipy.stop()
        iipsrv.stop()
