"""EXIF metadata: found in a JPEG's APP1 segment or rebuilt from a TIFF's EXIF IFD.

EXIF is itself a little TIFF structure ("II*\\0" or "MM\\0*", IFD0, and the
EXIF and GPS sub-IFDs it points to).  Outputs (JPEG APP1, PNG eXIf, WebP and
AVIF EXIF chunks) carry exactly that structure, so:

- a JPEG source's EXIF (APP1 ``Exif\\0\\0``) is kept byte for byte
  (:func:`exif_from_jpeg`), as iipsrv 1.3 keeps it;
- a TIFF source keeps its EXIF fields in an EXIF IFD (tag 34665) inside the
  file, with values at offsets of that file: :func:`exif_from_tiff` copies
  the EXIF and GPS IFDs' entries and IFD0's descriptive tags (make, model,
  date, artist, copyright, description, software) into a new stand-alone
  structure in the file's byte order.  iipsrv 1.3 does not read TIFF EXIF.

Nothing here trusts the file: every count and offset is checked against the
bytes there are, sub-IFDs nested deeper (interoperability, maker-note
pointers into the file) are dropped, and the result is bounded by
:data:`MAX_EXIF` (what one JPEG APP1 segment can hold after ``Exif\\0\\0``).
"""

from __future__ import annotations

import os
import struct
from collections.abc import Callable

from ..jpeg.markers import EXIF_HEADER, MAX_EXIF

TAG_EXIF_IFD = 34665
TAG_GPS_IFD = 34853
TAG_MAKER_NOTE = 37500
#: IFD0 tags copied from a TIFF's first directory: text that describes the image
#: (resolution and orientation are left out: outputs state their own)
IFD0_TAGS = (270, 271, 272, 305, 306, 315, 33432)
#: pointers to further IFDs whose values are offsets into the source: not copied
_POINTERS = {TAG_EXIF_IFD, TAG_GPS_IFD, 40965, 330}
#: classic TIFF field sizes by type (BigTIFF's 8-byte types cannot go into EXIF)
_SIZES = {1: 1, 2: 1, 3: 2, 4: 4, 5: 8, 6: 1, 7: 1, 8: 2, 9: 4, 10: 8, 11: 4, 12: 8, 13: 4}
_MAX_ENTRIES = 1000

Entry = tuple[int, int, int, bytes]  # tag, type, count, value bytes (in the byte order)
Reader = Callable[[int, int], bytes]


def exif_from_jpeg(head: bytes) -> bytes | None:
    """The TIFF-structured EXIF of a JPEG (its first APP1 ``Exif\\0\\0``
    segment, without that prefix), or None.  ``head`` is the file's start:
    the markers before the first scan."""
    if not head.startswith(b"\xff\xd8"):
        return None
    pos = 2
    while pos + 4 <= len(head):
        if head[pos] != 0xFF:
            return None
        marker = head[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker in (0xD9, 0xDA):  # EOI, SOS: no more header segments
            return None
        if 0xD0 <= marker <= 0xD7 or marker == 0x01:
            pos += 2
            continue
        length = struct.unpack(">H", head[pos + 2 : pos + 4])[0]
        if length < 2:
            return None
        payload = head[pos + 4 : pos + 2 + length]
        if marker == 0xE1 and payload.startswith(EXIF_HEADER):
            blob = payload[len(EXIF_HEADER):]
            return blob if _tiff_header(blob) and len(blob) <= MAX_EXIF else None
        pos += 2 + length
    return None


def exif_block(data: bytes | None) -> bytes | None:
    """An EXIF block as a container holds it (PNG eXIf, a JPEG 2000 UUID box,
    libvips' ``exif-data``): with or without the "Exif\\0\\0" lead-in, kept
    when it is a TIFF structure that fits one APP1 segment."""
    if not data:
        return None
    data = data.removeprefix(EXIF_HEADER)
    return data if _tiff_header(data) and len(data) <= MAX_EXIF else None


def _tiff_header(blob: bytes) -> bool:
    return blob[:4] in (b"II*\0", b"MM\0*") and len(blob) >= 8


def exif_from_tiff(read: Reader, big_endian: bool, bigtiff: bool, ifd0: int,
                   size: int) -> bytes | None:
    """A stand-alone EXIF structure from a TIFF file's first directory (at
    file offset ``ifd0``) and the EXIF/GPS IFDs it points to; None when the
    file has no EXIF IFD.  ``read(offset, length)`` reads the file (``size``
    bytes long).  Unreadable parts are dropped, never raised."""
    e = ">" if big_endian else "<"
    found = _sub_ifds(read, e, bigtiff, ifd0, size)
    if found is None:
        return None
    descriptive, exif, gps = found
    return build_exif(e, descriptive, exif, gps)


def exif_from_fd(fd: int, big_endian: bool, bigtiff: bool, ifd0: int) -> bytes | None:
    """:func:`exif_from_tiff` on an open file; None also when it cannot be read."""
    try:
        size = os.fstat(fd).st_size
        return exif_from_tiff(lambda offset, n: os.pread(fd, n, offset), big_endian, bigtiff,
                              ifd0, size)
    except (OSError, struct.error):
        return None


def _sub_ifds(read: Reader, e: str, bigtiff: bool, ifd0: int, size: int
              ) -> tuple[list[Entry], list[Entry], list[Entry]] | None:
    """IFD0's descriptive entries, the EXIF IFD's and the GPS IFD's entries
    (nested pointers left out); None without a readable, non-empty EXIF IFD."""
    first = _entries(read, e, bigtiff, ifd0, size)
    pointers = {tag: value for tag, typ, count, value in first
                if tag in (TAG_EXIF_IFD, TAG_GPS_IFD) and count == 1}
    if TAG_EXIF_IFD not in pointers:
        return None
    subs = {}
    for tag, value in pointers.items():
        offset = _pointer(value, e)
        if offset is not None:
            subs[tag] = [entry for entry in _entries(read, e, bigtiff, offset, size)
                         if entry[0] not in _POINTERS]
    if not subs.get(TAG_EXIF_IFD):
        return None
    descriptive = [entry for entry in first if entry[0] in IFD0_TAGS]
    return descriptive, subs[TAG_EXIF_IFD], subs.get(TAG_GPS_IFD, [])


def exif_ifds(exif: bytes | None, order: str = "<") -> tuple[list[Entry], list[Entry]] | None:
    """The EXIF IFD's and GPS IFD's entries of an EXIF block, with their
    values in byte ``order`` ("<" or ">"), to write into a TIFF; None when
    the block has no EXIF IFD."""
    if not exif or not _tiff_header(exif):
        return None
    e = "<" if exif[:2] == b"II" else ">"
    first = struct.unpack(e + "I", exif[4:8])[0]
    found = _sub_ifds(lambda o, n: exif[o : o + n], e, False, first, len(exif))
    if found is None:
        return None
    _, sub_exif, gps = found
    if e == order:
        return sub_exif, gps
    return [_swapped(x) for x in sub_exif], [_swapped(x) for x in gps]


#: the size of each number a value holds, by type, for byte swapping
_UNITS = {3: 2, 8: 2, 4: 4, 9: 4, 11: 4, 13: 4, 5: 4, 10: 4, 12: 8}


def _swapped(entry: Entry) -> Entry:
    tag, typ, n, value = entry
    unit = _UNITS.get(typ, 1)
    if unit == 1:
        return entry
    swapped = b"".join(value[i : i + unit][::-1] for i in range(0, len(value), unit))
    return tag, typ, n, swapped


def _pointer(value: bytes, e: str) -> int | None:
    if len(value) == 4:
        return int(struct.unpack(e + "I", value)[0])
    if len(value) == 8:
        return int(struct.unpack(e + "Q", value)[0])
    return None


def _entries(read: Reader, e: str, bigtiff: bool, offset: int, size: int) -> list[Entry]:
    """The entries of one IFD with their values read, types checked; [] when unreadable."""
    head, entry_size, inline = (8, 20, 8) if bigtiff else (2, 12, 4)
    if offset <= 0 or offset + head > size:
        return []
    count = struct.unpack(e + ("Q" if bigtiff else "H"), read(offset, head))[0]
    if count > _MAX_ENTRIES or offset + head + count * entry_size > size:
        return []
    raw = read(offset + head, count * entry_size)
    found: list[Entry] = []
    budget = 2 * MAX_EXIF  # bytes of values read from one IFD, whatever its entries claim
    for i in range(count):
        entry = raw[i * entry_size : (i + 1) * entry_size]
        if bigtiff:
            tag, typ, n = struct.unpack(e + "HHQ", entry[:12])
            field = entry[12:20]
        else:
            tag, typ, n = struct.unpack(e + "HHI", entry[:8])
            field = entry[8:12]
        if tag in (TAG_EXIF_IFD, TAG_GPS_IFD):  # LONG, IFD, LONG8 or IFD8: kept for the caller
            if n == 1 and typ in (4, 13, 16, 18):
                found.append((tag, 4, 1, field[:8] if typ in (16, 18) else field[:4]))
            continue
        if typ == 13:  # other IFD offsets point into the source
            continue
        if typ not in _SIZES:
            continue
        total = _SIZES[typ] * n
        if total > min(MAX_EXIF, budget):
            continue
        budget -= total
        if total <= inline:
            value = field[:total]
        else:
            where = struct.unpack(e + ("Q" if bigtiff else "I"), field[:inline])[0]
            if where + total > size:
                continue
            value = read(where, total)
        found.append((tag, typ, n, value))
    return found


def build_exif(e: str, ifd0: list[Entry], exif: list[Entry], gps: list[Entry]
               ) -> bytes | None:
    """Lay out a classic little TIFF: header, IFD0 (pointing to the EXIF and
    GPS IFDs), the EXIF IFD, the GPS IFD, each followed by its long values.
    A maker note is left out first, then the GPS IFD, when it does not fit
    in :data:`MAX_EXIF`; None if it still does not."""
    attempts = (
        (exif, gps),
        ([x for x in exif if x[0] != TAG_MAKER_NOTE], gps),
        ([x for x in exif if x[0] != TAG_MAKER_NOTE], []),
    )
    for exif_entries, gps_entries in attempts:
        blob = _layout(e, ifd0, exif_entries, gps_entries)
        if len(blob) <= MAX_EXIF:
            return blob
    return None


def _ifd_size(entries: list[Entry]) -> int:
    values = sum(_padded(len(v)) for _, _, _, v in entries if len(v) > 4)
    return 2 + 12 * len(entries) + 4 + values


def _padded(n: int) -> int:
    return n + (n & 1)


def _layout(e: str, ifd0: list[Entry], exif: list[Entry], gps: list[Entry]) -> bytes:
    ifd0 = sorted(ifd0 + [(TAG_EXIF_IFD, 4, 1, b"\0" * 4)]
                  + ([(TAG_GPS_IFD, 4, 1, b"\0" * 4)] if gps else []))
    exif_at = 8 + _ifd_size(ifd0)
    gps_at = exif_at + _ifd_size(sorted(exif))
    pointers = {TAG_EXIF_IFD: exif_at, TAG_GPS_IFD: gps_at}
    ifd0 = [(tag, typ, n, struct.pack(e + "I", pointers[tag]) if tag in pointers else v)
            for tag, typ, n, v in ifd0]
    out = bytearray(b"II*\0" if e == "<" else b"MM\0*")
    out += struct.pack(e + "I", 8)
    for entries in (ifd0, sorted(exif), sorted(gps)):
        if entries is not ifd0 and not entries:
            continue
        _write_ifd(out, e, entries)
    return bytes(out)


def _write_ifd(out: bytearray, e: str, entries: list[Entry]) -> None:
    values_at = len(out) + 2 + 12 * len(entries) + 4
    table = bytearray(struct.pack(e + "H", len(entries)))
    values = bytearray()
    for tag, typ, n, value in entries:
        table += struct.pack(e + "HHI", tag, typ, n)
        if len(value) <= 4:
            table += value.ljust(4, b"\0")
        else:
            table += struct.pack(e + "I", values_at + len(values))
            values += value + b"\0" * (len(value) & 1)
    table += b"\0\0\0\0"  # no next IFD (no thumbnail)
    out += table + values


#: IFD0 text tags → iipy metadata keys (as the TIFF decoder names them)
_TEXT_KEYS = {270: "description", 271: "make", 272: "model", 305: "software", 306: "date",
              315: "creator", 33432: "rights"}


def exif_metadata(exif: bytes | None) -> dict[str, str]:
    """The descriptive text of an EXIF structure's IFD0 as metadata
    (``make``, ``model``, ``date``, ``creator``, ``rights``, ...), decoded
    with :func:`tag_text`."""
    if not exif or not _tiff_header(exif):
        return {}
    e = "<" if exif[:2] == b"II" else ">"
    first = struct.unpack(e + "I", exif[4:8])[0]
    found = {}
    for tag, typ, _, value in _entries(lambda o, n: exif[o : o + n], e, False, first, len(exif)):
        if tag in _TEXT_KEYS and typ in (1, 2, 7):
            text = tag_text(value)
            if text:
                found[_TEXT_KEYS[tag]] = text
    return found


def tag_text(value: bytes) -> str:
    """A TIFF/EXIF ASCII value as text: its NUL-terminated strings (TIFF
    allows several, e.g. photographer and editor copyright) joined with "; ",
    read as UTF-8 or, when not valid UTF-8, as Latin-1 (what older cameras
    and scanners write); control characters dropped."""
    parts = []
    for raw in value.split(b"\0"):
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            text = raw.decode("latin-1")
        text = "".join(c for c in text if c >= " " or c in "\t\n").strip()
        if text:
            parts.append(text)
    return "; ".join(parts)
