"""Sizes and level choice shared by every protocol and the renderer.

The rules are iipsrv 1.3's (iip-protocol.md §5.2-5.3), which fix 1.1's
off-by-one sizes (1.1 gives 99×70 where 100×70 is right).
"""

from __future__ import annotations

import math

from .models import ImageInfo

Box = tuple[int, int, int, int]
Fractions = tuple[float, float, float, float]


def c_round(value: float) -> int:
    """C's ``round()``: halves away from zero (Python rounds halves to even)."""
    return int(math.floor(value + 0.5)) if value >= 0 else -int(math.floor(-value + 0.5))


def cvt_output_size(
    info: ImageInfo,
    region: Fractions,
    wid: int,
    hei: int,
    max_cvt: int,
    allow_upscaling: bool,
) -> tuple[int, int]:
    """Output size of an IIP CVT export (iipsrv 1.3 rules).

    WID only keeps the region's aspect, likewise HEI; both give a bounding
    box; neither gives the full image size (even for a region: the protocol's
    long-standing behaviour).  MAX_CVT then bounds the larger side, keeping
    the aspect (MAX_CVT -1: no limit).  ALLOW_UPSCALING=0 bounds the output
    by the full image size, keeping the aspect (iipsrv clamps each side on
    its own, which distorts a wide region: 2000×140 would become 1000×140
    where iipy gives 1000×70).
    """
    full_w, full_h = info.width, info.height
    _, _, fw, fh = region
    ratio = (fw * full_w) / (fh * full_h)
    if wid > 0 and hei > 0:
        if wid / ratio <= hei:
            width, height = wid, c_round(wid / ratio)
        else:
            width, height = c_round(hei * ratio), hei
    elif wid > 0:
        width, height = wid, c_round(wid / ratio)
    elif hei > 0:
        width, height = c_round(hei * ratio), hei
    else:
        width, height = full_w, full_h
    if max_cvt > 0 and (width > max_cvt or height > max_cvt):
        if width > height:
            width, height = max_cvt, c_round(max_cvt / ratio)
        elif height > width:
            width, height = c_round(max_cvt * ratio), max_cvt
        else:
            width = height = max_cvt
    if not allow_upscaling and (width > full_w or height > full_h):
        if width / full_w >= height / full_h:
            width, height = full_w, c_round(full_w / ratio)
        else:
            width, height = c_round(full_h * ratio), full_h
        width, height = min(width, full_w), min(height, full_h)
    return max(1, width), max(1, height)


def choose_level(info: ImageInfo, region: Fractions, width: int, height: int) -> int:
    """Native index of the level an export is decoded from (iipsrv 1.3, §5.3).

    For each axis, the target is ``floor(output / region fraction)`` (the
    full-image size the output corresponds to); walk down from the full
    resolution while the next level is still at least the target.  The
    larger of the two axes' levels wins, so the region at that level is at
    least the output size on both sides (less than twice it, for halving
    pyramids).  HEAD's post-1.3 rewrite, which decodes plain CVTs from the
    smallest level, is not followed.
    """
    _, _, fw, fh = region
    chosen = len(info.levels) - 1
    for out, fraction, size in ((width, fw, 0), (height, fh, 1)):
        target = max(1, math.floor(out / fraction)) if fraction > 0 else 1
        native = 0
        while native + 1 < len(info.levels):
            lv = info.levels[native + 1]
            if (lv.width, lv.height)[size] < target:
                break
            native += 1
        chosen = min(chosen, native)
    return chosen


def region_box(info: ImageInfo, level: int, region: Fractions) -> Box:
    """The region in pixels of a level: rounded, clamped inside, at least 1×1."""
    lv = info.levels[level]
    x, y, fw, fh = region
    left = min(max(0, c_round(lv.width * x)), lv.width - 1)
    top = min(max(0, c_round(lv.height * y)), lv.height - 1)
    width = max(1, min(c_round(lv.width * fw), lv.width - left))
    height = max(1, min(c_round(lv.height * fh), lv.height - top))
    return left, top, width, height
