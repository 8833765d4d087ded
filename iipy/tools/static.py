"""``iipy static SRC OUTDIR``: a tile tree any web server hosts, with no image server.

Layouts: ``iiif3`` and ``iiif2`` (IIIF Image API level 0: ``info.json`` plus
``{region}/{size}/0/default.jpg`` for every tile OpenSeadragon and other
level-0 clients ask for, and every size ``info.json`` lists), ``deepzoom``
(``NAME.dzi`` + ``NAME_files/``), ``zoomify`` (``ImageProperties.xml`` +
``TileGroupN/``).

Every file is the body iipy's own WSGI application answers for the same URL
(``/iiif/NAME/…``, ``/deepzoom/…``, ``/zoomify/NAME/…``), called in this
process with the server's default settings: the tree is byte-identical to
what a running iipy serves, by construction (tests/test_tools_static.py
checks it against a real server behind lighttpd).  Only ``info.json`` is
edited: its ``id`` is ``--base-url`` and its profile says level 0.

A source iipy cannot serve as it is (a JPEG, a strip TIFF), or whose tiles are
not ``--tile`` pixels, is first converted to a temporary pyramidal TIFF.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

from ..errors import IIPyError
from ..protocols.deepzoom import level_geometry, top_level
from ..protocols.zoomify import zoomify_levels
from .progress import open_bar

LAYOUTS = ("iiif3", "iiif2", "deepzoom", "zoomify")
FORMATS = ("jpg", "png", "webp")
LEVEL0 = {2: ["http://iiif.io/api/image/2/level0.json"], 3: "level0"}


class StaticError(Exception):
    """A failure reported as one line."""


class Site:
    """iipy's WSGI application for one directory, called in-process."""

    def __init__(self, directory: Path, iiif_version: int = 3) -> None:
        from ..serve.app import create_app
        from ..settings import Settings

        env = {"FILESYSTEM_PREFIX": str(directory) + "/", "IIIF_VERSION": str(iiif_version),
               "LOGFILE": os.devnull}
        self.app = create_app(Settings.from_environ(env))

    def get(self, uri: str, iiif_id: str = "") -> bytes:
        status: list[str] = []
        environ = {"REQUEST_METHOD": "GET", "REQUEST_URI": uri, "QUERY_STRING": "",
                   "HTTP_HOST": "localhost", "HTTP_X_IIIF_ID": iiif_id}
        body = b"".join(self.app(environ, lambda s, h: status.append(s)))
        if not status or not status[0].startswith("200"):
            raise StaticError(f"iipy answered {status[0] if status else '?'} for {uri}: "
                              f"{body[:200].decode('utf-8', 'replace').strip()}")
        return body


# -- which files a layout has: (path in OUTDIR, URI iipy answers) -----------------------


def iiif_levels(info: dict) -> list[tuple[int, int, int]]:
    """(scale factor, width, height) of every level, as a level-0 client computes them:
    the listed sizes when they are one per scale factor (OpenSeadragon's rule), else
    ``ceil(W / s)``."""
    width, height = info["width"], info["height"]
    factors = sorted({f for t in info["tiles"] for f in t["scaleFactors"]})
    sizes = sorted(((s["width"], s["height"]) for s in info.get("sizes", [])), reverse=True)
    if not sizes or sizes[0][0] < width and sizes[0][1] < height:
        sizes.insert(0, (width, height))
    if len(sizes) == len(factors) and all(
            round(width / w) == f and round(height / h) == f
            for (w, h), f in zip(sizes, factors, strict=True)):
        return [(f, w, h) for (w, h), f in zip(sizes, factors, strict=True)]
    return [(f, math.ceil(width / f), math.ceil(height / f)) for f in factors]


def iiif_tiles(info: dict, version: int, ext: str) -> Iterator[str]:
    """Every tile URL (below the image's id) OpenSeadragon's level-0 IIIF client asks for,
    in the canonical forms of the version (2: ``w,``; 3: ``w,h``, ``max``)."""
    width, height = info["width"], info["height"]
    tile = info["tiles"][0]
    tw, th = tile["width"], tile.get("height", tile["width"])
    for scale, lw, lh in iiif_levels(info):
        for row in range(math.ceil(lh / th)):
            for column in range(math.ceil(lw / tw)):
                x, y = column * tw * scale, row * th * scale
                rw, rh = min(tw * scale, width - x), min(th * scale, height - y)
                whole = column == 0 and row == 0 and rw == width and rh == height
                region = "full" if whole else f"{x},{y},{rw},{rh}"
                sw, sh = min(tw, lw - column * tw), min(th, lh - row * th)
                if version == 2:
                    size = "full" if sw == width else f"{sw},"
                else:
                    size = "max" if sw == width and sh == height else f"{sw},{sh}"
                yield f"{region}/{size}/0/default.{ext}"


def iiif_sizes(info: dict, version: int, ext: str) -> Iterator[str]:
    """The listed sizes as ``full/…`` images (level 0 requires them)."""
    for size in info.get("sizes", []):
        w, h = size["width"], size["height"]
        yield f"full/{w},/0/default.{ext}" if version == 2 else f"full/{w},{h}/0/default.{ext}"


def full_image(version: int, ext: str) -> str:
    """The whole image at full size: written when iipy serves it (within MAX_CVT)."""
    return f"full/{'full' if version == 2 else 'max'}/0/default.{ext}"


def level0_info(info: dict, version: int, ident: str) -> dict:
    """The server's info.json as a static tree's: its id, profile level 0, nothing extra."""
    doc = dict(info)
    doc["@id" if version == 2 else "id"] = ident
    doc["profile"] = LEVEL0[version]
    for key in ("extraQualities", "extraFormats", "extraFeatures", "maxWidth", "maxHeight",
                "maxArea"):
        doc.pop(key, None)
    return doc


def deepzoom_files(site: Site, name: str, ext: str) -> tuple[list[tuple[str, str]], bytes]:
    record = site.app.renderer.open(*site.app.resolver.locate(name))
    tile = record.info.levels[0].tile_width
    files = []
    for level in range(top_level(record.info.width, record.info.height) + 1):
        geometry = level_geometry(record, level)
        for row in range(math.ceil(geometry.height / tile)):
            for column in range(math.ceil(geometry.width / tile)):
                rel = f"{name}_files/{level}/{column}_{row}.{ext}"
                files.append((rel, f"/deepzoom/{quote(rel)}"))
    descriptor = site.get(f"/deepzoom/{quote(name)}.dzi")
    return files, descriptor.replace(b'Format="jpg"', f'Format="{ext}"'.encode())


def zoomify_files(site: Site, name: str, ext: str) -> list[tuple[str, str]]:
    record = site.app.renderer.open(*site.app.resolver.locate(name))
    tile = record.info.levels[0].tile_width
    files, index = [], 0
    for z, level in enumerate(zoomify_levels(record.info, tile)):
        for row in range(math.ceil(level.height / tile)):
            for column in range(math.ceil(level.width / tile)):
                rel = f"TileGroup{index // 256}/{z}-{column}-{row}.{ext}"
                files.append((rel, f"/zoomify/{quote(name)}/{rel}"))
                index += 1
    return files


def plan(site: Site, name: str, layout: str, ext: str, base_url: str
         ) -> tuple[list[tuple[str, str]], dict[str, bytes], list[tuple[str, str]]]:
    """(files rendered through iipy, files written as given, files rendered if iipy
    answers them) for one layout."""
    if layout == "deepzoom":
        files, descriptor = deepzoom_files(site, name, ext)
        return files, {f"{name}.dzi": descriptor}, []
    if layout == "zoomify":
        props = site.get(f"/zoomify/{quote(name)}/ImageProperties.xml")
        return zoomify_files(site, name, ext), {"ImageProperties.xml": props}, []
    version = 2 if layout == "iiif2" else 3
    base = f"/iiif/{quote(name, safe='')}"
    info = json.loads(site.get(f"{base}/info.json", iiif_id=base_url))
    rels = list(dict.fromkeys([*iiif_tiles(info, version, ext), *iiif_sizes(info, version, ext)]))
    doc = level0_info(info, version, base_url)
    full = full_image(version, ext)
    return [(rel, f"{base}/{rel}") for rel in rels], {
        "info.json": (json.dumps(doc, indent=2) + "\n").encode()}, [(full, f"{base}/{full}")]


# -- the command ---------------------------------------------------------------------------


def servable_source(source: Path, tile: int, work: Path) -> Path:
    """``source`` if iipy serves it on ``tile`` tiles, else a converted copy in ``work``."""
    from ..decoders import decoder_for

    try:
        decoder = decoder_for(str(source))
        try:
            tiles = decoder.info.levels[0].tile_width, decoder.info.levels[0].tile_height
        finally:
            decoder.close()
        if tiles == (tile, tile):
            return source
    except IIPyError:
        pass
    from .writers import Options, load, write_tiff

    target = work / (source.name + ".tif")
    write_tiff(load(source), target, Options(tile=tile), None)
    return target


def build(source: Path, outdir: Path, layout: str, ext: str, base_url: str, tile: int,
          progress: bool | None = None) -> int:
    """Write the tree; returns the number of files written."""
    with tempfile.TemporaryDirectory(prefix=".iipy-static-", dir=outdir) as work:
        served = servable_source(source, tile, Path(work))
        site = Site(served.parent, iiif_version=2 if layout == "iiif2" else 3)
        name = served.name
        rendered, given, optional = plan(site, name, layout, ext, base_url)
        bar = open_bar(progress)
        task = bar.add(f"{source.name} → {layout}", len(rendered))
        made: set[Path] = set()
        try:
            for rel, uri in rendered:
                path = outdir / rel
                if path.parent not in made:
                    path.parent.mkdir(parents=True, exist_ok=True)
                    made.add(path.parent)
                path.write_bytes(site.get(uri))
                bar.advance(task)
        finally:
            bar.close()
        for rel, uri in optional:
            try:
                body = site.get(uri)
            except StaticError:
                continue  # beyond MAX_CVT: level 0 does not require it
            (outdir / rel).parent.mkdir(parents=True, exist_ok=True)
            (outdir / rel).write_bytes(body)
            given[rel] = body
        for rel, body in given.items():
            (outdir / rel).write_bytes(body)
    return len(rendered) + len(given)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="iipy static", description=__doc__.split("\n")[0])
    parser.add_argument("source", metavar="SRC")
    parser.add_argument("outdir", metavar="OUTDIR")
    parser.add_argument("--layout", choices=LAYOUTS, default="iiif3")
    parser.add_argument("--base-url", default="",
                        help="URL OUTDIR is served at (IIIF's id; default http://localhost/OUTDIR)")
    parser.add_argument("--tile", type=int, default=256)
    parser.add_argument("--format", choices=FORMATS, default="jpg")
    parser.add_argument("--force", action="store_true", help="write into a non-empty OUTDIR")
    args = parser.parse_args(argv)
    source, outdir = Path(args.source).resolve(), Path(args.outdir)
    if not source.is_file():
        parser.error(f"{args.source}: no such file")
    if outdir.exists() and any(outdir.iterdir()) and not args.force:
        sys.stderr.write(f"iipy static: {outdir} is not empty (use --force)\n")
        return 1
    if not 16 <= args.tile <= 4096:
        parser.error("--tile must be between 16 and 4096")
    outdir.mkdir(parents=True, exist_ok=True)
    base_url = (args.base_url or f"http://localhost/{outdir.name}").rstrip("/")
    try:
        count = build(source, outdir, args.layout, args.format, base_url, args.tile)
    except (StaticError, IIPyError, OSError) as exc:
        sys.stderr.write(f"iipy static: FAILED {source}: {exc}\n")
        return 1
    size = sum(p.stat().st_size for p in outdir.rglob("*") if p.is_file())
    print(f"{source} -> {outdir}: {args.layout}, {count} files, {size / 1e6:.1f} MB")
    return 0

