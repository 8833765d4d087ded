"""systemd (issue 14, item 5): the shipped unit rated by ``systemd-analyze security``
(offline) and verified with its socket unit; the environment file sourceable by a shell;
and what the socket unit gives: iipy started on a socket held by someone else (fd 0, as
StandardInput=socket passes it) can be restarted without refusing a connection."""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path

from fcgi_client import cgi_params, fcgi_request
from servers import iipy_environment

from iipy.settings import Settings

REPO = Path(__file__).resolve().parent.parent
SERVICE = REPO / "conf" / "iipy.service"
SOCKET = REPO / "conf" / "iipy.socket"
ENV_FILE = REPO / "conf" / "iipy.env"
ANALYZE = shutil.which("systemd-analyze") or "systemd-analyze"  # package systemd
OBJ = "OBJ=IIP,1.0&OBJ=Max-size"


def test_unit_is_hardened_as_documented():
    unit = SERVICE.read_text()
    for directive in ("NoNewPrivileges=yes", "ProtectSystem=strict", "ProtectHome=yes",
                      "PrivateTmp=yes", "ReadOnlyPaths=-/srv/images", "User=iipy",
                      "Documentation=", "StandardInput=socket", "Requires=iipy.socket",
                      "ExecStart=/usr/local/bin/iipy --processes 2 --env-file /etc/default/iipy",
                      "ExecReload=/bin/kill -HUP $MAINPID"):
        assert re.search(rf"^{re.escape(directive)}", unit, re.M), directive
    # the images are where the environment file says
    assert "FILESYSTEM_PREFIX=/srv/images/" in ENV_FILE.read_text()


def test_systemd_analyze_security_exposure_at_most_3(tmp_path):
    shutil.copy(SERVICE, tmp_path / "iipy.service")
    shutil.copy(SOCKET, tmp_path / "iipy.socket")
    result = subprocess.run([ANALYZE, "security", "--offline=true", "--threshold=30",
                             "iipy.service"], cwd=tmp_path, capture_output=True, text=True,
                            check=False)
    match = re.search(r"Overall exposure level for iipy\.service: ([\d.]+)", result.stdout)
    assert match, result.stdout + result.stderr
    exposure = float(match.group(1))
    (tmp_path / "exposure.txt").write_text(f"{exposure}\n")
    assert exposure <= 3.0 and result.returncode == 0, result.stdout[-2000:]


def test_units_verify_with_an_installed_iipy(tmp_path):
    iipy = Path(sys.executable).with_name("iipy")  # the console script of this environment
    assert iipy.exists()
    text = SERVICE.read_text().replace("ExecStart=/usr/local/bin/iipy", f"ExecStart={iipy}")
    (tmp_path / "iipy.service").write_text(text)
    shutil.copy(SOCKET, tmp_path / "iipy.socket")
    result = subprocess.run([ANALYZE, "verify", "--man=no", "./iipy.socket", "./iipy.service"],
                            cwd=tmp_path, capture_output=True, text=True, check=False)
    assert result.returncode == 0 and result.stderr == "", result.stderr


def test_environment_file_is_sourceable_with_every_line_uncommented(tmp_path):
    text = re.sub(r"^# ([A-Z_]+=)", r"\1", ENV_FILE.read_text(), flags=re.M)
    assert 'URI_MAP="iiif=>IIIF"' in text
    env_file = tmp_path / "iipy.env"
    env_file.write_text(text)
    work = tmp_path / "cwd"
    work.mkdir()
    result = subprocess.run(["sh", "-c", f"set -a; . {env_file}; env -0"], cwd=work,
                            capture_output=True, check=False, env={"PATH": os.environ["PATH"]})
    assert result.returncode == 0 and result.stderr == b""
    assert list(work.iterdir()) == []  # no redirection created a file
    env = dict(item.split("=", 1) for item in result.stdout.decode().split("\0") if "=" in item)
    assert env["URI_MAP"] == "iiif=>IIIF" and env["CORS"] == "*"
    assert env["FILESYSTEM_PREFIX"] == "/srv/images/"
    settings = Settings.from_environ({**env, "FILESYSTEM_PREFIX": f"{tmp_path}/"})
    assert settings.uri_map == ("iiif", "iiif") and settings.cors == "*"


def _start_on(sock: socket.socket, env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "iipy", "--processes", "2"], stdin=sock,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env={**os.environ, **env}, start_new_session=True)


def test_restart_on_a_held_socket_refuses_no_connection(images, image_dir, tmp_path):
    """What iipy.socket + StandardInput=socket give: the socket outlives iipy."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    address = listener.getsockname()
    env = iipy_environment({"FILESYSTEM_PREFIX": f"{image_dir}/",
                            "LOGFILE": str(tmp_path / "iipy.log")})
    first = _start_on(listener, env)
    try:
        reply = fcgi_request(address, cgi_params(f"FIF=rgb.tif&{OBJ}"), timeout=30)
        assert reply.status == 200
    finally:
        os.killpg(first.pid, signal.SIGTERM)
        assert first.wait(timeout=15) == 0
    # nobody serves now; a client connects anyway (the kernel queues it on the held socket)
    answers: list[int] = []
    waiting = threading.Thread(target=lambda: answers.append(
        fcgi_request(address, cgi_params(f"FIF=rgb.tif&{OBJ}"), timeout=60).status))
    waiting.start()
    second = _start_on(listener, env)
    try:
        waiting.join(timeout=60)
        assert answers == [200]
    finally:
        os.killpg(second.pid, signal.SIGTERM)
        second.wait(timeout=15)
        listener.close()
