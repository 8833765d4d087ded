"""iipy as a real process: start-up, signals, logging, web servers in front.

Every server listens on 127.0.0.1 on a port chosen at run time and is stopped
by the fixtures.
"""

from __future__ import annotations

import io
import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import pytest
from PIL import Image
from servers import (
    Spawn,
    free_port,
    http_get,
    iipy_argv,
    iipy_environment,
    start_apache,
    start_fcgi_command,
    start_lighttpd,
    wait_for_port,
)

OBJ = "obj=IIP,1.0&obj=Max-size&obj=Tile-size&obj=Resolution-number&obj=Resolutions"
OBJ_BODY = (b"IIP:1.0\r\nMax-size:1000 700\r\nTile-size:256 256\r\nResolution-number:3\r\n"
            b"Resolutions:250 175,500 350,1000 700\r\n")


def size(body: bytes) -> tuple[int, int]:
    image = Image.open(io.BytesIO(body))
    image.load()
    return image.size


def run_iipy(args, env, timeout=20, stdin=None):
    return subprocess.run(iipy_argv() + args, env={**os.environ, **iipy_environment(env)},
                          capture_output=True, timeout=timeout, stdin=stdin)


def test_without_a_socket_on_fd0_iipy_explains_and_exits_1(tmp_path):
    result = run_iipy([], {"LOGFILE": str(tmp_path / "log")}, stdin=subprocess.DEVNULL)
    assert result.returncode == 1
    assert b"--bind" in result.stderr


@pytest.mark.parametrize(("name", "value"), [("JPEG_QUALITY", "high"), ("URI_MAP", "nonsense")])
def test_bad_setting_stops_start_up_naming_the_variable(tmp_path, name, value):
    result = run_iipy(["--bind", f"127.0.0.1:{free_port()}"],
                      {name: value, "LOGFILE": str(tmp_path / "log")})
    assert result.returncode == 2
    assert name.encode() in result.stderr


@pytest.fixture()
def prefix_env(images, image_dir, tmp_path):
    return {"FILESYSTEM_PREFIX": f"{image_dir}/", "LOGFILE": str(tmp_path / "iipy.log")}


def test_sigterm_exits_0_and_stops_every_worker(prefix_env, tmp_path):
    server = start_fcgi_command(iipy_argv(), iipy_environment(prefix_env), workdir=tmp_path,
                                extra_args=["--processes", "2"], name="iipy")
    try:
        assert server.request(f"FIF=rgb.tif&{OBJ}").body == OBJ_BODY
        workers = server.children()
        assert len(workers) >= 2
        server.process.send_signal(signal.SIGTERM)
        assert server.process.wait(timeout=10) == 0
        time.sleep(0.2)
        for pid in workers:
            try:
                state = Path(f"/proc/{pid}/stat").read_text().split()[2]
            except FileNotFoundError:
                continue
            assert state == "Z", f"worker {pid} still running"
    finally:
        server.stop()


def test_sighup_clears_caches_and_keeps_serving(prefix_env, tmp_path):
    server = start_fcgi_command(iipy_argv(), iipy_environment(prefix_env), workdir=tmp_path,
                                extra_args=["--processes", "1"], name="iipy")
    try:
        assert server.request("FIF=rgb.tif&JTL=2,3").status == 200
        server.process.send_signal(signal.SIGHUP)
        time.sleep(0.5)
        assert server.request("FIF=rgb.tif&JTL=2,3").status == 200
        assert server.process.poll() is None
        assert "caches cleared" in Path(prefix_env["LOGFILE"]).read_text()
    finally:
        server.stop()


def test_verbosity_controls_the_log(prefix_env, tmp_path):
    for verbosity, expect_requests in (("0", False), ("1", False), ("2", True)):
        log = tmp_path / f"v{verbosity}.log"
        env = {**prefix_env, "VERBOSITY": verbosity, "LOGFILE": str(log)}
        server = start_fcgi_command(iipy_argv(), iipy_environment(env), workdir=tmp_path,
                                    extra_args=["--processes", "1"], name="iipy")
        try:
            server.request("FIF=rgb.tif&JTL=2,0")
        finally:
            server.stop()
        text = log.read_text() if log.exists() else ""
        if verbosity == "0":
            assert text == ""
        else:
            assert "starting" in text
        assert ("JTL=2,0" in text) is expect_requests


def test_a_corrupt_file_does_not_kill_the_worker(prefix_env, tmp_path):
    server = start_fcgi_command(iipy_argv(), iipy_environment(prefix_env), workdir=tmp_path,
                                extra_args=["--processes", "1"], name="iipy")
    try:
        for name in ("corrupt", "truncated_raw", "text"):
            response = server.request(f"FIF={name}.tif&JTL=0,0")
            assert 400 <= response.status < 500
            assert b"Traceback" not in response.body
        assert server.request("FIF=truncated.tif&JTL=2,8").status == 404
        assert server.request(f"FIF=rgb.tif&{OBJ}").body == OBJ_BODY
        assert server.process.poll() is None
    finally:
        server.stop()


def test_http_mode_serves_iip_at_both_paths(prefix_env):
    port = free_port()
    process = subprocess.Popen(
        iipy_argv() + ["--http", f"127.0.0.1:{port}", "--processes", "1"],
        env={**os.environ, **iipy_environment(prefix_env)},
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )
    try:
        wait_for_port("127.0.0.1", port, timeout=20)
        for path in ("/", "/fcgi-bin/iipsrv.fcgi"):
            response = http_get(f"http://127.0.0.1:{port}{path}?FIF=rgb.tif&{OBJ}")
            assert response.status == 200 and response.body == OBJ_BODY
        tile = http_get(f"http://127.0.0.1:{port}/?FIF=rgb.tif&JTL=2,11")
        assert size(tile.body) == (232, 188)
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        assert process.wait(timeout=10) == 0


def test_lighttpd_spawned_iipy_serves_a_viewer_session(prefix_env, tmp_path):
    """IIPMooViewer's requests, cross-origin, through lighttpd spawning iipy on fd 0."""
    env = iipy_environment({**prefix_env, "CORS": "*"})
    with start_lighttpd(Spawn(iipy_argv(), env, processes=2), tmp_path / "web") as web:
        origin = {"Origin": "http://viewer.example"}
        meta = web.get(f"FIF=rgb.tif&{OBJ}&obj=dpi", headers={**origin,
                                                             "X-Requested-With": "XMLHttpRequest"})
        assert meta.status == 200 and meta.body.startswith(OBJ_BODY)
        assert meta.header("Access-Control-Allow-Origin") == "*"
        thumb = web.get("FIF=rgb.tif&WID=240&QLT=98&CVT=jpeg")
        assert size(thumb.body) == (240, 168)
        tile = web.get("FIF=rgb.tif&JTL=2,5?1700000000000", headers=origin)
        assert tile.status == 200 and size(tile.body) == (256, 256)
        assert tile.header("Access-Control-Allow-Origin") == "*"
        again = web.get("FIF=rgb.tif&JTL=2,5?1700000000000",
                        headers={"If-None-Match": tile.header("ETag")})
        assert again.status == 304
        import http.client

        conn = http.client.HTTPConnection("127.0.0.1", int(web.base_url.rsplit(":", 1)[1]))
        conn.request("OPTIONS", web.url(f"FIF=rgb.tif&{OBJ}").split(web.base_url, 1)[1],
                     headers={**origin, "Access-Control-Request-Method": "GET",
                              "Access-Control-Request-Headers": "x-requested-with"})
        preflight = conn.getresponse()
        assert preflight.status in (200, 204)
        assert preflight.getheader("Access-Control-Allow-Origin") == "*"
        assert "X-Requested-With" in preflight.getheader("Access-Control-Allow-Headers")
        conn.close()


def test_apache_mod_fcgid_spawns_iipy(images):
    """Apache + mod_fcgid with Debian's FcgidInitialEnv style configuration.

    Apache started as root runs its FastCGI children as www-data, so the
    interpreter (scripts/install.sh builds .venv from /usr/bin/python3), the
    work directory and the images must be usable by that user.
    """
    public = Path(tempfile.mkdtemp(prefix="iipy-apache-"))
    os.chmod(public, 0o755)
    try:
        shutil.copy(images.rgb, public / "rgb.tif")
        os.chmod(public / "rgb.tif", 0o644)
        env = iipy_environment({"FILESYSTEM_PREFIX": f"{public}/", "CORS": "*"})
        with start_apache(Spawn(iipy_argv(), env, processes=1), public / "apache",
                          readable_paths=[public]) as web:
            meta = web.get(f"FIF=rgb.tif&{OBJ}")
            assert meta.status == 200 and meta.body == OBJ_BODY
            tile = web.get("FIF=rgb.tif&JTL=2,11")
            assert tile.status == 200 and size(tile.body) == (232, 188)
            assert web.get("FIF=nothing.tif&JTL=0,0").status == 404
            assert web.get("FIF=rgb.tif&FOO=1").body == b"Error/7:2 2 FOO\r\n"
    finally:
        shutil.rmtree(public, ignore_errors=True)


