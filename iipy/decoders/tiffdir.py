"""A small reader of TIFF/BigTIFF directory structure.

It reads only the image file directories (IFDs) and the tag values needed to
describe a pyramid and to fetch stored tile bytes; it never decodes pixels
(pyvips does that).  Knowing the tile offsets ourselves is what makes codec
pass-through possible: an interior JPEG tile is served as the bytes stored in
the file, spliced with the file's JPEGTables, without a decode.
"""

from __future__ import annotations

import math
import os
import struct
from dataclasses import dataclass, field

import numpy as np

from ..errors import CorruptImage

# TIFF field types: code -> (struct letter, size)
_TYPES: dict[int, tuple[str, int]] = {
    1: ("B", 1),   # BYTE
    2: ("s", 1),   # ASCII
    3: ("H", 2),   # SHORT
    4: ("I", 4),   # LONG
    5: ("II", 8),  # RATIONAL
    6: ("b", 1),   # SBYTE
    7: ("B", 1),   # UNDEFINED
    8: ("h", 2),   # SSHORT
    9: ("i", 4),   # SLONG
    10: ("ii", 8),  # SRATIONAL
    11: ("f", 4),  # FLOAT
    12: ("d", 8),  # DOUBLE
    13: ("I", 4),  # IFD
    16: ("Q", 8),  # LONG8
    17: ("q", 8),  # SLONG8
    18: ("Q", 8),  # IFD8
}

# Tags whose (possibly large) values we load.  Everything else is skipped.
TAG_NEW_SUBFILE_TYPE = 254
TAG_WIDTH = 256
TAG_HEIGHT = 257
TAG_BITS = 258
TAG_COMPRESSION = 259
TAG_PHOTOMETRIC = 262
TAG_DOCUMENT_NAME = 269
TAG_DESCRIPTION = 270
TAG_MAKE = 271
TAG_MODEL = 272
TAG_STRIP_OFFSETS = 273
TAG_SAMPLES = 277
TAG_ROWS_PER_STRIP = 278
TAG_STRIP_BYTE_COUNTS = 279
TAG_X_RES = 282
TAG_Y_RES = 283
TAG_PLANAR = 284
TAG_PAGE_NAME = 285
TAG_RES_UNIT = 296
TAG_SOFTWARE = 305
TAG_DATETIME = 306
TAG_ARTIST = 315
TAG_PREDICTOR = 317
TAG_TILE_WIDTH = 322
TAG_TILE_HEIGHT = 323
TAG_TILE_OFFSETS = 324
TAG_TILE_BYTE_COUNTS = 325
TAG_SUBIFDS = 330
TAG_SAMPLE_FORMAT = 339
TAG_SMIN = 340
TAG_SMAX = 341
TAG_JPEG_TABLES = 347
TAG_YCBCR_SUBSAMPLING = 530
TAG_XMP = 700
TAG_COPYRIGHT = 33432
TAG_ICC = 34675
TAG_STONITS = 37439  # DOUBLE: physical value of one sample step (iipsrv's "scale")

_WANTED = {
    TAG_NEW_SUBFILE_TYPE, TAG_WIDTH, TAG_HEIGHT, TAG_BITS, TAG_COMPRESSION,
    TAG_PHOTOMETRIC, TAG_DOCUMENT_NAME, TAG_DESCRIPTION, TAG_MAKE, TAG_MODEL,
    TAG_SAMPLES, TAG_X_RES, TAG_Y_RES, TAG_PLANAR, TAG_PAGE_NAME, TAG_RES_UNIT,
    TAG_SOFTWARE, TAG_DATETIME, TAG_ARTIST, TAG_PREDICTOR, TAG_TILE_WIDTH,
    TAG_TILE_HEIGHT, TAG_TILE_OFFSETS, TAG_TILE_BYTE_COUNTS, TAG_SUBIFDS,
    TAG_SAMPLE_FORMAT, TAG_SMIN, TAG_SMAX, TAG_JPEG_TABLES,
    TAG_YCBCR_SUBSAMPLING, TAG_XMP, TAG_COPYRIGHT, TAG_ICC, TAG_STONITS,
    TAG_STRIP_OFFSETS, TAG_STRIP_BYTE_COUNTS, TAG_ROWS_PER_STRIP,
}
_BYTES_TAGS = {TAG_JPEG_TABLES, TAG_XMP, TAG_ICC}
# tile tables: kept as numpy arrays (a 200000² level has 611,000 tiles)
_TABLE_TAGS = {TAG_TILE_OFFSETS, TAG_TILE_BYTE_COUNTS, TAG_STRIP_OFFSETS, TAG_STRIP_BYTE_COUNTS}
_INTEGER_TYPES = {1: "u1", 3: "u2", 4: "u4", 13: "u4", 16: "u8", 18: "u8"}

MAX_IFDS = 4096  # a loop guard against corrupt files whose IFD chain cycles
#: SubIFDs read of one directory: reductions halve the size, 64 is past any real pyramid
MAX_SUBIFDS = 64
#: tag data read beyond the file's own size: a legitimate file's directories hold
#: distinct data, a hostile one points thousands of directories at one huge table
TAG_BYTES_SLACK = 16 * 1024 * 1024


@dataclass
class IFD:
    """One image file directory: its file offset and the tags we care about."""

    offset: int
    tags: dict[int, object] = field(default_factory=dict)

    def get(self, tag: int, default: object = None) -> object:
        return self.tags.get(tag, default)

    def int(self, tag: int, default: int = 0) -> int:
        value = self.tags.get(tag)
        if value is None:
            return default
        if isinstance(value, (tuple, np.ndarray)):
            return _integer(value[0]) if len(value) else default
        return _integer(value)

    def ints(self, tag: int) -> tuple[int, ...]:
        value = self.tags.get(tag)
        if value is None:
            return ()
        if isinstance(value, (tuple, np.ndarray)):
            return tuple(_integer(v) for v in value)
        return (_integer(value),)

    def table(self, tag: int) -> np.ndarray:
        """A tile table (offsets or byte counts) as uint64, empty when absent."""
        value = self.tags.get(tag)
        found = value if isinstance(value, np.ndarray) else np.asarray(self.ints(tag))
        if found.size and found.dtype.kind == "i" and int(found.min()) < 0:
            raise CorruptImage(f"tag {tag}: negative offset or byte count")  # signed type
        return found.astype(np.uint64, copy=False)

    def text(self, tag: int) -> str:
        value = self.tags.get(tag)
        if isinstance(value, bytes):
            return value.split(b"\0", 1)[0].decode("utf-8", "replace").strip()
        return ""

    def rational(self, tag: int) -> float | None:
        value = self.tags.get(tag)
        if isinstance(value, tuple) and value:
            value = value[0]
        if isinstance(value, (int, float)):
            return float(value)
        return None

    @property
    def width(self) -> int:
        return self.int(TAG_WIDTH)

    @property
    def height(self) -> int:
        return self.int(TAG_HEIGHT)

    @property
    def tiled(self) -> bool:
        return TAG_TILE_WIDTH in self.tags and TAG_TILE_HEIGHT in self.tags


@dataclass
class TiffStructure:
    """The top-level IFD chain of a file, with SubIFDs as far as read.

    The first directory's SubIFDs are read with the chain; another's (a
    stack's page) when :func:`read_subifds` asks for them."""

    big_endian: bool
    bigtiff: bool
    ifds: list[IFD]
    subifds: dict[int, list[IFD]]  # index in ifds -> its SubIFDs
    tag_budget: list[int] = field(default_factory=lambda: [0])  # tag bytes still allowed
    broken: dict[int, str] = field(default_factory=dict)  # index -> why its SubIFDs failed


def read_structure(fd: int) -> TiffStructure:
    """Parse the IFD chain and the first directory's SubIFDs of an open TIFF
    file descriptor."""
    reader = _Reader(fd)
    return reader.structure()


def read_subifds(fd: int, structure: TiffStructure, index: int) -> list[IFD]:
    """The SubIFDs of top-level directory ``index`` (read once, then kept).

    A SubIFD that is a top-level directory or repeats one of its siblings is
    a loop (CorruptImage); tag data counts against the file's budget."""
    known = structure.subifds.get(index)
    if known is not None:
        return known
    if index in structure.broken:  # asked again: the same answer, no second read
        raise CorruptImage(structure.broken[index])
    reader = _Reader(fd, structure.tag_budget)
    seen = {ifd.offset for ifd in structure.ifds}
    try:
        subs = reader.children(structure.ifds[index], seen)
    except CorruptImage as exc:
        structure.broken[index] = exc.message
        raise
    structure.subifds[index] = subs
    return subs


class _Reader:
    def __init__(self, fd: int, budget: list[int] | None = None) -> None:
        self.fd = fd
        self.size = os.fstat(fd).st_size
        # one budget per file, shared by every later read of its SubIFDs
        self.budget = budget if budget is not None else [self.size + TAG_BYTES_SLACK]
        head = self.read(0, 16)
        if len(head) < 8:
            raise CorruptImage("file too short to be a TIFF")
        if head[:2] == b"II":
            self.e = "<"
        elif head[:2] == b"MM":
            self.e = ">"
        else:
            raise CorruptImage("not a TIFF file")
        magic = struct.unpack(self.e + "H", head[2:4])[0]
        if magic == 42:
            self.big = False
            self.first = struct.unpack(self.e + "I", head[4:8])[0]
        elif magic == 43:
            if len(head) < 16:
                raise CorruptImage("truncated BigTIFF header")
            self.big = True
            self.first = struct.unpack(self.e + "Q", head[8:16])[0]
        else:
            raise CorruptImage("bad TIFF magic number")

    def read(self, offset: int, length: int) -> bytes:
        if offset < 0 or length < 0 or offset + length > self.size:
            raise CorruptImage("TIFF structure points outside the file")
        return os.pread(self.fd, length, offset)

    def structure(self) -> TiffStructure:
        ifds: list[IFD] = []
        subifds: dict[int, list[IFD]] = {}
        seen: set[int] = set()
        offset = self.first
        while offset and len(ifds) < MAX_IFDS:
            if offset in seen:
                raise CorruptImage("TIFF directory chain loops")
            seen.add(offset)
            ifd, offset = self.ifd(offset)
            ifds.append(ifd)
        if not ifds:
            raise CorruptImage("TIFF has no image directory")
        subs = self.children(ifds[0], seen)
        if subs:
            subifds[0] = subs
        return TiffStructure(self.e == ">", self.big, ifds, subifds, self.budget)

    def children(self, ifd: IFD, seen: set[int]) -> list[IFD]:
        """The SubIFDs of ``ifd`` (at most MAX_SUBIFDS); one already in ``seen`` is a loop."""
        subs = []
        for child in ifd.ints(TAG_SUBIFDS)[:MAX_SUBIFDS]:
            if child in seen:
                raise CorruptImage("TIFF SubIFDs loop")
            if child:
                seen.add(child)
                subs.append(self.ifd(child)[0])
        return subs

    def ifd(self, offset: int) -> tuple[IFD, int]:
        e = self.e
        if self.big:
            count = struct.unpack(e + "Q", self.read(offset, 8))[0]
            entry_size, pos = 20, offset + 8
        else:
            count = struct.unpack(e + "H", self.read(offset, 2))[0]
            entry_size, pos = 12, offset + 2
        if count > 10000:
            raise CorruptImage("implausible TIFF directory size")
        raw = self.read(pos, count * entry_size + (8 if self.big else 4))
        ifd = IFD(offset)
        inline = 8 if self.big else 4
        for i in range(count):
            entry = raw[i * entry_size:(i + 1) * entry_size]
            if self.big:
                tag, typ, n = struct.unpack(e + "HHQ", entry[:12])
                value_field = entry[12:20]
            else:
                tag, typ, n = struct.unpack(e + "HHI", entry[:8])
                value_field = entry[8:12]
            if tag not in _WANTED or typ not in _TYPES:
                continue
            letters, size = _TYPES[typ]
            total = size * n
            if total > 256 * 1024 * 1024:
                raise CorruptImage("implausible TIFF tag size")
            if total <= inline:
                data = value_field[:total]
            else:
                where = struct.unpack(e + ("Q" if self.big else "I"), value_field[:inline])[0]
                self.budget[0] -= total
                if self.budget[0] < 0:
                    raise CorruptImage("TIFF directories claim more data than the file holds")
                data = self.read(where, total)
            ifd.tags[tag] = self.decode(tag, typ, n, data)
        tail = raw[count * entry_size:]
        nxt = struct.unpack(e + ("Q" if self.big else "I"), tail[: (8 if self.big else 4)])[0]
        return ifd, nxt

    def decode(self, tag: int, typ: int, n: int, data: bytes) -> object:
        if typ in (2, 7) or tag in _BYTES_TAGS:
            return bytes(data)
        if tag in _TABLE_TAGS and typ in _INTEGER_TYPES:
            return np.frombuffer(data, self.e + _INTEGER_TYPES[typ]).astype(np.uint64)
        letters, size = _TYPES[typ]
        if typ in (5, 10):
            parts = struct.unpack(self.e + letters[0] * (2 * n), data)
            values: tuple = tuple(
                (parts[2 * i] / parts[2 * i + 1]) if parts[2 * i + 1] else 0.0 for i in range(n)
            )
        else:
            values = struct.unpack(self.e + letters * n, data)
        return values[0] if n == 1 else values


def _integer(value: object) -> int:
    """A tag value as an int; CorruptImage when it is not a finite number."""
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)) and math.isfinite(value):
        return int(value)
    raise CorruptImage("TIFF tag has a value of the wrong kind")
