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

from typing import Any

import numpy as np

from ..errors import CorruptImage, UnsupportedImage
from ..models import ColourSpace, ImageInfo, Level, SampleFormat
from .tiffdir import (
    IFD,
    TAG_ARTIST,
    TAG_BITS,
    TAG_COMPRESSION,
    TAG_COPYRIGHT,
    TAG_DATETIME,
    TAG_DESCRIPTION,
    TAG_DOCUMENT_NAME,
    TAG_ICC,
    TAG_JPEG_TABLES,
    TAG_MAKE,
    TAG_MODEL,
    TAG_PAGE_NAME,
    TAG_PHOTOMETRIC,
    TAG_PLANAR,
    TAG_RES_UNIT,
    TAG_SAMPLE_FORMAT,
    TAG_SAMPLES,
    TAG_SMAX,
    TAG_SMIN,
    TAG_SOFTWARE,
    TAG_STONITS,
    TAG_TILE_BYTE_COUNTS,
    TAG_TILE_HEIGHT,
    TAG_TILE_OFFSETS,
    TAG_TILE_WIDTH,
    TAG_X_RES,
    TAG_XMP,
    TAG_Y_RES,
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


_NUMPY: dict[tuple[SampleFormat, int], Any] = {
    (SampleFormat.UINT, 8): np.uint8,
    (SampleFormat.UINT, 16): np.uint16,
    (SampleFormat.UINT, 32): np.uint32,
    (SampleFormat.INT, 8): np.int8,
    (SampleFormat.INT, 16): np.int16,
    (SampleFormat.INT, 32): np.int32,
    (SampleFormat.FLOAT, 32): np.float32,
    (SampleFormat.FLOAT, 64): np.float64,
}


def _default_max(fmt: SampleFormat, bits: int) -> float:
    """The value a sample's maximum maps to 255: samples of up to 8 bits reach
    the renderer as 0-255; 9-16 bits as stored, so 2^bits - 1 (iipsrv 1.3
    knows only 12 and 16 and divides 10 and 14-bit data by 0)."""
    if fmt is SampleFormat.FLOAT:
        return 1.0
    if bits <= 8:
        return 255.0
    return float((1 << bits) - 1) if bits <= 32 else 255.0


def describe(first: IFD, levels: tuple[Level, ...],
             stack: tuple[tuple[str, float], ...] = ()) -> ImageInfo:
    """The ImageInfo of a TIFF (or of a stack's page) whose first directory is
    ``first`` (also used for strip TIFFs, with synthesised levels); ``stack``:
    the name and scale of every page of a stack."""
    bits_all = first.ints(TAG_BITS) or (1,)
    bits = bits_all[0]
    bands = first.int(TAG_SAMPLES, 1)
    fmt_code = first.int(TAG_SAMPLE_FORMAT, 1)
    formats = {2: SampleFormat.INT, 3: SampleFormat.FLOAT}
    sample_format = formats.get(fmt_code, SampleFormat.UINT)
    photometric = first.int(TAG_PHOTOMETRIC, PHOTOMETRIC_MINISBLACK)
    if photometric in PHOTOMETRIC_LAB:
        colour = ColourSpace.CIELAB
    elif photometric in (PHOTOMETRIC_MINISBLACK, PHOTOMETRIC_MINISWHITE):
        colour = ColourSpace.BINARY if bits == 1 else ColourSpace.GREY
    else:
        colour = ColourSpace.SRGB
    if photometric == 3:  # palette: pyvips expands it to RGB
        bands, bits = 3, 8
    container = 8 if bits <= 8 else 16 if bits <= 16 else bits
    if (sample_format, container) not in _NUMPY or (
            container != bits and sample_format is not SampleFormat.UINT):
        raise UnsupportedImage(f"unsupported sample type ({bits}-bit {sample_format.value})")
    smin, smax = first.get(TAG_SMIN), first.get(TAG_SMAX)
    mins = _per_band(smin, bands, 0.0)
    default_max = _default_max(sample_format, bits)
    maxs = tuple(v if v else default_max for v in _per_band(smax, bands, default_max))
    unit_code = first.int(TAG_RES_UNIT, 2)
    xres, yres = first.rational(TAG_X_RES), first.rational(TAG_Y_RES)
    dpi = None
    unit = {2: "in", 3: "cm"}.get(unit_code, "")
    if xres and yres:
        scale = {2: 1 / 0.0254, 3: 100.0}.get(unit_code, 1.0)
        dpi = (xres * scale, yres * scale)
    metadata = {
        key: first.text(tag)
        for key, tag in (
            ("rights", TAG_COPYRIGHT),
            ("creator", TAG_ARTIST),
            ("description", TAG_DESCRIPTION),
            ("date", TAG_DATETIME),
            ("software", TAG_SOFTWARE),
            ("title", TAG_DOCUMENT_NAME),
            ("pagename", TAG_PAGE_NAME),
            ("make", TAG_MAKE),
            ("model", TAG_MODEL),
        )
        if first.text(tag)
    }
    stonits = first.rational(TAG_STONITS)
    if stonits is not None:
        metadata["scale"] = f"{stonits:g}"
    icc = first.get(TAG_ICC)
    xmp = first.get(TAG_XMP)
    return ImageInfo(
        format="tiff",
        levels=levels,
        bands=bands,
        bits=bits,
        sample_format=sample_format,
        colour_space=colour,
        min_values=mins,
        max_values=maxs,
        icc=icc if isinstance(icc, bytes) and icc else None,
        xmp=xmp if isinstance(xmp, bytes) and xmp else None,
        dpi=dpi,
        resolution_unit=unit,
        metadata=metadata,
        stack=stack,
    )


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


def _per_band(value: object, bands: int, default: float) -> tuple[float, ...]:
    if value is None:
        return (default,) * bands
    try:  # a tag of the wrong type (bytes, text) is a damaged file, not a 500
        values = [float(v) for v in (value if isinstance(value, tuple) else (value,))]
    except (TypeError, ValueError):
        raise CorruptImage("sample value range (SMin/SMaxSampleValue) is not numeric") from None
    if len(values) < bands:
        values += [values[-1] if values else default] * (bands - len(values))
    return tuple(values[:bands])
