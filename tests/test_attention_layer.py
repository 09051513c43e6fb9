"""AttentionLayer: Key/Value/Query, causal masks, rescaling, multi-head, dropout; and its
equivalence with SequenceAttentionLayer (the Key = Value = Input case)."""

import math

import numpy as np
import pytest
from tolerance import assert_close

from netgraph import (
    AttentionLayer,
    ElementwiseLayer,
    InputDataError,
    LinearLayer,
    NetArrayGradient,
    NetError,
    NetExtract,
    NetGraph,
    NetInitialize,
    NetPort,
    NetPortGradient,
    NetReplacePart,
    SequenceAttentionLayer,
    ShapeError,
    ThreadingLayer,
)
from netgraph.apply import apply_net
from netgraph.checks import check_padding, gradcheck

K_SIZE, V_SIZE, Q_SIZE = 3, 5, 7
MAX_LEN = 7  # the longest Key of the tests below
# terms summed into one output: a bilinear score, then the softmax and the weighted sum
TERMS = Q_SIZE * K_SIZE + 2 * MAX_LEN


def softmax_rows(S):
    W = np.exp(S - S.max(axis=-1, keepdims=True))
    return W / W.sum(axis=-1, keepdims=True)


def bilinear_weights(net):
    return NetExtract(net, ["ScoringNet", "Linear", "Weights"]).astype(np.float64)


def test_sequence_attention_is_the_key_equals_value_case():
    seq = NetInitialize(SequenceAttentionLayer(Input=("Varying", 4), Query=("Varying", 6)),
                        seed=3)
    att = AttentionLayer(Key=("Varying", 4), Value=("Varying", 4), Query=("Varying", 6))
    att = NetReplacePart(att, {("ScoringNet", "Linear", "Weights"): bilinear_weights(seq)})
    rng = np.random.default_rng(0)
    E = [rng.standard_normal((n, 4)) for n in (5, 1, 7)]
    Q = [rng.standard_normal((m, 6)) for m in (2, 3, 1)]
    a = seq({"Input": E, "Query": Q}, dtype=np.float64)
    b = att({"Key": E, "Value": E, "Query": Q}, dtype=np.float64)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)
    gi = seq({"Input": E, "Query": Q}, [NetPortGradient("Input")], dtype=np.float64)[0]
    gk, gv = att({"Key": E, "Value": E, "Query": Q}, [NetPortGradient("Key"), NetPortGradient("Value")],
                 dtype=np.float64)
    for x, k, v in zip(gi, gk, gv):
        assert_close(x, k + v, dtype=np.float64, reduction=TERMS)


def test_key_value_query_hand_computation_and_gradients():
    net = NetInitialize(AttentionLayer(Key=("Varying", K_SIZE), Value=("Varying", V_SIZE),
                                       Query=("Varying", Q_SIZE)), seed=1)
    W = bilinear_weights(net)
    assert W.shape == (Q_SIZE, K_SIZE)
    rng = np.random.default_rng(2)
    n_lens, m_lens = (4, 1, 6), (3, 5, 2)
    Ks = [rng.standard_normal((n, K_SIZE)) for n in n_lens]
    Vs = [rng.standard_normal((n, V_SIZE)) for n in n_lens]
    Qs = [rng.standard_normal((m, Q_SIZE)) for m in m_lens]
    data = {"Key": Ks, "Value": Vs, "Query": Qs}
    out = net(data, dtype=np.float64)
    for K, V, Q, o in zip(Ks, Vs, Qs, out):
        assert_close(o, softmax_rows(Q @ W @ K.T) @ V, dtype=np.float64, reduction=TERMS)
        assert o.shape == (len(Q), V_SIZE)
    gradcheck(net, data)
    check_padding(net, data)


@pytest.mark.parametrize("window", [None, 2])
def test_causal_mask_and_rescaling_against_hand_computation(window):
    mask = "Causal" if window is None else ("Causal", window)
    net = NetInitialize(AttentionLayer("Dot", mask=mask, score_rescaling="DimensionSqrt",
                                       Key=("Varying", 4), Value=("Varying", 3),
                                       Query=("Varying", 4)), seed=0)
    rng = np.random.default_rng(1)
    lens = (5, 2, 6)
    Ks = [rng.standard_normal((n, 4)) for n in lens]
    Vs = [rng.standard_normal((n, 3)) for n in lens]
    Qs = [rng.standard_normal((n, 4)) for n in lens]
    data = {"Key": Ks, "Value": Vs, "Query": Qs}
    out = net(data, dtype=np.float64)
    weights = net(data, NetPort("AttentionWeights"), dtype=np.float64)
    for K, V, Q, o, w in zip(Ks, Vs, Qs, out, weights):
        n = len(K)
        S = (Q @ K.T) / math.sqrt(4)
        j, i = np.indices((n, n))
        allowed = (i <= j) if window is None else (i <= j) & (i > j - window)
        S = np.where(allowed, S, -np.inf)
        expected_w = softmax_rows(S)
        assert_close(w, expected_w, dtype=np.float64, reduction=TERMS)
        assert_close(o, expected_w @ V, dtype=np.float64, reduction=TERMS)
        assert (w[~allowed] == 0).all()
    gradcheck(net, data)
    check_padding(net, data)


def test_scores_that_overflow_where_the_mask_forbids_do_not_matter():
    """A late key of float32 size ~3e38 makes the earlier queries' scores of it +inf (and
    NaN, +inf + -inf, for one) in float32, where the causal mask forbids it; the last query,
    which may see it, scores it -inf (weight 0). The weights are those of float64."""
    net = NetInitialize(AttentionLayer("Dot", mask="Causal", Key=("Varying", 4),
                                       Value=("Varying", 3), Query=("Varying", 4)), seed=0)
    rng = np.random.default_rng(2)
    lens = (5, 3)
    Ks = [rng.standard_normal((n, 4)) for n in lens]
    Vs = [rng.standard_normal((n, 3)) for n in lens]
    Qs = [rng.standard_normal((n, 4)) for n in lens]
    big = np.float32(3e38)
    Ks[0][-1] = (big, big, 0, 0)
    Qs[0][0, :2], Qs[0][1, :2], Qs[0][-1, :2] = (10, 0), (10, -10), (-10, 0)
    data = {"Key": Ks, "Value": Vs, "Query": Qs}
    ports = [NetPort("Output"), NetPort("AttentionWeights")]
    got = net(data, ports, dtype=np.float32)
    want = net(data, ports, dtype=np.float64)
    assert got[1][0][-1, -1] == 0  # the allowed -inf score
    for k in range(len(lens)):
        n = lens[k]
        allowed = np.tril(np.ones((n, n), bool))
        assert (got[1][k][~allowed] == 0).all()
        assert_close(got[1][k], want[1][k], dtype=np.float32, reduction=TERMS)
        assert_close(got[0][k], want[0][k], dtype=np.float32, reduction=TERMS)


def test_causal_mask_needs_equal_lengths():
    with pytest.raises(ShapeError, match="causal"):
        AttentionLayer("Dot", mask="Causal", Key=(5, 4), Value=(5, 4), Query=(6, 4))
    net = NetInitialize(AttentionLayer("Dot", mask="Causal", Key=("Varying", 2),
                                       Value=("Varying", 2), Query=("Varying", 2)))
    z = np.zeros
    with pytest.raises(InputDataError, match="Query|Key"):
        net({"Key": z((3, 2)), "Value": z((3, 2)), "Query": z((4, 2))})


def test_multi_head_equals_independent_heads():
    h = 2
    net = NetInitialize(AttentionLayer(multi_head=True, score_rescaling="DimensionSqrt",
                                       Key=("Varying", h, K_SIZE), Value=("Varying", h, V_SIZE),
                                       Query=("Varying", h, Q_SIZE)), seed=4)
    W = bilinear_weights(net)
    rng = np.random.default_rng(5)
    n_lens, m_lens = (4, 6), (3, 1)
    Ks = [rng.standard_normal((n, h, K_SIZE)) for n in n_lens]
    Vs = [rng.standard_normal((n, h, V_SIZE)) for n in n_lens]
    Qs = [rng.standard_normal((m, h, Q_SIZE)) for m in m_lens]
    data = {"Key": Ks, "Value": Vs, "Query": Qs}
    out = net(data, dtype=np.float64)
    weights = net(data, NetPort("AttentionWeights"), dtype=np.float64)
    for K, V, Q, o, w in zip(Ks, Vs, Qs, out, weights):
        assert o.shape == (len(Q), h, V_SIZE) and w.shape == (len(Q), h, len(K))
        for head in range(h):
            wh = softmax_rows(Q[:, head] @ W @ K[:, head].T / math.sqrt(K_SIZE))
            assert_close(w[:, head], wh, dtype=np.float64, reduction=TERMS)
            assert_close(o[:, head], wh @ V[:, head], dtype=np.float64, reduction=TERMS)
    gradcheck(net, data)


def test_single_query_vector():
    net = NetInitialize(AttentionLayer(Key=("Varying", 3), Value=("Varying", 5), Query=7),
                        seed=0)
    assert NetExtract(net, "Output") == (5,)
    rng = np.random.default_rng(0)
    K, V, q = rng.standard_normal((4, 3)), rng.standard_normal((4, 5)), rng.standard_normal(7)
    o = net({"Key": K, "Value": V, "Query": q}, dtype=np.float64)
    assert_close(o, softmax_rows(q @ bilinear_weights(net) @ K.T) @ V, dtype=np.float64, reduction=TERMS)


def test_dropout_only_in_training():
    net = NetInitialize(AttentionLayer("Dot", dropout=0.5, Key=("Varying", 3),
                                       Value=("Varying", 4), Query=("Varying", 3)))
    rng = np.random.default_rng(0)
    data = {"Key": rng.standard_normal((30, 3)), "Value": rng.standard_normal((30, 4)),
            "Query": rng.standard_normal((20, 3))}
    plain = net(data, dtype=np.float64)
    again = apply_net(net, data, dtype=np.float64)
    np.testing.assert_array_equal(plain, again)
    w = apply_net(net, data, dtype=np.float64)
    trained = apply_net(net, data, dtype=np.float64, training=True,
                        rng=np.random.default_rng(1))
    assert not np.allclose(trained, w)
    weights = net(data, NetPort("AttentionWeights"), dtype=np.float64)
    # inverted dropout keeps the expectation: averaging many masks approaches the plain result
    runs = [apply_net(net, data, dtype=np.float64, training=True, rng=np.random.default_rng(s))
            for s in range(400)]
    np.testing.assert_allclose(np.mean(runs, axis=0), weights @ data["Value"], atol=0.08)


def test_bad_parameters_name_the_parameter():
    for kwargs, word in [({"mask": "Upper"}, "mask"), ({"mask": ("Causal", 0)}, "mask"),
                         ({"score_rescaling": "LengthSqrt"}, "score_rescaling"),
                         ({"dropout": 1.5}, "dropout"), ({"multi_head": "yes"}, "multi_head")]:
        with pytest.raises(NetError, match=word):
            AttentionLayer(**kwargs)
    with pytest.raises(NetError, match="Input"):
        AttentionLayer(Input=("Varying", 3))
    with pytest.raises(NetError, match="Key"):
        SequenceAttentionLayer(Key=("Varying", 3))


# ------------------------------------------- NaN of a custom scoring net (the Log of a negative)
def log_scored(mask):
    """Attention scored by ``f(k, q) = v log(k_0 + q_0 - 2) + c`` (NaN where ``k_0 + q_0 < 2``),
    and a ragged batch whose Log arguments are >= 1/2 at every pair that counts and negative
    or 0 at some masked pairs (causal: ``k_0 + q_0 - 2 = j - i + 1/2``), padded keys (``q_0 -
    2``) and padded query rows (``k_0 - 2``; padding is 0, so ``pi``, ``pq`` give -1 there).
    Where it is 0, Log's derivative is infinite: ``0 * inf`` is NaN."""
    scorer = NetGraph({"pi": LinearLayer(1), "pq": LinearLayer(1), "plus": ThreadingLayer("Plus"),
                       "log": ElementwiseLayer("Log"), "out": LinearLayer(())},
                      [(NetPort("Input"), "pi"), (NetPort("Query"), "pq"),
                       (["pi", "pq"], "plus", "log", "out")])
    net = NetInitialize(AttentionLayer(scorer, mask=mask, Key=("Varying", K_SIZE),
                                       Value=("Varying", V_SIZE), Query=("Varying", Q_SIZE)),
                        seed=0)
    net = NetReplacePart(net, {("ScoringNet", "pi", "Weights"): np.eye(1, K_SIZE),
                               ("ScoringNet", "pi", "Biases"): [-1.0],
                               ("ScoringNet", "pq", "Weights"): np.eye(1, Q_SIZE),
                               ("ScoringNet", "pq", "Biases"): [-1.0]})
    rng = np.random.default_rng(4)
    n_lens = (4, 1, 6)
    m_lens = n_lens if mask else (3, 5, 2)
    Ks = [rng.standard_normal((n, K_SIZE)) for n in n_lens]
    Vs = [rng.standard_normal((n, V_SIZE)) for n in n_lens]
    Qs = [rng.standard_normal((m, Q_SIZE)) for m in m_lens]
    for K, Q in zip(Ks, Qs):
        i, j = np.arange(len(K)), np.arange(len(Q))
        K[:, 0], Q[:, 0] = (2 - i, 0.5 + j) if mask else (1.5 + i, 1.5 + j / 2)
    return net, {"Key": Ks, "Value": Vs, "Query": Qs}


def batch_and_examples(net, data):
    """The outputs and gradients of the batch, and of each example alone (float64)."""
    keys = ["Output", NetPort("AttentionWeights")]
    keys += [NetPortGradient(p) for p in ("Key", "Value", "Query")]
    keys += [NetArrayGradient(["ScoringNet", n, a]) for n in ("pi", "pq", "out")
             for a in ("Weights", "Biases")]
    batch = net(data, keys, dtype=np.float64)
    alone = [net({p: v[b] for p, v in data.items()}, keys, dtype=np.float64)
             for b in range(len(data["Key"]))]
    def close(got, want, what):  # terms of size 1 at least (data, weights): sums may cancel
        scale = max(1.0, float(np.nanmax(np.abs(want), initial=0.0)))
        assert_close(got, want, dtype=np.float64, reduction=TERMS, scale=scale, equal_nan=True,
                     what=what)

    for key, got, *want in zip(keys, batch, *alone):
        if isinstance(key, NetArrayGradient):  # the sum over the examples
            close(got, sum(want), str(key))
        else:
            for b, w in enumerate(want):
                close(got[b], w, f"{key}, example {b}")
    return keys, batch, alone


@pytest.mark.parametrize("mask", [None, "Causal"])
def test_scoring_net_nan_at_pairs_that_do_not_count_influences_nothing(mask):
    """A masked pair, a padded key or a padded query row never counts: the NaN the scoring
    net computes there reaches no value and no gradient (on all pairs, its backward gave
    ``0 * NaN = NaN`` in the array gradients, and in the batch in the key and query
    gradients), in the batch as in each example alone."""
    import warnings

    net, data = log_scored(mask)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        keys, _, alone = batch_and_examples(net, data)
        for b, values in enumerate(alone):
            for key, v in zip(keys, values):
                assert np.isfinite(v).all(), (key, b)
        gradcheck(net, data)
        check_padding(net, data)


def test_scoring_net_nan_at_a_pair_that_counts_reaches_its_example_only():
    """A NaN at a pair that counts passes through, as in any layer: to its query's output and
    weights, to the gradients of its example, to the array gradients (summed over examples);
    the other examples keep exactly what they give alone."""
    import warnings

    net, data = log_scored("Causal")
    data["Query"][2][3, 0] = 0.2  # example 2, query 3: Log of 0.2 - i < 0 at keys i = 1, 2, 3
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        keys, batch, alone = batch_and_examples(net, data)
    out, weights = batch[0][2], batch[1][2]
    assert np.isnan(out[3]).all() and np.isnan(weights[3]).all()
    assert np.isfinite(np.delete(out, 3, axis=0)).all()
    assert np.isfinite(np.delete(weights, 3, axis=0)).all()
    for key, got in zip(keys, batch):
        if isinstance(key, NetArrayGradient):
            assert np.isnan(got).all(), key
        else:
            assert np.isfinite(got[0]).all() and np.isfinite(got[1]).all(), key
