"""Static, bidirectional shape inference: sizes flow downstream and upstream (through chains,
NetMapOperator, SequenceLastLayer, CatenateLayer sums and EmbeddingLayer's Index(n)), partial
results before initialization, conflicts reported with both sides, and length variables."""

import numpy as np
import pytest
from tolerance import assert_close

from netgraph import (
    Automatic,
    CatenateLayer,
    ElementwiseLayer,
    EmbeddingLayer,
    Index,
    InputDataError,
    LinearLayer,
    NetChain,
    NetExtract,
    NetGraph,
    NetInitialize,
    NetMapOperator,
    NetPort,
    NetReplacePart,
    SequenceLastLayer,
    SequenceReverseLayer,
    ShapeError,
    SpecificationError,
    ThreadingLayer,
    TotalLayer,
)

RNG = np.random.default_rng(3)


def shapes(net, node):
    return NetExtract(net, [node, "Input"]), NetExtract(net, [node, "Output"])


# ----------------------------------------------------------------------------- flow
def test_a_size_known_downstream_flows_upstream():
    c = NetChain([LinearLayer(), ElementwiseLayer("Tanh"), LinearLayer(3, Input=4)])
    assert shapes(c, 0) == ((Automatic,), (4,))
    assert shapes(c, 1) == ((4,), (4,))
    assert shapes(c, 2) == ((4,), (3,))
    assert NetExtract(c, "Output") == (3,)
    # the first layer's input size is the only thing left open
    sized = NetInitialize(NetReplacePart(c, {"Input": 5}), seed=0)
    assert NetExtract(sized, [0, "Weights"]).shape == (4, 5)
    assert NetExtract(sized, [2, "Weights"]).shape == (3, 4)


def test_sizes_flow_downstream_and_from_the_graphs_output_spec():
    c = NetChain([LinearLayer(4), "Tanh", LinearLayer()], Input=5, Output=3)
    assert shapes(c, 1) == ((4,), (4,))
    assert shapes(c, 2) == ((4,), (3,))
    assert NetExtract(NetInitialize(c, seed=0), [2, "Weights"]).shape == (3, 4)


def test_inference_through_net_map_operator_and_sequence_last():
    net = NetChain({"map": NetMapOperator(LinearLayer()), "last": SequenceLastLayer(),
                    "head": LinearLayer(3, Input=7)}, Input=("Varying", 5))
    assert NetExtract(net, ["map", "Net", "Input"]) == (5,)
    assert NetExtract(net, ["map", "Net", "Output"]) == (7,)
    assert shapes(net, "map") == (("Varying", 5), ("Varying", 7))
    assert shapes(net, "last") == (("Varying", 7), (7,))
    net = NetInitialize(net, seed=1)
    assert NetExtract(net, ["map", "Net", "Weights"]).shape == (7, 5)
    # and the inferred net computes: head(last(map(x)))
    x = RNG.standard_normal((4, 5))
    Wm, bm, Wh, bh = (NetExtract(net, p).astype(np.float64) for p in (
        ["map", "Net", "Weights"], ["map", "Net", "Biases"], ["head", "Weights"], ["head", "Biases"]))
    assert_close(net(x), Wh @ (Wm @ x[-1] + bm) + bh, dtype=np.float32, reduction=6 + 8)


def test_sequence_last_relates_element_shapes_both_ways():
    assert NetExtract(NetChain([SequenceLastLayer(), LinearLayer(3, Input=7)]), "Input") == \
        ("Varying", 7)
    assert NetExtract(SequenceLastLayer(Input=("Varying", 5, 3)), "Output") == (5, 3)
    # a fixed length is a valid sequence length
    assert NetExtract(NetChain([SequenceLastLayer()], Input=(4, 3)), "Output") == (3,)


def test_catenate_sizes_add_up_in_both_directions():
    fwd = NetGraph({"a": LinearLayer(3, Input=5), "b": LinearLayer(4, Input=5),
                    "c": CatenateLayer()}, [(["a", "b"], "c")])
    assert NetExtract(fwd, "Output") == (7,)
    back = NetGraph({"a": LinearLayer(3, Input=5), "b": LinearLayer(Input=5), "c": CatenateLayer(),
                     "o": LinearLayer(2, Input=11)}, [(["a", "b"], "c", "o")])
    assert NetExtract(back, ["b", "Output"]) == (8,)
    assert NetExtract(NetInitialize(back, seed=2), ["b", "Weights"]).shape == (8, 5)
    with pytest.raises(ShapeError) as e:
        NetGraph({"a": LinearLayer(3, Input=5), "b": LinearLayer(4, Input=5),
                  "c": CatenateLayer(), "o": LinearLayer(2, Input=8)}, [(["a", "b"], "c", "o")])
    assert "'c'" in str(e.value) and "'o'" in str(e.value) and "8" in str(e.value)
    assert "7" in str(e.value)


def test_embedding_index_fixes_the_number_of_rows():
    net = NetChain({"emb": EmbeddingLayer(3), "last": SequenceLastLayer()},
                   Input=("Varying", Index(6)))
    assert NetExtract(net, ["emb", "Weights"]) is None
    assert NetExtract(net, "Output") == (3,)
    assert NetExtract(NetInitialize(net, seed=0), ["emb", "Weights"]).shape == (6, 3)
    # and the other way: n given, the input displays as indices
    assert NetExtract(EmbeddingLayer(3, 5), "Input") == ("Varying", Index(5))
    with pytest.raises(ShapeError) as e:
        NetChain({"emb": EmbeddingLayer(3, 4)}, Input=("Varying", Index(6)))
    assert "Index(6)" in str(e.value) and "4" in str(e.value) and "'emb'" in str(e.value)


def test_partial_results_before_initialization():
    c = NetChain({"a": LinearLayer(5), "t": "Tanh", "b": LinearLayer()})
    assert NetExtract(c, "Input") == (Automatic,)
    assert NetExtract(c, "Output") == (Automatic,)
    assert shapes(c, "t") == ((5,), (5,))
    assert NetExtract(c, ["a", "Weights"]) is None
    with pytest.raises(SpecificationError) as e:
        NetInitialize(c)
    assert "Weights" in str(e.value) and "'a'" in str(e.value)
    assert NetExtract(ElementwiseLayer("Tanh"), "Output") is Automatic


# ----------------------------------------------------------------------------- conflicts
def check_both_sides(err, *parts):
    msg = str(err.value)
    for p in parts:
        assert p in msg, f"{p!r} not in {msg!r}"


def test_chain_conflict_names_both_nodes_ports_and_shapes():
    with pytest.raises(ShapeError) as e:
        NetChain({"lin": LinearLayer(3, Input=5), "tanh": ElementwiseLayer("Tanh", Input=7)})
    check_both_sides(e, "'lin'", "'Output'", "(3,)", "'tanh'", "'Input'", "(7,)")


def test_nested_conflict_names_the_node_paths():
    inner = NetGraph({"g": NetChain({"x": LinearLayer(3)})}, [])
    with pytest.raises(ShapeError) as e:
        NetChain({"outer": inner, "y": ElementwiseLayer("Tanh", Input=4)})
    check_both_sides(e, "'outer'", "'outer'/'g'/'x'", "'Output'", "(3,)", "'y'", "'Input'",
                     "(4,)")


def test_graph_port_spec_conflict():
    with pytest.raises(ShapeError) as e:
        NetChain({"lin": LinearLayer(3), "t": ElementwiseLayer("Tanh")}, Input=5, Output=4)
    check_both_sides(e, "'t'", "port 'Output' of net", "(3,)", "(4,)")


@pytest.mark.parametrize("first, second, why", [
    ((3, 4), (3, 5), "size 4"),
    ((3, 4), (3,), "rank 2 versus rank 1"),
    ("Real", 3, "rank 0 versus rank 1"),
    ((3, Index(3)), (3, Index(4)), "Index(3)"),
    ((3, "Integer"), (3, "Real"), "Integer"),
])
def test_structural_conflicts(first, second, why):
    # integers pass through a SequenceReverseLayer; an ElementwiseLayer's output is real
    integers = isinstance(first, tuple) and not isinstance(first[-1], int)
    p, q = ((SequenceReverseLayer(Input=first), SequenceReverseLayer(Input=second)) if integers
            else (ElementwiseLayer("Sin", Input=first), ElementwiseLayer("Cos", Input=second)))
    with pytest.raises(ShapeError) as e:
        NetChain({"p": p, "q": q})
    check_both_sides(e, why, "'p'", "'q'", repr(first) if not isinstance(first, tuple)
                     else "(3", "Output", "Input")


def test_fan_in_conflict_names_both_sources():
    with pytest.raises(ShapeError) as e:
        NetGraph({"a": LinearLayer(3, Input=5), "b": LinearLayer(4, Input=5),
                  "t": TotalLayer()}, [(["a", "b"], "t")])
    check_both_sides(e, "'b'", "'t'", "'Input2'", "(4,)", "(3,)", "'a'")


def test_replacement_conflict_names_both_sides_and_leaves_the_net():
    c = NetChain({"lin": LinearLayer(3), "t": ElementwiseLayer("Tanh")})
    with pytest.raises(ShapeError) as e:
        NetReplacePart(c, {("t", "Input"): 4})
    check_both_sides(e, "'lin'", "'t'", "(3,)", "(4,)")
    assert shapes(c, "t") == ((3,), (3,))


# ----------------------------------------------------------------------------- lengths
def test_every_varying_has_its_own_length():
    g = NetGraph({"a": SequenceLastLayer(), "b": SequenceLastLayer(), "t": TotalLayer()},
                 [(NetPort("X"), "a"), (NetPort("Y"), "b"), (["a", "b"], "t")],
                 X=("Varying", 3), Y=("Varying", 3))
    x, y = RNG.standard_normal((5, 3)), RNG.standard_normal((7, 3))
    scale = max(np.abs(x).max(), np.abs(y).max())  # the terms of the sums
    assert_close(g({"X": x, "Y": y}), x[-1] + y[-1], dtype=np.float32, reduction=2, scale=scale)
    got = g({"X": [x, x[:2]], "Y": [y[:4], y]})
    assert_close(got, [x[-1] + y[3], x[1] + y[-1]], dtype=np.float32, reduction=2, scale=scale)


@pytest.mark.parametrize("layer", [TotalLayer(), ThreadingLayer("Times")])
def test_inputs_of_an_elementwise_combination_tie_their_lengths(layer):
    g = NetGraph({"t": layer}, [], Input1=("Varying", 3), Input2=("Varying", 3))
    assert NetExtract(g, "Output") == ("Varying", 3)
    a, b = RNG.standard_normal((5, 3)), RNG.standard_normal((5, 3))
    expected = a + b if isinstance(layer, TotalLayer) else a * b
    assert_close(g({"Input1": a, "Input2": b}), expected, dtype=np.float32, reduction=2,
                 scale=max(np.abs(a).max(), np.abs(b).max(), np.abs(a * b).max()))
    with pytest.raises(InputDataError) as e:
        g({"Input1": a, "Input2": RNG.standard_normal((7, 3))})
    check_both_sides(e, "'Input1'", "'Input2'", "5", "7")
    with pytest.raises(InputDataError) as e:  # per example, inside a batch
        g({"Input1": [a, a[:2]], "Input2": [b, b[:3]]})
    check_both_sides(e, "'Input1'", "'Input2'")


def test_catenating_features_of_two_sequences_ties_their_lengths():
    g = NetGraph({"a": ElementwiseLayer("Tanh"), "b": ElementwiseLayer("Sin"),
                  "c": CatenateLayer(level=-1)},
                 [(NetPort("X"), "a"), (NetPort("Y"), "b"), (["a", "b"], "c")],
                 X=("Varying", 3), Y=("Varying", 4))
    assert NetExtract(g, "Output") == ("Varying", 7)
    x, y = RNG.standard_normal((5, 3)), RNG.standard_normal((5, 4))
    assert_close(g({"X": x, "Y": y}), np.concatenate([np.tanh(x), np.sin(y)], 1), dtype=np.float32)
    with pytest.raises(InputDataError, match="'Y'"):
        g({"X": x, "Y": RNG.standard_normal((6, 4))})


def test_a_layer_keeps_the_length_of_its_input():
    th = ElementwiseLayer("Tanh", Input=("Varying", 2))
    xs = [RNG.standard_normal((n, 2)) for n in (3, 7, 5)]
    out = th(xs)
    assert [o.shape for o in out] == [(3, 2), (7, 2), (5, 2)]
    for o, x in zip(out, xs):
        assert_close(o, np.tanh(x), dtype=np.float32)
