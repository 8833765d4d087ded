"""A small, dependency-free FastCGI client for talking to iipsrv and iipy directly.

Why not flup or ``cgi-fcgi``: the tests need the *raw* bytes a FastCGI application
writes (iipsrv 1.1 emits malformed header blocks, see iip-protocol.md §3.1 and §16),
so nothing between the test and the application may normalise the response.

Only the RESPONDER role is implemented: one request per connection (what web servers
use with iipsrv), or several in turn on one kept-alive connection
(:class:`FcgiConnection`, FCGI_KEEP_CONN, as nginx's ``fastcgi_keep_conn on``).
"""

from __future__ import annotations

import os
import socket
import struct
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from urllib.parse import urlsplit

__all__ = [
    "Address",
    "FcgiConnection",
    "FcgiError",
    "FcgiResponse",
    "Headers",
    "cgi_params",
    "encode_params",
    "fcgi_request",
    "parse_cgi_output",
]

FCGI_VERSION = 1
FCGI_BEGIN_REQUEST = 1
FCGI_ABORT_REQUEST = 2
FCGI_END_REQUEST = 3
FCGI_PARAMS = 4
FCGI_STDIN = 5
FCGI_STDOUT = 6
FCGI_STDERR = 7
FCGI_RESPONDER = 1
FCGI_REQUEST_COMPLETE = 0
REQUEST_ID = 1
MAX_RECORD = 0xFFFF  # largest content a single record can carry
_HEADER = struct.Struct("!BBHHBx")

#: ``(host, port)`` for TCP or a filesystem path for a UNIX socket.
Address = tuple[str, int] | str | os.PathLike[str]

DEFAULT_SCRIPT = "/fcgi-bin/iipsrv.fcgi"


class FcgiError(Exception):
    """The peer broke the FastCGI protocol (or closed the connection early)."""


class Headers(list[tuple[str, str]]):
    """Response headers in wire order, with case-insensitive look-ups.

    A list (not a dict) because order and duplicates are part of what the tests
    compare against iipsrv.
    """

    def get(self, name: str, default: str | None = None) -> str | None:
        """First value of header ``name`` (case-insensitive), or ``default``."""
        wanted = name.lower()
        for key, value in self:
            if key.lower() == wanted:
                return value
        return default

    def get_all(self, name: str) -> list[str]:
        """Every value of header ``name`` (case-insensitive), in order."""
        wanted = name.lower()
        return [value for key, value in self if key.lower() == wanted]

    def has(self, name: str) -> bool:
        """Header ``name`` is present (case-insensitive), even with an empty value."""
        return self.get(name) is not None

    def names(self) -> list[str]:
        """Header names in wire order (original spelling)."""
        return [key for key, _ in self]


@dataclass
class FcgiResponse:
    """What a FastCGI application answered, split the way a web server would.

    ``raw`` is everything on the stdout stream; ``header_block`` is the bytes before
    the first blank line (without it) and ``body`` the bytes after it. When the
    application never wrote a blank line ``header_block`` is empty and ``body`` is
    ``raw``; ``headers_complete`` tells the two cases apart.
    """

    status: int
    headers: Headers
    header_block: bytes
    body: bytes
    raw: bytes
    stderr: bytes = b""
    app_status: int = 0
    protocol_status: int = FCGI_REQUEST_COMPLETE
    headers_complete: bool = True
    status_line: str | None = field(default=None)

    def header(self, name: str, default: str | None = None) -> str | None:
        """Shortcut for ``self.headers.get(name, default)``."""
        return self.headers.get(name, default)

    @property
    def content_type(self) -> str | None:
        """The Content-Type header, if any."""
        return self.headers.get("Content-Type")


# --------------------------------------------------------------------------- encoding


def _record(rec_type: int, content: bytes = b"", request_id: int = REQUEST_ID) -> bytes:
    """One FastCGI record, padded to a multiple of 8 bytes as the spec recommends."""
    if len(content) > MAX_RECORD:
        raise ValueError("record content too long")
    padding = -len(content) % 8
    head = _HEADER.pack(FCGI_VERSION, rec_type, request_id, len(content), padding)
    return head + content + b"\0" * padding


def _stream(rec_type: int, data: bytes) -> bytes:
    """A whole stream (PARAMS/STDIN): data split into records, then the empty record."""
    chunks = [_record(rec_type, data[i : i + MAX_RECORD]) for i in range(0, len(data), MAX_RECORD)]
    return b"".join(chunks) + _record(rec_type)


def _length(n: int) -> bytes:
    """Name/value length: one byte below 128, else four bytes with the top bit set."""
    return bytes([n]) if n < 128 else struct.pack("!I", n | 0x80000000)


def _to_bytes(value: str | bytes) -> bytes:
    """Params are bytes on the wire; str is encoded the way servers pass raw URIs."""
    return value if isinstance(value, bytes) else value.encode("latin-1", "surrogateescape")


def encode_params(params: Mapping[str, str | bytes]) -> bytes:
    """Encode a CGI environment as FastCGI name-value pairs."""
    out = bytearray()
    for name, value in params.items():
        key, val = _to_bytes(name), _to_bytes(value)
        out += _length(len(key)) + _length(len(val)) + key + val
    return bytes(out)


def _begin_request(keep_conn: bool = False) -> bytes:
    """BEGIN_REQUEST for the RESPONDER role."""
    return _record(FCGI_BEGIN_REQUEST, struct.pack("!HB5x", FCGI_RESPONDER, int(keep_conn)))


# --------------------------------------------------------------------------- CGI params


def _split_host(host: str, default_port: int) -> tuple[str, int]:
    """``"name:port"`` → (name, port); a bare name gets ``default_port``."""
    if host.startswith("["):  # IPv6 literal
        name, _, rest = host.partition("]")
        return name + "]", int(rest[1:]) if rest.startswith(":") else default_port
    name, sep, port = host.partition(":")
    return name, int(port) if sep and port.isdigit() else default_port


def _http_name(header: str) -> str:
    """``If-Modified-Since`` → ``HTTP_IF_MODIFIED_SINCE`` (CGI meta-variable name)."""
    return "HTTP_" + header.upper().replace("-", "_")


def cgi_params(
    query: str = "",
    uri: str = DEFAULT_SCRIPT,
    method: str = "GET",
    host: str = "localhost",
    extra: Mapping[str, str] | None = None,
    *,
    headers: Mapping[str, str] | None = None,
    scheme: str = "http",
    remote_addr: str = "127.0.0.1",
) -> dict[str, str]:
    """The CGI environment a web server (lighttpd, Apache) sends for ``uri?query``.

    ``uri`` is the path as requested; it may carry its own query string, in which case
    ``query`` must be empty. ``host`` is the Host header (``name[:port]``); ``headers``
    become ``HTTP_*`` variables; ``extra`` overrides anything, so a test can also drop a
    variable by mapping it to an empty string and filtering later if needed.
    """
    parts = urlsplit(uri)
    path = parts.path or "/"
    if parts.query and query:
        raise ValueError("give the query either in uri or in query, not both")
    query = query or parts.query
    server_name, server_port = _split_host(host, 443 if scheme == "https" else 80)
    params = {
        "GATEWAY_INTERFACE": "CGI/1.1",
        "SERVER_SOFTWARE": "iipy-tests",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "SERVER_NAME": server_name,
        "SERVER_ADDR": "127.0.0.1",
        "SERVER_PORT": str(server_port),
        "REMOTE_ADDR": remote_addr,
        "REMOTE_PORT": "40000",
        "REQUEST_METHOD": method,
        "REQUEST_SCHEME": scheme,
        "REQUEST_URI": path + ("?" + query if query else ""),
        "SCRIPT_NAME": path,
        "SCRIPT_FILENAME": path,
        "PATH_INFO": "",
        "QUERY_STRING": query,
        "DOCUMENT_ROOT": "/var/www",
        "HTTP_HOST": host,
        "CONTENT_LENGTH": "",
        "CONTENT_TYPE": "",
    }
    if scheme == "https":
        params["HTTPS"] = "on"
    for name, value in (headers or {}).items():
        params[_http_name(name)] = value
    params.update(extra or {})
    return params


# --------------------------------------------------------------------------- transport


def _connect(address: Address, timeout: float) -> socket.socket:
    """Open a stream socket to a TCP ``(host, port)`` or a UNIX socket path."""
    if isinstance(address, tuple):
        return socket.create_connection(address, timeout=timeout)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        sock.connect(os.fspath(address))
    except OSError:
        sock.close()
        raise
    return sock


def _recv_exact(sock: socket.socket, n: int) -> bytes:
    """Read exactly ``n`` bytes; b"" if the peer closed before the first byte."""
    buf = bytearray()
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            if buf:
                raise FcgiError(f"connection closed inside a record ({len(buf)}/{n} bytes)")
            return b""
        buf += chunk
    return bytes(buf)


def _records(sock: socket.socket) -> Iterator[tuple[int, int, bytes]]:
    """Yield (type, request id, content) until the peer closes the connection."""
    while True:
        head = _recv_exact(sock, _HEADER.size)
        if not head:
            return
        version, rec_type, request_id, length, padding = _HEADER.unpack(head)
        if version != FCGI_VERSION:
            raise FcgiError(f"bad FastCGI version {version} (is this really FastCGI?)")
        body = _recv_exact(sock, length + padding) if length + padding else b""
        if len(body) != length + padding:
            raise FcgiError("connection closed inside a record")
        yield rec_type, request_id, body[:length]


def _exchange(sock: socket.socket, request: bytes) -> tuple[bytes, bytes, int, int]:
    """Send a request, collect stdout/stderr until END_REQUEST."""
    sock.sendall(request)
    stdout, stderr = bytearray(), bytearray()
    for rec_type, request_id, content in _records(sock):
        if request_id != REQUEST_ID:
            continue  # management records (id 0) or a confused peer: ignore
        if rec_type == FCGI_STDOUT:
            stdout += content
        elif rec_type == FCGI_STDERR:
            stderr += content
        elif rec_type == FCGI_END_REQUEST:
            app_status, protocol_status = struct.unpack("!IB3x", content[:8])
            return bytes(stdout), bytes(stderr), app_status, protocol_status
    raise FcgiError(
        "connection closed before END_REQUEST"
        f" (stdout so far: {bytes(stdout[:200])!r}, stderr: {bytes(stderr[:200])!r})"
    )


def fcgi_request(
    address: Address,
    params: Mapping[str, str | bytes],
    stdin: bytes = b"",
    timeout: float = 10,
) -> FcgiResponse:
    """Send one FastCGI RESPONDER request and return the parsed response.

    ``params`` is the CGI environment (see :func:`cgi_params`). Raises ``FcgiError``
    on protocol violations and ``OSError``/``TimeoutError`` on transport problems.
    """
    request = _begin_request() + _stream(FCGI_PARAMS, encode_params(params))
    request += _stream(FCGI_STDIN, stdin)
    with _connect(address, timeout) as sock:
        stdout, stderr, app_status, protocol_status = _exchange(sock, request)
    response = parse_cgi_output(stdout)
    response.stderr = stderr
    response.app_status = app_status
    response.protocol_status = protocol_status
    return response


class FcgiConnection:
    """One connection kept open (FCGI_KEEP_CONN) for several requests in turn."""

    def __init__(self, address: Address, timeout: float = 10) -> None:
        self.sock = _connect(address, timeout)

    def request(self, params: Mapping[str, str | bytes], stdin: bytes = b"") -> FcgiResponse:
        message = _begin_request(keep_conn=True) + _stream(FCGI_PARAMS, encode_params(params))
        stdout, stderr, app_status, protocol_status = _exchange(
            self.sock, message + _stream(FCGI_STDIN, stdin)
        )
        response = parse_cgi_output(stdout)
        response.stderr, response.app_status = stderr, app_status
        response.protocol_status = protocol_status
        return response

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> FcgiConnection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# --------------------------------------------------------------------------- CGI output


def _find_blank_line(raw: bytes) -> tuple[int, int] | None:
    """(end of header block, start of body) at the first empty line, CRLF or bare LF.

    CGI allows LF line ends, but iipsrv uses CRLF; the earliest terminator wins, so a
    body that happens to contain ``\\n\\n`` later does not confuse the split.
    """
    crlf = raw.find(b"\r\n\r\n")
    lf = raw.find(b"\n\n")
    if raw.startswith(b"\r\n"):
        return 0, 2
    if raw.startswith(b"\n"):
        return 0, 1
    candidates = []
    if crlf >= 0:
        candidates.append((crlf, crlf + 4))
    if lf >= 0:
        candidates.append((lf, lf + 2))
    return min(candidates) if candidates else None


def _parse_header_lines(block: bytes) -> Headers:
    """``Name: value`` lines → Headers; lines without a colon are kept with value ""."""
    headers = Headers()
    for line in block.replace(b"\r\n", b"\n").split(b"\n"):
        if not line:
            continue
        name, _, value = line.decode("latin-1").partition(":")
        headers.append((name.strip(), value.strip()))
    return headers


def _status_from(headers: Headers) -> tuple[int, str | None]:
    """HTTP status from ``Status: NNN reason`` (CGI); 200 when absent or unparsable.

    iipsrv 1.2+ sometimes sends an empty Status line; web servers treat that as 200.
    """
    line = headers.get("Status")
    if line is None:
        return 200, None
    code = line.split(" ", 1)[0]
    return (int(code), line) if code.isdigit() else (200, line)


def parse_cgi_output(raw: bytes) -> FcgiResponse:
    """Split CGI output into status, headers and body, exactly as written."""
    split = _find_blank_line(raw)
    if split is None:
        headers_complete, block, body = False, b"", raw
    else:
        headers_complete, block, body = True, raw[: split[0]], raw[split[1] :]
    headers = _parse_header_lines(block)
    status, status_line = _status_from(headers)
    return FcgiResponse(
        status=status,
        headers=headers,
        header_block=block,
        body=body,
        raw=raw,
        headers_complete=headers_complete,
        status_line=status_line,
    )
