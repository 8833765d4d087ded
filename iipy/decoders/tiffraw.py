"""Decode stored TIFF tiles and strips ourselves, for what libvips cannot read.

libvips (8.18) refuses or misreads several layouts iipsrv serves or should:

* 8-bit, 3-sample CIELab ("bad labq format"), which iipsrv 1.1 serves;
* samples of 10, 12 or 14 bits (any other size than 1, 2, 4, 8, 16, 32, 64),
  and 1, 2 or 4 bits with more than one sample;
* planar-separate (PlanarConfiguration 2) tiles.

Those are read here: uncompressed, Deflate or PackBits, the horizontal
predictor for 8 and 16 bits, chunky or planar samples, tiles or strips (a
strip is a tile as wide as the image).  Samples of fewer than 8 bits come
out as uint8 scaled to 0-255 (what libvips does for grey ones), 9-16 bits as
uint16 of their stored values (the renderer scales them by the image's
maximum, 2^bits - 1 or SMaxSampleValue); MinIsWhite is inverted.  Anything
else (LZW, JPEG, other predictors) is reported as unsupported rather than
misread.
"""

from __future__ import annotations

import os
import zlib

import numpy as np

from ..errors import CorruptImage, UnsupportedImage
from .tiffdir import (
    IFD,
    TAG_BITS,
    TAG_COMPRESSION,
    TAG_PHOTOMETRIC,
    TAG_PLANAR,
    TAG_PREDICTOR,
    TAG_ROWS_PER_STRIP,
    TAG_SAMPLES,
    TAG_STRIP_BYTE_COUNTS,
    TAG_STRIP_OFFSETS,
    TAG_TILE_BYTE_COUNTS,
    TAG_TILE_HEIGHT,
    TAG_TILE_OFFSETS,
    TAG_TILE_WIDTH,
)

NONE, DEFLATE, ADOBE_DEFLATE, PACKBITS = 1, 32946, 8, 32773


def libvips_reads(ifd: IFD) -> bool:
    """Whether libvips reads this directory's samples right (else use RawTiles)."""
    bits = (ifd.ints(TAG_BITS) or (1,))[0]
    samples = ifd.int(TAG_SAMPLES, 1)
    if bits in (1, 2, 4):
        return samples == 1
    if bits not in (8, 16, 32, 64):
        return False
    return not (ifd.tiled and samples > 1 and ifd.int(TAG_PLANAR, 1) == 2)


class RawTiles:
    """The tiles (or strips) of one directory, decoded with zlib and numpy.

    ``lab`` keeps 8-bit samples as stored (CIELab's a and b are signed)."""

    def __init__(self, fd: int, ifd: IFD, big_endian: bool = False, lab: bool = False) -> None:
        self.fd = fd
        self.width, self.height = ifd.width, ifd.height
        if ifd.tiled:
            self.tile_w, self.tile_h = ifd.int(TAG_TILE_WIDTH), ifd.int(TAG_TILE_HEIGHT)
            self.offsets = ifd.table(TAG_TILE_OFFSETS)
            self.counts = ifd.table(TAG_TILE_BYTE_COUNTS)
        else:
            self.tile_w = self.width
            self.tile_h = max(1, min(self.height, ifd.int(TAG_ROWS_PER_STRIP, self.height)))
            self.offsets = ifd.table(TAG_STRIP_OFFSETS)
            self.counts = ifd.table(TAG_STRIP_BYTE_COUNTS)
        if self.tile_w <= 0 or self.tile_h <= 0 or self.width <= 0 or self.height <= 0:
            raise CorruptImage("image has a level with no size")
        self.bands = ifd.int(TAG_SAMPLES, 1)
        self.bits = (ifd.ints(TAG_BITS) or (1,))[0]
        self.compression = ifd.int(TAG_COMPRESSION, NONE)
        self.predictor = ifd.int(TAG_PREDICTOR, 1)
        self.planar = ifd.int(TAG_PLANAR, 1) == 2 and self.bands > 1
        self.white = ifd.int(TAG_PHOTOMETRIC, 1) == 0 and not lab
        self.big_endian = big_endian
        if self.compression not in (NONE, DEFLATE, ADOBE_DEFLATE, PACKBITS):
            raise UnsupportedImage(
                f"{self.bits}-bit TIFF needs no compression, Deflate or PackBits")
        if not 1 <= self.bits <= 16 or any(b != self.bits for b in ifd.ints(TAG_BITS)):
            raise UnsupportedImage("image has an unsupported number of bits a sample")
        if self.predictor not in (1, 2) or (self.predictor == 2 and self.bits not in (8, 16)):
            raise UnsupportedImage("TIFF predictor is not supported for this sample size")
        self.columns = -(-self.width // self.tile_w)
        self.rows = -(-self.height // self.tile_h)
        planes = self.bands if self.planar else 1
        if len(self.offsets) < self.columns * self.rows * planes or len(self.counts) < len(
            self.offsets[: self.columns * self.rows * planes]
        ):
            raise CorruptImage("image has fewer tiles than its size needs")
        self.dtype = np.dtype(np.uint8 if self.bits <= 8 else np.uint16)

    def _plane(self, index: int, samples: int, r0: int, r1: int) -> np.ndarray:
        """Rows r0..r1 of one stored tile/strip of ``samples`` a pixel, unpacked
        ((r1 - r0), tile_w, samples).  Only those rows are read (uncompressed) or
        kept (Deflate, inflated as a stream): a one-strip image is not held whole."""
        count, offset = int(self.counts[index]), int(self.offsets[index])
        row_bytes = -(-self.tile_w * samples * self.bits // 8)
        start, end = r0 * row_bytes, r1 * row_bytes
        if count <= 0:  # sparse: nothing stored, zeros
            data = bytes(end - start)
        elif self.compression == NONE:
            data = os.pread(self.fd, max(0, min(count - start, end - start)), offset + start)
        elif self.compression == PACKBITS:
            size = row_bytes * self.tile_h
            data = _unpackbits(os.pread(self.fd, min(count, 4 * size + 65536), offset), size)
            data = data[start:end]
        else:
            data = self._inflate(offset, count, start, end)
        if len(data) < end - start:
            raise CorruptImage("tile data is truncated")
        raw = np.frombuffer(data, np.uint8).reshape(r1 - r0, row_bytes)
        count_values = self.tile_w * samples
        if self.bits == 8:
            values = raw
        elif self.bits == 16:
            values = raw.view(">u2" if self.big_endian else "<u2").astype(np.uint16)
        else:
            values = _unpack(raw, self.bits, count_values)
        values = values[:, :count_values].reshape(r1 - r0, self.tile_w, samples)
        if self.predictor == 2:  # horizontal differencing, per sample, wrapping
            values = np.cumsum(values, axis=1, dtype=values.dtype)
        return values

    def _inflate(self, offset: int, count: int, start: int, end: int) -> bytes:
        """Bytes start..end of a Deflate stream, read and inflated in pieces
        (never more than ``end`` bytes out: no Deflate bomb)."""
        inflater = zlib.decompressobj()
        out = bytearray()
        produced = read = 0
        pending = b""
        try:
            while produced < end and not inflater.eof:
                if not pending:
                    if read >= count:
                        break
                    pending = os.pread(self.fd, min(1 << 20, count - read), offset + read)
                    if not pending:
                        break
                    read += len(pending)
                chunk = inflater.decompress(pending, min(1 << 22, end - produced))
                pending = inflater.unconsumed_tail
                skip = max(0, start - produced)
                if skip < len(chunk):
                    out += chunk[skip:]
                produced += len(chunk)
        except zlib.error as exc:
            raise CorruptImage("tile data could not be decoded") from exc
        return bytes(out)

    def tile(self, column: int, row: int, r0: int = 0, r1: int | None = None) -> np.ndarray:
        """Rows r0..r1 (default: all) of a stored (padded) tile or strip,
        (rows, tile_w, bands), scaled and inverted."""
        r1 = self.tile_h if r1 is None else r1
        index = row * self.columns + column
        if self.planar:
            per_plane = self.columns * self.rows
            values = np.concatenate([self._plane(band * per_plane + index, 1, r0, r1)
                                     for band in range(self.bands)], axis=2)
        else:
            values = self._plane(index, self.bands, r0, r1)
        top = (1 << self.bits) - 1
        if self.white:
            values = (top - values.astype(np.int32)).astype(values.dtype)
        if self.bits < 8:
            values = (values.astype(np.uint16) * 255 // top).astype(np.uint8)
        return values

    def region(self, left: int, top: int, width: int, height: int) -> np.ndarray:
        out = np.empty((height, width, self.bands), self.dtype)
        for row in range(top // self.tile_h, (top + height - 1) // self.tile_h + 1):
            for column in range(left // self.tile_w, (left + width - 1) // self.tile_w + 1):
                x0, y0 = column * self.tile_w, row * self.tile_h
                sx, sy = max(left, x0), max(top, y0)
                ex = min(left + width, x0 + self.tile_w)
                ey = min(top + height, y0 + self.tile_h)
                tile = self.tile(column, row, sy - y0, ey - y0)
                out[sy - top : ey - top, sx - left : ex - left] = tile[:, sx - x0 : ex - x0]
        return out


def _unpack(raw: np.ndarray, bits: int, count: int) -> np.ndarray:
    """Rows of MSB-first ``bits``-bit fields → (rows, count) integers."""
    rows = raw.shape[0]
    bit_rows = np.unpackbits(raw, axis=1)[:, : count * bits].reshape(rows, count, bits)
    weights = (1 << np.arange(bits - 1, -1, -1)).astype(np.uint16)
    out = (bit_rows.astype(np.uint16) * weights).sum(axis=2, dtype=np.uint16)
    return out.astype(np.uint8) if bits < 8 else out


def _unpackbits(data: bytes, size: int) -> bytes:
    """PackBits (TIFF compression 32773), at most ``size`` bytes out."""
    out = bytearray()
    pos, end = 0, len(data)
    while pos < end and len(out) < size:
        n = data[pos]
        pos += 1
        if n < 128:
            out += data[pos : pos + n + 1]
            pos += n + 1
        elif n > 128:
            if pos >= end:
                break
            out += data[pos : pos + 1] * (257 - n)
            pos += 1
    return bytes(out[:size])


def lab8_to_float(array: np.ndarray) -> np.ndarray:
    """8-bit CIELab samples (L 0-255 for 0-100, a and b signed) → float L*a*b*."""
    out = np.empty(array.shape, np.float32)
    out[:, :, 0] = array[:, :, 0] / np.float32(2.55)
    out[:, :, 1:3] = array[:, :, 1:3].view(np.int8)
    if array.shape[2] > 3:
        out[:, :, 3:] = array[:, :, 3:]
    return out
