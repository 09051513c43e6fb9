"""The PyTorch training loops of benchmarks/train.py compute the models NetTrain trains: from
the same arrays, on the same batches (NetTrain's shuffling stream), the batch losses agree —
the first before any update, the next after ADAM steps on both sides — for the dates model
(GRU encoder-decoder, additive attention) and the sorting model (LSTM encoder-decoder, dot
attention, per-example mean over varying output lengths)."""

from __future__ import annotations

import time

import numpy as np
import pytest
from helpers import load_module

pytest.importorskip("torch")



bench = load_module("train_benchmark", "benchmarks/train.py")


@pytest.mark.parametrize("model", ["dates", "sorting"])
def test_torch_loop_losses_agree_with_nettrain(model):
    _, net, data, torch_model = bench.model_case(model, 3 * 16, seed=3)
    ours = bench.netgraph_round(net, data, 16, seed=3)[2]
    theirs = bench.torch_round(net, data, torch_model, 16, seed=3)[1]
    assert len(ours) == len(theirs) == 3
    assert 1.5 < ours[0] < 3.5  # about log(12) or log(10) from small random arrays
    # float32 sums of a few thousand terms, three ADAM steps apart
    np.testing.assert_allclose(ours, theirs, rtol=2e-5)
    assert ours[0] != ours[-1]  # the steps did change the arrays


def test_median_interval_is_the_binomial_order_statistics():
    # n = 16: P(Binomial(16, 1/2) <= 3) = 697 / 65536 = 0.0106 <= 0.025 < P(<= 4) = 0.038,
    # so the interval is the 4th and the 13th smallest of the values
    values = [float(v) for v in (13, 2, 7, 16, 1, 9, 4, 11, 15, 3, 6, 12, 8, 14, 5, 10)]
    assert bench.median_interval(values) == (4.0, 13.0)
    # n = 6 cannot give 95 %: P(<= 0) = 1/64 = 0.0156 leaves k = 1, the whole range
    assert bench.median_interval([3.0, 1.0, 2.0, 6.0, 5.0, 4.0]) == (1.0, 6.0)
    # a lower level narrows it: n = 16 at 50 % gives k = 7 (P(<= 6) = 0.227 <= 0.25)
    assert bench.median_interval(values, level=0.5) == (7.0, 10.0)


def test_foreign_thread_seconds_count_blas_threads_not_python_threads():
    if bench._foreign_thread_seconds() is None:
        pytest.skip("no /proc/self/task on this system")
    from netgraph.blas import parallel_map

    a = np.ones((600, 600), np.float32)
    time.sleep(0.3)  # BLAS's threads spin-wait a while after their last product, then sleep
    before = bench._foreign_thread_seconds()
    parallel_map(lambda _: [a @ a for _ in range(20)], range(4))  # Python threads, BLAS at 1
    assert bench._foreign_thread_seconds() - before < 0.03  # three clock ticks at most
    if bench.blas_threads() < 2:
        return
    big = np.ones((1500, 1500), np.float32)
    before = bench._foreign_thread_seconds()
    for _ in range(10):
        big @ big  # BLAS on its own threads: about half of 68 GFLOP on the other one
    assert bench._foreign_thread_seconds() - before > 0.05
