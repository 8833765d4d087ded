"""Multi-page TIFF stacks made at test time: pages in the main IFD chain,
each a tiled pyramid in its SubIFDs (what libvips writes for a multi-page
image with ``subifd=True``, and what OME-TIFF does), named and scaled per page
by DocumentName and STONITS as iipsrv 1.3 reads them."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pyvips
from images import Entry, TiffPatcher

#: page colours: every page of a test stack is a flat colour of its own
COLOURS = ((200, 30, 30), (30, 200, 30), (30, 30, 200), (220, 220, 40), (40, 200, 220))


def make_stack(path, width: int = 600, height: int = 400, *, pages: int = 3,
               names: list[str] | None = None, scales: list[float] | None = None,
               compression: str = "jpeg", subifd: bool = True, tile: int = 256,
               subfile_type: int | None = None) -> Path:
    """A stack of ``pages`` pages of ``width``×``height``, page n filled with COLOURS[n].

    ``subifd``: each page's reductions in its SubIFDs (True) or single-level
    pages (False: the pages are too small for a pyramid, iipsrv's second form)."""
    path = Path(path)
    frames = [
        np.broadcast_to(np.array(COLOURS[n % len(COLOURS)], np.uint8), (height, width, 3))
        for n in range(pages)
    ]
    whole = np.ascontiguousarray(np.concatenate(frames, axis=0))
    image = pyvips.Image.new_from_memory(whole.tobytes(), width, height * pages, 3, "uchar")
    image = image.copy(interpretation="srgb")
    image.set_type(pyvips.GValue.gint_type, "page-height", height)
    options = {"Q": 90} if compression == "jpeg" else {}
    image.tiffsave(str(path), tile=True, tile_width=tile, tile_height=tile,
                   pyramid=subifd, subifd=subifd, compression=compression, **options)
    if names or scales or subfile_type is not None:
        set_page_tags(path, names or [], scales or [], subfile_type)
    return path


def set_page_tags(path, names: list[str], scales: list[float],
                  subfile_type: int | None = None) -> None:
    """Give page n DocumentName ``names[n]`` and STONITS ``scales[n]``, and every
    page NewSubfileType ``subfile_type`` when given (rewriting each top-level
    directory at the end of the file)."""
    with TiffPatcher(path) as tiff:
        chain = tiff.chain()
        pointer = tiff.first_pointer
        for n, offset in enumerate(chain):
            entries, next_offset = tiff.read_ifd(offset)
            extra = []
            if n < len(names):
                extra.append(Entry.ascii(269, names[n]))
            if n < len(scales):
                extra.append(Entry(37439, 12, 1, struct.pack("<d", scales[n])))
            if subfile_type is not None:
                extra.append(Entry(254, 4, 1, struct.pack("<I", subfile_type)))
            tags = {e.tag for e in extra}
            entries = [e for e in entries if e.tag not in tags] + extra
            new = tiff.append_ifd(entries, next_offset)
            tiff.write_offset(pointer, new)
            pointer = tiff.next_pointer(new)


def many_pages_tiff(pages: int, subifd_targets: dict[int, int | str] | None = None) -> bytes:
    """A classic TIFF stack of ``pages`` 32×32 page directories (four 16×16
    uncompressed tiles, all the same stored bytes), each marked as a page; page 0
    keeps a 16×16 reduction in its SubIFD.  ``subifd_targets`` points page n's
    SubIFD elsewhere instead: another page's number, or ``"self"``.  A stack that
    claims thousands of pages in a few hundred kB, or whose SubIFDs loop."""
    targets = subifd_targets or {}
    tile = bytes(range(256)) * 3  # 16×16 RGB
    out = bytearray(b"II*\x00\0\0\0\0") + tile
    tile_at = 8
    ifd_size = 2 + 12 * 12 + 4
    first = len(out)
    offsets = [first + n * ifd_size for n in range(pages + 1)]  # the last: the reduction
    reduction = offsets[-1]

    def ifd(subfile: int, width: int, nxt: int, subifd: int) -> bytes:
        tiles = (width // 16) ** 2
        entries = [
            (254, 4, subfile), (256, 3, width), (257, 3, width), (258, 3, 8), (259, 3, 1),
            (262, 3, 2), (277, 3, 3), (322, 3, 16), (323, 3, 16),
            (324, 4, tile_at if tiles == 1 else table_at),
            (325, 4, len(tile) if tiles == 1 else counts_at), (330, 13, subifd),
        ]
        body = struct.pack("<H", len(entries))
        for tag, typ, value in entries:
            count = tiles if tag in (324, 325) else 1
            field = struct.pack("<H" if typ == 3 else "<I", value).ljust(4, b"\0")
            body += struct.pack("<HHI", tag, typ, count) + field
        return body + struct.pack("<I", nxt)

    table_at = offsets[-1] + ifd_size
    counts_at = table_at + 16
    for n in range(pages):
        target = targets.get(n, reduction if n == 0 else 0)
        if target == "self":
            target = offsets[n]
        elif n in targets:
            target = offsets[int(target)]
        out += ifd(2, 32, offsets[n + 1] if n + 1 < pages else 0, int(target))
    out += ifd(1, 16, 0, 0)
    out += struct.pack("<4I", *[tile_at] * 4) + struct.pack("<4I", *[len(tile)] * 4)
    out[4:8] = struct.pack("<I", first)
    return bytes(out)
