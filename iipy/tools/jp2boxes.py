"""Metadata boxes of a JPEG 2000 file written by :mod:`.writers`.

OpenJPEG (through glymur) writes a bare jacket: signature, file type, a
header with an enumerated colour space, the codestream.  An ICC profile goes
into the ``colr`` box (method 2, restricted ICC, which is what iipy and
browsers-side tools read) and XMP into the ``uuid`` box Adobe registered, by
rewrapping the codestream with glymur (one sequential copy of the file).
"""

from __future__ import annotations

import os
from pathlib import Path
from uuid import UUID

XMP_UUID = UUID("be7acfcb-97a9-42e8-9c71-999491e3afac")
RESTRICTED_ICC = 2


#: EXIF in JPEG 2000: the TIFF structure in a UUID box (ExifTool's and libvips' convention)
EXIF_UUID = UUID(bytes=b"JpgTiffExif->JP2")


def add_metadata(path: Path, icc: bytes | None, xmp: bytes | None,
                 exif: bytes | None = None) -> bool:
    """Rewrap ``path`` in place with ``icc``, ``xmp`` and ``exif`` (a
    ``JpgTiffExif->JP2`` UUID box, the TIFF structure without "Exif\\0\\0");
    False when there is nothing to add."""
    if not icc and not xmp and not exif:
        return False
    import glymur
    from glymur import jp2box

    jp2 = glymur.Jp2k(str(path))
    boxes = list(jp2.box)
    for box in boxes:
        if isinstance(box, jp2box.JP2HeaderBox) and icc:
            kept = [b for b in box.box if not isinstance(b, jp2box.ColourSpecificationBox)]
            colr = jp2box.ColourSpecificationBox(method=RESTRICTED_ICC, icc_profile=icc)
            box.box = [*kept, colr]
    at = next(i for i, b in enumerate(boxes) if isinstance(b, jp2box.ContiguousCodestreamBox))
    if xmp:
        boxes.insert(at, jp2box.UUIDBox(the_uuid=XMP_UUID, raw_data=xmp))
    if exif:
        boxes.insert(at, jp2box.UUIDBox(the_uuid=EXIF_UUID, raw_data=exif))
    wrapped = path.with_name(path.name + ".wrap")
    try:
        jp2.wrap(str(wrapped), boxes=boxes)
        os.replace(wrapped, path)
    finally:
        if wrapped.exists():
            wrapped.unlink()
    return True
