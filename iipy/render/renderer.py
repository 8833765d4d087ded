"""The renderer: open images (cached), and produce tiles and regions.

This is the only module that holds decoders.  Protocols hand it a View and get bytes back.
Tiles take the cheapest route that gives the right pixels:

1. codec pass-through: a whole JPEG tile stored in the file, spliced with the
   file's tables (no decode, no encode) when nothing changes the pixels;
2. the encoded-tile cache (bytes-bounded LRU), then memcached (:mod:`.tilecache`);
3. decode, reduce to 8 bits, encode, cache.

With a WATERMARK, each tile draws whether it is marked; a marked tile never comes from
pass-through or the encoded-tile caches: its unmarked pixels are cached instead
(:attr:`Renderer._pixels_cache`) and the mark is added at a fresh random place for every
request.  Regions (exports) are assembled strip by strip by :mod:`iipy.export`.
"""

from __future__ import annotations

import logging
import os
import random
import stat

import numpy as np

from ..decoders import Decoder, decoder_for
from ..decoders.base import quality_layers
from ..errors import IIPyError, NotFound
from ..jpeg import markers, markjpeg
from ..models import ImageInfo, OutputFormat, Processing, View
from ..settings import Settings
from . import limits, resample
from .cache import LRUCache
from .encoders import encode, icc_still_applies
from .export import STRIP_PIXELS, RegionJob, finish_colour, render_region
from .geometry import choose_level, region_box
from .outmeta import OWN_HEADER, density_for, tile_headers
from .record import ImageRecord
from .samples import SampleReads
from .status import RendererStatus
from .tilecache import SharedTiles
from .transforms import flatten_for, histogram, orient, rotate_arbitrary, to_8bit
from .watermark import RandomSource, Spot, Watermark, load_watermark

log = logging.getLogger(__name__)
_NO_PROCESSING = Processing()
#: memory for the MCU indexes of watermarked JPEG tiles, per worker (~5,000
#: 256×256 tiles at 3 kB each)
MCU_INDEX_BYTES = 16 * 1024 * 1024


class _Entry:
    """An open image; ``headers`` and :meth:`stored`: see :mod:`.outmeta`."""

    __slots__ = ("record", "decoder", "icc_app2", "headers", "histogram")

    def __init__(self, record: ImageRecord, decoder: Decoder, icc_app2: bytes) -> None:
        self.record = record
        self.decoder = decoder
        self.icc_app2 = icc_app2
        self.headers = tile_headers(record.info, icc_app2)
        self.histogram: np.ndarray | None = None

    def stored(self, native: int, data: bytes) -> bytes:
        """A stored JPEG tile with this image's header segments added (callers
        call it only when there is an ICC profile: see :mod:`.outmeta`)."""
        if data[2:4] in OWN_HEADER:
            return data[:2] + self.icc_app2 + data[2:]
        return data[:2] + self.headers[native] + data[2:]


class Renderer(RendererStatus, SampleReads):
    def __init__(self, settings: Settings, rng: RandomSource | None = None) -> None:
        """``rng`` is the watermark's random source (default: a ``random.Random``
        seeded from ``os.urandom`` in each process, so forked workers differ)."""
        self.settings = settings
        size = settings.max_metadata_cache_size
        self._images: LRUCache[_Entry] = LRUCache(
            max_items=1 if size == 0 else size, on_evict=lambda e: e.decoder.close()
        )
        self._tiles: LRUCache[bytes] = LRUCache(max_bytes=settings.max_image_cache_bytes)
        self.watermark: Watermark | None = load_watermark(
            settings.watermark, settings.watermark_opacity, settings.watermark_probability
        )
        self._pixels_cache: LRUCache[np.ndarray] = LRUCache(
            max_bytes=settings.max_image_cache_bytes, sizeof=lambda a: a.nbytes
        )
        # per stored tile, where its MCUs start (markjpeg.McuIndex, ~3 kB a tile)
        self._mcu_index: LRUCache[bytearray] = LRUCache(
            max_bytes=MCU_INDEX_BYTES, sizeof=lambda index: len(index) + 100
        )
        self._rng = rng
        self._rng_pid = -1
        self.shared = SharedTiles.from_settings(settings)  # memcached (a no-op when unset)

    @property
    def watermarking(self) -> bool:
        """Whether image outputs may carry a watermark (so differ per request)."""
        return self.watermark is not None and self.watermark.active

    @property
    def rng(self) -> RandomSource:
        if self._rng is None or self._rng_pid not in (-2, os.getpid()):
            self._rng = random.Random(os.urandom(16))
            self._rng_pid = os.getpid()
        return self._rng

    @rng.setter
    def rng(self, source: RandomSource) -> None:
        """Inject a random source (tests seed one); kept across forks."""
        self._rng = source
        self._rng_pid = -2

    def clear(self) -> None:
        """Empty the caches (SIGHUP)."""
        self._images.clear()
        self._tiles.clear()
        self._pixels_cache.clear()
        self._mcu_index.clear()

    # -- images -----------------------------------------------------------

    def open(self, path: str, st: os.stat_result | None = None, page: int = 0) -> ImageRecord:
        """Describe the image at a (resolved) path, reopening it if it changed.

        ``st`` is the file's ``stat`` when the caller already has it; ``page``
        a stack's page (NotFound when the image has no such page).
        """
        return self._entry(path, st, page).record

    def _entry_for(self, view: View) -> _Entry:
        """The open image a View was made against, reopened if it changed since."""
        if view.stamp:
            entry = self._images.get((view.path, view.page) if view.page else view.path)
            if entry is not None and entry.record.stamp == view.stamp:
                return entry
        return self._entry(view.path, page=view.page)

    def _entry(self, path: str, st: os.stat_result | None = None, page: int = 0) -> _Entry:
        if st is None:
            try:
                st = os.stat(path)
            except OSError:
                raise NotFound("image not found") from None
        if not stat.S_ISREG(st.st_mode):
            raise NotFound("image not found")
        stamp = (st.st_mtime_ns, st.st_size, st.st_ino)
        entry = self._images.get(path)
        if entry is None or entry.record.stamp != stamp:
            decoder = decoder_for(path, self.settings.max_source_pixels)
            record = ImageRecord(path, decoder.info, st.st_mtime, stamp)
            entry = _Entry(record, decoder, self._icc_segments(decoder.info))
            self._images.put(path, entry)
        if page == 0:
            return entry
        # a stack's other pages: open images of their own (own file handle), keyed by page
        cached = self._images.get((path, page))
        if cached is not None and cached.record.stamp == stamp:
            return cached
        decoder = entry.decoder.page(page)
        record = ImageRecord(path, decoder.info, st.st_mtime, stamp, page)
        cached = _Entry(record, decoder, self._icc_segments(decoder.info))
        self._images.put((path, page), cached)
        return cached

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
        return markers.icc_app2(icc) if icc else b""

    def default_quality(self, fmt: OutputFormat) -> int:
        s = self.settings
        return {
            OutputFormat.JPEG: s.jpeg_quality,
            OutputFormat.PNG: s.png_quality,
            OutputFormat.WEBP: s.webp_quality,
            OutputFormat.TIFF: s.tiff_quality,
            OutputFormat.AVIF: s.avif_quality,
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
        mark = self.watermarking and self.watermark.draw(self.rng)  # type: ignore[union-attr]
        if mark:
            self.last_source = "marked"
            return self._marked_tile(entry, native, column, row, view)
        if (
            view.format is OutputFormat.JPEG
            and view.quality is None
            and self.settings.codec_passthrough
            and view.processing.is_identity
        ):
            raw = entry.decoder.raw_tile(native, column, row)
            if raw is not None:
                self.last_source = "passthrough"
                return entry.stored(native, raw) if entry.icc_app2 else raw
        key = (entry.record.stamp, view)  # the frozen View is the key: every field counts
        if (cached := self._tiles.get(key)) is not None:
            self.last_source = "cache"
            return cached
        self.last_source = "memcached"

        def decode() -> bytes:  # local LRU, then memcached, then this
            self.last_source = "decoded"
            pixels = entry.decoder.read_tile(native, column, row, **self._layers(info, view))
            return self._encode(info, native, self._pixels(entry, pixels, view), view)
        self._tiles.put(key, data := self.shared.through(decode, view, entry.record.stamp))
        return data

    def _marked_tile(self, entry: _Entry, native: int, column: int, row: int, view: View
                     ) -> bytes:
        """A watermarked tile: cached unmarked pixels + a fresh mark, encoded."""
        key = (entry.record.stamp, view)
        info = entry.record.info
        mark: Watermark = self.watermark  # type: ignore[assignment]
        spot = None  # the mark's place, when drawn for the stored tile
        if (
            view.format is OutputFormat.JPEG
            and view.quality is None
            and self.settings.codec_passthrough
            and view.processing.is_identity
            and markjpeg.available()
            and info.bands in (1, 3)
        ):
            data, spot = self._mark_stored_tile(entry, native, column, row, view.page)
            if data is not None:
                return data
        cached = self._pixels_cache.get(key)
        if cached is not None:
            marked = np.array(cached, copy=True)
            mark.stamp(marked, self.rng, spot=spot)
            return self._encode(info, native, marked, view)
        pixels = entry.decoder.read_tile(native, column, row, **self._layers(info, view))
        pixels = self._pixels(entry, pixels, view)
        if not pixels.flags.writeable:  # e.g. a view of libvips' buffer
            pixels = np.array(pixels, copy=True)
        # a fresh decode is ours alone: mark it in place, encode, take the mark off, cache it
        unmark = mark.stamp_undoably(pixels, self.rng, spot=spot)
        try:
            data = self._encode(info, native, pixels, view)
        finally:
            unmark()
        pixels.flags.writeable = False
        self._pixels_cache.put(key, pixels)
        return data

    def _mark_stored_tile(self, entry: _Entry, native: int, column: int, row: int, page: int
                          ) -> tuple[bytes | None, Spot | None]:
        """The stored JPEG tile with only the blocks under the mark re-coded
        (markjpeg.py), and the mark's place; (None, place) when the tile cannot
        be marked that way (the caller marks the decoded tile at that place),
        (None, None) when it is not an interior stored JPEG tile."""
        raw = entry.decoder.raw_tile(native, column, row)
        if raw is None:
            return None, None
        mark: Watermark = self.watermark  # type: ignore[assignment]
        level = entry.record.info.levels[native]
        spot = mark.place(level.tile_width, level.tile_height, self.rng)
        if spot is None:
            return None, None
        x, y, w, h = spot
        tile_key = (entry.record.stamp, page, native, column, row)
        known = self._mcu_index.get(tile_key)
        data, index = markjpeg.mark_jpeg(raw, mark.add_to, x, y, w, h, known)
        if index is not None and index is not known:  # a known one grows in place
            self._mcu_index.put(tile_key, index)
        return (entry.stored(native, data) if data is not None and entry.icc_app2 else data), spot

    # -- regions ----------------------------------------------------------

    def region(
        self,
        view: View,
        region: tuple[float, float, float, float],
        width: int,
        height: int,
    ) -> bytes:
        """A region (fractions of the image) scaled to width×height (before
        rotation: 90° and 270° swap the output's sides), with XMP."""
        entry = self._entry_for(view)
        return self.shared.through(lambda: self._region(entry, view, region, width, height),
                                   view, entry.record.stamp, region, width, height,
                                   store=not self.watermarking)

    def _region(self, entry: _Entry, view: View, region: tuple, width: int, height: int) -> bytes:
        info = entry.record.info
        native = choose_level(info, region, width, height)
        box = region_box(info, native, region)
        limits.check_source(box, self.settings.max_source_pixels, entry.record.path)
        processing = view.processing
        layers = self._layers(info, view)

        def read(left: int, top: int, w: int, h: int) -> np.ndarray:
            return entry.decoder.read_region(native, left, top, w, h, **layers)

        # box-averaged in pieces when far too big (limits.py)
        source = limits.reader(read, box, width, height, entry.decoder.release)
        job = RegionJob(
            read=source.read,
            info=info,
            box=source.box,
            strip_pixels=limits.strip_pixels(STRIP_PIXELS, info.bands),
            width=width,
            height=height,
            processing=processing,
            fmt=view.format,
            method=resample.method_for(self.settings.interpolation),
            hist=self.histogram(entry) if processing.needs_histogram else None,
        )
        pixels = render_region(job)
        if processing.rotation or processing.mirror:
            pixels = orient(pixels, processing.rotation, processing.mirror)
        if processing.angle:
            pixels = flatten_for(rotate_arbitrary(pixels, processing.angle, view.format),
                                 view.format)
        if self.watermarking:
            full = info.levels[0]
            block = 2 * max(full.tile_width, full.tile_height)
            pixels = self.watermark.apply(pixels, self.rng, block)  # type: ignore[union-attr]
        return self._encode(
            info, native, pixels, view, xmp=info.xmp,
            scale=(width / max(1, box[2]), height / max(1, box[3])),
            exif=info.exif,
        )

    # -- shared -----------------------------------------------------------

    def _layers(self, info: ImageInfo, view: View) -> dict[str, int]:
        """``layers=`` for a decoder read: LYR and MAX_LAYERS, only for formats
        with quality layers (so plug-ins without them need not accept it)."""
        if not info.quality_layers:
            return {}
        layers = quality_layers(view.layers, self.settings.max_layers)
        return {"layers": layers} if layers else {}

    def _pixels(self, entry: _Entry, pixels: np.ndarray, view: View) -> np.ndarray:
        """Decoded tile → output pixels (without watermark), in iipsrv's order (§4.4):
        float pipeline, band flattening, COL grey/binary, CNT eq, mirror, rotation."""
        processing = view.processing
        hist = self.histogram(entry) if processing.needs_histogram else None
        pixels = flatten_for(to_8bit(pixels, entry.record.info, processing, hist), view.format)
        pixels = finish_colour(pixels, processing, hist)
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
        self,
        info: ImageInfo,
        native: int,
        pixels: np.ndarray,
        view: View,
        scale: tuple[float, float] = (1.0, 1.0),
        xmp: bytes | None = None,
        exif: bytes | None = None,
    ) -> bytes:
        """Encode with the quality, resolution (scaled to what the output pixels
        cover), ICC profile (when allowed and still true of the pixels), XMP and EXIF."""
        quality = view.quality if view.quality is not None else self.default_quality(view.format)
        icc = self._icc(info)
        if icc and not icc_still_applies(icc, view.processing, pixels.shape[2]):
            icc = None
        compression = view.compression if view.compression >= 0 else self.settings.tiff_compression
        density = density_for(info, native, scale, view.processing.rotation)
        try:
            return encode(pixels, view.format, quality, icc, density, xmp, compression, exif)
        except (OSError, ValueError) as exc:
            raise IIPyError("image could not be encoded") from exc
