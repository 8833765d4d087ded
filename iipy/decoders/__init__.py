"""Decoder registry: built-ins plus plug-ins from the ``iipy.decoders``
entry-point group, chosen by the file's magic bytes.

A plug-in that fails to import is logged and skipped; it never stops the
server.
"""

from __future__ import annotations

import logging
import os
from importlib.metadata import entry_points

from ..errors import NotFound, UnsupportedImage
from .base import Decoder

log = logging.getLogger(__name__)

_registry: list[type[Decoder]] | None = None


def _builtins() -> list[type[Decoder]]:
    found: list[type[Decoder]] = []
    from .jp2 import Jp2Decoder
    from .tiff import TiffDecoder

    found.append(TiffDecoder)
    found.append(Jp2Decoder)
    return found


def registry() -> list[type[Decoder]]:
    """All decoder classes, highest rank first (loaded once)."""
    global _registry
    if _registry is None:
        classes = _builtins()
        names = {cls.name for cls in classes}
        for ep in entry_points(group="iipy.decoders"):
            try:
                cls = ep.load()
            except Exception as exc:  # a broken plug-in must not stop the server
                log.error("decoder plug-in %s could not be loaded: %s", ep.name, exc)
                continue
            if not (isinstance(cls, type) and issubclass(cls, Decoder)):
                log.error("decoder plug-in %s is not a Decoder subclass", ep.name)
                continue
            if cls.name in names:
                continue
            names.add(cls.name)
            classes.append(cls)
        classes.sort(key=lambda c: -c.rank)
        _registry = classes
    return _registry


def reset_registry() -> None:
    global _registry
    _registry = None


def decoder_for(path: str) -> Decoder:
    """Open ``path`` with the first decoder that recognises its magic bytes."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(16)
    except FileNotFoundError:
        raise NotFound("image not found") from None
    except IsADirectoryError:
        raise NotFound("image not found") from None
    except PermissionError:
        raise NotFound("image not found") from None
    except OSError as exc:
        raise NotFound(f"image could not be read ({os.strerror(exc.errno or 0)})") from None
    if len(head) < 10:
        raise UnsupportedImage("file is too short to be an image")
    for cls in registry():
        if cls.can_read(head):
            return cls(path)
    raise UnsupportedImage("unsupported image type")


__all__ = ["Decoder", "decoder_for", "registry", "reset_registry"]
