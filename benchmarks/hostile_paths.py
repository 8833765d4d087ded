"""Figures for the hostile paths table (issue 11): escapes, leaks, 5xx, hangs, worker
deaths and peak RSS for each table (tests/test_hostile_paths.py asserts the zeros).

Each in-process table (one prefix spelling, every hostile path in every form, first
with the outside of the prefix present, then deleted) runs in a fresh interpreter so
that its peak RSS is its own; the lighttpd table runs a subset (``--every``) of the
paths through lighttpd spawning iipy under strace, and reports the workers' VmHWM.

    python benchmarks/hostile_paths.py [--every 1]

To measure another checkout (e.g. main), copy this file and tests/hostile.py,
tests/hostile_server.py into it and run it there.  Not run in CI.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT / "tests"))


def one_spelling(name: str) -> dict:
    import hostile

    spelling = next(s for s in hostile.SPELLINGS if s[0] == name)
    base = Path(tempfile.mkdtemp(prefix="hostile-"))
    try:
        hostile.build_world(base)
        audit = hostile.OpenAudit()
        tally = hostile.Tally()
        populated = hostile.run_in_process(base, spelling, audit, tally)
        hostile.empty_outside(base)
        emptied = hostile.run_in_process(base, spelling, audit, hostile.Tally())
        hostile.compare_existence(populated, emptied, tally)
        paths = len(hostile.hostile_paths(base))
    finally:
        shutil.rmtree(base, ignore_errors=True)
    return {"table": f"in-process {name}", "paths": paths, "requests": tally.requests,
            "escapes": tally.escapes, "leaks": tally.leaks, "5xx": tally.server_errors,
            "hangs": tally.hangs, "deaths": 0,
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def lighttpd_table(every: int) -> dict:
    import hostile
    import hostile_server

    base = Path(tempfile.mkdtemp(prefix="hostile-web-"))
    workdir = Path(tempfile.mkdtemp(prefix="hostile-servers-"))
    tally = hostile.Tally()
    died = peak = 0
    try:
        hostile.build_world(base)
        paths = hostile.hostile_paths(base)[::every]
        backends = [hostile_server.start(base, s, workdir) for s in hostile.SPELLINGS]
        try:
            populated = [hostile_server.run(b, base, paths, tally) for b in backends]
            hostile.empty_outside(base)
            for backend, before in zip(backends, populated, strict=True):
                after = hostile_server.run(backend, base, paths, hostile.Tally())
                hostile.compare_existence(before, after, tally)
                died += hostile_server.deaths(backend)
                peak = max(peak, hostile_server.peak_rss_kb(hostile_server.workers(backend.web)))
        finally:
            for backend in backends:
                backend.web.stop()
        for backend in backends:
            hostile_server.traced_escapes(backend, base, tally)
    finally:
        shutil.rmtree(base, ignore_errors=True)
        shutil.rmtree(workdir, ignore_errors=True)
    return {"table": "lighttpd (3 spellings)", "paths": len(paths), "requests": tally.requests,
            "escapes": tally.escapes, "leaks": tally.leaks, "5xx": tally.server_errors,
            "hangs": tally.hangs, "deaths": died, "peak_rss_mb": peak / 1024}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--every", type=int, default=3, help="lighttpd: every Nth path (3)")
    parser.add_argument("--one", help=argparse.SUPPRESS)
    parser.add_argument("--lighttpd", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(one_spelling(args.one)))
        return 0
    if args.lighttpd:
        print(json.dumps(lighttpd_table(args.every)))
        return 0
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO_ROOT), env.get("PYTHONPATH", "")]).rstrip(
        os.pathsep)
    import hostile

    rows = []
    for extra in [["--one", s[0]] for s in hostile.SPELLINGS] + [["--lighttpd"]]:
        done = subprocess.run([sys.executable, __file__, *extra, "--every", str(args.every)],
                              env=env, capture_output=True, text=True, cwd=REPO_ROOT)
        if done.returncode != 0:
            print(done.stderr[-3000:], file=sys.stderr)
            return 1
        rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
    print(f"iipy from {REPO_ROOT}")
    print(f"{'table':24} {'paths':>5} {'requests':>8} {'escapes':>7} {'leaks':>5} {'5xx':>4} "
          f"{'hangs':>5} {'deaths':>6} {'peak RSS':>9}")
    for r in rows:
        print(f"{r['table']:24} {r['paths']:5} {r['requests']:8} {r['escapes']:7} {r['leaks']:5} "
              f"{r['5xx']:4} {r['hangs']:5} {r['deaths']:6} {r['peak_rss_mb']:7.1f} MB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
