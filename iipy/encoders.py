"""uint8 pixels → JPEG, PNG, WebP or TIFF bytes (Pillow), with ICC and DPI."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

from .errors import IIPyError
from .models import OutputFormat

_MODES = {1: "L", 2: "LA", 3: "RGB", 4: "RGBA"}


def encode(
    pixels: np.ndarray,
    fmt: OutputFormat,
    quality: int,
    icc: bytes | None = None,
    dpi: tuple[float, float] | None = None,
    xmp: bytes | None = None,
) -> bytes:
    """Encode a (height, width, bands) uint8 array.

    ``quality``: JPEG and WebP 1-100 (WebP below 1 = lossless), PNG the zlib
    level 0-9.  ``dpi`` is in pixels per inch.  ``xmp`` (an XMP packet) goes
    into JPEG APP1, a PNG ``XML:com.adobe.xmp`` iTXt chunk, WebP's XMP chunk
    or TIFF tag 700.
    """
    height, width, bands = pixels.shape
    if bands not in _MODES:
        raise IIPyError(f"cannot encode {bands} bands")
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
    elif fmt is OutputFormat.TIFF:
        image.save(out, "TIFF", compression="tiff_adobe_deflate", **options)
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
    elif fmt is OutputFormat.TIFF:
        from PIL.TiffImagePlugin import ImageFileDirectory_v2

        ifd = ImageFileDirectory_v2()
        ifd[700] = xmp
        ifd.tagtype[700] = 1  # BYTE
        options["tiffinfo"] = ifd
