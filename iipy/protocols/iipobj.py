"""IIP ``OBJ`` metadata objects: one function per object, byte-exact lines.

Each function returns the text of its line(s) without line endings (the
caller joins with CRLF), or an empty list when the image has no such value.
Formats follow iipsrv 1.1 (iip-protocol.md §3.2).
"""

from __future__ import annotations

import json
from collections.abc import Callable

import numpy as np

from ..models import ColourSpace, ImageInfo

SERVER_VERSION = "3.65"
OPT_COMM = "CVT CNT QLT JTL JTLS WID HEI RGN MINMAX SHD CMP INV CTW"
OPT_OBJ = (
    "Horizontal-views Vertical-views Tile-size Bits-per-channel Min-Max-sample-values Resolutions"
)

#: 1.1's single metadata field names → our metadata keys (None: never filled)
METADATA_FIELDS: dict[str, str | None] = {
    "copyright": "rights",
    "title": "title",
    "subject": "description",
    "author": "creator",
    "keywords": None,
    "comment": None,
    "last-author": None,
    "rev-number": None,
    "edit-time": None,
    "last-printed": None,
    "create-dtm": "date",
    "last-save-dtm": None,
    "app-name": "software",
    # 1.2+ names, answered in the same name/length:value form
    "rights": "rights",
    "description": "description",
    "creator": "creator",
    "date": "date",
    "software": "software",
    "make": "make",
    "model": "model",
    "pagename": "pagename",
}
SUMMARY_FIELDS = ("copyright", "subject", "author", "create-dtm", "app-name")

#: objects that need no image
IMAGELESS = {"iip-server", "iip-opt-comm", "iip-opt-obj"}


def _max_size(info: ImageInfo, swap: bool) -> list[str]:
    w, h = (info.height, info.width) if swap else (info.width, info.height)
    return [f"Max-size:{w} {h}"]


def _colour_space(info: ImageInfo) -> list[str]:
    calibrated = 1 if info.colour_space is ColourSpace.CIELAB else 0
    code = {ColourSpace.SRGB: 3, ColourSpace.CIELAB: 4}.get(info.colour_space, 1)
    channels = " ".join(str(i) for i in range(info.bands))
    return [
        f"Colorspace,0-{info.resolutions - 1},0:{calibrated} 0 {code} {info.bands} {channels}"
    ]


def _min_max(info: ImageInfo) -> list[str]:
    text = "".join(
        f" {lo:.9g}  {hi:.9g} " for lo, hi in zip(info.min_values, info.max_values, strict=False)
    )
    return ["Min-Max-sample-values:" + text[:-1] if text else "Min-Max-sample-values:"]


def _resolutions(info: ImageInfo) -> list[str]:
    return ["Resolutions:" + ",".join(f"{lv.width} {lv.height}" for lv in reversed(info.levels))]


def _dpi(info: ImageInfo) -> list[str]:
    if not info.dpi:
        return []
    return [f"DPI:{info.dpi[0]:f} {info.dpi[1]:f}"]


def _field(name: str, value: str) -> list[str]:
    if not value:
        return []
    return [f"{name}/{len(value.encode('utf-8'))}:{value}"]


def _metadata_json(info: ImageInfo) -> list[str]:
    data = {k: v for k, v in sorted(info.metadata.items()) if v}
    return [json.dumps(data, indent="\t", ensure_ascii=False)]


def _stack_json(info: ImageInfo) -> list[str]:
    """A stack's pages in iipsrv 1.3's layout: ``[ `` then per page ``{ "id", "name",
    "scale" }`` on tab-indented lines, the scale as C++ prints a float at 9 digits;
    names JSON-escaped (1.3 writes them raw).  A single image: nothing."""
    if not info.stack:
        return []
    items = ",".join(
        f'\n\t{{\n\t\t"id": {n},\n\t\t"name": {json.dumps(name, ensure_ascii=False)},'
        f'\n\t\t"scale": {float(np.float32(scale)):.9g}\n\t}}'
        for n, (name, scale) in enumerate(info.stack)
    )
    return ["[ " + items + "\n]"]


Handler = Callable[[ImageInfo, bool], list[str]]

OBJECTS: dict[str, Handler] = {
    "iip-server": lambda info, swap: [f"IIP-server:{SERVER_VERSION}"],
    "iip-opt-comm": lambda info, swap: [f"IIP-opt-comm:{OPT_COMM}"],
    "iip-opt-obj": lambda info, swap: [f"IIP-opt-obj:{OPT_OBJ}"],
    "max-size": _max_size,
    "resolution-number": lambda info, swap: [f"Resolution-number:{info.resolutions}"],
    "tile-size": lambda info, swap: [
        f"Tile-size:{info.levels[0].tile_width} {info.levels[0].tile_height}"
    ],
    "bits-per-channel": lambda info, swap: [f"Bits-per-channel:{info.bits}"],
    "horizontal-views": lambda info, swap: [
        "Horizontal-views:" + " ".join(str(n) for n in range(max(1, len(info.stack))))
    ],
    "vertical-views": lambda info, swap: ["Vertical-views:90"],
    "min-max-sample-values": lambda info, swap: _min_max(info),
    "resolutions": lambda info, swap: _resolutions(info),
    "dpi": lambda info, swap: _dpi(info),
    "basic-info": lambda info, swap: [
        f"IIP-server:{SERVER_VERSION}",
        *_max_size(info, swap),
        f"Resolution-number:{info.resolutions}",
        *_colour_space(info),
    ],
    "summary-info": lambda info, swap: [
        line
        for name in SUMMARY_FIELDS
        for line in _field(name, info.metadata.get(METADATA_FIELDS[name] or "", ""))
    ],
    "stack": lambda info, swap: _stack_json(info),
    "metadata": lambda info, swap: _metadata_json(info),
}


#: iipsrv 1.3's objects answered as the bare value (no ``name/length:``), each
#: its own response: the XMP packet as XML, STONITS as ``%g`` text
RAW_OBJECTS = {"xmp": "application/xml", "scale": "text/plain"}


def raw_object(info: ImageInfo, name: str) -> tuple[bytes, str]:
    """(value, content type) of a :data:`RAW_OBJECTS` object; empty when absent."""
    if name == "xmp":
        return info.xmp or b"", RAW_OBJECTS[name]
    return info.metadata.get(name, "").encode("utf-8"), RAW_OBJECTS[name]


def lookup(name: str) -> Handler | None:
    """Handler for a lower-cased OBJ argument, or None if unsupported."""
    handler = OBJECTS.get(name)
    if handler is not None:
        return handler
    if "colorspace" in name:
        return lambda info, swap: _colour_space(info)
    if name in METADATA_FIELDS:
        key = METADATA_FIELDS[name]
        return lambda info, swap: _field(name, info.metadata.get(key or "", ""))
    return None
