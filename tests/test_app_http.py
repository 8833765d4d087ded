"""HTTP behaviour shared by all responses: caching validators, CORS, methods."""

from __future__ import annotations

import pytest
from wsgi import call, make_app

import iipy
from iipy.http import http_date

TILE = "FIF=rgb.tif&JTL=2,0"
OBJ = "FIF=rgb.tif&OBJ=IIP,1.0&OBJ=Max-size"


@pytest.fixture(scope="module")
def app(image_dir, images):
    return make_app(FILESYSTEM_PREFIX=str(image_dir) + "/", CORS="*")


def test_tile_headers(app, images):
    result = call(app, TILE)
    assert result.status == 200
    assert result.header("Content-Type") == "image/jpeg"
    assert result.header("Content-Length") == str(len(result.body))
    assert result.header("Cache-Control") == "max-age=86400"
    assert result.header("Last-Modified") == http_date(images.rgb.stat().st_mtime)
    assert result.header("ETag").startswith('W/"')
    assert result.header("Server") == f"iipy/{iipy.__version__}"


def test_etag_and_if_none_match_give_304(app):
    first = call(app, TILE)
    etag = first.header("ETag")
    assert call(app, TILE).header("ETag") == etag  # stable
    assert call(app, "FIF=rgb.tif&JTL=2,1").header("ETag") != etag  # per request
    again = call(app, TILE, headers={"If-None-Match": etag})
    assert again.status == 304
    assert again.body == b""
    assert again.header("ETag") == etag
    assert call(app, TILE, headers={"If-None-Match": 'W/"stale"'}).status == 200


def test_if_modified_since_gives_304(app, images):
    mtime = images.rgb.stat().st_mtime
    assert call(app, OBJ, headers={"If-Modified-Since": http_date(mtime)}).status == 304
    assert call(app, OBJ, headers={"If-Modified-Since": http_date(mtime + 3600)}).status == 304
    assert call(app, OBJ, headers={"If-Modified-Since": http_date(mtime - 3600)}).status == 200


def test_a_changed_file_is_served_anew(tmp_path):
    import os

    from images import make_tiff

    path = make_tiff(tmp_path / "a.tif", 300, 200)
    app = make_app(FILESYSTEM_PREFIX=str(tmp_path) + "/")
    before = call(app, "FIF=a.tif&OBJ=Max-size")
    make_tiff(tmp_path / "b.tif", 600, 400)
    os.replace(tmp_path / "b.tif", path)
    after = call(app, "FIF=a.tif&OBJ=Max-size", headers={"If-None-Match": before.header("ETag")})
    assert after.status == 200
    assert after.body == b"\r\nMax-size:600 400\r\n"


@pytest.mark.parametrize(
    "query",
    [TILE, OBJ, "FIF=rgb.tif&WID=100&CVT=jpeg", "FIF=rgb.tif&FOO=1", "FIF=nope.tif&JTL=0,0",
     "FIF=rgb.tif&JTL=9,0", ""],
)
def test_cors_headers_on_every_response(app, query):
    result = call(app, query)
    assert result.header("Access-Control-Allow-Origin") == "*"


def test_options_preflight_allows_x_requested_with(app):
    result = call(app, OBJ, method="OPTIONS",
                  headers={"Access-Control-Request-Headers": "x-requested-with"})
    assert result.status == 204
    assert result.header("Access-Control-Allow-Origin") == "*"
    assert "X-Requested-With" in result.header("Access-Control-Allow-Headers")
    assert result.body == b""


def test_no_cors_headers_unless_configured(images, image_dir):
    app = make_app(FILESYSTEM_PREFIX=str(image_dir) + "/")
    assert call(app, TILE).header("Access-Control-Allow-Origin") is None


def test_head_has_headers_but_no_body(app):
    get = call(app, TILE)
    head = call(app, TILE, method="HEAD")
    assert head.status == 200
    assert head.body == b""
    assert head.header("Content-Length") == str(len(get.body))


@pytest.mark.parametrize("method", ["DELETE", "PUT", "PATCH", "TRACE"])
def test_other_methods_are_405(app, method):
    result = call(app, TILE, method=method)
    assert result.status == 405
    assert "GET" in result.header("Allow")


def test_post_body_is_the_request(app):
    result = call(app, "", method="POST", body=OBJ.encode())
    assert result.status == 200
    assert result.body == b"IIP:1.0\r\nMax-size:1000 700\r\n"


def test_empty_request_is_a_200_home_page(app):
    """1.1 answers 400, which health checks read as a failure (ruven/iipsrv#190)."""
    result = call(app, "")
    assert result.status == 200
    assert result.header("Content-Type").startswith("text/html")


def test_cache_control_setting_and_errors_no_cache(images, image_dir):
    app = make_app(FILESYSTEM_PREFIX=str(image_dir) + "/", CACHE_CONTROL="public, max-age=60")
    assert call(app, TILE).header("Cache-Control") == "public, max-age=60"
    assert call(app, "FIF=rgb.tif&FOO=1").header("Cache-Control") == "no-cache"


def test_uri_map_turns_the_path_into_a_command(images, image_dir):
    app = make_app(FILESYSTEM_PREFIX=str(image_dir) + "/", URI_MAP="tiles=>IIP")
    result = call(app, "ignored=1", uri="/tiles/rgb.tif&OBJ=Max-size?ignored=1")
    assert result.status == 200
    assert result.body == b"\r\nMax-size:1000 700\r\n"
    plain = call(app, OBJ, uri="/fcgi-bin/iipsrv.fcgi?" + OBJ)
    assert plain.status == 200


def test_internal_errors_are_500_without_traceback(app, monkeypatch):
    def boom(*args, **kwargs):
        raise RuntimeError("secret detail /etc/shadow")

    monkeypatch.setattr(app.renderer, "tile", boom)
    result = call(app, TILE)
    assert result.status == 500
    assert b"secret" not in result.body and b"Traceback" not in result.body
    assert call(app, OBJ).status == 200  # and the application keeps serving


def test_tile_cache_serves_reencoded_tiles(images, image_dir):
    app = make_app(FILESYSTEM_PREFIX=str(image_dir) + "/")
    first = call(app, "FIF=rgb.tif&JTL=2,3")  # an edge tile: decoded and encoded
    hits = app.renderer._tiles.hits
    second = call(app, "FIF=rgb.tif&JTL=2,3")
    assert first.body == second.body
    assert app.renderer._tiles.hits == hits + 1
    app.clear_caches()
    assert len(app.renderer._tiles) == 0


def test_passthrough_can_be_switched_off(images, image_dir):
    on = call(make_app(FILESYSTEM_PREFIX=str(image_dir) + "/"), "FIF=rgb.tif&JTL=2,5")
    off = call(make_app(FILESYSTEM_PREFIX=str(image_dir) + "/", CODEC_PASSTHROUGH="0"),
               "FIF=rgb.tif&JTL=2,5")
    qlt = call(make_app(FILESYSTEM_PREFIX=str(image_dir) + "/"), "FIF=rgb.tif&QLT=75&JTL=2,5")
    assert on.body.startswith(b"\xff\xd8\xff\xee")  # stored tile with the Adobe marker
    assert not off.body.startswith(b"\xff\xd8\xff\xee")
    assert not qlt.body.startswith(b"\xff\xd8\xff\xee")
