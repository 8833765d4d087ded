"""nginx in front of ``iipy --bind`` with kept-alive FastCGI connections.

nginx (``fastcgi_keep_conn on`` + an upstream ``keepalive`` pool) keeps its
connections to the backend open between requests.  A worker that waited on one
connection at a time sat on such an idle connection and answered nobody else;
iipy's worker loop serves whichever connection has a request.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from fcgi_client import cgi_params, fcgi_request
from servers import (
    Server,
    free_port,
    http_get,
    iipy_argv,
    iipy_environment,
    start_fcgi_command,
    wait_for_port,
)

OBJ = "OBJ=IIP,1.0&OBJ=Max-size"
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
pytestmark = pytest.mark.skipif(
    not os.access(NGINX, os.X_OK), reason="nginx not installed (scripts/install.sh test)"
)

CONF = """
daemon off;
worker_processes 1;
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
{user}
events {{ worker_connections 64; }}
http {{
    access_log off;
    client_body_temp_path {dir}/body;
    fastcgi_temp_path {dir}/fastcgi;
    proxy_temp_path {dir}/proxy;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    upstream iipy {{
        server 127.0.0.1:{backend};
        keepalive 8;
    }}
    server {{
        listen 127.0.0.1:{port};
        location /fcgi-bin/iipsrv.fcgi {{
            include /etc/nginx/fastcgi_params;
            fastcgi_keep_conn on;
            fastcgi_pass iipy;
        }}
    }}
}}
"""


@pytest.fixture()
def backend(images, image_dir, tmp_path) -> Iterator[Server]:
    env = {"FILESYSTEM_PREFIX": f"{image_dir}/", "LOGFILE": str(tmp_path / "iipy.log"),
           "IIPY_READ_TIMEOUT": "120"}
    with start_fcgi_command(iipy_argv(), iipy_environment(env), workdir=tmp_path / "iipy",
                            extra_args=["--processes", "1"], name="iipy") as server:
        yield server


@pytest.fixture()
def nginx(backend, tmp_path) -> Iterator[str]:
    directory = tmp_path / "nginx"
    directory.mkdir()
    port = free_port()
    conf = directory / "nginx.conf"
    conf.write_text(CONF.format(dir=directory, backend=backend.address[1], port=port,
                                user="user root;" if os.getuid() == 0 else ""))
    log = (directory / "out.log").open("wb")
    process = subprocess.Popen([NGINX, "-p", str(directory), "-c", str(conf)],
                               stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_for_port("127.0.0.1", port, timeout=20, process=process)
        yield f"http://127.0.0.1:{port}/fcgi-bin/iipsrv.fcgi"
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=20)
        log.close()


def _connections(pid: int, port: int) -> int:
    """Established TCP connections of process ``pid`` whose local port is ``port``."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        target = os.readlink(fd)
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    count = 0
    for line in Path(f"/proc/{pid}/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if fields[3] == "01" and int(fields[1].split(":")[1], 16) == port and fields[9] in inodes:
            count += 1
    return count


def test_nginx_reuses_one_connection_and_the_worker_still_serves_others(nginx, backend):
    for _ in range(10):
        response = http_get(f"{nginx}?FIF=rgb.tif&{OBJ}")
        assert response.status == 200 and response.body.startswith(b"IIP:1.0")
    worker = backend.pid  # one process: it serves itself (no fork)
    kept = _connections(worker, backend.address[1])
    assert 1 <= kept < 10, "nginx keeps a connection to the worker open between requests"
    # nginx holds that idle connection: a second client is served by the same worker
    direct = fcgi_request(backend.address, cgi_params(f"FIF=rgb.tif&{OBJ}"), timeout=20)
    assert direct.status == 200
    assert http_get(f"{nginx}?FIF=rgb.tif&JTL=0,0").status == 200
