"""Start and stop real servers for end-to-end tests and benchmarks.

Everything here runs real binaries (Debian's iipsrv 1.1, lighttpd, Apache + mod_fcgid,
iipy itself) on 127.0.0.1 with ports chosen at run time, because the point of iipy is to
be a drop-in replacement *as deployed*: spawned with the socket on fd 0, behind a web
server, configured through iipsrv's environment variables.

Rules the helpers follow:

* every process is started in its own session, so stopping kills the whole process group
  (web servers fork backends; iipy may prefork) and nothing outlives the test run;
* a server that does not come up raises :class:`ServerStartError` with the tail of its logs;
* the lighttpd and Apache configurations are rendered from the files users copy
  (``lighttpd/iipy.conf``, ``apache/iipy.conf``) so that those files are tested too.
"""

from __future__ import annotations

import atexit
import contextlib
import http.client
import os
import pwd
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

from fcgi_client import Address, FcgiResponse, Headers, cgi_params, fcgi_request

__all__ = [
    "APACHE_TEMPLATE",
    "DEFAULT_MOUNT",
    "IIPSRV_BINARY",
    "IIPSRV_VARIABLES",
    "LIGHTTPD_TEMPLATE",
    "REPO_ROOT",
    "HttpResponse",
    "ManagedProcess",
    "Server",
    "ServerStartError",
    "Spawn",
    "WebServer",
    "backend_environment",
    "free_port",
    "have_apache",
    "have_iipsrv",
    "have_lighttpd",
    "http_get",
    "iipy_argv",
    "iipy_environment",
    "render_apache_conf",
    "render_lighttpd_conf",
    "start_apache",
    "start_fcgi_command",
    "start_iipsrv",
    "start_lighttpd",
    "wait_for_port",
]

REPO_ROOT = Path(__file__).resolve().parent.parent
IIPSRV_BINARY = Path("/usr/lib/iipimage-server/iipsrv.fcgi")
APACHE_MODULES = Path("/usr/lib/apache2/modules")
LIGHTTPD_TEMPLATE = REPO_ROOT / "lighttpd" / "iipy.conf"
APACHE_TEMPLATE = REPO_ROOT / "apache" / "iipy.conf"
DEFAULT_MOUNT = "/fcgi-bin/iipsrv.fcgi"
HOST = "127.0.0.1"
STARTUP_TIMEOUT = 20.0
MAX_UNIX_SOCKET_PATH = 100  # sun_path is 108 bytes; lighttpd appends "-N"

#: Configuration variables iipsrv (any version) and iipy read. They are removed from the
#: inherited environment so that a developer's shell cannot change what a test sees.
IIPSRV_VARIABLES = tuple(
    """
    VERBOSITY LOGFILE MAX_IMAGE_CACHE_SIZE MAX_METADATA_CACHE_SIZE MAX_IMAGE_METADATA_CACHE_SIZE
    FILENAME_PATTERN FILESYSTEM_PREFIX FILESYSTEM_SUFFIX JPEG_QUALITY PNG_QUALITY WEBP_QUALITY
    AVIF_QUALITY AVIF_CODEC TIFF_COMPRESSION TIFF_QUALITY MAX_CVT MAX_LAYERS WATERMARK
    WATERMARK_PROBABILITY WATERMARK_OPACITY MEMCACHED_SERVERS MEMCACHED_TIMEOUT INTERPOLATION
    CORS BASE_URL CACHE_CONTROL ALLOW_UPSCALING URI_MAP EMBED_ICC MAX_ICC CODEC_PASSTHROUGH
    KAKADU_READMODE IIIF_VERSION IIIF_DELIMITER IIIF_EXTRA_INFO IIIF_EXTENSIONS COPYRIGHT
    DECODER_MODULES FCGI_WEB_SERVER_ADDRS IIPY_ERROR_TRUNCATE IIPY_SERVER_HEADER IIPY_READ_TIMEOUT
    """.split()
)

_LIVE: set[ManagedProcess] = set()
_M = TypeVar("_M", bound="ManagedProcess")
#: After a server looks ready, how long it must stay alive: a server that lost a port race
#: exits at once, while the port may belong to someone else.
GRACE = 0.05


class ServerStartError(RuntimeError):
    """A server did not come up; the message carries the tail of its logs.

    ``exited`` is true when the process died (e.g. its port was taken meanwhile), which is
    worth a retry on another port; a timeout is not.
    """

    def __init__(self, message: str, exited: bool = False) -> None:
        super().__init__(message)
        self.exited = exited


# --------------------------------------------------------------------------- availability


def have_iipsrv() -> bool:
    """Debian's iipsrv binary is installed (package iipimage-server)."""
    return os.access(IIPSRV_BINARY, os.X_OK)


def have_lighttpd() -> bool:
    """A lighttpd binary is on PATH (or in /usr/sbin, which root's PATH may lack)."""
    return _which("lighttpd") is not None


def have_apache() -> bool:
    """Apache 2.4 and mod_fcgid are installed (packages apache2, libapache2-mod-fcgid)."""
    return _which("apache2") is not None and (APACHE_MODULES / "mod_fcgid.so").exists()


def _which(name: str) -> str | None:
    """shutil.which that also looks in the sbin directories of a non-root PATH."""
    extra = os.pathsep.join(["/usr/sbin", "/sbin", "/usr/local/sbin"])
    return shutil.which(name) or shutil.which(name, path=extra)


def _require(name: str) -> str:
    """Absolute path of a required binary, or a clear error (CI must install it)."""
    path = _which(name)
    if path is None:
        raise ServerStartError(f"{name} is not installed (CI installs it; install it locally)")
    return path


# --------------------------------------------------------------------------- ports


def free_port(host: str = HOST) -> int:
    """A TCP port that was free a moment ago (the OS picks it; callers retry on a race)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def _port_open(host: str, port: int) -> bool:
    """True when something accepts TCP connections on host:port."""
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def wait_for_port(
    host: str,
    port: int,
    timeout: float = STARTUP_TIMEOUT,
    process: subprocess.Popen[bytes] | None = None,
) -> None:
    """Block until host:port accepts connections.

    Raises TimeoutError, or ChildProcessError at once if ``process`` exits meanwhile
    (so a crashing server is reported in milliseconds, not after the timeout).
    """
    _wait_until(lambda: _port_open(host, port), timeout, process, f"port {host}:{port}")


def _wait_until(
    ready: Callable[[], bool],
    timeout: float,
    process: subprocess.Popen[bytes] | None,
    what: str,
) -> None:
    """Poll ``ready`` with a short back-off until it is true, the process dies or time is up."""
    deadline = time.monotonic() + timeout
    delay = 0.02
    while True:
        if process is not None and process.poll() is not None:
            raise ChildProcessError(f"process exited with status {process.returncode}")
        if ready():
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} not ready after {timeout:.0f} s")
        time.sleep(delay)
        delay = min(delay * 1.5, 0.25)


def _survive_grace(process: subprocess.Popen[bytes]) -> None:
    """Raise ChildProcessError if ``process`` dies within GRACE seconds."""
    try:
        process.wait(GRACE)
    except subprocess.TimeoutExpired:
        return
    raise ChildProcessError(f"process exited with status {process.returncode}")


# --------------------------------------------------------------------------- processes


def _proc_stat(pid: int) -> tuple[str, int, int] | None:
    """(state, ppid, pgrp) of a process from /proc, or None if it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2 :].split()
    return fields[0], int(fields[1]), int(fields[2])


def _live_processes() -> dict[int, tuple[int, int]]:
    """pid → (ppid, pgrp) for every process that is not a zombie."""
    table = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            stat = _proc_stat(int(entry))
            if stat is not None and stat[0] != "Z":
                table[int(entry)] = (stat[1], stat[2])
    return table


def _tree(root: int) -> set[int]:
    """``root``, its live descendants and the live members of its process group.

    Both, because web servers may re-parent or re-group their children, and orphans whose
    parent already exited are only findable through the group.
    """
    table = _live_processes()
    found = {pid for pid, (_, pgrp) in table.items() if pgrp == root}
    frontier = [root]
    while frontier:
        parent = frontier.pop()
        for pid, (ppid, _) in table.items():
            if ppid == parent and pid not in found:
                found.add(pid)
                frontier.append(pid)
    if root in table:
        found.add(root)
    return found


def _signal_all(pids: set[int], sig: int) -> None:
    """Send ``sig`` to each pid, ignoring ones that are already gone."""
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, sig)


def _terminate_tree(process: subprocess.Popen[bytes], timeout: float) -> None:
    """Stop a process and everything it started: SIGTERM to the leader, then the group.

    The leader goes first so that lighttpd/Apache can shut their backends down cleanly
    (iipsrv logs and exits 0 on SIGTERM); whatever is left gets SIGTERM, then SIGKILL.
    """
    members = _tree(process.pid)
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout / 2)
    members |= _tree(process.pid)
    leftovers = {pid for pid in members if _alive(pid)}
    _signal_all(leftovers, signal.SIGTERM)
    deadline = time.monotonic() + timeout / 2
    while leftovers and time.monotonic() < deadline:
        time.sleep(0.05)
        leftovers = {pid for pid in leftovers if _alive(pid)}
    _signal_all(leftovers, signal.SIGKILL)
    if process.poll() is None:
        process.kill()
    process.wait()


def _alive(pid: int) -> bool:
    """The process exists and is not a zombie."""
    stat = _proc_stat(pid)
    return stat is not None and stat[0] != "Z"


def _launch(
    argv: Sequence[str], env: Mapping[str, str], cwd: Path, output: Path
) -> subprocess.Popen[bytes]:
    """Start ``argv`` in a new session with stdout+stderr appended to ``output``."""
    with open(output, "ab") as log:
        return subprocess.Popen(
            list(argv),
            env=dict(env),
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def _tail(path: Path, lines: int) -> str:
    """Last ``lines`` lines of a text file, or a note that it does not exist."""
    try:
        text = path.read_text(errors="replace")
    except OSError as exc:
        return f"({exc.strerror})"
    return "\n".join(text.splitlines()[-lines:]) or "(empty)"


# --------------------------------------------------------------------------- managed servers


@dataclass(eq=False)
class ManagedProcess:
    """A running server process (plus its children) and the files that explain it."""

    name: str
    process: subprocess.Popen[bytes]
    workdir: Path
    log_files: list[Path] = field(default_factory=list)
    owned_dirs: list[Path] = field(default_factory=list)

    def __post_init__(self) -> None:
        _LIVE.add(self)

    @property
    def pid(self) -> int:
        """Process id of the leader (also the process group id)."""
        return self.process.pid

    @property
    def running(self) -> bool:
        """The leader has not exited."""
        return self.process.poll() is None

    def children(self) -> set[int]:
        """Live pids started by this server (excluding the leader)."""
        return _tree(self.pid) - {self.pid}

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the server and all its children; idempotent; removes owned temp dirs."""
        if self in _LIVE:
            _LIVE.discard(self)
            _terminate_tree(self.process, timeout)
        for directory in self.owned_dirs:
            shutil.rmtree(directory, ignore_errors=True)
        self.owned_dirs.clear()

    def log_tail(self, lines: int = 30) -> str:
        """The end of every log file, labelled, for error messages."""
        return "\n".join(f"--- {path}\n{_tail(path, lines)}" for path in self.log_files)

    def __enter__(self: _M) -> _M:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


@dataclass(eq=False)
class Server(ManagedProcess):
    """A FastCGI server listening on TCP (iipsrv --bind, iipy --bind)."""

    address: Address = (HOST, 0)

    def request(self, query: str, timeout: float = 10, **kwargs: Any) -> FcgiResponse:
        """One FastCGI GET for ``query``; ``kwargs`` go to :func:`cgi_params`."""
        return fcgi_request(self.address, cgi_params(query, **kwargs), timeout=timeout)


@dataclass
class HttpResponse:
    """An HTTP response as received (no redirects followed, no exception on 4xx/5xx)."""

    status: int
    reason: str
    headers: Headers
    body: bytes

    def header(self, name: str, default: str | None = None) -> str | None:
        """Case-insensitive header look-up."""
        return self.headers.get(name, default)


def http_get(
    url: str, headers: Mapping[str, str] | None = None, timeout: float = 10
) -> HttpResponse:
    """GET ``url`` directly (ignores *_proxy variables, does not follow redirects)."""
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname or HOST, parts.port or 80, timeout=timeout)
    try:
        target = parts.path + ("?" + parts.query if parts.query else "")
        conn.request("GET", target or "/", headers=dict(headers or {}))
        resp = conn.getresponse()
        return HttpResponse(resp.status, resp.reason, Headers(resp.getheaders()), resp.read())
    finally:
        conn.close()


@dataclass(eq=False)
class WebServer(ManagedProcess):
    """lighttpd or Apache serving HTTP on 127.0.0.1 in front of a FastCGI backend."""

    base_url: str = ""
    mount: str = DEFAULT_MOUNT

    def url(self, query: str = "", path: str | None = None) -> str:
        """Absolute URL of ``path`` (default: the iipsrv mount) with ``query``."""
        return self.base_url + (path or self.mount) + ("?" + query if query else "")

    def get(
        self, query: str = "", path: str | None = None, headers: Mapping[str, str] | None = None
    ) -> HttpResponse:
        """GET the mount (or ``path``) with ``query``."""
        return http_get(self.url(query, path), headers=headers)


def stop_all() -> None:
    """Stop every server still running (atexit safety net for forgotten fixtures)."""
    for server in list(_LIVE):
        server.stop()


atexit.register(stop_all)


# --------------------------------------------------------------------------- environment


def _base_environment() -> dict[str, str]:
    """os.environ without iipsrv's configuration variables (see IIPSRV_VARIABLES)."""
    return {k: v for k, v in os.environ.items() if k not in IIPSRV_VARIABLES}


def backend_environment(env: Mapping[str, str] | None, workdir: Path) -> dict[str, str]:
    """iipsrv-style settings for a backend, with test-friendly defaults.

    LOGFILE goes into ``workdir`` (iipsrv's default /tmp/iipsrv.log would be shared and
    unreadable in error messages); MEMCACHED_SERVERS is empty because iipsrv 1.1 defaults
    to ``localhost`` and a stray memcached would serve stale responses across tests.
    """
    settings = {"LOGFILE": str(workdir / "backend.log"), "MEMCACHED_SERVERS": ""}
    settings.update(env or {})
    return settings


def iipy_argv() -> list[str]:
    """The default iipy command: this interpreter running the package in this checkout."""
    return [sys.executable, "-m", "iipy"]


def iipy_environment(env: Mapping[str, str] | None = None) -> dict[str, str]:
    """``env`` plus PYTHONPATH pointing at the checkout, so ``python -m iipy`` works
    whether or not the package is installed."""
    paths = [str(REPO_ROOT), *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
    return {"PYTHONPATH": os.pathsep.join(dict.fromkeys(paths)), **(env or {})}


def _workdir(workdir: Path | None, prefix: str) -> tuple[Path, list[Path]]:
    """Use ``workdir`` (created if needed) or a fresh temp dir that the server will own."""
    if workdir is not None:
        workdir.mkdir(parents=True, exist_ok=True)
        return workdir, []
    created = Path(tempfile.mkdtemp(prefix=prefix))
    return created, [created]


def _fail(server: ManagedProcess, reason: str, exited: bool) -> ServerStartError:
    """Stop a half-started server and build the error that explains why."""
    tails = server.log_tail()
    server.stop()
    return ServerStartError(f"{server.name} did not start: {reason}\n{tails}", exited)


# --------------------------------------------------------------------------- FastCGI servers


def start_fcgi_command(
    argv: Sequence[str],
    env: Mapping[str, str] | None = None,
    port: int | None = None,
    *,
    unix_socket: Path | None = None,
    workdir: Path | None = None,
    extra_args: Sequence[str] = (),
    cwd: Path | None = None,
    name: str | None = None,
    timeout: float = STARTUP_TIMEOUT,
) -> Server:
    """Run ``argv --bind 127.0.0.1:PORT [extra_args]`` (iipsrv/iipy standalone mode).

    ``--bind`` comes right after ``argv`` because iipsrv only honours it as argv[1].
    ``env`` holds iipsrv-style settings (see :func:`backend_environment`). With
    ``port=None`` a free port is chosen, and the start is retried on a port race.
    ``unix_socket`` binds to that path instead of TCP (iipsrv accepts both).
    """
    attempts = 3 if port is None and unix_socket is None else 1
    for attempt in range(attempts):
        address: Address = str(unix_socket) if unix_socket else (HOST, port or free_port())
        try:
            return _start_fcgi_once(argv, env, address, workdir, extra_args, cwd, name, timeout)
        except ServerStartError as exc:
            if attempt == attempts - 1 or not exc.exited:
                raise
    raise AssertionError("unreachable")


def _bind_argument(address: Address) -> str:
    """``--bind`` value: ``host:port`` or a socket path."""
    return f"{address[0]}:{address[1]}" if isinstance(address, tuple) else os.fspath(address)


def _accepts(address: Address) -> bool:
    """Something accepts stream connections at ``address`` (TCP or UNIX)."""
    if isinstance(address, tuple):
        return _port_open(*address)
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        try:
            sock.connect(os.fspath(address))
        except OSError:
            return False
        return True


def _start_fcgi_once(
    argv: Sequence[str],
    env: Mapping[str, str] | None,
    address: Address,
    workdir: Path | None,
    extra_args: Sequence[str],
    cwd: Path | None,
    name: str | None,
    timeout: float,
) -> Server:
    """One attempt of :func:`start_fcgi_command`."""
    directory, owned = _workdir(workdir, "iipy-fcgi-")
    settings = backend_environment(env, directory)
    bind = _bind_argument(address)
    output = directory / f"fcgi-{Path(bind).name.replace(':', '-')}.out"
    command = [*argv, "--bind", bind, *extra_args]
    process = _launch(command, {**_base_environment(), **settings}, cwd or directory, output)
    server = Server(
        name=name or Path(argv[0]).name,
        process=process,
        workdir=directory,
        log_files=[output, Path(settings["LOGFILE"])],
        owned_dirs=owned,
        address=address,
    )
    try:
        _wait_until(lambda: _accepts(address), timeout, process, bind)
        _survive_grace(process)
    except ChildProcessError as exc:
        raise _fail(server, f"{shlex.join(command)}: {exc}", exited=True) from None
    except TimeoutError as exc:
        raise _fail(server, f"{shlex.join(command)}: {exc}", exited=False) from None
    return server


def start_iipsrv(
    env: Mapping[str, str] | None = None,
    port: int | None = None,
    *,
    workdir: Path | None = None,
    backlog: int | None = None,
    timeout: float = STARTUP_TIMEOUT,
) -> Server:
    """Debian's iipsrv 1.1 in standalone mode (``--bind 127.0.0.1:PORT``)."""
    if not have_iipsrv():
        raise ServerStartError(f"{IIPSRV_BINARY} missing: apt-get install iipimage-server")
    extra = ["--backlog", str(backlog)] if backlog is not None else []
    return start_fcgi_command(
        [str(IIPSRV_BINARY)],
        env,
        port,
        workdir=workdir,
        extra_args=extra,
        name="iipsrv",
        timeout=timeout,
    )


# --------------------------------------------------------------------------- web servers


@dataclass(frozen=True)
class Spawn:
    """A FastCGI backend the web server starts itself (lighttpd bin-path, mod_fcgid).

    ``argv`` is run with the listening socket on fd 0; ``env`` holds iipsrv-style
    settings; ``processes`` is lighttpd's max-procs / mod_fcgid's FcgidMaxProcessesPerClass.
    """

    argv: Sequence[str]
    env: Mapping[str, str] = field(default_factory=dict)
    processes: int = 1


#: What a web server forwards to: a backend it spawns, or a running FastCGI server.
Backend = Spawn | Server | tuple[str, int] | str


def _replace_marked(text: str, marker: str, replacement: str) -> str:
    """Replace the lines between ``# @<marker>-begin`` and ``# @<marker>-end``.

    This is how the harness derives its configuration from the user-facing files: only
    the marked blocks differ, everything else is tested verbatim.
    """
    pattern = re.compile(
        rf"^([ \t]*# @{marker}-begin[^\n]*\n).*?^([ \t]*# @{marker}-end)", re.S | re.M
    )
    new, count = pattern.subn(lambda m: m.group(1) + replacement + m.group(2), text)
    if count != 1:
        raise ValueError(f"template has no (or several) @{marker} blocks")
    return new


def _write_wrapper(directory: Path, argv: Sequence[str]) -> Path:
    """A /bin/sh script exec'ing ``argv``: web servers want one executable path."""
    script = directory / "backend.sh"
    script.write_text(f'#!/bin/sh\nexec {shlex.join(argv)} "$@"\n')
    script.chmod(0o755)
    return script


def _lighttpd_string(value: str) -> str:
    """A lighttpd config string literal."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _lighttpd_command(argv: Sequence[str], directory: Path) -> str:
    """bin-path value: lighttpd splits on spaces, so anything fancier gets a wrapper."""
    if len(argv) == 1 or not any(re.search(r"[\s\"'\\]", arg) for arg in argv):
        return " ".join(argv)
    return str(_write_wrapper(directory, argv))


def _socket_path(directory: Path, owned: list[Path]) -> Path:
    """A UNIX socket base path short enough for sun_path (pytest paths can be long)."""
    candidate = directory / "iipy.socket"
    if len(str(candidate)) <= MAX_UNIX_SOCKET_PATH:
        return candidate
    short = Path(tempfile.mkdtemp(prefix="iipy-"))
    owned.append(short)
    return short / "s"


def render_lighttpd_conf(
    backend: Backend,
    settings: Mapping[str, str],
    *,
    command: str = "",
    socket_path: Path | None = None,
    template: Path = LIGHTTPD_TEMPLATE,
) -> str:
    """lighttpd/iipy.conf with the marked blocks replaced for ``backend``.

    A :class:`Spawn` fills the @settings block (command, socket, processes, environment);
    a running server replaces the @backend block with a host/port backend.
    """
    text = template.read_text()
    if isinstance(backend, Spawn):
        env = "".join(
            f"    {_lighttpd_string(k)} => {_lighttpd_string(v)},\n" for k, v in settings.items()
        )
        block = (
            f"var.iipy_command = {_lighttpd_string(command)}\n"
            f"var.iipy_socket = {_lighttpd_string(str(socket_path))}\n"
            f"var.iipy_processes = {int(backend.processes)}\n"
            f"var.iipy_environment = (\n{env})\n"
        )
        return _replace_marked(text, "settings", block)
    address = backend.address if isinstance(backend, Server) else backend
    if isinstance(address, tuple):
        target = f'"host" => {_lighttpd_string(address[0])}, "port" => {int(address[1])}'
    else:
        target = f'"socket" => {_lighttpd_string(os.fspath(address))}'
    block = f'var.iipy_backend = (( {target}, "check-local" => "disable" ))\n'
    return _replace_marked(_replace_marked(text, "settings", ""), "backend", block)


def _lighttpd_main_conf(directory: Path, port: int, mounts: Sequence[str], extra_conf: str) -> str:
    """The server-wide part the user's lighttpd.conf would provide."""
    lines = [
        f"server.document-root = {_lighttpd_string(str(directory / 'htdocs'))}",
        f"server.bind = {_lighttpd_string(HOST)}",
        f"server.port = {port}",
        f"server.errorlog = {_lighttpd_string(str(directory / 'lighttpd-error.log'))}",
        'server.modules += ( "mod_fastcgi" )',
        'mimetype.assign = ( ".jpg" => "image/jpeg", ".html" => "text/html" )',
        f"include {_lighttpd_string(str(directory / 'iipy.conf'))}",
    ]
    lines += [
        f"fastcgi.server += ( {_lighttpd_string(m)} => var.iipy_backend )" for m in mounts[1:]
    ]
    return "\n".join(lines) + "\n" + extra_conf + "\n"


def _prepare_docroot(directory: Path) -> None:
    """A document root with a static file (the benchmark's "static ceiling")."""
    docroot = directory / "htdocs"
    docroot.mkdir(exist_ok=True)
    (docroot / "index.html").write_text("<p>iipy test server</p>\n")


def start_lighttpd(
    fcgi_backend: Backend,
    tmpdir: Path | None = None,
    *,
    port: int | None = None,
    mounts: Sequence[str] = (DEFAULT_MOUNT,),
    extra_conf: str = "",
    timeout: float = STARTUP_TIMEOUT,
) -> WebServer:
    """lighttpd in the foreground (``lighttpd -D -f conf``) in front of ``fcgi_backend``.

    A :class:`Spawn` backend is started by lighttpd through ``bin-path``/``max-procs``;
    a :class:`Server`, ``(host, port)`` or UNIX socket path is proxied to. Every path in
    ``mounts`` goes to the same backend processes; the first is :attr:`WebServer.mount`.
    Runs as the current user (root is fine: no server.username is set).
    """
    binary = _require("lighttpd")
    directory, owned = _workdir(tmpdir, "iipy-lighttpd-")
    settings: dict[str, str] = {}
    command = ""
    if isinstance(fcgi_backend, Spawn):
        settings = backend_environment(fcgi_backend.env, directory)
        command = _lighttpd_command(fcgi_backend.argv, directory)
    socket_path = _socket_path(directory, owned)
    (directory / "iipy.conf").write_text(
        render_lighttpd_conf(fcgi_backend, settings, command=command, socket_path=socket_path)
    )
    _prepare_docroot(directory)
    logs = [directory / "lighttpd-error.log"] + ([Path(settings["LOGFILE"])] if settings else [])

    def configure(chosen: int) -> list[str]:
        conf = directory / "lighttpd.conf"
        conf.write_text(_lighttpd_main_conf(directory, chosen, mounts, extra_conf))
        return [binary, "-D", "-f", str(conf)]

    return _start_web_server(
        "lighttpd", configure, directory, owned, logs, port, mounts[0], timeout
    )


def _start_web_server(
    name: str,
    configure: Callable[[int], list[str]],
    directory: Path,
    owned: list[Path],
    logs: list[Path],
    port: int | None,
    mount: str,
    timeout: float,
) -> WebServer:
    """Write the config for a port (``configure`` returns the argv), start, wait; retry on
    another port if the server died while a port was chosen for us."""
    attempts = 3 if port is None else 1
    for attempt in range(attempts):
        chosen = port or free_port()
        argv = configure(chosen)
        output = directory / f"{name}.out"
        process = _launch(argv, _base_environment(), directory, output)
        server = WebServer(
            name=name,
            process=process,
            workdir=directory,
            log_files=[output, *logs],
            base_url=f"http://{HOST}:{chosen}",
            mount=mount,
        )
        try:
            _wait_for_web_server(server, chosen, timeout)
        except ServerStartError as exc:
            if attempt + 1 < attempts and exc.exited:
                continue
            for path in owned:
                shutil.rmtree(path, ignore_errors=True)
            raise
        server.owned_dirs = owned
        return server
    raise AssertionError("unreachable")


def _wait_for_web_server(server: WebServer, port: int, timeout: float) -> None:
    """Wait until the port is open and the mount answers with something other than a
    gateway error (backends spawned lazily, e.g. by mod_fcgid, start on this request)."""
    deadline = time.monotonic() + timeout

    def backend_answers() -> bool:
        _raise_on_fatal_log(server)
        remaining = max(1.0, deadline - time.monotonic())
        try:
            status = http_get(server.url(), timeout=remaining).status
        except OSError:
            return False
        return status not in NOT_READY_STATUSES

    try:
        wait_for_port(HOST, port, timeout, server.process)
        remaining = max(0.5, deadline - time.monotonic())
        _wait_until(backend_answers, remaining, server.process, server.url())
        _survive_grace(server.process)
    except ChildProcessError as exc:
        raise _fail(server, str(exc), exited=True) from None
    except (TimeoutError, _BackendFailed) as exc:
        raise _fail(server, str(exc), exited=False) from None


#: Answers from the web server itself while its backend is missing or starting. iipsrv
#: (and iipy) answer a bare mount with 400, so 500 here means "backend not there".
NOT_READY_STATUSES = frozenset({500, 502, 503, 504})

#: Log lines that mean the FastCGI backend cannot start: no point waiting for the timeout.
FATAL_LOG_PATTERNS = (
    "gw-backend failed to start",  # lighttpd bin-path child exited at once
    "End of script output before headers",  # mod_fcgid child died before answering
)


class _BackendFailed(Exception):
    """A web server's log says its backend died."""


def _raise_on_fatal_log(server: ManagedProcess) -> None:
    """Raise _BackendFailed if a log file contains one of FATAL_LOG_PATTERNS."""
    for path in server.log_files:
        with contextlib.suppress(OSError):
            text = path.read_text(errors="replace")
            for pattern in FATAL_LOG_PATTERNS:
                if pattern in text:
                    raise _BackendFailed(f"the FastCGI backend failed ({pattern!r} in {path})")


# --------------------------------------------------------------------------- Apache


def _apache_run_user() -> pwd.struct_passwd | None:
    """The unprivileged user Apache's children switch to when started as root."""
    if os.geteuid() != 0:
        return None
    for name in ("www-data", "nobody"):
        with contextlib.suppress(KeyError):
            return pwd.getpwnam(name)
    raise ServerStartError("running as root but neither www-data nor nobody exists")


def _apache_value(value: str) -> str:
    """A double-quoted Apache directive argument."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def render_apache_conf(
    command: Path,
    settings: Mapping[str, str],
    processes: int,
    *,
    template: Path = APACHE_TEMPLATE,
) -> str:
    """apache/iipy.conf with the @settings and @environment blocks filled in."""
    text = template.read_text()
    block = (
        f"Define IIPY_COMMAND {_apache_value(str(command))}\n"
        f"Define IIPY_PROCESSES {int(processes)}\n"
    )
    env = "".join(f"FcgidInitialEnv {k} {_apache_value(v)}\n" for k, v in settings.items())
    return _replace_marked(_replace_marked(text, "settings", block), "environment", env)


_APACHE_MODULES = ("mpm_event", "authz_core", "alias", "mime", "fcgid")


def _apache_main_conf(
    directory: Path, port: int, user: pwd.struct_passwd | None, extra_conf: str
) -> str:
    """A private httpd.conf: no /etc/apache2, no envvars, everything under ``directory``."""
    run, logs = directory / "run", directory / "logs"
    lines = [
        f'ServerRoot "{directory}"',
        f"ServerName {HOST}",
        f"Listen {HOST}:{port}",
        f'PidFile "{run}/httpd.pid"',
        f'DefaultRuntimeDir "{run}"',
        f"Mutex file:{run} default",
        f'ErrorLog "{logs}/error.log"',
        "LogLevel info",
        *(f"LoadModule {m}_module {APACHE_MODULES}/mod_{m}.so" for m in _APACHE_MODULES),
        "TypesConfig /etc/mime.types",
        f'DocumentRoot "{directory}/htdocs"',
        f'FcgidIPCDir "{run}/fcgid"',
        f'FcgidProcessTableFile "{run}/fcgid_shm"',
        f'Include "{directory}/iipy.conf"',
    ]
    if user is not None:
        lines += [f"User {user.pw_name}", f"Group #{user.pw_gid}"]
    return "\n".join(lines) + "\n" + extra_conf + "\n"


def _check_access(user: pwd.struct_passwd, paths: Sequence[Path], mode: str) -> list[str]:
    """Paths ``user`` cannot use (``test -r``/``-x``/``-w``): root-run CI drops privileges."""
    bad = []
    for path in paths:
        result = subprocess.run(
            ["test", f"-{mode}", str(path)],
            user=user.pw_uid,
            group=user.pw_gid,
            extra_groups=[],
            check=False,
        )
        if result.returncode != 0:
            bad.append(str(path))
    return bad


def _executables(argv: Sequence[str]) -> list[Path]:
    """argv[0] resolved on PATH, plus its #! interpreter: what mod_fcgid's user must run."""
    first = Path(shutil.which(argv[0]) or argv[0])
    found = [first]
    with contextlib.suppress(OSError):
        head = first.read_bytes()[:256]
        if head.startswith(b"#!"):
            found.append(Path(head[2:].split(b"\n")[0].split()[0].decode()))
    return found


def _prepare_apache_dirs(directory: Path, user: pwd.struct_passwd | None) -> None:
    """run/ and logs/ writable by the children's user; the tree traversable by it."""
    for sub in ("run", "logs", "htdocs"):
        (directory / sub).mkdir(exist_ok=True)
    if user is None:
        return
    directory.chmod(0o755)
    for sub in ("run", "logs"):
        os.chown(directory / sub, user.pw_uid, user.pw_gid)


def start_apache(
    backend: Spawn,
    tmpdir: Path | None = None,
    *,
    port: int | None = None,
    readable_paths: Sequence[Path] = (),
    extra_conf: str = "",
    timeout: float = STARTUP_TIMEOUT,
) -> WebServer:
    """Apache 2.4 + mod_fcgid spawning ``backend`` at ``/fcgi-bin/iipsrv.fcgi``.

    Runs ``apache2 -f <private httpd.conf> -DFOREGROUND`` (no Debian envvars needed).
    Under root the children run as www-data, so the work dir, the command (and its #!
    interpreter) and ``readable_paths`` (images) must be accessible to that user; this is
    checked up front with a clear error instead of a mysterious 500 later.
    """
    binary = _require("apache2")
    user = _apache_run_user()
    directory, owned = _workdir(tmpdir, "iipy-apache-")
    _prepare_apache_dirs(directory, user)
    settings = backend_environment(
        {"LOGFILE": str(directory / "logs" / "backend.log"), **backend.env}, directory
    )
    settings = {**_apache_passthrough_env(), **settings}
    wrapper = _write_wrapper(directory, backend.argv)
    (directory / "iipy.conf").write_text(render_apache_conf(wrapper, settings, backend.processes))
    (directory / "htdocs" / "index.html").write_text("<p>iipy test server</p>\n")
    if user is not None:
        _preflight_apache(user, directory, backend.argv, readable_paths, owned)
    logs = [directory / "logs" / "error.log", Path(settings["LOGFILE"])]

    def configure(chosen: int) -> list[str]:
        conf = directory / "httpd.conf"
        conf.write_text(_apache_main_conf(directory, chosen, user, extra_conf))
        return [binary, "-f", str(conf), "-DFOREGROUND"]

    return _start_web_server(
        "apache2", configure, directory, owned, logs, port, DEFAULT_MOUNT, timeout
    )


def _apache_passthrough_env() -> dict[str, str]:
    """Variables mod_fcgid would otherwise drop but a Python backend needs."""
    names = ("PYTHONPATH", "VIRTUAL_ENV", "LANG", "LC_ALL")
    return {name: os.environ[name] for name in names if name in os.environ}


def _preflight_apache(
    user: pwd.struct_passwd,
    directory: Path,
    argv: Sequence[str],
    readable: Sequence[Path],
    owned: list[Path],
) -> None:
    """Fail early, with the reason, if www-data cannot run the backend or read the images."""
    problems = [
        *(f"cannot execute {p}" for p in _check_access(user, _executables(argv), "x")),
        *(f"cannot read {p}" for p in _check_access(user, [directory, *readable], "r")),
        *(f"cannot write {p}" for p in _check_access(user, [directory / "logs"], "w")),
    ]
    if problems:
        for path in owned:
            shutil.rmtree(path, ignore_errors=True)
        raise ServerStartError(
            f"Apache runs its FastCGI children as {user.pw_name} when started as root, and "
            f"{user.pw_name} {'; '.join(problems)}. Use world-readable directories "
            "(e.g. tempfile.mkdtemp() + chmod 0o755) and a Python outside /root."
        )


def start_apache_site(
    site: str,
    tmpdir: Path | None = None,
    *,
    mount: str,
    executables: Sequence[Path] = (),
    readable_paths: Sequence[Path] = (),
    logs: Sequence[Path] = (),
    timeout: float = STARTUP_TIMEOUT,
) -> WebServer:
    """Apache 2.4 + mod_fcgid with ``site``, a whole site configuration as an administrator
    has it (e.g. Debian's /etc/apache2/mods-available/iipsrv.conf), instead of
    apache/iipy.conf rendered. ``mount`` is the FastCGI script's URL path; the programs in
    ``executables`` and ``readable_paths`` are checked up front as in start_apache."""
    binary = _require("apache2")
    user = _apache_run_user()
    directory, owned = _workdir(tmpdir, "iipy-apache-")
    _prepare_apache_dirs(directory, user)
    (directory / "iipy.conf").write_text(site)
    (directory / "htdocs" / "index.html").write_text("<p>iipy test server</p>\n")
    if user is not None:
        problems = [
            *(f"cannot execute {p}" for p in _check_access(user, list(executables), "x")),
            *(f"cannot read {p}" for p in _check_access(user, [directory, *readable_paths], "r")),
        ]
        if problems:
            for path in owned:
                shutil.rmtree(path, ignore_errors=True)
            raise ServerStartError(f"{user.pw_name} {'; '.join(problems)}")

    def configure(chosen: int) -> list[str]:
        conf = directory / "httpd.conf"
        conf.write_text(_apache_main_conf(directory, chosen, user, ""))
        return [binary, "-f", str(conf), "-DFOREGROUND"]

    return _start_web_server("apache2", configure, directory, owned,
                             [directory / "logs" / "error.log", *logs], None, mount, timeout)
