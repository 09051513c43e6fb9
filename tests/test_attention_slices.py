"""Attention computed by batch slices on worker threads (netgraph.blas.parallel_map).

* Outputs and every gradient are bit-identical however the batch is sliced (one example a
  slice, or all in one) and however many threads run the slices — for Dot, Bilinear (both
  projection sides), a custom scoring net, separate Key/Value ports, multi-head with a causal
  mask, and dropout in training.
* A failing slice raises the layer's own error (a score overflow), from whichever thread.
* Weights below the smallest normal number are exactly 0 (flush-to-zero): in float32 a weight
  of e^-90 would be subnormal, and subnormal operands slow the products down ~50x; float64
  keeps it, and the outputs agree with a float64 reference.
"""

from __future__ import annotations

import numpy as np
import pytest
from helpers import additive_scoring, array_paths

import netgraph.blas as blas
import netgraph.layers.attention as attention
from netgraph import (
    AttentionLayer,
    NetArrayGradient,
    NetError,
    NetInitialize,
    NetPort,
    NetPortGradient,
    SequenceAttentionLayer,
)
from netgraph.apply import apply_net


def seqs(rng, lengths, size):
    return [rng.standard_normal((k, size)).astype(np.float32) for k in lengths]


def sequence_case(scoring, n_lengths, m_lengths):
    d = 6
    net = NetInitialize(SequenceAttentionLayer(scoring, Input=("Varying", d),
                                               Query=("Varying", d)), seed=1)
    rng = np.random.default_rng(2)
    data = {"Input": seqs(rng, n_lengths, d), "Query": seqs(rng, m_lengths, d)}
    return net, data, ["Input", "Query"]


def key_value_case():
    net = NetInitialize(AttentionLayer(Key=("Varying", 3), Value=("Varying", 5),
                                       Query=("Varying", 7)), seed=4)
    rng = np.random.default_rng(5)
    lengths = (5, 2, 7, 3, 6)
    data = {"Key": seqs(rng, lengths, 3), "Value": seqs(rng, lengths, 5),
            "Query": seqs(rng, (4, 1, 3, 2, 5), 7)}
    return net, data, ["Key", "Value", "Query"]


def heads_case():
    net = NetInitialize(AttentionLayer("Dot", mask="Causal", score_rescaling="DimensionSqrt",
                                       multi_head=True, Key=("Varying", 2, 3),
                                       Value=("Varying", 2, 5), Query=("Varying", 2, 3)),
                        seed=6)
    rng = np.random.default_rng(7)
    lengths = (4, 6, 1, 5)
    mk = lambda size: [rng.standard_normal((k, 2, size)).astype(np.float32) for k in lengths]  # noqa: E731
    return net, {"Key": mk(3), "Value": mk(5), "Query": mk(3)}, ["Key", "Value", "Query"]


CASES = {
    "Dot": lambda: sequence_case("Dot", (5, 1, 7, 3, 6), (2, 4, 3, 1, 5)),
    "Bilinear-keys": lambda: sequence_case("Bilinear", (2, 1, 3, 2, 3), (5, 4, 7, 6, 3)),
    "Bilinear-queries": lambda: sequence_case("Bilinear", (5, 1, 7, 3, 6), (2, 4, 3, 1, 2)),
    "Additive": lambda: sequence_case(additive_scoring(5), (5, 1, 7, 3, 6), (2, 4, 3, 1, 5)),
    "Key-Value": key_value_case,
    "heads-causal": heads_case,
}


def everything(net, data, ports, training=False):
    wants = [NetPort("Output")] + [NetPortGradient(p) for p in ports]
    wants += [NetArrayGradient(list(p)) for p in array_paths(net)]
    if training:
        out = apply_net(net, data, wants, training=True, rng=np.random.default_rng(9))
    else:
        out = net(data, wants)
    flat = []
    for r in out if isinstance(out, list) else [out]:
        flat += [np.asarray(x).tobytes() for x in r] if isinstance(r, list) else \
            [np.asarray(r).tobytes()]
    return flat


@pytest.mark.parametrize("name", list(CASES))
def test_results_do_not_depend_on_slices_or_threads(name, monkeypatch):
    net, data, ports = CASES[name]()
    default = everything(net, data, ports)
    monkeypatch.setattr(attention, "SLICE_ELEMENTS", 1)  # one example a slice
    monkeypatch.setattr(blas, "SPLIT_FLOPS", 0)
    sliced = everything(net, data, ports)
    monkeypatch.setattr(blas, "WORKERS", 1)
    in_order = everything(net, data, ports)
    assert sliced == default and in_order == default


def test_dropout_in_training_does_not_depend_on_slices(monkeypatch):
    net = NetInitialize(AttentionLayer(dropout=0.3, Key=("Varying", 3), Value=("Varying", 5),
                                       Query=("Varying", 7)), seed=4)
    _, data, ports = key_value_case()
    default = everything(net, data, ports, training=True)
    monkeypatch.setattr(attention, "SLICE_ELEMENTS", 1)
    monkeypatch.setattr(blas, "SPLIT_FLOPS", 0)
    assert everything(net, data, ports, training=True) == default


def test_an_overflow_in_one_slice_raises_the_layer_error(monkeypatch):
    monkeypatch.setattr(attention, "SLICE_ELEMENTS", 1)
    monkeypatch.setattr(blas, "SPLIT_FLOPS", 0)
    net, data, ports = CASES["Dot"]()
    data["Input"][3] = np.full_like(data["Input"][3], 3e19)  # scores beyond float32's range
    data["Query"][3] = np.full_like(data["Query"][3], 3e19)
    data["Query"][3][0] = -3e19  # a row of -inf scores: nowhere to attend
    with pytest.raises(NetError, match="not finite in float32"):
        net(data)


def test_subnormal_weights_are_zero():
    """Scores 0, -90, -95 and -100 below a row's largest: exp gives 8e-40, 5e-42 and 4e-44,
    subnormal in float32 (0 there), normal in float64."""
    net = NetInitialize(SequenceAttentionLayer("Dot", Input=("Varying", 3),
                                               Query=("Varying", 3)), seed=0)
    u = np.array([0.6, 0.0, 0.8])
    E = [np.outer([0.0, -90.0, -95.0, -100.0, -3.0], u) + np.array([0.0, 1.0, 0.0])]
    Q = [np.stack([u, 0.5 * u])]
    data = {"Input": E, "Query": Q}
    attn = NetPort("AttentionWeights")
    got32 = net(data, [NetPort("Output"), attn], dtype=np.float32)
    got64 = net(data, [NetPort("Output"), attn], dtype=np.float64)
    w32, w64 = got32[1][0], got64[1][0]
    tiny = np.finfo(np.float32).tiny
    assert w32.dtype == np.float32
    assert np.all((w32 == 0) | (w32 >= tiny))
    assert np.all(w32[0, 1:4] == 0) and np.all(w64[0, 1:4] > 0)
    assert np.any((w64 > 0) & (w64 < tiny))  # float32 would have held subnormals here
    np.testing.assert_allclose(got32[0][0], got64[0][0], rtol=1e-5, atol=1e-5)
    g32 = net(data, [NetPortGradient("Input")], dtype=np.float32)[0][0]
    g64 = net(data, [NetPortGradient("Input")], dtype=np.float64)[0][0]
    assert np.isfinite(g32).all()
    np.testing.assert_allclose(g32, g64, rtol=1e-4, atol=1e-4)


def test_finite_row_maxima_whose_sum_overflows_give_the_plain_softmax():
    """The softmax finds a non-finite row maximum by the sum of the maxima; huge finite
    maxima overflow that sum in float32 and take the careful path, which must give the
    weights of the plain one (float64, where nothing overflows)."""
    rows = np.array([[3e38, 2.9e38, 5.0, -1.0], [2e38, -7.0, 2e38, 1.0],
                     [1.5, 0.5, -2.5, 3.0]])
    s32 = rows.astype(np.float32)[None, None]
    with np.errstate(over="ignore", invalid="ignore"):
        assert not np.isfinite(np.add.reduce(s32.max(axis=-1), axis=None))
        w32, overflowed = attention._masked_softmax(s32.copy(), 1.0, None, None, None)
    w64, _ = attention._masked_softmax(rows.astype(np.float64)[None, None], 1.0, None, None,
                                       None)
    assert not overflowed
    np.testing.assert_allclose(w32, w64, rtol=1e-6, atol=0)
    assert w32[0, 0, 0].tolist() == [1.0, 0.0, 0.0, 0.0]
    assert w32[0, 0, 1].tolist() == [0.5, 0.0, 0.5, 0.0]
