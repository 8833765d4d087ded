#!/usr/bin/env python3
"""JPEG 2000 tile latency: iipy against iipsrv 1.1 (OpenJPEG build), FastCGI direct.

Two generated images, written tile by tile (never held whole in memory):

* ``bench-lossless-5000.jp2``: 5000x3750 RGB, lossless (5/3), 1024x1024 tiles,
  6 resolutions, RPCL, 256x256 precincts, one quality layer;
* ``bench-lossy-20000.jp2``: 20000x15000 RGB, irreversible (9/7) at 20:1,
  1024x1024 tiles, 8 resolutions, RPCL, 256x256 precincts, one quality layer.

One quality layer, because iipsrv 1.1 decodes every layer whatever LYR says
while iipy decodes half of them by default (see docs/jpeg2000.md): with one
layer both decode the same data.  The pixels are a synthetic pyvips image
(gradients, a coarse pattern and Gaussian noise, so the codec has texture to
work on), generated region by region.

iipsrv 1.1 and iipy are started with ``--bind 127.0.0.1:PORT``, one process
each, both with the tile cache off (MAX_IMAGE_CACHE_SIZE=0) so that every
request decodes, and iipsrv's memcached pointed at an unused port.  The same
random tiles at full and at a middle resolution are requested from both,
alternating which server goes first; the client measures each request's wall
time.  Printed: median (and 90th percentile) latency per server and the ratio
iipy/iipsrv of the medians (target: at most 1.0).

Run on demand (not collected by pytest): ``python benchmarks/jp2_latency.py``.
The first run generates the images (a few minutes for the 20000x15000 one)
into ``--cache-dir``; later runs reuse them.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import random
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT / "tests"))

from servers import (  # noqa: E402  (tests/ is not a package)
    free_port,
    iipy_argv,
    iipy_environment,
    start_fcgi_command,
    start_iipsrv,
)

IMAGE_VERSION = 1  # bump when the generator changes, so cached images are rebuilt
CODESTREAM_TILE = 1024


@dataclass(frozen=True)
class Spec:
    name: str
    width: int
    height: int
    numres: int
    lossless: bool
    ratio: int = 20

    @property
    def file(self) -> str:
        return f"bench-{self.name}-v{IMAGE_VERSION}.jp2"


IMAGES = [
    Spec("lossless-5000", 5000, 3750, numres=6, lossless=True),
    Spec("lossy-20000", 20000, 15000, numres=8, lossless=False, ratio=20),
]


def synthetic(width: int, height: int):
    """A deterministic RGB test image, computed region by region by libvips."""
    import pyvips

    xyz = pyvips.Image.xyz(width, height)
    x, y = xyz[0], xyz[1]
    red = x * (200.0 / width) + 20
    green = y * (200.0 / height) + 20
    blue = ((x / 97).floor() + (y / 61).floor()) % 7 * 30 + 20
    noise = pyvips.Image.gaussnoise(width, height, sigma=12, mean=0, seed=42)
    image = red.bandjoin([green, blue]) + noise
    return image.cast("uchar").copy(interpretation="srgb")


def generate(spec: Spec, path: Path) -> None:
    import glymur
    import numpy as np

    glymur.set_option("lib.num_threads", os.cpu_count() or 1)  # encoding only
    image = synthetic(spec.width, spec.height)
    options = dict(
        shape=(spec.height, spec.width, 3),
        tilesize=(CODESTREAM_TILE, CODESTREAM_TILE),
        numres=spec.numres,
        prog="RPCL",
        psizes=[(256, 256)],
        irreversible=not spec.lossless,
    )
    if not spec.lossless:
        options["cratios"] = [spec.ratio]
    partial = path.with_name(path.stem + ".partial.jp2")  # glymur picks JP2 by the suffix
    writer = glymur.Jp2k(str(partial), **options)
    columns = -(-spec.width // CODESTREAM_TILE)
    started = time.perf_counter()
    for tile in writer.get_tilewriters():
        row, column = divmod(tile.tile_index, columns)
        left, top = column * CODESTREAM_TILE, row * CODESTREAM_TILE
        width = min(CODESTREAM_TILE, spec.width - left)
        height = min(CODESTREAM_TILE, spec.height - top)
        region = image.crop(left, top, width, height)
        tile[:] = np.ndarray(buffer=region.write_to_memory(), dtype=np.uint8,
                             shape=(height, width, 3))
    partial.rename(path)
    print(f"generated {path.name} in {time.perf_counter() - started:.0f} s "
          f"({path.stat().st_size / 1e6:.0f} MB)", flush=True)


def level_sizes(spec: Spec) -> list[tuple[int, int]]:
    """Sizes of the IIP resolutions (0 = smallest): iipsrv's count, the codestream's sizes."""
    count, width, height = 1, spec.width, spec.height
    while width > 256 or height > 256:
        width, height, count = width // 2, height // 2, count + 1
    sizes = [(-(-spec.width // 2**k), -(-spec.height // 2**k)) for k in range(count)]
    return list(reversed(sizes))


def tile_size(body: bytes) -> tuple[int, int]:
    from PIL import Image

    image = Image.open(io.BytesIO(body))
    return image.size


def measure(servers: dict, spec: Spec, resolution: int, tiles: list[int]) -> dict:
    """Wall time of each request, per server, alternating which goes first."""
    times: dict[str, list[float]] = {name: [] for name in servers}
    errors: dict[str, int] = {name: 0 for name in servers}
    sizes: dict[str, dict[int, tuple[int, int]]] = {name: {} for name in servers}
    order = list(servers)
    for index, tile in enumerate(tiles):
        query = f"FIF={spec.file}&JTL={resolution},{tile}"
        for name in order if index % 2 == 0 else list(reversed(order)):
            started = time.perf_counter()
            response = servers[name].request(query, timeout=120)
            times[name].append(time.perf_counter() - started)
            if response.status != 200 or response.header("Content-Type") != "image/jpeg":
                errors[name] += 1
            else:
                sizes[name][tile] = tile_size(response.body)
    # iipsrv 1.1 floors odd level sizes, iipy does not: edge tiles may differ by 1 px
    first, second = sizes.values()
    mismatches = sum(
        1 for tile in first.keys() & second.keys()
        if max(abs(a - b) for a, b in zip(first[tile], second[tile], strict=True)) > 1
    )
    return {"times": times, "errors": errors, "mismatches": mismatches}


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "iipy-bench"
    parser.add_argument("--cache-dir", type=Path, default=cache)
    parser.add_argument("--requests", type=int, default=30, help="tiles per resolution (30)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--only", choices=[s.name for s in IMAGES], help="one image only")
    parser.add_argument("--json", type=Path, help="also write the raw timings here")
    args = parser.parse_args(argv)

    args.cache_dir.mkdir(parents=True, exist_ok=True)
    specs = [s for s in IMAGES if args.only in (None, s.name)]
    for spec in specs:
        path = args.cache_dir / spec.file
        if not path.exists():
            generate(spec, path)

    env = {"FILESYSTEM_PREFIX": f"{args.cache_dir}/", "VERBOSITY": "0",
           "MAX_IMAGE_CACHE_SIZE": "0"}
    work = Path(tempfile.mkdtemp(prefix="iipy-jp2-bench-"))
    iipsrv = start_iipsrv({**env, "MEMCACHED_SERVERS": f"127.0.0.1:{free_port()}"},
                          workdir=work / "iipsrv")
    iipy = start_fcgi_command(iipy_argv(), iipy_environment(env), workdir=work / "iipy",
                              extra_args=["--processes", "1"], name="iipy")
    servers = {"iipsrv": iipsrv, "iipy": iipy}
    rng = random.Random(args.seed)
    results = []
    try:
        for spec in specs:
            sizes = level_sizes(spec)
            count = iipy.request(f"FIF={spec.file}&OBJ=Resolution-number").body
            assert count == iipsrv.request(f"FIF={spec.file}&OBJ=Resolution-number").body, count
            full = len(sizes) - 1
            middle = full - full // 2
            for name in servers:  # warm-up: open the image, load libraries
                servers[name].request(f"FIF={spec.file}&JTL=0,0", timeout=120)
            for label, resolution in (("full", full), ("middle", middle)):
                width, height = sizes[resolution]
                count = -(-width // 256) * -(-height // 256)
                tiles = [rng.randrange(count) for _ in range(args.requests)]
                outcome = measure(servers, spec, resolution, tiles)
                row = {"image": spec.name, "level": label, "resolution": resolution,
                       "size": f"{width}x{height}", "tiles": len(tiles),
                       "errors": outcome["errors"], "mismatches": outcome["mismatches"]}
                for name, times in outcome["times"].items():
                    row[f"{name}_median_ms"] = statistics.median(times) * 1000
                    row[f"{name}_p90_ms"] = percentile(times, 0.9) * 1000
                row["ratio"] = row["iipy_median_ms"] / row["iipsrv_median_ms"]
                row["raw"] = outcome["times"]
                results.append(row)
                print(f"{spec.name:14} {label:6} r={resolution} {width}x{height}: "
                      f"iipsrv {row['iipsrv_median_ms']:.1f} ms, iipy {row['iipy_median_ms']:.1f} "
                      f"ms, ratio {row['ratio']:.2f}", flush=True)
    finally:
        iipy.stop()
        iipsrv.stop()

    print()
    print(f"{'image':14} {'level':7} {'size':>11} {'iipsrv ms':>10} {'iipy ms':>8} "
          f"{'p90 iipsrv/iipy':>16} {'ratio':>6}  errors")
    failed = False
    for row in results:
        print(f"{row['image']:14} {row['level']:7} {row['size']:>11} "
              f"{row['iipsrv_median_ms']:10.1f} {row['iipy_median_ms']:8.1f} "
              f"{row['iipsrv_p90_ms']:7.1f}/{row['iipy_p90_ms']:<7.1f} {row['ratio']:6.2f}  "
              f"{row['errors']['iipsrv']}/{row['errors']['iipy']}"
              + (f"  {row['mismatches']} tile sizes differ!" if row["mismatches"] else ""))
        failed |= any(row["errors"].values()) or bool(row["mismatches"])
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
