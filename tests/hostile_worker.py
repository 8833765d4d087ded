"""Run every request form against every hostile file in one process, as one
server worker would, and print one JSON record a request plus the worker's
peak RSS (tests/test_hostile_files.py starts it under resource limits).

    python tests/hostile_worker.py DIRECTORY
"""

from __future__ import annotations

import json
import resource
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import hostile  # noqa: E402
from wsgi import call, make_app  # noqa: E402

#: request forms: (name, kind, query with {f} for the file name); kind "meta"
#: describes the image, "pixels" decodes it
FORMS = [
    ("iip_tile", "pixels", "FIF={f}&JTL=0,0"),
    ("iip_tile_decoded", "pixels", "FIF={f}&QLT=60&JTL=0,0"),  # never the stored bytes
    ("iip_obj", "meta", "FIF={f}&OBJ=IIP,1.0&OBJ=Max-size&OBJ=Resolution-number"),
    ("iip_cvt", "pixels", "FIF={f}&WID=200&CVT=jpeg"),
    ("iip_cvt_region", "pixels", "FIF={f}&RGN=0.25,0.25,0.5,0.5&HEI=100&CVT=png"),
    ("iiif_info", "meta", "IIIF={f}/info.json"),
    ("iiif_full", "pixels", "IIIF={f}/full/200,/0/default.jpg"),
    ("iiif_tile", "pixels", "IIIF={f}/0,0,256,256/256,/0/default.jpg"),
    ("deepzoom_dzi", "meta", "DeepZoom={f}.dzi"),
    ("deepzoom_tile", "pixels", "DeepZoom={f}_files/0/0_0.jpg"),
    ("zoomify_xml", "meta", "Zoomify={f}/ImageProperties.xml"),
    ("zoomify_tile", "pixels", "Zoomify={f}/TileGroup0/0-0-0.jpg"),
]


MAX_SOURCE_PIXELS = 1 << 24


def main(directory: str) -> None:
    root = Path(directory)
    paths = hostile.write_all(root / "files")
    # the default limit (2^28) lets a bomb-shaped file's region take a minute of
    # decoding (allowed, bounded, but not for CI): the table runs at 2^24
    app = make_app(FILESYSTEM_PREFIX=str(root / "files") + "/",
                   MAX_SOURCE_PIXELS=str(MAX_SOURCE_PIXELS), VERBOSITY="1")
    for name, path in paths.items():
        for form, kind, query in FORMS:
            start = time.monotonic()
            result = call(app, query.format(f=path.name))
            print(json.dumps({
                "file": name, "form": form, "kind": kind, "status": result.status,
                "body": result.body[:200].decode("utf-8", "replace"),
                "type": result.header("Content-Type") or "",
                "seconds": round(time.monotonic() - start, 3),
            }), flush=True)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(json.dumps({"peak_rss": peak}), flush=True)


if __name__ == "__main__":
    main(sys.argv[1])
