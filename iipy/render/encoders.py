"""uint8 pixels → JPEG, PNG, WebP, TIFF or AVIF bytes, with ICC and DPI."""

from __future__ import annotations

import io
import struct

import numpy as np
from PIL import Image

from ..errors import IIPyError
from ..jpeg.markers import icc_app2
from ..models import OutputFormat, Processing
from .avif import encode_avif
from .tiffout import DEFLATE, encode_tiff

_MODES = {1: "L", 2: "LA", 3: "RGB", 4: "RGBA"}

try:  # libjpeg-turbo straight from numpy: ~1.7x faster than Pillow for a tile
    import simplejpeg as _simplejpeg
except ImportError:  # pragma: no cover - Pillow is the fallback
    _simplejpeg = None


def available() -> frozenset[OutputFormat]:
    """The output formats this installation can write (Pillow's WebP and AVIF
    plug-ins are optional parts of its build)."""
    global _AVAILABLE
    if _AVAILABLE is None:
        from PIL import features

        optional = {OutputFormat.WEBP: "webp", OutputFormat.AVIF: "avif"}
        _AVAILABLE = frozenset(
            fmt for fmt in OutputFormat if fmt not in optional or features.check(optional[fmt])
        )
    return _AVAILABLE


_AVAILABLE: frozenset[OutputFormat] | None = None


def encode(
    pixels: np.ndarray,
    fmt: OutputFormat,
    quality: int,
    icc: bytes | None = None,
    dpi: tuple[float, float] | None = None,
    xmp: bytes | None = None,
    compression: int = DEFLATE,
) -> bytes:
    """Encode a (height, width, bands) uint8 array.

    ``quality``: JPEG and WebP 1-100 (WebP below 1 = lossless), PNG the zlib
    level 0-9.  ``dpi`` is in pixels per inch.  ``xmp`` (an XMP packet) goes
    into JPEG APP1, a PNG ``XML:com.adobe.xmp`` iTXt chunk, WebP's XMP chunk
    or TIFF tag 700.  TIFF: ``compression`` (tiffout's codes) with ``quality``
    as its level or quality; AVIF: quality -1 = lossless (see avif.py).
    """
    height, width, bands = pixels.shape
    if bands not in _MODES:
        raise IIPyError(f"cannot encode {bands} bands")
    if fmt is OutputFormat.JPEG and _simplejpeg is not None and bands in (1, 3):
        return _fast_jpeg(pixels, max(1, min(100, quality)), icc, dpi, xmp)
    if fmt is OutputFormat.TIFF:
        return encode_tiff(pixels, compression, quality, icc, dpi, xmp)
    if fmt is OutputFormat.AVIF:
        return encode_avif(pixels, quality, icc, xmp)
    array = pixels[:, :, 0] if bands == 1 else pixels
    image = Image.fromarray(np.ascontiguousarray(array))
    options: dict[str, object] = {}
    if icc:
        options["icc_profile"] = icc
    if dpi:
        options["dpi"] = (round(dpi[0], 3), round(dpi[1], 3))
    if xmp:
        _add_xmp(options, fmt, xmp)
    out = io.BytesIO()
    if fmt is OutputFormat.JPEG:
        image.save(out, "JPEG", quality=max(1, min(100, quality)), **options)
    elif fmt is OutputFormat.PNG:
        image.save(out, "PNG", compress_level=max(0, min(9, quality)), **options)
    elif fmt is OutputFormat.WEBP:
        if quality < 1:
            image.save(out, "WEBP", lossless=True, method=0, **options)
        else:
            image.save(out, "WEBP", quality=min(100, quality), method=0, **options)
    else:  # pragma: no cover - enum is closed
        raise IIPyError(f"unknown output format {fmt}")
    return out.getvalue()


#: JPEG APP1 segments hold at most 65533 bytes; the XMP namespace header takes 29
MAX_JPEG_XMP = 65504


def _add_xmp(options: dict[str, object], fmt: OutputFormat, xmp: bytes) -> None:
    if fmt is OutputFormat.JPEG:
        if len(xmp) <= MAX_JPEG_XMP:
            options["xmp"] = xmp
    elif fmt is OutputFormat.WEBP:
        options["xmp"] = xmp
    elif fmt is OutputFormat.PNG:
        from PIL.PngImagePlugin import PngInfo

        info = PngInfo()
        info.add_itxt("XML:com.adobe.xmp", xmp.decode("utf-8", "replace"), zip=False)
        options["pnginfo"] = info


def _fast_jpeg(
    pixels: np.ndarray,
    quality: int,
    icc: bytes | None,
    dpi: tuple[float, float] | None,
    xmp: bytes | None = None,
) -> bytes:
    """Baseline JPEG as Pillow writes it (libjpeg's tables scaled by quality,
    4:2:0 for colour, a JFIF APP0), with the density, XMP (APP1) and ICC
    (APP2) segments added.  Encodes straight from the numpy array, so a large
    export needs no second, 4-bytes-a-pixel copy as Pillow makes."""
    colour = "GRAY" if pixels.shape[2] == 1 else "RGB"
    data = _simplejpeg.encode_jpeg(
        np.ascontiguousarray(pixels), quality=quality, colorspace=colour, colorsubsampling="420",
        fastdct=True,  # libjpeg's fast integer DCT, as iipsrv encodes
    )
    if data[2:4] != b"\xff\xe0" or data[6:11] != b"JFIF\0":
        raise IIPyError("JPEG encoder wrote no JFIF header")
    app0_end = 4 + struct.unpack(">H", data[4:6])[0]
    head = bytearray(data[:app0_end])
    if dpi:
        x, y = (max(1, min(65535, int(round(v)))) for v in dpi)
        head[13] = 1  # dots per inch
        head[14:18] = struct.pack(">HH", x, y)
    segments = b""
    if xmp and len(xmp) <= MAX_JPEG_XMP:
        payload = XMP_NAMESPACE + xmp
        segments += b"\xff\xe1" + struct.pack(">H", len(payload) + 2) + payload
    if icc:
        segments += icc_app2(icc)
    return bytes(head) + segments + data[app0_end:]


XMP_NAMESPACE = b"http://ns.adobe.com/xap/1.0/\0"


def icc_still_applies(icc: bytes, processing: Processing, bands: int) -> bool:
    """An ICC profile describes the source colours: not after CMP, SHD, CTW or
    COL (iipsrv's rule), nor when the output's band count does not match the
    profile's colour space (a grey JPEG with an RGB profile is invalid)."""
    if processing.colormap or processing.shade or processing.twist or processing.colour:
        return False
    space = icc[16:20]
    if space == b"GRAY":
        return bands in (1, 2)
    if space == b"RGB ":
        return bands in (3, 4)
    return True
