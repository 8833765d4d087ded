"""Honest identity (issue 14, item 6): iipy names itself in the Server header and on its
home page; iipsrv's value only when IIPY_SERVER_HEADER asks for it; OBJ=IIP-server keeps
the protocol version clients parse."""

from __future__ import annotations

import pytest
from wsgi import call, make_app

import iipy

OWN = f"iipy/{iipy.__version__}"


@pytest.mark.parametrize(
    ("setting", "header"),
    [(None, OWN), ("", OWN), ("iipsrv", "iipsrv/1.1"), ("IIPsrv", "iipsrv/1.1"),
     ("Apache", "Apache")],
)
def test_server_header(images, image_dir, setting, header):
    env = {"FILESYSTEM_PREFIX": f"{image_dir}/"}
    if setting is not None:
        env["IIPY_SERVER_HEADER"] = setting
    app = make_app(**env)
    for query in ("FIF=rgb.tif&OBJ=Max-size", "FIF=rgb.tif&JTL=0,0", "FIF=missing.tif&JTL=0,0",
                  ""):
        assert call(app, query).header("Server") == header


def test_home_page_names_the_version():
    page = call(make_app(), "")
    assert page.status == 200 and f"iipy {iipy.__version__}".encode() in page.body


def test_iip_server_object_keeps_the_protocol_version_clients_parse(images, image_dir):
    # IIPMooViewer and friends read a number here: it is the protocol's, not the program's
    body = call(make_app(FILESYSTEM_PREFIX=f"{image_dir}/"), "FIF=rgb.tif&OBJ=IIP-server").body
    assert body == b"\r\nIIP-server:3.65\r\n"
