"""Test images carrying metadata: an EXIF IFD (tag 34665) and a GPS IFD
(34853) appended to pyvips-written pyramids, resolutions in inches and
centimetres, a large (multi-segment) ICC profile, odd text tags."""

from __future__ import annotations

import struct
from pathlib import Path

from images import SAMPLE_XMP, Entry, TiffPatcher, make_tiff, srgb_profile


def _raw(tag: int, typ: int, value: bytes) -> Entry:
    """An entry of one-byte values (BYTE, ASCII, UNDEFINED): count = length."""
    return Entry(tag, typ, len(value), value)


#: EXIF IFD entries written (EXIF 2.3 tag numbers and types), tag → Entry
EXIF_ENTRIES = {
    33434: Entry(33434, 5, 1, struct.pack("<II", 1, 125)),  # ExposureTime 1/125
    33437: Entry(33437, 5, 1, struct.pack("<II", 28, 10)),  # FNumber 2.8
    34855: Entry(34855, 3, 1, struct.pack("<H", 200)),  # ISOSpeedRatings
    36867: _raw(36867, 2, b"2024:05:06 07:08:09\0"),  # DateTimeOriginal
    37510: _raw(37510, 7, b"ASCII\0\0\0caf\xe9 \0 \"quoted\""),  # UserComment
    42036: _raw(42036, 2, b"Lens 50mm\0"),  # LensModel
    37500: _raw(37500, 7, bytes(range(100))),  # MakerNote (opaque)
}
#: the interoperability IFD pointer points into the source file: never copied
INTEROP = Entry(40965, 4, 1, struct.pack("<I", 8))
GPS_ENTRIES = {
    0: Entry(0, 1, 4, bytes([2, 3, 0, 0])),  # GPSVersionID
    1: _raw(1, 2, b"N\0"),  # GPSLatitudeRef
    2: Entry(2, 5, 3, struct.pack("<6I", 48, 1, 51, 1, 2957, 100)),  # GPSLatitude
}
IFD0_TEXT = {"make": "Camera Maker", "model": "Model 7", "artist": "Jane Artist"}
#: a profile of 150,000 bytes: three APP2 segments (65519 + 65519 + 18962)
BIG_ICC_SIZE = 150_000


def add_exif(path: Path, pointer_type: int = 4) -> Path:
    """Append an EXIF IFD and a GPS IFD to IFD0 of a little-endian (Big)TIFF; the
    pointers of type LONG (4), IFD (13), or LONG8 (16) / IFD8 (18) in a BigTIFF."""
    with TiffPatcher(path) as tiff:
        letter = "Q" if pointer_type in (16, 18) else "I"

        def pointer(offset: int) -> Entry:
            return Entry(0, pointer_type, 1, struct.pack("<" + letter, offset))

        exif_at = tiff.append_ifd([*EXIF_ENTRIES.values(), INTEROP], 0)
        gps_at = tiff.append_ifd(list(GPS_ENTRIES.values()), 0)
        exif, gps = pointer(exif_at), pointer(gps_at)
        extra = [Entry(34665, exif.type, 1, exif.value), Entry(34853, gps.type, 1, gps.value)]
        extra.append(Entry.short(274, 1))  # Orientation: not copied into the EXIF
        tiff.update_first_ifd(extra)
    return path


def big_icc() -> bytes:
    """The sRGB profile grown to :data:`BIG_ICC_SIZE` bytes (header size updated)."""
    profile = bytearray(srgb_profile())
    profile += bytes((i * 7) % 251 for i in range(BIG_ICC_SIZE - len(profile)))
    profile[0:4] = struct.pack(">I", len(profile))
    return bytes(profile)


def make_meta_images(d: Path) -> dict[str, Path]:
    """``exif``: 1024x768 YCbCr JPEG tiles, 300 x 150 dpi, ICC, XMP, EXIF + GPS IFDs;
    ``exif_rgb``: the same with Photometric RGB tiles (Adobe APP14 when spliced);
    ``exif_big``: a BigTIFF with the same EXIF; ``cm``: 120 pixels/cm, deflate;
    ``big_icc``: a 150,000-byte profile; ``odd_text``: Latin-1, NUL-separated
    and control characters in text tags."""
    common = dict(tags=IFD0_TEXT, icc=True, xmp=SAMPLE_XMP)
    s = {
        "exif": make_tiff(d / "exif.tif", 1024, 768, photometric="ycbcr",
                          resolution=(300, 150, "inch"), **common),
        "exif_rgb": make_tiff(d / "exif_rgb.tif", 1024, 768, photometric="rgb",
                              resolution=(300, 300, "inch"), **common),
        "exif_big": make_tiff(d / "exif_big.tif", 1024, 768, bigtiff=True,
                              resolution=(300, 150, "inch"), **common),
        "cm": make_tiff(d / "cm.tif", 1000, 700, compression="deflate",
                        resolution=(120, 120, "cm")),
        "big_icc": make_tiff(d / "big_icc.tif", 512, 512, photometric="ycbcr",
                             icc=big_icc()),
        "ratio": make_tiff(d / "ratio.tif", 512, 512, compression="deflate",
                           resolution=(2, 1, "none")),  # ResolutionUnit 1: a ratio
    }
    for name, pointer_type in (("exif", 4), ("exif_rgb", 13), ("exif_big", 18)):
        add_exif(s[name], pointer_type)
    s["odd_text"] = make_tiff(d / "odd_text.tif", 512, 512, compression="deflate")
    with TiffPatcher(s["odd_text"]) as tiff:
        tiff.update_first_ifd([
            _raw(315, 2, b"Jos\xe9 M\xfcller\0"),  # Latin-1, not UTF-8
            _raw(33432, 2, b"(c) Photo\0(c) Editor\0\0"),  # TIFF 6.0: two strings
            _raw(270, 2, b'say "hi"\\\x01\x07\ttab\nline\0'),
            _raw(271, 2, "Caf\u00e9 \u2603".encode() + b"\0"),  # UTF-8
        ])
    return s
