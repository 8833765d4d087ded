"""Checks of the test-image factory (tests/images.py) itself."""

from __future__ import annotations

import os

import images as factory
import numpy as np
import pytest
import pyvips

from iipy.decoders.tiffdir import read_structure

PYRAMID_1000 = [(1000, 700), (500, 350), (250, 175)]

# name -> (levels, bands, vips format, Compression, Photometric)
STANDARD = {
    "rgb": (PYRAMID_1000, 3, "uchar", 7, 2),
    "rgb_ycbcr": (PYRAMID_1000, 3, "uchar", 7, 6),
    "rgb_odd": ([(1410, 793), (705, 396), (352, 198), (176, 99)], 3, "uchar", 7, 2),
    "grey8": (PYRAMID_1000, 1, "uchar", 7, 1),
    "grey16": (PYRAMID_1000, 1, "ushort", 8, 1),
    "float32": (PYRAMID_1000, 1, "float", 8, 1),
    "deflate": (PYRAMID_1000, 3, "uchar", 8, 2),
    "lzw": (PYRAMID_1000, 3, "uchar", 5, 2),
    "none": (PYRAMID_1000, 3, "uchar", 1, 2),
    "bigtiff": (PYRAMID_1000, 3, "uchar", 7, 2),
    "meta": (PYRAMID_1000, 3, "uchar", 7, 2),
    "rect_tiles": (PYRAMID_1000 + [(125, 87)], 3, "uchar", 7, 2),
}


def structure(path):
    fd = os.open(path, os.O_RDONLY)
    try:
        return read_structure(fd)
    finally:
        os.close(fd)


def pixels(path, page=0, **kwargs) -> np.ndarray:
    """Decoded pixels of one page, always (h, w, bands)."""
    array = pyvips.Image.tiffload(str(path), page=page, **kwargs).numpy()
    return array if array.ndim == 3 else array[:, :, None]


# ---------------------------------------------------------------------------
# the standard set
# ---------------------------------------------------------------------------


def test_standard_set_has_every_name(images):
    expected = set(STANDARD) | {
        "subifd", "thumbnail", "thumbnail_svs", "untiled", "corrupt", "truncated",
        "truncated_raw", "text",
    }
    assert expected <= set(images)
    for path in images.values():
        assert path.is_file()
    assert images.rgb == images["rgb"]


@pytest.mark.parametrize("name", sorted(STANDARD))
def test_standard_pyramids(images, name):
    levels, bands, fmt, compression, photometric = STANDARD[name]
    tiff = structure(images[name])
    assert [(ifd.width, ifd.height) for ifd in tiff.ifds] == levels
    assert tiff.bigtiff == (name == "bigtiff")
    tile_h = 128 if name == "rect_tiles" else 256
    for ifd in tiff.ifds:
        assert ifd.tiled
        assert (ifd.int(322), ifd.int(323)) == (256, tile_h)
        assert ifd.int(259) == compression
        assert ifd.int(262) == photometric
        assert ifd.int(277) == bands
    for page, (width, height) in enumerate(levels):
        image = pyvips.Image.tiffload(str(images[name]), page=page)
        assert (image.width, image.height, image.bands, image.format) == (
            width, height, bands, fmt)


@pytest.mark.parametrize("name", ["deflate", "lzw", "none", "grey16", "float32"])
def test_lossless_pixels_follow_the_pattern(images, name):
    levels, bands, fmt, _, _ = STANDARD[name]
    dtype = {"uchar": "uint8", "ushort": "uint16", "float": "float32"}[fmt]
    assert np.array_equal(pixels(images[name]), factory.pattern_array(1000, 700, bands, dtype))
    tolerance = {"uint8": 1, "uint16": 1, "float32": 1e-6}[dtype]
    for level in (1, 2):
        got = pixels(images[name], level).astype(np.float64)
        want = factory.expected_level(1000, 700, level, bands, dtype)
        assert got.shape == want.shape
        assert np.abs(got - want).max() <= tolerance * level


@pytest.mark.parametrize("name, tolerance, mean_tolerance", [
    ("rgb", 3, 1), ("rgb_ycbcr", 8, 6), ("grey8", 3, 1), ("bigtiff", 3, 1),
    ("rect_tiles", 3, 1), ("subifd", 3, 1),
])
def test_jpeg_pixels_close_to_the_pattern(images, name, tolerance, mean_tolerance):
    bands = 1 if name == "grey8" else 3
    for level in range(3):
        if name == "subifd":
            got = pixels(images[name], subifd=level - 1)
        else:
            got = pixels(images[name], level)
        want = factory.expected_level(1000, 700, level, bands)
        diff = np.abs(got.astype(np.float64) - want).max(axis=2)
        assert diff.mean() <= mean_tolerance
        assert diff[factory.smooth_mask(1000, 700, level)].max() <= tolerance


def test_odd_size_edge_pixels(images):
    got = pixels(images.rgb_odd)
    assert got.shape == (793, 1410, 3)
    # interior pixels of the partial edge tiles are close; the last row and
    # column suffer from the JPEG padding of the edge tiles
    for x, y, tolerance in [(0, 0, 3), (1300, 700, 3), (1405, 400, 3), (700, 789, 3),
                            (1409, 0, 12), (0, 792, 12), (1409, 792, 12)]:
        want = factory.expected_pixel(x, y, 1410, 793)
        assert np.abs(got[y, x].astype(int) - want).max() <= tolerance, (x, y)


def test_subifd(images):
    tiff = structure(images.subifd)
    assert [(ifd.width, ifd.height) for ifd in tiff.ifds] == [(1000, 700)]
    assert [(ifd.width, ifd.height) for ifd in tiff.subifds[0]] == PYRAMID_1000[1:]
    assert all(ifd.tiled and ifd.int(262) == 2 for ifd in tiff.subifds[0])


def test_meta_tags(images):
    ifd0 = structure(images.meta).ifds[0]
    assert ifd0.text(33432) == "(c) Test Owner"
    assert ifd0.text(315) == "Jane Artist"
    assert ifd0.text(270) == "A description"
    assert ifd0.text(269) == factory.META_TAGS["document_name"]
    assert ifd0.text(306) == factory.META_TAGS["datetime"]
    assert ifd0.text(305) == factory.META_TAGS["software"]
    assert ifd0.rational(282) == 300 and ifd0.rational(283) == 300
    assert ifd0.int(296) == 2
    assert ifd0.get(34675) == factory.srgb_profile()
    assert ifd0.get(34675)[36:40] == b"acsp"
    assert ifd0.get(700) == factory.SAMPLE_XMP
    # libvips and Pillow read the patched directory too
    image = pyvips.Image.new_from_file(str(images.meta))
    assert image.get("image-description") == "A description"
    assert image.get("resolution-unit") == "in"
    assert image.get("xres") == pytest.approx(300 / 25.4)
    assert image.get("icc-profile-data") == factory.srgb_profile()
    assert image.get("xmp-data") == factory.SAMPLE_XMP
    from PIL import Image

    with Image.open(images.meta) as pil:
        assert pil.tag_v2[33432] == "(c) Test Owner"
        assert pil.tag_v2[315] == "Jane Artist"
        assert pil.size == (1000, 700)
        pil.load()


def test_other_images_have_no_text_tags(images):
    ifd0 = structure(images.rgb).ifds[0]
    for tag in (269, 270, 305, 306, 315, 33432, 34675, 700):
        assert tag not in ifd0.tags


@pytest.mark.parametrize("name, position", [("thumbnail", 3), ("thumbnail_svs", 1)])
def test_thumbnail_directory(images, name, position):
    tiff = structure(images[name])
    strip = [i for i, ifd in enumerate(tiff.ifds) if not ifd.tiled]
    assert strip == [position]
    thumb = tiff.ifds[position]
    assert (thumb.width, thumb.height) == (120, 84)
    tiled = [(ifd.width, ifd.height) for ifd in tiff.ifds if ifd.tiled]
    assert tiled == PYRAMID_1000
    got = pixels(images[name], position)
    assert np.array_equal(got, factory.pattern_array(120, 84))
    assert np.abs(pixels(images[name], 0).astype(int) - pixels(images.rgb).astype(int)).max() == 0


def test_untiled(images):
    tiff = structure(images.untiled)
    assert len(tiff.ifds) == 1 and not tiff.ifds[0].tiled
    assert np.array_equal(pixels(images.untiled), factory.pattern_array(1000, 700))


@pytest.mark.parametrize("name", ["corrupt", "truncated_raw", "text"])
def test_unreadable_files(images, name):
    from iipy.errors import CorruptImage

    with pytest.raises(CorruptImage):
        structure(images[name])
    with pytest.raises(pyvips.Error):
        pyvips.Image.new_from_file(str(images[name])).avg()


def test_truncated(images):
    tiff = structure(images.truncated)
    assert [(ifd.width, ifd.height) for ifd in tiff.ifds] == PYRAMID_1000
    size = images.truncated.stat().st_size
    assert size < images.rgb.stat().st_size
    ends = [o + n for o, n in zip(tiff.ifds[0].ints(324), tiff.ifds[0].ints(325), strict=True)]
    assert [end <= size for end in ends] == [True] * 6 + [False] * 6
    for ifd in tiff.ifds[1:]:
        assert all(o >= size for o in ifd.ints(324))
    # present tiles decode exactly as in the source; a missing one fails
    good = pyvips.Image.tiffload(str(images.truncated)).crop(0, 0, 256, 512).numpy()
    assert np.array_equal(good, pixels(images.rgb)[:512, :256])
    assert np.array_equal(
        pyvips.Image.tiffload(str(images.truncated)).crop(256, 256, 256, 256).numpy(),
        pixels(images.rgb)[256:512, 256:512],
    )
    with pytest.raises(pyvips.Error):
        pyvips.Image.tiffload(str(images.truncated)).crop(768, 512, 232, 188).avg()
    with pytest.raises(pyvips.Error):
        pyvips.Image.tiffload(str(images.truncated), page=1).avg()


# ---------------------------------------------------------------------------
# make_tiff options beyond the standard set
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("bands, dtype, compression", [
    (3, "uint16", "deflate"),
    (1, "int16", "lzw"),
    (3, "float32", "deflate"),
    (4, "uint8", "deflate"),
    (2, "uint8", "lzw"),
    (3, "uint8", "none"),
])
def test_sample_types(tmp_path, bands, dtype, compression):
    path = factory.make_tiff(tmp_path / "t.tif", 301, 203, bands=bands, dtype=dtype,
                             compression=compression, tile=128)
    tiff = structure(path)
    assert [(ifd.width, ifd.height) for ifd in tiff.ifds] == [(301, 203), (150, 101), (75, 50)]
    assert factory.level_sizes(301, 203, 128) == [(301, 203), (150, 101), (75, 50)]
    assert tiff.ifds[0].int(277) == bands
    sample_format = {"uint8": 1, "uint16": 1, "int16": 2, "float32": 3}[dtype]
    assert tiff.ifds[0].int(339) == sample_format
    assert np.array_equal(pixels(path), factory.pattern_array(301, 203, bands, dtype))


def test_webp(tmp_path):
    path = factory.make_tiff(tmp_path / "w.tif", 300, 200, compression="webp", tile=128)
    assert structure(path).ifds[0].int(259) == 50001
    assert pixels(path).shape == (200, 300, 3)


def test_photometric_choices(tmp_path):
    rgb = factory.make_tiff(tmp_path / "rgb.tif", 300, 200, photometric="rgb", Q=95)
    ycc = factory.make_tiff(tmp_path / "ycc.tif", 300, 200, photometric="ycbcr", Q=95)
    low = factory.make_tiff(tmp_path / "low.tif", 300, 200, Q=75)
    for path, photometric in [(rgb, 2), (ycc, 6), (low, 6)]:
        assert {ifd.int(262) for ifd in structure(path).ifds} == {photometric}
    with pytest.raises(ValueError):
        factory.make_tiff(tmp_path / "bad.tif", 300, 200, photometric="rgb", Q=80)
    with pytest.raises(ValueError):
        factory.make_tiff(tmp_path / "bad.tif", 300, 200, photometric="ycbcr",
                          compression="deflate")
    with pytest.raises(ValueError):
        factory.make_tiff(tmp_path / "bad.tif", 300, 200, dtype="uint16")


def test_ycbcr_decodes_with_pillow(images):
    from PIL import Image

    with Image.open(images.rgb_ycbcr) as pil:
        got = np.asarray(pil.convert("RGB")).astype(np.float64)
    diff = np.abs(got - factory.pattern_array(1000, 700)).max(axis=2)
    assert diff[factory.smooth_mask(1000, 700)].max() <= 8


def test_tags_on_subifd_bigtiff(tmp_path):
    path = factory.make_tiff(tmp_path / "s.tif", 600, 400, subifd=True, bigtiff=True,
                             tags={"artist": "A", 33432: "C"}, icc=True,
                             xmp=factory.SAMPLE_XMP)
    tiff = structure(path)
    assert tiff.bigtiff
    ifd0 = tiff.ifds[0]
    assert ifd0.text(315) == "A" and ifd0.text(33432) == "C"
    assert ifd0.get(700) == factory.SAMPLE_XMP
    assert [(ifd.width, ifd.height) for ifd in tiff.subifds[0]] == [(300, 200), (150, 100)]
    assert pixels(path, subifd=1).shape == (100, 150, 3)


@pytest.mark.parametrize("resolution, unit", [((118.11, 100, "cm"), 3), ((1, 1, "none"), 1)])
def test_resolution(tmp_path, resolution, unit):
    path = factory.make_tiff(tmp_path / "r.tif", 300, 200, resolution=resolution)
    ifd0 = structure(path).ifds[0]
    assert ifd0.rational(282) == pytest.approx(resolution[0])
    assert ifd0.rational(283) == pytest.approx(resolution[1])
    assert ifd0.int(296) == unit


@pytest.mark.parametrize("dtype, smin, smax, type_code", [
    ("float32", -1.5, 2.5, 11),
    ("uint16", [0, 10, 20], 60000, 3),
    ("uint8", 10, 200, 1),
    ("int16", -1000, 1000, 8),
])
def test_sample_value_range(tmp_path, dtype, smin, smax, type_code):
    bands = 3 if isinstance(smin, list) else 1
    path = factory.make_tiff(tmp_path / "m.tif", 300, 200, bands=bands, dtype=dtype,
                             compression="deflate", smin=smin, smax=smax)
    ifd0 = structure(path).ifds[0]
    want_min = tuple(smin) if bands > 1 else smin
    want_max = (smax,) * bands if bands > 1 else smax
    assert ifd0.get(340) == want_min
    assert ifd0.get(341) == want_max
    with factory.TiffPatcher(path, write=False) as tiff:
        entries = {e.tag: e for e in tiff.read_ifd(tiff.first_ifd())[0]}
    assert entries[340].type == entries[341].type == type_code
    pyvips.Image.new_from_file(str(path)).avg()


def test_no_pyramid_and_custom_pattern(tmp_path):
    array = np.arange(200 * 300, dtype=np.uint16).reshape(200, 300, 1)
    path = factory.make_tiff(tmp_path / "c.tif", 300, 200, bands=1, dtype="uint16",
                             compression="deflate", pyramid=False, pattern=array)
    assert len(structure(path).ifds) == 1
    assert np.array_equal(pixels(path), array)
    flat = factory.make_tiff(tmp_path / "f.tif", 300, 200, compression="lzw", pattern="flat")
    assert np.all(pixels(flat) == 128)


def test_thumbnail_on_bigtiff(tmp_path):
    path = factory.make_pyramid_with_thumbnail(tmp_path / "t.tif", 600, 400, bigtiff=True,
                                               position=1)
    tiff = structure(path)
    assert tiff.bigtiff
    assert [ifd.tiled for ifd in tiff.ifds] == [True, False, True, True]
    assert np.array_equal(pixels(path, 1), factory.pattern_array(120, 84))


def test_pattern_functions():
    array = factory.pattern_array(300, 200, 3, "uint8")
    assert array.shape == (200, 300, 3) and array.dtype == np.uint8
    for x, y in [(0, 0), (299, 199), (64, 63), (150, 100)]:
        assert factory.expected_pixel(x, y, 300, 200) == tuple(array[y, x])
    assert factory.expected_pixel(0, 0, 300, 200) == (0, 0, 0)
    assert factory.expected_pixel(299, 199, 300, 200)[:2] == (255, 255)
    # every 64x64 cell of a 4x4-tile image differs from its neighbours in "cell"
    cells = factory.pattern_array(1024, 1024, 3)[::64, ::64, 2]
    assert (np.diff(cells.astype(int), axis=0) != 0).all()
    assert (np.diff(cells.astype(int), axis=1) != 0).all()
    # tiles (256x256) differ in their cell signature
    signatures = {
        factory.pattern_array(1024, 1024, 3)[r:r + 256:64, c:c + 256:64, 2].tobytes()
        for r in range(0, 1024, 256) for c in range(0, 1024, 256)
    }
    assert len(signatures) == 16
    assert factory.expected_pixel(5, 5, 10, 10, 1, "float32")[0] == pytest.approx(
        0.5 * 5 / 9 + 0.3 * 5 / 9)
    assert factory.expected_pixel(0, 0, 10, 10, 1, "int16") == (-32768,)
    assert factory.level_sizes(1000, 700) == PYRAMID_1000
    assert factory.level_sizes(1000, 700, 256, 128) == PYRAMID_1000 + [(125, 87)]
