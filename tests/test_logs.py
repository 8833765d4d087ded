"""Logs (issue 14, item 4): an access line per request at VERBOSITY 2, LOGFILE reopened on
SIGUSR1 for logrotate, an unwritable LOGFILE explained, one start-up line a process,
``iipy --http`` by hand logging to the terminal."""

from __future__ import annotations

import logging
import os
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest
from servers import (
    free_port,
    http_get,
    iipy_argv,
    iipy_environment,
    start_fcgi_command,
    wait_for_port,
)
from wsgi import call, make_app

from iipy.serve import logsetup
from iipy.settings import Settings

LINE = re.compile(r'(\S+) "(\S+) (\S+)" (\d{3}) (\d+) ([\d.]+)ms (\S+) (\S+) (\S+)$')


@pytest.fixture
def restore_logging():
    yield
    logsetup.configure(Settings.from_environ({"LOGFILE": "/dev/null", "VERBOSITY": "0"}))


def _access_lines(path: Path) -> list[tuple[str, ...]]:
    found = []
    for text in path.read_text().splitlines():
        if " iipy.access: " in text:
            match = LINE.search(text.split(" iipy.access: ", 1)[1])
            assert match, text
            found.append(match.groups())
    return found


def test_access_line_per_request_says_where_tiles_came_from(images, image_dir, tmp_path,
                                                            restore_logging):
    log = tmp_path / "access.log"
    settings = Settings.from_environ({"FILESYSTEM_PREFIX": f"{image_dir}/", "VERBOSITY": "2",
                                      "LOGFILE": str(log)})
    logsetup.configure(settings)
    app = make_app(FILESYSTEM_PREFIX=f"{image_dir}/", VERBOSITY="2", LOGFILE=str(log))
    queries = ["FIF=rgb.tif&JTL=2,0", "FIF=deflate.tif&JTL=2,0", "FIF=deflate.tif&JTL=2,0",
               "FIF=rgb.tif&OBJ=Max-size", "FIF=missing.tif&JTL=0,0", "IIIF=rgb.tif/info.json"]
    sizes = [len(call(app, q, environ={"REMOTE_ADDR": "192.0.2.7"}).body) for q in queries]
    lines = _access_lines(log)
    assert len(lines) == len(queries)
    summary = [(c, m, s, int(b), p, k, src) for c, m, _, s, b, _, p, k, src in lines]
    assert summary == [
        ("192.0.2.7", "GET", "200", sizes[0], "iip", "tile", "passthrough"),
        ("192.0.2.7", "GET", "200", sizes[1], "iip", "tile", "decoded"),
        ("192.0.2.7", "GET", "200", sizes[2], "iip", "tile", "cache"),
        ("192.0.2.7", "GET", "200", sizes[3], "iip", "info", "-"),
        ("192.0.2.7", "GET", "404", sizes[4], "iip", "tile", "-"),
        ("192.0.2.7", "GET", "200", sizes[5], "iiif", "info", "-"),
    ]
    assert lines[0][2] == "/fcgi-bin/iipsrv.fcgi?FIF=rgb.tif&JTL=2,0"


def test_no_access_lines_at_verbosity_1(images, image_dir, tmp_path, restore_logging):
    log = tmp_path / "quiet.log"
    logsetup.configure(Settings.from_environ({"VERBOSITY": "1", "LOGFILE": str(log)}))
    app = make_app(FILESYSTEM_PREFIX=f"{image_dir}/")
    assert call(app, "FIF=rgb.tif&JTL=2,0").status == 200
    logging.getLogger("iipy").handlers[0].flush()
    assert _access_lines(log) == []


def test_unwritable_logfile_says_why_on_stderr(capsys, restore_logging, tmp_path):
    target = tmp_path / "missing-dir" / "iipy.log"
    logsetup.configure(Settings.from_environ({"LOGFILE": str(target)}))
    err = capsys.readouterr().err
    assert f"cannot write LOGFILE {target}: No such file or directory" in err
    logging.getLogger("iipy.test").warning("still logged")
    assert "still logged" in capsys.readouterr().err


def _wait(predicate, what: str, seconds: float = 20) -> None:
    deadline = time.monotonic() + seconds
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what}")
        time.sleep(0.05)


def test_sigusr1_reopens_the_log_for_logrotate(images, image_dir, tmp_path):
    log = tmp_path / "iipy.log"
    env = iipy_environment({"FILESYSTEM_PREFIX": f"{image_dir}/", "VERBOSITY": "2",
                            "LOGFILE": str(log)})
    server = start_fcgi_command(iipy_argv(), env, workdir=tmp_path / "work",
                                extra_args=["--processes", "2"], name="iipy")
    try:
        assert server.request("FIF=rgb.tif&JTL=2,0").status == 200
        _wait(lambda: len(_access_lines(log)) == 1, "the first access line")
        starts = [t for t in log.read_text().splitlines() if " starting: " in t]
        assert len(starts) == 1 and "settings: " in starts[0]  # one line, not one a setting
        assert " setting " not in log.read_text()
        rotated = tmp_path / "iipy.log.1"
        log.rename(rotated)  # what logrotate does (no copytruncate)
        os.kill(server.pid, signal.SIGUSR1)  # its postrotate
        _wait(log.exists, "the log to be reopened on SIGUSR1 (before any new line)")
        for _ in range(4):  # both workers
            assert server.request("FIF=rgb.tif&JTL=2,1").status == 200
        _wait(lambda: len(_access_lines(log)) == 4, "access lines in the new file")
        assert len(_access_lines(rotated)) == 1
        assert server.running
    finally:
        server.stop()


def test_http_by_hand_logs_to_the_terminal(images, image_dir, tmp_path):
    port = free_port()
    env = {k: v for k, v in iipy_environment().items()}
    env = {**os.environ, **env, "FILESYSTEM_PREFIX": f"{image_dir}/", "VERBOSITY": "2"}
    env.pop("LOGFILE", None)
    process = subprocess.Popen(iipy_argv() + ["--http", f"127.0.0.1:{port}", "--processes", "1"],
                               env=env, cwd=tmp_path, stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        wait_for_port("127.0.0.1", port, timeout=20, process=process)
        assert http_get(f"http://127.0.0.1:{port}/?FIF=rgb.tif&JTL=2,0").status == 200
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        _, err = process.communicate(timeout=10)
    assert " starting: HTTP on 127.0.0.1:" in err
    assert '"GET /?FIF=rgb.tif&JTL=2,0" 200 ' in err


def test_shipped_logrotate_snippet_rotates_a_running_server(images, image_dir, tmp_path):
    """conf/iipy.logrotate run by logrotate itself (package logrotate), with the paths,
    owner and postrotate signal pointed at this test's server (no systemd here)."""
    import getpass
    import grp
    import shutil

    logs = tmp_path / "logs"
    logs.mkdir()
    log = logs / "iipy.log"
    env = iipy_environment({"FILESYSTEM_PREFIX": f"{image_dir}/", "VERBOSITY": "2",
                            "LOGFILE": str(log)})
    server = start_fcgi_command(iipy_argv(), env, workdir=tmp_path / "work",
                                extra_args=["--processes", "2"], name="iipy")
    try:
        assert server.request("FIF=rgb.tif&JTL=2,0").status == 200
        _wait(lambda: len(_access_lines(log)) == 1, "the first access line")
        snippet = (Path(__file__).resolve().parent.parent / "conf" / "iipy.logrotate").read_text()
        assert "copytruncate" not in snippet.replace("No copytruncate", "")
        group = grp.getgrgid(os.getgid()).gr_name
        snippet = (snippet.replace("/var/log/iipy/*.log", f"{logs}/*.log")
                   .replace("create 0640 iipy adm", f"create 0640 {getpass.getuser()} {group}"))
        snippet = re.sub(r"(postrotate\n).*?\n(\s*endscript)",
                         rf"\1        kill -USR1 {server.pid}\n\2", snippet, flags=re.S)
        conf = tmp_path / "logrotate.conf"
        conf.write_text(snippet)
        rotate = subprocess.run([shutil.which("logrotate") or "/usr/sbin/logrotate", "-f", "-s",
                                 str(tmp_path / "state"), str(conf)],
                                capture_output=True, text=True, check=False)
        assert rotate.returncode == 0, rotate.stderr
        rotated = logs / "iipy.log.1"  # delaycompress: the newest old file stays plain
        assert len(_access_lines(rotated)) == 1
        for _ in range(4):
            assert server.request("FIF=rgb.tif&JTL=2,1").status == 200
        _wait(lambda: len(_access_lines(log)) == 4, "access lines in the new file")
        assert len(_access_lines(rotated)) == 1
    finally:
        server.stop()
