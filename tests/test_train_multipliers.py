"""learning_rate_multipliers: freezing (bit-identical, no optimizer work), scaled steps, the
most specific path, and composition with clipping and L2."""

from __future__ import annotations

import numpy as np
import pytest
from tolerance import assert_close
from train_cases import arrays_of, blobs, classifier, regression

from netgraph import All, LinearLayer, NetChain, NetError, NetInitialize, NetTrain
from netgraph.train import optimizers

SGD0 = ("SGD", {"momentum": 0.0})


def test_a_frozen_node_comes_back_bit_identical(monkeypatch):
    sizes = []
    step = optimizers.Optimizer.step

    def spy(self, p, g, *args):
        sizes.append((p.size, g.size, self.buf.size))
        return step(self, p, g, *args)

    monkeypatch.setattr(optimizers.Optimizer, "step", spy)
    X, Y = blobs(30, 0)
    start = arrays_of(NetInitialize(classifier(0.2), seed=7))
    res = NetTrain(classifier(0.2), (X, Y), prop="All", seed=7, max_training_rounds=3,
                   batch_size=10, progress=False, learning_rate_multipliers={0: 0})
    got = arrays_of(res.final_net)
    for key in ((0, "Weights"), (0, "Biases")):
        assert got[key].tobytes() == start[key].tobytes()
    assert not np.array_equal(got[(3, "Weights")], start[(3, "Weights")])
    trained = 4 * 9 + 4  # the last LinearLayer(4) on 9 inputs: no optimizer work for layer 0
    assert sizes == [(trained, trained, trained)] * 9


def one_sgd_step(net, multipliers, **kw):
    """(arrays before, after one SGD step on one batch, the hand gradient in float64)."""
    x, t = regression(12, 3)
    net = NetInitialize(net, seed=2)
    res = NetTrain(net, (x, t), prop="All", max_training_rounds=1, batch_size=12,
                   learning_rate=0.1, method=SGD0, progress=False,
                   learning_rate_multipliers=multipliers, **kw)
    before = arrays_of(net)
    W, b = (before[(0, k)].astype(np.float64) for k in ("Weights", "Biases"))
    d = x.astype(np.float64) @ W.T + b - t
    grads = {(0, "Weights"): 2 * d.T @ x / d.size, (0, "Biases"): 2 * d.sum(0) / d.size}
    return before, arrays_of(res.final_net), grads


@pytest.mark.parametrize("multipliers,want", [
    ({(0, "Weights"): 0.5, All: 2.0}, {"Weights": 0.5, "Biases": 2.0}),
    ({0: 3.0, (0, "Biases"): 0.25}, {"Weights": 3.0, "Biases": 0.25}),  # most specific wins
    ({All: 0.5}, {"Weights": 0.5, "Biases": 0.5}),
    ({(-1, "Weights"): 0}, {"Weights": 0.0, "Biases": 1.0}),            # int positions
    (None, {"Weights": 1.0, "Biases": 1.0}),
])
def test_a_multiplier_scales_the_step(multipliers, want):
    before, after, grads = one_sgd_step(NetChain([LinearLayer(2)], Input=3), multipliers)
    for name, m in want.items():
        key = (0, name)
        assert_close(after[key] - before[key], -0.1 * m * grads[key], dtype=np.float32,
                     reduction=12, scale=float(np.abs(before[key]).max() + 1), what=name)
        if m == 0:
            assert after[key].tobytes() == before[key].tobytes()


def test_multipliers_compose_with_clipping_and_l2():
    """Biases frozen, Weights at 0.5: the clipping norm is that of the trained arrays'
    gradient; then L2 is added and the step scaled: p -= lr m (g c / |g| + l2 p)."""
    clip, l2 = 0.05, 0.3
    before, after, grads = one_sgd_step(
        NetChain([LinearLayer(2)], Input=3), {(0, "Biases"): 0, (0, "Weights"): 0.5},
        gradient_clipping=clip, l2_regularization=l2)
    key = (0, "Weights")
    g = grads[key]
    assert np.linalg.norm(g) > clip
    want = -0.1 * 0.5 * (g * clip / np.linalg.norm(g) + l2 * before[key])
    assert_close(after[key] - before[key], want, dtype=np.float32, reduction=12,
                 scale=float(np.abs(before[key]).max() + 1))
    assert after[(0, "Biases")].tobytes() == before[(0, "Biases")].tobytes()


def test_a_sub_net_path():
    net = NetChain([NetChain([LinearLayer(4), "Tanh"]), LinearLayer(2)], Input=3)
    x, t = regression(10, 0)
    start = arrays_of(NetInitialize(net, seed=0))
    got = arrays_of(NetTrain(net, (x, t), seed=0, max_training_rounds=2, progress=False,
                             learning_rate_multipliers={(0, 0): 0}))
    assert got[(0, 0, "Weights")].tobytes() == start[(0, 0, "Weights")].tobytes()
    assert not np.array_equal(got[(1, "Weights")], start[(1, "Weights")])


@pytest.mark.parametrize("spec,match", [
    ({"nope": 0}, "key 'nope' names no node, sub-net or array: net has no part 'nope'"),
    ({(0, "Weights", "x"): 0}, "names no node"),
    ({0: -1}, r"learning_rate_multipliers\[0\] must be a number >= 0"),
    ({0: float("nan")}, "must be a number >= 0"),
    ({0: True}, "must be a number >= 0"),
    ([0, 1], "must be None or a dict"),
    ({5: 1}, "part 5 does not exist"),
])
def test_multiplier_mistakes(spec, match):
    x, t = regression(4, 0)
    with pytest.raises(NetError, match=match):
        NetTrain(NetChain([LinearLayer(2)], Input=3), (x, t), max_training_rounds=1,
                 progress=False, learning_rate_multipliers=spec)
