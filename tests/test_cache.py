from iipy.render.cache import ENTRY_OVERHEAD, LRUCache


def test_byte_bound_evicts_least_recently_used():
    cache: LRUCache[bytes] = LRUCache(max_bytes=3 * (100 + ENTRY_OVERHEAD))
    for key in "abc":
        cache.put(key, b"x" * 100)
    assert cache.get("a") is not None  # a is now most recent
    cache.put("d", b"x" * 100)
    assert cache.get("b") is None
    assert cache.get("a") is not None and cache.get("c") is not None
    assert cache.size_bytes <= cache.max_bytes


def test_item_bound_and_eviction_callback():
    closed = []
    cache: LRUCache[str] = LRUCache(max_items=2, on_evict=closed.append)
    cache.put(1, "one")
    cache.put(2, "two")
    cache.put(3, "three")
    assert closed == ["one"]
    cache.clear()
    assert sorted(closed) == ["one", "three", "two"]
    assert len(cache) == 0


def test_zero_disables_and_oversize_is_not_stored():
    cache: LRUCache[bytes] = LRUCache(max_bytes=0)
    cache.put("a", b"x")
    assert cache.get("a") is None
    small: LRUCache[bytes] = LRUCache(max_bytes=10)
    small.put("a", b"x" * 100)
    assert small.get("a") is None
