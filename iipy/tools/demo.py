"""``iipy demo``: generate a demo pyramid and serve it over HTTP with a viewer.

The image is synthetic (made with pyvips, a few seconds) so nothing is
downloaded.  The page at ``/`` is a small zoom-and-pan viewer that speaks the
IIP protocol (OBJ for the pyramid, JTL for tiles), like IIPMooViewer; every
other URL goes to the normal application.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Iterable
from pathlib import Path

DEMO_NAME = "demo.tif"


def make_demo_image(path: Path, width: int = 12000, height: int = 8000) -> None:
    """A JPEG-compressed pyramidal TIFF with structure at every scale."""
    import pyvips

    x = pyvips.Image.xyz(width, height)
    cx, cy = x[0] - width / 2, x[1] - height / 2
    r = (cx * cx + cy * cy) ** 0.5
    rings = ((r / 40).sin() + 1) * 60
    grid = (((x[0] % 512) < 6) | ((x[1] % 512) < 6)).ifthenelse(255, 0)
    fine = ((x[0] * 0.21).sin() * (x[1] * 0.17).cos() + 1) * 40
    red = (x[0] * (255 / width) + rings * 0.3).cast("uchar")
    green = (x[1] * (255 / height) + fine * 0.5).cast("uchar")
    blue = (rings + fine).cast("uchar")
    image = (red.bandjoin([green, blue]) | grid.cast("uchar")).cast("uchar")
    image = image.copy(interpretation="srgb")
    tmp = path.with_suffix(".tmp.tif")
    image.tiffsave(str(tmp), tile=True, pyramid=True, compression="jpeg", Q=85,
                   tile_width=256, tile_height=256)
    os.replace(tmp, path)


VIEWER = """<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>iipy demo</title>
<style>
 body{margin:0;font:14px sans-serif;background:#222;color:#ddd}
 #view{position:absolute;top:40px;left:0;right:0;bottom:0;overflow:hidden;cursor:grab}
 #plane{position:absolute;transform-origin:0 0}
 #plane img{position:absolute;user-select:none;-webkit-user-drag:none}
 header{height:40px;line-height:40px;padding:0 12px}
 a{color:#9cf}
</style></head><body>
<header>iipy demo &mdash; wheel to zoom, drag to pan &mdash; <span id="info"></span>
 &mdash; <a id="obj" href="#">OBJ</a> <a id="cvt" href="#">CVT</a></header>
<div id="view"><div id="plane"></div></div>
<script>
const server = "/fcgi-bin/iipsrv.fcgi", image = "__IMAGE__";
const view = document.getElementById("view"), plane = document.getElementById("plane");
let W, H, tw, th, levels = [], scale = 1, ox = 0, oy = 0, shown = {};
document.getElementById("obj").href = server + "?FIF=" + image +
  "&obj=IIP,1.0&obj=Max-size&obj=Tile-size&obj=Resolution-number&obj=Resolutions";
document.getElementById("cvt").href = server + "?FIF=" + image + "&WID=800&CVT=jpeg";
fetch(document.getElementById("obj").href).then(r => r.text()).then(text => {
  [W, H] = text.split("Max-size:")[1].split(" ").map(v => parseInt(v));
  [tw, th] = text.split("Tile-size:")[1].split(" ").map(v => parseInt(v));
  levels = text.split("Resolutions:")[1].split("\\r\\n")[0].split(",")
    .map(p => p.split(" ").map(v => parseInt(v)));
  document.getElementById("info").textContent = W + " x " + H + ", " + levels.length + " levels";
  scale = Math.min(view.clientWidth / W, view.clientHeight / H);
  ox = (view.clientWidth - W * scale) / 2; oy = (view.clientHeight - H * scale) / 2;
  draw();
});
function draw() {
  let r = 0;
  while (r < levels.length - 1 && levels[r][0] < W * scale) r++;
  const [lw, lh] = levels[r], f = lw / W, cols = Math.ceil(lw / tw);
  plane.style.transform = `translate(${ox}px,${oy}px) scale(${scale / f})`;
  const px = f / scale, rows = Math.ceil(lh / th);
  const x0 = Math.max(0, Math.floor(-ox * px / tw)), y0 = Math.max(0, Math.floor(-oy * px / th));
  const x1 = Math.min(cols - 1, Math.floor((view.clientWidth - ox) * px / tw));
  const y1 = Math.min(rows - 1, Math.floor((view.clientHeight - oy) * px / th));
  const want = {};
  for (let y = y0; y <= y1; y++)
    for (let x = x0; x <= x1; x++) want[r + "," + (y * cols + x)] = [x, y];
  for (const k in shown) if (!(k in want)) { shown[k].remove(); delete shown[k]; }
  for (const k in want) if (!(k in shown)) {
    const img = new Image(); img.src = server + "?FIF=" + image + "&JTL=" + k;
    img.style.left = want[k][0] * tw + "px"; img.style.top = want[k][1] * th + "px";
    plane.appendChild(img); shown[k] = img;
  }
}
view.addEventListener("wheel", e => {
  e.preventDefault();
  const k = e.deltaY < 0 ? 1.25 : 0.8, mx = e.offsetX, my = e.offsetY;
  ox = mx - (mx - ox) * k; oy = my - (my - oy) * k; scale *= k; draw();
}, {passive: false});
let drag = null;
view.addEventListener("mousedown", e => drag = [e.clientX - ox, e.clientY - oy]);
window.addEventListener("mouseup", () => drag = null);
window.addEventListener("mousemove", e => {
  if (drag) { ox = e.clientX - drag[0]; oy = e.clientY - drag[1]; draw(); }
});
window.addEventListener("resize", draw);
</script></body></html>
"""


def viewer_app(app: Callable, image: str) -> Callable:
    """Serve the viewer page at ``/`` (no query string); pass the rest on."""
    page = VIEWER.replace("__IMAGE__", image).encode("utf-8")

    def wrapped(environ: dict, start_response: Callable) -> Iterable[bytes]:
        if environ.get("PATH_INFO", "/") in ("", "/") and not environ.get("QUERY_STRING"):
            start_response("200 OK", [("Content-Type", "text/html; charset=utf-8"),
                                      ("Content-Length", str(len(page)))])
            return [page]
        return app(environ, start_response)

    return wrapped


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="iipy demo", description=__doc__)
    parser.add_argument("--http", default="127.0.0.1:8080", help="address (127.0.0.1:8080)")
    parser.add_argument("--dir", default="demo", help="where the demo image goes (./demo)")
    parser.add_argument("--processes", type=int, default=2)
    args = parser.parse_args(argv)
    from ..serve import logsetup, server
    from ..serve.app import create_app
    from ..settings import Settings

    directory = Path(args.dir).resolve()
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / DEMO_NAME
    if not path.exists():
        print(f"iipy demo: generating {path} …", flush=True)
        make_demo_image(path)
    env = dict(os.environ)
    env.setdefault("FILESYSTEM_PREFIX", str(directory) + "/")
    env.setdefault("LOGFILE", str(directory / "iipy.log"))
    env.setdefault("CORS", "*")
    settings = Settings.from_environ(env)
    logsetup.configure(settings)
    try:
        sock = server.bind_socket(args.http, 128)
    except (OSError, ValueError) as exc:
        return server.fail(f"cannot listen on {args.http}: {exc}")
    app = create_app(settings)
    host, port = sock.getsockname()[:2]
    print(f"iipy demo: serving {path.name} — open http://{host}:{port}/ (Ctrl-C to stop)",
          flush=True)
    print(f"  IIP:  http://{host}:{port}/fcgi-bin/iipsrv.fcgi?FIF=/{DEMO_NAME}&OBJ=IIP,1.0"
          "&OBJ=Max-size", flush=True)
    wrapped = viewer_app(app, "/" + DEMO_NAME)
    sys.stdout.flush()

    def serve() -> None:
        server.serve_http(app, sock, wsgi=wrapped)

    return server.run_pool(serve, args.processes)
