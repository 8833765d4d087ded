"""Decoder plug-ins: entry-point group ``iipy.decoders``, chosen by magic bytes."""

from __future__ import annotations

import logging

import numpy as np
import pytest

import iipy.decoders as registry_module
from iipy.decoders import Decoder, decoder_for, registry, reset_registry
from iipy.errors import UnsupportedImage
from iipy.models import ImageInfo, Level


class FakeDecoder(Decoder):
    name = "fake"
    rank = 5

    @classmethod
    def can_read(cls, head: bytes) -> bool:
        return head.startswith(b"FAKEIMG")

    def __init__(self, path: str) -> None:
        self.info = ImageInfo("fake", (Level(8, 4, 256, 256),), 1, 8)

    def read_region(self, level, left, top, width, height):
        return np.full((height, width, 1), 7, dtype=np.uint8)


class EntryPoint:
    def __init__(self, name, target):
        self.name = name
        self.target = target

    def load(self):
        if isinstance(self.target, Exception):
            raise self.target
        return self.target


@pytest.fixture()
def plugins(monkeypatch):
    points = [
        EntryPoint("broken", ImportError("no module named 'missing_codec'")),
        EntryPoint("notadecoder", object),
        EntryPoint("fake", FakeDecoder),
    ]
    monkeypatch.setattr(registry_module, "entry_points", lambda group: points)
    reset_registry()
    yield
    reset_registry()


def test_working_plugin_is_used_and_broken_ones_are_logged(plugins, tmp_path, caplog):
    with caplog.at_level(logging.ERROR, logger="iipy.decoders"):
        names = [cls.name for cls in registry()]
    assert names[0] == "tiff" and "fake" in names
    assert "broken" in caplog.text and "missing_codec" in caplog.text
    assert "notadecoder" in caplog.text
    path = tmp_path / "x.fake"
    path.write_bytes(b"FAKEIMG" + b"\0" * 20)
    decoder = decoder_for(str(path))
    assert isinstance(decoder, FakeDecoder)
    assert decoder.read_tile(0, 0, 0).shape == (4, 8, 1)


def test_plugin_serves_through_the_application(plugins, tmp_path):
    from wsgi import call, make_app

    (tmp_path / "x.fake").write_bytes(b"FAKEIMG" + b"\0" * 20)
    app = make_app(FILESYSTEM_PREFIX=str(tmp_path) + "/")
    assert call(app, "FIF=x.fake&OBJ=Max-size").body == b"\r\nMax-size:8 4\r\n"
    assert call(app, "FIF=x.fake&JTL=0,0").status == 200


def test_unknown_magic_is_unsupported(tmp_path):
    path = tmp_path / "x.bin"
    path.write_bytes(b"\x00" * 32)
    with pytest.raises(UnsupportedImage):
        decoder_for(str(path))
