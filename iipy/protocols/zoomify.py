"""Zoomify (iip-protocol.md §7.2, clients.md §2 and §5).

``Zoomify=<image>/ImageProperties.xml`` describes the image;
``Zoomify=<image>/TileGroup<g>/<z>-<x>-<y>.jpg`` is a tile, whatever the group
number (viewers compute it differently; iipsrv ignores it too).  Zoomify's
levels are the image halved (rounding down) until it fits in one tile; level
0 is that smallest one.  Levels the file lacks are rendered by downscaling.
"""

from __future__ import annotations

import math
import re

from .. import numeric
from ..errors import BadRequest, NotFound
from ..http import Request, Response
from ..models import ImageInfo, OutputFormat
from ..paths import url_decode
from ..render.renderer import ImageRecord
from .common import Protocol, open_image, validate
from .tilegrid import VirtualLevel, file_level_size, render_tile

XML_TYPE = "application/xml"
#: attribute order and double quotes are what IIPMooViewer's split('"') parser needs
PROPERTIES = (
    '<IMAGE_PROPERTIES WIDTH="{width}" HEIGHT="{height}" NUMTILES="{tiles}" NUMIMAGES="1" '
    'VERSION="1.8" TILESIZE="{tile}" />'
)
_TILE = re.compile(r"TileGroup[0-9]+/([^-/]+)-([^-/]+)-([^-/.]+)\.(\w+)\Z", re.ASCII)
TILE_FORMATS = {"jpg": OutputFormat.JPEG, "jpeg": OutputFormat.JPEG, "png": OutputFormat.PNG,
                "webp": OutputFormat.WEBP}


def zoomify_levels(info: ImageInfo, tile_size: int) -> list[VirtualLevel]:
    """Zoomify's levels, smallest (one tile) first: halvings of the full size."""
    levels = []
    width, height, scale = info.width, info.height, 1
    while True:
        size = file_level_size(info, scale) or (width, height)
        levels.append(VirtualLevel(size[0], size[1], scale))
        if max(width, height) <= tile_size:
            break
        width, height, scale = max(1, width // 2), max(1, height // 2), scale * 2
    return levels[::-1]


def tile_count(levels: list[VirtualLevel], tile_size: int) -> int:
    """NUMTILES: every tile of every level (iipsrv 1.2+; 1.1 counted one level)."""
    return sum(math.ceil(lv.width / tile_size) * math.ceil(lv.height / tile_size)
               for lv in levels)


class ZoomifyProtocol(Protocol):
    def handle(self, request: Request, argument: str) -> Response:
        argument = argument.split("?", 1)[0]
        image, _, last = argument.rpartition("/")
        if last == "ImageProperties.xml":
            return self.properties(request, image)
        image, sep, tile = argument.rpartition("/TileGroup")
        match = _TILE.match("TileGroup" + tile) if sep else None
        if match is None:
            raise BadRequest(
                "Zoomify: expected <image>/ImageProperties.xml"
                " or <image>/TileGroup<n>/<z>-<x>-<y>.jpg"
            )
        fmt = TILE_FORMATS.get(match.group(4).lower())
        if fmt is None:
            raise BadRequest(f"Zoomify: unsupported tile format '{match.group(4)[:10]}'")
        z, x, y = (numeric.integer(match.group(i), f"Zoomify {what}")
                   for i, what in ((1, "level"), (2, "x"), (3, "y")))
        record = self._open(image)
        etag = self._etag(request, record, argument.rpartition("/")[2])
        tile_size = record.info.levels[0].tile_width
        levels = zoomify_levels(record.info, tile_size)
        if z >= len(levels):
            raise NotFound(f"Zoomify level {z} does not exist")
        body = render_tile(self.renderer, record, levels[z], tile_size, x, y, fmt)
        return Response(200, body, fmt.mime, last_modified=record.mtime, etag=etag)

    def properties(self, request: Request, image: str) -> Response:
        record = self._open(image)
        etag = self._etag(request, record, "ImageProperties.xml")
        info = record.info
        tile_size = info.levels[0].tile_width
        body = PROPERTIES.format(
            width=info.width,
            height=info.height,
            tiles=tile_count(zoomify_levels(info, tile_size), tile_size),
            tile=tile_size,
        )
        return Response(200, body.encode(), XML_TYPE, last_modified=record.mtime, etag=etag)

    def _open(self, image: str) -> ImageRecord:
        return open_image(self.resolver, self.renderer, url_decode(image))

    def _etag(self, request: Request, record: ImageRecord, what: str) -> str:
        return validate(request, record, "zoomify", what, self.fingerprint)
