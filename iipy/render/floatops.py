"""The float pipeline's steps, in numpy (iip-protocol.md §2.12-2.22, §4.4 step 5).

Every function takes and returns float32 arrays of shape (height, width,
bands) holding samples normalised to [0, 1] (values outside that range are
allowed until the final contrast step clips them).  The renderer runs them in
iipsrv's order: normalise → SHD → CTW → GAM/log → INV → CMP → CNV → contrast.

The formulas are iipsrv's, re-derived from its documented behaviour:

* SHD treats bands 0-2 as a surface normal encoded as ``(n + 1) / 2`` and
  lights it from azimuth ``h`` (clockwise from 12 o'clock) and elevation
  ``v``; the result is ``clamp(0.5 · (light · normal), 0, 1)``, one band.
* CMP maps band 0 through a piecewise-linear ramp to RGB.
* CNV convolves each band with a square kernel, replicating edge pixels,
  and divides by the kernel's sum when that sum is positive.
* CIELAB → sRGB uses the D65 white point and the IEC 61966-2-1 matrix.
"""

from __future__ import annotations

import math

import numpy as np

from ..errors import BadRequest

F32 = np.float32


def normalise(pixels: np.ndarray, mins: np.ndarray, maxs: np.ndarray) -> np.ndarray:
    """``(v - min) / (max - min)`` per band; non-finite samples become 0."""
    span = np.where(maxs != mins, maxs - mins, 1.0).astype(F32)
    values = pixels.astype(F32, copy=True)
    values -= mins.astype(F32)
    values /= span
    if pixels.dtype.kind == "f":
        values[~np.isfinite(values)] = 0.0
    return values


def shade(values: np.ndarray, azimuth: int, elevation: int) -> np.ndarray:
    """Hill-shading of a surface-normal image (SHD=h,v) → one band."""
    if values.shape[2] < 3:
        raise BadRequest("SHD needs a 3-band surface-normal image")
    a = math.radians(azimuth)
    sy = math.cos(a)
    sx = math.sqrt(max(0.0, 1.0 - sy * sy))
    if azimuth > 180:
        sx = -sx
    sz = -math.sin(math.radians(elevation))
    norm = math.sqrt(sx * sx + sy * sy + sz * sz) or 1.0
    light = np.array([sx / norm, sy / norm, sz / norm], dtype=F32)
    normal = (values[:, :, :3] - F32(0.5)) * F32(-2.0)
    dot = normal @ light
    flat = np.all(values[:, :, :3] == 0.0, axis=2)
    dot[flat] = 0.0
    dot *= F32(0.5)
    np.clip(dot, 0.0, 1.0, out=dot)
    return dot[:, :, None]


def twist(values: np.ndarray, matrix: tuple[tuple[float, ...], ...]) -> np.ndarray:
    """Colour twist (CTW): output band k = Σ_j matrix[k][j] · input band j.

    Columns beyond the number of input bands are ignored; a short row counts
    the missing coefficients as 0.  The output has one band per row.
    """
    bands = values.shape[2]
    m = np.zeros((len(matrix), bands), dtype=F32)
    for k, row in enumerate(matrix):
        used = row[:bands]
        m[k, : len(used)] = used
    return np.ascontiguousarray(values @ m.T)


def gamma(values: np.ndarray, exponent: float) -> np.ndarray:
    """GAM=g: ``max(v, 0) ** g``."""
    np.maximum(values, 0.0, out=values)
    np.power(values, F32(exponent), out=values)
    return values


LOG_SCALE = F32(1.0 / math.log(256.0))


def logarithm(values: np.ndarray) -> np.ndarray:
    """GAM=log: ``ln(1 + 255 v) / ln(256)`` (negative input counts as 0)."""
    np.maximum(values, 0.0, out=values)
    values *= F32(255.0)
    np.log1p(values, out=values)
    values *= LOG_SCALE
    return values


def invert(values: np.ndarray) -> np.ndarray:
    """INV: ``1 - v``."""
    np.subtract(F32(1.0), values, out=values)
    return values


COLORMAPS = ("hot", "cold", "jet", "blue", "green", "red")


def colormap(values: np.ndarray, name: str) -> np.ndarray:
    """CMP: band 0 through a false-colour ramp → 3 bands (RGB).

    hot: black → red → yellow → white in thirds; cold: black → blue → cyan
    → white; jet: dark blue → blue → cyan → yellow → red → dark red in
    eighths; red/green/blue: the value in that band, 0 in the others.
    """
    v = values[:, :, 0]
    out = np.zeros(v.shape + (3,), dtype=F32)
    if name in ("red", "green", "blue"):
        out[:, :, ("red", "green", "blue").index(name)] = v
        return out
    if name in ("hot", "cold"):
        ramp = np.clip(np.stack([3 * v, 3 * v - 1, 3 * v - 2], axis=2), 0.0, 1.0)
        ramp[v <= 0.0] = 0.0
        ramp[v >= 1.0] = 1.0
        return ramp if name == "hot" else np.ascontiguousarray(ramp[:, :, ::-1])
    if name == "jet":
        r = np.clip(np.minimum(4 * v - 1.5, 4.5 - 4 * v), 0.0, 1.0)
        g = np.clip(np.minimum(4 * v - 0.5, 3.5 - 4 * v), 0.0, 1.0)
        b = np.clip(np.minimum(4 * v + 0.5, 2.5 - 4 * v), 0.0, 1.0)
        out = np.stack([r, g, b], axis=2).astype(F32)
        out[v < 0.0] = 0.0
        out[v >= 1.0] = (0.5, 0.0, 0.0)
        return out
    raise BadRequest(f"CMP: unknown colour map '{name}'")


#: CNV's named 3×3 kernels (iipsrv 1.2+), row-major
KERNELS: dict[str, tuple[float, ...]] = {
    "sobel": (-1, 0, 1, -2, 0, 2, -1, 0, 1),
    "prewitt": (1, 0, -1, 1, 0, -1, 1, 0, -1),
    "scharr": (-3, 0, 3, -10, 0, 10, -3, 0, 3),
    "laplace": (-1, -1, -1, -1, 8, -1, -1, -1, -1),
    "gaussian": (1, 2, 1, 2, 4, 2, 1, 2, 1),
    "sharpen": (0, -1, 0, -1, 5, -1, 0, -1, 0),
    "emboss": (-2, -1, 0, -1, 1, 1, 0, 1, 2),
}


def convolve(values: np.ndarray, kernel: tuple[float, ...]) -> np.ndarray:
    """CNV: 2-D convolution (correlation, as iipsrv) with edge replication."""
    side = math.isqrt(len(kernel))
    half = side // 2
    total = float(sum(kernel))
    height, width = values.shape[:2]
    padded = np.pad(values, ((half, half), (half, half), (0, 0)), mode="edge")
    out = np.zeros_like(values)
    for fy in range(side):
        for fx in range(side):
            weight = kernel[fy * side + fx]
            if weight:
                out += F32(weight) * padded[fy : fy + height, fx : fx + width]
    if total > 0:
        out /= F32(total)
    return out


def contrast_to_8bit(values: np.ndarray, contrast: float) -> np.ndarray:
    """``trunc(clamp(v · 255 · c, 0, 255))`` → uint8 (NaN → 0)."""
    values *= F32(255.0 * contrast)
    np.nan_to_num(values, copy=False, nan=0.0, posinf=255.0, neginf=0.0)
    np.clip(values, 0.0, 255.0, out=values)
    return values.astype(np.uint8)


# -- CIELAB -------------------------------------------------------------------

D65 = (95.047, 100.0, 108.8827)
XYZ_TO_SRGB = np.array(
    [
        [3.2406255, -1.537208, -0.4986286],
        [-0.9689307, 1.8757561, 0.0415175],
        [0.0557101, -0.2040211, 1.0569959],
    ],
    dtype=F32,
)


def lab_to_srgb(lab: np.ndarray) -> np.ndarray:
    """CIE L*a*b* (float: L 0-100, a/b about ±128) → sRGB floats in [0, 1].

    Bands after the third (alpha) are passed through, scaled from 0-255 to
    0-1 only if they look 8-bit.
    """
    lab = lab.astype(F32, copy=False)
    L, a, b = lab[:, :, 0], lab[:, :, 1], lab[:, :, 2]
    cby = (L + 16.0) / 116.0
    y = cby**3
    low = L < 8.0
    y = np.where(low, L / 903.3, y)
    cby = np.where(low, 7.787 * y + 16.0 / 116.0, cby)

    def inverse(t: np.ndarray) -> np.ndarray:
        return np.where(t < 0.2069, (t - 0.13793) / 7.787, t**3)

    x = inverse(a / 500.0 + cby) * (D65[0] / 100.0)
    z = inverse(cby - b / 200.0) * (D65[2] / 100.0)
    xyz = np.stack([x, y * (D65[1] / 100.0), z], axis=2).astype(F32)
    rgb = xyz @ XYZ_TO_SRGB.T
    np.maximum(rgb, 0.0, out=rgb)
    rgb = np.where(rgb <= 0.0031308, rgb * 12.92, 1.055 * np.power(rgb, 1 / 2.4) - 0.055)
    rgb = np.minimum(rgb, 1.0).astype(F32)
    if lab.shape[2] > 3:
        extra = lab[:, :, 3:]
        scale = 255.0 if float(extra.max(initial=0.0)) > 1.0 else 1.0
        rgb = np.concatenate([rgb, extra / F32(scale)], axis=2)
    return rgb
