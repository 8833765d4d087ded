"""The hostile paths table (issue 11): at least 80 hostile paths, in every protocol's
request form, under three prefix spellings; zero reads outside the prefix, zero
existence leaks or paths in bodies, zero 5xx, zero hangs.  In-process (WSGI, reads
watched by an audit hook) in full, and a subset through lighttpd spawning iipy
(reads watched by strace).  The figures, with peak RSS, are printed by
``benchmarks/hostile_paths.py``."""

from __future__ import annotations

import shutil

import hostile
import hostile_server
import pytest
from servers import have_lighttpd

SPELLING_NAMES = [name for name, _, _ in hostile.SPELLINGS]


@pytest.fixture(scope="module")
def table(tmp_path_factory) -> dict[str, hostile.Tally]:
    """Every spelling's tally: the world with its outside, then without it."""
    base = tmp_path_factory.mktemp("hostile")
    hostile.build_world(base)
    audit = hostile.OpenAudit()
    tallies = {name: hostile.Tally() for name in SPELLING_NAMES}
    populated = {s[0]: hostile.run_in_process(base, s, audit, tallies[s[0]])
                 for s in hostile.SPELLINGS}
    hostile.empty_outside(base)
    for spelling in hostile.SPELLINGS:
        emptied = hostile.run_in_process(base, spelling, audit, hostile.Tally())
        hostile.compare_existence(populated[spelling[0]], emptied, tallies[spelling[0]])
    return tallies


def test_the_table_is_big_enough(tmp_path):
    paths = hostile.hostile_paths(tmp_path)
    assert len(paths) >= 80
    assert len(hostile.FORMS) >= 8 and len(hostile.SPELLINGS) == 3
    for needle in ("%2e%2e", "%252e", "%c0%ae", "....//", "\\", "/proc/", "%00", "link-dir",
                   "link-file", "-private", "fifo", "zero", "dir.tif"):
        assert any(needle in p for p in paths), needle
    assert max(len(p) for p in paths) >= 8192


@pytest.mark.parametrize("spelling", SPELLING_NAMES)
def test_no_hostile_path_escapes_leaks_fails_or_hangs(table, spelling):
    tally = table[spelling]
    assert tally.requests >= 80 * 8
    assert tally.clean(), tally.line() + "\n" + "\n".join(tally.examples[:20])


@pytest.mark.skipif(not (have_lighttpd() and shutil.which("strace")),
                    reason="needs lighttpd and strace (scripts/install.sh test)")
def test_hostile_paths_through_lighttpd(tmp_path_factory):
    base = tmp_path_factory.mktemp("hostile-web")
    hostile.build_world(base)
    workdir = tmp_path_factory.mktemp("hostile-servers")
    paths = hostile.hostile_paths(base)[::3]
    backends = [hostile_server.start(base, s, workdir) for s in hostile.SPELLINGS]
    tally = hostile.Tally()
    died = peak_kb = 0
    try:
        populated = [hostile_server.run(b, base, paths, tally) for b in backends]
        hostile.empty_outside(base)
        for backend, before in zip(backends, populated, strict=True):
            hostile.compare_existence(before, hostile_server.run(backend, base, paths,
                                                                 hostile.Tally()), tally)
            died += hostile_server.deaths(backend)
            peak_kb = max(peak_kb, hostile_server.peak_rss_kb(hostile_server.workers(backend.web)))
    finally:
        for backend in backends:
            backend.web.stop()
    for backend in backends:
        hostile_server.traced_escapes(backend, base, tally)
    assert all(b.workers for b in backends)
    assert 0 < peak_kb < 400 * 1024  # nothing hostile makes a worker swell (FIFOs, /dev/zero)
    assert tally.requests >= 40 * 8 * 3
    assert tally.clean() and died == 0, (
        f"{tally.line()}, worker deaths {died}\n" + "\n".join(tally.examples[:20]))
