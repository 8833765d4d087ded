"""nginx as a first-class front end (Debian's nginx, nginx/iipy.conf as shipped), warm
tiles answered by nginx from memcached, and several iipy hosts sharing one memcached.

Every server is really started: memcached, ``iipy --bind`` back ends, nginx.
"""

from __future__ import annotations

import concurrent.futures
import json
import os
import signal
import threading

import pytest
from images import make_tiff
from servers import http_get, iipy_argv, iipy_environment, start_fcgi_command
from servers_nginx import have_memcached, have_nginx, start_memcached, start_nginx

pytestmark = pytest.mark.skipif(
    not (have_nginx() and have_memcached()), reason="nginx or memcached not installed"
)

TILE = "FIF=a.tif&JTL=2,1"


@pytest.fixture
def folder(tmp_path):
    make_tiff(tmp_path / "a.tif", 600, 400)
    (tmp_path / "sub dir").mkdir()
    make_tiff(tmp_path / "sub dir" / "b.tif", 300, 200)
    return tmp_path


@pytest.fixture
def mc():
    server = start_memcached(megabytes=64)
    yield server
    server.stop()


def backend(folder, memcached=None, processes=2, **env):
    settings = {"FILESYSTEM_PREFIX": f"{folder}/", "MEMCACHED_SERVERS": memcached or "", **env}
    return start_fcgi_command(iipy_argv(), iipy_environment(settings),
                              extra_args=["--processes", str(processes)])


def test_tile_from_iipy_then_from_memcached_by_nginx(folder, mc):
    with backend(folder, mc.address) as iipy, start_nginx([iipy], mc.address) as nginx:
        direct = iipy.request(TILE)
        mc.flush()
        first = nginx.get(TILE)
        assert first.status == 200 and first.body == direct.body
        assert first.header("Server", "").startswith("iipy/")  # answered by iipy (a front miss)
        hits = mc.stats()["get_hits"]
        second = nginx.get(TILE)
        assert second.status == 200 and second.body == direct.body
        assert second.header("Server", "").startswith("nginx")  # never reached iipy
        assert second.header("Content-Type") == "image/jpeg"
        assert second.header("Cache-Control") == "max-age=86400"
        assert mc.stats()["get_hits"] == hits + 1
        obj = "FIF=a.tif&OBJ=IIP,1.0&OBJ=Max-size&OBJ=Resolution-number"
        first, second = nginx.get(obj), nginx.get(obj)
        assert first.header("Server", "").startswith("iipy/")
        assert second.header("Server", "").startswith("nginx") and second.body == first.body
        assert second.header("Content-Type") == "application/vnd.netfpx"


def test_iiif_ids_keep_the_port_and_escaped_identifiers_hit(folder, mc):
    with backend(folder, mc.address) as iipy, start_nginx([iipy], mc.address) as nginx:
        port = nginx.base_url.rsplit(":", 1)[1]
        info = json.loads(http_get(nginx.base_url + "/iiif/a.tif/info.json").body)
        assert info["id"] == f"{nginx.base_url}/iiif/a.tif" and f":{port}/" in info["id"]
        tile = nginx.base_url + "/iiif/sub%20dir%2Fb.tif/0,0,256,200/256,/0/default.jpg"
        first, second = http_get(tile), http_get(tile)
        assert first.status == 200 and first.header("Server", "").startswith("iipy/")
        assert second.body == first.body and second.header("Server", "").startswith("nginx")


def test_memcached_down_nginx_falls_back_to_iipy(folder):
    with backend(folder, "127.0.0.1:1") as iipy, start_nginx([iipy], None) as nginx:
        for _ in range(2):
            response = nginx.get(TILE)
            assert response.status == 200 and response.header("Content-Type") == "image/jpeg"
            assert response.header("Server", "").startswith("iipy/")


def test_watermarked_answers_are_not_front_entries(folder, mc, tmp_path_factory):
    import numpy as np
    from test_watermark import write_mark

    mark = write_mark(tmp_path_factory.mktemp("m") / "m.tif", np.full((8, 8, 3), 9, np.uint8))
    with backend(folder, mc.address, WATERMARK=mark) as iipy, \
            start_nginx([iipy], mc.address) as nginx:
        for query in ("FIF=a.tif&OBJ=IIP,1.0", TILE, TILE):
            assert nginx.get(query).status == 200
            assert nginx.get(query).header("Server", "").startswith("iipy/")
        assert mc.stats()["curr_items"] == 0


def test_two_hosts_share_one_memcached(folder, mc):
    """A tile decoded by one back end is a memcached hit for the other, and nginx
    balances between them."""
    query = "FIF=a.tif&CNT=1.4&JTL=2,2"  # decoded and processed: a render entry
    with backend(folder, mc.address) as one, backend(folder, mc.address) as two:
        first = one.request(query)
        hits = mc.stats()["get_hits"]
        second = two.request(query)
        assert second.body == first.body
        assert mc.stats()["get_hits"] == hits + 1
        with start_nginx([one, two], mc.address) as nginx:
            for n in range(6):  # distinct processed tiles: every request reaches a host
                assert nginx.get(f"FIF=a.tif&CNT=1.{n}&JTL=2,{n}").status == 200


def test_one_host_killed_under_load_costs_at_most_the_requests_in_flight(folder, mc):
    clients = 4
    with backend(folder, mc.address) as one, backend(folder, mc.address) as two, \
            start_nginx([one, two], mc.address) as nginx:
        started = threading.Event()

        def client(worker: int) -> tuple[int, int]:
            ok = failed = 0
            for n in range(60):
                # distinct processed tiles: never front hits, so each request reaches a host
                query = f"FIF=a.tif&CNT=1.{worker}{n:02d}&JTL=2,{n % 6}"
                try:
                    status = nginx.get(query).status
                except OSError:
                    status = 0
                ok, failed = (ok + 1, failed) if status == 200 else (ok, failed + 1)
                if n == 10 and worker == 0:
                    started.set()
            return ok, failed

        with concurrent.futures.ThreadPoolExecutor(clients) as pool:
            futures = [pool.submit(client, w) for w in range(clients)]
            assert started.wait(60)
            os.killpg(one.pid, signal.SIGKILL)  # the whole host: pool master and workers
            results = [f.result(timeout=120) for f in futures]
        assert sum(ok for ok, _ in results) >= clients * 60 - clients
        assert sum(failed for _, failed in results) <= clients
        assert two.request("FIF=a.tif&OBJ=IIP,1.0").status == 200
