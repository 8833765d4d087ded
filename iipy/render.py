"""The renderer: open images (cached), and produce tiles and regions.

This is the only module that holds decoders.  Protocols hand it a View and
get bytes back.  Tiles take the cheapest route that gives the right pixels:

1. codec pass-through: a whole JPEG tile stored in the file, spliced with the
   file's tables (no decode, no encode) when nothing changes the pixels;
2. the encoded-tile cache (bytes-bounded LRU);
3. decode, reduce to 8 bits, encode, cache.
"""

from __future__ import annotations

import logging
import os
import stat
from dataclasses import dataclass

import numpy as np
from PIL import Image

from . import jpegmarkers
from .cache import LRUCache
from .decoders import Decoder, decoder_for
from .encoders import encode
from .errors import IIPyError, NotFound
from .geometry import choose_level, region_box
from .models import ImageInfo, OutputFormat, Processing, View
from .settings import Settings
from .transforms import (
    flatten_for,
    histogram,
    orient,
    otsu_threshold,
    rotate_arbitrary,
    to_8bit,
    to_binary,
    to_grey,
)

log = logging.getLogger(__name__)
_NO_PROCESSING = Processing()


@dataclass(frozen=True)
class ImageRecord:
    """An open image as the protocols see it: facts, never the decoder."""

    path: str
    info: ImageInfo
    mtime: float
    stamp: tuple[int, int, int]  # (mtime_ns, size, inode): changes when the file does


class _Entry:
    __slots__ = ("record", "decoder", "icc_app2", "histogram")

    def __init__(self, record: ImageRecord, decoder: Decoder, icc_app2: bytes) -> None:
        self.record = record
        self.decoder = decoder
        self.icc_app2 = icc_app2
        self.histogram: np.ndarray | None = None


class Renderer:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        size = settings.max_metadata_cache_size
        self._images: LRUCache[_Entry] = LRUCache(
            max_items=1 if size == 0 else size, on_evict=lambda e: e.decoder.close()
        )
        self._tiles: LRUCache[bytes] = LRUCache(max_bytes=settings.max_image_cache_bytes)

    def clear(self) -> None:
        """Empty both caches (SIGHUP)."""
        self._images.clear()
        self._tiles.clear()

    # -- images -----------------------------------------------------------

    def open(self, path: str, st: os.stat_result | None = None) -> ImageRecord:
        """Describe the image at a (resolved) path, reopening it if it changed.

        ``st`` is the file's ``stat`` when the caller already has it.
        """
        return self._entry(path, st).record

    def _entry_for(self, view: View) -> _Entry:
        """The open image a View was made against, reopened if it changed since."""
        if view.stamp:
            entry = self._images.get(view.path)
            if entry is not None and entry.record.stamp == view.stamp:
                return entry
        return self._entry(view.path)

    def _entry(self, path: str, st: os.stat_result | None = None) -> _Entry:
        if st is None:
            try:
                st = os.stat(path)
            except OSError:
                raise NotFound("image not found") from None
        if not stat.S_ISREG(st.st_mode):
            raise NotFound("image not found")
        stamp = (st.st_mtime_ns, st.st_size, st.st_ino)
        entry = self._images.get(path)
        if entry is not None and entry.record.stamp == stamp:
            return entry
        decoder = decoder_for(path)
        record = ImageRecord(path, decoder.info, st.st_mtime, stamp)
        entry = _Entry(record, decoder, self._icc_segments(decoder.info))
        self._images.put(path, entry)
        return entry

    def _icc(self, info: ImageInfo) -> bytes | None:
        icc = info.icc
        limit = self.settings.max_icc
        if not icc or not self.settings.embed_icc or limit == 0:
            return None
        if limit > 0 and len(icc) >= limit:
            return None
        return icc

    def _icc_segments(self, info: ImageInfo) -> bytes:
        icc = self._icc(info)
        return jpegmarkers.icc_app2(icc) if icc else b""

    def default_quality(self, fmt: OutputFormat) -> int:
        s = self.settings
        return {
            OutputFormat.JPEG: s.jpeg_quality,
            OutputFormat.PNG: s.png_quality,
            OutputFormat.WEBP: s.webp_quality,
            OutputFormat.TIFF: s.tiff_quality,
        }[fmt]

    # -- tiles ------------------------------------------------------------

    def tile(self, view: View) -> bytes:
        """Encoded bytes of one tile (IIP resolution and row-major index)."""
        entry = self._entry_for(view)
        info = entry.record.info
        if not 0 <= view.resolution < info.resolutions:
            raise NotFound(f"resolution {view.resolution} does not exist")
        native, level = info.level_for_resolution(view.resolution)
        if not 0 <= view.tile < level.tile_count:
            raise NotFound(f"Asked for non-existent tile: {view.tile}")
        column, row = view.tile % level.columns, view.tile // level.columns
        if (
            view.format is OutputFormat.JPEG
            and view.quality is None
            and self.settings.codec_passthrough
            and view.processing.is_identity
        ):
            raw = entry.decoder.raw_tile(native, column, row)
            if raw is not None:
                if entry.icc_app2:
                    raw = raw[:2] + entry.icc_app2 + raw[2:]
                return raw
        key = (entry.record.stamp, view.path, view.format, view.quality, view.resolution,
               view.tile, view.processing)
        cached = self._tiles.get(key)
        if cached is not None:
            return cached
        pixels = self._pixels(entry, entry.decoder.read_tile(native, column, row), view)
        data = self._encode(info, native, pixels, view)
        self._tiles.put(key, data)
        return data

    # -- regions ----------------------------------------------------------

    def region(
        self,
        view: View,
        region: tuple[float, float, float, float],
        width: int,
        height: int,
    ) -> bytes:
        """A region (fractions of the image) scaled to exactly width×height."""
        entry = self._entry_for(view)
        info = entry.record.info
        native = choose_level(info, region, width, height)
        box = region_box(info, native, region)
        pixels = to_8bit(entry.decoder.read_region(native, *box), info, view.processing)
        pixels = flatten_for(pixels, view.format)
        if (pixels.shape[1], pixels.shape[0]) != (width, height):
            pixels = _resize(pixels, width, height, self.settings.interpolation)
        pixels = self._after_resize(entry, pixels, view)
        return self._encode(info, native, pixels, view, scale=width / max(1, box[2]))

    # -- shared -----------------------------------------------------------

    def _pixels(self, entry: _Entry, pixels: np.ndarray, view: View) -> np.ndarray:
        """Decoded tile → output pixels, in iipsrv's order (§4.4)."""
        pixels = flatten_for(to_8bit(pixels, entry.record.info, view.processing), view.format)
        return self._after_resize(entry, pixels, view)

    def _after_resize(self, entry: _Entry, pixels: np.ndarray, view: View) -> np.ndarray:
        """Colour conversion, then mirror and rotation (§4.4 step 7, §5.4)."""
        processing = view.processing
        if processing.colour == "grey":
            pixels = to_grey(pixels)
        elif processing.colour == "binary":
            pixels = to_binary(pixels, otsu_threshold(self.histogram(entry)))
        if processing.rotation or processing.mirror:
            pixels = orient(pixels, processing.rotation, processing.mirror)
        if processing.angle:
            pixels = rotate_arbitrary(pixels, processing.angle, view.format)
            pixels = flatten_for(pixels, view.format)
        return pixels

    def histogram(self, entry: _Entry) -> np.ndarray:
        """Histogram of the smallest level (computed once per open image)."""
        if entry.histogram is None:
            info = entry.record.info
            smallest = len(info.levels) - 1
            pixels = entry.decoder.read_tile(smallest, 0, 0)
            entry.histogram = histogram(to_8bit(pixels, info, _NO_PROCESSING))
        return entry.histogram

    def _encode(
        self, info: ImageInfo, native: int, pixels: np.ndarray, view: View, scale: float = 1.0
    ) -> bytes:
        quality = view.quality if view.quality is not None else self.default_quality(view.format)
        dpi = None
        if info.dpi:
            factor = info.levels[native].width / info.width * scale * 0.0254
            dpi = (info.dpi[0] * factor, info.dpi[1] * factor)
        try:
            return encode(pixels, view.format, quality, self._icc(info), dpi)
        except (OSError, ValueError) as exc:
            raise IIPyError("image could not be encoded") from exc


def _resize(pixels: np.ndarray, width: int, height: int, interpolation: int) -> np.ndarray:
    """Resample with Pillow (area-aware bilinear, or nearest for INTERPOLATION=0)."""
    method = Image.Resampling.NEAREST if interpolation == 0 else Image.Resampling.BILINEAR
    bands = pixels.shape[2]
    if bands == 1:
        image = Image.fromarray(np.ascontiguousarray(pixels[:, :, 0]))
        return np.asarray(image.resize((width, height), method))[:, :, None]
    if bands in (3, 4):
        image = Image.fromarray(np.ascontiguousarray(pixels))
        return np.asarray(image.resize((width, height), method))
    out = np.empty((height, width, bands), dtype=np.uint8)
    for band in range(bands):
        image = Image.fromarray(np.ascontiguousarray(pixels[:, :, band]))
        out[:, :, band] = np.asarray(image.resize((width, height), method))
    return out
