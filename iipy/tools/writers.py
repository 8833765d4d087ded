"""Write one image the way iipy serves fastest: a tiled pyramidal TIFF or a tiled JPEG 2000.

TIFF: libvips ``tiffsave`` with a pyramid halving down to one tile, JPEG q=89
with YCbCr 4:2:0 chroma for colour (what a browser gets as a pass-through tile,
with no decode), BigTIFF when the output may pass 4 GB.  Why 89 and not 90:
libvips subsamples TIFF JPEG tiles only below q=90; from 90 up it stores RGB
4:4:4 tiles, 2.3 times larger, which iipy's DCT-domain watermark cannot mark.
16-bit and float samples are kept, so JPEG falls back to deflate for them
(or ask for ``--compression deflate|zstd|lzw|none``).

JPEG 2000: glymur/OpenJPEG fed tile by tile from a sequential libvips read, so
only one row of codestream tiles (``JP2_TILE`` pixels high) is in memory
whatever the image size; 256×256 precincts, 64×64 code-blocks, RPCL, enough
resolutions for the smallest level to fit in one 256 tile, a compression rate
or ``lossless`` (the reversible 5-3 wavelet).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

#: codestream tile side for JPEG 2000 output: bounds memory to one row of these
JP2_TILE = 1024
#: served tile side and precinct side (iipsrv serves JPEG 2000 on a 256 grid)
JP2_PRECINCT = 256
JP2_CODEBLOCK = 64
#: above this estimate of the output size, write BigTIFF (classic TIFF offsets are 32-bit)
BIGTIFF_THRESHOLD = 2**32 - 2**28
COMPRESSIONS = ("jpeg", "deflate", "lzw", "webp", "zstd", "none")

Progress = Callable[[int, int], None]  # (done, total)


@dataclass(frozen=True)
class Options:
    format: str = "tiff"  # or "jp2"
    compression: str = "jpeg"
    quality: int = 89
    tile: int = 256
    bigtiff: str = "auto"  # "yes", "no"
    lossless: bool = False
    threads: int = 0  # 0: the libraries' default


def load(source: Path) -> Any:
    """The source as a pyvips image read top to bottom (sequential access), first page."""
    import pyvips

    return pyvips.Image.new_from_file(str(source), access="sequential")


def pixel_depth(image: Any) -> tuple[int, bool]:
    """(bits per sample, floating point) of a pyvips image."""
    fmt = image.format
    bits = {"uchar": 8, "char": 8, "ushort": 16, "short": 16, "uint": 32, "int": 32,
            "float": 32, "double": 64, "complex": 64, "dpcomplex": 128}.get(fmt, 8)
    return bits, fmt in ("float", "double", "complex", "dpcomplex")


def tiff_compression(image: Any, options: Options) -> str:
    """The codec actually used: JPEG only holds 8-bit samples and 1-4 bands."""
    bits, _ = pixel_depth(image)
    if options.lossless and options.compression in ("jpeg", "webp"):
        return "webp" if options.compression == "webp" else "deflate"
    if options.compression == "jpeg" and (bits != 8 or image.bands not in (1, 3)):
        return "deflate"
    return options.compression


def wants_bigtiff(image: Any, options: Options, compression: str) -> bool:
    if options.bigtiff in ("yes", "no"):
        return options.bigtiff == "yes"
    bits, _ = pixel_depth(image)
    raw = image.width * image.height * image.bands * max(1, bits // 8) * 4 / 3  # + pyramid
    ratio = {"jpeg": 0.25, "webp": 0.25}.get(compression, 1.0)  # pessimistic
    return raw * ratio > BIGTIFF_THRESHOLD


def write_tiff(image: Any, target: Path, options: Options, progress: Progress | None) -> dict:
    """Pyramidal tiled TIFF at ``target``; returns what was chosen.  ``progress`` None:
    no libvips progress signal (each one calls back into Python)."""
    compression = tiff_compression(image, options)
    bigtiff = wants_bigtiff(image, options, compression)
    kwargs: dict[str, Any] = dict(
        tile=True, pyramid=True, tile_width=options.tile, tile_height=options.tile,
        compression=compression, bigtiff=bigtiff,
    )
    if compression == "jpeg":
        kwargs["Q"] = options.quality  # libvips writes colour as YCbCr 4:2:0 (libtiff's)
    elif compression == "webp":
        kwargs["Q"] = options.quality
        kwargs["lossless"] = options.lossless
    elif compression in ("deflate", "lzw", "zstd"):
        _, floating = pixel_depth(image)
        kwargs["predictor"] = "float" if floating else "horizontal"
    if image.interpretation == "multiband" and image.bands == 3:
        image = image.copy(interpretation="srgb")
    if progress is not None:
        report = progress
        image.set_progress(True)
        image.signal_connect("eval", lambda _img, p: report(min(p.percent, 99), 100))
    image.tiffsave(str(target), **kwargs)
    if progress is not None:
        progress(100, 100)
    return {"compression": compression, "bigtiff": bigtiff}


def resolutions_for(width: int, height: int, tile: int = JP2_PRECINCT) -> int:
    """Resolution count so that the smallest level fits in one ``tile``."""
    count = 1
    while math.ceil(width / 2 ** (count - 1)) > tile or math.ceil(height / 2 ** (count - 1)) > tile:
        count += 1
    return count


def jp2_tile_side(numres: int) -> int:
    """JP2_TILE, grown when the image needs more resolutions than such tiles allow
    (OpenJPEG wants tiles of at least 2^(numres-1))."""
    side = JP2_TILE
    while side < 2 ** (numres - 1):
        side *= 2
    return side


def _jp2_array(image: Any) -> tuple[Any, np.dtype]:
    """A pyvips image reduced to what JPEG 2000 holds: 1-4 bands of uint8/uint16."""
    bits, floating = pixel_depth(image)
    if image.interpretation in ("labs", "lab", "xyz", "cmyk"):
        image = image.colourspace("srgb")
    if floating:
        image = (image * (255 if image.max() <= 1.0 else 1)).cast("uchar")
    elif bits > 16:
        image = (image >> (bits - 16)).cast("ushort")
    elif image.format in ("char", "short"):
        image = image.cast("uchar" if bits == 8 else "ushort")
    dtype = np.dtype(np.uint16 if image.format == "ushort" else np.uint8)
    return image, dtype


def write_jp2(image: Any, target: Path, options: Options, progress: Progress) -> dict:
    """Tiled JPEG 2000 written tile by tile; returns what was chosen."""
    import glymur

    image, dtype = _jp2_array(image)
    width, height, bands = image.width, image.height, image.bands
    numres = resolutions_for(width, height)
    side = jp2_tile_side(numres)
    th, tw = min(side, height), min(side, width)
    while numres > 1 and min(th, tw) < 2 ** (numres - 1):
        numres -= 1  # a small image: OpenJPEG's limit on tile size wins
    if options.threads:
        glymur.set_option("lib.num_threads", options.threads)
    kwargs: dict[str, Any] = dict(
        numres=numres, prog="RPCL", psizes=[(JP2_PRECINCT, JP2_PRECINCT)] * numres,
        cbsize=(JP2_CODEBLOCK, JP2_CODEBLOCK), plt=True, tlm=True,
    )  # 256 precincts at every resolution (opj_compress would halve them below the top)
    if not options.lossless:
        kwargs["irreversible"] = True
        kwargs["cratios"] = (rate_for_quality(options.quality, dtype),)
    rows, columns = math.ceil(height / th), math.ceil(width / tw)

    def strip(top: int, h: int) -> np.ndarray:
        return np.ndarray(buffer=image.crop(0, top, width, h).write_to_memory(), dtype=dtype,
                          shape=(h, width, bands))

    def planes(array: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(array if bands > 1 else array[:, :, 0])

    if rows * columns == 1:  # glymur writes a single tile only as a whole image
        glymur.Jp2k(str(target), data=planes(strip(0, height)), **kwargs)
        progress(1, 1)
    else:
        jp2 = glymur.Jp2k(str(target), shape=(height, width, bands) if bands > 1
                          else (height, width), tilesize=(th, tw), **kwargs)
        current = None
        for index, writer in enumerate(jp2.get_tilewriters()):
            row, column = divmod(index, columns)
            if column == 0:
                current = strip(row * th, min(th, height - row * th))
            left = column * tw
            writer[:] = planes(current[:, left:left + min(tw, width - left)])  # type: ignore
            progress(index + 1, rows * columns)
    return {"compression": "lossless" if options.lossless else "irreversible",
            "resolutions": numres, "jp2_tile": (tw, th)}


def rate_for_quality(quality: int, dtype: np.dtype) -> float:
    """A compression ratio for a JPEG-like quality (q90 ≈ 20:1 for 8-bit colour)."""
    quality = max(1, min(100, quality))
    ratio = 2.0 ** ((100 - quality) / 10.0) * 10.0
    return round(ratio * (2 if dtype == np.uint16 else 1), 2)
