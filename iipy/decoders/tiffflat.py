"""Untiled (strip) TIFF, served through :mod:`.flat`'s synthesised levels.

iipsrv refuses such files; iipy decodes them under the same size limit and
band cache as plain JPEG and PNG.  libvips reads what it can (sequentially,
box-averaged by 2^level); the layouts it cannot read (10/12/14-bit samples,
1/2/4-bit colour) are read strip by strip with :class:`.tiffraw.RawTiles`
and box-averaged here.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from ..errors import CorruptImage
from .flat import FlatDecoder, block_mean, check_size, synthesised_levels
from .tiffdir import (
    IFD,
    TAG_PLANAR,
    TAG_ROWS_PER_STRIP,
    TAG_SAMPLES,
    TAG_STRIP_BYTE_COUNTS,
    TAG_STRIP_OFFSETS,
    read_structure,
)
from .tiffinfo import check_samples, describe
from .tiffraw import RawTiles, libvips_reads

#: Level-0 pixels read at once when box-averaging raw strips.
CHUNK_PIXELS = 1 << 22


class StripTiffDecoder(FlatDecoder):
    name = "tiff-strips"
    rank = 0  # reached through TiffDecoder.open, never by magic bytes alone

    @classmethod
    def can_read(cls, head: bytes) -> bool:
        return False

    def _open(self) -> Any:
        self._fd = os.open(self.path, os.O_RDONLY)
        try:
            structure = read_structure(self._fd)
            first = structure.ifds[0]
            check_samples(first)
            check_size(first.width, first.height, self.max_pixels, self.path)
            info = describe(first, synthesised_levels(first.width, first.height))
            _check_strips(first, os.fstat(self._fd).st_size)
            self._raw = None
            if not libvips_reads(first):
                self._raw = RawTiles(self._fd, first, structure.big_endian)
            elif info.colour_space.value == "cielab":
                raise CorruptImage("untiled CIELAB TIFF is not supported")
        except Exception:
            os.close(self._fd)
            raise
        self._dtype = np.dtype({8: np.uint8, 16: np.uint16, 32: np.float32}.get(
            8 if info.bits <= 8 else 16 if info.bits <= 16 else 32, np.uint8))
        return info

    def _decode(self, level: int, top: int, rows: int) -> np.ndarray:
        lv = self.info.levels[level]
        if self._raw is not None:
            return self._raw_rows(level, top, rows)
        import pyvips

        try:
            image = pyvips.Image.tiffload(self.path, page=0, access="sequential",
                                          revalidate=True, fail_on="truncated")
            if level:
                image = image.shrink(1 << level, 1 << level)
            if image.width < lv.width or image.height < lv.height:
                image = image.embed(0, 0, max(lv.width, image.width),
                                    max(lv.height, image.height), extend="copy")
            data = image.crop(0, top, lv.width, rows).write_to_memory()
            dtype = np.dtype({"uchar": np.uint8, "ushort": np.uint16, "char": np.int8,
                              "short": np.int16, "uint": np.uint32, "int": np.int32,
                              "float": np.float32, "double": np.float64}[image.format])
        except (pyvips.Error, KeyError) as exc:
            raise CorruptImage("TIFF image data could not be decoded") from exc
        array = np.frombuffer(data, dtype=dtype)
        if array.size != rows * lv.width * image.bands:
            raise CorruptImage("TIFF image data could not be decoded")
        return array.reshape(rows, lv.width, image.bands)

    def _raw_rows(self, level: int, top: int, rows: int) -> np.ndarray:
        """Rows of a level from raw strips, box-averaged in chunks of level-0 rows."""
        assert self._raw is not None
        lv = self.info.levels[level]
        factor = 1 << level
        if factor == 1:
            return self._raw.region(0, top, lv.width, rows)
        out = np.empty((rows, lv.width, self.info.bands), self._raw.dtype)
        step = max(1, CHUNK_PIXELS // max(1, lv.width * factor * factor))
        for row in range(0, rows, step):
            count = min(step, rows - row)
            pixels = self._raw.region(0, (top + row) * factor, lv.width * factor, count * factor)
            out[row:row + count] = block_mean(pixels, factor)
        return out

    def close(self) -> None:
        super().close()
        try:
            os.close(self._fd)
        except OSError:
            pass


def _check_strips(ifd: IFD, file_size: int) -> None:
    """Every strip the image needs is listed and lies inside the file (a
    truncated or lying file is refused before libtiff fills rows with zeros)."""
    rows = max(1, min(ifd.height, ifd.int(TAG_ROWS_PER_STRIP, ifd.height) or ifd.height))
    planes = ifd.int(TAG_SAMPLES, 1) if ifd.int(TAG_PLANAR, 1) == 2 else 1
    needed = -(-ifd.height // rows) * planes
    offsets = ifd.table(TAG_STRIP_OFFSETS)[:needed]
    counts = ifd.table(TAG_STRIP_BYTE_COUNTS)[:needed]
    if len(offsets) < needed or len(counts) < needed:
        raise CorruptImage("image has fewer strips than its size needs")
    if np.any(offsets + counts > np.uint64(file_size)) or np.any(offsets > np.uint64(file_size)):
        raise CorruptImage("image strips lie outside the file")
