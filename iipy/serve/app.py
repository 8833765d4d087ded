"""The WSGI application: routing, the common headers, and errors.

Every protocol returns a :class:`~iipy.http.Response`; this module adds what
all responses share (Server, Cache-Control, Last-Modified, ETag, CORS,
Content-Length), answers conditional requests with 304, OPTIONS preflights
with 204, and turns exceptions into protocol-shaped errors.  No exception
escapes to the FastCGI layer: a worker never dies of a request.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable

from .. import __version__
from ..errors import BadRequest, CorruptImage, IIPyError, MethodNotAllowed
from ..http import (
    NotModified,
    Request,
    Response,
    cors_headers,
    header_value,
    http_date,
    request_text,
)
from ..numeric import shown
from ..paths import PathResolver
from ..protocols.deepzoom import DeepZoomProtocol
from ..protocols.iiif import IIIFProtocol
from ..protocols.iip import IIPProtocol
from ..protocols.zoomify import ZoomifyProtocol
from ..render.renderer import Renderer
from ..settings import Settings
from . import accesslog
from .health import StatusPages
from .observe import Exchange, Hook, kind_of, run_hooks

log = logging.getLogger(__name__)

StartResponse = Callable[..., object]
WSGIApp = Callable[[dict, StartResponse], Iterable[bytes]]

REASONS = {
    200: "OK",
    204: "No Content",
    303: "See Other",
    304: "Not Modified",
    400: "Bad Request",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    500: "Internal Server Error",
    501: "Not Implemented",
}
ALLOW = "GET, HEAD, POST, OPTIONS"
#: first path segments served without configuration (the standalone HTTP mode)
PATH_ROUTES = ("iiif", "deepzoom", "zoomify")
HOME_PAGE = (
    "<!DOCTYPE html><html><head><title>iipy</title></head><body>"
    f"<h1>iipy {__version__}</h1><p>An IIPImage-compatible image server.</p>"
    "<p>Ask for an image with <code>?FIF=/path/to/image.tif&amp;OBJ=IIP,1.0</code>.</p>"
    "</body></html>"
)


class Application:
    """``create_app(settings)`` builds one; it is a WSGI callable."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.renderer = Renderer(settings)
        self.resolver = PathResolver(settings.filesystem_prefix, settings.filesystem_suffix)
        self.iip = IIPProtocol(settings, self.renderer, self.resolver)
        self.protocols = {  # the IIP commands that are whole protocols of their own
            "iiif": IIIFProtocol(settings, self.renderer, self.resolver),
            "deepzoom": DeepZoomProtocol(settings, self.renderer, self.resolver),
            "zoomify": ZoomifyProtocol(settings, self.renderer, self.resolver),
        }
        self.server_header = settings.server_name
        self.cors = cors_headers(settings.cors)
        #: called with an Exchange after every response (access log, metrics)
        self.hooks: list[Hook] = []
        if settings.verbosity >= accesslog.VERBOSITY:  # below it the lines go nowhere
            self.hooks.append(accesslog.hook)
        scrape = None
        if settings.metrics:
            from . import metrics

            self.hooks.append(metrics.Recorder(lambda: self.renderer.open_images))
            scrape = metrics.scrape
        self.status_pages = StatusPages(settings, self.renderer.decoder_checks, scrape)

    def clear_caches(self) -> None:
        self.renderer.clear()

    # -- WSGI -------------------------------------------------------------

    def __call__(self, environ: dict, start_response: StartResponse) -> Iterable[bytes]:
        started = time.perf_counter()
        method = environ.get("REQUEST_METHOD", "GET").upper()
        try:
            response = self.dispatch(environ, method)
        except NotModified as nm:
            response = Response(304, etag=nm.etag, last_modified=nm.last_modified)
        except IIPyError as exc:
            response = self.error(exc)
        except Exception:  # never a traceback to the client, never a dead worker
            log.exception("internal error for %r", environ.get("QUERY_STRING", ""))
            response = Response(500, b"internal server error\n", "text/plain", cacheable=False)
        status, headers = self.finish(response)
        start_response(status, headers)
        shared = self.renderer.shared
        if shared and response.status == 200 and response.cacheable and method == "GET":
            # the front end's copy, when it says it reads them (nginx/fastcgi_iipy.inc)
            if environ.get("IIPY_FRONT_CACHE") == "1" and not self.renderer.watermarking:
                shared.put_front(environ.get("REQUEST_URI", ""), response.content_type,
                                 response.body)
        body = b"" if method == "HEAD" or response.status in (204, 304) else response.body
        if self.hooks:
            self.observe(environ, method, response.status, len(body), started)
        return [body]

    def observe(self, environ: dict, method: str, status: int, size: int, started: float) -> None:
        protocol, query = environ.get("iipy.route", ("other", ""))
        kind = kind_of(protocol, query)
        exchange = Exchange(
            client=environ.get("REMOTE_ADDR") or "-",
            method=method,
            uri=environ.get("REQUEST_URI") or environ.get("QUERY_STRING", ""),
            status=status,
            bytes=size,
            seconds=time.perf_counter() - started,
            protocol=protocol,
            kind=kind,
            source=self.renderer.last_source if kind == "tile" and status == 200 else "",
        )
        run_hooks(self.hooks, exchange)

    def dispatch(self, environ: dict, method: str) -> Response:
        if method == "OPTIONS":
            environ["iipy.route"] = ("options", "")
            return Response(204, headers=[("Allow", ALLOW)])
        if method not in ("GET", "HEAD", "POST"):
            raise MethodNotAllowed(f"method {shown(method)} is not allowed")
        page = self.status_pages.answer(environ)  # /health, /metrics
        if page is not None:
            return page
        request = self.request(environ, method)
        if not request.query:
            environ["iipy.route"] = ("home", "")
            return Response(200, HOME_PAGE.encode(), "text/html; charset=utf-8")
        name, _, argument = request.query.partition("=")
        protocol = self.protocols.get(name.lower())
        if protocol is not None:
            if "&" in argument and not self.is_path_request(request.uri):
                argument = argument.split("&", 1)[0]  # a query string: one command
            environ["iipy.route"] = (name.lower(), argument)
            return protocol.handle(request, argument)
        environ["iipy.route"] = ("iip", request.query)
        return self.iip.handle(request)

    def request(self, environ: dict, method: str) -> Request:
        """The request's text, each part decoded from its bytes as UTF-8 once
        (raw UTF-8 in a path works like its percent-encoding); a control
        character in the URI or a header is a 400 (iipy.http)."""
        uri = request_text(environ, "REQUEST_URI")
        query = self.mapped_query(uri)
        if query is None:
            query = request_text(environ, "QUERY_STRING")
            if not query and method == "POST":
                query = _read_body(environ)
        return Request(
            method=method,
            query=query,
            uri=uri,
            host=header_value(environ, "HTTP_HOST", "localhost"),
            https=bool(environ.get("HTTPS")) and environ.get("HTTPS", "").lower() != "off",
            accept=header_value(environ, "HTTP_ACCEPT"),
            if_none_match=header_value(environ, "HTTP_IF_NONE_MATCH"),
            if_modified_since=header_value(environ, "HTTP_IF_MODIFIED_SINCE"),
            iiif_id=header_value(environ, "HTTP_X_IIIF_ID"),
        )

    def mapped_query(self, uri: str) -> str | None:
        """URI_MAP: ``/prefix/rest`` → ``<command>=rest`` (query string ignored).

        Without a matching URI_MAP, ``/iiif/rest``, ``/deepzoom/rest`` and
        ``/zoomify/rest`` are mapped the same way when the query string holds
        no command (so a FastCGI script mounted under such a path keeps its
        ``?IIIF=…`` requests, and a cache-busting ``?12345`` is ignored).
        """
        path, _, query = uri.partition("?")
        mapping = self.settings.uri_map
        if mapping is not None:
            prefix, command = mapping
            if not prefix or path == "/" + prefix or path.startswith("/" + prefix + "/"):
                rest = path[len(prefix) + 2 :] if prefix else path.lstrip("/")
                return f"{command}={rest}"
        first = path[1:].partition("/")[0]
        if first.lower() in PATH_ROUTES and "=" not in query and path.startswith("/" + first + "/"):
            return f"{first.lower()}={path[len(first) + 2 :]}"
        return None

    def is_path_request(self, uri: str) -> bool:
        """Whether the request string came from the path (URI_MAP or a path route)."""
        return self.mapped_query(uri) is not None

    # -- responses --------------------------------------------------------

    def error(self, exc: IIPyError) -> Response:
        if exc.status >= 500 or isinstance(exc, CorruptImage):
            log.error("%s: %s", type(exc).__name__, exc.message)
        else:
            log.info("%s: %s", type(exc).__name__, exc.message)
        body = (exc.message or REASONS.get(exc.status, "error")) + "\n"
        response = Response(exc.status, body.encode("utf-8"), "text/plain; charset=utf-8")
        response.cacheable = False
        if exc.status == 405:
            response.headers.append(("Allow", ALLOW))
        return response

    def finish(self, response: Response) -> tuple[str, list[tuple[str, str]]]:
        headers = [("Server", self.server_header), ("X-Powered-By", "IIPImage")]
        if response.content_type:
            headers.append(("Content-Type", response.content_type))
        if response.last_modified is not None:
            headers.append(("Last-Modified", http_date(response.last_modified)))
        if response.etag and not self._varies(response):
            headers.append(("ETag", response.etag))
        ok = response.status < 400
        cache = self.settings.cache_control if ok and response.cacheable else "no-cache"
        headers.append(("Cache-Control", cache))
        headers.extend(response.headers)
        if response.cors and self.cors:
            headers.extend(self.cors)
        if response.status not in (204, 304):
            headers.append(("Content-Length", str(len(response.body))))
        status = f"{response.status} {REASONS.get(response.status, 'Unknown')}"
        return status, headers


    def _varies(self, response: Response) -> bool:
        """A watermarked image differs on every request (random placement), so
        it gets no ETag: a validator would claim the bytes are the same.
        Last-Modified and Cache-Control stay, as in iipsrv 1.3, so browsers
        may still keep (a marked copy of) a tile."""
        return self.renderer.watermarking and response.content_type.startswith("image/")


def _read_body(environ: dict) -> str:
    try:
        length = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        return ""
    if length <= 0 or length > 65536:
        return ""
    stream = environ.get("wsgi.input")
    if stream is None:
        return ""
    text = stream.read(length).decode("utf-8", "surrogateescape").strip()
    if any(ord(c) < 32 or ord(c) == 127 for c in text):
        raise BadRequest("control character in the request body")
    return text


def create_app(settings: Settings | None = None) -> Application:
    return Application(settings or Settings.from_environ())
