"""Untiled sources (issue 16 item 3): plain JPEG (baseline and progressive),
PNG and strip TIFF, served with synthesised levels as iipsrv 1.3 serves JPEG
(full size, halved rounding down until one 256×256 tile holds it).

Expected pixels come from the numpy source: level k is the mean of its
2^k×2^k blocks (PNG and TIFF within 1 level of rounding; JPEG, decoded by
libjpeg's DCT scaling, within a small mean error).  iipsrv 1.3 cannot serve
PNG or strip TIFF at all; 1.1 serves none of these (no oracle)."""

from __future__ import annotations

import io

import numpy as np
import pytest
import pyvips
from PIL import Image, ImageCms
from tiffwriter import write_tiff
from wsgi import call, make_app

from iipy.decoders import decoder_for
from iipy.decoders.flat import FlatDecoder, synthesised_levels

WIDTH, HEIGHT = 1100, 700


def gradient(width: int, height: int, bands: int = 3) -> np.ndarray:
    """Smooth (JPEG-friendly) 8-bit pattern: distinct in every band."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    layers = [x * 255 / width, y * 255 / height, 127 + 100 * np.sin(x / 40) * np.cos(y / 55)]
    return np.clip(np.dstack(layers[:bands]), 0, 255).astype(np.uint8)


def vips_image(pixels: np.ndarray) -> pyvips.Image:
    h, w, bands = pixels.shape
    fmt = "ushort" if pixels.dtype == np.uint16 else "uchar"
    return pyvips.Image.new_from_memory(np.ascontiguousarray(pixels).tobytes(), w, h, bands, fmt)


SRGB_ICC = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


@pytest.fixture(scope="module")
def sources(tmp_path_factory):
    d = tmp_path_factory.mktemp("flat")
    rgb = gradient(WIDTH, HEIGHT)
    grey = gradient(600, 400, 1)
    with_icc = vips_image(rgb).copy()
    with_icc.set_type(pyvips.GValue.blob_type, "icc-profile-data", SRGB_ICC)
    with_icc.jpegsave(str(d / "photo.jpg"), Q=95)
    vips_image(rgb).jpegsave(str(d / "progressive.jpg"), Q=95, interlace=True)
    vips_image(grey).jpegsave(str(d / "grey.jpg"), Q=95)
    vips_image(rgb).pngsave(str(d / "image.png"))
    grey16 = (gradient(600, 400, 1).astype(np.uint16) * 257)
    vips_image(grey16).copy(interpretation="grey16").pngsave(str(d / "grey16.png"))
    vips_image(rgb).tiffsave(str(d / "strip.tif"), tile=False)
    write_tiff(str(d / "strip12.tif"), grey.astype(np.uint16) * 16, 12, rows_per_strip=16)
    return d, {"photo.jpg": rgb, "progressive.jpg": rgb, "grey.jpg": grey, "image.png": rgb,
               "grey16.png": grey16, "strip.tif": rgb, "strip12.tif": grey}


@pytest.fixture(scope="module")
def app(sources):
    return make_app(FILESYSTEM_PREFIX=f"{sources[0]}/")


def block_mean(pixels: np.ndarray, level: int, width: int, height: int) -> np.ndarray:
    f = 1 << level
    cut = pixels[:height * f, :width * f].astype(np.float64)
    return cut.reshape(height, f, width, f, -1).mean(axis=(1, 3))


def decode(body: bytes) -> np.ndarray:
    image = Image.open(io.BytesIO(body))
    image.load()
    array = np.asarray(image).astype(np.float64)
    return array[:, :, None] if array.ndim == 2 else array


@pytest.mark.parametrize(("width", "height", "expected"), [
    (1100, 700, [(1100, 700), (550, 350), (275, 175), (137, 87)]),
    (256, 256, [(256, 256)]),
    (257, 100, [(257, 100), (128, 50)]),
    (100, 3000, [(100, 3000), (50, 1500), (25, 750), (12, 375), (6, 187)]),
])
def test_levels_are_halved_rounding_down_until_one_tile(width, height, expected):
    levels = synthesised_levels(width, height)
    assert [(lv.width, lv.height) for lv in levels] == expected
    assert all((lv.tile_width, lv.tile_height) == (256, 256) for lv in levels)


@pytest.mark.parametrize("name", ["photo.jpg", "progressive.jpg", "image.png", "strip.tif"])
def test_iip_describes_untiled_sources_like_a_pyramid(app, name):
    body = call(app, f"FIF={name}&OBJ=Max-size&OBJ=Resolution-number&OBJ=Tile-size").body
    assert b"Max-size:1100 700" in body
    assert b"Resolution-number:4" in body
    assert b"Tile-size:256 256" in body


@pytest.mark.parametrize("name", ["photo.jpg", "progressive.jpg", "grey.jpg", "image.png",
                                  "grey16.png", "strip.tif", "strip12.tif"])
def test_every_tile_of_every_level_matches_the_source(app, sources, name):
    source = sources[1][name]
    decoder = decoder_for(str(sources[0] / name))
    levels = decoder.info.levels
    decoder.close()
    jpeg = name.endswith(".jpg")
    scale = 257.0 if source.dtype == np.uint16 else 1.0  # strip12: 16x in 12 bits, /4095
    for resolution in range(len(levels)):
        level = levels[len(levels) - 1 - resolution]
        f = 1 << (len(levels) - 1 - resolution)
        for n in range(level.tile_count):
            result = call(app, f"FIF={name}&PTL={resolution},{n}")
            assert result.status == 200, result.body
            got = decode(result.body)
            left, top, w, h = level.tile_box(n % level.columns, n // level.columns)
            assert got.shape[:2] == (h, w)
            region = source[top * f:(top + h) * f, left * f:(left + w) * f]
            want = block_mean(region.astype(np.float64) / scale, len(levels) - 1 - resolution,
                              w, h) if f > 1 else region.astype(np.float64) / scale
            error = np.abs(got - want)
            if jpeg:
                assert error.mean() < 2.0 and error.max() < 40, (resolution, n, error.mean())
            else:  # a rounded block mean, then (12-bit) 255/4095 truncated: < 2
                assert error.max() < (1.01 if f == 1 else 2.0), (resolution, n, error.max())


def test_tiles_of_a_level_share_one_decode(app, sources):
    """The measure of the band cache: decodes (bands) per 100 tiles."""
    path = sources[0] / "big.jpg"
    vips_image(gradient(4000, 3000)).jpegsave(str(path), Q=90)
    decoder = decoder_for(str(path))
    try:
        level = decoder.info.levels[0]
        before = FlatDecoder.decodes
        for row in range(level.rows):
            for column in range(level.columns):
                decoder.read_tile(0, column, row)
        decodes = FlatDecoder.decodes - before
        bands = -(-level.height // decoder.band_rows(0))
        assert level.tile_count == 192
        assert decodes == bands <= 3  # 3000 rows in bands of 1280: 1.6 decodes per 100 tiles
        again = FlatDecoder.decodes
        decoder.read_tile(0, 3, 2)
        assert FlatDecoder.decodes == again  # cached
    finally:
        decoder.close()


def test_jpeg_levels_decode_at_the_smallest_dct_scale(sources, monkeypatch):
    decoder = decoder_for(str(sources[0] / "photo.jpg"))
    asked = []
    load = decoder._load

    def spy(**options):
        asked.append(options.get("shrink"))
        return load(**options)

    monkeypatch.setattr(decoder, "_load", spy)
    try:
        for level in range(len(decoder.info.levels)):
            decoder.read_tile(level, 0, 0)
        assert asked == [1, 2, 4, 8]
    finally:
        decoder.close()


def test_jpeg_icc_profile_is_reported_and_embedded(app, sources):
    decoder = decoder_for(str(sources[0] / "photo.jpg"))
    assert decoder.info.icc == SRGB_ICC
    decoder.close()
    tile = call(app, "FIF=photo.jpg&JTL=3,0").body
    assert b"ICC_PROFILE\0" in tile[:4096]


def test_a_jpeg_larger_than_max_source_pixels_is_refused_before_decoding(sources):
    app = make_app(FILESYSTEM_PREFIX=f"{sources[0]}/", MAX_SOURCE_PIXELS=str(1000 * 700))
    before = FlatDecoder.decodes
    result = call(app, "FIF=photo.jpg&OBJ=Max-size")
    assert result.status == 400
    assert b"larger than this server decodes" in result.body
    iiif = call(app, "IIIF=photo.jpg/info.json")
    assert iiif.status == 400
    assert FlatDecoder.decodes == before
    assert call(app, "FIF=grey.jpg&OBJ=Max-size").status == 200  # 600x400: under the limit


@pytest.mark.parametrize("name", ["photo.jpg", "image.png", "strip.tif"])
def test_every_protocol_serves_untiled_sources(app, sources, name):
    source = sources[1][name].astype(np.float64)
    tolerance = 3.0 if name.endswith(".jpg") else 1.0
    info = call(app, f"IIIF={name}/info.json")
    assert info.status == 200 and b'"width": 1100' in info.body.replace(b'"width":1100',
                                                                       b'"width": 1100')
    full = decode(call(app, f"IIIF={name}/0,0,256,256/max/0/default.png").body)
    assert np.abs(full - source[:256, :256]).mean() < tolerance
    dzi = call(app, f"DeepZoom={name}.dzi")
    assert dzi.status == 200 and b'Width="1100"' in dzi.body and b'Height="700"' in dzi.body
    top = call(app, f"DeepZoom={name}_files/11/0_0.png")  # level 11: full size (2^11 >= 1100)
    assert top.status == 200
    assert np.abs(decode(top.body) - source[:256, :256]).mean() < tolerance
    xml = call(app, f"Zoomify={name}/ImageProperties.xml")
    assert xml.status == 200 and b'WIDTH="1100"' in xml.body
    zoomify = call(app, f"Zoomify={name}/TileGroup0/0-0-0.jpg")
    assert zoomify.status == 200
    smallest = decode(zoomify.body)
    assert smallest.shape[:2] == (87, 137)
    export = call(app, f"FIF={name}&WID=550&CVT=png")
    assert export.status == 200
    assert decode(export.body).shape[:2] == (350, 550)


def test_progressive_jpeg_is_refused_when_its_coefficients_would_not_fit(sources, monkeypatch):
    """A progressive JPEG holds 2 bytes a sample whatever is asked: 1100x700x3
    needs 4.62 MB; with the bound set just under it, it is refused, while the
    baseline file (decoded row by row) of the same size still opens."""
    from iipy.decoders import flatvips
    from iipy.errors import ImageTooLarge

    monkeypatch.setattr(flatvips, "WHOLE_BYTES", 1100 * 700 * 3 * 2 - 1)
    with pytest.raises(ImageTooLarge):
        decoder_for(str(sources[0] / "progressive.jpg"))
    decoder_for(str(sources[0] / "photo.jpg")).close()
    monkeypatch.setattr(flatvips, "WHOLE_BYTES", 1100 * 700 * 3 * 2)
    decoder_for(str(sources[0] / "progressive.jpg")).close()


def test_a_cmyk_jpeg_is_served_as_srgb_without_its_cmyk_profile(tmp_path):
    rgb = (70 + gradient(300, 200) // 2).astype(np.uint8)  # mid-tones: inside CMYK's gamut
    vips_image(rgb).colourspace("cmyk").jpegsave(str(tmp_path / "cmyk.jpg"), Q=95)
    decoder = decoder_for(str(tmp_path / "cmyk.jpg"))
    try:
        assert decoder.info.bands == 3 and decoder.info.icc is None
        got = decoder.read_region(0, 0, 0, 300, 200).astype(np.float64)
    finally:
        decoder.close()
    assert np.abs(got - rgb).mean() < 8  # through a CMYK round trip (libvips' profiles)


@pytest.mark.parametrize("name", ["photo.jpg", "strip12.tif"])
def test_processing_leaves_the_cached_band_untouched(sources, name):
    """Bands are shared by every read: processing (contrast, gamma, inversion,
    colour maps, rotation, convolution) works on copies, never on the cache
    (the tile cache is off, so the last tile is cut from the band again)."""
    app = make_app(FILESYSTEM_PREFIX=f"{sources[0]}/", MAX_IMAGE_CACHE_SIZE="0")
    before = call(app, f"FIF={name}&PTL=1,0").body
    for command in ("CNT=2", "GAM=1.6", "INV", "CMP=JET", "ROT=90", "CNV=sharpen",
                    "COL=grey", "MINMAX=1:0,128"):
        result = call(app, f"FIF={name}&{command}&PTL=1,0")
        assert result.status == 200, (command, result.body[:200])
    export = call(app, f"FIF={name}&INV&WID=300&CVT=png")
    assert export.status == 200
    assert call(app, f"FIF={name}&PTL=1,0").body == before
