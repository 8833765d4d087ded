"""``iipy check FILE... [--json]``: whether, and how well, iipy serves each file.

For each file: the format, size, levels (and the ones missing for a pyramid
down to one tile), tile size, compression, bit depth, colour space, ICC,
pages; for JPEG 2000 its tiles, precincts, progression order, layers and
code-block size; problems (strips, too few levels, huge tiles) with the
``iipy convert`` command that fixes them; and the measured time of one
full-resolution tile through iipy's renderer.

Exit status: 0 when every file is servable, 1 when some is not, 2 on usage
errors (argparse's own).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import struct
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..errors import IIPyError
from ..models import ImageInfo, View

#: below this many levels for its size, an image is served slowly at small sizes
MIN_TILE, MAX_TILE = 64, 1024


@dataclass
class Report:
    file: str
    servable: bool
    format: str = ""
    width: int = 0
    height: int = 0
    levels: int = 0
    levels_needed: int = 0
    tile: tuple[int, int] = (0, 0)
    compression: str = ""
    bits: int = 0
    sample_format: str = ""
    colour_space: str = ""
    bands: int = 0
    icc: bool = False
    pages: int = 0
    jpeg2000: dict[str, Any] = field(default_factory=dict)
    tile_ms: float | None = None
    problems: list[str] = field(default_factory=list)
    fix: str = ""


def levels_needed(width: int, height: int, tile_w: int, tile_h: int) -> int:
    """Levels of a pyramid halving (rounding up) until one tile holds the image."""
    count = 1
    while width > tile_w or height > tile_h:
        width, height = math.ceil(width / 2), math.ceil(height / 2)
        count += 1
    return count


def _fix_command(path: str, fmt: str = "tiff") -> str:
    stem = Path(path).with_suffix("").name
    suffix = ".jp2" if fmt == "jp2" else ".tif"
    return f"iipy convert {path} {Path(path).with_name(stem + '-tiled' + suffix)}"


_TIFF_COMPRESSION = {1: "none", 5: "lzw", 7: "jpeg", 8: "deflate", 32946: "deflate",
                     34887: "lerc", 50000: "zstd", 50001: "webp", 33003: "jpeg2000",
                     32773: "packbits", 34712: "jpeg2000"}


def _tiff_facts(path: str, report: Report) -> None:
    from ..decoders.tiffdir import TAG_BITS, TAG_COMPRESSION, TAG_SAMPLES, read_structure
    from ..decoders.tiffpages import find_pages

    fd = os.open(path, os.O_RDONLY)
    try:
        structure = read_structure(fd)
    finally:
        os.close(fd)
    first = structure.ifds[0]
    report.pages = len(find_pages(structure)[0])  # a stack's pages, not its directories
    code = first.int(TAG_COMPRESSION, 1)
    report.compression = _TIFF_COMPRESSION.get(code, f"code {code}")
    report.width, report.height = first.width, first.height
    report.bits, report.bands = (first.ints(TAG_BITS) or (1,))[0], first.int(TAG_SAMPLES, 1)
    report.format = "bigtiff" if structure.bigtiff else "tiff"
    if not first.tiled:
        report.problems.append("strip TIFF: not tiled, each level is decoded whole (slow; "
                               "iipsrv cannot serve it)")


def read_cod(path: str) -> dict[str, Any]:
    """The main header's SIZ tile size and COD of a JP2/J2K file, parsed from its bytes
    (glymur 0.14 reports 256 precincts as 0: its sizes are uint8)."""
    with open(path, "rb") as handle:
        data = handle.read(1 << 20)
    at = data.find(b"\xff\x4f\xff\x51")
    if at < 0:
        raise ValueError("no JPEG 2000 codestream")
    facts: dict[str, Any] = {}
    pos = at + 2
    while pos + 4 <= len(data):
        marker, length = struct.unpack(">HH", data[pos:pos + 4])
        body = data[pos + 4:pos + 2 + length]
        if marker == 0xFF51:  # SIZ: Rsiz Xsiz Ysiz XOsiz YOsiz XTsiz YTsiz …
            facts["tiles"] = list(struct.unpack(">II", body[18:26]))
        elif marker == 0xFF52:  # COD
            scod, prog, layers, _mct, levels, xcb, ycb, _style, xform = struct.unpack(
                ">BBHBBBBBB", body[:10])
            facts["progression"] = PROGRESSIONS.get(prog, str(prog))
            facts["layers"] = layers
            facts["resolutions"] = levels + 1
            facts["code_block"] = [1 << (xcb + 2), 1 << (ycb + 2)]
            facts["wavelet"] = "5-3 reversible" if xform == 1 else "9-7 irreversible"
            if scod & 1:
                facts["precincts"] = [[1 << (b & 15), 1 << (b >> 4)] for b in body[10:11 + levels]]
            break
        pos += 2 + length
    return facts


PROGRESSIONS = {0: "LRCP", 1: "RLCP", 2: "RPCL", 3: "PCRL", 4: "CPRL"}


def _jp2_facts(path: str, report: Report) -> None:
    facts = read_cod(path)
    report.jpeg2000 = facts
    report.compression = "jpeg2000 " + ("lossless" if facts.get("wavelet", "").startswith("5")
                                        else "lossy")
    tiles = facts.get("tiles", [0, 0])
    if tiles[0] * tiles[1] > 4096 * 4096 and not facts.get("precincts"):
        report.problems.append("one huge JPEG 2000 tile without precincts: every tile read "
                               "decodes much of the image")
    if facts.get("progression") not in ("RPCL", "RLCP", "PCRL"):
        report.problems.append(f"{facts.get('progression')} progression: a reduced level reads "
                               "packets of every layer first (RPCL serves fastest)")


def _describe(info: ImageInfo, report: Report) -> None:
    first = info.levels[0]
    report.width, report.height = info.width, info.height
    report.levels = info.resolutions
    report.tile = (first.tile_width, first.tile_height)
    report.bits, report.bands = info.bits, info.bands
    report.sample_format = info.sample_format.value
    report.colour_space = info.colour_space.value
    report.icc = bool(info.icc)
    report.levels_needed = levels_needed(info.width, info.height, first.tile_width,
                                         first.tile_height)
    if info.format in ("jpeg", "png"):
        report.format = info.format
        report.problems.append(f"untiled {info.format.upper()}: each level is decoded whole "
                               "(slow; iipsrv 1.3 serves JPEG so, 1.1 neither)")
    if info.format == "tiff":
        if report.levels < report.levels_needed:
            report.problems.append(
                f"too few levels: {report.levels} of {report.levels_needed} (smaller views are "
                "made by shrinking a big level: slow)")
        if not MIN_TILE <= first.tile_width <= MAX_TILE:
            report.problems.append(f"tile size {first.tile_width}: 256 serves fastest")


def _time_tile(path: str, info: ImageInfo) -> float:
    """Milliseconds of one full-resolution tile from a cold renderer (mid-image)."""
    from ..render.renderer import Renderer
    from ..settings import Settings

    renderer = Renderer(Settings.from_environ({}))
    record = renderer.open(path)
    level = info.levels[0]
    index = (level.rows // 2) * level.columns + level.columns // 2
    view = View(record.path, "tile", resolution=info.resolutions - 1, tile=index,
                stamp=record.stamp)
    started = time.perf_counter()
    renderer.tile(view)
    return round((time.perf_counter() - started) * 1000, 2)


def check_file(path: str, timed: bool = True) -> Report:
    """Everything ``iipy check`` says about one file."""
    from ..decoders import decoder_for

    report = Report(file=path, servable=False)
    if not os.path.isfile(path):
        report.problems.append("no such file")
        return report
    with open(path, "rb") as handle:
        head = handle.read(12)
    try:
        if head[:2] in (b"II", b"MM"):
            _tiff_facts(path, report)
        elif head.startswith(b"\x00\x00\x00\x0cjP  ") or head.startswith(b"\xff\x4f\xff\x51"):
            _jp2_facts(path, report)
            report.format = "jp2" if head.startswith(b"\x00") else "j2k (raw codestream)"
    except Exception as exc:  # noqa: BLE001 - reported, the decoder gives the verdict
        report.problems.append(f"unreadable structure: {exc}")
    try:
        decoder = decoder_for(path)
    except IIPyError as exc:
        report.problems.append(f"iipy cannot serve it: {exc.message}")
        report.fix = _fix_command(path)
        return report
    try:
        _describe(decoder.info, report)
    finally:
        decoder.close()
    report.servable = True
    if timed:
        try:
            report.tile_ms = _time_tile(path, decoder.info)
        except IIPyError as exc:
            report.servable = False
            report.problems.append(f"a tile fails: {exc.message}")
    if report.problems:
        jp2 = report.format.startswith(("jp2", "j2k"))
        report.fix = _fix_command(path, "jp2" if jp2 else "tiff")
    return report


def format_report(report: Report) -> str:
    verdict = "ok" if report.servable and not report.problems else (
        "serves, with problems" if report.servable else "NOT SERVABLE")
    lines = [f"{report.file}: {verdict}"]
    if report.width:
        lines.append(f"  {report.format or '?'} {report.width}x{report.height}, "
                     f"{report.bands or '?'} band(s) {report.bits or '?'}-bit "
                     f"{report.sample_format} {report.colour_space}".rstrip())
    if report.levels:
        lines.append(f"  levels {report.levels} (pyramid to one tile needs "
                     f"{report.levels_needed}), tile {report.tile[0]}x{report.tile[1]}, "
                     f"compression {report.compression}, ICC {'yes' if report.icc else 'no'}, "
                     f"pages {report.pages or 1}")
    elif report.compression:
        lines.append(f"  compression {report.compression}, pages {report.pages or 1}")
    if report.jpeg2000:
        j = report.jpeg2000
        precincts = j.get("precincts") or []
        if precincts and all(p == precincts[0] for p in precincts):
            shown = f"{precincts[0][0]}x{precincts[0][1]} at every resolution"
        else:
            shown = " ".join(f"{a}x{b}" for a, b in precincts) or "none"
        lines.append(f"  JPEG 2000: tiles {j.get('tiles')}, precincts {shown}, "
                     f"{j.get('progression')}, "
                     f"{j.get('layers')} layer(s), code-blocks {j.get('code_block')}, "
                     f"{j.get('resolutions')} resolutions, {j.get('wavelet')}")
    if report.tile_ms is not None:
        lines.append(f"  one full-resolution tile: {report.tile_ms} ms")
    lines += [f"  problem: {p}" for p in report.problems]
    if report.fix:
        lines.append(f"  fix: {report.fix}")
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="iipy check", description=__doc__.split("\n")[0])
    parser.add_argument("files", nargs="+", metavar="FILE")
    parser.add_argument("--json", action="store_true", help="one JSON document on stdout")
    parser.add_argument("--no-timing", action="store_true", help="skip the tile timing")
    args = parser.parse_args(argv)
    reports = [check_file(path, timed=not args.no_timing) for path in args.files]
    if args.json:
        json.dump([asdict(r) for r in reports], sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        for report in reports:
            print(format_report(report))
    return 0 if all(r.servable for r in reports) else 1
