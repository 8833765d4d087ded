"""What an output says about itself besides its pixels: resolution, and the
segments added to stored tiles.

Resolution (:func:`density_for`) is scaled to what the output's pixels
cover, so an export keeps the physical size of the part of the image it
shows: a quarter-size export of a 300 dpi image says 75 dpi.

Stored JPEG tiles sent as they are (pass-through) of an image with an ICC
profile get the profile and, riding in the same concatenation, a JFIF APP0
with their level's density, as a tile encoded here has (:func:`tile_headers`:
the marker bytes made once per open image and level).  Without a profile a
stored tile goes out untouched, as iipsrv 1.3 sends it: adding only the
density would cost a copy of every tile (about 1.3 µs for 20 kB).
"""

from __future__ import annotations

from ..jpeg import markers
from ..models import ImageInfo
from .encoders import Density

#: a stored tile starting with one of these segments gets no JFIF APP0: it
#: has one, or has an Adobe APP14 (RGB components, which JFIF would declare YCbCr)
OWN_HEADER = (b"\xff\xe0", b"\xff\xee")


def tile_headers(info: ImageInfo, icc_app2: bytes) -> tuple[bytes, ...]:
    """Per native level, the segments to add after a stored tile's SOI: a
    JFIF APP0 with the level's density (when the image has one), then the
    ICC profile's APP2 segments."""
    return tuple(
        markers.jfif_app0(*density.jfif()) + icc_app2
        if (density := density_for(info, native, (1.0, 1.0))) else icc_app2
        for native in range(info.resolutions)
    )


def density_for(info: ImageInfo, native: int, scale: tuple[float, float], rotation: int = 0
             ) -> Density | None:
    """The output's density: the source's, times the output's pixels per
    source pixel on each axis (level ``native``, then ``scale``), so the
    output keeps the physical size of what it shows; x and y swap with a
    quarter turn."""
    if not info.dpi or info.resolution_unit not in ("in", "cm"):
        return None  # none, or a ratio without a unit (TIFF ResolutionUnit 1): no size to keep
    level = info.levels[native]
    x = info.dpi[0] * level.width / info.width * scale[0]
    y = info.dpi[1] * level.height / info.height * scale[1]
    if rotation in (90, 270):
        x, y = y, x
    return Density(x, y, info.resolution_unit)
