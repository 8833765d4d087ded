"""Multi-page TIFF stacks (issue 16 item 1): one image with several pages, each a
tiled pyramid; SDS, OBJ=stack, Horizontal-views, IIIF_DELIMITER, per-page caches.

Expected values come from iipsrv 1.3's behaviour (TPTImage.cc loadStackInfo,
OBJ.cc stack, IIIF.cc delimiter) and the TIFF specification (NewSubfileType
bit 1 = page, bit 0 = reduced image); pages are flat colours (stacks.COLOURS),
so any page served for another shows."""

from __future__ import annotations

import io
import json
import os
import time

import numpy as np
import pytest
from images import make_tiff
from PIL import Image
from stacks import COLOURS, make_stack, many_pages_tiff
from wsgi import call, make_app

from iipy.decoders.base import Decoder
from iipy.decoders.tiff import TiffDecoder
from iipy.decoders.tiffdir import MAX_IFDS
from iipy.errors import BadRequest, NotFound
from iipy.protocols.iiif import split_page

NAMES = ["red channel", "green", 'say "blue"']
SCALES = [0.1, 1.0, 2.5]


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    d = tmp_path_factory.mktemp("stacks")
    make_stack(d / "stack.tif", names=NAMES, scales=SCALES)
    make_stack(d / "plain.tif", pages=2)  # no names, no scales
    make_stack(d / "flat.tif", pages=3, subifd=False)  # single-level pages
    make_stack(d / "deflate.tif", pages=2, compression="deflate")
    make_stack(d / "ome.tif", pages=3, subfile_type=0)  # OME-TIFF style: pages not marked
    make_stack(d / "chain.tif", 200, 150, pages=3, subifd=False, subfile_type=0)
    (d / "dir;1").mkdir()
    make_stack(d / "dir;1" / "stack.tif", pages=3)
    make_tiff(d / "single.tif", 600, 400)
    (d / "many.tif").write_bytes(many_pages_tiff(3000))
    (d / "toomany.tif").write_bytes(many_pages_tiff(MAX_IFDS + 500))
    (d / "loops.tif").write_bytes(many_pages_tiff(4, {1: 0, 2: "self"}))
    return d


def app_for(folder, **env):
    return make_app(FILESYSTEM_PREFIX=f"{folder}/", **env)


def colour_at(body: bytes, x: int = 10, y: int = 10) -> tuple[int, ...]:
    return Image.open(io.BytesIO(body)).convert("RGB").getpixel((x, y))


def near(colour, page: int, tolerance: int = 6) -> bool:
    return all(abs(a - b) <= tolerance for a, b in zip(colour, COLOURS[page], strict=True))


# -- the decoder ---------------------------------------------------------------


def test_pages_in_the_main_chain_each_with_a_subifd_pyramid(folder):
    decoder = TiffDecoder(str(folder / "stack.tif"))
    try:
        assert decoder.pages == 3
        assert decoder.info.stack == tuple(zip(NAMES, SCALES, strict=True))
        for n in range(3):
            page = decoder.page(n)
            assert [(lv.width, lv.height) for lv in page.info.levels] == [
                (600, 400), (300, 200), (150, 100)]
            for level in range(3):
                assert near(page.read_tile(level, 0, 0)[5, 5], n)
                assert near(page.read_region(level, 20, 20, 8, 8)[4, 4], n)
            if n:
                page.close()
        assert decoder.page(0) is decoder
        with pytest.raises(NotFound):
            decoder.page(3)
        with pytest.raises(NotFound):
            decoder.page(-1)
    finally:
        decoder.close()


def test_closing_one_page_leaves_the_others_readable(folder):
    decoder = TiffDecoder(str(folder / "stack.tif"))
    second = decoder.page(2)
    decoder.close()
    assert near(second.read_tile(1, 0, 0)[0, 0], 2)
    assert second.raw_tile(0, 0, 0) is not None
    second.close()


def test_single_level_pages_of_the_first_size_are_a_stack(folder):
    decoder = TiffDecoder(str(folder / "flat.tif"))
    assert decoder.pages == 3
    page = decoder.page(1)
    assert len(page.info.levels) == 1
    assert near(page.read_tile(0, 0, 0)[0, 0], 1)


def test_unmarked_pages_with_their_own_subifd_pyramids_are_a_stack(folder):
    decoder = TiffDecoder(str(folder / "ome.tif"))
    assert decoder.pages == 3
    assert near(decoder.page(2).read_tile(2, 0, 0)[0, 0], 2)
    # unmarked single-level directories of one size are not pages (nor levels)
    assert TiffDecoder(str(folder / "chain.tif")).pages == 1


def test_single_images_have_one_page(folder, images):
    for path in (folder / "single.tif", images.rgb):  # SubIFD-less chain pyramid, and others
        decoder = TiffDecoder(str(path))
        assert decoder.pages == 1 and decoder.info.stack == ()
        assert decoder.page(0) is decoder
        with pytest.raises(NotFound):
            decoder.page(1)


def test_the_base_decoder_has_only_page_zero():
    class Flat(Decoder):
        @classmethod
        def can_read(cls, head):
            return False

        def __init__(self, path):
            pass

        def read_region(self, level, left, top, width, height, layers=0):
            return np.zeros((height, width, 1), np.uint8)

    flat = Flat("x")
    assert flat.pages == 1 and flat.page(0) is flat
    with pytest.raises(NotFound):
        flat.page(1)


# -- IIP -------------------------------------------------------------------------


def test_obj_stack_is_iipsrv_13s_json(folder):
    result = call(app_for(folder), "FIF=stack.tif&OBJ=stack")
    assert result.status == 200
    assert result.header("Content-Type") == "application/json"
    # 1.3: "[ " then per page \n\t{\n\t\t"id": n,\n\t\t"name": "...",\n\t\t"scale": s\n\t}
    # joined by ",", then \n]; the scale is a float printed at 9 significant digits
    expected = (
        '[ \n\t{\n\t\t"id": 0,\n\t\t"name": "red channel",\n\t\t"scale": 0.100000001\n\t},'
        '\n\t{\n\t\t"id": 1,\n\t\t"name": "green",\n\t\t"scale": 1\n\t},'
        '\n\t{\n\t\t"id": 2,\n\t\t"name": "say \\"blue\\"",\n\t\t"scale": 2.5\n\t}\n]'
    )
    assert result.body == b"\r\n" + expected.encode() + b"\r\n"
    pages = json.loads(result.body)
    assert [p["name"] for p in pages] == NAMES  # a quote in a name keeps it JSON
    unnamed = call(app_for(folder), "FIF=plain.tif&OBJ=stack").body
    assert json.loads(unnamed) == [{"id": 0, "name": "", "scale": 1},
                                   {"id": 1, "name": "", "scale": 1}]


def test_obj_stack_of_a_single_image_lists_nothing(folder):
    result = call(app_for(folder), "FIF=single.tif&OBJ=stack")
    assert b"[" not in result.body and b"id" not in result.body


def test_horizontal_views_number_the_pages(folder):
    app = app_for(folder)
    for query in ("FIF=stack.tif", "FIF=stack.tif&SDS=2"):
        result = call(app, query + "&OBJ=Horizontal-views&OBJ=Vertical-views")
        assert result.body == b"\r\nHorizontal-views:0 1 2\r\nVertical-views:90\r\n"
    single = call(app, "FIF=single.tif&OBJ=Horizontal-views").body
    assert single == b"\r\nHorizontal-views:0\r\n"


@pytest.mark.parametrize("name", ["stack.tif", "deflate.tif", "flat.tif"])
def test_sds_selects_the_page_of_every_output(folder, name):
    app = app_for(folder)
    pages = 2 if name == "deflate.tif" else 3
    for n in range(pages):
        before = call(app, f"SDS={n}&FIF={name}&JTL=0,0")  # SDS before FIF too
        assert near(colour_at(before.body), n), (n, before.status)
        top = 0 if name == "flat.tif" else 2  # the full resolution
        for query in (f"JTL={top},0", f"JTL={top},4", "PTL=0,0", "WID=120&CVT=png",
                      "RGN=0.5,0.5,0.2,0.2&WID=50&CVT=jpeg"):
            result = call(app, f"FIF={name}&SDS={n},90&{query}")
            assert result.status == 200, (query, result.body)
            assert near(colour_at(result.body, 2, 2), n), query
        til = call(app, f"FIF={name}&SDS={n}&TIL=0,0-0")
        assert til.status == 200 and b"Tile,0,0,0/" in til.body


def test_page_facts_answer_for_the_page(folder):
    app = app_for(folder)
    result = call(app, "FIF=stack.tif&SDS=1&OBJ=Max-size&OBJ=Resolution-number")
    assert result.body == b"\r\nMax-size:600 400\r\nResolution-number:3\r\n"


@pytest.mark.parametrize("query", ["FIF=stack.tif&SDS=3&JTL=0,0", "FIF=stack.tif&SDS=-1&JTL=0,0",
                                   "SDS=7&FIF=stack.tif&OBJ=Max-size",
                                   "FIF=stack.tif&SDS=99999&OBJ=Max-size"])
def test_a_missing_page_is_a_404_with_a_message(folder, query):
    result = call(app_for(folder), query)
    assert result.status == 404
    assert b"page" in result.body and b"does not exist" in result.body
    assert b"<html" not in result.body.lower()  # 1.3: 200 with its HTML page


def test_sds_on_a_single_image_is_ignored_as_before(folder):
    app = app_for(folder)
    plain = call(app, "FIF=single.tif&JTL=0,0").body
    assert call(app, "FIF=single.tif&SDS=3,90&JTL=0,0").body == plain
    assert call(app, "FIF=stack.tif&SDS=x&JTL=0,0").status == 400


# -- pass-through, caches, validators ----------------------------------------


def test_stored_jpeg_tiles_pass_through_on_every_page(folder):
    app = app_for(folder)
    decoder = TiffDecoder(str(folder / "stack.tif"))
    bodies = set()
    for n in range(3):
        stored = decoder.page(n).raw_tile(0, 0, 0)
        result = call(app, f"FIF=stack.tif&SDS={n}&JTL=2,0")
        assert result.body == stored  # the page's own stored bytes, no re-encode
        bodies.add(result.body)
    assert len(bodies) == 3


@pytest.mark.parametrize("env", [{"CODEC_PASSTHROUGH": "0"}, {}])
def test_tile_cache_keeps_pages_apart(folder, env):
    app = app_for(folder, **env)
    for query in ("JTL=0,0", "INV=1&JTL=2,0", "JTL=1,0"):  # cached (decoded) tiles
        first = call(app, f"FIF=deflate.tif&{query}")
        second = call(app, f"FIF=deflate.tif&SDS=1&{query}")
        again = call(app, f"FIF=deflate.tif&{query}")
        assert first.body == again.body
        assert first.body != second.body
        invert = "INV" in query
        page1 = tuple(255 - c for c in COLOURS[1]) if invert else COLOURS[1]
        assert all(abs(a - b) <= 6 for a, b in zip(colour_at(second.body), page1, strict=True))


def test_memcached_keys_keep_pages_apart(folder):
    from servers_nginx import have_memcached, start_memcached

    if not have_memcached():
        pytest.skip("memcached not installed")
    server = start_memcached(megabytes=16)
    try:
        env = {"MEMCACHED_SERVERS": server.address, "CODEC_PASSTHROUGH": "0"}
        writer, reader = app_for(folder, **env), app_for(folder, **env)  # two processes
        for n in range(2):
            call(writer, f"FIF=deflate.tif&SDS={n}&CNT=1.2&JTL=1,0")
        for n in (1, 0):
            body = call(reader, f"FIF=deflate.tif&SDS={n}&CNT=1.2&JTL=1,0").body
            expected = tuple(min(255, round(c * 1.2)) for c in COLOURS[n])
            assert all(abs(a - b) <= 6 for a, b in zip(colour_at(body), expected, strict=True))
    finally:
        server.stop()


def test_etags_differ_per_page_and_revalidate_per_page(folder):
    app = app_for(folder, IIIF_DELIMITER=";")
    zero = call(app, "FIF=stack.tif&JTL=2,0").header("ETag")
    one = call(app, "FIF=stack.tif&SDS=1&JTL=2,0").header("ETag")
    assert zero and one and zero != one
    assert call(app, "FIF=stack.tif&SDS=1&JTL=2,0", headers={"If-None-Match": one}).status == 304
    iiif0 = call(app, "IIIF=stack.tif;0/full/max/0/default.jpg").header("ETag")
    iiif1 = call(app, "IIIF=stack.tif;1/full/max/0/default.jpg")
    assert iiif1.header("ETag") != iiif0
    again = call(app, "IIIF=stack.tif;1/full/max/0/default.jpg", headers={"If-None-Match": iiif0})
    assert again.status == 200 and near(colour_at(again.body), 1)


def test_watermarked_stored_tiles_are_marked_per_page(folder, tmp_path):
    from test_watermark import write_mark

    mark = write_mark(tmp_path / "mark.tif", np.full((16, 16, 1), 200, np.uint8))
    app = app_for(folder, WATERMARK=mark, WATERMARK_OPACITY="0.5")
    for n in (0, 1, 0, 2, 1):  # stored tiles marked in their DCT blocks, MCU indexes per page
        body = call(app, f"FIF=stack.tif&SDS={n}&JTL=1,0").body
        pixels = np.asarray(Image.open(io.BytesIO(body)).convert("RGB")).reshape(-1, 3)
        assert near(tuple(int(v) for v in np.median(pixels, axis=0)), n)
        assert (np.abs(pixels.astype(int) - COLOURS[n]).max(axis=1) > 40).any()  # marked


# -- IIIF ------------------------------------------------------------------------


@pytest.mark.parametrize("name, delimiter, expected", [
    ("img.tif;2", ";", ("img.tif", 2)),
    ("img.tif", ";", ("img.tif", 0)),
    ("img.tif;0", ";", ("img.tif", 0)),
    ("a;b/img.tif;2", ";", ("a;b/img.tif", 2)),  # a delimiter in a directory name
    ("a;b/img.tif", ";", ("a;b/img.tif", 0)),
    ("img.tif;x", ";", ("img.tif;x", 0)),  # not a page number: part of the name
    ("img.tif;-1", ";", ("img.tif;-1", 0)),
    ("img.tif;", ";", ("img.tif;", 0)),
    (";2", ";", (";2", 0)),
    ("img.tif::12", "::", ("img.tif", 12)),  # several characters are one delimiter
    ("img.tif:12", "::", ("img.tif:12", 0)),
    ("img.tif,3", ",", ("img.tif", 3)),
    ("img.tif;2", "", ("img.tif;2", 0)),  # no IIIF_DELIMITER: no pages
    ("my_image.tif", "_", ("my_image.tif", 0)),
    ("my_image.tif_1", "_", ("my_image.tif", 1)),
])
def test_iiif_delimiter_splits_at_the_last_occurrence_before_a_number(name, delimiter, expected):
    assert split_page(name, delimiter) == expected


@pytest.mark.parametrize("name", ["img.tif;²", "img.tif;١", "img.tif;" + "9" * 40,
                                  "img.tif;2147483648"])
def test_a_page_number_that_is_not_an_ascii_c_int_is_a_400(name):
    with pytest.raises(BadRequest):
        split_page(name, ";")


def test_iiif_reaches_every_page(folder):
    app = app_for(folder, IIIF_DELIMITER=";")
    for n in range(3):
        info = call(app, f"IIIF=stack.tif;{n}/info.json")
        assert info.status == 200
        doc = json.loads(info.body)
        assert doc["id"].endswith(f"IIIF=stack.tif;{n}")
        assert (doc["width"], doc["height"]) == (600, 400)
        for size in ("max", "256,", "^700,"):
            result = call(app, f"IIIF=stack.tif;{n}/full/{size}/0/default.jpg")
            assert result.status == 200 and near(colour_at(result.body), n)
        tile = call(app, f"IIIF=stack.tif;{n}/0,0,256,256/256,/0/default.jpg")
        assert tile.body == TiffDecoder(str(folder / "stack.tif")).page(n).raw_tile(0, 0, 0)
    assert near(colour_at(call(app, "IIIF=stack.tif/full/max/0/default.jpg").body), 0)


def test_iiif_multi_character_delimiter_and_delimiter_in_a_directory(folder):
    app = app_for(folder, IIIF_DELIMITER="::")
    assert near(colour_at(call(app, "IIIF=stack.tif::2/full/64,/0/default.jpg").body), 2)
    app = app_for(folder, IIIF_DELIMITER=";")
    assert near(colour_at(call(app, "IIIF=dir;1%2Fstack.tif;2/full/64,/0/default.jpg").body), 2)
    assert near(colour_at(call(app, "IIIF=dir;1%2Fstack.tif/full/64,/0/default.jpg").body), 0)


@pytest.mark.parametrize("identifier, status", [
    ("stack.tif;3", 404), ("stack.tif;99999999", 404), ("single.tif;1", 404),
    ("nothing.tif;x", 404), ("dir;1/nothing.tif", 404),
    ("stack.tif;x", 400), ("stack.tif;99999999999999999999", 400),  # stack.tif is there
])
def test_iiif_missing_pages_are_protocol_errors(folder, identifier, status):
    app = app_for(folder, IIIF_DELIMITER=";")
    for tail in ("info.json", "full/max/0/default.jpg"):
        result = call(app, f"IIIF={identifier.replace('/', '%2F')}/{tail}")
        assert result.status == status, (identifier, tail, result.body)
        assert result.header("Content-Type").startswith("text/plain")
    assert call(app, "IIIF=single.tif;0/info.json").status == 200


def test_without_a_delimiter_a_page_suffix_is_part_of_the_name(folder):
    app = app_for(folder)
    assert call(app, "IIIF=stack.tif;1/info.json").status == 404


def test_deepzoom_and_zoomify_serve_page_zero(folder):
    app = app_for(folder)
    dz = call(app, "DeepZoom=stack.tif_files/10/0_0.jpg")
    assert dz.status == 200 and near(colour_at(dz.body), 0)
    zoomify = call(app, "Zoomify=stack.tif/TileGroup0/2-0-0.jpg")
    assert zoomify.status == 200 and near(colour_at(zoomify.body), 0)


# -- hostile stacks ----------------------------------------------------------------


def test_thousands_of_pages_open_quickly_and_list_in_full(folder):
    app = app_for(folder)
    start = time.perf_counter()
    listing = call(app, "FIF=many.tif&OBJ=stack")
    assert time.perf_counter() - start < 5
    assert len(json.loads(listing.body)) == 3000
    assert call(app, "FIF=many.tif&SDS=2999&JTL=0,3").status == 200
    assert call(app, "FIF=many.tif&SDS=3000&JTL=0,0").status == 404


def test_a_page_count_past_the_directory_bound_is_cut_at_the_bound(folder):
    app = app_for(folder)
    views = call(app, "FIF=toomany.tif&OBJ=Horizontal-views").body
    assert views.split(b":")[1].split()[-1] == str(MAX_IFDS - 1).encode()
    assert call(app, f"FIF=toomany.tif&SDS={MAX_IFDS - 1}&JTL=0,0").status == 200
    assert call(app, f"FIF=toomany.tif&SDS={MAX_IFDS}&JTL=0,0").status == 404


def test_subifd_loops_refuse_their_page_only(folder):
    app = app_for(folder)
    for n in (1, 2):  # page 1's SubIFD is page 0's directory; page 2's is itself
        result = call(app, f"FIF=loops.tif&SDS={n}&JTL=0,0")
        assert result.status == 404 and b"loop" in result.body
        assert call(app, f"FIF=loops.tif&SDS={n}&OBJ=Max-size").status == 404
    for _ in range(3):  # asked again and again: answered from what the first read found
        assert call(app, "FIF=loops.tif&SDS=1&JTL=0,0").status == 404
    assert call(app, "FIF=loops.tif&JTL=1,0").status == 200
    assert call(app, "FIF=loops.tif&SDS=3&JTL=0,0").status == 200
    assert call(app, "FIF=loops.tif&OBJ=Resolution-number").body == b"\r\nResolution-number:2\r\n"


def test_page_entries_are_bounded_by_the_open_image_cache(folder):
    import pyvips

    app = app_for(folder, MAX_METADATA_CACHE_SIZE="20")
    target = str(folder / "many.tif")

    def handles() -> int:
        names = []
        for fd in os.listdir("/proc/self/fd"):
            try:
                names.append(os.readlink(f"/proc/self/fd/{fd}"))
            except OSError:
                pass
        return names.count(target)

    for n in range(0, 3000, 75):  # 40 pages (libtiff walks the chain to each: ~0.1 s)
        assert call(app, f"FIF=many.tif&SDS={n}&JTL=0,0").status == 200
    assert app.renderer.open_images <= 20
    # each open page holds one handle, closed when it leaves the cache (libvips may
    # keep up to its own cache's limit of files open besides)
    assert handles() <= 20 + pyvips.cache_get_max_files()
