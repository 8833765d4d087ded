"""Watermark a stored JPEG tile by re-encoding only the blocks the mark covers.

A marked tile can never be the stored one, but it differs from it only where
the mark is: a 64×32 mark touches at most 15 of a 256×256 tile's 256 MCUs.
Decoding and re-encoding the whole tile costs ~400 µs on the benchmark machine,
most of it entropy decoding, which is why iipsrv's marked tiles are no faster
than its plain ones.  Here:

1. ``_dctsplice.decode`` (C) entropy-decodes the tile only up to the last MCU
   the mark covers and returns the DCT coefficients of those MCUs;
2. numpy turns the covered MCUs into pixels (dequantise, inverse DCT, chroma
   upsampling, YCbCr → RGB), applies the watermark formula
   ``out = min(src + add, 255)`` where the mark adds something, and goes back
   (RGB → YCbCr, chroma averaging, forward DCT, the tile's own quantisation);
   pixels the mark does not change make the round trip exactly, so their
   blocks come back with their stored coefficients;
3. ``_dctsplice.encode`` (C) re-encodes that run of MCUs with the tile's own
   Huffman tables and copies every other byte of the stored tile unchanged.

The result is the stored tile, at its stored quality, with the mark in it; what
the caller gets is the same as decoding the tile, applying
:class:`~iipy.watermark.Watermark` and encoding at that quality, except that
nothing outside the mark is re-quantised.  Whenever a tile is not a plain
baseline JPEG of the expected kind (progressive, restart markers, RGB
transform, 4:1:1, corrupt data…) or the C extension is not built, the
functions return None and the caller decodes and encodes as usual.
"""

from __future__ import annotations

import numpy as np

try:
    from . import _dctsplice
except ImportError:  # the optional extension was not compiled
    _dctsplice = None


def available() -> bool:
    """Whether the C part was built (else callers use the decode/encode path)."""
    return _dctsplice is not None


def _dct_matrix() -> np.ndarray:
    """Orthonormal 8-point DCT-II: JPEG's 2-D DCT of block P is D·P·Dᵀ."""
    k = np.arange(8)[:, None]
    n = np.arange(8)[None, :]
    d = np.cos((2 * n + 1) * k * np.pi / 16) / 2
    d[0] /= np.sqrt(2)
    return d


_D = _dct_matrix()
#: the 2-D DCT of a block flattened row-major is one 64×64 matrix product;
#: float32 is ample (coefficients come back within 1e-4 of whole numbers)
_IDCT = np.kron(_D, _D).astype(np.float32)  # coefficients @ _IDCT = pixels
_FDCT = np.ascontiguousarray(_IDCT.T)  # pixels @ _FDCT = coefficients
#: JFIF's YCbCr (chroma centred on 0) → RGB, and its exact inverse, so that a
#: pixel the mark leaves alone converts back to the very same value.
_TO_YCC = np.array([
    [0.299, 0.587, 0.114],
    [-0.168735892, -0.331264108, 0.5],
    [0.5, -0.418687589, -0.081312411],
])
_RGB_FROM_YCC = np.linalg.inv(_TO_YCC).T.astype(np.float32)  # ycc @ this = rgb
_YCC_FROM_RGB = _TO_YCC.T.astype(np.float32)


#: Where each MCU row of a tile starts in its entropy-coded data (one row of
#: int64 per MCU row, from row 0: MCU index, bit, three DC predictors).  Kept
#: by the caller per tile (~40 bytes a row), it lets the next mark on that tile
#: start parsing at the mark's first row instead of at the top of the tile.
RowIndex = np.ndarray

_NO_ROWS = np.zeros((0, 5), dtype=np.int64)


def mark_jpeg(jpeg: bytes, amount: np.ndarray, x: int, y: int,
              rows: RowIndex | None = None) -> tuple[bytes | None, RowIndex]:
    """``jpeg`` with ``min(pixel + amount, 255)`` applied to the pixels from (x, y)
    (pixels where ``amount`` is 0 are left as they are), and the tile's row
    index, extended by what this call parsed.

    ``amount`` is float32 (h, w, bands) holding whole numbers; bands must be
    the JPEG's component count (1 or 3).  ``rows`` is what a former call on the
    same bytes returned (or None).  The JPEG is None when the tile cannot be
    marked this way.
    """
    known = _NO_ROWS if rows is None else rows
    if _dctsplice is None:
        return None, known
    height, width, bands = amount.shape
    resume = b""
    if len(known):
        # the last known row start at or above the mark (rows are 8·vmax high,
        # and vmax ≤ 2, so y // 16 is never past the mark's first row)
        resume_row = min(len(known) - 1, y // 16)
        resume = known[resume_row].tobytes()
    got = _dctsplice.decode(jpeg, x, y, x + width, y + height, resume)
    if got is None:
        return None, known
    (_, _, hmax, vmax, mcus_x, _, qtables, first, needed, count,
     start_bit, ends, preds, raw, passed) = got
    passed_rows = np.frombuffer(passed, dtype=np.int64).reshape(-1, 5)
    if len(passed_rows):
        start_row = int(passed_rows[0, 0]) // mcus_x
        if start_row <= len(known) < start_row + len(passed_rows):
            known = np.concatenate((known, passed_rows[len(known) - start_row:]))
    if len(qtables) != bands:
        return None, known
    luma_n = hmax * vmax
    per_mcu = luma_n + (2 if bands == 3 else 0)
    coeffs = np.frombuffer(raw, dtype=np.int16).reshape(count, per_mcu, 64)
    mcu_w, mcu_h = 8 * hmax, 8 * vmax
    col0, row0 = x // mcu_w, y // mcu_h
    cols = np.arange(col0, (x + width - 1) // mcu_w + 1)
    rows = np.arange(row0, (y + height - 1) // mcu_h + 1)
    index = rows[:, None] * mcus_x + cols[None, :] - first  # covered MCUs in the run
    nr, nc = index.shape
    quant = np.asarray(qtables, dtype=np.float32)[[0] * luma_n + list(range(1, bands))]

    # coefficients → pixels (level-shifted): every block of every covered MCU at once
    blocks = ((coeffs[index].reshape(nr, nc, per_mcu, 64) * quant) @ _IDCT)
    ph, pw = nr * mcu_h, nc * mcu_w
    luma = (blocks[:, :, :luma_n].reshape(nr, nc, vmax, hmax, 8, 8)
            .transpose(0, 2, 4, 1, 3, 5).reshape(ph, pw))
    top, left = y - row0 * mcu_h, x - col0 * mcu_w
    rows_, cols_ = slice(top, top + height), slice(left, left + width)
    if bands == 3:
        # chroma, replicated to full resolution (averaged back below)
        chroma = np.empty((nr * 8, vmax, nc * 8, hmax, 2), dtype=np.float32)
        chroma[:] = (blocks[:, :, luma_n:].reshape(nr, nc, 2, 8, 8).transpose(0, 3, 1, 4, 2)
                     .reshape(nr * 8, 1, nc * 8, 1, 2))
        full = chroma.reshape(ph, pw, 2)
        ycc = np.empty((height, width, 3), dtype=np.float32)
        ycc[:, :, 0] = luma[rows_, cols_]
        ycc[:, :, 0] += 128.0
        ycc[:, :, 1:] = full[rows_, cols_]
        window = ycc @ _RGB_FROM_YCC
    else:
        window = luma[rows_, cols_, None] + 128.0

    # the watermark formula, where the mark adds something
    marked = np.rint(window)
    np.clip(marked, 0.0, 255.0, out=marked)
    marked += amount
    np.minimum(marked, 255.0, out=marked)
    np.copyto(window, marked, where=amount > 0)

    # back to the tile's own (level-shifted, quantised) coefficients
    out = np.empty((nr, nc, per_mcu, 8, 8), dtype=np.float32)
    if bands == 3:
        ycc = window @ _YCC_FROM_RGB
        luma[rows_, cols_] = ycc[:, :, 0] - 128.0
        full[rows_, cols_] = ycc[:, :, 1:]
        summed = chroma[:, 0, :, 0]
        for dy in range(vmax):
            for dx in range(hmax):
                if dy or dx:
                    summed = summed + chroma[:, dy, :, dx]
        out[:, :, luma_n:] = (summed * (1.0 / luma_n)).reshape(nr, 8, nc, 8, 2).transpose(
            0, 2, 4, 1, 3)
    else:
        luma[rows_, cols_] = window[:, :, 0] - 128.0
    out[:, :, :luma_n] = (luma.reshape(nr, vmax, 8, nc, hmax, 8)
                          .transpose(0, 3, 1, 4, 2, 5).reshape(nr, nc, luma_n, 8, 8))
    out = np.rint((out.reshape(nr, nc, per_mcu, 64) @ _FDCT) / quant)
    np.clip(out, -1023, 1023, out=out)
    coeffs = coeffs.copy()
    coeffs[index] = out
    dirty = np.zeros(count, dtype=np.uint8)
    dirty[index] = 1
    return _dctsplice.encode(jpeg, first, needed, start_bit, ends, preds, coeffs.tobytes(),
                             dirty.tobytes()), known
