"""Handing memory the process has freed back to the operating system.

Why: the indicator tables of a national registry free gigabytes between (and within) conditions, and both
allocators behind pandas keep much of it: Arrow's pool (mimalloc; pandas' text columns live there) holds freed
pages for reuse, and glibc's heap keeps freed blocks of NumPy arrays below its (rising) mmap threshold. At
1,000,000 care cycles half of the resident memory after a condition was such freed memory, which the next
condition's peak came on top of (at 10,000,000: 6.5 GB peak, against < 4 GB targeted)."""

from __future__ import annotations

import ctypes
import functools
from collections.abc import Callable

import pyarrow as pa


@functools.cache
def _malloc_trim() -> Callable[[int], int] | None:
    """glibc's malloc_trim, None where the C library has none (musl, macOS, Windows)."""
    try:
        libc = ctypes.CDLL(None)
    except OSError:
        return None
    trim = getattr(libc, "malloc_trim", None)
    if trim is not None:
        trim.argtypes, trim.restype = [ctypes.c_size_t], ctypes.c_int
    return trim


def release_freed() -> None:
    """Return the memory freed so far to the system: Arrow's default pool's unused pages and glibc's free heap
    pages (malloc_trim). Nothing that is in use moves or changes; a few milliseconds."""
    pa.default_memory_pool().release_unused()
    trim = _malloc_trim()
    if trim is not None:
        trim(0)
