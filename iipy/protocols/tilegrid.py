"""What DeepZoom and Zoomify share: tiles of "virtual" levels.

Both protocols describe a pyramid of their own (DeepZoom: sizes ``ceil(W/2^k)``
down to 1×1; Zoomify: floor-halvings down to one tile) with square tiles of
one size.  A tile of such a level is a box of the full image scaled by
``2^k``; when that is exactly a stored tile it takes the tile path (tile
cache, pass-through), otherwise the region path renders it at the right size
(levels below the file's smallest one, or files whose tiles differ from the
advertised tile size).  iipsrv instead serves the smallest level's tiles for
levels below it, at the wrong size.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import NotFound
from ..models import ImageInfo, OutputFormat, View
from ..render.geometry import exact_tile, scale_factor
from ..render.renderer import ImageRecord, Renderer


@dataclass(frozen=True)
class VirtualLevel:
    width: int
    height: int
    scale: int  # full size / this level, a power of two


def file_level_size(info: ImageInfo, scale: int) -> tuple[int, int] | None:
    """Size of the file's level reduced by exactly ``scale``, if there is one."""
    for level, lv in enumerate(info.levels):
        if scale_factor(info, level) == scale:
            return lv.width, lv.height
    return None


def render_tile(renderer: Renderer, record: ImageRecord, level: VirtualLevel, tile_size: int,
                column: int, row: int, fmt: OutputFormat) -> bytes:
    """One ``tile_size`` square tile (cropped at the level's edge) of a virtual level."""
    left, top = column * tile_size, row * tile_size
    if column < 0 or row < 0 or left >= level.width or top >= level.height:
        raise NotFound(f"tile {column},{row} does not exist at this level")
    width = min(tile_size, level.width - left)
    height = min(tile_size, level.height - top)
    info = record.info
    s = level.scale
    x0, y0 = left * s, top * s
    x1 = info.width if left + width >= level.width else min(info.width, (left + width) * s)
    y1 = info.height if top + height >= level.height else min(info.height, (top + height) * s)
    box = (x0, y0, x1 - x0, y1 - y0)
    view = View(record.path, "region", fmt, stamp=record.stamp)
    tile = exact_tile(info, box, width, height)
    if tile is not None:
        native, tile_column, tile_row = tile
        index = tile_row * info.levels[native].columns + tile_column
        resolution = info.resolutions - 1 - native
        return renderer.tile(View(record.path, "tile", fmt, resolution=resolution, tile=index,
                                  stamp=record.stamp))
    fractions = (x0 / info.width, y0 / info.height, box[2] / info.width, box[3] / info.height)
    return renderer.region(view, fractions, width, height)
