"""Threads, forked processes and process-wide state (SPEC "Applying a net", last bullet).

* A process forked after a net (or an optimizer) has used its worker threads applies nets and
  steps optimizers like its parent, bit for bit, instead of waiting forever on a thread pool
  it no longer has.
* Applying a net from several threads at once gives the results of applying it from one,
  bit for bit, and leaves the BLAS thread counts as they were — with BLAS as it comes and
  with BLAS set to one thread by the user (custom scoring chunks and attention batch slices
  run on worker threads with BLAS on one thread meanwhile, with the same results as in
  order: netgraph.blas).
* Importing netgraph changes no process-wide setting: malloc tuning happens only when asked
  for (``netgraph.tune_malloc()`` or ``NETGRAPH_MALLOC_TUNING=1``), and BLAS thread counts are
  as before after every call (netgraph.blas lowers them only for the duration of a product).
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading
from contextlib import nullcontext
from pathlib import Path

import numpy as np
import pytest
from helpers import additive_scoring, run_in_fork
from threadpoolctl import threadpool_info, threadpool_limits

import netgraph.blas as blas
from netgraph import (
    NetArrayGradient,
    NetInitialize,
    NetPort,
    NetPortGradient,
    SequenceAttentionLayer,
)
from netgraph.train.optimizers import PARALLEL_CHUNK, Adam

ROOT = Path(__file__).resolve().parents[1]


D, B, N, M = 96, 37, 29, 17  # 2**18 // (17 * 29 * 96) = 5 rows a chunk: 8 chunks of 37


def attention(kind):
    scoring = additive_scoring(D) if kind == "Additive" else kind
    return NetInitialize(SequenceAttentionLayer(scoring, Input=("Varying", D),
                                                Query=("Varying", D)), seed=3)


def batch(seed=0):
    rng = np.random.default_rng(seed)
    inputs = [rng.standard_normal((k, D)).astype(np.float32) for k in rng.integers(N // 2, N + 1, B)]
    inputs[1] = rng.standard_normal((N, D)).astype(np.float32)  # the full length occurs
    queries = [rng.standard_normal((k, D)).astype(np.float32) for k in rng.integers(M // 2, M + 1, B)]
    queries[2] = rng.standard_normal((M, D)).astype(np.float32)
    return {"Input": inputs, "Query": queries}


def apply_all(net, kind, data):
    """Output and every gradient (inputs and scoring arrays), as one list of arrays."""
    wants = [NetPort("Output"), NetPortGradient("Input"), NetPortGradient("Query")]
    if kind == "Additive":
        wants += [NetArrayGradient(["ScoringNet", k, "Weights"]) for k in ("W", "U", "v")]
    out = []
    for r in net(data, wants):
        out += [np.asarray(x) for x in r] if isinstance(r, list) else [np.asarray(r)]
    return out


def blas_threads():
    return [(i["internal_api"], i["filepath"], i["num_threads"]) for i in threadpool_info()]


def blas_as(setting):
    """The BLAS thread count as it comes, or limited to one thread (a user's choice)."""
    return threadpool_limits(limits=1, user_api="blas") if setting == "single" else nullcontext()


class SharedRunSpy:
    """Counts the maps netgraph.blas shares among worker threads, and the BLAS thread counts
    seen inside the mapped functions."""

    def __init__(self, monkeypatch):
        self.made, self.seen = 0, []
        real = blas._run_shared

        def run(fn, items):
            self.made += 1

            def spy(x):
                self.seen.append([i["num_threads"] for i in threadpool_info()
                                  if i["user_api"] == "blas"])
                return fn(x)

            return real(spy, items)

        monkeypatch.setattr(blas, "_run_shared", run)


def test_scoring_chunks_are_several():
    """The nets below take the chunked general path with more than one chunk."""
    from netgraph.layers.scoring import CHUNK_ELEMENTS

    assert B > CHUNK_ELEMENTS // (M * N * D) > 1


@pytest.mark.skipif(not hasattr(os, "fork"), reason="no fork on this platform")
@pytest.mark.parametrize("blas", ["default", "single"])
def test_forked_child_applies_a_custom_scoring_net(blas):
    net, data = attention("Additive"), batch()
    with blas_as(blas):
        parent = apply_all(net, "Additive", data)  # uses (before the fix: keeps) worker threads
        child = run_in_fork(lambda: [a.tobytes() for a in apply_all(net, "Additive", data)])
    assert child == [a.tobytes() for a in parent]


@pytest.mark.skipif(not hasattr(os, "fork"), reason="no fork on this platform")
def test_forked_child_steps_a_parallel_optimizer():
    n = 4 * PARALLEL_CHUNK + 5  # split over worker threads wherever there are 2+ cores
    rng = np.random.default_rng(1)
    p0, g = rng.standard_normal(n).astype(np.float32), rng.standard_normal(n).astype(np.float32)

    def two_steps():
        opt, p = Adam(n, 0.01), p0.copy()
        opt.step(p, g)
        opt.step(p, -0.5 * g)
        return p

    parent = two_steps()
    assert run_in_fork(lambda: two_steps().tobytes()) == parent.tobytes()


@pytest.mark.parametrize("blas", ["default", "single"])
@pytest.mark.parametrize("kind", ["Additive", "Bilinear"])
def test_concurrent_calls_are_bit_identical_and_keep_blas_threads(kind, blas):
    net, data = attention(kind), batch(seed=5)
    with blas_as(blas):
        before = blas_threads()
        alone = [a.tobytes() for a in apply_all(net, kind, data)]
        assert blas_threads() == before
        start = threading.Barrier(4)
        results: list = [None] * 4

        def worker(i):
            start.wait()
            results[i] = [[a.tobytes() for a in apply_all(net, kind, data)] for _ in range(2)]

        threads = [threading.Thread(target=worker, args=(i,)) for i in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert blas_threads() == before  # exactly as before, not held at 1
    for per_thread in results:
        for r in per_thread:
            assert r == alone


@pytest.mark.parametrize("setting", ["default", "single"])
def test_worker_threads_run_with_single_threaded_blas(setting, monkeypatch):
    """Chunks run on worker threads (with BLAS as it comes or limited by the user), BLAS on
    one thread meanwhile (so that they never compete with BLAS's own threads), with the
    results of running them in order; the setting is as before afterwards."""
    net, data = attention("Additive"), batch(seed=2)
    spy = SharedRunSpy(monkeypatch)
    with blas_as(setting):
        before = blas_threads()
        got = [a.tobytes() for a in apply_all(net, "Additive", data)]
        assert blas_threads() == before
        assert spy.made >= (2 if blas.WORKERS > 1 else 0)  # forward, backward chunks
        assert spy.seen and all(n == [1] * len(n) for n in spy.seen)
        monkeypatch.setattr(blas, "WORKERS", 1)
        in_order = [a.tobytes() for a in apply_all(net, "Additive", data)]
    assert got == in_order


def run_python(code, **env):
    """The last line printed by ``SPY`` + ``code`` run in a fresh interpreter."""
    proc = subprocess.run([sys.executable, "-c", SPY + textwrap.dedent(code)], cwd=ROOT,
                          capture_output=True, text=True, timeout=120,
                          env={**os.environ, **env})
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip().splitlines()[-1]


SPY = """
import ctypes
import numpy as np
from threadpoolctl import threadpool_info

calls = []
real_cdll = ctypes.CDLL

class SpyCDLL(real_cdll):
    def __getattr__(self, name):
        f = super().__getattr__(name)
        if name != "mallopt":
            return f
        def mallopt(*args):
            calls.append(args)
            return f(*args)
        return mallopt

ctypes.CDLL = SpyCDLL
blas = [i["num_threads"] for i in threadpool_info()]
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc malloc tuning")
def test_import_and_calls_change_no_process_setting():
    out = run_python("""
    import netgraph
    after_import = (list(calls), [i["num_threads"] for i in threadpool_info()])
    from netgraph import LinearLayer, NetChain, NetInitialize
    net = NetInitialize(NetChain([LinearLayer(300), "Tanh", LinearLayer(7)], Input=200), seed=0)
    net(np.ones((64, 200), np.float32))
    after_call = (list(calls), [i["num_threads"] for i in threadpool_info()])
    print(repr((blas, after_import, after_call)))
    """, NETGRAPH_MALLOC_TUNING="")
    blas, after_import, after_call = eval(out)  # noqa: S307 - our own subprocess's repr
    assert after_import == ([], blas) and after_call == ([], blas)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc malloc tuning")
@pytest.mark.parametrize("how", ["call", "env"])
def test_malloc_tuning_is_an_explicit_opt_in(how):
    out = run_python(f"""
    import netgraph
    from netgraph._memory import MMAP_THRESHOLD, TRIM_THRESHOLD
    done = netgraph.tune_malloc() if {how == "call"} else None
    print(repr((done, calls, MMAP_THRESHOLD, TRIM_THRESHOLD)))
    """, NETGRAPH_MALLOC_TUNING="1" if how == "env" else "0")
    done, calls, mmap, trim = eval(out)  # noqa: S307 - our own subprocess's repr
    assert done in (True, None)
    assert sorted(calls) == [(-3, mmap), (-1, trim)]  # M_MMAP_THRESHOLD, M_TRIM_THRESHOLD
