"""Pixel operations in numpy, in iipsrv's order (iip-protocol.md §4.4-4.6).

Input is a decoder's array (height, width, bands) in the source sample type;
output is uint8, ready for an encoder.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from .models import ImageInfo, OutputFormat, Processing


def needs_float_pipeline(info: ImageInfo, processing: Processing) -> bool:
    """Whether samples must be normalised to [0, 1] floats first."""
    return (
        info.bits > 8
        or info.sample_format.value == "float"
        or processing.contrast != 1.0
        or processing.gamma != 1.0
        or processing.invert
    )


def to_8bit(pixels: np.ndarray, info: ImageInfo, processing: Processing) -> np.ndarray:
    """Normalise with the image's per-band min/max, apply GAM, INV and CNT,
    and scale to 8 bits: ``out = trunc(clamp(v · 255 · CNT, 0, 255))``.

    This is iipsrv 1.1's path for every >8-bit or float image; non-finite
    samples become 0.  Plain 8-bit data with no processing passes through.
    """
    if not needs_float_pipeline(info, processing):
        return pixels if pixels.dtype == np.uint8 else pixels.astype(np.uint8)
    bands = pixels.shape[2]
    mins = np.asarray(_fit(info.min_values, bands, 0.0), dtype=np.float32)
    maxs = np.asarray(_fit(info.max_values, bands, 255.0), dtype=np.float32)
    span = np.where(maxs > mins, maxs - mins, 1.0).astype(np.float32)
    values = (pixels.astype(np.float32) - mins) / span
    if processing.gamma != 1.0:
        np.maximum(values, 0.0, out=values)
        np.power(values, np.float32(processing.gamma), out=values)
    if processing.invert:
        values = 1.0 - values
    values *= np.float32(255.0 * processing.contrast)
    values = np.nan_to_num(values, nan=0.0, posinf=0.0, neginf=0.0)
    np.clip(values, 0.0, 255.0, out=values)
    return values.astype(np.uint8)


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
    if fmt is OutputFormat.WEBP and bands == 2:
        # WebP has no grey+alpha mode
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


#: what fills the corners of an arbitrarily rotated image in formats without
#: transparency (JPEG): white, the colour of paper, as most IIIF servers do
ROTATION_FILL = 255
_ALPHA_FORMATS = (OutputFormat.PNG, OutputFormat.WEBP, OutputFormat.TIFF)


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
