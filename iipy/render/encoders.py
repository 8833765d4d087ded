"""uint8 pixels → JPEG, PNG, WebP, TIFF or AVIF bytes, with ICC, XMP, EXIF and resolution.

Resolution is written in the unit each format defines (:class:`Density`):
JPEG's JFIF density in dots per inch (units 1) or per centimetre (units 2)
as the source states it, PNG's pHYs always in pixels per metre, TIFF's
X/YResolution in the ResolutionUnit written beside them (2 inch, 3 cm).
WebP and AVIF have no resolution field (iipsrv 1.3 writes none either).
EXIF goes where each format keeps it: JPEG APP1 ``Exif``, PNG eXIf, the
WebP and AVIF EXIF items; TIFF outputs carry none (an EXIF IFD would have
to be rebuilt at the output's offsets; iipsrv 1.3 writes none).
"""

from __future__ import annotations

import io
import struct
from dataclasses import dataclass

import numpy as np
from PIL import Image

from ..errors import IIPyError
from ..jpeg.markers import EXIF_HEADER, MAX_EXIF, exif_app1, icc_app2
from ..models import OutputFormat, Processing
from .avif import encode_avif
from .tiffout import DEFLATE, encode_tiff

_MODES = {1: "L", 2: "LA", 3: "RGB", 4: "RGBA"}


@dataclass(frozen=True)
class Density:
    """An output's pixel density: ``x``, ``y`` in pixels per metre, ``unit``
    the one the source stated ("in" or "cm"), which JPEG and TIFF write."""

    x: float
    y: float
    unit: str = "in"

    @property
    def centimetres(self) -> bool:
        return self.unit == "cm"

    def per_unit(self) -> tuple[float, float]:
        """Pixels per inch, or per centimetre when the unit is centimetres."""
        scale = 0.01 if self.centimetres else 0.0254
        return self.x * scale, self.y * scale

    def jfif(self) -> tuple[int, int, int]:
        """(units, x, y) for a JFIF APP0: 1 = dots per inch, 2 = per centimetre;
        densities are 16-bit integers (at least 1)."""
        x, y = (max(1, min(65535, round(v))) for v in self.per_unit())
        return (2 if self.centimetres else 1), x, y

    def per_inch(self) -> tuple[float, float]:
        return self.x * 0.0254, self.y * 0.0254

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
    density: Density | None = None,
    xmp: bytes | None = None,
    compression: int = DEFLATE,
    exif: bytes | None = None,
) -> bytes:
    """Encode a (height, width, bands) uint8 array.

    ``quality``: JPEG and WebP 1-100 (WebP below 1 = lossless), PNG the zlib
    level 0-9.  ``density``: see :class:`Density`.  ``xmp`` (an XMP packet) goes
    into JPEG APP1, a PNG ``XML:com.adobe.xmp`` iTXt chunk, WebP's XMP chunk
    or TIFF tag 700; ``exif`` (TIFF-structured) into JPEG APP1, PNG eXIf,
    WebP's and AVIF's EXIF.  TIFF: ``compression`` (tiffout's codes) with ``quality``
    as its level or quality; AVIF: quality -1 = lossless (see avif.py).
    """
    height, width, bands = pixels.shape
    if bands not in _MODES:
        raise IIPyError(f"cannot encode {bands} bands")
    if fmt is OutputFormat.JPEG and _simplejpeg is not None and bands in (1, 3):
        return _fast_jpeg(pixels, max(1, min(100, quality)), icc, density, xmp, exif)
    if fmt is OutputFormat.TIFF:
        resolution = (density.per_unit(), 3 if density.centimetres else 2) if density else None
        return encode_tiff(pixels, compression, quality, icc, resolution, xmp)
    if exif and len(exif) > MAX_EXIF:
        exif = None  # one JPEG segment's worth, for every format alike
    if fmt is OutputFormat.AVIF:
        return encode_avif(pixels, quality, icc, xmp, exif)
    array = pixels[:, :, 0] if bands == 1 else pixels
    image = Image.fromarray(np.ascontiguousarray(array))
    options: dict[str, object] = {}
    if icc:
        options["icc_profile"] = icc
    if density and fmt is not OutputFormat.WEBP:
        # Pillow writes JPEG's JFIF in dots per inch; PNG's pHYs as round(dpi / 0.0254)
        # pixels per metre, so the unrounded value gives the nearest pixels per metre
        options["dpi"] = density.per_inch()
    if xmp:
        _add_xmp(options, fmt, xmp)
    if exif:
        options["exif"] = EXIF_HEADER + exif if fmt is OutputFormat.JPEG else exif
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
    density: Density | None,
    xmp: bytes | None = None,
    exif: bytes | None = None,
) -> bytes:
    """Baseline JPEG as Pillow writes it (libjpeg's tables scaled by quality,
    4:2:0 for colour, a JFIF APP0), with the density, EXIF and XMP (APP1)
    and ICC (APP2) segments added.  Encodes straight from the numpy array, so a large
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
    if density:
        units, x, y = density.jfif()
        head[13] = units
        head[14:18] = struct.pack(">HH", x, y)
    segments = exif_app1(exif)
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
