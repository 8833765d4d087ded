#!/usr/bin/env python3
"""The FastCGI worker loop: per-request cost, kept-alive throughput, and SIGKILL faults.

* latency: one ``iipy --bind`` worker, sequential requests each on a new
  connection (as lighttpd and Apache connect), median wall time per request for a
  cached tile and for an IIP error (no image work: the loop's own cost dominates);
* keep-alive: ``--clients`` threads each sending requests in turn on one kept-alive
  connection (FCGI_KEEP_CONN, as nginx with ``fastcgi_keep_conn on``), requests/s;
* faults: ``--kills`` runs of SIGKILL on one of two workers under load from four
  clients, for ``iipy --bind --processes 2`` and for lighttpd spawning two
  processes: failed requests and the longest gap without an answer.

``--root`` runs another checkout's iipy (e.g. a ``git worktree`` of main) to compare.
Run on demand: ``python benchmarks/fcgi_loop.py [--root DIR]``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))

from faultload import kill_under_load  # noqa: E402
from fcgi_client import FcgiConnection, cgi_params, fcgi_request  # noqa: E402
from images import make_standard_set  # noqa: E402
from servers import (  # noqa: E402
    Spawn,
    http_get,
    iipy_argv,
    start_fcgi_command,
    start_lighttpd,
)

TILE = "FIF=rgb.tif&JTL=1,0"
ERROR = "FIF=rgb.tif&JTL=banana"
EXPORT = "FIF=rgb.tif&WID=300&CVT=jpeg"


def environment(root: Path, images: Path, log: Path) -> dict[str, str]:
    return {"PYTHONPATH": str(root), "FILESYSTEM_PREFIX": f"{images}/", "LOGFILE": str(log),
            "VERBOSITY": "0"}


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def latency(address, query: str, count: int, pid: int) -> tuple[float, float]:
    """Median wall time and the worker's mean CPU time per request, in µs (CPU time
    holds still on a loaded machine, wall time does not)."""
    params = cgi_params(query)
    fcgi_request(address, params)
    times = []
    cpu = cpu_seconds(pid)
    for _ in range(count):
        start = time.perf_counter()
        fcgi_request(address, params)
        times.append(time.perf_counter() - start)
    cpu = cpu_seconds(pid) - cpu
    return statistics.median(times) * 1e6, cpu / count * 1e6


def keepalive(address, clients: int, seconds: float) -> float:
    params = cgi_params(TILE)
    counts = [0] * clients
    stop = time.monotonic() + seconds

    def client(i: int) -> None:
        with FcgiConnection(address) as conn:
            while time.monotonic() < stop:
                conn.request(params)
                counts[i] += 1

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return sum(counts) / seconds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--root", type=Path, default=HERE.parent, help="checkout to run")
    parser.add_argument("--count", type=int, default=2000)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--kills", type=int, default=3)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="iipy-loop-"))
    images = work / "images"
    images.mkdir()
    make_standard_set(images)
    env = environment(args.root.resolve(), images, work / "iipy.log")
    print(f"iipy from {args.root.resolve()}")
    with start_fcgi_command(iipy_argv(), env, workdir=work / "one",
                            extra_args=["--processes", "1"]) as server:
        for name, query in (("tile", TILE), ("error", ERROR)):
            wall, cpu = latency(server.address, query, args.count, server.pid)
            print(f"{name}, new connection per request: median {wall:.0f} us wall, "
                  f"worker CPU {cpu:.0f} us/request")
        try:
            rate = keepalive(server.address, args.clients, 3.0)
            print(f"keep-alive, {args.clients} clients on one worker: {rate:.0f} req/s")
        except Exception as exc:
            print(f"keep-alive failed: {type(exc).__name__}: {exc}")
    for run in range(args.kills):
        with start_fcgi_command(iipy_argv(), env, workdir=work / f"bind{run}",
                                extra_args=["--processes", "2"]) as server:
            victim = sorted(server.children())[0]
            out = kill_under_load(
                lambda s=server: fcgi_request(s.address, cgi_params(EXPORT)).status == 200,
                lambda v=victim: v,
            )
            print(f"SIGKILL --bind --processes 2: {out.failed} failed of {out.requests} "
                  f"({out.in_flight} in flight), gap {out.gap * 1000:.0f} ms")
        with start_lighttpd(Spawn(iipy_argv(), env, processes=2), work / f"web{run}") as web:
            http_get(web.url(TILE))
            victim = sorted(p for p in web.children()
                            if b"iipy" in Path(f"/proc/{p}/cmdline").read_bytes())[0]
            out = kill_under_load(
                lambda w=web: http_get(w.url(EXPORT)).status == 200, lambda v=victim: v
            )
            print(f"SIGKILL lighttpd bin-path x2: {out.failed} failed of {out.requests} "
                  f"({out.in_flight} in flight), gap {out.gap * 1000:.0f} ms")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
