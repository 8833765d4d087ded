"""Slow, silent, confused and killed: what a worker survives (issue 11, items 8-9 and faults).

Every server here is a real ``iipy`` process (``--bind``, ``--http``, or spawned by
lighttpd), driven over real sockets.  Waits are bounded by client timeouts well above
what a healthy server needs, so a hang fails the test instead of stalling the run.
"""

from __future__ import annotations

import os
import signal
import socket
import struct
import subprocess
import sys
import time
from pathlib import Path

import pytest
from faultload import kill_under_load
from fcgi_client import FCGI_BEGIN_REQUEST, FCGI_RESPONDER, _record, cgi_params, fcgi_request
from servers import (
    Server,
    Spawn,
    free_port,
    have_lighttpd,
    http_get,
    iipy_argv,
    iipy_environment,
    start_fcgi_command,
    start_lighttpd,
    wait_for_port,
)

OBJ = "OBJ=IIP,1.0&OBJ=Max-size"
EXPORT = "FIF=rgb.tif&WID=300&CVT=jpeg"
HANG = 20.0  # a client gives up after this long: a server that needs it has hung
BEGIN_ONLY = _record(FCGI_BEGIN_REQUEST, struct.pack("!HB5x", FCGI_RESPONDER, 0))


@pytest.fixture()
def env(images, image_dir, tmp_path) -> dict[str, str]:
    return {"FILESYSTEM_PREFIX": f"{image_dir}/", "LOGFILE": str(tmp_path / "iipy.log")}


def start(env: dict[str, str], tmp_path: Path, processes: int, **settings: str) -> Server:
    return start_fcgi_command(iipy_argv(), iipy_environment({**env, **settings}),
                              workdir=tmp_path, extra_args=["--processes", str(processes)],
                              name="iipy")


def connect(server: Server, first: bytes = b"") -> socket.socket:
    sock = socket.create_connection(server.address, timeout=HANG)  # type: ignore[arg-type]
    if first:
        sock.sendall(first)
    return sock


def closed_by_server(sock: socket.socket) -> bool:
    """The server closed (or reset) the connection; False if it kept it open."""
    try:
        return sock.recv(100) == b""
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False


# --------------------------------------------------------------------------- item 8


def test_half_sent_requests_do_not_stall_the_other_clients(env, tmp_path):
    """Four connections that began a request and went quiet, against two workers: a
    complete request is still answered (main: both workers sat in recv)."""
    with start(env, tmp_path, 2, IIPY_READ_TIMEOUT="120") as server:
        quiet = [connect(server, BEGIN_ONLY) for _ in range(4)]
        time.sleep(0.3)  # let the workers take them
        response = server.request(f"FIF=rgb.tif&{OBJ}", timeout=HANG)
        assert response.status == 200 and response.body.startswith(b"IIP:1.0")
        for sock in quiet:
            sock.close()


def test_a_connection_that_goes_quiet_is_closed_after_the_read_timeout(env, tmp_path):
    with start(env, tmp_path, 1, IIPY_READ_TIMEOUT="0.5") as server:
        sock = connect(server, BEGIN_ONLY)
        assert closed_by_server(sock)
        sock.close()
        assert server.request(f"FIF=rgb.tif&{OBJ}").status == 200
    assert "no complete request within 0.5s" in Path(env["LOGFILE"]).read_text()


def test_http_sent_to_the_fastcgi_port_is_refused_at_once(env, tmp_path):
    """Not FastCGI: closed on the first byte, not read as a 12 KB record header."""
    with start(env, tmp_path, 1, IIPY_READ_TIMEOUT="120") as server:
        sock = connect(server, b"GET /fcgi-bin/iipsrv.fcgi HTTP/1.1\r\nHost: x\r\n\r\n")
        assert closed_by_server(sock)
        sock.close()
        assert server.request(f"FIF=rgb.tif&{OBJ}").status == 200
    assert "not FastCGI" in Path(env["LOGFILE"]).read_text()


def test_sigterm_ends_a_worker_waiting_for_its_peer(env, tmp_path):
    """A worker holding a half-sent request exits 0 on SIGTERM (main: ignored it
    until the peer spoke or left)."""
    server = start(env, tmp_path, 1, IIPY_READ_TIMEOUT="120")
    try:
        sock = connect(server, BEGIN_ONLY)
        time.sleep(0.3)
        server.process.send_signal(signal.SIGTERM)
        assert server.process.wait(timeout=HANG) == 0
        sock.close()
    finally:
        server.stop()


def test_keep_alive_connection_serves_requests_in_turn_with_others(env, tmp_path):
    """FCGI_KEEP_CONN through the worker loop: one connection, several requests, while a
    second connection is served in between."""
    from fcgi_client import FcgiConnection

    with start(env, tmp_path, 1) as server:
        with FcgiConnection(server.address, timeout=HANG) as kept:
            for _ in range(3):
                assert kept.request(cgi_params(f"FIF=rgb.tif&{OBJ}")).status == 200
                other = fcgi_request(server.address, cgi_params("FIF=rgb.tif&JTL=0,0"))
                assert other.status == 200


# --------------------------------------------------------------------------- item 9


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def test_idle_http_worker_sleeps_in_the_kernel(env, tmp_path):
    """`--http` with nothing to do uses no CPU (main: ~100 % of a core, polling with a
    zero timeout).  The bound is far from both: a spinning worker burns ~2 s here."""
    port = free_port()
    process = subprocess.Popen(
        [*iipy_argv(), "--http", f"127.0.0.1:{port}", "--processes", "1"],
        env={**os.environ, **iipy_environment(env)}, start_new_session=True,
    )
    try:
        wait_for_port("127.0.0.1", port, timeout=HANG)
        assert http_get(f"http://127.0.0.1:{port}/?FIF=rgb.tif&{OBJ}").status == 200
        before = _cpu_seconds(process.pid)
        time.sleep(2)
        used = _cpu_seconds(process.pid) - before
        print(f"\nidle --http worker: {used:.2f} s CPU in 2 s")
        assert used < 0.2
        idle = socket.create_connection(("127.0.0.1", port))  # a silent HTTP client
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=HANG) == 0
        idle.close()
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


# --------------------------------------------------------------------------- faults


def _report(label: str, outcome) -> None:
    print(f"\n{label}: {outcome.requests} requests, {outcome.failed} failed "
          f"({outcome.in_flight} in flight at the kill), longest gap {outcome.gap * 1000:.0f} ms,"
          f" {outcome.after} answered after; errors {outcome.errors}")


def test_sigkill_of_a_bound_worker_loses_at_most_the_requests_in_flight(env, tmp_path):
    with start(env, tmp_path, 2) as server:
        workers = sorted(server.children())
        assert len(workers) == 2

        def request() -> bool:
            return fcgi_request(server.address, cgi_params(EXPORT), timeout=HANG).status == 200

        outcome = kill_under_load(request, lambda: workers[0])
        _report("--bind --processes 2", outcome)
        assert outcome.failed <= outcome.in_flight
        assert outcome.after > 0 and outcome.gap < 1.0
        time.sleep(1.5)  # the pool waits a second before replacing a fresh worker
        assert len(server.children() - {workers[0]}) == 2, "the killed worker is replaced"


@pytest.mark.skipif(not have_lighttpd(), reason="lighttpd not installed (scripts/install.sh test)")
def test_sigkill_of_a_lighttpd_spawned_worker_loses_at_most_the_requests_in_flight(
    env, tmp_path
):
    with start_lighttpd(Spawn(iipy_argv(), iipy_environment(env), processes=2),
                        tmp_path / "web") as web:
        assert web.get(f"FIF=rgb.tif&{OBJ}").status == 200
        workers = sorted(pid for pid in web.children() if _is_iipy(pid))
        assert len(workers) == 2

        def request() -> bool:
            return http_get(web.url(EXPORT), timeout=HANG).status == 200

        outcome = kill_under_load(request, lambda: workers[0])
        _report("lighttpd bin-path, 2 processes", outcome)
        assert outcome.failed <= outcome.in_flight
        assert outcome.after > 0 and outcome.gap < 1.0
        assert web.get(f"FIF=rgb.tif&{OBJ}").status == 200


def _is_iipy(pid: int) -> bool:
    try:
        return b"iipy" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False



LOOP_WITH_SLOW_APP = """
import socket, sys, time
from iipy.serve.fcgiloop import Loop

def app(environ, start_response):
    if environ["QUERY_STRING"] == "slow":
        time.sleep(1.5)
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [environ["QUERY_STRING"].encode()]

listener = socket.create_server(("127.0.0.1", 0))
print(listener.getsockname()[1], flush=True)
Loop(app, listener, lambda: True, read_timeout=0.5).run()
"""


def test_a_request_completed_while_the_worker_was_busy_is_served(tmp_path):
    """B begins a request, A's slow request starts, B finishes its request meanwhile:
    B's deadline passes during A, but B's request was complete in time and is answered."""
    from fcgi_client import FCGI_PARAMS, FCGI_STDIN, _stream, encode_params

    process = subprocess.Popen([sys.executable, "-c", LOOP_WITH_SLOW_APP],
                               stdout=subprocess.PIPE, env=iipy_environment(dict(os.environ)))
    try:
        port = int(process.stdout.readline())  # type: ignore[union-attr]
        b = socket.create_connection(("127.0.0.1", port), timeout=HANG)
        b.sendall(BEGIN_ONLY)
        time.sleep(0.2)  # the loop accepts B and waits for the rest
        a = socket.create_connection(("127.0.0.1", port), timeout=HANG)
        a.sendall(BEGIN_ONLY + _stream(FCGI_PARAMS, encode_params({"QUERY_STRING": "slow"}))
                  + _stream(FCGI_STDIN, b""))
        time.sleep(0.3)  # the loop is inside A's request now
        b.sendall(_stream(FCGI_PARAMS, encode_params({"QUERY_STRING": "b"}))
                  + _stream(FCGI_STDIN, b""))
        for sock, body in ((a, b"slow"), (b, b"b")):
            data = b""
            while chunk := sock.recv(65536):
                data += chunk
            assert b"\r\n\r\n" + body in data
            sock.close()
    finally:
        process.kill()
        process.wait()


LOOP_WITH_LIMITS = """
import socket, sys
from iipy.serve import fcgiloop

fcgiloop.SEND_TIMEOUT = 1.0
fcgiloop.MAX_CONNECTIONS = 2

def app(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    query = environ["QUERY_STRING"]
    return [b"x" * (64 << 20) if query == "big" else query.encode()]

listener = socket.create_server(("127.0.0.1", 0))
print(listener.getsockname()[1], flush=True)
fcgiloop.Loop(app, listener, lambda: True, read_timeout=1.0).run()
"""


def _limited_loop():
    process = subprocess.Popen([sys.executable, "-c", LOOP_WITH_LIMITS],
                               stdout=subprocess.PIPE, env=iipy_environment(dict(os.environ)))
    port = int(process.stdout.readline())  # type: ignore[union-attr]
    return process, port


def _ask(port: int, query: str) -> tuple[bytes, float]:
    """A whole FastCGI request for ``query`` on a new connection: (answer, seconds)."""
    from fcgi_client import FCGI_PARAMS, FCGI_STDIN, _stream, encode_params

    began = time.monotonic()
    sock = socket.create_connection(("127.0.0.1", port), timeout=HANG)
    sock.sendall(BEGIN_ONLY + _stream(FCGI_PARAMS, encode_params({"QUERY_STRING": query}))
                 + _stream(FCGI_STDIN, b""))
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    sock.close()
    return data, time.monotonic() - began


def test_a_peer_that_stops_reading_is_abandoned_after_the_send_timeout(tmp_path):
    """A response the peer does not read is given up after SEND_TIMEOUT (1 s here, 30 s
    shipped): the worker goes on serving others instead of waiting for ever."""
    process, port = _limited_loop()
    try:
        stuck = socket.socket()
        stuck.settimeout(HANG)
        stuck.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        stuck.connect(("127.0.0.1", port))
        from fcgi_client import FCGI_PARAMS, FCGI_STDIN, _stream, encode_params

        stuck.sendall(BEGIN_ONLY + _stream(FCGI_PARAMS, encode_params({"QUERY_STRING": "big"}))
                      + _stream(FCGI_STDIN, b""))
        time.sleep(0.3)  # the worker is now writing 64 MB nobody reads
        answer, seconds = _ask(port, "next")
        assert b"\r\n\r\nnext" in answer
        assert 0.5 < seconds < 6, seconds  # served once the stuck response was abandoned
        stuck.settimeout(HANG)
        received = 0
        while chunk := stuck.recv(1 << 20):  # what the kernel had buffered, then the close
            received += len(chunk)
        assert received < 64 << 20  # the response was cut, not finished
        stuck.close()
    finally:
        process.kill()
        process.wait()


def test_a_worker_holds_at_most_max_connections(tmp_path):
    """With MAX_CONNECTIONS (2 here, 256 shipped) connections open, a worker stops
    accepting: the next client waits in the listen queue (for a sibling, or here until a
    held connection's read timeout frees a place) instead of growing the worker's set."""
    process, port = _limited_loop()
    try:
        held = [socket.create_connection(("127.0.0.1", port), timeout=HANG) for _ in range(2)]
        for sock in held:
            sock.sendall(BEGIN_ONLY)  # a request begun and never finished
        time.sleep(0.2)
        answer, seconds = _ask(port, "third")
        assert b"\r\n\r\nthird" in answer
        assert 0.6 < seconds < 6, seconds  # accepted only when the held ones timed out
        for sock in held:
            assert closed_by_server(sock)
            sock.close()
    finally:
        process.kill()
        process.wait()
