"""Tiled pyramidal TIFF and BigTIFF.

The pyramid comes from our own directory reader (:mod:`.tiffdir`): the first
directory is the full resolution; its SubIFDs, if it has any, are the reduced
levels, otherwise the following tiled top-level directories that are smaller
than the level before them are (strip directories such as thumbnails, labels
and macro images are skipped).

Pixels are read with pyvips through one ``Region`` per level, which decodes
only the tiles a box touches.  Whole JPEG tiles can also be returned without
any decode (:meth:`TiffDecoder.raw_tile`).
"""

from __future__ import annotations

import logging
import os
from typing import Any

import numpy as np

from ..errors import CorruptImage, NotFound, UnsupportedImage
from ..jpeg import splice
from ..models import ColourSpace, Level
from .base import Decoder
from .tiffdir import (
    IFD,
    TAG_NEW_SUBFILE_TYPE,
    TAG_TILE_BYTE_COUNTS,
    TAG_TILE_HEIGHT,
    TAG_TILE_OFFSETS,
    TAG_TILE_WIDTH,
    read_structure,
    read_subifds,
)
from .tiffinfo import check_level, check_samples, describe, passthrough
from .tiffpages import find_pages
from .tiffraw import RawTiles, lab8_to_float, libvips_reads

log = logging.getLogger(__name__)

try:  # libjpeg-turbo without Pillow's or libvips' per-call overhead (optional)
    import simplejpeg as _simplejpeg
except ImportError:  # pragma: no cover - the fallback is libvips
    _simplejpeg = None

_VIPS_FORMAT = {
    "uchar": np.uint8,
    "char": np.int8,
    "ushort": np.uint16,
    "short": np.int16,
    "uint": np.uint32,
    "int": np.int32,
    "float": np.float32,
    "double": np.float64,
}


class Untiled(UnsupportedImage):
    """The first directory is stored in strips (see :mod:`.tiffflat`)."""


class _LevelSource:
    """Where one pyramid level lives in the file."""

    __slots__ = (
        "ifd", "page", "subifd", "image", "region", "dtype", "offsets", "counts", "jpeg", "raw"
    )

    def __init__(self, ifd: IFD, page: int, subifd: int) -> None:
        self.ifd = ifd
        self.page = page  # the top-level directory: libvips' page
        self.subifd = subifd  # -1: the top-level directory itself
        self.image: Any = None
        self.region: Any = None
        self.dtype: Any = None
        self.offsets = ifd.table(TAG_TILE_OFFSETS)
        self.counts = ifd.table(TAG_TILE_BYTE_COUNTS)
        self.jpeg = passthrough(ifd)
        self.raw: RawTiles | None = None  # tiles libvips cannot read (8-bit CIELAB)


class TiffDecoder(Decoder):
    name = "tiff"
    rank = 10

    @classmethod
    def can_read(cls, head: bytes) -> bool:
        return head[:4] in (b"II*\0", b"MM\0*", b"II+\0", b"MM\0+") or head[:3] == b"I I"

    _page = 0

    @classmethod
    def open(cls, path: str, max_pixels: int) -> Decoder:
        """A tiled TIFF opens here; an untiled one goes to the strip reader
        (the directory is read once for a tiled file, the common case)."""
        try:
            return cls(path)
        except Untiled:
            from .tiffflat import StripTiffDecoder

            return StripTiffDecoder(path, max_pixels)

    def __init__(self, path: str) -> None:
        self.path = path
        self._fd = os.open(path, os.O_RDONLY)
        try:
            self._open()
        except Exception:
            os.close(self._fd)
            raise

    # -- structure --------------------------------------------------------

    def _open(self) -> None:
        structure = read_structure(self._fd)
        self._structure = structure
        self._page_ifds, self._stack = find_pages(structure)
        self._load(0)

    def _load(self, page: int) -> None:
        """Levels and facts of one page (the image itself when not a stack)."""
        structure = self._structure
        index = self._page_ifds[page]
        first = structure.ifds[index]
        if not first.tiled:
            raise Untiled("image is not tiled")
        sources = [_LevelSource(first, index, -1)]
        subs = read_subifds(self._fd, structure, index)
        if subs:
            for number, ifd in enumerate(subs):
                if ifd.tiled and ifd.int(TAG_NEW_SUBFILE_TYPE) & 1:
                    sources.append(_LevelSource(ifd, index, number))
        elif not self._stack:  # a stack's page without SubIFDs has one level
            for number, ifd in enumerate(structure.ifds[1:], start=1):
                if ifd.tiled and ifd.width < sources[-1].ifd.width:
                    sources.append(_LevelSource(ifd, number, -1))
        # keep only strictly decreasing levels, in order
        kept = [sources[0]]
        for source in sources[1:]:
            last = kept[-1].ifd
            if source.ifd.width < last.width and source.ifd.height <= last.height:
                kept.append(source)
        self._levels = kept
        size = os.fstat(self._fd).st_size
        inside = 0
        for source in kept:
            check_samples(source.ifd)
            inside += check_level(source.ifd, size)
        if not inside:
            raise CorruptImage("image has no tile inside the file")
        self.info = describe(first, tuple(
            Level(s.ifd.width, s.ifd.height, s.ifd.int(TAG_TILE_WIDTH), s.ifd.int(TAG_TILE_HEIGHT))
            for s in kept
        ), stack=self._stack)
        lab8 = self.info.colour_space is ColourSpace.CIELAB and self.info.bits == 8
        for source in kept:
            if lab8 or not libvips_reads(source.ifd):
                source.raw = RawTiles(self._fd, source.ifd, structure.big_endian, lab=lab8)

    # -- stacks -----------------------------------------------------------

    @property
    def pages(self) -> int:
        return len(self._page_ifds)

    def page(self, number: int) -> Decoder:
        """Page ``number`` of a stack, with its own file handle (closing one page
        never closes another)."""
        if number == self._page:
            return self
        if not 0 <= number < len(self._page_ifds):
            raise NotFound(f"page {number} does not exist")
        decoder = TiffDecoder.__new__(TiffDecoder)
        decoder.path = self.path
        decoder._fd = os.dup(self._fd)
        decoder._structure = self._structure
        decoder._page_ifds, decoder._stack = self._page_ifds, self._stack
        decoder._page = number
        try:
            decoder._load(number)
        except Exception:
            os.close(decoder._fd)
            raise
        return decoder

    # -- pixels -----------------------------------------------------------

    def _source(self, level: int) -> _LevelSource:
        source = self._levels[level]
        if source.region is None:
            import pyvips

            try:
                # revalidate: libvips caches loads by file name, and a file
                # replaced in place must not be answered from that cache
                where = {"page": source.page}
                if source.subifd >= 0:
                    where["subifd"] = source.subifd
                image = pyvips.Image.tiffload(
                    self.path, access="random", revalidate=True, **where
                )
                # CIELAB reaches the renderer as float L*a*b* whatever the storage
                if image.get_typeof("interpretation") and image.interpretation == "labq":
                    image = image.LabQ2Lab()
                elif image.get_typeof("interpretation") and image.interpretation == "labs":
                    image = image.LabS2Lab()
                source.image = image
                source.region = pyvips.Region.new(image)
                source.dtype = np.dtype(_VIPS_FORMAT[image.format])
            except pyvips.Error as exc:
                raise CorruptImage(f"image level {level} could not be opened") from exc
            if (image.width, image.height) != (source.ifd.width, source.ifd.height):
                raise CorruptImage("image level size does not match its directory")
        return source

    def read_region(
        self, level: int, left: int, top: int, width: int, height: int, layers: int = 0
    ) -> np.ndarray:
        import pyvips

        raw = self._levels[level].raw
        if raw is not None:
            pixels = raw.region(left, top, width, height)
            return lab8_to_float(pixels) if self.info.colour_space is ColourSpace.CIELAB else pixels
        source = self._source(level)
        try:
            data = source.region.fetch(left, top, width, height)
        except pyvips.Error as exc:
            raise CorruptImage("image data could not be decoded") from exc
        bands = source.image.bands
        array = np.frombuffer(data, dtype=source.dtype)
        if array.size != width * height * bands:
            raise CorruptImage("image data could not be decoded")
        return array.reshape(height, width, bands)

    def raw_tile(self, level: int, column: int, row: int) -> bytes | None:
        lv = self.info.levels[level]
        if (column + 1) * lv.tile_width > lv.width or (row + 1) * lv.tile_height > lv.height:
            return None  # edge tile: stored padded, must be decoded and cropped
        return self._stored_jpeg(level, column, row)

    def read_tile(self, level: int, column: int, row: int, layers: int = 0) -> np.ndarray:
        """One tile; JPEG tiles are decoded straight from their stored bytes
        with libjpeg-turbo (simplejpeg) when available — about twice as fast as
        a libvips region for a single tile — and cropped at the edges."""
        source = self._levels[level]
        if _simplejpeg is not None and source.jpeg is not None and source.raw is None:
            data = self._stored_jpeg(level, column, row)
            if data is not None:
                bands = self.info.bands
                lv = self.info.levels[level]
                try:
                    # a stored JPEG may claim any size: never decode more than a tile
                    tall, wide = _simplejpeg.decode_jpeg_header(data)[:2]
                    if tall > lv.tile_height or wide > lv.tile_width:
                        raise CorruptImage("stored JPEG tile is larger than the tile")
                    array = _simplejpeg.decode_jpeg(data, colorspace="GRAY" if bands == 1
                                                    else "RGB")
                except ValueError:
                    array = None  # let libvips try (and report) it
                if array is not None:
                    _, _, width, height = self.info.levels[level].tile_box(column, row)
                    if array.shape[0] >= height and array.shape[1] >= width:
                        return array[:height, :width]
        return super().read_tile(level, column, row)

    def _stored_jpeg(self, level: int, column: int, row: int) -> bytes | None:
        """A stored JPEG tile (padded at the edges) as a stand-alone JPEG."""
        source = self._levels[level]
        if source.jpeg is None:
            return None
        lv = self.info.levels[level]
        index = row * lv.columns + column
        if index >= len(source.offsets) or index >= len(source.counts):
            return None
        count = int(source.counts[index])
        if count <= 0:
            return None
        data = os.pread(self._fd, count, int(source.offsets[index]))
        if len(data) != count:
            raise CorruptImage("tile data is truncated")
        tables, rgb = source.jpeg
        return splice.splice(tables, data, rgb=rgb)

    def release(self) -> None:
        """Forget the libvips images: each keeps a tile cache as wide as its level."""
        for source in self._levels:
            source.region = None
            source.image = None

    def close(self) -> None:
        self.release()
        try:
            os.close(self._fd)
        except OSError:
            pass

