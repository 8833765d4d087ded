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
from ..models import ColourSpace, ImageInfo, Level, SampleFormat
from .base import Decoder
from .tiffdir import (
    IFD,
    TAG_ARTIST,
    TAG_BITS,
    TAG_COPYRIGHT,
    TAG_DATETIME,
    TAG_DESCRIPTION,
    TAG_DOCUMENT_NAME,
    TAG_ICC,
    TAG_MAKE,
    TAG_MODEL,
    TAG_NEW_SUBFILE_TYPE,
    TAG_PAGE_NAME,
    TAG_PHOTOMETRIC,
    TAG_RES_UNIT,
    TAG_SAMPLE_FORMAT,
    TAG_SAMPLES,
    TAG_SMAX,
    TAG_SMIN,
    TAG_SOFTWARE,
    TAG_STONITS,
    TAG_TILE_BYTE_COUNTS,
    TAG_TILE_HEIGHT,
    TAG_TILE_OFFSETS,
    TAG_TILE_WIDTH,
    TAG_X_RES,
    TAG_XMP,
    TAG_Y_RES,
    read_structure,
    read_subifds,
)
from .tiffinfo import (
    PHOTOMETRIC_LAB,
    PHOTOMETRIC_MINISBLACK,
    PHOTOMETRIC_MINISWHITE,
    check_level,
    check_samples,
    default_max,
    passthrough,
    per_band,
)
from .tiffpages import find_pages
from .tiffraw import RawTiles, lab8_to_float

log = logging.getLogger(__name__)

try:  # libjpeg-turbo without Pillow's or libvips' per-call overhead (optional)
    import simplejpeg as _simplejpeg
except ImportError:  # pragma: no cover - the fallback is libvips
    _simplejpeg = None


_NUMPY: dict[tuple[SampleFormat, int], Any] = {
    (SampleFormat.UINT, 8): np.uint8,
    (SampleFormat.UINT, 16): np.uint16,
    (SampleFormat.UINT, 32): np.uint32,
    (SampleFormat.INT, 8): np.int8,
    (SampleFormat.INT, 16): np.int16,
    (SampleFormat.INT, 32): np.int32,
    (SampleFormat.FLOAT, 32): np.float32,
    (SampleFormat.FLOAT, 64): np.float64,
}
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
            raise UnsupportedImage("image is not tiled")
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
        self.info = self._describe(first)
        if self.info.colour_space is ColourSpace.CIELAB and self.info.bits == 8:
            for source in kept:
                source.raw = RawTiles(self._fd, source.ifd)

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

    def _describe(self, first: IFD) -> ImageInfo:
        bits_all = first.ints(TAG_BITS) or (1,)
        bits = bits_all[0]
        bands = first.int(TAG_SAMPLES, 1)
        fmt_code = first.int(TAG_SAMPLE_FORMAT, 1)
        formats = {2: SampleFormat.INT, 3: SampleFormat.FLOAT}
        sample_format = formats.get(fmt_code, SampleFormat.UINT)
        photometric = first.int(TAG_PHOTOMETRIC, PHOTOMETRIC_MINISBLACK)
        if photometric in PHOTOMETRIC_LAB:
            colour = ColourSpace.CIELAB
        elif photometric in (PHOTOMETRIC_MINISBLACK, PHOTOMETRIC_MINISWHITE):
            colour = ColourSpace.BINARY if bits == 1 else ColourSpace.GREY
        else:
            colour = ColourSpace.SRGB
        if photometric == 3:  # palette: pyvips expands it to RGB
            bands, bits = 3, 8
        if (sample_format, max(bits, 8)) not in _NUMPY and bits != 1:
            raise UnsupportedImage(f"unsupported sample type ({bits}-bit {sample_format.value})")
        levels = tuple(
            Level(s.ifd.width, s.ifd.height, s.ifd.int(TAG_TILE_WIDTH), s.ifd.int(TAG_TILE_HEIGHT))
            for s in self._levels
        )
        smin, smax = first.get(TAG_SMIN), first.get(TAG_SMAX)
        mins = per_band(smin, bands, 0.0)
        top = default_max(sample_format, bits)
        maxs = tuple(v if v else top for v in per_band(smax, bands, top))
        unit_code = first.int(TAG_RES_UNIT, 2)
        xres, yres = first.rational(TAG_X_RES), first.rational(TAG_Y_RES)
        dpi = None
        unit = {2: "in", 3: "cm"}.get(unit_code, "")
        if xres and yres:
            scale = {2: 1 / 0.0254, 3: 100.0}.get(unit_code, 1.0)
            dpi = (xres * scale, yres * scale)
        metadata = {
            key: first.text(tag)
            for key, tag in (
                ("rights", TAG_COPYRIGHT),
                ("creator", TAG_ARTIST),
                ("description", TAG_DESCRIPTION),
                ("date", TAG_DATETIME),
                ("software", TAG_SOFTWARE),
                ("title", TAG_DOCUMENT_NAME),
                ("pagename", TAG_PAGE_NAME),
                ("make", TAG_MAKE),
                ("model", TAG_MODEL),
            )
            if first.text(tag)
        }
        stonits = first.rational(TAG_STONITS)
        if stonits is not None:
            metadata["scale"] = f"{stonits:g}"
        icc = first.get(TAG_ICC)
        xmp = first.get(TAG_XMP)
        return ImageInfo(
            format="tiff",
            levels=levels,
            bands=bands,
            bits=bits,
            sample_format=sample_format,
            colour_space=colour,
            min_values=mins,
            max_values=maxs,
            icc=icc if isinstance(icc, bytes) and icc else None,
            xmp=xmp if isinstance(xmp, bytes) and xmp else None,
            dpi=dpi,
            resolution_unit=unit,
            metadata=metadata,
            stack=self._stack,
        )

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
            return lab8_to_float(raw.region(left, top, width, height))
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

