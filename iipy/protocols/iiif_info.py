"""IIIF info.json (Image API 2.1 and 3.0, level 2) and the service id.

Everything comes from the real pyramid: ``sizes`` are the levels' sizes
(:func:`iipy.geometry.level_box` of the full image, i.e. the levels as the
renderer serves them), ``scaleFactors`` the levels' integer reductions, one
``tiles`` entry per tile size.  The document is built as a dict and written
by :mod:`json`, so it is valid JSON whatever the id or the settings contain
(iipsrv writes it by hand: ``%%`` in ids, ruven/iipsrv#270).
"""

from __future__ import annotations

import json
import logging
import re

from ..http import Request, uri_safe
from ..models import ImageInfo, OutputFormat
from ..render.encoders import available
from ..render.geometry import level_box, scale_factor
from ..settings import Settings

log = logging.getLogger(__name__)

CONTEXT = {2: "http://iiif.io/api/image/2/context.json", 3: "http://iiif.io/api/image/3/context.json"}
PROFILE = {2: "http://iiif.io/api/image/2/level2.json", 3: "http://iiif.io/api/image/3/level2.json"}
PROTOCOL = "http://iiif.io/api/image"
#: beyond level 2's jpg and png, listed when this installation writes them
EXTRA_FORMATS = (OutputFormat.TIFF, OutputFormat.WEBP, OutputFormat.AVIF)
#: IIIF_EXTENSIONS=1: iipsrv 1.3's own qualities (negative = INV, stretch = CNT=st,
#: equalization = CNT=eq, log = GAM=log)
EXTENSION_QUALITIES = ["negative", "stretch", "equalization", "log"]
PHYSDIM_CONTEXT = "http://iiif.io/api/annex/services/physdim/1/context.json"
PHYSDIM_PROFILE = "http://iiif.io/api/annex/services/physdim"
_ACCEPT_VERSION = re.compile(r"iiif\.io/api/image/(\d)/context\.json")
#: keys IIIF_EXTRA_INFO may not replace
PROTECTED = {"@context", "@id", "id", "type", "protocol", "profile", "width", "height"}


def negotiate_version(accept: str, default: int) -> int:
    """The version an ``Accept`` header asks for with a ``profile`` context, else the default."""
    match = _ACCEPT_VERSION.search(accept or "")
    if match and int(match.group(1)) in CONTEXT:
        return int(match.group(1))
    return default


def content_type(version: int, accept: str) -> str:
    """JSON-LD when asked for (2.1), or by default (3.0, with the context as profile).

    2.1: ``application/json`` unless the Accept header names
    ``application/ld+json``.  3.0: ``application/ld+json;profile=…`` unless
    the client accepts plain JSON but not JSON-LD.
    """
    accept = (accept or "").lower()
    if version >= 3:
        if "application/json" in accept and "application/ld+json" not in accept:
            return "application/json"
        return f'application/ld+json;profile="{CONTEXT[3]}"'
    return "application/ld+json" if "application/ld+json" in accept else "application/json"


def parse_extra_info(text: str) -> dict:
    """IIIF_EXTRA_INFO (``"key": value, …`` as iipsrv takes it) as a dict.

    iipsrv pastes the text into its output unchecked; an invalid value is
    logged and ignored here, so info.json stays valid JSON.
    """
    text = text.strip().rstrip(",")
    if not text:
        return {}
    if not text.startswith("{"):
        text = "{" + text + "}"
    try:
        extra = json.loads(text)
    except ValueError:
        log.warning("IIIF_EXTRA_INFO is not valid JSON members; ignored")
        return {}
    if not isinstance(extra, dict):
        return {}
    for key in PROTECTED & extra.keys():
        log.warning("IIIF_EXTRA_INFO may not set %r; ignored", key)
        del extra[key]
    return extra


def service_id(request: Request, identifier: str, argument: str, base_url: str) -> str:
    """The image's base URI: X-IIIF-ID, else BASE_URL + identifier, else the
    request's own URL up to the identifier (``https`` when the request was).

    ``identifier`` is as sent (still percent-encoded), so an id built from it
    reaches the same image again.  What is not printable ASCII (raw UTF-8 in
    the path, a space in a header) is percent-encoded: the id is a URI, and
    it goes into the Location and Link headers.
    """
    return uri_safe(_service_id(request, identifier, argument, base_url))


def _service_id(request: Request, identifier: str, argument: str, base_url: str) -> str:
    if request.iiif_id:
        return request.iiif_id.rstrip("/")
    if base_url:
        return (base_url if base_url.endswith("/") else base_url + "/") + identifier
    uri = request.uri
    start = uri.find(argument) if argument else -1
    if start >= 0:
        base = uri[: start + len(identifier)]
    else:  # iipsrv's rule: the request URI without "/info.json"
        cut = uri.rfind("/info.json")
        base = uri[:cut] if cut >= 0 else uri
    scheme = "https" if request.https else "http"
    return f"{scheme}://{request.host}{base}"


def _sizes(info: ImageInfo, max_size: int) -> list[dict]:
    """Every level but the full one (iipsrv's choice; viewers add the full
    size themselves), smallest first, within MAX_CVT as the specs require."""
    full = (0, 0, info.width, info.height)
    sizes = []
    levels = range(1, len(info.levels)) if len(info.levels) > 1 else range(1)
    for level in reversed(levels):
        _, _, w, h = level_box(info, level, full)
        if max_size > 0 and (w > max_size or h > max_size):
            continue
        sizes.append({"width": w, "height": h})
    return sizes


def _tiles(info: ImageInfo) -> list[dict]:
    groups: dict[tuple[int, int], list[int]] = {}
    for level, lv in enumerate(info.levels):
        factors = groups.setdefault((lv.tile_width, lv.tile_height), [])
        factor = scale_factor(info, level)
        if factor not in factors:
            factors.append(factor)
    return [
        {"width": tw, "height": th, "scaleFactors": sorted(factors)}
        for (tw, th), factors in groups.items()
    ]


def _rights(info: ImageInfo, copyright_text: str) -> tuple[str, str]:
    """(URI, text) of the image's rights: its own Copyright tag, else COPYRIGHT.

    A URI is a rights statement (3.0 ``rights``, 2.1 ``license``); other text
    is an attribution (3.0 ``requiredStatement``, 2.1 ``attribution``).
    """
    text = (info.metadata.get("rights") or copyright_text).strip()
    if text.startswith(("http://", "https://")):
        return text, ""
    return "", text


def _physical_dimensions(info: ImageInfo, ident: str, version: int) -> dict | None:
    """The physdim service (size of one pixel in the file's unit), or None when
    the file gives no resolution or no unit (iipsrv 1.3 then assumes cm).

    3.0 requires an id and a type on every service; this 2.x-era annex service
    gets the legacy ``@id`` (a fragment of the image's id: nothing to fetch)
    and ``@type``, as 3.0 allows for services of older specifications.
    """
    if not info.dpi or not info.dpi[0] or info.resolution_unit not in ("in", "cm"):
        return None
    per_metre = info.dpi[0]
    per_unit = per_metre * (0.0254 if info.resolution_unit == "in" else 0.01)
    service: dict = {"@id": f"{ident}#physdim", "@type": "PhysicalDimensions"} \
        if version >= 3 else {}
    return {
        **service,
        "@context": PHYSDIM_CONTEXT,
        "profile": PHYSDIM_PROFILE,
        "physicalScale": float(f"{1.0 / per_unit:.12g}"),
        "physicalUnits": info.resolution_unit,
    }


def info_document(info: ImageInfo, ident: str, version: int, settings: Settings,
                  extra: dict) -> dict:
    """The info.json of one image for one version (level 2)."""
    qualities = (["color"] if info.bands >= 3 else []) + ["gray", "bitonal"]
    if settings.iiif_extensions:
        qualities += EXTENSION_QUALITIES
    formats = [fmt.extension for fmt in EXTRA_FORMATS if fmt in available()]
    max_size = settings.max_cvt
    upscaling = settings.allow_upscaling and max_size > 0  # 3.0: needs a maxWidth
    features = ["canonicalLinkHeader", "profileLinkHeader", "mirroring", "rotationArbitrary"]
    if settings.cors:
        features.append("cors")
    rights, attribution = _rights(info, settings.copyright)
    doc: dict = {"@context": CONTEXT[version]}
    if version >= 3:
        doc.update(id=ident, type="ImageService3", protocol=PROTOCOL, profile="level2")
    else:
        doc.update({"@id": ident, "protocol": PROTOCOL})
    doc.update(width=info.width, height=info.height)
    sizes = _sizes(info, max_size)
    if sizes:
        doc["sizes"] = sizes
    doc["tiles"] = _tiles(info)
    if version >= 3:
        if max_size > 0:
            doc.update(maxWidth=max_size, maxHeight=max_size)
        doc["extraQualities"] = qualities
        doc["extraFormats"] = formats
        doc["extraFeatures"] = features + (["sizeUpscaling"] if upscaling else [])
        if rights:
            doc["rights"] = rights
        if attribution:
            doc["requiredStatement"] = {"label": {"en": ["Attribution"]},
                                        "value": {"none": [attribution]}}
    else:
        profile: dict = {
            "formats": ["jpg", "png", *formats],
            "qualities": ["default", *qualities],
            "supports": ["regionSquare", *features]
            + (["sizeAboveFull"] if settings.allow_upscaling else []),
        }
        if max_size > 0:
            profile.update(maxWidth=max_size, maxHeight=max_size)
        doc["profile"] = [PROFILE[2], profile]
        if rights:
            doc["license"] = rights
        if attribution:
            doc["attribution"] = attribution
    service = _physical_dimensions(info, ident, version)
    if service:
        doc["service"] = [service]
    doc.update(extra)
    return doc


def render(doc: dict) -> bytes:
    return (json.dumps(doc, indent=2, ensure_ascii=False) + "\n").encode("utf-8")
