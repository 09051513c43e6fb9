"""EmbeddingLayer's backward: the Weights gradient sums the output gradients of each index,
by a product with the indices' one-hot matrix (small vocabularies and batches) or by
``np.add.at``; an infinite output gradient stays in its index's row."""

import numpy as np
import pytest
from tolerance import assert_close

from netgraph import EmbeddingLayer, NetArrayGradient, NetInitialize, NetPortGradient
from netgraph.layers import sequence

V, D = 7, 5
LENS = [3, 9, 6, 1, 4]


def reference(xs, seeds):
    ref = np.zeros((V, D))
    for x, s in zip(xs, seeds, strict=True):
        np.add.at(ref, x, s)
    return ref


@pytest.mark.parametrize("one_hot", [True, False])
def test_weights_gradient_sums_the_output_gradients_of_each_index(one_hot, monkeypatch):
    if not one_hot:
        monkeypatch.setattr(sequence, "ONE_HOT_ENTRIES", 0)
    rng = np.random.default_rng(3)
    net = NetInitialize(EmbeddingLayer(D, V), seed=0)
    xs = [rng.integers(0, V - 1, k) for k in LENS]  # index V - 1 never occurs: its row is 0
    seeds = [rng.standard_normal((k, D)) for k in LENS]
    gW = net({"Input": xs, NetPortGradient("Output"): seeds}, NetArrayGradient("Weights"))
    want = reference(xs, seeds)
    assert gW.dtype == np.float32 and gW.shape == (V, D)
    assert_close(gW, want, dtype=np.float32, reduction=sum(LENS))
    assert not gW[V - 1].any()
    single = [net({"Input": x, NetPortGradient("Output"): s}, NetArrayGradient("Weights"))
              for x, s in zip(xs, seeds, strict=True)]
    assert_close(gW, sum(single), dtype=np.float32, reduction=sum(LENS))  # batch == examples


def test_an_infinite_output_gradient_stays_in_its_row():
    rng = np.random.default_rng(5)
    layer = EmbeddingLayer(D, V)
    W = rng.standard_normal((V, D)).astype(np.float32)
    idx = np.array([[2, 4, 2], [0, 4, 1]])
    g = rng.standard_normal((2, 3, D)).astype(np.float32)
    g[1, 1, 3] = np.inf  # index 4
    _, backward = layer.forward({"Input": idx}, {"Weights": W}, None)
    _, grads = backward({"Output": g})
    want = reference(idx.reshape(-1, 1), g.reshape(-1, 1, D).astype(np.float64))
    got = grads["Weights"]
    assert got[4, 3] == np.inf
    assert np.isfinite(np.delete(got.reshape(-1), 4 * D + 3)).all()
    assert_close(got, want, dtype=np.float32, reduction=len(idx.reshape(-1)))
