"""NetFoldOperator: hand-computed folds (cumulative sums), equivalence with
BasicRecurrentLayer, State ports through a NetGraph, central differences, padding."""

import numpy as np
import pytest
from _fd import fd_check
from tolerance import assert_close

from netgraph import (
    BasicRecurrentLayer,
    ElementwiseLayer,
    EmbeddingLayer,
    Index,
    LinearLayer,
    NetError,
    NetExtract,
    NetFoldOperator,
    NetGraph,
    NetInitialize,
    NetPort,
    NetPortGradient,
    NetReplacePart,
    ShapeError,
    ThreadingLayer,
    TotalLayer,
)
from netgraph.apply import apply_net

K, N, LENS = 3, 5, [4, 1, 6]
# roundings behind one value of a tanh cell folded along the longest sequence
TERMS = max(LENS) * (K + N + 1)


def plus_net():
    """Inner net ``Output = Input + State``: the fold is a cumulative sum."""
    return NetGraph({"plus": ThreadingLayer("Plus")},
                    [(NetPort("Input"), NetPort("plus", "Input1")),
                     (NetPort("State"), NetPort("plus", "Input2"))])


def tanh_cell(n=N):
    """Inner net ``Output = tanh(W x + b + U s)``: a basic recurrent cell."""
    return NetGraph({"lx": LinearLayer(n), "ls": LinearLayer(n, biases=False),
                     "add": TotalLayer(), "tanh": ElementwiseLayer("Tanh")},
                    [(NetPort("Input"), "lx"), (NetPort("State"), "ls"),
                     (["lx", "ls"], "add", "tanh")])


def fold_graph(inner, init=True, final=True, **shapes):
    conns = []
    if init:
        conns.append((NetPort("Init"), NetPort("fold", "State")))
    if final:
        conns.append((NetPort("fold", "State"), NetPort("Final")))
    return NetGraph({"fold": NetFoldOperator(inner)}, conns, **shapes)


def seqs(seed=0, k=K, lens=LENS):
    rng = np.random.default_rng(seed)
    return [rng.standard_normal((t, k)) for t in lens]


def test_cumulative_sum_by_hand():
    fold = NetFoldOperator(plus_net(), Input=("Varying", K))
    assert fold.input_ports == ("Input",) and fold.output_ports == ("Output",)
    assert fold.port_shape("Output") == ("Varying", K)
    x = seqs()
    out = fold(x, dtype=np.float64)
    for a, b in zip(out, x, strict=True):
        assert_close(a, np.cumsum(b, axis=0), dtype=np.float64, reduction=len(b))
    one = fold(np.array([[1.0, 2, 3], [4, 5, 6]]), dtype=np.float64)
    np.testing.assert_array_equal(one, [[1, 2, 3], [5, 7, 9]])


def test_state_ports_through_a_graph():
    net = fold_graph(plus_net(), Input=("Varying", K))
    assert net.input_ports == ("Input", "Init")
    assert net.output_ports == ("Output", "Final")
    assert net.port_shape("Init") == (K,) and net.port_shape("Final") == (K,)
    x = seqs()
    init = np.arange(3 * K, dtype=float).reshape(3, K)
    r = net({"Input": x, "Init": init}, dtype=np.float64)
    for b in range(3):
        assert_close(r["Output"][b], init[b] + np.cumsum(x[b], 0), dtype=np.float64,
                     reduction=LENS[b] + 1)
        assert_close(r["Final"][b], init[b] + x[b].sum(0), dtype=np.float64,
                     reduction=LENS[b] + 1)
    # d(sum of all outputs)/d(Init) = (true length + 1) per example
    g = net({"Input": x, "Init": init}, NetPortGradient("Init"), dtype=np.float64)
    assert_close(g, np.repeat(np.array(LENS)[:, None] + 1.0, K, axis=1), dtype=np.float64,
                 reduction=max(LENS) + 1)
    only_final = fold_graph(plus_net(), init=False, Input=("Varying", K))
    assert_close(only_final({"Input": x}, "Final", dtype=np.float64), [a.sum(0) for a in x],
                 dtype=np.float64, reduction=max(LENS), scale=max(np.abs(a).max() for a in x))


def test_equals_basic_recurrent_layer():
    fold = NetInitialize(fold_graph(tanh_cell(), Input=("Varying", K)), seed=4)
    rng = np.random.default_rng(1)
    fold = NetReplacePart(fold, {("fold", "Net", "lx", "Biases"): rng.uniform(-1, 1, N)})
    inner = NetExtract(fold, ["fold", "Net"])
    rnn = NetGraph({"rnn": BasicRecurrentLayer(N)},
                   [(NetPort("Init"), NetPort("rnn", "State")),
                    (NetPort("rnn", "State"), NetPort("Final"))], Input=("Varying", K))
    rnn = NetReplacePart(rnn, {
        ("rnn", "InputWeights"): NetExtract(inner, ["lx", "Weights"]),
        ("rnn", "Biases"): NetExtract(inner, ["lx", "Biases"]),
        ("rnn", "StateWeights"): NetExtract(inner, ["ls", "Weights"])})
    data = {"Input": seqs(), "Init": rng.standard_normal((3, N))}
    wants = ["Output", "Final", NetPortGradient("Input"), NetPortGradient("Init")]
    a = fold(data, wants, dtype=np.float64)
    b = rnn(data, wants, dtype=np.float64)
    for u, v in zip(a, b, strict=True):
        for p, q in zip(u if isinstance(u, list) else [u], v if isinstance(v, list) else [v],
                        strict=True):
            assert_close(p, q, dtype=np.float64, reduction=TERMS)


@pytest.mark.parametrize("init, final", [(True, True), (False, True), (True, False),
                                         (False, False)])
def test_central_differences(init, final):
    net = NetInitialize(fold_graph(tanh_cell(), init, final, Input=("Varying", K)), seed=2)
    rng = np.random.default_rng(3)
    net = NetReplacePart(net, {("fold", "Net", "lx", "Biases"): rng.uniform(-1, 1, N)})
    data = {"Input": seqs(5)}
    if init:
        data["Init"] = rng.standard_normal((3, N))
    report = fd_check(net, data)
    assert ("fold", "Net", "ls", "Weights") in report and "Input" in report


def test_batch_equals_per_example_and_padding_invariance():
    net = NetInitialize(fold_graph(tanh_cell(), Input=("Varying", K)), seed=2)
    rng = np.random.default_rng(8)
    data = {"Input": seqs(2), "Init": rng.standard_normal((3, N))}
    wants = ["Output", "Final", NetPortGradient("Input"), NetPortGradient("Init")]
    batch = net(data, wants, dtype=np.float64)
    for b in range(3):
        single = net({p: v[b] for p, v in data.items()}, wants, dtype=np.float64)
        for s, full in zip(single, batch, strict=True):
            assert_close(full[b], s, dtype=np.float64, reduction=TERMS)
    for fill in (1e30, np.nan):
        padded = apply_net(net, data, wants, dtype=np.float64, fill=fill)
        for u, v in zip(padded, batch, strict=True):
            for p, q in zip(u if isinstance(u, list) else [u], v if isinstance(v, list) else [v],
                            strict=True):
                np.testing.assert_array_equal(p, q)


def test_fixed_length_and_integer_inputs():
    inner = NetGraph({"emb": EmbeddingLayer(N, 7), "add": TotalLayer()},
                     [(NetPort("Input"), "emb"), (["emb", NetPort("State")], "add")])
    fold = NetInitialize(NetFoldOperator(inner, Input=(4, Index(7))), seed=0)
    assert fold.port_shape("Output") == (4, N)
    W = NetExtract(fold, ["Net", "emb", "Weights"]).astype(np.float64)
    idx = np.array([[1, 6, 0, 3], [2, 2, 5, 4]])
    assert_close(fold(idx), np.cumsum(W[idx], axis=1), dtype=np.float32, reduction=4)


def test_extract_and_errors():
    inner = tanh_cell()
    fold = NetFoldOperator(inner, Input=("Varying", K))
    got = NetExtract(fold, "Net")
    assert isinstance(got, NetGraph) and got.input_ports == ("Input", "State")
    assert NetExtract(fold, ["Net", "lx"]).port_shape("Output") == (N,)
    with pytest.raises(NetError, match="State"):
        NetFoldOperator(LinearLayer(3))
    with pytest.raises(NetError):
        NetFoldOperator("not a net")
    bad = NetGraph({"l": LinearLayer(4)}, [(NetPort("Input"), "l")])
    with pytest.raises(NetError):
        NetFoldOperator(bad)
    # Output must have the shape of State
    mismatch = NetGraph({"lx": LinearLayer(4), "ls": LinearLayer(4), "add": TotalLayer()},
                        [(NetPort("Input"), "lx"), (NetPort("State"), "ls"),
                         (["lx", "ls"], "add")], State=6)
    with pytest.raises(ShapeError):
        NetFoldOperator(mismatch)
