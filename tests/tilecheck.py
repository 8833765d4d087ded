"""A shared tile checker: every level's corner tiles and the out-of-range
tiles of one image, through one tile protocol, against the generated pattern.

It is decoder- and protocol-neutral:

* an :class:`ImageSpec` says what the image should look like: its levels
  (native order, full size first), tile size, and a function giving the
  expected pixels of a level in 8-bit output units (float arrays);
* a :class:`TileProtocol` says how to ask for a tile and which requests must
  fail: :class:`IIPTiles` (``JTL=r,t``), :class:`IIIFTiles` (region and size
  of one level tile), :class:`DeepZoomTiles` and :class:`ZoomifyTiles`
  (:data:`PROTOCOLS` lists them).  Another protocol is a further subclass
  with ``tile_request`` and ``out_of_range`` (and ``levels`` when it numbers
  levels its own way).

:func:`check_tiles` returns a list of problems (empty when all is well), so a
failing test shows every wrong tile at once::

    for protocol in PROTOCOLS:
        assert check_tiles(app, spec, protocol) == []

Pixel comparison: the decoded output tile (JPEG, so lossy) is compared with
the expected level: the mean absolute difference over the tile must stay
within ``Tolerance.mean``, and the largest difference within
``Tolerance.peak`` on "smooth" pixels (where the expected image varies by at
most ``Tolerance.flat`` within ``Tolerance.radius`` pixels; sharp cell edges
are left out because codecs smear them).  A tile from the wrong column,
row or level differs by tens of units in the R/G gradients and fails.
"""

from __future__ import annotations

import io
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
from PIL import Image
from wsgi import call


@dataclass(frozen=True)
class Tolerance:
    mean: float = 3.0  # mean |got - expected| over the tile, 8-bit units
    peak: float = 12.0  # max |got - expected| on smooth pixels
    flat: float = 6.0  # "smooth": expected varies by at most this much ...
    radius: int = 3  # ... within this many pixels


@dataclass
class ImageSpec:
    """What an image served through a protocol should look like."""

    name: str  # the image's name as protocols spell it (relative to FILESYSTEM_PREFIX)
    levels: Sequence[tuple[int, int]]  # (width, height), native order, full size first
    tile: tuple[int, int]  # tile width, height
    expected: Callable[[int], np.ndarray]  # native level -> (h, w, bands) float, 8-bit units
    tolerance: Tolerance = field(default_factory=Tolerance)
    bands: int = 3  # bands of the output tiles (JPEG: 1 or 3)

    def grid(self, native: int) -> tuple[int, int]:
        width, height = self.levels[native]
        tw, th = self.tile
        return -(-width // tw), -(-height // th)

    def tile_box(self, native: int, column: int, row: int) -> tuple[int, int, int, int]:
        width, height = self.levels[native]
        tw, th = self.tile
        left, top = column * tw, row * th
        return left, top, min(tw, width - left), min(th, height - top)

    def corners(self, native: int) -> list[tuple[int, int]]:
        columns, rows = self.grid(native)
        return sorted({(0, 0), (columns - 1, 0), (0, rows - 1), (columns - 1, rows - 1)})


@dataclass(frozen=True)
class Request:
    query: str = ""  # QUERY_STRING
    uri: str | None = None  # REQUEST_URI, for path-style protocols (None: derived)


class TileProtocol(ABC):
    name: str = ""

    def levels(self, spec: ImageSpec) -> list[tuple[object, int]]:
        """(protocol's level id, native level) for every level it serves."""
        count = len(spec.levels)
        return [(count - 1 - native, native) for native in range(count)]

    @abstractmethod
    def tile_request(self, spec: ImageSpec, level_id: object, native: int,
                     column: int, row: int) -> Request:
        """The request for one tile."""

    @abstractmethod
    def out_of_range(self, spec: ImageSpec) -> list[tuple[Request, set[int]]]:
        """Requests outside the image, each with the statuses allowed for it."""


class IIPTiles(TileProtocol):
    """IIP ``JTL=r,t``: r = 0 for the smallest level, t row-major."""

    name = "IIP"

    def tile_request(self, spec, level_id, native, column, row):
        columns, _ = spec.grid(native)
        return Request(f"FIF={spec.name}&JTL={level_id},{row * columns + column}")

    def out_of_range(self, spec):
        count = len(spec.levels)
        cases: list[tuple[Request, set[int]]] = []
        for level_id, native in self.levels(spec):
            columns, rows = spec.grid(native)
            cases.append((Request(f"FIF={spec.name}&JTL={level_id},{columns * rows}"), {404}))
        cases += [
            (Request(f"FIF={spec.name}&JTL={count},0"), {404}),
            (Request(f"FIF={spec.name}&JTL={count + 7},0"), {404}),
            (Request(f"FIF={spec.name}&JTL=0,{2**31 - 1}"), {404}),
            (Request(f"FIF={spec.name}&JTL=0,{2**31}"), {400}),  # beyond a C int (iipy.numeric)
            (Request(f"FIF={spec.name}&JTL=-1,0"), {400}),
            (Request(f"FIF={spec.name}&JTL=0,-1"), {400}),
        ]
        return cases


def _scale(spec: ImageSpec, native: int) -> int:
    """The level's reduction from full size, a power of two (as the protocols compute it)."""
    full_w, full_h = spec.levels[0]
    width, height = spec.levels[native]
    if full_w >= full_h:
        return max(1, int(full_w / width + 0.5))
    return max(1, int(full_h / height + 0.5))


class IIIFTiles(TileProtocol):
    """IIIF Image API ``<id>/<x,y,w,h>/<w,h>/0/default.jpg``: a level's tile as a
    full-resolution region scaled to the tile's size (the URLs tiling viewers build)."""

    name = "IIIF"

    def levels(self, spec):
        return [(native, native) for native in range(len(spec.levels))]

    def tile_request(self, spec, level_id, native, column, row):
        full_w, full_h = spec.levels[0]
        s = _scale(spec, native)
        left, top, width, height = spec.tile_box(native, column, row)
        x, y = left * s, top * s
        w, h = min(width * s, full_w - x), min(height * s, full_h - y)
        return Request(f"IIIF={spec.name}/{x},{y},{w},{h}/{width},{height}/0/default.jpg")

    def out_of_range(self, spec):
        full_w, full_h = spec.levels[0]
        name = spec.name
        return [
            (Request(f"IIIF={name}/{full_w},0,256,256/256,256/0/default.jpg"), {400}),
            (Request(f"IIIF={name}/0,{full_h},256,256/256,256/0/default.jpg"), {400}),
            (Request(f"IIIF={name}/0,0,256,256/0,256/0/default.jpg"), {400}),
        ]


class DeepZoomTiles(TileProtocol):
    """DeepZoom ``<image>_files/<L>/<x>_<y>.jpg``; L = ceil(log2(max side)) is full size."""

    name = "DeepZoom"

    def top(self, spec: ImageSpec) -> int:
        full_w, full_h = spec.levels[0]
        return max(0, int(np.ceil(np.log2(max(full_w, full_h)))))

    def levels(self, spec):
        top = self.top(spec)
        return [(top - int(np.log2(_scale(spec, native))), native)
                for native in range(len(spec.levels))]

    def tile_request(self, spec, level_id, native, column, row):
        return Request(f"DeepZoom={spec.name}_files/{level_id}/{column}_{row}.jpg")

    def out_of_range(self, spec):
        cases = []
        for level_id, native in self.levels(spec):
            columns, rows = spec.grid(native)
            files = f"DeepZoom={spec.name}_files/{level_id}"
            cases.append((Request(f"{files}/{columns}_0.jpg"), {404}))
            cases.append((Request(f"{files}/0_{rows}.jpg"), {404}))
        cases.append((Request(f"DeepZoom={spec.name}_files/{self.top(spec) + 1}/0_0.jpg"), {404}))
        cases.append((Request(f"DeepZoom={spec.name}_files/{self.top(spec)}/-1_0.jpg"), {400}))
        return cases


class ZoomifyTiles(TileProtocol):
    """Zoomify ``<image>/TileGroup0/<z>-<x>-<y>.jpg``; z = 0 is the one-tile level."""

    name = "Zoomify"

    def tile_request(self, spec, level_id, native, column, row):
        return Request(f"Zoomify={spec.name}/TileGroup0/{level_id}-{column}-{row}.jpg")

    def out_of_range(self, spec):
        cases = []
        for level_id, native in self.levels(spec):
            columns, rows = spec.grid(native)
            group = f"Zoomify={spec.name}/TileGroup0/{level_id}"
            cases.append((Request(f"{group}-{columns}-0.jpg"), {404}))
            cases.append((Request(f"{group}-0-{rows}.jpg"), {404}))
        cases.append((Request(f"Zoomify={spec.name}/TileGroup0/{len(spec.levels)}-0-0.jpg"),
                      {404}))
        return cases


#: every tile protocol the server speaks
PROTOCOLS = [IIPTiles(), IIIFTiles(), DeepZoomTiles(), ZoomifyTiles()]


def decode(body: bytes) -> np.ndarray:
    image = Image.open(io.BytesIO(body))
    image.load()
    array = np.asarray(image, dtype=np.float64)
    return array[:, :, None] if array.ndim == 2 else array


def smooth(expected: np.ndarray, tolerance: Tolerance) -> np.ndarray:
    """Pixels whose neighbourhood is flat in the expected image (all bands)."""
    high = _running(expected, tolerance.radius, np.maximum)
    low = _running(expected, tolerance.radius, np.minimum)
    return (high - low <= tolerance.flat).all(axis=2)


def _running(array: np.ndarray, radius: int, pick) -> np.ndarray:
    """Running max or min over a (2·radius+1)² window clipped at the edges (separable)."""
    out = array
    for axis in (0, 1):
        source, out = out, out.copy()
        for shift in range(1, radius + 1):
            if shift >= source.shape[axis]:
                break
            head = [slice(None)] * 3
            tail = [slice(None)] * 3
            head[axis], tail[axis] = slice(shift, None), slice(None, -shift)
            pick(out[tuple(head)], source[tuple(tail)], out=out[tuple(head)])
            pick(out[tuple(tail)], source[tuple(head)], out=out[tuple(tail)])
    return out


def smooth_box(expected: np.ndarray, box: tuple[int, int, int, int],
               tolerance: Tolerance) -> np.ndarray:
    """:func:`smooth` for one box of the level (looking ``radius`` beyond its edges)."""
    left, top, width, height = box
    r = tolerance.radius
    x0, y0 = max(0, left - r), max(0, top - r)
    x1 = min(expected.shape[1], left + width + r)
    y1 = min(expected.shape[0], top + height + r)
    flat = smooth(expected[y0:y1, x0:x1], tolerance)
    return flat[top - y0 : top - y0 + height, left - x0 : left - x0 + width]


def check_tiles(app, spec: ImageSpec, protocol: TileProtocol) -> list[str]:
    """Every level's corner tiles and the out-of-range requests; a list of problems."""
    problems: list[str] = []
    tol = spec.tolerance
    for level_id, native in protocol.levels(spec):
        expected_level = spec.expected(native)
        want_shape = (spec.levels[native][1], spec.levels[native][0])
        if expected_level.shape[:2] != want_shape:
            problems.append(f"spec: expected level {native} is {expected_level.shape[:2]}")
            continue
        for column, row in spec.corners(native):
            request = protocol.tile_request(spec, level_id, native, column, row)
            where = f"{protocol.name} level {level_id} tile ({column},{row}) [{request.query}]"
            result = call(app, request.query, uri=request.uri)
            if result.status != 200:
                problems.append(f"{where}: status {result.status} {result.body[:80]!r}")
                continue
            got = decode(result.body)
            left, top, width, height = spec.tile_box(native, column, row)
            if got.shape != (height, width, spec.bands):
                problems.append(f"{where}: shape {got.shape}, expected {(height, width)}")
                continue
            want = expected_level[top : top + height, left : left + width]
            diff = np.abs(got - want)
            mean = float(diff.mean())
            mask = smooth_box(expected_level, (left, top, width, height), tol)
            peak = float(diff[mask].max()) if mask.any() else 0.0
            if mean > tol.mean or peak > tol.peak:
                problems.append(f"{where}: mean diff {mean:.2f}, peak {peak:.1f} on smooth pixels")
    for request, statuses in protocol.out_of_range(spec):
        result = call(app, request.query, uri=request.uri)
        if result.status not in statuses:
            problems.append(
                f"{protocol.name} [{request.query}]: status {result.status}, expected {statuses}"
            )
    return problems


# -- expected pixels --------------------------------------------------------


def box_means(array: np.ndarray, x_edges: np.ndarray, y_edges: np.ndarray) -> np.ndarray:
    """Mean of ``array`` over the boxes between consecutive edges (float64)."""
    sums = np.add.reduceat(array.astype(np.float64), y_edges[:-1], axis=0)
    sums = np.add.reduceat(sums, x_edges[:-1], axis=1)
    counts = np.diff(y_edges)[:, None] * np.diff(x_edges)[None, :]
    return sums / counts[:, :, None]


def _edges(start: int, length: int, factor: int) -> np.ndarray:
    """Box edges, image-relative, of a level at ``factor`` for an image at grid offset ``start``."""
    first = -(-start // factor)
    last = -(-(start + length) // factor)
    edges = np.arange(first, last + 1, dtype=np.int64) * factor
    return np.clip(edges, start, start + length) - start


def jp2_expected_levels(array: np.ndarray, real_levels: int, count: int,
                        offset: tuple[int, int] = (0, 0), scale: float = 1.0
                        ) -> list[np.ndarray]:
    """Expected pixels of every served level of a JPEG 2000 image, ``scale`` × samples.

    Codestream levels are the box means of the full-resolution pixels over
    the reduce factor's cells of the reference grid (a close approximation
    of the wavelet's low-pass band on this pattern); virtual levels are box
    means of the smallest codestream level, as the decoder makes them.
    """
    height, width = array.shape[:2]
    ox, oy = offset
    levels = []
    for level in range(real_levels):
        factor = 1 << level
        means = box_means(array, _edges(ox, width, factor), _edges(oy, height, factor))
        levels.append(means * scale)
    base = levels[-1]
    for k in range(1, count - real_levels + 1):
        factor = 1 << k
        bh, bw = base.shape[:2]
        levels.append(box_means(base, _edges(0, bw, factor), _edges(0, bh, factor)))
    return levels
