"""What a TIFF directory may declare before any of its pixels is read.

A TIFF is a set of claims: a level's size, its tile size, where its tiles
are and how long they are.  A hostile or broken file can claim a 200000²
level in 5 MB, tiles past the end of the file, 1000 samples a pixel or a
sample format nobody decodes.  :func:`check_samples` and :func:`check_level`
hold every claim against the others and against the file's size when the
image is opened, so a bad file is refused (CorruptImage, UnsupportedImage:
4xx) before libvips or libjpeg sees it.  What remains possible (a valid
level too big to decode for one request) is bounded per request by
MAX_SOURCE_PIXELS (:mod:`iipy.render.limits`).
"""

from __future__ import annotations

import numpy as np

from ..errors import CorruptImage, UnsupportedImage
from ..models import SampleFormat
from .tiffdir import (
    IFD,
    TAG_BITS,
    TAG_COMPRESSION,
    TAG_JPEG_TABLES,
    TAG_PHOTOMETRIC,
    TAG_PLANAR,
    TAG_SAMPLE_FORMAT,
    TAG_SAMPLES,
    TAG_TILE_BYTE_COUNTS,
    TAG_TILE_HEIGHT,
    TAG_TILE_OFFSETS,
    TAG_TILE_WIDTH,
)

COMPRESSION_JPEG = 7
PHOTOMETRIC_MINISWHITE = 0
PHOTOMETRIC_MINISBLACK = 1
PHOTOMETRIC_RGB = 2
PHOTOMETRIC_YCBCR = 6
PHOTOMETRIC_LAB = (8, 9, 10)

#: Largest tile decoded at once (4096², 48 MB as RGB): a tile is the unit of
#: every read, so its size bounds a tile request's memory.
MAX_TILE_PIXELS = 1 << 24
#: Most samples (bands) a pixel may have: multispectral images have tens.
MAX_SAMPLES = 64
#: Sample sizes in bits that a decoder can deliver.
BITS = (1, 2, 4, 8, 12, 16, 32, 64)
#: SampleFormat: 1 unsigned, 2 signed, 3 IEEE float, 4 undefined (read as unsigned).
SAMPLE_FORMATS = (1, 2, 3, 4)
#: A stored tile longer than this many times its raw size (plus a little) is a lie.
MAX_TILE_EXPANSION = 4


def check_samples(ifd: IFD) -> None:
    """Samples per pixel, bits and sample format that make sense together."""
    samples = ifd.int(TAG_SAMPLES, 1)
    if not 1 <= samples <= MAX_SAMPLES:
        raise UnsupportedImage(f"images with {samples} samples a pixel are not supported")
    bits = ifd.ints(TAG_BITS) or (1,)
    if len(bits) not in (1, samples) or any(b not in BITS for b in bits):
        raise UnsupportedImage("image has an unsupported number of bits a sample")
    formats = ifd.ints(TAG_SAMPLE_FORMAT) or (1,)
    if any(f not in SAMPLE_FORMATS for f in formats):
        raise UnsupportedImage("image has an unsupported sample format")


def check_level(ifd: IFD, file_size: int) -> int:
    """A tiled level whose size, tile size and tile table agree with each other
    (CorruptImage or UnsupportedImage otherwise): no stored tile is longer
    than its pixels could need.  Returns how many stored tiles lie inside the
    file: a truncated file still serves the tiles it has (a read of a missing
    one is a CorruptImage), one with none at all is refused by the caller."""
    width, height = ifd.width, ifd.height
    tw, th = ifd.int(TAG_TILE_WIDTH), ifd.int(TAG_TILE_HEIGHT)
    if width <= 0 or height <= 0 or tw <= 0 or th <= 0:
        raise CorruptImage("image has a level with no size")
    if tw * th > MAX_TILE_PIXELS:
        raise UnsupportedImage(f"image tiles of {tw}x{th} pixels are too large to serve")
    samples = ifd.int(TAG_SAMPLES, 1)
    planes = samples if ifd.int(TAG_PLANAR, 1) == 2 else 1
    expected = -(-width // tw) * -(-height // th) * planes
    offsets = ifd.table(TAG_TILE_OFFSETS)
    counts = ifd.table(TAG_TILE_BYTE_COUNTS)
    if len(offsets) < expected or len(counts) < expected:
        raise CorruptImage("image has fewer tiles than its size needs")
    offsets, counts = offsets[:expected], counts[:expected]
    bits = max(ifd.ints(TAG_BITS) or (8,))
    raw = tw * th * (samples // planes) * max(bits, 8) // 8
    stored = counts > 0  # a zero count is a sparse (empty) tile
    if np.any(counts[stored] > MAX_TILE_EXPANSION * raw + 65536):
        raise CorruptImage("image has a tile longer than its pixels could need")
    offsets, counts = offsets[stored], counts[stored]
    inside = (offsets < np.uint64(file_size)) & (counts <= np.uint64(file_size) - offsets)
    return int(np.count_nonzero(inside))


def default_max(fmt: SampleFormat, bits: int) -> float:
    if fmt is SampleFormat.FLOAT:
        return 1.0
    return {1: 255.0, 8: 255.0, 12: 4095.0, 16: 65535.0, 32: 4294967295.0}.get(bits, 255.0)


def passthrough(ifd: IFD) -> tuple[bytes | None, bool] | None:
    """(JPEGTables, is-RGB) when this level's tiles can be served as stored."""
    if ifd.int(TAG_COMPRESSION) != COMPRESSION_JPEG or ifd.int(TAG_PLANAR, 1) != 1:
        return None
    photometric = ifd.int(TAG_PHOTOMETRIC, PHOTOMETRIC_MINISBLACK)
    if photometric not in (PHOTOMETRIC_MINISBLACK, PHOTOMETRIC_RGB, PHOTOMETRIC_YCBCR):
        return None
    if (ifd.ints(TAG_BITS) or (8,))[0] != 8 or ifd.int(TAG_SAMPLES, 1) not in (1, 3):
        return None
    tables = ifd.get(TAG_JPEG_TABLES)
    return (tables if isinstance(tables, bytes) else None), photometric == PHOTOMETRIC_RGB


def per_band(value: object, bands: int, default: float) -> tuple[float, ...]:
    if value is None:
        return (default,) * bands
    try:  # a tag of the wrong type (bytes, text) is a damaged file, not a 500
        values = [float(v) for v in (value if isinstance(value, tuple) else (value,))]
    except (TypeError, ValueError):
        raise CorruptImage("sample value range (SMin/SMaxSampleValue) is not numeric") from None
    if len(values) < bands:
        values += [values[-1] if values else default] * (bands - len(values))
    return tuple(values[:bands])
