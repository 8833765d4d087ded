"""Decode stored TIFF tiles ourselves, for what libvips cannot read.

libvips (8.18) refuses 8-bit, 3-sample CIELab TIFFs ("bad labq format"), a
layout iipsrv 1.1 serves.  Such tiles are read here: uncompressed or
Deflate, with or without the horizontal predictor, chunky samples.  Anything
else is reported as unsupported rather than misread.
"""

from __future__ import annotations

import os
import zlib

import numpy as np

from ..errors import CorruptImage, UnsupportedImage
from .tiffdir import (
    IFD,
    TAG_COMPRESSION,
    TAG_PLANAR,
    TAG_PREDICTOR,
    TAG_SAMPLES,
    TAG_TILE_BYTE_COUNTS,
    TAG_TILE_HEIGHT,
    TAG_TILE_OFFSETS,
    TAG_TILE_WIDTH,
)

NONE, DEFLATE, ADOBE_DEFLATE = 1, 32946, 8


class RawTiles:
    """8-bit chunky tiles of one directory, decoded with zlib and numpy."""

    def __init__(self, fd: int, ifd: IFD) -> None:
        self.fd = fd
        self.width, self.height = ifd.width, ifd.height
        self.tile_w, self.tile_h = ifd.int(TAG_TILE_WIDTH), ifd.int(TAG_TILE_HEIGHT)
        self.bands = ifd.int(TAG_SAMPLES, 1)
        self.compression = ifd.int(TAG_COMPRESSION, NONE)
        self.predictor = ifd.int(TAG_PREDICTOR, 1)
        self.offsets = ifd.table(TAG_TILE_OFFSETS)
        self.counts = ifd.table(TAG_TILE_BYTE_COUNTS)
        if self.compression not in (NONE, DEFLATE, ADOBE_DEFLATE):
            raise UnsupportedImage("8-bit CIELAB TIFF needs no compression or Deflate")
        if ifd.int(TAG_PLANAR, 1) != 1 or self.predictor not in (1, 2):
            raise UnsupportedImage("8-bit CIELAB TIFF layout is not supported")
        self.columns = -(-self.width // self.tile_w)

    def tile(self, column: int, row: int) -> np.ndarray:
        """The whole stored (padded) tile, (tile_h, tile_w, bands) uint8."""
        index = row * self.columns + column
        if index >= len(self.offsets) or index >= len(self.counts):
            raise CorruptImage("tile is missing")
        data = os.pread(self.fd, int(self.counts[index]), int(self.offsets[index]))
        size = self.tile_w * self.tile_h * self.bands
        try:
            if self.compression != NONE:  # never more than the tile: no Deflate bomb
                data = zlib.decompressobj().decompress(data, size)
        except zlib.error as exc:
            raise CorruptImage("tile data could not be decoded") from exc
        if len(data) < size:
            raise CorruptImage("tile data is truncated")
        array = np.frombuffer(data[:size], np.uint8).reshape(self.tile_h, self.tile_w, self.bands)
        if self.predictor == 2:  # horizontal differencing, per sample, wrapping at 256
            array = np.cumsum(array, axis=1, dtype=np.uint8)
        return array

    def region(self, left: int, top: int, width: int, height: int) -> np.ndarray:
        out = np.empty((height, width, self.bands), np.uint8)
        for row in range(top // self.tile_h, (top + height - 1) // self.tile_h + 1):
            for column in range(left // self.tile_w, (left + width - 1) // self.tile_w + 1):
                x0, y0 = column * self.tile_w, row * self.tile_h
                tile = self.tile(column, row)
                sx, sy = max(left, x0), max(top, y0)
                ex = min(left + width, x0 + self.tile_w)
                ey = min(top + height, y0 + self.tile_h)
                out[sy - top : ey - top, sx - left : ex - left] = tile[
                    sy - y0 : ey - y0, sx - x0 : ex - x0
                ]
        return out


def lab8_to_float(array: np.ndarray) -> np.ndarray:
    """8-bit CIELab samples (L 0-255 for 0-100, a and b signed) → float L*a*b*."""
    out = np.empty(array.shape, np.float32)
    out[:, :, 0] = array[:, :, 0] / np.float32(2.55)
    out[:, :, 1:3] = array[:, :, 1:3].view(np.int8)
    if array.shape[2] > 3:
        out[:, :, 3:] = array[:, :, 3:]
    return out
