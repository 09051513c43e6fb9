"""NormalizationLayer, SequenceIndicesLayer and NetBidirectionalOperator: PyTorch as the
oracle (float64 values and every gradient, ragged batches), padding and batch composition,
central differences, shape rules and errors. (The table-driven contract checks of
``test_layers_contract.py`` cover them too.)"""

from __future__ import annotations

import numpy as np
import pytest
from helpers import randomized
from tolerance import assert_close

import netgraph.layers as layers
from netgraph import (
    Automatic,
    BasicRecurrentLayer,
    EmbeddingLayer,
    GatedRecurrentLayer,
    Index,
    LinearLayer,
    LongShortTermMemoryLayer,
    NetArrayGradient,
    NetBidirectionalOperator,
    NetChain,
    NetError,
    NetExtract,
    NetInitialize,
    NetMapOperator,
    NetPort,
    NetPortGradient,
    NetReplacePart,
    NormalizationLayer,
    SequenceIndicesLayer,
    ShapeError,
    SoftmaxLayer,
    TotalLayer,
    check_padding,
    gradcheck,
)

torch = pytest.importorskip("torch")
LENS = (5, 1, 7, 3)


def ragged(rng, *dims, lens=LENS):
    return [rng.standard_normal((T,) + dims) for T in lens]


# ------------------------------------------------------------- NormalizationLayer
@pytest.mark.parametrize("eps", [1e-5, 0.3])
def test_normalization_matches_torch_layer_norm_on_a_ragged_batch(eps):
    d = 7
    net = randomized(NormalizationLayer(eps, Input=("Varying", d)), seed=2)
    rng = np.random.default_rng(3)
    xs, gs = ragged(rng, d), ragged(rng, d)
    wants = [NetPort("Output"), NetPortGradient("Input"), NetArrayGradient("Scaling"),
             NetArrayGradient("Biases")]
    out, gx, gscale, gbias = net({"Input": xs, NetPortGradient("Output"): gs}, wants,
                                 dtype=np.float64)
    scale = torch.tensor(NetExtract(net, "Scaling").astype(np.float64), requires_grad=True)
    bias = torch.tensor(NetExtract(net, "Biases").astype(np.float64), requires_grad=True)
    for b, (x, g) in enumerate(zip(xs, gs, strict=True)):
        t = torch.tensor(x, requires_grad=True)
        y = torch.nn.functional.layer_norm(t, (d,), scale, bias, eps)
        (y * torch.tensor(g)).sum().backward()
        assert_close(out[b], y.detach().numpy(), dtype=np.float64, reduction=2 * d)
        assert_close(gx[b], t.grad.numpy(), dtype=np.float64, reduction=4 * d)
    n = sum(LENS)  # array gradients sum over every valid position of the batch
    assert_close(gscale, scale.grad.numpy(), dtype=np.float64, reduction=n * d)
    assert_close(gbias, bias.grad.numpy(), dtype=np.float64, reduction=n)


def test_normalization_of_a_matrix_is_per_row_and_float32_is_close():
    net = randomized(NormalizationLayer(Input=(3, 5)), seed=4)
    x = np.random.default_rng(5).standard_normal((3, 5)) * 10 + 4
    t = torch.tensor(x)
    want = torch.nn.functional.layer_norm(
        t, (5,), torch.tensor(NetExtract(net, "Scaling"), dtype=torch.float64),
        torch.tensor(NetExtract(net, "Biases"), dtype=torch.float64), 1e-5).numpy()
    assert_close(net(x, dtype=np.float64), want, dtype=np.float64, reduction=10)
    assert_close(net(x), want, dtype=np.float32, reduction=10)


def test_normalization_arrays_start_at_one_and_zero():
    net = NetInitialize(NormalizationLayer(Input=("Varying", 5)), seed=0)
    np.testing.assert_array_equal(NetExtract(net, "Scaling"), np.ones(5, np.float32))
    np.testing.assert_array_equal(NetExtract(net, "Biases"), np.zeros(5, np.float32))
    x = np.array([[1.0, 2, 3, 4, 5], [-2, -2, -2, -2, 6]])
    y = net(x, dtype=np.float64)
    assert_close(y.mean(axis=1), 0.0, dtype=np.float64, scale=1, reduction=5)
    assert_close((y ** 2).mean(axis=1), [2 / (2 + 1e-5), 10.24 / (10.24 + 1e-5)], dtype=np.float64,
                 reduction=5)


def test_normalization_padding_and_central_differences():
    net = randomized(NormalizationLayer(Input=("Varying", 5)), seed=6)
    xs = ragged(np.random.default_rng(7), 5, lens=(3, 1, 4))
    assert check_padding(net, xs).ok
    report = gradcheck(net, xs)
    assert {NetPortGradient("Input"), NetArrayGradient(("Scaling",)),
            NetArrayGradient(("Biases",))} <= set(report)


def test_normalization_shapes_and_errors():
    assert NormalizationLayer(Input=(3, 5)).port_shape("Output") == (3, 5)
    net = NetChain([EmbeddingLayer(6, 4), NormalizationLayer()])
    assert net.port_shape("Output") == ("Varying", 6)
    assert NetInitialize(net).nodes[1] is not None
    assert NetExtract(NetInitialize(net), [1, "Scaling"]).shape == (6,)
    with pytest.raises(ShapeError, match=r"'Input'.*'Real'.*NormalizationLayer.*Input\[\.\.\.x, d\]"):
        NormalizationLayer(Input="Real")
    with pytest.raises(ShapeError, match=r"fixed size along the last axis"):
        NormalizationLayer(Input="Varying")
    with pytest.raises(ShapeError, match=r"'Input'.*\(3, 5\).*size 4 \(from the shape \(4,\) of array 'Scaling'.*size 5"):
        NetReplacePart(NormalizationLayer(Input=(3, 5)), {"Scaling": np.ones(4)})
    for bad in (0, -1e-3, float("inf"), "small", True):
        with pytest.raises(NetError, match="epsilon"):
            NormalizationLayer(bad)


# ------------------------------------------------------------ SequenceIndicesLayer
def test_sequence_indices_are_capped_positions_of_each_true_length():
    net = SequenceIndicesLayer(4, Input=("Varying", 3))
    assert net.port_shape("Output") == ("Varying", Index(4))
    xs = ragged(np.random.default_rng(0), 3, lens=(6, 1, 3))
    got = net(xs)
    assert [g.tolist() for g in got] == [[0, 1, 2, 3, 3, 3], [0], [0, 1, 2]]
    assert all(g.dtype == np.int64 for g in got)
    np.testing.assert_array_equal(net(xs, NetPortGradient("Input"))[0], np.zeros((6, 3)))
    assert SequenceIndicesLayer(9, Input=(5, 2)).port_shape("Output") == (5, Index(9))
    with pytest.raises(ShapeError, match="sequence"):
        SequenceIndicesLayer(3, Input="Real")
    with pytest.raises(ShapeError, match=r"Index\(4\).*Index\(5\)|Index\(5\).*Index\(4\)"):
        NetChain([SequenceIndicesLayer(4), EmbeddingLayer(3, 5)])
    for bad in (0, -2, 2.5, "n", None):
        with pytest.raises(NetError, match=r"\bn\b"):
            SequenceIndicesLayer(bad)


def test_learned_positions_feed_an_embedding():
    net = randomized(NetChain([SequenceIndicesLayer(4), EmbeddingLayer(5, 4)],
                              Input=("Varying", 3)), seed=1)
    E = NetExtract(net, [1, "Weights"])
    xs = ragged(np.random.default_rng(2), 3, lens=(6, 2))
    got = net(xs)
    np.testing.assert_array_equal(got[0], E[[0, 1, 2, 3, 3, 3]])
    np.testing.assert_array_equal(got[1], E[[0, 1]])
    gE = net({"Input": xs}, NetArrayGradient([1, "Weights"]), dtype=np.float64)
    np.testing.assert_array_equal(gE[:, 0], [2, 2, 1, 3])  # positions used, counted
    assert check_padding(net, xs).ok
    gradcheck(net, xs)


# ------------------------------------------------------- NetBidirectionalOperator
def torch_lstm_weights(net, n):
    """netgraph LSTM arrays -> torch's (gate order i, f, g, o; one bias: b_ih, b_hh = 0)."""
    order = ("InputGate", "ForgetGate", "MemoryGate", "OutputGate")

    def stack(part, kind):
        return np.concatenate([NetExtract(net, [part, g + kind]) for g in order]).astype(
            np.float64)

    weights = {}
    for part, suffix in (("ForwardNet", ""), ("BackwardNet", "_reverse")):
        weights[f"weight_ih_l0{suffix}"] = stack(part, "InputWeights")
        weights[f"weight_hh_l0{suffix}"] = stack(part, "StateWeights")
        weights[f"bias_ih_l0{suffix}"] = stack(part, "Biases")
        weights[f"bias_hh_l0{suffix}"] = np.zeros(4 * n)
    return weights


def gate_grads(grads, part, kind, n):
    """torch's stacked gradient rows (i, f, g, o) -> netgraph's arrays of ``part``."""
    suffix = "" if part == "ForwardNet" else "_reverse"
    rows = grads[{"InputWeights": "weight_ih_l0", "StateWeights": "weight_hh_l0",
                  "Biases": "bias_ih_l0"}[kind] + suffix]
    order = ("InputGate", "ForgetGate", "MemoryGate", "OutputGate")
    return {g + kind: rows[j * n:(j + 1) * n] for j, g in enumerate(order)}


@pytest.mark.parametrize("aggregation", ["Catenate", "Total"])
def test_bidirectional_lstm_matches_torch_on_packed_ragged_batches(aggregation):
    k, n = 3, 5
    net = randomized(NetBidirectionalOperator(LongShortTermMemoryLayer(n), aggregation,
                                              Input=("Varying", k)), seed=8)
    out_size = 2 * n if aggregation == "Catenate" else n
    assert net.port_shape("Output") == ("Varying", out_size)
    rng = np.random.default_rng(9)
    xs, gs = ragged(rng, k), ragged(rng, out_size)
    paths = [(part, g + kind) for part in ("ForwardNet", "BackwardNet")
             for g in ("InputGate", "OutputGate", "ForgetGate", "MemoryGate")
             for kind in ("InputWeights", "StateWeights", "Biases")]
    wants = [NetPort("Output"), NetPortGradient("Input")] + [NetArrayGradient(p) for p in paths]
    got = net({"Input": xs, NetPortGradient("Output"): gs}, wants, dtype=np.float64)

    lstm = torch.nn.LSTM(k, n, bidirectional=True, dtype=torch.float64)
    with torch.no_grad():
        for name, value in torch_lstm_weights(net, n).items():
            getattr(lstm, name).copy_(torch.tensor(value))
    inputs = [torch.tensor(x, requires_grad=True) for x in xs]
    packed = torch.nn.utils.rnn.pack_sequence(inputs, enforce_sorted=False)
    padded, lengths = torch.nn.utils.rnn.pad_packed_sequence(lstm(packed)[0], batch_first=True)
    assert lengths.tolist() == list(LENS)
    if aggregation == "Total":
        padded = padded[..., :n] + padded[..., n:]
    seed = torch.nn.utils.rnn.pad_sequence([torch.tensor(g) for g in gs], batch_first=True)
    (padded * seed).sum().backward()
    grads = {name: p.grad.numpy() for name, p in lstm.named_parameters()}
    steps = max(LENS) * (k + n + 4)  # terms behind a value through the time loop
    for b, T in enumerate(LENS):
        assert_close(got[0][b], padded[b, :T].detach().numpy(), dtype=np.float64,
                     reduction=steps, what=f"Output {b}")
        assert_close(got[1][b], inputs[b].grad.numpy(), dtype=np.float64, reduction=steps,
                     what=f"Input gradient {b}")
    for path, ours in zip(paths, got[2:], strict=True):
        part, name = path
        kind = next(s for s in ("InputWeights", "StateWeights", "Biases") if name.endswith(s))
        theirs = gate_grads(grads, part, kind, n)[name]
        assert_close(ours, theirs, dtype=np.float64, reduction=sum(LENS) * steps,
                     what=str(path))


def test_bidirectional_reads_each_true_length_reversal():
    """The backward direction of a batch equals that of each example alone: padding never
    reaches it (a plain reversal of the padded batch would start every short example on
    padding)."""
    net = randomized(NetBidirectionalOperator(GatedRecurrentLayer(4), Input=("Varying", 3)),
                     seed=10)
    xs = ragged(np.random.default_rng(11), 3)
    batch = net(xs, dtype=np.float64)
    for x, y in zip(xs, batch, strict=True):
        np.testing.assert_allclose(net(x, dtype=np.float64), y, rtol=1e-12, atol=1e-14)
    # the backward half at the first position has read the whole sequence: it changes when
    # the last element does, the forward half does not
    x = xs[2].copy()
    x[-1] += 1
    y0, y1 = net(xs[2], dtype=np.float64), net(x, dtype=np.float64)
    np.testing.assert_array_equal(y0[0, :4], y1[0, :4])
    assert np.abs(y0[0, 4:] - y1[0, 4:]).min() > 0
    assert check_padding(net, xs).ok
    gradcheck(net, ragged(np.random.default_rng(12), 3, lens=(3, 1, 2)))


def test_default_backward_net_is_an_independent_copy():
    lstm = LongShortTermMemoryLayer(4, Input=("Varying", 3))
    net = NetBidirectionalOperator(lstm)
    assert NetExtract(net, ["BackwardNet", "InputGateInputWeights"]) is None
    init = NetInitialize(net, seed=0)
    fwd, bwd = (NetExtract(init, [p, "InputGateInputWeights"]) for p in
                ("ForwardNet", "BackwardNet"))
    assert fwd.shape == bwd.shape == (4, 3) and not np.array_equal(fwd, bwd)
    np.testing.assert_array_equal(NetExtract(init, ["BackwardNet", "ForgetGateBiases"]),
                                  np.ones(4))
    # arrays of an initialized net are copied, then independent
    trained = NetInitialize(lstm, seed=1)
    both = NetBidirectionalOperator(trained)
    np.testing.assert_array_equal(NetExtract(both, ["ForwardNet", "InputGateBiases"]),
                                  NetExtract(both, ["BackwardNet", "InputGateBiases"]))
    changed = NetReplacePart(both, {("BackwardNet", "InputGateBiases"): np.full(4, 2.0)})
    np.testing.assert_array_equal(NetExtract(changed, ["ForwardNet", "InputGateBiases"]),
                                  NetExtract(trained, "InputGateBiases"))
    assert isinstance(NetExtract(init, "ForwardNet"), LongShortTermMemoryLayer)
    assert set(init.children()) == {"ForwardNet", "BackwardNet"}


def test_bidirectional_shapes_and_errors():
    net = NetBidirectionalOperator(GatedRecurrentLayer(3), backward_net=BasicRecurrentLayer(2),
                                   Input=("Varying", 5))
    assert net.port_shape("Output") == ("Varying", 5)
    # sizes flow backwards from the output, and from one direction to the other
    net = NetBidirectionalOperator(GatedRecurrentLayer(Automatic),
                                   backward_net=BasicRecurrentLayer(2), Input=("Varying", 5),
                                   Output=("Varying", 9))
    assert NetExtract(NetInitialize(net), ["ForwardNet", "InputGateStateWeights"]).shape == (7, 7)
    total = NetBidirectionalOperator(GatedRecurrentLayer(Automatic), "Total",
                                     backward_net=BasicRecurrentLayer(4), Input=("Varying", 5))
    assert total.port_shape("Output") == ("Varying", 4)
    chain = NetChain([EmbeddingLayer(3, 7), NetBidirectionalOperator(GatedRecurrentLayer(4)),
                      NetMapOperator(LinearLayer(7)), SoftmaxLayer()])
    assert chain.port_shape("Input") == ("Varying", Index(7))
    with pytest.raises(ShapeError, match=r"BackwardNet.*Output"):
        NetBidirectionalOperator(GatedRecurrentLayer(3), "Total",
                                 backward_net=GatedRecurrentLayer(4), Input=("Varying", 5))
    with pytest.raises(ShapeError, match=r"'Input'.*\(5,\).*'ForwardNet'.*rank 1 versus rank 2"):
        NetBidirectionalOperator(GatedRecurrentLayer(3), Input=5)
    with pytest.raises(NetError, match=r"ForwardNet must have one input port.*Input1"):
        NetBidirectionalOperator(TotalLayer())
    with pytest.raises(NetError, match="aggregation"):
        NetBidirectionalOperator(GatedRecurrentLayer(3), "Mean")
    with pytest.raises(NetError, match="backward_net"):
        NetBidirectionalOperator(GatedRecurrentLayer(3), backward_net=3)
    with pytest.raises(NetError, match="'net'"):
        NetBidirectionalOperator("GRU")


def test_bidirectional_over_an_embedding_and_errors_for_non_sequences():
    net = randomized(NetBidirectionalOperator(NetChain([EmbeddingLayer(3, 7),
                                                        GatedRecurrentLayer(4)])), seed=13)
    assert net.port_shape("Input") == ("Varying", Index(7))
    xs = [np.array([1, 2, 3, 6]), np.array([6]), np.array([0, 5])]
    got = net(xs, dtype=np.float64)
    # the backward half of position 0 is the backward net's last state over the reversal
    back = NetExtract(net, "BackwardNet")
    for x, y in zip(xs, got, strict=True):
        assert_close(y[0, 4:], back(x[::-1], dtype=np.float64)[-1], dtype=np.float64,
                     reduction=20)
    assert check_padding(net, xs).ok
    report = gradcheck(net, xs)
    assert all(isinstance(k, NetArrayGradient) for k in report)  # indices: no input gradient
    with pytest.raises(ShapeError, match=r"sequence of vectors.*one per position.*\(4,\)"):
        NetBidirectionalOperator(NetChain([GatedRecurrentLayer(4), layers.SequenceLastLayer()]),
                                 Input=("Varying", 3))


def test_bidirectional_catenation_refuses_a_scalar_output_shape():
    """A given Output of rank 0 is a ShapeError naming both shapes (it was an IndexError)."""
    with pytest.raises(ShapeError, match=r"'Output'.*'Real'.*rank 0 versus rank 2"):
        NetBidirectionalOperator(layers.BasicRecurrentLayer(), "Catenate", Output="Real")


def test_onnx_export_of_the_new_layers_and_a_small_transformer(tmp_path):
    """The example's Transformer (tiny, random arrays) and a bidirectional LSTM: onnxruntime
    matches the net on padded batches with garbage in the padding."""
    pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    import importlib.util
    from pathlib import Path

    from onnx_helpers import compare, export

    path = Path(__file__).resolve().parents[1] / "examples" / "transformer_dates.py"
    spec = importlib.util.spec_from_file_location("transformer_dates_onnx", path)
    tr = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tr)
    net = randomized(tr.build_model(d=8, heads=2, hidden=12), seed=3)
    rng = np.random.default_rng(4)
    data = {"Input": [rng.integers(0, len(tr.IN_CHARS), size=T) for T in (9, 3, 12)],
            "DecoderInput": [rng.integers(0, tr.TOKENS, size=T) for T in (4, 7, 1)]}
    _, session = export(net, tmp_path / "transformer.onnx")
    compare(net, session, data, rng, extra=2, slack=True)
    bi = randomized(NetBidirectionalOperator(LongShortTermMemoryLayer(4), Input=("Varying", 3)),
                    seed=5)
    _, session = export(bi, tmp_path / "bi.onnx")
    compare(bi, session, {"Input": ragged(rng, 3, lens=(5, 1, 3))}, rng, extra=1)
