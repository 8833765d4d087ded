"""What every protocol does with an image request before it asks for pixels:
find the file (confined to the prefix, one ``stat``) and answer 304 when the
client's copy is current."""

from __future__ import annotations

from ..errors import NotFound
from ..http import NotModified, Request, make_etag, not_modified
from ..paths import PathResolver
from ..render import ImageRecord, Renderer


def open_image(resolver: PathResolver, renderer: Renderer, requested: str) -> ImageRecord:
    """The image at a decoded request path, or NotFound."""
    if not requested:
        raise NotFound("no image given")
    path, st = resolver.locate(requested)
    return renderer.open(path, st)


def validate(request: Request, record: ImageRecord, *parts: object) -> str:
    """The response's ETag (file version + ``parts``); raise NotModified if the
    request's If-None-Match / If-Modified-Since says the client has it."""
    etag = make_etag(record.stamp, *parts)
    if not_modified(request.if_none_match, request.if_modified_since, etag, record.mtime):
        raise NotModified(etag, record.mtime)
    return etag
