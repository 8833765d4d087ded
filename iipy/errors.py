"""One error hierarchy for the whole server.

Errors are raised low (decoders, parsers) and turned into a response in one
place (:mod:`iipy.serve.app`), in the form of the protocol that was spoken: an IIP
``Error/…`` body, a IIIF status with a short text, or a plain text body.
Messages never contain filesystem paths.
"""

from __future__ import annotations


class IIPyError(Exception):
    """Base class.  ``status`` is the HTTP status a response carries."""

    status = 500

    def __init__(self, message: str = "") -> None:
        super().__init__(message)
        self.message = message


class ConfigError(IIPyError):
    """A bad setting: stops start-up with a message naming the variable."""


class BadRequest(IIPyError):
    """Malformed or out-of-range input (HTTP 400)."""

    status = 400


class BadNumber(BadRequest):
    """A number in a request that is malformed, too long, not finite or out of
    range (:mod:`iipy.numeric`): HTTP 400 in the protocol's error form."""


class NotFound(IIPyError):
    """A missing image, resolution or tile (HTTP 404)."""

    status = 404


class Forbidden(IIPyError):
    """An image exists but may not be read (HTTP 403)."""

    status = 403


class MethodNotAllowed(IIPyError):
    status = 405


class NotImplementedFeature(IIPyError):
    """A valid request for something the server does not do (HTTP 501)."""

    status = 501


class DecoderUnavailable(NotImplementedFeature):
    """A format whose decoding library is not installed (JPEG 2000 without
    OpenJPEG).  HTTP 501: the request is valid, this server cannot do it;
    every other format keeps working."""


class UnsupportedImage(IIPyError):
    """A readable file that no decoder serves (not an image, untiled TIFF…).

    HTTP 400, as iipsrv answers "Unsupported image type"."""

    status = 400


class CorruptImage(IIPyError):
    """An image whose structure or data cannot be decoded.

    HTTP 404 like iipsrv's failed TIFF reads: the file cannot be served.  It
    is logged as an error, answered without a traceback, and the worker
    keeps serving."""

    status = 404


class ImageTooLarge(BadRequest):
    """A request whose decode would exceed MAX_SOURCE_PIXELS, or an image whose
    declared size cannot be served within the bounds (HTTP 400, logged)."""


class IIPError(BadRequest):
    """An IIP protocol error line ``Error/<len>:<class> <number> <argument>``.

    ``code`` is ``(class, number)``: (1, 3) image required, (2, 1) malformed
    request, (2, 2) unsupported command, (3, 2) unsupported object.
    """

    def __init__(self, error_class: int, number: int, argument: str) -> None:
        super().__init__(f"{error_class} {number} {argument}")
        self.error_class = error_class
        self.number = number
        self.argument = argument
