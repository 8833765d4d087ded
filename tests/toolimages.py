"""Inputs for the `iipy convert` / `iipy static` tests, made at test time with pyvips.

:func:`photo` writes a photograph-like JPEG (smooth gradients, rings, fine texture
and noise, so a wrong tile, a shifted level or a colour swap shows in the pixels);
:func:`strip_tiff` the same picture as a plain strip TIFF (what scanners write and
iipy cannot serve), with baseline text tags written by Pillow.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

PHOTO_SIZE = (10000, 8000)  # the "real photograph-sized input"


def picture(width: int, height: int):  # -> pyvips.Image
    import pyvips

    # the smooth part at a quarter of the size, enlarged (cheap); texture at full size
    w4, h4 = -(-width // 4), -(-height // 4)
    x = pyvips.Image.xyz(w4, h4)
    cx, cy = x[0] - w4 * 0.4, x[1] - h4 * 0.55
    deg = 180 / math.pi  # libvips' sin and cos take degrees
    rings = (((cx * cx + cy * cy) ** 0.5 * (deg / 9)).sin() + 1) * 50
    fine = ((x[0] * (0.5 * deg)).sin() * (x[1] * (0.43 * deg)).cos() + 1) * 30
    red = x[0] * (200 / w4) + rings * 0.4
    green = x[1] * (200 / h4) + fine
    blue = rings + fine * 0.5 + 30
    smooth = red.bandjoin([green, blue]).resize(4, kernel="linear").crop(0, 0, width, height)
    # film grain: a 509x509 noise patch repeated (a prime side, so tiles never repeat it)
    patch = pyvips.Image.gaussnoise(509, 509, sigma=6, mean=0)
    noise = patch.replicate(-(-width // 509), -(-height // 509)).crop(0, 0, width, height)
    image = (smooth + noise).cast("uchar")
    return image.copy(interpretation="srgb")


def photo(path: Path, width: int = PHOTO_SIZE[0], height: int = PHOTO_SIZE[1]) -> Path:
    picture(width, height).jpegsave(str(path), Q=92)
    return path


def strip_tiff(path: Path, width: int = 1500, height: int = 1000) -> Path:
    """An RGB strip TIFF with Artist, Copyright and ImageDescription."""
    from PIL import Image

    array = np.ndarray(buffer=picture(width, height).write_to_memory(), dtype=np.uint8,
                       shape=(height, width, 3))
    tags = {315: "Ada Lovelace", 33432: "CC BY 4.0 Example Museum",
            270: "A strip TIFF, as scanners write them"}
    Image.fromarray(array).save(path, compression="tiff_deflate", tiffinfo=tags)
    return path
