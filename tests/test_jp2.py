"""JPEG 2000 through glymur: levels, tiles, virtual levels, layers, depths,
metadata and broken files, decoder-level and through the IIP protocol."""

from __future__ import annotations

import io
import os

import numpy as np
import pytest
import tilecheck as tc
from images import (
    SAMPLE_XMP,
    expected_level,
    jp2_pattern_array,
    level_sizes,
    make_jp2,
    srgb_profile,
)
from PIL import Image
from wsgi import call, make_app

from iipy.decoders import decoder_for, openjpeg
from iipy.decoders.base import quality_layers
from iipy.decoders.jp2 import Jp2Decoder, box_reduce
from iipy.decoders.jp2info import iip_level_count, layers_to_decode
from iipy.decoders.jp2info import level_sizes as jp2_sizes
from iipy.errors import CorruptImage, UnsupportedImage
from iipy.models import ColourSpace, SampleFormat


@pytest.fixture(scope="module")
def app(image_dir, images, jp2_images):
    return make_app(FILESYSTEM_PREFIX=str(image_dir) + "/")


def open_jp2(path) -> Jp2Decoder:
    decoder = decoder_for(str(path))
    assert isinstance(decoder, Jp2Decoder)
    return decoder


def size_of(body: bytes) -> tuple[int, int]:
    image = Image.open(io.BytesIO(body))
    image.load()
    return image.size


# -- the shared checker over every fixture ------------------------------------

# name -> (pattern_array options, scale to 8-bit output units, grid offset)
JP2_FIXTURES = {
    "jp2_rgb": ({}, 1.0, (0, 0)),
    "jp2_untiled": ({}, 1.0, (0, 0)),
    "jp2_grey16": ({"bands": 1, "dtype": "uint16"}, 255 / 65535, (0, 0)),
    "jp2_grey12": ({"bands": 1, "dtype": "uint16", "bits": 12}, 255 / 4095, (0, 0)),
    "jp2_odd": ({}, 1.0, (0, 0)),
    "jp2_virtual": ({}, 1.0, (0, 0)),
    "jp2_layers": ({}, 1.0, (0, 0)),
    "jp2_meta": ({}, 1.0, (0, 0)),
    "jp2_offset": ({}, 1.0, (17, 33)),
    "j2k": ({}, 1.0, (0, 0)),
    "jpx": ({}, 1.0, (0, 0)),
}
# Measured worst cases (default JPEG Q75 output): mean 4.5 (the 177x100 virtual
# level of jp2_virtual, 8-px pattern cells), peak 12 on smooth pixels.
JP2_TOLERANCE = tc.Tolerance(mean=5.0, peak=16.0)


def jp2_spec(jp2_images, name: str) -> tc.ImageSpec:
    options, scale, offset = JP2_FIXTURES[name]
    decoder = open_jp2(jp2_images[name])
    info = decoder.info
    array = jp2_pattern_array(info.width, info.height, **options)
    expected = tc.jp2_expected_levels(
        array, decoder.real_levels, len(info.levels), offset, scale
    )
    return tc.ImageSpec(
        name=jp2_images[name].name,
        levels=[(lv.width, lv.height) for lv in info.levels],
        tile=(256, 256),
        expected=expected.__getitem__,
        tolerance=JP2_TOLERANCE,
        bands=info.bands,
    )


@pytest.mark.parametrize("protocol", tc.PROTOCOLS, ids=lambda p: p.name)
@pytest.mark.parametrize("name", sorted(JP2_FIXTURES))
def test_every_level_s_corner_and_out_of_range_tiles(app, jp2_images, name, protocol):
    assert tc.check_tiles(app, jp2_spec(jp2_images, name), protocol) == []


@pytest.mark.parametrize(
    ("name", "width", "height", "bands", "dtype"),
    [("rgb", 1000, 700, 3, "uint8"), ("rgb_odd", 1410, 793, 3, "uint8"),
     ("grey16", 1000, 700, 1, "uint16")],
)
@pytest.mark.parametrize("protocol", tc.PROTOCOLS, ids=lambda p: p.name)
def test_the_checker_serves_tiff_pyramids_too(app, images, name, width, height, bands, dtype,
                                              protocol):
    scale = 255 / 65535 if dtype == "uint16" else 1.0
    sizes = level_sizes(width, height)
    spec = tc.ImageSpec(
        name=images[name].name,
        levels=sizes,
        tile=(256, 256),
        expected=lambda n: expected_level(width, height, n, bands, dtype) * scale,
        tolerance=JP2_TOLERANCE,
        bands=bands,
    )
    assert tc.check_tiles(app, spec, protocol) == []


def test_the_checker_reports_tiles_from_the_wrong_place(app, jp2_images):
    good = jp2_spec(jp2_images, "jp2_rgb")
    shifted = tc.ImageSpec(  # every level's expectation moved one tile to the left
        good.name, good.levels, good.tile,
        lambda n: np.pad(good.expected(n), ((0, 0), (256, 0), (0, 0)), mode="edge")[
            :, : good.levels[n][0]
        ],
        good.tolerance, good.bands,
    )
    mirrored = tc.ImageSpec(  # every level's expectation flipped left to right
        good.name, good.levels, good.tile,
        lambda n: good.expected(n)[:, ::-1],
        good.tolerance, good.bands,
    )
    problems = tc.check_tiles(app, shifted, tc.IIPTiles())
    assert len([p for p in problems if "mean diff" in p]) >= 3
    problems = tc.check_tiles(app, mirrored, tc.IIPTiles())
    assert len([p for p in problems if "mean diff" in p]) >= 6


# -- levels --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("size", "resolutions", "sizes", "real"),
    [
        # more codestream resolutions than needed: only iipsrv's count is served
        ((1000, 700), 6, [(1000, 700), (500, 350), (250, 175)], 3),
        ((1000, 700), 3, [(1000, 700), (500, 350), (250, 175)], 3),
        # odd sizes: the true ceil(x/2) sizes (iipsrv 1.1 reports floor)
        ((1001, 703), 6, [(1001, 703), (501, 352), (251, 176)], 3),
        # too few: virtual levels, ceil-halved from the smallest real one
        ((1001, 703), 2, [(1001, 703), (501, 352), (251, 176)], 2),
        ((1410, 793), 1, [(1410, 793), (705, 397), (353, 199), (177, 100)], 1),
        # the 20000x15000 file with 7 resolutions that crashes iipsrv 1.1 at JTL=0,0
        ((20000, 15000), 7,
         [(20000, 15000), (10000, 7500), (5000, 3750), (2500, 1875), (1250, 938),
          (625, 469), (313, 235), (157, 118)], 7),
        ((256, 256), 6, [(256, 256)], 1),
        ((257, 100), 6, [(257, 100), (129, 50)], 2),
    ],
)
def test_levels_are_counted_as_iipsrv_counts_them(size, resolutions, sizes, real):
    assert jp2_sizes((0, 0), size, resolutions) == (sizes, real)
    assert iip_level_count(*size) == len(sizes)


def test_levels_of_an_offset_image_follow_the_reference_grid():
    # 600x400 at (17, 33): level 1 spans ceil(617/2) - ceil(17/2) = 300 columns
    sizes, real = jp2_sizes((17, 33), (617, 433), 6)
    assert sizes == [(600, 400), (300, 200), (150, 100)] and real == 3
    sizes, _ = jp2_sizes((1, 1), (1002, 704), 6)  # 1001x703 starting at an odd point
    assert sizes[1] == (500, 351)  # ceil(1002/2) - ceil(1/2), not ceil(1001/2)


@pytest.mark.parametrize(
    ("name", "body"),
    [
        ("jp2_rgb.jp2", "Max-size:1000 700\r\nTile-size:256 256\r\nResolution-number:3\r\n"
         "Resolutions:250 175,500 350,1000 700\r\nBits-per-channel:8\r\n"
         "Min-Max-sample-values: 0  255  0  255  0  255\r\nColorspace,0-2,0:0 0 3 3 0 1 2\r\n"),
        ("jp2_virtual.jp2", "Max-size:1410 793\r\nTile-size:256 256\r\nResolution-number:4\r\n"
         "Resolutions:177 100,353 199,705 397,1410 793\r\nBits-per-channel:8\r\n"
         "Min-Max-sample-values: 0  255  0  255  0  255\r\nColorspace,0-3,0:0 0 3 3 0 1 2\r\n"),
        ("jp2_grey12.jp2", "Max-size:700 500\r\nTile-size:256 256\r\nResolution-number:3\r\n"
         "Resolutions:175 125,350 250,700 500\r\nBits-per-channel:12\r\n"
         "Min-Max-sample-values: 0  4095\r\nColorspace,0-2,0:0 0 1 1 0\r\n"),
        ("jp2_grey16.jp2", "Max-size:1000 700\r\nTile-size:256 256\r\nResolution-number:3\r\n"
         "Resolutions:250 175,500 350,1000 700\r\nBits-per-channel:16\r\n"
         "Min-Max-sample-values: 0  65535\r\nColorspace,0-2,0:0 0 1 1 0\r\n"),
    ],
)
def test_obj_describes_jpeg2000_images(app, jp2_images, name, body):
    objects = ("Max-size", "Tile-size", "Resolution-number", "Resolutions", "Bits-per-channel",
               "Min-Max-sample-values", "colorspace,0-2,0")
    result = call(app, f"FIF={name}&" + "&".join(f"OBJ={o}" for o in objects))
    assert result.status == 200
    assert result.body.decode() == "\r\n" + body


def test_edge_tiles_are_cropped_to_the_true_level_size(app, jp2_images):
    # jp2_odd level 1 is 501x352: 2x2 tiles, the last column 245 wide, the last row 96 high
    assert size_of(call(app, "FIF=jp2_odd.jp2&JTL=1,0").body) == (256, 256)
    assert size_of(call(app, "FIF=jp2_odd.jp2&JTL=1,3").body) == (245, 96)
    assert size_of(call(app, "FIF=jp2_odd.jp2&JTL=0,0").body) == (251, 176)  # virtual


# -- pixels ----------------------------------------------------------------------


def test_lossless_tiles_have_the_exact_pixels(jp2_images):
    decoder = open_jp2(jp2_images.jp2_rgb)
    full = jp2_pattern_array(1000, 700)
    for column, row in [(0, 0), (3, 0), (1, 1), (3, 2)]:
        left, top, width, height = decoder.info.levels[0].tile_box(column, row)
        tile = decoder.read_tile(0, column, row)
        assert tile.dtype == np.uint8
        assert np.array_equal(tile, full[top : top + height, left : left + width])


def test_sixteen_and_twelve_bit_samples_keep_their_values(jp2_images):
    grey16 = open_jp2(jp2_images.jp2_grey16).read_region(0, 300, 200, 90, 70)
    assert grey16.dtype == np.uint16 and grey16.shape == (70, 90, 1)
    assert np.array_equal(grey16, jp2_pattern_array(1000, 700, 1, "uint16")[200:270, 300:390])
    decoder = open_jp2(jp2_images.jp2_grey12)
    assert (decoder.info.bits, decoder.info.max_values) == (12, (4095.0,))
    grey12 = decoder.read_region(0, 0, 0, 700, 500)
    assert 2048 < grey12.max() <= 4095  # 12 bits used, not 16
    assert np.array_equal(grey12, jp2_pattern_array(700, 500, 1, "uint16", bits=12))


def test_an_offset_image_reads_from_its_own_origin(jp2_images):
    decoder = open_jp2(jp2_images.jp2_offset)
    full = jp2_pattern_array(600, 400)
    assert np.array_equal(decoder.read_region(0, 100, 50, 64, 40), full[50:90, 100:164])


def test_a_read_decodes_only_its_area_at_the_reduce_level(jp2_images, monkeypatch):
    decoder = open_jp2(jp2_images.jp2_rgb)
    calls: list = []
    real = openjpeg.decode_area

    def spy(glymur, source, codec, reduce, layers, area):
        calls.append((reduce, layers, area))
        return real(glymur, source, codec, reduce, layers, area)

    monkeypatch.setattr(openjpeg, "decode_area", spy)
    tile = decoder.read_tile(1, 1, 0)  # level 1 (500x350), tile column 1: x 256..500, y 0..256
    # the reference-grid area of the box, clipped to the image, at reduce factor 1
    assert calls == [(1, 0, (512, 0, 1000, 512))]
    assert tile.shape == (256, 244, 3)
    whole = glymur_read(jp2_images.jp2_rgb, 1)
    assert np.array_equal(tile, whole[0:256, 256:500])
    decoder.read_region(0, 10, 20, 30, 40, layers=1)
    assert calls[-1] == (0, 0, (10, 20, 40, 60))  # one layer is all this file has
    layered = open_jp2(jp2_images.jp2_layers)
    layered.read_region(2, 5, 6, 7, 8, layers=1)
    layered.read_region(2, 5, 6, 7, 8)
    assert [c[:2] for c in calls[-2:]] == [(2, 1), (2, 2)]  # LYR=1; default: 2 of 4


def glymur_read(path, level: int) -> np.ndarray:
    import glymur

    step = 1 << level
    return glymur.Jp2k(str(path))[::step, ::step]


def test_virtual_levels_are_box_averaged_not_subsampled(tmp_path):
    rng = np.random.default_rng(7)
    noise = rng.integers(0, 256, (300, 600, 3), dtype=np.uint8)  # nothing survives skipping
    path = tmp_path / "noise.jp2"
    import glymur

    glymur.Jp2k(path, data=noise, numres=1)  # 600x300 without wavelet levels
    decoder = open_jp2(path)
    assert [(lv.width, lv.height) for lv in decoder.info.levels] == [
        (600, 300), (300, 150), (150, 75)]
    assert decoder.real_levels == 1
    virtual = decoder.read_region(1, 0, 0, 300, 150)
    means = noise.reshape(150, 2, 300, 2, 3).mean(axis=(1, 3))
    assert np.abs(virtual.astype(float) - means).max() <= 0.5  # the 2x2 mean, rounded
    assert np.abs(virtual.astype(float) - noise[::2, ::2]).mean() > 20  # not every other pixel
    # a tile of the virtual level is the same as that part of the whole level
    part = decoder.read_region(1, 256, 0, 44, 150)
    assert np.array_equal(part, virtual[:, 256:300])
    # the next virtual level is the 4x4 mean of the real one, not of the rounded 2x2 means
    smallest = decoder.read_region(2, 0, 0, 150, 75)
    assert np.abs(smallest - noise.reshape(75, 4, 150, 4, 3).mean(axis=(1, 3))).max() <= 0.5


@pytest.mark.parametrize(
    ("shape", "factor", "out"),
    [((4, 6, 1), 2, (2, 3, 1)), ((5, 7, 3), 2, (3, 4, 3)), ((9, 9, 1), 4, (3, 3, 1))],
)
def test_box_reduce_keeps_partial_edge_blocks(shape, factor, out):
    array = np.arange(np.prod(shape), dtype=np.uint16).reshape(shape)
    reduced = box_reduce(array, factor)
    assert reduced.shape == out and reduced.dtype == np.uint16
    # the bottom-right output pixel is the mean of whatever pixels its block has
    h, w = shape[0] % factor or factor, shape[1] % factor or factor
    corner = array[-h:, -w:, 0].astype(float).mean()
    assert reduced[-1, -1, 0] == int(np.floor(corner + 0.5))


# -- quality layers -------------------------------------------------------------


@pytest.mark.parametrize(
    ("lyr", "max_layers", "expected"),
    [(0, 0, 0), (2, 0, 2), (-1, 0, -1), (0, 3, 3), (2, 3, 2), (5, 3, 3), (0, -1, -1),
     (2, -1, 2)],
)
def test_lyr_and_max_layers_combine_as_in_iipsrv(lyr, max_layers, expected):
    assert quality_layers(lyr, max_layers) == expected


@pytest.mark.parametrize(
    ("requested", "available", "decoded"),
    [(0, 4, 2), (0, 3, 2), (0, 1, 1), (-1, 4, 4), (1, 4, 1), (9, 4, 4)],
)
def test_the_decoder_default_is_half_the_layers_rounded_up(requested, available, decoded):
    assert layers_to_decode(requested, available) == decoded


def tile_error(app, query: str) -> float:
    """Mean difference of tile 2,0 (full resolution, top left) from the original pattern."""
    body = call(app, query).body
    got = np.asarray(Image.open(io.BytesIO(body)), dtype=float)
    return float(np.abs(got - jp2_pattern_array(1000, 700)[:256, :256]).mean())


def test_more_quality_layers_give_a_closer_image(app, jp2_images):
    assert open_jp2(jp2_images.jp2_layers).info.quality_layers == 4
    errors = [tile_error(app, f"FIF=jp2_layers.jp2&LYR={n}&JTL=2,0") for n in (1, 2, 3, 4)]
    assert errors == sorted(errors, reverse=True) and errors[0] > errors[-1] + 1


def test_lyr_default_decodes_half_the_layers(app, jp2_images):
    default = call(app, "FIF=jp2_layers.jp2&JTL=2,1").body
    assert default == call(app, "FIF=jp2_layers.jp2&LYR=2&JTL=2,1").body
    assert default != call(app, "FIF=jp2_layers.jp2&LYR=4&JTL=2,1").body
    assert call(app, "FIF=jp2_layers.jp2&LYR=-1&JTL=2,1").body == call(
        app, "FIF=jp2_layers.jp2&LYR=4&JTL=2,1"
    ).body


def test_max_layers_caps_and_extends_lyr(jp2_images, image_dir):
    capped = make_app(FILESYSTEM_PREFIX=str(image_dir) + "/", MAX_LAYERS="1")
    every = make_app(FILESYSTEM_PREFIX=str(image_dir) + "/", MAX_LAYERS="-1")
    plain = make_app(FILESYSTEM_PREFIX=str(image_dir) + "/")
    one = call(plain, "FIF=jp2_layers.jp2&LYR=1&JTL=2,2").body
    four = call(plain, "FIF=jp2_layers.jp2&LYR=4&JTL=2,2").body
    assert call(capped, "FIF=jp2_layers.jp2&LYR=4&JTL=2,2").body == one
    assert call(capped, "FIF=jp2_layers.jp2&JTL=2,2").body == one
    assert call(every, "FIF=jp2_layers.jp2&JTL=2,2").body == four
    assert call(every, "FIF=jp2_layers.jp2&LYR=1&JTL=2,2").body == one


def test_lyr_changes_cvt_regions_too(app, jp2_images):
    low = call(app, "FIF=jp2_layers.jp2&LYR=1&WID=400&CVT=jpeg").body
    high = call(app, "FIF=jp2_layers.jp2&LYR=4&WID=400&CVT=jpeg").body
    assert size_of(low) == size_of(high) == (400, 280) and low != high


def test_lyr_needs_a_number(app, jp2_images):
    result = call(app, "FIF=jp2_layers.jp2&LYR=many&JTL=0,0")
    assert result.status == 400 and b"LYR" in result.body


# -- metadata, formats ----------------------------------------------------------


def test_icc_resolution_and_xmp_come_from_the_header_boxes(app, jp2_images):
    info = open_jp2(jp2_images.jp2_meta).info
    assert info.icc == srgb_profile()
    assert info.dpi == pytest.approx((300 / 0.0254, 300 / 0.0254), rel=1e-4)
    assert info.resolution_unit == "cm"
    assert info.xmp == SAMPLE_XMP
    assert (info.bands, info.colour_space) == (3, ColourSpace.SRGB)
    tile = Image.open(io.BytesIO(call(app, "FIF=jp2_meta.jp2&JTL=1,0").body))
    assert tile.info.get("icc_profile") == srgb_profile()
    assert open_jp2(jp2_images.jp2_rgb).info.icc is None


def test_display_resolution_is_used_without_a_capture_resolution(tmp_path):
    path = make_jp2(tmp_path / "resd.jp2", 300, 200, resolution=(2000.0, 4000.0), display=True)
    assert open_jp2(path).info.dpi == pytest.approx((2000.0, 4000.0), rel=1e-4)


def test_raw_codestreams_and_jpx_are_recognised_by_magic(jp2_images):
    with open(jp2_images.j2k, "rb") as handle:
        head = handle.read(16)
    assert head.startswith(b"\xff\x4f\xff\x51") and Jp2Decoder.can_read(head)
    assert Jp2Decoder.can_read(jp2_images.jpx.read_bytes()[:16])
    assert not Jp2Decoder.can_read(b"II*\x00" + bytes(12))
    for name in ("j2k", "jpx"):
        info = open_jp2(jp2_images[name]).info
        assert (info.width, info.height, info.format) == (600, 400, "jpeg2000")


def test_eight_bit_grey_is_reported_as_grey(tmp_path):
    info = open_jp2(make_jp2(tmp_path / "grey8.jp2", 300, 200, bands=1)).info
    assert (info.sample_format, info.colour_space, info.max_values) == (
        SampleFormat.UINT, ColourSpace.GREY, (255.0,))


# -- broken files ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "query"),
    [
        ("jp2_truncated.jp2", "JTL=2,0"),
        ("jp2_truncated.jp2", "JTL=0,0"),
        ("jp2_truncated.jp2", "WID=200&CVT=jpeg"),
        ("jp2_corrupt.jp2", "JTL=2,11"),
        ("jp2_corrupt.jp2", "JTL=1,0"),
        ("jp2_badheader.jp2", "JTL=0,0"),
        ("jp2_badheader.jp2", "OBJ=Max-size"),
        ("jp2_badboxes.jp2", "OBJ=Max-size"),
    ],
)
def test_broken_codestreams_give_a_clean_error_and_the_worker_keeps_serving(
    app, jp2_images, name, query
):
    result = call(app, f"FIF={name}&{query}")
    assert result.status == 404
    assert result.header("Content-Type").startswith("text/plain")
    assert b"JPEG 2000" in result.body and b"Traceback" not in result.body
    assert b"/" not in result.body  # no filesystem path
    after = call(app, "FIF=jp2_rgb.jp2&JTL=2,5")
    assert after.status == 200 and size_of(after.body) == (256, 256)


def test_a_broken_file_raises_corrupt_image_from_the_decoder(jp2_images):
    with pytest.raises(CorruptImage):
        open_jp2(jp2_images.jp2_truncated).read_tile(2, 0, 0)
    with pytest.raises(CorruptImage):
        decoder_for(str(jp2_images.jp2_badboxes))


def test_an_open_image_keeps_reading_the_file_it_opened(jp2_images, tmp_path):
    path = tmp_path / "replaced.jp2"
    path.write_bytes(jp2_images.jp2_rgb.read_bytes())
    decoder = open_jp2(path)
    replacement = tmp_path / "new.jp2"
    replacement.write_bytes(jp2_images.jp2_grey16.read_bytes())
    os.replace(replacement, path)  # a new file at the same path
    tile = decoder.read_tile(0, 1, 1)
    assert np.array_equal(tile, jp2_pattern_array(1000, 700)[256:512, 256:512])
    decoder.close()
    assert open_jp2(path).info.bands == 1


def test_openjpeg_decodes_in_the_calling_thread():
    glymur = openjpeg.glymur_module()
    assert glymur.get_option("lib.num_threads") == openjpeg.DECODER_THREADS == 0


def test_signed_sixteen_bit_samples_keep_their_sign(app, image_dir):
    path = make_jp2(image_dir / "jp2_int16.jp2", 400, 300, bands=1, dtype="int16", tile=None)
    decoder = open_jp2(path)
    info = decoder.info
    assert (info.bits, info.sample_format) == (16, SampleFormat.INT)
    assert (info.min_values, info.max_values) == ((-32768.0,), (32767.0,))
    pixels = decoder.read_region(0, 0, 0, 400, 300)
    assert pixels.dtype == np.int16 and pixels.min() < 0
    assert np.array_equal(pixels, jp2_pattern_array(400, 300, 1, "int16"))
    # normalised from [-32768, 32767] to 8 bits for output, like a TIFF of that type
    tile = np.asarray(Image.open(io.BytesIO(call(app, "FIF=jp2_int16.jp2&JTL=1,0").body)))
    expected = (jp2_pattern_array(400, 300, 1, "int16")[:256, :256, 0] + 32768.0) / 65535 * 255
    assert np.abs(tile.astype(float) - expected).mean() < 3


@pytest.mark.parametrize(("bands", "mode", "colour"),
                         [(4, "RGB", ColourSpace.SRGB), (2, "L", ColourSpace.GREY)])
def test_images_with_alpha_are_served_without_it(tmp_path, bands, mode, colour):
    path = make_jp2(tmp_path / "alpha.jp2", 300, 200, bands=bands)
    decoder = open_jp2(path)
    assert (decoder.info.bands, decoder.info.colour_space) == (bands, colour)
    assert np.array_equal(decoder.read_region(0, 0, 0, 300, 200),
                          jp2_pattern_array(300, 200, bands))
    app = make_app(FILESYSTEM_PREFIX=str(tmp_path) + "/")
    tile = Image.open(io.BytesIO(call(app, "FIF=alpha.jp2&JTL=1,0").body))
    assert (tile.mode, tile.size) == (mode, (256, 200))


def test_unsupported_jpeg2000_kinds_are_refused_clearly(jp2_images, tmp_path):
    import glymur
    from glymur import jp2box

    rgb = jp2_images.jp2_rgb.read_bytes()
    no_codestream = tmp_path / "boxes-only.jp2"
    no_codestream.write_bytes(rgb[: rgb.index(b"jp2c") - 4])  # every box before jp2c
    sycc = tmp_path / "sycc.jp2"
    raw = glymur.Jp2k(tmp_path / "sycc.j2k", data=jp2_pattern_array(300, 200), numres=2)
    raw.wrap(sycc, boxes=[
        jp2box.JPEG2000SignatureBox(), jp2box.FileTypeBox(),
        jp2box.JP2HeaderBox(box=[jp2box.ImageHeaderBox(200, 300, num_components=3),
                                 jp2box.ColourSpecificationBox(colorspace=glymur.core.YCC)]),
        jp2box.ContiguousCodestreamBox()])
    subsampled = tmp_path / "subsampled.jp2"
    glymur.Jp2k(subsampled, data=jp2_pattern_array(300, 200), numres=2, subsam=(2, 2))
    app = make_app(FILESYSTEM_PREFIX=str(tmp_path) + "/")
    missing = call(app, "FIF=boxes-only.jp2&JTL=0,0")  # glymur refuses it as broken
    assert missing.status == 404 and b"could not be read" in missing.body
    for name, message in (("sycc.jp2", b"sYCC colour space"),
                          ("subsampled.jp2", b"subsampled components")):
        result = call(app, f"FIF={name}&JTL=0,0")
        assert result.status == 400 and message in result.body, name
    with pytest.raises(UnsupportedImage):
        decoder_for(str(sycc))


def test_palette_images_are_served_in_their_palette_s_colours(tmp_path):
    import glymur
    from glymur import jp2box

    rng = np.random.default_rng(3)
    indices = rng.integers(0, 16, (120, 200), dtype=np.uint8)
    palette = rng.integers(0, 256, (16, 3), dtype=np.uint8)
    raw = glymur.Jp2k(tmp_path / "indices.j2k", data=indices, numres=2)
    header = jp2box.JP2HeaderBox(box=[
        jp2box.ImageHeaderBox(120, 200, num_components=1),
        jp2box.ColourSpecificationBox(colorspace=glymur.core.SRGB),
        jp2box.PaletteBox(palette, bits_per_component=(8, 8, 8), signed=(False,) * 3),
        jp2box.ComponentMappingBox(component_index=(0, 0, 0), mapping_type=(1, 1, 1),
                                   palette_index=(0, 1, 2)),
    ])
    boxes = [jp2box.JPEG2000SignatureBox(), jp2box.FileTypeBox(), header,
             jp2box.ContiguousCodestreamBox()]
    path = tmp_path / "palette.jp2"
    raw.wrap(path, boxes=boxes)
    decoder = open_jp2(path)
    assert (decoder.info.bands, decoder.info.bits, decoder.info.colour_space) == (
        3, 8, ColourSpace.SRGB)
    assert np.array_equal(decoder.read_region(0, 0, 0, 200, 120), palette[indices])


def test_one_bit_images_are_binary_and_scaled_to_255(tmp_path):
    from images import _precision_writer

    bits = (jp2_pattern_array(300, 200, 1)[:, :, 0] > 128).astype(np.uint8)  # 0 or 1
    _precision_writer(1)(tmp_path / "bilevel.jp2", data=bits, numres=2)
    decoder = open_jp2(tmp_path / "bilevel.jp2")
    assert (decoder.info.bits, decoder.info.colour_space) == (1, ColourSpace.BINARY)
    pixels = decoder.read_region(0, 0, 0, 300, 200)
    assert set(np.unique(pixels)) == {0, 255}
    assert np.array_equal(pixels[:, :, 0], bits * 255)
