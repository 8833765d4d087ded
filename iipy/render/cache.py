"""Least-recently-used caches, bounded by total bytes or by entry count.

Each worker process is single-threaded, but the standalone HTTP mode and
tests may share a cache between threads, so operations take a lock (an
uncontended lock costs well under a microsecond).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

V = TypeVar("V")

ENTRY_OVERHEAD = 64  # rough per-entry bookkeeping, counted against the byte budget


class LRUCache(Generic[V]):
    """An LRU map bounded by ``max_bytes`` (sized by ``sizeof``) or ``max_items``.

    A bound of 0 disables the cache (nothing is stored); a negative bound is
    unlimited.  ``on_evict`` is called with each value pushed out.
    """

    def __init__(
        self,
        max_bytes: int = -1,
        max_items: int = -1,
        sizeof: Callable[[V], int] = len,  # type: ignore[assignment]
        on_evict: Callable[[V], None] | None = None,
    ) -> None:
        self.max_bytes = max_bytes
        self.max_items = max_items
        self._sizeof = sizeof
        self._on_evict = on_evict
        self._data: OrderedDict[Hashable, tuple[V, int]] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    @property
    def enabled(self) -> bool:
        return self.max_bytes != 0 and self.max_items != 0

    def get(self, key: Hashable) -> V | None:
        with self._lock:
            entry = self._data.get(key)
            if entry is None:
                self.misses += 1
                return None
            self._data.move_to_end(key)
            self.hits += 1
            return entry[0]

    def put(self, key: Hashable, value: V) -> None:
        if not self.enabled:
            if self._on_evict is not None:
                self._on_evict(value)
            return
        size = self._sizeof(value) + ENTRY_OVERHEAD if self.max_bytes > 0 else 0
        if 0 < self.max_bytes < size:
            return  # larger than the whole cache
        evicted: list[V] = []
        with self._lock:
            old = self._data.pop(key, None)
            if old is not None:
                self._bytes -= old[1]
                if old[0] is not value:
                    evicted.append(old[0])
            self._data[key] = (value, size)
            self._bytes += size
            while self._data and (
                (self.max_bytes > 0 and self._bytes > self.max_bytes)
                or (self.max_items > 0 and len(self._data) > self.max_items)
            ):
                _, (gone, gone_size) = self._data.popitem(last=False)
                self._bytes -= gone_size
                evicted.append(gone)
        if self._on_evict is not None:
            for gone in evicted:
                self._on_evict(gone)

    def pop(self, key: Hashable) -> V | None:
        with self._lock:
            entry = self._data.pop(key, None)
            if entry is None:
                return None
            self._bytes -= entry[1]
        return entry[0]

    def clear(self) -> None:
        with self._lock:
            values = [v for v, _ in self._data.values()]
            self._data.clear()
            self._bytes = 0
        if self._on_evict is not None:
            for value in values:
                self._on_evict(value)

    def __len__(self) -> int:
        return len(self._data)

    @property
    def size_bytes(self) -> int:
        return self._bytes
