"""What a JPEG 2000 file is, from its header boxes and codestream header.

Pure functions over a parsed glymur handle (no pixels are decoded), kept
apart from the decoder so the level arithmetic can be tested on its own.

Levels are numbered as iipsrv numbers them (iip-protocol.md §11.4), so IIP
resolution indices agree with iipsrv on the same file: the full size is
halved (rounding down) until it fits in one 256×256 tile, and that count of
steps plus one is the number of levels.  The first of them come from the
codestream's resolutions (a file with more resolutions than that has its
smallest ones left unused, as in iipsrv); any still missing are *virtual*
levels, made by downscaling the smallest real one.  Sizes are the true
sizes, not iipsrv 1.1's ``floor(x/2)``: a codestream level is
``ceil(x1/2^r) - ceil(x0/2^r)`` on the reference grid, a virtual level
``ceil(w/2^k)`` of the smallest real level.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from ..errors import CorruptImage, UnsupportedImage
from ..models import ColourSpace, ImageInfo, Level, SampleFormat
from .exif import exif_block

#: The virtual tile grid iipsrv serves JPEG 2000 on, every level.
TILE = 256
#: JP2 signature box, and the SOC + SIZ markers that open a raw codestream.
JP2_SIGNATURE = b"\x00\x00\x00\x0cjP  \r\n\x87\n"
J2K_SIGNATURE = b"\xff\x4f\xff\x51"
XMP_UUID = UUID("be7acfcb-97a9-42e8-9c71-999491e3afac")
#: the UUID box of EXIF in JPEG 2000 (the convention of ExifTool and libvips)
EXIF_UUID = UUID(bytes=b"JpgTiffExif->JP2")

# colr box enumerated colour spaces (ISO/IEC 15444-1 Table I.10, 15444-2 M.25)
ENUM_SRGB, ENUM_GREY, ENUM_SYCC = 16, 17, 18
_ENUM_NAMES = {
    0: "bi-level",
    1: "YCbCr(1)",
    3: "YCbCr(2)",
    4: "YCbCr(3)",
    9: "PhotoYCC",
    11: "CMY",
    12: "CMYK",
    13: "YCCK",
    14: "CIELab",
    15: "bi-level(2)",
    18: "sYCC",
    19: "CIEJab",
    20: "e-sRGB",
    21: "ROMM-RGB",
    22: "YPbPr(1125/60)",
    23: "YPbPr(1250/50)",
    24: "e-sYCC",
}


@dataclass(frozen=True)
class Structure:
    """An image's facts plus what the decoder needs to map levels to reads."""

    info: ImageInfo
    real_levels: int  # levels 0..real_levels-1 are decoded at that reduce factor
    origin: tuple[int, int]  # image offset on the reference grid (XOsiz, YOsiz)
    end: tuple[int, int]  # image end on the reference grid (Xsiz, Ysiz)
    one_bit: bool  # 1-bit samples, scaled to 0/255 when read


def iip_level_count(width: int, height: int, tile: int = TILE) -> int:
    """iipsrv's number of levels: floor-halvings until one tile holds the image, plus one."""
    count = 1
    while width > tile or height > tile:
        width, height = width // 2, height // 2
        count += 1
    return count


def reduced(start: int, end: int, factor: int) -> int:
    """Size of the reference-grid span [start, end) at reduce factor 2^factor."""
    step = 1 << factor
    return -(-end // step) - -(-start // step)


def level_sizes(
    origin: tuple[int, int], end: tuple[int, int], resolutions: int
) -> tuple[list[tuple[int, int]], int]:
    """(sizes of every level, full size first; how many are real) for a codestream
    with ``resolutions`` resolutions (DWT levels + 1) and the given grid span."""
    (x0, y0), (x1, y1) = origin, end
    width, height = x1 - x0, y1 - y0
    count = iip_level_count(width, height)
    real = max(1, min(count, resolutions))
    sizes = [(reduced(x0, x1, r), reduced(y0, y1, r)) for r in range(real)]
    base_w, base_h = sizes[-1]
    for k in range(1, count - real + 1):
        sizes.append((-(-base_w // (1 << k)), -(-base_h // (1 << k))))
    return sizes, real


def _segment(codestream: Any, marker: str) -> Any:
    for segment in getattr(codestream, "segment", ()):
        if getattr(segment, "marker_id", None) == marker:
            return segment
    raise CorruptImage(f"JPEG 2000 codestream has no {marker} marker")


def _boxes(jp2: Any, box_id: str) -> list[Any]:
    """Boxes with this id, at the top level or inside the JP2 header box."""
    found = []
    for box in getattr(jp2, "box", None) or ():
        if box.box_id == box_id:
            found.append(box)
        if box.box_id == "jp2h":
            for child in box.box or ():
                if child.box_id == box_id:
                    found.append(child)
    return found


def _resolution(jp2: Any) -> tuple[float, float] | None:
    """Capture resolution (resc), else display resolution (resd): pixels per metre, x and y."""
    for res in _boxes(jp2, "res "):
        children = {child.box_id: child for child in res.box or ()}
        for kind in ("resc", "resd"):
            box = children.get(kind)
            if box is not None and box.horizontal_resolution > 0 and box.vertical_resolution > 0:
                return float(box.horizontal_resolution), float(box.vertical_resolution)
    return None


def _colour(jp2: Any, bands: int, bits: int) -> tuple[ColourSpace, bytes | None]:
    """Colour space from the number of bands, checked against the colr box; its ICC profile."""
    colour = ColourSpace.SRGB if bands >= 3 else ColourSpace.GREY
    if bands == 1 and bits == 1:
        colour = ColourSpace.BINARY
    colr = _boxes(jp2, "colr")
    if not colr:
        return colour, None
    box = colr[0]
    icc = getattr(box, "icc_profile", None)
    if isinstance(icc, (bytes, bytearray)) and icc:
        return colour, bytes(icc)
    enumerated = getattr(box, "colorspace", None)
    if enumerated is None or enumerated in (ENUM_SRGB, ENUM_GREY):
        return colour, None
    name = _ENUM_NAMES.get(enumerated, f"enumerated colour space {enumerated}")
    raise UnsupportedImage(f"JPEG 2000 images in the {name} colour space are not supported")


def describe(jp2: Any) -> Structure:
    """The Structure of a parsed glymur handle; UnsupportedImage or CorruptImage if unusable."""
    codestream = jp2.codestream
    if codestream is None:
        raise UnsupportedImage("JPEG 2000 file has no contiguous codestream")
    siz = _segment(codestream, "SIZ")
    cod = _segment(codestream, "COD")
    origin, end = (int(siz.xosiz), int(siz.yosiz)), (int(siz.xsiz), int(siz.ysiz))
    if end[0] <= origin[0] or end[1] <= origin[1]:
        raise CorruptImage("JPEG 2000 image has no size")
    depths, signs = tuple(siz.bitdepth), tuple(siz.signed)
    if not depths or any(d != depths[0] for d in depths) or any(s != signs[0] for s in signs):
        raise UnsupportedImage("JPEG 2000 components of different bit depths are not supported")
    if any(v != 1 for v in tuple(siz.xrsiz) + tuple(siz.yrsiz)):
        raise UnsupportedImage("JPEG 2000 images with subsampled components are not supported")
    bits, signed, bands = int(depths[0]), bool(signs[0]), len(depths)
    palette = _boxes(jp2, "pclr")
    if palette:
        bands = int(palette[0].palette.shape[1])
        bits = max(int(b) for b in palette[0].bits_per_component)
        signed = False
    if bits > 16:
        raise UnsupportedImage(f"{bits}-bit JPEG 2000 samples are not supported")
    colour, icc = _colour(jp2, bands, bits)
    resolutions = int(cod.num_res) + 1  # decomposition levels + 1
    sizes, real = level_sizes(origin, end, resolutions)
    one_bit = bits == 1
    if signed:
        low, high = float(-(1 << (bits - 1))), float((1 << (bits - 1)) - 1)
    else:
        low, high = 0.0, float(255 if one_bit else (1 << bits) - 1)
    xmp = next(
        (bytes(box.raw_data) for box in _boxes(jp2, "uuid") if box.uuid == XMP_UUID),
        None,
    )
    dpi = _resolution(jp2)
    exif = next(
        (exif_block(bytes(box.raw_data)) for box in _boxes(jp2, "uuid")
         if box.uuid == EXIF_UUID),
        None,
    )
    info = ImageInfo(
        format="jpeg2000",
        levels=tuple(Level(w, h, TILE, TILE) for w, h in sizes),
        bands=bands,
        bits=bits,
        sample_format=SampleFormat.INT if signed else SampleFormat.UINT,
        colour_space=colour,
        min_values=(low,) * bands,
        max_values=(high,) * bands,
        icc=icc,
        xmp=xmp or None,
        exif=exif,
        dpi=dpi,
        resolution_unit="cm" if dpi else "",  # JPEG 2000 stores resolution per metre
        quality_layers=max(1, int(cod.layers)),
    )
    return Structure(info, real, origin, end, one_bit)


def layers_to_decode(requested: int, available: int) -> int:
    """Quality layers to decode for a decoder-level request (iipsrv's rule).

    ``requested`` < 0: all; 0: half of them, rounded up; n > 0: n (at most
    all).  Never fewer than one.
    """
    if requested < 0:
        wanted = available
    elif requested == 0:
        wanted = math.ceil(available / 2)
    else:
        wanted = requested
    return max(1, min(wanted, available))
