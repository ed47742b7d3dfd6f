"""Garbage collections that look only at the objects a test makes (gc.freeze), not at the whole process."""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator


@contextlib.contextmanager
def collections_of_new_objects() -> Iterator[None]:
    """Within the block, gc.collect() (a test's, to see what is let go of) passes over the objects made since the
    block began only: what existed before is frozen (set aside from every collection) until the block ends.

    Why: a test worker holds whatever its earlier tests left (the demo's indicator tables: millions of objects), and
    every full pass over them cost a test ~1.5 s of CI (five passes: 7.5 s of tests/test_indicators.py's join test).
    A test that checks that something is let go of makes that something inside the block, so it is collected as
    before. Objects someone else froze (ui.data's warm-up freezes what it loaded) are left to them: then nothing
    is frozen here, and the collections are full ones, as before."""
    freeze = not gc.get_freeze_count()
    if freeze:
        gc.freeze()
    try:
        yield
    finally:
        if freeze:
            gc.unfreeze()
