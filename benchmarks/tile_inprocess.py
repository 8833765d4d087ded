"""Per-request cost of pass-through and cached tiles, in process (no server).

Generates a 4000x3000 JPEG pyramid (256² tiles, Q85) once in ``--dir``, builds
the WSGI application of whichever ``iipy`` is importable (so the same script
measures another checkout with ``PYTHONPATH=<checkout>``), and times random
interior ``JTL`` tiles (codec pass-through), one repeated ``PTL`` tile (the
encoded-tile cache) and random IIIF full-resolution tiles (pass-through): the
median of ``--rounds`` rounds of ``--requests`` calls, in microseconds a
request (wall clock and this process's CPU time).  Run it for two checkouts
alternately and compare.  ``--meta`` serves a pyramid with an sRGB ICC
profile and 300 dpi instead (pass-through tiles then get the ICC APP2 and a
JFIF APP0 with the level's density, made once per open image).
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from images import make_tiff  # noqa: E402
from wsgi import call, make_app  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--dir", default="/tmp/iipy-tile-bench")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--meta", action="store_true", help="an image with ICC and 300 dpi")
    args = parser.parse_args()
    directory = Path(args.dir) / ("meta" if args.meta else "plain")
    directory.mkdir(parents=True, exist_ok=True)
    image = directory / "bench.tif"
    if not image.exists():
        extra = {"icc": True, "resolution": (300, 300, "inch")} if args.meta else {}
        make_tiff(image, 4000, 3000, Q=85, **extra)
    app = make_app(FILESYSTEM_PREFIX=str(directory) + "/")
    rng = random.Random(1)
    columns, rows = 4000 // 256, 3000 // 256  # interior tiles only
    resolution = 4  # full size: 4000, 2000, 1000, 500, 250 -> 5 levels
    queries = [f"FIF=bench.tif&JTL={resolution},{rng.randrange(rows) * 16 + rng.randrange(columns)}"
               for _ in range(args.requests)]
    for query in queries[:200]:
        assert call(app, query).status == 200
    import iipy
    from iipy.http import Request

    print(f"iipy from {Path(iipy.__file__).parent}")
    cached = ["FIF=bench.tif&PTL=4,17"] * args.requests
    iiif = []  # OpenSeadragon's full-resolution IIIF tile URLs (pass-through too)
    for _ in range(args.requests):
        x, y = rng.randrange(columns) * 256, rng.randrange(rows) * 256
        iiif.append(f"bench.tif/{x},{y},256,256/256,/0/default.jpg")
    handle = app.iip.handle  # the IIP protocol alone: parse, open (cached), tile
    for name, batch, run in (
        ("pass-through JTL, WSGI", queries, lambda q: call(app, q)),
        ("pass-through JTL, IIP handle", queries, lambda q: handle(Request(query=q))),
        ("cached PTL, IIP handle", cached, lambda q: handle(Request(query=q))),
        ("IIIF tile, WSGI", iiif, lambda q: call(app, "IIIF=" + q)),
    ):
        rounds, cpu = [], []
        for _ in range(args.rounds):
            start, start_cpu = time.perf_counter(), time.process_time()
            for query in batch:
                run(query)
            rounds.append((time.perf_counter() - start) / len(batch) * 1e6)
            cpu.append((time.process_time() - start_cpu) / len(batch) * 1e6)
        # CPU time is the steadier figure on a shared machine (waiting is not counted)
        print(f"{name}: median {statistics.median(rounds):.1f} us/request wall "
              f"(min {min(rounds):.1f}), {statistics.median(cpu):.1f} us CPU "
              f"(min {min(cpu):.1f})")


if __name__ == "__main__":
    main()
