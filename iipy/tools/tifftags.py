"""Baseline text tags (Artist, Copyright, ImageDescription…) carried into a written TIFF.

libvips keeps ICC, XMP, EXIF, IPTC and resolution through ``tiffsave`` but
only ImageDescription of TIFF's text tags.  The rest are added afterwards
without touching the image data: IFD0 is copied to the end of the file with
the extra ASCII entries (its other entries byte for byte, so every offset
they hold stays valid) and the header is pointed at the copy.
"""

from __future__ import annotations

import os
import struct
from pathlib import Path
from typing import Any

from ..decoders.tiffdir import read_structure

#: the baseline and extension ASCII tags an image server or a catalogue shows
TEXT_TAGS = {
    269: "DocumentName", 270: "ImageDescription", 271: "Make", 272: "Model",
    285: "PageName", 305: "Software", 306: "DateTime", 315: "Artist",
    316: "HostComputer", 33432: "Copyright",
}
ASCII = 2


def exif_text_tags(image: Any) -> dict[int, bytes]:
    """The text tags in the EXIF IFD0 of a JPEG, PNG, WebP or HEIF source (libvips does
    not write EXIF into a TIFF, so they would be lost), read from the raw EXIF block."""
    try:
        blob = bytes(image.get("exif-data")) if image.get_typeof("exif-data") else b""
    except Exception:  # noqa: BLE001 - no EXIF
        return {}
    if blob.startswith(b"Exif\0\0"):
        blob = blob[6:]
    try:
        return ifd0_text(blob)
    except (struct.error, IndexError):
        return {}


def ifd0_text(data: bytes) -> dict[int, bytes]:
    """TEXT_TAGS of the first IFD of a classic TIFF structure held in ``data``."""
    if data[:2] not in (b"II", b"MM"):
        return {}
    order = "<" if data[:2] == b"II" else ">"
    first = struct.unpack(order + "I", data[4:8])[0]
    count = struct.unpack(order + "H", data[first:first + 2])[0]
    found = {}
    for i in range(count):
        entry = data[first + 2 + 12 * i:first + 14 + 12 * i]
        tag, typ, n = struct.unpack(order + "HHI", entry[:8])
        if tag not in TEXT_TAGS or typ != ASCII or n == 0:
            continue
        value = entry[8:8 + n] if n <= 4 else data[
            struct.unpack(order + "I", entry[8:12])[0]:][:n]
        text = value.split(b"\0", 1)[0].strip()
        if text:
            found[tag] = text + b"\0"
    return found


def read_text_tags(path: Path) -> dict[int, bytes]:
    """The text tags of a TIFF's first IFD ({} for other files or none)."""
    with open(path, "rb") as handle:
        if handle.read(4)[:2] not in (b"II", b"MM"):
            return {}
    fd = os.open(path, os.O_RDONLY)
    try:
        first = read_structure(fd).ifds[0]
    except Exception:  # noqa: BLE001 - not a TIFF we can read: nothing to carry
        return {}
    finally:
        os.close(fd)
    found = {}
    for tag in TEXT_TAGS:
        value = first.get(tag)
        if isinstance(value, bytes) and value.strip(b"\0 "):
            found[tag] = value.split(b"\0", 1)[0] + b"\0"
    return found


def add_text_tags(path: Path, tags: dict[int, bytes]) -> list[int]:
    """Add the ASCII ``tags`` IFD0 of ``path`` lacks; returns the tags added."""
    return add_tags(path, {tag: (ASCII, len(value), value) for tag, value in tags.items()})


def add_tags(path: Path, tags: dict[int, tuple[int, int, bytes]]) -> list[int]:
    """Add the ``tags`` (tag → type, count, value bytes in the file's byte
    order) IFD0 of ``path`` lacks; returns the tags added."""
    with open(path, "r+b") as handle:
        head = handle.read(16)
        order = "<" if head[:2] == b"II" else ">"
        big = struct.unpack(order + "H", head[2:4])[0] == 43
        count_fmt, entry_size, off_fmt = ("Q", 20, "Q") if big else ("H", 12, "I")
        first = struct.unpack(order + off_fmt, head[8:16] if big else head[4:8])[0]
        handle.seek(first)
        count_size = struct.calcsize(count_fmt)
        count = struct.unpack(order + count_fmt, handle.read(count_size))[0]
        raw = handle.read(count * entry_size)
        next_ifd = handle.read(8 if big else 4)
        entries = {struct.unpack(order + "H", raw[i:i + 2])[0]: raw[i:i + entry_size]
                   for i in range(0, len(raw), entry_size)}
        missing = {t: v for t, v in tags.items() if t not in entries}
        if not missing:
            return []
        handle.seek(0, os.SEEK_END)
        inline = 8 if big else 4
        for tag, (typ, count, value) in sorted(missing.items()):
            if len(value) <= inline:
                data = value.ljust(inline, b"\0")
            else:
                if handle.tell() % 2:
                    handle.write(b"\0")
                data = struct.pack(order + off_fmt, handle.tell())
                handle.write(value)
            entries[tag] = (struct.pack(order + "HH", tag, typ)
                            + struct.pack(order + off_fmt, count) + data)
        if handle.tell() % 2:
            handle.write(b"\0")
        where = handle.tell()
        handle.write(struct.pack(order + count_fmt, len(entries)))
        handle.write(b"".join(entries[t] for t in sorted(entries)))
        handle.write(next_ifd)
        handle.seek(8 if big else 4)
        handle.write(struct.pack(order + off_fmt, where))
    return sorted(missing)
