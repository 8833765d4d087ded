"""IIIF through the WSGI application: info.json, ids, dispatch, headers, errors,
and what the viewers of clients.md send (OpenSeadragon v2/v3, Mirador, IIPMooViewer)."""

from __future__ import annotations

import io
import json
import math
import shutil

import numpy as np
import pytest
from PIL import Image
from wsgi import call, make_app

from iipy.protocols.iiif_info import CONTEXT


@pytest.fixture(scope="module")
def prefix(image_dir, images) -> str:
    sub = image_dir / "iiifsub"
    sub.mkdir(exist_ok=True)
    shutil.copy(images.rgb, sub / "rgb.tif")
    return str(image_dir) + "/"


@pytest.fixture(scope="module")
def app(prefix):
    return make_app(FILESYSTEM_PREFIX=prefix, CORS="*")


@pytest.fixture(scope="module")
def app2(prefix):
    return make_app(FILESYSTEM_PREFIX=prefix, IIIF_VERSION="2")


def iiif(app, path: str, **kwargs):
    return call(app, "IIIF=" + path, **kwargs)


def info_of(app, name: str, **kwargs) -> dict:
    result = iiif(app, name + "/info.json", **kwargs)
    assert result.status == 200, result.body
    return json.loads(result.body)


def picture(result) -> Image.Image:
    assert result.status == 200, result.body
    image = Image.open(io.BytesIO(result.body))
    image.load()
    return image


# -- info.json ---------------------------------------------------------------------


def test_info_json_v3_from_the_real_pyramid(app):
    result = iiif(app, "rgb.tif/info.json")
    assert result.header("Content-Type") == (
        'application/ld+json;profile="http://iiif.io/api/image/3/context.json"'
    )
    info = json.loads(result.body)
    assert list(info)[:2] == ["@context", "id"]
    assert info["@context"] == CONTEXT[3]
    assert info["id"] == "http://localhost/fcgi-bin/iipsrv.fcgi?IIIF=rgb.tif"
    assert (info["type"], info["protocol"], info["profile"]) == (
        "ImageService3", "http://iiif.io/api/image", "level2")
    assert (info["width"], info["height"]) == (1000, 700)
    assert info["sizes"] == [{"width": 250, "height": 175}, {"width": 500, "height": 350}]
    assert info["tiles"] == [{"width": 256, "height": 256, "scaleFactors": [1, 2, 4]}]
    assert (info["maxWidth"], info["maxHeight"]) == (5000, 5000)
    assert info["extraQualities"] == ["color", "gray", "bitonal"]
    assert info["extraFormats"] == ["tif", "webp", "avif"]
    assert {"rotationArbitrary", "mirroring", "sizeUpscaling", "cors",
            "canonicalLinkHeader", "profileLinkHeader"} <= set(info["extraFeatures"])
    assert "rights" not in info and "license" not in info
    assert result.header("Link") == '<http://iiif.io/api/image/3/level2.json>;rel="profile"'
    assert result.header("Access-Control-Allow-Origin") == "*"


def test_info_json_v2(app2):
    result = iiif(app2, "rgb.tif/info.json")
    assert result.header("Content-Type") == "application/json"
    info = json.loads(result.body)
    assert info["@context"] == CONTEXT[2]
    assert info["@id"] == "http://localhost/fcgi-bin/iipsrv.fcgi?IIIF=rgb.tif"
    assert "id" not in info and "type" not in info
    level, extra = info["profile"]
    assert level == "http://iiif.io/api/image/2/level2.json"
    assert extra["formats"] == ["jpg", "png", "tif", "webp", "avif"]
    assert extra["qualities"] == ["default", "color", "gray", "bitonal"]
    assert {"regionSquare", "rotationArbitrary", "mirroring", "sizeAboveFull"} <= set(
        extra["supports"])
    assert (extra["maxWidth"], extra["maxHeight"]) == (5000, 5000)
    assert info["tiles"] == [{"width": 256, "height": 256, "scaleFactors": [1, 2, 4]}]


def test_json_ld_when_asked(app, app2):
    ld = iiif(app2, "rgb.tif/info.json", headers={"Accept": "application/ld+json"})
    assert ld.header("Content-Type") == "application/ld+json"
    plain = iiif(app, "rgb.tif/info.json", headers={"Accept": "application/json"})
    assert plain.header("Content-Type") == "application/json"


@pytest.mark.parametrize(("accept", "version"), [
    ('application/ld+json;profile="http://iiif.io/api/image/2/context.json"', 2),
    ('application/ld+json;profile="http://iiif.io/api/image/3/context.json"', 3),
    ("application/json", 3),
])
def test_accept_profile_selects_the_version(app, accept, version):
    info = info_of(app, "rgb.tif", headers={"Accept": accept})
    assert info["@context"] == CONTEXT[version]
    assert ("id" in info) == (version == 3)


def test_grey_image_does_not_claim_color(app):
    assert info_of(app, "grey8.tif")["extraQualities"] == ["gray", "bitonal"]


def test_odd_pyramid_sizes_are_the_levels_and_each_is_served_exactly(app, images):
    info = info_of(app, "rgb_odd.tif")
    assert info["sizes"] == [{"width": 176, "height": 99}, {"width": 352, "height": 198},
                             {"width": 705, "height": 396}]
    assert info["tiles"][0]["scaleFactors"] == [1, 2, 4, 8]
    obj = call(app, "FIF=rgb_odd.tif&OBJ=Resolutions").body.decode()
    resolutions = obj.split("Resolutions:")[1].strip().split(",")
    assert [f"{s['width']} {s['height']}" for s in info["sizes"]] == resolutions[:-1]
    for size in info["sizes"]:
        w, h = size["width"], size["height"]
        for form in (f"{w},{h}", f"{w},", f",{h}", f"!{w},{h}"):
            assert picture(iiif(app, f"rgb_odd.tif/full/{form}/0/default.jpg")).size == (w, h)


def test_max_cvt_bounds_sizes_and_max(prefix):
    app = make_app(FILESYSTEM_PREFIX=prefix, MAX_CVT="400")
    info = info_of(app, "rgb.tif")
    assert info["sizes"] == [{"width": 250, "height": 175}]
    assert info["maxWidth"] == 400
    assert picture(iiif(app, "rgb.tif/full/max/0/default.jpg")).size == (400, 280)
    assert iiif(app, "rgb.tif/full/500,/0/default.jpg").status == 400


def test_no_limit_and_no_upscaling(prefix):
    info = info_of(make_app(FILESYSTEM_PREFIX=prefix, MAX_CVT="-1"), "rgb.tif")
    assert "maxWidth" not in info and "sizeUpscaling" not in info["extraFeatures"]
    app = make_app(FILESYSTEM_PREFIX=prefix, ALLOW_UPSCALING="0")
    assert "sizeUpscaling" not in info_of(app, "rgb.tif")["extraFeatures"]
    assert iiif(app, "rgb.tif/full/^2000,/0/default.jpg").status == 501


def test_extra_info_and_copyright(prefix):
    app = make_app(FILESYSTEM_PREFIX=prefix,
                   IIIF_EXTRA_INFO='"seeAlso": [{"id": "https://x/a.xml", "type": "Dataset"}],'
                                   ' "width": 1',
                   COPYRIGHT="https://creativecommons.org/licenses/by/4.0/")
    info = info_of(app, "rgb.tif")
    assert info["seeAlso"] == [{"id": "https://x/a.xml", "type": "Dataset"}]
    assert info["width"] == 1000  # required keys cannot be replaced
    assert info["rights"] == "https://creativecommons.org/licenses/by/4.0/"
    v2 = info_of(app, "rgb.tif", headers={"Accept": f'application/ld+json;profile="{CONTEXT[2]}"'})
    assert v2["license"] == "https://creativecommons.org/licenses/by/4.0/"
    text = make_app(FILESYSTEM_PREFIX=prefix, COPYRIGHT='(c) "Museum"', IIIF_VERSION="2",
                    IIIF_EXTRA_INFO="not json {")
    info = info_of(text, "rgb.tif")
    assert info["attribution"] == '(c) "Museum"'
    assert "license" not in info
    assert "rights" not in info_of(make_app(FILESYSTEM_PREFIX=prefix, COPYRIGHT="(c) M"),
                                   "rgb.tif")


# -- ids and redirects --------------------------------------------------------------


def test_id_from_x_iiif_id_base_url_and_https(prefix, app):
    assert info_of(app, "rgb.tif", headers={"X-IIIF-ID": "https://p/x/rgb/"})["id"] == (
        "https://p/x/rgb")
    base = make_app(FILESYSTEM_PREFIX=prefix, BASE_URL="https://images.example/iiif/")
    assert info_of(base, "rgb.tif")["id"] == "https://images.example/iiif/rgb.tif"
    secure = iiif(app, "rgb.tif/info.json", environ={"HTTP_HOST": "h:8443", "HTTPS": "on"})
    assert json.loads(secure.body)["id"] == "https://h:8443/fcgi-bin/iipsrv.fcgi?IIIF=rgb.tif"


def test_id_keeps_the_identifier_as_sent(app):
    result = call(app, "", uri="/iiif/iiifsub%2Frgb.tif/info.json")
    assert json.loads(result.body)["id"] == "http://localhost/iiif/iiifsub%2Frgb.tif"
    query = iiif(app, "iiifsub%2Frgb.tif/info.json")
    assert json.loads(query.body)["id"].endswith("?IIIF=iiifsub%2Frgb.tif")


def test_json_is_escaped(app):
    result = iiif(app, "rgb.tif/info.json", headers={"X-IIIF-ID": 'http://h/a"b\\c%%d'})
    assert json.loads(result.body)["id"] == 'http://h/a"b\\c%%d'


def test_bare_identifier_redirects_to_info_json(app, prefix):
    result = iiif(app, "rgb.tif")
    assert result.status == 303
    assert result.header("Location") == "http://localhost/fcgi-bin/iipsrv.fcgi?IIIF=rgb.tif/info.json"
    path = call(app, "", uri="/iiif/iiifsub/rgb.tif")
    assert (path.status, path.header("Location")) == (
        303, "http://localhost/iiif/iiifsub/rgb.tif/info.json")
    base = make_app(FILESYSTEM_PREFIX=prefix, BASE_URL="https://e/iiif/")
    assert iiif(base, "rgb.tif").header("Location") == "https://e/iiif/rgb.tif/info.json"
    assert call(app, "", uri="/iiif/iiifsub/nothing").status == 400  # too few parameters


# -- routes --------------------------------------------------------------------------


def test_uri_map_and_http_paths_reach_iiif(prefix, app):
    mapped = make_app(FILESYSTEM_PREFIX=prefix, URI_MAP="images=>IIIF")
    result = call(mapped, "", uri="/images/rgb.tif/full/100,/0/default.jpg")
    assert picture(result).size == (100, 70)
    assert json.loads(call(mapped, "", uri="/images/rgb.tif/info.json").body)["id"] == (
        "http://localhost/images/rgb.tif")
    assert picture(call(app, "", uri="/iiif/rgb.tif/full/100,/0/default.jpg?123")).size == (
        100, 70)
    # a FastCGI script under /iiif/ keeps its query-string requests
    script = call(app, "FIF=rgb.tif&OBJ=Max-size", uri="/iiif/iipsrv.fcgi?FIF=rgb.tif&OBJ=Max-size")
    assert script.body == b"\r\nMax-size:1000 700\r\n"


def test_percent_encoded_slash_in_an_identifier(app):
    assert picture(call(app, "", uri="/iiif/iiifsub%2Frgb.tif/full/50,/0/default.jpg")).size == (
        50, 35)
    assert picture(iiif(app, "iiifsub/rgb.tif/full/50,/0/default.jpg")).size == (50, 35)


def test_page_delimiter(prefix):
    app = make_app(FILESYSTEM_PREFIX=prefix, IIIF_DELIMITER=";")
    assert info_of(app, "rgb.tif;0")["id"].endswith("IIIF=rgb.tif;0")
    assert iiif(app, "rgb.tif;1/info.json").status == 404
    assert iiif(app, "rgb.tif;x/info.json").status == 400
    assert iiif(app, "rgb.tif/info.json").status == 200


# -- images: sizes, rotation, quality, formats, headers ---------------------------------


@pytest.mark.parametrize(("path", "size"), [  # iip-protocol.md §14 vectors (IIIF 3 syntax)
    ("full/max/0/default.jpg", (1000, 700)),
    ("full/250,/0/default.jpg", (250, 175)),
    ("full/!300,300/0/default.jpg", (300, 210)),
    ("full/300,300/0/default.jpg", (300, 300)),
    ("full/pct:50/0/default.jpg", (500, 350)),
    ("pct:10,10,50,50/max/0/gray.jpg", (500, 350)),
    ("square/100,/0/default.jpg", (100, 100)),
    ("full/max/90/default.jpg", (700, 1000)),
    ("full/max/!0/bitonal.jpg", (1000, 700)),
    ("900,600,500,500/max/0/default.jpg", (100, 100)),  # clipped at the edges
    ("full/^2000,/0/default.jpg", (2000, 1400)),
])
def test_image_sizes(app, path, size):
    assert picture(iiif(app, "rgb.tif/" + path)).size == size


def test_v2_upscales_without_caret(app2):
    assert picture(iiif(app2, "rgb.tif/full/2000,/0/default.jpg")).size == (2000, 1400)
    assert picture(iiif(app2, "rgb.tif/full/full/0/default.jpg")).size == (1000, 700)


@pytest.mark.parametrize(("fmt", "mime", "magic"), [
    ("jpg", "image/jpeg", b"\xff\xd8"), ("png", "image/png", b"\x89PNG"),
    ("webp", "image/webp", b"RIFF"), ("tif", "image/tiff", b"II*\x00"),
])
def test_formats(app, fmt, mime, magic):
    result = iiif(app, f"rgb.tif/full/100,/0/default.{fmt}")
    assert result.header("Content-Type") == mime
    assert result.body.startswith(magic)
    assert picture(result).size == (100, 70)


def test_arbitrary_rotation_transparent_png_white_jpeg(app):
    png = picture(iiif(app, "rgb.tif/full/200,/30/default.png"))
    w = math.ceil(200 * math.cos(math.radians(30)) + 140 * math.sin(math.radians(30)))
    assert abs(png.size[0] - w) <= 1 and png.mode == "RGBA"
    pixels = np.asarray(png)
    assert pixels[0, 0, 3] == 0 and pixels[png.size[1] // 2, png.size[0] // 2, 3] == 255
    jpg = np.asarray(picture(iiif(app, "rgb.tif/full/200,/30/default.jpg")))
    assert jpg.shape[2] == 3 and jpg[0, 0].min() > 240
    grey = picture(iiif(app, "grey8.tif/full/200,/!45/gray.webp"))
    assert grey.mode == "RGBA"


def test_mirroring_and_rotation_directions(app):
    plain = np.asarray(picture(iiif(app, "rgb.tif/full/100,/0/default.png"))).astype(int)
    mirrored = np.asarray(picture(iiif(app, "rgb.tif/full/100,/!0/default.png"))).astype(int)
    assert np.abs(mirrored - plain[:, ::-1]).max() <= 2
    turned = np.asarray(picture(iiif(app, "rgb.tif/full/100,/90/default.png"))).astype(int)
    assert np.abs(turned - np.rot90(plain, k=-1)).max() <= 2  # clockwise
    flipped = np.asarray(picture(iiif(app, "rgb.tif/full/100,/!180/default.png"))).astype(int)
    assert np.abs(flipped - plain[::-1, :]).max() <= 2


def test_qualities(app):
    assert picture(iiif(app, "rgb.tif/full/100,/0/gray.jpg")).mode == "L"
    bitonal = np.asarray(picture(iiif(app, "rgb.tif/full/100,/0/bitonal.png")))
    assert set(np.unique(bitonal)) <= {0, 255}
    assert picture(iiif(app, "grey8.tif/full/100,/0/color.jpg")).mode == "L"


def test_link_headers_and_validators(app):
    result = iiif(app, "rgb.tif/pct:10,10,50,50/250,/0/default.jpg")
    assert result.header("Link") == (
        '<http://localhost/fcgi-bin/iipsrv.fcgi?IIIF=rgb.tif/100,70,500,350/250,175/0/default.jpg>'
        ';rel="canonical", <http://iiif.io/api/image/3/level2.json>;rel="profile"')
    assert result.header("Access-Control-Allow-Origin") == "*"
    etag = result.header("ETag")
    again = iiif(app, "rgb.tif/pct:10,10,50,50/250,/0/default.jpg",
                 headers={"If-None-Match": etag})
    assert (again.status, again.body) == (304, b"")
    info = iiif(app, "rgb.tif/info.json")
    assert iiif(app, "rgb.tif/info.json", headers={"If-None-Match": info.header("ETag")}
                ).status == 304


# -- errors --------------------------------------------------------------------------


@pytest.mark.parametrize(("path", "status"), [
    ("rgb.tif/full/max/0/default.gif", 400),
    ("rgb.tif/full/max/45.5.5/default.jpg", 400),
    ("rgb.tif/1000,0,10,10/max/0/default.jpg", 400),
    ("rgb.tif/full/2000,/0/default.jpg", 400),
    ("rgb.tif/full/max/0/sepia.jpg", 400),
    ("rgb.tif/full/max", 400),
    ("nothing.tif/full/max/0/default.jpg", 404),
    ("nothing.tif/info.json", 404),
    ("a/b/full/max/0/default.jpg", 404),
    ("text.tif/info.json", 400),
    ("/info.json", 400),
    ("", 400),
])
def test_errors_are_short_text_without_paths(app, image_dir, path, status):
    result = iiif(app, path)
    assert result.status == status
    assert result.header("Content-Type") == "text/plain; charset=utf-8"
    assert 0 < len(result.body) < 200
    assert str(image_dir).encode() not in result.body
    assert result.header("Access-Control-Allow-Origin") == "*"


# -- tile path versus region path -------------------------------------------------------


def count_paths(app, monkeypatch):
    calls = {"tile": 0, "region": 0}
    for name in calls:
        original = getattr(app.renderer, name)

        def wrapper(*args, _name=name, _original=original, **kwargs):
            calls[_name] += 1
            return _original(*args, **kwargs)

        monkeypatch.setattr(app.renderer, name, wrapper)
    return calls


@pytest.mark.parametrize(("path", "jtl"), [
    ("0,0,256,256/256,/0/default.jpg", "2,0"),  # the 1.1 vector: same bytes as JTL
    ("0,0,256,256/256,256/0/default.jpg", "2,0"),  # w,h too (ruven/iipsrv#289)
    ("0,0,256,256/max/0/default.jpg", "2,0"),
    ("768,512,232,188/232,/0/default.jpg", "2,11"),  # the corner tile's remainder
    ("768,512,300,300/!232,188/0/default.jpg", "2,11"),  # region past the edge, clipped
    ("512,0,488,512/244,/0/default.jpg", "1,1"),
    ("full/250,/0/default.jpg", "0,0"),
])
def test_exactly_one_tile_takes_the_tile_path(app, monkeypatch, path, jtl):
    calls = count_paths(app, monkeypatch)
    result = iiif(app, "rgb.tif/" + path)
    assert calls == {"tile": 1, "region": 0}
    assert result.body == call(app, f"FIF=rgb.tif&JTL={jtl}").body


@pytest.mark.parametrize("path", [
    "0,0,256,256/128,/0/default.jpg", "1,0,256,256/256,/0/default.jpg",
    "0,0,256,256/256,255/0/default.jpg", "0,0,512,256/512,/0/default.jpg",
])
def test_other_requests_take_the_region_path(app, monkeypatch, path):
    calls = count_paths(app, monkeypatch)
    assert iiif(app, "rgb.tif/" + path).status == 200
    assert calls == {"tile": 0, "region": 1}


def test_a_rotated_tile_is_cached_as_a_tile(app, monkeypatch):
    calls = count_paths(app, monkeypatch)
    first = iiif(app, "rgb.tif/0,0,256,256/256,/90/gray.jpg")
    assert calls["tile"] == 1 and picture(first).mode == "L"
    assert iiif(app, "rgb.tif/0,0,256,256/256,/90/gray.jpg").body == first.body


# -- clients.md: the URLs viewers build from info.json ------------------------------------


def osd_tile_urls(info: dict, version: int):
    """OpenSeadragon 6.1.1's IIIFTileSource.getTileUrl over every tile of every level."""
    width, height = info["width"], info["height"]
    tile = info["tiles"][0]
    tw, th = tile["width"], tile.get("height", tile["width"])
    max_level = round(math.log2(max(tile["scaleFactors"])))
    sizes = sorted(info.get("sizes", []), key=lambda s: s["width"])
    if not sizes or (sizes[-1]["width"], sizes[-1]["height"]) != (width, height):
        sizes.append({"width": width, "height": height})
    exact = len(sizes) == max_level + 1 and all(
        round(width / s["width"]) == 2 ** (max_level - i) for i, s in enumerate(sizes))
    for level in range(max_level + 1):
        scale = 0.5 ** (max_level - level)
        if exact:
            lw, lh = sizes[level]["width"], sizes[level]["height"]
        else:
            lw, lh = math.ceil(width * scale), math.ceil(height * scale)
        if lw < tw and lh < th:
            size = f"{lw},{lh}" if version == 3 else f"{lw},"
            if (lw, lh) == (width, height):
                size = "max" if version == 3 else "full"
            yield f"full/{size}/0/default.jpg", (lw, lh)
            continue
        sw, sh = round(tw / scale), round(th / scale)
        for y in range(math.ceil(lh / th)):
            for x in range(math.ceil(lw / tw)):
                rx, ry = x * sw, y * sh
                rw, rh = min(sw, width - rx), min(sh, height - ry)
                region = "full" if (x, y, rw, rh) == (0, 0, width, height) else (
                    f"{rx},{ry},{rw},{rh}")
                zw, zh = min(tw, lw - x * tw), min(th, lh - y * th)
                if version == 3 and (zw, zh) == (width, height):
                    size = "max"
                elif version == 2 and zw == width:
                    size = "full"
                else:
                    size = f"{zw},{zh}"
                yield f"{region}/{size}/0/default.jpg", (zw, zh)


@pytest.mark.parametrize("version", [2, 3])
@pytest.mark.parametrize("name", ["rgb.tif", "rgb_odd.tif"])
def test_openseadragon_tiles_are_all_stored_tiles(app, monkeypatch, version, name):
    accept = {"Accept": f'application/ld+json;profile="{CONTEXT[version]}"'}
    info = info_of(app, name, headers=accept)
    urls = list(osd_tile_urls(info, version))
    assert len(urls) > 3
    calls = count_paths(app, monkeypatch)
    for url, size in urls:
        assert picture(iiif(app, f"{name}/{url}", headers=accept)).size == size, url
    assert calls == {"tile": len(urls), "region": 0}


def test_mirador_w_comma_tiles(app, monkeypatch):
    calls = count_paths(app, monkeypatch)
    for url, size in [  # OpenSeadragon 5 in Mirador: v2 tiles as "w,"
        ("0,0,1410,793/176,", (176, 99)),
        ("0,0,1024,793/256,", (256, 198)), ("1024,0,386,793/96,", (96, 198)),
        ("0,512,512,281/256,", (256, 140)), ("1024,512,386,281/193,", (193, 140)),
        ("1024,512,256,256/256,", (256, 256)), ("1280,768,130,25/130,", (130, 25)),
    ]:
        assert picture(iiif(app, f"rgb_odd.tif/{url}/0/default.jpg")).size == size, url
    assert calls == {"tile": 7, "region": 0}


def test_iipmooviewer_iiif_tiles(app, monkeypatch):
    """Regions in full-resolution pixels that may run past the edge; ``max`` at full
    size, ``!256,256`` below, the remaining pixels for the bottom-right tile."""
    info = info_of(app, "rgb_odd.tif")
    sizes = [(s["width"], s["height"]) for s in info["sizes"]] + [(1410, 793)]
    calls = count_paths(app, monkeypatch)
    count = 0
    for r, (lw, lh) in enumerate(sizes):
        s = 2 ** (len(sizes) - 1 - r)
        cols, rows = math.ceil(lw / 256), math.ceil(lh / 256)
        for y in range(rows):
            for x in range(cols):
                region = f"{x * 256 * s},{y * 256 * s},{256 * s},{256 * s}"
                remaining = (min(256, lw - x * 256), min(256, lh - y * 256))
                if s == 1:
                    size = "max"
                elif (x, y) == (cols - 1, rows - 1):
                    size = "!{},{}".format(*remaining)
                else:
                    size = "!256,256"
                got = picture(iiif(app, f"rgb_odd.tif/{region}/{size}/0/default.jpg")).size
                assert got == remaining, (region, size)
                count += 1
    assert calls == {"tile": count, "region": 0}


# -- the standalone HTTP server ------------------------------------------------------------


def test_standalone_http_server_serves_the_protocol_paths(prefix):
    """``iipy --http``: /iiif/, /deepzoom/, /zoomify/ without configuration, with the
    request path as sent (PATH_INFO would have decoded the %2F)."""
    import os
    import socket
    import subprocess
    import sys
    import time
    import urllib.request
    from pathlib import Path

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent),
           "FILESYSTEM_PREFIX": prefix, "LOGFILE": "/dev/null"}
    proc = subprocess.Popen([sys.executable, "-m", "iipy", "--http", f"127.0.0.1:{port}",
                             "--processes", "1"], env=env, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"

    def get(path: str):
        with urllib.request.urlopen(base + path, timeout=5) as response:
            return response.status, response.headers.get("Content-Type"), response.read()

    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                get("/")
                break
            except OSError:
                assert time.monotonic() < deadline and proc.poll() is None
                time.sleep(0.1)
        status, ctype, body = get("/iiif/iiifsub%2Frgb.tif/info.json")
        assert json.loads(body)["id"] == f"{base}/iiif/iiifsub%2Frgb.tif"
        status, ctype, body = get("/iiif/iiifsub%2Frgb.tif/full/50,/0/default.jpg")
        assert (status, ctype) == (200, "image/jpeg")
        assert get("/deepzoom/rgb.tif.dzi")[2].startswith(b"<?xml")
        assert get("/zoomify/rgb.tif/ImageProperties.xml")[2].startswith(b"<IMAGE_PROPERTIES")
        assert get("/fcgi-bin/iipsrv.fcgi?IIIF=rgb.tif/info.json")[1].startswith(
            "application/ld+json")
        assert get("/fcgi-bin/iipsrv.fcgi?FIF=rgb.tif&OBJ=Max-size")[2] == (
            b"\r\nMax-size:1000 700\r\n")
    finally:
        proc.terminate()
        proc.wait(timeout=10)
