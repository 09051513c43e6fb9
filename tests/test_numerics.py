"""Numerical edge cases: saturated logits, sequences of length 1, maximally ragged batches.

* Logits of ±1e4 through SoftmaxLayer, every loss (cross-entropy after a SoftmaxLayer /
  LogisticSigmoid, mean squared / absolute), attention with huge scores, and NetTrain on data
  producing such logits (the fused softmax + cross-entropy gradient ``p - onehot``): values and
  gradients stay finite and equal exact references.
* A sequence of length 1 through every sequence-taking layer gives its NumPy reference (and
  SequenceMost/Rest reject it with ``InputDataError``).
* A batch whose examples all have different lengths (1..7, shuffled) gives exactly the
  per-example results of every sequence-taking layer: outputs, port gradients (seeded) and
  array gradients (the sum over examples).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest
from helpers import array_paths, arrays64, randomized
from tolerance import assert_close, tolerance

from netgraph import (
    AttentionLayer,
    BasicRecurrentLayer,
    CatenateLayer,
    CrossEntropyLossLayer,
    DotLayer,
    ElementwiseLayer,
    EmbeddingLayer,
    GatedRecurrentLayer,
    Index,
    InputDataError,
    LinearLayer,
    LongShortTermMemoryLayer,
    MeanAbsoluteLossLayer,
    MeanSquaredLossLayer,
    NetArrayGradient,
    NetChain,
    NetExtract,
    NetFoldOperator,
    NetGraph,
    NetInitialize,
    NetMapOperator,
    NetPort,
    NetPortGradient,
    NetReplacePart,
    NetTrain,
    SequenceAttentionLayer,
    SequenceLastLayer,
    SequenceMostLayer,
    SequenceRestLayer,
    SequenceReverseLayer,
    SoftmaxLayer,
    SummationLayer,
    TotalLayer,
    gradcheck,
)
from netgraph.compile import fusion
from netgraph.layers import ELEMENTWISE_FUNCTIONS
from netgraph.tree import walk

EPS = 2.220446049250313e-16
BIG = 1e4


def _softmax(z: np.ndarray, axis: int = -1) -> np.ndarray:
    e = np.exp(z - z.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return np.exp(-np.logaddexp(0.0, -z))


def _finite(*xs: Any) -> bool:
    return all(np.all(np.isfinite(np.asarray(x, dtype=np.float64))) for x in xs)


@pytest.fixture(autouse=True)
def _no_numpy_warnings():
    """Overflow / invalid-value warnings are failures here: saturation must be handled, not
    merely survived."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        yield


# ============================================================ logits of ±1e4
LOGITS = np.array([[BIG, -BIG, 0.0, BIG / 2, -3.0],
                   [-BIG, -BIG, -BIG, -BIG, BIG],
                   [-BIG, BIG / 3, 2.0, -1.0, BIG / 3]])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_softmax_of_huge_logits(dtype):
    net = SoftmaxLayer(Input=5)
    rng = np.random.default_rng(0)
    seed = rng.standard_normal(LOGITS.shape)
    p, gx = net({"Input": LOGITS, NetPortGradient("Output"): seed},
                ["Output", NetPortGradient("Input")], dtype=dtype)
    want = _softmax(LOGITS)
    assert _finite(p, gx)
    assert_close(p, want, dtype=dtype, reduction=5)
    assert_close(p.sum(-1), 1.0, dtype=dtype, reduction=5)
    np.testing.assert_array_equal(p[1], [0, 0, 0, 0, 1])
    assert_close(p[2, 1], 0.5, dtype=dtype, reduction=5)
    want_g = want * (seed - (seed * want).sum(-1, keepdims=True))
    assert_close(gx, want_g, dtype=dtype, reduction=5, scale=np.abs(seed).max())


def test_softmax_of_huge_logits_along_a_varying_axis():
    net = SoftmaxLayer(0, Input="Varying")
    xs = [np.array([BIG, -BIG, 3.0]), np.array([-BIG]), np.array([-BIG, -BIG, BIG, BIG, 0.0])]
    out = net(xs, dtype=np.float64)
    for x, y in zip(xs, out):
        assert_close(y, _softmax(x, 0), dtype=np.float64, reduction=len(x))
    g = net(xs, NetPortGradient("Input"))
    assert all(_finite(e) for e in g)
    for e in g:  # d(sum p)/dx = 0, to the rounding of p·(1 - Σp) in float32
        assert_close(e, 0.0, dtype=np.float32, reduction=len(e), scale=1.0)


def _loss_graph(act, loss, shape):
    return NetGraph({"act": act, "loss": loss}, [("act", "loss")], Input=shape)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_index_cross_entropy_after_softmax_of_huge_logits(dtype):
    net = _loss_graph(SoftmaxLayer(), CrossEntropyLossLayer("Index"), 5)
    targets = np.array([0, 0, 4])  # right, wrong by 2e4, right
    data = {"Input": LOGITS, "Target": targets}
    with fusion(False):  # the two layers, one after the other
        loss, gx = net(data, ["Loss", NetPortGradient("Input")], dtype=dtype)
    assert _finite(loss, gx)
    p = _softmax(LOGITS)
    want = -np.log(np.maximum(p[np.arange(3), targets], EPS))
    # the terms are logs of probabilities (magnitude 1), the clipped one -log(EPS) = 36
    assert_close(loss, want, dtype=dtype, reduction=5, scale=1.0)
    assert_close(loss[1], -np.log(EPS), dtype=dtype)  # clipped, not inf
    assert_close(loss[0], 0.0, dtype=dtype, reduction=5, scale=1.0)
    # the exact gradient of the clipped loss: zero where the softmax is saturated
    assert_close(gx[[0, 1]], 0.0, dtype=dtype, reduction=5, scale=1.0)
    # compiled as usual, the pair is one fused step: the same clipped loss (from the
    # log-softmax), and the logit gradient p - onehot, which does not vanish when saturated
    fused_loss, fused_gx = net(data, ["Loss", NetPortGradient("Input")], dtype=dtype)
    assert _finite(fused_loss, fused_gx)
    assert_close(fused_loss, want, dtype=dtype, reduction=5, scale=1.0)
    assert_close(fused_gx, p - np.eye(5)[targets], dtype=dtype, reduction=5, scale=1.0)
    assert_close(fused_gx[1], [-1, 0, 0, 0, 1], dtype=dtype)


def test_probabilities_cross_entropy_after_softmax_of_huge_logits():
    net = _loss_graph(SoftmaxLayer(), CrossEntropyLossLayer("Probabilities"), 5)
    t = np.array([[0.5, 0.5, 0, 0, 0], [0.2, 0.2, 0.2, 0.2, 0.2], [0, 0.5, 0, 0, 0.5]])
    loss, gx, gt = net({"Input": LOGITS, "Target": t},
                       ["Loss", NetPortGradient("Input"), NetPortGradient("Target")],
                       dtype=np.float64)
    assert _finite(loss, gx, gt)
    p = _softmax(LOGITS)
    want = -(t * np.log(np.maximum(p, EPS))).sum(-1)
    assert_close(loss, want, dtype=np.float64, reduction=5)
    assert_close(loss[2], np.log(2), dtype=np.float64, reduction=5)
    assert_close(gt, -np.log(np.maximum(p, EPS)), dtype=np.float64)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_binary_cross_entropy_after_sigmoid_of_huge_logits(dtype):
    net = _loss_graph(ElementwiseLayer("LogisticSigmoid"), CrossEntropyLossLayer("Binary"), 5)
    t = np.array([[1, 0, 0.5, 1, 0], [0, 0, 0, 1, 1], [1, 1, 1, 0, 0]], dtype=float)
    loss, gx = net({"Input": LOGITS, "Target": t}, ["Loss", NetPortGradient("Input")],
                   dtype=dtype)
    assert _finite(loss, gx)
    p = _sigmoid(LOGITS)
    e = -(t * np.log(p + EPS) + (1 - t) * np.log(1 - p + EPS))
    assert_close(loss, e.mean(-1), dtype=dtype, reduction=5)
    # example 1: every term saturated correctly (loss ~0), except the confident mistake -BIG
    # for target 1 at position 3, clipped to -log(EPS)
    assert_close(loss[1], -np.log(EPS) / 5, dtype=dtype, reduction=5)
    # a real scalar (the shape of a plain binary classifier's output)
    net1 = _loss_graph(ElementwiseLayer("LogisticSigmoid"), CrossEntropyLossLayer("Binary"),
                       "Real")
    l1, g1 = net1({"Input": [-BIG, BIG, 0.0], "Target": [1.0, 1.0, 0.0]},
                  ["Loss", NetPortGradient("Input")], dtype=dtype)
    assert _finite(l1, g1)
    assert_close(l1, [-np.log(EPS), 0, np.log(2)], dtype=dtype, scale=1.0)
    assert_close(g1[2], 0.5, dtype=dtype)


@pytest.mark.parametrize("layer, f, df", [
    (MeanSquaredLossLayer, lambda d: d * d, lambda d: 2 * d),
    (MeanAbsoluteLossLayer, np.abs, np.sign),
])
def test_regression_losses_of_huge_values(layer, f, df):
    net = layer(Input=5)
    t = -LOGITS[::-1]
    loss, gx, gt = net({"Input": LOGITS, "Target": t},
                       ["Loss", NetPortGradient("Input"), NetPortGradient("Target")])
    assert _finite(loss, gx, gt)
    d = LOGITS - t
    assert_close(loss, f(d).mean(-1), dtype=np.float32, reduction=5)
    assert_close(gx, df(d) / 5, dtype=np.float32)
    assert_close(gt, -df(d) / 5, dtype=np.float32)


def test_dot_attention_with_huge_scores():
    att = SequenceAttentionLayer("Dot", Input=("Varying", 3), Query=("Varying", 3))
    e = np.array([[100.0, 0, 0], [-100, 0, 0], [0, 100, 0], [0, 0, 1]])
    q = np.array([[100.0, 0, 0], [0, -100, 0], [0, 0, 0]])
    seed = np.arange(9.0).reshape(3, 3) - 4
    data = {"Input": e, "Query": q, NetPortGradient("Output"): seed}
    out, w, ge, gq = att(data, ["Output", NetPort("AttentionWeights"), NetPortGradient("Input"),
                                NetPortGradient("Query")], dtype=np.float64)
    assert _finite(out, w, ge, gq)
    s = q @ e.T  # scores up to ±1e4
    want_w = _softmax(s, -1)
    assert_close(w, want_w, dtype=np.float64, reduction=4)
    np.testing.assert_array_equal(w[0], [1, 0, 0, 0])
    assert_close(w[1], [1 / 3, 1 / 3, 0, 1 / 3], dtype=np.float64, reduction=4)
    assert_close(out, want_w @ e, dtype=np.float64, reduction=4)
    # gradients, exactly: o = w e, w = softmax(q e^T)
    gw = seed @ e.T
    gs = want_w * (gw - (gw * want_w).sum(-1, keepdims=True))
    assert_close(ge, want_w.T @ seed + gs.T @ q, dtype=np.float64, reduction=3 + 3 + 4,
                 scale=np.abs(seed).max() * np.abs(q).max())
    assert_close(gq, gs @ e, dtype=np.float64, reduction=3 + 4,
                 scale=np.abs(seed).max() * np.abs(e).max())


def test_bilinear_and_rescaled_multi_head_attention_with_huge_scores_in_a_ragged_batch():
    W = np.zeros((5, 3))
    W[0, 0], W[1, 2] = BIG, -BIG
    att = NetReplacePart(NetInitialize(SequenceAttentionLayer(
        Input=("Varying", 3), Query=("Varying", 5))),
        {("ScoringNet", "Linear", "Weights"): W})
    rng = np.random.default_rng(3)
    es = [rng.choice([-1.0, 1.0], size=(T, 3)) for T in (4, 1, 6)]
    qs = [rng.choice([-1.0, 1.0], size=(T, 5)) for T in (2, 5, 3)]
    outs, ws = att({"Input": es, "Query": qs}, ["Output", NetPort("AttentionWeights")])
    ge = att({"Input": es, "Query": qs}, NetPortGradient("Input"))
    for e, q, o, w, g in zip(es, qs, outs, ws, ge):
        want_w = _softmax(q @ (W @ e.T), -1)
        assert _finite(o, w, g)
        assert_close(w, want_w, dtype=np.float32, reduction=len(e))
        assert_close(o, want_w @ e, dtype=np.float32, reduction=len(e))
    # multi-head with DimensionSqrt rescaling and a causal mask: scores 1e4 * 2 / sqrt(2)
    mh = NetInitialize(AttentionLayer("Dot", mask="Causal", score_rescaling="DimensionSqrt",
                                      multi_head=True, Key=("Varying", 3, 2),
                                      Value=("Varying", 3, 5), Query=("Varying", 3, 2)))
    k = rng.choice([-BIG / 100, BIG / 100], size=(4, 3, 2))
    v = rng.standard_normal((4, 3, 5))
    out, w, gk, gq = mh({"Key": k, "Value": v, "Query": k}, [
        "Output", NetPort("AttentionWeights"), NetPortGradient("Key"),
        NetPortGradient("Query")])
    assert _finite(out, w, gk, gq)
    s = np.einsum("jhd,ihd->jhi", k, k) / np.sqrt(2)
    s = np.where(np.tril(np.ones((4, 4), bool))[:, None, :], s, -np.inf)
    want_w = _softmax(s, -1)
    assert_close(w, want_w, dtype=np.float32, reduction=4)
    assert_close(out, np.einsum("jhi,ihd->jhd", want_w, v), dtype=np.float32, reduction=4)


_UNBOUNDED = {"Exp", "Log", "Sqrt"}  # overflow or leave their domain: the user's business


@pytest.mark.parametrize("f", sorted(set(ELEMENTWISE_FUNCTIONS) - _UNBOUNDED))
def test_elementwise_functions_of_huge_values_stay_finite(f):
    x = np.array([BIG, -BIG, 100.0, -100.0, 0.5])
    for dtype in (np.float32, np.float64):
        y, g = ElementwiseLayer(f, Input=5)(x, ["Output", NetPortGradient("Input")], dtype=dtype)
        assert _finite(y, g), (f, dtype, y, g)
        if f != "Square":  # far from 0 the others are flat or (SELU: 1.05×) linear
            assert np.abs(g[:2]).max() <= 1.1, (f, g)


@pytest.mark.parametrize("layer", [BasicRecurrentLayer, GatedRecurrentLayer,
                                   LongShortTermMemoryLayer])
def test_recurrent_layers_saturate_without_overflow(layer):
    net = randomized(layer(5, Input=("Varying", 3)))
    x = np.array([[BIG, -BIG, BIG], [-BIG, BIG, 0.0], [0.0, 0.0, BIG]])
    out, gx = net(x, ["Output", NetPortGradient("Input")])
    assert _finite(out, gx)
    assert np.abs(out).max() <= 1  # every state is a tanh (times gates in [0, 1])


def _sgd_one_step(net, data, loss=None):
    kw = {} if loss is None else {"loss": loss}
    return NetTrain(net, data, method=("SGD", {"momentum": 0}), learning_rate=0.5,
                    max_training_rounds=1, batch_size=len(next(iter(data.values()))),
                    progress=False, seed=0, **kw)


def test_nettrain_uses_the_fused_softmax_cross_entropy_gradient_at_huge_logits():
    x = np.array([[1.0, 0, 0], [0, 1, 0], [0, 0, 1], [1, 1, 0], [0, 1, 1], [1, 0, 1],
                  [1, 1, 1]])
    W = np.array([[BIG, 0, 0], [0, BIG, 0], [0, 0, BIG], [-BIG, -BIG, -BIG], [0, 0, 0]])
    net = NetReplacePart(NetInitialize(NetChain([LinearLayer(5), SoftmaxLayer()], Input=3)),
                         {(0, "Weights"): W, (0, "Biases"): np.zeros(5)})
    y = np.array([4, 3, 4, 3, 4, 3, 4])  # every prediction confidently wrong
    trained = _sgd_one_step(net, {"Input": x, "Output": y})
    z = x @ W.T
    p = _softmax(z)
    dz = (p - np.eye(5)[y]) / len(x)  # the fused gradient of the mean loss
    W2, b2 = NetExtract(trained, [0, "Weights"]), NetExtract(trained, [0, "Biases"])
    assert _finite(W2, b2)
    # the update's terms are small next to the stored ±1e4: each weight to its own rounding
    step = 0.5 * np.abs(dz).max() * np.abs(x).max()
    assert_close(W2, W - 0.5 * dz.T @ x, dtype=np.float32, reduction=7, scale=step)
    assert_close(b2, -0.5 * dz.sum(0), dtype=np.float32, reduction=7, scale=step)
    assert np.abs(b2).max() > 0.1  # the gradient did not vanish in the saturated softmax
    # the loss is reported clipped and finite, and training recovers from it
    res = NetTrain(net, {"Input": x, "Output": y}, prop="All", method="SGD",
                   learning_rate=1.0, max_training_rounds=20, batch_size=7, progress=False,
                   seed=0)
    assert _finite(res.round_loss_list) and _finite(res.batch_loss_list)
    assert_close(res.round_loss_list[0], -np.log(EPS), dtype=np.float32, reduction=7)
    assert max(res.batch_loss_list) <= -np.log(EPS) + tolerance(np.float32, reduction=7,
                                                                scale=-np.log(EPS))
    assert np.abs(NetExtract(res.trained_net, [0, "Biases"])).max() > 1


def test_nettrain_uses_the_fused_sigmoid_binary_gradient_at_huge_logits():
    x = np.array([[1.0, 0], [0, 1], [1, 1], [-1, 0], [0, -1]])
    W = np.array([[BIG, -BIG]])
    net = NetReplacePart(
        NetInitialize(NetChain([LinearLayer(1), ElementwiseLayer("LogisticSigmoid")], Input=2)),
        {(0, "Weights"): W, (0, "Biases"): np.zeros(1)})
    y = np.array([[0.0], [1], [1], [1], [0]])
    trained = _sgd_one_step(net, {"Input": x, "Output": y})
    p = _sigmoid(x @ W.T)
    dz = (p - y) / len(x)
    step = 0.5 * np.abs(dz).max() * np.abs(x).max()
    assert_close(NetExtract(trained, [0, "Weights"]), W - 0.5 * dz.T @ x, dtype=np.float32,
                 reduction=5, scale=step)
    assert_close(NetExtract(trained, [0, "Biases"]), -0.5 * dz.sum(0), dtype=np.float32,
                 reduction=5, scale=step)


def test_nettrain_on_sequences_with_huge_logits_stays_finite():
    emb = NetGraph({"emb": EmbeddingLayer(3, 7), "map": NetMapOperator(LinearLayer(5)),
                    "soft": SoftmaxLayer()}, [("emb", "map", "soft")], Input=("Varying", Index(7)))
    net = NetInitialize(emb, seed=0)
    net = NetReplacePart(net, {("map", "Net", "Weights"):
                               BIG * np.sign(NetExtract(net, ["map", "Net", "Weights"]) + 1e-9),
                               ("emb", "Weights"): np.sign(NetExtract(net, ["emb", "Weights"]))})
    rng = np.random.default_rng(0)
    xs = [rng.integers(0, 7, size=T) for T in (3, 1, 6, 2, 5)]
    ys = [rng.integers(0, 5, size=len(x)) for x in xs]
    res = NetTrain(net, {"Input": xs, "Output": ys}, prop="All", max_training_rounds=3,
                   batch_size=2, learning_rate=0.1, progress=False, seed=1)
    assert _finite(res.batch_loss_list)
    assert max(res.batch_loss_list) <= -np.log(EPS) + tolerance(np.float32, reduction=2 * 6,
                                                                scale=-np.log(EPS))
    for p in array_paths(res.trained_net):
        assert _finite(NetExtract(res.trained_net, list(p))), p


# ============================================================ sequence cases
@dataclass
class Seq:
    id: str
    make: Callable[[], Any]
    sample: Callable[[np.random.Generator, int], dict[str, np.ndarray]]
    #: NumPy reference of one example of length 1: (arrays by path, example) -> outputs
    ref1: Callable[[dict, dict], dict[str, np.ndarray]] | None = None
    min_length: int = 1


def _reals(rng, *shape):
    return rng.uniform(-1.5, 1.5, size=shape)


def _probs(rng, *shape):
    return _softmax(rng.standard_normal(shape))


def _lin(A, prefix, x):
    return A[prefix + ("Weights",)] @ x + A.get(prefix + ("Biases",), 0)


def _basic_step(A, x, s, prefix=()):
    return np.tanh(A[prefix + ("InputWeights",)] @ x + A[prefix + ("StateWeights",)] @ s
                   + A[prefix + ("Biases",)])


def _gru_step(A, x, s, prefix=()):
    def g(name, act, reset=None):
        st = A[prefix + (name + "StateWeights",)] @ s
        st = st if reset is None else reset * st
        return act(A[prefix + (name + "InputWeights",)] @ x + st + A[prefix + (name + "Biases",)])

    i = g("InputGate", _sigmoid)
    r = g("ResetGate", _sigmoid)
    m = g("MemoryGate", np.tanh, r)
    return (1 - i) * m + i * s


def _lstm_step(A, x, s, c, prefix=()):
    def g(name, act):
        return act(A[prefix + (name + "InputWeights",)] @ x
                   + A[prefix + (name + "StateWeights",)] @ s + A[prefix + (name + "Biases",)])

    i, o, f = g("InputGate", _sigmoid), g("OutputGate", _sigmoid), g("ForgetGate", _sigmoid)
    m = g("MemoryGate", np.tanh)
    c2 = f * c + i * m
    return o * np.tanh(c2), c2


def _attend(A, e, q, score):
    s = np.array([[score(ei, qj) for ei in e] for qj in q])
    w = _softmax(s, -1)
    return w @ e, w


def _bahdanau():
    return NetGraph({"we": LinearLayer(7, biases=False), "uq": LinearLayer(7), "plus": TotalLayer(),
                     "tanh": ElementwiseLayer("Tanh"), "v": LinearLayer((), biases=False)},
                    [(NetPort("Input"), "we"), (NetPort("Query"), "uq"), (["we", "uq"], "plus"),
                     ("plus", "tanh", "v")])


def _fold_inner():
    return NetGraph({"cat": CatenateLayer(), "lin": LinearLayer(5), "tanh": ElementwiseLayer("Tanh")},
                    [([NetPort("Input"), NetPort("State")], "cat", "lin", "tanh")],
                    Input=3, State=5)


def _rnn_graph(layer, cell):
    ins = {"State": NetPort("S0")} | ({"CellState": NetPort("C0")} if cell else {})
    conns = [(src, NetPort("rnn", p)) for p, src in ins.items()]
    conns += [(NetPort("rnn", p), NetPort("Final" + p)) for p in ins]
    return NetGraph({"rnn": layer}, conns, Input=("Varying", 3))


SEQ_CASES = [
    Seq("SequenceLast", lambda: SequenceLastLayer(Input=("Varying", 3)),
        lambda rng, T: {"Input": _reals(rng, T, 3)},
        lambda A, ex: {"Output": ex["Input"][0]}),
    Seq("SequenceLast-vector", lambda: SequenceLastLayer(Input="Varying"),
        lambda rng, T: {"Input": _reals(rng, T)}, lambda A, ex: {"Output": ex["Input"][0]}),
    Seq("SequenceMost", lambda: SequenceMostLayer(Input=("Varying", 3)),
        lambda rng, T: {"Input": _reals(rng, T, 3)}, min_length=2),
    Seq("SequenceRest", lambda: SequenceRestLayer(Input=("Varying", 3)),
        lambda rng, T: {"Input": _reals(rng, T, 3)}, min_length=2),
    Seq("SequenceRest-vector", lambda: SequenceRestLayer(Input="Varying"),
        lambda rng, T: {"Input": _reals(rng, T)}, min_length=2),
    Seq("SequenceReverse", lambda: SequenceReverseLayer(Input=("Varying", 3)),
        lambda rng, T: {"Input": _reals(rng, T, 3)}, lambda A, ex: {"Output": ex["Input"]}),
    Seq("NetMap", lambda: NetMapOperator(NetChain([LinearLayer(5), "Tanh"]), Input=("Varying", 3)),
        lambda rng, T: {"Input": _reals(rng, T, 3)},
        lambda A, ex: {"Output": np.tanh(_lin(A, ("Net", 0), ex["Input"][0]))[None]}),
    Seq("NetFold", lambda: NetFoldOperator(_fold_inner(), Input=("Varying", 3)),
        lambda rng, T: {"Input": _reals(rng, T, 3)},
        lambda A, ex: {"Output": np.tanh(_lin(A, ("Net", "lin"), np.concatenate(
            [ex["Input"][0], np.zeros(5)])))[None]}),
    Seq("BasicRecurrent", lambda: BasicRecurrentLayer(5, Input=("Varying", 3)),
        lambda rng, T: {"Input": _reals(rng, T, 3)},
        lambda A, ex: {"Output": _basic_step(A, ex["Input"][0], np.zeros(5))[None]}),
    Seq("GatedRecurrent", lambda: GatedRecurrentLayer(5, Input=("Varying", 3)),
        lambda rng, T: {"Input": _reals(rng, T, 3)},
        lambda A, ex: {"Output": _gru_step(A, ex["Input"][0], np.zeros(5))[None]}),
    Seq("LSTM", lambda: LongShortTermMemoryLayer(5, Input=("Varying", 3)),
        lambda rng, T: {"Input": _reals(rng, T, 3)},
        lambda A, ex: {"Output": _lstm_step(A, ex["Input"][0], np.zeros(5), np.zeros(5))[0][None]}),
    Seq("GRU-states", lambda: _rnn_graph(GatedRecurrentLayer(5), False),
        lambda rng, T: {"Input": _reals(rng, T, 3), "S0": _reals(rng, 5)},
        lambda A, ex: (lambda s: {"Output": s[None], "FinalState": s})(
            _gru_step(A, ex["Input"][0], ex["S0"], ("rnn",)))),
    Seq("LSTM-states", lambda: _rnn_graph(LongShortTermMemoryLayer(5), True),
        lambda rng, T: {"Input": _reals(rng, T, 3), "S0": _reals(rng, 5), "C0": _reals(rng, 5)},
        lambda A, ex: (lambda sc: {"Output": sc[0][None], "FinalState": sc[0],
                                   "FinalCellState": sc[1]})(
            _lstm_step(A, ex["Input"][0], ex["S0"], ex["C0"], ("rnn",)))),
    Seq("Attention-Bilinear", lambda: SequenceAttentionLayer(Input=("Varying", 3),
                                                             Query=("Varying", 5)),
        lambda rng, T: {"Input": _reals(rng, T, 3), "Query": _reals(rng, 8 - T, 5)},
        lambda A, ex: {"Output": _attend(A, ex["Input"], ex["Query"], lambda e, q: q @ (
            A[("ScoringNet", "Linear", "Weights")] @ e))[0]}),
    Seq("Attention-query-length", lambda: SequenceAttentionLayer("Dot", Input=("Varying", 3),
                                                                 Query=("Varying", 3)),
        lambda rng, T: {"Input": _reals(rng, 8 - T, 3), "Query": _reals(rng, T, 3)},
        lambda A, ex: {"Output": _attend(A, ex["Input"], ex["Query"], np.dot)[0]}),
    Seq("Attention-Bahdanau", lambda: SequenceAttentionLayer(_bahdanau(), Input=("Varying", 3),
                                                             Query=("Varying", 2)),
        lambda rng, T: {"Input": _reals(rng, T, 3), "Query": _reals(rng, (T * 3) % 7 + 1, 2)},
        lambda A, ex: {"Output": _attend(A, ex["Input"], ex["Query"], lambda e, q: _lin(
            A, ("ScoringNet", "v"), np.tanh(_lin(A, ("ScoringNet", "we"), e)
                                            + _lin(A, ("ScoringNet", "uq"), q))))[0]}),
    Seq("Attention-causal", lambda: AttentionLayer(mask=("Causal", 2), score_rescaling="DimensionSqrt",
                                                   Key=("Varying", 3), Value=("Varying", 5),
                                                   Query=("Varying", 2)),
        lambda rng, T: {"Key": _reals(rng, T, 3), "Value": _reals(rng, T, 5),
                        "Query": _reals(rng, T, 2)},
        lambda A, ex: {"Output": ex["Value"]}),
    Seq("Attention-multihead", lambda: AttentionLayer("Dot", multi_head=True, Key=("Varying", 2, 3),
                                                      Value=("Varying", 2, 5),
                                                      Query=("Varying", 2, 3)),
        lambda rng, T: {"Key": _reals(rng, T, 2, 3), "Value": _reals(rng, T, 2, 5),
                        "Query": _reals(rng, 8 - T, 2, 3)},
        lambda A, ex: {"Output": np.broadcast_to(ex["Value"][0], (7, 2, 5))}),
    Seq("CrossEntropy-Index", lambda: _loss_graph(SoftmaxLayer(), CrossEntropyLossLayer("Index"),
                                                  ("Varying", 5)),
        lambda rng, T: {"Input": _reals(rng, T, 5) * 3, "Target": rng.integers(0, 5, size=T)},
        lambda A, ex: {"Loss": -np.log(_softmax(ex["Input"][0])[ex["Target"][0]])}),
    Seq("CrossEntropy-Probabilities",
        lambda: CrossEntropyLossLayer("Probabilities", Input=("Varying", 5)),
        lambda rng, T: {"Input": _probs(rng, T, 5), "Target": _probs(rng, T, 5)},
        lambda A, ex: {"Loss": -(ex["Target"][0] * np.log(ex["Input"][0])).sum()}),
    Seq("CrossEntropy-Binary", lambda: _loss_graph(ElementwiseLayer("Sigmoid"),
                                                   CrossEntropyLossLayer("Binary"), "Varying"),
        lambda rng, T: {"Input": _reals(rng, T), "Target": rng.uniform(0, 1, size=T)},
        lambda A, ex: (lambda p, t: {"Loss": -(t * np.log(p) + (1 - t) * np.log(1 - p))})(
            _sigmoid(ex["Input"][0]), ex["Target"][0])),
    Seq("MeanSquared", lambda: MeanSquaredLossLayer(Input=("Varying", 3)),
        lambda rng, T: {"Input": _reals(rng, T, 3), "Target": _reals(rng, T, 3)},
        lambda A, ex: {"Loss": ((ex["Input"] - ex["Target"]) ** 2).mean()}),
    Seq("MeanAbsolute", lambda: MeanAbsoluteLossLayer(Input=("Varying", 3)),
        lambda rng, T: {"Input": _reals(rng, T, 3), "Target": _reals(rng, T, 3)},
        lambda A, ex: {"Loss": np.abs(ex["Input"] - ex["Target"]).mean()}),
    Seq("Embedding-GRU-Last", lambda: NetChain({"emb": EmbeddingLayer(3, 7), "gru":
                                                GatedRecurrentLayer(5), "last": SequenceLastLayer(),
                                                "lin": LinearLayer(2)}, Input=("Varying", Index(7))),
        lambda rng, T: {"Input": rng.integers(0, 7, size=T)},
        lambda A, ex: {"Output": _lin(A, ("lin",), _gru_step(A, A[("emb", "Weights")][
            ex["Input"][0]], np.zeros(5), ("gru",)))}),
    Seq("Softmax-over-sequence", lambda: SoftmaxLayer(0, Input=("Varying", 3)),
        lambda rng, T: {"Input": _reals(rng, T, 3)}, lambda A, ex: {"Output": np.ones((1, 3))}),
    Seq("Summation", lambda: SummationLayer(Input=("Varying", 3)),
        lambda rng, T: {"Input": _reals(rng, T, 3)},
        lambda A, ex: {"Output": ex["Input"].sum()}),
    Seq("Catenate-features", lambda: CatenateLayer(-1, Input1=("Varying", 3), Input2=("Varying", 2)),
        lambda rng, T: {"Input1": _reals(rng, T, 3), "Input2": _reals(rng, T, 2)},
        lambda A, ex: {"Output": np.concatenate([ex["Input1"], ex["Input2"]], -1)}),
    Seq("Dot-sequence", lambda: DotLayer(Input1=("Varying", 3), Input2=(3, 5)),
        lambda rng, T: {"Input1": _reals(rng, T, 3), "Input2": _reals(rng, 3, 5)},
        lambda A, ex: {"Output": ex["Input1"] @ ex["Input2"]}),
    Seq("Reverse-GRU-Reverse", lambda: NetChain([SequenceReverseLayer(), GatedRecurrentLayer(5),
                                                 SequenceReverseLayer(), SequenceRestLayer()],
                                                Input=("Varying", 3)),
        lambda rng, T: {"Input": _reals(rng, T, 3)}, min_length=2),
]
by_case = pytest.mark.parametrize("case", SEQ_CASES, ids=[c.id for c in SEQ_CASES])
# roundings behind one value of the cases above: a recurrent step sums 3 + 5 + 1 terms per gate
# along at most 8 steps, an attention output 8 scores; array gradients sum all steps of a batch
SEQ_TERMS = 8 * (3 + 5 + 1) + 40


def _net(case: Seq, seed: int = 0):
    return randomized(case.make(), seed)


def _real_inputs(net) -> list[str]:
    out = []
    for p in net.input_ports:
        shape = net.port_shape(p)
        elem = shape if not isinstance(shape, tuple) else (shape[-1] if shape else None)
        if not isinstance(elem, Index) and elem != "Integer":
            out.append(p)
    return out


def _varying(net, port) -> bool:
    shape = net.port_shape(port)
    return isinstance(shape, tuple) and bool(shape) and shape[0] == "Varying"


def _everything(net, data, seeds, dtype=np.float64):
    """Outputs, seeded input-port gradients and array gradients of ``net`` on ``data``."""
    outs = list(net.output_ports)
    ins = _real_inputs(net)
    paths = array_paths(net)
    what = outs + [NetPortGradient(p) for p in ins] + [NetArrayGradient(list(p)) for p in paths]
    got = net({**data, **{NetPortGradient(p): g for p, g in seeds.items()}}, what, dtype=dtype)
    n = len(outs)
    return (dict(zip(outs, got[:n])), dict(zip(ins, got[n:n + len(ins)])),
            dict(zip(paths, got[n + len(ins):])))


@by_case
def test_a_sequence_of_length_one(case):
    net = _net(case)
    rng = np.random.default_rng(7)
    ex = case.sample(rng, 1)
    if case.min_length > 1:
        with pytest.raises(InputDataError) as e:
            net(ex)
        assert "length" in str(e.value) and "[1]" in str(e.value)
        with pytest.raises(InputDataError):
            net({p: [v, case.sample(rng, 3)[p]] for p, v in ex.items()})
        return
    outs, port_grads, array_grads = _everything(net, ex, {})
    assert all(_finite(v) for d in (outs, port_grads, array_grads) for v in d.values())
    if case.ref1 is not None:
        want = case.ref1(arrays64(net), ex)
        for p, w in want.items():
            assert_close(outs[p], w, dtype=np.float64, reduction=SEQ_TERMS, what=p)
    # float32 agrees with float64
    got32 = net(ex, list(net.output_ports))
    for p, v in zip(net.output_ports, got32):
        assert_close(v, outs[p], dtype=np.float32, reduction=SEQ_TERMS, what=p)
    # the gradients of a length-1 example are right too (central differences)
    if port_grads or array_grads:
        gradcheck(net, ex)


def test_length_one_attention_gradients_are_exact():
    """With one input position the weights are constant 1: the Query gets no gradient and the
    Input gets the sum of the output seeds."""
    net = randomized(SequenceAttentionLayer(Input=("Varying", 3), Query=("Varying", 5)))
    rng = np.random.default_rng(1)
    e, q, seed = _reals(rng, 1, 3), _reals(rng, 4, 5), _reals(rng, 4, 3)
    out, w, ge, gq, gw = net({"Input": e, "Query": q, NetPortGradient("Output"): seed},
                             ["Output", NetPort("AttentionWeights"), NetPortGradient("Input"),
                              NetPortGradient("Query"),
                              NetArrayGradient(["ScoringNet", "Linear", "Weights"])],
                             dtype=np.float64)
    np.testing.assert_array_equal(w, np.ones((4, 1)))
    assert_close(out, np.repeat(e, 4, 0), dtype=np.float64)
    assert_close(ge, seed.sum(0, keepdims=True), dtype=np.float64, reduction=4,
                 scale=np.abs(seed).max())
    # w ≡ 1: the softmax backward w·(g − Σ w·g) is g − g, zero to the rounding of its terms
    terms = np.abs(seed).max() * np.abs(e).max()
    assert_close(gq, 0.0, dtype=np.float64, scale=terms)
    assert_close(gw, 0.0, dtype=np.float64, scale=terms * np.abs(q).max())


@pytest.mark.parametrize("layer", [SequenceMostLayer, SequenceRestLayer])
def test_most_and_rest_of_a_fixed_length_one_sequence_are_shape_errors(layer):
    from netgraph import ShapeError

    with pytest.raises(ShapeError) as e:
        layer(Input=(1, 3))
    assert "length >= 2" in str(e.value) and "got length 1" in str(e.value)


LENGTHS = [4, 1, 7, 3, 6, 2, 5]  # 1..7, shuffled


def _batch_of(net, examples):
    return {p: [ex[p] for ex in examples] if _varying(net, p) else np.stack([ex[p] for ex in examples])
            for p in examples[0]}


@by_case
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_a_batch_of_all_different_lengths_equals_its_examples(case, dtype):
    """The batch in ``dtype`` against every example alone in float64: float64 to float64
    rounding (batch == per example), float32 to float32 rounding."""
    net = _net(case, seed=2)
    rng = np.random.default_rng(11)
    lengths = [T + case.min_length - 1 for T in LENGTHS]
    examples = [case.sample(rng, T) for T in lengths]
    singles, seeds = [], []
    for ex in examples:
        outs = net(ex, list(net.output_ports), dtype=np.float64)
        seed = {p: rng.standard_normal(np.shape(o)) for p, o in zip(net.output_ports, outs)}
        seeds.append(seed)
        singles.append(_everything(net, ex, seed, np.float64))
    batch_seeds = _batch_of(net, seeds) if seeds[0] else {}
    for p in net.output_ports:  # a seed of a varying output is a list; otherwise stacked
        if not _varying(net, p):
            batch_seeds[p] = np.stack([s[p] for s in seeds])
    outs, port_grads, array_grads = _everything(net, _batch_of(net, examples), batch_seeds, dtype)
    for p, got in outs.items():
        assert isinstance(got, list) == _varying(net, p), p
        assert len(got) == len(examples)
        for k, single in enumerate(singles):
            assert np.shape(got[k]) == np.shape(single[0][p]), (p, k)
            assert_close(got[k], single[0][p], dtype=dtype, reduction=SEQ_TERMS,
                         what=f"{p}, example {k}")
    for p, got in port_grads.items():
        assert len(got) == len(examples)
        for k, single in enumerate(singles):
            assert np.shape(got[k]) == np.shape(examples[k][p]), (p, k)
            assert_close(got[k], single[1][p], dtype=dtype, reduction=SEQ_TERMS,
                         what=f"gradient of {p}, example {k}")
    for path, got in array_grads.items():
        want = sum(single[2][path] for single in singles)
        assert_close(got, want, dtype=dtype, reduction=SEQ_TERMS, what=f"gradient of {path}")


def test_the_sequence_cases_cover_every_sequence_taking_layer():
    kinds = {type(sub).__name__ for c in SEQ_CASES for _, sub in walk(c.make())}
    assert {"SequenceLastLayer", "SequenceMostLayer", "SequenceRestLayer",
            "SequenceReverseLayer", "NetMapOperator", "NetFoldOperator", "BasicRecurrentLayer",
            "GatedRecurrentLayer", "LongShortTermMemoryLayer", "SequenceAttentionLayer",
            "AttentionLayer", "CrossEntropyLossLayer", "MeanSquaredLossLayer",
            "MeanAbsoluteLossLayer", "EmbeddingLayer", "SoftmaxLayer"} <= kinds
