"""/health and /metrics (issue 14, item 3): in-process for the checks and the settings, and
a real preforked ``iipy --bind`` for prometheus-client's multiprocess sums."""

from __future__ import annotations

import json
import os
import re
import signal
import time

import pytest
from servers import free_port, iipy_argv, iipy_environment, start_fcgi_command
from wsgi import call, make_app

import iipy
from iipy.decoders import openjpeg
from iipy.errors import ConfigError
from iipy.settings import Settings

LOCAL = {"REMOTE_ADDR": "127.0.0.1"}


def health(app, uri: str = "/health", query: str = "", **environ: str):
    result = call(app, query, uri=uri, environ={**LOCAL, **environ})
    return result, (json.loads(result.body) if result.header("Content-Type") ==
                    "application/json" else None)


@pytest.mark.parametrize(("uri", "query", "path_info"), [
    ("/health", "", ""),
    ("/fcgi-bin/iipsrv.fcgi/health", "", "/health"),
    ("/fcgi-bin/iipsrv.fcgi?HEALTH", "HEALTH", ""),
])
def test_health_ok_at_each_address(images, image_dir, uri, query, path_info):
    app = make_app(FILESYSTEM_PREFIX=f"{image_dir}/")
    result, body = health(app, uri, query, PATH_INFO=path_info,
                          SCRIPT_NAME="/fcgi-bin/iipsrv.fcgi")
    assert result.status == 200 and result.header("Cache-Control") == "no-cache"
    assert body["status"] == "ok" and body["version"] == iipy.__version__
    assert body["checks"] == {"images": "ok", "tiff": "ok", "jpeg2000": "ok"}
    assert body["server"] == f"iipy/{iipy.__version__}"


def test_health_503_names_the_failing_check_without_paths(tmp_path):
    missing = tmp_path / "images-gone"
    missing.mkdir()
    app = make_app(FILESYSTEM_PREFIX=f"{missing}/")
    missing.rmdir()  # e.g. the image disk unmounted after start-up
    result, body = health(app)
    assert result.status == 503 and body["status"] == "failing"
    assert body["checks"]["images"] == "the image directory (FILESYSTEM_PREFIX) does not exist"
    assert str(tmp_path) not in result.body.decode()


def test_health_503_when_memcached_is_configured_but_unreachable(image_dir):
    port = free_port()  # nothing listens there
    result, body = health(make_app(FILESYSTEM_PREFIX=f"{image_dir}/",
                                   MEMCACHED_SERVERS=f"127.0.0.1:{port}"))
    assert result.status == 503
    assert body["checks"][f"memcached 127.0.0.1:{port}"].startswith("memcached unreachable")


def test_health_503_when_jpeg2000_cannot_be_decoded(image_dir, monkeypatch):
    def broken():
        raise ModuleNotFoundError("No module named 'packaging'", name="packaging")

    openjpeg.reset()
    monkeypatch.setattr(openjpeg, "_import_glymur", broken)
    try:
        result, body = health(make_app(FILESYSTEM_PREFIX=f"{image_dir}/"))
    finally:
        openjpeg.reset()
    assert result.status == 503 and body["checks"]["tiff"] == "ok"
    assert "No module named 'packaging'" in body["checks"]["jpeg2000"]


def test_disabled_endpoints_are_ordinary_requests(image_dir):
    app = make_app(FILESYSTEM_PREFIX=f"{image_dir}/", IIPY_HEALTH="0", IIPY_METRICS="0")
    for uri, query in (("/health", ""), ("/metrics", ""), ("/?HEALTH", "HEALTH")):
        result = call(app, query, uri=uri, environ=LOCAL)
        assert result.header("Content-Type") not in ("application/json",)
        assert b"iipy_requests_total" not in result.body and b'"checks"' not in result.body


def test_address_limits(image_dir):
    app = make_app(FILESYSTEM_PREFIX=f"{image_dir}/", IIPY_HEALTH_ALLOW="10.0.0.0/8, ::1")
    assert health(app, REMOTE_ADDR="127.0.0.1")[0].status == 403
    assert health(app, REMOTE_ADDR="10.9.8.7")[0].status == 200
    assert health(app, REMOTE_ADDR="::ffff:10.9.8.7")[0].status == 200
    assert health(app, REMOTE_ADDR="")[0].status == 403  # a UNIX socket without an address
    # metrics: loopback only by default; anyone with "*"
    assert call(app, "", uri="/metrics", environ={"REMOTE_ADDR": "192.0.2.1"}).status == 403
    assert call(app, "", uri="/metrics", environ=LOCAL).status == 200
    anyone = make_app(IIPY_METRICS_ALLOW="*")
    assert call(anyone, "", uri="/metrics", environ={"REMOTE_ADDR": "192.0.2.1"}).status == 200


def test_bad_address_setting_stops_start_up():
    with pytest.raises(ConfigError, match="IIPY_METRICS_ALLOW: 'intranet'"):
        Settings.from_environ({"IIPY_METRICS_ALLOW": "127.0.0.1, intranet"})


def samples(text: str) -> dict[str, float]:
    found = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            found[name] = float(value)
    return found


def _until(predicate, what: str, tries: int = 400):
    for _ in range(tries):
        value = predicate()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError(f"gave up waiting for {what}")


def test_metrics_sum_over_preforked_workers(images, image_dir, tmp_path):
    env = iipy_environment({"FILESYSTEM_PREFIX": f"{image_dir}/", "VERBOSITY": "1"})
    server = start_fcgi_command(iipy_argv(), env, workdir=tmp_path,
                                extra_args=["--processes", "2"], name="iipy")
    try:
        # health answers carry the worker's pid: ask until both workers have answered
        pids: list[int] = []

        def both() -> bool:
            reply = server.request("", uri="/health")
            pids.append(json.loads(reply.body)["pid"])
            return len(set(pids)) == 2

        _until(both, "both workers to answer")
        for query in ("FIF=rgb.tif&JTL=2,0", "FIF=deflate.tif&JTL=2,1", "FIF=nope.tif&JTL=0,0"):
            server.request(query)
        scrape = server.request("", uri="/metrics")
        assert scrape.status == 200
        assert scrape.header("Content-Type").startswith("text/plain; version=0.0.4")
        got = samples(scrape.body.decode())
        # counted by whichever worker served them, reported by whichever answers the scrape
        assert got['iipy_requests_total{kind="other",protocol="health",status="200"}'] == len(pids)
        assert got['iipy_requests_total{kind="tile",protocol="iip",status="200"}'] == 2
        assert got['iipy_requests_total{kind="tile",protocol="iip",status="404"}'] == 1
        assert got['iipy_tiles_total{source="passthrough"}'] == 1
        assert got['iipy_tiles_total{source="decoded"}'] == 1
        assert got['iipy_request_duration_seconds_count{kind="tile",protocol="iip"}'] == 3
        assert got['iipy_response_bytes_total{kind="tile",protocol="iip"}'] > 1000
        assert got["iipy_worker_restarts_total"] == 0
        assert got["iipy_open_images"] >= 1
        (tmp_path / "metrics-scrape.txt").write_bytes(scrape.body)

        os.kill(pids[0], signal.SIGKILL)  # a worker dies: replaced, and counted

        def restarted() -> float:
            text = server.request("", uri="/metrics").body.decode()
            return samples(text).get("iipy_worker_restarts_total", 0) == 1

        _until(restarted, "the restart to be counted")
        assert server.running
    finally:
        server.stop()


def test_metrics_directory_is_removed_with_the_pool(images, image_dir, tmp_path):
    env = iipy_environment({"FILESYSTEM_PREFIX": f"{image_dir}/", "TMPDIR": str(tmp_path)})
    server = start_fcgi_command(iipy_argv(), env, workdir=tmp_path / "work",
                                extra_args=["--processes", "2"], name="iipy")
    try:
        assert server.request("", uri="/metrics").status == 200
        made = [p for p in tmp_path.iterdir() if re.match(r"iipy-metrics-", p.name)]
        assert len(made) == 1 and any(made[0].glob("*.db"))
    finally:
        server.stop()
    assert not made[0].exists()


@pytest.mark.parametrize("shared_dir", [False, True])
def test_web_server_spawned_processes_serve_metrics_only_with_a_shared_dir(
    images, image_dir, tmp_path, shared_dir
):
    """Started on fd 0 by a web server (here: a held socket), one process per spawn: without
    IIPY_METRICS_DIR a scrape would see one random process, so /metrics is off."""
    import socket
    import subprocess
    import sys

    from fcgi_client import cgi_params, fcgi_request

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    env = {"FILESYSTEM_PREFIX": f"{image_dir}/", "LOGFILE": str(tmp_path / "iipy.log")}
    if shared_dir:
        env["IIPY_METRICS_DIR"] = str(tmp_path / "metrics")
        (tmp_path / "metrics").mkdir()
    process = subprocess.Popen([sys.executable, "-m", "iipy"], stdin=listener,
                               env={**os.environ, **iipy_environment(env)},
                               start_new_session=True)
    try:
        address = listener.getsockname()
        reply = fcgi_request(address, cgi_params("", uri="/metrics"), timeout=30)
        assert (b"iipy_worker_restarts_total" in reply.body) is shared_dir
        assert fcgi_request(address, cgi_params("", uri="/health"), timeout=30).status == 200
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=15)
        listener.close()
