"""Hostile image files, made at test time (issue 11): what an attacker could
put behind a served path.  Each generator returns the file's bytes; the
table :data:`HOSTILE` names them.

Built from scratch with :func:`tiff` (a small classic-TIFF writer) or from a
real pyramid made by :func:`images.make_tiff` / :func:`images.make_jp2`, so a
file is broken in one known way and is otherwise valid.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from pathlib import Path

import numpy as np
import simplejpeg

# TIFF field types
SHORT, LONG, UNDEFINED = 3, 4, 7
_SIZES = {SHORT: ("H", 2), LONG: ("I", 4), UNDEFINED: ("B", 1), 2: ("B", 1)}

Tag = tuple[int, int, object]  # (tag, type, int | sequence of ints | bytes)


def jpeg_tile(size: int = 256, seed: int = 1) -> bytes:
    """A real 8-bit RGB JPEG tile (noise, so it is not tiny)."""
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
    return simplejpeg.encode_jpeg(pixels, quality=75, colorspace="RGB")


def tiff(entries: list[Tag], blobs: bytes = b"", next_ifd: int = 0,
         ifd_at_end: bool = True) -> bytes:
    """A classic little-endian TIFF: header, ``blobs`` (at offset 8), out-of-line
    tag values, then one IFD whose next pointer is ``next_ifd``.

    Offsets inside ``entries`` that refer to ``blobs`` are absolute (blobs
    start at byte 8)."""
    out = bytearray(b"II*\x00\0\0\0\0") + blobs
    values: list[tuple[int, int, int, bytes]] = []
    for tag, typ, value in sorted(entries, key=lambda e: e[0]):
        if isinstance(value, bytes):
            data, count = value, len(value)
        else:
            numbers = [value] if isinstance(value, int) else list(value)
            letter = _SIZES[typ][0]
            data, count = struct.pack("<" + letter * len(numbers), *numbers), len(numbers)
        values.append((tag, typ, count, data))
    fields = []
    for tag, typ, count, data in values:
        if len(data) <= 4:
            fields.append(struct.pack("<HHI", tag, typ, count) + data.ljust(4, b"\0"))
        else:
            if len(out) % 2:
                out += b"\0"
            where = len(out)
            out += data
            fields.append(struct.pack("<HHII", tag, typ, count, where))
    if len(out) % 2:
        out += b"\0"
    ifd = len(out)
    out += struct.pack("<H", len(fields)) + b"".join(fields) + struct.pack("<I", next_ifd)
    out[4:8] = struct.pack("<I", ifd)
    return bytes(out)


def tiled(width: int, height: int, *, tile: int = 256, tile_height: int | None = None,
          data: bytes | None = None, tiles: int | None = None,
          offsets: list[int] | None = None, counts: list[int] | None = None,
          extra: list[Tag] | None = None, bits: int = 8, samples: int = 3,
          compression: int = 7, photometric: int = 2, next_ifd: int = 0) -> bytes:
    """A one-level tiled TIFF whose every tile is the same stored ``data``
    (a real JPEG tile by default): ``tiles`` entries in the tile table (default:
    as many as the declared size needs), pointing at ``offsets`` when given."""
    tile_height = tile_height or tile
    data = jpeg_tile(min(max(tile, 16), 256)) if data is None else data
    if tiles is None:
        tiles = -(-width // tile) * -(-height // tile_height)
    offsets = offsets if offsets is not None else [8] * tiles
    counts = counts if counts is not None else [len(data)] * tiles
    entries: list[Tag] = [
        (256, LONG, width), (257, LONG, height), (258, SHORT, [bits] * samples),
        (259, SHORT, compression), (262, SHORT, photometric), (277, SHORT, samples),
        (284, SHORT, 1), (322, LONG, tile), (323, LONG, tile_height),
        (324, LONG, offsets), (325, LONG, counts),
    ]
    by_tag = {e[0]: e for e in entries}
    for e in extra or []:
        by_tag[e[0]] = e
    return tiff(list(by_tag.values()), data, next_ifd=next_ifd)


def _with_ifd_pointer(data: bytes, pointer: int) -> bytes:
    """``data`` (from :func:`tiff`) with its one IFD's next pointer replaced."""
    ifd = struct.unpack("<I", data[4:8])[0]
    count = struct.unpack("<H", data[ifd:ifd + 2])[0]
    at = ifd + 2 + 12 * count
    return data[:at] + struct.pack("<I", pointer) + data[at + 4:]


def ifd_self_loop() -> bytes:
    """An IFD whose next pointer is itself."""
    data = tiled(512, 512)
    return _with_ifd_pointer(data, struct.unpack("<I", data[4:8])[0])


def ifd_two_loop() -> bytes:
    """Two IFDs pointing at each other: first → second → first."""
    first = tiled(512, 512)
    ifd1 = struct.unpack("<I", first[4:8])[0]
    ifd2 = len(first) + len(first) % 2
    count = len(jpeg_tile())
    fields = [(256, LONG, 256), (257, LONG, 256), (258, SHORT, 8), (259, SHORT, 7),
              (262, SHORT, 1), (277, SHORT, 1), (322, LONG, 256), (323, LONG, 256),
              (324, LONG, 8), (325, LONG, count)]
    second = struct.pack("<H", len(fields))
    for tag, typ, value in fields:
        letter = _SIZES[typ][0]
        value_field = struct.pack("<" + letter, value).ljust(4, b"\0")
        second += struct.pack("<HHI", tag, typ, 1) + value_field
    second += struct.pack("<I", ifd1)
    return _with_ifd_pointer(first, ifd2).ljust(ifd2, b"\0") + second


def huge_ifd_chain() -> bytes:
    """An IFD chain of 20,000 tiny directories (each points at the next)."""
    out = bytearray(b"II*\x00" + struct.pack("<I", 8))
    for i in range(20000):
        here = len(out)
        out += struct.pack("<H", 1) + struct.pack("<HHII", 256, LONG, 1, 1)
        out += struct.pack("<I", here + 18 if i < 19999 else 0)
    return bytes(out)


def shared_tag_data(directories: int = 100, size: int = 4 << 20) -> bytes:
    """A chain of ``directories`` tiled directories whose XMP tags all point at the
    same ``size`` bytes: 400 MB of tag data claimed by a 4 MB file (a stack of
    pages sharing one huge table)."""
    out = bytearray(b"II*\x00\0\0\0\0") + bytes(size)
    fields = [(256, LONG, 256), (257, LONG, 256), (258, SHORT, 8), (259, SHORT, 1),
              (262, SHORT, 1), (277, SHORT, 1), (322, LONG, 256), (323, LONG, 256),
              (324, LONG, 8), (325, LONG, 65536)]
    ifd_size = 2 + 12 * (len(fields) + 1) + 4
    first = len(out)
    for n in range(directories):
        out += struct.pack("<H", len(fields) + 1)
        for tag, typ, value in fields:
            out += struct.pack("<HHI", tag, typ, 1) + struct.pack(
                "<" + _SIZES[typ][0], value).ljust(4, b"\0")
        out += struct.pack("<HHII", 700, UNDEFINED, size, 8)
        nxt = first + (n + 1) * ifd_size if n + 1 < directories else 0
        out += struct.pack("<I", nxt)
    out[4:8] = struct.pack("<I", first)
    return bytes(out)


def png_bytes() -> bytes:
    """A real PNG (to be named .tif)."""
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (300, 200), (10, 200, 30)).save(buffer, "PNG")
    return buffer.getvalue()


def j2k_siz(width: int, height: int, *, tile: int | None = None, comps: int = 3,
            depth: int = 8, raw: bool = True) -> bytes:
    """A codestream main header (SOC, SIZ, COD, QCD) declaring ``width×height``,
    then a few garbage bytes and EOC: no tile data worth the name."""
    tw = tile or width
    th = tile or height
    siz = struct.pack(">HIIIIIIIIH", 0, width, height, 0, 0, tw, th, 0, 0, comps)
    siz += bytes([depth - 1, 1, 1]) * comps
    siz = b"\xff\x51" + struct.pack(">H", len(siz) + 2) + siz
    cod = b"\xff\x52" + struct.pack(">HBBHBBBBBB", 12, 0, 0, 1, 1, 5, 4, 4, 0, 0)
    qcd = b"\xff\x5c" + struct.pack(">HB", 4, 0x40) + b"\x48"
    stream = b"\xff\x4f" + siz + cod + qcd + b"\xff\x90" + bytes(64) + b"\xff\xd9"
    if raw:
        return stream
    return _jp2_wrap(stream, width, height, comps, depth)


def _box(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", 8 + len(payload)) + kind + payload


def _jp2_wrap(stream: bytes, width: int, height: int, comps: int, depth: int) -> bytes:
    ihdr = _box(b"ihdr", struct.pack(">IIHBBBB", height, width, comps, depth - 1, 7, 0, 0))
    colr = _box(b"colr", struct.pack(">BBBI", 1, 0, 0, 16 if comps >= 3 else 17))
    return (_box(b"jP  ", b"\r\n\x87\n") + _box(b"ftyp", b"jp2 \0\0\0\0jp2 ")
            + _box(b"jp2h", ihdr + colr) + _box(b"jp2c", stream))


def _real(path: Path, kind: str) -> bytes:
    """A small real pyramid (TIFF or JP2) to break."""
    from images import make_jp2, make_tiff

    source = path.with_name(f"_hostile_source.{kind}")
    if not source.exists():
        if kind == "tif":
            make_tiff(source, 700, 500)
        else:
            make_jp2(source, 700, 500)
    return source.read_bytes()


def _real_jpeg(path: Path) -> bytes:
    """A small real baseline JPEG (an untiled source) to break."""
    import numpy as np
    import pyvips

    source = path.with_name("_hostile_source.jpg")
    if not source.exists():
        y, x = np.mgrid[0:500, 0:700]
        pixels = np.dstack([x % 256, y % 256, (x + y) % 256]).astype(np.uint8)
        pyvips.Image.new_from_memory(pixels.tobytes(), 700, 500, 3, "uchar").jpegsave(
            str(source), Q=90)
    return source.read_bytes()


def _jpeg_sof(width: int, height: int) -> Callable[[Path], bytes]:
    """A real JPEG whose SOF claims width×height (its data are for 700×500)."""
    def make(path: Path) -> bytes:
        data = bytearray(_real_jpeg(path))
        sof = data.index(b"\xff\xc0")
        data[sof + 5:sof + 9] = struct.pack(">HH", height, width)
        return bytes(data)
    return make


def png_stream(width: int, height: int, idat_rows: int | None = None) -> bytes:
    """A grey 8-bit PNG of zeros (a deflate bomb: ~1000:1) declaring
    width×height, with the data of ``idat_rows`` rows (default: all)."""
    import zlib

    def chunk(kind: bytes, payload: bytes) -> bytes:
        body = kind + payload
        return struct.pack(">I", len(payload)) + body + struct.pack(">I", zlib.crc32(body))

    squeeze = zlib.compressobj(9)
    row = bytes(width + 1)  # filter byte 0, then zeros
    idat = b"".join(squeeze.compress(row) for _ in range(
        height if idat_rows is None else idat_rows)) + squeeze.flush()
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat)
            + chunk(b"IEND", b""))


def _truncate(kind: str, fraction: float) -> Callable[[Path], bytes]:
    return lambda path: _real(path, kind)[: int(len(_real(path, kind)) * fraction)]


def _tiff_ifd_cut(path: Path) -> bytes:
    """A real pyramid cut in the middle of its first directory."""
    data = _real(path, "tif")
    ifd = struct.unpack("<I", data[4:8])[0]
    return data[: ifd + 40]


def _garbage_after_signature(path: Path) -> bytes:
    rng = np.random.default_rng(11)
    return _real(path, "jp2")[:12] + rng.integers(0, 256, 4000, dtype=np.uint8).tobytes()


def _garbage_codestream(path: Path) -> bytes:
    rng = np.random.default_rng(12)
    return b"\xff\x4f\xff\x51" + rng.integers(0, 256, 4000, dtype=np.uint8).tobytes()


def _jp2_corrupt_siz(path: Path) -> bytes:
    """A real JP2 whose SIZ claims 4e9×4e9 (tile size too)."""
    data = bytearray(_real(path, "jp2"))
    siz = data.index(b"\xff\x51")
    data[siz + 6:siz + 14] = struct.pack(">II", 4_000_000_000, 4_000_000_000)
    data[siz + 22:siz + 30] = struct.pack(">II", 4_000_000_000, 4_000_000_000)
    return bytes(data)


def _sof_claims(tile: bytes, width: int, height: int) -> bytes:
    """A JPEG whose SOF marker claims width×height (its data stays a 256² tile's)."""
    at = tile.index(b"\xff\xc0")
    return tile[:at + 5] + struct.pack(">HH", height, width) + tile[at + 9:]


def _sof_huge(path: Path) -> bytes:
    return tiled(512, 512, data=_sof_claims(jpeg_tile(), 65000, 65000))


def _bigtiff_huge_ifd(path: Path) -> bytes:
    """A BigTIFF whose first directory claims 2^40 entries."""
    return b"II+\x00" + struct.pack("<HHQ", 8, 0, 16) + struct.pack("<Q", 1 << 40) + bytes(64)


def _deflate_bomb(path: Path) -> bytes:
    """An 8-bit CIELab tile (decoded by iipy itself, tiffraw.py) whose Deflate
    stream inflates to 400 MB (made in 1 MB steps, never held whole)."""
    import zlib

    packer = zlib.compressobj(9)
    chunk = bytes(1 << 20)
    stream = b"".join(packer.compress(chunk) for _ in range(400)) + packer.flush()
    return tiled(256, 256, data=stream, compression=8, photometric=8)


def _past_eof(path: Path) -> bytes:
    data = tiled(1024, 1024)
    return tiled(1024, 1024, offsets=[len(data) + 10_000] * 16)


#: Files whose header is intact and only their data is damaged or huge: they
#: are described (OBJ, info.json: 200), their pixels refused (4xx) or, for
#: SERVED, decoded as far as they go (tiles of the bomb are real tiles).
DESCRIBED = {"bomb_200000_shared_tiles", "bomb_wide_strip", "garbage_jpeg_tile",
             "cielab_deflate_bomb",
             # untiled sources: the header is intact (the data are broken, or zeros)
             "png_named_tif", "bits_3", "jpeg_truncated_50pc", "png_bomb_4096",
             "png_truncated_rows",
             "jpeg_tile_sof_65000",
             "jp2_truncated_30pc", "jp2_truncated_header", "tiff_truncated_99pc"}
SERVED = {"bomb_200000_shared_tiles", "bomb_wide_strip", "garbage_jpeg_tile",
          "cielab_deflate_bomb",  # its first 256² pixels are a tile (of zeros)
          "bits_3",  # 3-bit samples are decoded (tiffraw): its stored bytes are pixels
          "png_named_tif",  # a real PNG: found by its magic bytes, served
          "png_bomb_4096",  # 2^24 real pixels of zeros: served, one band at a time
          "jpeg_tile_sof_65000"}  # its stored tile is passed through undecoded

#: name → (file name, generator(path) → bytes).  Every one must answer 4xx.
HOSTILE: dict[str, tuple[str, Callable[[Path], bytes]]] = {
    "zero_bytes": ("zero.tif", lambda p: b""),
    "zero_bytes_jp2": ("zero.jp2", lambda p: b""),
    "tiff_header_only": ("header.tif", lambda p: b"II*\x00\x08\x00\x00\x00"),
    "tiff_truncated_5pc": ("trunc5.tif", _truncate("tif", 0.05)),
    "tiff_truncated_50pc": ("trunc50.tif", _truncate("tif", 0.5)),
    "tiff_truncated_99pc": ("trunc99.tif", _truncate("tif", 0.99)),
    "tiff_ifd_cut": ("ifdcut.tif", _tiff_ifd_cut),
    "ifd_self_loop": ("loop1.tif", lambda p: ifd_self_loop()),
    "ifd_two_loop": ("loop2.tif", lambda p: ifd_two_loop()),
    "ifd_chain_20000": ("chain.tif", lambda p: huge_ifd_chain()),
    "tag_data_shared_100x": ("shared.tif", lambda p: shared_tag_data()),
    "ifd_past_eof": ("ifdeof.tif", lambda p: b"II*\x00" + struct.pack("<I", 1 << 30) + bytes(8)),
    "tile_offsets_past_eof": ("tileeof.tif", _past_eof),
    "tile_count_huge": ("tilecount.tif", lambda p: tiled(
        1024, 1024, counts=[1 << 31] * 16)),
    "declared_200000_one_tile": ("declared1.tif", lambda p: tiled(200_000, 200_000, tiles=1)),
    "bomb_200000_shared_tiles": ("bomb.tif", lambda p: tiled(200_000, 200_000)),
    "bomb_wide_strip": ("wide.tif", lambda p: tiled(4_000_000, 256)),
    "tile_4e9": ("bigtile.tif", lambda p: tiled(
        4_000_000_000, 4_000_000_000, tile=4_000_000_000, tiles=1)),
    "tile_65536": ("tile64k.tif", lambda p: tiled(65536, 65536, tile=65536, tiles=1)),
    "tile_zero": ("tile0.tif", lambda p: tiled(512, 512, tile=0, tiles=4)),
    "width_zero": ("width0.tif", lambda p: tiled(0, 512, tiles=2)),
    "sample_format_7": ("sf7.tif", lambda p: tiled(512, 512, extra=[(339, SHORT, [7] * 3)])),
    "bits_3": ("bits3.tif", lambda p: tiled(512, 512, bits=3, compression=1)),
    "bits_0": ("bits0.tif", lambda p: tiled(512, 512, bits=0, compression=1)),
    "bits_64_int": ("bits64.tif", lambda p: tiled(512, 512, bits=64, compression=1,
                                                  extra=[(339, SHORT, [2] * 3)])),
    "samples_0": ("samples0.tif", lambda p: tiled(512, 512, samples=0)),
    "samples_65535": ("samples64k.tif", lambda p: tiled(512, 512, samples=1000)),
    "strip_tiff": ("strip.tif", lambda p: tiff([
        (256, LONG, 1000), (257, LONG, 1000), (258, SHORT, 8), (259, SHORT, 1),
        (262, SHORT, 1), (273, LONG, 8), (277, SHORT, 1), (278, LONG, 1000),
        (279, LONG, 1_000_000)], bytes(1000))),
    "garbage_jpeg_tile": ("badjpeg.tif", lambda p: tiled(512, 512, data=bytes(range(256)) * 8)),
    "jpeg_tile_sof_65000": ("sof.tif", _sof_huge),
    "bigtiff_ifd_2e40_entries": ("bigifd.tif", _bigtiff_huge_ifd),
    "cielab_deflate_bomb": ("inflate.tif", _deflate_bomb),
    "png_named_tif": ("png.tif", lambda p: png_bytes()),
    "jpeg_truncated_50pc": ("trunc50.jpg", lambda p: _real_jpeg(p)[:len(_real_jpeg(p)) // 2]),
    "jpeg_sof_65535": ("huge.jpg", _jpeg_sof(65535, 65535)),
    "jpeg_sof_60000": ("big.jpg", _jpeg_sof(60000, 60000)),
    "jpeg_sof_zero": ("zero.jpg", _jpeg_sof(0, 500)),
    "jpeg_header_only": ("head.jpg", lambda p: _real_jpeg(p)[:200]),
    "png_bomb_100000": ("bomb.png", lambda p: png_stream(100_000, 100_000, 16)),
    "png_bomb_4096": ("zeros.png", lambda p: png_stream(4096, 4096)),
    "png_truncated_rows": ("rows.png", lambda p: png_stream(2000, 2000, 100)),
    "png_bad_crc": ("crc.png", lambda p: png_bytes()[:40] + b"\0\0\0\0" + png_bytes()[44:]),
    "jp2_truncated_30pc": ("trunc30.jp2", _truncate("jp2", 0.3)),
    "jp2_truncated_header": ("trunchead.jp2", _truncate("jp2", 0.02)),
    "jp2_garbage_boxes": ("garbage.jp2", _garbage_after_signature),
    "j2k_garbage": ("garbage.j2k", _garbage_codestream),
    "j2k_4e9": ("huge.j2k", lambda p: j2k_siz(4_000_000_000, 4_000_000_000)),
    "jp2_4e9": ("huge.jp2", lambda p: j2k_siz(4_000_000_000, 4_000_000_000, raw=False)),
    "jp2_siz_4e9": ("siz4e9.jp2", _jp2_corrupt_siz),
    "j2k_many_tiles": ("tiles.j2k", lambda p: j2k_siz(1_000_000, 1_000_000, tile=16)),
}


def write_all(directory: Path) -> dict[str, Path]:
    """Write every hostile file into ``directory``; name → path."""
    directory.mkdir(parents=True, exist_ok=True)
    paths = {}
    for name, (filename, make) in HOSTILE.items():
        path = directory / filename
        path.write_bytes(make(path))
        paths[name] = path
    return paths
