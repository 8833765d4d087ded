"""Per-request bounds (issue 11, decompression bombs): MAX_SOURCE_PIXELS and
the box-averaged reads of iipy/render/limits.py."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest
from hostile import tiled
from wsgi import call, make_app

from iipy.errors import ConfigError, ImageTooLarge
from iipy.render import limits
from iipy.settings import Settings


def reference(array: np.ndarray, k: int) -> np.ndarray:
    """k×k block means (partial blocks at the right and bottom), rounded."""
    h, w, _ = array.shape
    out = np.empty((-(-h // k), -(-w // k), array.shape[2]))
    for r in range(out.shape[0]):
        for c in range(out.shape[1]):
            out[r, c] = array[r * k:(r + 1) * k, c * k:(c + 1) * k].mean(axis=(0, 1))
    return out


@pytest.mark.parametrize("k", [2, 4, 8, 32])
@pytest.mark.parametrize("piece,cells", [(1024, 1 << 18), (8, 16), (4, 3)])
def test_reduced_read_is_the_block_mean(monkeypatch, k, piece, cells):
    """Whatever the piece and chunk sizes (small ones force row slices inside
    blocks and pieces narrower than a block), the reduced box is the mean of
    each k×k block of the source box, partial blocks included."""
    monkeypatch.setattr(limits, "PIECE", piece)
    monkeypatch.setattr(limits, "CELLS", cells)
    rng = np.random.default_rng(k)
    level = rng.integers(0, 65536, (150, 170, 2), dtype=np.uint16)
    box = (7, 5, 141, 133)  # left, top, width, height, not multiples of k
    source = level[5:5 + 133, 7:7 + 141]
    reads = []

    def read(left, top, width, height):
        assert 7 <= left and left + width <= 7 + 141 and 5 <= top and top + height <= 5 + 133
        reads.append(width * height)
        return level[top:top + height, left:left + width]

    reduced = limits.Reduced(read, box, k)
    assert reduced.box == (0, 0, -(-141 // k), -(-133 // k))
    whole = reduced.read(0, 0, reduced.width, reduced.height)
    expected = np.clip(np.rint(reference(source.astype(np.float64), k)), 0, 65535)
    assert whole.dtype == np.uint16
    np.testing.assert_array_equal(whole, expected.astype(np.uint16))
    assert sum(reads) == 141 * 133  # every source pixel read once
    w, h = reduced.width, reduced.height
    part = reduced.read(1, 1, w - 2, h - 1)  # a band of the reduced box, as exports ask
    np.testing.assert_array_equal(part, whole[1:, 1:w - 1])


def test_reduced_float_source_keeps_its_type():
    level = np.linspace(0, 1, 64 * 48, dtype=np.float32).reshape(48, 64, 1)
    reduced = limits.Reduced(lambda x, y, w, h: level[y:y + h, x:x + w], (0, 0, 64, 48), 16)
    out = reduced.read(0, 0, 4, 3)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, reference(level.astype(np.float64), 16), rtol=1e-6)


def test_reduced_memory_does_not_grow_with_the_box():
    """numpy's peak while reducing a 20000×10000 box to 156×78 is the pieces,
    not the box (600 MB as RGB) nor its bands."""
    def read(left, top, width, height):
        assert width * height <= limits.PIECE * limits.PIECE
        return np.full((height, width, 3), 7, np.uint8)

    box = (0, 0, 20000, 10000)
    k = limits.factor(box, 156, 78)
    assert k == 128
    reduced = limits.Reduced(read, box, k)
    tracemalloc.start()
    try:
        out = reduced.read(0, 0, reduced.width, reduced.height)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert out.shape == (79, 157, 3) and np.all(out == 7)
    assert peak < 64 * 2**20, peak


def test_factor_leaves_ordinary_boxes_alone():
    assert limits.factor((0, 0, 4000, 3000), 2000, 1500) == 1  # a pyramid's next level
    assert limits.factor((0, 0, 1000, 1000), 10, 10) == 1  # small: read as it is
    assert limits.factor((0, 0, 16000, 16000), 200, 200) == 64
    assert limits.factor((0, 0, 1_000_000, 256), 5000, 1) == 128


def test_check_source_refuses_beyond_the_limit(caplog):
    limits.check_source((0, 0, 1000, 1000), 1_000_000, "/x.tif")
    with pytest.raises(ImageTooLarge) as caught:
        limits.check_source((0, 0, 1000, 1001), 1_000_000, "/x.tif")
    assert caught.value.status == 400 and "1001000" in caught.value.message
    assert "/x.tif" in caplog.text and "/x.tif" not in caught.value.message


def test_max_source_pixels_setting():
    assert Settings.from_environ({}).max_source_pixels == 1 << 28
    assert Settings.from_environ({"MAX_SOURCE_PIXELS": "1000"}).max_source_pixels == 1000
    for bad in ("0", "-5", "lots"):
        with pytest.raises(ConfigError, match="MAX_SOURCE_PIXELS"):
            Settings.from_environ({"MAX_SOURCE_PIXELS": bad})


def test_bomb_export_is_refused_and_small_requests_still_served(tmp_path):
    """The issue's bomb: a 5 MB TIFF declaring one 200000² level (every tile
    the same stored JPEG).  On main an export took the worker past 4 GB; now
    it is a 400 with a message before any decode, and its tiles and metadata
    are still served."""
    (tmp_path / "bomb.tif").write_bytes(tiled(200_000, 200_000))
    app = make_app(FILESYSTEM_PREFIX=str(tmp_path) + "/")
    for query in ("FIF=bomb.tif&WID=200&CVT=jpeg", "IIIF=bomb.tif/full/max/0/default.jpg",
                  "IIIF=bomb.tif/full/100,/0/default.jpg"):
        result = call(app, query)
        assert result.status == 400, query
        assert b"source pixels" in result.body
    assert call(app, "FIF=bomb.tif&JTL=0,0").status == 200
    assert b"200000 200000" in call(app, "FIF=bomb.tif&OBJ=Max-size").body


def test_single_level_export_within_the_limit_is_box_averaged(tmp_path):
    """A 4096² level with no reductions exported at 64 wide: read in pieces and
    box-averaged, the colours stay those of the stored tile (noise averages to
    its mean, about 128)."""
    (tmp_path / "flat.tif").write_bytes(tiled(4096, 4096))
    app = make_app(FILESYSTEM_PREFIX=str(tmp_path) + "/", MAX_SOURCE_PIXELS=str(4096 * 4096))
    result = call(app, "FIF=flat.tif&WID=64&CVT=png")
    assert result.status == 200
    from io import BytesIO

    from PIL import Image

    pixels = np.asarray(Image.open(BytesIO(result.body)))
    assert pixels.shape == (64, 64, 3)
    assert np.all(np.abs(pixels.astype(int) - 128) < 12)
    small = make_app(FILESYSTEM_PREFIX=str(tmp_path) + "/", MAX_SOURCE_PIXELS="1000000")
    assert call(small, "FIF=flat.tif&WID=64&CVT=png").status == 400
