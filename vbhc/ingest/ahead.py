"""Reading ahead: the next chunk of a file is read and validated in a thread while the caller writes this one.

Why: an import alternates between Python work (parsing, validating, converting a chunk) and the database's work
(SQLite's executemany steps, PostgreSQL's COPY and statements), and the database does its part without holding
Python's interpreter lock. Read one chunk ahead, the two overlap on a second core: the time of the slower of the
two instead of their sum, with one more chunk in memory.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from types import TracebackType
from typing import Generic, TypeVar

T = TypeVar("T")

_END = object()


class ReadAhead(Generic[T]):
    """Iterate `items` in a reading thread, `depth` items ahead of the caller; in the same order.

    An exception raised while making an item is raised again in the caller, where that item would have come.
    Leaving the `with` block early (the caller's write failed) stops the reading thread and waits for it, so
    nothing reads on after the caller has moved on."""

    def __init__(self, items: Iterator[T], depth: int = 1) -> None:
        self._items = items
        self._queue: queue.Queue[tuple[bool, object]] = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._read, name="vbhc-import-read-ahead", daemon=True)

    def __enter__(self) -> ReadAhead[T]:
        self._thread.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self._stop.set()
        self._thread.join()

    def __iter__(self) -> Iterator[T]:
        while True:
            made, item = self._queue.get()
            if made:
                yield item  # type: ignore[misc]
            elif item is _END:
                return
            else:
                raise item  # type: ignore[misc]

    def _read(self) -> None:
        try:
            for item in self._items:
                if not self._put((True, item)):
                    return
            self._put((False, _END))
        except BaseException as exc:  # raised again in the caller's thread
            self._put((False, exc))
        finally:
            close = getattr(self._items, "close", None)
            if close is not None:
                close()

    def _put(self, entry: tuple[bool, object]) -> bool:
        """Hand one entry over; False when the caller has stopped reading."""
        while not self._stop.is_set():
            try:
                self._queue.put(entry, timeout=0.05)
                return True
            except queue.Full:
                continue
        return False
