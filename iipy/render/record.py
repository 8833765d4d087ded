"""What the protocols hold of an open image (the renderer keeps the decoder)."""

from __future__ import annotations

from dataclasses import dataclass

from ..models import ImageInfo


@dataclass(frozen=True)
class ImageRecord:
    """An open image as the protocols see it: facts, never the decoder."""

    path: str
    info: ImageInfo
    mtime: float
    stamp: tuple[int, int, int]  # (mtime_ns, size, inode): changes when the file does
    page: int = 0  # the page of a multi-page stack this record describes
