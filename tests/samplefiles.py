"""Images for the SPECTRA and PFL tests: numpy arrays of every sample type and
band count written as tiled pyramidal TIFFs with pyvips (lossless, so the
array is what the file holds), and image stacks for a decoder plug-in.

Expected answers are computed here from the arrays, with the rules of
iip-protocol.md §2.23/§2.24 (iipsrv 1.3's formats), never by iipy's code.

Stacks of pages with random samples of any type (tests/stacks.py makes real
multi-page TIFFs of flat colours, tests/test_spectra_stacks.py): a small text
file (``STACK_MAGIC`` then one page file per line), read by
:class:`ListStackDecoder`, a plug-in registered the way entry-point plug-ins
are; each page is an ordinary pyramidal TIFF.  It records the page decoders
it hands out that are not closed yet, so a leak is a test failure.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import pyvips
from images import Entry, TiffPatcher

from iipy import decoders
from iipy.decoders.base import Decoder
from iipy.decoders.tiff import TiffDecoder
from iipy.errors import NotFound

VIPS = {"uint8": "uchar", "int8": "char", "uint16": "ushort", "int16": "short",
        "uint32": "uint", "int32": "int", "float32": "float", "float64": "double"}
TILE = 64
WIDTH, HEIGHT = 300, 200  # 5 x 4 tiles of 64 at full resolution, edge tiles 44 x 8


def random_array(dtype: str, bands: int, seed: int, width: int = WIDTH,
                 height: int = HEIGHT) -> np.ndarray:
    """Samples over the whole range of ``dtype`` (floats: -1000..1000 with
    fractions), different in every band and pixel."""
    rng = np.random.default_rng(seed)
    if dtype.startswith("float"):
        return rng.uniform(-1000, 1000, (height, width, bands)).astype(dtype)
    info = np.iinfo(dtype)
    return rng.integers(info.min, info.max, (height, width, bands), dtype=dtype, endpoint=True)


def write_tiff(path: Path, array: np.ndarray, tile: int = TILE) -> Path:
    """A tiled, pyramidal, Deflate-compressed TIFF holding ``array`` exactly."""
    height, width, bands = array.shape
    image = pyvips.Image.new_from_memory(np.ascontiguousarray(array).tobytes(), width, height,
                                         bands, VIPS[str(array.dtype)])
    image.tiffsave(str(path), tile=True, tile_width=tile, tile_height=tile, pyramid=True,
                   compression="deflate")
    return path


def level_array(path: Path, resolution: int) -> np.ndarray:
    """IIP resolution ``resolution`` of a written file (0 = smallest), read with
    pyvips from its directory: the reduced levels are libvips' own averages."""
    count = pyvips.Image.new_from_file(str(path)).get("n-pages")
    image = pyvips.Image.tiffload(str(path), page=count - 1 - resolution)
    dtype = {v: k for k, v in VIPS.items()}[image.format]
    return np.ndarray(buffer=image.write_to_memory(), dtype=dtype,
                      shape=(image.height, image.width, image.bands))


def name_page(path: Path, name: str | None = None, scale: float | None = None) -> None:
    """Write a DocumentName and/or a STONITS scale into a TIFF's first directory."""
    entries = []
    if name is not None:
        entries.append(Entry.ascii(269, name))
    if scale is not None:
        entries.append(Entry(37439, 12, 1, np.float64(scale).tobytes()))
    with TiffPatcher(path) as tiff:
        tiff.update_first_ifd(entries)


# -- expected answers (iip-protocol.md §2.23, §2.24) ----------------------------


def reflectance(value, dtype: np.dtype) -> float:
    """SPECTRA's number: 8/16-bit over the type's maximum in single precision."""
    dtype = np.dtype(dtype)
    if dtype.kind in "ui" and dtype.itemsize <= 2:
        return float(np.float32(int(value) / float(np.iinfo(dtype).max)))
    return float(value)


def spectra_xml(points: list[tuple[str, int | None, float]]) -> bytes:
    """(wavelength, band or None, value) → iipsrv's SPECTRA body."""
    body = '<?xml version="1.0" encoding="UTF-8"?>\n<spectra>\n'
    for name, band, value in points:
        band_line = "" if band is None else f"\t\t<band>{band}</band>\n"
        body += (f"\t<point>\n\t\t<wavelength>{name}</wavelength>\n{band_line}"
                 f"\t\t<reflectance>{value:f}</reflectance>\n\t</point>\n")
    return (body + "</spectra>").encode()


def number_text(value, dtype: np.dtype, scale: float = 1.0) -> str:
    """One PFL value as iipy writes it (iipsrv's fixed 9 decimals for floats)."""
    dtype = np.dtype(dtype)
    if dtype.kind in "ui" and scale == 1.0:
        return str(int(value))
    if scale != 1.0:
        value = np.float32(value) * np.float32(scale)
    if not math.isfinite(float(value)):
        return "null"
    return f"{float(value):.9f}" if dtype.kind == "f" else f"{float(value):.9g}"


def profile_values(pixels: np.ndarray, scale: float = 1.0) -> str:
    return ",".join(number_text(v, pixels.dtype, scale) for v in pixels.reshape(-1))


# -- stacks through a decoder plug-in -------------------------------------------

STACK_MAGIC = b"IIPY-TEST-STACK\n"


class ListStackDecoder(Decoder):
    """A stack whose pages are TIFF files listed in a text file (a test plug-in)."""

    name = "test-stack"
    rank = 100

    @classmethod
    def can_read(cls, head: bytes) -> bool:
        return head.startswith(STACK_MAGIC)

    #: page decoders handed out and not closed yet (a leak is a test failure)
    open_pages: set[int] = set()

    def __init__(self, path: str) -> None:
        lines = Path(path).read_bytes()[len(STACK_MAGIC):].decode().splitlines()
        folder = os.path.dirname(path)
        self._files = [os.path.join(folder, line) for line in lines if line]
        self._first = TiffDecoder(self._files[0])
        self.info = self._first.info

    @property
    def pages(self) -> int:
        return len(self._files)

    def page(self, number: int) -> Decoder:
        """Page 0 is this decoder; others are new decoders the caller closes
        (as the TIFF decoder's pages, each with a file handle of its own)."""
        if number == 0:
            return self
        if not 0 < number < len(self._files):
            raise NotFound(f"no page {number}")
        page = TiffDecoder(self._files[number])
        ListStackDecoder.open_pages.add(id(page))
        original = page.close

        def close() -> None:
            ListStackDecoder.open_pages.discard(id(page))
            original()
        page.close = close  # type: ignore[method-assign]
        return page

    def read_region(self, level, left, top, width, height, layers=0):
        return self._first.read_region(level, left, top, width, height)

    def release(self) -> None:
        self._first.release()

    def close(self) -> None:
        self._first.close()


def write_stack(path: Path, pages: list[Path]) -> Path:
    path.write_bytes(STACK_MAGIC + "".join(p.name + "\n" for p in pages).encode())
    return path


def register_stack_decoder(monkeypatch) -> None:
    """Add the plug-in to the registry for one test (as an entry point would)."""
    monkeypatch.setattr(decoders, "_registry", [ListStackDecoder, *decoders.registry()])
