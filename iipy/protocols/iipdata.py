"""IIP's data commands: the stored sample values themselves, not an image.

* ``SPECTRA=r,t,x,y``: the values at pixel (x, y) of tile t of resolution r,
  as XML (iip-protocol.md §2.23)::

      <?xml version="1.0" encoding="UTF-8"?>
      <spectra>
      \t<point>
      \t\t<wavelength>NAME</wavelength>
      \t\t<reflectance>0.486275</reflectance>
      \t</point>
      </spectra>

  one point per band of a single image (NAME the band number), per page of
  a stack (NAME the page's DocumentName, else its PageName, else its number) or per horizontal
  view of an image sequence (NAME the angle).  A page or view with several
  bands gives a point per band, each with a ``<band>`` element after the
  wavelength.  Values as iipsrv 1.3 computes them: integer samples of up to
  16 bits divided by their bit depth's maximum (255, 65535, 4095 for 12 bits,
  15 for 4; 127 and 32767 when signed), 32-bit integers and floats as
  stored; printed ``%f``.
* ``PFL=r:x1,y1-x2,y2`` (or ``r:x,y``): a profile along a line of
  resolution r, as JSON (§2.24): horizontal from x1 up to, not including,
  x2 if x2 > x1, else vertical from y1 to y2 if y2 > y1, else the one
  pixel.  ``{"profile": [v, …]}`` with the samples of every pixel in turn
  (a colour image's bands interleaved, r,g,b,r,g,b…), or, for a stack or a
  sequence, ``{"profile": {"NAME": [v, …], …}}``, one array per page or
  view.  The samples as stored (1 to 7-bit samples, which decoders stretch
  to 8 bits, are given back their own values); integers exactly, floats
  with 9 decimals (iipsrv's fixed format), a stack page's STONITS scale
  applied (printed with 9 significant digits); a value that is not finite
  is ``null``.

Where iipsrv 1.3 is wrong this is right: every band is read (1.3 reads one
sample at an index that ignores the band count and, on edge tiles, the
cropped tile width), a stack's pages after the first give their own values
(1.3 multiplies the count of values by the bands once per page and reads
past its buffer), signed and 32-bit integers are exact, names are escaped,
a point outside the image or its tile is a 400 rather than an empty or
invented answer, and PFL without FIF is error ``1 3`` (1.1 crashes).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from typing import NamedTuple
from xml.sax.saxutils import escape

import numpy as np

from ..errors import BadRequest, NotFound
from ..models import ImageInfo, Level, Probe
from ..render.record import ImageRecord
from ..render.renderer import Renderer
from .common import c_int

#: samples (points × bands × pages) one request may return: a bound on the
#: memory and size of an answer (about 10 MB of JSON)
MAX_VALUES = 1 << 20


class Series(NamedTuple):
    """The samples of one page or view, under the name the answer gives it."""

    name: str
    info: ImageInfo
    pixels: np.ndarray  # (height, width, bands) in the stored sample type


#: (name, image): the images a request reads; the name is None for a plain
#: FIF (its pages are named from the file) and the angle for a sequence's views
Source = tuple[str | None, ImageRecord]


def parse_spectra(argument: str) -> tuple[int, int, int, int]:
    """``r,t,x,y`` → (resolution, tile, x, y), none negative."""
    parts = argument.split(",", 3)
    if len(parts) < 4:
        raise BadRequest("SPECTRA needs four numbers: resolution,tile,x,y")
    values = tuple(c_int(p, "SPECTRA") for p in parts)
    if min(values) < 0:
        raise BadRequest("SPECTRA: resolution, tile and x,y must not be negative")
    return values  # type: ignore[return-value]


def parse_pfl(argument: str) -> tuple[int, int, int, int, int]:
    """``r:x1,y1-x2,y2`` or ``r:x,y`` → (resolution, x1, y1, x2, y2)."""
    head, colon, rest = argument.partition(":")
    start, dash, end = rest.partition("-")
    x1, comma, y1 = start.partition(",")
    if not colon or not comma:
        raise BadRequest("PFL needs r:x1,y1-x2,y2 or r:x,y")
    numbers = [c_int(head, "PFL"), c_int(x1, "PFL"), c_int(y1, "PFL")]
    if dash:
        x2, comma, y2 = end.partition(",")
        if not comma:
            raise BadRequest("PFL needs r:x1,y1-x2,y2 or r:x,y")
        numbers += [c_int(x2, "PFL"), c_int(y2, "PFL")]
    else:
        numbers += numbers[1:3]
    if min(numbers) < 0:
        raise BadRequest("PFL: resolution and coordinates must not be negative")
    return tuple(numbers)  # type: ignore[return-value]


def _level(info: ImageInfo, resolution: int) -> Level:
    if resolution >= info.resolutions:
        raise NotFound(f"resolution {resolution} does not exist")
    return info.level_for_resolution(resolution)[1]


def spectra_box(info: ImageInfo, argument: str) -> tuple[int, tuple[int, int, int, int]]:
    """(resolution, 1×1 box in that resolution) of a SPECTRA argument."""
    resolution, tile, x, y = parse_spectra(argument)
    level = _level(info, resolution)
    if tile >= level.tile_count:
        raise NotFound(f"Asked for non-existent tile: {tile}")
    left, top, width, height = level.tile_box(tile % level.columns, tile // level.columns)
    if x >= width or y >= height:
        raise BadRequest(f"SPECTRA: {x},{y} is outside tile {tile} ({width}x{height})")
    return resolution, (left + x, top + y, 1, 1)


def profile_box(info: ImageInfo, argument: str) -> tuple[int, tuple[int, int, int, int]]:
    """(resolution, line box in that resolution) of a PFL argument."""
    resolution, x1, y1, x2, y2 = parse_pfl(argument)
    level = _level(info, resolution)
    if x1 >= level.width or y1 >= level.height or x2 > level.width or y2 > level.height:
        raise BadRequest(f"PFL: {x1},{y1}-{x2},{y2} is outside the "
                         f"{level.width}x{level.height} resolution {resolution}")
    if x2 > x1:
        return resolution, (x1, y1, x2 - x1, 1)
    if y2 > y1:
        return resolution, (x1, y1, 1, y2 - y1)
    return resolution, (x1, y1, 1, 1)


def read_series(renderer: Renderer, sources: Iterable[Source], resolution: int,
                box: tuple[int, int, int, int], layers: int) -> list[Series]:
    """Every page of every source, named; at most MAX_VALUES samples in all."""
    out: list[Series] = []
    room = MAX_VALUES
    for name, record in sources:
        pages = renderer.samples(Probe(record.path, resolution, box, layers, room))
        for page in pages:
            if len(pages) > 1 or name is None:
                meta = page.info.metadata  # DocumentName, else PageName (as OBJ=stack)
                label = meta.get("title") or meta.get("pagename") or str(page.number)
            else:
                label = name
            out.append(Series(label, page.info, stored(page.pixels, page.info)))
            room -= page.pixels.size
    return _unique(out)


def _unique(series: list[Series]) -> list[Series]:
    """Names made unique (two pages with one DocumentName): later ones get ``#n``."""
    seen: set[str] = set()
    out = []
    for index, item in enumerate(series):
        name = item.name
        while name in seen:
            name = f"{item.name}#{index}"
            index += len(series)
        seen.add(name)
        out.append(item._replace(name=name))
    return out


def stored(pixels: np.ndarray, info: ImageInfo) -> np.ndarray:
    """The samples as the file stores them: decoders stretch samples of fewer
    than 8 bits to 0-255 (``v·255/(2^b-1)``, exact for 1, 2 and 4 bits)."""
    if pixels.dtype == np.uint8 and 0 < info.bits < 8:
        top = (1 << info.bits) - 1
        return np.rint(pixels.astype(np.float64) * top / 255).astype(np.uint8)
    return pixels


def maximum(dtype: np.dtype, bits: int) -> int:
    """What SPECTRA divides integers of at most 16 bits by: the largest value of
    the file's bit depth (4095 for 12 bits; 32767 signed 16); 0 for values as stored."""
    if dtype.kind not in "ui" or dtype.itemsize > 2:
        return 0
    width = bits if 0 < bits <= 8 * dtype.itemsize else 8 * dtype.itemsize
    return (1 << (width - 1)) - 1 if dtype.kind == "i" else (1 << width) - 1


def reflectance(value: int | float, top: int) -> float:
    """SPECTRA's value: an integer over ``top`` (in single precision, as
    iipsrv), or the value as stored when ``top`` is 0."""
    return float(np.float32(int(value) / float(top))) if top else float(value)


def spectra_xml(series: list[Series]) -> bytes:
    several = len(series) > 1
    lines = ['<?xml version="1.0" encoding="UTF-8"?>\n<spectra>\n']
    for item in series:
        values = item.pixels.reshape(-1)
        top = maximum(values.dtype, item.info.bits)
        for band, value in enumerate(values.tolist()):
            name = item.name if several else str(band)
            extra = f"\t\t<band>{band}</band>\n" if several and values.size > 1 else ""
            lines.append(f"\t<point>\n\t\t<wavelength>{escape(name)}</wavelength>\n{extra}"
                         f"\t\t<reflectance>{reflectance(value, top):f}</reflectance>"
                         "\n\t</point>\n")
    lines.append("</spectra>")
    return "".join(lines).encode("utf-8", "surrogateescape")


def scale_of(info: ImageInfo) -> float:
    """A stack page's STONITS scale (OBJ=scale), 1 when absent or unusable."""
    try:
        scale = float(info.metadata.get("scale", "1"))
    except ValueError:
        return 1.0
    return scale if math.isfinite(scale) and scale != 0 else 1.0


def values_json(pixels: np.ndarray, scale: float) -> str:
    """The samples of every pixel in turn, bands interleaved, as JSON numbers."""
    flat = pixels.reshape(-1)
    floating = flat.dtype.kind == "f"
    if not floating and scale == 1.0:
        return ",".join(map(str, flat.tolist()))
    if scale != 1.0:  # single precision, as iipsrv multiplies
        flat = flat.astype(np.float32) * np.float32(scale)
    form = "{:.9f}" if floating else "{:.9g}"
    return ",".join(form.format(v) if math.isfinite(v) else "null" for v in flat.tolist())


def profile_json(series: list[Series]) -> bytes:
    if len(series) == 1:
        item = series[0]
        return ('{\n\t"profile": [' + values_json(item.pixels, scale_of(item.info))
                + "]\n}").encode("utf-8")
    rows = [
        f"\t\t{json.dumps(item.name, ensure_ascii=False)}: ["
        + values_json(item.pixels, scale_of(item.info)) + "]"
        for item in series
    ]
    body = '{\n\t"profile": {\n' + ",\n".join(rows) + "\n\t}\n}"
    return body.encode("utf-8", "surrogateescape")


def answer(command: str, renderer: Renderer, record: ImageRecord,
           sources: Iterable[Source], argument: str, layers: int) -> tuple[bytes, str]:
    """(body, content type) of ``SPECTRA`` or ``PFL``: the argument is checked
    against ``record`` (the FIF's image), the samples read from ``sources``
    (opened one by one: a sequence's views as they come)."""
    if command == "spectra":
        resolution, box = spectra_box(record.info, argument)
        series = read_series(renderer, sources, resolution, box, layers)
        return spectra_xml(series), "application/xml"
    resolution, box = profile_box(record.info, argument)
    return profile_json(read_series(renderer, sources, resolution, box, layers)), \
        "application/json"
