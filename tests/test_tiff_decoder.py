"""The TIFF decoder: pyramid discovery, pixels, pass-through, broken files."""

from __future__ import annotations

import io
import os

import numpy as np
import pytest
from images import make_tiff, pattern_array, smooth_mask
from PIL import Image

from iipy.decoders import decoder_for
from iipy.decoders.tiff import TiffDecoder
from iipy.errors import CorruptImage, NotFound, UnsupportedImage
from iipy.jpeg.splice import ADOBE_RGB
from iipy.models import ColourSpace, SampleFormat


def sizes(path) -> list[tuple[int, int]]:
    decoder = decoder_for(str(path))
    try:
        return [(lv.width, lv.height) for lv in decoder.info.levels]
    finally:
        decoder.close()


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("rgb", [(1000, 700), (500, 350), (250, 175)]),
        ("subifd", [(1000, 700), (500, 350), (250, 175)]),
        ("bigtiff", [(1000, 700), (500, 350), (250, 175)]),
        ("thumbnail", [(1000, 700), (500, 350), (250, 175)]),
        ("thumbnail_svs", [(1000, 700), (500, 350), (250, 175)]),
        ("rgb_odd", [(1410, 793), (705, 396), (352, 198), (176, 99)]),
    ],
)
def test_pyramid_levels_come_from_the_file(images, name, expected):
    assert sizes(images[name]) == expected


def test_image_facts(images):
    decoder = decoder_for(str(images.meta))
    info = decoder.info
    assert (info.bands, info.bits, info.colour_space) == (3, 8, ColourSpace.SRGB)
    assert info.metadata["rights"] == "(c) Test Owner"
    assert info.metadata["creator"] == "Jane Artist"
    assert info.metadata["title"] == "Test document"
    assert info.icc and info.icc[36:40] == b"acsp"
    assert info.xmp and b"xmpmeta" in info.xmp
    assert info.dpi == pytest.approx((300 / 0.0254, 300 / 0.0254))
    grey = decoder_for(str(images.grey16)).info
    assert (grey.bands, grey.bits, grey.colour_space) == (1, 16, ColourSpace.GREY)
    assert grey.max_values == (65535.0,)
    flt = decoder_for(str(images.float32)).info
    assert flt.sample_format is SampleFormat.FLOAT and flt.max_values == (1.0,)


@pytest.mark.parametrize("name", ["deflate", "lzw", "none"])
def test_lossless_tiles_have_the_exact_pixels(images, name):
    decoder = decoder_for(str(images[name]))
    full = pattern_array(1000, 700, 3, "uint8")
    for column, row in [(0, 0), (3, 0), (1, 1), (3, 2)]:
        tile = decoder.read_tile(0, column, row)
        box = decoder.info.levels[0].tile_box(column, row)
        expected = full[box[1] : box[1] + box[3], box[0] : box[0] + box[2]]
        assert tile.shape == expected.shape
        assert np.array_equal(tile, expected)


def test_sixteen_bit_and_float_pixels_keep_their_type(images):
    g16 = decoder_for(str(images.grey16)).read_tile(0, 1, 1)
    assert g16.dtype == np.uint16 and g16.shape == (256, 256, 1)
    assert np.array_equal(g16[:, :, 0], pattern_array(1000, 700, 1, "uint16")[256:512, 256:512, 0])
    f32 = decoder_for(str(images.float32)).read_region(0, 10, 20, 30, 40)
    assert f32.dtype == np.float32
    assert np.allclose(f32[:, :, 0], pattern_array(1000, 700, 1, "float32")[20:60, 10:40, 0])


@pytest.mark.parametrize("name", ["rgb", "rgb_ycbcr", "grey8", "subifd", "bigtiff"])
def test_passthrough_tile_decodes_to_the_same_pixels_as_the_codec(images, name):
    decoder = decoder_for(str(images[name]))
    raw = decoder.raw_tile(0, 1, 1)
    assert raw is not None and raw.startswith(b"\xff\xd8") and raw.endswith(b"\xff\xd9")
    passthrough = Image.open(io.BytesIO(raw))
    passthrough.load()  # a strict, complete decode
    decoded = decoder.read_tile(0, 1, 1)
    spliced = np.asarray(passthrough)
    if spliced.ndim == 2:
        spliced = spliced[:, :, None]
    assert spliced.shape == decoded.shape
    assert np.abs(spliced.astype(int) - decoded.astype(int)).max() <= 1


def test_rgb_photometric_tiles_say_no_colour_transform(images):
    """RGB-photometric tiles carry an Adobe marker with transform 0, so any
    decoder (not only those that guess from component IDs) keeps R, G, B."""
    raw = decoder_for(str(images.rgb)).raw_tile(0, 1, 1)
    assert raw[2 : 2 + len(ADOBE_RGB)] == ADOBE_RGB
    right = np.asarray(Image.open(io.BytesIO(raw)).convert("RGB"))
    expected = pattern_array(1000, 700)[256:512, 256:512]
    assert np.abs(right.astype(int) - expected)[smooth_mask(256, 256)].max() <= 4
    ycbcr = decoder_for(str(images.rgb_ycbcr)).raw_tile(0, 1, 1)
    assert ADOBE_RGB not in ycbcr
    got = np.asarray(Image.open(io.BytesIO(ycbcr)).convert("RGB")).astype(int)
    assert np.abs(got - expected)[smooth_mask(256, 256)].mean() < 3


def test_edge_and_non_jpeg_tiles_are_not_passed_through(images):
    rgb = decoder_for(str(images.rgb))
    assert rgb.raw_tile(0, 3, 0) is None  # 232 px wide: stored padded
    assert rgb.raw_tile(0, 0, 2) is None  # 188 px high
    assert decoder_for(str(images.deflate)).raw_tile(0, 1, 1) is None


def test_replaced_file_is_read_again(tmp_path):
    path = tmp_path / "swap.tif"
    make_tiff(path, 300, 200, compression="deflate")
    first = decoder_for(str(path))
    before = first.read_tile(0, 0, 0).copy()
    make_tiff(path, 300, 200, compression="deflate", pattern="flat")
    os.utime(path, ns=(1, 1))
    second = decoder_for(str(path))
    after = second.read_tile(0, 0, 0)
    assert not np.array_equal(before, after)
    assert np.all(after == 128)


@pytest.mark.parametrize(
    ("name", "error"),
    [
        ("text", UnsupportedImage),
        ("corrupt", CorruptImage),
        ("truncated_raw", CorruptImage),
    ],
)
def test_unreadable_files_raise_domain_errors(images, name, error):
    with pytest.raises(error):
        decoder_for(str(images[name]))


def test_a_strip_tiff_goes_to_the_untiled_reader(images):
    decoder = decoder_for(str(images["untiled"]))
    try:
        assert decoder.name == "tiff-strips"
        sizes = [(lv.width, lv.height) for lv in decoder.info.levels]
        assert sizes == [(1000, 700), (500, 350), (250, 175)]
    finally:
        decoder.close()


def test_missing_tile_data_raises_corrupt_image(images):
    decoder = decoder_for(str(images.truncated))
    with pytest.raises(CorruptImage):
        decoder.read_tile(0, 0, 2)
    assert decoder.read_tile(0, 0, 0).shape == (256, 256, 3)


def test_missing_file_is_not_found(tmp_path):
    with pytest.raises(NotFound):
        decoder_for(str(tmp_path / "nope.tif"))


def test_magic_bytes_decide_not_the_extension(tmp_path, images):
    renamed = tmp_path / "image.jp2"
    renamed.write_bytes(images.rgb.read_bytes())
    assert isinstance(decoder_for(str(renamed)), TiffDecoder)
