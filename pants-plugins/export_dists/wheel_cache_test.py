"""The in-process wheel cache: bounded by bytes, least recently used dropped first."""
from __future__ import annotations

import pytest

from export_dists_core.wheel import Wheel
from export_dists.wheel_cache import WHEEL_OVERHEAD, WheelCache, wheel_size


def _wheel(name: str, size: int) -> Wheel:
    return Wheel(f"{name}-1-py3-none-any.whl", b"x" * size, b"m")


def test_bounded_by_bytes_not_count() -> None:
    big = _wheel("big", 10_000)
    cache: WheelCache[str] = WheelCache(max_bytes=2 * wheel_size(big) + 10)
    cache.put("a", big)
    cache.put("b", _wheel("b", 10_000))
    assert len(cache) == 2 and cache.size == 2 * wheel_size(big)
    cache.put("c", _wheel("c", 10_000))  # over the bound: the oldest goes
    assert "a" not in cache and "b" in cache and "c" in cache
    assert cache.size <= cache.max_bytes
    # Many small wheels fit where few large ones do: the bound is bytes, not entries.
    small: WheelCache[int] = WheelCache(max_bytes=100 * (WHEEL_OVERHEAD + 2))
    for i in range(100):
        small.put(i, _wheel("s", 1))
    assert len(small) == 100


def test_least_recently_used_is_dropped_first() -> None:
    one = _wheel("one", 1000)
    cache: WheelCache[str] = WheelCache(max_bytes=2 * wheel_size(one))
    cache.put("a", one)
    cache.put("b", _wheel("two", 1000))
    assert cache.get("a") is one  # now the most recently used
    cache.put("c", _wheel("three", 1000))
    assert "a" in cache and "b" not in cache


def test_replacing_a_key_counts_its_bytes_once() -> None:
    cache: WheelCache[str] = WheelCache(max_bytes=10**6)
    cache.put("a", _wheel("a", 100))
    cache.put("a", _wheel("a", 300))
    assert len(cache) == 1 and cache.size == wheel_size(_wheel("a", 300))


def test_a_wheel_larger_than_the_bound_is_not_kept() -> None:
    cache: WheelCache[str] = WheelCache(max_bytes=100)
    cache.put("huge", _wheel("huge", 1000))
    assert len(cache) == 0 and cache.size == 0


def test_negative_bound_is_refused() -> None:
    with pytest.raises(ValueError, match="max_bytes=-1"):
        WheelCache(max_bytes=-1)
