"""Image sequences: FILENAME_PATTERN, SDS, Horizontal/Vertical-views (§11.6)."""

from __future__ import annotations

import io
import os

import pytest
from images import make_tiff
from PIL import Image
from wsgi import call, make_app


@pytest.fixture(scope="module")
def seq_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("sequences")
    # the iipsrv 1.1 test vector: 000_090, 010_090, 020_090, 000_080 (sizes tell them apart)
    for (x, y), width in {(0, 90): 300, (10, 90): 310, (20, 90): 320, (0, 80): 330}.items():
        make_tiff(d / f"seq_pyr_{x:03d}_{y:03d}.tif", width, 200)
    make_tiff(d / "odd*name_pyr_000_090.tif", 200, 100)
    make_tiff(d / "custom-000_090.tif", 120, 80)
    return d


def test_views_are_listed_from_the_files(seq_dir):
    app = make_app(FILESYSTEM_PREFIX=str(seq_dir) + "/")
    result = call(app, "FIF=seq&OBJ=Horizontal-views&OBJ=Vertical-views")
    assert result.status == 200
    assert result.body == b"\r\nHorizontal-views:0 10 20\r\nVertical-views:80 90\r\n"


def test_sds_selects_the_file(seq_dir):
    app = make_app(FILESYSTEM_PREFIX=str(seq_dir) + "/")
    assert call(app, "FIF=seq&OBJ=Max-size").body == b"\r\nMax-size:300 200\r\n"
    assert call(app, "FIF=seq&SDS=10,90&OBJ=Max-size").body == b"\r\nMax-size:310 200\r\n"
    assert call(app, "FIF=seq&SDS=20&OBJ=Max-size").body == b"\r\nMax-size:320 200\r\n"
    assert call(app, "SDS=0,80&FIF=seq&OBJ=Max-size").body == b"\r\nMax-size:330 200\r\n"
    tile = call(app, "FIF=seq&SDS=20,90&JTL=0,0")
    assert Image.open(io.BytesIO(tile.body)).size == (160, 100)
    assert call(app, "FIF=seq&SDS=30,90&JTL=0,0").status == 404
    assert call(app, "FIF=seq&SDS=x&JTL=0,0").status == 400


def test_filename_pattern_setting(seq_dir):
    app = make_app(FILESYSTEM_PREFIX=str(seq_dir) + "/", FILENAME_PATTERN="-")
    assert call(app, "FIF=custom&OBJ=Max-size").body == b"\r\nMax-size:120 80\r\n"
    assert call(app, "FIF=seq&OBJ=Max-size").status == 404


def test_wildcards_in_requests_are_plain_characters(seq_dir):
    app = make_app(FILESYSTEM_PREFIX=str(seq_dir) + "/")
    assert call(app, "FIF=se*&OBJ=Max-size").status == 404
    assert call(app, "FIF=s?q&OBJ=Max-size").status == 404
    assert call(app, "FIF=odd*name&OBJ=Max-size").body == b"\r\nMax-size:200 100\r\n"


def test_sequence_files_outside_the_prefix_are_not_read(tmp_path, seq_dir):
    root = tmp_path / "root"
    root.mkdir()
    os.symlink(seq_dir / "seq_pyr_000_090.tif", root / "link_pyr_000_090.tif")
    app = make_app(FILESYSTEM_PREFIX=str(root) + "/")
    assert call(app, "FIF=link&OBJ=Max-size").status == 404
    outside = make_app(FILESYSTEM_PREFIX=str(root) + "/")
    assert call(outside, f"FIF=../{seq_dir.name}/seq&OBJ=Max-size").status == 404
