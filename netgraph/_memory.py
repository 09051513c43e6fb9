"""Opt-in malloc tuning (glibc only): keep freed array memory in the process heap.

NumPy allocates every temporary with ``malloc``; glibc serves blocks above its mmap threshold
(128 KiB, adapting up to 32 MiB) with fresh ``mmap`` calls, so each large temporary of a
forward or backward pass costs a page fault per 4 KiB page when first written — often more
than the arithmetic. Raising the mmap threshold to ``MMAP_THRESHOLD`` and the trim threshold
to ``TRIM_THRESHOLD`` lets such blocks be reused from the heap instead (what PyTorch's
caching allocator achieves for its own tensors), at the price of a process that keeps up to
``TRIM_THRESHOLD`` bytes of freed memory instead of returning it to the system.

netgraph's own large temporaries avoid this without any tuning (they live in recycled blocks,
:mod:`netgraph.scratch`); the tuning also serves the temporaries NumPy's operations make on
their own, and other libraries' in the process.

This changes the allocator of the whole process, so netgraph never does it on its own:
call :func:`tune_malloc` (``netgraph.tune_malloc()``), or set the environment variable
``NETGRAPH_MALLOC_TUNING=1`` before importing netgraph.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys

__all__ = ["tune_malloc", "ENV_VAR", "MMAP_THRESHOLD", "TRIM_THRESHOLD"]

ENV_VAR = "NETGRAPH_MALLOC_TUNING"
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
MMAP_THRESHOLD = 256 << 20
TRIM_THRESHOLD = 1 << 30


def tune_malloc() -> bool:
    """Raise glibc's mmap threshold to ``MMAP_THRESHOLD`` and its trim threshold to
    ``TRIM_THRESHOLD`` for this process (see the module docstring for what it buys and
    costs); returns whether it was done (False off Linux/glibc)."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc (musl, ...): nothing to tune
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    ok = mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1
    return mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD) == 1 and ok


def tune_malloc_if_asked() -> bool:
    """:func:`tune_malloc` when the environment variable ``NETGRAPH_MALLOC_TUNING`` is "1"
    (run once, when netgraph is imported); otherwise nothing."""
    return os.environ.get(ENV_VAR) == "1" and tune_malloc()
