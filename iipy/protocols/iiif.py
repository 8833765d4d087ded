"""The IIIF Image API, versions 2.1 and 3.0, level 2 (iip-protocol.md §6).

``IIIF=<identifier>/info.json``,
``IIIF=<identifier>/<region>/<size>/<rotation>/<quality>.<format>``, and a
bare ``IIIF=<identifier>`` (303 to its info.json).  The same arguments
arrive through ``URI_MAP=iiif=>IIIF`` and, in the standalone HTTP server, under
``/iiif/``.  The version is IIIF_VERSION unless the Accept header asks for
another one with a ``…/image/N/context.json`` profile.

A request becomes a View plus a region and an output size; when it is exactly
one stored tile (:func:`iipy.geometry.exact_tile`) it goes through
``Renderer.tile`` (tile cache, codec pass-through), otherwise through
``Renderer.region``.  Errors: 400 for bad syntax, 404 for a missing image,
501 for a valid request this server does not serve; short text bodies, never
a filesystem path.
"""

from __future__ import annotations

from .. import numeric
from ..errors import BadRequest, IIPyError, NotFound, NotImplementedFeature
from ..http import Request, Response
from ..models import Processing, View
from ..paths import PathResolver
from ..render.encoders import available
from ..render.geometry import exact_tile
from ..render.renderer import ImageRecord, Renderer
from ..settings import Settings
from . import iiif_info
from .common import Protocol, open_image, validate
from .iiif_request import (
    EXTENSION_QUALITIES,
    ImageRequest,
    Resolved,
    canonical,
    decode_identifier,
    parse_image_request,
    resolve,
    split_path,
)

SYNTAX = "{identifier}/{region}/{size}/{rotation}/{quality}.{format}"
_COLOUR = {"gray": "grey", "bitonal": "binary"}
#: IIIF_EXTENSIONS qualities (iipsrv 1.3) as processing: INV, CNT=st, CNT=eq, GAM=log
_EXTENSIONS = {"negative": {"invert": True}, "stretch": {"stretch": True},
               "equalization": {"equalize": True}, "log": {"log": True}}


class IIIFProtocol(Protocol):
    def __init__(self, settings: Settings, renderer: Renderer, resolver: PathResolver) -> None:
        super().__init__(settings, renderer, resolver)
        self.extra = iiif_info.parse_extra_info(settings.iiif_extra_info)

    # -- entry point ------------------------------------------------------

    def handle(self, request: Request, argument: str) -> Response:
        """Answer one IIIF request; ``argument`` is the text after ``IIIF=`` (raw)."""
        identifier, kind, params = split_path(argument)
        if not identifier:
            raise BadRequest(f"IIIF: no identifier; the syntax is {SYNTAX}")
        version = iiif_info.negotiate_version(request.accept, self.settings.iiif_version)
        if kind == "info":
            return self.info(request, identifier, argument, version)
        if kind == "base":
            if "/" not in identifier or self._is_image(identifier):
                return self.redirect(request, identifier, argument)
            raise BadRequest(f"IIIF: too few parameters; the syntax is {SYNTAX}")
        image_request = parse_image_request(*params, version)
        if image_request.quality in EXTENSION_QUALITIES and not self.settings.iiif_extensions:
            raise BadRequest(f"IIIF: unsupported quality '{image_request.quality}'")
        if image_request.format not in available():
            raise NotImplementedFeature(f"IIIF: format '{image_request.format.extension}' "
                                        "is not available on this server")
        return self.image(request, identifier, argument, version, image_request)

    # -- responses --------------------------------------------------------

    def info(self, request: Request, identifier: str, argument: str, version: int) -> Response:
        record = self._open(identifier)
        ident = iiif_info.service_id(request, identifier, argument, self.settings.base_url)
        ctype = iiif_info.content_type(version, request.accept)
        etag = validate(request, record, ident, version, ctype, self.fingerprint)
        doc = iiif_info.info_document(record.info, ident, version, self.settings, self.extra)
        return Response(
            200,
            iiif_info.render(doc),
            ctype,
            headers=[("Link", f'<{iiif_info.PROFILE[version]}>;rel="profile"'),
                     ("Vary", "Accept")],
            last_modified=record.mtime,
            etag=etag,
        )

    def redirect(self, request: Request, identifier: str, argument: str) -> Response:
        """A bare identifier: 303 See Other to its info.json (baseUriRedirect)."""
        ident = iiif_info.service_id(request, identifier, argument, self.settings.base_url)
        return Response(303, headers=[("Location", ident + "/info.json")], cacheable=False)

    def image(self, request: Request, identifier: str, argument: str, version: int,
              image_request: ImageRequest) -> Response:
        record = self._open(identifier)
        info = record.info
        s = self.settings
        resolved = resolve(image_request, info, version, s.max_cvt, s.allow_upscaling)
        ident = iiif_info.service_id(request, identifier, argument, s.base_url)
        canon = canonical(image_request, resolved, info, version)
        etag = validate(request, record, ident, canon, self.fingerprint)
        body = self.render(record, image_request, resolved)
        link = f'<{ident}/{canon}>;rel="canonical", <{iiif_info.PROFILE[version]}>;rel="profile"'
        return Response(
            200,
            body,
            image_request.format.mime,
            headers=[("Link", link)],
            last_modified=record.mtime,
            etag=etag,
        )

    def render(self, record: ImageRecord, image_request: ImageRequest,
               resolved: Resolved) -> bytes:
        """Pixels for a resolved request: the tile path when it is exactly one tile."""
        info = record.info
        degrees = image_request.degrees
        quarter = degrees % 90 == 0
        processing = Processing(
            colour=_COLOUR.get(image_request.quality, ""),
            **_EXTENSIONS.get(image_request.quality, {}),  # type: ignore[arg-type]
            rotation=int(degrees) if quarter else 0,
            mirror=image_request.mirror,
            angle=0.0 if quarter else degrees,
        )
        fmt = image_request.format
        tile = exact_tile(info, resolved.box, resolved.width, resolved.height)
        if tile is not None:
            level, column, row = tile
            index = row * info.levels[level].columns + column
            view = View(record.path, "tile", fmt, None, info.resolutions - 1 - level, index,
                        processing, stamp=record.stamp, page=record.page)
            return self.renderer.tile(view)
        view = View(record.path, "region", fmt, processing=processing, stamp=record.stamp,
                    page=record.page)
        x, y, w, h = resolved.box
        fractions = (x / info.width, y / info.height, w / info.width, h / info.height)
        return self.renderer.region(view, fractions, resolved.width, resolved.height)

    # -- helpers ----------------------------------------------------------

    def _open(self, identifier: str) -> ImageRecord:
        """The image (or stack page, :func:`split_page`) an identifier names.

        When text that is not a number follows the delimiter, the whole
        identifier is the name; if no such image exists but the part before
        the delimiter does, the client meant a page: 400, not 404."""
        name = decode_identifier(identifier) if identifier else ""
        delimiter = self.settings.iiif_delimiter
        image, page = split_page(name, delimiter)
        try:
            return open_image(self.resolver, self.renderer, image, page)
        except NotFound as missing:
            head, found, tail = name.rpartition(delimiter) if delimiter else ("", "", "")
            if image != name or not (found and head and tail) or "/" in tail:
                raise
            try:
                self.resolver.locate(head)
            except IIPyError:
                raise missing from None
            raise BadRequest(f"IIIF: page after '{delimiter}' must be a number") from None

    def _is_image(self, identifier: str) -> bool:
        try:
            self._open(identifier)
        except IIPyError:
            return False
        return True


def split_page(name: str, delimiter: str) -> tuple[str, int]:
    """(image name, page) of a decoded identifier under ``IIIF_DELIMITER``.

    The page is the text after the delimiter's **last** occurrence when that
    text is a number; otherwise the delimiter belongs to the name.  So
    ``a;b/img.tif;2`` is page 2 of ``a;b/img.tif``, while ``a;b/img.tif``,
    ``my_image.tif`` (delimiter ``_``) and ``img.tif;x`` are names without a
    page.  A number must be ASCII digits within a C int (:mod:`iipy.numeric`):
    Unicode digits (``img.tif;²``) and huge numbers are a 400.  A delimiter of
    several characters is one unit (``img.tif::2``).  iipsrv 1.3 also cuts at
    the last occurrence but reads the page from one character past its start,
    so multi-character delimiters give page 0, and takes any text after the
    delimiter as a number (``atoi``: 0).
    """
    if not delimiter:
        return name, 0
    head, found, page = name.rpartition(delimiter)
    if not found or not head or not page.isdigit():
        return name, 0
    return head, numeric.integer(page, f"IIIF: page after '{delimiter}'")
