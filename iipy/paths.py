"""From a path in a request to a real file under FILESYSTEM_PREFIX.

iipsrv decodes the FIF argument once, removes every ``../`` and concatenates
FILESYSTEM_PREFIX + path + FILESYSTEM_SUFFIX.  We do the same, and then also
resolve the result with ``realpath`` and refuse anything that lands outside
the prefix, so a symbolic link that points out of the image tree cannot be
followed either.  Error messages never contain filesystem paths.
"""

from __future__ import annotations

import os
import re

from .errors import NotFound

_PERCENT = re.compile(rb"%([0-9A-Fa-f]{2})")


def url_decode(value: str, plus_is_space: bool = True) -> str:
    """iipsrv's decoder: ``%XX`` → byte, ``+`` → space, ``%00`` dropped.

    A ``%`` not followed by two hex digits passes through unchanged.  Bytes
    are decoded as UTF-8 (invalid sequences are kept via surrogateescape so
    that file names in other encodings still reach the filesystem).
    ``plus_is_space`` False keeps ``+`` (a URL path, as IIIF identifiers are).
    """
    raw = value.encode("utf-8", "surrogateescape")
    if plus_is_space:
        raw = raw.replace(b"+", b" ")

    def byte(match: re.Match[bytes]) -> bytes:
        code = int(match.group(1), 16)
        return b"" if code == 0 else bytes([code])

    return _PERCENT.sub(byte, raw).decode("utf-8", "surrogateescape")


def strip_parent_refs(path: str) -> str:
    """Remove every ``../`` until none is left (so ``....//`` vanishes too)."""
    while "../" in path:
        path = path.replace("../", "")
    return path


class PathResolver:
    """Maps request paths to files, confined to the prefix.

    ``realpath`` costs one ``lstat`` per path component.  Once a path has
    been vetted, later requests only ``stat`` it: if it still leads to the
    same file (device and inode), that file was already found to lie inside
    the prefix; if anything changed (a link re-pointed, a file replaced), the
    full check runs again.
    """

    MAX_REMEMBERED = 10000

    def __init__(self, prefix: str, suffix: str = "") -> None:
        self.prefix = prefix
        self.suffix = suffix
        if prefix:
            base = prefix if prefix.endswith("/") else os.path.dirname(prefix) or "."
            self.root: str | None = os.path.realpath(base)
        else:
            self.root = None
        self._vetted: dict[str, tuple[str, int, int]] = {}

    def locate(self, requested: str) -> tuple[str, os.stat_result]:
        """Real path and ``stat`` of the image, or NotFound (decoded input)."""
        if not requested:
            raise NotFound("no image given")
        candidate = self.candidate(requested)
        try:
            st = os.stat(candidate)
        except (OSError, ValueError):
            raise NotFound("image not found") from None
        known = self._vetted.get(candidate)
        if known is not None and known[1] == st.st_dev and known[2] == st.st_ino:
            return known[0], st
        path = self._confine(candidate)
        if len(self._vetted) >= self.MAX_REMEMBERED:
            self._vetted.clear()
        self._vetted[candidate] = (path, st.st_dev, st.st_ino)
        return path, st

    def candidate(self, requested: str) -> str:
        """The filesystem path iipsrv would open for a decoded request path."""
        if "\0" in requested:
            raise NotFound("image not found")
        return self.prefix + strip_parent_refs(requested) + self.suffix

    def resolve(self, requested: str) -> str:
        """Real path of the image, or NotFound.  ``requested`` is already decoded."""
        if not requested:
            raise NotFound("no image given")
        return self._confine(self.candidate(requested))

    def _confine(self, candidate: str) -> str:
        path = os.path.realpath(candidate)
        if self.root is not None and not (
            path == self.root or path.startswith(self.root.rstrip("/") + "/")
        ):
            raise NotFound("image not found")
        return path
