#!/usr/bin/env python3
"""`iipy convert` against the tools people use: libvips' own tiffsave and opj_compress.

One input, a 20000x15000 RGB picture (tests/toolimages.py: gradients, rings, texture,
grain) stored as an uncompressed strip TIFF (900 MB; opj_compress reads TIFF but not
JPEG), is converted by:

* ``iipy convert IN out.tif``             (pyramidal JPEG TIFF q89, then iipy's check)
* libvips tiffsave with the same settings (``pyvips`` in a child process: what
  ``vips tiffsave IN out.tif --tile --pyramid --compression jpeg --Q 89`` does)
* ``iipy convert IN out.jp2 --format jp2`` (1024 tiles, RPCL, 256 precincts, 64 blocks)
* ``opj_compress`` with the same coding parameters

Each runs as its own process; wall time, CPU time (user + system: steadier than wall
time on a shared machine) and peak resident memory (the child's ``ru_maxrss`` from
``wait4``) are printed with the output size, and the ratios
iipy/reference.  Targets (issue 13): TIFF within 1.2x of libvips' time; memory
bounded by tile rows, not by the image (a whole 20000x15000 RGB image is 900 MB).

Run on demand, not by pytest: ``python benchmarks/convert.py [--size 20000x15000]``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))


def run(argv: list[str], env: dict[str, str] | None = None) -> tuple[float, int, float]:
    """(wall seconds, peak RSS in MB, CPU seconds) of one child process."""
    started = time.perf_counter()
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - started
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"{argv[:4]} failed: {proc.stderr.read().decode()[-2000:]}")
    return elapsed, usage.ru_maxrss // 1024, usage.ru_utime + usage.ru_stime


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", default="20000x15000")
    parser.add_argument("--dir", default="", help="work directory (default: a temporary one)")
    parser.add_argument("--skip-jp2", action="store_true")
    parser.add_argument("--repeats", type=int, default=1,
                        help="runs of each job, alternating the order; medians are printed")
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.split("x"))
    work = Path(args.dir or tempfile.mkdtemp(prefix="iipy-bench-convert-"))
    work.mkdir(parents=True, exist_ok=True)
    source = work / f"input-{width}x{height}.tif"
    if not source.exists():
        import toolimages

        print(f"generating {source} …", flush=True)
        toolimages.picture(width, height).tiffsave(str(source), compression="none")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "IIPY_PROGRESS": "0"}
    py = sys.executable
    vips_code = ("import sys, pyvips; pyvips.Image.new_from_file(sys.argv[1], "
                 "access='sequential').tiffsave(sys.argv[2], tile=True, pyramid=True, "
                 "compression='jpeg', Q=89, tile_width=256, tile_height=256)")
    jobs = {
        "iipy convert (TIFF)": [py, "-m", "iipy", "convert", str(source),
                                str(work / "iipy.tif"), "--force"],
        "libvips tiffsave": [py, "-c", vips_code, str(source), str(work / "vips.tif")],
    }
    if not args.skip_jp2:
        jobs["iipy convert (JP2)"] = [py, "-m", "iipy", "convert", str(source),
                                      str(work / "iipy.jp2"), "--format", "jp2", "--force"]
        jobs["opj_compress"] = [
            "opj_compress", "-i", str(source), "-o", str(work / "opj.jp2"), "-t", "1024,1024",
            "-n", "8", "-p", "RPCL", "-c", "[256,256]", "-b", "64,64", "-r", "20", "-I",
            "-PLT", "-TLM", "-threads", str(os.cpu_count() or 1)]
    outputs = {"iipy convert (TIFF)": "iipy.tif", "libvips tiffsave": "vips.tif",
               "iipy convert (JP2)": "iipy.jp2", "opj_compress": "opj.jp2"}
    runs: dict[str, list[tuple[float, int, float, float]]] = {name: [] for name in jobs}
    names = list(jobs)
    for repeat in range(args.repeats):
        order = names if repeat % 2 == 0 else names[::-1]
        for name in order:
            (work / outputs[name]).unlink(missing_ok=True)
            seconds, rss, cpu = run(jobs[name], env)
            size = (work / outputs[name]).stat().st_size / 1e6
            runs[name].append((seconds, rss, size, cpu))
            print(f"{name:22s} {seconds:7.1f} s (CPU {cpu:7.1f} s)  peak RSS {rss:6d} MB  "
                  f"output {size:8.1f} MB", flush=True)
    results = {name: (statistics.median(r[0] for r in rs), max(r[1] for r in rs), rs[-1][2],
                      statistics.median(r[3] for r in rs)) for name, rs in runs.items()}
    for ours, theirs in (("iipy convert (TIFF)", "libvips tiffsave"),
                         ("iipy convert (JP2)", "opj_compress")):
        if ours in results and theirs in results:
            a, b = results[ours], results[theirs]
            print(f"{ours} / {theirs} (median of {args.repeats}): time {a[0] / b[0]:.2f}x, "
                  f"CPU {a[3] / b[3]:.2f}x, memory {a[1] / max(b[1], 1):.2f}x, "
                  f"size {a[2] / b[2]:.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
