"""DeepZoom (iip-protocol.md §7.1, clients.md §2 and §4).

``DeepZoom=<image>.dzi`` is the descriptor; ``DeepZoom=<image>_files/<L>/<x>_<y>.jpg``
a tile.  DeepZoom levels run from 0 (1×1) to ``D = ceil(log2(max(W, H)))``
(full size); level L is the image reduced by ``2^(D-L)``.  Levels the file
has are served from its own levels (their real sizes, as iipsrv does); the
levels below the file's smallest one are rendered by downscaling to the size
the DeepZoom specification gives, ``ceil(W / 2^(D-L))``.
"""

from __future__ import annotations

import math

from .. import numeric
from ..errors import BadRequest, NotFound
from ..http import Request, Response
from ..models import OutputFormat
from ..paths import url_decode
from ..render.renderer import ImageRecord
from .common import Protocol, open_image, validate
from .tilegrid import VirtualLevel, file_level_size, render_tile

XML_TYPE = "application/xml"
#: iipsrv 1.1's bytes; IIPMooViewer reads them with regexes (double quotes needed)
DESCRIPTOR = (
    '<?xml version="1.0" encoding="UTF-8"?>\r\n'
    '<Image xmlns="http://schemas.microsoft.com/deepzoom/2008"\r\n'
    'TileSize="{tile}" Overlap="0" Format="jpg"><Size Width="{width}" Height="{height}"/></Image>'
)
TILE_FORMATS = {"jpg": OutputFormat.JPEG, "jpeg": OutputFormat.JPEG, "png": OutputFormat.PNG,
                "webp": OutputFormat.WEBP}


def top_level(width: int, height: int) -> int:
    """DeepZoom's index of the full-size level: ceil(log2(max side))."""
    return max(0, math.ceil(math.log2(max(width, height, 1))))


def level_geometry(record: ImageRecord, level: int) -> VirtualLevel:
    info = record.info
    top = top_level(info.width, info.height)
    if not 0 <= level <= top:
        raise NotFound(f"DeepZoom level {level} does not exist")
    scale = 2 ** (top - level)
    size = file_level_size(info, scale)
    if size is None:  # below the file's levels: the DeepZoom size
        size = (math.ceil(info.width / scale), math.ceil(info.height / scale))
    return VirtualLevel(size[0], size[1], scale)


class DeepZoomProtocol(Protocol):
    def handle(self, request: Request, argument: str) -> Response:
        argument = argument.split("?", 1)[0]
        if argument.endswith(".dzi"):
            return self.descriptor(request, argument[: -len(".dzi")])
        image, sep, tile = argument.rpartition("_files/")
        if not sep:
            raise BadRequest("DeepZoom: expected <image>.dzi or <image>_files/<level>/<x>_<y>.jpg")
        level_text, slash, name = tile.partition("/")
        stem, dot, extension = name.rpartition(".")
        x_text, underscore, y_text = stem.partition("_")
        if not (slash and dot and underscore):
            raise BadRequest("DeepZoom: a tile is <image>_files/<level>/<x>_<y>.jpg")
        level_number = numeric.integer(level_text, "DeepZoom level")
        column, row = numeric.integer(x_text, "DeepZoom x"), numeric.integer(y_text, "DeepZoom y")
        fmt = TILE_FORMATS.get(extension.lower())
        if fmt is None:
            raise BadRequest(f"DeepZoom: unsupported tile format '{extension[:10]}'")
        record = self._open(image)
        etag = self._etag(request, record, argument)
        level = level_geometry(record, level_number)
        tile_size = record.info.levels[0].tile_width
        body = render_tile(self.renderer, record, level, tile_size, column, row, fmt)
        return Response(200, body, fmt.mime, last_modified=record.mtime, etag=etag)

    def descriptor(self, request: Request, image: str) -> Response:
        record = self._open(image)
        etag = self._etag(request, record, "dzi")
        info = record.info
        body = DESCRIPTOR.format(
            tile=info.levels[0].tile_width, width=info.width, height=info.height
        )
        return Response(200, body.encode(), XML_TYPE, last_modified=record.mtime, etag=etag)

    def _open(self, image: str) -> ImageRecord:
        return open_image(self.resolver, self.renderer, url_decode(image))

    def _etag(self, request: Request, record: ImageRecord, what: str) -> str:
        return validate(request, record, "deepzoom", what, self.fingerprint)
