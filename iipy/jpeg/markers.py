"""JPEG marker segments we add to stored (pass-through) tiles."""

from __future__ import annotations

import struct

_ICC_SIGNATURE = b"ICC_PROFILE\0"


def icc_app2(icc: bytes) -> bytes:
    """An ICC profile as APP2 ``ICC_PROFILE`` segments (ICC.1 annex B.4)."""
    chunk = 65533 - len(_ICC_SIGNATURE) - 2
    parts = [icc[i : i + chunk] for i in range(0, len(icc), chunk)] or [b""]
    if len(parts) > 255:
        return b""
    out = []
    for number, part in enumerate(parts, start=1):
        payload = _ICC_SIGNATURE + bytes([number, len(parts)]) + part
        out.append(b"\xff\xe2" + struct.pack(">H", len(payload) + 2) + payload)
    return b"".join(out)
