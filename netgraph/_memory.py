"""Keep freed array memory in the process heap (glibc only).

NumPy allocates every temporary with ``malloc``; glibc serves blocks above its mmap threshold
(128 KiB, adapting up to 32 MiB) with fresh ``mmap`` calls, so each large temporary of a
forward or backward pass costs a page fault per 4 KiB page when first written — often more
than the arithmetic. Raising the mmap and trim thresholds lets such blocks be reused from
the heap instead (what PyTorch's caching allocator achieves for its own tensors). Set the
environment variable ``NETGRAPH_MALLOC_TUNING=0`` to leave malloc untouched.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys

_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
MMAP_THRESHOLD = 256 << 20
TRIM_THRESHOLD = 1 << 30


def tune_malloc() -> bool:
    """Raise glibc's mmap/trim thresholds; returns whether it was done."""
    if os.environ.get("NETGRAPH_MALLOC_TUNING", "1") == "0" or not sys.platform.startswith(
            "linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc (musl, ...): nothing to tune
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    ok = mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1
    return mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD) == 1 and ok
