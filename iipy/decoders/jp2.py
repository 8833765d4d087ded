"""JPEG 2000 (JP2, JPX and raw J2K codestreams) through glymur and OpenJPEG.

The codec decodes regions itself: a box of level ``r`` is read by asking
OpenJPEG for that area of the reference grid at reduce factor ``r``, so only
the code-blocks the box touches are decoded (how few depends on the file's
tiles and precincts: docs/jpeg2000.md).  Levels, their true sizes and the
virtual levels below the codestream's smallest resolution come from
:mod:`.jp2info`; a virtual level is made by decoding the matching area of the
smallest real level and box-averaging it, never by skipping pixels.

Quality layers: ``layers`` in :meth:`Jp2Decoder.read_region` follows
iipsrv's decoder rule (0 = half of the file's layers rounded up, negative =
all, n = n).

glymur is imported only when a JPEG 2000 file is opened
(:mod:`.openjpeg`); without OpenJPEG that raises DecoderUnavailable and no
other format is affected.
"""

from __future__ import annotations

import logging
import threading
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np

from ..errors import CorruptImage, IIPyError, NotImplementedFeature, UnsupportedImage
from . import openjpeg
from .base import Decoder
from .jp2info import J2K_SIGNATURE, JP2_SIGNATURE, Structure, describe, layers_to_decode

log = logging.getLogger(__name__)

#: Parsed glymur handles kept per open image.  A handle carries per-read
#: state (quality layer, decode parameters), so concurrent reads (threaded
#: HTTP mode, tests) each take their own; a worker process needs one.
POOL_SIZE = 2
#: Largest area of the smallest real level decoded to make one virtual-level
#: box (4096², about 200 MB inside OpenJPEG for RGB).  Only a file with far
#: too few resolution levels for its size reaches it.
MAX_VIRTUAL_SOURCE_PIXELS = 1 << 24


class _HandlePool:
    """A few parsed glymur ``Jp2k`` handles of one file, reused across reads.

    glymur reads the file's boxes and codestream header once per handle;
    each decode then opens a fresh OpenJPEG stream and codec (OpenJPEG
    cannot decode a second area with a codec it has used on a tiled
    codestream), exactly as iipsrv does per tile.
    """

    def __init__(self, glymur: Any, path: str, first: Any, size: int = POOL_SIZE) -> None:
        self._glymur = glymur
        self._path = path
        self._free = [first]
        self._size = size
        self._lock = threading.Lock()

    @contextmanager
    def handle(self) -> Iterator[Any]:
        with self._lock:
            jp2 = self._free.pop() if self._free else None
        if jp2 is None:
            jp2 = _parse(self._glymur, self._path)
        try:
            yield jp2
        finally:
            with self._lock:
                if len(self._free) < self._size:
                    self._free.append(jp2)

    def close(self) -> None:
        with self._lock:
            self._free.clear()


def _parse(glymur: Any, path: str) -> Any:
    """A glymur handle with its codestream header parsed; CorruptImage if unreadable."""
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            jp2 = glymur.Jp2k(path)
            jp2.codestream  # noqa: B018 - parses a raw codestream's header now
        for warning in caught:
            log.debug("glymur: %s", warning.message)
        return jp2
    except (IIPyError, MemoryError):
        raise
    except Exception as exc:
        log.warning("JPEG 2000 structure unreadable (%s): %s", path, exc)
        raise CorruptImage("JPEG 2000 file structure could not be read") from exc


class Jp2Decoder(Decoder):
    name = "jp2"
    rank = 10
    decodes_regions = True

    @classmethod
    def can_read(cls, head: bytes) -> bool:
        return head[:12] == JP2_SIGNATURE or head[:4] == J2K_SIGNATURE

    def __init__(self, path: str) -> None:
        glymur = openjpeg.glymur_module()
        self.path = path
        first = _parse(glymur, path)
        try:
            structure = describe(first)
        except (IIPyError, MemoryError):
            raise
        except Exception as exc:  # glymur objects of an unexpected shape
            log.warning("JPEG 2000 header not understood (%s): %s", path, exc)
            raise CorruptImage("JPEG 2000 file structure could not be read") from exc
        self._structure: Structure = structure
        self.info = structure.info
        self._pool = _HandlePool(glymur, path, first)
        self._errors = (glymur.lib.openjp2.OpenJPEGLibraryError, RuntimeError, OSError)

    @property
    def real_levels(self) -> int:
        """How many levels come from the codestream; the rest are virtual."""
        return self._structure.real_levels

    def read_region(
        self, level: int, left: int, top: int, width: int, height: int, layers: int = 0
    ) -> np.ndarray:
        real = self._structure.real_levels
        if level < real:
            return self._decode(level, left, top, width, height, layers)
        base = real - 1
        factor = 1 << (level - base)
        source = self.info.levels[base]
        src_left, src_top = left * factor, top * factor
        src_width = min(width * factor, source.width - src_left)
        src_height = min(height * factor, source.height - src_top)
        if src_width * src_height > MAX_VIRTUAL_SOURCE_PIXELS:
            raise NotImplementedFeature(
                "this JPEG 2000 file has too few resolution levels for its size to "
                f"serve level {len(self.info.levels) - 1 - level}; re-encode it with more"
            )
        pixels = self._decode(base, src_left, src_top, src_width, src_height, layers)
        reduced = box_reduce(pixels, factor)
        if reduced.shape[:2] != (height, width):
            raise CorruptImage("JPEG 2000 virtual level has an unexpected size")
        return reduced

    def _decode(
        self, level: int, left: int, top: int, width: int, height: int, layers: int
    ) -> np.ndarray:
        """A box of codestream level ``level``: the reference-grid area at that reduce factor."""
        (ox, oy), (ex, ey) = self._structure.origin, self._structure.end
        step = 1 << level
        ax, ay = -(-ox // step) + left, -(-oy // step) + top  # box origin at level, absolute
        x0, y0 = max(ax * step, ox), max(ay * step, oy)
        x1, y1 = min((ax + width) * step, ex), min((ay + height) * step, ey)
        available = self.info.quality_layers
        wanted = layers_to_decode(layers, available)
        with self._pool.handle() as jp2:
            try:
                with warnings.catch_warnings(record=True) as caught:
                    warnings.simplefilter("always")
                    jp2.layer = 0 if wanted >= available else wanted  # 0: all layers
                    data = jp2[y0:y1:step, x0:x1:step]
            except MemoryError:
                raise
            except self._errors as exc:
                log.warning("JPEG 2000 decode failed (%s, level %d): %s", self.path, level, exc)
                raise CorruptImage("JPEG 2000 data could not be decoded") from exc
            except (ValueError, TypeError) as exc:
                log.warning("JPEG 2000 decode refused (%s): %s", self.path, exc)
                raise UnsupportedImage("JPEG 2000 data of this kind is not supported") from exc
        for warning in caught:
            log.debug("OpenJPEG (%s): %s", self.path, warning.message)
        if not isinstance(data, np.ndarray):  # glymur returns a list for unequal components
            raise UnsupportedImage("JPEG 2000 components of different sizes are not supported")
        if data.ndim == 2:
            data = data[:, :, None]
        if data.shape != (height, width, self.info.bands):
            log.warning(
                "JPEG 2000 decode of %s gave %s, expected %s",
                self.path,
                data.shape,
                (height, width, self.info.bands),
            )
            raise CorruptImage("JPEG 2000 data decoded to an unexpected size")
        if self._structure.one_bit:
            data = (data != 0).astype(np.uint8) * np.uint8(255)
        return data

    def close(self) -> None:
        self._pool.close()


def box_reduce(pixels: np.ndarray, factor: int) -> np.ndarray:
    """Shrink by an integer factor with a box (area) filter.

    The output is ``ceil(size / factor)``; a partial block at the right or
    bottom edge is the mean of the pixels it has.  Integer samples are
    summed exactly and rounded to the nearest value.
    """
    if factor == 1:
        return pixels
    height, width, bands = pixels.shape
    out_h, out_w = -(-height // factor), -(-width // factor)
    pad_h, pad_w = out_h * factor - height, out_w * factor - width
    if pad_h or pad_w:
        pixels = np.pad(pixels, ((0, pad_h), (0, pad_w), (0, 0)))
    floating = pixels.dtype.kind == "f"
    sums = pixels.reshape(out_h, factor, out_w, factor, bands).sum(
        axis=(1, 3), dtype=np.float64 if floating else np.int64
    )
    rows = np.full(out_h, factor, dtype=np.int64)
    rows[-1] = height - (out_h - 1) * factor
    cols = np.full(out_w, factor, dtype=np.int64)
    cols[-1] = width - (out_w - 1) * factor
    counts = (rows[:, None] * cols[None, :])[:, :, None]
    if floating:
        return (sums / counts).astype(pixels.dtype)
    # round half up, exactly, in integers: floor((2*sum + count) / (2*count))
    return ((2 * sums + counts) // (2 * counts)).astype(pixels.dtype)
