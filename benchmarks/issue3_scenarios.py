"""Issue 3 measurements: a 1000-px-wide CVT export and a watermarked random tile,
iipy against iipsrv 1.1, one worker process each, one request at a time over
FastCGI (so the figures are latencies; both servers are single-threaded per
request).  Also the peak RSS of a 5000×5000 export.

    PYTHONPATH=. python benchmarks/issue3_scenarios.py [--seconds 5] [--keep DIR]

Scenario functions (``cvt_1000``, ``watermarked_tile``) take a FastCGI GET
callable and a random source, so the shared benchmark runner can plug them
in once it lands.  Not run in CI.
"""

from __future__ import annotations

import argparse
import os
import random
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from images import make_tiff  # noqa: E402
from test_oracle_cvt import IIPSRV, _free_port, fcgi_get  # noqa: E402

WIDTH, HEIGHT = 10000, 7500  # levels 10000, 5000, 2500, 1250 (→ 1000 is a resize), …
TILE_GRID = {}  # resolution → tile count, filled by setup()


def cvt_1000(get, rng):
    return get("FIF=bench.tif&WID=1000&CVT=jpeg")


def watermarked_tile(get, rng):
    r = rng.choice(list(TILE_GRID))
    return get(f"FIF=bench.tif&JTL={r},{rng.randrange(TILE_GRID[r])}")


def setup(directory: Path) -> None:
    image = directory / "bench.tif"
    if not image.exists():
        make_tiff(image, WIDTH, HEIGHT, Q=90)
    mark = directory / "mark.tif"
    if not mark.exists():
        import numpy as np
        import pyvips

        rgba = np.zeros((32, 64, 4), np.uint8)
        rgba[..., 0], rgba[..., 3] = 255, 200
        pyvips.Image.new_from_memory(rgba.tobytes(), 64, 32, 4, "uchar").copy(
            interpretation="srgb").tiffsave(str(mark))
    w, h, r = WIDTH, HEIGHT, []
    while True:
        r.append(-(-w // 256) * -(-h // 256))
        if w <= 256 and h <= 256:
            break
        w, h = w // 2, h // 2
    for resolution, count in enumerate(reversed(r)):
        TILE_GRID[resolution] = count


def start(command, env, port):
    proc = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    for _ in range(200):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return proc
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise RuntimeError(f"{command[0]} did not start")


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process and all its descendants (a master and workers)."""
    ticks = os.sysconf("SC_CLK_TCK")
    parents: dict[int, int] = {}
    times: dict[int, float] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
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


def rate(scenario, port, seconds: float, pid: int = 0) -> tuple[float, float, float]:
    """(requests/s, mean ms, server CPU ms a request) for one client issuing
    requests back to back.  The CPU figure is the stable one on a busy machine."""
    rng = random.Random(1)

    def get(query):
        headers, body = fcgi_get(port, query)
        if not headers.get("content-type", "").startswith("image/"):
            raise RuntimeError(f"{query}: {headers} {body[:100]!r}")
        return body

    for _ in range(5):
        scenario(get, rng)
    cpu = cpu_seconds(pid) if pid else 0.0
    done, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        scenario(get, rng)
        done += 1
    elapsed = time.perf_counter() - started
    cpu = (cpu_seconds(pid) - cpu) if pid else 0.0
    return done / elapsed, 1000 * elapsed / done, 1000 * cpu / done


def peak_rss_of_export(directory: Path) -> float:
    """Peak RSS (MB) of a fresh process exporting 5000×5000 from a 10000×10000 image."""
    big = directory / "square.tif"
    if not big.exists():
        make_tiff(big, 10000, 10000, Q=90)
    # VmHWM, not ru_maxrss: the latter survives fork+exec from this (large) driver
    code = (
        "import sys\n"
        "sys.path.insert(0, 'tests')\n"
        "def hwm():\n"
        "    for line in open('/proc/self/status'):\n"
        "        if line.startswith('VmHWM'):\n"
        "            return int(line.split()[1])\n"
        "from wsgi import call, make_app\n"
        f"app = make_app(FILESYSTEM_PREFIX='{directory}/')\n"
        "call(app, 'FIF=square.tif&OBJ=Max-size')\n"
        "base = hwm()\n"
        "r = call(app, 'FIF=square.tif&WID=5000&CVT=jpeg')\n"
        "assert r.status == 200, r.body[:200]\n"
        "print(base / 1024, hwm() / 1024, len(r.body))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, env={**os.environ, "PYTHONPATH": os.getcwd()})
    base, peak, size = out.stdout.split()
    print(f"5000x5000 CVT from 10000x10000: RSS {float(base):.0f} MB before, "
          f"{float(peak):.0f} MB peak ({int(size) / 1e6:.1f} MB JPEG); "
          f"the full-resolution level alone would be {10000 * 10000 * 3 / 2**20:.0f} MB")
    return float(peak)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--keep", help="directory for the generated images (reused)")
    args = parser.parse_args()
    directory = Path(args.keep or tempfile.mkdtemp(prefix="iipy-bench-"))
    directory.mkdir(parents=True, exist_ok=True)
    setup(directory)
    base_env = {"PATH": os.environ.get("PATH", ""), "FILESYSTEM_PREFIX": f"{directory}/",
                "VERBOSITY": "0", "LOGFILE": "/dev/null", "MEMCACHED_SERVERS": "127.0.0.1:1"}
    for name, scenario, extra in (
        ("cvt 1000px", cvt_1000, {}),
        ("watermarked random tile", watermarked_tile,
         {"WATERMARK": str(directory / "mark.tif"), "WATERMARK_OPACITY": "0.5"}),
    ):
        env = {**base_env, **extra}
        results = {}
        for server in ("iipsrv 1.1", "iipy"):
            port = _free_port()
            if server == "iipy":
                command = [sys.executable, "-m", "iipy", "--bind", f"127.0.0.1:{port}",
                           "--processes", "1"]
                env_run = {**env, "PYTHONPATH": os.getcwd()}
            else:
                command, env_run = [IIPSRV, "--bind", f"127.0.0.1:{port}"], env
            proc = start(command, env_run, port)
            try:
                results[server] = rate(scenario, port, args.seconds, proc.pid)
            finally:
                proc.terminate()
                proc.wait(timeout=10)
        (theirs, t_ms, t_cpu), (ours, o_ms, o_cpu) = results["iipsrv 1.1"], results["iipy"]
        print(f"{name}: iipsrv 1.1 {theirs:.0f}/s ({t_ms:.2f} ms, {t_cpu:.3f} ms CPU), "
              f"iipy {ours:.0f}/s ({o_ms:.2f} ms, {o_cpu:.3f} ms CPU): "
              f"{ours / theirs:.2f}x by rate, {t_cpu / o_cpu:.2f}x by server CPU")
    peak_rss_of_export(directory)


if __name__ == "__main__":
    main()
