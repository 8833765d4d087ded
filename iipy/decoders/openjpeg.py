"""OpenJPEG for glymur: found once per process, or reported clearly as missing.

glymur binds ``libopenjp2`` with ctypes when it is first imported (and lays
out its ctypes structures for that library's version then), from

1. a ``glymurrc`` file (``[library]`` ``openjp2 = /path/to/libopenjp2.so``) in
   the working directory, ``$XDG_CONFIG_HOME/glymur/`` or
   ``~/.config/glymur/``, else
2. the system library that ``ctypes.util.find_library("openjp2")`` finds
   (Debian and Ubuntu: the ``libopenjp2-7`` package).

A pip-only install has neither, but Pillow's wheels bundle an OpenJPEG
(``PIL/../pillow.libs/libopenjp2-<hash>.so.2.5.x`` on Linux,
``PIL/.dylibs/libopenjp2.*.dylib`` on macOS).  So glymur is imported here
with ``find_library`` answering Pillow's library when it finds no other:
``pip install iipy`` serves JPEG 2000 without any system package, and a
glymurrc or the system library still take precedence.  With no usable
library at all, opening a JPEG 2000 file raises
:class:`~iipy.errors.DecoderUnavailable` (HTTP 501) with a message saying what
to install; TIFF and everything else keep working.

glymur is imported lazily, here and nowhere else in the server, so a server
that never sees a JPEG 2000 file never loads it.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import glob
import importlib
import importlib.util
import logging
import os
import sys
import threading
from types import ModuleType

import numpy as np

from ..errors import DecoderUnavailable

log = logging.getLogger(__name__)

#: OpenJPEG worker threads per decode.  0 decodes in the calling thread: one
#: decoder thread per process, which is best when every core already runs a
#: worker process (measured on 2 cores, docs/jpeg2000.md).  1 would also use a
#: single core, but OpenJPEG starts that thread anew for every decode (each
#: decode has its own codec), 2-10 ms a tile slower.
DECODER_THREADS = 0
#: glymur 0.14 refuses to decode with anything older.
MIN_VERSION = (2, 4, 0)

MISSING = (
    "JPEG 2000 images cannot be served: the OpenJPEG library (libopenjp2) is not "
    "installed on this server (install libopenjp2-7, or Pillow's wheel, which bundles it)"
)
NO_GLYMUR = "JPEG 2000 images cannot be served: the Python package glymur is not installed"

_lock = threading.Lock()
_glymur: ModuleType | None = None
_failure: str | None = None


def glymur_module() -> ModuleType:
    """glymur, bound to a usable OpenJPEG; DecoderUnavailable otherwise.

    The outcome (success or the reason for failure) is decided once per
    process and remembered.
    """
    global _glymur, _failure
    if _glymur is not None:
        return _glymur
    with _lock:
        if _glymur is None and _failure is None:
            try:
                _glymur = _load()
            except DecoderUnavailable as exc:
                _failure = exc.message
                log.error("%s", exc.message)
        if _glymur is None:
            raise DecoderUnavailable(_failure or MISSING)
        return _glymur


def reset() -> None:
    """Forget the outcome so that the next call looks again (tests)."""
    global _glymur, _failure
    with _lock:
        _glymur = None
        _failure = None


def _import_glymur() -> ModuleType:
    """Import glymur, offering it Pillow's OpenJPEG if it finds no other."""
    if "glymur" in sys.modules:  # imported earlier: its library is already chosen
        return sys.modules["glymur"]
    original = ctypes.util.find_library

    def find_library(name: str) -> str | None:
        found = original(name)
        if found is None and name == "openjp2":
            found = pillow_openjp2()
            if found is not None:
                log.info("OpenJPEG: no system library; using the one bundled with Pillow")
        return found

    ctypes.util.find_library = find_library
    try:
        return importlib.import_module("glymur")
    finally:
        ctypes.util.find_library = original


def _load() -> ModuleType:
    try:
        glymur = _import_glymur()
    except ImportError as exc:
        raise DecoderUnavailable(import_failure(exc)) from None
    if glymur.lib.openjp2.OPENJP2 is None:
        raise DecoderUnavailable(MISSING)
    version = library_version(glymur)
    if version < MIN_VERSION:
        raise DecoderUnavailable(
            "JPEG 2000 images cannot be served: OpenJPEG "
            + ".".join(map(str, version))
            + " is too old (2.4 or later is needed)"
        )
    try:
        glymur.set_option("lib.num_threads", DECODER_THREADS)
    except RuntimeError as exc:  # a library built without thread support
        log.warning("OpenJPEG: %s; decoding in the calling thread", exc)
    return glymur


def import_failure(exc: ImportError) -> str:
    """Why glymur cannot be used: not installed, or installed but broken (e.g. a
    dependency of its own missing), with Python's own words for the latter."""
    if isinstance(exc, ModuleNotFoundError) and exc.name == "glymur":
        return NO_GLYMUR
    return f"JPEG 2000 images cannot be served: glymur could not be imported ({exc})"


def library_version(glymur: ModuleType) -> tuple[int, ...]:
    """The OpenJPEG version glymur is bound to, e.g. (2, 5, 0)."""
    text = glymur.lib.openjp2.version()
    parts = []
    for piece in text.split(".")[:3]:
        digits = "".join(ch for ch in piece if ch.isdigit())
        parts.append(int(digits or 0))
    return tuple(parts)


def library_path(glymur: ModuleType) -> str:
    """File name of the OpenJPEG library glymur uses ("" when none)."""
    lib = glymur.lib.openjp2.OPENJP2
    return "" if lib is None else str(getattr(lib, "_name", ""))


def pillow_openjp2() -> str | None:
    """Path of the OpenJPEG shared library inside Pillow's wheel, if any."""
    spec = importlib.util.find_spec("PIL")
    if spec is None or not spec.submodule_search_locations:
        return None
    package = list(spec.submodule_search_locations)[0]
    patterns = [
        os.path.join(package, os.pardir, "pillow.libs", "libopenjp2*.so*"),  # Linux wheels
        os.path.join(package, ".dylibs", "libopenjp2*.dylib"),  # macOS wheels
    ]
    if sys.platform == "win32":
        patterns.append(os.path.join(package, os.pardir, "pillow.libs", "openjp2*.dll"))
    for pattern in patterns:
        found = sorted(glob.glob(pattern))
        if found:
            return os.path.realpath(found[-1])
    return None


# -- reading ------------------------------------------------------------------

#: Read buffer of the OpenJPEG file stream.  OpenJPEG's default (1 MB) is
#: allocated and refilled for every decode, and every seek past it (to the
#: tile parts of the area) refills it again; a small buffer saves 1-2.5 ms a
#: 256x256 tile (paired measurement on 5000x3750 and 20000x15000 tiled files;
#: reads larger than the buffer go straight to their destination).
STREAM_BUFFER = 4096
CODEC_J2K, CODEC_JP2 = 0, 2  # OpenJPEG's OPJ_CODEC_J2K, OPJ_CODEC_JP2

_DTYPES = {(False, 8): np.uint8, (True, 8): np.int8, (False, 16): np.uint16, (True, 16): np.int16}


@ctypes.CFUNCTYPE(ctypes.c_void_p, ctypes.c_char_p, ctypes.c_void_p)
def _warning(message: bytes, _client: object) -> None:
    log.debug("OpenJPEG: %s", message.decode("utf-8", "replace").rstrip())


def decode_area(
    glymur: ModuleType,
    source: str,
    codec_format: int,
    reduce: int,
    layers: int,
    area: tuple[int, int, int, int],
) -> np.ndarray:
    """Decode ``area`` (x0, y0, x1, y1 on the reference grid) at reduce factor
    ``reduce`` with at most ``layers`` quality layers (0: all).

    Uses glymur's ctypes binding of OpenJPEG directly, as glymur's own reader
    does, but with a small stream buffer, decoding in the calling thread, and
    no Python warnings: one fresh stream and codec per call (OpenJPEG cannot
    decode a second area of a tiled codestream with a codec it has used).
    Returns (height, width, components) in the samples' own integer type;
    raises glymur's OpenJPEGLibraryError if OpenJPEG fails, ValueError for
    data it cannot return as 8 or 16-bit samples.
    """
    opj = glymur.lib.openjp2
    library = opj.OPENJP2
    params = opj.set_default_decoder_parameters()
    params.cp_reduce = reduce
    params.cp_layer = layers
    create = library.opj_stream_create_file_stream
    create.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.c_int32]
    create.restype = ctypes.c_void_p
    stream = create(os.fsencode(source), STREAM_BUFFER, 1)
    if not stream:
        raise opj.OpenJPEGLibraryError("the file could not be opened")
    codec = image = None
    try:
        codec = opj.create_decompress(codec_format)
        opj.set_error_handler(codec, opj._ERROR_CALLBACK)
        opj.set_warning_handler(codec, _warning)
        opj.set_info_handler(codec, None)
        opj.setup_decoder(codec, params)
        opj.codec_set_threads(codec, DECODER_THREADS)
        image = opj.read_header(stream, codec)
        opj.set_decode_area(codec, image, *area)
        opj.decode(codec, stream, image)
        return _pixels(image.contents)
    finally:
        if image is not None:
            opj.image_destroy(image)
        if codec is not None:
            opj.destroy_codec(codec)
        opj.stream_destroy(stream)


def _pixels(image: object) -> np.ndarray:
    comps = image.comps  # type: ignore[attr-defined]
    count = image.numcomps  # type: ignore[attr-defined]
    first = comps[0]
    height, width = first.h, first.w
    if height == 0 or width == 0:
        raise ValueError("OpenJPEG decoded an empty area")
    dtype = _DTYPES.get((bool(first.sgnd), 8 if first.prec <= 8 else 16))
    if dtype is None or first.prec > 16:
        raise ValueError(f"{first.prec}-bit samples")
    out = np.empty((height, width, count), dtype=dtype)
    for k in range(count):
        comp = comps[k]
        if (comp.h, comp.w) != (height, width) or not comp.data:
            raise ValueError("components of different sizes")
        samples = np.ctypeslib.as_array(comp.data, shape=(height * width,))
        out[:, :, k] = samples.reshape(height, width)
    return out
