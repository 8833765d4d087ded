"""``iipy convert SRC... DST``: make images iipy serves fast (see :mod:`.writers`).

One source and a file name: that file.  Several sources, or a directory: DST
is a directory and each source becomes ``DST/<stem>.tif`` (or ``.jp2``);
``--jobs`` converts that many at once.  An existing output is refused without
``--force``.  Each output is written under a hidden temporary name beside it
and renamed only once it is complete and iipy's own decoders have opened it
and served a tile (the :mod:`.check` test), so a crash, a kill or a full disk
never leaves a half file under the final name.  Exit status 1 when any file
failed (one line each on stderr), 2 on usage errors.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import jp2boxes, tiffexif, tifftags
from .check import check_file
from .progress import Bar, Quiet, open_bar
from .writers import COMPRESSIONS, Options, load, write_jp2, write_tiff

#: source suffixes taken from a directory (anything libvips reads)
IMAGE_SUFFIXES = {".tif", ".tiff", ".jpg", ".jpeg", ".png", ".webp", ".heic", ".heif",
                  ".avif", ".jp2", ".j2k", ".jpx", ".fits", ".fit", ".gif", ".bmp",
                  ".ppm", ".pgm", ".pnm", ".exr", ".svs", ".ndpi", ".jxl", ".v"}
PART = ".part"

#: temporary files being written, removed if the process is stopped by a signal
_LIVE: set[Path] = set()
_LIVE_LOCK = threading.Lock()


class ConvertError(Exception):
    """One file's failure, reported as one line."""


@dataclass(frozen=True)
class Job:
    source: Path
    target: Path


def temporary_name(target: Path) -> Path:
    """Hidden, beside the target, same suffix (glymur picks JP2 or raw J2K by suffix)."""
    return target.with_name(f".{target.name}.{os.getpid()}{PART}{target.suffix}")


def _cleanup_and_exit(signum: int, _frame: Any) -> None:
    with _LIVE_LOCK:
        for path in list(_LIVE):
            path.unlink(missing_ok=True)
    sys.stderr.write(f"iipy convert: stopped by signal {signum}; no partial output kept\n")
    os._exit(128 + signum)


def convert_one(job: Job, options: Options, bar: Bar, force: bool) -> dict:
    """Write, verify and rename one output; raises ConvertError."""
    if job.target.exists() and not force:
        raise ConvertError(f"{job.target} exists (use --force to replace it)")
    try:
        image = load(job.source)
    except Exception as exc:  # noqa: BLE001 - libvips' reasons are many
        raise ConvertError(f"cannot read {job.source}: {_first_line(exc)}") from None
    tmp = temporary_name(job.target)
    with _LIVE_LOCK:
        _LIVE.add(tmp)
    task = bar.add(job.source.name, 100 if options.format == "tiff" else _jp2_tiles(image))
    started = time.perf_counter()
    try:
        chosen = _write(image, job.source, tmp, options, bar, task)
        report = check_file(str(tmp))
        if not report.servable:
            raise ConvertError(f"{job.target}: written but iipy cannot serve it: "
                               f"{'; '.join(report.problems)}")
        os.replace(tmp, job.target)
    except ConvertError:
        raise
    except Exception as exc:  # noqa: BLE001 - one line per failed file
        raise ConvertError(f"{job.source}: {_first_line(exc)}") from None
    finally:
        tmp.unlink(missing_ok=True)
        with _LIVE_LOCK:
            _LIVE.discard(tmp)
    bar.finish(task)
    chosen.update(seconds=round(time.perf_counter() - started, 2), levels=report.levels,
                  tile_ms=report.tile_ms, bytes=job.target.stat().st_size)
    return chosen


def _write(image: Any, source: Path, tmp: Path, options: Options, bar: Bar, task: int) -> dict:
    state = {"done": 0}

    def progress(done: int, total: int) -> None:  # percent (TIFF) or tiles written (JP2)
        step = done - state["done"]
        if step > 0:
            bar.advance(task, step)
            state["done"] = done

    if options.format == "jp2":
        icc = _blob(image, "icc-profile-data")
        xmp = _blob(image, "xmp-data")
        exif = tiffexif.source_exif(_blob(image, "exif-data"), source)
        chosen = write_jp2(image, tmp, options, progress)
        chosen["metadata"] = jp2boxes.add_metadata(tmp, icc, xmp, exif)
        return chosen
    chosen = write_tiff(image, tmp, options, None if isinstance(bar, Quiet) else progress)
    tags = {**tifftags.exif_text_tags(image), **tifftags.read_text_tags(source)}
    chosen["tags"] = tifftags.add_text_tags(tmp, tags)
    chosen["exif"] = tiffexif.add_exif(tmp, tiffexif.source_exif(_blob(image, "exif-data"),
                                                                 source))
    return chosen


def _jp2_tiles(image: Any) -> int:
    """How many codestream tiles :func:`.writers.write_jp2` will write."""
    import math

    from .writers import jp2_tile_side, resolutions_for

    side = jp2_tile_side(resolutions_for(image.width, image.height))
    return math.ceil(image.width / min(side, image.width)) * math.ceil(
        image.height / min(side, image.height))


def _blob(image: Any, name: str) -> bytes | None:
    try:
        if image.get_typeof(name):
            return bytes(image.get(name))
    except Exception:  # noqa: BLE001 - absent field
        return None
    return None


def _first_line(exc: BaseException) -> str:
    """One line: the message, plus libvips' distinct detail lines (its reason is there)."""
    text = (getattr(exc, "message", "") or str(exc)).strip() or type(exc).__name__
    line = text.splitlines()[0]
    detail = [d.strip() for d in str(getattr(exc, "detail", "")).splitlines()]
    reasons = [d for d in dict.fromkeys(detail) if d and "Unknown tag" not in d]
    return f"{line}: {'; '.join(reasons)}"[:300] if reasons else line


def plan(sources: list[Path], destination: Path, fmt: str) -> list[Job]:
    """The (source, target) pairs; raises ConvertError for impossible requests."""
    suffix = ".jp2" if fmt == "jp2" else ".tif"
    files: list[Path] = []
    for source in sources:
        if source.is_dir():
            files += sorted(p for p in source.iterdir()
                            if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
        elif source.exists():
            files.append(source)
        else:
            raise ConvertError(f"{source}: no such file")
    to_directory = len(sources) > 1 or sources[0].is_dir() or destination.is_dir()
    if not to_directory:
        return [Job(files[0], destination)]
    destination.mkdir(parents=True, exist_ok=True)
    jobs = [Job(f, destination / (f.stem + suffix)) for f in files]
    seen: set[Path] = set()
    for job in jobs:
        if job.target in seen:
            raise ConvertError(f"two sources would both become {job.target}")
        if job.target.resolve() == job.source.resolve():
            raise ConvertError(f"{job.source}: the output would replace the source")
        seen.add(job.target)
    return jobs


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="iipy convert", description=__doc__.split("\n")[0])
    parser.add_argument("paths", nargs="+", metavar="SRC... DST",
                        help="source file(s) or directory, then the output file or directory")
    parser.add_argument("--format", choices=("tiff", "jp2"), default="tiff")
    parser.add_argument("--compression", choices=COMPRESSIONS, default="jpeg",
                        help="TIFF tile codec (jpeg: 8-bit only; others keep 16-bit/float)")
    parser.add_argument("--quality", type=int, default=89,
                        help="JPEG/WebP quality (89: the highest libvips writes as YCbCr 4:2:0)")
    parser.add_argument("--tile", type=int, default=256, help="tile side (256)")
    parser.add_argument("--bigtiff", choices=("auto", "yes", "no"), default="auto")
    parser.add_argument("--lossless", action="store_true",
                        help="JPEG 2000 5-3 wavelet; TIFF deflate (or lossless WebP)")
    parser.add_argument("--jobs", type=int, default=1, help="files converted at once")
    parser.add_argument("--force", action="store_true", help="replace existing outputs")
    return parser


def main(argv: list[str]) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if len(args.paths) < 2:
        parser.error("give a source and a destination")
    if not 16 <= args.tile <= 4096 or args.tile % 16:
        parser.error("--tile must be a multiple of 16 between 16 and 4096")
    if not 1 <= args.quality <= 100 or args.jobs < 1:
        parser.error("--quality is 1-100 and --jobs at least 1")
    options = Options(format=args.format, compression=args.compression, quality=args.quality,
                      tile=args.tile, bigtiff=args.bigtiff, lossless=args.lossless,
                      threads=0 if args.jobs > 1 else (os.cpu_count() or 1))
    try:
        jobs = plan([Path(p) for p in args.paths[:-1]], Path(args.paths[-1]), args.format)
    except ConvertError as exc:
        sys.stderr.write(f"iipy convert: {exc}\n")
        return 1
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, _cleanup_and_exit)
    bar = open_bar()
    overall = bar.add("all files", len(jobs)) if len(jobs) > 1 else -1
    failures: list[str] = []
    results: list[tuple[Job, dict]] = []

    def run(job: Job) -> None:
        try:
            results.append((job, convert_one(job, options, bar, args.force)))
        except ConvertError as exc:
            failures.append(str(exc))
        if overall >= 0:
            bar.advance(overall)

    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        list(pool.map(run, jobs))
    bar.close()
    for job, chosen in results:
        print(f"{job.source} -> {job.target}: {chosen['bytes'] / 1e6:.1f} MB, "
              f"{chosen['levels']} levels, {chosen['compression']}, {chosen['seconds']} s, "
              f"checked (one tile {chosen['tile_ms']} ms)")
    for line in failures:
        sys.stderr.write(f"iipy convert: FAILED {line}\n")
    return 1 if failures else 0
