"""Prometheus metrics at ``/metrics`` (prometheus-client), summed over the worker processes.

Every worker counts its own requests; with ``--bind``/``--http`` the processes share a
multiprocess directory (prometheus-client's multiprocess mode: one small mmap file per
process and metric), so whichever worker answers a scrape reports the sum of all.  The
directory is IIPY_METRICS_DIR, or a fresh temporary one the pool makes and removes.
Processes a web server starts on fd 0 (mod_fcgid, lighttpd) have no common parent: they
serve metrics only when given IIPY_METRICS_DIR (a directory writable by the server's user,
emptied when the web server starts); without it each could only answer for itself, a
different one per scrape, so none does (and prometheus-client is not even imported).

    iipy_requests_total{protocol,kind,status}        requests answered
    iipy_request_duration_seconds{protocol,kind}     time to the response body (histogram)
    iipy_response_bytes_total{protocol,kind}         body bytes sent
    iipy_tiles_total{source}                         tiles by source (passthrough, cache, memcached,
                                                     decoded, marked): pass-through and hit ratios
    iipy_open_images                                 images held open (sum of live processes)
    iipy_worker_restarts_total                       workers that died and were replaced
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import tempfile
from types import ModuleType
from typing import Any

from ..http import Response
from ..settings import Settings
from .observe import Exchange

ENV = "PROMETHEUS_MULTIPROC_DIR"  # prometheus-client reads it when first imported
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

_prom: ModuleType | None = None
_metrics: dict[str, Any] = {}
_owned_dir: str | None = None


def usable(settings: Settings, pool: bool) -> Settings:
    """``settings`` with metrics off where they could not be summed (see above)."""
    if settings.metrics and not pool and not settings.metrics_dir:
        return dataclasses.replace(settings, metrics=False)
    return settings


def prepare(settings: Settings, pool: bool) -> None:
    """Choose the multiprocess directory before prometheus-client is imported.

    ``pool``: this process will fork the workers (--bind/--http), so it may make and
    empty the directory; a process started on fd 0 only joins a given one."""
    global _owned_dir, _owner_pid
    if not settings.metrics or _prom is not None:
        return
    directory = settings.metrics_dir
    if pool:
        if directory:
            os.makedirs(directory, exist_ok=True)
            for name in os.listdir(directory):  # counts of an earlier run
                if name.endswith(".db"):
                    os.unlink(os.path.join(directory, name))
        else:
            directory = _owned_dir = tempfile.mkdtemp(prefix="iipy-metrics-")
            _owner_pid = os.getpid()
    if directory:
        os.environ[ENV] = directory
    _load()


def _load() -> ModuleType:
    global _prom
    if _prom is None:
        import prometheus_client

        _prom = prometheus_client
        labels = ("protocol", "kind")
        _metrics.update(
            requests=prometheus_client.Counter(
                "iipy_requests", "Requests answered", (*labels, "status")),
            duration=prometheus_client.Histogram(
                "iipy_request_duration_seconds", "Time to the response body", labels,
                buckets=BUCKETS),
            bytes=prometheus_client.Counter(
                "iipy_response_bytes", "Response body bytes sent", labels),
            tiles=prometheus_client.Counter(
                "iipy_tiles", "Tiles by where their bytes came from", ("source",)),
            open_images=prometheus_client.Gauge(
                "iipy_open_images", "Images held open", multiprocess_mode="livesum"),
            restarts=prometheus_client.Counter(
                "iipy_worker_restarts", "Worker processes that died and were replaced"),
        )
    return _prom


def multiprocess() -> bool:
    return bool(os.environ.get(ENV))


class Recorder:
    """The request hook: counts each Exchange; ``open_images`` reads the process's count.

    It runs on every request, so the labelled children are looked up once per label set
    (prometheus-client's ``labels()`` costs more than the increment) and the open-images
    gauge is written only when the count changes."""

    def __init__(self, open_images: Any) -> None:
        _load()
        self.open_images = open_images
        self._children: dict[tuple[str, str, int], tuple[Any, Any, Any]] = {}
        self._tiles: dict[str, Any] = {}
        self._open = -1

    def __call__(self, e: Exchange) -> None:
        key = (e.protocol, e.kind, e.status)
        children = self._children.get(key)
        if children is None:
            m = _metrics
            children = self._children[key] = (
                m["requests"].labels(e.protocol, e.kind, str(e.status)),
                m["duration"].labels(e.protocol, e.kind),
                m["bytes"].labels(e.protocol, e.kind),
            )
        requests, duration, size = children
        requests.inc()
        duration.observe(e.seconds)
        size.inc(e.bytes)
        if e.source:
            tiles = self._tiles.get(e.source)
            if tiles is None:
                tiles = self._tiles[e.source] = _metrics["tiles"].labels(e.source)
            tiles.inc()
        count = self.open_images()
        if count != self._open:
            self._open = count
            _metrics["open_images"].set(count)


def scrape() -> Response:
    prom = _load()
    if multiprocess():
        from prometheus_client import multiprocess as mp

        registry = prom.CollectorRegistry()
        mp.MultiProcessCollector(registry)
    else:
        registry = prom.REGISTRY
    body = prom.generate_latest(registry)
    # the text format every Prometheus (2.x too) reads; generate_latest writes it
    return Response(200, body, CONTENT_TYPE, cacheable=False, cors=False)


def worker_restarted() -> None:
    if _prom is not None:
        _metrics["restarts"].inc()


def worker_exited(pid: int) -> None:
    """A worker is gone: its live gauges no longer count."""
    if _prom is not None and multiprocess():
        from prometheus_client import multiprocess as mp

        mp.mark_process_dead(pid)


def cleanup() -> None:
    """Remove the directory this process made (the pool's, at exit)."""
    if _owned_dir is not None and os.getpid() == _owner_pid:
        shutil.rmtree(_owned_dir, ignore_errors=True)


_owner_pid = os.getpid()
