"""Pixel operations in numpy, in iipsrv's order (iip-protocol.md §4.4-4.6).

Input is a decoder's array (height, width, bands) in the source sample type;
output is uint8, ready for an encoder.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from ..models import ColourSpace, ImageInfo, OutputFormat, Processing
from . import floatops


def needs_float_pipeline(info: ImageInfo, processing: Processing) -> bool:
    """Whether samples must be normalised to [0, 1] floats first."""
    return (
        info.bits > 8
        or info.sample_format.value == "float"
        or info.colour_space is ColourSpace.CIELAB
        or processing.floating
    )


def to_8bit(
    pixels: np.ndarray,
    info: ImageInfo,
    processing: Processing,
    hist: np.ndarray | None = None,
) -> np.ndarray:
    """Decoded samples → uint8, through iipsrv's float pipeline when needed.

    CIELAB → sRGB first; then normalise with the image's per-band min/max
    (overridden by MINMAX, or by the histogram's first and last non-empty
    bins for CNT=stretch), SHD, CTW, GAM or log, INV, CMP, CNV, and finally
    ``out = trunc(clamp(v · 255 · CNT, 0, 255))``.  This is iipsrv 1.1's path
    for every >8-bit or float image (1.2+ would shift 16-bit data right by 8
    instead, ignoring SMin/SMaxSampleValue); non-finite samples become 0.
    Plain 8-bit data with no processing passes through untouched.
    ``hist`` (the image histogram) is needed only for CNT=stretch.
    """
    if not needs_float_pipeline(info, processing):
        return pixels if pixels.dtype == np.uint8 else pixels.astype(np.uint8)
    bands = pixels.shape[2]
    if info.colour_space is ColourSpace.CIELAB and bands >= 3:
        values = floatops.lab_to_srgb(pixels)
        mins, maxs = np.zeros(values.shape[2], np.float32), np.ones(values.shape[2], np.float32)
    else:
        values = None
        mins = np.asarray(_fit(info.min_values, bands, 0.0), dtype=np.float32)
        maxs = np.asarray(_fit(info.max_values, bands, 255.0), dtype=np.float32)
    for band, low, high in processing.minmax:
        if band < 0:
            mins[:], maxs[:] = low, high
        elif band < len(mins):
            mins[band], maxs[band] = low, high
    if processing.stretch and hist is not None:
        first, last = histogram_bounds(hist)
        span = maxs - mins
        mins, maxs = mins + span * (first / 255.0), mins + span * (last / 255.0)
    if values is None or processing.minmax or processing.stretch:
        values = floatops.normalise(pixels if values is None else values, mins, maxs)
    if processing.shade is not None:
        values = floatops.shade(values, *processing.shade)
    if processing.twist:
        values = floatops.twist(values, processing.twist)
    if processing.log:
        values = floatops.logarithm(values)
    elif processing.gamma != 1.0:
        values = floatops.gamma(values, processing.gamma)
    if processing.invert:
        values = floatops.invert(values)
    if processing.colormap:
        values = floatops.colormap(values, processing.colormap)
    if processing.convolution:
        values = floatops.convolve(values, processing.convolution)
    return floatops.contrast_to_8bit(values, processing.contrast)


def histogram_bounds(hist: np.ndarray) -> tuple[int, int]:
    """First and last non-empty bins (0, 255 for an empty histogram)."""
    filled = np.flatnonzero(hist)
    if not filled.size:
        return 0, 255
    return int(filled[0]), int(filled[-1])


def _fit(values: tuple[float, ...], bands: int, default: float) -> list[float]:
    out = list(values[:bands])
    while len(out) < bands:
        out.append(out[-1] if out else default)
    return out


def flatten_for(pixels: np.ndarray, fmt: OutputFormat) -> np.ndarray:
    """Drop bands the output format cannot carry.

    JPEG takes 1 or 3 bands (grey+alpha → grey, RGBA or more → RGB); PNG,
    WebP and TIFF keep 1-4 bands (more than 4 → the first 3).
    """
    bands = pixels.shape[2]
    if fmt is OutputFormat.JPEG:
        if bands == 2:
            return pixels[:, :, :1]
        if bands > 3:
            return pixels[:, :, :3]
    elif bands > 4:
        return pixels[:, :, :3]
    if fmt in (OutputFormat.WEBP, OutputFormat.AVIF) and bands == 2:
        # WebP and AVIF (here) have no grey+alpha mode
        grey = pixels[:, :, :1]
        return np.concatenate([grey, grey, grey, pixels[:, :, 1:2]], axis=2)
    return pixels


# -- colour conversion and orientation (after the float pipeline) -------------

LUMA = (1254097, 2462056, 478151)  # iipsrv's integer weights, ≈ 0.299/0.587/0.114, >> 22


def to_grey(pixels: np.ndarray) -> np.ndarray:
    """8-bit RGB(A) → 1-band luma, iipsrv's formula; 1- and 2-band data is kept."""
    if pixels.shape[2] < 3:
        return pixels[:, :, :1]
    rgb = pixels[:, :, :3].astype(np.uint32)
    luma = (rgb[:, :, 0] * LUMA[0] + rgb[:, :, 1] * LUMA[1] + rgb[:, :, 2] * LUMA[2]) >> 22
    return luma.astype(np.uint8)[:, :, None]


def histogram(pixels: np.ndarray) -> np.ndarray:
    """256-bin histogram of 8-bit data with the bands averaged (iipsrv's way)."""
    mean = pixels.astype(np.uint16).sum(axis=2) // pixels.shape[2]
    return np.bincount(mean.ravel(), minlength=256)[:256]


def otsu_threshold(hist: np.ndarray) -> int:
    """The grey level that best separates the histogram into two classes."""
    hist = hist.astype(np.float64)
    total = hist.sum()
    if total <= 0:
        return 128
    levels = np.arange(256, dtype=np.float64)
    weight_low = np.cumsum(hist)
    weight_high = total - weight_low
    cum_mean = np.cumsum(hist * levels)
    mean_low = np.divide(cum_mean, weight_low, out=np.zeros(256), where=weight_low > 0)
    mean_high = np.divide(
        cum_mean[-1] - cum_mean, weight_high, out=np.zeros(256), where=weight_high > 0
    )
    between = weight_low * weight_high * (mean_low - mean_high) ** 2
    return int(np.argmax(between)) + 1


def to_binary(pixels: np.ndarray, threshold: int) -> np.ndarray:
    """Grey, then 0 below the threshold and 255 from it up."""
    grey = to_grey(pixels)
    return np.where(grey < threshold, 0, 255).astype(np.uint8)


def orient(pixels: np.ndarray, rotation: int, mirror: bool) -> np.ndarray:
    """Mirror (horizontally), then rotate clockwise by a multiple of 90°.

    ``rotation`` 180 with ``mirror`` is a vertical flip, as in iipsrv's
    ``ROT=!180``.
    """
    if mirror:
        pixels = pixels[:, ::-1]
    turns = (rotation // 90) % 4
    if turns:
        pixels = np.rot90(pixels, k=-turns, axes=(0, 1))
    return np.ascontiguousarray(pixels)


def equalize(pixels: np.ndarray, hist: np.ndarray) -> np.ndarray:
    """CNT=eq: map every band through the histogram's normalised cumulative sum.

    ``lut[i] = round(255 · (cdf[i] − cdf_min) / (total − cdf_min))`` where
    cdf_min is the count in the first non-empty bin; applied to 8-bit data
    after the float pipeline and colour conversion, as iipsrv does.
    """
    cdf = np.cumsum(hist.astype(np.float64))
    total = cdf[-1]
    filled = np.flatnonzero(hist)
    if total <= 0 or not filled.size:
        return pixels
    cdf_min = cdf[filled[0]]
    if total <= cdf_min:
        return pixels
    lut = np.rint(np.clip((cdf - cdf_min) / (total - cdf_min), 0.0, 1.0) * 255.0)
    return lut.astype(np.uint8)[pixels]


#: what fills the corners of an arbitrarily rotated image in formats without
#: transparency (JPEG): white, the colour of paper, as most IIIF servers do
ROTATION_FILL = 255
_ALPHA_FORMATS = (OutputFormat.PNG, OutputFormat.WEBP, OutputFormat.TIFF, OutputFormat.AVIF)


def rotate_arbitrary(pixels: np.ndarray, angle: float, fmt: OutputFormat) -> np.ndarray:
    """Rotate clockwise by any angle (IIIF ``rotationArbitrary``).

    The canvas grows to hold the whole rotated image (IIIF: no content is
    cut and no scaling happens).  The new corners are transparent where the
    output format has an alpha channel (PNG, WebP, TIFF: an alpha band is
    added if the image had none) and :data:`ROTATION_FILL` white for JPEG.
    Bicubic resampling.
    """
    bands = pixels.shape[2]
    transparent = fmt in _ALPHA_FORMATS
    if transparent and bands in (1, 3):
        alpha = np.full(pixels.shape[:2] + (1,), 255, dtype=np.uint8)
        pixels = np.concatenate([pixels, alpha], axis=2)
        bands += 1
    if bands > 4:
        pixels, bands = pixels[:, :, :3], 3
    # transparent corners, or opaque white ones (alpha, if any, opaque too)
    fill = (0,) * bands if transparent else (ROTATION_FILL,) * bands
    array = pixels[:, :, 0] if bands == 1 else pixels
    image = Image.fromarray(np.ascontiguousarray(array))
    rotated = image.rotate(
        -angle, resample=Image.Resampling.BICUBIC, expand=True, fillcolor=fill
    )
    out = np.asarray(rotated)
    return out[:, :, None] if out.ndim == 2 else out
