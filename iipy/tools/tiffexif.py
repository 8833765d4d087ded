"""A source's EXIF written into a converted TIFF as an EXIF IFD (tag 34665).

libvips keeps a JPEG's (PNG's, WebP's, HEIF's) EXIF block through
``tiffsave`` only as text tags of IFD0, so camera settings and GPS position
would be lost on the way to a pyramid, and with them the EXIF iipy carries
into exports.  The EXIF and GPS directories of the block are appended to the
written file in its byte order and layout (classic or BigTIFF) and IFD0
points to them (:func:`tifftags.add_tags`), as a camera's TIFF would.
"""

from __future__ import annotations

import os
import struct
from pathlib import Path
from typing import BinaryIO

from ..decoders.exif import Entry, exif_ifds
from ..jpeg.markers import EXIF_HEADER
from .tifftags import add_tags

TAG_EXIF_IFD, TAG_GPS_IFD = 34665, 34853


def add_exif(path: Path, exif: bytes | None) -> bool:
    """Write the EXIF and GPS IFDs of ``exif`` (with or without "Exif\\0\\0")
    into the TIFF at ``path``; False when there is nothing to write."""
    if not exif:
        return False
    exif = exif.removeprefix(EXIF_HEADER)
    with open(path, "r+b") as handle:
        head = handle.read(4)
        order = "<" if head[:2] == b"II" else ">"
        big = struct.unpack(order + "H", head[2:4])[0] == 43
        parts = exif_ifds(exif, order)
        if parts is None:
            return False
        handle.seek(0, os.SEEK_END)
        if not big and handle.tell() + len(exif) * 2 >= 1 << 32:
            return False  # offsets of a classic TIFF stop at 4 GB
        pointers = {}
        for tag, entries in zip((TAG_EXIF_IFD, TAG_GPS_IFD), parts, strict=True):
            if entries:
                pointers[tag] = _append_ifd(handle, order, big, entries)
    kind, letter = (18, "Q") if big else (4, "I")  # IFD8 in a BigTIFF, LONG in a classic one
    add_tags(path, {tag: (kind, 1, struct.pack(order + letter, where))
                    for tag, where in pointers.items()})
    return True


def _append_ifd(handle: BinaryIO, e: str, big: bool, entries: list[Entry]) -> int:
    """Append the entries' long values, then the directory; its offset."""
    inline, letter = (8, "Q") if big else (4, "I")
    fields = []
    for _, _, _, value in sorted(entries):
        if len(value) <= inline:
            fields.append(value.ljust(inline, b"\0"))
            continue
        if handle.tell() % 2:
            handle.write(b"\0")
        fields.append(struct.pack(e + letter, handle.tell()))
        handle.write(value)
    if handle.tell() % 2:
        handle.write(b"\0")
    where = handle.tell()
    count, entry = (e + "Q", e + "HHQ") if big else (e + "H", e + "HHI")
    table = struct.pack(count, len(entries)) + b"".join(
        struct.pack(entry, tag, typ, n) + field
        for (tag, typ, n, _), field in zip(sorted(entries), fields, strict=True)
    ) + struct.pack(e + letter, 0)
    handle.write(table)
    return where


def source_exif(blob: bytes | None, source: Path) -> bytes | None:
    """The source's EXIF: libvips' ``exif-data`` (JPEG, PNG, WebP, HEIF) or,
    for a TIFF source (whose EXIF IFD libvips does not read), that IFD."""
    if blob:
        return blob.removeprefix(EXIF_HEADER)
    from ..decoders.exif import exif_from_fd
    from ..decoders.tiffdir import read_structure

    try:
        fd = os.open(source, os.O_RDONLY)
    except OSError:
        return None
    try:
        structure = read_structure(fd)
        return exif_from_fd(fd, structure.big_endian, structure.bigtiff, structure.ifds[0].offset)
    except Exception:  # noqa: BLE001 - not a TIFF we can read: no EXIF to carry
        return None
    finally:
        os.close(fd)
