"""Applying a net: rank-based single/batch detection, result forms, output selection,
NetPortGradient / NetArrayGradient (seeded and not, batches), dtypes, leading-axes broadcasting
and just-in-time shapes."""

import numpy as np
import pytest
from tolerance import assert_close

from netgraph import (
    Automatic,
    ElementwiseLayer,
    EmbeddingLayer,
    Index,
    LinearLayer,
    NetArrayGradient,
    NetChain,
    NetExtract,
    NetGraph,
    NetInitialize,
    NetMapOperator,
    NetPort,
    NetPortGradient,
    SequenceLastLayer,
    ThreadingLayer,
)

RNG = np.random.default_rng(11)


def arrays(net, *path):
    prefix = list(path)
    return (NetExtract(net, prefix + ["Weights"]).astype(np.float64),
            NetExtract(net, prefix + ["Biases"]).astype(np.float64))


@pytest.fixture(scope="module")
def linear():
    return NetInitialize(LinearLayer(3, Input=5), seed=1)


@pytest.fixture(scope="module")
def two_out():
    g = NetGraph({"a": LinearLayer(3), "b": LinearLayer(7)}, [], Input=5)
    return NetInitialize(g, seed=2)


# ----------------------------------------------------------------------------- forms
def test_fixed_shape_single_and_batches(linear):
    W, b = arrays(linear)
    xs = RNG.standard_normal((4, 5))
    one = linear(xs[0])
    assert isinstance(one, np.ndarray) and one.shape == (3,) and one.dtype == np.float32
    assert_close(one, W @ xs[0] + b, dtype=np.float32, reduction=6)
    for batch in (xs, list(xs), tuple(xs), [list(x) for x in xs]):
        got = linear(batch)
        assert isinstance(got, np.ndarray) and got.shape == (4, 3)
        assert_close(got, xs @ W.T + b, dtype=np.float32, reduction=6)
    assert linear({"Input": xs[0]}).shape == (3,)
    assert linear({NetPort("Input"): xs}).shape == (4, 3)


def test_varying_shapes_give_lists_for_batches():
    th = ElementwiseLayer("Tanh", Input=("Varying", 2))
    xs = [RNG.standard_normal((n, 2)) for n in (3, 7, 1)]
    one = th(xs[1])
    assert isinstance(one, np.ndarray) and one.shape == (7, 2)
    got = th(xs)
    assert isinstance(got, list) and [g.shape for g in got] == [(3, 2), (7, 2), (1, 2)]
    for g, x in zip(got, xs):
        assert_close(g, np.tanh(x), dtype=np.float32)
    stacked = th(np.stack([xs[0], xs[0] + 1]))  # rank + 1 array: a batch of equal lengths
    assert isinstance(stacked, list) and len(stacked) == 2
    assert_close(stacked[1], np.tanh(xs[0] + 1), dtype=np.float32)
    # a fixed output of varying inputs stacks
    last = SequenceLastLayer(Input=("Varying", 2))
    got = last(xs)
    assert isinstance(got, np.ndarray) and got.shape == (3, 2)
    np.testing.assert_array_equal(got, np.stack([x[-1] for x in xs]).astype(np.float32))


def test_scalar_and_index_ports():
    ex = ElementwiseLayer("Exp", Input="Real")
    assert np.ndim(ex(0.5)) == 0
    assert_close(ex(0.5), np.exp(0.5), dtype=np.float32)
    assert_close(ex([0.5, -1.0, 2.0]), np.exp([0.5, -1.0, 2.0]), dtype=np.float32)
    emb = NetInitialize(EmbeddingLayer(3, Input=Index(5)), seed=3)
    W = NetExtract(emb, "Weights")
    np.testing.assert_array_equal(emb(4), W[4])
    np.testing.assert_array_equal(emb([4, 0, 2]), W[[4, 0, 2]])
    seq = NetInitialize(EmbeddingLayer(3, 5), seed=3)
    W = NetExtract(seq, "Weights")
    np.testing.assert_array_equal(seq([0, 1, 4]), W[[0, 1, 4]])
    got = seq([[0, 1], [4, 3, 2]])
    assert isinstance(got, list)
    np.testing.assert_array_equal(got[1], W[[4, 3, 2]])


def test_several_outputs_give_a_dict_and_can_be_selected(two_out):
    x = RNG.standard_normal(5)
    Wa, ba = arrays(two_out, "a")
    Wb, bb = arrays(two_out, "b")
    out = two_out(x)
    assert isinstance(out, dict) and list(out) == ["Output1", "Output2"]
    assert_close(out["Output1"], Wa @ x + ba, dtype=np.float32, reduction=6)
    assert_close(two_out(x, "Output2"), Wb @ x + bb, dtype=np.float32, reduction=6)
    second, first = two_out(x, ["Output2", NetPort("Output1")])
    np.testing.assert_array_equal(first, out["Output1"])
    np.testing.assert_array_equal(second, out["Output2"])
    batch = two_out(np.stack([x, 2 * x]))
    assert batch["Output2"].shape == (2, 7)
    assert_close(batch["Output2"][0], Wb @ x + bb, dtype=np.float32, reduction=6)
    assert_close(batch["Output2"][1], Wb @ (2 * x) + bb, dtype=np.float32, reduction=6)


def test_batch_equals_examples_for_varying_lengths():
    net = NetInitialize(NetChain([NetMapOperator(LinearLayer(4)), ElementwiseLayer("Tanh")],
                                 Input=("Varying", 3)), seed=4)
    xs = [RNG.standard_normal((n, 3)) for n in (5, 2, 7)]
    batch, batch64 = net(xs), net(xs, dtype=np.float64)
    for b, b64, x in zip(batch, batch64, xs):
        alone = net(x, dtype=np.float64)
        assert_close(b64, alone, dtype=np.float64, reduction=4)
        assert_close(b, alone, dtype=np.float32, reduction=4)


# ----------------------------------------------------------------------------- gradients
def test_port_gradient_unseeded_and_seeded(linear):
    W, _ = arrays(linear)
    x, g = RNG.standard_normal(5), RNG.standard_normal(3)
    assert_close(linear(x, NetPortGradient("Input")), W.T @ np.ones(3), dtype=np.float32, reduction=3)
    seeded = linear({"Input": x, NetPortGradient("Output"): g}, NetPortGradient("Input"))
    assert_close(seeded, W.T @ g, dtype=np.float32, reduction=3)
    xs, gs = RNG.standard_normal((4, 5)), RNG.standard_normal((4, 3))
    batch = linear({"Input": xs, NetPortGradient("Output"): gs}, NetPortGradient("Input"))
    assert batch.shape == (4, 5)
    assert_close(batch, gs @ W, dtype=np.float32, reduction=3)


def test_unseeded_outputs_get_zero_once_any_seed_is_given(two_out):
    Wa, _ = arrays(two_out, "a")
    Wb, _ = arrays(two_out, "b")
    x, g1, g2 = RNG.standard_normal(5), RNG.standard_normal(3), RNG.standard_normal(7)
    grad = NetPortGradient("Input")
    assert_close(two_out(x, grad), Wa.sum(0) + Wb.sum(0), dtype=np.float32, reduction=10)
    assert_close(two_out({"Input": x, NetPortGradient("Output1"): g1}, grad), Wa.T @ g1,
                 dtype=np.float32, reduction=3)
    assert_close(two_out({"Input": x, NetPortGradient("Output2"): g2}, grad), Wb.T @ g2,
                 dtype=np.float32, reduction=7)
    both = {"Input": x, NetPortGradient("Output1"): g1, NetPortGradient("Output2"): g2}
    assert_close(two_out(both, grad), Wa.T @ g1 + Wb.T @ g2, dtype=np.float32, reduction=10)


def test_array_gradient_of_a_batch_is_the_sum_over_examples(linear):
    xs, gs = RNG.standard_normal((4, 5)), RNG.standard_normal((4, 3))
    data = {"Input": xs, NetPortGradient("Output"): gs}
    dW, db = linear(data, [NetArrayGradient("Weights"), NetArrayGradient(["Biases"])])
    assert dW.shape == (3, 5) and db.shape == (3,)
    assert_close(dW, sum(np.outer(g, x) for g, x in zip(gs, xs)), dtype=np.float32, reduction=4)
    assert_close(db, gs.sum(0), dtype=np.float32, reduction=4)
    single = linear({"Input": xs[2], NetPortGradient("Output"): gs[2]}, NetArrayGradient("Weights"))
    assert_close(single, np.outer(gs[2], xs[2]), dtype=np.float32)


def test_a_list_of_targets_gives_a_list(two_out):
    x = RNG.standard_normal(5)
    got = two_out(x, [NetArrayGradient(["b", "Biases"]), "Output1",
                      NetArrayGradient([-2, "Weights"]), NetPortGradient("Input")])
    assert isinstance(got, list) and len(got) == 4
    np.testing.assert_array_equal(got[0], np.ones(7))
    np.testing.assert_array_equal(got[1], two_out(x, "Output1"))
    assert_close(got[2], np.outer(np.ones(3), x), dtype=np.float32)
    assert got[3].shape == (5,)


def test_gradient_of_a_varying_port_is_a_list_of_unpadded_arrays():
    th = ElementwiseLayer("Tanh", Input=("Varying", 2))
    xs = [RNG.standard_normal((n, 2)) for n in (3, 7)]
    gs = [RNG.standard_normal((n, 2)) for n in (3, 7)]
    got = th({"Input": xs, NetPortGradient("Output"): gs}, NetPortGradient("Input"))
    assert isinstance(got, list) and [g.shape for g in got] == [(3, 2), (7, 2)]
    for g, x, s in zip(got, xs, gs):
        assert_close(g, s * (1 - np.tanh(x) ** 2), dtype=np.float32)


# ----------------------------------------------------------------------------- dtypes
def test_float32_by_default_float64_on_request(linear):
    W, b = arrays(linear)
    x = RNG.standard_normal(5)
    exact = W @ x + b
    lo, hi = linear(x), linear(x, dtype=np.float64)
    assert lo.dtype == np.float32 and hi.dtype == np.float64
    assert_close(hi, exact, dtype=np.float64, reduction=6)
    assert_close(lo, exact, dtype=np.float32, reduction=6)
    assert np.abs(lo - exact).max() > np.abs(hi - exact).max()
    assert linear(x, NetPortGradient("Input"), dtype=np.float64).dtype == np.float64
    assert linear(x, NetArrayGradient("Weights"), dtype="float64").dtype == np.float64
    assert linear(x, NetArrayGradient("Weights")).dtype == np.float32
    # stored arrays stay float32
    assert NetExtract(linear, "Weights").dtype == np.float32


# ----------------------------------------------------------------------------- broadcasting
def test_a_scalar_input_broadcasts_over_the_leading_and_trailing_axes():
    g = NetGraph({"t": ThreadingLayer("Times")}, [], Input1="Real", Input2=5)
    s, v = 1.5, RNG.standard_normal(5)
    assert_close(g({"Input1": s, "Input2": v}), s * v, dtype=np.float32)
    ss, vs = RNG.standard_normal(3), RNG.standard_normal((3, 5))
    assert_close(g({"Input1": ss, "Input2": vs}), ss[:, None] * vs, dtype=np.float32)
    seeds = RNG.standard_normal((3, 5))
    d1, d2 = g({"Input1": ss, "Input2": vs, NetPortGradient("Output"): seeds},
               [NetPortGradient("Input1"), NetPortGradient("Input2")])
    assert d1.shape == (3,) and d2.shape == (3, 5)
    assert_close(d1, (seeds * vs).sum(1), dtype=np.float32, reduction=5,
                 scale=np.abs(seeds * vs).max())
    assert_close(d2, seeds * ss[:, None], dtype=np.float32)


def test_map_operator_runs_the_inner_net_on_every_element():
    m = NetInitialize(NetMapOperator(LinearLayer(3), Input=("Varying", 5)), seed=5)
    W, b = arrays(m, "Net")
    xs = [RNG.standard_normal((n, 5)) for n in (4, 1)]
    got = m(xs)
    for g, x in zip(got, xs):
        assert_close(g, x @ W.T + b, dtype=np.float32, reduction=6)


def test_unknown_input_shapes_are_read_off_the_data():
    th = ElementwiseLayer("Tanh")
    x = RNG.standard_normal((2, 3))
    assert_close(th(x), np.tanh(x), dtype=np.float32)  # one example of shape (2, 3)
    assert NetExtract(th, "Input") is Automatic  # the net itself is unchanged
    partial = ElementwiseLayer("Sin", Input=(None, 3))
    batch = RNG.standard_normal((4, 2, 3))
    assert_close(partial(batch), np.sin(batch), dtype=np.float32)
    # a varying length stays varying: a ragged batch still works after the sizes are read
    seq = NetMapOperator(ElementwiseLayer("Tanh", Input=(None,)))
    assert NetExtract(seq, "Input") == ("Varying", Automatic)
    xs = [RNG.standard_normal((n, 3)) for n in (4, 2)]
    assert [o.shape for o in seq(xs)] == [(4, 3), (2, 3)]
    assert_close(seq(xs)[1], np.tanh(xs[1]), dtype=np.float32)
