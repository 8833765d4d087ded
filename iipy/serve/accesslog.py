"""The access log: one line per request at VERBOSITY 2 and above.

    127.0.0.1 "GET /fcgi-bin/iipsrv.fcgi?FIF=a.tif&JTL=3,0" 200 8123 2.4ms iip tile passthrough

client, request line, status, body bytes, time to the body, protocol, kind and,
for tiles, where the bytes came from (passthrough: the stored tile, cache: this
process's tile cache, decoded, marked).  Written to the logger ``iipy.access``,
so it goes wherever LOGFILE sends the rest.
"""

from __future__ import annotations

import logging

from .observe import Exchange

log = logging.getLogger("iipy.access")
#: the VERBOSITY from which access lines are written
VERBOSITY = 2


def hook(exchange: Exchange) -> None:
    if log.isEnabledFor(logging.INFO):
        log.info("%s", line(exchange))


def line(e: Exchange) -> str:
    request = f"{e.method} {e.uri}".replace('"', "%22")
    return (
        f'{e.client} "{request}" {e.status} {e.bytes} {e.seconds * 1000:.1f}ms '
        f"{e.protocol} {e.kind} {e.source or '-'}"
    ).replace("\n", " ")
