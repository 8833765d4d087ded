"""Bounds on what one request may decode (issue 11: decompression bombs).

An export reads a box of one pyramid level (the smallest level at least the
output's size, :func:`iipy.render.geometry.choose_level`).  With a good
pyramid that box is less than twice the output on a side; a file without
reduced levels (or a hostile one declaring a 200000² level in 5 MB) would
make it the whole level.  Two rules keep such a request bounded:

* **time**: a box of more than MAX_SOURCE_PIXELS pixels (default 2^28, a
  16384² region) is refused with :class:`ImageTooLarge` (400) and logged,
  before anything is decoded;
* **memory**: a box of more than :data:`WORKING_PIXELS` that is at least
  twice the output on both sides is read through :class:`Reduced`, which
  box-averages it by a power of two in pieces of at most :data:`PIECE`²
  source pixels, as if the file had the reduced level it lacks.  Memory is
  then the output, one band of the reduced box and one piece, whatever the
  level's size.  Smaller boxes take the ordinary path unchanged.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import numpy as np

from ..errors import ImageTooLarge

log = logging.getLogger(__name__)

Reader = Callable[[int, int, int, int], np.ndarray]
Box = tuple[int, int, int, int]

#: Source boxes up to this size are read as they are (a band of one is at most
#: this many pixels, 64 MB as float RGBA).
WORKING_PIXELS = 1 << 22
#: Side of the source pieces a reduced read decodes at once (a power of two).
PIECE = 1024
#: Reduced pixels a reduced read sums at once (float64: 6 MB for RGB).
CELLS = 1 << 18


def check_source(box: Box, limit: int, path: str) -> None:
    """Refuse (ImageTooLarge, logged) a box of more than ``limit`` pixels."""
    pixels = box[2] * box[3]
    if pixels > limit:
        log.warning("refused: %s needs %d source pixels for one request (MAX_SOURCE_PIXELS=%d)",
                    path, pixels, limit)
        raise ImageTooLarge(
            f"region needs {pixels} source pixels, more than this server decodes "
            f"for one request ({limit})")


def factor(box: Box, width: int, height: int) -> int:
    """The power of two to box-average ``box`` by before resampling it to
    width×height: 1 (none) unless the box is at least twice the output on
    both sides and the ordinary path's smallest band (the rows one output row
    needs, with a filter's support: up to 8 times the scale) would be more
    than WORKING_PIXELS."""
    box_w, box_h = box[2], box[3]
    if box_w * min(box_h, 8 * box_h // max(1, height) + 8) <= WORKING_PIXELS:
        return 1
    k = 1
    while box_w // (2 * k) >= width and box_h // (2 * k) >= height:
        k *= 2
    return k


class Direct:
    """The box read as it is (what :func:`reader` gives for ordinary boxes)."""

    def __init__(self, read: Reader, box: Box) -> None:
        self.read = read
        self.box = box


def reader(read: Reader, box: Box, width: int, height: int,
           release: Callable[[], None] = lambda: None) -> Direct | Reduced:
    """How an export of ``box`` at width×height reads its source; ``release``
    drops the decoder's caches (called between the pieces of a reduced read)."""
    k = factor(box, width, height)
    return Reduced(read, box, k, release) if k > 1 else Direct(read, box)


class Reduced:
    """A reader of ``box`` of a level, box-averaged by ``k`` (a power of two).

    ``read(left, top, width, height)`` takes coordinates in the reduced box
    (origin at its corner) and returns the mean of each k×k block of source
    pixels (fewer at the box's right and bottom edges), in the source's
    sample type.  Source pixels are decoded in pieces of at most PIECE² (or
    one k-row slice of a block when k is larger), and summed in float64.
    """

    def __init__(self, read: Reader, box: Box, k: int,
                 release: Callable[[], None] = lambda: None) -> None:
        self.source = read
        self.release = release
        self.left, self.top, self.box_w, self.box_h = box
        self.k = k
        self.width = -(-self.box_w // k)
        self.height = -(-self.box_h // k)

    @property
    def box(self) -> Box:
        return (0, 0, self.width, self.height)

    def _span(self, start: int, size: int, extent: int) -> tuple[int, int, np.ndarray]:
        """Source range of reduced cells start..start+size, and pixels per cell."""
        k = self.k
        s0, s1 = start * k, min(extent, (start + size) * k)
        edges = np.minimum(np.arange(start, start + size + 1) * k, extent)
        return s0, s1, np.diff(edges)

    def read(self, left: int, top: int, width: int, height: int) -> np.ndarray:
        out: np.ndarray | None = None
        chunk = max(1, CELLS // max(1, width))  # reduced rows summed at once
        for row in range(top, top + height, chunk):
            rows = min(chunk, top + height - row)
            mean = self._mean(left, row, width, rows)
            if out is None:
                out = np.empty((height, width, mean.shape[2]), mean.dtype)
            out[row - top:row - top + rows] = mean
        assert out is not None
        return out

    def _mean(self, left: int, top: int, width: int, height: int) -> np.ndarray:
        """Block means of reduced rows top..top+height (at most CELLS cells)."""
        k = self.k
        x0, x1, cols = self._span(left, width, self.box_w)
        y0, y1, rows = self._span(top, height, self.box_h)
        total: np.ndarray | None = None
        dtype = None
        ph = y1 - y0
        # pieces of about PIECE² source pixels, of whole blocks across
        wide = max(k, (PIECE * PIECE // ph) // k * k)
        for px in range(x0, x1, wide):
            pw = min(wide, x1 - px)
            # a piece could still be k² pixels: read it in row slices
            slice_rows = max(1, min(ph, (PIECE * PIECE) // max(1, pw)))
            # slices hold whole block rows, or lie inside one (k is a power of two)
            if slice_rows >= k:
                slice_rows -= slice_rows % k
            else:
                slice_rows = 1 << (slice_rows.bit_length() - 1)
            for sy in range(y0, y1, slice_rows):
                sh = min(slice_rows, y1 - sy)
                pixels = self.source(self.left + px, self.top + sy, pw, sh)
                self.release()
                dtype = pixels.dtype
                if total is None:
                    total = np.zeros((height, width, pixels.shape[2]), np.float64)
                ry, rx = (sy - y0) // k, (px - x0) // k
                sums = _block_sums(pixels, k, aligned=(sy - y0) % k == 0)
                total[ry:ry + sums.shape[0], rx:rx + sums.shape[1]] += sums
        assert total is not None and dtype is not None
        mean = total / (rows[:, None, None] * cols[None, :, None])
        if np.issubdtype(dtype, np.integer):
            info = np.iinfo(dtype)
            return np.clip(np.rint(mean), info.min, info.max).astype(dtype)
        return mean.astype(dtype)


def strip_pixels(base: int, bands: int) -> int:
    """Source pixels an export band holds: ``base`` for up to 4 bands, fewer
    for images with many, so that a band's bytes stay the same."""
    return max(1, base * 4 // max(4, bands))


def _block_sums(pixels: np.ndarray, k: int, aligned: bool) -> np.ndarray:
    """Sums of the k×k blocks of ``pixels`` (float64), the last ones partial.
    Rows: blocks of k from the first row when ``aligned``, else all rows are
    part of one block row (a slice of a block taller than the slice)."""
    h, w, bands = pixels.shape
    rows = -(-h // k) * k if aligned else h
    cols = -(-w // k) * k
    if (rows, cols) != (h, w):  # zeros add nothing; cells are divided by their true counts
        padded = np.zeros((rows, cols, bands), pixels.dtype)
        padded[:h, :w] = pixels
        pixels = padded
    acc = np.float64 if pixels.dtype.kind == "f" else np.uint64
    block_rows = k if aligned else rows
    by_rows = _sum_axis1(pixels.reshape(rows // block_rows, block_rows, cols * bands), acc)
    by_cols = _sum_axis1(by_rows.reshape(rows // block_rows * (cols // k), k, bands), acc)
    return by_cols.reshape(rows // block_rows, cols // k, bands).astype(np.float64)


def _sum_axis1(array: np.ndarray, acc: type) -> np.ndarray:
    """``array.sum(axis=1)`` in ``acc``; by adding slices when there are few
    (several times faster than numpy's strided reduction)."""
    if array.shape[1] > 32:
        return array.sum(axis=1, dtype=acc)
    total = array[:, 0].astype(acc)
    for i in range(1, array.shape[1]):
        total += array[:, i]
    return total
