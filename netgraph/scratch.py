"""Recycled scratch memory: large arrays served from blocks that earlier calls used and no
array refers to any more.

Every large temporary of a forward or backward pass is a fresh ``malloc``: glibc serves it
from new pages (``mmap``, or heap memory it returned to the system after the previous call),
and each 4 KiB page costs a fault when first written — for a medium attention call more time
than its arithmetic. :func:`empty` is ``np.empty`` for the large arrays netgraph allocates
itself (padded batches, attention scores and weights, gradient buffers): it hands out a view
of a block this module keeps, once no array (of netgraph's or of the caller's) refers to that
block any more, so the same pages serve call after call. Nothing else in the process changes:
malloc's settings are untouched (that is what the opt-in :func:`netgraph.tune_malloc` does).

Which blocks are free is read off their reference counts (a view of a block refers to it):
a result the caller still holds keeps its block out of use, so recycling never changes a
value anyone can see. An array of ``empty`` is uninitialised, like one of ``np.empty``.

Bounds: blocks are only kept for arrays of ``MIN_BYTES`` or more, sized in classes of a
quarter octave (a block is at most 25 % larger than the array it serves); all blocks together
(in use or not) stay within ``LIMIT_BYTES`` — unused ones are dropped, least recently used
first, to make room, and past that limit ``empty`` is plain ``np.empty``; a block unused for
``STALE_REQUESTS`` requests is dropped. :func:`release` drops every unused block at once.
The module constants are read at each call. Thread-safe (one lock); a forked child starts
with no blocks.
"""

from __future__ import annotations

import math
import os
import sys
import threading
from typing import Any

import numpy as np

from .allocation import total_memory

__all__ = ["empty", "release", "held_bytes", "MIN_BYTES", "LIMIT_BYTES", "STALE_REQUESTS"]

#: arrays smaller than this are plain ``np.empty`` (malloc reuses small blocks by itself)
MIN_BYTES = 1 << 16
#: all blocks together, in use or not: 256 MiB, or an eighth of a smaller machine's memory
LIMIT_BYTES = min(256 << 20, (total_memory() or 1 << 31) // 8)
#: a block no request has used for this many requests is dropped
STALE_REQUESTS = 4096

# Each entry is [block, last request number]; a block is a 1-d uint8 array.
_lock = threading.Lock()
_classes: dict[int, list[list]] = {}
_held = 0
_requests = 0


def _refs(entry: list) -> int:
    return sys.getrefcount(entry[0])


def _free_refs() -> int | None:
    """The reference count :func:`_refs` reads for an entry's block that nothing else
    refers to; None when reference counts cannot tell (no ``sys.getrefcount``, or views that
    do not refer to their block), and recycling is off."""
    if not hasattr(sys, "getrefcount"):
        return None
    entry = [np.empty(16, np.uint8), 0]
    free = _refs(entry)
    view = entry[0][:8].view(np.float32).reshape(1, 2)
    used = _refs(entry)
    del view
    return free if used > free and _refs(entry) == free else None


_FREE = _free_refs()


def _class_bytes(nbytes: int) -> int:
    """``nbytes`` rounded up to its size class: a multiple of a quarter of its octave."""
    step = 1 << max(0, nbytes.bit_length() - 3)
    return -(-nbytes // step) * step


def empty(shape: tuple[int, ...], dtype: Any) -> np.ndarray:
    """An uninitialised C-contiguous array of ``shape`` and ``dtype``, as ``np.empty``; a
    large one in a recycled block (see the module docstring)."""
    if not isinstance(dtype, np.dtype):
        dtype = np.dtype(dtype)
    nbytes = math.prod(shape) * dtype.itemsize
    if nbytes < MIN_BYTES or _FREE is None:
        return np.empty(shape, dtype)
    size = _class_bytes(nbytes)
    with _lock:
        block = _claim(size)
    if block is None:
        return np.empty(shape, dtype)
    return block[:nbytes].view(dtype).reshape(shape)


def _claim(size: int) -> np.ndarray | None:
    """A free block of ``size`` bytes, made when none is free and the limit allows (under
    the lock)."""
    global _held, _requests
    _requests += 1
    if _requests % 256 == 0:
        _drop(lambda entry: _requests - entry[1] > STALE_REQUESTS)
    entries = _classes.setdefault(size, [])
    for entry in entries:
        if _refs(entry) == _FREE:
            entry[1] = _requests
            return entry[0]
    if _held + size > LIMIT_BYTES:
        _make_room(_held + size - LIMIT_BYTES)
        if _held + size > LIMIT_BYTES:
            return None
    block = np.empty(size, np.uint8)
    entries.append([block, _requests])
    _held += size
    return block


def _drop(unwanted) -> int:
    """Drop the free blocks for which ``unwanted(entry)`` holds; the bytes dropped."""
    global _held
    dropped = 0
    for size, entries in list(_classes.items()):
        keep = [e for e in entries if not (_refs(e) == _FREE and unwanted(e))]
        dropped += size * (len(entries) - len(keep))
        if keep:
            _classes[size] = keep
        else:
            del _classes[size]
    _held -= dropped
    return dropped


def _make_room(nbytes: int) -> None:
    """Drop free blocks, least recently used first, until ``nbytes`` are dropped (or none
    is left)."""
    free = sorted((e[1], size) for size, es in _classes.items() for e in es
                  if _refs(e) == _FREE)
    oldest, total = None, 0
    for used, size in free:
        total += size
        oldest = used
        if total >= nbytes:
            break
    if oldest is not None:
        _drop(lambda entry: entry[1] <= oldest)


def release() -> int:
    """Drop every block no array refers to (their memory goes back to malloc); returns the
    bytes dropped."""
    with _lock:
        return _drop(lambda entry: True)


def held_bytes() -> int:
    """Bytes of all blocks kept, in use or not."""
    return _held


def _after_fork() -> None:
    global _lock, _classes, _held, _requests
    _lock, _classes, _held, _requests = threading.Lock(), {}, 0, 0


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork)
