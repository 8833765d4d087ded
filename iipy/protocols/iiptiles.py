"""IIP tile commands beyond JTL/PTL/WTL: TIL, JTLS, and QLT's TIFF compression.

``TTL`` (TIFF tiles) and ``ATL`` (AVIF tiles) are JTL with another format and
live in iip.py's table.  Here:

* ``TIL=r,start-end``: the JPEG tiles of the rectangle whose corners are tiles
  ``start`` and ``end`` at resolution ``r``, in one ``application/vnd.netfpx``
  body, framed as iipsrv 1.3 frames them: for each tile, column by column and
  top to bottom within a column, ``Tile,<r>,<n>,0/<length + 8>:``, the 4-byte
  IIP compression type (``02 00 00 00``: JPEG), the 4-byte FlashPix JPEG
  sub-type (``00 11 00 00``), the JPEG bytes and CRLF.  A missing ``end`` is
  ``start``; an ``end`` before ``start`` is ``start``.  A rectangle reaching
  past the image is a 404 before any byte is sent (iipsrv 1.3 sends the tiles
  it has and appends an error to the body).
* ``JTLS=x,r,t,y``: the legacy form of ``SDS=x,y&JTL=r,t``.
* ``QLT=<compression>:<quality>``: the TIFF compression for TTL and CVT=tiff
  (none, lzw, deflate, jpeg, webp, zstd), then the quality as usual.
"""

from __future__ import annotations

from ..errors import BadRequest, NotFound
from ..models import TIFF_COMPRESSIONS, Level, OutputFormat, Processing, View
from ..render.renderer import ImageRecord, Renderer
from .common import c_int

#: IIP compression type "JPEG" and FlashPix sub-type (8x8 interleave, 1:1 chroma
#: signalled, no internal colour conversion, tables in the stream)
JPEG_TYPE = b"\x02\x00\x00\x00"
JPEG_SUBTYPE = b"\x00\x11\x00\x00"
#: tiles one TIL request may ask for (a whole 20000×15000 level is 4,600): a
#: bound on the work and memory of one request, as MAX_CVT is for exports
MAX_TIL_TILES = 1024


def parse_qlt(argument: str) -> tuple[int, int]:
    """``[compression:]quality`` → (quality, compression code or -1)."""
    text = argument.strip().lower()
    name, sep, rest = text.partition(":")
    if not sep:
        return c_int(argument, "QLT"), -1
    if name not in TIFF_COMPRESSIONS:
        raise BadRequest(f"QLT: unknown compression '{name}' ({', '.join(TIFF_COMPRESSIONS)})")
    return c_int(rest, "QLT"), TIFF_COMPRESSIONS.index(name)


def til_rectangle(level: Level, start: int, end: int) -> list[int]:
    """Tile indices of the rectangle spanned by tiles ``start`` and ``end``,
    in iipsrv's order (column by column); NotFound if it leaves the level."""
    if end < start:
        end = start
    columns = level.columns
    x0, y0 = start % columns, start // columns
    x1, y1 = end % columns, end // columns
    if x1 < x0:
        x0, x1 = x1, x0
    if y1 >= level.rows:
        raise NotFound(f"Asked for non-existent tile: {end}")
    if (x1 - x0 + 1) * (y1 - y0 + 1) > MAX_TIL_TILES:
        raise BadRequest(f"TIL: at most {MAX_TIL_TILES} tiles a request")
    return [x + y * columns for x in range(x0, x1 + 1) for y in range(y0, y1 + 1)]


def parse_til(argument: str) -> tuple[int, int, int]:
    """``r,start[-end]`` → (resolution, start, end)."""
    head, sep, tail = argument.partition(",")
    if not sep:
        raise BadRequest("TIL needs a resolution and a tile range: r,start-end")
    first, dash, last = tail.partition("-")
    resolution = c_int(head, "TIL")
    start = c_int(first, "TIL")
    end = c_int(last, "TIL") if dash and last.strip() else start
    if resolution < 0 or start < 0 or end < 0:
        raise BadRequest("TIL: resolution and tiles must not be negative")
    return resolution, start, end


def til_body(renderer: Renderer, record: ImageRecord, argument: str, quality: int | None,
             layers: int) -> bytes:
    """The framed tiles of one TIL request (JPEG, no processing: as iipsrv)."""
    resolution, start, end = parse_til(argument)
    info = record.info
    if resolution >= info.resolutions:
        raise NotFound(f"resolution {resolution} does not exist")
    _, level = info.level_for_resolution(resolution)
    if start >= level.tile_count:
        raise NotFound(f"Asked for non-existent tile: {start}")
    parts = []
    for index in til_rectangle(level, start, end):
        view = View(record.path, "tile", OutputFormat.JPEG, quality, resolution, index,
                    Processing(), record.stamp, layers, page=record.page)
        data = renderer.tile(view)
        parts.append(b"Tile,%d,%d,0/%d:" % (resolution, index, len(data) + 8))
        parts += [JPEG_TYPE, JPEG_SUBTYPE, data, b"\r\n"]
    return b"".join(parts)


def parse_jtls(argument: str) -> tuple[int, int, int, int]:
    """``x,r,t,y`` → (x angle, resolution, tile, y angle)."""
    parts = argument.split(",")
    if len(parts) < 4:
        raise BadRequest("JTLS needs four numbers: xangle,resolution,tile,yangle")
    x, resolution, tile, y = (c_int(p, "JTLS") for p in parts[:4])
    return x, resolution, tile, y
