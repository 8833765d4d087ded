"""Reload (issue 14, item 5): ``iipy --env-file F`` reads F again on SIGHUP and replaces its
workers without dropping a request; a broken F keeps the running workers. (systemd's
ExecReload sends that SIGHUP.)"""

from __future__ import annotations

import json
import os
import signal
import threading
import time

import pytest
from servers import iipy_argv, iipy_environment, start_fcgi_command

from iipy.errors import ConfigError
from iipy.settings import Settings, read_env_file


def test_env_file_reading(tmp_path):
    good = tmp_path / "good.env"
    good.write_text('# comment\n\nexport VERBOSITY=2\nURI_MAP="iiif=>IIIF"\nCORS=\'*\'  # ok\n')
    assert read_env_file(str(good)) == {"VERBOSITY": "2", "URI_MAP": "iiif=>IIIF", "CORS": "*"}
    bad = tmp_path / "bad.env"
    bad.write_text("VERBOSITY=2\nthis is not an assignment\n")
    with pytest.raises(ConfigError, match="bad.env:2: not NAME=value"):
        read_env_file(str(bad))
    with pytest.raises(ConfigError, match="cannot read"):
        Settings.load(str(tmp_path / "missing.env"))


def _children(pid: int) -> set[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return {int(p) for p in f.read().split()}
    except OSError:
        return set()


def _pids(server, count: int) -> set[int]:
    """The ``count`` worker pids: the supervisor's live children once there are exactly
    ``count`` of them, each of which answered /health. Which worker accepts a connection is
    the kernel's choice (on a quiet machine one may take them all), so the pids come from the
    process tree and the answers are only checked to come from among them."""
    deadline = time.monotonic() + 30
    while True:
        workers = _children(server.pid)
        if len(workers) == count:
            answered = {json.loads(server.request("", uri="/health").body)["pid"]
                        for _ in range(20)}
            if answered <= workers and _children(server.pid) == workers:
                return workers
        if time.monotonic() > deadline:
            raise AssertionError(f"workers {workers}, wanted {count}")
        time.sleep(0.05)


def _wait(predicate, what: str, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what}")
        time.sleep(0.05)


def test_sighup_rereads_the_env_file_and_replaces_workers_without_dropping(
    images, image_dir, tmp_path
):
    env_file = tmp_path / "iipy.env"
    env_file.write_text(f"FILESYSTEM_PREFIX={image_dir}/\nIIPY_SERVER_HEADER=before\n")
    env = iipy_environment({"LOGFILE": str(tmp_path / "iipy.log")})
    server = start_fcgi_command(iipy_argv(), env, workdir=tmp_path / "work",
                                extra_args=["--processes", "2", "--env-file", str(env_file)],
                                name="iipy")
    statuses: list[int] = []
    stop = threading.Event()

    def traffic() -> None:  # a client asking all along
        while not stop.is_set():
            try:
                statuses.append(server.request("FIF=rgb.tif&JTL=2,0", timeout=30).status)
            except Exception:  # a refused or dropped connection
                statuses.append(-1)

    client = threading.Thread(target=traffic)
    try:
        old = _pids(server, 2)
        assert server.request("FIF=rgb.tif&OBJ=Max-size").header("Server") == "before"
        client.start()
        env_file.write_text(f"FILESYSTEM_PREFIX={image_dir}/\nIIPY_SERVER_HEADER=after\n")
        os.kill(server.pid, signal.SIGHUP)
        _wait(lambda: server.request("FIF=rgb.tif&OBJ=Max-size").header("Server") == "after",
              "the new settings")
        new = _pids(server, 2)
        assert not new & old  # every worker replaced
        _wait(lambda: not any(os.path.exists(f"/proc/{pid}") for pid in old),
              "the old workers to exit")
        # a broken file: the running workers go on, with their settings
        env_file.write_text("IIPY_METRICS_ALLOW=intranet\n")
        os.kill(server.pid, signal.SIGHUP)
        _wait(lambda: "reload refused" in (tmp_path / "iipy.log").read_text(),
              "the refusal in the log")
        assert _pids(server, 2) == new
        assert server.request("FIF=rgb.tif&OBJ=Max-size").header("Server") == "after"
    finally:
        stop.set()
        if client.is_alive() or client.ident is not None:
            client.join(timeout=30)
        server.stop()
    assert len(statuses) > 0 and set(statuses) == {200}
