"""Decoder registry: built-ins plus plug-ins from the ``iipy.decoders``
entry-point group, chosen by the file's magic bytes.

A plug-in that fails to import is logged and skipped; it never stops the
server.

A file that cannot be opened (permissions, not a regular file, an I/O error)
or that no decoder can read is logged (VERBOSITY 1) with its resolved path
and the operating system's error; the client only hears "image not found"
or the decoder's message, never a path.
"""

from __future__ import annotations

import logging
import os
import stat
from importlib.metadata import entry_points

from ..errors import IIPyError, NotFound, UnsupportedImage
from .base import Decoder

log = logging.getLogger(__name__)

_registry: list[type[Decoder]] | None = None


def _builtins() -> list[type[Decoder]]:
    found: list[type[Decoder]] = []
    from .flatvips import JpegDecoder, PngDecoder
    from .jp2 import Jp2Decoder
    from .tiff import TiffDecoder

    found.append(TiffDecoder)
    found.append(Jp2Decoder)
    found.append(JpegDecoder)
    found.append(PngDecoder)
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


def read_head(path: str, size: int = 16) -> bytes:
    """The first bytes of a regular file, or NotFound (logged with the OS error).

    The file is opened non-blocking and checked with ``fstat`` before any
    read, so a FIFO, a device or a directory is refused without waiting on
    it (a FIFO with no writer would otherwise hold the worker forever).
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        raise NotFound("image not found") from None
    except (OSError, ValueError) as exc:
        log.warning("cannot open image %s: %s", path, _os_error(exc))
        raise NotFound("image not found") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            log.warning("cannot open image %s: not a regular file", path)
            raise NotFound("image not found")
        return os.read(fd, size)
    except OSError as exc:
        log.warning("cannot read image %s: %s", path, _os_error(exc))
        raise NotFound("image not found") from None
    finally:
        os.close(fd)


def _os_error(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.errno:
        return f"{os.strerror(exc.errno)} (errno {exc.errno})"
    return str(exc) or type(exc).__name__


def decoder_for(path: str, max_pixels: int = 1 << 28) -> Decoder:
    """Open ``path`` with the first decoder that recognises its magic bytes.

    ``max_pixels`` is MAX_SOURCE_PIXELS: an untiled image declaring more is
    refused before it is decoded."""
    head = read_head(path)
    if len(head) < 10:
        log.warning("cannot read image %s: file is too short (%d bytes)", path, len(head))
        raise UnsupportedImage("file is too short to be an image")
    for cls in registry():
        if cls.can_read(head):
            try:
                return cls.open(path, max_pixels)
            except IIPyError as exc:
                log.warning("cannot read image %s: %s", path, exc.message)
                raise
            except OSError as exc:
                log.warning("cannot read image %s: %s", path, _os_error(exc))
                raise NotFound("image not found") from None
    log.warning("cannot read image %s: no decoder recognises it", path)
    raise UnsupportedImage("unsupported image type")


__all__ = ["Decoder", "decoder_for", "registry", "reset_registry"]
