"""The additive scoring fast path (layers/scoring.py AdditiveScores) equals the general
broadcasting path bit for bit: outputs, input gradients and all three weight gradients."""

import numpy as np
import pytest
from helpers import additive_scoring

import netgraph.layers.attention as attention
from netgraph import (
    NetArrayGradient,
    NetExtract,
    NetInitialize,
    NetPort,
    NetPortGradient,
    SequenceAttentionLayer,
)
from netgraph.layers import scoring
from netgraph.layers.scoring import fast_kind


def run(net, d, inputs, queries):
    layer = NetInitialize(SequenceAttentionLayer(net, Input=("Varying", d), Query=("Varying", d)),
                          seed=3)
    wants = [NetPort("Output"), NetPortGradient("Input"), NetPortGradient("Query")]
    wants += [NetArrayGradient(["ScoringNet", k, "Weights"]) for k in ("W", "U", "v")]
    return layer({"Input": inputs, "Query": queries}, wants), layer


def test_recognized_only_without_biases():
    assert fast_kind(additive_scoring(5))[0] == "additive"
    assert fast_kind(additive_scoring(5, biases=True)) is None


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("sizes", [(3, 5, 7, 11), (7, 3, 5, 130)])
@pytest.mark.parametrize("block", [None, 64], ids=["blocks-as-set", "small-blocks"])
def test_fast_path_equals_general_path_bitwise(monkeypatch, dtype, sizes, block):
    """``block``: the fused backward's block in elements (64: many blocks per chunk)."""
    if block is not None:
        monkeypatch.setattr(scoring, "PAIR_BLOCK_ELEMENTS", block)
    B, n, m, d = sizes
    rng = np.random.default_rng(1)
    inputs = [rng.standard_normal((k, d)).astype(dtype) for k in rng.integers(1, n + 1, B)]
    queries = [rng.standard_normal((k, d)).astype(dtype) for k in rng.integers(1, m + 1, B)]
    fast, layer = run(additive_scoring(d + 2), d, inputs, queries)
    monkeypatch.setattr(attention, "fast_kind", lambda net: None)
    general, layer2 = run(additive_scoring(d + 2), d, inputs, queries)
    for k in ("W", "U", "v"):
        path = ["ScoringNet", k, "Weights"]
        assert np.array_equal(NetExtract(layer, path), NetExtract(layer2, path))

    def flat(x):
        if isinstance(x, (list, tuple)):
            return [z for y in x for z in flat(y)]
        if isinstance(x, dict):
            return [z for key in sorted(x, key=str) for z in flat(x[key])]
        return [np.asarray(x)]

    a, b = flat(fast), flat(general)
    assert len(a) == len(b) > 5
    for x, y in zip(a, b, strict=True):
        assert x.dtype == y.dtype and x.shape == y.shape
        assert x.tobytes() == y.tobytes()
