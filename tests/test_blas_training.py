"""BLAS threads in training and in the recurrent layers' time loops (issue 10, target 4).

* Every product of a NetTrain step (forward, backward, update; also of the validation
  forwards) runs with BLAS at one thread, never on BLAS's own spin-waiting threads, and so do
  the state products of the recurrent layers' time loops when a net is applied.
* The BLAS setting is the user's outside those sections: after NetTrain returns (also when
  it fails), and during the user's own code (a training progress function).
* Results do not depend on it: NetTrain with BLAS as it comes gives the arrays of a run with
  BLAS limited to one thread (``threadpoolctl.threadpool_limits(1)``), bit for bit.

The recurrent sizes are chosen so that the per-step state products (``B * G·n * n`` above
``2**18``) are ones OpenBLAS would otherwise run on all its threads.
"""

from __future__ import annotations

import numpy as np
import pytest
from threadpoolctl import threadpool_info, threadpool_limits
from train_cases import assert_same_arrays

import netgraph.blas as blas
from netgraph import (
    CatenateLayer,
    EmbeddingLayer,
    GatedRecurrentLayer,
    Index,
    LinearLayer,
    LongShortTermMemoryLayer,
    NetError,
    NetGraph,
    NetInitialize,
    NetMapOperator,
    NetPort,
    NetPortGradient,
    NetTrain,
    SequenceAttentionLayer,
    SoftmaxLayer,
)

VOCAB, CLASSES, EMBED, HIDDEN = 11, 5, 13, 47  # an LSTM step: 37 * 188 * 47 > 2**18
BATCH = 37

multi_threaded = pytest.mark.skipif(
    not blas._controllers() or all(lib.get() == 1 for lib in blas._controllers()),
    reason="BLAS cannot be controlled or runs on one thread already")


def blas_threads() -> list[int]:
    return [i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"]


def tagger(cell) -> NetGraph:
    """Index sequences -> embedding -> recurrent layer -> dot attention of its states over
    themselves, catenated with them -> per-position class probabilities."""
    return NetGraph(
        {"embed": EmbeddingLayer(EMBED, VOCAB), "rnn": cell(HIDDEN),
         "attend": SequenceAttentionLayer("Dot"), "cat": CatenateLayer(-1),
         "project": NetMapOperator(LinearLayer(CLASSES)), "softmax": SoftmaxLayer()},
        [(NetPort("Input"), "embed", "rnn"), ("rnn", NetPort("attend", "Input")),
         ("rnn", NetPort("attend", "Query")),
         (["rnn", "attend"], "cat", "project", "softmax", NetPort("Output"))],
        Input=("Varying", Index(VOCAB)))


def sequences(n: int, seed: int) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Lengths 3..9 (the longest occurs); the target at a position: ``x mod 5`` of the
    previous token (0 at the first)."""
    rng = np.random.default_rng(seed)
    xs = [rng.integers(0, VOCAB, int(rng.integers(3, 10))) for _ in range(n)]
    xs[0] = rng.integers(0, VOCAB, 9)
    return xs, [np.concatenate([[0], x[:-1] % CLASSES]) for x in xs]


def train(cell, **options):
    X, Y = sequences(3 * BATCH + 5, seed=1)
    VX, VY = sequences(BATCH, seed=2)
    return NetTrain(NetInitialize(tagger(cell), seed=4), (X, Y), validation_set=(VX, VY),
                    batch_size=BATCH, max_training_rounds=2, seed=5, progress=False,
                    **options)


class MatmulSpy:
    """The BLAS thread counts seen by every ``np.matmul`` call while it is installed (the
    layers call ``np.matmul`` directly or through ``netgraph.blas.matmul``), and whether
    BLAS runs that product (each of a batch) on one thread whatever its setting."""

    def __init__(self, monkeypatch):
        self.seen: list[tuple[int, ...]] = []
        self.as_is: list[bool] = []
        real, libs = np.matmul, blas._controllers()

        def spy(a, b, *args, **kwargs):
            self.seen.append(tuple(lib.get() for lib in libs))
            m = a.shape[-2] if a.ndim >= 2 else 1
            n = b.shape[-1] if b.ndim >= 2 else 1
            self.as_is.append(blas._as_is(m, n, a.shape[-1], libs))
            return real(a, b, *args, **kwargs)

        monkeypatch.setattr(np, "matmul", spy)

    def all_single(self) -> bool:
        """Every product ran with BLAS at one thread, or is one BLAS runs on one thread."""
        return bool(self.seen) and all(set(s) == {1} or small
                                       for s, small in zip(self.seen, self.as_is, strict=True))


CELLS = [GatedRecurrentLayer, LongShortTermMemoryLayer]


@pytest.mark.parametrize("cell", CELLS, ids=["GRU", "LSTM"])
@pytest.mark.parametrize("clip", [None, 0.5])
def test_training_as_it_comes_equals_one_blas_thread_bit_for_bit(cell, clip):
    before = blas_threads()
    as_it_comes = train(cell, gradient_clipping=clip)
    assert blas_threads() == before
    with threadpool_limits(limits=1, user_api="blas"):
        one = train(cell, gradient_clipping=clip)
    assert blas_threads() == before
    assert_same_arrays(as_it_comes, one)


@multi_threaded
@pytest.mark.parametrize("cell", CELLS, ids=["GRU", "LSTM"])
def test_every_product_of_a_training_step_runs_on_one_blas_thread(cell, monkeypatch):
    before = blas_threads()
    seen_by_callback = []
    spy = MatmulSpy(monkeypatch)
    train(cell, training_progress_function=(lambda info: seen_by_callback.append(
        blas_threads()), {"interval": ("Batches", 1)}))
    assert len(spy.seen) > 4 * 3 * 9  # forward and backward of every step, of 4 batches
    assert spy.all_single(), sorted(set(spy.seen))
    # the user's code in between (the callback) sees the user's setting
    assert seen_by_callback and all(s == before for s in seen_by_callback)
    assert blas_threads() == before


@multi_threaded
def test_the_setting_is_restored_when_training_fails():
    before = blas_threads()
    X, Y = sequences(BATCH, seed=1)
    X[3] = X[3] + VOCAB  # an index out of range: found when the data are validated
    with pytest.raises(NetError):
        NetTrain(NetInitialize(tagger(GatedRecurrentLayer), seed=4), (X, Y),
                 batch_size=BATCH, max_training_rounds=1, progress=False)
    assert blas_threads() == before

    def failing(info):
        raise RuntimeError("from the user's callback")

    X, Y = sequences(BATCH, seed=1)
    with pytest.raises(RuntimeError, match="user's callback"):
        train(GatedRecurrentLayer, training_progress_function=(
            failing, {"interval": ("Batches", 1)}))
    assert blas_threads() == before


@multi_threaded
@pytest.mark.parametrize("cell", [GatedRecurrentLayer, LongShortTermMemoryLayer],
                         ids=["GRU", "LSTM"])
def test_recurrent_time_loops_run_on_one_blas_thread(cell, monkeypatch):
    """Applying a recurrent layer (forward and backward, outside NetTrain): its per-step
    state products run with BLAS at one thread; the results equal those of a run with BLAS
    limited to one thread, bit for bit, and the setting is as before afterwards."""
    rng = np.random.default_rng(6)
    net = NetInitialize(cell(HIDDEN, Input=("Varying", EMBED)), seed=7)
    xs = [rng.standard_normal((k, EMBED)).astype(np.float32) for k in (9, 4, 7) * 13]
    wants = [NetPort("Output"), NetPortGradient("Input")]
    before = blas_threads()
    with threadpool_limits(limits=1, user_api="blas"):
        one = net(xs, wants)
    spy = MatmulSpy(monkeypatch)
    got = net(xs, wants)
    assert len(spy.seen) > 9  # the forward loop's 9 state products, the other products
    assert spy.all_single(), sorted(set(spy.seen))
    assert blas_threads() == before
    for a, b in zip(got, one, strict=True):
        for x, y in zip(a, b, strict=True):
            np.testing.assert_array_equal(x, y)
