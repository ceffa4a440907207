"""Memory estimates made before a large allocation, so an impossible size is refused with its
figure instead of an allocator's crash (or a swap storm)."""

from __future__ import annotations

import os

from ..errors import UserError


def available_bytes() -> int:
    """Memory the system can give now (``MemAvailable``), or its total where that is unknown."""
    try:
        with open("/proc/meminfo") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def human(nbytes: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB", "PB"):
        if nbytes < 1000 or unit == "PB":
            return f"{nbytes:.1f} {unit}" if unit != "B" else f"{int(nbytes)} B"
        nbytes /= 1000
    return f"{nbytes:.1f} PB"


def require(nbytes: int, what: str) -> None:
    """Raise a one-line error naming ``what`` when ``nbytes`` exceed the memory available now."""
    free = available_bytes()
    if nbytes > free:
        raise UserError(f"{what} needs {human(nbytes)} of memory; {human(free)} is available")
