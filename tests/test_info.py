"""Inspection: net.summary(), repr, net.plot() and NetInformation, on initialized and
uninitialized nets (shapes partly unknown included); values computed independently."""

import math
import sys

import numpy as np
import pytest

from netgraph import (
    Automatic,
    CatenateLayer,
    ElementwiseLayer,
    EmbeddingLayer,
    GatedRecurrentLayer,
    Index,
    LinearLayer,
    NetChain,
    NetError,
    NetExtract,
    NetGraph,
    NetInformation,
    NetInitialize,
    NetMapOperator,
    NetPort,
    SequenceAttentionLayer,
    SequenceLastLayer,
    SoftmaxLayer,
    ThreadingLayer,
    TotalLayer,
)
from netgraph.info import array_shapes, summary
from netgraph.plotting import plot_data


def seq2seq():
    """Encoder/decoder with attention: nested chains, a scoring net, an operator, a fan-in."""
    return NetGraph({
        "enc": NetChain({"embed": EmbeddingLayer(8, 20), "rnn": GatedRecurrentLayer(6)}),
        "dec": NetChain([EmbeddingLayer(5, 12), GatedRecurrentLayer(6)]),
        "attend": SequenceAttentionLayer(),
        "cat": CatenateLayer(level=-1),
        "proj": NetMapOperator(LinearLayer(12)),
        "softmax": SoftmaxLayer(),
    }, [(NetPort("Input"), "enc", NetPort("attend", "Input")),
        (NetPort("Target"), "dec", NetPort("attend", "Query")),
        (["attend", "dec"], "cat", "proj", "softmax")],
        Input=("Varying", Index(20)), Target=("Varying", Index(12)))


def gru_elements(n, d):
    return 3 * (n * d + n * n + n)


SEQ2SEQ_ELEMENTS = (20 * 8 + gru_elements(6, 8) + 12 * 5 + gru_elements(6, 5) + 6 * 6
                    + 12 * 12 + 12)


def partial():
    """A chain whose input size nobody gave: the first Weights are (4, ?)."""
    return NetChain({"lin": LinearLayer(4), "act": ElementwiseLayer("Tanh"),
                     "out": LinearLayer(3)})


def cells(text, row_start):
    """The table rows (lines after the rule) whose Node column starts with ``row_start``."""
    return [line for line in text.splitlines() if line.startswith(row_start)]


def kind_of(text, line):
    """The Kind column of a table row (columns located by the rule under the header)."""
    lines = text.splitlines()
    rule = lines[next(i for i, x in enumerate(lines) if x.startswith("Node ")) + 1]
    starts = [i for i in range(len(rule)) if rule[i] == "-" and (i == 0 or rule[i - 1] == " ")]
    return line[starts[2]:starts[3]].strip() if line.startswith(" ") or line[:1].isalnum() \
        else ""


# ------------------------------------------------------------------------- summary
def test_summary_lists_every_node_with_paths_types_ports_and_arrays(capsys):
    text = seq2seq().summary()
    assert isinstance(text, str)
    assert capsys.readouterr().out == ""
    for path in ["enc/embed", "enc/rnn", "dec/0", "dec/1", "attend/ScoringNet/Linear",
                 "attend/ScoringNet/Dot", "proj/Net", "cat", "softmax"]:
        assert cells(text, path + " "), path
    (row,) = cells(text, "attend/ScoringNet/Linear ")
    assert "LinearLayer" in row and "Input" in row and "(6,)" in row
    assert "AttentionWeights" in text and "('Varying', 'Varying')" in text
    assert "('Varying', Index(20))" in text and "('Varying', 12)" in text
    weights = [line for line in text.splitlines() if kind_of(text, line) == "array"]
    assert len(weights) == 23
    assert any("InputGateInputWeights" in w and "(6, 8)" in w and " 48 " in w for w in weights)
    head = text.splitlines()[0]
    assert head.startswith("NetGraph: 6 nodes, 11 layers, 23 arrays")
    assert f"{SEQ2SEQ_ELEMENTS:,} array elements" in head and "uninitialized" in head


def test_summary_columns_are_aligned():
    lines = seq2seq().summary().splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("Node "))
    rule = lines[header + 1]
    starts = [i for i in range(len(rule)) if rule[i] == "-" and (i == 0 or rule[i - 1] == " ")]
    assert len(starts) == 7
    for line in lines[header + 2:]:
        if not line:
            break
        for s in starts[1:]:
            assert line[s - 2:s] in ("  ", "") or len(line) < s, line


def test_summary_of_uninitialized_net_with_unknown_sizes():
    text = partial().summary()
    (lin,) = cells(text, "lin ")
    assert "(Automatic,)" in lin
    row = next(line for line in text.splitlines() if "Weights" in line and "(4, ?)" in line)
    assert row.split()[-2:] == ["?", "no"]
    assert "(3, 4)" in text  # the second Weights are known
    assert "1 array of unknown size" in text.splitlines()[0]


def test_summary_marks_initialized_arrays_and_bare_layers():
    net = NetInitialize(LinearLayer(3, Input=2), seed=0)
    text = net.summary()
    assert text.splitlines()[0] == ("LinearLayer: 1 layer, 2 arrays, 9 array elements, "
                                    "initialized")
    assert any("(3, 2)" in line and line.split()[-2:] == ["6", "yes"]
               for line in text.splitlines())
    assert summary(net) == text


def test_summary_of_a_net_without_arrays():
    text = NetChain([SoftmaxLayer()], Input=3).summary()
    assert "0 arrays" in text and "no arrays" in text


# ---------------------------------------------------------------------------- repr
@pytest.mark.parametrize("make", [seq2seq, partial, lambda: LinearLayer(3),
                                  lambda: NetInitialize(NetChain([2, "Tanh"], Input=3)),
                                  lambda: SequenceAttentionLayer("Dot")])
def test_repr_is_one_line(make):
    net = make()
    text = repr(net)
    assert "\n" not in text and text.startswith(type(net).__name__ + "(")
    for p in net.input_ports + net.output_ports:
        assert p in text


def test_repr_shows_node_count_shapes_and_state():
    assert repr(seq2seq()) == (
        "NetGraph(<6 nodes>; Input: ('Varying', Index(20)), Target: ('Varying', Index(12)) -> "
        "Output: ('Varying', 12), uninitialized)")
    assert repr(NetInitialize(NetChain([2, "Tanh"], Input=3))) == (
        "NetChain(<2 nodes>; Input: (3,) -> Output: (2,), initialized)")
    assert repr(NetChain(["Tanh"], Input=3)).endswith("Output: (3,))")


# ---------------------------------------------------------------------------- plot
def _texts(fig, kind):
    return [t.get_text() for t in fig.axes[0].texts if (t.get_gid() or "").startswith(kind)]


def test_plot_collapsed_has_a_label_per_vertex_and_edge():
    pytest.importorskip("matplotlib")
    from matplotlib.figure import Figure

    fig = seq2seq().plot()
    assert isinstance(fig, Figure)
    nodes = _texts(fig, "node:")
    assert len(nodes) == 2 + 6 + 1  # graph inputs, nodes, graph output
    assert {"Input", "Target", "Output"} <= set(nodes)
    assert any(t.startswith("enc\nNetChain (2 nodes)") for t in nodes)
    edges = _texts(fig, "edge:")
    assert len(edges) == 9
    assert "('Varying', Index(20))" in edges and "('Varying', 12)" in edges
    assert sum("-> Query" in e for e in edges) == 1
    assert _texts(fig, "title") == ["NetGraph (6 nodes)"]


def test_plot_expanded_draws_inside_nested_graphs(tmp_path):
    pytest.importorskip("matplotlib")
    fig = seq2seq().plot(expand=True)
    nodes = _texts(fig, "node:")
    assert len(nodes) == 2 + 8 + 1
    assert any(t.startswith("enc/embed\nEmbeddingLayer") for t in nodes)
    assert any(t.startswith("dec/1\nGatedRecurrentLayer") for t in nodes)
    assert len(_texts(fig, "edge:")) == 11
    fig.savefig(tmp_path / "net.png", dpi=60)
    assert (tmp_path / "net.png").stat().st_size > 1000


def test_plot_parallel_edges_bare_layer_and_optional_output():
    pytest.importorskip("matplotlib")
    square = NetGraph({"lin": LinearLayer(3), "sq": ThreadingLayer("Times")},
                      [(["lin", "lin"], "sq")], Input=2)
    edges = _texts(square.plot(), "edge:")
    assert sorted(edges) == ["(2,)", "(3,)", "(3,)\n-> Input1", "(3,)\n-> Input2"]
    fig = LinearLayer(3, Input=4).plot()
    assert _texts(fig, "node:") == ["Input", "LinearLayer\nn=3, biases=True", "Output"]
    rnn = NetGraph({"rnn": GatedRecurrentLayer(4), "last": SequenceLastLayer()},
                   [("rnn", "last"), (NetPort("rnn", "State"), NetPort("Final"))],
                   Input=("Varying", 3))
    edges = _texts(rnn.plot(), "edge:")
    assert "(4,)\nState" in edges and "('Varying', 4)\nOutput" in edges


def test_plot_data_passes_through_expanded_graph_ports():
    inner = NetGraph({"a": LinearLayer(3), "b": TotalLayer()},
                     [(["a", NetPort("Skip")], "b")], Input=2, Skip=3)
    net = NetChain({"pre": LinearLayer(2), "inner": inner}, Input=4)
    vertices, edges = plot_data(net, expand=True)
    assert set(vertices) == {("in", "Input"), ("in", "Skip"), ("out", "Output"),
                             ("node", ("pre",)), ("node", ("inner", "a")),
                             ("node", ("inner", "b"))}
    pairs = {(a, b) for a, b, _ in edges}
    assert (("in", "Skip"), ("node", ("inner", "b"))) in pairs
    assert (("node", ("pre",)), ("node", ("inner", "a"))) in pairs
    assert len(edges) == 5


def test_plot_without_matplotlib_raises_neterror(monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    with pytest.raises(NetError, match="matplotlib"):
        LinearLayer(3, Input=2).plot()


# ------------------------------------------------------------------ NetInformation
def test_netinformation_counts_layers_at_every_level():
    net = seq2seq()
    assert NetInformation(net, "LayersCount") == 11
    assert NetInformation(net, "LayerTypeCounts") == {
        "EmbeddingLayer": 2, "GatedRecurrentLayer": 2, "SequenceAttentionLayer": 1,
        "LinearLayer": 2, "DotLayer": 1, "CatenateLayer": 1, "NetMapOperator": 1,
        "SoftmaxLayer": 1}
    layers = NetInformation(net, "Layers")
    assert ("attend", "ScoringNet", "Dot") in layers and ("proj", "Net") in layers
    assert len(layers) == 11 and ("enc",) not in layers


def test_netinformation_arrays_match_netextract():
    net = NetInitialize(seq2seq(), seed=3)
    dims = NetInformation(net, "ArraysDimensions")
    arrays = NetInformation(net, "Arrays")
    assert NetInformation(net, "ArraysCount") == len(dims) == len(arrays) == 23
    total = 0
    for path, shape in dims.items():
        value = NetExtract(net, list(path))
        assert value.shape == shape, path
        np.testing.assert_array_equal(arrays[path], value)
        total += value.size
    assert NetInformation(net, "ArraysTotalElementCount") == total == SEQ2SEQ_ELEMENTS
    assert dims[("attend", "ScoringNet", "Linear", "Weights")] == (6, 6)
    assert dims[("enc", "rnn", "InputGateInputWeights")] == (6, 8)
    # before initialization: the same shapes, from inference
    assert NetInformation(seq2seq(), "ArraysDimensions") == dims
    assert NetInformation(seq2seq(), "ArraysTotalElementCount") == SEQ2SEQ_ELEMENTS
    assert all(v is None for v in NetInformation(seq2seq(), "Arrays").values())


def test_netinformation_unknown_sizes_are_automatic():
    net = partial()
    assert NetInformation(net, "ArraysDimensions") == {
        ("lin", "Weights"): (4, Automatic), ("lin", "Biases"): (4,),
        ("out", "Weights"): (3, 4), ("out", "Biases"): (3,)}
    assert NetInformation(net, "ArraysTotalElementCount") is Automatic
    assert array_shapes(net)[("lin", "Weights")] == (4, None)


def test_netinformation_ports_summary_and_graphic():
    net = seq2seq()
    assert NetInformation(net, "InputPorts") == {"Input": ("Varying", Index(20)),
                                                 "Target": ("Varying", Index(12))}
    assert NetInformation(net, "OutputPorts") == {"Output": ("Varying", 12)}
    assert NetInformation(net, "Summary") == net.summary()
    rnn = GatedRecurrentLayer(4, Input=("Varying", 2))
    assert NetInformation(rnn, "OutputPorts") == {"Output": ("Varying", 4)}
    assert NetInformation(LinearLayer(3), "InputPorts") == {"Input": (Automatic,)}
    pytest.importorskip("matplotlib")
    from matplotlib.figure import Figure

    assert isinstance(NetInformation(net, "SummaryGraphic"), Figure)


def test_netinformation_layer_and_elements_of_a_bare_layer():
    layer = LinearLayer(5, Input=(2, 3))
    assert NetInformation(layer, "LayersCount") == 1
    assert NetInformation(layer, "ArraysDimensions") == {("Weights",): (5, 6), ("Biases",): (5,)}
    assert NetInformation(layer, "ArraysTotalElementCount") == math.prod((5, 6)) + 5


def test_netinformation_errors():
    net = partial()
    assert "LayersCount" in NetInformation(net, "Properties")
    with pytest.raises(NetError, match="unknown property 'Layer'.*LayersCount"):
        NetInformation(net, "Layer")
    with pytest.raises(NetError, match="unknown property"):
        NetInformation(net, ["LayersCount"])
    with pytest.raises(NetError, match="needs a net"):
        NetInformation("net", "LayersCount")
