"""Recurrent layers: against PyTorch (float64, hidden-side biases zero) for outputs, final
states fed/read through NetGraph State ports and every gradient; float64 central differences
for every input and array; batch == per example; padding invariance; shapes and arrays."""

import numpy as np
import pytest
from _fd import fd_check
from tolerance import assert_close

from netgraph import (
    Automatic,
    BasicRecurrentLayer,
    EmbeddingLayer,
    GatedRecurrentLayer,
    Index,
    LinearLayer,
    LongShortTermMemoryLayer,
    NetArrayGradient,
    NetChain,
    NetError,
    NetExtract,
    NetGraph,
    NetInitialize,
    NetPort,
    NetPortGradient,
    NetReplacePart,
    SequenceLastLayer,
    ShapeError,
)
from netgraph.apply import apply_net

K, N, LENS = 3, 5, [4, 1, 6]
# roundings behind one value: K + N + 1 terms per gate and step along the longest sequence,
# then an array gradient's sum over every step of the batch
TERMS = max(LENS) * (K + N + 1) + sum(LENS)
KINDS = {
    "Basic": (BasicRecurrentLayer, [""], "RNN"),
    "GRU": (GatedRecurrentLayer, ["InputGate", "ResetGate", "MemoryGate"], "GRU"),
    "LSTM": (LongShortTermMemoryLayer, ["InputGate", "OutputGate", "ForgetGate", "MemoryGate"],
             "LSTM"),
}
# PyTorch's gate order, in our gate names
TORCH_ORDER = {"Basic": [""], "GRU": ["ResetGate", "InputGate", "MemoryGate"],
               "LSTM": ["InputGate", "ForgetGate", "MemoryGate", "OutputGate"]}


def state_ports(kind):
    return ["State", "CellState"] if kind == "LSTM" else ["State"]


def make_graph(kind, n=N, k=K, with_init=True, with_final=True, input_shape=None):
    """NetGraph around one recurrent node: initial states from graph inputs Init*, final
    states to graph outputs Final*."""
    conns = []
    for p in state_ports(kind):
        if with_init:
            conns.append((NetPort("Init" + p), NetPort("rnn", p)))
        if with_final:
            conns.append((NetPort("rnn", p), NetPort("Final" + p)))
    layer = KINDS[kind][0](n)
    net = NetGraph({"rnn": layer}, conns, Input=input_shape or ("Varying", k))
    net = NetInitialize(net, seed=11)
    rng = np.random.default_rng(5)
    biases = {("rnn", f"{g}Biases"): rng.uniform(-0.5, 0.5, n) for g in KINDS[kind][1]}
    return NetReplacePart(net, biases)


def data_for(kind, lens=LENS, seed=0, k=K, n=N):
    rng = np.random.default_rng(seed)
    d = {"Input": [rng.standard_normal((t, k)) for t in lens]}
    for p in state_ports(kind):
        d["Init" + p] = rng.standard_normal((len(lens), n)) * 0.5
    return d


def torch_module(torch, kind, net, k=K, n=N):
    cls = getattr(torch.nn, KINDS[kind][2])
    mod = cls(k, n, batch_first=True, dtype=torch.float64)
    arrays = {name: np.float64(NetExtract(net, ["rnn", name])) for name in
              NetExtract(net, "rnn")._arrays()}
    order = TORCH_ORDER[kind]
    with torch.no_grad():
        mod.weight_ih_l0.copy_(torch.tensor(np.concatenate(
            [arrays[f"{g}InputWeights"] for g in order])))
        mod.weight_hh_l0.copy_(torch.tensor(np.concatenate(
            [arrays[f"{g}StateWeights"] for g in order])))
        mod.bias_ih_l0.copy_(torch.tensor(np.concatenate([arrays[f"{g}Biases"] for g in order])))
        mod.bias_hh_l0.zero_()
    return mod


def torch_run(torch, kind, mod, x, init):
    """One example through PyTorch: (outputs, final states)."""
    xt = torch.tensor(x[None])
    h0 = [torch.tensor(s[None, None]) for s in init]
    if kind == "LSTM":
        out, (h, c) = mod(xt, (h0[0], h0[1]))
        return out[0], [h[0, 0], c[0, 0]]
    out, h = mod(xt, h0[0])
    return out[0], [h[0, 0]]


@pytest.mark.parametrize("kind", list(KINDS))
def test_against_torch_values_and_gradients(kind):
    torch = pytest.importorskip("torch")
    net = make_graph(kind)
    data = data_for(kind)
    rng = np.random.default_rng(9)
    seeds = {"Output": [rng.standard_normal((t, N)) for t in LENS]}
    for p in state_ports(kind):
        seeds["Final" + p] = rng.standard_normal((len(LENS), N))
    arrays = list(NetExtract(net, "rnn")._arrays())
    wants = (["Output"] + ["Final" + p for p in state_ports(kind)]
             + [NetPortGradient(p) for p in data]
             + [NetArrayGradient(["rnn", a]) for a in arrays])
    feed = {**data, **{NetPortGradient(p): v for p, v in seeds.items()}}
    got = dict(enumerate(net(feed, wants, dtype=np.float64)))

    mod = torch_module(torch, kind, net)
    xs = [torch.tensor(x, requires_grad=True) for x in data["Input"]]
    inits = {p: torch.tensor(data["Init" + p], requires_grad=True) for p in state_ports(kind)}
    total = 0
    for b, x in enumerate(xs):
        h0 = [inits[p][b:b + 1] for p in state_ports(kind)]
        h0 = [h[None] for h in h0]
        out, fin = (mod(x[None], tuple(h0)) if kind == "LSTM" else mod(x[None], h0[0]))
        fin = list(fin) if kind == "LSTM" else [fin]
        assert_close(got[0][b], out[0].detach().numpy(), dtype=np.float64, reduction=TERMS)
        total = total + (out[0] * torch.tensor(seeds["Output"][b])).sum()
        for j, p in enumerate(state_ports(kind)):
            assert_close(got[1 + j][b], fin[j][0, 0].detach().numpy(), dtype=np.float64, reduction=TERMS)
            total = total + (fin[j][0, 0] * torch.tensor(seeds["Final" + p][b])).sum()
    total.backward()
    j = 1 + len(state_ports(kind))
    for b, x in enumerate(xs):
        assert_close(got[j][b], x.grad.numpy(), dtype=np.float64, reduction=TERMS)
    for i, p in enumerate(state_ports(kind)):
        assert_close(got[j + 1 + i], inits[p].grad.numpy(), dtype=np.float64, reduction=TERMS)
    j += 1 + len(state_ports(kind))
    order = TORCH_ORDER[kind]
    for kind_w, tgrad in (("InputWeights", mod.weight_ih_l0.grad),
                          ("StateWeights", mod.weight_hh_l0.grad),
                          ("Biases", mod.bias_ih_l0.grad)):
        blocks = np.split(tgrad.numpy(), len(order))
        for g, block in zip(order, blocks, strict=True):
            ours = got[j + arrays.index(f"{g}{kind_w}")]
            assert_close(ours, block, dtype=np.float64, reduction=TERMS, what=g + kind_w)


@pytest.mark.parametrize("kind", list(KINDS))
def test_bare_layer_zero_initial_state_matches_torch(kind):
    torch = pytest.importorskip("torch")
    net = make_graph(kind, with_init=False, with_final=False)
    layer = NetExtract(net, "rnn")
    assert layer.input_ports == ("Input",) and layer.output_ports == ("Output",)
    mod = torch_module(torch, kind, net)
    x = np.random.default_rng(3).standard_normal((7, K))
    ours = layer(x, dtype=np.float64)
    out, _ = torch_run(torch, kind, mod, x, [np.zeros(N)] * len(state_ports(kind)))
    assert_close(ours, out.detach().numpy(), dtype=np.float64, reduction=7 * (K + N + 1))


@pytest.mark.parametrize("kind", list(KINDS))
@pytest.mark.parametrize("init, final", [(True, True), (False, True), (True, False)])
def test_central_differences(kind, init, final):
    net = make_graph(kind, with_init=init, with_final=final)
    data = data_for(kind)
    data = {p: v for p, v in data.items() if p in net.input_ports}
    report = fd_check(net, data)
    assert len(report) == 3 * len(KINDS[kind][1]) + len(data)


@pytest.mark.parametrize("kind", list(KINDS))
@pytest.mark.parametrize("init", [True, False])
def test_central_differences_of_one_step(kind, init):
    """A batch of one step: with no initial state it needs no state product at all (the
    state starts at 0), forward or backward, and adds nothing to the state weights'
    gradient, which is exactly 0."""
    net = make_graph(kind, with_init=init)
    data = data_for(kind, lens=[1, 1, 1])
    data = {p: v for p, v in data.items() if p in net.input_ports}
    fd_check(net, data)
    dWs = net(data, NetArrayGradient(["rnn", KINDS[kind][1][0] + "StateWeights"]),
              dtype=np.float64)
    assert dWs.any() == init


@pytest.mark.parametrize("kind", list(KINDS))
def test_central_differences_fixed_length(kind):
    net = make_graph(kind, input_shape=(4, K))
    data = data_for(kind, lens=[4, 4])
    fd_check(net, data)


@pytest.mark.parametrize("kind", list(KINDS))
def test_batch_equals_per_example_and_padding_invariance(kind):
    net = make_graph(kind)
    data = data_for(kind)
    wants = ["Output", *["Final" + p for p in state_ports(kind)], NetPortGradient("Input"),
             NetArrayGradient(["rnn", KINDS[kind][1][0] + "StateWeights"])]
    batch = net(data, wants, dtype=np.float64)
    summed = 0
    for b in range(len(LENS)):
        one = {p: v[b] for p, v in data.items()}
        single = net(one, wants, dtype=np.float64)
        for k in range(len(wants) - 1):
            assert_close(batch[k][b], single[k], dtype=np.float64, reduction=TERMS)
        summed = summed + single[-1]
    assert_close(batch[-1], summed, dtype=np.float64, reduction=TERMS)
    for fill in (1e30, np.nan):
        padded = apply_net(net, data, wants, dtype=np.float64, fill=fill)
        for a, b in zip(padded, batch, strict=True):
            for u, v in zip(a if isinstance(a, list) else [a], b if isinstance(b, list) else [b], strict=True):
                np.testing.assert_array_equal(u, v)


def test_final_state_is_at_true_last_step():
    net = make_graph("GRU", with_init=False)
    x = data_for("GRU")["Input"]
    r = net({"Input": x}, dtype=np.float64)
    for b in range(len(LENS)):
        np.testing.assert_array_equal(r["FinalState"][b], r["Output"][b][-1])
    interior = net({"Input": x}, NetPort("rnn", "State"), dtype=np.float64)
    assert_close(interior, r["FinalState"], dtype=np.float64, reduction=TERMS)
    both = make_graph("GRU")  # with an initial state too, NetPort(rnn, State) is the final one
    data = data_for("GRU")
    r = both(data, dtype=np.float64)
    interior = both(data, NetPort("rnn", "State"), dtype=np.float64)
    assert_close(interior, r["FinalState"], dtype=np.float64, reduction=TERMS)
    assert not np.allclose(interior, data["InitState"])


def test_array_names_shapes_and_init():
    lstm = NetInitialize(LongShortTermMemoryLayer(N, Input=("Varying", K)), seed=2)
    names = [f"{g}{a}" for g in KINDS["LSTM"][1] for a in
             ("InputWeights", "StateWeights", "Biases")]
    assert sorted(lstm._arrays()) == sorted(names)
    assert NetExtract(lstm, "ForgetGateInputWeights").shape == (N, K)
    assert NetExtract(lstm, "MemoryGateStateWeights").shape == (N, N)
    np.testing.assert_array_equal(NetExtract(lstm, "ForgetGateBiases"), np.ones(N))
    np.testing.assert_array_equal(NetExtract(lstm, "OutputGateBiases"), np.zeros(N))
    gru = GatedRecurrentLayer(7, Input=("Varying", 3))
    assert set(gru._arrays()) == {f"{g}{a}" for g in ("InputGate", "ResetGate", "MemoryGate")
                                  for a in ("InputWeights", "StateWeights", "Biases")}
    basic = BasicRecurrentLayer(7, Input=(4, 3))
    assert set(basic._arrays()) == {"InputWeights", "StateWeights", "Biases"}
    assert basic.port_shape("Output") == (4, 7)
    assert GatedRecurrentLayer(5).port_shape("Input") == ("Varying", Automatic)
    assert GatedRecurrentLayer(5, Input=("Varying", 3)).port_shape("Output") == ("Varying", 5)


def test_shape_errors():
    with pytest.raises(NetError, match="n"):
        GatedRecurrentLayer(0)
    with pytest.raises(ShapeError):
        GatedRecurrentLayer(5, Input=3)
    with pytest.raises(ShapeError):
        GatedRecurrentLayer(5, Output=("Varying", 4))
    with pytest.raises(ShapeError):
        NetGraph({"rnn": GatedRecurrentLayer(5)}, [(NetPort("Init"), NetPort("rnn", "State"))],
                 Input=("Varying", 3), Init=4)


def test_output_length_follows_input_and_chain_use():
    net = NetChain([EmbeddingLayer(K, 11), LongShortTermMemoryLayer(N), SequenceLastLayer(),
                    LinearLayer(2)])
    net = NetInitialize(net, seed=0)
    assert net.port_shape("Input") == ("Varying", Index(11))
    out = net([[1, 2, 3], [4], [5, 6, 7, 8, 9, 10]])
    assert out.shape == (3, 2) and np.all(np.isfinite(out))


def test_lstm_cell_state_ports_alone():
    net = NetGraph({"rnn": LongShortTermMemoryLayer(N)},
                   [(NetPort("C0"), NetPort("rnn", "CellState")),
                    (NetPort("rnn", "CellState"), NetPort("CT"))], Input=("Varying", K))
    net = NetInitialize(net, seed=6)
    assert net.input_ports == ("Input", "C0") and net.output_ports == ("Output", "CT")
    rng = np.random.default_rng(4)
    data = {"Input": data_for("LSTM")["Input"], "C0": rng.standard_normal((3, N))}
    fd_check(net, data)
    torch = pytest.importorskip("torch")
    mod = torch_module(torch, "LSTM", net)
    r = net(data, dtype=np.float64)
    for b in range(3):
        out, (h, c) = torch_run(torch, "LSTM", mod, data["Input"][b], [np.zeros(N), data["C0"][b]])
        assert_close(r["Output"][b], out.detach().numpy(), dtype=np.float64, reduction=TERMS)
        assert_close(r["CT"][b], c.detach().numpy(), dtype=np.float64, reduction=TERMS)


@pytest.mark.parametrize("kind", list(KINDS))
def test_float32_agrees_with_float64(kind):
    net = make_graph(kind)
    data = data_for(kind)
    wants = ["Output", NetPortGradient("Input"),
             NetArrayGradient(["rnn", KINDS[kind][1][-1] + "StateWeights"])]
    lo, hi = net(data, wants), net(data, wants, dtype=np.float64)
    for a, b in zip(lo, hi, strict=True):
        for u, v in zip(a if isinstance(a, list) else [a], b if isinstance(b, list) else [b],
                        strict=True):
            assert u.dtype == np.float32
            assert_close(u, v, dtype=np.float32, reduction=TERMS)


SPLIT_LENS = [4, 1, 6, 2, 6, 3, 5, 1, 4, 6, 2, 5, 3, 6, 1, 4, 2, 6, 5, 3, 6, 1, 2, 4, 5, 6, 3,
              2, 1, 6, 4, 5, 3, 6, 2]  # 35 examples: halves of 17 and 18 rows


@pytest.mark.parametrize("kind", list(KINDS))
def test_batch_cut_in_halves_for_two_threads_gives_the_same_results(kind, monkeypatch):
    """A batch large enough has its time loops run in two halves on two threads
    (``_cells.row_parts``, found once per call: the backward runs on the forward's parts):
    outputs, final states and every gradient as from one loop."""
    from netgraph.layers import _cells

    net = make_graph(kind)
    data = data_for(kind, lens=SPLIT_LENS)
    wants = ["Output", *["Final" + p for p in state_ports(kind)], NetPortGradient("Input"),
             *[NetPortGradient("Init" + p) for p in state_ports(kind)],
             *[NetArrayGradient(["rnn", g + a]) for g in KINDS[kind][1]
               for a in ("InputWeights", "StateWeights", "Biases")]]
    whole = net(data, wants, dtype=np.float64)
    parts = []
    real_row_parts = _cells.row_parts
    monkeypatch.setattr(_cells, "SPLIT_STEP_FLOPS", 0)
    monkeypatch.setattr(_cells, "row_parts", lambda *shape: parts.append(real_row_parts(*shape))
                        or parts[-1])
    split = net(data, wants, dtype=np.float64)
    assert parts == [[slice(0, 17), slice(17, 35)]]
    terms = max(SPLIT_LENS) * (K + N + 1) + sum(SPLIT_LENS)
    for a, b in zip(split, whole, strict=True):
        for u, v in zip(a if isinstance(a, list) else [a], b if isinstance(b, list) else [b],
                        strict=True):
            assert_close(u, v, dtype=np.float64, reduction=terms)
    assert not np.allclose(split[0][0], split[0][1][:4])  # the examples differ


@pytest.mark.parametrize("kind", list(KINDS))
def test_central_differences_with_the_batch_in_halves(kind, monkeypatch):
    from netgraph.layers import _cells

    monkeypatch.setattr(_cells, "SPLIT_STEP_FLOPS", 0)
    monkeypatch.setattr(_cells, "PART_ROWS", 1)
    assert _cells.row_parts(3, 1, 4) == [slice(0, 1), slice(1, 3)]
    fd_check(make_graph(kind), data_for(kind))


def test_row_parts_only_for_large_per_step_products():
    from netgraph.layers import _cells

    # LSTM, 64 rows: a half's step is 2 * 32 * n * 4n FLOPs, 4.2e6 at n = 128
    assert _cells.row_parts(64, 128, 4 * 128) == [slice(0, 32), slice(32, 64)]
    assert _cells.row_parts(64, 96, 4 * 96) == [slice(0, 64)]
    assert _cells.row_parts(31, 512, 4 * 512) == [slice(0, 31)]  # < 2 x 16
