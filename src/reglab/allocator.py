"""Freed memory kept in the process instead of handed back to the kernel every step.

glibc serves large blocks (activation buffers, above its mmap threshold) with ``mmap`` and returns
them with ``munmap`` when freed, so a training step can map, zero-fill and unmap the same
buffers again and again (glibc raises its threshold as it sees such blocks freed, up to 32 MiB;
larger buffers are mapped every time).
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
KEPT = {M_TRIM_THRESHOLD: 1 << 30, M_MMAP_MAX: 0}


def keep_freed_memory() -> bool:
    """Keep freed memory for reuse; False where the C library does not allow it. There is no way
    back within the process: any ``mallopt`` call ends glibc's dynamic mmap threshold."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc (musl has no mallopt)
        return False
    return all(mallopt(ctypes.c_int(option), ctypes.c_int(value)) == 1 for option, value in KEPT.items())
