"""Process model: FastCGI (flup) or plain HTTP on a listening socket,
served by N single-threaded worker processes.

* Spawned by a web server (lighttpd ``bin-path``, Apache mod_fcgid,
  spawn-fcgi), the listening socket is file descriptor 0 and the spawner
  manages how many processes run: we serve in this process.
* With ``--bind``/``--http`` we open the socket ourselves and fork N workers
  that all accept on it (a preforked pool: no threads, no hand-off).

Signals: SIGTERM/SIGINT finish the request in hand and exit 0; SIGHUP empties
the caches.  A worker that dies unexpectedly is replaced.
"""

from __future__ import annotations

import logging
import os
import select
import signal
import socket
import sys
import time
from collections.abc import Callable
from typing import Any

from . import logsetup
from .app import Application
from .fcgiloop import SEND_TIMEOUT

log = logging.getLogger(__name__)



def socket_from_fd0() -> socket.socket | None:
    """The listening socket a FastCGI spawner passes as fd 0, or None."""
    try:
        sock = socket.socket(fileno=os.dup(0))
    except OSError:
        return None
    try:
        listening = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN)
    except OSError:
        listening = 0
    if not listening:
        sock.close()
        return None
    return sock


def parse_address(spec: str) -> tuple[int, Any]:
    """``HOST:PORT``, ``:PORT``, ``[v6]:PORT`` or a UNIX socket path."""
    if "/" in spec and not spec.startswith("["):
        return socket.AF_UNIX, spec
    host, sep, port = spec.rpartition(":")
    if not sep or not port.isdigit():
        raise ValueError(f"--bind/--http: '{spec}' is not HOST:PORT or a socket path")
    host = host.strip("[]") or "0.0.0.0"
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    return family, (host, int(port))


def bind_socket(spec: str, backlog: int) -> socket.socket:
    family, address = parse_address(spec)
    sock = socket.socket(family, socket.SOCK_STREAM)
    if family == socket.AF_UNIX:
        try:
            os.unlink(address)
        except FileNotFoundError:
            pass
    else:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(address)
    sock.listen(backlog)
    return sock


# -- one worker ---------------------------------------------------------------


class _Worker:
    """Signal state of one worker process."""

    def __init__(self, app: Application) -> None:
        self.app = app
        self.running = True

    def install(self) -> None:
        signal.signal(signal.SIGTERM, self._stop)
        signal.signal(signal.SIGINT, self._stop)
        signal.signal(signal.SIGHUP, self._hup)
        signal.signal(signal.SIGUSR1, _reopen_log)
        signal.signal(signal.SIGPIPE, signal.SIG_IGN)

    def _stop(self, signum: int, frame: object) -> None:
        self.running = False

    def _hup(self, signum: int, frame: object) -> None:
        logsetup.reopen()
        log.info("SIGHUP: caches cleared")
        self.app.clear_caches()


def _reopen_log(signum: int, frame: object) -> None:
    """SIGUSR1: reopen LOGFILE (logrotate's postrotate)."""
    logsetup.reopen()


def serve_fastcgi(app: Application, sock: socket.socket) -> None:
    """Serve FastCGI on ``sock`` in this process until SIGTERM/SIGINT.

    FCGI_WEB_SERVER_ADDRS (the FastCGI convention), when set, limits which
    peers may connect over TCP.
    """
    from . import fcgiloop

    worker = _Worker(app)
    worker.install()
    allowed = app.settings.fcgi_web_server_addrs
    peers = [a.strip() for a in allowed.split(",")] if allowed else None
    fcgiloop.serve(app, sock, lambda: worker.running, app.settings.read_timeout, peers)


def serve_http(app: Application, sock: socket.socket, wsgi: Callable | None = None) -> None:
    """Serve plain HTTP/1.0 on ``sock`` in this process (standalone mode).

    ``wsgi`` wraps the application when given (the demo adds a viewer page).
    """
    from wsgiref.simple_server import WSGIRequestHandler, WSGIServer

    worker = _Worker(app)
    worker.install()

    class Quiet(WSGIRequestHandler):
        timeout = app.settings.read_timeout  # a silent client is dropped, not waited for

        def handle(self) -> None:
            try:
                super().handle()
            except TimeoutError:
                log.warning("HTTP connection closed: no request within %gs", self.timeout)

        def parse_request(self) -> bool:
            ok = super().parse_request()  # the request line and headers are in
            self.connection.settimeout(SEND_TIMEOUT)  # a body and the answer: more time
            return ok

        def log_message(self, format: str, *args: object) -> None:
            log.debug("%s - %s", self.address_string(), format % args)

        def get_environ(self) -> dict:
            # REQUEST_URI as sent: PATH_INFO is percent-decoded, which would
            # turn an IIIF identifier's %2F into a path separator
            environ = super().get_environ()
            environ["REQUEST_URI"] = self.path
            return environ

    def with_request_uri(environ: dict, start_response: Callable) -> Any:
        if "REQUEST_URI" not in environ:
            query = environ.get("QUERY_STRING", "")
            path = environ.get("SCRIPT_NAME", "") + environ.get("PATH_INFO", "")
            environ["REQUEST_URI"] = path + ("?" + query if query else "")
        return (wsgi or app)(environ, start_response)

    server = WSGIServer(sock.getsockname(), Quiet, bind_and_activate=False)
    server.socket.close()
    server.socket = sock
    host, port = sock.getsockname()[:2]
    server.server_name, server.server_port = str(host), port
    server.setup_environ()
    server.set_app(with_request_uri)
    # The listening socket stays non-blocking (workers share it: a sibling may win
    # the accept), so the wait is our own poll: socketserver's handle_request takes
    # the socket's zero timeout as its wait and spun at 100 % CPU when idle.
    sock.setblocking(False)
    from .fcgiloop import WakeUp

    wake = WakeUp()  # a signal ends the wait at once
    poller = select.poll()
    poller.register(sock, select.POLLIN)
    poller.register(wake.fd, select.POLLIN)
    try:
        while worker.running:
            for fd, _ in poller.poll():
                if fd == wake.fd:
                    wake.drain()
                elif worker.running:
                    server._handle_request_noblock()  # accept (or EAGAIN), serve, close
    finally:
        wake.close()


# -- the pool -------------------------------------------------------------------


def run_pool(
    serve: Callable[[], None],
    processes: int,
    on_restart: Callable[[], None] | None = None,
    on_exit: Callable[[int], None] | None = None,
    reload: Callable[[], Callable[[], None] | None] | None = None,
) -> int:
    """Fork ``processes`` workers running ``serve``; supervise until told to stop.

    ``on_exit(pid)`` is called for each worker that ended, ``on_restart()`` for each one
    replaced (the metrics).  SIGHUP with ``reload``: ``reload()`` gives the new workers'
    ``serve`` (settings read again) or None (keep the running ones); the new workers start
    on the same socket before the old ones are told to finish their request and exit, so
    no request is dropped."""
    if processes <= 1:
        serve()
        if on_exit is not None:
            on_exit(os.getpid())
        return 0
    children: dict[int, float] = {}
    retiring: set[int] = set()
    current = [serve]
    stopping = False

    def spawn() -> None:
        pid = os.fork()
        if pid == 0:
            code = 0
            try:
                current[0]()
            except Exception:
                log.exception("worker failed")
                code = 1
            finally:
                logging.shutdown()
                os._exit(code)
        children[pid] = time.monotonic()

    def stop(signum: int, frame: object) -> None:
        nonlocal stopping
        stopping = True
        for pid in list(children):
            _kill(pid, signal.SIGTERM)

    def hup(signum: int, frame: object) -> None:
        if signum == signal.SIGHUP and reload is not None and not stopping:
            fresh = reload()
            if fresh is not None:
                old = list(children)
                current[0] = fresh
                for _ in range(processes):
                    spawn()
                for pid in old:
                    children.pop(pid, None)
                    retiring.add(pid)
                    _kill(pid, signal.SIGTERM)
            return
        logsetup.reopen()
        for pid in list(children):
            _kill(pid, signum)

    for _ in range(processes):
        spawn()
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGHUP, hup)
    signal.signal(signal.SIGUSR1, hup)
    while children or retiring:
        try:
            pid, status = os.wait()
        except ChildProcessError:
            break
        except InterruptedError:
            continue
        retiring.discard(pid)
        started = children.pop(pid, None)
        if on_exit is not None:
            on_exit(pid)
        if started is None or stopping:
            continue
        log.error("worker %d exited (status %d); starting another", pid, status)
        if on_restart is not None:
            on_restart()
        if time.monotonic() - started < 1.0:
            time.sleep(1.0)  # do not spin if workers die at start
        spawn()
    return 0


def _kill(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


def fail(message: str) -> int:
    sys.stderr.write(f"iipy: {message}\n")
    return 1
