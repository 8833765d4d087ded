"""A worker's FastCGI loop: many connections open, one request served at a time.

A worker used to accept one connection and then block in ``recv`` until that
peer spoke, so two silent TCP connections stalled a two-worker server and a
worker waiting for a peer ignored SIGTERM.  Here a worker waits in ``poll`` on
its listening socket, on every connection it holds and on a pipe the signal
module writes to (``signal.set_wakeup_fd``), so:

* a connection whose request is not complete ``read_timeout`` seconds
  (IIPY_READ_TIMEOUT, default 5) after it was accepted, or after its first
  byte when it is kept alive between requests, is closed; a kept-alive
  connection may idle up to ``KEEPALIVE_IDLE`` seconds between requests;
* bytes that are not FastCGI end their connection at once (:mod:`.fastcgi`);
* a signal wakes the worker straight away: SIGTERM ends it between requests,
  whatever its peers are doing;
* requests of other connections are served while a peer is slow or silent.

Requests are still served one at a time, in the order they become complete;
a response is written within ``SEND_TIMEOUT`` seconds or abandoned.  A worker
holds at most ``MAX_CONNECTIONS`` connections and leaves the rest in the
listen queue for its siblings.
"""

from __future__ import annotations

import errno
import logging
import os
import select
import signal
import socket
import time
from collections.abc import Callable

from .fastcgi import BASE_ENVIRON, READ_SIZE, Connection, WSGIApp

log = logging.getLogger(__name__)

MAX_CONNECTIONS = 256
KEEPALIVE_IDLE = 60.0  # between requests on a kept-alive connection (nginx's default)
SEND_TIMEOUT = 30.0  # to write one response
ACCEPT_PAUSE = 0.5  # after EMFILE/ENFILE
ACCEPT_BURST = 16  # connections accepted in a row before open ones are looked at again
_READ = select.POLLIN | select.POLLPRI


class WakeUp:
    """A non-blocking pipe the signal module writes a byte to for every signal."""

    def __init__(self) -> None:
        self.fd, self._write = os.pipe()
        os.set_blocking(self.fd, False)
        os.set_blocking(self._write, False)
        self._previous = signal.set_wakeup_fd(self._write, warn_on_full_buffer=False)

    def drain(self) -> None:
        try:
            while os.read(self.fd, 512):
                pass
        except BlockingIOError:
            pass

    def close(self) -> None:
        signal.set_wakeup_fd(self._previous)
        os.close(self.fd)
        os.close(self._write)


class _Open:
    """A connection and the time by which it must have sent something useful."""

    __slots__ = ("sock", "conn", "deadline", "served")

    def __init__(self, sock: socket.socket, conn: Connection, deadline: float) -> None:
        self.sock = sock
        self.conn = conn
        self.deadline = deadline
        self.served = 0


class Loop:
    def __init__(
        self,
        app: WSGIApp,
        listener: socket.socket,
        running: Callable[[], bool],
        read_timeout: float,
        allowed_peers: list[str] | None = None,
    ) -> None:
        self.app = app
        self.listener = listener
        self.running = running
        self.read_timeout = read_timeout
        self.allowed_peers = allowed_peers
        self.open: dict[int, _Open] = {}
        self.poller = select.poll()
        self.accepting = False
        self.accept_paused_until = 0.0
        self.wake: WakeUp | None = None

    def run(self) -> None:
        self.listener.setblocking(False)
        self.wake = WakeUp()
        self.poller.register(self.wake.fd, _READ)
        self._accepting(True)
        try:
            while self.running():
                for fd, _ in self.poller.poll(self._timeout_ms()):
                    if fd == self.wake.fd:
                        self.wake.drain()
                    elif fd == self.listener.fileno():
                        self._accept()
                    elif fd in self.open:
                        self._readable(self.open[fd])
                    if not self.running():
                        break
                self._expire()
        finally:
            for entry in list(self.open.values()):
                self._close(entry)
            self.wake.close()

    # -- bookkeeping ---------------------------------------------------------------

    def _timeout_ms(self) -> int:
        deadlines = [entry.deadline for entry in self.open.values()]
        if not self.accepting:
            deadlines.append(self.accept_paused_until)
        if not deadlines:
            return -1
        return max(0, int((min(deadlines) - time.monotonic()) * 1000) + 1)

    def _expire(self) -> None:
        now = time.monotonic()
        for entry in [e for e in self.open.values() if e.deadline <= now]:
            # what arrived while the worker was busy with another request counts
            self._readable(entry)
            if self.open.get(entry.sock.fileno()) is not entry or entry.deadline > now:
                continue
            if entry.conn.idle and entry.served:
                log.debug("kept-alive FastCGI connection idle for %gs: closed", KEEPALIVE_IDLE)
            else:
                log.warning("FastCGI connection closed: no complete request within %gs",
                            self.read_timeout)
            self._close(entry)
        if not self.accepting and len(self.open) < MAX_CONNECTIONS and (
            now >= self.accept_paused_until
        ):
            self._accepting(True)

    def _accepting(self, on: bool) -> None:
        if on != self.accepting:
            if on:
                self.poller.register(self.listener, _READ)
            else:
                self.poller.unregister(self.listener)
            self.accepting = on

    def _close(self, entry: _Open) -> None:
        self.open.pop(entry.sock.fileno(), None)
        try:
            self.poller.unregister(entry.sock)
        except (KeyError, ValueError):
            pass
        entry.sock.close()

    # -- events ------------------------------------------------------------------

    def _accept(self) -> None:
        """Accept and serve connections while the queue has some (at most a burst),
        as a busy worker without poll would: most requests arrive whole."""
        for _ in range(ACCEPT_BURST):
            if not (self.accepting and self.running() and self._accept_one()):
                return

    def _accept_one(self) -> bool:
        try:
            sock, addr = self.listener.accept()
        except (BlockingIOError, InterruptedError):
            return False  # none left, or a sibling worker took it
        except OSError as exc:
            if exc.errno in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM):
                log.warning("accept failed: %s", exc)
                self.accept_paused_until = time.monotonic() + ACCEPT_PAUSE
                self._accepting(False)
                return False
            if exc.errno == errno.ECONNABORTED:
                return True
            raise
        if self.allowed_peers is not None and isinstance(addr, tuple) and (
            addr[0] not in self.allowed_peers
        ):
            sock.close()
            return True
        sock.setblocking(False)
        entry = _Open(sock, Connection(sock, self.app, BASE_ENVIRON),
                      time.monotonic() + self.read_timeout)
        self.open[sock.fileno()] = entry
        self.poller.register(sock, _READ)
        if len(self.open) >= MAX_CONNECTIONS:
            self.accept_paused_until = 0.0
            self._accepting(False)
        self._readable(entry)  # usually the request is already there
        return True

    def _readable(self, entry: _Open) -> None:
        try:
            data = entry.sock.recv(READ_SIZE)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:
            self._close(entry)
            return
        if entry.conn.idle and entry.served:  # a kept-alive connection's next request
            entry.deadline = time.monotonic() + self.read_timeout
        out, keep = entry.conn.feed(data)
        if out:
            entry.served += 1
            keep = self._send(entry.sock, b"".join(out)) and keep
        if not keep:
            self._close(entry)
        elif out and entry.conn.idle:
            entry.deadline = time.monotonic() + KEEPALIVE_IDLE

    def _send(self, sock: socket.socket, data: bytes) -> bool:
        """Write ``data``; False if the peer is gone, too slow, or SIGTERM came meanwhile."""
        view = memoryview(data)
        deadline = time.monotonic() + SEND_TIMEOUT
        waiter: select.poll | None = None
        while view:
            try:
                view = view[sock.send(view) :]
                continue
            except (BlockingIOError, InterruptedError):
                pass
            except OSError:
                return False
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not self.running():
                log.warning("FastCGI response abandoned: the peer stopped reading")
                return False
            if waiter is None:
                waiter = select.poll()
                waiter.register(sock, select.POLLOUT)
                assert self.wake is not None
                waiter.register(self.wake.fd, _READ)
            for fd, _ in waiter.poll(int(remaining * 1000) + 1):
                if fd == self.wake.fd:  # type: ignore[union-attr]
                    self.wake.drain()  # type: ignore[union-attr]
        return True


def serve(
    app: WSGIApp,
    sock: socket.socket,
    running: Callable[[], bool],
    read_timeout: float,
    allowed_peers: list[str] | None = None,
) -> None:
    """Serve FastCGI on the listening ``sock`` until ``running()`` turns False."""
    if sock.family in (socket.AF_INET, socket.AF_INET6) and hasattr(socket, "TCP_DEFER_ACCEPT"):
        # the kernel holds a connection until its first bytes arrive: silent
        # connections do not even wake a worker (Linux)
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_DEFER_ACCEPT,
                            max(1, round(read_timeout)))
        except OSError:
            pass
    Loop(app, sock, running, read_timeout, allowed_peers).run()
