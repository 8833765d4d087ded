"""Read a small overlay image (the WATERMARK TIFF) into unit-valued arrays.

Kept with the decoders because it is the one other place that needs pyvips.
Grey or colour, 8 or 16-bit (or float in [0, 1]), with or without an alpha
band; a palette TIFF is expanded to RGB by libvips.
"""

from __future__ import annotations

import numpy as np

from ..errors import ConfigError

_TIFF_MAGIC = (b"II*\0", b"MM\0*", b"II+\0", b"MM\0+")
_SCALE = {"uchar": 255.0, "char": 127.0, "ushort": 65535.0, "short": 32767.0,
          "uint": 4294967295.0, "int": 2147483647.0, "float": 1.0, "double": 1.0}
_DTYPE = {"uchar": np.uint8, "char": np.int8, "ushort": np.uint16, "short": np.int16,
          "uint": np.uint32, "int": np.int32, "float": np.float32, "double": np.float64}


def read_overlay(path: str) -> tuple[np.ndarray, np.ndarray | None]:
    """(colour (h, w, 1 or 3), alpha (h, w) or None), unit values in [0, 1].

    Raises ConfigError (naming WATERMARK, not the path's directory) when the
    file is missing, is not a TIFF, or cannot be decoded.
    """
    try:
        with open(path, "rb") as handle:
            head = handle.read(4)
    except OSError as exc:
        raise ConfigError(f"WATERMARK={path!r} cannot be read: {exc.strerror}") from None
    if head not in _TIFF_MAGIC:
        raise ConfigError(f"WATERMARK={path!r} is not a TIFF file")
    import pyvips

    try:
        image = pyvips.Image.tiffload(path, access="sequential")
        if image.coding != "none":
            image = image.decode()
        if image.interpretation in ("lab", "labs", "labq", "cmyk"):
            image = image.colourspace("srgb")
        data = image.write_to_memory()
    except pyvips.Error as exc:
        raise ConfigError(f"WATERMARK={path!r} could not be decoded as a TIFF") from exc
    fmt = image.format
    if fmt not in _DTYPE:
        raise ConfigError(f"WATERMARK={path!r} has an unsupported sample type ({fmt})")
    array = np.frombuffer(data, dtype=_DTYPE[fmt]).reshape(image.height, image.width, image.bands)
    unit = np.clip(array.astype(np.float64) / _SCALE[fmt], 0.0, 1.0)
    bands = image.bands
    if bands in (2, 4):
        return unit[:, :, : bands - 1], unit[:, :, bands - 1]
    if bands in (1, 3):
        return unit, None
    return unit[:, :, :3], None
