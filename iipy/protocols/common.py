"""What every protocol does with an image request before it asks for pixels:
find the file (confined to the prefix, one ``stat``) and answer 304 when the
client's copy is current."""

from __future__ import annotations

from .. import numeric
from ..errors import NotFound
from ..http import NotModified, Request, make_etag, not_modified
from ..paths import PathResolver
from ..render.renderer import ImageRecord, Renderer
from ..settings import Settings


class Protocol:
    """What each protocol holds: the settings, the renderer (its only way to
    pixels), the path resolver, and a fingerprint of the settings that goes
    into every ETag (a configuration change must not answer 304)."""

    def __init__(self, settings: Settings, renderer: Renderer, resolver: PathResolver) -> None:
        self.settings = settings
        self.renderer = renderer
        self.resolver = resolver
        self.fingerprint = hash(settings)


def open_image(resolver: PathResolver, renderer: Renderer, requested: str,
               page: int = 0) -> ImageRecord:
    """The image (a stack's ``page``) at a decoded request path, or NotFound."""
    if not requested:
        raise NotFound("no image given")
    path, st = resolver.locate(requested)
    return renderer.open(path, st, page)


def validate(request: Request, record: ImageRecord, *parts: object) -> str:
    """The response's ETag (file version + ``parts``); raise NotModified if the
    request's If-None-Match / If-Modified-Since says the client has it."""
    etag = make_etag(record.stamp, *parts) if not record.page else \
        make_etag(record.stamp, ("page", record.page), *parts)
    if not_modified(request.if_none_match, request.if_modified_since, etag, record.mtime):
        raise NotModified(etag, record.mtime)
    return etag




def c_int(text: str, what: str) -> int:
    """C ``atoi`` (trailing garbage ignored), bounded (:mod:`iipy.numeric`); no digits is a 400."""
    return numeric.leading_integer(text, what)


def c_float(text: str, what: str) -> float:
    """C ``strtod`` on the start of ``text``, finite and bounded (:mod:`iipy.numeric`)."""
    return numeric.leading_decimal(text, what)
