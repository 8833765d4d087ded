"""Read the metadata an output carries, straight from its bytes, as each format's
specification lays it out (no image library in between): JPEG marker segments
(ITU T.81 B.1.1.4; JFIF 1.02; ICC.1 annex B.4; EXIF 2.3 §4.5.4), PNG chunks
(PNG 3rd ed. §11.3: iCCP, pHYs, eXIf), WebP RIFF chunks (ICCP, EXIF, XMP),
TIFF directory entries (TIFF 6.0 §2)."""

from __future__ import annotations

import struct
import zlib


def jpeg_segments(data: bytes) -> list[tuple[int, bytes]]:
    """(marker, payload) of every segment before the first scan."""
    assert data[:2] == b"\xff\xd8", "not a JPEG"
    pos, found = 2, []
    while pos + 4 <= len(data):
        assert data[pos] == 0xFF, f"no marker at {pos}"
        marker = data[pos + 1]
        length = struct.unpack(">H", data[pos + 2:pos + 4])[0]
        found.append((marker, data[pos + 4:pos + 2 + length]))
        if marker == 0xDA:
            break
        pos += 2 + length
    return found


def jpeg_icc(data: bytes) -> bytes | None:
    """The ICC profile of a JPEG: its APP2 ICC_PROFILE chunks, checked to be
    numbered 1..n with the same n, each at most 65519 bytes, joined in order."""
    chunks = [p[12:] for m, p in jpeg_segments(data) if m == 0xE2 and p[:12] == b"ICC_PROFILE\0"]
    if not chunks:
        return None
    numbers = [(c[0], c[1]) for c in chunks]
    total = numbers[0][1]
    assert sorted(n for n, _ in numbers) == list(range(1, total + 1)), numbers
    assert all(t == total for _, t in numbers), numbers
    assert all(len(c) - 2 <= 65519 for c in chunks)
    return b"".join(c[2:] for c in sorted(chunks, key=lambda c: c[0]))


def jpeg_exif(data: bytes) -> bytes | None:
    found = [p[6:] for m, p in jpeg_segments(data) if m == 0xE1 and p[:6] == b"Exif\0\0"]
    assert len(found) <= 1
    return found[0] if found else None


def jpeg_xmp(data: bytes) -> bytes | None:
    prefix = b"http://ns.adobe.com/xap/1.0/\0"
    found = [p[len(prefix):] for m, p in jpeg_segments(data) if m == 0xE1 and p.startswith(prefix)]
    return found[0] if found else None


def jfif_density(data: bytes) -> tuple[int, int, int] | None:
    """(units, x density, y density) of the JFIF APP0, which must come right after SOI."""
    segments = jpeg_segments(data)
    jfif = [p for m, p in segments if m == 0xE0 and p[:5] == b"JFIF\0"]
    if not jfif:
        return None
    assert segments[0][0] == 0xE0, "JFIF APP0 is not the first segment"
    return jfif[0][7], *struct.unpack(">HH", jfif[0][8:12])


def png_chunks(data: bytes) -> dict[bytes, bytes]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, found = 8, {}
    while pos < len(data):
        length = struct.unpack(">I", data[pos:pos + 4])[0]
        kind = data[pos + 4:pos + 8]
        body = data[pos + 8:pos + 8 + length]
        crc = struct.unpack(">I", data[pos + 8 + length:pos + 12 + length])[0]
        assert zlib.crc32(kind + body) == crc, kind
        found[kind] = body
        pos += 12 + length
    return found


def png_icc(data: bytes) -> bytes | None:
    body = png_chunks(data).get(b"iCCP")
    if body is None:
        return None
    name_end = body.index(b"\0")
    assert body[name_end + 1] == 0  # compression method: zlib
    return zlib.decompress(body[name_end + 2:])


def png_phys(data: bytes) -> tuple[int, int, int] | None:
    body = png_chunks(data).get(b"pHYs")
    return struct.unpack(">IIB", body) if body else None


def webp_chunks(data: bytes) -> dict[bytes, bytes]:
    assert data[:4] == b"RIFF" and data[8:12] == b"WEBP"
    pos, found = 12, {}
    while pos + 8 <= len(data):
        kind = data[pos:pos + 4]
        length = struct.unpack("<I", data[pos + 4:pos + 8])[0]
        found[kind] = data[pos + 8:pos + 8 + length]
        pos += 8 + length + (length & 1)
    return found


_SIZES = {1: 1, 2: 1, 3: 2, 4: 4, 5: 8, 6: 1, 7: 1, 8: 2, 9: 4, 10: 8, 11: 4, 12: 8, 13: 4}


def tiff_ifd(data: bytes, offset: int | None = None) -> dict[int, tuple[int, int, bytes]]:
    """A classic TIFF (or EXIF) directory: tag → (type, count, value bytes)."""
    e = "<" if data[:2] == b"II" else ">"
    assert struct.unpack(e + "H", data[2:4])[0] == 42
    if offset is None:
        offset = struct.unpack(e + "I", data[4:8])[0]
    count = struct.unpack(e + "H", data[offset:offset + 2])[0]
    found = {}
    for i in range(count):
        entry = data[offset + 2 + 12 * i:offset + 14 + 12 * i]
        tag, typ, n = struct.unpack(e + "HHI", entry[:8])
        size = _SIZES[typ] * n
        if size <= 4:
            value = entry[8:8 + size]
        else:
            where = struct.unpack(e + "I", entry[8:12])[0]
            value = data[where:where + size]
        found[tag] = (typ, n, value)
    return found


def tiff_rational(data: bytes, value: bytes) -> float:
    e = "<" if data[:2] == b"II" else ">"
    num, den = struct.unpack(e + "II", value[:8])
    return num / den


def tiff_short(data: bytes, value: bytes) -> int:
    return struct.unpack(("<" if data[:2] == b"II" else ">") + "H", value[:2])[0]


def exif_fields(exif: bytes) -> dict[str, dict[int, tuple[int, int, bytes]]]:
    """IFD0, its EXIF IFD and GPS IFD of a TIFF-structured EXIF block."""
    e = "<" if exif[:2] == b"II" else ">"
    ifd0 = tiff_ifd(exif)
    out = {"ifd0": ifd0}
    for name, tag in (("exif", 34665), ("gps", 34853)):
        if tag in ifd0:
            out[name] = tiff_ifd(exif, struct.unpack(e + "I", ifd0[tag][2])[0])
    return out
