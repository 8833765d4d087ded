"""Watermark a stored JPEG tile by re-encoding only the blocks the mark covers.

A marked tile can never be the stored one, but it differs from it only where
the mark is: a 64×32 mark touches at most 15 of a 256×256 tile's 256 MCUs.
Decoding and re-encoding the whole tile costs ~400 µs on the benchmark machine,
most of it entropy decoding, which is why iipsrv's marked tiles are no faster
than its plain ones.  Here:

1. ``_dctsplice.decode`` (C) entropy-decodes the tile only up to the last MCU
   the mark covers, turns the covered MCUs into samples (dequantise, inverse
   DCT) and hands over the mark's window as the 8-bit pixels a decoder would
   output (chroma upsampling, YCbCr → RGB);
2. the caller's stamp, i.e. :meth:`iipy.watermark.Watermark.add_to`, applies
   the watermark formula to that window in numpy, exactly as on any other
   output;
3. ``_dctsplice.encode`` (C) takes the pixels the stamp changed back to the
   tile's own quantised coefficients (RGB → YCbCr, chroma averaging, forward
   DCT; pixels the stamp left alone keep their stored samples, so untouched
   blocks keep their coefficients), re-encodes that run of MCUs with the
   tile's own Huffman tables and copies every other byte unchanged.

The result is the stored tile, at its stored quality, with the mark in it; what
the caller gets is the same as decoding the tile, applying
:class:`~iipy.watermark.Watermark` and encoding at that quality, except that
nothing outside the mark is re-quantised.  Whenever a tile is not a plain
baseline JPEG of the expected kind (progressive, restart markers, RGB
transform, 4:1:1, corrupt data…) or the C extension is not built, the
functions return None and the caller decodes and encodes as usual.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

try:
    from . import _dctsplice
except ImportError:  # the optional extension was not compiled
    _dctsplice = None


def available() -> bool:
    """Whether the C part was built (else callers use the decode/encode path)."""
    return _dctsplice is not None


#: Where each MCU of a stored tile starts in its entropy-coded data, as far as
#: a former call parsed it (a bytearray made and extended by the C part, about
#: 12 bytes an MCU, 3 kB for a 256×256 4:2:0 tile).  Kept by the caller per
#: tile, it lets the next mark on that tile decode only the MCUs it covers.
McuIndex = bytearray


def mark_jpeg(jpeg: bytes, stamp: Callable[[np.ndarray], None], x: int, y: int,
              width: int, height: int, index: McuIndex | None = None
              ) -> tuple[bytes | None, McuIndex | None]:
    """``jpeg`` with ``stamp`` applied to its pixels in the box (x, y, width,
    height), and the tile's MCU index, extended by what this call parsed.

    ``stamp`` changes, in place, a writeable uint8 (height, width, bands) array
    of the box's pixels as a decoder outputs them (bands: the JPEG's 1 or 3);
    pixels it leaves alone stay as stored.  ``index`` is what a former call on
    the same bytes returned (or None).  The JPEG is None when the tile cannot
    be marked this way.
    """
    if _dctsplice is None:
        return None, index
    got = _dctsplice.decode(jpeg, x, y, x + width, y + height, index)
    if got is None:
        return None, index
    run, window, index = got
    stamp(np.frombuffer(window, dtype=np.uint8).reshape(height, width, -1))
    return _dctsplice.encode(run, window), index
