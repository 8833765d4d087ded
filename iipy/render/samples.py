"""Raw sample values of a small box, for IIP SPECTRA (one pixel) and PFL (a
line of pixels): what the decoder stored, in its sample type, for every
band and, in a stack, every page (``Decoder.pages`` / ``Decoder.page``).

Nothing is processed, reduced to 8 bits, cached or encoded.  A line across
a huge level is read tile by tile, so only the tiles it crosses are decoded
and the decoder's own references are dropped (``Decoder.release``) whenever
more than :data:`~iipy.render.limits.WORKING_PIXELS` have been decoded since
the last drop: memory is the answer plus libvips' operation cache, which
libvips bounds (100 MB by default), whatever the level's size.  (A row across
a 300000-pixel RGB level: 113 MB at its peak this way, 223 MB read at once,
growing with the width.)  The pixels a request would decode (whole tiles, on
every page) are bounded by MAX_SOURCE_PIXELS before anything is read, and a
stack's pages by :data:`MAX_PAGES`.
"""

from __future__ import annotations

import logging
import os
from typing import TYPE_CHECKING, NamedTuple

import numpy as np

from ..decoders import Decoder
from ..decoders.base import quality_layers
from ..errors import BadRequest, ImageTooLarge, NotFound
from ..models import ImageInfo, Level, Probe
from ..settings import Settings
from .limits import WORKING_PIXELS

if TYPE_CHECKING:  # pragma: no cover
    from .renderer import _Entry

log = logging.getLogger(__name__)

#: pages of a stack one request reads.  libvips reads every directory of the
#: file each time it opens a page, so reading all pages costs pages² directory
#: reads the first time (256 pages of a hostile file: 3.5 s; 1024: 44 s, and
#: again on every request once the pages outnumber the open-image cache)
MAX_PAGES = 256


class PageSamples(NamedTuple):
    """One page's samples: its number (0 for a single image), what its decoder
    says of it (bands, sample type, metadata such as a stack page's name) and
    the box's pixels, shape (height, width, bands)."""

    number: int
    info: ImageInfo
    pixels: np.ndarray


class SampleReads:
    """Mixed into Renderer, which opens images and a stack's pages (``_entry``)."""

    settings: Settings

    def _entry(self, path: str, st: os.stat_result | None = None,
               page: int = 0) -> _Entry:  # pragma: no cover - Renderer's
        raise NotImplementedError

    def samples(self, probe: Probe) -> list[PageSamples]:
        """The box's raw samples on every page of the image (one for a single image).

        NotFound for a resolution the image (or a page) lacks, BadRequest for a
        box outside the level or more values than ``probe.max_values``,
        ImageTooLarge past MAX_SOURCE_PIXELS: checked for the whole stack
        before anything is decoded (pages counted as page 0; a stack's pages
        share its size) and again, exactly, page by page.  Pages are opened
        one at a time through the open-image cache, where a stack's pages are
        entries of their own (closed when evicted), and read at once, so a
        page the cache evicts while later ones open is never read after."""
        first = self._entry(probe.path).decoder
        count = first.pages
        if count > MAX_PAGES:
            raise BadRequest(f"the image has {count} pages; values are read from at most "
                             f"{MAX_PAGES} pages a request")
        area = probe.box[2] * probe.box[3]
        native = _level(first.info, probe)
        self._bound(probe, count * area * first.info.bands,
                    count * tiles_pixels(first.info.levels[native], probe.box))
        budget = _Budget()
        out: list[PageSamples] = []
        values = cost = 0
        for number in range(count):
            decoder = first if number == 0 else self._entry(probe.path, page=number).decoder
            native = _level(decoder.info, probe)
            values += area * decoder.info.bands
            cost += tiles_pixels(decoder.info.levels[native], probe.box)
            self._bound(probe, values, cost)
            layers = {}
            if decoder.info.quality_layers:
                wanted = quality_layers(probe.layers, self.settings.max_layers)
                layers = {"layers": wanted} if wanted else {}
            out.append(PageSamples(number, decoder.info,
                                   read_box(decoder, native, probe.box, layers, budget)))
        return out

    def _bound(self, probe: Probe, values: int, cost: int) -> None:
        """Refuse an answer of more than ``probe.max_values`` values, or one that
        decodes more than MAX_SOURCE_PIXELS pixels (whole tiles)."""
        if values > probe.max_values:
            raise BadRequest(f"the answer would hold {values} values, more than the "
                             f"{probe.max_values} one request may")
        limit = self.settings.max_source_pixels
        if cost > limit:
            log.warning("refused: %s needs %d source pixels for one request "
                        "(MAX_SOURCE_PIXELS=%d)", probe.path, cost, limit)
            raise ImageTooLarge(f"samples need {cost} source pixels, more than this server "
                                f"decodes for one request ({limit})")


def _level(info: ImageInfo, probe: Probe) -> int:
    """The native level of the probe's resolution, the box checked against it."""
    if not 0 <= probe.resolution < info.resolutions:
        raise NotFound(f"resolution {probe.resolution} does not exist")
    native, level = info.level_for_resolution(probe.resolution)
    left, top, width, height = probe.box
    if (left < 0 or top < 0 or width < 1 or height < 1
            or left + width > level.width or top + height > level.height):
        raise BadRequest(f"{left},{top} {width}x{height} is outside the "
                         f"{level.width}x{level.height} resolution {probe.resolution}")
    return native


def tiles_pixels(level: Level, box: tuple[int, int, int, int]) -> int:
    """Pixels of the whole tiles ``box`` crosses (what decoding it costs)."""
    left, top, width, height = box
    columns = (left + width - 1) // level.tile_width - left // level.tile_width + 1
    rows = (top + height - 1) // level.tile_height - top // level.tile_height + 1
    return columns * rows * level.tile_width * level.tile_height


class _Budget:
    """Pixels decoded since the decoders' caches were last dropped."""

    def __init__(self) -> None:
        self.decoded = 0

    def spend(self, decoder: Decoder, pixels: int) -> None:
        self.decoded += pixels
        if self.decoded >= WORKING_PIXELS:
            decoder.release()
            self.decoded = 0


def read_box(decoder: Decoder, native: int, box: tuple[int, int, int, int],
             layers: dict[str, int], budget: _Budget) -> np.ndarray:
    """The box's pixels, read one tile's part at a time."""
    left, top, width, height = box
    level = decoder.info.levels[native]
    tw, th = level.tile_width, level.tile_height
    out: np.ndarray | None = None
    for y in range(top - top % th, top + height, th):
        y0, y1 = max(y, top), min(y + th, top + height)
        for x in range(left - left % tw, left + width, tw):
            x0, x1 = max(x, left), min(x + tw, left + width)
            piece = decoder.read_region(native, x0, y0, x1 - x0, y1 - y0, **layers)
            if out is None:
                out = np.empty((height, width, piece.shape[2]), piece.dtype)
            out[y0 - top:y1 - top, x0 - left:x1 - left] = piece
            budget.spend(decoder, tw * th)
    assert out is not None
    return out
