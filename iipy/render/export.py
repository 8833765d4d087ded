"""Region exports (CVT and, later, IIIF regions), assembled strip by strip.

The level is chosen first (the smallest whose region is at least the output
size, :func:`iipy.geometry.choose_level`), so the region read is less than
twice the output on each side.  It is then read, processed and resampled in
horizontal bands of about :data:`STRIP_PIXELS` source pixels: each band is
read from the decoder (which decodes only the tiles it touches), run through
the float pipeline, resampled to its output rows and written into the output
array.  Memory is therefore bounded by the output (≤ MAX_CVT²) plus one band,
never by the full-resolution image.

Bands carry extra rows where a step looks at neighbours: the resampling
filter's support and CNV's kernel.  Those rows are read from the image (or
replicated at the region's edges), so the result is the same as processing
the whole region in one piece.

Processing order per band (iip-protocol.md §5.4): float pipeline (or 8-bit
reduction) → drop bands the format cannot carry → resize → COL grey → COL
binary → CNT eq.  Mirror, rotation and the watermark follow on the whole
output (see :class:`iipy.render.Renderer`).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ..models import ImageInfo, OutputFormat, Processing
from . import resample
from .transforms import equalize, flatten_for, otsu_threshold, to_8bit, to_binary, to_grey

#: source pixels processed at once (a band of the region)
STRIP_PIXELS = 1 << 21

Reader = Callable[[int, int, int, int], np.ndarray]


@dataclass(frozen=True)
class RegionJob:
    """Everything one export needs; ``read(left, top, width, height)`` reads the level."""

    read: Reader
    info: ImageInfo
    box: tuple[int, int, int, int]  # left, top, width, height at the chosen level
    width: int  # output size (before rotation)
    height: int
    processing: Processing
    fmt: OutputFormat
    method: int = resample.BILINEAR
    hist: np.ndarray | None = None
    strip_pixels: int = STRIP_PIXELS


def render_region(job: RegionJob) -> np.ndarray:
    """The export's uint8 pixels (height, width, bands), before orientation."""
    left, top, box_w, box_h = job.box
    out_w, out_h = job.width, job.height
    resizing = (out_w, out_h) != (box_w, box_h)
    scale_y = box_h / out_h
    method = job.method
    margin = resample.margin(method, scale_y) if resizing else 0
    kernel = job.processing.convolution
    halo = math.isqrt(len(kernel)) // 2 if kernel else 0
    rows = max(1, int(job.strip_pixels / max(1, box_w) / scale_y))
    out: np.ndarray | None = None
    for j0 in range(0, out_h, rows):
        j1 = min(out_h, j0 + rows)
        if not resizing:
            s0, s1 = j0, j1
        elif method == resample.NEAREST:
            s0 = int(math.floor(j0 * scale_y))
            s1 = int(math.floor((j1 - 1) * scale_y)) + 1
        else:
            s0 = int(math.floor(j0 * scale_y)) - margin
            s1 = int(math.ceil(j1 * scale_y)) + margin
        s0, s1 = max(0, s0), min(box_h, max(s1, s0 + 1))
        r0, r1 = max(0, s0 - halo), min(box_h, s1 + halo)
        band = job.read(left, top + r0, box_w, r1 - r0)
        pixels = to_8bit(band, job.info, job.processing, job.hist)[s0 - r0 : s1 - r0]
        pixels = flatten_for(pixels, job.fmt)
        if resizing:
            pixels = resample.resize(
                pixels, out_w, j1 - j0, method, box=(0, j0 * scale_y - s0, box_w, j1 * scale_y - s0)
            )
        pixels = finish_colour(pixels, job.processing, job.hist)
        if out is None:
            out = np.empty((out_h, out_w, pixels.shape[2]), dtype=np.uint8)
        out[j0:j1] = pixels
    assert out is not None
    return out


def finish_colour(pixels: np.ndarray, processing: Processing, hist: np.ndarray | None
                  ) -> np.ndarray:
    """COL grey, COL binary, CNT eq on 8-bit pixels (§4.4 step 7, §5.4)."""
    if processing.colour == "grey":
        pixels = to_grey(pixels)
    elif processing.colour == "binary" and hist is not None:
        pixels = to_binary(pixels, otsu_threshold(hist))
    if processing.equalize and hist is not None:
        pixels = equalize(pixels, hist)
    return pixels
