"""Whether this process can decode images: the decoder part of ``/health``."""

from __future__ import annotations

from ..errors import DecoderUnavailable


def checks() -> dict[str, str]:
    """``{"tiff": "ok", "jpeg2000": "ok"}``, or the reason in place of "ok"."""
    found: dict[str, str] = {}
    try:
        import pyvips

        pyvips.version(0)  # libvips itself, not only the binding
        found["tiff"] = "ok"
    except Exception as exc:  # an import that fails for any reason is a failing check
        found["tiff"] = f"TIFF images cannot be served: pyvips/libvips unusable ({exc})"
    try:
        from . import openjpeg

        openjpeg.glymur_module()
        found["jpeg2000"] = "ok"
    except DecoderUnavailable as exc:
        found["jpeg2000"] = exc.message
    except Exception as exc:
        found["jpeg2000"] = f"JPEG 2000 images cannot be served: {exc}"
    return found
