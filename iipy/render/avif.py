"""uint8 pixels → AVIF (CVT=avif, ATL tiles, IIIF ``.avif``).

Pillow's own AVIF plug-in (libavif with its AV1 encoder, in Pillow's wheels
since 11.2) is used: the pillow-avif-plugin wheel wraps the same libavif and
measured the same (6.2 vs 6.5 ms a 256² tile at speed 10, identical bytes),
so it would only add a dependency.  As iipsrv 1.3: the fastest encoder speed,
4:2:0 chroma for colour, 4:0:0 for grey; quality 0-100 (AVIF_QUALITY, QLT),
-1 for "lossless".  Pillow does not let the colour matrix be set to identity,
so -1 here is quality 100 with full 4:4:4 chroma: grey images come back
exact, colour ones within a few levels of the source (YCbCr rounding), not
bit for bit.
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

#: libavif's fastest speed, as iipsrv sets it
SPEED = 10


def encode_avif(pixels: np.ndarray, quality: int, icc: bytes | None = None,
                xmp: bytes | None = None, exif: bytes | None = None) -> bytes:
    """A (height, width, bands) uint8 array (1-4 bands) as an AVIF file."""
    bands = pixels.shape[2]
    if bands == 2:  # AVIF has no grey+alpha mode here: grey as RGB, alpha kept
        grey = pixels[:, :, :1]
        pixels = np.concatenate([grey, grey, grey, pixels[:, :, 1:2]], axis=2)
        bands = 4
    array = pixels[:, :, 0] if bands == 1 else pixels
    image = Image.fromarray(np.ascontiguousarray(array))
    options: dict[str, object] = {"speed": SPEED}
    if quality < 0:
        options["quality"] = 100
        if bands >= 3:
            options["subsampling"] = "4:4:4"
    else:
        options["quality"] = min(100, quality)
    if icc:
        options["icc_profile"] = icc
    if xmp:
        options["xmp"] = xmp
    if exif:
        options["exif"] = exif
    out = io.BytesIO()
    image.save(out, "AVIF", **options)
    return out.getvalue()
