"""Finding OpenJPEG for glymur, living without it, and the decoder plug-in path.

The subprocess tests hide the system library from a fresh interpreter (a
``ctypes.util.find_library`` that does not know ``openjp2``, an empty glymur
configuration directory) instead of uninstalling anything.
"""

from __future__ import annotations

import configparser
import json
import os
import subprocess
import sys
import textwrap
import types
from importlib.metadata import EntryPoint
from pathlib import Path

import pytest
from wsgi import call, make_app

import iipy.decoders as decoders
from iipy.decoders import openjpeg
from iipy.decoders.jp2 import Jp2Decoder
from iipy.decoders.tiff import TiffDecoder

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def fresh_loader():
    """Forget the loader's outcome before and after a test."""
    openjpeg.reset()
    yield
    openjpeg.reset()


def fake_glymur(version: str = "2.5.0", library: object | None = None):
    """A glymur look-alike whose binding has no (or the given) OpenJPEG library."""
    binding = types.SimpleNamespace(OPENJP2=library, version=lambda: version)
    return types.SimpleNamespace(lib=types.SimpleNamespace(openjp2=binding),
                                 set_option=lambda key, value: None)


@pytest.mark.parametrize(
    ("glymur", "message"),
    [
        (fake_glymur(), b"OpenJPEG library (libopenjp2) is not installed"),
        (ModuleNotFoundError("No module named 'glymur'", name="glymur"),
         b"glymur is not installed"),
        # glymur present but a dependency of its own missing: Python's words, not "not installed"
        (ModuleNotFoundError("No module named 'packaging'", name="packaging"),
         b"glymur could not be imported (No module named 'packaging')"),
        (fake_glymur("2.3.1", library=object()), b"OpenJPEG 2.3.1 is too old"),
    ],
)
def test_without_openjpeg_jp2_requests_get_a_clear_error_and_tiff_still_works(
    image_dir, images, jp2_images, monkeypatch, fresh_loader, glymur, message
):
    def importer():
        if isinstance(glymur, Exception):
            raise glymur
        return glymur

    monkeypatch.setattr(openjpeg, "_import_glymur", importer)
    monkeypatch.setattr(openjpeg, "pillow_openjp2", lambda: None)
    app = make_app(FILESYSTEM_PREFIX=str(image_dir) + "/")
    queries = ("FIF=jp2_rgb.jp2&JTL=0,0", "FIF=jp2_rgb.jp2&OBJ=Max-size", "FIF=j2k.j2k&CVT=jpeg")
    for query in queries:
        result = call(app, query)
        assert result.status == 501
        assert message in result.body
        assert b"/" not in result.body.split(b"(install")[0]  # no filesystem path
    tiff = call(app, "FIF=rgb.tif&JTL=2,0")
    assert tiff.status == 200 and tiff.header("Content-Type") == "image/jpeg"
    assert call(app, "FIF=rgb.tif&OBJ=Max-size").body == b"\r\nMax-size:1000 700\r\n"


def test_the_loader_decides_once(monkeypatch, fresh_loader):
    calls = []

    def importer():
        calls.append(1)
        return fake_glymur()

    monkeypatch.setattr(openjpeg, "_import_glymur", importer)
    monkeypatch.setattr(openjpeg, "pillow_openjp2", lambda: None)
    for _ in range(3):
        with pytest.raises(openjpeg.DecoderUnavailable):
            openjpeg.glymur_module()
    assert calls == [1]


def test_pillow_bundles_an_openjpeg_library():
    path = openjpeg.pillow_openjp2()
    assert path is not None and "openjp2" in os.path.basename(path)
    assert os.path.isfile(path)


def run_python(code: str, cwd: Path, env_extra: dict | None = None) -> dict:
    """Run ``code`` in a fresh interpreter with glymur's configuration hidden; its JSON output."""
    config = cwd / "config"
    config.mkdir(exist_ok=True)
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + str(ROOT / "tests"),
               XDG_CONFIG_HOME=str(config), HOME=str(cwd))
    env.update(env_extra or {})
    result = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=cwd, env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


HIDE_SYSTEM_LIBRARY = """
    import ctypes.util
    _find = ctypes.util.find_library
    ctypes.util.find_library = lambda name: None if "openjp2" in name else _find(name)
"""

DECODE_AND_REPORT = """
    import json
    import numpy as np
    from images import jp2_pattern_array
    from iipy.decoders import openjpeg
    from iipy.decoders.jp2 import Jp2Decoder
    glymur = openjpeg.glymur_module()
    tile = Jp2Decoder(IMAGE).read_tile(0, 1, 1)
    exact = bool(np.array_equal(tile, jp2_pattern_array(1000, 700)[256:512, 256:512]))
    print(json.dumps({"library": openjpeg.library_path(glymur),
                      "version": glymur.version.openjpeg_version, "exact": exact}))
"""


def test_a_pip_only_install_decodes_with_pillow_s_openjpeg(jp2_images, tmp_path):
    code = HIDE_SYSTEM_LIBRARY + f"\n    IMAGE = {str(jp2_images.jp2_rgb)!r}\n" + DECODE_AND_REPORT
    report = run_python(code, tmp_path)
    assert report["library"] == openjpeg.pillow_openjp2()
    assert report["exact"] is True
    assert tuple(int(p) for p in report["version"].split(".")[:2]) >= (2, 4)


def test_a_glymurrc_can_point_glymur_at_pillow_s_openjpeg(jp2_images, tmp_path):
    bundled = openjpeg.pillow_openjp2()
    rc = tmp_path / "config" / "glymur" / "glymurrc"
    rc.parent.mkdir(parents=True)
    rc.write_text(f"[library]\nopenjp2: {bundled}\n")
    code = f"\n    IMAGE = {str(jp2_images.jp2_rgb)!r}\n" + DECODE_AND_REPORT
    report = run_python(code, tmp_path)
    assert report["library"] == bundled and report["exact"] is True


def test_with_no_library_anywhere_the_server_keeps_serving_tiff(image_dir, images, jp2_images,
                                                               tmp_path):
    code = HIDE_SYSTEM_LIBRARY + f"""
    import json
    from iipy.decoders import openjpeg
    openjpeg.pillow_openjp2 = lambda: None
    from wsgi import call, make_app
    app = make_app(FILESYSTEM_PREFIX={str(image_dir) + "/"!r})
    jp2 = call(app, "FIF=jp2_rgb.jp2&JTL=0,0")
    tiff = call(app, "FIF=rgb.tif&JTL=0,0")
    import glymur
    print(json.dumps({{"jp2": [jp2.status, jp2.body.decode()], "tiff": tiff.status,
                       "bound": glymur.lib.openjp2.OPENJP2 is not None}}))
    """
    report = run_python(code, tmp_path)
    assert report["bound"] is False
    assert report["jp2"][0] == 501 and "OpenJPEG library (libopenjp2)" in report["jp2"][1]
    assert report["tiff"] == 200


# -- the plug-in path ---------------------------------------------------------------


def declared_entry_points() -> list[EntryPoint]:
    """The ``iipy.decoders`` entry points as setup.cfg declares them."""
    parser = configparser.ConfigParser()
    parser.read(ROOT / "setup.cfg")
    lines = parser.get("options.entry_points", "iipy.decoders").strip().splitlines()
    points = []
    for line in lines:
        name, value = (part.strip() for part in line.split("=", 1))
        points.append(EntryPoint(name=name, value=value, group="iipy.decoders"))
    return points


@pytest.fixture
def clean_registry():
    decoders.reset_registry()
    yield
    decoders.reset_registry()


def test_setup_cfg_declares_the_jpeg2000_decoder_as_a_plug_in():
    assert [(ep.name, ep.value) for ep in declared_entry_points()] == [
        ("jp2", "iipy.decoders.jp2:Jp2Decoder")
    ]


def test_the_plug_in_path_loads_the_decoder(monkeypatch, clean_registry):
    monkeypatch.setattr(decoders, "_builtins", lambda: [TiffDecoder])
    monkeypatch.setattr(decoders, "entry_points", lambda group: declared_entry_points())
    assert decoders.registry() == [TiffDecoder, Jp2Decoder]


def test_a_plug_in_that_is_also_built_in_is_registered_once(monkeypatch, clean_registry):
    monkeypatch.setattr(decoders, "entry_points", lambda group: declared_entry_points())
    names = [cls.name for cls in decoders.registry()]
    assert sorted(names) == ["jp2", "jpeg", "png", "tiff"]
