"""A lean FastCGI responder loop for single-threaded workers.

flup provides the protocol's vocabulary (record types, name-value pair
coding); this module provides the connection loop.  flup's own loop costs
~300 µs a request on this class of machine, nearly all of it system calls: a
``select`` before every record it reads, two or three ``send`` calls per
record it writes and a shutdown-and-drain on close.  Here a request is one
``recv`` (a GET arrives in one segment), one ``sendall`` of every output
record together, and a ``close``.

Supported: the RESPONDER role, FCGI_KEEP_CONN, FCGI_GET_VALUES, aborts, POST
bodies on stdin.  Multiplexing is refused (FCGI_CANT_MPX_CONN), as by iipsrv.
"""

from __future__ import annotations

import errno
import logging
import socket
import struct
import sys
from collections.abc import Callable, Iterable
from io import BytesIO
from typing import Any

from flup.server.fcgi_base import (
    FCGI_ABORT_REQUEST,
    FCGI_BEGIN_REQUEST,
    FCGI_CANT_MPX_CONN,
    FCGI_END_REQUEST,
    FCGI_GET_VALUES,
    FCGI_GET_VALUES_RESULT,
    FCGI_KEEP_CONN,
    FCGI_MAX_CONNS,
    FCGI_MAX_REQS,
    FCGI_MPXS_CONNS,
    FCGI_PARAMS,
    FCGI_REQUEST_COMPLETE,
    FCGI_RESPONDER,
    FCGI_STDIN,
    FCGI_STDOUT,
    FCGI_UNKNOWN_ROLE,
    FCGI_UNKNOWN_TYPE,
    decode_pair,
    encode_pair,
)

log = logging.getLogger(__name__)

_HEADER = struct.Struct("!BBHHBx")
_END_BODY = struct.Struct("!LB3x")
_BEGIN_BODY = struct.Struct("!HB5x")
MAX_CONTENT = 65535
MAX_INPUT = 1 << 20  # params + stdin we accept for one request
READ_SIZE = 65536
FCGI_VERSION = 1
CAPABILITIES = {FCGI_MAX_CONNS: "1", FCGI_MAX_REQS: "1", FCGI_MPXS_CONNS: "0"}


def record(kind: int, request_id: int, content: bytes = b"") -> bytes:
    """One record with padding to a multiple of 8 bytes."""
    padding = -len(content) & 7
    return _HEADER.pack(1, kind, request_id, len(content), padding) + content + b"\0" * padding


def stream(kind: int, request_id: int, data: bytes) -> list[bytes]:
    """A stream's records: ``data`` in ≤64 KiB pieces, then the empty record."""
    out = [
        record(kind, request_id, data[i : i + MAX_CONTENT])
        for i in range(0, len(data), MAX_CONTENT)
    ]
    out.append(record(kind, request_id))
    return out


def end_request(request_id: int, status: int = FCGI_REQUEST_COMPLETE, app: int = 0) -> bytes:
    return record(FCGI_END_REQUEST, request_id, _END_BODY.pack(app, status))


class _Request:
    __slots__ = ("id", "flags", "params", "stdin", "params_done", "aborted")

    def __init__(self, request_id: int, flags: int) -> None:
        self.id = request_id
        self.flags = flags
        self.params = bytearray()
        self.stdin = bytearray()
        self.params_done = False
        self.aborted = False


WSGIApp = Callable[[dict, Callable[..., Any]], Iterable[bytes]]


class Connection:
    """One web-server connection: read records, run requests, write answers."""

    def __init__(self, sock: socket.socket, app: WSGIApp, base_environ: dict) -> None:
        self.sock = sock
        self.app = app
        self.base_environ = base_environ
        self.buffer = bytearray()
        self.request: _Request | None = None

    def run(self) -> None:
        try:
            while self._step():
                pass
        except (ConnectionError, TimeoutError, OSError) as exc:
            if getattr(exc, "errno", None) not in (errno.EPIPE, errno.ECONNRESET, None):
                log.debug("connection error: %s", exc)
        finally:
            self.sock.close()

    def _step(self) -> bool:
        """Read once and handle what arrived; False when the connection is done."""
        data = self.sock.recv(READ_SIZE)
        if not data:
            return False
        out, keep = self.feed(data)
        if out:
            self.sock.sendall(b"".join(out))
        return keep

    @property
    def idle(self) -> bool:
        """No request begun and nothing buffered: between requests."""
        return not self.buffer and self.request is None

    def feed(self, data: bytes) -> tuple[list[bytes], bool]:
        """Handle the records ``data`` completes: (records to send, keep the connection).

        Bytes that cannot begin a FastCGI record (version 1), such as a plain HTTP
        request sent to the FastCGI port, end the connection at once.
        """
        self.buffer += data
        if len(self.buffer) > MAX_INPUT + 2 * READ_SIZE:
            log.warning("FastCGI connection closed: more than %d bytes of input", MAX_INPUT)
            return [], False
        out: list[bytes] = []
        keep = True
        while keep and self.buffer:
            if self.buffer[0] != FCGI_VERSION:
                log.warning("connection closed: not FastCGI (first bytes %r)",
                            bytes(self.buffer[:16]))
                return out, False
            if len(self.buffer) < 8:
                break
            version, kind, request_id, length, padding = _HEADER.unpack_from(self.buffer)
            total = 8 + length + padding
            if len(self.buffer) < total:
                break
            content = bytes(self.buffer[8 : 8 + length])
            del self.buffer[:total]
            keep = self._record(kind, request_id, content, out)
        return out, keep

    def _record(self, kind: int, request_id: int, content: bytes, out: list[bytes]) -> bool:
        request = self.request
        if request_id == 0:
            if kind == FCGI_GET_VALUES:
                out.append(record(FCGI_GET_VALUES_RESULT, 0, _values(content)))
            else:
                out.append(record(FCGI_UNKNOWN_TYPE, 0, bytes([kind]) + b"\0" * 7))
            return True
        if kind == FCGI_BEGIN_REQUEST:
            role, flags = _BEGIN_BODY.unpack(content[:8])
            if request is not None:
                out.append(end_request(request_id, FCGI_CANT_MPX_CONN))
                return True
            if role != FCGI_RESPONDER:
                out.append(end_request(request_id, FCGI_UNKNOWN_ROLE))
                return bool(flags & FCGI_KEEP_CONN)
            self.request = _Request(request_id, flags)
            return True
        if request is None or request_id != request.id:
            return True  # a record for a request we do not know: ignore
        if kind == FCGI_PARAMS:
            if content:
                request.params += content
            else:
                request.params_done = True
        elif kind == FCGI_STDIN:
            if content:
                request.stdin += content
                if len(request.stdin) > MAX_INPUT:
                    request.aborted = True
            elif request.params_done:
                self.request = None
                out.extend(self._respond(request))
                return bool(request.flags & FCGI_KEEP_CONN)
        elif kind == FCGI_ABORT_REQUEST:
            self.request = None
            out.append(end_request(request.id))
            return bool(request.flags & FCGI_KEEP_CONN)
        return True

    def _respond(self, request: _Request) -> list[bytes]:
        environ = self._environ(request)
        if request.aborted:
            body = b"Status: 413 Payload Too Large\r\nContent-Length: 0\r\n\r\n"
            return [*stream(FCGI_STDOUT, request.id, body), end_request(request.id)]
        status_headers: list[Any] = []

        def start_response(status: str, headers: list, exc_info: Any = None) -> Callable:
            status_headers[:] = [status, headers]
            return _no_write

        try:
            chunks = self.app(environ, start_response)
            try:
                body = b"".join(chunks)
            finally:
                close = getattr(chunks, "close", None)
                if close is not None:
                    close()
        except Exception:
            log.exception("application error")
            status_headers[:] = ["500 Internal Server Error", [("Content-Type", "text/plain")]]
            body = b"internal server error\n"
        status, headers = status_headers
        head = ["Status: ", status, "\r\n"]
        for name, value in headers:
            head += [name, ": ", value, "\r\n"]
        head.append("\r\n")
        payload = "".join(head).encode("latin-1") + body
        records = stream(FCGI_STDOUT, request.id, payload)
        records.append(end_request(request.id))
        return records

    def _environ(self, request: _Request) -> dict:
        environ = dict(self.base_environ)
        if not decode_params(bytes(request.params), environ):
            log.warning("malformed FastCGI parameters")
        environ["wsgi.input"] = BytesIO(bytes(request.stdin))
        environ["wsgi.errors"] = sys.stderr
        environ.setdefault("REQUEST_METHOD", "GET")
        environ.setdefault("QUERY_STRING", "")
        environ.setdefault("SCRIPT_NAME", "")
        environ.setdefault("PATH_INFO", "")
        environ.setdefault("SERVER_NAME", "localhost")
        environ.setdefault("SERVER_PORT", "80")
        environ.setdefault("SERVER_PROTOCOL", "HTTP/1.0")
        https = environ.get("HTTPS", "off").lower() in ("on", "1")
        environ["wsgi.url_scheme"] = "https" if https else "http"
        return environ


def decode_params(data: bytes, into: dict) -> bool:
    """Name-value pairs (a 1-byte length below 128, else 4 bytes with the top bit set)
    into ``into`` as latin-1 strings; False if ``data`` ends inside a pair.  About twice
    as fast as flup's ``decode_pair`` loop: no tuples, no struct per length."""
    pos, end = 0, len(data)
    while pos < end:
        if pos + 2 > end:
            return False
        n = data[pos]
        if n & 0x80:
            n = int.from_bytes(data[pos : pos + 4], "big") & 0x7FFFFFFF
            pos += 4
        else:
            pos += 1
        if pos >= end:
            return False
        m = data[pos]
        if m & 0x80:
            m = int.from_bytes(data[pos : pos + 4], "big") & 0x7FFFFFFF
            pos += 4
        else:
            pos += 1
        stop = pos + n + m
        if stop > end:
            return False
        into[data[pos : pos + n].decode("latin-1")] = data[pos + n : stop].decode("latin-1")
        pos = stop
    return True


def _no_write(data: bytes) -> None:
    raise RuntimeError("iipy's FastCGI layer does not support WSGI write()")


def _values(content: bytes) -> bytes:
    out = []
    pos = 0
    try:
        while pos < len(content):
            pos, (name, _) = decode_pair(content, pos)
            value = CAPABILITIES.get(name.decode("latin-1"))
            if value is not None:
                out.append(encode_pair(name, value.encode()))
    except (IndexError, struct.error):
        pass
    return b"".join(out)


BASE_ENVIRON = {
    "wsgi.version": (1, 0),
    "wsgi.multithread": False,
    "wsgi.multiprocess": True,
    "wsgi.run_once": False,
}
