"""memcached as iipsrv uses it: MEMCACHED_SERVERS / MEMCACHED_TIMEOUT, render entries keyed
on the View and the file's version, front entries under the request URI, watermarked
answers never stored, and a memcached that is down or restarted never failing a request.

A real memcached (Debian's) is started on a free port; the application runs in-process.
"""

from __future__ import annotations

import logging
import os

import numpy as np
import pytest
from images import make_tiff
from servers_nginx import have_memcached, start_memcached
from test_watermark import write_mark
from wsgi import call, make_app

from iipy.render import memcache
from iipy.render.memcache import parse_servers
from iipy.render.tilecache import front_key
from iipy.settings import Settings

pytestmark = pytest.mark.skipif(not have_memcached(), reason="memcached not installed")

TILE_Q = "CNT=1.5&JTL=2,0"  # a decoded, processed tile: never codec pass-through


@pytest.fixture
def mc():
    """A fresh memcached per test (flush_all also drops what is set in its second)."""
    server = start_memcached(megabytes=64)
    yield server
    server.stop()


@pytest.fixture
def folder(tmp_path):
    make_tiff(tmp_path / "a.tif", 600, 400)
    return tmp_path


def app_for(folder, mc, **env):
    return make_app(FILESYSTEM_PREFIX=f"{folder}/", MEMCACHED_SERVERS=mc.address, **env)


def front(app, query: str):
    """A request from a front end that reads front entries (nginx/fastcgi_iipy.inc)."""
    return call(app, query, environ={"IIPY_FRONT_CACHE": "1"})


def test_servers_parse_as_iipsrv_with_its_default_port():
    assert parse_servers("localhost") == ["localhost:11211"]
    assert parse_servers(" a , b:11212,") == ["a:11211", "b:11212"]
    assert parse_servers("") == []


def test_settings_read_memcached_variables_and_front_cache_default():
    s = Settings.from_environ({"MEMCACHED_SERVERS": "localhost", "MEMCACHED_TIMEOUT": "60"})
    assert (s.memcached_servers, s.memcached_timeout, s.front_cache) == ("localhost", 60, True)
    assert Settings.from_environ({}).memcached_timeout == 86400
    assert Settings.from_environ({"IIPY_FRONT_CACHE": "0"}).front_cache is False


def test_tile_rendered_by_one_process_is_a_hit_for_another(folder, mc):
    first = call(app_for(folder, mc), f"FIF=a.tif&{TILE_Q}")
    assert first.status == 200
    hits = mc.stats()["get_hits"]
    second = call(app_for(folder, mc), f"FIF=a.tif&{TILE_Q}")  # a fresh app: empty caches
    assert second.body == first.body
    assert mc.stats()["get_hits"] == hits + 1


def test_stored_entries_expire_after_memcached_timeout(folder, mc):
    front(app_for(folder, mc, MEMCACHED_TIMEOUT="1234"), f"FIF=a.tif&{TILE_Q}")
    key = front_key(f"/fcgi-bin/iipsrv.fcgi?FIF=a.tif&{TILE_Q}")
    answer = mc.command(f"mg {key.decode()} t")  # meta get: "HD t<seconds left>"
    assert answer.startswith("HD t")
    assert 1200 < int(answer.split()[1][1:]) <= 1234


def test_replaced_image_is_never_served_stale(folder, mc):
    body = call(app_for(folder, mc), f"FIF=a.tif&{TILE_Q}").body
    replacement = folder / "b.tif"
    make_tiff(replacement, 600, 400, pattern=np.zeros((400, 600, 3), np.uint8))
    os.replace(replacement, folder / "a.tif")  # new inode, size and mtime
    again = call(app_for(folder, mc), f"FIF=a.tif&{TILE_Q}").body
    assert again != body


def test_export_is_stored_and_found(folder, mc):
    query = "FIF=a.tif&WID=300&CVT=jpeg"
    first = call(app_for(folder, mc), query)
    hits = mc.stats()["get_hits"]
    assert call(app_for(folder, mc), query).body == first.body
    assert mc.stats()["get_hits"] == hits + 1


def stored(mc, query: str) -> bytes | None:
    """The front entry for ``/fcgi-bin/iipsrv.fcgi?query``, or None."""
    answer = mc.command("get " + front_key("/fcgi-bin/iipsrv.fcgi?" + query).decode())
    if answer == "END\r\n":
        return None
    return answer.encode("latin-1").split(b"\r\n", 1)[1][: -len(b"\r\nEND\r\n")]


def test_front_entries_are_jpeg_tiles_and_metadata_under_their_uri(folder, mc):
    app = app_for(folder, mc)
    for query in ("FIF=a.tif&JTL=2,0", "FIF=a.tif&OBJ=IIP,1.0&OBJ=Max-size"):
        answer = front(app, query)  # a pass-through tile (no render entry) and metadata
        assert answer.status == 200 and stored(mc, query) == answer.body
    for query in ("FIF=a.tif&WID=100&CVT=jpeg", "FIF=missing.tif&OBJ=IIP,1.0"):
        front(app, query)  # an export, an error: not stored
        assert stored(mc, query) is None
    call(app, "FIF=a.tif&JTL=2,2")  # a front end that does not read them (lighttpd, Apache)
    assert stored(mc, "FIF=a.tif&JTL=2,2") is None
    off = app_for(folder, mc, IIPY_FRONT_CACHE="0")
    front(off, "FIF=a.tif&JTL=2,1")
    assert stored(mc, "FIF=a.tif&JTL=2,1") is None


def test_front_key_escapes_as_nginx_memcached_key():
    assert front_key("/iiif/a b%2Fc.tif/full/max/0/default.jpg") == (
        b"iipy:/iiif/a%20b%252Fc.tif/full/max/0/default.jpg")
    assert front_key("/x?" + "y" * 300) is None  # over memcached's 250-byte key limit


def test_watermarked_answers_are_never_stored(folder, mc, tmp_path_factory):
    mark = write_mark(tmp_path_factory.mktemp("mark") / "m.tif", np.full((8, 8, 3), 255, np.uint8))
    app = app_for(folder, mc, WATERMARK=mark)
    for query in (f"FIF=a.tif&{TILE_Q}", "FIF=a.tif&JTL=2,0", "FIF=a.tif&WID=200&CVT=jpeg"):
        assert front(app, query).status == 200
    assert mc.stats()["curr_items"] == 0


def test_memcached_down_serves_and_logs_once(folder, caplog):
    app = make_app(FILESYSTEM_PREFIX=f"{folder}/", MEMCACHED_SERVERS="127.0.0.1:1")
    with caplog.at_level(logging.WARNING, logger="iipy.render.memcache"):
        for n in range(4):
            assert call(app, f"FIF=a.tif&CNT=1.2&JTL=2,{n}").status == 200
    assert len([r for r in caplog.records if "memcached" in r.getMessage()]) == 1


def test_memcached_restarted_is_used_again(folder, mc, monkeypatch):
    monkeypatch.setattr(memcache, "RETRY_SECONDS", 0.0)
    other = start_memcached(megabytes=16)
    port = other.port
    app = app_for(folder, other)
    assert call(app, "FIF=a.tif&CNT=1.1&JTL=2,0").status == 200
    other.stop()
    assert call(app, "FIF=a.tif&CNT=1.1&JTL=2,1").status == 200  # down: no cache, no error
    again = start_memcached(port=port, megabytes=16)
    try:
        assert call(app, "FIF=a.tif&CNT=1.1&JTL=2,2").status == 200
        assert again.stats()["curr_items"] >= 1  # reconnected and stored again
    finally:
        again.stop()


def test_memcached_that_never_answers_does_not_stall(folder):
    import socket

    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)  # accepts connections (kernel backlog) but never answers
    try:
        port = silent.getsockname()[1]
        app = make_app(FILESYSTEM_PREFIX=f"{folder}/", MEMCACHED_SERVERS=f"127.0.0.1:{port}")
        for n in range(3):
            assert call(app, f"FIF=a.tif&CNT=1.3&JTL=2,{n}").status == 200
    finally:
        silent.close()


def test_hosts_share_entries_unless_their_output_settings_differ(folder, mc):
    first = call(app_for(folder, mc, LOGFILE="/dev/null", VERBOSITY="2"), f"FIF=a.tif&{TILE_Q}")
    hits = mc.stats()["get_hits"]
    elsewhere = app_for(folder, mc, LOGFILE="/dev/stderr", MAX_IMAGE_CACHE_SIZE="3")
    call(elsewhere, f"FIF=a.tif&{TILE_Q}")
    assert mc.stats()["get_hits"] == hits + 1  # another log file and cache size: same entry
    other = call(app_for(folder, mc, JPEG_QUALITY="30"), f"FIF=a.tif&{TILE_Q}")
    assert mc.stats()["get_hits"] == hits + 1 and other.body != first.body
