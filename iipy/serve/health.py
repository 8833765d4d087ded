"""``/health`` and ``/metrics`` (also ``?HEALTH`` and ``?METRICS`` where only the FastCGI
script's URL reaches iipy, e.g. ``/fcgi-bin/iipsrv.fcgi?HEALTH``).

/health answers 200 with JSON when this process can serve: the image directory
(FILESYSTEM_PREFIX) readable, the decoders importable, each memcached server reachable
when MEMCACHED_SERVERS is set; otherwise 503 with the failing checks' reasons.  Either
can be switched off (IIPY_HEALTH=0, IIPY_METRICS=0: the URL is then an ordinary
request) or limited to some networks (IIPY_HEALTH_ALLOW, IIPY_METRICS_ALLOW: 403 for
others; metrics default to loopback).
"""

from __future__ import annotations

import ipaddress
import json
import os
import socket
from collections.abc import Callable

from .. import __version__
from ..http import Response
from ..settings import Settings

NAMES = ("health", "metrics")
MEMCACHED_PORT = 11211
CONNECT_SECONDS = 0.5


def endpoint(environ: dict) -> str | None:
    """"health", "metrics" or None for this request."""
    uri, info = environ.get("REQUEST_URI", ""), environ.get("PATH_INFO", "")
    query = environ.get("QUERY_STRING", "")
    words = f"{uri} {info} {query}".lower()  # every request asks: the common answer is quick
    if "health" not in words and "metrics" not in words:
        return None
    path = uri.partition("?")[0]
    for candidate in (path, environ.get("PATH_INFO", "")):
        name = candidate.rstrip("/").rpartition("/")[2].lower()
        if name in NAMES and candidate.rstrip("/") in ("/" + name, _script(environ) + "/" + name):
            return name
    query = query.strip().lower()
    return query if query in NAMES else None


def _script(environ: dict) -> str:
    return environ.get("SCRIPT_NAME", "").rstrip("/")


def allowed(client: str, networks: tuple[str, ...]) -> bool:
    if not networks:
        return True
    try:
        address = ipaddress.ip_address(client.split("%", 1)[0])
    except ValueError:
        return False  # no address (a UNIX socket without REMOTE_ADDR): not in any network
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        address = address.ipv4_mapped
    return any(address in ipaddress.ip_network(n, strict=False) for n in networks)


class StatusPages:
    def __init__(self, settings: Settings, decoder_checks: Callable[[], dict[str, str]],
                 scrape: Callable[[], Response] | None) -> None:
        self.settings = settings
        self.decoder_checks = decoder_checks
        self.scrape = scrape

    def answer(self, environ: dict) -> Response | None:
        """The response for /health or /metrics, or None for any other request."""
        name = endpoint(environ)
        s = self.settings
        if name == "health" and s.health:
            networks = s.health_allow
        elif name == "metrics" and s.metrics and self.scrape is not None:
            networks = s.metrics_allow
        else:
            return None
        environ["iipy.route"] = (name, "")
        if not allowed(environ.get("REMOTE_ADDR", ""), networks):
            return Response(403, f"{name} is not available to this address\n".encode(),
                            "text/plain; charset=utf-8", cacheable=False)
        if name == "metrics":
            return self.scrape()  # type: ignore[misc]
        return self.health()

    def health(self) -> Response:
        checks = {"images": self.prefix_check(), **self.decoder_checks()}
        for server in self.memcached_servers():
            checks[f"memcached {server}"] = self.memcached_check(server)
        ok = all(value == "ok" for value in checks.values())
        body = {"status": "ok" if ok else "failing", "server": self.settings.server_name,
                "version": __version__, "pid": os.getpid(), "checks": checks}
        return Response(200 if ok else 503, (json.dumps(body, indent=1) + "\n").encode(),
                        "application/json", cacheable=False)

    def prefix_check(self) -> str:
        prefix = self.settings.filesystem_prefix
        if not prefix:
            return "ok"
        directory = prefix if prefix.endswith("/") else os.path.dirname(prefix) or "."
        if not os.path.isdir(directory):
            return "the image directory (FILESYSTEM_PREFIX) does not exist"
        if not os.access(directory, os.R_OK | os.X_OK):
            return "the image directory (FILESYSTEM_PREFIX) cannot be read by this server"
        return "ok"

    def memcached_servers(self) -> list[str]:
        raw = self.settings.memcached_servers
        return [part for part in raw.replace(",", " ").replace(";", " ").split() if part]

    @staticmethod
    def memcached_check(server: str) -> str:
        host, sep, port = server.rpartition(":")
        if not sep or not port.isdigit():
            host, port = server, str(MEMCACHED_PORT)
        try:
            with socket.create_connection((host.strip("[]"), int(port)), CONNECT_SECONDS):
                return "ok"
        except OSError as exc:
            return f"memcached unreachable: {exc.strerror or exc}"
