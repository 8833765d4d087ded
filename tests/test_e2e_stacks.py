"""Multi-page stacks through a real lighttpd spawning iipy (two processes, so a
page cached by one worker is asked of the other): SDS tiles, OBJ=stack, IIIF
pages through a multi-character IIIF_DELIMITER, missing pages."""

from __future__ import annotations

import io
import json

import pytest
from PIL import Image
from servers import Spawn, iipy_argv, iipy_environment, start_lighttpd
from stacks import COLOURS, make_stack


@pytest.fixture(scope="module")
def web(tmp_path_factory):
    images = tmp_path_factory.mktemp("stack-images")
    make_stack(images / "stack.tif", names=["first", "second", "third"], scales=[1, 2, 4])
    directory = tmp_path_factory.mktemp("web-stacks")
    env = iipy_environment({
        "FILESYSTEM_PREFIX": f"{images}/", "LOGFILE": str(directory / "iipy.log"),
        "IIIF_DELIMITER": "::",
    })
    with start_lighttpd(Spawn(iipy_argv(), env, processes=2), directory / "lighttpd") as server:
        yield server


def colour(body: bytes) -> tuple[int, ...]:
    return Image.open(io.BytesIO(body)).convert("RGB").getpixel((8, 8))


def near(found, page: int) -> bool:
    return all(abs(a - b) <= 6 for a, b in zip(found, COLOURS[page], strict=True))


def test_sds_pages_through_lighttpd(web):
    for _ in range(2):  # twice: both workers, cold and warm
        for n in (2, 0, 1):
            result = web.get(f"FIF=stack.tif&SDS={n}&JTL=2,1")
            assert result.status == 200 and result.header("Content-Type") == "image/jpeg"
            assert near(colour(result.body), n)
    etags = {web.get(f"FIF=stack.tif&SDS={n}&JTL=2,1").header("ETag") for n in range(3)}
    assert len(etags) == 3


def test_obj_stack_and_views_through_lighttpd(web):
    result = web.get("FIF=stack.tif&OBJ=stack")
    assert result.status == 200 and result.header("Content-Type") == "application/json"
    assert json.loads(result.body) == [
        {"id": 0, "name": "first", "scale": 1}, {"id": 1, "name": "second", "scale": 2},
        {"id": 2, "name": "third", "scale": 4}]
    views = web.get("FIF=stack.tif&OBJ=Horizontal-views").body
    assert views == b"\r\nHorizontal-views:0 1 2\r\n"


def test_iiif_pages_through_lighttpd(web):
    info = json.loads(web.get("IIIF=stack.tif::1/info.json").body)
    assert info["id"].endswith("stack.tif::1") and info["width"] == 600
    for n in range(3):
        result = web.get(f"IIIF=stack.tif::{n}/full/200,/0/default.jpg")
        assert result.status == 200 and near(colour(result.body), n)


def test_missing_pages_through_lighttpd(web):
    iip = web.get("FIF=stack.tif&SDS=3&JTL=0,0")
    assert iip.status == 404 and iip.body == b"page 3 does not exist\n"
    iiif = web.get("IIIF=stack.tif::3/info.json")
    assert iiif.status == 404 and b"page 3" in iiif.body
