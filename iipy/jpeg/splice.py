"""Turn a JPEG tile stored in a TIFF into a stand-alone JPEG, without decoding.

A JPEG-compressed TIFF usually keeps the quantisation and Huffman tables once,
in the JPEGTables tag (an "abbreviated table specification": SOI, tables,
EOI), and each tile as an abbreviated image stream (SOI, SOF, SOS, data, EOI).
Joining the two gives a complete interchange-format JPEG.

When the TIFF's photometric interpretation is RGB the JPEG components are R, G
and B, not Y, Cb and Cr.  libjpeg-turbo guesses that from the component IDs
libjpeg writes ('R', 'G', 'B'), but the JPEG standard gives no such rule and
other decoders assume YCbCr for three components without a marker.  An Adobe
APP14 marker with transform 0 states "no colour transform" explicitly.
"""

from __future__ import annotations

from ..errors import CorruptImage

SOI = b"\xff\xd8"
EOI = b"\xff\xd9"
ADOBE_RGB = b"\xff\xee\x00\x0eAdobe\x00\x64\x00\x00\x00\x00\x00"


def splice(tables: bytes | None, tile: bytes, rgb: bool = False) -> bytes:
    """Return ``tile`` as a complete JPEG using the shared ``tables``."""
    if not tile.startswith(SOI):
        raise CorruptImage("stored JPEG tile does not start with SOI")
    parts = [SOI]
    if rgb:
        parts.append(ADOBE_RGB)
    if tables:
        if not tables.startswith(SOI):
            raise CorruptImage("JPEGTables does not start with SOI")
        body = tables[2:]
        if body.endswith(EOI):
            body = body[:-2]
        parts.append(body)
    parts.append(tile[2:])
    return b"".join(parts)
