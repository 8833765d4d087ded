"""What one request did, for the access log and the metrics.

The application builds an :class:`Exchange` after every response and hands it
to each hook it was given (``Application.hooks``); the hooks never raise into
the request (an exception is logged and the hook's work for that request lost).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import NamedTuple

log = logging.getLogger(__name__)


class Exchange(NamedTuple):  # a tuple: built on every request, cheaply
    client: str  # REMOTE_ADDR, "-" when the web server gave none
    method: str
    uri: str  # REQUEST_URI as received
    status: int
    bytes: int  # body bytes sent
    seconds: float  # from the start of the call to the body being ready
    protocol: str  # iip, iiif, deepzoom, zoomify, or home/health/metrics/options
    kind: str  # info, tile, region (an export or IIIF image), other
    source: str  # for tiles: passthrough, cache, decoded, marked; "" otherwise


Hook = Callable[[Exchange], None]

TILE_COMMANDS = ("jtl", "ptl", "tile")


def kind_of(protocol: str, query: str) -> str:
    """A coarse request kind for the logs and metrics (no numbers: bounded labels)."""
    q = query.lower()
    if protocol == "iip":
        commands = {part.partition("=")[0] for part in q.split("&")}
        if commands & {"jtl", "ptl"}:
            return "tile"
        if "cvt" in commands:
            return "region"
        if "obj" in commands or "deepzoom" in commands or "zoomify" in commands:
            return "info"
        return "other"
    if protocol == "iiif":
        return "info" if q.endswith("info.json") or q.rstrip("/").count("/") < 4 else "region"
    if protocol == "deepzoom":
        return "info" if q.endswith((".dzi", ".xml")) else "tile"
    if protocol == "zoomify":
        return "info" if q.endswith("imageproperties.xml") else "tile"
    return "other"


def run_hooks(hooks: list[Hook], exchange: Exchange) -> None:
    for hook in hooks:
        try:
            hook(exchange)
        except Exception:  # observing must never break serving
            log.exception("request hook %r failed", hook)
