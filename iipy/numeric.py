"""The one place where numbers in requests are parsed, for every protocol.

Every number a client sends (IIP's JTL, WID, HEI, QLT, SDS, LYR, RGN, MINMAX
and the processing setters; IIIF regions, sizes and rotations; DeepZoom and
Zoomify levels and tile indexes) goes through these functions, so each one is

* **bounded in length**: at most :data:`MAX_CHARS` characters of number (Python
  refuses ``int()`` of more than 4,300 digits, and a float of 400 digits is
  infinity);
* written in **ASCII** digits (``str.isdigit`` and ``\\d`` also accept ``²``
  and ``١``, some of which ``int()`` refuses);
* **finite** (no ``inf``, ``nan``, nor ``1e309``, which reads as infinity);
* **in range**: integers fit a C ``int`` (what iipsrv parses them into), and
  each caller states the range it accepts.

Anything else raises :class:`~iipy.errors.BadNumber`, a 400 in the protocol's
own error form.  Two syntaxes: whole-text numbers (``integer``, ``decimal``:
IIIF, DeepZoom, Zoomify and IIP's processing arguments) and C's ``atoi`` /
``strtod`` prefix reading, trailing text ignored, for the IIP commands
iipsrv reads that way (``leading_integer``, ``leading_decimal``).
"""

from __future__ import annotations

import math
import re

from .errors import BadNumber

#: characters of a number (sign, digits, point, exponent) accepted at most
MAX_CHARS = 32
INT_MIN, INT_MAX = -(2**31), 2**31 - 1
#: the largest magnitude of a float argument (beyond it products overflow)
FLOAT_MAX = 1e15

_INT = re.compile(r"[+-]?[0-9]+", re.ASCII)
_UNSIGNED = re.compile(r"[0-9]+", re.ASCII)
_FLOAT = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?", re.ASCII)
_PLAIN_FLOAT = re.compile(r"(?:[0-9]+\.?[0-9]*|\.[0-9]+)", re.ASCII)
#: C's isspace in the "C" locale
_C_SPACE = " \t\n\v\f\r"


def shown(text: str, limit: int = 24) -> str:
    """``text`` as an error message may quote it: short, printable ASCII only."""
    cut = text if len(text) <= limit else text[: limit - 3] + "..."
    return "".join(c if 32 <= ord(c) < 127 else "?" for c in cut)


def _checked_int(token: str, text: str, what: str, low: int, high: int) -> int:
    if len(token) > MAX_CHARS:
        raise BadNumber(f"{what}: '{shown(text)}' has too many digits")
    value = int(token)
    if not low <= value <= high:
        raise BadNumber(f"{what}: {shown(token)} is out of range ({low} to {high})")
    return value


def _checked_float(token: str, text: str, what: str, low: float, high: float) -> float:
    if len(token) > MAX_CHARS:
        raise BadNumber(f"{what}: '{shown(text)}' has too many digits")
    value = float(token)
    if not math.isfinite(value):
        raise BadNumber(f"{what}: '{shown(text)}' is not a finite number")
    if not low <= value <= high:
        raise BadNumber(f"{what}: {shown(token)} is out of range ({low:g} to {high:g})")
    return value


def integer(text: str, what: str, low: int = 0, high: int = INT_MAX, signed: bool = False) -> int:
    """The whole of ``text`` as an integer (ASCII digits, a sign only if ``signed``)."""
    if not (_INT if signed else _UNSIGNED).fullmatch(text):
        raise BadNumber(f"{what}: '{shown(text)}' is not a number")
    return _checked_int(text, text, what, low, high)


def decimal(text: str, what: str, low: float = -FLOAT_MAX, high: float = FLOAT_MAX,
            exponent: bool = True) -> float:
    """The whole of ``text`` as a finite float.

    ``exponent`` False is IIIF's grammar: unsigned digits with an optional
    point, no exponent.  Surrounding spaces are allowed only with exponent
    (IIP's processing arguments, read by ``strtod``).
    """
    token = text.strip(_C_SPACE) if exponent else text
    if not (_FLOAT if exponent else _PLAIN_FLOAT).fullmatch(token):
        raise BadNumber(f"{what}: '{shown(text)}' is not a number")
    return _checked_float(token, text, what, low, high)


def leading_integer(text: str, what: str, low: int = INT_MIN, high: int = INT_MAX) -> int:
    """C ``atoi``: leading spaces, a sign, digits; whatever follows is ignored.
    No digits at all is a 400 (``atoi`` would give 0)."""
    body = text.lstrip(_C_SPACE)
    match = _INT.match(body)
    if not match:
        raise BadNumber(f"{what}: '{shown(text)}' is not a number")
    return _checked_int(match.group(), text, what, low, high)


def leading_decimal(text: str, what: str, low: float = -FLOAT_MAX,
                    high: float = FLOAT_MAX) -> float:
    """C ``strtod`` on the start of ``text`` (trailing text ignored), finite and in range."""
    body = text.lstrip(_C_SPACE)
    match = _FLOAT.match(body)
    if not match:
        raise BadNumber(f"{what}: '{shown(text)}' is not a number")
    return _checked_float(match.group(), text, what, low, high)
