"""Plain JPEG and PNG files, decoded by libvips (see :mod:`.flat`).

JPEG levels are decoded at the smallest DCT scale that covers them
(``jpegload``'s ``shrink``: libjpeg scales to 1/2, 1/4 or 1/8 while
decoding), then box-averaged by the remaining power of two; iipsrv 1.3 drops
pixels instead.  PNG has no reduced decode: a level is the full image
box-averaged by 2^level.  Both are read sequentially, so a band costs the
rows above it and nothing is held but the band.

A progressive JPEG or interlaced PNG cannot be decoded row by row (libjpeg
keeps all coefficients, libvips the whole PNG): one that would hold more
than :data:`WHOLE_BYTES` is refused when opened.

A truncated or damaged file is an error (``fail_on="truncated"``), not grey
rows.  ICC profiles and XMP packets are reported in the ImageInfo.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from ..errors import CorruptImage, ImageTooLarge
from ..models import ColourSpace, ImageInfo
from .flat import FlatDecoder, check_size, synthesised_levels

log = logging.getLogger(__name__)

_FORMATS = {"uchar": (np.uint8, 8), "ushort": (np.uint16, 16)}
#: A progressive JPEG keeps every DCT coefficient (2 bytes a sample) while it
#: decodes, an interlaced PNG every pixel: the most such a decode may hold.
WHOLE_BYTES = 1 << 28


class _VipsFlat(FlatDecoder):
    loader = ""
    format = ""

    def _load(self, **options: Any) -> Any:
        import pyvips

        try:
            return getattr(pyvips.Image, self.loader)(
                self.path, revalidate=True, fail_on="truncated", **options)
        except pyvips.Error as exc:
            raise CorruptImage(f"{self.format.upper()} image could not be read") from exc

    def _open(self) -> ImageInfo:
        image = self._load()  # the header only: no pixel is decoded here
        check_size(image.width, image.height, self.max_pixels, self.path)
        if image.format not in _FORMATS:
            raise CorruptImage(f"unsupported {self.format.upper()} sample type")
        self._dtype, bits = _FORMATS[image.format]
        whole = _held_whole(image)
        if whole > WHOLE_BYTES:
            log.warning("refused: %s is progressive or interlaced and needs %d bytes held "
                        "whole to decode", self.path, whole)
            raise ImageTooLarge("progressive or interlaced image is too large to decode")
        self._cmyk = image.interpretation == "cmyk"
        bands = 3 if self._cmyk else image.bands
        colour = ColourSpace.GREY if bands <= 2 else ColourSpace.SRGB
        dpi = None
        if image.xres > 0 and image.yres > 0 and image.get_typeof("resolution-unit"):
            dpi = (image.xres * 1000.0, image.yres * 1000.0)
        unit = image.get("resolution-unit") if image.get_typeof("resolution-unit") else ""
        return ImageInfo(
            format=self.format,
            levels=synthesised_levels(image.width, image.height),
            bands=bands,
            bits=bits,
            colour_space=colour,
            min_values=(0.0,) * bands,
            max_values=(float((1 << bits) - 1),) * bands,
            # a CMYK file's profile describes CMYK: the output is converted to sRGB
            icc=None if self._cmyk else _blob(image, "icc-profile-data"),
            xmp=_blob(image, "xmp-data"),
            dpi=dpi,
            resolution_unit=unit if unit in ("in", "cm") else "",
        )

    def _scaled(self, level: int) -> Any:
        """The image at level ``level`` (at least its size), not yet decoded."""
        image = self._load(access="sequential")
        if level:
            image = image.shrink(1 << level, 1 << level)
        return image

    def _decode(self, level: int, top: int, rows: int) -> np.ndarray:
        import pyvips

        lv = self.info.levels[level]
        image = self._scaled(level)
        if self._cmyk:
            image = image.colourspace("srgb").cast("uchar")
        if image.width < lv.width or image.height < lv.height:
            image = image.embed(0, 0, max(lv.width, image.width), max(lv.height, image.height),
                                extend="copy")
        try:
            data = image.crop(0, top, lv.width, rows).write_to_memory()
        except pyvips.Error as exc:
            raise CorruptImage(f"{self.format.upper()} image data could not be decoded") from exc
        array = np.frombuffer(data, dtype=self._dtype)
        if array.size != rows * lv.width * self.info.bands:
            raise CorruptImage(f"{self.format.upper()} image data could not be decoded")
        return array.reshape(rows, lv.width, self.info.bands)


class JpegDecoder(_VipsFlat):
    name = "jpeg"
    rank = 5
    loader = "jpegload"
    format = "jpeg"

    @classmethod
    def can_read(cls, head: bytes) -> bool:
        return head[:3] == b"\xff\xd8\xff"

    def _scaled(self, level: int) -> Any:
        dct = min(level, 3)  # libjpeg scales by 1/2, 1/4 or 1/8 while decoding
        image = self._load(access="sequential", shrink=1 << dct)
        if level > dct:
            image = image.shrink(1 << (level - dct), 1 << (level - dct))
        return image


class PngDecoder(_VipsFlat):
    name = "png"
    rank = 5
    loader = "pngload"
    format = "png"

    @classmethod
    def can_read(cls, head: bytes) -> bool:
        return head[:8] == b"\x89PNG\r\n\x1a\n"


def _held_whole(image: Any) -> int:
    """Bytes a decode of ``image`` holds whatever the band: 0 for baseline
    JPEG and non-interlaced PNG, which libvips decodes row by row."""
    progressive = image.get_typeof("jpeg-multiscan") and image.get("jpeg-multiscan")
    interlaced = image.get_typeof("interlaced") and image.get("interlaced")
    if not (progressive or interlaced):
        return 0
    per_sample = 2 if progressive else np.dtype(_FORMATS[image.format][0]).itemsize
    return int(image.width) * int(image.height) * int(image.bands) * per_sample


def _blob(image: Any, name: str) -> bytes | None:
    if not image.get_typeof(name):
        return None
    value = image.get(name)
    return bytes(value) if value else None
