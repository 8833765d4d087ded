"""Untiled sources: plain JPEG, PNG and strip TIFF, served as if tiled.

Such a file has one resolution and no tiles.  As iipsrv 1.3 does for JPEG,
the levels are synthesised: the full size, then halved (rounding down) until
the level fits in one 256×256 tile, each served on a 256×256 grid.

A level is decoded in *bands* (the full width, a whole number of tile rows,
at most :data:`BAND_BYTES`), and bands are kept in one cache per process
(:data:`CACHE_BYTES`, least recently used out): the tiles of a level share
one decode of the file instead of one each.  Each subclass says how to decode
rows of a level, at the cheapest scale that covers it (JPEG: libjpeg's DCT
scaling to 1/2, 1/4 or 1/8, then box-averaging beyond 1/8).

A file declaring more than MAX_SOURCE_PIXELS pixels (or a side over
:data:`MAX_SIDE`) is refused with ImageTooLarge before any pixel is decoded,
so a hostile header cannot make a worker decode or hold more than a band.
"""

from __future__ import annotations

import itertools
import logging
from abc import abstractmethod
from collections import OrderedDict

import numpy as np

from ..errors import CorruptImage, ImageTooLarge
from ..models import ImageInfo, Level
from .base import Decoder

log = logging.getLogger(__name__)

#: Tile side of synthesised levels (iipsrv 1.3's JPEG TILESIZE).
TILE = 256
#: Largest band of rows decoded at once (bytes of samples).
BAND_BYTES = 1 << 24
#: Decoded bands kept per process, all untiled images together (bytes).
CACHE_BYTES = 1 << 26
#: Longest side served (a row must fit a band of a few rows).
MAX_SIDE = 1 << 18

_tokens = itertools.count()


class _Bands:
    """A bytes-bounded LRU of decoded bands, keyed (decoder token, level, band)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.size = 0
        self.items: OrderedDict[tuple[int, int, int], np.ndarray] = OrderedDict()

    def get(self, key: tuple[int, int, int]) -> np.ndarray | None:
        value = self.items.get(key)
        if value is not None:
            self.items.move_to_end(key)
        return value

    def put(self, key: tuple[int, int, int], value: np.ndarray) -> None:
        if value.nbytes > self.limit:
            return
        old = self.items.pop(key, None)
        if old is not None:
            self.size -= old.nbytes
        self.items[key] = value
        self.size += value.nbytes
        while self.size > self.limit:
            _, dropped = self.items.popitem(last=False)
            self.size -= dropped.nbytes

    def drop(self, token: int) -> None:
        for key in [k for k in self.items if k[0] == token]:
            self.size -= self.items.pop(key).nbytes


#: The process's band cache.
bands_cache = _Bands(CACHE_BYTES)


def synthesised_levels(width: int, height: int, tile: int = TILE) -> tuple[Level, ...]:
    """Full size, then halved (rounding down, iipsrv 1.3) until one tile holds it."""
    levels = [Level(width, height, tile, tile)]
    while (width > tile or height > tile) and width > 1 and height > 1:
        width, height = width // 2, height // 2
        levels.append(Level(width, height, tile, tile))
    return tuple(levels)


def check_size(width: int, height: int, max_pixels: int, path: str) -> None:
    """Refuse (ImageTooLarge, logged) a declared size this server will not decode."""
    if width <= 0 or height <= 0:
        raise CorruptImage("image has no size")
    if width * height > max_pixels or max(width, height) > MAX_SIDE:
        log.warning("refused: %s declares %dx%d pixels (MAX_SOURCE_PIXELS=%d)",
                    path, width, height, max_pixels)
        raise ImageTooLarge(
            f"untiled image of {width}x{height} pixels is larger than this server decodes")


class FlatDecoder(Decoder):
    """An untiled image whose levels are decoded whole, band by band, and cached."""

    #: Bands decoded by all instances (the measure of "decodes per tile").
    decodes = 0

    def __init__(self, path: str, max_pixels: int = 1 << 28) -> None:
        self.path = path
        self.max_pixels = max_pixels
        self._token = next(_tokens)
        self.info = self._open()

    @classmethod
    def open(cls, path: str, max_pixels: int) -> Decoder:
        return cls(path, max_pixels)

    @abstractmethod
    def _open(self) -> ImageInfo:
        """Read the header (no pixels), check the size, return the ImageInfo."""

    @abstractmethod
    def _decode(self, level: int, top: int, rows: int) -> np.ndarray:
        """Rows top..top+rows of level ``level``, (rows, level width, bands)."""

    def band_rows(self, level: int) -> int:
        """Rows of level ``level`` a band holds: whole tile rows when they fit."""
        lv = self.info.levels[level]
        bits = self.info.bits
        per_row = lv.width * self.info.bands * (1 if bits <= 8 else 2 if bits <= 16 else bits // 8)
        rows = max(1, BAND_BYTES // max(1, per_row))
        if rows >= TILE:
            rows -= rows % TILE
        return min(rows, lv.height)

    def _band(self, level: int, index: int, rows: int) -> np.ndarray:
        key = (self._token, level, index)
        band = bands_cache.get(key)
        if band is None:
            lv = self.info.levels[level]
            top = index * rows
            band = self._decode(level, top, min(rows, lv.height - top))
            FlatDecoder.decodes += 1
            band.flags.writeable = False  # shared by every read of the band
            bands_cache.put(key, band)
        return band

    def read_region(
        self, level: int, left: int, top: int, width: int, height: int, layers: int = 0
    ) -> np.ndarray:
        rows = self.band_rows(level)
        first, last = top // rows, (top + height - 1) // rows
        if first == last:
            band = self._band(level, first, rows)
            y = top - first * rows
            return band[y:y + height, left:left + width]
        parts = []
        for index in range(first, last + 1):
            band = self._band(level, index, rows)
            y0 = max(top, index * rows) - index * rows
            y1 = min(top + height, (index + 1) * rows) - index * rows
            parts.append(band[y0:y1, left:left + width])
        return np.concatenate(parts, axis=0)

    def close(self) -> None:
        bands_cache.drop(self._token)


def block_mean(pixels: np.ndarray, factor: int) -> np.ndarray:
    """Means of factor×factor blocks (rows and columns already whole blocks)."""
    if factor == 1:
        return pixels
    h, w, bands = pixels.shape
    sums = pixels.reshape(h // factor, factor, w // factor, factor, bands).sum(
        axis=(1, 3), dtype=np.float64)
    mean = np.rint(sums / (factor * factor))
    return mean.astype(pixels.dtype)
