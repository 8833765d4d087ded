"""PFL=r:x1,y1-x2,y2 (iip-protocol.md §2.24): the samples along a horizontal or
vertical line, as the JSON iipsrv 1.3 sends.

Expected bodies are built from the numpy arrays the fixtures wrote
(samplefiles.py): every pixel's samples in turn, bands interleaved; integers
exactly, floats with 9 decimals; one array per page of a stack.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from samplefiles import (
    ListStackDecoder,
    level_array,
    name_page,
    profile_values,
    random_array,
    register_stack_decoder,
    write_stack,
    write_tiff,
)
from wsgi import call, make_app

from iipy.decoders.tiff import TiffDecoder
from iipy.protocols import iipdata
from iipy.render.limits import WORKING_PIXELS

IMAGES = {
    "grey8": ("uint8", 1),
    "grey16": ("uint16", 1),
    "short16": ("int16", 1),
    "grey32": ("uint32", 1),
    "int32": ("int32", 1),
    "float32": ("float32", 1),
    "char8": ("int8", 1),
    "rgb8": ("uint8", 3),
    "rgba16": ("uint16", 4),
    "six16": ("uint16", 6),
    "sixf": ("float32", 6),
}
FULL = 3


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    directory = tmp_path_factory.mktemp("pfl")
    arrays = {}
    for seed, (name, (dtype, bands)) in enumerate(IMAGES.items()):
        arrays[name] = random_array(dtype, bands, 50 + seed)
        write_tiff(directory / f"{name}.tif", arrays[name])
    special = np.array([[[np.nan], [np.inf], [-np.inf], [-0.0], [1.5e-7], [3e38]]], np.float32)
    arrays["special"] = np.repeat(special, 2, axis=0)
    write_tiff(directory / "special.tif", arrays["special"])
    return directory, arrays


@pytest.fixture(scope="module")
def app(folder):
    return make_app(FILESYSTEM_PREFIX=f"{folder[0]}/")


def body(values: str) -> bytes:
    return ('{\n\t"profile": [' + values + "]\n}").encode()


#: (argument, the pixels it names as numpy slices [rows, columns])
LINES = [
    ("0,0-300,0", np.s_[0:1, 0:300]),  # the whole first row (x2 is exclusive)
    ("10,150-250,0", np.s_[150:151, 10:250]),  # y2 of a horizontal line is ignored
    ("299,0-299,200", np.s_[0:200, 299:300]),  # the whole last column
    ("63,70-63,129", np.s_[70:129, 63:64]),  # across a tile boundary
    ("120,30", np.s_[30:31, 120:121]),  # one pixel
    ("120,30-120,30", np.s_[30:31, 120:121]),
    ("120,30-5,2", np.s_[30:31, 120:121]),  # backwards: one pixel, as iipsrv
    ("299,199", np.s_[199:200, 299:300]),  # the last pixel
]


@pytest.mark.parametrize("line,where", LINES)
@pytest.mark.parametrize("name", IMAGES)
def test_line_at_full_resolution(app, folder, name, line, where):
    result = call(app, f"FIF={name}.tif&PFL={FULL}:{line}")
    assert result.status == 200
    assert result.header("Content-Type") == "application/json"
    assert result.body == body(profile_values(folder[1][name][where]))
    values = json.loads(result.body)["profile"]
    assert len(values) == folder[1][name][where].size


@pytest.mark.parametrize("name", ["grey8", "rgb8", "sixf"])
@pytest.mark.parametrize("resolution,line",
                         [(0, "0,12-37,0"), (1, "40,0-40,50"), (2, "3,99-149,0")])
def test_reduced_resolutions_read_their_own_level(app, folder, name, resolution, line):
    level = level_array(folder[0] / f"{name}.tif", resolution)
    (x1, y1), (x2, y2) = ((int(v) for v in p.split(",")) for p in line.split("-"))
    where = np.s_[y1:y1 + 1, x1:x2] if x2 > x1 else np.s_[y1:y2, x1:x1 + 1]
    result = call(app, f"FIF={name}.tif&PFL={resolution}:{line}")
    assert result.body == body(profile_values(level[where]))


def test_number_formats(app, folder):
    assert call(app, f"FIF=grey32.tif&PFL={FULL}:0,0").body == \
        body(str(int(folder[1]["grey32"][0, 0, 0])))  # exact, not 4.29e+09
    assert call(app, f"FIF=int32.tif&PFL={FULL}:0,0").body == \
        body(str(int(folder[1]["int32"][0, 0, 0])))  # signed
    float_body = call(app, f"FIF=float32.tif&PFL={FULL}:0,0").body
    assert float_body == body(f"{float(folder[1]['float32'][0, 0, 0]):.9f}")


def test_values_that_are_not_finite_are_null_and_the_json_parses(app):
    result = call(app, "FIF=special.tif&PFL=0:0,0-6,0")
    values = json.loads(result.body)["profile"]
    assert values[:3] == [None, None, None]
    assert values[3] == 0.0 and values[4] == pytest.approx(1.5e-7, rel=1e-3)
    assert values[5] == pytest.approx(3e38, rel=1e-6)
    assert b"-0.000000000" in result.body


# -- stacks -----------------------------------------------------------------------


@pytest.fixture()
def stacks(tmp_path, monkeypatch):
    register_stack_decoder(monkeypatch)
    rgb = [random_array("uint8", 3, 300 + n) for n in range(4)]
    grey = [random_array("uint16", 1, 400 + n) for n in range(3)]
    rgb_files = [write_tiff(tmp_path / f"c{n}.tif", a) for n, a in enumerate(rgb)]
    grey_files = [write_tiff(tmp_path / f"g{n}.tif", a) for n, a in enumerate(grey)]
    name_page(grey_files[0], 'say "hi"')
    name_page(grey_files[1], "scaled", scale=0.0125)
    write_stack(tmp_path / "rgb.stack", rgb_files)
    write_stack(tmp_path / "grey.stack", grey_files)
    app = make_app(FILESYSTEM_PREFIX=f"{tmp_path}/")
    yield app, rgb, grey
    app.renderer.clear()  # the open-image cache owns the pages
    assert not ListStackDecoder.open_pages  # every page decoder handed out was closed


def test_rgb_stack_every_page_has_its_own_bands(stacks):
    """iipsrv 1.3 multiplies the value count by the bands again for each page,
    so pages after the first come out 3x, 9x… too long, read past the tile."""
    app, rgb, _ = stacks
    result = call(app, f"FIF=rgb.stack&PFL={FULL}:100,50-164,50")
    profile = json.loads(result.body)["profile"]
    assert list(profile) == ["0", "1", "2", "3"]
    for n, array in enumerate(rgb):
        assert profile[str(n)] == array[50, 100:164].reshape(-1).tolist()
    rows = ",\n".join(f'\t\t"{n}": [{profile_values(a[50:51, 100:164])}]'
                      for n, a in enumerate(rgb))
    assert result.body == ('{\n\t"profile": {\n' + rows + "\n\t}\n}").encode()


def test_stack_names_are_json_strings_and_scale_applies(stacks):
    app, _, grey = stacks
    result = call(app, f"FIF=grey.stack&PFL={FULL}:7,0-7,30")
    profile = json.loads(result.body)["profile"]
    assert list(profile) == ['say "hi"', "scaled", "2"]
    assert profile['say "hi"'] == grey[0][0:30, 7, 0].tolist()
    expected = (grey[1][0:30, 7, 0].astype(np.float32) * np.float32(0.0125)).tolist()
    assert profile["scaled"] == pytest.approx(expected, rel=1e-7)
    assert f'"scaled": [{profile_values(grey[1][0:30, 7:8], 0.0125)}]' in result.body.decode()


# -- bounded reading -------------------------------------------------------------


def test_a_line_reads_only_the_tiles_it_crosses(tmp_path, monkeypatch):
    """A row across a 16384-wide level: 64 pieces, one row of one tile each, and
    the decoder's caches dropped as decoded pixels add up."""
    array = random_array("uint8", 1, 9, width=16384, height=1024)
    write_tiff(tmp_path / "wide.tif", array, tile=256)
    reads, releases = [], []
    original = TiffDecoder.read_region
    monkeypatch.setattr(TiffDecoder, "read_region",
                        lambda self, *a, **k: reads.append(a) or original(self, *a, **k))
    release = TiffDecoder.release
    monkeypatch.setattr(TiffDecoder, "release",
                        lambda self: releases.append(1) or release(self))
    app = make_app(FILESYSTEM_PREFIX=f"{tmp_path}/")
    resolutions = len(level_sizes_of(tmp_path / "wide.tif"))
    result = call(app, f"FIF=wide.tif&PFL={resolutions - 1}:0,700-16384,700")
    assert result.body == body(profile_values(array[700:701, :]))
    assert len(reads) == 64
    assert all(r[0] == 0 and r[2] == 700 and r[3] == 256 and r[4] == 1 for r in reads)
    # 64 tiles of 2^16 pixels decoded: the caches are dropped every WORKING_PIXELS
    assert len(releases) >= 64 * 256 * 256 // WORKING_PIXELS >= 1


def level_sizes_of(path) -> list[tuple[int, int]]:
    decoder = TiffDecoder(str(path))
    try:
        return [(lv.width, lv.height) for lv in decoder.info.levels]
    finally:
        decoder.close()


def test_max_source_pixels_bounds_the_tiles_decoded(folder):
    # a 300-pixel row crosses 5 tiles of 64x64: 20480 pixels to decode
    app = make_app(FILESYSTEM_PREFIX=f"{folder[0]}/", MAX_SOURCE_PIXELS="20479")
    assert call(app, f"FIF=grey8.tif&PFL={FULL}:0,0-300,0").status == 400
    assert call(app, f"FIF=grey8.tif&PFL={FULL}:0,0-256,0").status == 200


def test_values_a_request_may_return_are_bounded(app, monkeypatch):
    monkeypatch.setattr(iipdata, "MAX_VALUES", 300)
    assert call(app, f"FIF=grey8.tif&PFL={FULL}:0,0-300,0").status == 200
    assert call(app, f"FIF=rgb8.tif&PFL={FULL}:0,0-100,0").status == 200
    assert call(app, f"FIF=rgb8.tif&PFL={FULL}:0,0-101,0").status == 400


def test_values_bound_counts_every_page(stacks, monkeypatch):
    app, _, _ = stacks
    monkeypatch.setattr(iipdata, "MAX_VALUES", 3 * 4 * 10)
    assert call(app, f"FIF=rgb.stack&PFL={FULL}:0,0-10,0").status == 200
    assert call(app, f"FIF=rgb.stack&PFL={FULL}:0,0-11,0").status == 400


# -- bad arguments ----------------------------------------------------------------

BAD = [
    ("PFL=3", 400),  # no colon
    ("PFL=3:5", 400),  # no y
    ("PFL=3:5,5-9", 400),  # no y2
    ("PFL=x:5,5", 400),
    ("PFL=3:a,5", 400),
    ("PFL=3:5,5-b,5", 400),
    ("PFL=-1:5,5", 400),
    ("PFL=3:-5,5", 400),
    ("PFL=3:300,5", 400),  # x1 = width (1.3 lets it through and reads past the image)
    ("PFL=3:5,200", 400),
    ("PFL=3:5,5-301,5", 400),
    ("PFL=3:5,5-5,201", 400),
    ("PFL=3:5,5-99999999999,5", 400),  # beyond a C int
    ("PFL=3:5,%D9%A1", 400),  # an Arabic-Indic digit
    ("PFL=4:5,5", 404),  # no such resolution
]


@pytest.mark.parametrize("query,status", BAD)
def test_bad_arguments(app, query, status):
    result = call(app, "FIF=grey8.tif&" + query)
    assert result.status == status
    assert b"profile" not in result.body
    assert result.header("Content-Type") == "text/plain; charset=utf-8"


def test_without_an_image_is_iip_error_1_3(app):
    # iipsrv 1.1 crashes (PFL does not check for an image)
    result = call(app, "PFL=3:1,1-5,1")
    assert (result.status, result.body) == (400, b"Error/4:1 3 \r\n")


# -- JPEG 2000 --------------------------------------------------------------------


@pytest.mark.parametrize("bands,dtype", [(1, "uint16"), (3, "uint8"), (1, "int16")])
def test_jpeg2000_lossless_line(tmp_path, bands, dtype):
    from images import jp2_pattern_array, make_jp2

    make_jp2(tmp_path / "line.jp2", 600, 400, bands=bands, dtype=dtype, tile=256)
    array = jp2_pattern_array(600, 400, bands, dtype)
    app = make_app(FILESYSTEM_PREFIX=f"{tmp_path}/")
    full = int(call(app, "FIF=line.jp2&OBJ=Resolution-number").body.split(b":")[1]) - 1
    result = call(app, f"FIF=line.jp2&PFL={full}:0,123-600,123")
    assert result.body == body(profile_values(array[123:124]))
    result = call(app, f"FIF=line.jp2&PFL={full}:300,0-300,400")
    assert result.body == body(profile_values(array[:, 300:301]))
