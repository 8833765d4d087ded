"""The shared (memcached) cache of encoded tiles and exports, and the front
end's copy of JPEG tiles.

Two kinds of entries, both written only when ``MEMCACHED_SERVERS`` is set:

* **render entries**, looked up before any decode.  The key is a digest of
  what makes the bytes differ: the View (path, kind, format, quality,
  resolution, tile, processing, layers), the file's version (mtime, size,
  inode: a replaced image gets new keys, so iipy never serves a stale tile)
  and the settings that shape output (:data:`SHAPING`, so hosts with different
  output settings may share one memcached; log files and cache sizes may differ).
* **front entries** (``IIPY_FRONT_CACHE``, on by default with memcached, written
  only for requests whose front end passes ``IIPY_FRONT_CACHE=1``, as
  nginx/fastcgi_iipy.inc does: behind lighttpd or Apache nobody reads them): a
  JPEG tile or an IIP metadata (OBJ) answer is also stored under ``iipy:`` + its request
  URI, escaped as
  nginx's ``memcached_key`` escapes it, so the front end can answer the next
  request for that URI from memcached without reaching iipy
  (``nginx/iipy.conf``).  These cannot see a replaced file: they last until
  ``MEMCACHED_TIMEOUT`` expires them (or memcached is flushed).

Watermarked responses differ per request and are never stored.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable

from ..models import View
from ..settings import Settings
from .memcache import Memcache, parse_servers

#: request URIs whose JPEG answers are tiles (IIP JTL, IIIF, DeepZoom, Zoomify), and those
#: whose answers are IIP metadata (OBJ); the ``map`` in nginx/iipy.conf uses the same
#: expressions, in the same order, and gives each its Content-Type
FRONT_URI = re.compile(
    r"[?&]JTL=|/iiif/.*\.jpg$|_files/\d+/\d+_\d+\.jpg$|/TileGroup\d+/", re.IGNORECASE
)
FRONT_OBJ = re.compile(r"[?&]OBJ=", re.IGNORECASE)
OBJ_TYPE = "application/vnd.netfpx"
FRONT_PREFIX = b"iipy:"
KEY_VERSION = 1  # bump when the bytes iipy produces for the same View change
#: the settings that change a rendered tile's or export's bytes
SHAPING = ("jpeg_quality", "png_quality", "webp_quality", "tiff_compression", "tiff_quality",
           "max_layers", "interpolation", "embed_icc", "max_icc", "codec_passthrough")
MAX_KEY = 250  # memcached's key limit
_ESCAPE = frozenset(range(0x21)) | {ord("%")}  # nginx escapes these in memcached_key


def front_key(uri: str) -> bytes | None:
    """The key nginx computes from ``"iipy:$request_uri"`` (None: too long)."""
    raw = uri.encode("latin-1", "replace")
    if any(b in _ESCAPE for b in raw):
        raw = b"".join(b"%%%02X" % b if b in _ESCAPE else bytes((b,)) for b in raw)
    key = FRONT_PREFIX + raw
    return key if len(key) <= MAX_KEY else None


class SharedTiles:
    """Render entries and front entries on one memcached client."""

    def __init__(self, cache: Memcache | None, settings: Settings, front: bool) -> None:
        self.cache = cache  # None: no memcached, every method a no-op
        self.front = front
        shaping = repr([KEY_VERSION] + [getattr(settings, name) for name in SHAPING])
        self._salt = hashlib.blake2b(shaping.encode(), digest_size=8)

    @classmethod
    def from_settings(cls, settings: Settings) -> SharedTiles:
        servers = parse_servers(settings.memcached_servers)
        cache = Memcache(servers, settings.memcached_timeout) if servers else None
        return cls(cache, settings, settings.front_cache)

    def __bool__(self) -> bool:
        return self.cache is not None

    def through(self, make: Callable[[], bytes], view: View, stamp: tuple[int, ...],
                *extra: object, store: bool = True) -> bytes:
        """The stored bytes for (view, stamp, extra), else ``make()``, stored unless
        ``store`` is False (watermarked answers)."""
        if self.cache is None or not store:
            return make()
        key = self.key(view, stamp, *extra)
        data = self.cache.get(key)
        if data is None:
            data = make()
            self.cache.set(key, data)
        return data

    def key(self, view: View, stamp: tuple[int, ...], *extra: object) -> bytes:
        digest = self._salt.copy()
        digest.update(repr((view, stamp, extra)).encode("utf-8", "surrogateescape"))
        return b"iipy:r:" + digest.hexdigest().encode()

    def put_front(self, uri: str, content_type: str, data: bytes) -> None:
        """Store a JPEG tile or an IIP metadata answer under its URI for the front end."""
        if self.cache is None or not self.front:
            return
        if FRONT_URI.search(uri):
            if content_type != "image/jpeg":
                return
        elif not (content_type == OBJ_TYPE and FRONT_OBJ.search(uri)):
            return
        key = front_key(uri)
        if key is not None:
            self.cache.set(key, data)
