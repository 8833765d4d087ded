"""Test-image factory: every test image is generated at test time.

The main entry point is :func:`make_tiff`, which writes a tiled (by default
pyramidal) TIFF with pyvips and then, where pyvips cannot write something,
patches the file with the small TIFF directory writer at the end of this
module (:class:`TiffPatcher`).

Pixel pattern ("gradient")
--------------------------
Every pixel value is a deterministic function of its full-resolution
coordinate ``(x, y)`` and the image size ``(W, H)``.  First three unit values
in [0, 1] are computed::

    gx   = x / max(W - 1, 1)                        # 0 at the left, 1 at the right
    gy   = y / max(H - 1, 1)                        # 0 at the top,  1 at the bottom
    cell = ((x // 64) + 4 * (y // 64)) % 17 / 16    # constant on 64x64 cells

``cell`` differs between neighbouring 64x64 cells, and the 4x4 cells of a
256x256 tile form a pattern that is different for each of the tiles of a
4x4-tile grid (it repeats only every 17 tile shifts), so a tile fetched from
the wrong column/row is detectable even in grey images; in RGB images the R
and G gradients alone already identify the column and row.  The bands are::

    bands == 1:  [0.5 * gx + 0.3 * gy + 0.2 * cell]
    bands == 2:  [0.5 * gx + 0.3 * gy + 0.2 * cell, alpha]
    bands == 3:  [gx, gy, cell]                     # R, G, B
    bands == 4:  [gx, gy, cell, alpha]              # R, G, B, A
    alpha = 1 - 0.5 * gy

and unit values ``u`` are scaled to the sample type::

    uint8:   rint(u * 255)
    uint16:  rint(u * 65535)
    int16:   rint(u * 65535) - 32768
    float32: u                                      # stays in [0, 1]

:func:`pattern_array` returns the full-resolution array, :func:`expected_pixel`
one pixel, and :func:`expected_level` an (approximate, float) version of a
reduced pyramid level, computed the way libvips builds its pyramid (2x2 box
mean, level size ``floor(size / 2)``).

``pattern="flat"`` writes the constant unit value 0.5 in every band instead.

JPEG photometric interpretation
-------------------------------
libvips (8.18) writes JPEG-compressed RGB as Photometric=YCbCr (6, with 2x2
chroma subsampling) when Q < 90 and as Photometric=RGB (2, no subsampling)
when Q >= 90, unless its ``rgbjpeg`` option is given, which forces RGB.  So:

* ``photometric=None``: libvips' choice (RGB at the default Q=90);
* ``photometric="rgb"``: ``rgbjpeg=True``, RGB; needs Q >= 90, because below
  that libvips writes RGB-labelled tiles with 2x2 chroma subsampling, an
  invalid combination that libtiff refuses to decode;
* ``photometric="ycbcr"``: YCbCr; libvips can only do this below Q90, so Q is
  lowered to at most 89.

Tags
----
Text tags (artist, copyright, ...), resolution, ICC profile, XMP and
SMin/SMaxSampleValue are written into the first IFD only, by rewriting that
directory at the end of the file (:class:`TiffPatcher`).  The reduced levels
keep pyvips' defaults.
"""

from __future__ import annotations

import os
import struct
import tempfile
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from uuid import UUID

import numpy as np
import pyvips

# ---------------------------------------------------------------------------
# pixel pattern
# ---------------------------------------------------------------------------

CELL = 64  # size of the constant-value cells of the "cell" unit value

DTYPES = ("uint8", "uint16", "int16", "float32")

_VIPS_FORMAT = {"uint8": "uchar", "uint16": "ushort", "int16": "short", "float32": "float"}


def _unit_bands(xs: np.ndarray, ys: np.ndarray, width: int, height: int, bands: int,
                pattern: str = "gradient") -> list[np.ndarray]:
    """The unit values (float64 in [0, 1]) of each band at coordinates xs, ys."""
    if bands not in (1, 2, 3, 4):
        raise ValueError(f"bands must be 1, 2, 3 or 4, not {bands}")
    if pattern == "flat":
        flat = np.full(np.broadcast(xs, ys).shape, 0.5)
        return [flat] * bands
    if pattern != "gradient":
        raise ValueError(f"unknown pattern {pattern!r}")
    xs = np.asarray(xs, dtype=np.int64)
    ys = np.asarray(ys, dtype=np.int64)
    gx = xs / max(width - 1, 1)
    gy = ys / max(height - 1, 1)
    cell = ((xs // CELL) + 4 * (ys // CELL)) % 17 / 16
    gx, gy, cell = np.broadcast_arrays(gx, gy, cell)
    alpha = 1.0 - 0.5 * gy
    if bands <= 2:
        grey = 0.5 * gx + 0.3 * gy + 0.2 * cell
        return [grey] if bands == 1 else [grey, alpha]
    return [gx, gy, cell] if bands == 3 else [gx, gy, cell, alpha]


def _scale(unit: np.ndarray, dtype: str) -> np.ndarray:
    """Map unit values to the sample type (see the module docstring)."""
    if dtype == "uint8":
        return np.rint(unit * 255).astype(np.uint8)
    if dtype == "uint16":
        return np.rint(unit * 65535).astype(np.uint16)
    if dtype == "int16":
        return (np.rint(unit * 65535) - 32768).astype(np.int16)
    if dtype == "float32":
        return unit.astype(np.float32)
    raise ValueError(f"dtype must be one of {DTYPES}, not {dtype!r}")


def pattern_array(width: int, height: int, bands: int = 3, dtype: str = "uint8",
                  pattern: str = "gradient") -> np.ndarray:
    """The full-resolution pixels of a test image, shape (height, width, bands)."""
    ys, xs = np.mgrid[0:height, 0:width]
    planes = _unit_bands(xs, ys, width, height, bands, pattern)
    return np.stack([_scale(p, dtype) for p in planes], axis=-1)


def expected_pixel(x: int, y: int, width: int, height: int, bands: int = 3,
                   dtype: str = "uint8", pattern: str = "gradient") -> tuple:
    """The value of one full-resolution pixel, one Python number per band."""
    if not (0 <= x < width and 0 <= y < height):
        raise ValueError(f"({x}, {y}) is outside a {width}x{height} image")
    planes = _unit_bands(np.array(x), np.array(y), width, height, bands, pattern)
    return tuple(_scale(p, dtype).item() for p in planes)


def level_sizes(width: int, height: int, tile_width: int = 256,
                tile_height: int | None = None) -> list[tuple[int, int]]:
    """Level sizes of a libvips pyramid: halve (rounding down) until one tile holds it."""
    tile_height = tile_height or tile_width
    sizes = [(width, height)]
    while width > tile_width or height > tile_height:
        width, height = width // 2, height // 2
        sizes.append((width, height))
    return sizes


def expected_level(width: int, height: int, level: int, bands: int = 3, dtype: str = "uint8",
                   pattern: str = "gradient") -> np.ndarray:
    """Approximate pixels of reduced level ``level`` (0 = full resolution), as float64.

    Each level is the 2x2 mean of the one above, cropped to ``floor(size / 2)``,
    as libvips builds it; libvips rounds every level to the sample type, so
    compare with a tolerance of about one unit per level (plus codec loss).
    """
    arr = pattern_array(width, height, bands, dtype, pattern).astype(np.float64)
    for _ in range(level):
        h, w = arr.shape[0] // 2, arr.shape[1] // 2
        arr = arr[: 2 * h, : 2 * w].reshape(h, 2, w, 2, -1).mean(axis=(1, 3))
    return arr


def smooth_mask(width: int, height: int, level: int = 0, margin: int = 4) -> np.ndarray:
    """Pixels of level ``level`` that lie away from the pattern's sharp edges.

    True (shape (h, w), the level's size) for pixels at least ``margin``
    pixels from a cell edge (every ``64 >> level`` pixels; tile edges are cell
    edges for tile sizes that are multiples of 64) and from the right and
    bottom image borders (where JPEG edge tiles are padded).  Measured maximum
    differences from :func:`expected_level` inside this mask (margin 4), on
    1000x700 at levels 0 / 1 / 2: lossless 0 / 0.5 / 1; JPEG Q90 (RGB or
    grey) 1 / 3 / 3; JPEG YCbCr (Q89, 4:2:0) 8 / 7 / 8.  Outside it JPEG
    YCbCr reaches ~110 next to strong colour edges, JPEG RGB ~10.
    """
    h, w = height, width
    for _ in range(level):
        h, w = h // 2, w // 2
    ys, xs = np.mgrid[0:h, 0:w]
    cell = max(CELL >> level, 1)
    near = (
        (xs % cell < margin) | (xs % cell >= cell - margin)
        | (ys % cell < margin) | (ys % cell >= cell - margin)
        | (xs >= w - margin) | (ys >= h - margin)
    )
    return ~near


def srgb_profile() -> bytes:
    """A real sRGB ICC profile (from littleCMS, via Pillow), the same bytes every time.

    littleCMS stamps the creation time into the header (bytes 24-35); it is
    set to 2000-01-01 00:00:00 here.  The profile ID (bytes 84-99) is left at
    zero by littleCMS, so no checksum needs updating.
    """
    from PIL import ImageCms

    profile = bytearray(ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes())
    profile[24:36] = struct.pack(">6H", 2000, 1, 1, 0, 0, 0)
    assert profile[84:100] == bytes(16), "littleCMS now writes a profile ID"
    return bytes(profile)


SAMPLE_XMP = (
    b'<?xpacket begin="\xef\xbb\xbf" id="W5M0MpCehiHzreSzNTczkc9d"?>\n'
    b'<x:xmpmeta xmlns:x="adobe:ns:meta/">\n'
    b' <rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">\n'
    b'  <rdf:Description rdf:about="" xmlns:dc="http://purl.org/dc/elements/1.1/">\n'
    b"   <dc:creator><rdf:Seq><rdf:li>Jane Artist</rdf:li></rdf:Seq></dc:creator>\n"
    b"  </rdf:Description>\n"
    b" </rdf:RDF>\n"
    b"</x:xmpmeta>\n"
    b'<?xpacket end="w"?>'
)

# ---------------------------------------------------------------------------
# TIFF writers
# ---------------------------------------------------------------------------

# names accepted in make_tiff(tags=...) -> TIFF tag number (ASCII tags)
TAG_NAMES = {
    "document_name": 269,
    "description": 270,
    "make": 271,
    "model": 272,
    "page_name": 285,
    "software": 305,
    "datetime": 306,
    "artist": 315,
    "copyright": 33432,
}

_RES_UNITS = {"none": 1, "inch": 2, "cm": 3}


def _vips_image(array: np.ndarray) -> pyvips.Image:
    height, width, bands = array.shape
    dtype = str(array.dtype)
    image = pyvips.Image.new_from_memory(
        np.ascontiguousarray(array).tobytes(), width, height, bands, _VIPS_FORMAT[dtype]
    )
    colour = bands >= 3
    if dtype in ("uint16", "int16"):
        interpretation = "rgb16" if colour else "grey16"
    elif dtype == "float32":
        interpretation = "multiband" if colour else "b-w"
    else:
        interpretation = "srgb" if colour else "b-w"
    return image.copy(interpretation=interpretation)


def make_tiff(path, width: int, height: int, *, bands: int = 3, dtype: str = "uint8",
              compression: str = "jpeg", Q: int = 90, tile: int = 256,
              tile_height: int | None = None, pyramid: bool = True, subifd: bool = False,
              bigtiff: bool = False, photometric: str | None = None,
              tags: dict | None = None, resolution: tuple | None = None,
              icc: bytes | bool = False, xmp: bytes | None = None,
              smin=None, smax=None, pattern="gradient") -> Path:
    """Write a tiled (pyramidal unless ``pyramid=False``) TIFF and return its path.

    - ``bands``: 1 (grey), 2 (grey + alpha), 3 (RGB), 4 (RGBA).
    - ``dtype``: "uint8", "uint16", "int16", "float32".
    - ``compression``: "jpeg", "deflate", "lzw", "none", "webp" (JPEG and WebP need uint8).
    - ``tile`` x ``tile_height`` (default square) tile size, multiples of 16.
    - ``subifd``: reduced levels as SubIFDs of IFD0 instead of a top-level chain.
    - ``photometric``: None (libvips' choice), "rgb" or "ycbcr" (JPEG RGB only;
      "rgb" needs Q >= 90, "ycbcr" lowers Q to at most 89; see the module
      docstring).
    - ``tags``: {name or tag number: str}; names are the keys of :data:`TAG_NAMES`.
    - ``resolution``: (xres, yres, unit) in pixels per unit, unit "inch", "cm" or "none".
    - ``icc``: True for an sRGB profile, or the profile bytes; ``xmp``: XMP packet bytes.
    - ``smin`` / ``smax``: SMinSampleValue / SMaxSampleValue, a number or one per band.
    - ``pattern``: "gradient" (see the module docstring), "flat", or a numpy array
      of shape (height, width, bands) and type ``dtype`` to write instead.
    """
    path = Path(path)
    if dtype not in DTYPES:
        raise ValueError(f"dtype must be one of {DTYPES}, not {dtype!r}")
    if isinstance(pattern, np.ndarray):
        array = pattern
        if array.ndim == 2:
            array = array[:, :, None]
        if array.shape != (height, width, bands) or str(array.dtype) != dtype:
            raise ValueError("pattern array does not match width, height, bands and dtype")
    else:
        array = pattern_array(width, height, bands, dtype, pattern)

    options: dict = {
        "compression": compression,
        "tile": True,
        "tile_width": tile,
        "tile_height": tile_height or tile,
        "pyramid": pyramid,
        "subifd": subifd,
        "bigtiff": bigtiff,
    }
    if compression in ("jpeg", "webp"):
        if dtype != "uint8":
            raise ValueError(f"{compression} compression needs uint8 samples")
        if compression == "jpeg" and bands in (2, 4):
            raise ValueError("libvips drops the alpha band of JPEG-compressed TIFF")
        if compression == "webp" and bands < 3:
            raise ValueError("WebP-compressed TIFF needs 3 or 4 bands")
        options["Q"] = Q
    elif compression not in ("deflate", "lzw", "none"):
        raise ValueError(f"unsupported compression {compression!r}")
    if photometric is not None:
        if compression != "jpeg" or bands != 3:
            raise ValueError("photometric can only be chosen for 3-band JPEG")
        if photometric == "rgb":
            if Q < 90:
                # libvips 8.18 then writes Photometric=RGB with 2x2-subsampled
                # JPEG tiles, which libtiff (and so Pillow) refuses to decode
                raise ValueError("libvips writes broken RGB JPEG tiles below Q90")
            options["rgbjpeg"] = True
        elif photometric == "ycbcr":
            options["Q"] = min(Q, 89)
        else:
            raise ValueError(f"photometric must be None, 'rgb' or 'ycbcr', not {photometric!r}")

    _vips_image(array).tiffsave(str(path), **options)

    extra = _metadata_entries(tags, resolution, icc, xmp, smin, smax, bands, dtype)
    if extra:
        with TiffPatcher(path) as tiff:
            tiff.update_first_ifd(extra)
    return path


def _metadata_entries(tags, resolution, icc, xmp, smin, smax, bands, dtype) -> list[Entry]:
    entries: list[Entry] = []
    for key, text in (tags or {}).items():
        number = key if isinstance(key, int) else TAG_NAMES[key]
        entries.append(Entry.ascii(number, text))
    if resolution is not None:
        xres, yres, unit = resolution
        entries += [
            Entry.rational(282, xres),
            Entry.rational(283, yres),
            Entry.short(296, _RES_UNITS[unit]),
        ]
    if icc:
        profile = srgb_profile() if icc is True else bytes(icc)
        entries.append(Entry(34675, 7, len(profile), profile))
    if xmp is not None:
        entries.append(Entry(700, 1, len(xmp), bytes(xmp)))
    for number, value in ((340, smin), (341, smax)):
        if value is not None:
            entries.append(Entry.samples(number, value, bands, dtype))
    return entries


def make_untiled_tiff(path, width: int, height: int, *, bands: int = 3,
                      compression: str = "none") -> Path:
    """A strip (not tiled, not pyramidal) TIFF with the gradient pattern."""
    path = Path(path)
    image = _vips_image(pattern_array(width, height, bands, "uint8"))
    image.tiffsave(str(path), compression=compression, tile=False, pyramid=False)
    return path


def make_corrupt_tiff(path) -> Path:
    """A valid little-endian TIFF header whose IFD is cut short.

    The IFD claims 20 entries, the file holds only two of them (the file ends
    there), so directory parsing fails.
    """
    path = Path(path)
    data = b"II*\x00" + struct.pack("<I", 8)
    data += struct.pack("<H", 20)
    data += struct.pack("<HHII", 256, 3, 1, 1000)  # ImageWidth
    data += struct.pack("<HHII", 257, 3, 1, 700)  # ImageLength
    path.write_bytes(data)
    return path


def make_truncated_tiff(path, source, *, fraction: float = 0.5,
                        keep_structure: bool = True) -> Path:
    """A copy of the pyramid ``source`` that lacks the data of most of its tiles.

    With ``keep_structure`` (the default) the result looks like a file written
    level by level (full resolution first, tiles in row-major order) whose
    data stops part way through the full-resolution level: the first
    ``int(fraction * tiles)`` tiles of level 0, in row-major order, are
    present; the remaining level-0 tiles and all tiles of the reduced levels
    are missing, i.e. their offsets point beyond the end of the file (a read
    of one fails).  The directories themselves are intact (written after the
    kept tile data), so the image opens.  With the defaults and ``rgb``
    (4x3 tiles) tiles 0..5 are present (all of row 0, columns 0-1 of row 1)
    and tiles 6..11 missing.
    ``source`` must be a little-endian tiled TIFF without SubIFDs.

    Without ``keep_structure`` the file is just the first ``fraction`` of the
    bytes of ``source``; libvips writes its IFDs after the tile data, so such a
    file usually has no readable directory at all.
    """
    path = Path(path)
    data = Path(source).read_bytes()
    if not keep_structure:
        path.write_bytes(data[: int(len(data) * fraction)])
        return path
    with TiffPatcher(source, write=False) as src:
        chain = [src.read_ifd(offset)[0] for offset in src.chain()]
        big = src.big
    if any(e.tag == 330 for entries in chain for e in entries):
        raise ValueError("make_truncated_tiff does not handle SubIFDs")
    if big:
        header = b"II+\x00" + struct.pack("<HHQ", 8, 0, 0)  # BigTIFF, IFD0 offset to follow
    else:
        header = b"II*\x00" + struct.pack("<I", 0)  # classic TIFF, IFD0 offset to follow
    path.write_bytes(header)
    shift = 2 * len(data)  # moves an offset past the end of the new file
    with TiffPatcher(path) as out:
        rewritten = []
        for level, entries in enumerate(chain):
            by_tag = {e.tag: e for e in entries}
            offsets = out.numbers(by_tag[324])
            counts = out.numbers(by_tag[325])
            keep = int(len(offsets) * fraction) if level == 0 else 0
            moved = []
            for index, (offset, count) in enumerate(zip(offsets, counts, strict=True)):
                if index < keep:
                    moved.append(out.append_data(data[offset:offset + count]))
                else:
                    moved.append(offset + shift)
            by_tag[324] = Entry.offsets(324, moved, big)
            rewritten.append(list(by_tag.values()))
        next_offset = 0
        for entries in reversed(rewritten):
            next_offset = out.append_ifd(entries, next_offset)
        out.write_offset(out.first_pointer, next_offset)
    return path


def make_text_file(path) -> Path:
    """A plain text file that is not an image."""
    path = Path(path)
    path.write_text("This is not an image.\nJust some text.\n")
    return path


def make_pyramid_with_thumbnail(path, width: int = 1000, height: int = 700, *,
                                thumbnail_size: tuple[int, int] = (120, 84),
                                position: int | None = None, **kwargs) -> Path:
    """A tiled pyramid plus one strip-based (untiled) thumbnail directory.

    ``position=None`` appends the thumbnail after the last level; ``position=1``
    inserts it right after IFD0, as Aperio SVS files do.  The thumbnail shows
    the same gradient pattern at ``thumbnail_size`` (same bands and dtype,
    uncompressed).  Other keyword arguments go to :func:`make_tiff`.
    """
    path = Path(path)
    make_tiff(path, width, height, **kwargs)
    bands = kwargs.get("bands", 3)
    bigtiff = kwargs.get("bigtiff", False)
    tw, th = thumbnail_size
    with tempfile.TemporaryDirectory() as tmp:
        thumb_path = Path(tmp) / "thumb.tif"
        thumb = _vips_image(pattern_array(tw, th, bands, kwargs.get("dtype", "uint8")))
        thumb.tiffsave(str(thumb_path), compression="none", tile=False, pyramid=False,
                       bigtiff=bigtiff)
        with TiffPatcher(thumb_path) as source:
            entries, _ = source.read_ifd(source.first_ifd())
            strips = source.strips(entries)
    with TiffPatcher(path) as tiff:
        if bigtiff != tiff.big:
            raise ValueError("thumbnail and pyramid disagree on BigTIFF")
        new_offsets = [tiff.append_data(strip) for strip in strips]
        entries = [e for e in entries if e.tag != 273]
        entries.append(Entry.offsets(273, new_offsets, tiff.big))
        chain = tiff.chain()
        if position is None or position >= len(chain):
            thumb_ifd = tiff.append_ifd(entries, 0)
            tiff.write_offset(tiff.next_pointer(chain[-1]), thumb_ifd)
        else:
            if position < 1:
                raise ValueError("the thumbnail cannot come before IFD0")
            thumb_ifd = tiff.append_ifd(entries, chain[position])
            tiff.write_offset(tiff.next_pointer(chain[position - 1]), thumb_ifd)
    return path


# ---------------------------------------------------------------------------
# a minimal TIFF directory patcher
# ---------------------------------------------------------------------------

# TIFF field type -> size in bytes of one value
TYPE_SIZES = {1: 1, 2: 1, 3: 2, 4: 4, 5: 8, 6: 1, 7: 1, 8: 2, 9: 4, 10: 8, 11: 4, 12: 8,
              13: 4, 16: 8, 17: 8, 18: 8}

# sample type -> (TIFF field type, struct letter) for SMin/SMaxSampleValue,
# as libtiff chooses them from BitsPerSample/SampleFormat
_SAMPLE_TYPES = {"uint8": (1, "B"), "uint16": (3, "H"), "int16": (8, "h"), "float32": (11, "f")}


@dataclass
class Entry:
    """One directory entry: tag, field type, value count and raw value bytes.

    ``value`` is the complete value in the file's byte order, whether it is
    stored inline or elsewhere in the file.  All constructors below write
    little-endian values, which is what pyvips writes on every common machine
    (:class:`TiffPatcher` checks this).
    """

    tag: int
    type: int
    count: int
    value: bytes

    @classmethod
    def ascii(cls, tag: int, text: str) -> Entry:
        raw = text.encode("utf-8") + b"\0"
        return cls(tag, 2, len(raw), raw)

    @classmethod
    def short(cls, tag: int, number: int) -> Entry:
        return cls(tag, 3, 1, struct.pack("<H", number))

    @classmethod
    def rational(cls, tag: int, number: float) -> Entry:
        frac = Fraction(number).limit_denominator(100000)
        return cls(tag, 5, 1, struct.pack("<II", frac.numerator, frac.denominator))

    @classmethod
    def samples(cls, tag: int, value, bands: int, dtype: str) -> Entry:
        values = list(value) if isinstance(value, Sequence) else [value] * bands
        if len(values) != bands:
            raise ValueError(f"tag {tag} needs one value per band ({bands})")
        typ, letter = _SAMPLE_TYPES[dtype]
        return cls(tag, typ, bands, struct.pack("<" + letter * bands, *values))

    @classmethod
    def offsets(cls, tag: int, offsets: Sequence[int], big: bool) -> Entry:
        if big:
            return cls(tag, 16, len(offsets), struct.pack(f"<{len(offsets)}Q", *offsets))
        return cls(tag, 4, len(offsets), struct.pack(f"<{len(offsets)}I", *offsets))


class TiffPatcher:
    """Read and append image file directories of a little-endian (Big)TIFF in place.

    New directories are always appended at the end of the file; existing
    bytes are only changed to redirect offsets (header, next-IFD pointers).
    Use as a context manager.
    """

    def __init__(self, path, write: bool = True) -> None:
        self.fh = open(path, "r+b" if write else "rb")  # closed by close()
        head = self.fh.read(16)
        if head[:2] != b"II":
            self.fh.close()
            raise ValueError("TiffPatcher only handles little-endian TIFF")
        magic = struct.unpack("<H", head[2:4])[0]
        if magic not in (42, 43):
            self.fh.close()
            raise ValueError("not a TIFF file")
        self.big = magic == 43
        self.first_pointer = 8 if self.big else 4  # file position of the IFD0 offset
        self.inline = 8 if self.big else 4  # bytes of a value stored in the entry
        self.entry_size = 20 if self.big else 12
        self.count_size = 8 if self.big else 2
        self.offset_letter = "Q" if self.big else "I"

    def __enter__(self) -> TiffPatcher:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self.fh.close()

    # -- reading --

    def _read(self, offset: int, length: int) -> bytes:
        self.fh.seek(offset)
        data = self.fh.read(length)
        if len(data) != length:
            raise ValueError("TIFF structure points outside the file")
        return data

    def read_offset(self, position: int) -> int:
        size = 8 if self.big else 4
        return struct.unpack("<" + self.offset_letter, self._read(position, size))[0]

    def first_ifd(self) -> int:
        return self.read_offset(self.first_pointer)

    def read_ifd(self, offset: int) -> tuple[list[Entry], int]:
        """The entries of the IFD at ``offset`` and the offset of the next IFD."""
        count = struct.unpack(
            "<Q" if self.big else "<H", self._read(offset, self.count_size)
        )[0]
        raw = self._read(offset + self.count_size, count * self.entry_size)
        entries = []
        for i in range(count):
            chunk = raw[i * self.entry_size:(i + 1) * self.entry_size]
            if self.big:
                tag, typ, n = struct.unpack("<HHQ", chunk[:12])
                field = chunk[12:]
            else:
                tag, typ, n = struct.unpack("<HHI", chunk[:8])
                field = chunk[8:]
            size = TYPE_SIZES.get(typ, 1) * n
            if size <= self.inline:
                value = field[:size]
            else:
                where = struct.unpack("<" + self.offset_letter, field)[0]
                value = self._read(where, size)
            entries.append(Entry(tag, typ, n, value))
        return entries, self.read_offset(self.next_pointer(offset))

    def next_pointer(self, offset: int) -> int:
        """File position of the next-IFD offset of the IFD at ``offset``."""
        count = struct.unpack(
            "<Q" if self.big else "<H", self._read(offset, self.count_size)
        )[0]
        return offset + self.count_size + count * self.entry_size

    def chain(self) -> list[int]:
        """Offsets of the top-level IFDs, in order."""
        offsets = []
        offset = self.first_ifd()
        while offset and offset not in offsets:
            offsets.append(offset)
            offset = self.read_offset(self.next_pointer(offset))
        return offsets

    def strips(self, entries: list[Entry]) -> list[bytes]:
        """The stored strip data of a strip directory."""
        values = {e.tag: self.numbers(e) for e in entries if e.tag in (273, 279)}
        return [self._read(o, n) for o, n in zip(values[273], values[279], strict=True)]

    @staticmethod
    def numbers(entry: Entry) -> tuple[int, ...]:
        letter = {3: "H", 4: "I", 13: "I", 16: "Q", 18: "Q"}[entry.type]
        return struct.unpack(f"<{entry.count}{letter}", entry.value)

    # -- writing --

    def _append(self, data: bytes) -> int:
        self.fh.seek(0, os.SEEK_END)
        end = self.fh.tell()
        if end % 2:
            self.fh.write(b"\0")
            end += 1
        self.fh.write(data)
        return end

    def append_data(self, data: bytes) -> int:
        """Append raw bytes (word aligned); return their offset."""
        return self._append(data)

    def write_offset(self, position: int, value: int) -> None:
        self.fh.seek(position)
        self.fh.write(struct.pack("<" + self.offset_letter, value))

    def append_ifd(self, entries: list[Entry], next_offset: int) -> int:
        """Append a directory (its long values first); return its offset."""
        entries = sorted(entries, key=lambda e: e.tag)
        fields = []
        for entry in entries:
            if len(entry.value) <= self.inline:
                fields.append(entry.value.ljust(self.inline, b"\0"))
            else:
                where = self._append(entry.value)
                fields.append(struct.pack("<" + self.offset_letter, where))
        if self.big:
            ifd = struct.pack("<Q", len(entries))
            for entry, field in zip(entries, fields, strict=True):
                ifd += struct.pack("<HHQ", entry.tag, entry.type, entry.count) + field
            ifd += struct.pack("<Q", next_offset)
        else:
            ifd = struct.pack("<H", len(entries))
            for entry, field in zip(entries, fields, strict=True):
                ifd += struct.pack("<HHI", entry.tag, entry.type, entry.count) + field
            ifd += struct.pack("<I", next_offset)
        return self._append(ifd)

    def update_first_ifd(self, new_entries: list[Entry]) -> int:
        """Rewrite IFD0 with ``new_entries`` added (replacing equal tags)."""
        first = self.first_ifd()
        entries, next_offset = self.read_ifd(first)
        replaced = {e.tag for e in new_entries}
        entries = [e for e in entries if e.tag not in replaced] + list(new_entries)
        offset = self.append_ifd(entries, next_offset)
        self.write_offset(self.first_pointer, offset)
        return offset


# ---------------------------------------------------------------------------
# the standard set (used by the ``images`` fixture in conftest.py)
# ---------------------------------------------------------------------------

META_TAGS = {
    "copyright": "(c) Test Owner",
    "artist": "Jane Artist",
    "description": "A description",
    "document_name": "Test document",
    "datetime": "2024:01:02 03:04:05",
    "software": "iipy test factory",
}
META_RESOLUTION = (300, 300, "inch")


class ImageSet(dict):
    """Paths of the standard test images; keys are also attributes (``images.rgb``)."""

    def __getattr__(self, name: str) -> Path:
        try:
            return self[name]
        except KeyError as exc:
            raise AttributeError(name) from exc


def make_standard_set(directory) -> ImageSet:
    """Write the standard set of test images into ``directory``; return their paths.

    All are 1000x700 uint8 RGB, JPEG Q90 (Photometric=RGB), 256x256 tiles,
    levels 1000x700, 500x350, 250x175 unless stated:

    ``rgb``            the reference image
    ``rgb_ycbcr``      JPEG Photometric=YCbCr (Q89, 2x2 chroma subsampling)
    ``rgb_odd``        1410x793 (partial edge tiles; levels down to 176x99)
    ``grey8``          1 band, JPEG
    ``grey16``         1 band uint16, deflate
    ``float32``        1 band float32 (values in [0, 1]), deflate
    ``deflate``, ``lzw``, ``none``   RGB with that compression
    ``subifd``         reduced levels in SubIFDs of IFD0
    ``bigtiff``        BigTIFF
    ``meta``           IFD0 has META_TAGS, 300 dpi, an sRGB ICC profile, SAMPLE_XMP
    ``rect_tiles``     256x128 tiles (levels down to 125x87)
    ``thumbnail``      the pyramid followed by a 120x84 strip directory
    ``thumbnail_svs``  the same with the strip directory second (Aperio SVS order)
    ``untiled``        a strip TIFF, uncompressed
    ``corrupt``        TIFF header, IFD cut short
    ``truncated``      ``rgb`` with tiles 6..11 of level 0 and all lower levels missing
    ``truncated_raw``  the first half of the bytes of ``rgb`` (no readable IFD)
    ``text``           a text file named .tif
    """
    d = Path(directory)
    s = ImageSet()
    s["rgb"] = make_tiff(d / "rgb.tif", 1000, 700)
    s["rgb_ycbcr"] = make_tiff(d / "rgb_ycbcr.tif", 1000, 700, photometric="ycbcr")
    s["rgb_odd"] = make_tiff(d / "rgb_odd.tif", 1410, 793)
    s["grey8"] = make_tiff(d / "grey8.tif", 1000, 700, bands=1)
    s["grey16"] = make_tiff(d / "grey16.tif", 1000, 700, bands=1, dtype="uint16",
                            compression="deflate")
    s["float32"] = make_tiff(d / "float32.tif", 1000, 700, bands=1, dtype="float32",
                             compression="deflate")
    s["deflate"] = make_tiff(d / "deflate.tif", 1000, 700, compression="deflate")
    s["lzw"] = make_tiff(d / "lzw.tif", 1000, 700, compression="lzw")
    s["none"] = make_tiff(d / "none.tif", 1000, 700, compression="none")
    s["subifd"] = make_tiff(d / "subifd.tif", 1000, 700, subifd=True)
    s["bigtiff"] = make_tiff(d / "bigtiff.tif", 1000, 700, bigtiff=True)
    s["meta"] = make_tiff(d / "meta.tif", 1000, 700, tags=META_TAGS,
                          resolution=META_RESOLUTION, icc=True, xmp=SAMPLE_XMP)
    s["rect_tiles"] = make_tiff(d / "rect_tiles.tif", 1000, 700, tile=256, tile_height=128)
    s["thumbnail"] = make_pyramid_with_thumbnail(d / "thumbnail.tif")
    s["thumbnail_svs"] = make_pyramid_with_thumbnail(d / "thumbnail_svs.tif", position=1)
    s["untiled"] = make_untiled_tiff(d / "untiled.tif", 1000, 700)
    s["corrupt"] = make_corrupt_tiff(d / "corrupt.tif")
    s["truncated"] = make_truncated_tiff(d / "truncated.tif", s["rgb"])
    s["truncated_raw"] = make_truncated_tiff(d / "truncated_raw.tif", s["rgb"],
                                             keep_structure=False)
    s["text"] = make_text_file(d / "text.tif")
    return s


# ---------------------------------------------------------------------------
# JPEG 2000 writers (glymur; issue 5)
# ---------------------------------------------------------------------------
#
# make_jp2() writes the same pixel pattern as make_tiff() into a JP2 (or a
# raw J2K codestream, or a JPX) with glymur, which drives OpenJPEG's encoder.
# The codestream's choices are all parameters: tiles, resolutions, quality
# layers, progression order, precincts, code-blocks, reversible (lossless)
# or irreversible (lossy) wavelet; header boxes for ICC, resolution and XMP
# are written by re-wrapping the codestream with glymur's box classes.
# Bit depth 12 is written through a small glymur subclass (glymur itself
# writes only 8 and 16 bits).

JP2_KINDS = ("jp2", "j2k", "jpx")


def jp2_level_count(width: int, height: int, tile: int = 256) -> int:
    """How many levels iipsrv serves a JPEG 2000 image with (floor halvings to one tile, + 1)."""
    count = 1
    while width > tile or height > tile:
        width, height = width // 2, height // 2
        count += 1
    return count


def jp2_pattern_array(width: int, height: int, bands: int = 3, dtype: str = "uint8",
                      bits: int | None = None, pattern: str = "gradient") -> np.ndarray:
    """The pixels make_jp2() writes: the pattern scaled to ``bits`` (default: the dtype's)."""
    if bits is None or bits in (8, 16):
        return pattern_array(width, height, bands, dtype, pattern)
    if dtype != "uint16" or not 9 <= bits <= 15:
        raise ValueError("bits other than 8 and 16 need dtype uint16 and 9..15 bits")
    ys, xs = np.mgrid[0:height, 0:width]
    planes = _unit_bands(xs, ys, width, height, bands, pattern)
    top = (1 << bits) - 1
    return np.stack([np.rint(p * top).astype(np.uint16) for p in planes], axis=-1)


def make_jp2(path, width: int, height: int, *, bands: int = 3, dtype: str = "uint8",
             bits: int | None = None, tile: int | tuple[int, int] | None = 256,
             numres: int | None = None, layers: int = 1,
             ratios: Sequence[int] | None = None, lossless: bool = True,
             prog: str = "RPCL", precincts: Sequence[int] | None = (128,),
             codeblock: int | None = None, icc: bytes | bool = False,
             resolution: tuple[float, float] | None = None, display: bool = False,
             xmp: bytes | None = None, offset: tuple[int, int] | None = None,
             kind: str = "jp2", pattern: str = "gradient", exif: bytes | None = None) -> Path:
    """Write a JPEG 2000 image of the gradient pattern and return its path.

    - ``bands``: 1 (grey), 3 (RGB) (2 and 4 work too, without a channel definition box).
    - ``dtype`` "uint8", "uint16" or "int16" (signed samples); ``bits``: precision
      for uint16 (12 for 12-bit).
    - ``tile``: tile size (int or (width, height)); None for one tile (untiled).
    - ``numres``: resolutions (DWT levels + 1); default: exactly iipsrv's level count.
    - ``layers``: quality layers; compression ratios ``ratios`` (default
      ``10·2^k`` down to 10 for the last layer), the last lossless (ratio 1) when
      ``lossless``; ``lossless`` False uses the irreversible 9/7 wavelet.
    - ``prog``: progression order; ``precincts``: precinct sizes (power-of-two
      sides, the first for the full-resolution level), None for none;
      ``codeblock``: code-block side (default OpenJPEG's 64).
    - ``icc``: True (sRGB) or profile bytes for a restricted-ICC colr box;
      ``resolution``: (x, y) pixels per metre in a capture (resc), or with
      ``display`` a display (resd), resolution box; ``xmp``: an XMP UUID box;
      ``exif``: an EXIF UUID box (``JpgTiffExif->JP2``) holding these bytes.
    - ``offset``: (x, y) image offset on the reference grid.
    - ``kind``: "jp2", "j2k" (raw codestream) or "jpx" (JPX brand, JP2-compatible).
    """
    import glymur
    from glymur import jp2box

    path = Path(path)
    if kind not in JP2_KINDS:
        raise ValueError(f"kind must be one of {JP2_KINDS}")
    if dtype not in ("uint8", "uint16", "int16"):
        raise ValueError("JPEG 2000 test images are uint8, uint16 or int16")
    array = jp2_pattern_array(width, height, bands, dtype, bits, pattern)
    options: dict = {
        "numres": numres or jp2_level_count(width, height),
        "prog": prog,
        "irreversible": not lossless,
    }
    if tile is not None:
        tw, th = (tile, tile) if isinstance(tile, int) else tile
        if tw < width or th < height:  # glymur refuses tiles larger than the image
            options["tilesize"] = (min(th, height), min(tw, width))
    if layers > 1 or not lossless:
        ratios = list(ratios or [10 * 2 ** (layers - 1 - k) for k in range(layers)])
        if len(ratios) != layers:
            raise ValueError("give one compression ratio per layer")
        if lossless:
            ratios[-1] = 1
        options["cratios"] = ratios
    if precincts:
        options["psizes"] = [(p, p) for p in precincts]
    if codeblock:
        options["cbsize"] = (codeblock, codeblock)
    if offset is not None:
        options["grid_offset"] = (offset[1], offset[0])
    data = array[:, :, 0] if bands == 1 else array
    target = path.with_suffix(".j2k") if kind == "j2k" else path
    signed = dtype == "int16"
    if bits in (None, 8, 16) and not signed:
        writer = glymur.Jp2k
    else:
        writer = _precision_writer(bits or 16, signed)
    with tempfile.TemporaryDirectory() as tmp:
        raw = Path(tmp) / "codestream.j2k"
        codestream = writer(raw, data=data, **options)
        if kind == "j2k":
            target.write_bytes(raw.read_bytes())
            return target
        header = [jp2box.ImageHeaderBox(height, width, num_components=bands, signed=signed,
                                        bits_per_component=bits or (8 if dtype == "uint8" else 16))]
        if icc:
            profile = srgb_profile() if icc is True else bytes(icc)
            header.append(jp2box.ColourSpecificationBox(
                method=glymur.core.RESTRICTED_ICC_PROFILE, icc_profile=profile))
        else:
            space = glymur.core.SRGB if bands >= 3 else glymur.core.GREYSCALE
            header.append(jp2box.ColourSpecificationBox(colorspace=space))
        if resolution is not None:
            xres, yres = resolution
            box = jp2box.DisplayResolutionBox if display else jp2box.CaptureResolutionBox
            header.append(jp2box.ResolutionBox(box=[box(yres, xres)]))
        if kind == "jpx":
            ftyp = jp2box.FileTypeBox(brand="jpx ", compatibility_list=["jp2 ", "jpx ", "jpxb"])
        else:
            ftyp = jp2box.FileTypeBox()
        boxes = [jp2box.JPEG2000SignatureBox(), ftyp, jp2box.JP2HeaderBox(box=header)]
        if xmp is not None:
            boxes.append(jp2box.UUIDBox(the_uuid=_XMP_UUID, raw_data=bytes(xmp)))
        if exif is not None:
            boxes.append(jp2box.UUIDBox(the_uuid=UUID(bytes=b"JpgTiffExif->JP2"),
                                        raw_data=bytes(exif)))
        boxes.append(jp2box.ContiguousCodestreamBox())
        with warnings.catch_warnings():
            # glymur compares IHDR with the codestream's grid end, not its size
            warnings.filterwarnings("ignore", "The IHDR dimensions")
            codestream.wrap(target, boxes=boxes)
    return target


_XMP_UUID = UUID("be7acfcb-97a9-42e8-9c71-999491e3afac")


def _precision_writer(bits: int, signed: bool = False):
    """A glymur.Jp2k that declares ``bits`` (and signedness) for the samples when writing."""
    import glymur

    class PrecisionJp2k(glymur.Jp2k):
        def _validate_image_datatype(self, img_array):
            if not (signed and img_array.dtype == np.int16):
                super()._validate_image_datatype(img_array)

        def _populate_comptparms(self, img_array):
            super()._populate_comptparms(img_array)
            for component in self._comptparms:
                component.prec = component.bpp = bits
                component.sgnd = int(signed)

    return PrecisionJp2k


def make_truncated_jp2(path, source, fraction: float = 0.5) -> Path:
    """The first ``fraction`` of the bytes of ``source`` (boxes and main header intact)."""
    path = Path(path)
    data = Path(source).read_bytes()
    path.write_bytes(data[: int(len(data) * fraction)])
    return path


def make_corrupt_jp2(path, source, *, where: str = "data", seed: int = 5) -> Path:
    """A copy of JP2 ``source`` with part of its structure or data overwritten.

    ``where="data"``: 4 KB of random bytes in the middle of the codestream's
    tile data (boxes and main header intact).  ``where="header"``: the SIZ
    marker segment's sizes set to zero (the file parses as JPEG 2000 but
    describes no image).  ``where="boxes"``: the signature box followed by
    random bytes.
    """
    path = Path(path)
    data = bytearray(Path(source).read_bytes())
    rng = np.random.default_rng(seed)
    if where == "data":
        start = len(data) // 2
        data[start:start + 4096] = rng.integers(0, 256, 4096, dtype=np.uint8).tobytes()
    elif where == "header":
        siz = data.index(b"\xff\x51")
        data[siz + 6:siz + 14] = bytes(8)  # Xsiz, Ysiz
    elif where == "boxes":
        data = data[:12] + bytearray(rng.integers(0, 256, 2000, dtype=np.uint8).tobytes())
    else:
        raise ValueError("where must be 'data', 'header' or 'boxes'")
    path.write_bytes(bytes(data))
    return path


def make_jp2_set(directory) -> ImageSet:
    """Write the standard JPEG 2000 test images into ``directory``; return their paths.

    8-bit RGB unless stated, lossless, RPCL, 128×128 precincts:

    ``jp2_rgb``        1000x700, 256 tiles, 6 resolutions (more than the 3 levels served)
    ``jp2_untiled``    1000x700, one tile, LRCP, no precincts, lossy (9/7), 3 resolutions
    ``jp2_grey16``     1000x700 16-bit grey, 512 tiles
    ``jp2_grey12``     700x500 12-bit grey, one tile
    ``jp2_odd``        1001x703, 256 tiles, 2 resolutions: levels 1001x703, 501x352
                       and a virtual 251x176
    ``jp2_virtual``    1410x793, one tile, 1 resolution (no wavelet levels): one real
                       level and virtual 705x397, 353x199, 177x100
    ``jp2_layers``     1000x700, 256 tiles, 4 quality layers at 400:1, 40:1, 20:1 and
                       10:1 (lossy, 9/7), LRCP
    ``jp2_meta``       400x300 with an sRGB ICC profile, 300 dpi capture resolution, XMP
    ``jp2_offset``     600x400 placed at (17, 33) on the reference grid, 128 tiles
    ``j2k``            600x400 raw codestream (``j2k.j2k``)
    ``jpx``            600x400 JPX-branded
    ``jp2_truncated``  the first half of the bytes of ``jp2_rgb``
    ``jp2_corrupt``    ``jp2_rgb`` with 4 KB of noise in the middle of its tile data
    ``jp2_badheader``  ``jp2_rgb`` with zero sizes in its SIZ marker
    ``jp2_badboxes``   a JP2 signature followed by noise
    """
    d = Path(directory)
    s = ImageSet()
    s["jp2_rgb"] = make_jp2(d / "jp2_rgb.jp2", 1000, 700, numres=6)
    s["jp2_untiled"] = make_jp2(d / "jp2_untiled.jp2", 1000, 700, tile=None, prog="LRCP",
                                precincts=None, lossless=False)
    s["jp2_grey16"] = make_jp2(d / "jp2_grey16.jp2", 1000, 700, bands=1, dtype="uint16",
                               tile=512)
    s["jp2_grey12"] = make_jp2(d / "jp2_grey12.jp2", 700, 500, bands=1, dtype="uint16",
                               bits=12, tile=None)
    s["jp2_odd"] = make_jp2(d / "jp2_odd.jp2", 1001, 703, numres=2)
    s["jp2_virtual"] = make_jp2(d / "jp2_virtual.jp2", 1410, 793, tile=None, numres=1,
                                precincts=None)
    s["jp2_layers"] = make_jp2(d / "jp2_layers.jp2", 1000, 700, layers=4,
                               ratios=(400, 40, 20, 10), lossless=False, prog="LRCP")
    s["jp2_meta"] = make_jp2(d / "jp2_meta.jp2", 400, 300, tile=None, icc=True,
                             resolution=(300 / 0.0254, 300 / 0.0254), xmp=SAMPLE_XMP)
    s["jp2_offset"] = make_jp2(d / "jp2_offset.jp2", 600, 400, tile=128, offset=(17, 33))
    s["j2k"] = make_jp2(d / "j2k.j2k", 600, 400, kind="j2k")
    s["jpx"] = make_jp2(d / "jpx.jpx", 600, 400, kind="jpx")
    s["jp2_truncated"] = make_truncated_jp2(d / "jp2_truncated.jp2", s["jp2_rgb"])
    s["jp2_corrupt"] = make_corrupt_jp2(d / "jp2_corrupt.jp2", s["jp2_rgb"])
    s["jp2_badheader"] = make_corrupt_jp2(d / "jp2_badheader.jp2", s["jp2_rgb"], where="header")
    s["jp2_badboxes"] = make_corrupt_jp2(d / "jp2_badboxes.jp2", s["jp2_rgb"], where="boxes")
    return s


# ---------------------------------------------------------------------------
# CIELAB test images (added for issue 3: CIELAB → sRGB)
# ---------------------------------------------------------------------------


def make_cielab_tiff(path, width: int, height: int, *, dtype: str = "uint8",
                     tile: int = 256) -> Path:
    """A tiled pyramidal CIELab TIFF whose colours are the RGB gradient pattern.

    The sRGB pattern (:func:`pattern_array`) is converted to L*a*b* (D65) by
    libvips and stored as ``dtype``: "uint8" (L·2.55, signed a/b bytes — the
    layout libvips 8.18 can write but not read), "int16" (libvips' LabS:
    L·327.67, a/b·256 signed) or "float32" (L*a*b* as floats).  Deflate with
    the horizontal predictor.  Converting it back must give the pattern
    within a few levels.
    """
    path = Path(path)
    rgb = _vips_image(pattern_array(width, height, 3))
    lab = rgb.colourspace("lab")  # float L*a*b*
    if dtype == "float32":
        image = lab
    elif dtype == "int16":
        image = lab.Lab2LabS()
    elif dtype == "uint8":
        values = np.ndarray(buffer=lab.write_to_memory(), dtype=np.float32,
                            shape=(height, width, 3))
        packed = np.empty((height, width, 3), np.uint8)
        packed[:, :, 0] = np.clip(np.rint(values[:, :, 0] * 2.55), 0, 255)
        packed[:, :, 1:] = np.clip(np.rint(values[:, :, 1:]), -128, 127).astype(np.int8).view(
            np.uint8)
        image = pyvips.Image.new_from_memory(packed.tobytes(), width, height, 3, "uchar")
        image = image.copy(interpretation="lab")
    else:
        raise ValueError(f"CIELAB dtype must be uint8, int16 or float32, not {dtype!r}")
    image.tiffsave(str(path), tile=True, tile_width=tile, tile_height=tile, pyramid=True,
                   compression="deflate", predictor="horizontal")
    return path
