"""Loss layers: hand computations (true-length averaging), shapes, float64 central-difference
gradients, saturated logits, and the softmax/sigmoid fusion (a compile pass)."""

import warnings

import numpy as np
import pytest
from _fd import fd_check
from tolerance import assert_close

from netgraph import (
    CrossEntropyLossLayer,
    ElementwiseLayer,
    Index,
    LinearLayer,
    MeanAbsoluteLossLayer,
    MeanSquaredLossLayer,
    NetArrayGradient,
    NetChain,
    NetError,
    NetGraph,
    NetInitialize,
    NetMapOperator,
    NetPortGradient,
    ShapeError,
    SoftmaxLayer,
)
from netgraph.apply import run_net
from netgraph.compile import fusion
from netgraph.execute import backward
from netgraph.layers.loss import EPS

LENS = [4, 1, 6]
rng = np.random.default_rng(7)


def probs(*shape):
    e = rng.uniform(0.2, 1.0, size=shape)
    return e / e.sum(-1, keepdims=True)


# ---------------------------------------------------------------- values by hand
def test_index_single_example_by_hand():
    loss = CrossEntropyLossLayer("Index", Input=3)
    assert loss.port_shape("Target") == Index(3)
    v = loss({"Input": [0.2, 0.5, 0.3], "Target": 1}, dtype=np.float64)
    assert_close(v, -np.log(0.5), dtype=np.float64)


def test_index_sequence_mean_over_true_length():
    loss = CrossEntropyLossLayer("Index", Input=("Varying", 5))
    assert loss.port_shape("Target") == ("Varying", Index(5))
    p = [probs(n, 5) for n in LENS]
    t = [rng.integers(0, 5, size=n) for n in LENS]
    got = loss({"Input": p, "Target": t}, dtype=np.float64)
    want = [-np.mean(np.log(pp[np.arange(n), tt])) for pp, tt, n in zip(p, t, LENS, strict=True)]
    assert got.shape == (3,)  # one loss per example, no batch mean
    assert_close(got, want, dtype=np.float64, reduction=max(LENS))
    for k in range(3):  # batch == per example
        assert_close(loss({"Input": p[k], "Target": t[k]}, dtype=np.float64), got[k], dtype=np.float64,
                     reduction=max(LENS))
    # hand value: lengths 2, steps with p = 0.5 and 0.25 at the target
    pp = np.array([[0.5, 0.1, 0.1, 0.1, 0.2], [0.25, 0.25, 0.25, 0.15, 0.1]])
    v = loss({"Input": pp, "Target": [0, 2]}, dtype=np.float64)
    assert_close(v, (np.log(2) + np.log(4)) / 2, dtype=np.float64, reduction=2)


def test_index_matrix_of_positions():
    loss = CrossEntropyLossLayer("Index", Input=(3, 7))
    assert loss.port_shape("Target") == (3, Index(7))
    p, t = probs(3, 7), np.array([6, 0, 3])
    want = -np.log(p[np.arange(3), t]).mean()
    assert_close(loss({"Input": p, "Target": t}, dtype=np.float64), want, dtype=np.float64, reduction=3)


def test_probabilities_by_hand_and_sequence():
    loss = CrossEntropyLossLayer("Probabilities", Input=("Varying", 3))
    p = [probs(n, 3) for n in LENS]
    t = [probs(n, 3) for n in LENS]
    got = loss({"Input": p, "Target": t}, dtype=np.float64)
    want = [-(tt * np.log(pp)).sum(-1).mean() for pp, tt in zip(p, t, strict=True)]
    assert_close(got, want, dtype=np.float64, reduction=3 * max(LENS))
    one = CrossEntropyLossLayer("Probabilities", Input=2)
    v = one({"Input": [0.25, 0.75], "Target": [0.5, 0.5]}, dtype=np.float64)
    assert_close(v, -(0.5 * np.log(0.25) + 0.5 * np.log(0.75)), dtype=np.float64, reduction=2)


def test_binary_by_hand():
    loss = CrossEntropyLossLayer("Binary", Input="Real")
    v = loss({"Input": 0.8, "Target": 1.0}, dtype=np.float64)
    assert_close(v, -np.log(0.8 + EPS), dtype=np.float64)
    v = loss({"Input": [0.8, 0.3], "Target": [0.0, 0.25]}, dtype=np.float64)
    assert_close(v, [-np.log(0.2 + EPS), -(0.25 * np.log(0.3 + EPS) + 0.75 * np.log(0.7 + EPS))],
                 dtype=np.float64, reduction=2)
    seq = CrossEntropyLossLayer("Binary", Input=("Varying", 5))
    p = [rng.uniform(0.05, 0.95, (n, 5)) for n in LENS]
    t = [rng.uniform(0, 1, (n, 5)) for n in LENS]
    want = [-(tt * np.log(pp) + (1 - tt) * np.log(1 - pp)).mean() for pp, tt in zip(p, t, strict=True)]
    assert_close(seq({"Input": p, "Target": t}, dtype=np.float64), want, dtype=np.float64, reduction=2 * 5 * max(LENS))


@pytest.mark.parametrize("layer, f", [(MeanSquaredLossLayer, np.square),
                                      (MeanAbsoluteLossLayer, np.abs)])
def test_mean_losses(layer, f):
    assert_close(layer(Input=3)({"Input": [1.0, 2.0, 4.0], "Target": [0.0, 4.0, 4.0]},
                                dtype=np.float64), f(np.array([1, -2, 0])).mean(), dtype=np.float64, reduction=3)
    x, t = rng.standard_normal((5, 3)), rng.standard_normal((5, 3))
    assert_close(layer(Input=(5, 3))({"Input": x, "Target": t}, dtype=np.float64), f(x - t).mean(),
                 dtype=np.float64, reduction=15)
    seq = layer(Input=("Varying", 3))
    xs = [rng.standard_normal((n, 3)) for n in LENS]
    ts = [rng.standard_normal((n, 3)) for n in LENS]
    assert_close(seq({"Input": xs, "Target": ts}, dtype=np.float64),
                 [f(a - b).mean() for a, b in zip(xs, ts, strict=True)], dtype=np.float64,
                 reduction=3 * max(LENS))


def test_padding_content_is_ignored():
    loss = CrossEntropyLossLayer("Index", Input=("Varying", 3))
    p = [probs(n, 3) for n in LENS]
    t = [rng.integers(0, 3, size=n) for n in LENS]
    from netgraph.apply import apply_net
    base = apply_net(loss, {"Input": p, "Target": t}, dtype=np.float64)
    for fill in (1e30, np.nan):
        got = apply_net(loss, {"Input": p, "Target": t}, dtype=np.float64, fill=fill)
        np.testing.assert_array_equal(got, base)


# ---------------------------------------------------------------- shapes and errors
def test_shapes_and_errors():
    assert CrossEntropyLossLayer("Index", Target=("Varying", Index(4))).port_shape("Input") == \
        ("Varying", 4)
    assert MeanSquaredLossLayer(Input=(2, 3)).port_shape("Target") == (2, 3)
    assert MeanSquaredLossLayer().port_shape("Loss") == "Real"
    with pytest.raises(NetError, match="form"):
        CrossEntropyLossLayer()
    with pytest.raises(NetError, match="form"):
        CrossEntropyLossLayer("Categorical")
    with pytest.raises(ShapeError):
        CrossEntropyLossLayer("Index", Input=4, Target=Index(5))
    with pytest.raises(ShapeError):
        CrossEntropyLossLayer("Index", Input="Real")
    with pytest.raises(ShapeError):
        CrossEntropyLossLayer("Probabilities", Input="Varying")
    with pytest.raises(ShapeError):
        MeanSquaredLossLayer(Input=3, Target=4)


def test_loss_attached_in_a_graph():
    net = NetGraph({"map": NetMapOperator(LinearLayer(4)), "sm": SoftmaxLayer(),
                    "loss": CrossEntropyLossLayer("Index")}, [("map", "sm", "loss")],
                   Input=("Varying", 3))
    assert net.port_shape("Target") == ("Varying", Index(4))
    assert net.output_ports == ("Loss",)


# ---------------------------------------------------------------- gradients
def _loss_data(form, shape, lens=LENS):
    c = shape[-1]
    if form == "Index":
        return ([probs(n, *shape[1:]) for n in lens],
                [rng.integers(0, c, size=(n,) + shape[1:-1]) for n in lens])
    if form == "Probabilities":
        return [probs(n, *shape[1:]) for n in lens], [probs(n, *shape[1:]) for n in lens]
    return ([rng.uniform(0.1, 0.9, (n,) + shape[1:]) for n in lens],
            [rng.uniform(0, 1, (n,) + shape[1:]) for n in lens])


@pytest.mark.parametrize("make", [lambda: CrossEntropyLossLayer("Index"),
                                  lambda: CrossEntropyLossLayer("Probabilities"),
                                  lambda: CrossEntropyLossLayer("Binary"),
                                  MeanSquaredLossLayer, MeanAbsoluteLossLayer])
@pytest.mark.parametrize("shape", [("Varying", 5), ("Varying", 3, 7), (3,)])
def test_gradients_central_differences(make, shape):
    layer = make()
    form = getattr(layer.params, "form", "Binary")
    net = NetGraph({"loss": layer}, [], Input=shape)
    if shape == (3,):
        x, t = _loss_data(form, (1, 3), lens=[1, 1])
        x, t = [a[0] for a in x], [a[0] for a in t]
    else:
        x, t = _loss_data(form, shape)
    report = fd_check(net, {"Input": x, "Target": t})
    assert "Input" in report
    if form != "Index":
        assert "Target" in report


# ---------------------------------------------------------------- saturated logits, fusion
def _classifier(c=4):
    chain = NetChain([LinearLayer(c), SoftmaxLayer()], Input=3)
    net = NetGraph({"net": chain, "loss": CrossEntropyLossLayer("Index")}, [("net", "loss")])
    return NetInitialize(net, seed=3)


def test_saturated_logits_stay_finite():
    net = NetGraph({"sm": SoftmaxLayer(), "loss": CrossEntropyLossLayer("Index")},
                   [("sm", "loss")], Input=("Varying", 5))
    z = [np.array([[1e4, -1e4, 0, 0, 0]] * n, dtype=float) for n in LENS]
    t = [np.full(n, 1) for n in LENS]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        loss, g = net({"Input": z, "Target": t}, ["Loss", NetPortGradient("Input")])
    assert np.all(np.isfinite(loss)) and all(np.all(np.isfinite(a)) for a in g)
    # probabilities are clipped at float32(EPS): the loss is -log of that, to float32 rounding
    assert_close(loss, np.full(3, -np.log(np.float64(np.float32(EPS)))), dtype=np.float32,
                 reduction=max(LENS))
    binary = NetGraph({"s": ElementwiseLayer("LogisticSigmoid"),
                       "loss": CrossEntropyLossLayer("Binary")}, [("s", "loss")], Input=3)
    v, gb = binary({"Input": [1e4, -1e4, 0.5], "Target": [0.0, 1.0, 1.0]},
                   ["Loss", NetPortGradient("Input")])
    assert np.isfinite(v) and np.all(np.isfinite(gb))


def _fused_grads(net, data, fuse):
    with fusion(fuse):
        plan, _, tape = run_net(net, data, np.float64)
    assert sum(bool(step.parts) for step in plan.steps) == (1 if fuse else 0)
    seeds = {p: np.ones_like(tape.values[m.slot]) for p, m in plan.outputs.items()}
    grads, agrads = backward(plan, tape, seeds)
    return grads, agrads, plan


def test_fusion_matches_unfused_gradients():
    net = _classifier()
    data = {"Input": rng.standard_normal((6, 3)), "Target": rng.integers(0, 4, 6)}
    g0, a0, plan = _fused_grads(net, data, False)
    g1, a1, _ = _fused_grads(net, data, True)
    for k in a0:
        assert_close(a1[k], a0[k], dtype=np.float64, reduction=6 * (3 + 4))
    slot = plan.inputs["Input"].slot
    assert_close(g1[slot], g0[slot], dtype=np.float64, reduction=3 + 4)
    # the NetArrayGradient of the plain net agrees with the unfused executor
    w = net(data, NetArrayGradient(["net", 0, "Weights"]), dtype=np.float64)
    assert_close(w, a0[("net", 0, "Weights")], dtype=np.float64, reduction=6 * (3 + 4))


def test_fusion_gives_softmax_minus_onehot_when_saturated():
    net = NetGraph({"sm": SoftmaxLayer(), "loss": CrossEntropyLossLayer("Index")},
                   [("sm", "loss")], Input=("Varying", 3))
    z = [np.tile([1e4, -1e4, 0.0], (n, 1)) for n in LENS]
    t = [np.full(n, 1) for n in LENS]
    g, _, plan = _fused_grads(net, {"Input": z, "Target": t}, True)
    gz = g[plan.inputs["Input"].slot]
    for b, n in enumerate(LENS):
        want = np.zeros((6, 3))
        want[:n] = np.array([1.0, -1.0, 0.0]) / n  # (p - onehot) / len
        assert_close(gz[b], want, dtype=np.float64, reduction=3)


def test_sigmoid_binary_fusion():
    net = NetGraph({"s": ElementwiseLayer("LogisticSigmoid"),
                    "loss": CrossEntropyLossLayer("Binary")}, [("s", "loss")], Input=3)
    data = {"Input": np.array([[1e4, -1e4, 0.5]]), "Target": np.array([[0.0, 1.0, 0.25]])}
    g, _, plan = _fused_grads(net, data, True)
    p = 1 / (1 + np.exp(-0.5))
    assert_close(g[plan.inputs["Input"].slot][0], np.array([1.0, -1.0, p - 0.25]) / 3, dtype=np.float64)
    mild = {"Input": rng.standard_normal((2, 3)), "Target": rng.uniform(0, 1, (2, 3))}
    g0, _, _ = _fused_grads(net, mild, False)
    g1, _, _ = _fused_grads(net, mild, True)
    for s in (plan.inputs["Input"].slot, plan.inputs["Target"].slot):
        assert_close(g1[s], g0[s], dtype=np.float64, reduction=3)


@pytest.mark.parametrize("lens", [[4, 4, 4], [4, 2, 5]])
def test_fusion_matches_unfused_over_sequences_with_and_without_padding(lens):
    """Softmax + "Index" cross-entropy over sequences, fused or not: with every example as
    long as the longest (nothing padded: one weight for all positions) and with padding."""
    net = NetGraph({"sm": SoftmaxLayer(), "loss": CrossEntropyLossLayer("Index")},
                   [("sm", "loss")], Input=("Varying", 5))
    z = [rng.standard_normal((n, 5)) for n in lens]
    t = [rng.integers(0, 5, n) for n in lens]
    g0, _, plan = _fused_grads(net, {"Input": z, "Target": t}, False)
    g1, _, _ = _fused_grads(net, {"Input": z, "Target": t}, True)
    slot = plan.inputs["Input"].slot
    assert g1[slot].shape == (3, max(lens), 5)
    assert_close(g1[slot], g0[slot], dtype=np.float64, reduction=5)
    for b, n in enumerate(lens):  # by hand: (p - onehot) / n at each valid position
        p = np.exp(z[b]) / np.exp(z[b]).sum(-1, keepdims=True)
        p[np.arange(n), t[b]] -= 1
        assert_close(g1[slot][b, :n], p / n, dtype=np.float64, reduction=5)
        assert not g1[slot][b, n:].any()
