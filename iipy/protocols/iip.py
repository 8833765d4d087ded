"""The IIP protocol: ``FIF=…&WID=…&JTL=r,t`` request strings.

Commands run strictly left to right on a per-request state, as in iipsrv
(iip-protocol.md §1-5): setters change the state, output commands produce
the response.  The command table maps lower-cased names to small handlers;
an unknown name queues error ``2 2 <name>``.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from urllib.parse import quote

from ..errors import BadRequest, IIPError, NotFound
from ..http import Request, Response
from ..models import OutputFormat, Processing, View
from ..paths import PathResolver, url_decode
from ..render.encoders import available
from ..render.geometry import cvt_output_size
from ..render.renderer import ImageRecord, Renderer
from ..render.sequences import DEFAULT_ANGLES, Sequence, find_sequence
from ..settings import Settings
from . import iipdata, iipobj, iipproc, iiptiles
from .common import Protocol, c_float, c_int, open_image, validate

log = logging.getLogger(__name__)

IIP_TYPE = "application/vnd.netfpx"
ERROR_DISPOSITION = 'inline;filename="IIPisAMadGameClosedToOurUnderstanding.netfpx"'

TILE_FORMATS = {"jtl": OutputFormat.JPEG, "ptl": OutputFormat.PNG, "wtl": OutputFormat.WEBP,
                "ttl": OutputFormat.TIFF, "atl": OutputFormat.AVIF}
CVT_FORMATS = {
    "jpeg": OutputFormat.JPEG,
    "jpg": OutputFormat.JPEG,
    "png": OutputFormat.PNG,
    "webp": OutputFormat.WEBP,
    "tif": OutputFormat.TIFF,
    "tiff": OutputFormat.TIFF,
    "avif": OutputFormat.AVIF,
}
#: accepted, no effect (iipsrv compiles its colour management out)
NO_OP = {"icc"}


@dataclass
class _State:
    request: Request
    image: ImageRecord | None = None
    fif: str = ""
    etag: str | None = None
    region: tuple[float, float, float, float] = (0.0, 0.0, 1.0, 1.0)
    wid: int = 0
    hei: int = 0
    quality: int | None = None
    compression: int = -1  # QLT=<compression>:… (TIFF output)
    layers: int = 0
    processing: Processing = field(default_factory=Processing)
    protocol_line: str | None = None
    lines: list[str] = field(default_factory=list)
    content_type: str = IIP_TYPE
    errors: list[IIPError] = field(default_factory=list)
    output: Response | None = None
    sequence: Sequence | None = None  # FIF named an image sequence (§11.6)
    angles: tuple[int, int] = DEFAULT_ANGLES  # SDS


class IIPProtocol(Protocol):
    def __init__(self, settings: Settings, renderer: Renderer, resolver: PathResolver) -> None:
        super().__init__(settings, renderer, resolver)
        self.commands: dict[str, Callable[[_State, str, str], None]] = {
            "fif": self._fif,
            "obj": self._obj,
            "jtl": self._tile,
            "ptl": self._tile,
            "wtl": self._tile,
            "ttl": self._tile,
            "atl": self._tile,
            "til": self._til,
            "jtls": self._jtls,
            "cvt": self._cvt,
            "wid": self._wid,
            "hei": self._hei,
            "rgn": self._rgn,
            "qlt": self._qlt,
            "sds": self._sds,
            "lyr": self._lyr,
            "spectra": self._data,
            "pfl": self._data,
        }
        for name, setter in iipproc.SETTERS.items():
            self.commands[name] = self._processing_setter(setter)
        for name, fmt in TILE_FORMATS.items():  # as iipsrv built without WebP or AVIF
            if fmt not in available():
                del self.commands[name]

    # -- entry point ------------------------------------------------------

    def handle(self, request: Request) -> Response:
        state = _State(request)
        for name, argument, sent_name in tokenize(request.query):
            handler = self.commands.get(name)
            if handler is None:
                if name in NO_OP:
                    continue
                log.info("unsupported IIP command %s", sent_name)
                state.errors.append(IIPError(2, 2, sent_name))
                continue
            try:
                handler(state, argument, sent_name)
            except IIPError as exc:
                state.errors.append(exc)
            if state.output is not None:
                if state.errors:
                    log.info("IIP errors ignored after output: %s", state.errors)
                return state.output
        if state.errors:
            return self.error_response(state.errors)
        if state.protocol_line is None and not state.lines:
            return self.error_response([IIPError(2, 1, request.query)])
        body = (state.protocol_line or "") + "\r\n" + "".join(line + "\r\n" for line in state.lines)
        return Response(
            200,
            body.encode("utf-8"),
            state.content_type,
            last_modified=state.image.mtime if state.image else None,
            etag=state.etag,
        )

    def error_response(self, errors: list[IIPError]) -> Response:
        return Response(
            400,
            b"".join(self.error_line(e) for e in errors),
            IIP_TYPE,
            headers=[("Content-Disposition", ERROR_DISPOSITION)],
            cacheable=False,
        )

    def error_line(self, error: IIPError) -> bytes:
        text = f"{error.error_class} {error.number} {error.argument}".encode(
            "utf-8", "surrogateescape"
        )
        line = b"Error/%d:" % len(text) + text
        if self.settings.error_truncate:
            line = line[:31]
        return line + b"\r\n"

    # -- image selection --------------------------------------------------

    def _fif(self, state: _State, argument: str, sent: str) -> None:
        requested = url_decode(argument)
        state.sequence = None
        try:
            record = open_image(self.resolver, self.renderer, requested)
        except NotFound:
            sequence = find_sequence(self.resolver, requested, self.settings.filename_pattern)
            if sequence is None:
                raise
            state.sequence = sequence
            record = self.renderer.open(sequence.path(*state.angles))
        if record.info.stack and state.angles[0]:  # SDS came before FIF
            record = self.renderer.open(record.path, page=state.angles[0])
        state.fif = requested
        self._select(state, record)

    def _select(self, state: _State, record: ImageRecord) -> None:
        """Make ``record`` the request's image; answer 304 if the client has it."""
        state.image = record
        state.etag = validate(state.request, record, state.request.query, self.fingerprint)

    def _need_image(self, state: _State, argument: str = "") -> ImageRecord:
        if state.image is None:
            raise IIPError(1, 3, argument)
        return state.image

    # -- metadata ---------------------------------------------------------

    def _obj(self, state: _State, argument: str, sent: str) -> None:
        name = argument.lower()
        if name.startswith("iip,"):
            state.protocol_line = "IIP:1.0"
            return
        if name in iipobj.RAW_OBJECTS:
            record = self._need_image(state, name)
            value, mime = iipobj.raw_object(record.info, name)
            if value:
                state.output = Response(200, value + b"\r\n", mime,
                                        last_modified=record.mtime, etag=state.etag)
            return
        handler = iipobj.lookup(name)
        if handler is None:
            raise IIPError(3, 2, name)
        if name in iipobj.IMAGELESS:
            state.lines.extend(handler(None, False))  # type: ignore[arg-type]
            return
        record = self._need_image(state, name)
        if state.sequence is not None and name in ("horizontal-views", "vertical-views"):
            views = (state.sequence.horizontal_views if name.startswith("h")
                     else state.sequence.vertical_views)
            label = "Horizontal-views" if name.startswith("h") else "Vertical-views"
            state.lines.append(f"{label}:" + " ".join(str(v) for v in views))
            return
        state.lines.extend(handler(record.info, state.processing.rotation in (90, 270)))
        if name in ("metadata", "stack"):
            state.content_type = "application/json"

    # -- setters ----------------------------------------------------------

    def _wid(self, state: _State, argument: str, sent: str) -> None:
        state.wid = self._size(argument, "WID")

    def _hei(self, state: _State, argument: str, sent: str) -> None:
        state.hei = self._size(argument, "HEI")

    @staticmethod
    def _size(argument: str, what: str) -> int:
        value = c_int(argument, what)
        if value < 0:
            raise BadRequest(f"{what} must not be negative")
        return value

    def _rgn(self, state: _State, argument: str, sent: str) -> None:
        parts = argument.split(",")
        if len(parts) != 4:
            raise BadRequest("RGN needs four numbers: x,y,w,h as fractions of the image")
        x, y, w, h = (min(1.0, max(0.0, c_float(p, "RGN"))) for p in parts)
        w, h = min(w, 1.0 - x), min(h, 1.0 - y)
        if w <= 0 or h <= 0:
            raise BadRequest("RGN selects no part of the image")
        state.region = (x, y, w, h)

    def _qlt(self, state: _State, argument: str, sent: str) -> None:
        state.quality, compression = iiptiles.parse_qlt(argument)
        if compression >= 0:
            state.compression = compression

    @staticmethod
    def _processing_setter(
        setter: Callable[[Processing, str], Processing],
    ) -> Callable[[_State, str, str], None]:
        """CNT, GAM, INV, CMP, CTW, COL, MINMAX, SHD, CNV, ROT (see iipproc)."""

        def handler(state: _State, argument: str, sent: str) -> None:
            state.processing = setter(state.processing, argument)

        return handler

    def _lyr(self, state: _State, argument: str, sent: str) -> None:
        """JPEG 2000 quality layers to decode (iipsrv accepts any number; MAX_LAYERS caps it)."""
        state.layers = c_int(argument, "LYR")

    def _sds(self, state: _State, argument: str, sent: str) -> None:
        """SDS=x[,y]: the angles of an image sequence (y stays 90 when not given),
        or page x of a multi-page stack (y unused), as iipsrv 1.3.

        A single image has only the default view; the angles are accepted
        and ignored for it, as iipsrv does.  A page the stack does not have
        is a 404 (``page N does not exist``).
        """
        parts = argument.split(",")
        x = c_int(parts[0], "SDS")
        y = c_int(parts[1], "SDS") if len(parts) > 1 and parts[1].strip() else state.angles[1]
        state.angles = (x, y)
        if state.sequence is not None:
            self._select(state, self.renderer.open(state.sequence.path(x, y)))
        elif state.image is not None and state.image.info.stack:
            self._select(state, self.renderer.open(state.image.path, page=x))

    # -- outputs ----------------------------------------------------------

    def _tile(self, state: _State, argument: str, sent: str) -> None:
        record = self._need_image(state)
        head, sep, tail = argument.partition(",")
        if not sep:
            raise BadRequest(f"{sent} needs a resolution and a tile index: r,t")
        self._send_tile(state, record, c_int(head, sent), c_int(tail, sent), sent,
                        TILE_FORMATS[sent.lower()])

    def _jtls(self, state: _State, argument: str, sent: str) -> None:
        """JTLS=x,r,t,y: SDS=x,y then JTL=r,t (iipsrv's legacy sequence command)."""
        x, resolution, tile, y = iiptiles.parse_jtls(argument)
        self._sds(state, f"{x},{y}", "SDS")
        self._send_tile(state, self._need_image(state), resolution, tile, sent,
                        OutputFormat.JPEG)

    def _send_tile(self, state: _State, record: ImageRecord, resolution: int, tile: int,
                   sent: str, fmt: OutputFormat) -> None:
        if resolution < 0 or tile < 0:
            raise BadRequest(f"{sent}: resolution and tile must not be negative")
        if state.processing.rotation == 180 and 0 <= resolution < record.info.resolutions:
            # §2.19: a half turn also turns the grid (90/270 only turn each tile)
            count = record.info.level_for_resolution(resolution)[1].tile_count
            if tile < count:
                tile = count - 1 - tile
        view = View(
            record.path,
            "tile",
            fmt,
            state.quality,
            resolution,
            tile,
            state.processing,
            record.stamp,
            state.layers,
            state.compression if fmt is OutputFormat.TIFF else -1,
            record.page,
        )
        state.output = Response(
            200,
            self.renderer.tile(view),
            fmt.mime,
            last_modified=record.mtime,
            etag=state.etag,
        )

    def _til(self, state: _State, argument: str, sent: str) -> None:
        record = self._need_image(state)
        body = iiptiles.til_body(self.renderer, record, argument, state.quality, state.layers)
        state.output = Response(200, body, IIP_TYPE, last_modified=record.mtime,
                                etag=state.etag)

    def _data(self, state: _State, argument: str, sent: str) -> None:
        """SPECTRA and PFL: sample values across bands, stack pages or a sequence's views."""
        record = self._need_image(state)
        sources: Iterable[iipdata.Source] = [(None, record)]
        if (sequence := state.sequence) is not None:
            sources = ((str(x), self.renderer.open(sequence.path(x, state.angles[1])))
                       for x in sequence.horizontal_views)
        body, mime = iipdata.answer(sent.lower(), self.renderer, record, sources, argument,
                                    state.layers)
        state.output = Response(200, body, mime, last_modified=record.mtime, etag=state.etag)

    def _cvt(self, state: _State, argument: str, sent: str) -> None:
        record = self._need_image(state)
        fmt = CVT_FORMATS.get(argument.lower())
        if fmt is None or fmt not in available():
            raise BadRequest(f"CVT: unsupported format '{argument}' (jpeg, png, webp, tiff, avif)")
        s = self.settings
        width, height = cvt_output_size(
            record.info, state.region, state.wid, state.hei, s.max_cvt, s.allow_upscaling
        )
        view = View(
            record.path, "region", fmt, state.quality, processing=state.processing,
            stamp=record.stamp, layers=state.layers,
            compression=state.compression if fmt is OutputFormat.TIFF else -1,
            page=record.page,
        )
        body = self.renderer.region(view, state.region, width, height)
        kind = "attachment" if state.request.method == "POST" else "inline"
        disposition = content_disposition(kind, state.fif, fmt.extension)
        state.output = Response(
            200,
            body,
            fmt.mime,
            headers=[("Content-Disposition", disposition)],
            last_modified=record.mtime,
            etag=state.etag,
        )


def tokenize(query: str) -> list[tuple[str, str, str]]:
    """Split a request string as iipsrv does: ``&``-separated, first ``=``.

    Empty tokens are skipped; a token without ``=`` is its own argument
    (``OBJ`` alone runs OBJ with argument ``OBJ``); a pair with an empty name
    or argument is dropped.  Returns (lower-cased name, argument, name as sent).
    """
    out = []
    for token in query.split("&"):
        if not token:
            continue
        name, sep, argument = token.partition("=")
        if not sep:
            argument = token
        if not name or not argument:
            continue
        out.append((name.lower(), argument, name))
    return out


def content_disposition(kind: str, fif: str, extension: str) -> str:
    """``inline;filename="rgb.jpg"`` (iipsrv 1.1's form) for image ``…/rgb.tif``.

    The name is the FIF's last path segment up to its last dot.  Characters
    a quoted header value cannot carry (quotes, backslashes, controls,
    non-ASCII) become ``_``, and the exact name is added as an RFC 6266
    ``filename*`` when it had any.
    """
    stem = os.path.basename(fif.replace("\\", "/"))
    stem = stem.rsplit(".", 1)[0] if "." in stem else stem
    stem = stem or "image"
    name = f"{stem}.{extension}"
    safe = "".join(c if 32 <= ord(c) < 127 and c not in '"\\' else "_" for c in name)
    value = f'{kind};filename="{safe}"'
    if safe != name:
        value += "; filename*=UTF-8''" + quote(name.encode("utf-8", "surrogateescape"), safe="")
    return value
