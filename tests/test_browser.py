"""A real browser (issue 14, item 7): Debian's Chromium, driven by selenium through Debian's
chromium-driver, opens OpenSeadragon (IIIF 3, IIIF 2, DeepZoom; behind lighttpd and behind
nginx with nginx/iipy.conf as shipped), Mirador 4 and iipy's demo viewer against iipy,
from another origin (CORS), and checks that tiles
load, the picture is not blank (pixel statistics of a screenshot) and the console has no
errors. The viewers come from npm (scripts/install.sh test packs them into .browser/)."""

from __future__ import annotations

import contextlib
import functools
import http.server
import io
import json
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from servers import (
    Spawn,
    free_port,
    iipy_argv,
    iipy_environment,
    start_fcgi_command,
    start_lighttpd,
    wait_for_port,
)
from servers_nginx import start_nginx

REPO = Path(__file__).resolve().parent.parent
ASSETS = REPO / ".browser"
CHROMIUM, DRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"  # chromium, chromium-driver
STATS: dict[str, dict[str, float]] = {}  # name -> screenshot statistics (printed at the end)


@pytest.fixture(scope="module")
def browser() -> Iterator[webdriver.Chrome]:
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--window-size=1100,900", "--no-first-run", "--disable-extensions"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(DRIVER))
    driver.set_page_load_timeout(60)
    yield driver
    driver.quit()
    for name, stats in STATS.items():
        sys.stderr.write(f"\nbrowser screenshot {name}: {json.dumps(stats)}")


@pytest.fixture(scope="module")
def page_server(tmp_path_factory) -> Iterator[tuple[str, Path]]:
    """Another origin for the pages: a static server on its own port."""
    root = tmp_path_factory.mktemp("pages")
    (root / "osd").symlink_to(ASSETS / "openseadragon" / "build" / "openseadragon")
    (root / "mirador").symlink_to(ASSETS / "mirador" / "dist")
    handler = functools.partial(_QuietHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", root
    server.shutdown()
    server.server_close()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


def _lighttpd(images, tmp_path_factory, name: str, **env: str):
    settings = iipy_environment({"FILESYSTEM_PREFIX": f"{images.rgb.parent}/", "CORS": "*",
                                 **env})
    return start_lighttpd(Spawn(iipy_argv(), settings, processes=2),
                          tmp_path_factory.mktemp(name))


@pytest.fixture(scope="module")
def iiif3(images, tmp_path_factory):
    with _lighttpd(images, tmp_path_factory, "web3") as web:
        yield web


@pytest.fixture(scope="module")
def iiif2(images, tmp_path_factory):
    with _lighttpd(images, tmp_path_factory, "web2", IIIF_VERSION="2") as web:
        yield web


@contextlib.contextmanager
def _nginx(images, **env: str):
    """``iipy --bind`` (2 workers) behind Debian's nginx with the shipped config's FastCGI
    keep-alive."""
    settings = iipy_environment({"FILESYSTEM_PREFIX": f"{images.rgb.parent}/", "CORS": "*",
                                 **env})
    with start_fcgi_command(iipy_argv(), settings, extra_args=["--processes", "2"]) as backend:
        with start_nginx([backend], keepalive=2, front=False) as web:
            yield web


@pytest.fixture(scope="module")
def nginx3(images):
    with _nginx(images) as web:
        yield web


@pytest.fixture(scope="module")
def nginx2(images):
    with _nginx(images, IIIF_VERSION="2") as web:
        yield web


OSD_PAGE = """<!DOCTYPE html><html><head><meta charset="utf-8"><link rel="icon" href="data:,">
<script src="osd/openseadragon.min.js"></script>
<style>html,body{margin:0;background:#000}#v{width:800px;height:600px}</style></head>
<body><div id="v"></div><script>
window.state = {loaded: 0, failed: [], done: false};
const viewer = OpenSeadragon({id: "v", prefixUrl: "osd/images/", tileSources: __SOURCE__,
  crossOriginPolicy: "Anonymous", animationTime: 0, showNavigationControl: false});
viewer.addHandler("tile-loaded", () => state.loaded++);
viewer.addHandler("tile-load-failed", e => state.failed.push(String(e.message)));
viewer.addHandler("open-failed", e => state.failed.push("open failed: " + e.message));
viewer.world.addHandler("add-item", e => e.item.addHandler("fully-loaded-change",
  ev => { if (ev.fullyLoaded) state.done = true; }));
</script></body></html>"""


def _wait(driver, script: str, what: str, seconds: float = 60):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = driver.execute_script(script)
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"gave up waiting for {what}: {driver.execute_script(script)!r}")


def _pixels(driver, selector: str, keep: Path | None = None) -> np.ndarray:
    """The screenshot of an element as float RGB (also written to ``keep``, to look at)."""
    png = driver.find_element("css selector", selector).screenshot_as_png
    if keep is not None:
        keep.write_bytes(png)
    shot = Image.open(io.BytesIO(png)).convert("RGB")
    return np.asarray(shot).astype(np.float64)


def picture_stats(pixels: np.ndarray) -> dict[str, float]:
    """How much of a screenshot is picture: the share of pixels off the black background,
    the spread of their values and the number of distinct colours."""
    luminance = pixels @ np.array([0.299, 0.587, 0.114])
    painted = pixels.max(axis=2) > 8
    colours = len(np.unique((pixels // 8).reshape(-1, 3), axis=0))
    return {"painted": round(float(painted.mean()), 3), "std": round(float(luminance.std()), 1),
            "colours": colours, "width": pixels.shape[1], "height": pixels.shape[0]}


def _console_errors(driver, library: str = "") -> list[str]:
    """SEVERE console entries; with ``library``, less the viewer library's own complaints
    about itself (Mirador 4.0.0 logs a React 19 deprecation as an error): anything about a
    request, CORS or the image server still counts."""
    errors = [entry["message"] for entry in driver.get_log("browser")
              if entry["level"] == "SEVERE"]
    if library:
        errors = [e for e in errors if not e.startswith(library) or "Failed to load" in e
                  or "CORS" in e]
    return errors


def _open_osd(driver, page_server, name: str, source: str) -> dict[str, float]:
    base, root = page_server
    (root / f"{name}.html").write_text(OSD_PAGE.replace("__SOURCE__", json.dumps(source)))
    driver.get_log("browser")  # start from an empty console
    driver.get(f"{base}/{name}.html")
    state = _wait(driver, "return state.done || state.failed.length ? state : null",
                  f"{name} to load its tiles")
    assert state["failed"] == [] and state["loaded"] > 0, state
    stats = picture_stats(_pixels(driver, "#v", root / f"{name}.png"))
    STATS[name] = {**stats, "tiles": state["loaded"]}
    assert _console_errors(driver) == []
    return stats


@pytest.mark.parametrize("front", ["lighttpd", "nginx"])
@pytest.mark.parametrize("protocol", ["iiif3", "iiif2", "deepzoom"])
def test_openseadragon_cross_origin(browser, page_server, images, request, front, protocol):
    version = "2" if protocol == "iiif2" else "3"
    web = request.getfixturevalue(
        {"lighttpd": "iiif", "nginx": "nginx"}[front] + version)
    source = {
        "iiif3": web.url("IIIF=rgb.tif/info.json"),
        "iiif2": web.url("IIIF=rgb.tif/info.json"),
        "deepzoom": web.url("DeepZoom=rgb.tif.dzi"),
    }[protocol]
    name = f"osd-{protocol}" if front == "lighttpd" else f"osd-{front}-{protocol}"
    stats = _open_osd(browser, page_server, name, source)
    # the 1000x700 image fills the 800 px width: 560 of 600 rows are picture
    assert stats["painted"] > 0.85 and stats["std"] > 20 and stats["colours"] > 200, stats


@pytest.mark.parametrize("front", ["lighttpd", "nginx"])
def test_mirador_cross_origin(browser, page_server, request, front):
    base, root = page_server
    web = request.getfixturevalue({"lighttpd": "iiif3", "nginx": "nginx3"}[front])
    name = "mirador" if front == "lighttpd" else f"mirador-{front}"
    service = web.url("IIIF=rgb.tif")
    canvas = f"{base}/canvas/1"
    manifest = {
        "@context": "http://iiif.io/api/presentation/3/context.json",
        "id": f"{base}/{name}.json", "type": "Manifest", "label": {"en": ["iipy"]},
        "items": [{"id": canvas, "type": "Canvas", "width": 1000, "height": 700, "items": [{
            "id": f"{canvas}/page", "type": "AnnotationPage", "items": [{
                "id": f"{canvas}/image", "type": "Annotation", "motivation": "painting",
                "target": canvas,
                "body": {"id": f"{service}/full/max/0/default.jpg", "type": "Image",
                         "format": "image/jpeg", "width": 1000, "height": 700,
                         "service": [{"id": service, "type": "ImageService3",
                                      "profile": "level1"}]}}]}]}],
    }
    (root / f"{name}.json").write_text(json.dumps(manifest))
    (root / f"{name}.html").write_text(
        '<!DOCTYPE html><html><head><meta charset="utf-8"><link rel="icon" href="data:,">'
        '<script src="mirador/mirador.min.js"></script></head><body style="margin:0">'
        '<div id="m" style="position:absolute;width:1000px;height:760px"></div><script>'
        f'Mirador.viewer({{id: "m", windows: [{{manifestId: "{name}.json",'
        ' thumbnailNavigationPosition: "off"}], window: {allowClose: false,'
        ' sideBarOpenByDefault: false}, workspaceControlPanel: {enabled: false}});'
        "</script></body></html>")
    browser.get_log("browser")
    browser.get(f"{base}/{name}.html")
    tiles = ("return performance.getEntriesByType('resource').filter(e => "
             "e.name.includes('IIIF=rgb.tif/') && e.name.endsWith('default.jpg')).length")
    _wait(browser, tiles, "Mirador to request tiles")
    _wait(browser, "return document.querySelector('#m canvas') !== null", "the OSD canvas")

    def painted() -> bool:
        stats = picture_stats(_pixels(browser, "#m canvas"))
        STATS[name] = stats
        return stats["std"] > 20 and stats["colours"] > 200

    deadline = time.monotonic() + 60
    while not painted() and time.monotonic() < deadline:
        time.sleep(0.25)
    assert painted(), STATS[name]
    assert _console_errors(browser, library=f"{base}/mirador/mirador.min.js") == []


def test_demo_viewer(browser, tmp_path):
    port = free_port()
    process = subprocess.Popen(iipy_argv() + ["demo", "--http", f"127.0.0.1:{port}", "--dir",
                                              str(tmp_path / "demo"), "--processes", "1"],
                               env={**iipy_environment(), "PATH": "/usr/bin:/bin"},
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               start_new_session=True)
    try:
        wait_for_port("127.0.0.1", port, timeout=120, process=process)
        browser.get_log("browser")
        browser.get(f"http://127.0.0.1:{port}/")
        _wait(browser, "const t = [...document.querySelectorAll('#plane img')];"
              "return t.length > 0 && t.every(i => i.complete && i.naturalWidth > 0)",
              "the demo viewer's tiles")
        stats = picture_stats(_pixels(browser, "#view"))
        STATS["demo"] = stats
        assert stats["painted"] > 0.5 and stats["std"] > 20 and stats["colours"] > 200, stats
        assert _console_errors(browser) == []
    finally:
        import os
        import signal

        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=20)
        shutil.rmtree(tmp_path / "demo", ignore_errors=True)
