"""The decoder boundary.

A decoder opens one image file, describes it (:class:`ImageInfo`) and reads
pixels of one pyramid level: a tile or a box, nothing more.  Pixels come back
as numpy arrays of shape (height, width, bands) in the source's sample type;
turning them into 8-bit output is the renderer's business.

Decoders are found by magic bytes (:func:`iipy.decoders.decoder_for`); plug-ins
register under the entry-point group ``iipy.decoders``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import ClassVar

import numpy as np

from ..errors import NotFound
from ..models import ImageInfo


class Decoder(ABC):
    """One open image.  Instances are cached per process and reused."""

    #: Short name, shown in logs and used as the entry-point name.
    name: ClassVar[str] = ""
    #: Higher ranks are asked first when several decoders claim a file.
    rank: ClassVar[int] = 0
    #: True if the codec decodes arbitrary regions itself (JPEG 2000); False if
    #: regions are assembled from stored tiles (TIFF).
    decodes_regions: ClassVar[bool] = False

    info: ImageInfo

    @classmethod
    @abstractmethod
    def can_read(cls, head: bytes) -> bool:
        """Whether the first 16 bytes of a file look like this format."""

    @classmethod
    def open(cls, path: str, max_pixels: int) -> Decoder:
        """Open ``path``; ``max_pixels`` (MAX_SOURCE_PIXELS) bounds what a decoder
        that decodes whole images (untiled sources) may accept.  A decoder may
        hand the file to another class (a strip TIFF to the untiled reader)."""
        return cls(path)

    @abstractmethod
    def __init__(self, path: str) -> None:
        """Open ``path`` and read its metadata; raise CorruptImage if unreadable."""

    @abstractmethod
    def read_region(
        self, level: int, left: int, top: int, width: int, height: int, layers: int = 0
    ) -> np.ndarray:
        """Pixels of a box of native level ``level`` (0 = full resolution).

        The box must lie inside the level.  ``layers`` is the number of
        quality layers to decode, for formats that have them (JPEG 2000):
        0 = the decoder's default (half, rounded up), negative = all, n = n.
        It is only ever passed (non-zero) to decoders whose ImageInfo has
        ``quality_layers``; others may leave it out of their signature.
        """

    def read_tile(self, level: int, column: int, row: int, layers: int = 0) -> np.ndarray:
        """Pixels of one tile of the level's grid, cropped at the edges."""
        box = self.info.levels[level].tile_box(column, row)
        if layers:
            return self.read_region(level, *box, layers=layers)
        return self.read_region(level, *box)

    def raw_tile(self, level: int, column: int, row: int) -> bytes | None:
        """The tile as a stand-alone JPEG without decoding, when possible.

        Only whole (not edge-cropped) tiles stored as JPEG qualify; anything
        else returns None and the caller decodes.
        """
        return None

    def release(self) -> None:  # noqa: B027 - optional hook
        """Drop decoded data kept between reads (caches of the codec library).

        Called between the pieces of a read too big to keep cached
        (:mod:`iipy.render.limits`), so memory stays bounded by one piece."""

    @property
    def pages(self) -> int:
        """Number of pages (a stack's images); 1 for a single image."""
        return 1

    def page(self, number: int) -> Decoder:
        """The decoder of page ``number`` (0-based); a single image has only page 0."""
        if number == 0:
            return self
        raise NotFound(f"no page {number}")

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release file handles."""


def quality_layers(requested: int, max_layers: int) -> int:
    """The ``layers`` to ask a decoder for, from LYR and MAX_LAYERS (iipsrv's rule).

    MAX_LAYERS > 0 caps LYR (an unset or larger LYR gets the cap); MAX_LAYERS
    < 0 means all layers unless LYR is given; MAX_LAYERS = 0 passes LYR
    through (0 = the decoder's default, half the layers rounded up).
    """
    if max_layers > 0:
        return requested if 0 < requested < max_layers else max_layers
    if max_layers < 0 and requested == 0:
        return -1
    return requested
