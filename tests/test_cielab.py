"""CIELAB TIFFs come out as sRGB (iip-protocol.md §11.3), from every storage
libvips writes: 8-bit (read by iipy itself), 16-bit LabS and float."""

from __future__ import annotations

import io

import numpy as np
import pytest
from images import make_cielab_tiff, pattern_array
from PIL import Image
from wsgi import call, make_app


@pytest.fixture(scope="module")
def lab_app(tmp_path_factory):
    d = tmp_path_factory.mktemp("cielab")
    for dtype in ("uint8", "int16", "float32"):
        make_cielab_tiff(d / f"lab_{dtype}.tif", 600, 400, dtype=dtype)
    return make_app(FILESYSTEM_PREFIX=str(d) + "/")


def png(body):
    return np.asarray(Image.open(io.BytesIO(body))).astype(int)


@pytest.mark.parametrize(("dtype", "tolerance"), [("uint8", 6), ("int16", 2), ("float32", 2)])
def test_cielab_export_is_the_srgb_pattern(lab_app, dtype, tolerance):
    result = call(lab_app, f"FIF=lab_{dtype}.tif&CVT=png")
    assert result.status == 200, result.body
    out = png(result.body)
    expected = pattern_array(600, 400, 3).astype(int)
    assert out.shape == expected.shape
    # 8-bit L*a*b* steps are ~2.55 L and 1 a/b unit: a few sRGB levels
    assert np.percentile(np.abs(out - expected), 99) <= tolerance
    assert np.abs(out - expected).mean() < tolerance / 2


@pytest.mark.parametrize("dtype", ["uint8", "int16", "float32"])
def test_cielab_tiles_and_obj(lab_app, dtype):
    tile = call(lab_app, f"FIF=lab_{dtype}.tif&PTL=2,1")
    assert tile.status == 200
    out = png(tile.body)
    expected = pattern_array(600, 400, 3)[0:256, 256:512].astype(int)
    assert np.percentile(np.abs(out - expected), 99) <= 6
    obj = call(lab_app, f"FIF=lab_{dtype}.tif&OBJ=colorspace,0-2,0")
    assert obj.body == b"\r\nColorspace,0-2,0:1 0 4 3 0 1 2\r\n"


def test_cielab_with_processing(lab_app):
    plain = png(call(lab_app, "FIF=lab_int16.tif&WID=100&CVT=png").body)
    inverted = png(call(lab_app, "FIF=lab_int16.tif&WID=100&INV=1&CVT=png").body)
    assert np.abs(inverted - (255 - plain)).max() <= 1
