"""Memory a net asks for: refused before allocating when it cannot fit, reported when it fails.

A request is ``prod(shape) * itemsize`` bytes. Where the library knows a request before making
it (the arrays ``NetInitialize`` creates, the padded batch of a port), :func:`check_request`
refuses one larger than the machine's total physical memory with a ``NetError`` naming what
was asked for, its shape and its size — instead of a ``MemoryError``, or of an allocation that
the operating system grants lazily and then ends by killing the process. Allocations made
inside layers are not known in advance: :func:`memory_errors` turns the ``MemoryError`` of one
that fails into a ``NetError`` that names the shape and bytes NumPy reports.
"""

from __future__ import annotations

import functools
import math
import os
from collections.abc import Callable
from typing import Any

import numpy as np

from .errors import NetError

__all__ = ["total_memory", "request_bytes", "show_bytes", "check_request", "memory_errors"]


@functools.cache
def total_memory() -> int | None:
    """The machine's physical memory in bytes (None where the OS does not say)."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        return None


def request_bytes(shape: tuple[int, ...], dtype: Any) -> int:
    """Bytes of an array of ``shape`` and ``dtype``."""
    return math.prod(int(n) for n in shape) * np.dtype(dtype).itemsize


def show_bytes(n: float) -> str:
    """``n`` bytes for people: ``"40 TB"``, ``"1.5 GB"``, ``"512 bytes"``."""
    for unit, size in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= size:
            return f"{n / size:.3g} {unit}"
    return f"{int(n)} bytes"


def check_request(nbytes: int, what: str, error: type[NetError] = NetError) -> None:
    """Refuse a request of ``nbytes`` (described by ``what``, which should name the shape)
    larger than the machine's total memory, before anything is allocated."""
    total = total_memory()
    if total is not None and nbytes > total:
        raise error(f"{what} needs {show_bytes(nbytes)} ({nbytes} bytes), more than this "
                    f"machine's total memory of {show_bytes(total)}")


def _describe(err: MemoryError) -> str:
    shape, dtype = getattr(err, "shape", None), getattr(err, "dtype", None)
    if shape is None or dtype is None:
        return f"an allocation failed ({err or 'no details'})"
    nbytes = request_bytes(tuple(shape), dtype)
    return (f"an array of shape {tuple(shape)} ({np.dtype(dtype).name}) could not be "
            f"allocated: {show_bytes(nbytes)} ({nbytes} bytes)")


def memory_errors(what: str) -> Callable[[Callable], Callable]:
    """Decorator: a ``MemoryError`` raised by the function becomes a ``NetError`` saying that
    ``what`` (e.g. ``"applying the net"``) ran out of memory, with the failed request's shape
    and bytes and the machine's total memory."""
    def wrap(fn: Callable) -> Callable:
        @functools.wraps(fn)
        def run(*args: Any, **kwargs: Any) -> Any:
            try:
                return fn(*args, **kwargs)
            except MemoryError as e:
                total = total_memory()
                has = f" (this machine has {show_bytes(total)})" if total else ""
                raise NetError(f"{what} ran out of memory{has}: {_describe(e)}; use smaller "
                               "batches, layers or sequences") from None
        return run
    return wrap
