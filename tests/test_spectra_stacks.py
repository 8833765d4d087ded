"""SPECTRA and PFL over real multi-page TIFF stacks (tests/stacks.py: pages in
the main chain, each with its SubIFD pyramid; page n a flat colour, named by
DocumentName and scaled by STONITS): every band of every page, as iipsrv 1.3
should give them (it reads one sample a page for SPECTRA and past its buffer
for PFL after the first page of a colour stack)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from samplefiles import reflectance, spectra_xml
from stacks import COLOURS, make_stack
from wsgi import call, make_app

NAMES = ["red", "", "blue", "yellow"]
SCALES = [1.0, 0.5, 2.0, 1.0]


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    directory = tmp_path_factory.mktemp("real-stacks")
    make_stack(directory / "stack.tif", 600, 400, pages=4, names=NAMES, scales=SCALES,
               compression="deflate")
    make_stack(directory / "small.tif", 200, 100, pages=3, compression="deflate",
               subifd=False)
    return make_app(FILESYSTEM_PREFIX=f"{directory}/")


def label(n: int) -> str:
    return NAMES[n] or str(n)


@pytest.mark.parametrize("resolution,tile,x,y", [(2, 0, 0, 0), (2, 5, 87, 143), (0, 0, 10, 10)])
def test_spectra_every_band_of_every_page(app, resolution, tile, x, y):
    result = call(app, f"FIF=stack.tif&SPECTRA={resolution},{tile},{x},{y}")
    assert result.status == 200
    points = [(label(n), b, reflectance(COLOURS[n][b], np.uint8)) for n in range(4)
              for b in range(3)]
    assert result.body == spectra_xml(points)


def test_spectra_whatever_page_sds_selected(app):
    result = call(app, "FIF=stack.tif&SDS=2&SPECTRA=2,0,1,1")
    assert result.status == 200
    assert result.body == call(app, "FIF=stack.tif&SPECTRA=2,0,1,1").body
    assert result.body.count(b"<point>") == 12  # 4 pages x 3 bands, not page 2 alone


def test_pfl_every_page_scaled(app):
    result = call(app, "FIF=stack.tif&PFL=2:590,10-600,10")
    profile = json.loads(result.body)["profile"]
    assert list(profile) == [label(n) for n in range(4)]
    for n in range(4):
        expected = list(COLOURS[n]) * 10
        assert profile[label(n)] == pytest.approx([v * SCALES[n] for v in expected])


def test_single_level_pages(app):
    result = call(app, "FIF=small.tif&PFL=0:0,99-0,0")
    profile = json.loads(result.body)["profile"]
    assert profile == {str(n): list(COLOURS[n]) for n in range(3)}


def test_pages_a_request_reads_are_bounded(tmp_path, monkeypatch):
    """A stack of 300 pages in a few kB (libvips reads every directory whenever it
    opens a page: all pages at once would cost pages² reads) is refused before
    any page is opened."""
    from stacks import many_pages_tiff

    from iipy.decoders.tiff import TiffDecoder
    from iipy.render import samples

    (tmp_path / "many.tif").write_bytes(many_pages_tiff(samples.MAX_PAGES + 44))
    (tmp_path / "fewer.tif").write_bytes(many_pages_tiff(samples.MAX_PAGES // 8))
    opened = []
    page = TiffDecoder.page
    monkeypatch.setattr(TiffDecoder, "page", lambda self, n: opened.append(n) or page(self, n))
    app = make_app(FILESYSTEM_PREFIX=f"{tmp_path}/")
    for query in ("SPECTRA=0,0,3,3", "PFL=0:0,0-16,0"):
        result = call(app, f"FIF=many.tif&{query}")
        assert result.status == 400 and b"at most 256 pages" in result.body
    assert opened == []
    assert call(app, "FIF=fewer.tif&SPECTRA=0,0,3,3").status == 200
    assert sorted(opened) == list(range(1, samples.MAX_PAGES // 8))
