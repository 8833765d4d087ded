"""Count what the grammar fuzzer finds, without stopping at the first failure.

tests/test_fuzz_grammar.py stops at the first bad response (and shrinks it);
this script draws the same hostile requests (tests/grammar_strategies.py) and
counts, per protocol, every example that breaks a property: 5xx answers,
logged tracebacks, and the other properties (error form, headers, sizes).
It is how the closing figures "5xx on main vs branch" are measured:

    python benchmarks/fuzz_grammar.py --examples 2000            # this tree
    PYTHONPATH=/path/to/other/tree python benchmarks/fuzz_grammar.py

Deterministic with ``--derandomize`` (the default), so two trees see the same
requests.
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from grammar_strategies import requests  # noqa: E402
from hypothesis import HealthCheck, given, settings  # noqa: E402
from images import make_tiff  # noqa: E402
from test_fuzz_grammar import MAX_CVT, PROTOCOLS, Tracebacks, check, send  # noqa: E402
from wsgi import make_app  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--examples", type=int, default=2000, help="per protocol")
    parser.add_argument("--random", action="store_true", help="fresh random examples")
    parser.add_argument("--protocols", default=",".join(PROTOCOLS))
    args = parser.parse_args()
    import iipy

    print(f"iipy from {Path(iipy.__file__).parent}")
    directory = Path(tempfile.mkdtemp(prefix="iipy-fuzz-"))
    make_tiff(directory / "rgb.tif", 1000, 700)
    make_tiff(directory / "rgb_odd.tif", 1410, 793)
    make_tiff(directory / "grey16.tif", 1000, 700, bands=1, dtype="uint16",
              compression="deflate")
    app = make_app(FILESYSTEM_PREFIX=str(directory) + "/", MAX_CVT=str(MAX_CVT),
                   IIIF_DELIMITER="_", CORS="*")
    handler = Tracebacks()
    logging.getLogger("iipy").addHandler(handler)
    logging.getLogger("iipy").propagate = False
    print(f"{'protocol':10} {'examples':>8} {'failing':>8} {'5xx':>6} {'traceback':>9} "
          f"{'other':>6} {'seconds':>8}  first failure")
    for protocol in args.protocols.split(","):
        started = time.perf_counter()
        counts, first = measure(app, protocol, args.examples, not args.random, directory, handler)
        seconds = time.perf_counter() - started
        print(f"{protocol:10} {counts['examples']:8} {counts['failing']:8} {counts['5xx']:6} "
              f"{counts['traceback']:9} {counts['other']:6} {seconds:8.1f}  {first}")


def measure(app, protocol: str, examples: int, derandomize: bool, directory: Path,
            handler: Tracebacks) -> tuple[Counter[str], str]:
    """(counts, first failure message) of ``examples`` requests of one protocol."""
    counts: Counter[str] = Counter()
    first: list[str] = []

    @settings(max_examples=examples, derandomize=derandomize, database=None,
              deadline=None, suppress_health_check=list(HealthCheck), phases=["generate"])
    @given(request=requests(protocol))
    def run(request) -> None:
        handler.records.clear()
        counts["examples"] += 1
        result = send(app, request)
        try:
            check(protocol, request, result, str(directory), handler)
        except AssertionError as exc:
            counts["failing"] += 1
            kind = "5xx" if result.status >= 500 else "traceback" if handler.records else "other"
            counts[kind] += 1
            if not first:
                first.append(str(exc).splitlines()[0][:100])

    run()
    return counts, first[0] if first else ""


if __name__ == "__main__":
    main()
