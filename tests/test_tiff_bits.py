"""TIFF samples of 1 to 16 bits (issue 16 item 3), tiled and stripped, chunky
and planar-separate, MinIsBlack, MinIsWhite and RGB: a spec table against the
numpy source, and an oracle against Debian's iipsrv 1.1 where 1.1 is right.

Expected 8-bit values follow the TIFF 6.0 sample definitions and iipsrv's
scaling: samples of fewer than 8 bits are stretched to 0-255 (v·255/(2^b-1),
exact for 1, 2 and 4 bits); 9-16 bits go through the float pipeline,
trunc(v·255/max) with max = SMaxSampleValue or 2^bits-1 (iipsrv 1.3 sets no
maximum for 10 and 14 bits and divides by zero); MinIsWhite is inverted
(1.1 and 1.3 invert only 1-bit images).  libvips reads none of 10/12/14 bits,
1/2/4-bit colour or planar-separate tiles: iipy's own reader does
(iipy/decoders/tiffraw.py).

iipsrv 1.1 on the same files: 1-bit (both photometrics) and 8-bit MinIsBlack
agree with iipy; 2 and 4 bits are refused (400); 10-14 bits are read as if
16-bit words (garbage); planar-separate tiles crash the worker; 8-bit
MinIsWhite is not inverted.
"""

from __future__ import annotations

import io
import itertools
import re

import numpy as np
import pytest
from PIL import Image
from servers import iipy_argv, iipy_environment, start_fcgi_command, start_iipsrv
from tiffwriter import write_tiff
from wsgi import call, make_app

WIDTH, HEIGHT = 300, 200
LAYOUTS = {  # name → (tile, rows_per_strip, planar)
    "tiled": (64, None, 1),
    "tiled-planar": (64, None, 2),
    "strips": (None, 7, 1),
    "strips-planar": (None, 7, 2),
}
KINDS = {"grey": (1, 1), "white": (0, 1), "rgb": (2, 3)}  # photometric, bands
BITS = (1, 2, 4, 10, 12, 14)


def samples(bits: int, bands: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    values = rng.integers(0, 1 << bits, (HEIGHT, WIDTH, bands))
    values[0, :8, 0] = [0, (1 << bits) - 1] * 4  # both extremes present
    return values.astype(np.uint16 if bits > 8 else np.uint8)


def expected(values: np.ndarray, bits: int, photometric: int, top: int | None = None) -> np.ndarray:
    top = top if top is not None else (1 << bits) - 1
    v = values.astype(np.float64)
    if photometric == 0:
        v = top - v
    if bits < 8:
        return v * 255 // top
    return np.floor(np.clip(v / top, 0, 1) * 255)


CASES = [(bits, layout, kind) for bits, layout, kind in itertools.product(BITS, LAYOUTS, KINDS)
         if not (kind != "rgb" and layout.endswith("planar"))]


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("bits")
    made = {}
    for seed, (bits, layout, kind) in enumerate(CASES):
        photometric, bands = KINDS[kind]
        tile, rows, planar = LAYOUTS[layout]
        values = samples(bits, bands, seed)
        name = f"b{bits}-{layout}-{kind}.tif"
        write_tiff(str(d / name), values, bits, photometric=photometric, tile=tile,
                   rows_per_strip=rows, planar=planar)
        made[name] = (values, expected(values, bits, photometric))
    smax = samples(12, 1, 99) // 2  # 0..2047
    write_tiff(str(d / "smax.tif"), smax, 12, tile=64, smax=2047)
    made["smax.tif"] = (smax, expected(smax, 12, 1, top=2047))
    return d, made


@pytest.fixture(scope="module")
def app(files):
    return make_app(FILESYSTEM_PREFIX=f"{files[0]}/")


def full_size(app, name: str) -> np.ndarray:
    """The full-resolution pixels, stitched from PNG tiles (PTL)."""
    meta = call(app, f"FIF={name}&OBJ=Resolution-number&OBJ=Tile-size").body.decode()
    resolution = int(re.search(r"Resolution-number:(\d+)", meta).group(1)) - 1
    tw, th = (int(n) for n in re.search(r"Tile-size:(\d+) (\d+)", meta).groups())
    columns = -(-WIDTH // tw)
    out = None
    for n in range(columns * -(-HEIGHT // th)):
        result = call(app, f"FIF={name}&PTL={resolution},{n}")
        assert result.status == 200, (name, result.body[:200])
        tile = np.asarray(Image.open(io.BytesIO(result.body))).astype(np.float64)
        tile = tile[:, :, None] if tile.ndim == 2 else tile
        if out is None:
            out = np.zeros((HEIGHT, WIDTH, tile.shape[2]))
        x, y = (n % columns) * tw, (n // columns) * th
        out[y:y + tile.shape[0], x:x + tile.shape[1]] = tile
    return out


@pytest.mark.parametrize(("bits", "layout", "kind"), CASES)
def test_samples_reach_8_bits_as_the_spec_says(app, files, bits, layout, kind):
    name = f"b{bits}-{layout}-{kind}.tif"
    _, want = files[1][name]
    got = full_size(app, name)
    # 1-bit grey is served as BINARY: the same 0/255 values
    error = np.abs(got - want)
    assert error.max() <= (0 if bits < 8 else 1), (name, error.max())


@pytest.mark.parametrize(("bits", "tile", "rows", "deflate"), [
    (12, None, None, False),  # one strip for the whole image: read row range by row range
    (12, None, None, True),   # one Deflate strip: inflated as a stream, the rows kept
    (12, None, 7, True),
    (4, 64, None, True),
    (14, 64, None, False),
])
def test_one_strip_and_deflate_layouts(tmp_path, bits, tile, rows, deflate):
    values = samples(bits, 3, bits)
    write_tiff(str(tmp_path / "f.tif"), values, bits, tile=tile, rows_per_strip=rows,
               deflate=deflate)
    got = full_size(make_app(FILESYSTEM_PREFIX=f"{tmp_path}/"), "f.tif")
    assert np.abs(got - expected(values, bits, 2)).max() <= (0 if bits < 8 else 1)


def test_bits_per_channel_and_range_are_the_files(app):
    body = call(app, "FIF=b12-tiled-grey.tif&OBJ=Bits-per-channel&OBJ=Min-Max-sample-values").body
    assert b"Bits-per-channel:12" in body
    assert b"4095" in body
    assert b"Bits-per-channel:14" in call(app, "FIF=b14-strips-rgb.tif&OBJ=Bits-per-channel").body


def test_smaxsamplevalue_scales_12_bit_data(app, files):
    _, want = files[1]["smax.tif"]
    got = full_size(app, "smax.tif")
    assert np.abs(got - want).max() <= 1
    assert got.max() == 255  # 2047 is white, not half grey


# -- oracle: iipsrv 1.1 where it serves the layout right -------------------------------

@pytest.fixture(scope="module")
def oracle(files, tmp_path_factory):
    d = files[0]
    for bits, kind in ((1, "grey"), (1, "white"), (8, "grey"), (8, "white"), (8, "rgb")):
        photometric, bands = KINDS[kind]
        write_tiff(str(d / f"o{bits}-{kind}.tif"), samples(bits, bands, bits),
                   bits, photometric=photometric, tile=256)
    env = {"FILESYSTEM_PREFIX": f"{d}/", "VERBOSITY": "1"}
    iipsrv = start_iipsrv(env, workdir=tmp_path_factory.mktemp("iipsrv-bits"))
    iipy = start_fcgi_command(iipy_argv(), iipy_environment(env),
                              workdir=tmp_path_factory.mktemp("iipy-bits"),
                              extra_args=["--processes", "1"], name="iipy")
    yield iipsrv, iipy
    iipy.stop()
    iipsrv.stop()


def jpeg_pixels(body: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(body))).astype(np.float64)


@pytest.mark.parametrize("name", ["o1-grey.tif", "o1-white.tif", "o8-grey.tif", "o8-rgb.tif"])
def test_tiles_as_iipsrv_11(oracle, name):
    iipsrv, iipy = oracle
    for query in (f"FIF={name}&JTL=0,0", f"FIF={name}&JTL=0,1"):
        ref, got = iipsrv.request(query), iipy.request(query)
        assert (got.status, ref.status) == (200, 200)
        assert np.abs(jpeg_pixels(got.body) - jpeg_pixels(ref.body)).mean() < 0.5
    meta = "OBJ=Max-size&OBJ=Resolution-number&OBJ=Bits-per-channel"
    assert iipy.request(f"FIF={name}&{meta}").body == iipsrv.request(f"FIF={name}&{meta}").body


def test_8_bit_miniswhite_is_inverted_where_iipsrv_11_is_not(oracle):
    iipsrv, iipy = oracle
    ref = jpeg_pixels(iipsrv.request("FIF=o8-white.tif&JTL=0,0").body)
    got = jpeg_pixels(iipy.request("FIF=o8-white.tif&JTL=0,0").body)
    # noise re-encoded: a few levels of JPEG error; not inverted would be ~128
    assert np.abs(got - (255 - ref)).mean() < 4.0  # 1.1 shows the stored values
