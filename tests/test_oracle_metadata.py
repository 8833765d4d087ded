"""Oracle: ICC profiles and XMP packets in outputs, against Debian's iipsrv 1.1.

1.1 embeds the source's ICC profile in every JPEG it writes (CVT exports and
JTL tiles, which it always decodes and re-encodes) and the XMP packet in CVT
exports; it writes no resolution (JFIF units 0, density 1:1) and no EXIF.
iipy sends stored tiles as they are (pass-through) with the profile added:
the profile must come out the same as 1.1's, byte for byte, also when it
spans several APP2 segments.  (iipsrv 1.3's pass-through tiles lose its last
two bytes; resolution and EXIF are tested against the specifications in
test_metadata_out.py.)
"""

from __future__ import annotations

import pytest
from metafixtures import big_icc, make_meta_images
from metaread import jfif_density, jpeg_icc, jpeg_xmp
from servers import start_iipsrv
from wsgi import call, make_app


@pytest.fixture(scope="module")
def both(tmp_path_factory):
    directory = tmp_path_factory.mktemp("oracle_meta")
    make_meta_images(directory)
    env = {"FILESYSTEM_PREFIX": f"{directory}/", "VERBOSITY": "1"}
    iipsrv = start_iipsrv(env, workdir=tmp_path_factory.mktemp("iipsrv_meta"))
    ours = make_app(FILESYSTEM_PREFIX=f"{directory}/", MAX_ICC="-1")  # 1.1 has no limit
    yield iipsrv, ours, directory
    iipsrv.stop()


@pytest.mark.parametrize(
    "query",
    [
        "FIF=exif.tif&JTL=2,5",  # ours: pass-through of a YCbCr tile
        "FIF=exif_rgb.tif&JTL=2,5",  # ours: pass-through of an RGB tile
        "FIF=exif.tif&JTL=1,0",
        "FIF=big_icc.tif&JTL=1,0",  # 150,000 bytes: three APP2 segments
        "FIF=exif.tif&WID=256&CVT=jpeg",
    ],
)
def test_icc_profile_as_iipsrv_11(both, query):
    iipsrv, ours, _ = both
    reference = iipsrv.request(query)
    got = call(ours, query)
    assert reference.status == got.status == 200
    assert jpeg_icc(reference.body) is not None
    assert jpeg_icc(got.body) == jpeg_icc(reference.body)
    if "big_icc" in query:
        assert jpeg_icc(got.body) == big_icc()


def test_xmp_in_exports_as_iipsrv_11_and_resolution_where_11_writes_none(both):
    iipsrv, ours, _ = both
    query = "FIF=exif.tif&WID=256&CVT=jpeg"
    reference, got = iipsrv.request(query).body, call(ours, query).body
    assert jpeg_xmp(got) == jpeg_xmp(reference) is not None
    assert jfif_density(reference) == (0, 1, 1)  # 1.1: aspect ratio only
    assert jfif_density(got) == (1, 75, 38)  # ours: 300 x 150 dpi at a quarter


def test_large_profile_left_out_of_exports_as_iipsrv_11_by_default(both):
    iipsrv, _, directory = both
    query = "FIF=big_icc.tif&WID=100&CVT=jpeg"
    assert jpeg_icc(iipsrv.request(query).body) is None  # 1.1: not in CVT exports
    default = make_app(FILESYSTEM_PREFIX=f"{directory}/")  # MAX_ICC 65536: not either
    assert jpeg_icc(call(default, query).body) is None
