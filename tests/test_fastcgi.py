"""The FastCGI connection loop, driven record by record over a socket pair."""

from __future__ import annotations

import socket
import struct
import threading

import pytest
from flup.server.fcgi_base import (
    FCGI_ABORT_REQUEST,
    FCGI_BEGIN_REQUEST,
    FCGI_CANT_MPX_CONN,
    FCGI_END_REQUEST,
    FCGI_GET_VALUES,
    FCGI_GET_VALUES_RESULT,
    FCGI_KEEP_CONN,
    FCGI_PARAMS,
    FCGI_REQUEST_COMPLETE,
    FCGI_RESPONDER,
    FCGI_STDIN,
    FCGI_STDOUT,
    FCGI_UNKNOWN_ROLE,
    decode_pair,
    encode_pair,
)

from iipy.serve.fastcgi import BASE_ENVIRON, Connection, record


def app(environ, start_response):
    body = (environ["REQUEST_METHOD"] + " " + environ["QUERY_STRING"] + " "
            + environ["wsgi.input"].read().decode()).encode()
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [body]


def begin(request_id: int, flags: int = 0, role: int = FCGI_RESPONDER) -> bytes:
    return record(FCGI_BEGIN_REQUEST, request_id, struct.pack("!HB5x", role, flags))


def params(request_id: int, values: dict[str, str]) -> bytes:
    data = b"".join(encode_pair(k.encode(), v.encode()) for k, v in values.items())
    return record(FCGI_PARAMS, request_id, data) + record(FCGI_PARAMS, request_id)


def request(request_id: int, query: str, flags: int = 0, body: bytes = b"") -> bytes:
    method = "POST" if body else "GET"
    out = begin(request_id, flags) + params(request_id, {"QUERY_STRING": query,
                                                         "REQUEST_METHOD": method})
    if body:
        out += record(FCGI_STDIN, request_id, body)
    return out + record(FCGI_STDIN, request_id)


def read_records(sock: socket.socket) -> list[tuple[int, int, bytes]]:
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    out, pos = [], 0
    while pos < len(data):
        _, kind, rid, length, padding = struct.unpack("!BBHHBx", data[pos:pos + 8])
        out.append((kind, rid, data[pos + 8:pos + 8 + length]))
        pos += 8 + length + padding
    return out


@pytest.fixture()
def connection():
    server, client = socket.socketpair()
    thread = threading.Thread(target=Connection(server, app, BASE_ENVIRON).run, daemon=True)
    thread.start()
    yield client
    client.close()
    thread.join(timeout=5)
    assert not thread.is_alive()


def stdout_of(records, request_id):
    return b"".join(c for k, r, c in records if k == FCGI_STDOUT and r == request_id)


def test_one_request_then_close(connection):
    connection.sendall(request(1, "FIF=x"))
    records = read_records(connection)  # the server closes after the request
    assert stdout_of(records, 1).endswith(b"\r\n\r\nGET FIF=x ")
    assert stdout_of(records, 1).startswith(b"Status: 200 OK\r\nContent-Type: text/plain")
    assert records[-1][0] == FCGI_END_REQUEST
    assert struct.unpack("!LB3x", records[-1][2]) == (0, FCGI_REQUEST_COMPLETE)


def test_keep_conn_serves_several_requests_on_one_connection(connection):
    connection.sendall(request(1, "a=1", FCGI_KEEP_CONN) + request(2, "b=2"))
    records = read_records(connection)
    assert stdout_of(records, 1).endswith(b"GET a=1 ")
    assert stdout_of(records, 2).endswith(b"GET b=2 ")
    assert [r for k, r, _ in records if k == FCGI_END_REQUEST] == [1, 2]


def test_records_split_across_segments_and_post_body(connection):
    data = request(7, "", body=b"FIF=y&OBJ=Max-size")
    for i in range(0, len(data), 5):
        connection.sendall(data[i:i + 5])
    records = read_records(connection)
    assert stdout_of(records, 7).endswith(b"POST  FIF=y&OBJ=Max-size")


def test_large_output_is_split_into_records(connection):
    def big(environ, start_response):
        start_response("200 OK", [])
        return [b"x" * 200_000]

    server, client = socket.socketpair()
    thread = threading.Thread(target=Connection(server, big, BASE_ENVIRON).run, daemon=True)
    thread.start()
    client.sendall(request(1, "q"))
    records = read_records(client)
    thread.join(timeout=5)
    chunks = [c for k, r, c in records if k == FCGI_STDOUT]
    assert all(len(c) <= 65535 for c in chunks) and chunks[-1] == b""
    assert b"".join(chunks).endswith(b"x" * 200_000)


def test_get_values_and_multiplexing_refused(connection):
    query = encode_pair(b"FCGI_MPXS_CONNS", b"") + encode_pair(b"FCGI_MAX_REQS", b"")
    connection.sendall(record(FCGI_GET_VALUES, 0, query) + begin(1) + begin(2)
                       + params(1, {"QUERY_STRING": "q"}) + record(FCGI_STDIN, 1))
    records = read_records(connection)
    kind, rid, content = records[0]
    assert kind == FCGI_GET_VALUES_RESULT
    pos, values = 0, {}
    while pos < len(content):
        pos, (name, value) = decode_pair(content, pos)
        values[name] = value
    assert values == {b"FCGI_MPXS_CONNS": b"0", b"FCGI_MAX_REQS": b"1"}
    refused = [c for k, r, c in records if k == FCGI_END_REQUEST and r == 2]
    assert struct.unpack("!LB3x", refused[0])[1] == FCGI_CANT_MPX_CONN
    assert stdout_of(records, 1).endswith(b"GET q ")


def test_abort_and_unknown_role(connection):
    connection.sendall(begin(1, FCGI_KEEP_CONN) + record(FCGI_ABORT_REQUEST, 1)
                       + begin(2, role=2))
    records = read_records(connection)
    ends = {r: struct.unpack("!LB3x", c)[1] for k, r, c in records if k == FCGI_END_REQUEST}
    assert ends == {1: FCGI_REQUEST_COMPLETE, 2: FCGI_UNKNOWN_ROLE}
    assert not stdout_of(records, 1)


def test_application_exception_becomes_a_500(connection):
    def broken(environ, start_response):
        raise RuntimeError("boom")

    server, client = socket.socketpair()
    thread = threading.Thread(target=Connection(server, broken, BASE_ENVIRON).run, daemon=True)
    thread.start()
    client.sendall(request(1, "q"))
    out = stdout_of(read_records(client), 1)
    thread.join(timeout=5)
    assert out.startswith(b"Status: 500") and b"boom" not in out


def test_params_with_long_names_and_values_and_truncated_params():
    from iipy.serve.fastcgi import decode_params

    pairs = {"A": "", "B" * 200: "v", "QUERY_STRING": "x" * 70000, "é": "ü"}
    data = b"".join(encode_pair(k.encode("latin-1"), v.encode("latin-1"))
                    for k, v in pairs.items())
    into: dict = {}
    assert decode_params(data, into) and into == pairs
    for cut in (1, 2, 5, 9, len(data) - 1):
        partial: dict = {}
        assert not decode_params(data[:cut], partial)
        assert all(pairs[k] == v for k, v in partial.items())  # never a wrong value


def test_bytes_that_are_not_fastcgi_end_the_connection(connection):
    connection.sendall(b"GET / HTTP/1.1\r\n\r\n")
    assert read_records(connection) == []  # closed without an answer
