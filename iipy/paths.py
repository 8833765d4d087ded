"""From a path in a request to a real file under FILESYSTEM_PREFIX.

iipsrv decodes the FIF argument once, removes every ``../`` and concatenates
FILESYSTEM_PREFIX + path + FILESYSTEM_SUFFIX.  We do the same, and then also
resolve the result with ``realpath`` and refuse anything that lands outside
the prefix's *scope*, so a symbolic link that points out of the image tree
cannot be followed either.  Error messages never contain filesystem paths.

The scope (:func:`prefix_scope`):

* a prefix naming a directory (``/srv/images``, ``/srv/images/``,
  ``/srv//images/./``): that directory, resolved; files must lie below it;
* any other prefix is a string stem (``/srv/img_``): files must lie in the
  stem's directory (resolved) under a first name beginning with the stem;
* no prefix: no confinement (iipsrv's behaviour).
"""

from __future__ import annotations

import errno
import logging
import os
import re
from dataclasses import dataclass

from .errors import NotFound

log = logging.getLogger(__name__)

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


@dataclass(frozen=True)
class Scope:
    """Where files may be: below ``root`` (a real directory), and, when
    ``stem`` is set, under a first name that begins with it."""

    root: str
    stem: str = ""

    def inside(self, real: str) -> bool:
        """Whether a ``realpath`` result lies in the scope (the root itself does not)."""
        base = self.root.rstrip("/") + "/"
        return real.startswith(base) and real[len(base):].startswith(self.stem) and (
            len(real) > len(base)
        )

    def may_list(self, real_directory: str) -> bool:
        """Whether a directory may be listed (the root, or a directory inside)."""
        return real_directory == self.root or self.inside(real_directory)


def prefix_scope(prefix: str) -> Scope | None:
    """The scope a FILESYSTEM_PREFIX confines to (None: no prefix, no confinement)."""
    if not prefix:
        return None
    if os.path.isdir(prefix):
        return Scope(os.path.realpath(prefix))
    directory, stem = os.path.split(prefix)
    return Scope(os.path.realpath(directory or "."), stem)


def confine(scope: Scope | None, candidate: str) -> str | None:
    """``realpath`` of ``candidate`` if it lies in the scope, else None."""
    try:
        real = os.path.realpath(candidate)
    except (OSError, ValueError):
        return None
    if scope is not None and not scope.inside(real):
        return None
    return real


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
        self.scope = prefix_scope(prefix)
        self._vetted: dict[str, tuple[str, int, int]] = {}

    def locate(self, requested: str) -> tuple[str, os.stat_result]:
        """Real path and ``stat`` of the image, or NotFound (decoded input)."""
        if not requested:
            raise NotFound("no image given")
        candidate = self.candidate(requested)
        try:
            st = os.stat(candidate)
        except ValueError:
            raise NotFound("image not found") from None
        except OSError as exc:
            if exc.errno in (errno.EACCES, errno.EIO) and confine(self.scope, candidate):
                log.warning("cannot reach image %s: %s", candidate, os.strerror(exc.errno))
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
        path = confine(self.scope, candidate)
        if path is None:
            raise NotFound("image not found")
        return path
