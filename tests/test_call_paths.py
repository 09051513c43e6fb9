"""The short ways of applying a net (issue 10, per-call overhead) against the general path.

* ``apply._plain_call``: ndarray data that ``batch._plain`` accepts runs the plan without the
  general packing. The same call with the port keyed by ``NetPort(port)`` takes the general
  path; both must give the same numbers bit for bit, and every bad input the short way
  declines must raise the general path's error, word for word.
* ``batch._plain`` inside ``to_batch``: the same arrays and lengths as splitting and padding.
* The recurrent layers' stacked gate weights, derived once for a net's immutable arrays and
  never for arrays that can change (training, gradcheck's perturbations).
* ``RunContext.valid_ones`` (the default gradient seeds), request caching, the dtype check.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from helpers import randomized

import netgraph.apply as apply_module
from netgraph import (
    EmbeddingLayer,
    GatedRecurrentLayer,
    Index,
    InputDataError,
    LinearLayer,
    LongShortTermMemoryLayer,
    NetChain,
    NetDecoder,
    NetError,
    NetExtract,
    NetGraph,
    NetMapOperator,
    NetPort,
    NetPortGradient,
    NetReplacePart,
    PortError,
    SequenceAttentionLayer,
    SoftmaxLayer,
    ThreadingLayer,
)
from netgraph.apply import _check_dtype, collect_arrays
from netgraph.batch import _general, _plain, to_batch
from netgraph.compile import PortMeta, compile_net
from netgraph.execute import RunContext, forward

K, N, C, T1, T2 = 3, 5, 7, 4, 6  # pairwise distinct: inputs, hidden, classes, lengths


def chain():
    return randomized(NetChain([LinearLayer(N), "Tanh", LinearLayer(C), SoftmaxLayer()],
                               Input=K), seed=1)


def gru():
    return randomized(GatedRecurrentLayer(N, Input=("Varying", K)), seed=2)


def decoder():
    """Token, State and fixed encoder states -> probabilities and the new State (two inputs
    sharing no length, one Index port)."""
    net = NetGraph(
        {"embed": EmbeddingLayer(K, C), "gru": GatedRecurrentLayer(N),
         "attend": SequenceAttentionLayer("Bilinear"),
         "readout": NetMapOperator(LinearLayer(C)), "softmax": SoftmaxLayer()},
        [(NetPort("Input"), "embed", "gru"), (NetPort("State"), NetPort("gru", "State")),
         (NetPort("gru", "State"), NetPort("State")),
         (NetPort("Encoded"), NetPort("attend", "Input")),
         (NetPort("gru", "Output"), NetPort("attend", "Query")),
         ("attend", "readout", "softmax", NetPort("Output"))],
        Input=("Varying", Index(C)), Encoded=(T2, 2))
    return randomized(net, seed=3)


def tied():
    """Two varying inputs whose lengths are tied (a sum of two sequences)."""
    return randomized(NetGraph({"plus": ThreadingLayer("Plus"), "map": NetMapOperator(
        LinearLayer(2))}, [([NetPort("A"), NetPort("B")], "plus", "map")],
        A=("Varying", K), B=("Varying", K)), seed=4)


def general_form(data):
    """The same data keyed by NetPort, which the short way leaves to the general path."""
    if not isinstance(data, dict):
        data = {"Input": data}
    return {NetPort(k): v for k, v in data.items()}


@pytest.fixture
def general_runs(monkeypatch):
    """Counts the runs of the general path (``apply._run``)."""
    calls = []
    real = apply_module._run

    def counted(*args):
        calls.append(1)
        return real(*args)

    monkeypatch.setattr(apply_module, "_run", counted)
    return calls


def assert_same(a, b):
    """Identical results: same structure, dtypes, shapes and bits."""
    if isinstance(a, dict):
        assert a.keys() == b.keys()
        for k in a:
            assert_same(a[k], b[k])
    elif isinstance(a, list):
        assert isinstance(b, list) and len(a) == len(b)
        for x, y in zip(a, b):
            assert_same(x, y)
    else:
        a, b = np.asarray(a), np.asarray(b)
        assert a.dtype == b.dtype and a.shape == b.shape
        assert a.tobytes() == b.tobytes()


def cases():
    rng = np.random.default_rng(0)
    enc = rng.standard_normal((T2, 2)).astype(np.float32)
    return {
        "chain one": (chain, rng.standard_normal(K).astype(np.float32)),
        "chain batch float64": (chain, rng.standard_normal((2, K))),
        "chain ints": (chain, np.array([3, -1, 2], np.int32)),
        "gru one": (gru, rng.standard_normal((T1, K)).astype(np.float32)),
        "gru batch": (gru, rng.standard_normal((2, T2, K)).astype(np.float32)),
        "decoder one": (decoder, {"Input": np.array([4]), "State": rng.standard_normal(N),
                                  "Encoded": enc}),
        "decoder batch": (decoder, {"Input": np.array([[4, 0, 6], [1, 2, 3]]),
                                    "State": rng.standard_normal((2, N)).astype(np.float32),
                                    "Encoded": np.stack([enc, 2 * enc])}),
        "tied": (tied, {"A": rng.standard_normal((T1, K)), "B": rng.standard_normal((T1, K))}),
    }


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", list(cases()))
def test_short_way_equals_general_path_bit_for_bit(name, dtype, general_runs):
    make, data = cases()[name]
    net = make()
    short = net(data, dtype=dtype)
    assert general_runs == []  # it did take the short way
    general = net(general_form(data), dtype=dtype)
    assert general_runs == [1]
    assert_same(short, general)
    again = net(data, dtype=dtype)  # cached facts of the net change nothing
    assert_same(again, short)


def test_short_way_values_match_a_hand_computation():
    net = chain()
    x = np.array([0.5, -1.0, 2.0])
    arrays = {p[-2:]: np.float64(a) for p, a in collect_arrays(net, np.float32).items()}
    h = np.tanh(arrays[(0, "Weights")] @ x + arrays[(0, "Biases")])
    z = arrays[(2, "Weights")] @ h + arrays[(2, "Biases")]
    want = np.exp(z - z.max()) / np.exp(z - z.max()).sum()
    np.testing.assert_allclose(net(x, dtype=np.float64), want, rtol=1e-12)
    got32 = net(x.astype(np.float32))
    assert got32.dtype == np.float32
    np.testing.assert_allclose(got32, want, rtol=1e-5, atol=1e-7)


def test_short_way_takes_requests_and_decoders(general_runs):
    labels = ["a", "b", "c", "d", "e", "f", "g"]
    net = randomized(NetChain([LinearLayer(C), SoftmaxLayer()], Input=K,
                              Output=NetDecoder("Class", labels)), seed=5)
    x = np.array([1.0, -2.0, 0.5], np.float32)
    probs = net(x, ("Output", "Probabilities"))
    decided = net(x)
    raw = net(x, ("Output", None))
    assert general_runs == []
    assert decided == labels[int(np.argmax(raw))]
    assert list(probs) == labels and np.isclose(probs[decided], raw.max())
    assert_same(net(general_form(x), ("Output", None)), raw)
    # a list request with the same items as the tuple above is another request
    with pytest.raises(PortError, match="Probabilities"):
        net(x, ["Output", "Probabilities"])


def test_short_way_returns_no_view_of_the_callers_data():
    net = NetChain([SoftmaxLayer()], Input=K)
    x = np.array([1.0, 2.0, 3.0], np.float32)
    inside = net(x, NetPort("Input"))
    assert not np.shares_memory(inside, x)
    inside[0] = 99
    assert x[0] == 1.0


def test_gradients_take_the_general_path(general_runs):
    net = chain()
    x = np.array([0.5, -1.0, 2.0], np.float32)
    g = net(x, NetPortGradient("Input"))
    assert general_runs == [1] and g.shape == (K,)


BAD = {
    "nan": (chain, np.array([1.0, np.nan, 0.0], np.float32), "contains NaN or Inf"),
    "inf in a batch": (chain, np.array([[1.0, 0, 0], [0, -np.inf, 0]]), "NaN or Inf"),
    "beyond float32": (chain, np.array([1.0, 1e39, 0.0]), "beyond the range of float32"),
    "wrong size": (chain, np.zeros(K + 1, np.float32), "shape"),
    "rank 3": (chain, np.zeros((2, 2, K), np.float32), "rank"),
    "empty sequence": (gru, np.zeros((0, K), np.float32), "empty"),
    "empty batch": (chain, np.zeros((0, K), np.float32), "empty"),
    "index too big": (decoder, {"Input": np.array([C]), "State": np.zeros(N),
                                "Encoded": np.zeros((T2, 2))}, "outside the range"),
    "negative index": (decoder, {"Input": np.array([-1]), "State": np.zeros(N),
                                 "Encoded": np.zeros((T2, 2))}, "outside the range"),
    "float index": (decoder, {"Input": np.array([1.5]), "State": np.zeros(N),
                              "Encoded": np.zeros((T2, 2))}, "integers"),
    "one-hot index": (decoder, {"Input": np.eye(C)[[2]], "State": np.zeros(N),
                                "Encoded": np.zeros((T2, 2))}, "one-hot"),
    "example and batch": (decoder, {"Input": np.array([1]), "State": np.zeros((2, N)),
                                    "Encoded": np.zeros((T2, 2))}, "some ports"),
    "batch sizes": (decoder, {"Input": np.array([[1], [2]]), "State": np.zeros((2, N)),
                              "Encoded": np.zeros((3, T2, 2))}, "same length"),
    "tied lengths": (tied, {"A": np.zeros((T1, K)), "B": np.zeros((T2, K))}, "inconsistent"),
    "missing port": (decoder, {"Input": np.array([1]), "State": np.zeros(N)}, "Encoded"),
}


@pytest.mark.parametrize("name", list(BAD))
def test_bad_data_raises_the_general_paths_error(name):
    make, data, words = BAD[name]
    net = make()
    with pytest.raises(NetError) as short:
        net(data)
    with pytest.raises(NetError) as general:
        net(general_form(data))
    assert type(short.value) is type(general.value)
    assert str(short.value) == str(general.value)
    if words is not None:
        assert isinstance(short.value, InputDataError) and words in str(short.value)


def test_bool_data_is_read_as_numbers_by_the_general_path():
    net = chain()
    got = net(np.array([True, False, True]), dtype=np.float64)
    assert_same(got, net(np.array([1.0, 0.0, 1.0]), dtype=np.float64))


@pytest.mark.parametrize("name", ["gru batch", "decoder batch", "tied", "chain batch float64"])
def test_plain_packing_equals_splitting_and_padding(name):
    make, data = cases()[name]
    net = make()
    plan = compile_net(net)
    if not isinstance(data, dict):
        data = {"Input": data}
    for dtype in (np.float32, np.float64):
        for port, meta in plan.inputs.items():
            array, lengths, is_batch = _plain(data[port], meta, np.dtype(dtype))
            g_array, g_lengths, g_batch, size = _general(data[port], meta, port,
                                                         np.dtype(dtype), 0.0)
            assert_same(array, g_array)
            assert is_batch == g_batch and len(array) == size
            assert lengths.keys() == g_lengths.keys()
            for axis in lengths:
                assert_same(lengths[axis], g_lengths[axis])
        batch = to_batch(data, plan.inputs, np.dtype(dtype))
        assert batch.size == 2 or name == "tied"


def test_plain_declines_what_it_cannot_vouch_for():
    plan = compile_net(decoder())
    meta = plan.inputs["Input"]
    assert _plain(np.array([2, C - 1]), meta, np.float32) is not None
    for x in (np.array([C]), np.array([1.0]), [1], np.array([], np.int64),
              np.array([2 ** 63], np.uint64), np.zeros((1, 1, 1), np.int64)):
        assert _plain(x, meta, np.float32) is None
    real = compile_net(chain()).inputs["Input"]
    big = np.float32(np.finfo(np.float32).max)
    assert _plain(np.array([big, -big, 0], np.float32), real, np.float32) is not None
    assert _plain(np.array([3.5e38, 0, 0]), real, np.float32) is None  # would overflow
    assert _plain(np.array([3.5e38, 0, 0]), real, np.float64) is not None


# --------------------------------------------------------------- recurrent gate weights
def _lstm():
    return randomized(LongShortTermMemoryLayer(N, Input=("Varying", K)), seed=6)


@pytest.mark.parametrize("make", [gru, _lstm])
def test_stacked_gate_weights_are_reused_only_for_immutable_arrays(make):
    net = make()
    x = np.random.default_rng(1).standard_normal((T2, K)).astype(np.float32)
    first = net(x)
    layer = net
    assert layer.cached("stacked_gates", dict)  # kept for the net's own (read-only) arrays
    assert_same(net(x), first)
    # arrays that may change (as NetTrain's and gradcheck's do) are stacked on every run
    plan = compile_net(net)
    arrays = {k: a.copy() for k, a in collect_arrays(net, np.float32).items()}
    batch = to_batch({"Input": x}, plan.inputs, np.float32)

    def run():
        ctx = RunContext(arrays=arrays, dtype=np.dtype(np.float32), lengths=dict(batch.lengths),
                         inputs_zero_padded=True)
        return forward(plan, batch.arrays, ctx).values[plan.outputs["Output"].slot][0]

    assert_same(run(), first)
    key = next(k for k in arrays if k[-1].endswith("StateWeights"))
    arrays[key] *= 0.5  # in place, as an optimizer step does
    changed = run()
    want = NetReplacePart(net, {key: arrays[key]})(x)
    assert_same(changed, want)
    assert not np.array_equal(changed, first)


def test_stacked_gate_weights_follow_replaced_arrays():
    net = gru()
    x = np.random.default_rng(2).standard_normal((T1, K)).astype(np.float32)
    before = net(x)
    new = NetReplacePart(net, {"MemoryGateBiases": NetExtract(net, "MemoryGateBiases") + 1})
    after = new(x)
    assert not np.array_equal(before, after)
    assert_same(net(x), before)


# ---------------------------------------------------------------------- small pieces
def test_default_seeds_are_ones_exactly_at_valid_positions():
    lengths = np.array([2, 4, 3])
    run = RunContext(arrays={}, lengths={("len", 0): lengths, ("len", 1): np.array([1, 3, 2])})
    meta = PortMeta(0, (None, None, 2), None, (("len", 0), ("len", 1), None))
    ones = run.valid_ones((3, 4, 3, 2), meta, np.float32)
    want = np.zeros((3, 4, 3, 2), np.float32)
    for b, (n, m) in enumerate(zip(lengths, [1, 3, 2])):
        want[b, :n, :m] = 1
    assert_same(ones, want)
    fixed = PortMeta(1, (2,), None, (None,))
    assert_same(run.valid_ones((3, 2), fixed, np.float64), np.ones((3, 2)))


def test_dtype_check():
    for d in (np.float32, "float32", np.dtype(np.float32), None):
        assert _check_dtype(d) == np.dtype(np.float32)
    for d in (np.float64, float, "float64", np.dtype(np.float64)):
        assert _check_dtype(d) == np.dtype(np.float64)
    for d in (np.float16, np.int64, "int32", object()):
        with pytest.raises(NetError, match="dtype must be float32 or float64"):
            _check_dtype(d)


@pytest.mark.parametrize("x", [np.array([np.inf, -np.inf, 1.0], np.float32),
                               np.array([1e300, -1e300, 0.0]), np.array([np.nan, 0, 1.0]),
                               np.array([3e38, -3e38, 0.0])])
def test_the_value_checks_warn_of_nothing(x):
    """Checking values never trips NumPy's floating-point warnings (inf - inf, overflowing
    sums or casts): the data is refused with an InputDataError, or computed."""
    net = NetChain([LinearLayer(C, Weights=np.full((C, K), 1e-30), Biases=np.zeros(C))],
                   Input=K)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        try:
            out = net(x)
        except InputDataError as e:
            assert "NaN or Inf" in str(e) or "beyond the range of float32" in str(e)
        else:
            assert np.isfinite(x).all() and out.shape == (C,)


@pytest.mark.parametrize("under", ["ignore", "raise", "warn"])
def test_underflow_is_ignored_whatever_the_callers_setting(under):
    """exp(-200) underflows in float32; the net ignores it (on the short way as on the general
    one) and leaves the caller's settings as they were."""
    net = NetChain([SoftmaxLayer()], Input=K)
    x = np.array([0.0, -200.0, -300.0], np.float32)
    with np.errstate(under=under, over="raise", invalid="raise"):
        before = np.geterr()
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            short, general = net(x), net(general_form(x))
        assert np.geterr() == before
    assert_same(short, general)
    assert short[0] == 1 and short[1] == 0 and short[2] == 0
