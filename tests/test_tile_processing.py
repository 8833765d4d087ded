"""Processing on tiles (JTL/PTL): rotation of the grid, OBJ swap, commands reaching tiles."""

from __future__ import annotations

import io

import numpy as np
import pytest
from images import make_tiff
from PIL import Image
from wsgi import call, make_app


@pytest.fixture(scope="module")
def app(image_dir, images):
    path = image_dir / "tiles_lossless.tif"
    if not path.exists():
        make_tiff(path, 1000, 700, compression="deflate")
    return make_app(FILESYSTEM_PREFIX=str(image_dir) + "/")


def tile(app, query) -> np.ndarray:
    result = call(app, query)
    assert result.status == 200, result.body[:200]
    array = np.asarray(Image.open(io.BytesIO(result.body)))
    return array[:, :, None] if array.ndim == 2 else array


def test_half_turn_remaps_the_tile_index(app):
    """§2.19: with ROT=180, tile t is tile (n-1-t) turned around, so the grid stays put."""
    for t in (0, 3, 5, 11):
        turned = tile(app, f"FIF=tiles_lossless.tif&ROT=180&PTL=2,{t}")
        source = tile(app, f"FIF=tiles_lossless.tif&PTL=2,{11 - t}")
        assert np.array_equal(turned, source[::-1, ::-1])


def test_quarter_turns_rotate_each_tile_in_place(app):
    base = tile(app, "FIF=tiles_lossless.tif&PTL=2,3")  # 232×256
    assert np.array_equal(tile(app, "FIF=tiles_lossless.tif&ROT=90&PTL=2,3"), np.rot90(base, -1))
    assert np.array_equal(tile(app, "FIF=tiles_lossless.tif&ROT=270&PTL=2,3"), np.rot90(base, 1))
    assert np.array_equal(tile(app, "FIF=tiles_lossless.tif&ROT=!0&PTL=2,3"), base[:, ::-1])


def test_rotation_before_obj_swaps_max_size(app):
    assert call(app, "FIF=rgb.tif&ROT=90&OBJ=Max-size").body == b"\r\nMax-size:700 1000\r\n"
    assert call(app, "FIF=rgb.tif&OBJ=Max-size&ROT=90").body == b"\r\nMax-size:1000 700\r\n"


def test_processing_changes_tiles_and_skips_pass_through(app):
    plain = call(app, "FIF=rgb.tif&JTL=2,0").body
    for command in ("CNT=2", "GAM=log", "INV=1", "CMP=jet", "COL=grey", "CNT=eq", "CNT=st",
                    "CNV=sharpen", "MINMAX=-:0,128", "CTW=[0,0,1;0,1,0;1,0,0]", "ROT=90"):
        result = call(app, f"FIF=rgb.tif&{command}&JTL=2,0")
        assert result.status == 200, command
        assert result.body != plain, command


def test_colour_map_on_a_tile_gives_rgb_from_grey(app, images):
    out = tile(app, "FIF=grey16.tif&CMP=red&PTL=0,0")
    assert out.shape[2] == 3
    assert out[:, :, 1:].max() == 0 and out[:, :, 0].max() > 200


def test_binary_tile_is_bilevel(app):
    out = tile(app, "FIF=tiles_lossless.tif&COL=binary&PTL=1,0")
    assert out.shape[2] == 1
    assert set(np.unique(out).tolist()) == {0, 255}
