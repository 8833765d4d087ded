"""The hostile paths table (issue 11): what an attacker puts where an image name goes.

A *world* is a directory tree with an image prefix (``images/``) and, around it,
things a client must never reach: a directory ``outside/`` with a valid image of a
telltale size and a text file with a marker, a prefix sibling ``images-private/``, a
file ``imagesx.tif`` that an unslashed prefix would concatenate to, symbolic links
from inside the prefix to files and directories outside (and to ``/etc``,
``/proc/self``, ``/dev/zero``), FIFOs and character devices, directories and link
loops inside the prefix, and image sequences behind links.

Every hostile path is asked in every protocol's request form (:data:`FORMS`) under
three prefix spellings (:data:`SPELLINGS`).  A request is judged by:

* **escape**: a file or directory outside the prefix was opened or listed (seen by a
  Python audit hook in-process, by ``strace`` behind a real server), or the response
  carries the outside image's telltale size or the marker;
* **leak**: the response differs from the one given when everything outside the
  prefix has been deleted (existence must not show), or its body names a server path
  or holds a traceback;
* **5xx** and **hang** (no answer within :data:`HANG_SECONDS`).
"""

from __future__ import annotations

import os
import shutil
import stat
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote_to_bytes

from images import make_tiff

SECRET_SIZE = (777, 555)  # the outside image: these numbers must never be sent
MARKER = "hostile-table-secret-marker"
HANG_SECONDS = 20.0


@dataclass(frozen=True)
class Form:
    """One request form: ``query`` (a QUERY_STRING) or ``path`` (a REQUEST_URI)."""

    name: str
    template: str
    kind: str  # "query" or "path"

    def environ(self, hostile: str) -> tuple[str, str]:
        """(QUERY_STRING, REQUEST_URI) for a hostile path."""
        text = self.template.format(p=hostile)
        if self.kind == "query":
            return text, "/fcgi-bin/iipsrv.fcgi?" + text
        return "", text


FORMS = (
    Form("iip-obj", "FIF={p}&OBJ=IIP,1.0&OBJ=Max-size", "query"),
    Form("iip-tile", "FIF={p}&JTL=0,0", "query"),
    Form("iiif-query", "IIIF={p}/info.json", "query"),
    Form("iiif-path-info", "/iiif/{p}/info.json", "path"),
    Form("iiif-path-image", "/iiif/{p}/full/max/0/default.jpg", "path"),
    Form("deepzoom-dzi", "DeepZoom={p}.dzi", "query"),
    Form("deepzoom-tile", "/deepzoom/{p}_files/0/0_0.jpg", "path"),
    Form("zoomify", "/zoomify/{p}/ImageProperties.xml", "path"),
)

#: prefix spellings: (name, FILESYSTEM_PREFIX relative to the world, FILESYSTEM_SUFFIX)
SPELLINGS = (("slash", "images/", ""), ("no-slash", "images", ""), ("suffix", "images/", ".tif"))


def _traversals() -> list[str]:
    ups = ["../", "..%2f", "..%2F", "%2e%2e/", "%2e%2e%2f", ".%2e/", "%2e./", "%252e%252e/",
           "..%252f", "%252e%252e%252f", "%c0%ae%c0%ae/", "..%c0%af", "%e0%80%ae%e0%80%ae/",
           "..%c1%9c", "....//", "..\\", "..%5c", "%2e%2e%5c", "..;/", "%u002e%u002e/",
           ".%00./", "..%00/", "/./../", "..//", "%2e%2e//", "%ef%bc%8e%ef%bc%8e/",
           "%e2%80%a5/", "...//", ".../"]
    found = []
    for up in ups:
        found.append("/" + up + "outside/secret.tif")
        found.append(up + "images-private/x.tif")
    found.append("/" + "../" * 12 + "etc/passwd")
    found.append("/" + "%2e%2e%2f" * 12 + "etc/passwd")
    found.append("/" + "....//" * 12 + "etc/passwd")
    found.append("\\..\\outside\\secret.tif")
    found.append("/in.tif/../../outside/secret.tif")
    found.append("/sub/../../outside/secret.tif")
    return found


def hostile_paths(base: Path) -> list[str]:
    """At least 80 hostile request paths (as sent on the wire) for a world at ``base``."""
    b = str(base)
    paths = _traversals() + [
        # absolute paths and /proc
        b + "/outside/secret.tif", "/" + b + "/outside/secret.tif", "/etc/passwd",
        "/proc/self/environ", "/proc/self/root" + b + "/outside/secret.tif",
        "/proc/self/cwd/outside/secret.tif", "/proc/self/fd/0", "/dev/zero", "/dev/stdin",
        "file:///etc/passwd", "//etc/passwd", "~root/.bashrc",
        # NUL
        "in.tif%00.jpg", "/in.tif%00", "%00../outside/secret.tif", "/outside%00/../secret.tif",
        "/link-file.tif%00",
        # symlinks out of the prefix
        "/link-file.tif", "link-file.tif", "/link-dir/secret.tif", "/link-abs.tif",
        "/link-etc/passwd", "/link-proc/environ", "/link-proc/root" + b + "/outside/secret.tif",
        "/link-dev.tif", "/link-fifo.tif", "/loop.tif", "/link-dir/turn", "/lseq",
        "/link-dir/", "/link-dir", "/link-dir/secret", "/link-txt.tif",
        # prefix siblings
        "-private/x.tif", "-private%2fx.tif", "%2d-private/x.tif", "x.tif", "x",
        "/../images-private/x.tif",
        # FIFOs, devices, directories inside the prefix
        "/fifo.tif", "/null.tif", "/zero.tif", "/dir.tif", "/sub", "/sub/", "/", "", ".", "/.",
        "/sub/..", "/..", "/...", "....", "/%2e%2e", "/fifo", "/zero",
        # very long names
        "/" + "a" * 8192 + ".tif", "/" + "a/" * 4096, "../" * 2730, "%2e%2e%2f" * 900,
        "/" + "x" * 255 + ".tif", "/" + "%41" * 8000,
        # wildcards and other oddities
        "*", "/outside*", "/link-*", "?", "/in.tif/", "/in.tif/.",
    ]
    return list(dict.fromkeys(paths))


# -- the world -----------------------------------------------------------------------------


def build_world(base: Path) -> Path:
    """Create the tree at ``base`` (the FIFOs and devices need a POSIX system; as root the
    devices are real character devices, otherwise links to them)."""
    images = base / "images"
    (images / "sub").mkdir(parents=True)
    (images / "dir.tif").mkdir()
    make_tiff(images / "in.tif", 300, 200)
    make_tiff(images / "sub" / "in2.tif", 300, 200)
    os.mkfifo(images / "fifo.tif")
    os.mkfifo(images / "fifo")
    for name, minor in (("null.tif", 3), ("zero.tif", 5), ("zero", 5)):
        try:
            os.mknod(images / name, stat.S_IFCHR | 0o666, os.makedev(1, minor))
        except PermissionError:
            os.symlink(f"/dev/{'null' if minor == 3 else 'zero'}", images / name)
    os.symlink("loop.tif", images / "loop.tif")
    links = {
        "link-file.tif": "../outside/secret.tif",
        "link-dir": "../outside",
        "link-abs.tif": str(base / "outside" / "secret.tif"),
        "link-etc": "/etc",
        "link-proc": "/proc/self",
        "link-dev.tif": "/dev/zero",
        "link-fifo.tif": "../outside/fifo.tif",
        "link-txt.tif": "../outside/secret.txt",
        "lseq_pyr_000_090.tif": "../outside/turn_pyr_000_090.tif",
        "lseq_pyr_010_090.tif": "../outside/turn_pyr_010_090.tif",
    }
    for name, target in links.items():
        os.symlink(target, images / name)
    populate_outside(base)
    return images


def populate_outside(base: Path) -> None:
    """Everything outside the prefix (removed again by :func:`empty_outside`)."""
    outside = base / "outside"
    outside.mkdir()
    make_tiff(outside / "secret.tif", *SECRET_SIZE)
    for x in (0, 10):
        make_tiff(outside / f"turn_pyr_{x:03d}_090.tif", *SECRET_SIZE)
    (outside / "secret.txt").write_text(MARKER * 4)
    os.mkfifo(outside / "fifo.tif")
    (base / "images-private").mkdir()
    make_tiff(base / "images-private" / "x.tif", *SECRET_SIZE)
    make_tiff(base / "imagesx.tif", *SECRET_SIZE)
    make_tiff(base / "secret.tif", *SECRET_SIZE)


def empty_outside(base: Path) -> None:
    shutil.rmtree(base / "outside")
    shutil.rmtree(base / "images-private")
    (base / "imagesx.tif").unlink()
    (base / "secret.tif").unlink()


# -- judging ---------------------------------------------------------------------------------


@dataclass
class Tally:
    """Counts for one table (a spelling, or the real-server subset)."""

    requests: int = 0
    escapes: int = 0
    leaks: int = 0
    server_errors: int = 0
    hangs: int = 0
    examples: list[str] = field(default_factory=list)

    def note(self, kind: str, form: str, hostile: str, detail: str = "") -> None:
        setattr(self, kind, getattr(self, kind) + 1)
        if len(self.examples) < 4000:
            self.examples.append(f"{kind}: {form} {hostile[:80]!r} {detail}")

    def add(self, other: Tally) -> None:
        for name in ("requests", "escapes", "leaks", "server_errors", "hangs"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.examples.extend(other.examples[: max(0, 40 - len(self.examples))])

    def clean(self) -> bool:
        return not (self.escapes or self.leaks or self.server_errors or self.hangs)

    def line(self) -> str:
        return (f"{self.requests} requests: escapes {self.escapes}, leaks {self.leaks}, "
                f"5xx {self.server_errors}, hangs {self.hangs}")


def telltale(body: bytes) -> bool:
    """Whether a body shows the outside image or file."""
    w, h = SECRET_SIZE
    return MARKER.encode() in body or b"root:x:0:0" in body or (
        str(w).encode() in body and str(h).encode() in body
    )


def names_a_path(body: bytes, base: Path, sent: str) -> bool:
    """Whether a body names a server path or holds a traceback (what the client sent
    itself may be echoed)."""
    text = body.decode("latin-1")
    for echoed in {sent, unquote_to_bytes(sent).decode("latin-1")}:
        if echoed:
            text = text.replace(echoed, "")
    return any(s in text for s in (str(base), os.path.realpath(base), "Traceback", "/proc/",
                                   "/etc/", "/dev/", "/tmp/"))


def outside_prefix(path: str, images_real: str) -> bool:
    """Whether an opened or listed path lies outside the prefix (audited reads)."""
    real = os.path.realpath(path)
    return not (real == images_real or real.startswith(images_real + "/"))


class OpenAudit:
    """Records the paths Python opens or lists while :attr:`active` (sys.addaudithook)."""

    EVENTS = {"open", "os.listdir", "os.scandir"}

    def __init__(self) -> None:
        self.active = False
        self.seen: list[str] = []
        self.thread: int | None = None
        sys.addaudithook(self._hook)

    def _hook(self, event: str, args: tuple) -> None:
        if not self.active or event not in self.EVENTS or threading.get_ident() != self.thread:
            return
        path = args[0] if args else None
        if isinstance(path, bytes):
            path = path.decode("utf-8", "surrogateescape")
        if isinstance(path, str):
            self.seen.append(path)


def run_with_deadline(fn: Callable[[], object], unblock: Callable[[], None]) -> object | None:
    """``fn()`` in a thread; None (a hang) if it has not returned within HANG_SECONDS,
    after which ``unblock`` is called so the thread can end."""
    box: dict[str, object] = {}

    def target() -> None:
        box["result"] = fn()

    worker = threading.Thread(target=target, daemon=True)
    worker.start()
    worker.join(HANG_SECONDS)
    if worker.is_alive():
        unblock()
        worker.join(HANG_SECONDS)
        return None
    return box.get("result")


def unblock_fifos(base: Path) -> None:
    """Open every FIFO of the world for writing (non-blocking) to free a stuck reader."""
    for fifo in base.rglob("*"):
        try:
            if stat.S_ISFIFO(fifo.lstat().st_mode):
                fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
                os.close(fd)
        except OSError:
            pass


# -- the in-process table ----------------------------------------------------------------------

Responses = dict[tuple[str, str], tuple[int, str, bytes]]


def run_in_process(base: Path, spelling: tuple[str, str, str], audit: OpenAudit,
                   tally: Tally, paths: list[str] | None = None) -> Responses:
    """Every hostile path in every form against a fresh WSGI app; judge escapes (audited
    reads, telltales), paths in bodies, 5xx and hangs into ``tally``; return the responses
    (status, content type, body) for the existence comparison."""
    from wsgi import call, make_app

    _, prefix, suffix = spelling
    app = make_app(FILESYSTEM_PREFIX=f"{base}/{prefix}", FILESYSTEM_SUFFIX=suffix, VERBOSITY="0")
    images_real = os.path.realpath(base / "images")
    responses: Responses = {}
    for hostile in paths if paths is not None else hostile_paths(base):
        for form in FORMS:
            query, uri = form.environ(hostile)

            def request(query: str = query, uri: str = uri) -> object:
                audit.thread = threading.get_ident()
                return call(app, query, uri=uri)

            audit.seen.clear()
            audit.active = True
            try:
                result = run_with_deadline(request, lambda: unblock_fifos(base))
            finally:
                audit.active = False
            tally.requests += 1
            if result is None:
                tally.note("hangs", form.name, hostile)
                continue
            status, body = result.status, result.body  # type: ignore[attr-defined]
            ctype = result.header("Content-Type") or ""  # type: ignore[attr-defined]
            responses[(form.name, hostile)] = (status, ctype, body)
            outside = [p for p in audit.seen if outside_prefix(p, images_real)
                       and _sensitive(p, base)]
            if outside or telltale(body):
                tally.note("escapes", form.name, hostile, f"{status} read {outside[:2]}")
            if names_a_path(body, base, hostile):
                tally.note("leaks", form.name, hostile, f"{status} {body[:80]!r}")
            if status >= 500:
                tally.note("server_errors", form.name, hostile, f"{status} {body[:80]!r}")
    return responses


def _sensitive(path: str, base: Path) -> bool:
    """Opened paths that matter: the world outside the prefix, /etc, /proc, /dev, /sys
    (not the interpreter's own modules)."""
    real = os.path.realpath(path)
    roots = (os.path.realpath(base), "/etc", "/proc", "/dev", "/sys", "/root")
    return any(real == r or real.startswith(r + "/") for r in roots)


def compare_existence(populated: Responses, emptied: Responses, tally: Tally) -> None:
    """A leak for every request answered differently once the outside is gone."""
    for key, before in populated.items():
        after = emptied.get(key)
        if after is not None and after != before:
            tally.note("leaks", key[0], key[1], f"exists: {before[0]} {before[2][:40]!r}, "
                       f"gone: {after[0]} {after[2][:40]!r}")
