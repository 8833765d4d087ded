"""Plain data shared by protocols, decoders and the renderer.

``ImageInfo`` is what a decoder knows about an image without decoding pixels.
``View`` is what one request asks to produce: every protocol compiles its URL
into a View, and the renderer needs nothing else.  A View is frozen and
hashable, so it is also the key of the tile cache.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum


class ColourSpace(str, Enum):
    SRGB = "srgb"
    GREY = "grey"
    BINARY = "binary"
    CIELAB = "cielab"


class SampleFormat(str, Enum):
    UINT = "uint"
    INT = "int"
    FLOAT = "float"


@dataclass(frozen=True)
class Level:
    """One pyramid level: its size and the tile grid it is served on."""

    width: int
    height: int
    tile_width: int
    tile_height: int

    @property
    def columns(self) -> int:
        return max(1, math.ceil(self.width / self.tile_width))

    @property
    def rows(self) -> int:
        return max(1, math.ceil(self.height / self.tile_height))

    @property
    def tile_count(self) -> int:
        return self.columns * self.rows

    def tile_box(self, column: int, row: int) -> tuple[int, int, int, int]:
        """(left, top, width, height) of a tile, cropped at the level's edge."""
        left = column * self.tile_width
        top = row * self.tile_height
        return (
            left,
            top,
            min(self.tile_width, self.width - left),
            min(self.tile_height, self.height - top),
        )


@dataclass(frozen=True)
class ImageInfo:
    """Facts about an image, as a decoder reports them.

    ``levels`` are in native order: ``levels[0]`` is the full resolution.  IIP
    resolution numbers run the other way (0 = smallest); see
    :meth:`level_for_resolution`.
    """

    format: str
    levels: tuple[Level, ...]
    bands: int
    bits: int
    sample_format: SampleFormat = SampleFormat.UINT
    colour_space: ColourSpace = ColourSpace.SRGB
    min_values: tuple[float, ...] = ()
    max_values: tuple[float, ...] = ()
    icc: bytes | None = None
    xmp: bytes | None = None
    exif: bytes | None = None  # TIFF-structured EXIF, without JPEG's "Exif\0\0"
    dpi: tuple[float, float] | None = None  # pixels per metre, x and y
    resolution_unit: str = ""  # "in", "cm" or "" as stored in the file
    metadata: Mapping[str, str] = field(default_factory=dict)
    quality_layers: int = 0
    #: a multi-page stack's pages, (name, scale) each, in page order (OBJ=stack); () for
    #: a single image.  Every page's ImageInfo carries the whole stack.
    stack: tuple[tuple[str, float], ...] = ()

    @property
    def width(self) -> int:
        return self.levels[0].width

    @property
    def height(self) -> int:
        return self.levels[0].height

    @property
    def resolutions(self) -> int:
        return len(self.levels)

    def level_for_resolution(self, resolution: int) -> tuple[int, Level]:
        """IIP resolution (0 = smallest) → (native index, Level)."""
        native = len(self.levels) - 1 - resolution
        return native, self.levels[native]


class OutputFormat(str, Enum):
    JPEG = "jpeg"
    PNG = "png"
    WEBP = "webp"
    TIFF = "tiff"
    AVIF = "avif"

    @property
    def mime(self) -> str:
        return _MIME[self]

    @property
    def extension(self) -> str:
        return _EXTENSION[self]


_MIME = {
    OutputFormat.JPEG: "image/jpeg",
    OutputFormat.PNG: "image/png",
    OutputFormat.WEBP: "image/webp",
    OutputFormat.TIFF: "image/tiff",
    OutputFormat.AVIF: "image/avif",
}
_EXTENSION = {
    OutputFormat.JPEG: "jpg",
    OutputFormat.PNG: "png",
    OutputFormat.WEBP: "webp",
    OutputFormat.TIFF: "tif",
    OutputFormat.AVIF: "avif",
}


@dataclass(frozen=True)
class Processing:
    """Pixel operations a request asks for (IIP setters; IIIF quality).

    The default instance asks for nothing, which is what allows cached and
    pass-through tiles.
    """

    contrast: float = 1.0
    gamma: float = 1.0
    invert: bool = False
    colour: str = ""  # "", "grey" or "binary"
    rotation: int = 0  # 0, 90, 180, 270
    mirror: bool = False
    angle: float = 0.0  # further clockwise rotation in degrees, not a multiple of 90 (IIIF)
    # issue 3: the rest of iipsrv's processing commands (iip-protocol.md §2.12-2.22)
    stretch: bool = False  # CNT=st: normalise between the histogram's first and last bins
    equalize: bool = False  # CNT=eq: histogram equalisation after the float pipeline
    log: bool = False  # GAM=log: out = ln(1 + 255 v) / ln(256)
    colormap: str = ""  # CMP: "", hot, cold, jet, blue, green, red
    twist: tuple[tuple[float, ...], ...] = ()  # CTW rows = output bands
    shade: tuple[int, int] | None = None  # SHD: light azimuth, elevation (degrees)
    convolution: tuple[float, ...] = ()  # CNV: square kernel, odd side, row-major
    minmax: tuple[tuple[int, float, float], ...] = ()  # MINMAX: (band or -1 = all, min, max)

    @property
    def floating(self) -> bool:
        """Whether the float pipeline (normalise … contrast) must run (iipsrv 1.2+ rule)."""
        return (
            self.contrast != 1.0
            or self.gamma != 1.0
            or self.log
            or self.stretch
            or self.invert
            or bool(self.colormap)
            or bool(self.twist)
            or self.shade is not None
            or bool(self.convolution)
            or bool(self.minmax)
        )

    @property
    def needs_histogram(self) -> bool:
        return self.stretch or self.equalize or self.colour == "binary"

    @property
    def is_identity(self) -> bool:
        return self == _IDENTITY


_IDENTITY = Processing()


@dataclass(frozen=True)
class View:
    """What one request produces.

    ``kind`` is ``"tile"`` (``resolution``, ``tile``) or ``"region"``.
    ``quality`` None means the server default for the format.  ``stamp`` is
    the file version the request was checked against (from
    ``ImageRecord.stamp``); the renderer then needs no second ``stat``.
    ``layers`` is IIP's LYR, the JPEG 2000 quality layers asked for (0 = not
    given).  ``compression`` is the TIFF compression asked for with
    ``QLT=<compression>:<quality>`` (:data:`TIFF_COMPRESSIONS` codes; -1 =
    TIFF_COMPRESSION), part of the View so the tile cache keeps them apart.
    ``page`` is the page of a multi-page stack (IIP SDS, IIIF_DELIMITER); it is
    part of every cache key, so one page is never served for another.
    """

    path: str
    kind: str
    format: OutputFormat = OutputFormat.JPEG
    quality: int | None = None
    resolution: int = 0
    tile: int = 0
    processing: Processing = field(default_factory=Processing)
    stamp: tuple[int, ...] = ()
    layers: int = 0
    compression: int = -1
    page: int = 0


#: TIFF output compressions by iipsrv's QLT/TIFF_COMPRESSION codes
TIFF_COMPRESSIONS = ("none", "lzw", "deflate", "jpeg", "webp", "zstd")


@dataclass(frozen=True)
class Probe:
    """Raw samples one request reads (IIP SPECTRA and PFL): the box
    ``(left, top, width, height)`` of IIP resolution ``resolution`` (0 = the
    smallest), of every page of a stack or of the one image, in the file's
    sample type and without any processing.  ``layers`` is as in
    :class:`View`; ``max_values`` bounds the samples (pixels × bands × pages)
    the answer may hold."""

    path: str
    resolution: int
    box: tuple[int, int, int, int]
    layers: int = 0
    max_values: int = 1 << 20
