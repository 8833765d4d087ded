"""IIIF Image API 2.1 and 3.0 request grammar: parse, resolve, canonicalise.

``{region}/{size}/{rotation}/{quality}.{format}`` is parsed into an
:class:`ImageRequest` (syntax only: a 400 for anything malformed, before any
file is touched), then resolved against an image into a pixel region and an
output size (:func:`resolve`), and written back in the specification's
canonical form (:func:`canonical`) for the ``Link: rel="canonical"`` header.

Sizes use :func:`iipy.geometry.level_box`, the rounding rule shared with
info.json and the renderer: a ``w,`` (or ``,h``, ``pct:n``, ``!w,h``) request
whose width is that of the region at a pyramid level gets that level's
height, so every entry of info.json's ``sizes`` and every tile implied by
``tiles`` can be asked for in any size form and come back at exactly the
level's size (1410×793: ``full/705,`` is 705×396, the real level, not the
705×397 that rounding 396.5 would give).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from .. import numeric
from ..errors import BadNumber, BadRequest, NotImplementedFeature
from ..models import ImageInfo, OutputFormat
from ..paths import url_decode
from ..render.geometry import c_round, fit_rotated, level_box, scale_factor

QUALITIES = {"default": "default", "color": "color", "gray": "gray", "bitonal": "bitonal",
             "grey": "gray", "native": "default",  # grey and native (1.x): iipsrv's aliases
             # iipsrv's own, only with IIIF_EXTENSIONS=1 (checked by the protocol)
             "negative": "negative", "stretch": "stretch", "equalization": "equalization",
             "log": "log"}
EXTENSION_QUALITIES = ("negative", "stretch", "equalization", "log")
FORMATS = {"jpg": OutputFormat.JPEG, "png": OutputFormat.PNG, "webp": OutputFormat.WEBP,
           "tif": OutputFormat.TIFF, "avif": OutputFormat.AVIF}
KNOWN_UNSUPPORTED_FORMATS = ("gif", "jp2", "pdf")


@dataclass(frozen=True)
class Region:
    kind: str  # "full", "square", "pixels" or "percent"
    values: tuple[float, float, float, float] = (0.0, 0.0, 0.0, 0.0)


@dataclass(frozen=True)
class Size:
    kind: str  # "full" (v2), "max", "w", "h", "pct", "wh" or "confined" (!w,h)
    width: int = 0
    height: int = 0
    percent: float = 0.0
    upscale: bool = False  # v3 "^"


@dataclass(frozen=True)
class ImageRequest:
    region: Region
    size: Size
    degrees: float  # clockwise, 0 <= degrees < 360
    mirror: bool
    quality: str  # "default", "color", "gray", "bitonal" or an EXTENSION_QUALITIES name
    format: OutputFormat


@dataclass(frozen=True)
class Resolved:
    """An image request against an image: full-resolution pixel region and output size."""

    box: tuple[int, int, int, int]
    width: int
    height: int
    upscaled: bool


def _short(text: str) -> str:
    return numeric.shown(text, 40)


def _number(text: str, what: str, integer: bool, high: float = numeric.FLOAT_MAX) -> float:
    """IIIF's numbers: ASCII digits, a point for floats, no sign or exponent,
    bounded (:mod:`iipy.numeric`); else 400 ``invalid <what>``."""
    try:
        if integer:
            return numeric.integer(text, f"IIIF: {what}", high=int(min(high, numeric.INT_MAX)))
        return numeric.decimal(text, f"IIIF: {what}", low=0.0, high=high, exponent=False)
    except BadNumber as exc:
        if not exc.message.endswith("is not a number"):
            raise  # a number, but too long or out of range: say so
        raise BadNumber(f"IIIF: invalid {what} '{_short(text)}'") from None


# -- parsing --------------------------------------------------------------------


def split_path(argument: str) -> tuple[str, str, list[str]]:
    """(identifier as sent, kind, parameters) of an IIIF path.

    Split from the right, so identifiers may hold slashes (IIP-style paths
    such as ``images/rgb.tif``): ``kind`` is ``"info"`` for
    ``…/info.json``, ``"image"`` with the four parameter segments, or
    ``"base"`` for fewer segments (a bare identifier, or too few parameters).
    A cache-busting ``?…`` and trailing slashes are dropped.
    """
    path = argument.split("?", 1)[0].rstrip("/")
    segments = path.split("/")
    if segments[-1] == "info.json":
        return "/".join(segments[:-1]), "info", []
    if len(segments) < 5:
        return path, "base", []
    return "/".join(segments[:-4]), "image", segments[-4:]


def decode_identifier(identifier: str) -> str:
    """Percent-decoding, once (``%2F`` → ``/``, ``%253C`` → ``%3C``); ``+`` stays."""
    return url_decode(identifier, plus_is_space=False)



def parse_image_request(region: str, size: str, rotation: str, last: str,
                        version: int) -> ImageRequest:
    """The four parameter segments of an image request (already split)."""
    quality, dot, fmt = last.rpartition(".")
    if not dot:  # no format: JPEG, as iipsrv (the 2.0+ grammar asks for one)
        quality, fmt = last, "jpg"
    return ImageRequest(
        parse_region(region),
        parse_size(size, version),
        *parse_rotation(rotation),
        parse_quality(quality),
        parse_format(fmt),
    )


def parse_region(text: str) -> Region:
    if text in ("full", "square"):
        return Region(text)
    percent = text.startswith("pct:")
    parts = (text[4:] if percent else text).split(",")
    if len(parts) != 4:
        raise BadRequest(f"IIIF: invalid region '{_short(text)}'")
    values = tuple(_number(p, "region", integer=not percent) for p in parts)
    if values[2] <= 0 or values[3] <= 0:
        raise BadRequest(f"IIIF: region '{_short(text)}' has no width or height")
    return Region("percent" if percent else "pixels", values)  # type: ignore[arg-type]


def parse_size(text: str, version: int) -> Size:
    upscale = text.startswith("^")
    if upscale:
        if version < 3:
            raise BadRequest("IIIF: '^' sizes are IIIF 3.0 syntax")
        text = text[1:]
    if text == "max":
        return Size("max", upscale=upscale)
    if text == "full":
        if version >= 3:
            raise BadRequest("IIIF: size 'full' is not IIIF 3.0 syntax (use 'max')")
        return Size("full")
    if text.startswith("pct:"):
        percent = _number(text[4:], "size", integer=False)
        if percent <= 0:
            raise BadRequest("IIIF: size percentage must be above 0")
        if version >= 3 and percent > 100 and not upscale:
            raise BadRequest("IIIF: upscaling should be prefixed with ^")
        return Size("pct", percent=percent, upscale=upscale)
    confined = text.startswith("!")
    body = text[1:] if confined else text
    width_text, comma, height_text = body.partition(",")
    if not comma or (confined and not (width_text and height_text)) or body == ",":
        raise BadRequest(f"IIIF: invalid size '{_short(text)}'")
    width = int(_number(width_text, "size", True)) if width_text else 0
    height = int(_number(height_text, "size", True)) if height_text else 0
    if (width_text and width == 0) or (height_text and height == 0):
        raise BadRequest("IIIF: size must be at least 1 pixel")
    if confined:
        kind = "confined"
    elif width_text and height_text:
        kind = "wh"
    else:
        kind = "w" if width_text else "h"
    return Size(kind, width, height, upscale=upscale)


def parse_rotation(text: str) -> tuple[float, bool]:
    mirror = text.startswith("!")
    degrees = _number(text[1:] if mirror else text, "rotation", integer=False, high=1e9)
    if degrees > 360:
        raise BadRequest("IIIF: rotation must be between 0 and 360 degrees")
    return degrees % 360, mirror


def parse_quality(text: str) -> str:
    quality = QUALITIES.get(text)
    if quality is None:
        raise BadRequest(f"IIIF: unsupported quality '{_short(text)}'")
    return quality


def parse_format(text: str) -> OutputFormat:
    fmt = FORMATS.get(text)
    if fmt is None:
        if text in KNOWN_UNSUPPORTED_FORMATS:
            raise BadRequest(f"IIIF: format '{text}' is not supported (jpg, png, webp, tif, avif)")
        raise BadRequest(f"IIIF: unknown format '{_short(text)}'")
    return fmt


# -- resolving against an image -------------------------------------------------


def region_pixels(region: Region, width: int, height: int) -> tuple[int, int, int, int]:
    """The region in full-resolution pixels, cropped at the image's edges."""
    if region.kind == "full":
        return 0, 0, width, height
    if region.kind == "square":
        side = min(width, height)
        return (width - side) // 2, (height - side) // 2, side, side
    x, y, w, h = region.values
    if region.kind == "percent":
        left, top = c_round(width * x / 100), c_round(height * y / 100)
        right, bottom = c_round(width * (x + w) / 100), c_round(height * (y + h) / 100)
    else:
        left, top, right, bottom = int(x), int(y), int(x + w), int(y + h)
    if left >= width or top >= height:
        raise BadRequest("IIIF: region is outside the image")
    right, bottom = min(right, width), min(bottom, height)
    return left, top, max(1, right - left), max(1, bottom - top)


def _along(info: ImageInfo, box: tuple[int, int, int, int], axis: int, value: int) -> int:
    """The other side for one given side: a pyramid level's size where the
    given side is the region's side at that level, else the rounded aspect."""
    for level in range(len(info.levels)):
        lbox = level_box(info, level, box)
        if lbox[2 + axis] == value:
            return lbox[3 - axis]
    _, _, rw, rh = box
    return max(1, c_round(value * rh / rw) if axis == 0 else c_round(value * rw / rh))


def _scaled(info: ImageInfo, box: tuple[int, int, int, int], scale: float) -> tuple[int, int]:
    """The region scaled by ``scale`` (≤ 1 at a pyramid level: the level's box)."""
    _, _, rw, rh = box
    for level in range(len(info.levels)):
        if math.isclose(1 / scale, scale_factor(info, level), rel_tol=1e-9):
            _, _, lw, lh = level_box(info, level, box)
            return lw, lh
    return max(1, c_round(rw * scale)), max(1, c_round(rh * scale))


def resolve(request: ImageRequest, info: ImageInfo, version: int, max_size: int,
            allow_upscaling: bool) -> Resolved:
    """Region in pixels and output size, with each version's upscaling rules.

    v3: a size above the region needs ``^`` (else 400); v2 upscales freely.
    With ALLOW_UPSCALING=0 an upscaling request is valid but not served
    (501).  ``max``/``full`` are bounded by ``max_size`` (MAX_CVT, keeping
    the aspect); an explicit size above it is a 400.  An arbitrary rotation
    then scales the size down until the turned canvas fits MAX_CVT too
    (:func:`iipy.render.geometry.fit_rotated`).  ``^max`` is the region
    at full size, as ``max`` (what iipsrv and the official validator do).
    """
    box = region_pixels(request.region, info.width, info.height)
    _, _, rw, rh = box
    size = request.size
    if size.kind in ("full", "max"):
        width, height = rw, rh
        if max_size > 0 and (rw > max_size or rh > max_size):
            scale = max_size / max(rw, rh)
            width, height = min(max_size, c_round(rw * scale)), min(max_size, c_round(rh * scale))
        width, height = fit_rotated(max(1, width), max(1, height), request.degrees, max_size)
        return Resolved(box, width, height, False)
    if size.kind == "w":
        width, height = size.width, _along(info, box, 0, size.width)
    elif size.kind == "h":
        width, height = _along(info, box, 1, size.height), size.height
    elif size.kind == "pct":
        width, height = _scaled(info, box, size.percent / 100)
    elif size.kind == "wh":
        width, height = size.width, size.height
    else:  # confined: the largest size with the region's aspect inside w×h
        if size.width * rh <= size.height * rw:
            width, height = size.width, min(size.height, _along(info, box, 0, size.width))
        else:
            width, height = min(size.width, _along(info, box, 1, size.height)), size.height
    upscaled = width > rw or height > rh
    if upscaled:
        if version >= 3 and not size.upscale:
            raise BadRequest("IIIF: upscaling should be prefixed with ^")
        if not allow_upscaling:
            raise NotImplementedFeature("IIIF: upscaling is not enabled on this server")
    if max_size > 0 and (width > max_size or height > max_size):
        raise BadRequest(f"IIIF: size above the server's limit of {max_size} pixels")
    # MAX_CVT bounds what is sent: an arbitrary rotation's larger canvas too
    width, height = fit_rotated(width, height, request.degrees, max_size)
    return Resolved(box, width, height, upscaled)


# -- canonical form ---------------------------------------------------------------


def _number_text(value: float) -> str:
    """An integer if possible, else the shortest decimal without trailing zeros."""
    if value == int(value):
        return str(int(value))
    return f"{value:.6f}".rstrip("0").rstrip(".")


def canonical(request: ImageRequest, resolved: Resolved, info: ImageInfo, version: int) -> str:
    """``region/size/rotation/quality.format`` in the version's canonical form."""
    x, y, w, h = resolved.box
    region = "full" if resolved.box == (0, 0, info.width, info.height) else f"{x},{y},{w},{h}"
    ow, oh = resolved.width, resolved.height
    if version >= 3:
        if (ow, oh) == (w, h) or request.size.kind == "max":
            size = "max"
        else:
            size = ("^" if resolved.upscaled else "") + f"{ow},{oh}"
    elif (ow, oh) == (w, h):
        size = "full"
    elif _along(info, resolved.box, 0, ow) == oh:
        size = f"{ow},"
    else:
        size = f"{ow},{oh}"
    rotation = ("!" if request.mirror else "") + _number_text(request.degrees)
    return f"{region}/{size}/{rotation}/{request.quality}.{request.format.extension}"
