"""Debian's nginx and memcached, really started, for the tests and benchmarks.

nginx runs from ``nginx/iipy.conf`` (the shipped file, only its @upstream and @listen
blocks replaced) plus ``nginx/fastcgi_iipy.inc`` verbatim, in front of one or more
running FastCGI back ends (``iipy --bind``).  memcached runs on a free port.
"""

from __future__ import annotations

import shutil
import socket
import time
from collections.abc import Sequence
from pathlib import Path

from fcgi_client import Address
from servers import (
    HOST,
    REPO_ROOT,
    STARTUP_TIMEOUT,
    ManagedProcess,
    Server,
    WebServer,
    _base_environment,
    _launch,
    _prepare_docroot,
    _replace_marked,
    _require,
    _start_web_server,
    _wait_until,
    _workdir,
    free_port,
)

NGINX_TEMPLATE = REPO_ROOT / "nginx" / "iipy.conf"
NGINX_PARAMS = REPO_ROOT / "nginx" / "fastcgi_iipy.inc"


def have_nginx() -> bool:
    return shutil.which("nginx") is not None or Path("/usr/sbin/nginx").exists()


def have_memcached() -> bool:
    return shutil.which("memcached") is not None


class Memcached(ManagedProcess):
    """memcached on 127.0.0.1:port; :meth:`stats` reads its counters."""

    port: int = 0
    unix_socket: str = ""  # set when memcached listens on a UNIX socket instead

    @property
    def address(self) -> str:
        """As MEMCACHED_SERVERS takes it."""
        return self.unix_socket or f"{HOST}:{self.port}"

    @property
    def nginx_address(self) -> str:
        """As an nginx upstream ``server`` takes it."""
        return f"unix:{self.unix_socket}" if self.unix_socket else self.address

    def _connect(self) -> socket.socket:
        if self.unix_socket:
            sock = socket.socket(socket.AF_UNIX)
            sock.settimeout(5)
            sock.connect(self.unix_socket)
            return sock
        return socket.create_connection((HOST, self.port), timeout=5)

    def command(self, line: str) -> str:
        with self._connect() as sock:
            sock.sendall(line.encode() + b"\r\n")
            data = b""
            ends = (b"END\r\n", b"OK\r\n", b"ERROR\r\n")
            one_line = (b"HD", b"EN", b"ME ", b"NF", b"NS")  # meta commands answer one line
            while not data.endswith(ends) and not (
                data.startswith(one_line) and data.endswith(b"\n")
            ):
                chunk = sock.recv(65536)
                if not chunk:
                    break
                data += chunk
        return data.decode("latin-1")

    def stats(self) -> dict[str, int]:
        out = {}
        for line in self.command("stats").splitlines():
            parts = line.split()
            if len(parts) == 3 and parts[0] == "STAT" and parts[2].isdigit():
                out[parts[1]] = int(parts[2])
        return out

    def flush(self) -> None:
        self.command("flush_all")


def start_memcached(
    port: int | None = None, megabytes: int = 256, unix_socket: bool = False
) -> Memcached:
    """memcached on 127.0.0.1 (a free port) or, with ``unix_socket``, on a socket file."""
    binary = _require("memcached")
    directory, owned = _workdir(None, "iipy-memcached-")
    directory.chmod(0o755)
    chosen = port or free_port()
    path = str(directory / "memcached.sock")
    where = ["-s", path, "-a", "0666"] if unix_socket else ["-l", HOST, "-p", str(chosen)]
    argv = [binary, *where, "-U", "0", "-m", str(megabytes), "-t", "1"]
    argv += ["-u", "root"] if _is_root() else []
    output = directory / "memcached.out"
    process = _launch(argv, _base_environment(), directory, output)
    server = Memcached("memcached", process, directory, [output], owned)
    server.port = 0 if unix_socket else chosen
    server.unix_socket = path if unix_socket else ""

    def accepts() -> bool:
        try:
            server._connect().close()
        except OSError:
            return False
        return True

    try:
        _wait_until(accepts, STARTUP_TIMEOUT, process, f"memcached on {chosen}")
    except (ChildProcessError, TimeoutError) as exc:
        server.stop()
        raise RuntimeError(f"memcached did not start: {exc}\n{server.log_tail()}") from None
    return server


def _is_root() -> bool:
    import os

    return os.geteuid() == 0


def _target(backend: Server | Address) -> str:
    address = backend.address if isinstance(backend, Server) else backend
    if isinstance(address, tuple):
        return f"{address[0]}:{address[1]}"
    return f"unix:{address}"


def render_nginx_conf(
    backends: Sequence[Server | Address],
    memcached: str | None,
    port: int,
    docroot: Path,
    keepalive: int = 0,
    front: bool = True,
    template: Path = NGINX_TEMPLATE,
) -> str:
    """nginx/iipy.conf with the @upstream and @listen blocks set for this run.

    ``keepalive`` 0 leaves out the upstream's keepalive pool (a connection per request);
    without ``memcached`` the front-end lookup points at a closed port (every lookup is a
    miss, as when memcached is down).
    """
    servers = "".join(f"    server {_target(b)} max_fails=1 fail_timeout=5s;\n" for b in backends)
    pool = f"    keepalive {keepalive};\n" if keepalive else ""
    if memcached and memcached.startswith("/"):
        memcached = f"unix:{memcached}"  # MEMCACHED_SERVERS form -> nginx's
    upstream = (
        f"upstream iipy {{\n{servers}{pool}}}\n"
        f"upstream iipy_memcached {{\n    server {memcached or f'{HOST}:1'};\n"
        "    keepalive 64;\n}\n"
    )
    listen = f"listen {HOST}:{port};\nserver_name _;\nroot {docroot};\n"
    text = _replace_marked(template.read_text(), "upstream", upstream)
    if not front:
        text = text.replace("if ($iipy_front = 1) { return 418; }", "")
        text = text.replace("if ($iipy_front = 2) { return 419; }", "")
    return _replace_marked(text, "listen", listen)


def _main_conf(directory: Path, workers: int) -> str:
    temp = directory / "tmp"
    temp.mkdir(exist_ok=True)
    user = "user root;\n" if _is_root() else ""
    paths = "".join(
        f"    {name}_temp_path {temp / name};\n"
        for name in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    return (
        f"{user}daemon off;\nworker_processes {workers};\npid {directory / 'nginx.pid'};\n"
        f"error_log {directory / 'nginx-error.log'} warn;\n"
        "events { worker_connections 4096; }\n"
        "http {\n    access_log off;\n    sendfile on;\n    tcp_nopush on;\n"
        "    types { text/html html; image/jpeg jpg; application/json json; }\n"
        f"{paths}    include {directory / 'iipy.conf'};\n}}\n"
    )


def start_nginx(
    backends: Sequence[Server | Address],
    memcached: str | None = None,
    *,
    keepalive: int = 0,
    workers: int = 1,
    front: bool = True,
    timeout: float = STARTUP_TIMEOUT,
) -> WebServer:
    """nginx in the foreground in front of running FastCGI ``backends``."""
    binary = _require("nginx")
    directory, owned = _workdir(None, "iipy-nginx-")
    directory.chmod(0o755)
    _prepare_docroot(directory)
    params = NGINX_PARAMS.read_text()
    if not keepalive:  # no pool: a kept connection would only wait for nginx to close it
        params = params.replace("fastcgi_keep_conn on;", "fastcgi_keep_conn off;")
    (directory / "fastcgi_iipy.inc").write_text(params)
    logs = [directory / "nginx-error.log"]

    def configure(chosen: int) -> list[str]:
        (directory / "iipy.conf").write_text(
            render_nginx_conf(
                backends, memcached, chosen, directory / "htdocs", keepalive, front
            )
        )
        conf = directory / "nginx.conf"
        conf.write_text(_main_conf(directory, workers))
        return [binary, "-c", str(conf), "-p", str(directory)]

    server = _start_web_server("nginx", configure, directory, owned, logs, None,
                               "/fcgi-bin/iipsrv.fcgi", timeout)
    time.sleep(0.05)
    return server
