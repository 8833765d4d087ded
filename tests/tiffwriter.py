"""A small baseline TIFF writer for test fixtures: any bits a sample (1-16),
tiled or stripped, chunky or planar-separate, MinIsBlack/MinIsWhite/RGB,
uncompressed — the layouts libtiff-based writers rarely produce on request.

Samples are packed MSB first, each row of a tile or strip padded to a whole
byte (TIFF 6.0, section 8 "BitsPerSample" and "Image Data"). Big sample
types (9-16 bits) are packed the same way, big-endian bit order, as libtiff
reads them.
"""

from __future__ import annotations

import struct

import numpy as np

SHORT, LONG = 3, 4


def pack_rows(samples: np.ndarray, bits: int) -> bytes:
    """(rows, values) unsigned samples → rows of ``bits``-bit fields, MSB
    first, each row padded to a whole byte."""
    rows, count = samples.shape
    if bits == 8:
        return samples.astype(np.uint8).tobytes()
    if bits == 16:
        return samples.astype("<u2").tobytes()
    values = samples.astype(np.uint32)
    # one bit per column, most significant first
    shifts = np.arange(bits - 1, -1, -1, dtype=np.uint32)
    bit_array = ((values[:, :, None] >> shifts) & 1).astype(np.uint8).reshape(rows, count * bits)
    return np.packbits(bit_array, axis=1).tobytes()  # packbits pads each row


def write_tiff(
    path: str,
    pixels: np.ndarray,
    bits: int,
    *,
    photometric: int | None = None,
    tile: int | None = None,
    rows_per_strip: int | None = None,
    planar: int = 1,
    smax: int | None = None,
    deflate: bool = False,
) -> None:
    """Write ``pixels`` ((h, w) or (h, w, bands) unsigned) as a TIFF.

    ``tile`` (a multiple of 16) makes it tiled, else it is stripped with
    ``rows_per_strip`` rows (default: all). ``planar`` 2 stores each band as
    its own plane of tiles/strips. 16-bit samples are little-endian
    (the file is "II"). ``deflate`` compresses each tile/strip with zlib
    (Compression 8)."""
    if pixels.ndim == 2:
        pixels = pixels[:, :, None]
    height, width, bands = pixels.shape
    if photometric is None:
        photometric = 2 if bands >= 3 else 1
    chunks: list[bytes] = []
    planes = [pixels[:, :, b:b + 1] for b in range(bands)] if planar == 2 else [pixels]
    if tile:
        for plane in planes:
            for top in range(0, height, tile):
                for left in range(0, width, tile):
                    block = np.zeros((tile, tile, plane.shape[2]), pixels.dtype)
                    part = plane[top:top + tile, left:left + tile]
                    block[:part.shape[0], :part.shape[1]] = part
                    chunks.append(pack_rows(block.reshape(tile, -1), bits))
    else:
        rps = rows_per_strip or height
        for plane in planes:
            for top in range(0, height, rps):
                part = plane[top:top + rps]
                chunks.append(pack_rows(part.reshape(part.shape[0], -1), bits))
    if deflate:
        import zlib

        chunks = [zlib.compress(chunk, 6) for chunk in chunks]
    entries: list[tuple[int, int, list[int]]] = [
        (256, LONG, [width]),
        (257, LONG, [height]),
        (258, SHORT, [bits] * bands),
        (259, SHORT, [8 if deflate else 1]),
        (262, SHORT, [photometric]),
        (277, SHORT, [bands]),
        (284, SHORT, [planar]),
    ]
    if smax is not None:
        entries.append((341, SHORT, [smax] * bands))  # SMaxSampleValue
    header = 8
    data_start = header
    offsets = []
    position = data_start
    for chunk in chunks:
        offsets.append(position)
        position += len(chunk) + (len(chunk) & 1)
    if tile:
        entries += [(322, LONG, [tile]), (323, LONG, [tile]),
                    (324, LONG, offsets), (325, LONG, [len(c) for c in chunks])]
    else:
        entries += [(273, LONG, offsets), (278, LONG, [rows_per_strip or height]),
                    (279, LONG, [len(c) for c in chunks])]
    entries.sort()
    ifd_offset = position
    extra_offset = ifd_offset + 2 + 12 * len(entries) + 4
    ifd = struct.pack("<H", len(entries))
    extra = b""
    for tag, kind, values in entries:
        fmt = "<H" if kind == SHORT else "<I"
        raw = b"".join(struct.pack(fmt, v) for v in values)
        if len(raw) <= 4:
            ifd += struct.pack("<HHI", tag, kind, len(values)) + raw.ljust(4, b"\0")
        else:
            ifd += struct.pack("<HHII", tag, kind, len(values), extra_offset + len(extra))
            extra += raw + (b"\0" if len(raw) & 1 else b"")
    ifd += struct.pack("<I", 0)
    with open(path, "wb") as out:
        out.write(b"II*\0" + struct.pack("<I", ifd_offset))
        for chunk in chunks:
            out.write(chunk + (b"\0" if len(chunk) & 1 else b""))
        out.write(ifd + extra)
