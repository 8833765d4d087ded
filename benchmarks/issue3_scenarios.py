"""Issue 3 measurements that ``run.py`` does not make: server CPU time a request
for the 1000-px CVT and the watermarked random tile (robust on a shared machine,
where wrk's req/s swing with other load), and the peak RSS of a 5000×5000 export.

One FastCGI process each (tests/servers.py), one request at a time; the CPU of
each server's process tree is read from /proc before and after.

    python benchmarks/issue3_scenarios.py [--seconds 5] [--keep DIR]

Not run in CI.
"""

from __future__ import annotations

import argparse
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT / "tests"))

from images import make_tiff  # noqa: E402
from servers import (  # noqa: E402
    iipy_argv,
    iipy_environment,
    start_fcgi_command,
    start_iipsrv,
)

WIDTH, HEIGHT = 10000, 7500  # levels 10000, 5000, 2500, 1250 (→ 1000 px is a resize), …


def setup(directory: Path) -> dict[int, int]:
    """Write the test image and watermark (once); return tiles per IIP resolution."""
    if not (directory / "bench.tif").exists():
        make_tiff(directory / "bench.tif", WIDTH, HEIGHT, Q=85)
    mark = directory / "mark.tif"
    if not mark.exists():
        import numpy as np
        import pyvips

        rgba = np.zeros((32, 64, 4), np.uint8)
        rgba[..., 0], rgba[..., 3] = 255, 200
        pyvips.Image.new_from_memory(rgba.tobytes(), 64, 32, 4, "uchar").copy(
            interpretation="srgb").tiffsave(str(mark))
    counts, w, h = [], WIDTH, HEIGHT
    while True:
        counts.append(-(-w // 256) * -(-h // 256))
        if w <= 256 and h <= 256:
            break
        w, h = w // 2, h // 2
    return dict(enumerate(reversed(counts)))


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process and its descendants."""
    ticks = os.sysconf("SC_CLK_TCK")
    parents: dict[int, int] = {}
    times: dict[int, float] = {}
    for entry in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{entry}/stat") as handle:
                fields = handle.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parents[int(entry)] = int(fields[1])
        times[int(entry)] = (int(fields[11]) + int(fields[12])) / ticks
    total, todo = 0.0, [pid]
    while todo:
        current = todo.pop()
        total += times.get(current, 0.0)
        todo.extend(child for child, parent in parents.items() if parent == current)
    return total


def measure(server, queries, seconds: float) -> tuple[float, float]:
    """(requests/s, server CPU ms a request), requests issued back to back."""
    for query in queries[:5]:
        response = server.request(query, timeout=60)
        assert response.status == 200 and response.content_type == "image/jpeg", response.raw[:200]
    cpu, done, started = cpu_seconds(server.pid), 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        server.request(queries[done % len(queries)], timeout=60)
        done += 1
    elapsed = time.perf_counter() - started
    return done / elapsed, 1000 * (cpu_seconds(server.pid) - cpu) / done


def peak_rss_of_export(directory: Path) -> None:
    """Peak RSS of a fresh process exporting 5000×5000 from a 10000×10000 image."""
    if not (directory / "square.tif").exists():
        make_tiff(directory / "square.tif", 10000, 10000, Q=85)
    code = (  # VmHWM, not ru_maxrss, which survives fork+exec from this driver
        "import sys\n"
        "sys.path.insert(0, 'tests')\n"
        "def hwm():\n"
        "    return int(next(l for l in open('/proc/self/status')"
        " if l.startswith('VmHWM')).split()[1]) / 1024\n"
        "from wsgi import call, make_app\n"
        f"app = make_app(FILESYSTEM_PREFIX='{directory}/')\n"
        "call(app, 'FIF=square.tif&OBJ=Max-size')\n"
        "base = hwm()\n"
        "r = call(app, 'FIF=square.tif&WID=5000&CVT=jpeg')\n"
        "assert r.status == 200, r.body[:200]\n"
        "print(base, hwm(), len(r.body))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, cwd=REPO_ROOT, env=iipy_environment(dict(os.environ)))
    base, peak, size = out.stdout.split()
    print(f"5000x5000 CVT from 10000x10000: RSS {float(base):.0f} MB before, "
          f"{float(peak):.0f} MB peak ({int(size) / 1e6:.1f} MB JPEG; the output array is "
          f"{5000 * 5000 * 3 / 2**20:.0f} MB, the full-resolution level "
          f"{10000 * 10000 * 3 / 2**20:.0f} MB)")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--keep", help="directory for the generated images (reused)")
    args = parser.parse_args()
    directory = Path(args.keep or tempfile.mkdtemp(prefix="iipy-bench3-"))
    directory.mkdir(parents=True, exist_ok=True)
    grid = setup(directory)
    rng = random.Random(1)
    tiles = [f"FIF=bench.tif&JTL={r},{rng.randrange(grid[r])}"
             for r in (rng.choice(list(grid)) for _ in range(5000))]
    base = {"FILESYSTEM_PREFIX": f"{directory}/", "VERBOSITY": "0"}
    watermark = {"WATERMARK": str(directory / "mark.tif"), "WATERMARK_OPACITY": "0.5"}
    work = Path(tempfile.mkdtemp(prefix="iipy-bench3-servers-"))
    for name, queries, env in (
        ("cvt 1000px", ["FIF=bench.tif&WID=1000&CVT=jpeg"], base),
        ("watermarked random tile", tiles, {**base, **watermark}),
    ):
        results = {}
        for label in ("iipsrv 1.1", "iipy"):
            if label == "iipy":
                server = start_fcgi_command(iipy_argv(), iipy_environment(env),
                                            workdir=work / f"iipy-{len(results)}{name[:3]}",
                                            extra_args=["--processes", "1"], name="iipy")
            else:
                server = start_iipsrv(env, workdir=work / f"iipsrv-{name[:3]}")
            try:
                results[label] = measure(server, queries, args.seconds)
            finally:
                server.stop()
        (t_rate, t_cpu), (o_rate, o_cpu) = results["iipsrv 1.1"], results["iipy"]
        print(f"{name}: iipsrv 1.1 {t_rate:.0f}/s, {t_cpu:.3f} ms CPU; iipy {o_rate:.0f}/s, "
              f"{o_cpu:.3f} ms CPU: {o_rate / t_rate:.2f}x by rate, "
              f"{t_cpu / o_cpu:.2f}x by server CPU")
    peak_rss_of_export(directory)


if __name__ == "__main__":
    main()
