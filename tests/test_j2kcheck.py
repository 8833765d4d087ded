"""The JPEG 2000 SIZ check made at open (issue 11 item 6)."""

from __future__ import annotations

import os
import struct

import pytest
from hostile import _box, j2k_siz

from iipy.decoders import j2kcheck
from iipy.errors import CorruptImage


def check(data: bytes) -> tuple[int, int]:
    fd = os.memfd_create("j2k")
    try:
        os.write(fd, data + bytes(4096))  # some "tile data" so the size is plausible
        return j2kcheck.check(fd)
    finally:
        os.close(fd)


def test_real_files_pass(jp2_images):
    broken = {"jp2_badheader", "jp2_badboxes"}  # made broken on purpose (SIZ zeroed, no boxes)
    for name, path in jp2_images.items():
        if name in broken:
            continue
        fd = os.open(path, os.O_RDONLY)
        try:
            width, height = j2kcheck.check(fd)
        finally:
            os.close(fd)
        assert width > 0 and height > 0


def test_raw_wrapped_and_extended_length_boxes():
    assert check(j2k_siz(700, 500)) == (700, 500)
    assert check(j2k_siz(700, 500, tile=256, raw=False)) == (700, 500)
    stream = j2k_siz(300, 200)
    extended = struct.pack(">I4sQ", 1, b"jp2c", 16 + len(stream)) + stream
    signature = _box(b"jP  ", b"\r\n\x87\n")
    assert check(signature + extended) == (300, 200)
    to_end = struct.pack(">I4s", 0, b"jp2c") + stream  # length 0: up to the end of the file
    assert check(signature + to_end) == (300, 200)


def _patched(offset: int, fmt: str, *values) -> bytes:
    data = bytearray(j2k_siz(700, 500, tile=256))
    struct.pack_into(fmt, data, offset, *values)
    return bytes(data)


# SIZ layout after SOC (2 bytes) and the marker (2): Lsiz 4, Rsiz 6, Xsiz 8,
# Ysiz 12, XOsiz 16, YOsiz 20, XTsiz 24, YTsiz 28, XTOsiz 32, YTOsiz 36, Csiz 40
@pytest.mark.parametrize("patch,message", [
    ((40, ">H", 0), "component count"),
    ((4, ">H", 50), "component count"),
    ((8, ">I", 0), "no size"),
    ((16, ">I", 800), "no size"),
    ((24, ">I", 0), "no size"),
    ((32, ">I", 5), "tile grid"),
    ((24, ">II", 1, 1), "more tiles"),
    ((8, ">II", 4_000_000_000, 4_000_000_000), "more tiles"),
    ((8, ">IIIIII", 10**6, 10**6, 0, 0, 10**6, 10**6), "far more pixels"),
    ((42, ">B", 60), "bad component"),
    ((43, ">B", 0), "bad component"),
])
def test_inconsistent_or_absurd_headers_are_refused(patch, message):
    with pytest.raises(CorruptImage, match=message):
        check(_patched(*patch))


def test_no_codestream():
    with pytest.raises(CorruptImage, match="could not be read"):
        check(_box(b"jP  ", b"\r\n\x87\n") + _box(b"ftyp", b"jp2 \0\0\0\0jp2 "))
    with pytest.raises(CorruptImage):
        check(b"\xff\x4f\xff\x51\x00")
