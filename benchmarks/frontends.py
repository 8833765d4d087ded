#!/usr/bin/env python3
"""Front ends and the shared cache: iipy behind nginx (memcached hits answered by nginx)
and behind lighttpd, against iipsrv 1.1 behind lighttpd with the same memcached, with each
front end's static-file rate as the ceiling.  Driven by wrk; runs interleaved; medians.

Servers (2 FastCGI processes each, one memcached shared by all "warm" setups):

* ``iipy/nginx``   nginx (nginx/iipy.conf, 2 workers) -> ``iipy --bind``; warm setups
  have MEMCACHED_SERVERS and the front-end lookups (a hit never reaches Python)
* ``iipy/lighttpd``   lighttpd bin-path iipy (lighttpd/iipy.conf), MEMCACHED_SERVERS set
* ``iipsrv/lighttpd`` lighttpd bin-path Debian's iipsrv 1.1, MEMCACHED_SERVERS set
* ``static/nginx``, ``static/lighttpd``: a stored tile as a static file (the ceiling)

"Cold" setups have no memcached at all (iipsrv 1.1 without memcached is the issue's
baseline for cold tiles).  Warm scenarios first request every full-resolution tile once
through each server.  CPU µs per request are the server processes' own (front end,
back end, memcached: /proc/PID/stat of each process tree), not wrk's.

    python benchmarks/frontends.py [--duration 5 --repeats 3 --size 20000x15000]
"""

from __future__ import annotations

import argparse
import concurrent.futures
import http.client
import json
import os
import statistics
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import run  # noqa: E402  (benchmarks/run.py: image, wrk, Lua helpers)
from servers import (  # noqa: E402
    DEFAULT_MOUNT,
    HOST,
    IIPSRV_BINARY,
    Spawn,
    WebServer,
    _tree,
    iipy_argv,
    iipy_environment,
    start_fcgi_command,
    start_lighttpd,
)
from servers_nginx import start_memcached, start_nginx  # noqa: E402

PROCESSES = 2
KEEPALIVE = 16  # nginx/iipy.conf's upstream keepalive
IIIF_MOUNT = "/iiif"


def _jiffies(pids: set[int]) -> int:
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as stat:
                fields = stat.read().rpartition(")")[2].split()
            total += int(fields[11]) + int(fields[12])  # utime + stime
        except (OSError, IndexError, ValueError):
            pass
    return total


@dataclass
class Setup:
    """One server as the client sees it, and the process trees whose CPU it costs."""

    name: str
    base_url: str
    parts: dict[str, list[int]] = field(default_factory=dict)  # component -> root pids
    children_of_front: bool = False  # lighttpd spawns its back end: split by pid

    def cpu(self) -> dict[str, int]:
        out = {}
        seen: set[int] = set()
        for part, roots in self.parts.items():
            pids: set[int] = set()
            for root in roots:
                pids |= _tree(root)
            if part == "front" and self.children_of_front:
                pids = set(roots)
            pids -= seen
            seen |= pids
            out[part] = _jiffies(pids)
        return out


@dataclass
class Result:
    rates: list[float] = field(default_factory=list)
    errors: int = 0
    cpu_us: dict[str, list[float]] = field(default_factory=dict)

    def median(self) -> float:
        return statistics.median(self.rates) if self.rates else 0.0


def web(server: WebServer, name: str, backend_roots: list[int], memcached: list[int],
        children_of_front: bool) -> Setup:
    parts = {"front": [server.pid], "back end": backend_roots}
    if memcached:
        parts["memcached"] = memcached
    if children_of_front:
        parts["back end"] = [server.pid]
    return Setup(name, server.base_url, parts, children_of_front)


def start_setups(image: run.BenchImage, warm: bool, memcached: str, mc_pid: int,
                 workdir: Path, args: argparse.Namespace) -> tuple[dict[str, Setup], list]:
    """iipy/nginx, iipy/lighttpd, iipsrv/lighttpd (+ static ceilings when warm)."""
    prefix = f"{image.path.parent}/"
    base = {"FILESYSTEM_PREFIX": prefix, "VERBOSITY": "0", "URI_MAP": ""}
    cache = {"MEMCACHED_SERVERS": memcached if warm else ""}
    owned: list = []
    setups: dict[str, Setup] = {}
    mc = [mc_pid] if warm else []
    # as shipped (nginx/iipy.conf): FastCGI keep-alive, 16 idle connections kept
    variants = [("iipy/nginx", os.environ.get("PYTHONPATH", ""), KEEPALIVE)]
    if args.keepalive_tree:  # another checkout's iipy, to compare loops
        variants.append(("iipy/nginx keep-alive", args.keepalive_tree, KEEPALIVE))
    for label, path, keepalive in variants:
        iipy_env = iipy_environment({**base, **cache, "LOGFILE": str(workdir / "nginx.log")})
        iipy_env["PYTHONPATH"] = os.pathsep.join(filter(None, [path, iipy_env["PYTHONPATH"]]))
        sock = workdir / f"{label.replace('/', '-').replace(' ', '-')}-{int(warm)}.sock"
        backend = start_fcgi_command(iipy_argv(), iipy_env, unix_socket=sock,
                                     extra_args=["--processes", str(PROCESSES)])
        nginx = start_nginx([backend], memcached if warm else None, workers=1, front=warm,
                            keepalive=keepalive)
        owned += [backend, nginx]
        setups[label] = web(nginx, label, [backend.pid], mc, False)
    lighttpd_env = {**base, **cache, "IIPY_FRONT_CACHE": "0",
                    "LOGFILE": str(workdir / "iipy-lighttpd.log")}
    lt = start_lighttpd(Spawn(iipy_argv(), iipy_environment(lighttpd_env), PROCESSES),
                        workdir / ("iipy-lt-warm" if warm else "iipy-lt-cold"),
                        mounts=(DEFAULT_MOUNT, IIIF_MOUNT))
    owned.append(lt)
    setups["iipy/lighttpd"] = web(lt, "iipy/lighttpd", [], mc, True)
    srv_env = {**base, **cache, "URI_MAP": "iiif=>IIIF", "LOGFILE": str(workdir / "iipsrv.log")}
    srv = start_lighttpd(Spawn([str(IIPSRV_BINARY)], srv_env, PROCESSES),
                         workdir / ("iipsrv-warm" if warm else "iipsrv-cold"),
                         mounts=(DEFAULT_MOUNT, IIIF_MOUNT))
    owned.append(srv)
    setups["iipsrv/lighttpd"] = web(srv, "iipsrv/lighttpd", [], mc, True)
    if warm:  # the ceiling: a stored tile (same bytes as a real one) as a static file
        conn = http.client.HTTPConnection(HOST, int(lt.base_url.rsplit(":", 1)[1]))
        conn.request("GET", run._iip(image, f"JTL={image.max_resolution},{image.interior_tile}"))
        tile = conn.getresponse().read()
        for server, label in ((nginx, "static/nginx"), (lt, "static/lighttpd")):
            (server.workdir / "htdocs" / "tile.jpg").write_bytes(tile)
            setups[label] = Setup(label, server.base_url, {"front": [server.pid]})
    return setups, owned


def tile_paths(image: run.BenchImage, kind: str) -> list[str]:
    if kind == "iip":
        return [run._iip(image, f"JTL={image.max_resolution},{n}")
                for n in range(image.tile_count)]
    out = []
    for n in range(image.tile_count):
        x, y = n % image.tiles_x, n // image.tiles_x
        w = min(image.tile, image.width - x * image.tile)
        h = min(image.tile, image.height - y * image.tile)
        out.append(f"{IIIF_MOUNT}/{image.fif}/{x * image.tile},{y * image.tile},{w},{h}"
                   f"/{w},{h}/0/default.jpg")
    return out


def warm_up(setup: Setup, paths: list[str]) -> int:
    """Request every path once (4 keep-alive connections); returns non-200 answers."""
    port = int(setup.base_url.rsplit(":", 1)[1])

    def part(chunk: list[str]) -> int:
        bad = 0
        conn = http.client.HTTPConnection(HOST, port, timeout=60)
        for path in chunk:
            conn.request("GET", path)
            response = conn.getresponse()
            response.read()
            bad += response.status != 200
            if response.getheader("Connection", "").lower() == "close":
                conn.close()
                conn = http.client.HTTPConnection(HOST, port, timeout=60)
        conn.close()
        return bad

    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        return sum(pool.map(part, [paths[i::4] for i in range(4)]))


SCENARIOS = {  # name -> (warm?, how requests are made, setups measured)
    "warm random tiles": (True, "random", None),
    "hot tile": (True, "hot", None),
    "warm IIIF tiles": (True, "iiif", None),
    "OBJ": (True, "obj", None),
    "cold random tiles": (False, "random", None),
    "cold IIIF tiles": (False, "iiif", None),
}


def script_for(how: str, image: run.BenchImage, setup: str, workdir: Path) -> tuple[str, Path]:
    path = workdir / f"{how}-{setup.replace('/', '-')}.lua"
    url = "/"
    if setup.startswith("static/"):
        lua, url = "", "/tile.jpg"
    elif how == "random":
        lua = run.random_tiles_lua(image)
    elif how == "iiif":
        lua = run.iiif_tiles_lua(height_in_size=True)(image)
    elif how == "hot":
        lua, url = "", run._iip(image, f"JTL={image.max_resolution},{image.interior_tile}")
    else:
        lua, url = "", run._iip(image, run.IIPMOOVIEWER_OBJ)
    path.write_text(lua + run.REPORTER_LUA)
    return url, path


def measure(setups: dict[str, Setup], names: list[str], how: str, image: run.BenchImage,
            args: argparse.Namespace, workdir: Path) -> dict[str, Result]:
    options = run.WrkOptions(args.threads, args.connections)
    results = {name: Result() for name in names}
    targets = {name: script_for(how, image, name, workdir) for name in names}
    tick = os.sysconf("SC_CLK_TCK")
    for repeat in range(args.repeats):
        for name in names if repeat % 2 == 0 else list(reversed(names)):
            setup = setups[name]
            url, script = targets[name]
            before = setup.cpu()
            result = run.run_wrk(setup.base_url + url, script, args.duration, options)
            after = setup.cpu()
            results[name].rates.append(result.rate)
            results[name].errors += result.errors
            for part in before:
                us = (after[part] - before[part]) / tick * 1e6 / max(1, result.requests)
                results[name].cpu_us.setdefault(part, []).append(us)
            print(f"  {name:<16} run {repeat + 1}: {result.rate:9.1f} req/s  "
                  f"p50 {result.p50_us / 1000:6.2f} ms  errors {result.errors}", flush=True)
    return results


CPU_COLUMNS = ("iipy/nginx", "iipy/lighttpd", "iipsrv 1.1/lighttpd", "static/nginx",
               "static/lighttpd")


def _cpu(results: dict[str, Result], name: str) -> str:
    """Median CPU µs per request, in total and per component."""
    if name not in results:
        return "-"
    parts = {p: statistics.median(v) for p, v in results[name].cpu_us.items()}
    total = sum(parts.values())
    return f"{total:.0f} (" + ", ".join(f"{p} {v:.0f}" for p, v in parts.items()) + ")"


def _cpu_total(results: dict[str, Result], name: str) -> float:
    if name not in results or not results[name].cpu_us:
        return 0.0
    return sum(statistics.median(v) for v in results[name].cpu_us.values())


def _per(results: dict[str, Result], base: str, ours: str) -> str:
    """How many more requests the same CPU serves: base's µs ÷ ours."""
    a, b = _cpu_total(results, base), _cpu_total(results, ours)
    return f"{a / b:.2f}×" if a and b else "-"


def table(all_results: dict[str, dict[str, Result]]) -> str:
    lines = ["| scenario | iipy/nginx | iipy/lighttpd | iipsrv 1.1/lighttpd | nginx÷iipsrv "
             "| lighttpd÷iipsrv | % of nginx static | by CPU: nginx÷iipsrv | lighttpd÷iipsrv "
             "| % of static | errors |", "|" + "---|" * 11]
    cpu_lines = ["| scenario | " + " | ".join(CPU_COLUMNS) + " |", "|" + "---|" * 6]
    extra_lines = []
    statics = {}
    static_cpu = 0.0
    for results in all_results.values():
        for name in ("static/nginx", "static/lighttpd"):
            if name in results:
                statics[name] = results[name].median()
        if "static/nginx" in results:
            static_cpu = _cpu_total(results, "static/nginx")
    for scenario, results in all_results.items():
        ours, lt, base = (results[n].median() if n in results else 0.0
                          for n in ("iipy/nginx", "iipy/lighttpd", "iipsrv/lighttpd"))
        ceiling = statics.get("static/nginx")
        share = f"{ours / ceiling:.0%}" if ceiling and ours else "-"
        errors = sum(r.errors for r in results.values())
        lines.append(
            f"| {scenario} | {ours:,.0f} | {lt:,.0f} | {base:,.0f} | "
            f"{ours / base if base else 0:.2f}× | {lt / base if base else 0:.2f}× | {share} | "
            f"{_per(results, 'iipsrv/lighttpd', 'iipy/nginx')} | "
            f"{_per(results, 'iipsrv/lighttpd', 'iipy/lighttpd')} | "
            f"{static_cpu / (_cpu_total(results, 'iipy/nginx') or 1):.0%} | {errors} |")
        cpu_lines.append(f"| {scenario} | " + " | ".join(
            _cpu(results, n) for n in ("iipy/nginx", "iipy/lighttpd", "iipsrv/lighttpd",
                                       "static/nginx", "static/lighttpd")) + " |")
        ka = results.get("iipy/nginx keep-alive")
        if ka and base:
            extra_lines.append(
                f"| {scenario} | {ka.median():,.0f} | {ka.median() / base:.2f}× "
                f"| {_per(results, 'iipsrv/lighttpd', 'iipy/nginx keep-alive')} "
                f"| {_cpu(results, 'iipy/nginx keep-alive')} | {ka.errors} |")
    static = ", ".join(f"{n} {v:,.0f} req/s" for n, v in statics.items())
    out = "\n".join(lines) + (f"\n\nStatic-file ceiling (same tile as a file): {static}"
                              if static else "")
    out += "\n\nCPU µs per request (server processes, median):\n\n" + "\n".join(cpu_lines)
    if extra_lines:
        out += ("\n\niipy behind nginx with FastCGI keep-alive:\n\n| scenario | req/s "
                "| ÷iipsrv | by CPU ÷iipsrv | CPU µs/req | errors |\n|---|---|---|---|---|---|\n"
                + "\n".join(extra_lines))
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", default="20000x15000", type=run.parse_size)
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--scenarios", default=",".join(SCENARIOS))
    parser.add_argument("--keepalive-tree", default="",
                        help="also run iipy from this source tree behind nginx with FastCGI "
                             "keep-alive (needs a FastCGI loop that serves several connections)")
    args = parser.parse_args()
    image = run.describe_image(run.ensure_image(run.default_cache_dir(), args.size))
    workdir = Path(tempfile.mkdtemp(prefix="iipy-frontends-"))
    memcached = start_memcached(megabytes=1024)
    chosen = [s.strip() for s in args.scenarios.split(",")]
    all_results: dict[str, dict[str, Result]] = {}
    print(f"image {image.width}x{image.height}, {image.tile_count} tiles; wrk -t{args.threads} "
          f"-c{args.connections}, {args.repeats}x{args.duration:g} s interleaved; "
          f"{PROCESSES} FastCGI processes per server", flush=True)
    try:
        for warm in (True, False):
            names = [n for n in chosen if SCENARIOS[n][0] == warm]
            if not names:
                continue
            setups, owned = start_setups(image, warm, memcached.address, memcached.pid,
                                         workdir, args)
            try:
                for scenario in names:
                    _, how, only = SCENARIOS[scenario]
                    measured = [n for n in setups if (only is None or n in only)
                                and (how == "random" or not n.startswith("static"))]
                    if warm and how in ("random", "iiif"):
                        paths = tile_paths(image, "iip" if how == "random" else "iiif")
                        for name in measured:
                            if not name.startswith("static/"):
                                bad = warm_up(setups[name], paths)
                                print(f"  warmed {name}: {len(paths)} tiles, {bad} not 200",
                                      flush=True)
                    print(f"{scenario}:", flush=True)
                    all_results[scenario] = measure(setups, measured, how, image, args, workdir)
                    print(f"  memcached: {memcached.stats().get('get_hits')} hits, "
                          f"{memcached.stats().get('curr_items')} items", flush=True)
            finally:
                for server in reversed(owned):
                    server.stop()
    finally:
        memcached.stop()
    raw = {s: {n: vars(r) for n, r in res.items()} for s, res in all_results.items()}
    (workdir / "results.json").write_text(json.dumps(raw, indent=1))
    print(f"\nraw results: {workdir / 'results.json'}\n\n" + table(all_results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
