"""EXIF read from sources (iipy/decoders/exif.py): a TIFF's EXIF IFD (tag 34665)
rebuilt as a stand-alone EXIF block, a JPEG's APP1 ``Exif`` segment kept as it
is, hostile input refused quietly.  Expected values are the entries the
fixtures write (EXIF 2.3 tags and types), read back with our own directory
reader (tests/metaread.py) and with Pillow's."""

from __future__ import annotations

import io
import json
import struct

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from images import make_jp2
from metafixtures import EXIF_ENTRIES, GPS_ENTRIES, IFD0_TEXT, make_meta_images
from metaread import exif_fields, jpeg_exif
from PIL import Image
from wsgi import call, make_app

from iipy.decoders import decoder_for
from iipy.decoders.exif import build_exif, exif_from_jpeg, exif_from_tiff, exif_metadata, tag_text
from iipy.jpeg.markers import MAX_EXIF, exif_app1


@pytest.fixture(scope="module")
def meta(tmp_path_factory):
    return make_meta_images(tmp_path_factory.mktemp("exif"))


@pytest.mark.parametrize("name", ["exif", "exif_rgb", "exif_big"])  # pointer LONG, IFD, IFD8
def test_tiff_exif_ifd_becomes_a_standalone_exif_block(meta, name):
    exif = decoder_for(str(meta[name])).info.exif
    assert exif[:8] == b"II*\0\x08\0\0\0"  # the source's byte order, IFD0 right after
    fields = exif_fields(exif)
    expected_exif = {tag: (e.type, e.count, e.value) for tag, e in EXIF_ENTRIES.items()}
    assert fields["exif"] == expected_exif  # every value byte for byte; 40965 left out
    assert fields["gps"] == {tag: (e.type, e.count, e.value) for tag, e in GPS_ENTRIES.items()}
    # IFD0: the descriptive text and the two pointers; no orientation or resolution
    assert set(fields["ifd0"]) == {271, 272, 315, 34665, 34853}
    assert fields["ifd0"][271][2] == IFD0_TEXT["make"].encode() + b"\0"
    pillow = Image.Exif()
    pillow.load(exif)
    assert pillow.get_ifd(0x8769)[33437] == 2.8
    assert pillow.get_ifd(0x8825)[2] == (48.0, 51.0, 29.57)


def test_tiff_without_exif_ifd_has_none(images):
    assert decoder_for(str(images.meta)).info.exif is None


def _reader(blob: bytes):
    return lambda offset, n: blob[offset:offset + n]


@pytest.mark.parametrize("order", ["<", ">"])
def test_rebuilt_exif_reads_back_the_same_in_either_byte_order(order):
    def short(value):
        return struct.pack(order + "H", value)

    exif = [(33434, 5, 1, struct.pack(order + "II", 1, 60)), (34855, 3, 1, short(400)),
            (42036, 2, 6, b"Lens\0\0")]
    ifd0 = [(271, 2, 5, b"Make\0")]
    blob = build_exif(order, ifd0, exif, [])
    assert blob[:4] == (b"II*\0" if order == "<" else b"MM\0*")
    again = exif_from_tiff(_reader(blob), order == ">", False, 8, len(blob))
    assert again == blob
    pillow = Image.Exif()
    pillow.load(blob)
    assert pillow[271] == "Make" and pillow.get_ifd(0x8769)[34855] == 400


def test_maker_note_then_gps_are_dropped_to_fit_one_segment():
    exif = [(37500, 7, 70000, b"\x01" * 70000), (34855, 3, 1, b"\x10\x00")]
    gps = [(1, 2, 2, b"N\0")]
    blob = build_exif("<", [], exif, gps)
    fields = exif_fields(blob)
    assert 37500 not in fields["exif"] and fields["gps"]  # too big alone: skipped on read
    big_note = [(37500, 7, 40000, b"\x01" * 40000), (34855, 3, 1, b"\x10\x00")]
    many_gps = [(2, 7, 30000, b"\x02" * 30000)]
    blob = build_exif("<", [], big_note, many_gps)
    assert len(blob) <= MAX_EXIF
    fields = exif_fields(blob)
    assert 37500 not in fields["exif"] and fields["gps"][2][1] == 30000


@pytest.mark.parametrize(
    "damage",
    ["pointer_past_end", "huge_count", "value_past_end", "loop_to_itself", "not_exif_ifd"],
)
def test_hostile_exif_ifds_give_no_exif_and_no_error(damage):
    e = "<"
    blob = bytearray(build_exif(e, [], [(34855, 3, 1, b"\x10\x00"),
                                        (42036, 2, 10, b"Lens 50mm\0")], []))
    exif_at = struct.unpack("<I", blob[8 + 2 + 8:8 + 2 + 12])[0]
    if damage == "pointer_past_end":
        blob[18:22] = struct.pack("<I", 10**6)
    elif damage == "huge_count":
        blob[exif_at:exif_at + 2] = struct.pack("<H", 60000)
    elif damage == "value_past_end":
        blob[exif_at + 2 + 12 + 8:exif_at + 2 + 24] = struct.pack("<I", 10**6)
    elif damage == "loop_to_itself":
        blob[18:22] = struct.pack("<I", 8)  # the EXIF IFD is IFD0 again
    else:
        blob[10:12] = struct.pack("<H", 1234)  # IFD0's only tag is no longer 34665
    found = exif_from_tiff(_reader(bytes(blob)), False, False, 8, len(blob))
    if found is not None:  # what remains readable is a valid structure
        exif_fields(found)
    if damage in ("pointer_past_end", "huge_count", "not_exif_ifd"):
        assert found is None
    if damage == "value_past_end":
        assert 42036 not in exif_fields(found)["exif"]


def _jpeg(**options) -> bytes:
    out = io.BytesIO()
    Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(out, "JPEG", **options)
    return out.getvalue()


@pytest.mark.parametrize("order", ["<", ">"])
def test_jpeg_exif_is_the_app1_segment_byte_for_byte(order):
    blob = build_exif(order, [(271, 2, 4, b"Cam\0")], [(34855, 3, 1, b"\0\x64")], [])
    data = _jpeg(exif=b"Exif\0\0" + blob, xmp=b"<x:xmpmeta/>")
    assert exif_from_jpeg(data) == blob
    assert exif_from_jpeg(data[:200]) is None or exif_from_jpeg(data[:200]) == blob
    assert exif_metadata(blob) == {"make": "Cam"}


@pytest.mark.parametrize(
    ("data", "why"),
    [
        (b"", "empty"),
        (b"\xff\xd8", "SOI alone"),
        (b"\xff\xd8\xff\xe1\x00\x01", "length below 2"),
        (b"\xff\xd8\xff\xe1\x00\x10Exif\0\0garbage!", "no TIFF header"),
        (b"\xff\xd8\xff\xda\x00\x08Exif\0\0II*\0", "after SOS"),
        (b"\x89PNG\r\n\x1a\n", "not a JPEG"),
    ],
)
def test_jpeg_without_usable_exif_gives_none(data, why):
    assert exif_from_jpeg(data) is None, why


def test_exif_app1_segment_is_bounded():
    assert exif_app1(b"II*\0" + bytes(MAX_EXIF - 4))[4:10] == b"Exif\0\0"
    assert exif_app1(b"II*\0" + bytes(MAX_EXIF - 3)) == b""
    assert exif_app1(None) == b""


@pytest.mark.parametrize(
    ("raw", "text"),
    [
        (b"plain\0", "plain"),
        (b"Jos\xe9\0", "Jos\u00e9"),  # not UTF-8: Latin-1
        ("Caf\u00e9".encode() + b"\0", "Caf\u00e9"),
        (b"(c) A\0(c) B\0", "(c) A; (c) B"),  # TIFF 6.0 Copyright: two strings
        (b"a\x01b\x7fc\0", "ab\x7fc"),  # C0 controls dropped
        (b"\0\0", ""),
    ],
)
def test_tag_text(raw, text):
    assert tag_text(raw) == text


def test_odd_text_tags_are_read_as_text(meta):
    metadata = decoder_for(str(meta["odd_text"])).info.metadata
    assert metadata["creator"] == "Jos\u00e9 M\u00fcller"
    assert metadata["rights"] == "(c) Photo; (c) Editor"
    assert metadata["make"] == "Caf\u00e9 \u2603"
    assert metadata["description"] == 'say "hi"\\\ttab\nline'


@pytest.mark.filterwarnings("ignore:A UUID that identified itself as an EXIF")
@pytest.mark.parametrize("lead_in", [b"", b"Exif\0\0"])
def test_jp2_exif_uuid_box_is_read_and_exported(tmp_path, lead_in):
    blob = build_exif("<", [(271, 2, 4, b"Cam\0")], [(34855, 3, 1, b"\x64\0")], [])
    path = make_jp2(tmp_path / "exif.jp2", 300, 200, tile=None, exif=lead_in + blob)
    assert decoder_for(str(path)).info.exif == blob
    export = call(make_app(FILESYSTEM_PREFIX=f"{tmp_path}/"), "FIF=exif.jp2&WID=100&CVT=jpeg")
    assert jpeg_exif(export.body) == blob
    broken = make_jp2(tmp_path / "broken.jp2", 300, 200, tile=None, exif=b"NOT EXIF")
    assert decoder_for(str(broken)).info.exif is None  # no TIFF header: left out


def test_values_read_from_one_ifd_are_bounded():
    # 900 entries each claiming 60,000 bytes at the same offset: at most two segments' worth read
    reads = []
    blob = bytearray(b"II*\0\x08\0\0\0" + struct.pack("<H", 1)
                     + struct.pack("<HHII", 34665, 4, 1, 26) + b"\0\0\0\0")
    blob += struct.pack("<H", 900)
    for i in range(900):
        blob += struct.pack("<HHII", 40000 + i, 7, 60000, 0)
    blob += b"\0\0\0\0" + bytes(60000)

    def read(offset, n):
        reads.append(n)
        return bytes(blob[offset:offset + n])

    exif = exif_from_tiff(read, False, False, 8, len(blob))
    assert sum(n for n in reads if n == 60000) <= 2 * MAX_EXIF
    assert exif is None or len(exif) <= MAX_EXIF


_VALID = build_exif("<", [(271, 2, 4, b"Cam\0")],
                    [(33434, 5, 1, struct.pack("<II", 1, 60)),
                     (36867, 2, 20, b"2024:05:06 07:08:09\0"),
                     (37500, 7, 40, bytes(range(40)))], [(1, 2, 2, b"N\0")])


@settings(max_examples=300, derandomize=True, deadline=None)
@given(st.lists(st.tuples(st.integers(0, len(_VALID) - 1), st.integers(0, 255)), max_size=12),
       st.integers(8, len(_VALID)))
def test_mutated_exif_never_raises_and_stays_bounded(flips, cut):
    blob = bytearray(_VALID)
    for where, value in flips:
        blob[where] = value
    blob = bytes(blob[:cut])
    for found in (exif_from_tiff(_reader(blob), False, False, 8, len(blob)),
                  exif_from_jpeg(b"\xff\xd8" + exif_app1(blob) + b"\xff\xda")):
        if found is not None:
            assert len(found) <= MAX_EXIF
    exif_metadata(blob)


@pytest.mark.parametrize("kind", ["jpg", "png", "strips.tif"])
def test_plain_sources_exif_reaches_exports_and_obj_metadata(tmp_path, kind):
    """A plain JPEG's APP1 EXIF (read from the file's markers), a PNG's eXIf and a strip
    TIFF's EXIF IFD go into exports; the EXIF's IFD0 text fills OBJ=metadata (JPEG, PNG)."""
    from metafixtures import add_exif

    blob = build_exif(">", [(271, 2, 9, b"Cam\xe9ra\0\0\0"), (315, 2, 4, b"Ann\0")],
                      [(34855, 3, 1, b"\0\x64")], [])
    pixels = np.zeros((300, 400, 3), np.uint8)
    path = tmp_path / f"photo.{kind}"
    if kind == "strips.tif":
        Image.fromarray(pixels).save(path, "TIFF")
        add_exif(path)
        blob = decoder_for(str(path)).info.exif
        assert exif_fields(blob)["exif"][34855][2] == struct.pack("<H", 200)  # fixture's ISO
    else:
        Image.fromarray(pixels).save(path, "JPEG" if kind == "jpg" else "PNG",
                                     exif=b"Exif\0\0" + blob)
        assert decoder_for(str(path)).info.exif == blob
    app = make_app(FILESYSTEM_PREFIX=f"{tmp_path}/")
    assert jpeg_exif(call(app, f"FIF={path.name}&WID=200&CVT=jpeg").body) == blob
    if kind != "strips.tif":
        data = json.loads(call(app, f"FIF={path.name}&OBJ=metadata").body)
        assert data == {"make": "Cam\u00e9ra", "creator": "Ann"}  # Latin-1, NULs: valid JSON
