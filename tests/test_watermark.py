"""Dynamic watermarking: ``out = min(255, src + trunc(wm · 255 · alpha · opacity))``
checked pixel by pixel on lossless (PNG) tiles and exports."""

from __future__ import annotations

import io
import random

import numpy as np
import pytest
import pyvips
from images import make_tiff
from PIL import Image
from wsgi import call, make_app

from iipy.errors import ConfigError
from iipy.render.watermark import Watermark
from iipy.settings import Settings

WM_W, WM_H = 20, 10


def write_mark(path, array: np.ndarray) -> str:
    """Write a small strip TIFF (the watermark) from an (h, w, bands) array."""
    fmt = {"uint8": "uchar", "uint16": "ushort"}[str(array.dtype)]
    h, w, bands = array.shape
    image = pyvips.Image.new_from_memory(np.ascontiguousarray(array).tobytes(), w, h, bands, fmt)
    if bands >= 3:
        image = image.copy(interpretation="rgb16" if fmt == "ushort" else "srgb")
    else:
        image = image.copy(interpretation="grey16" if fmt == "ushort" else "b-w")
    image.tiffsave(str(path))
    return str(path)


@pytest.fixture(scope="module")
def marks(tmp_path_factory):
    d = tmp_path_factory.mktemp("marks")
    rgba = np.zeros((WM_H, WM_W, 4), np.uint8)
    rgba[..., 0], rgba[..., 1], rgba[..., 2] = 200, 100, 0
    rgba[..., 3] = 128
    rgba[:, :5, 3] = 0  # a transparent left edge
    rgb = np.zeros((WM_H, WM_W, 3), np.uint8)
    rgb[..., 0] = 255  # pure red, opaque
    grey16 = np.full((WM_H, WM_W, 1), 257 * 200, np.uint16)
    (d / "not_a_tiff.tif").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(64))
    return {
        "rgba": write_mark(d / "rgba.tif", rgba),
        "red": write_mark(d / "red.tif", rgb),
        "grey16": write_mark(d / "grey16.tif", grey16),
        "dir": d,
    }


@pytest.fixture(scope="module")
def source(image_dir):
    """A lossless RGB gradient (deflate) so PNG outputs are exact."""
    path = image_dir / "wm_src.tif"
    if not path.exists():
        make_tiff(path, 600, 400, compression="deflate")
    grey = image_dir / "wm_grey.tif"
    if not grey.exists():
        make_tiff(grey, 600, 400, bands=1, compression="deflate")
    black = image_dir / "wm_black.tif"
    if not black.exists():
        make_tiff(black, 300, 200, compression="deflate", pattern=np.zeros((200, 300, 3), np.uint8))
    return path


def png(body: bytes) -> np.ndarray:
    array = np.asarray(Image.open(io.BytesIO(body)))
    return array[:, :, None] if array.ndim == 2 else array


def marked_app(image_dir, mark, **env):
    app = make_app(FILESYSTEM_PREFIX=str(image_dir) + "/", WATERMARK=mark, **env)
    return app


def expected_position(seed, area_w, area_h, probability=1.0):
    """Where a seeded random source puts the mark: the draw, then x, then y."""
    rng = random.Random(seed)
    if probability < 1.0:
        assert rng.random() < probability
    return rng.randint(0, area_w - WM_W), rng.randint(0, area_h - WM_H)


def plain_tile(image_dir, query):
    return png(call(make_app(FILESYSTEM_PREFIX=str(image_dir) + "/"), query).body)


def test_tile_gets_alpha_and_opacity_weighted_mark_at_the_seeded_place(image_dir, source,
                                                                       marks):
    query = "FIF=wm_src.tif&PTL=2,0"  # a 256x256 tile of the 600x400 image
    app = marked_app(image_dir, marks["rgba"], WATERMARK_OPACITY="0.5")
    app.renderer.rng = random.Random(7)
    out = png(call(app, query).body).astype(int)
    src = plain_tile(image_dir, query).astype(int)
    x, y = expected_position(7, 256, 256)
    add = np.zeros_like(src)
    # 200 * (128/255) * 0.5 = 50.19 -> 50; 100 * ... -> 25; blue 0; alpha-0 columns add nothing
    add[y : y + WM_H, x + 5 : x + WM_W] = (50, 25, 0)
    assert np.array_equal(out, np.minimum(255, src + add))
    assert (out != src).any()


def test_mark_is_clipped_at_255(image_dir, source, marks):
    """Pure red at opacity 1 adds 255: every covered red sample saturates."""
    query = "FIF=wm_src.tif&PTL=2,2"  # right edge: red gradient near 255
    app = marked_app(image_dir, marks["red"])
    app.renderer.rng = random.Random(3)
    out = png(call(app, query).body).astype(int)
    src = plain_tile(image_dir, query).astype(int)
    height, width = src.shape[:2]
    x, y = expected_position(3, width, height)
    expected = src.copy()
    expected[y : y + WM_H, x : x + WM_W, 0] = 255
    assert np.array_equal(out, expected)


def test_half_opacity_red_adds_127_as_iipsrv(image_dir, source, marks):
    """255 · 0.5 = 127.5 is truncated to 127 (iipsrv 1.1 test vector, §14)."""
    app = marked_app(image_dir, marks["red"], WATERMARK_OPACITY="0.5")
    app.renderer.rng = random.Random(11)
    out = png(call(app, "FIF=wm_black.tif&PTL=1,0").body).astype(int)
    x, y = expected_position(11, 256, 200)
    expected = np.zeros_like(out)
    expected[y : y + WM_H, x : x + WM_W, 0] = 127
    assert np.array_equal(out, expected)


def test_sixteen_bit_grey_mark_on_colour_and_grey_outputs(image_dir, source, marks):
    app = marked_app(image_dir, marks["grey16"])
    app.renderer.rng = random.Random(5)
    out = png(call(app, "FIF=wm_src.tif&PTL=2,0").body).astype(int)
    src = plain_tile(image_dir, "FIF=wm_src.tif&PTL=2,0").astype(int)
    x, y = expected_position(5, 256, 256)
    add = np.zeros_like(src)
    add[y : y + WM_H, x : x + WM_W] = 200  # 51400 / 65535 * 255 = 200 on every band
    assert np.array_equal(out, np.minimum(255, src + add))
    # a grey output gets the mark's luma (200 for a grey mark) on its one band
    app.renderer.rng = random.Random(5)
    grey = png(call(app, "FIF=wm_grey.tif&PTL=2,0").body).astype(int)
    grey_src = plain_tile(image_dir, "FIF=wm_grey.tif&PTL=2,0").astype(int)
    add = np.zeros_like(grey_src)
    add[y : y + WM_H, x : x + WM_W] = 200
    assert np.array_equal(grey, np.minimum(255, grey_src + add))


def test_probability_zero_never_marks_and_keeps_pass_through(image_dir, images, marks):
    app = marked_app(image_dir, marks["red"], WATERMARK_PROBABILITY="0")
    plain = make_app(FILESYSTEM_PREFIX=str(image_dir) + "/")
    for query in ("FIF=rgb.tif&JTL=2,0", "FIF=rgb.tif&WID=300&CVT=png"):
        assert call(app, query).body == call(plain, query).body
    assert call(app, "FIF=rgb.tif&JTL=2,0").header("ETag") is not None


def test_probability_one_marks_every_tile_and_never_passes_through(image_dir, images, marks):
    app = marked_app(image_dir, marks["red"])
    plain = make_app(FILESYSTEM_PREFIX=str(image_dir) + "/")
    for tile in range(12):
        query = f"FIF=wm_src.tif&PTL=2,{tile}" if tile < 6 else f"FIF=rgb.tif&JTL=2,{tile}"
        marked, clean = call(app, query), call(plain, query)
        assert marked.status == 200
        assert marked.body != clean.body
        assert marked.header("ETag") is None  # differs per request: no validator
        assert marked.header("Last-Modified") == clean.header("Last-Modified")


def test_intermediate_probability_marks_about_that_share(image_dir, source, marks):
    app = marked_app(image_dir, marks["red"], WATERMARK_PROBABILITY="0.3")
    app.renderer.rng = random.Random(2024)
    clean = plain_tile(image_dir, "FIF=wm_src.tif&PTL=1,0")
    marked = sum(
        not np.array_equal(png(call(app, "FIF=wm_src.tif&PTL=1,0").body), clean)
        for _ in range(400)
    )
    # binomial(400, 0.3): mean 120, sd 9.2; 4.5 sd either side
    assert 80 <= marked <= 160


def test_placement_changes_between_requests(image_dir, source, marks):
    app = marked_app(image_dir, marks["red"])
    bodies = {call(app, "FIF=wm_src.tif&PTL=2,0").body for _ in range(8)}
    assert len(bodies) > 1


def test_export_is_marked_block_by_block(image_dir, source, marks):
    """Blocks of 2 × 256 = 512 px: a 600×400 export has two (512×400, 88×400)."""
    query = "FIF=wm_src.tif&CVT=png"
    app = marked_app(image_dir, marks["red"])
    app.renderer.rng = random.Random(9)
    out = png(call(app, query).body).astype(int)
    src = png(call(make_app(FILESYSTEM_PREFIX=str(image_dir) + "/"), query).body).astype(int)
    rng = random.Random(9)
    expected = src.copy()
    for left, width in ((0, 512), (512, 88)):
        x = left + rng.randint(0, width - WM_W)
        y = rng.randint(0, 400 - WM_H)
        expected[y : y + WM_H, x : x + WM_W, 0] = 255
    assert np.array_equal(out, expected)


def test_mark_larger_than_the_tile_is_cropped():
    mark = Watermark(np.ones((50, 60, 3)), None, 0.5, 1.0)
    tile = np.zeros((30, 40, 3), np.uint8)
    out = mark.apply(tile, random.Random(1))
    assert (out[:, :, :] == 127).all()


def test_obj_and_errors_are_never_marked(image_dir, images, marks):
    app = marked_app(image_dir, marks["red"])
    obj = call(app, "FIF=rgb.tif&OBJ=Max-size")
    assert obj.body == b"\r\nMax-size:1000 700\r\n"
    assert obj.header("ETag") is not None


@pytest.mark.parametrize("name", ["missing.tif", "not_a_tiff.tif"])
def test_bad_watermark_file_stops_start_up_naming_the_setting(marks, name):
    from iipy.serve.app import create_app

    settings = Settings.from_environ({"WATERMARK": str(marks["dir"] / name),
                                      "LOGFILE": "/dev/null"})
    with pytest.raises(ConfigError, match="WATERMARK"):
        create_app(settings)


def test_marking_a_tile_takes_microseconds():
    import time

    mark = Watermark(np.random.default_rng(0).random((64, 128, 3)), None, 0.5, 1.0)
    tile = np.zeros((256, 256, 3), np.uint8)
    rng = random.Random(0)
    mark.apply(tile, rng)
    started = time.perf_counter()
    for _ in range(1000):
        mark.apply(tile, rng)
    per_tile = (time.perf_counter() - started) / 1000
    assert per_tile < 200e-6, per_tile  # ~10-20 µs measured; generous for a busy machine


def test_each_request_carries_only_its_own_mark(image_dir, source, marks):
    """The unmarked pixels are cached (the mark is taken off after encoding):
    a repeated tile shows one mark, at the new place, never the old one too."""
    app = marked_app(image_dir, marks["red"])
    app.renderer.rng = random.Random(21)
    query = "FIF=wm_src.tif&PTL=2,0"
    first = png(call(app, query).body).astype(int)
    second = png(call(app, query).body).astype(int)
    src = plain_tile(image_dir, query).astype(int)
    rng = random.Random(21)
    for out in (first, second):
        x, y = rng.randint(0, 256 - WM_W), rng.randint(0, 256 - WM_H)
        expected = src.copy()
        expected[y : y + WM_H, x : x + WM_W, 0] = 255
        assert np.array_equal(out, expected)
    assert not np.array_equal(first, second)


@pytest.mark.parametrize(
    "query",
    [
        "IIIF=wm_src.tif/0,0,256,256/256,/0/default.png",  # one stored tile: the tile path
        "IIIF=wm_src.tif/full/300,/0/default.png",  # a region
        "IIIF=wm_src.tif/full/max/90/default.png",
        "DeepZoom=wm_src.tif_files/10/1_0.png",
        "Zoomify=wm_src.tif/TileGroup0/2-1-0.png",
    ],
)
def test_other_protocols_images_are_marked_and_info_is_not(image_dir, source, marks, query):
    app = marked_app(image_dir, marks["red"])
    app.renderer.rng = random.Random(5)
    plain = make_app(FILESYSTEM_PREFIX=str(image_dir) + "/")
    marked, clean = call(app, query), call(plain, query)
    assert marked.status == clean.status == 200, marked.body[:200]
    out, src = png(marked.body).astype(int), png(clean.body).astype(int)
    assert out.shape == src.shape
    diff = out - src
    assert (diff >= 0).all() and diff[:, :, 1:].max() == 0  # red added, nothing else
    assert (diff[:, :, 0] > 0).sum() > 0
    assert marked.header("ETag") is None
    info = call(app, "IIIF=wm_src.tif/info.json")
    assert info.status == 200 and info.body == call(plain, "IIIF=wm_src.tif/info.json").body


@pytest.fixture(scope="module")
def jpeg_source(image_dir):
    """Textured JPEG-compressed TIFFs: YCbCr at Q85 and RGB (Adobe transform 0) at
    Q95.  Their stored tiles are what a marked JPEG tile is made from
    (iipy/jpeg/markjpeg.py), when it is YCbCr."""
    rng = np.random.default_rng(11)
    yy, xx = np.mgrid[0:512, 0:512]
    pattern = np.stack([xx // 2, yy // 2, (xx + yy) // 4], -1)
    pattern = np.clip(pattern + rng.integers(0, 40, (512, 512, 3)), 0, 255).astype(np.uint8)
    for name, options in [("wm_jpeg.tif", {"Q": 85, "photometric": "ycbcr"}),
                          ("wm_jpeg_rgb.tif", {"Q": 95, "photometric": "rgb"})]:
        if not (image_dir / name).exists():
            make_tiff(image_dir / name, 512, 512, pyramid=False, pattern=pattern, **options)
    return image_dir


def _jpeg_pixels(body: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(body)).convert("RGB")).astype(int)


@pytest.mark.parametrize(("name", "fast"), [("wm_jpeg.tif", True), ("wm_jpeg.tif", False),
                                            ("wm_jpeg_rgb.tif", False)])
def test_jpeg_tile_is_the_stored_tile_with_the_mark(image_dir, jpeg_source, marks, monkeypatch,
                                                    name, fast):
    from iipy.jpeg import markjpeg

    made = []
    original = markjpeg.mark_jpeg

    def counted(*args, **kwargs):
        result = original(*args, **kwargs)
        made.append(result[0] is not None)
        return result

    monkeypatch.setattr(markjpeg, "mark_jpeg", counted)
    if not fast and name == "wm_jpeg.tif":
        monkeypatch.setattr(markjpeg, "_dctsplice", None)
    # the fast path keeps the stored quality whatever JPEG_QUALITY says; the
    # others re-encode at it (90: close to the stored tiles)
    app = marked_app(image_dir, marks["red"], WATERMARK_OPACITY="0.5", JPEG_QUALITY="90")
    plain = make_app(FILESYSTEM_PREFIX=str(image_dir) + "/")
    query = f"FIF={name}&JTL=0,1"
    stored = call(plain, query).body  # pass-through: the stored tile
    base = _jpeg_pixels(stored)
    for seed in range(6):
        app.renderer.rng = random.Random(seed)
        response = call(app, query)
        assert response.status == 200 and response.header("Content-Type") == "image/jpeg"
        got = _jpeg_pixels(response.body)
        x, y = expected_position(seed, 256, 256)
        window = (slice(y, y + WM_H), slice(x, x + WM_W))
        expected = base.copy()
        expected[window + (0,)] = np.minimum(base[window + (0,)] + 127, 255)
        error = np.abs(got[window] - expected[window]).mean()
        # as close as a JPEG re-encode gets (a whole 4:2:0 re-encode loses more of the
        # colour noise); a mark missing or elsewhere would be off by ~40
        assert error < (8 if fast else 14), error
        far = np.ones((256, 256), bool)
        far[max(0, y - 16) : y + WM_H + 16, max(0, x - 16) : x + WM_W + 16] = False
        if fast:
            # the stored tile, its tables and quality, with only the mark's blocks re-coded
            assert np.array_equal(got[far], base[far])
            sos = stored.index(b"\xff\xda")
            assert response.body[:sos] == stored[:sos]
        else:
            # decoded and re-encoded at JPEG_QUALITY, 4:2:0: the same picture, but the
            # ±40 colour noise loses detail in the subsampled chroma (a shifted or
            # garbled tile would be off by ~50)
            assert np.abs(got[far] - base[far]).mean() < 12
    # without the extension it is not tried; an RGB-transform JPEG is refused
    assert made == {"wm_jpeg.tif": [fast] * 6 if fast else [], "wm_jpeg_rgb.tif": [False] * 6}[name]
