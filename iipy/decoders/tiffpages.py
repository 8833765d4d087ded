"""Multi-page TIFF stacks: which top-level directories are pages.

A stack is one image with several pages (channels of an OME-TIFF, the bands
of a multispectral scan, the layers of a document), each a tiled pyramid of
its own.  iipsrv 1.2+ recognises it as this module does:

* the top-level directories marked as pages (NewSubfileType bit 2, "one page
  of a multi-page image") are the pages, in file order; the first directory
  is always page 0.  When the first directory has a SubIFD pyramid, so is
  every other unreduced directory with SubIFDs of its own (OME-TIFF writers
  leave NewSubfileType 0; iipsrv 1.3 serves those pages by SDS but lists
  none in OBJ=stack);
* it is a stack when there are at least two pages and either the first
  directory keeps its reductions in SubIFDs (each page then has its own
  SubIFD pyramid) or the second directory has the first one's size (pages
  too small for reductions: one level each).  A classic pyramid, whose levels
  follow the first directory in the chain, is never a stack.

Each page is named by its DocumentName (iipsrv 1.3's choice; the PageName tag
when there is none) and scaled by its STONITS (1 when absent), for OBJ=stack.
The page count is bounded by the chain's own bound (:data:`tiffdir.MAX_IFDS`).
"""

from __future__ import annotations

import math

from .tiffdir import (
    IFD,
    TAG_DOCUMENT_NAME,
    TAG_NEW_SUBFILE_TYPE,
    TAG_PAGE_NAME,
    TAG_STONITS,
    TAG_SUBIFDS,
    TiffStructure,
)

SUBFILE_REDUCED = 1
SUBFILE_PAGE = 2

Stack = tuple[tuple[str, float], ...]


def find_pages(structure: TiffStructure) -> tuple[tuple[int, ...], Stack]:
    """(top-level index of each page, the stack's (name, scale) per page).

    A single image is ``((0,), ())``."""
    ifds = structure.ifds
    first = ifds[0]
    reduced_subifds = any(
        ifd.tiled and ifd.int(TAG_NEW_SUBFILE_TYPE) & SUBFILE_REDUCED
        for ifd in structure.subifds.get(0, ())
    )

    def is_page(ifd: IFD) -> bool:
        kind = ifd.int(TAG_NEW_SUBFILE_TYPE)
        if not ifd.tiled or kind & SUBFILE_REDUCED:
            return False
        # OME-TIFF writers leave NewSubfileType 0: a full image with its own SubIFD
        # pyramid beside a first one that has the same is a page too
        return bool(kind & SUBFILE_PAGE) or (reduced_subifds and bool(ifd.ints(TAG_SUBIFDS)))

    pages = [0] + [index for index, ifd in enumerate(ifds[1:], start=1) if is_page(ifd)]
    if len(pages) < 2:
        return (0,), ()
    second = ifds[1]
    same_size = second.tiled and (second.width, second.height) == (first.width, first.height)
    if not (reduced_subifds or same_size):
        return (0,), ()
    stack = tuple(
        (
            ifds[index].text(TAG_DOCUMENT_NAME) or ifds[index].text(TAG_PAGE_NAME),
            _scale(ifds[index].rational(TAG_STONITS)),
        )
        for index in pages
    )
    return tuple(pages), stack


def _scale(value: float | None) -> float:
    """STONITS, or 1 when absent or not finite (JSON has no NaN nor infinity)."""
    return float(value) if value is not None and math.isfinite(value) else 1.0
