"""Finished values kept in the server's memory, least recently used dropped first, each built once at a time.

Why once at a time: viewers opening the same page together (a team after a restart) each built the same charts
and tables, and every one of them then waited for all the others' CPU (one interpreter lock). Here one run builds
a key and the others asking meanwhile wait for it and read what it built. A run that is itself building a value (of
any kept store) builds what it lacks without waiting, so no two runs can wait for each other; a failed build, or a
value not to be kept, is built again by the next asker."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

V = TypeVar("V")

#: How many builds of any kept store this thread is inside (shared by every store: see the module docstring).
_building_here = threading.local()


def _depth() -> int:
    return getattr(_building_here, "n", 0)


class Kept(Generic[V]):
    """Up to `size` finished values by key."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._values: OrderedDict[Hashable, V] = OrderedDict()
        self._lock = threading.Lock()
        self._building: dict[Hashable, threading.Event] = {}

    def get(self, key: Hashable, build: Callable[[], V]) -> V:
        """The kept value of `key`, else built here and kept."""
        return self.get_or_build(key, build)[0]

    def get_or_build(
        self, key: Hashable, build: Callable[[], V], keep: Callable[[V], bool] | None = None
    ) -> tuple[V, bool]:
        """The value of `key` and whether this call built it; a built value is kept unless `keep` says no."""
        while True:
            with self._lock:
                if key in self._values:
                    self._values.move_to_end(key)
                    return self._values[key], False
                busy = self._building.get(key)
                if busy is None:
                    mine = self._building[key] = threading.Event()
                    break
                if _depth() > 0:
                    mine = None  # inside a build: build it here rather than wait
                    break
            busy.wait()  # built by another run: read it (or build it, if that run failed or did not keep it)
        _building_here.n = _depth() + 1
        try:
            value = build()
            if keep is None or keep(value):
                with self._lock:
                    self._values[key] = value
                    while len(self._values) > self.size:
                        self._values.popitem(last=False)
        finally:
            _building_here.n -= 1
            if mine is not None:
                with self._lock:
                    self._building.pop(key)
                mine.set()
        return value, True

    def clear(self) -> None:
        with self._lock:
            self._values.clear()
