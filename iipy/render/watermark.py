"""Dynamic watermarking (iip-protocol.md §10; WATERMARK, WATERMARK_PROBABILITY,
WATERMARK_OPACITY).

The watermark image is loaded once at start-up and precomputed into what a
tile needs: per output band layout, the 8-bit amount to add,
``add = trunc(wm · 255 · alpha · opacity)`` (as iipsrv: a pure red mark at
opacity 0.5 adds 127 to R), and ``ceiling = 255 − add``.  Applying it is then
a saturating add on a view of the output, ``out = min(src, ceiling) + add``,
which equals ``min(255, src + add)`` — two numpy calls on a watermark-sized
window, a few microseconds.

It is applied as the last pixel step of every image output (after
conversion to 8 bits, resizing, colour conversion and rotation): once per
tile, and per block of ``2 × max(tile width, tile height)`` for exports, as
iipsrv 1.3 does.  Each tile or block draws whether it is marked (probability)
and where (a random offset when the mark is smaller than the area; a mark
larger than the area is cropped at the right and bottom).  The random source
is passed in, so that tests can seed it; placement changes on every request.

Differences from iipsrv, on purpose: grey outputs receive the watermark's
luma (iipsrv adds its red channel), alpha bands of the output are never
changed, and outputs with any number of bands are handled (iipsrv overruns
past three).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

import numpy as np

from ..errors import ConfigError

LUMA = (0.299, 0.587, 0.114)

#: where a mark goes in an area: (x, y, width, height), cropped to the area
Spot = tuple[int, int, int, int]


class RandomSource(Protocol):
    """What the watermark needs of :class:`random.Random`."""

    def random(self) -> float: ...

    def randint(self, a: int, b: int) -> int: ...


class Watermark:
    """A loaded, premultiplied watermark.

    ``colour`` is (h, w, 3) or (h, w, 1) with unit values in [0, 1];
    ``alpha`` is (h, w) in [0, 1] or None (opaque).
    """

    def __init__(
        self,
        colour: np.ndarray,
        alpha: np.ndarray | None,
        opacity: float,
        probability: float,
    ) -> None:
        if colour.ndim != 3 or colour.shape[2] not in (1, 3) or colour.size == 0:
            raise ConfigError("WATERMARK must be a grey or colour image")
        self.opacity = float(min(1.0, max(0.0, opacity)))
        self.probability = float(min(1.0, max(0.0, probability)))
        self.height, self.width = colour.shape[:2]
        unit = colour.astype(np.float64)
        if unit.shape[2] == 1:
            rgb = np.repeat(unit, 3, axis=2)
        else:
            rgb = unit
        grey = (rgb * np.asarray(LUMA)).sum(axis=2, keepdims=True)
        weight = self.opacity * (np.ones(colour.shape[:2]) if alpha is None else alpha)
        weight = weight.astype(np.float64)[:, :, None]
        self._add = {
            3: _to_add(rgb * weight),
            1: _to_add(grey * weight),
        }
        self._ceiling = {bands: 255 - add for bands, add in self._add.items()}

    @property
    def active(self) -> bool:
        """False when it can never change a pixel (probability or opacity 0)."""
        return self.probability > 0.0 and self.opacity > 0.0

    def draw(self, rng: RandomSource) -> bool:
        """One probability draw: whether the next tile or block is marked."""
        return self.probability >= 1.0 or rng.random() < self.probability

    def stamp(self, pixels: np.ndarray, rng: RandomSource, left: int = 0, top: int = 0,
              width: int | None = None, height: int | None = None,
              spot: Spot | None = None) -> None:
        """Add the mark once, in place, at a random place inside an area.

        The area (default: the whole array) is ``pixels[top:top+height,
        left:left+width]``; ``pixels`` is uint8 (h, w, bands), writeable.
        ``spot``: a place already drawn with :meth:`place` for this area.
        No probability draw is made here (see :meth:`draw`).
        """
        window = self._window(pixels, rng, left, top, width, height, spot)
        if window is not None:
            self.add_to(window)

    def stamp_undoably(self, pixels: np.ndarray, rng: RandomSource,
                       spot: Spot | None = None) -> Callable[[], None]:
        """Stamp a whole tile in place; return a function that takes the mark off.

        For keeping (caching) the unmarked pixels after the marked ones are
        encoded without copying the tile: only the window (a few kB) is saved.
        The caller must own ``pixels`` while it is marked.
        """
        window = self._window(pixels, rng, 0, 0, None, None, spot)
        if window is None:
            return lambda: None
        saved = window.copy()
        self.add_to(window)
        return lambda: np.copyto(window, saved)

    def place(self, area_w: int, area_h: int, rng: RandomSource
              ) -> Spot | None:
        """Draw the mark's place in an area of ``area_w``×``area_h``: (x, y, w, h)
        relative to the area, the mark cropped at the right and bottom when it
        is larger; None when the area is empty."""
        x = rng.randint(0, area_w - self.width) if area_w > self.width else 0
        y = rng.randint(0, area_h - self.height) if area_h > self.height else 0
        w, h = min(self.width, area_w), min(self.height, area_h)
        if w <= 0 or h <= 0:
            return None
        return x, y, w, h

    def _window(self, pixels: np.ndarray, rng: RandomSource, left: int, top: int,
                width: int | None, height: int | None,
                spot: Spot | None = None) -> np.ndarray | None:
        """The view of ``pixels`` the mark covers at ``spot`` or, if None, at a
        place drawn in the area."""
        colour_bands = 3 if pixels.shape[2] >= 3 else 1
        area_w = pixels.shape[1] - left if width is None else width
        area_h = pixels.shape[0] - top if height is None else height
        if spot is None:
            spot = self.place(area_w, area_h, rng)
        if spot is None:
            return None
        x, y, w, h = spot
        return pixels[top + y : top + y + h, left + x : left + x + w, :colour_bands]

    def add_to(self, window: np.ndarray) -> None:
        """The formula on a window the mark covers, in place: ``min(src, 255 - add)
        + add`` on uint8 (h, w, bands), bands 1 or 3, the mark cropped to it."""
        h, w, bands = window.shape
        np.minimum(window, self._ceiling[bands][:h, :w], out=window)
        window += self._add[bands][:h, :w]

    def apply(self, pixels: np.ndarray, rng: RandomSource, block: int = 0) -> np.ndarray:
        """Mark a tile (``block`` 0: one area) or an export, block by block.

        Returns the (possibly copied, now writeable) array.
        """
        if not self.active:
            return pixels
        if not pixels.flags.writeable or not pixels.flags.c_contiguous:
            pixels = np.array(pixels, copy=True)
        height, width = pixels.shape[:2]
        if block <= 0 or (width <= block and height <= block):
            if self.draw(rng):
                self.stamp(pixels, rng)
            return pixels
        for top in range(0, height, block):
            for left in range(0, width, block):
                if self.draw(rng):
                    self.stamp(
                        pixels, rng, left, top, min(block, width - left), min(block, height - top)
                    )
        return pixels


def _to_add(values: np.ndarray) -> np.ndarray:
    """Unit values × 255 → uint8, truncated as iipsrv does (tiny epsilon for
    values that are whole numbers but land a hair below in binary floating point)."""
    return np.clip(np.floor(values * 255.0 + 1e-6), 0, 255).astype(np.uint8)


def load_watermark(path: str, opacity: float, probability: float) -> Watermark | None:
    """The configured watermark, or None when WATERMARK is empty.

    A missing, unreadable or non-TIFF file stops start-up with a ConfigError
    naming WATERMARK (iipsrv silently turns watermarking off instead).
    """
    if not path:
        return None
    from ..decoders.overlay import read_overlay

    colour, alpha = read_overlay(path)
    return Watermark(colour, alpha, opacity, probability)
