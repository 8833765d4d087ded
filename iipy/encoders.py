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
) -> bytes:
    """Encode a (height, width, bands) uint8 array.

    ``quality``: JPEG and WebP 1-100 (WebP below 1 = lossless), PNG the zlib
    level 0-9.  ``dpi`` is in pixels per inch.
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
