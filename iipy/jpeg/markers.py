"""JPEG marker segments we add to stored (pass-through) tiles."""

from __future__ import annotations

import struct

_ICC_SIGNATURE = b"ICC_PROFILE\0"


def icc_app2(icc: bytes) -> bytes:
    """An ICC profile as APP2 ``ICC_PROFILE`` segments (ICC.1 annex B.4)."""
    chunk = 65533 - len(_ICC_SIGNATURE) - 2
    parts = [icc[i : i + chunk] for i in range(0, len(icc), chunk)] or [b""]
    if len(parts) > 255:
        return b""
    out = []
    for number, part in enumerate(parts, start=1):
        payload = _ICC_SIGNATURE + bytes([number, len(parts)]) + part
        out.append(b"\xff\xe2" + struct.pack(">H", len(payload) + 2) + payload)
    return b"".join(out)


#: most EXIF bytes one JPEG APP1 segment holds (65533) after the 6-byte "Exif\0\0"
MAX_EXIF = 65527
EXIF_HEADER = b"Exif\0\0"


def exif_app1(exif: bytes | None) -> bytes:
    """A TIFF-structured EXIF block as a JPEG APP1 ``Exif`` segment (b"" when
    there is none or it does not fit in one segment)."""
    if not exif or len(exif) > MAX_EXIF:
        return b""
    payload = EXIF_HEADER + exif
    return b"\xff\xe1" + struct.pack(">H", len(payload) + 2) + payload


def jfif_app0(units: int, x: int, y: int) -> bytes:
    """A JFIF 1.01 APP0 segment: density ``x`` by ``y`` in ``units`` (0 aspect
    ratio only, 1 dots per inch, 2 dots per centimetre), no thumbnail."""
    return b"\xff\xe0\x00\x10JFIF\x00\x01\x01" + struct.pack(">BHH", units, x, y) + b"\x00\x00"
