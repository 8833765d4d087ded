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
from .tiffdir import (
    IFD,
    TAG_BITS,
    TAG_PLANAR,
    TAG_SAMPLE_FORMAT,
    TAG_SAMPLES,
    TAG_TILE_BYTE_COUNTS,
    TAG_TILE_HEIGHT,
    TAG_TILE_OFFSETS,
    TAG_TILE_WIDTH,
)

#: Largest tile decoded at once (4096², 48 MB as RGB): a tile is the unit of
#: every read, so its size bounds a tile request's memory.
MAX_TILE_PIXELS = 1 << 24
#: Most samples (bands) a pixel may have: multispectral images have tens.
MAX_SAMPLES = 64
#: Sample sizes in bits that a decoder can deliver.
BITS = (*range(1, 17), 32, 64)
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
