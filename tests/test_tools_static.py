"""`iipy static` trees served by lighttpd's static file handler, beside iipy itself.

One lighttpd serves both: iipy (spawned over FastCGI) under /iiif, /deepzoom and
/zoomify, and the trees `iipy static` wrote under its document root.  Every tile of
two levels of each layout is fetched both ways and must be byte-identical; the IIIF
trees pass the official validator's level 0 tests; OpenSeadragon (headless Chromium,
driven by Playwright) shows the static IIIF tree with no missing tile and a picture
that is not blank.
"""

from __future__ import annotations

import io
import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import toolimages
from PIL import Image
from servers import REPO_ROOT, Spawn, http_get, iipy_argv, iipy_environment, start_lighttpd
from test_iiif_validator import DRIVER, validator_is_intact

ENV = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "IIPY_PROGRESS": "0"}
MIME = ('mimetype.assign += ( ".json" => "application/json", ".xml" => "application/xml", '
        '".dzi" => "application/xml", ".png" => "image/png", ".webp" => "image/webp", '
        '".js" => "text/javascript" )')
OPENSEADRAGON = REPO_ROOT / ".venv" / "share" / "openseadragon" / "openseadragon.min.js"
CHROMIUM = "/usr/bin/chromium"
NAME = "picture.tif"
LEVEL0 = {"2.0": ["info_json", "id_basic", "id_squares", "format_jpg"],
          "3.0": ["info_json", "id_basic", "id_squares", "format_jpg", "size_nofull"]}


def iipy(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "iipy", *args], capture_output=True,
                          text=True, env=ENV, timeout=600)


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """lighttpd: iipy over FastCGI plus a document root for the static trees."""
    root = tmp_path_factory.mktemp("static")
    images = root / "images"
    images.mkdir()
    toolimages.picture(2600, 1900).jpegsave(str(images / "picture.jpg"), Q=92)
    converted = iipy("convert", str(images / "picture.jpg"), str(images / NAME))
    assert converted.returncode == 0, converted.stderr
    env = iipy_environment({"FILESYSTEM_PREFIX": str(images) + "/"})
    with start_lighttpd(Spawn(iipy_argv(), env, processes=2), root / "web",
                        mounts=("/fcgi-bin/iipsrv.fcgi", "/iiif", "/deepzoom", "/zoomify"),
                        extra_conf=MIME) as web:
        yield web, images, root / "web" / "htdocs"


@pytest.fixture(scope="module")
def trees(site) -> dict[str, Path]:
    web, images, htdocs = site
    made = {}
    for layout in ("iiif3", "iiif2", "deepzoom", "zoomify"):
        out = htdocs / f"st-{layout}"  # not under /iiif…: lighttpd's mounts match prefixes
        result = iipy("static", str(images / NAME), str(out), "--layout", layout,
                      "--base-url", f"{web.base_url}/st-{layout}")
        assert result.returncode == 0, result.stderr
        assert f"{layout}, " in result.stdout
        made[layout] = out
    return made


def served_pair(web, layout: str, rel: str) -> tuple[bytes, bytes]:
    """(the static file through lighttpd, iipy's answer for the same URL)."""
    static = http_get(f"{web.base_url}/st-{layout}/{rel}")
    assert static.status == 200, f"{layout}/{rel}: {static.status}"
    dynamic_path = {"iiif3": f"/iiif/{NAME}/", "iiif2": f"/iiif/{NAME}/",
                    "deepzoom": "/deepzoom/", "zoomify": f"/zoomify/{NAME}/"}[layout]
    dynamic = http_get(f"{web.base_url}{dynamic_path}{rel}")
    assert dynamic.status == 200, f"{dynamic_path}{rel}: {dynamic.status} {dynamic.body[:100]}"
    return static.body, dynamic.body


def iiif_level_files(tree: Path, version: int, scale: int) -> list[str]:
    info = json.loads((tree / "info.json").read_text())
    w, h = info["width"], info["height"]
    step = 256 * scale
    rels = []
    for y in range(0, h, step):
        for x in range(0, w, step):
            rw, rh = min(step, w - x), min(step, h - y)
            sw, sh = math.ceil(rw / scale), math.ceil(rh / scale)
            size = f"{sw}," if version == 2 else f"{sw},{sh}"
            rels.append(f"{x},{y},{rw},{rh}/{size}/0/default.jpg")
    return rels


@pytest.mark.parametrize("layout", ["iiif3", "iiif2", "deepzoom", "zoomify"])
def test_every_tile_of_two_levels_is_what_iipy_serves(site, trees, layout):
    web, _, _ = site
    tree = trees[layout]
    if layout.startswith("iiif"):
        version = int(layout[-1])
        rels = iiif_level_files(tree, version, 1) + iiif_level_files(tree, version, 4)
    elif layout == "deepzoom":
        top = max(int(p.name) for p in (tree / f"{NAME}_files").iterdir())
        rels = [str(p.relative_to(tree)) for level in (top, top - 3)
                for p in sorted((tree / f"{NAME}_files" / str(level)).iterdir())]
    else:
        files = [p for p in tree.glob("TileGroup*/*.jpg")]
        top = max(int(p.name.split("-")[0]) for p in files)
        rels = [str(p.relative_to(tree)) for p in sorted(files)
                if int(p.name.split("-")[0]) in (top, top - 2)]
    assert len(rels) > 60
    for rel in rels:
        static, dynamic = served_pair(web, layout, rel)
        assert static == dynamic, rel
    # the descriptors too (IIIF: the same document but for id and profile)
    if layout == "deepzoom":
        assert served_pair(web, layout, f"{NAME}.dzi")[0] == served_pair(
            web, layout, f"{NAME}.dzi")[1]
    if layout == "zoomify":
        static, dynamic = served_pair(web, layout, "ImageProperties.xml")
        assert static == dynamic


def test_iiif_info_json_is_level0(trees):
    v3 = json.loads((trees["iiif3"] / "info.json").read_text())
    v2 = json.loads((trees["iiif2"] / "info.json").read_text())
    assert v3["profile"] == "level0" and "extraFeatures" not in v3
    assert v2["profile"] == ["http://iiif.io/api/image/2/level0.json"]
    for size in v3["sizes"]:  # every listed size is there, as level 0 requires
        assert (trees["iiif3"] / f"full/{size['width']},{size['height']}/0/default.jpg").is_file()
    for size in v2["sizes"]:
        assert (trees["iiif2"] / f"full/{size['width']},/0/default.jpg").is_file()


@pytest.fixture(scope="module")
def validation_trees(site):
    """The validator's image as static trees under /validate2 and /validate3."""
    problem = validator_is_intact()
    if problem:
        pytest.fail(problem)
    import importlib.resources

    png = Path(str(importlib.resources.files("iiif_validator") / "validation_image.png"))
    assert png.is_file(), "validation_image.png is missing: pip install iiif-validator-ng"
    web, images, htdocs = site
    for version in (2, 3):
        out = htdocs / "validate" / f"v{version}"
        result = iipy("static", str(png), str(out), "--layout", f"iiif{version}",
                      "--base-url", f"{web.base_url}/validate/v{version}")
        assert result.returncode == 0, result.stderr
    return web


@pytest.mark.parametrize("version", ["2.0", "3.0"])
def test_static_tree_passes_the_iiif_validator_at_level0(validation_trees, version):
    web = validation_trees
    server = web.base_url.removeprefix("http://")
    driver = subprocess.run(
        [sys.executable, "-c", DRIVER.replace('"iiif"', '"validate"'), server, version,
         f"v{version[0]}", *LEVEL0[version]],
        capture_output=True, text=True, timeout=300,
        env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"})
    assert driver.returncode == 0, driver.stderr
    results = json.loads(driver.stdout.strip().splitlines()[-1])
    assert sorted(results) == sorted(LEVEL0[version])
    failed = {name: r for name, r in results.items() if not r["ok"]}
    assert not failed, failed


VIEWER = """<!DOCTYPE html><html><head><meta charset="utf-8">
<script src="/openseadragon.min.js"></script></head>
<body style="margin:0;background:#000"><div id="v" style="width:900px;height:650px"></div>
<script>
window.viewer = OpenSeadragon({id: "v", tileSources: "__SOURCE__", showNavigationControl: false,
  animationTime: 0, immediateRender: true, crossOriginPolicy: "Anonymous"});
window.loaded = 0;
viewer.world.addHandler("add-item", e => e.item.addHandler("fully-loaded-change", f => {
  if (f.fullyLoaded) window.loaded += 1; }));
</script></body></html>"""


def screenshot_stats(png: bytes) -> dict[str, float]:
    image = np.asarray(Image.open(io.BytesIO(png)).convert("RGB"), dtype=np.float64)
    flat = image.reshape(-1, 3)
    colours = len(np.unique((flat // 4).astype(np.int64) @ np.array([4096, 64, 1])))
    return {"width": image.shape[1], "height": image.shape[0], "mean": float(flat.mean()),
            "std": float(flat.std()), "distinct_colours": colours,
            "non_black": float(np.mean(flat.max(axis=1) > 16))}


@pytest.mark.parametrize("layout", ["iiif3", "iiif2", "deepzoom", "zoomify"])
def test_openseadragon_shows_the_static_tree(site, trees, tmp_path, layout):
    assert OPENSEADRAGON.is_file(), "OpenSeadragon missing: bash scripts/install.sh test"
    assert Path(CHROMIUM).exists(), "Chromium missing: bash scripts/install.sh test"
    from playwright.sync_api import sync_playwright

    web, _, htdocs = site
    shutil.copy(OPENSEADRAGON, htdocs / "openseadragon.min.js")
    source = {"iiif3": '"/st-iiif3/info.json"', "iiif2": '"/st-iiif2/info.json"',
              "deepzoom": f'"/st-deepzoom/{NAME}.dzi"',
              "zoomify": '{type: "zoomifytileservice", width: 2600, height: 1900, '
                         'tilesUrl: "/st-zoomify/"}'}[layout]
    (htdocs / f"view-{layout}.html").write_text(VIEWER.replace('"__SOURCE__"', source))
    requested: list[tuple[int, str]] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking",
            "--disable-component-update", "--disable-sync", "--no-first-run"])
        try:
            page = browser.new_page(viewport={"width": 900, "height": 650})
            page.on("response", lambda r: requested.append((r.status, r.url)))
            page.goto(f"{web.base_url}/view-{layout}.html")
            page.wait_for_function("window.loaded >= 1", timeout=60000)
            home = page.locator("#v").screenshot()
            page.evaluate("viewer.viewport.zoomTo(viewer.viewport.imageToViewportZoom(1.0),"
                          " null, true)")  # one image pixel per screen pixel: full resolution
            page.wait_for_function("window.loaded >= 2", timeout=60000)
            page.wait_for_load_state("networkidle")
            deep = page.locator("#v").screenshot()
        finally:
            browser.close()
    tiles = [(s, u) for s, u in requested if u.endswith(".jpg")]
    assert tiles and all(s == 200 for s, _ in tiles), [t for t in tiles if t[0] != 200]
    # 12 = ceil(log2(2600)); Zoomify's top level is 4 (2600, 1300, 650, 325, 162 wide)
    full_resolution = {"iiif3": ",256,256/256,256/", "iiif2": ",256,256/256,/",
                       "deepzoom": "_files/12/", "zoomify": "/4-"}[layout]
    assert any(full_resolution in u for _, u in tiles)
    stats = {"home": screenshot_stats(home), "full_resolution": screenshot_stats(deep),
             "tile_requests": len(tiles)}
    (tmp_path / f"openseadragon-{layout}.png").write_bytes(home)
    keep = os.environ.get("IIPY_SCREENSHOT_DIR")
    if keep:
        Path(keep).mkdir(parents=True, exist_ok=True)
        (Path(keep) / f"openseadragon-{layout}-home.png").write_bytes(home)
        (Path(keep) / f"openseadragon-{layout}-full.png").write_bytes(deep)
        (Path(keep) / f"openseadragon-{layout}.json").write_text(json.dumps(stats, indent=2))
    for shot in (stats["home"], stats["full_resolution"]):
        assert shot["std"] > 20 and shot["distinct_colours"] > 500
    assert stats["home"]["non_black"] > 0.5  # 2600x1900 fills most of 900x650
    assert stats["full_resolution"]["non_black"] > 0.95



def test_static_tile_size_and_format_options(site, tmp_path):
    """--tile 512 --format png: the source is re-tiled first; tiles are 512 PNGs."""
    _, images, _ = site
    out = tmp_path / "dz"
    result = iipy("static", str(images / "picture.jpg"), str(out), "--layout", "deepzoom",
                  "--tile", "512", "--format", "png")
    assert result.returncode == 0, result.stderr
    descriptor = (out / "picture.jpg.tif.dzi").read_text()
    assert 'TileSize="512"' in descriptor and 'Format="png"' in descriptor
    tile = Image.open(out / "picture.jpg.tif_files" / "12" / "1_1.png")
    assert tile.format == "PNG" and tile.size == (512, 512)
    assert not [p for p in out.iterdir() if p.name.startswith(".iipy-static-")]
    again = iipy("static", str(images / "picture.jpg"), str(out), "--layout", "deepzoom")
    assert again.returncode == 1 and "not empty" in again.stderr
