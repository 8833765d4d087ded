"""Sizes and level choice shared by every protocol and the renderer.

The rules are iipsrv 1.3's (iip-protocol.md §5.2-5.3), which fix 1.1's
off-by-one sizes (1.1 gives 99×70 where 100×70 is right).
"""

from __future__ import annotations

import math

from ..models import ImageInfo, Level

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
    # a region is at least one pixel each way (as the renderer decodes it), so
    # the aspect stays finite for any region a request can name (1e-320 wide)
    ratio = max(fw * full_w, 1.0) / max(fh * full_h, 1.0)
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


def rotated_size(width: int, height: int, degrees: float) -> tuple[int, int]:
    """An upper bound of the canvas that holds ``width``×``height`` turned by
    ``degrees`` (what :func:`iipy.render.transforms.rotate_arbitrary` sends):
    the rotated box's extent, rounded up, plus one pixel each way for the
    snapping of its corners to the pixel grid.  Quarter turns are exact."""
    if degrees % 90 == 0:
        return (height, width) if degrees % 180 else (width, height)
    radians = math.radians(degrees % 360)
    cos, sin = abs(math.cos(radians)), abs(math.sin(radians))
    return (math.ceil(width * cos + height * sin - 1e-9) + 1,
            math.ceil(width * sin + height * cos - 1e-9) + 1)


def fit_rotated(width: int, height: int, degrees: float, limit: int) -> tuple[int, int]:
    """``width``×``height``, scaled down (keeping the aspect) until the image
    turned by ``degrees`` fits in ``limit``×``limit`` (MAX_CVT bounds what is
    sent, IIIF rotation included): 5000×2812 at 45° becomes 4524×2544, whose
    turned canvas is at most 5000×5000."""
    if limit <= 0 or max(rotated_size(width, height, degrees)) <= limit:
        return width, height
    radians = math.radians(degrees % 360)
    cos, sin = abs(math.cos(radians)), abs(math.sin(radians))
    extent = max(width * cos + height * sin, width * sin + height * cos)
    scale = max(limit - 2, 1) / extent
    fitted_w, fitted_h = max(1, c_round(width * scale)), max(1, c_round(height * scale))
    while max(rotated_size(fitted_w, fitted_h, degrees)) > limit and max(fitted_w, fitted_h) > 1:
        fitted_w, fitted_h = max(1, fitted_w - 1), max(1, fitted_h - 1)
    return fitted_w, fitted_h


def scale_factor(info: ImageInfo, level: int) -> int:
    """The integer factor by which a pyramid level is reduced from full size.

    IIIF viewers size a level as ``ceil(full / factor)`` (info.json
    ``scaleFactors``), so that factor is chosen when there is one: the
    nearest power of two, else ``round(full / level)`` on the longer side (a
    20000-wide JPEG 2000's 157-wide level is ``ceil(20000 / 128)``, where
    rounding gives 127 and viewers would ask for 158).  Pyramids written with
    floor division have none (1410 → 705 → 352 → 176): the rounded ratio
    stays (1, 2, 4, 8).  :func:`level_box` divides by the same factor.
    Computed once per image (this is on the IIIF tile path, once per level).
    """
    cached = _FACTORS.get(id(info))
    if cached is None or cached[0] is not info:
        if len(_FACTORS) > 4096:
            _FACTORS.clear()
        cached = (info, tuple(_scale_factor(info, lv) for lv in info.levels))
        _FACTORS[id(info)] = cached
    return cached[1][level]


#: id(ImageInfo) -> (that ImageInfo, its levels' factors); the identity check
#: makes a reused id harmless
_FACTORS: dict[int, tuple[ImageInfo, tuple[int, ...]]] = {}


def _scale_factor(info: ImageInfo, lv: Level) -> int:
    if info.width >= info.height:
        ratio = info.width / max(1, lv.width)
    else:
        ratio = info.height / max(1, lv.height)
    rounded = max(1, int(ratio + 0.5))
    power = 1 << max(0, round(math.log2(ratio))) if ratio > 0 else 1
    for factor in (power, rounded):
        if (-(-info.width // factor), -(-info.height // factor)) == (lv.width, lv.height):
            return factor
    return rounded


def level_box(info: ImageInfo, level: int, box: tuple[float, float, float, float]) -> Box:
    """A full-resolution box (pixels, may be fractional) at a pyramid level.

    This is the one rounding rule shared by the renderer (which region of a
    level it decodes), IIIF info.json (``sizes`` are the boxes of the full
    image) and the IIIF/DeepZoom size and tile logic: each edge is divided by
    the level's :func:`scale_factor` and rounded (halves up), an edge on the
    image's right or bottom border maps to the level's border, and the box is
    kept inside the level and at least 1×1.  So a tile-aligned request lands
    exactly on the level's tile grid, and the last column and row get the
    level's real remainder (1410×793 at scale 2: ``1024,512,386,281`` → the
    193×140 corner tile of the 705×396 level, where 281 / 2 would round to
    141), even when the level's size is not exactly the full size divided by
    the factor.
    """
    lv = info.levels[level]
    s = scale_factor(info, level)
    x, y, w, h = box  # non-negative, so int(v + 0.5) rounds halves up like c_round
    left = min(max(0, int(x / s + 0.5)), lv.width - 1)
    top = min(max(0, int(y / s + 0.5)), lv.height - 1)
    right = lv.width if x + w >= info.width - 1e-9 else min(lv.width, int((x + w) / s + 0.5))
    bottom = lv.height if y + h >= info.height - 1e-9 else min(lv.height, int((y + h) / s + 0.5))
    return left, top, max(1, right - left), max(1, bottom - top)


def _pixels(info: ImageInfo, region: Fractions) -> tuple[float, float, float, float]:
    x, y, w, h = region
    return x * info.width, y * info.height, w * info.width, h * info.height


def choose_level(info: ImageInfo, region: Fractions, width: int, height: int) -> int:
    """Native index of the smallest level whose region is at least the output size."""
    return _choose(info, _pixels(info, region), width, height)


def _choose(info: ImageInfo, box: tuple[float, float, float, float], width: int,
            height: int) -> int:
    return _choose_box(info, box, width, height)[0]


def _choose_box(info: ImageInfo, box: tuple[float, float, float, float], width: int,
                height: int) -> tuple[int, Box]:
    """The level :func:`choose_level` picks, with the region's box there."""
    chosen, chosen_box = 0, level_box(info, 0, box)
    for index in range(1, len(info.levels)):
        lbox = level_box(info, index, box)
        if lbox[2] < width or lbox[3] < height:
            break
        chosen, chosen_box = index, lbox
    return chosen, chosen_box


def region_box(info: ImageInfo, level: int, region: Fractions) -> Box:
    """The region (fractions of the image) in pixels of a level (:func:`level_box`)."""
    return level_box(info, level, _pixels(info, region))


def exact_tile(
    info: ImageInfo, box: tuple[float, float, float, float], width: int, height: int
) -> tuple[int, int, int] | None:
    """(level, column, row) when a full-resolution box scaled to width×height
    is exactly one stored tile of the level the renderer would decode.

    iipsrv HEAD's rule (iip-protocol.md §6.7): the box at the chosen level
    starts on the tile grid and its size equals both the output size and
    that tile's size (the remainder for the last column and row).  Such
    requests take the tile path (tile cache, codec pass-through) whatever
    size syntax the protocol used.
    """
    level, (left, top, bw, bh) = _choose_box(info, box, width, height)
    if (bw, bh) != (width, height):
        return None
    lv = info.levels[level]
    if left % lv.tile_width or top % lv.tile_height:
        return None
    column, row = left // lv.tile_width, top // lv.tile_height
    if column >= lv.columns or row >= lv.rows or lv.tile_box(column, row)[2:] != (bw, bh):
        return None
    return level, column, row
