"""uint8 pixels → a TIFF file with the compression and quality asked for.

iipsrv 1.3 takes the TIFF output compression from ``QLT=<name>:<quality>``
or TIFF_COMPRESSION/TIFF_QUALITY (codes in :data:`iipy.models.TIFF_COMPRESSIONS`):
none, LZW, Deflate (quality = zlib level), JPEG (quality), WebP (quality),
Zstandard (quality = zstd level).  Pillow's libtiff cannot set the Deflate and
Zstandard levels nor write WebP strips, so the file is written here: one
little-endian IFD, the image in strips, each strip compressed on its own.
LZW alone goes through Pillow (the codec is in its libtiff; it has no level).

Grey images are written as grey (Photometric BlackIsZero, one sample), not as
a one-sample "RGB" file as iipsrv 1.3 does (which readers refuse); an alpha
band is an unassociated ExtraSample.  WebP strips need 3 or 4 bands (libtiff's
rule): grey images asked for as WebP are written with Deflate.
"""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
from PIL import Image

from ..errors import IIPyError

NONE, LZW, DEFLATE, JPEG, WEBP, ZSTD = range(6)
_TAG_CODES = {NONE: 1, LZW: 5, DEFLATE: 8, JPEG: 7, WEBP: 50001, ZSTD: 50000}
#: WebP pictures are at most 16383 pixels a side
_WEBP_MAX = 16383
_MODES = {1: "L", 2: "LA", 3: "RGB", 4: "RGBA"}
#: ((x, y), ResolutionUnit): values in pixels per inch (unit 2) or per centimetre (unit 3)
Resolution = tuple[tuple[float, float], int]


def encode_tiff(pixels: np.ndarray, compression: int, quality: int,
                icc: bytes | None = None, resolution: Resolution | None = None,
                xmp: bytes | None = None) -> bytes:
    """A (height, width, bands) uint8 array as a TIFF file.  ``resolution``:
    ((x, y), ResolutionUnit), the unit 2 (inch) or 3 (centimetre) the values are in."""
    height, width, bands = pixels.shape
    if bands not in _MODES:
        raise IIPyError(f"cannot encode {bands} bands")
    if compression == WEBP and (bands < 3 or width > _WEBP_MAX):
        compression = DEFLATE
    if compression == LZW:
        return _pillow_lzw(pixels, icc, resolution, xmp)
    if compression not in _TAG_CODES:
        compression = NONE
    if compression == JPEG and bands in (2, 4):  # JPEG carries no alpha band
        pixels, bands = pixels[:, :, : bands - 1], bands - 1
    ycbcr = compression == JPEG and bands == 3
    rows = min(height, _WEBP_MAX) if compression == WEBP else height
    strips = [
        _compress(np.ascontiguousarray(pixels[top:top + rows]), compression, quality)
        for top in range(0, height, rows)
    ]
    tags: list[tuple[int, int, int, bytes]] = [
        (256, 4, 1, struct.pack("<I", width)),
        (257, 4, 1, struct.pack("<I", height)),
        (258, 3, bands, struct.pack("<" + "H" * bands, *([8] * bands))),
        (259, 3, 1, struct.pack("<H", _TAG_CODES[compression])),
        (262, 3, 1, struct.pack("<H", 6 if ycbcr else (2 if bands >= 3 else 1))),
        (277, 3, 1, struct.pack("<H", bands)),
        (278, 4, 1, struct.pack("<I", rows)),
        (284, 3, 1, struct.pack("<H", 1)),
    ]
    if resolution:
        (x, y), unit = resolution
        tags += [
            (282, 5, 1, _rational(x)),
            (283, 5, 1, _rational(y)),
            (296, 3, 1, struct.pack("<H", unit)),
        ]
    if bands in (2, 4):
        tags.append((338, 3, 1, struct.pack("<H", 2)))  # unassociated alpha
    if ycbcr:
        tags.append((530, 3, 2, struct.pack("<HH", 2, 2)))
        tags.append((532, 5, 6, b"".join(_rational(v) for v in (0, 255, 128, 255, 128, 255))))
    if xmp:
        tags.append((700, 1, len(xmp), bytes(xmp)))
    if icc:
        tags.append((34675, 7, len(icc), bytes(icc)))
    return _assemble(tags, strips)


def _compress(block: np.ndarray, compression: int, quality: int) -> bytes:
    data = block.tobytes()
    if compression == DEFLATE:
        return zlib.compress(data, max(1, min(9, quality)))
    if compression == ZSTD:
        import zstandard

        return zstandard.ZstdCompressor(level=max(1, min(22, quality))).compress(data)
    if compression in (JPEG, WEBP):
        array = block[:, :, 0] if block.shape[2] == 1 else block
        out = io.BytesIO()
        image = Image.fromarray(array)
        if compression == JPEG:
            image.save(out, "JPEG", quality=max(1, min(100, quality)), subsampling="4:2:0")
        else:
            image.save(out, "WEBP", quality=max(1, min(100, quality)), method=0, exact=True)
        return out.getvalue()
    return data


def _rational(value: float) -> bytes:
    return struct.pack("<II", max(0, int(round(value * 1000))), 1000)


def _assemble(tags: list[tuple[int, int, int, bytes]], strips: list[bytes]) -> bytes:
    """Header, strips, then the IFD with its out-of-line values."""
    out = bytearray(b"II*\0\0\0\0\0")
    offsets = []
    for strip in strips:
        offsets.append(len(out))
        out += strip
        if len(out) % 2:
            out += b"\0"
    counts = [len(s) for s in strips]
    n = len(strips)
    tags = tags + [
        (273, 4, n, struct.pack("<" + "I" * n, *offsets)),
        (279, 4, n, struct.pack("<" + "I" * n, *counts)),
    ]
    tags.sort(key=lambda t: t[0])
    ifd_offset = len(out)
    struct.pack_into("<I", out, 4, ifd_offset)
    extra_at = ifd_offset + 2 + 12 * len(tags) + 4
    entries = bytearray(struct.pack("<H", len(tags)))
    extra = bytearray()
    for tag, typ, count, value in tags:
        if len(value) <= 4:
            entries += struct.pack("<HHI", tag, typ, count) + value.ljust(4, b"\0")
        else:
            entries += struct.pack("<HHII", tag, typ, count, extra_at + len(extra))
            extra += value
            if len(extra) % 2:
                extra += b"\0"
    entries += b"\0\0\0\0"
    if len(out) + len(entries) + len(extra) >= 1 << 32:
        raise IIPyError("TIFF output larger than 4 GB")
    return bytes(out + entries + extra)


def _pillow_lzw(pixels: np.ndarray, icc: bytes | None, resolution: Resolution | None,
                xmp: bytes | None) -> bytes:
    from PIL.TiffImagePlugin import ImageFileDirectory_v2

    bands = pixels.shape[2]
    array = pixels[:, :, 0] if bands == 1 else pixels
    options: dict[str, object] = {}
    if icc:
        options["icc_profile"] = icc
    if resolution:
        (x, y), unit = resolution
        options.update(x_resolution=round(x, 3), y_resolution=round(y, 3), resolution_unit=unit)
    if xmp:
        ifd = ImageFileDirectory_v2()
        ifd[700] = xmp
        ifd.tagtype[700] = 1
        options["tiffinfo"] = ifd
    out = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(array)).save(out, "TIFF", compression="tiff_lzw",
                                                      **options)
    return out.getvalue()
