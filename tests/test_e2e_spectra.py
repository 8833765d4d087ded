"""SPECTRA and PFL through a real lighttpd spawning iipy: the XML and JSON
bodies, their headers and an error, as a browser client gets them."""

from __future__ import annotations

import json

import pytest
from samplefiles import profile_values, random_array, reflectance, spectra_xml, write_tiff
from servers import Spawn, iipy_argv, iipy_environment, start_lighttpd


@pytest.fixture(scope="module")
def web(tmp_path_factory):
    images = tmp_path_factory.mktemp("e2e-spectra")
    arrays = {"six": random_array("uint16", 6, 11), "rgbf": random_array("float32", 3, 12)}
    for name, array in arrays.items():
        write_tiff(images / f"{name}.tif", array)
    directory = tmp_path_factory.mktemp("web-spectra")
    env = iipy_environment({"FILESYSTEM_PREFIX": f"{images}/", "CORS": "*",
                            "LOGFILE": str(directory / "iipy.log")})
    with start_lighttpd(Spawn(iipy_argv(), env, processes=1), directory / "lighttpd") as server:
        yield server, arrays


def test_spectra_through_lighttpd(web):
    server, arrays = web
    result = server.get("FIF=six.tif&SPECTRA=3,6,17,40")
    assert result.status == 200
    assert result.header("Content-Type") == "application/xml"
    assert result.header("Access-Control-Allow-Origin") == "*"
    six = arrays["six"]
    assert result.body == spectra_xml([(str(b), None, reflectance(v, six.dtype))
                                       for b, v in enumerate(six[104, 81])])


def test_pfl_through_lighttpd(web):
    server, arrays = web
    result = server.get("FIF=rgbf.tif&PFL=3:0,150-300,150")
    assert result.status == 200
    assert result.header("Content-Type") == "application/json"
    assert int(result.header("Content-Length")) == len(result.body)
    assert result.body == ('{\n\t"profile": [' + profile_values(arrays["rgbf"][150:151])
                           + "]\n}").encode()
    assert len(json.loads(result.body)["profile"]) == 900


def test_bad_pfl_through_lighttpd(web):
    server, _ = web
    result = server.get("FIF=rgbf.tif&PFL=3:0,150-301,150")
    assert result.status == 400
    assert b"outside" in result.body
