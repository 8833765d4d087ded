"""What /health and /metrics ask a Renderer (kept apart: renderer.py is at its size limit)."""

from __future__ import annotations

from ..decoders import probe


class RendererStatus:
    """Mixed into Renderer, which holds ``_images`` (the open images)."""

    _images: object
    #: the last tile's source: passthrough/cache/memcached/decoded/marked (logs, metrics)
    last_source: str = ""

    #: each image format's decoder: "ok" or why it cannot be used
    decoder_checks = staticmethod(probe.checks)

    @property
    def open_images(self) -> int:
        return len(self._images)  # type: ignore[arg-type]
