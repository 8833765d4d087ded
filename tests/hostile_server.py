"""The hostile paths table through a real lighttpd spawning iipy (see hostile.py).

The backend runs under ``strace -f`` so that every file it opens is known: an open
of anything outside the prefix (the world's outside, ``/etc/passwd``, ``/proc``,
``/dev``) is an escape.  Worker deaths (a backend pid gone) and each worker's peak
RSS (``VmHWM``) are recorded too.
"""

from __future__ import annotations

import http.client
import os
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from hostile import (
    FORMS,
    HANG_SECONDS,
    SPELLINGS,
    Responses,
    Tally,
    names_a_path,
    telltale,
)
from servers import (
    DEFAULT_MOUNT,
    Spawn,
    WebServer,
    http_get,
    iipy_argv,
    iipy_environment,
    start_lighttpd,
)

TRACED = "trace=open,openat,openat2"
_OPENED = re.compile(r'open(?:at2?)?\((?:[A-Z_]+|\d+), "((?:[^"\\]|\\.)*)".*\) = (\d+)')
MOUNTS = (DEFAULT_MOUNT, "/iiif", "/deepzoom", "/zoomify")


@dataclass
class Backend:
    """One lighttpd + traced iipy for a prefix spelling."""

    spelling: tuple[str, str, str]
    web: WebServer
    trace: Path
    workers: set[int] = field(default_factory=set)


def start(base: Path, spelling: tuple[str, str, str], workdir: Path) -> Backend:
    name, prefix, suffix = spelling
    workdir.mkdir(parents=True, exist_ok=True)
    trace = workdir / f"strace-{name}.txt"
    env = iipy_environment({"FILESYSTEM_PREFIX": f"{base}/{prefix}",
                            "FILESYSTEM_SUFFIX": suffix, "VERBOSITY": "0"})
    strace = shutil.which("strace") or "strace"
    argv = [strace, "-f", "-qq", "-e", TRACED, "-o", str(trace), *iipy_argv()]
    web = start_lighttpd(Spawn(argv, env, processes=1), workdir / name, mounts=MOUNTS)
    backend = Backend(spelling, web, trace)
    backend.workers = workers(web)
    return backend


def workers(web: WebServer) -> set[int]:
    """The iipy processes (not strace) under a web server."""
    found = set()
    for pid in web.children():
        try:
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"iipy" in argv and not argv[0].endswith(b"strace"):
            found.add(pid)
    return found


def peak_rss_kb(pids: set[int]) -> int:
    """The largest VmHWM among ``pids`` (kB)."""
    peak = 0
    for pid in pids:
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            continue
        match = re.search(r"VmHWM:\s+(\d+) kB", status)
        if match:
            peak = max(peak, int(match.group(1)))
    return peak


def sendable(hostile: str) -> bool:
    """What http.client will put on the wire (no controls, spaces or non-ASCII)."""
    return all(0x21 <= ord(c) <= 0x7E for c in hostile)


def run(backend: Backend, base: Path, paths: list[str], tally: Tally) -> Responses:
    """Each sendable hostile path in every form through the real server."""
    responses: Responses = {}
    for hostile in filter(sendable, paths):
        for form in FORMS:
            query, uri = form.environ(hostile)
            url = backend.web.url(query) if form.kind == "query" else backend.web.base_url + uri
            tally.requests += 1
            try:
                got = http_get(url, timeout=HANG_SECONDS)
            except (TimeoutError, http.client.HTTPException, ConnectionError) as exc:
                tally.note("hangs" if isinstance(exc, TimeoutError) else "server_errors",
                           form.name, hostile, type(exc).__name__)
                continue
            responses[(form.name, hostile)] = (got.status, got.header("Content-Type") or "",
                                               got.body)
            if telltale(got.body):
                tally.note("escapes", form.name, hostile, f"{got.status}")
            if names_a_path(got.body, base, hostile):
                tally.note("leaks", form.name, hostile, f"{got.status} {got.body[:80]!r}")
            if got.status >= 500:
                tally.note("server_errors", form.name, hostile, f"{got.status}")
    return responses


def traced_escapes(backend: Backend, base: Path, tally: Tally) -> None:
    """An escape for every successful open, by the backend, of a path outside the prefix
    that the table aims at (the world around the prefix, /etc/passwd, /proc, /dev)."""
    images = os.path.realpath(base / "images")
    world = os.path.realpath(base)
    text = backend.trace.read_text(errors="replace") if backend.trace.exists() else ""
    for match in _OPENED.finditer(text):
        path = match.group(1).encode().decode("unicode_escape", "replace")
        real = os.path.realpath(path)
        if real == images or real.startswith(images + "/"):
            continue
        aimed = (real.startswith(world + "/") or real in ("/etc/passwd", "/dev/zero", "/dev/stdin")
                 or re.match(r"/proc/\d+/(environ|root|cwd|fd)", real) is not None)
        if aimed:
            tally.note("escapes", "strace", path, "opened by the backend")


def deaths(backend: Backend) -> int:
    """Backend workers that are gone (lighttpd would have started others)."""
    alive = workers(backend.web)
    return len(backend.workers - alive)


__all__ = ["MOUNTS", "SPELLINGS", "Backend", "deaths", "peak_rss_kb", "run", "start",
           "traced_escapes", "workers"]
