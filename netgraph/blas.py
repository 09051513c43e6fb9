"""Matrix products with BLAS threads chosen for the size of the work.

A product of ``F = 2 * batch * M * N * K`` floating-point operations runs

* as it is (``np.matmul``) when BLAS runs it on one thread whatever its setting (OpenBLAS
  does for GEMMs of ``M N K <= 2**18`` and matrix-vector products of fewer than 9216 matrix
  elements; with another library, below ``M N K = TINY_MNK``) and it is too small to split;
* otherwise with BLAS at one thread; a batched product of ``F >= SPLIT_FLOPS`` is cut along
  its batch axis into parts that run on up to ``WORKERS`` threads (the calling one
  included), each with BLAS at one thread; a single product of ``F >= BIG_FLOPS`` is cut
  into ``PARTS`` products of rows of ``a`` (columns of ``b`` when ``a`` is short) shared the
  same way.

BLAS's own threads are never used: they spin-wait for each other, so a product on two BLAS
threads takes 10-30 times longer when another process keeps the second core busy (measured
on the 2-core machine: 0.4 GFLOP, 1.5 ms on a quiet machine, 35-70 ms beside a busy
process), while the parts here are claimed by whichever thread is free.

Public API (stable):

``matmul(a, b, out=None) -> ndarray``
    ``np.matmul(a, b, out=out)`` (same broadcasting, shapes and dtype; ``out`` must not
    overlap ``a`` or ``b``), with the thread choice above.
``parallel_map(fn, items) -> list``
    ``[fn(x) for x in items]``, the items shared among up to ``WORKERS`` threads (NumPy
    releases the GIL in its loops; each thread runs in a copy of the caller's context, so
    ``np.errstate`` set around the call holds in all), BLAS at one thread meanwhile.
    ``fn`` must be independent per item; products inside it (through this module or NumPy)
    run single-threaded, in the thread that calls them.
``batch_slices(n, flops, max_rows=None) -> list[slice]``
    How to cut a batch of ``n`` independent examples whose work is ``flops`` for
    :func:`parallel_map`: one slice when it is too small to gain from threads (unless
    ``max_rows`` asks for more), none longer than ``max_rows``, and (shared among threads)
    a multiple of ``WORKERS`` slices where the batch allows.
``single_threaded(product=None)``
    Context manager: BLAS at one thread inside (reentrant; products inside run in this
    thread as they are). ``product=(m, n, k)``: every product inside is of about that shape
    (a time loop's per-step products); when BLAS runs such a product on one thread anyway,
    the section changes nothing (and costs nothing: setting OpenBLAS' threads takes
    microseconds, more than a one-step loop).
``WORKERS``, ``TINY_MNK``, ``SPLIT_FLOPS``, ``BIG_FLOPS``, ``PARTS``
    The thresholds above (module constants, read at each call).

Exactness: a part of a batch is computed by exactly the BLAS call that computes it without
the split (the batch axis is cut, never a reduction axis); the parts of a large single
product are cut from its shape alone (rows or columns: never the reduction axis). So results
do not depend on ``WORKERS`` or on how many user threads apply nets at once. A batched or
small product gives the bits of ``np.matmul`` with BLAS on one thread; a large single one
those of its parts (the same values to rounding: BLAS may order a sum differently for a
part); either can differ in the last bits from ``a @ b`` under multi-threaded BLAS, which
splits the reduction of some shapes among its threads.

Process-wide state: BLAS thread counts are a process-wide setting, so the single-threaded
sections of all threads form one reentrant section: the first one to enter notes the
setting and lowers it to one thread, the last one to leave restores exactly what it noted,
also on exceptions. Nothing is changed when BLAS already runs on one thread (the user's limit
is an upper bound, never raised), nor when no BLAS library can be controlled (threadpoolctl
missing, or OpenBLAS built on OpenMP, whose limits are per thread): then products run as
they are and :func:`parallel_map` uses worker threads only if BLAS is single-threaded
already. Worker threads come from one pool made on first use and dropped in a forked
child (``os.register_at_fork``), which makes its own; a child forked while another thread of
the parent had BLAS lowered restores the setting. Changing BLAS threads from another thread
while nets are being applied is not supported (the section restores what it noted).
"""

from __future__ import annotations

import contextlib
import contextvars
import math
import os
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import numpy as np

__all__ = ["matmul", "parallel_map", "batch_slices", "single_threaded", "WORKERS",
           "TINY_MNK", "SPLIT_FLOPS", "BIG_FLOPS", "PARTS"]

T = TypeVar("T")

#: threads that share the parts of a batched product or the items of parallel_map
WORKERS = min(2, os.cpu_count() or 1)
#: below this ``M * N * K`` a product runs as it is with a BLAS other than OpenBLAS
TINY_MNK = 1 << 13
#: a batched product (or a batch of examples) of at least this many FLOPs is split
SPLIT_FLOPS = 2e6
#: a single product of at least this many FLOPs is cut into PARTS products for the workers
BIG_FLOPS = 6e7
#: how many parts a large single product is cut into (from its shape alone: the results do
#: not depend on WORKERS); more than WORKERS, so that a thread slowed by another process on
#: its core leaves more of the parts to the others
PARTS = 4


# ----------------------------------------------------------------- BLAS thread control
class _Lib:
    """Get and set one BLAS library's process-wide thread count (raw ctypes calls: the
    public threadpoolctl setter ignores calls from all but the first thread that used it)."""

    def __init__(self, controller: Any):
        self.get: Callable[[], int] = controller.get_num_threads
        self.set: Callable[[int], Any] = controller.set_num_threads
        self.openblas = controller.internal_api == "openblas"
        if self.openblas:
            get = controller._get_symbol("openblas_get_num_threads")
            put = controller._get_symbol("openblas_set_num_threads")
            if get is None or put is None:
                raise RuntimeError("OpenBLAS without thread control")
            self.get, self.set = get, put


_libs: list[_Lib] | None = None  # None: not looked up yet; []: nothing to control
#: OpenBLAS runs a GEMM of at most this ``m n k`` on one thread (4 * 65536)
OPENBLAS_GEMM_AS_IS = 262144
#: the largest ``m n k`` of a GEMM (m, n > 1) that BLAS runs on one thread whatever its
#: setting, once the libraries are known (see ``_as_is``); 0 until then
_gemm_as_is = 0


def _controllers() -> list[_Lib]:
    """The process's BLAS libraries, looked up once; [] when they cannot be controlled."""
    global _libs, _gemm_as_is
    if _libs is None:
        try:
            from threadpoolctl import ThreadpoolController

            found = ThreadpoolController().select(user_api="blas").lib_controllers
            libs = [_Lib(c) for c in found
                    if getattr(c, "threading_layer", None) != "openmp"]
            _libs = libs if len(libs) == len(found) else []
            if _libs and all(lib.openblas for lib in _libs):
                _gemm_as_is = OPENBLAS_GEMM_AS_IS
        except Exception:  # noqa: BLE001 - no threadpoolctl, or it cannot inspect this process
            _libs = []
    return _libs


class _Section:
    """The process-wide state of BLAS thread sections (see the module docstring)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.single: dict[int, int] = {}  # thread id -> depth of its single-threaded sections
        self.saved: list[int] | None = None  # thread counts to restore (None: none changed)


_state = _Section()
_local = threading.local()  # .inside: this thread is in a section (its own or as a worker)
_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()


def _inside() -> int:
    return getattr(_local, "inside", 0)


def _enter_single(libs: list[_Lib]) -> None:
    st = _state
    with st.lock:
        if not st.single:  # the first section: note the setting, lower it
            saved = None
            for i, lib in enumerate(libs):
                c = lib.get()
                if c != 1:
                    if saved is None:
                        saved = [1] * len(libs)
                    saved[i] = c
                    lib.set(1)
            st.saved = saved
        me = threading.get_ident()
        st.single[me] = st.single.get(me, 0) + 1


def _leave_single(libs: list[_Lib]) -> None:
    me = threading.get_ident()
    st = _state
    with st.lock:
        depth = st.single.pop(me) - 1
        if depth:
            st.single[me] = depth
        elif not st.single:
            _restore(libs)


def _restore(libs: list[_Lib]) -> None:
    saved, _state.saved = _state.saved, None
    if saved is not None:
        for lib, c in zip(libs, saved, strict=True):
            if c != 1:
                lib.set(c)


class _SingleThreaded:
    """The context manager :func:`single_threaded` returns (a class: cheaper than a
    generator-based one, entered around every mid-size product)."""

    __slots__ = ("entered",)

    def __enter__(self) -> None:
        libs = _libs if _libs is not None else _controllers()
        depth = getattr(_local, "inside", 0)
        # nothing to set, or set already (by this thread, or for it: a worker)
        self.entered = bool(libs) and not depth
        if self.entered:
            _enter_single(libs)
        _local.inside = depth + 1

    def __exit__(self, *exc: Any) -> None:
        _local.inside -= 1
        if self.entered:
            _leave_single(_libs or [])


#: the section for products BLAS runs as they are: nothing to set (reusable, reentrant)
_NO_SECTION = contextlib.nullcontext()


def single_threaded(product: tuple[int, int, int] | None = None
                    ) -> _SingleThreaded | contextlib.nullcontext:
    """BLAS at one thread inside the ``with`` block (see the module docstring); with
    ``product=(m, n, k)``, nothing when BLAS runs ``(m, k) @ (k, n)`` on one thread anyway."""
    if product is not None:
        libs = _libs if _libs is not None else _controllers()
        if not libs or _as_is(*product, libs):
            return _NO_SECTION
    return _SingleThreaded()


def _after_fork_in_child() -> None:
    """In a forked child: only the forking thread exists. Keep its sections, drop the
    others' (restoring BLAS if they had lowered it) and the pool of the parent."""
    global _state, _pool, _pool_lock
    old, me = _state, threading.get_ident()
    _state, _pool, _pool_lock = _Section(), None, threading.Lock()
    if me in old.single:
        _state.single = {me: old.single[me]}
        _state.saved = old.saved
    elif old.saved is not None and _libs:
        _state.saved = old.saved
        _restore(_libs)


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


# --------------------------------------------------------------------- worker threads
def _workers() -> ThreadPoolExecutor:
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(max_workers=max(1, WORKERS - 1),
                                       thread_name_prefix="netgraph-blas")
        return _pool


def _run_shared(fn: Callable[[Any], T], items: list) -> list[T]:
    """Run ``fn`` on every item, the items claimed in order by this thread and up to
    ``WORKERS - 1`` pool threads; the first failing item's exception is raised after all
    have stopped."""
    results: list[Any] = [None] * len(items)
    errors: dict[int, BaseException] = {}
    claim = iter(range(len(items)))
    claim_lock = threading.Lock()

    def work() -> None:
        _local.inside = _inside() + 1
        try:
            while True:
                with claim_lock:
                    i = next(claim, None)
                    if i is None or errors:
                        return
                try:
                    results[i] = fn(items[i])
                except BaseException as e:  # noqa: BLE001 - re-raised by the caller
                    errors[i] = e
        finally:
            _local.inside -= 1

    # each helper runs in a copy of the caller's context: NumPy's error state (np.errstate)
    # and other context variables hold in every thread as in the caller's
    helpers = [_workers().submit(contextvars.copy_context().run, work)
               for _ in range(min(WORKERS, len(items)) - 1)]
    try:
        work()
    finally:
        for h in helpers:  # one not started yet (the pool busy for another call) is dropped
            if not h.cancel():
                h.result()
    if errors:
        raise errors[min(errors)]
    return results


def parallel_map(fn: Callable[[Any], T], items: Iterable) -> list[T]:
    """``[fn(x) for x in items]`` on up to ``WORKERS`` threads, BLAS at one thread."""
    items = list(items)
    if _inside():
        return [fn(x) for x in items]
    libs = _controllers()
    parallel = WORKERS > 1 and len(items) > 1 and (
        libs or _blas_single_threaded())
    with single_threaded():
        if not parallel:
            return [fn(x) for x in items]
        return _run_shared(fn, items)


def _blas_single_threaded() -> bool:
    """Whether BLAS runs on one thread already (for libraries this module cannot set)."""
    try:
        from threadpoolctl import threadpool_info

        found = [i for i in threadpool_info() if i.get("user_api") == "blas"]
        return bool(found) and all(i.get("num_threads") == 1 for i in found)
    except Exception:  # noqa: BLE001 - no threadpoolctl
        return False


def batch_slices(n: int, flops: float, max_rows: int | None = None) -> list[slice]:
    """Cut ``range(n)`` into equal slices: up to ``WORKERS`` of them, or one when ``flops``
    (the work of all ``n``) is below ``SPLIT_FLOPS``; more when that is needed for none to
    have more than ``max_rows`` rows (to keep a slice's temporaries in cache), then as many
    as make each thread's share equal (a multiple of ``WORKERS``: five slices on two threads
    would leave one thread three of them)."""
    if flops < SPLIT_FLOPS and (max_rows is None or n <= max_rows):
        return [slice(0, n)]
    threads = min(n, WORKERS) if flops >= SPLIT_FLOPS else 1
    parts = threads
    if max_rows is not None:
        parts = max(parts, -(-n // max(1, max_rows)))
    parts = max(min(-(-parts // threads) * threads, n), 1)
    bounds = [round(i * n / parts) for i in range(parts + 1)]
    return [slice(bounds[i], bounds[i + 1]) for i in range(parts)]


# ------------------------------------------------------------------------- products
def _as_is(m: int, n: int, k: int, libs: list[_Lib]) -> bool:
    """Whether BLAS runs an ``(m, k) @ (k, n)`` product on one thread whatever its setting:
    OpenBLAS does below ``m n k = 4 * 65536`` (GEMM) and ``m n = 4 * 2304`` elements of the
    matrix (GEMV, one of m, n being 1); other libraries below ``TINY_MNK``."""
    if not all(lib.openblas for lib in libs):
        return m * n * k < TINY_MNK
    if m == 1 or n == 1:
        return k * max(m, n) < 9216
    return m * n * k <= OPENBLAS_GEMM_AS_IS


def _part(x: np.ndarray, rank: int, sl: slice) -> np.ndarray:
    """``x``'s share of the slice ``sl`` of the first of ``rank`` broadcast batch axes."""
    if x.ndim - 2 < rank or x.shape[0] == 1:
        return x  # broadcast along that axis: every part reads all of it
    return x[sl]


def matmul(a: np.ndarray, b: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """``np.matmul(a, b, out=out)`` with BLAS threads chosen for the size of the product."""
    if a.ndim == 2 and b.ndim == 2:  # a small GEMM runs as it is: decided at once
        m, n = a.shape[0], b.shape[1]
        mnk = m * a.shape[1] * n
        if mnk < TINY_MNK or mnk <= _gemm_as_is and m > 1 and n > 1:
            return np.matmul(a, b, out=out)
    libs = _libs if _libs is not None else _controllers()
    if not libs or getattr(_local, "inside", 0) or a.ndim == 0 or b.ndim == 0:
        return np.matmul(a, b, out=out)
    if a.ndim <= 2 and b.ndim <= 2:
        batch: tuple[int, ...] = ()
    else:
        batch = np.broadcast_shapes(a.shape[:-2], b.shape[:-2])
    m = a.shape[-2] if a.ndim >= 2 else 1
    k = a.shape[-1]
    n = b.shape[-1] if b.ndim >= 2 else 1
    items = math.prod(batch)
    if items == 0 or _as_is(m, n, k, libs) and (items == 1 or 2.0 * m * n * k * items
                                                 < SPLIT_FLOPS):
        return np.matmul(a, b, out=out)
    flops = 2.0 * m * n * k * items
    if items == 1:
        with single_threaded():
            if flops < BIG_FLOPS or a.ndim != 2 or b.ndim != 2:
                return np.matmul(a, b, out=out)
            return _split_product(a, b, out)
    slices = batch_slices(batch[0], flops) if a.ndim >= 2 and b.ndim >= 2 else [slice(None)]
    with single_threaded():
        if len(slices) == 1:
            return np.matmul(a, b, out=out)
        if out is None:
            out = np.empty(batch + (m, n), np.result_type(a, b))
        rank = len(batch)
        _run_shared(lambda sl: np.matmul(_part(a, rank, sl), _part(b, rank, sl), out=out[sl]),
                    slices)
        return out


def _bounds(size: int) -> list[slice] | None:
    """``PARTS`` slices of ``range(size)`` at multiples of 16 (from the size alone), or None
    when it is too short to cut."""
    step = -(-size // (PARTS * 16)) * 16
    if size < 2 * 16:
        return None
    return [slice(i, min(i + step, size)) for i in range(0, size, step)]


def _split_product(a: np.ndarray, b: np.ndarray, out: np.ndarray | None) -> np.ndarray:
    """A large ``(m, k) @ (k, n)`` product as ``PARTS`` products of rows of ``a`` (or, for a
    short ``a``, of columns of ``b``) shared among the worker threads."""
    m, n = a.shape[0], b.shape[1]
    rows, cols = _bounds(m), _bounds(n)
    if rows is None and cols is None:
        return np.matmul(a, b, out=out)
    if out is None:
        out = np.empty((m, n), np.result_type(a, b))
    if rows is not None:
        _run_shared(lambda r: np.matmul(a[r], b, out=out[r]), rows)
    else:
        _run_shared(lambda c: np.matmul(a, b[:, c], out=out[:, c]), cols)
    return out
