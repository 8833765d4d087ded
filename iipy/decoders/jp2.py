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

Each open image keeps one file descriptor (the process's pool of open images
is the renderer's image cache, MAX_METADATA_CACHE_SIZE): the header is parsed
and every read is made through it (``/proc/self/fd/N`` where there is one), so
all reads of an open image see the file version its levels were read from,
even if the path is replaced meanwhile.  Each read then has its own OpenJPEG
stream and codec (:func:`.openjpeg.decode_area`), as iipsrv does per tile,
which also makes concurrent reads safe.

glymur is imported only when a JPEG 2000 file is opened
(:mod:`.openjpeg`); without OpenJPEG that raises DecoderUnavailable and no
other format is affected.
"""

from __future__ import annotations

import logging
import os
import warnings
from typing import Any

import numpy as np

from ..errors import CorruptImage, IIPyError, NotImplementedFeature, UnsupportedImage
from . import j2kcheck, openjpeg
from .base import Decoder
from .jp2info import J2K_SIGNATURE, JP2_SIGNATURE, Structure, describe, layers_to_decode

log = logging.getLogger(__name__)

#: Largest area of the smallest real level decoded to make one virtual-level
#: box (4096², about 200 MB inside OpenJPEG for RGB).  Only a file with far
#: too few resolution levels for its size reaches it.
MAX_VIRTUAL_SOURCE_PIXELS = 1 << 24


def _parse(glymur: Any, source: str, path: str) -> Any:
    """A glymur handle of ``source`` (which opens ``path``) with its codestream header
    parsed; CorruptImage if unreadable."""
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            jp2 = glymur.Jp2k(source)
            jp2.codestream  # noqa: B018 - parses a raw codestream's header now
        for warning in caught:
            log.debug("glymur: %s", warning.message)
        return jp2
    except (IIPyError, MemoryError):
        raise
    except Exception as exc:
        log.warning("JPEG 2000 structure unreadable (%s): %s", path, exc)
        raise CorruptImage("JPEG 2000 file structure could not be read") from exc


def _pinned(path: str, fd: int) -> str:
    """A name that opens the very file behind ``fd`` (Linux), else the path."""
    proc = f"/proc/self/fd/{fd}"
    return proc if os.path.exists(proc) else path


class Jp2Decoder(Decoder):
    name = "jp2"
    rank = 10
    decodes_regions = True

    @classmethod
    def can_read(cls, head: bytes) -> bool:
        return head[:12] == JP2_SIGNATURE or head[:4] == J2K_SIGNATURE

    def __init__(self, path: str) -> None:
        self._glymur = openjpeg.glymur_module()
        self.path = path
        self._fd = os.open(path, os.O_RDONLY)
        try:
            self._source = _pinned(path, self._fd)
            head = os.pread(self._fd, 4, 0)
            self._codec = openjpeg.CODEC_J2K if head == J2K_SIGNATURE else openjpeg.CODEC_JP2
            j2kcheck.check(self._fd)  # the declared size, before glymur or OpenJPEG sees it
            jp2 = _parse(self._glymur, self._source, path)
            try:
                structure = describe(jp2)
            except (IIPyError, MemoryError):
                raise
            except Exception as exc:  # glymur objects of an unexpected shape
                log.warning("JPEG 2000 header not understood (%s): %s", path, exc)
                raise CorruptImage("JPEG 2000 file structure could not be read") from exc
        except BaseException:
            os.close(self._fd)
            raise
        self._structure: Structure = structure
        self.info = structure.info
        self._errors = (self._glymur.lib.openjp2.OpenJPEGLibraryError, OSError)

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
        area = (
            max(ax * step, ox),
            max(ay * step, oy),
            min((ax + width) * step, ex),
            min((ay + height) * step, ey),
        )
        available = self.info.quality_layers
        wanted = layers_to_decode(layers, available)
        try:
            data = openjpeg.decode_area(
                self._glymur,
                self._source,
                self._codec,
                level,
                0 if wanted >= available else wanted,  # 0: all layers
                area,
            )
        except MemoryError:
            raise
        except self._errors as exc:
            log.warning("JPEG 2000 decode failed (%s, level %d): %s", self.path, level, exc)
            raise CorruptImage("JPEG 2000 data could not be decoded") from exc
        except ValueError as exc:
            log.warning("JPEG 2000 decode refused (%s): %s", self.path, exc)
            raise UnsupportedImage(f"JPEG 2000 data of this kind is not supported ({exc})") from exc
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
        try:
            os.close(self._fd)
        except OSError:
            pass


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
