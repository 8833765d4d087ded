"""IIP processing setters: CNT, GAM, INV, CMP, CTW, COL, MINMAX, SHD, CNV, ROT.

Each setter turns its argument into a new :class:`~iipy.models.Processing`
(iip-protocol.md §2.12-2.22).  Where iipsrv silently ignores a malformed
argument (an unknown colour map, ROT=45, a kernel that is not square), iipy
answers 400 with a message that says what is accepted: a client asking for
something it will not get should be told.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import replace

from .. import numeric
from ..errors import BadRequest
from ..models import Processing
from ..paths import url_decode
from ..render.floatops import COLORMAPS, KERNELS

MAX_TWIST = 16  # rows and columns of a CTW matrix
MAX_KERNEL = 25  # CNV values (5×5), as iipsrv


def number(text: str, what: str) -> float:
    """A whole float (no trailing garbage), finite and bounded, or 400 naming the command."""
    return numeric.decimal(text, what)


def contrast(p: Processing, arg: str) -> Processing:
    """CNT=c (multiplier), eq|equalization, st|stretch."""
    word = arg.strip().lower()
    if word in ("eq", "equalization"):
        return replace(p, equalize=True)
    if word in ("st", "stretch"):
        return replace(p, stretch=True, contrast=1.0)
    return replace(p, contrast=number(arg, "CNT"), stretch=False)


def gamma(p: Processing, arg: str) -> Processing:
    """GAM=g (exponent) or log|logarithm."""
    if arg.strip().lower() in ("log", "logarithm"):
        return replace(p, log=True, gamma=1.0)
    return replace(p, gamma=number(arg, "GAM"), log=False)


def invert(p: Processing, arg: str) -> Processing:
    return replace(p, invert=True)


def colour_map(p: Processing, arg: str) -> Processing:
    name = arg.strip().lower()
    if name not in COLORMAPS:
        raise BadRequest(f"CMP: unknown colour map '{arg}' (one of {', '.join(COLORMAPS)})")
    return replace(p, colormap=name)


def _bracketed(arg: str) -> str:
    text = url_decode(arg).strip()
    if text.startswith("["):
        text = text[1:]
    if text.endswith("]"):
        text = text[:-1]
    return text.strip()


def twist(p: Processing, arg: str) -> Processing:
    """CTW=[a,b,c;d,e,f;…] (URL-decoded): rows are output bands."""
    text = _bracketed(arg)
    rows = text.split(";")
    if not text or len(rows) > MAX_TWIST:
        raise BadRequest(f"CTW needs 1 to {MAX_TWIST} rows like [a,b,c;d,e,f]")
    matrix = []
    for row in rows:
        values = tuple(number(v, "CTW") for v in row.split(","))
        if len(values) > MAX_TWIST:
            raise BadRequest(f"CTW rows have at most {MAX_TWIST} values")
        matrix.append(values)
    return replace(p, twist=tuple(matrix))


def colour(p: Processing, arg: str) -> Processing:
    """COL=grey|gray|binary."""
    word = arg.strip().lower()
    if word in ("grey", "gray"):
        return replace(p, colour="grey")
    if word == "binary":
        return replace(p, colour="binary")
    raise BadRequest(f"COL: '{arg}' is not grey, gray or binary")


def minmax(p: Processing, arg: str) -> Processing:
    """MINMAX=band:min,max — band 0-based (iipsrv 1.2+), ``-`` for all bands.

    Overrides the range used to normalise samples for this request only, and
    forces the float pipeline.  A band the image does not have is ignored.
    """
    band_text, sep, range_text = arg.partition(":")
    low_text, comma, high_text = range_text.partition(",")
    if not sep or not comma:
        raise BadRequest("MINMAX needs band:min,max (band 0-based, or - for all)")
    band_text = band_text.strip()
    if band_text == "-":
        band = -1
    else:
        band = numeric.integer(band_text, "MINMAX band")
    low, high = number(low_text, "MINMAX"), number(high_text, "MINMAX")
    return replace(p, minmax=(*p.minmax, (band, low, high)))


def shade(p: Processing, arg: str) -> Processing:
    """SHD=h,v: light azimuth (clockwise from 12 o'clock) and elevation, degrees."""
    parts = arg.split(",")
    if len(parts) != 2:
        raise BadRequest("SHD needs two angles: azimuth,elevation")
    h, v = (number(part, "SHD") for part in parts)
    return replace(p, shade=(int(h), int(v)))


def convolution(p: Processing, arg: str) -> Processing:
    """CNV=name (sobel, prewitt, scharr, laplace, gaussian, sharpen, emboss) or
    [k1,…,kn] with n = 9 or 25 (a square kernel with an odd side)."""
    text = _bracketed(arg)
    kernel = KERNELS.get(text.lower())
    if kernel is None:
        values = tuple(number(v, "CNV") for v in text.split(","))
        side = math.isqrt(len(values))
        if len(values) > MAX_KERNEL or side * side != len(values) or side % 2 == 0:
            raise BadRequest(
                "CNV needs a kernel name or a square kernel with an odd side (3×3 or 5×5)"
            )
        kernel = values
    return replace(p, convolution=kernel)


def rotation(p: Processing, arg: str) -> Processing:
    """ROT=[!]deg: multiples of 90°; ``!`` mirrors horizontally (``!180``: vertical flip)."""
    text = arg.strip()
    mirror = text.startswith("!")
    value = number(text[1:] if mirror else text, "ROT")
    if value % 90 != 0:
        raise BadRequest("ROT: only 0, 90, 180 and 270 degrees (optionally with ! to mirror)")
    return replace(p, rotation=int(value) % 360, mirror=mirror)


SETTERS: dict[str, Callable[[Processing, str], Processing]] = {
    "cnt": contrast,
    "gam": gamma,
    "inv": invert,
    "cmp": colour_map,
    "ctw": twist,
    "col": colour,
    "minmax": minmax,
    "shd": shade,
    "cnv": convolution,
    "rot": rotation,
}
