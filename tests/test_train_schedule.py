"""Learning-rate schedules and warm-up: the rates equal the formulas, and SGD steps use them."""

from __future__ import annotations

import math

import numpy as np
import pytest
from tolerance import assert_close
from train_cases import arrays_of, regression, tagger, tagging

from netgraph import LinearLayer, NetChain, NetError, NetInitialize, NetTrain

X, Y = tagging(21, 0)   # 3 batches of at most 8 per round
KW = dict(seed=1, batch_size=8, progress=False)


def rates(schedule, rounds=4, lr=0.01, **options):
    res = NetTrain(tagger(), (X, Y), prop="All", max_training_rounds=rounds, learning_rate=lr,
                   method=("ADAM", {"learning_rate_schedule": schedule, **options}), **KW)
    assert len(res.learning_rate_list) == res.total_batches == 3 * rounds
    return res.learning_rate_list


def test_cosine_with_warmup():
    T, k = 12, 5
    want = [0.01 * (1 + math.cos(math.pi * (b - 1) / T)) / 2 * min(1, b / k)
            for b in range(1, T + 1)]
    assert rates("Cosine", warmup_batches=k) == pytest.approx(want, rel=1e-15, abs=0)


def test_linear():
    want = [0.01 * (1 - (b - 1) / 12) for b in range(1, 13)]
    assert rates("Linear") == pytest.approx(want, rel=1e-15, abs=0)


def test_constant_is_the_default_and_warmup_alone():
    assert rates("Constant") == [0.01] * 12
    res = NetTrain(tagger(), (X, Y), prop="All", max_training_rounds=2, learning_rate=0.01,
                   method={"name": "SGD", "warmup_batches": 4}, **KW)
    assert res.learning_rate_list == pytest.approx([0.0025, 0.005, 0.0075, 0.01, 0.01, 0.01])
    assert NetTrain(tagger(), (X, Y), prop="learning_rate_list", max_training_rounds=1,
                    **KW) == [0.001] * 3


def test_a_function_of_batch_and_total():
    calls = []

    def half_life(b, total):
        calls.append((b, total))
        return 0.5 ** ((b - 1) // 3)

    got = rates(half_life, rounds=3)
    assert calls == [(b, 9) for b in range(1, 10)]
    assert got == [0.01, 0.01, 0.01, 0.005, 0.005, 0.005, 0.0025, 0.0025, 0.0025]


def test_a_function_sees_no_total_under_a_time_goal():
    totals = set()
    NetTrain(tagger(), (X, Y), time_goal=0.05, learning_rate=0.01,
             method=("ADAM", {"learning_rate_schedule": lambda b, t: totals.add(t) or 1.0}),
             **KW)
    assert totals == {None}


def test_each_sgd_step_uses_the_scheduled_rate():
    """SGD without momentum, one batch per round: every step is p -= rate_b * g(p), g the
    gradient of the mean squared loss computed by hand in float64."""
    x, t = regression(16, 2)
    net = NetInitialize(NetChain([LinearLayer(2)], Input=3), seed=5)
    steps = []
    res = NetTrain(net, (x, t), prop="All", max_training_rounds=4, batch_size=16,
                   learning_rate=0.2, seed=0, progress=False,
                   method=("SGD", {"momentum": 0.0, "learning_rate_schedule": "Linear",
                                   "warmup_batches": 2}),
                   training_progress_function=lambda info: steps.append(arrays_of(info["Net"])))
    assert res.learning_rate_list == pytest.approx([0.1, 0.15, 0.1, 0.05])
    before = arrays_of(net)
    for rate, after in zip(res.learning_rate_list, steps):
        W, b = before[(0, "Weights")].astype(np.float64), before[(0, "Biases")].astype(np.float64)
        d = x.astype(np.float64) @ W.T + b - t          # (16, 2)
        gW, gb = 2 * d.T @ x / d.size, 2 * d.sum(axis=0) / d.size
        for key, g in (((0, "Weights"), gW), ((0, "Biases"), gb)):
            assert_close(after[key] - before[key], -rate * g, dtype=np.float32, reduction=16,
                         scale=float(np.abs(before[key]).max() + np.abs(g).max()),
                         what=str(key))
        before = after


@pytest.mark.parametrize("method,match", [
    (("ADAM", {"learning_rate_schedule": "Exponential"}), "unknown learning_rate_schedule"),
    (("ADAM", {"warmup_batches": -1}), "warmup_batches must be an int >= 0"),
    (("ADAM", {"warmup_batches": 2.5}), "warmup_batches must be an int >= 0"),
    (("SGD", {"learning_rate_schedule": "Cosine", "beta1": 0.9}), "unknown option 'beta1'"),
])
def test_schedule_mistakes(method, match):
    with pytest.raises(NetError, match=match):
        NetTrain(tagger(), (X, Y), max_training_rounds=1, method=method, **KW)


def test_a_function_returning_a_negative_multiplier_is_a_net_error():
    with pytest.raises(NetError, match="returned -1 for batch 1 of 3"):
        NetTrain(tagger(), (X, Y), max_training_rounds=1,
                 method=("ADAM", {"learning_rate_schedule": lambda b, t: -1}), **KW)


def test_cosine_needs_planned_batches():
    with pytest.raises(NetError, match="needs the number of batches planned"):
        NetTrain(tagger(), (X, Y), time_goal=1,
                 method=("ADAM", {"learning_rate_schedule": "Cosine"}), **KW)
