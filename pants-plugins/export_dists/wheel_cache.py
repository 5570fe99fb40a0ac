"""Wheels already built in this process, bounded by their bytes: pantsd keeps them across runs.

A hand-made LRU rather than cachetools' `LRUCache(maxsize, getsizeof=...)`: the plugin runs inside
Pants' own environment, which holds only what Pants ships, and a plugin requirement would have to
be resolved into every monorepo's plugin environment for these forty lines. No Pants import here.
"""
from __future__ import annotations

from collections import OrderedDict
from typing import Generic, Hashable, TypeVar

from export_dists_core.wheel import Wheel

K = TypeVar("K", bound=Hashable)

# What a wheel holds in memory besides its bytes (the object, its names): counted so that many tiny
# wheels still meet the bound.
WHEEL_OVERHEAD = 512
# 512 MiB of wheels: an export of 1,000 dists is ~10 MiB; ten of them fit, pantsd stays bounded.
DEFAULT_MAX_BYTES = 512 * 1024 * 1024


def wheel_size(wheel: Wheel) -> int:
    return len(wheel.content) + len(wheel.metadata) + WHEEL_OVERHEAD


class WheelCache(Generic[K]):
    """Least recently used wheels are dropped once the total of `wheel_size` exceeds `max_bytes`."""

    def __init__(self, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        if max_bytes < 0:
            raise ValueError(f"max_bytes={max_bytes}: give a size in bytes, 0 or more.")
        self.max_bytes = max_bytes
        self.size = 0
        self._wheels: OrderedDict[K, Wheel] = OrderedDict()

    def __len__(self) -> int:
        return len(self._wheels)

    def __contains__(self, key: K) -> bool:
        return key in self._wheels

    def get(self, key: K) -> Wheel | None:
        wheel = self._wheels.get(key)
        if wheel is not None:
            self._wheels.move_to_end(key)
        return wheel

    def put(self, key: K, wheel: Wheel) -> None:
        """Keep `wheel` (a wheel larger than the whole bound is not kept at all)."""
        old = self._wheels.pop(key, None)
        if old is not None:
            self.size -= wheel_size(old)
        self._wheels[key] = wheel
        self.size += wheel_size(wheel)
        while self.size > self.max_bytes and self._wheels:
            _, dropped = self._wheels.popitem(last=False)
            self.size -= wheel_size(dropped)

    def clear(self) -> None:
        self._wheels.clear()
        self.size = 0
