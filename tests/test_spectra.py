"""SPECTRA=r,t,x,y (iip-protocol.md §2.23): the values at one pixel across the
bands of an image, the pages of a stack or the views of a sequence, as the
XML iipsrv 1.3 sends.

Expected bodies are built from the numpy arrays the fixtures wrote
(samplefiles.py), with iipsrv's number rule: 8/16-bit samples over the type's
maximum, 32-bit integers and floats as stored, ``%f``.
"""

from __future__ import annotations

import numpy as np
import pytest
from samplefiles import (
    TILE,
    WIDTH,
    ListStackDecoder,
    level_array,
    name_page,
    random_array,
    reflectance,
    register_stack_decoder,
    spectra_xml,
    write_stack,
    write_tiff,
)
from wsgi import call, make_app

#: name → (dtype, bands): every sample type iipy reads, 1, 3, 4 and 6 bands
IMAGES = {
    "grey8": ("uint8", 1),
    "grey16": ("uint16", 1),
    "short16": ("int16", 1),
    "grey32": ("uint32", 1),
    "int32": ("int32", 1),
    "float32": ("float32", 1),
    "char8": ("int8", 1),
    "rgb8": ("uint8", 3),
    "rgb16": ("uint16", 3),
    "rgba8": ("uint8", 4),
    "six16": ("uint16", 6),
    "sixf": ("float32", 6),
    "sixi32": ("int32", 6),
}
FULL = 3  # IIP resolution of the full size: 300x200 → 150x100 → 75x50 → 37x25


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    directory = tmp_path_factory.mktemp("spectra")
    arrays = {}
    for seed, (name, (dtype, bands)) in enumerate(IMAGES.items()):
        arrays[name] = random_array(dtype, bands, seed)
        write_tiff(directory / f"{name}.tif", arrays[name])
    return directory, arrays


@pytest.fixture(scope="module")
def app(folder):
    return make_app(FILESYSTEM_PREFIX=f"{folder[0]}/")


def expected(array: np.ndarray, x: int, y: int) -> bytes:
    return spectra_xml([(str(b), None, reflectance(v, array.dtype))
                        for b, v in enumerate(array[y, x])])


#: (tile, x in tile, y in tile): corners, an interior point, the edge tiles
#: (44 wide on the right, 8 high at the bottom: 1.3 indexes them as if 64 wide)
POINTS = [(0, 0, 0), (0, 63, 63), (6, 17, 40), (4, 43, 5), (15, 3, 7), (19, 43, 7)]


@pytest.mark.parametrize("tile,x,y", POINTS)
@pytest.mark.parametrize("name", IMAGES)
def test_every_band_at_full_resolution(app, folder, name, tile, x, y):
    array = folder[1][name]
    columns = -(-WIDTH // TILE)
    px, py = (tile % columns) * TILE + x, (tile // columns) * TILE + y
    result = call(app, f"FIF={name}.tif&SPECTRA={FULL},{tile},{x},{y}")
    assert result.status == 200
    assert result.header("Content-Type") == "application/xml"
    assert result.body == expected(array, px, py)


@pytest.mark.parametrize("name", ["grey8", "rgb16", "six16", "sixf"])
@pytest.mark.parametrize("resolution,tile,x,y", [(0, 0, 36, 24), (1, 1, 10, 49), (2, 2, 21, 35)])
def test_reduced_resolutions_read_their_own_level(app, folder, name, resolution, tile, x, y):
    level = level_array(folder[0] / f"{name}.tif", resolution)
    columns = -(-level.shape[1] // TILE)
    px, py = (tile % columns) * TILE + x, (tile // columns) * TILE + y
    result = call(app, f"FIF={name}.tif&SPECTRA={resolution},{tile},{x},{y}")
    assert result.body == expected(level, px, py)


def test_values_of_each_sample_type(app, folder):
    """The rule by sample type, on a pixel whose values are known."""
    body = call(app, f"FIF=grey16.tif&SPECTRA={FULL},0,0,0").body.decode()
    assert f"{folder[1]['grey16'][0, 0, 0] / 65535:.6f}" in body
    body = call(app, f"FIF=grey32.tif&SPECTRA={FULL},0,0,0").body.decode()
    assert f"<reflectance>{folder[1]['grey32'][0, 0, 0]}.000000<" in body  # exact, not float
    body = call(app, f"FIF=int32.tif&SPECTRA={FULL},0,0,0").body.decode()
    assert f"<reflectance>{folder[1]['int32'][0, 0, 0]}.000000<" in body  # signed
    value = folder[1]["float32"][0, 0, 0]
    assert f"<reflectance>{float(value):f}<" in call(
        app, f"FIF=float32.tif&SPECTRA={FULL},0,0,0").body.decode()


def test_rgb_gives_three_points_with_the_pixels_values(app, folder):
    # iipsrv 1.3 answers one point, the sample at index y*64+x of the interleaved tile
    body = call(app, f"FIF=rgb8.tif&SPECTRA={FULL},0,5,2").body.decode()
    r, g, b = folder[1]["rgb8"][2, 5]
    assert body.count("<point>") == 3
    for band, value in enumerate((r, g, b)):
        assert (f"<wavelength>{band}</wavelength>\n\t\t<reflectance>{value / 255:.6f}"
                in body)


def test_headers(app):
    result = call(app, f"FIF=grey8.tif&SPECTRA={FULL},0,0,0")
    assert result.header("Last-Modified")
    assert result.header("Cache-Control") == "max-age=86400"
    assert int(result.header("Content-Length")) == len(result.body)
    etag = result.header("ETag")
    again = call(app, f"FIF=grey8.tif&SPECTRA={FULL},0,0,0", headers={"If-None-Match": etag})
    assert again.status == 304


# -- stacks: the pages' values, every band of every page --------------------------


@pytest.fixture()
def stacks(tmp_path, monkeypatch):
    register_stack_decoder(monkeypatch)
    grey = [random_array("uint16", 1, 100 + n) for n in range(5)]
    rgb = [random_array("uint8", 3, 200 + n) for n in range(3)]
    grey_files = [write_tiff(tmp_path / f"g{n}.tif", a) for n, a in enumerate(grey)]
    rgb_files = [write_tiff(tmp_path / f"c{n}.tif", a) for n, a in enumerate(rgb)]
    name_page(grey_files[1], "450nm")
    name_page(grey_files[3], "<650 & more>")
    write_stack(tmp_path / "grey.stack", grey_files)
    write_stack(tmp_path / "rgb.stack", rgb_files)
    app = make_app(FILESYSTEM_PREFIX=f"{tmp_path}/")
    yield app, grey, rgb
    app.renderer.clear()  # the open-image cache owns the pages
    assert not ListStackDecoder.open_pages  # every page decoder handed out was closed


def test_stack_gives_a_point_per_page_named_by_document_name(stacks):
    app, grey, _ = stacks
    result = call(app, f"FIF=grey.stack&SPECTRA={FULL},6,17,40")
    names = ["0", "450nm", "2", "&lt;650 &amp; more&gt;", "4"]
    points = [(names[n], None, reflectance(a[64 + 40, 64 + 17, 0], a.dtype))
              for n, a in enumerate(grey)]
    assert result.status == 200
    assert result.body == spectra_xml(points)


def test_rgb_stack_every_band_of_every_page(stacks):
    # iipsrv 1.3 gives one sample a page, read at a pixel index of interleaved data
    app, _, rgb = stacks
    result = call(app, f"FIF=rgb.stack&SPECTRA={FULL},19,43,7")
    x, y = 4 * 64 + 43, 3 * 64 + 7
    points = [(str(n), b, reflectance(a[y, x, b], a.dtype)) for n, a in enumerate(rgb)
              for b in range(3)]
    assert result.body == spectra_xml(points)


# -- sequences: FIF=stem naming stem_pyr_XXX_YYY.tif, one view per wavelength -----


def test_sequence_views_named_by_angle(tmp_path):
    arrays = {}
    for angle in (0, 450, 500, 650):
        arrays[angle] = random_array("uint8", 1, angle)
        write_tiff(tmp_path / f"band_pyr_{angle:03d}_090.tif", arrays[angle])
    app = make_app(FILESYSTEM_PREFIX=f"{tmp_path}/")
    result = call(app, f"FIF=band&SPECTRA={FULL},1,2,3")
    points = [(str(angle), None, reflectance(a[3, 64 + 2, 0], a.dtype))
              for angle, a in sorted(arrays.items())]
    assert result.body == spectra_xml(points)


# -- bad arguments ----------------------------------------------------------------

BAD = [
    ("SPECTRA=3,0,1", 400),  # three numbers
    ("SPECTRA=3", 400),
    ("SPECTRA=x,0,1,1", 400),  # not a number
    ("SPECTRA=3,0,1,y", 400),
    ("SPECTRA=3,0,-1,1", 400),  # negative
    ("SPECTRA=-1,0,1,1", 400),
    ("SPECTRA=3,0,64,0", 400),  # outside the tile
    ("SPECTRA=3,4,44,0", 400),  # outside the 44-wide edge tile (1.3 reads past the row)
    ("SPECTRA=3,19,0,8", 400),  # outside the 8-high edge tile
    ("SPECTRA=3,0,99999999999,1", 400),  # beyond a C int
    ("SPECTRA=3,0,1,%C2%B2", 400),  # not ASCII digits
    ("SPECTRA=4,0,1,1", 404),  # no such resolution
    ("SPECTRA=3,20,1,1", 404),  # no such tile
]


@pytest.mark.parametrize("query,status", BAD)
def test_bad_arguments(app, query, status):
    result = call(app, "FIF=grey8.tif&" + query)
    assert result.status == status
    assert b"<spectra>" not in result.body
    assert result.header("Content-Type") == "text/plain; charset=utf-8"


def test_without_an_image_is_iip_error_1_3(app):
    result = call(app, "SPECTRA=3,0,1,1")
    assert (result.status, result.body) == (400, b"Error/4:1 3 \r\n")


def test_atoi_reading_of_the_last_number(app, folder):
    # as iipsrv: trailing text after a number is ignored
    result = call(app, f"FIF=grey8.tif&SPECTRA={FULL},0,1,2px")
    assert result.status == 200
    assert result.body == expected(folder[1]["grey8"], 1, 2)



def test_stack_pages_evicted_from_a_small_cache_are_still_right(stacks, tmp_path):
    """Pages are entries of the open-image cache: with room for two, each page
    pushes an earlier one out (and closes it) while the request goes on."""
    _, grey, _ = stacks
    small = make_app(FILESYSTEM_PREFIX=f"{tmp_path}/", MAX_METADATA_CACHE_SIZE="2")
    names = ["0", "450nm", "2", "&lt;650 &amp; more&gt;", "4"]
    for _ in range(2):
        result = call(small, f"FIF=grey.stack&SPECTRA={FULL},0,1,1")
        assert result.body == spectra_xml([(names[n], None, reflectance(a[1, 1, 0], a.dtype))
                                           for n, a in enumerate(grey)])
    small.renderer.clear()


# -- samples of 1 to 16 bits (tests/tiffwriter.py) ----------------------------------


@pytest.mark.parametrize("bits,bands", [(1, 1), (2, 1), (4, 3), (10, 1), (12, 3), (14, 1)])
def test_bit_depths_below_the_sample_type(tmp_path, bits, bands):
    """SPECTRA divides by the bit depth's maximum (1.3 answers 0 for 12 bits:
    only 8, 16 and 32 are handled); PFL gives the stored values, not the 8-bit
    stretch decoders make of 1 to 7-bit samples."""
    from tiffwriter import write_tiff as write_bits

    rng = np.random.default_rng(bits)
    values = rng.integers(0, 1 << bits, (80, 96, bands)).astype(
        np.uint16 if bits > 8 else np.uint8)
    write_bits(str(tmp_path / "bits.tif"), values, bits, photometric=2 if bands == 3 else 1,
               tile=32)
    app = make_app(FILESYSTEM_PREFIX=f"{tmp_path}/")
    top = (1 << bits) - 1
    result = call(app, "FIF=bits.tif&SPECTRA=0,4,7,9")  # tile 4: column 1, row 1
    assert result.status == 200
    assert result.body == spectra_xml([(str(b), None, float(np.float32(int(v) / top)))
                                       for b, v in enumerate(values[32 + 9, 32 + 7])])
    profile = call(app, "FIF=bits.tif&PFL=0:5,3-90,3").body
    assert profile == ('{\n\t"profile": [' + ",".join(map(str, values[3, 5:90].reshape(-1)))
                       + "]\n}").encode()
