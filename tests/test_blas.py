"""netgraph.blas: products with BLAS threads chosen for the size of the work.

* Results equal ``np.matmul`` with BLAS on one thread bit for bit (a large single product:
  that of each of its parts, and the whole product's to rounding), in float32 and float64,
  on pairwise-distinct shapes, with broadcasting and ``out=``; and do not depend on how many
  worker threads share the parts.
* The BLAS setting is exactly as before after every call: after products, after an
  exception inside a worker, after many threads applying products at once, in a forked child
  (also one forked while another thread had BLAS lowered), and a user's limit is never
  raised (nothing is set at all when BLAS already runs on one thread).
"""

from __future__ import annotations

import os
import threading

import numpy as np
import pytest
from helpers import FORK_TIMEOUT, run_in_fork
from threadpoolctl import threadpool_info, threadpool_limits

import netgraph.blas as blas


def blas_threads() -> list[int]:
    return [i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"]


controllable = pytest.mark.skipif(not blas._controllers(), reason="no controllable BLAS")


def reference(a, b, split: bool):
    """NumPy's own product with BLAS on one thread; for a large single product, of each of
    the parts netgraph.blas cuts it into (rows of a, or columns of b when a is short)."""
    with threadpool_limits(limits=1, user_api="blas"):
        if not split:
            return np.matmul(a, b)
        rows = blas._bounds(a.shape[0])
        if rows is not None:
            return np.concatenate([np.matmul(a[r], b) for r in rows])
        return np.concatenate([np.matmul(a, b[:, c]) for c in blas._bounds(b.shape[1])], axis=1)


# (a shape, b shape, a large single product: cut into parts)
SHAPES = [
    ((3, 5), (5, 7), False),                  # tiny: as it is
    ((7,), (7, 11), False),                   # vector @ matrix
    ((41, 29), (29,), False),                 # matrix @ vector
    ((3001,), (3001,), False),                # a dot product
    ((257, 131), (131, 67), False),           # mid: one thread
    ((1, 50021), (50021, 41), False),         # a shape OpenBLAS threads over its reduction
    ((601, 503), (503, 211), True),           # big single product: rows in parts
    ((23, 3001), (3001, 1499), True),         # big, a short: columns in parts
    ((13, 7, 5), (13, 5, 3), False),          # small batch
    ((37, 53, 97), (37, 97, 61), False),      # batch split over workers
    ((5, 1, 59, 43), (3, 43, 71), False),     # broadcast batch axes, split
    ((1, 59, 43), (11, 43, 71), False),       # first batch axis broadcast in a
    ((31, 211, 47), (47, 19), False),         # matrix shared by the batch
    ((19, 83), (23, 83, 7), False),           # matrix shared, on the left
    ((23, 83, 101), (101,), False),           # batch @ vector
]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("sa, sb, wide", SHAPES, ids=[f"{a}@{b}" for a, b, _ in SHAPES])
def test_matmul_is_numpy_bit_for_bit(sa, sb, wide, dtype, monkeypatch):
    rng = np.random.default_rng(len(sa) * 100 + sa[-1])
    a, b = rng.standard_normal(sa).astype(dtype), rng.standard_normal(sb).astype(dtype)
    want = reference(a, b, wide)
    if wide:  # the parts' sums are the whole product's to rounding
        whole = reference(a, b, False)
        eps = np.finfo(dtype).eps
        assert np.abs(want - whole).max() <= 8 * eps * np.sqrt(sa[-1]) * np.abs(whole).max()
    got = blas.matmul(a, b)
    assert got.dtype == want.dtype and got.shape == want.shape
    assert got.tobytes() == want.tobytes()
    out = np.full(want.shape, np.nan, dtype)
    assert blas.matmul(a, b, out=out) is out and out.tobytes() == want.tobytes()
    monkeypatch.setattr(blas, "WORKERS", 1)  # every part in this thread
    assert blas.matmul(a, b).tobytes() == want.tobytes()


def test_transposed_and_sliced_operands():
    """Views (a transposed batch, a batch slice) give NumPy's results too."""
    rng = np.random.default_rng(1)
    a = rng.standard_normal((29, 67, 53)).astype(np.float32)
    b = rng.standard_normal((29, 41, 67)).astype(np.float32)
    want = reference(a.swapaxes(-1, -2), b.swapaxes(-1, -2), False)
    assert blas.matmul(a.swapaxes(-1, -2), b.swapaxes(-1, -2)).tobytes() == want.tobytes()
    x, y = a[3:17].swapaxes(-1, -2), b[3:17].swapaxes(-1, -2)[..., :23]
    assert blas.matmul(x, y).tobytes() == reference(x, y, False).tobytes()


def test_batch_slices_cover_the_batch_once():
    for n in (1, 2, 7, 64):
        for flops in (0.0, 1e12):
            sl = blas.batch_slices(n, flops)
            assert np.concatenate([np.arange(n)[s] for s in sl]).tolist() == list(range(n))
            assert len(sl) == (1 if flops == 0 else min(n, blas.WORKERS))


@pytest.mark.parametrize("workers", [2, 3])
def test_batch_slices_give_the_threads_equal_shares(workers, monkeypatch):
    """Slices for rows that must stay short: none longer than ``max_rows``, and a multiple of
    the threads where the batch has enough rows (64 rows of at most 13: five slices would
    leave one of two threads three)."""
    monkeypatch.setattr(blas, "WORKERS", workers)
    for n, max_rows in ((64, 13), (7, 2), (5, 1), (3, 1), (64, 64), (64, 100)):
        sl = blas.batch_slices(n, 1e12, max_rows)
        sizes = [s.stop - s.start for s in sl]
        assert np.concatenate([np.arange(n)[s] for s in sl]).tolist() == list(range(n))
        assert max(sizes) <= max_rows and max(sizes) - min(sizes) <= 1
        assert len(sl) % min(n, workers) == 0 or len(sl) == n, (n, max_rows, len(sl))
    assert len(blas.batch_slices(64, 1e12, 13)) == 6  # 5 rounded up to 2 x 3 or 3 x 2
    assert len(blas.batch_slices(64, 0.0, 13)) == 5  # too little work for threads: no rounding


@controllable
def test_setting_is_lowered_inside_and_restored_after():
    before = blas_threads()
    seen = blas.parallel_map(lambda i: blas_threads(), range(5))
    assert seen == [[1] * len(before)] * 5
    with blas.single_threaded():
        with blas.single_threaded():  # reentrant
            assert blas_threads() == [1] * len(before)
        assert blas_threads() == [1] * len(before)
    assert blas_threads() == before


@controllable
def test_a_section_for_products_blas_runs_as_they_are_changes_nothing():
    """``single_threaded(product=(m, n, k))``: a time loop's per-step products. For a
    one-example step (BLAS runs it on one thread whatever its setting) the section leaves the
    setting alone; for a batch's step it lowers it, as the plain section does."""
    before = blas_threads()
    with blas.single_threaded((1, 96, 32)):
        assert blas_threads() == before
    with blas.single_threaded((64, 256, 64)):
        assert blas_threads() == [1] * len(before)
    assert blas_threads() == before


def test_worker_threads_see_the_callers_error_state():
    """Every item of ``parallel_map`` runs under the caller's ``np.errstate``, on whichever
    thread claims it."""
    shared = blas.WORKERS > 1 and bool(blas._controllers())  # items on two threads
    both = threading.Barrier(2, timeout=30)

    def seen(i):
        if shared and i < 2:
            both.wait()  # the first two items run at once: one on each thread
        return threading.get_ident(), np.geterr()["over"], np.geterr()["invalid"]

    with np.errstate(over="ignore", invalid="call"):
        got = blas.parallel_map(seen, range(6))
    assert {(over, invalid) for _, over, invalid in got} == {("ignore", "call")}
    assert len({thread for thread, _, _ in got}) == (2 if shared else 1)
    assert np.geterr()["invalid"] != "call"  # the caller's own state is back


@controllable
def test_setting_is_restored_after_an_exception():
    before = blas_threads()

    def fail_on_three(i):
        if i == 3:
            raise ValueError("item 3")
        return i

    with pytest.raises(ValueError, match="item 3"):
        blas.parallel_map(fail_on_three, range(6))
    assert blas_threads() == before
    with pytest.raises(ValueError, match="matmul"):
        blas.matmul(np.ones((67, 5, 3)), np.ones((67, 4, 3)))  # NumPy's own error
    assert blas_threads() == before
    with pytest.raises(KeyError):
        with blas.single_threaded():
            raise KeyError("inside")
    assert blas_threads() == before
    assert blas.parallel_map(lambda i: 2 * i, range(4)) == [0, 2, 4, 6]  # still works


def test_nested_calls_run_in_order():
    """A product or a map inside a mapped function runs in that thread (no deadlock on a
    pool waiting for itself)."""
    rng = np.random.default_rng(2)
    a = rng.standard_normal((37, 53, 97)).astype(np.float32)
    b = rng.standard_normal((37, 97, 61)).astype(np.float32)
    want = reference(a, b, False)

    def inner(i):
        return blas.parallel_map(lambda j: blas.matmul(a, b).tobytes(), range(3))

    for got in blas.parallel_map(inner, range(4)):
        assert got == [want.tobytes()] * 3


@controllable
def test_many_threads_at_once_restore_the_setting_and_agree():
    rng = np.random.default_rng(3)
    cases = [(rng.standard_normal(sa).astype(np.float32), rng.standard_normal(sb).astype(np.float32))
             for sa, sb, _ in SHAPES if len(sa) > 1 or len(sb) > 1]
    alone = [blas.matmul(a, b).tobytes() for a, b in cases]
    before = blas_threads()
    start = threading.Barrier(6)
    results: list = [None] * 6

    def worker(i):
        start.wait()
        got = []
        for r in range(3):
            for a, b in cases[i % 3:] + cases[:i % 3]:
                got.append(blas.matmul(a, b).tobytes())
            blas.parallel_map(lambda x: x, range(r + 2))
        results[i] = sorted(got)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(FORK_TIMEOUT)
        assert not t.is_alive(), "a thread hung"
    assert blas_threads() == before
    for got in results:
        assert got == sorted(alone * 3)


@controllable
def test_a_user_limit_is_respected(monkeypatch):
    """With BLAS on one thread already nothing is set; a limit of several threads is what is
    restored."""
    calls = []
    for lib in blas._controllers():
        real = lib.set
        monkeypatch.setattr(lib, "set", lambda n, real=real: (calls.append(n), real(n))[1])
    rng = np.random.default_rng(4)
    a = rng.standard_normal((37, 53, 97)).astype(np.float32)
    b = rng.standard_normal((37, 97, 61)).astype(np.float32)
    with threadpool_limits(limits=1, user_api="blas"):
        blas.matmul(a, b)
        blas.matmul(a[0], b[0])
        assert blas.parallel_map(lambda i: blas_threads(), range(3)) == [blas_threads()] * 3
        assert blas_threads() == [1] * len(blas_threads())
    assert calls == []
    cores = os.cpu_count() or 1
    if cores >= 2:
        with threadpool_limits(limits=2, user_api="blas"):
            assert blas.parallel_map(lambda i: blas_threads(), range(2)) == [[1]] * 2
            assert blas_threads() == [2]
        assert calls == [1, 2]


@pytest.mark.skipif(not hasattr(os, "fork"), reason="no fork on this platform")
def test_forked_child_uses_workers_of_its_own():
    rng = np.random.default_rng(5)
    a = rng.standard_normal((37, 53, 97)).astype(np.float32)
    b = rng.standard_normal((37, 97, 61)).astype(np.float32)
    parent = blas.matmul(a, b).tobytes()  # the pool exists now

    def child():
        return (blas.matmul(a, b).tobytes(), blas.parallel_map(lambda i: i * i, range(5)),
                blas_threads())

    got, squares, threads = run_in_fork(child)
    assert got == parent and squares == [0, 1, 4, 9, 16] and threads == blas_threads()


@controllable
@pytest.mark.skipif(not hasattr(os, "fork"), reason="no fork on this platform")
def test_child_forked_while_another_thread_lowered_blas_restores_it():
    before = blas_threads()
    entered, release = threading.Event(), threading.Event()

    def hold():
        with blas.single_threaded():
            entered.set()
            release.wait(FORK_TIMEOUT)

    t = threading.Thread(target=hold)
    t.start()
    try:
        entered.wait(FORK_TIMEOUT)
        assert blas_threads() == [1] * len(before)
        in_child = run_in_fork(lambda: (blas_threads(),
                                        blas.parallel_map(lambda i: blas_threads(), range(2)),
                                        blas_threads()))
    finally:
        release.set()
        t.join(FORK_TIMEOUT)
    assert in_child == (before, [[1] * len(before)] * 2, before)
    assert blas_threads() == before
