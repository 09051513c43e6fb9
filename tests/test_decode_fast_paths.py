"""Fast paths of the decoder step (issue 10): each gives its general path's results bit for
bit, keeps padding exact, and raises the same errors.

* ``NetMapOperator(LinearLayer(n))`` runs the Linear's one step directly on the flattened
  positions; the general path is the same map of ``NetChain([LinearLayer(n)])`` (a sub-plan
  run), with the same arrays.
* attention with one small slice runs it directly (``DIRECT_MNK``) instead of on the thread
  pool; the general path is the same call with ``DIRECT_MNK = 0``.
* ``generate`` keeps the fixed inputs' rows while the hypotheses' rows do not change, and
  takes the first maximum for ``k = 1`` (``_best``) instead of sorting.
* Tanh's backward runs block by block (``_tanh_backward``) above a few blocks.
"""

import importlib

import numpy as np
import pytest

from netgraph import (
    EmbeddingLayer,
    GatedRecurrentLayer,
    Index,
    InputDataError,
    LinearLayer,
    NetArrayGradient,
    NetChain,
    NetExtract,
    NetGraph,
    NetInitialize,
    NetMapOperator,
    NetPort,
    NetPortGradient,
    SequenceAttentionLayer,
    SoftmaxLayer,
    check_padding,
    generate,
)

attention = importlib.import_module("netgraph.layers.attention")
elementwise = importlib.import_module("netgraph.layers.elementwise")
generation = importlib.import_module("netgraph.generate")

D, N = 3, 5  # input size, output size of the mapped Linear


def _ragged(rng, lengths, d, dtype=np.float32):
    return [rng.standard_normal((k, d)).astype(dtype) for k in lengths]


def _mapped_pair():
    fast = NetInitialize(NetMapOperator(LinearLayer(N), Input=("Varying", D)), seed=1)
    W, b = NetExtract(fast, ["Net", "Weights"]), NetExtract(fast, ["Net", "Biases"])
    general = NetMapOperator(NetChain([LinearLayer(N, Weights=W, Biases=b)]),
                             Input=("Varying", D))
    return fast, general


def _assert_identical(a, b):
    """Equal nested lists/dicts of arrays: same dtypes, same bits."""
    if isinstance(a, dict):
        assert list(a) == list(b)
        a, b = list(a.values()), list(b.values())
    if isinstance(a, list):
        assert len(a) == len(b)
        for x, y in zip(a, b, strict=True):
            _assert_identical(x, y)
        return
    assert a.dtype == b.dtype and a.shape == b.shape and np.array_equal(a, b, equal_nan=True)


def _all_of(net, data, dtype, array_paths):
    wants = [NetPort("Output"), NetPortGradient("Input")]
    wants += [NetArrayGradient(p) for p in array_paths]
    return net(data, wants, dtype=dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("lengths", [[3, 5, 7], [7, 7, 7], [1]])
def test_mapped_linear_matches_the_sub_plan_bit_for_bit(lengths, dtype):
    fast, general = _mapped_pair()
    data = {"Input": _ragged(np.random.default_rng(0), lengths, D)}
    a = _all_of(fast, data, dtype, [["Net", "Weights"], ["Net", "Biases"]])
    b = _all_of(general, data, dtype, [["Net", 0, "Weights"], ["Net", 0, "Biases"]])
    _assert_identical(a, b)
    # and against a float64 hand computation
    W, bias = (NetExtract(fast, ["Net", k]).astype(np.float64) for k in ("Weights", "Biases"))
    for x, y in zip(data["Input"], a[0], strict=True):
        np.testing.assert_allclose(y, x.astype(np.float64) @ W.T + bias,
                                   rtol=1e-5 if dtype == np.float32 else 1e-12, atol=1e-6)


def test_mapped_linear_padding_invariant():
    fast, _ = _mapped_pair()
    check_padding(fast, {"Input": _ragged(np.random.default_rng(2), [3, 5, 7], D)})


def test_mapped_linear_on_integers_takes_the_general_path():
    # an Index input is not of the run's dtype: the sub-plan runs (and casts) as before
    net = NetInitialize(NetChain([EmbeddingLayer(D, 7), NetMapOperator(LinearLayer(N))],
                                 Input=("Varying", Index(7))), seed=0)
    out = net([np.array([1, 6, 2]), np.array([0, 3, 4, 5, 6])])
    assert [o.shape for o in out] == [(3, N), (5, N)] and out[0].dtype == np.float32


def test_mapped_linear_errors_unchanged():
    fast, general = _mapped_pair()
    bad = {"Input": [np.ones((3, D + 1), np.float32)]}
    errors = []
    for net in (fast, general):
        with pytest.raises(InputDataError) as info:
            net(bad)
        errors.append(str(info.value))
    assert errors[0] == errors[1]


def _attention_net(kind):
    net = SequenceAttentionLayer(kind, Input=("Varying", 5), Query=("Varying", 7))
    return NetInitialize(net, seed=3)


def _attention_data(rng, n_lengths, m_lengths):
    return {"Input": _ragged(rng, n_lengths, 5), "Query": _ragged(rng, m_lengths, 7)}


@pytest.mark.parametrize("m_lengths", [[1, 1, 1], [3, 5, 7]])
def test_direct_attention_slice_matches_the_thread_pool_bit_for_bit(monkeypatch, m_lengths):
    net = _attention_net("Bilinear")
    data = _attention_data(np.random.default_rng(4), [7, 3, 5], m_lengths)
    wants = [NetPort("Output"), NetPortGradient("Input"), NetPortGradient("Query"),
             NetArrayGradient(["ScoringNet", "Linear", "Weights"])]
    direct = net(data, wants)
    monkeypatch.setattr(attention, "DIRECT_MNK", 0)
    pooled = net(data, wants)
    _assert_identical(direct, pooled)


def test_direct_attention_padding_invariant():
    net = _attention_net("Bilinear")
    check_padding(net, _attention_data(np.random.default_rng(5), [3, 5, 7], [1, 1, 1]))


def test_direct_attention_errors_unchanged(monkeypatch):
    net = _attention_net("Bilinear")
    data = _attention_data(np.random.default_rng(6), [3, 5, 7], [1, 1, 1])
    data["Query"][1][0, 0] = 1e38  # a score beyond float32's range
    data["Input"][1][:] = 1e38
    messages = []
    for limit in (attention.DIRECT_MNK, 0):
        monkeypatch.setattr(attention, "DIRECT_MNK", limit)
        with pytest.raises(Exception) as info:
            net(data)
        messages.append((type(info.value), str(info.value)))
    assert messages[0] == messages[1]


# ------------------------------------------------------------------------------ generate
VOCAB = 7


def _decoder(seed=0):
    net = NetGraph(
        {"embed": EmbeddingLayer(3, VOCAB), "gru": GatedRecurrentLayer(5),
         "attend": SequenceAttentionLayer("Bilinear"),
         "readout": NetMapOperator(LinearLayer(VOCAB)), "softmax": SoftmaxLayer()},
        [(NetPort("Input"), "embed", "gru"), (NetPort("State"), NetPort("gru", "State")),
         (NetPort("gru", "State"), NetPort("State")),
         (NetPort("Encoded"), NetPort("attend", "Input")),
         (NetPort("gru", "Output"), NetPort("attend", "Query")),
         ("attend", "readout", "softmax", NetPort("Output"))],
        Input=("Varying", Index(VOCAB)), Encoded=("Varying", 3))
    return NetInitialize(net, seed=seed)


def _greedy_by_calls(net, state, encoded, start, stop, max_length):
    """Greedy decoding by plain net calls, one step at a time."""
    tokens, score, token = [], 0.0, start
    for _ in range(max_length):
        out = net({"Input": np.array([token]), "State": state, "Encoded": encoded})
        p = out["Output"][-1].astype(np.float64)
        token, state = int(np.argmax(p)), out["State"]
        score += float(np.log(p[token]))
        if token == stop:
            break
        tokens.append(token)
    return tokens, score


def test_greedy_batch_of_ragged_encodings_matches_net_calls():
    net = _decoder()
    rng = np.random.default_rng(7)
    encoded = _ragged(rng, [3, 5, 7], 3)
    states = [(0.5 * rng.standard_normal(5)).astype(np.float32) for _ in range(3)]
    got = generate(net, {"State": states, "Encoded": encoded}, start=0, stop=1,
                   max_length=7, prop="All")
    for (seq, score), s, e in zip((g[0] for g in got), states, encoded, strict=True):
        want_seq, want_score = _greedy_by_calls(net, s, e, 0, 1, 7)
        assert seq == want_seq
        assert abs(score - want_score) < 1e-4 * max(1.0, abs(want_score))


def test_beam_with_rows_changing_matches_each_example_alone():
    net = _decoder(1)
    rng = np.random.default_rng(8)
    encoded = _ragged(rng, [3, 5, 7], 3)
    states = [(0.5 * rng.standard_normal(5)).astype(np.float32) for _ in range(3)]
    batch = generate(net, {"State": states, "Encoded": encoded}, start=0, stop=1,
                     max_length=5, beam_size=3, prop="All")
    for b, s, e in zip(batch, states, encoded, strict=True):
        alone = generate(net, {"State": s, "Encoded": e}, start=0, stop=1, max_length=5,
                         beam_size=3, prop="All")
        assert [seq for seq, _ in b] == [seq for seq, _ in alone]
        np.testing.assert_allclose([sc for _, sc in b], [sc for _, sc in alone], rtol=1e-5)


@pytest.mark.parametrize("flat", [
    np.array([0.5, 2.0, 2.0, -np.inf]), np.array([-np.inf] * 3),
    np.array([1.0, np.nan, 3.0, 3.0, 0.0]), np.array([np.nan, np.nan]),
    np.random.default_rng(9).standard_normal(35)])
def test_best_of_one_is_the_first_of_a_stable_sort(flat):
    want = np.argsort(-flat, kind="stable")[:1].tolist()
    assert generation._best(flat, 1) == want
    assert generation._best(flat, 3) == np.argsort(-flat, kind="stable")[:3].tolist()


# --------------------------------------------------------------------------------- Tanh
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_blocked_tanh_backward_is_the_unblocked_one_bit_for_bit(dtype):
    rng = np.random.default_rng(10)
    shape = (3, 5, 7 * elementwise.BLOCK_ELEMENTS // 5 + 3)  # not a whole number of blocks
    y = np.tanh(rng.standard_normal(shape)).astype(dtype)
    g = rng.standard_normal(shape).astype(dtype)
    want = elementwise._one_minus_square(y)
    want *= g
    got = elementwise._tanh_backward(y, g)
    assert got is not None and got.dtype == dtype and np.array_equal(got, want)
    # a non-contiguous, broadcast or small gradient: the caller's unblocked path
    assert elementwise._tanh_backward(y, np.asfortranarray(g)) is None
    assert elementwise._tanh_backward(y[:, :, :1], g[:, :, :1]) is None


def test_tanh_layer_backward_on_large_values_against_float64():
    rng = np.random.default_rng(11)
    net = NetInitialize(NetChain(["Tanh"], Input=(3, 5, elementwise.BLOCK_ELEMENTS)))
    x = rng.standard_normal((3, 5, elementwise.BLOCK_ELEMENTS)).astype(np.float32)
    got = net(x, NetPortGradient("Input"))
    want = 1 - np.tanh(x.astype(np.float64)) ** 2
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_tanh_padding_invariant_on_large_sequences():
    net = NetChain(["Tanh"], Input=("Varying", 3 * elementwise.BLOCK_ELEMENTS // 7))
    rng = np.random.default_rng(12)
    check_padding(net, _ragged(rng, [3, 5, 7], 3 * elementwise.BLOCK_ELEMENTS // 7))
