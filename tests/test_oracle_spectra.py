"""Oracle: SPECTRA and PFL compared with Debian's iipsrv 1.1, which has both.

Where 1.1 is right the bodies are byte for byte the same: one-band images of
8, 16 and 32-bit float samples, PFL over colour and 6-band images (samples
interleaved), and image sequences (one view per wavelength).  Where it is
wrong, iipy's answer is the array's value and the test says how 1.1 differs:
SPECTRA on edge tiles and colour images (an index that ignores the cropped
tile width and the band count), 32-bit integers (rounded through float, or
read unsigned) and PFL band names (unquoted: invalid JSON).
"""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
from samplefiles import profile_values, random_array, reflectance, spectra_xml, write_tiff
from servers import iipy_argv, iipy_environment, start_fcgi_command, start_iipsrv

IMAGES = {"grey8": ("uint8", 1), "grey16": ("uint16", 1), "float32": ("float32", 1),
          "rgb8": ("uint8", 3), "six16": ("uint16", 6), "grey32": ("uint32", 1),
          "int32": ("int32", 1)}
ANGLES = (0, 450, 550, 650)
FULL = 3


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    directory = tmp_path_factory.mktemp("oracle-spectra")
    arrays = {}
    for seed, (name, (dtype, bands)) in enumerate(IMAGES.items()):
        arrays[name] = random_array(dtype, bands, 700 + seed)
        write_tiff(directory / f"{name}.tif", arrays[name])
    for angle in ANGLES:
        arrays[angle] = random_array("uint16", 1, angle)
        write_tiff(directory / f"band_pyr_{angle:03d}_090.tif", arrays[angle])
    return directory, arrays


@pytest.fixture(scope="module")
def servers(folder, tmp_path_factory):
    env = {"FILESYSTEM_PREFIX": f"{folder[0]}/", "VERBOSITY": "1"}
    iipsrv = start_iipsrv(env, workdir=tmp_path_factory.mktemp("iipsrv-spectra"))
    iipy = start_fcgi_command(iipy_argv(), iipy_environment(env),
                              workdir=tmp_path_factory.mktemp("iipy-spectra"),
                              extra_args=["--processes", "1"], name="iipy")
    yield iipsrv, iipy
    iipy.stop()
    iipsrv.stop()


SAME = [
    f"FIF=grey8.tif&SPECTRA={FULL},0,0,0",
    f"FIF=grey8.tif&SPECTRA={FULL},6,17,40",
    f"FIF=grey16.tif&SPECTRA={FULL},13,63,63",
    f"FIF=float32.tif&SPECTRA={FULL},2,5,9",
    "FIF=grey16.tif&SPECTRA=2,4,3,4",  # 64 wide, 36 high: 1.1 indexes it right
    f"FIF=grey8.tif&PFL={FULL}:0,0-300,0",
    f"FIF=grey16.tif&PFL={FULL}:63,10-63,200",
    f"FIF=float32.tif&PFL={FULL}:20,30-90,30",
    f"FIF=rgb8.tif&PFL={FULL}:10,20-80,20",
    f"FIF=six16.tif&PFL={FULL}:40,0-40,100",
    f"FIF=grey8.tif&PFL={FULL}:17,19",
    "FIF=six16.tif&PFL=1:5,5-70,5",
    f"FIF=band&SPECTRA={FULL},6,17,40",
    "FIF=band&SPECTRA=2,1,3,4",
]


@pytest.mark.parametrize("query", SAME)
def test_same_as_iipsrv_11(servers, query):
    iipsrv, iipy = servers
    ref, got = iipsrv.request(query), iipy.request(query)
    assert ref.status == got.status == 200
    assert got.header("Content-Type") == ref.header("Content-Type")
    assert got.header("Last-Modified") == ref.header("Last-Modified")
    assert got.body == ref.body


def test_sequence_profile_same_values_with_quoted_names(servers, folder):
    iipsrv, iipy = servers
    query = f"FIF=band&PFL={FULL}:5,7-60,7"
    ref, got = iipsrv.request(query).body.decode(), iipy.request(query).body.decode()
    # 1.1 writes the names bare (`\t\t450: [`), 1.3 and iipy as JSON strings
    assert re.sub(r'\t\t"(\d+)": ', r"\t\t\1: ", got) == ref
    profile = json.loads(got)["profile"]
    assert list(profile) == [str(a) for a in ANGLES]
    for angle in ANGLES:
        assert profile[str(angle)] == folder[1][angle][7, 5:60, 0].tolist()


def test_edge_tile_spectra_right_where_11_is_not(servers, folder):
    # tile 4 is 44 pixels wide: 1.1 reads index y*64+x of the cropped tile
    iipsrv, iipy = servers
    query = f"FIF=grey8.tif&SPECTRA={FULL},4,3,5"
    array = folder[1]["grey8"]
    right = spectra_xml([("0", None, reflectance(array[5, 4 * 64 + 3, 0], array.dtype))])
    assert iipy.request(query).body == right
    assert iipsrv.request(query).body != right


def test_colour_spectra_every_band_where_11_gives_one_sample(servers, folder):
    iipsrv, iipy = servers
    query = f"FIF=rgb8.tif&SPECTRA={FULL},0,5,2"
    array = folder[1]["rgb8"]
    right = spectra_xml([(str(b), None, reflectance(array[2, 5, b], array.dtype))
                         for b in range(3)])
    assert iipy.request(query).body == right
    ref = iipsrv.request(query).body
    assert ref.count(b"<point>") == 1
    # 1.1's one value is the sample at index 2*64+5 of the interleaved tile
    wrong = array[:64, :64].reshape(-1)[2 * 64 + 5]
    assert f"<reflectance>{wrong / 255:.6f}<".encode() in ref


@pytest.mark.parametrize("name", ["grey32", "int32"])
def test_32_bit_integers_exact_where_11_rounds(servers, folder, name):
    iipsrv, iipy = servers
    query = f"FIF={name}.tif&PFL={FULL}:0,0-20,0"
    array = folder[1][name]
    assert iipy.request(query).body == \
        ('{\n\t"profile": [' + profile_values(array[0:1, 0:20]) + "]\n}").encode()
    ref = json.loads(iipsrv.request(query).body)["profile"]
    unsigned = array[0, 0:20, 0].astype(np.uint32).astype(np.float64)
    assert ref == pytest.approx(unsigned.tolist(), rel=1e-5)  # 6 digits, read unsigned
    assert ref != array[0, 0:20, 0].tolist()
