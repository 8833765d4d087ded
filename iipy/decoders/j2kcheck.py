"""The JPEG 2000 image and tile size (SIZ marker), read and checked at open.

glymur parses a codestream header as it is written; a corrupt or hostile
file can declare a 4e9×4e9 image, a million tiles, zero-sized tiles or 300
components, which would then be announced to clients (OBJ, info.json) and
handed to OpenJPEG.  :func:`check` reads the SIZ marker segment itself, from
the file's bytes (JP2 boxes are walked to the ``jp2c`` codestream), and
refuses (CorruptImage: 4xx) what ISO/IEC 15444-1 (Annex A.5.1) forbids or
what the file is far too small to hold.
"""

from __future__ import annotations

import os
import struct

from ..errors import CorruptImage

JP2_BOX_LIMIT = 4096  # boxes walked before giving up on finding the codestream
#: Most raw sample bytes a codestream byte may stand for: far beyond any real
#: coder (lossless flat images reach a few thousand), far below a bomb's.
MAX_EXPANSION = 1 << 20
MAX_TILES = 65535  # Isot is 16 bits
MAX_COMPONENTS = 16384


def codestream_offset(fd: int, size: int) -> int:
    """Where the codestream starts: 0 for a raw one, else in the jp2c box."""
    if os.pread(fd, 4, 0) == b"\xff\x4f\xff\x51":
        return 0
    offset = 0
    for _ in range(JP2_BOX_LIMIT):
        if offset >= size:
            break
        head = os.pread(fd, 16, offset)
        if len(head) < 8:
            break
        length, kind = struct.unpack(">I4s", head[:8])
        header = 8
        if length == 1:
            if len(head) < 16:
                break
            length, header = struct.unpack(">Q", head[8:16])[0], 16
        elif length == 0:
            length = size - offset
        if kind == b"jp2c":
            return offset + header
        if length < header:
            break
        offset += length
    raise CorruptImage("JPEG 2000 file structure could not be read (no codestream)")


def check(fd: int) -> tuple[int, int]:
    """The image's (width, height) from SIZ; CorruptImage when the header is
    inconsistent or claims far more than the file holds."""
    size = os.fstat(fd).st_size
    start = codestream_offset(fd, size)
    head = os.pread(fd, 42, start)
    if len(head) < 42 or head[:4] != b"\xff\x4f\xff\x51":
        raise CorruptImage("JPEG 2000 codestream does not start with SOC and SIZ")
    (lsiz, _rsiz, xsiz, ysiz, xo, yo, xt, yt, xto, yto, csiz) = struct.unpack(
        ">HHIIIIIIIIH", head[4:42]
    )
    if not 1 <= csiz <= MAX_COMPONENTS or lsiz != 38 + 3 * csiz:
        raise CorruptImage("JPEG 2000 SIZ marker has a bad component count")
    comps = os.pread(fd, 3 * csiz, start + 42)
    if len(comps) < 3 * csiz:
        raise CorruptImage("JPEG 2000 header is truncated")
    for i in range(csiz):
        depth, xr, yr = comps[3 * i] & 0x7F, comps[3 * i + 1], comps[3 * i + 2]
        if depth > 37 or xr < 1 or yr < 1:
            raise CorruptImage("JPEG 2000 SIZ marker has a bad component")
    if xsiz <= xo or ysiz <= yo or xt < 1 or yt < 1:
        raise CorruptImage("JPEG 2000 image has no size")
    if xto > xo or yto > yo or xto + xt <= xo or yto + yt <= yo:
        raise CorruptImage("JPEG 2000 tile grid does not cover the image")
    tiles = -(-(xsiz - xto) // xt) * -(-(ysiz - yto) // yt)
    if tiles > MAX_TILES:
        raise CorruptImage("JPEG 2000 image declares more tiles than a codestream can hold")
    width, height = xsiz - xo, ysiz - yo
    raw = width * height * csiz
    if raw > MAX_EXPANSION * max(1, size - start):
        raise CorruptImage("JPEG 2000 image declares far more pixels than its file holds")
    return width, height
