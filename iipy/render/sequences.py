"""Image sequences (iip-protocol.md §11.6): ``FIF=stem`` naming no file but a
set of files ``stem + FILENAME_PATTERN + XXX_YYY.ext``, one per horizontal
(XXX) and vertical (YYY) angle, as used for turntable objects and
multispectral stacks.  ``SDS=x,y`` picks the file.

iipsrv finds them with ``glob()`` on the user's path, so wildcards in a
request are honoured; here the directory is listed and names are matched
with an escaped regular expression, so a request's ``*`` or ``?`` are plain
characters.  The directory and every file are confined to FILESYSTEM_PREFIX
like single images (:mod:`iipy.paths`): a directory outside the prefix is
never listed, so a sequence there answers exactly as a missing file does.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

from ..errors import NotFound
from ..paths import PathResolver, confine

EXTENSIONS = ("tif", "tiff", "jp2", "jpx", "j2k")
DEFAULT_ANGLES = (0, 90)


@dataclass(frozen=True)
class Sequence:
    """The files of one sequence, by (horizontal, vertical) angle."""

    files: dict[tuple[int, int], str]

    @property
    def horizontal_views(self) -> list[int]:
        """Angles with a file at the default vertical angle 90 (iipsrv's rule)."""
        return sorted({x for x, y in self.files if y == 90})

    @property
    def vertical_views(self) -> list[int]:
        """Angles with a file at horizontal angle 0."""
        return sorted({y for x, y in self.files if x == 0})

    def path(self, x: int, y: int) -> str:
        try:
            return self.files[(x, y)]
        except KeyError:
            raise NotFound(f"no image in the sequence for angles {x},{y}") from None


def find_sequence(resolver: PathResolver, requested: str, pattern: str) -> Sequence | None:
    """The sequence a decoded FIF path names, or None if there is none.

    It exists when the directory holds ``<stem><pattern>000_090.<ext>``;
    every file with the same stem, pattern and extension belongs to it.
    """
    base = resolver.candidate(requested)
    if resolver.suffix and base.endswith(resolver.suffix):
        base = base[: -len(resolver.suffix)]  # the suffix is not used for sequences
    directory, stem = os.path.split(base)
    if not stem:
        return None
    directory = directory or "."
    scope = resolver.scope
    if scope is not None and not scope.may_list(os.path.realpath(directory)):
        return None  # outside the prefix: nothing is there, as for a missing file
    try:
        names = os.listdir(directory)
    except OSError:
        return None
    matcher = re.compile(
        re.escape(stem + pattern) + r"(\d+)_(\d+)\.(" + "|".join(EXTENSIONS) + r")\Z",
        re.IGNORECASE,
    )
    found: dict[str, dict[tuple[int, int], str]] = {}
    for name in names:
        match = matcher.match(name)
        if match:
            angles = (int(match.group(1)), int(match.group(2)))
            found.setdefault(match.group(3).lower(), {})[angles] = name
    for files in found.values():
        confined = {
            angles: confine(scope, os.path.join(directory, name)) for angles, name in files.items()
        }
        inside = {angles: path for angles, path in confined.items() if path is not None}
        if DEFAULT_ANGLES in inside:
            return Sequence(inside)
    return None
