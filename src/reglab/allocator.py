"""Freed memory kept in the process instead of handed back to the kernel every step.

glibc serves large blocks (activation buffers, above its mmap threshold) with ``mmap`` and returns
them with ``munmap`` when freed, so every training step maps, zero-fills and unmaps the same
buffers again, and the kernel's page faults take a large share of the step at bigger batches.
PyTorch's CPU performance guide suggests jemalloc or tcmalloc for this; with glibc alone the same
effect comes from ``mallopt``: no mmap for large blocks (``M_MMAP_MAX`` 0) and no trimming of the
heap's free top below 1 GiB (``M_TRIM_THRESHOLD``), so a freed buffer is reused by the next step.
The price: the process keeps its peak heap until it exits.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys

M_TRIM_THRESHOLD, M_MMAP_MAX = -1, -4
DEFAULTS = {M_TRIM_THRESHOLD: 128 * 1024, M_MMAP_MAX: 65536}  # glibc's own, to undo (benchmarks)
KEPT = {M_TRIM_THRESHOLD: 1 << 30, M_MMAP_MAX: 0}


def _mallopt(settings: dict[int, int]) -> bool:
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc (musl has no mallopt)
        return False
    return all(mallopt(ctypes.c_int(option), ctypes.c_int(value)) == 1 for option, value in settings.items())


def keep_freed_memory(enabled: bool = True) -> bool:
    """Keep freed memory for reuse (or, ``enabled=False``, restore glibc's defaults); False where
    the C library does not allow it."""
    return _mallopt(KEPT if enabled else DEFAULTS)
