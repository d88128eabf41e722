"""Every patch of a third-party library that the library needs, in one place.

Each is kept only because a measured need or an incompatibility asks for it, and each says what
breaks or slows when it is not in force. After an upgrade a patched name may be gone: then
`missing()` lists it, the server logs an ERROR line at start-up (webapp.server_setup), and
tests/test_patches.py fails. Nothing here is a
silent no-op. (Streamlit's and Starlette's private attributes are the server's, in
webapp/streamlit_internals.py: the library imports no Streamlit.)

| what | why | upstream |
|---|---|---|
| glibc `mallopt` (M_MMAP_THRESHOLD, M_TRIM_THRESHOLD) | a song worker's arrays came back as fresh pages on every song | glibc's defaults |
| glibc `malloc_trim` | a closed session's memory stays with the server otherwise | glibc's defaults |

Measurements behind each: docs/performance.md.
"""

from __future__ import annotations

import ctypes
import logging
from collections.abc import Callable

log = logging.getLogger("moodlens.patches")
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # glibc's malloc.h


def _libc():
    try:
        return ctypes.CDLL("libc.so.6")
    except OSError:
        return None


CHECKS: dict[str, Callable[[], bool]] = {
    "glibc mallopt": lambda: _libc() is not None and hasattr(_libc(), "mallopt"),
    "glibc malloc_trim": lambda: _libc() is not None and hasattr(_libc(), "malloc_trim"),
}


def missing() -> list[str]:
    """The patched names that the installed libraries lack."""
    return [name for name, present in CHECKS.items() if not present()]


def keep_freed_memory() -> None:
    """glibc hands a freed block over its mmap threshold straight back to the system, so each song's
    arrays came as new pages again (docs/performance.md). Arrays up to 32 MB now come from the heap,
    and the heap keeps up to 256 MB of free memory: a worker's RSS stays at its largest song's.
    Elsewhere than glibc, nothing changes."""
    libc = _libc()
    if libc is None or not hasattr(libc, "mallopt"):
        return
    libc.mallopt(_M_MMAP_THRESHOLD, 32 * 1024 * 1024)  # glibc's upper limit on 64-bit
    libc.mallopt(_M_TRIM_THRESHOLD, 256 * 1024 * 1024)


def give_memory_back() -> None:
    """Ask glibc to return the free memory at the top of its heaps to the system."""
    libc = _libc()
    if libc is not None and hasattr(libc, "malloc_trim"):
        libc.malloc_trim(0)
