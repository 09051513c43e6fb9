"""NetTake: sub-chains and sub-graphs whose values equal the original's interior values
(read with ``net(data, NetPort(layer, port))``), endpoints of every kind, and errors."""

import numpy as np
import pytest
from tolerance import assert_close

from netgraph import (
    ElementwiseLayer,
    GatedRecurrentLayer,
    LinearLayer,
    NetChain,
    NetError,
    NetExtract,
    NetGraph,
    NetInitialize,
    NetMapOperator,
    NetPort,
    NetTake,
    PortError,
    SequenceAttentionLayer,
    SequenceLastLayer,
    SoftmaxLayer,
    ThreadingLayer,
)

F64 = np.float64  # parts and originals are compared in float64, to float64 rounding
# no value below sums more than 64 terms along its chain (the attention graph: 7 for dec,
# 20 for a bilinear score, 2 × 6 for the softmax and weighted sum, 5 for out)
TERMS = 64
rng = np.random.default_rng(7)


def chain():
    return NetInitialize(NetChain([LinearLayer(5), "Tanh", LinearLayer(3), SoftmaxLayer()],
                                  Input=4), seed=1)


def attention_graph():
    """Input -> enc -> attend.Input; Query -> dec -> attend.Query; attend -> last -> out."""
    return NetInitialize(NetGraph({
        "enc": NetMapOperator(LinearLayer(4)),
        "dec": NetMapOperator(NetChain([LinearLayer(5), "Tanh"])),
        "attend": SequenceAttentionLayer(),
        "last": SequenceLastLayer(),
        "out": LinearLayer(2),
    }, [(NetPort("Input"), "enc", NetPort("attend", "Input")),
        (NetPort("Query"), "dec", NetPort("attend", "Query")), ("attend", "last", "out")],
        Input=("Varying", 3), Query=("Varying", 6)), seed=2)


def attention_data(batch=False):
    if batch:
        return {"Input": [rng.standard_normal((n, 3)) for n in (4, 2, 6)],
                "Query": [rng.standard_normal((m, 6)) for m in (3, 5, 1)]}
    return {"Input": rng.standard_normal((5, 3)), "Query": rng.standard_normal((4, 6))}


def close(got, want):
    if isinstance(want, list):
        assert len(got) == len(want)
        for g, w in zip(got, want):
            assert_close(g, w, dtype=F64, reduction=TERMS)
    else:
        assert_close(got, want, dtype=F64, reduction=TERMS)


# -------------------------------------------------------------------------- chains
def test_chain_middle_equals_interior_values():
    net = chain()
    part = NetTake(net, 1, 2)
    assert isinstance(part, NetChain) and len(part._nodes) == 2
    assert part.port_shape("Input") == (5,) and part.port_shape("Output") == (3,)
    x = rng.standard_normal((7, 4))
    close(part(net(x, NetPort(0, "Output"), dtype=F64), dtype=F64),
          net(x, NetPort(2, "Output"), dtype=F64))


def test_chain_endpoints_negative_single_and_graph_ports():
    net = chain()
    x = rng.standard_normal(4)
    close(NetTake(net, -2, -1)(net(x, NetPort(1, "Output"), dtype=F64), dtype=F64), net(x, dtype=F64))
    single = NetTake(net, 2, 2)
    assert isinstance(single, NetChain) and len(single._nodes) == 1
    close(single(net(x, NetPort(1, "Output"), dtype=F64), dtype=F64),
          net(x, NetPort(2, "Output"), dtype=F64))
    whole = NetTake(net, NetPort("Input"), NetPort("Output"))
    assert isinstance(whole, NetChain) and len(whole._nodes) == 4
    close(whole(x, dtype=F64), net(x, dtype=F64))
    close(NetTake(net, NetPort(1, "Input"), NetPort(2, "Output"))(
        net(x, NetPort(0, "Output"), dtype=F64), dtype=F64), net(x, NetPort(2, "Output"), dtype=F64))


def test_chain_keeps_names_arrays_and_shapes_given_at_the_top():
    net = NetInitialize(NetChain({"a": LinearLayer(5), "b": ElementwiseLayer("Tanh"),
                                  "c": LinearLayer(2)}, Input=3), seed=0)
    part = NetTake(net, "b", "c")
    assert list(part._nodes) == ["b", "c"]
    assert part.port_shape("Input") == (5,)  # known only through the original's Input=3
    np.testing.assert_array_equal(NetExtract(part, ["c", "Weights"]),
                                  NetExtract(net, ["c", "Weights"]))
    first = NetTake(net, "a", "a")
    assert first.port_shape("Input") == (3,) and first.port_shape("Output") == (5,)


def test_take_leaves_the_original_untouched():
    net = chain()
    before = repr(net), NetExtract(net, [2, "Weights"])
    NetTake(net, 1, 3)
    assert repr(net) == before[0]
    np.testing.assert_array_equal(NetExtract(net, [2, "Weights"]), before[1])


def test_list_built_graph_is_renumbered():
    net = NetInitialize(NetGraph([LinearLayer(3), ElementwiseLayer("Tanh"), LinearLayer(2)],
                                 [(0, 1, 2)], Input=4), seed=0)
    part = NetTake(net, 1, 2)
    assert list(part._nodes) == [0, 1] and not isinstance(part, NetChain)
    x = rng.standard_normal(4)
    close(part(net(x, NetPort(0, "Output"), dtype=F64), dtype=F64), net(x, dtype=F64))


# -------------------------------------------------------------------------- graphs
@pytest.mark.parametrize("batch", [False, True])
def test_graph_encoder_to_attention(batch):
    net = attention_graph()
    data = attention_data(batch)
    part = NetTake(net, "enc", "attend")
    assert set(part._nodes) == {"enc", "attend"}
    assert part.input_ports == ("Input", "Query")  # the graph input keeps its name
    assert part.output_ports == ("Output",)
    query = net(data, NetPort("dec", "Output"), dtype=F64)
    close(part({"Input": data["Input"], "Query": query}, dtype=F64),
          net(data, NetPort("attend", "Output"), dtype=F64))


def test_graph_from_graph_input_to_graph_output():
    net = attention_graph()
    data = attention_data()
    part = NetTake(net, NetPort("Query"), NetPort("Output"))
    assert set(part._nodes) == {"dec", "attend", "last", "out"}
    assert set(part.input_ports) == {"Query", "Input"} and part.output_ports == ("Output",)
    encoded = net(data, NetPort("enc", "Output"), dtype=F64)
    close(part({"Query": data["Query"], "Input": encoded}, dtype=F64), net(data, dtype=F64))


def test_graph_whole_net_and_hidden_output_end():
    net = attention_graph()
    data = attention_data()
    whole = NetTake(net, NetPort("Input"), "out")
    assert set(whole._nodes) == {"enc", "attend", "last", "out"}  # dec is not on the path
    part = NetTake(net, "attend", NetPort("attend", "AttentionWeights"))
    assert set(part.output_ports) == {"Output", "AttentionWeights"}
    ins = {"Input": net(data, NetPort("enc", "Output"), dtype=F64),
           "Query": net(data, NetPort("dec", "Output"), dtype=F64)}
    close(part(ins, "AttentionWeights", dtype=F64),
          net(data, NetPort("attend", "AttentionWeights"), dtype=F64))
    close(part(ins, "Output", dtype=F64), net(data, NetPort("attend", "Output"), dtype=F64))


def test_graph_diamond_cut_input_becomes_graph_port():
    net = NetInitialize(NetGraph({
        "a": LinearLayer(4), "b": ElementwiseLayer("Tanh"), "c": LinearLayer(4),
        "d": ThreadingLayer("Plus"), "e": SoftmaxLayer()},
        [("a", "b"), ("a", "c"), (["b", "c"], "d"), ("d", "e")], Input=3), seed=4)
    x = rng.standard_normal((6, 3))
    assert set(NetTake(net, "a", "d")._nodes) == {"a", "b", "c", "d"}
    part = NetTake(net, "b", "e")
    assert list(part._nodes) == ["b", "d", "e"]
    assert part.input_ports == ("Input", "Input2")  # b's Input, d's Input2 (was c's output)
    got = part({"Input": net(x, NetPort("a", "Output"), dtype=F64),
                "Input2": net(x, NetPort("c", "Output"), dtype=F64)}, dtype=F64)
    close(got, net(x, dtype=F64))


def test_graph_optional_state_output_as_end():
    net = NetInitialize(NetGraph({"pre": NetMapOperator(LinearLayer(3)),
                                  "rnn": GatedRecurrentLayer(4), "last": SequenceLastLayer()},
                                 [("pre", "rnn", "last")], Input=("Varying", 2)), seed=5)
    part = NetTake(net, "pre", NetPort("rnn", "State"))
    assert list(part._nodes) == ["pre", "rnn"]
    assert set(part.output_ports) == {"Output", "State"}
    x = rng.standard_normal((5, 2))
    # the final state is the last output of the sequence
    close(part(x, "State", dtype=F64), net(x, dtype=F64))
    close(part(x, "Output", dtype=F64), net(x, NetPort("rnn", "Output"), dtype=F64))


# -------------------------------------------------------------------------- errors
@pytest.mark.parametrize("start, end, error, match", [
    (3, 1, NetError, "cannot be reached"),
    ("nope", 1, PortError, "'nope' is not a node"),
    (0, 9, PortError, "9 is not a node"),
    (NetPort(1, "Foo"), 2, PortError, "no port 'Foo'"),
    (0, NetPort(1, "Input"), PortError, "no output port 'Input'"),
    (NetPort("Output"), 2, PortError, "not an input port"),
    (0, NetPort("Input"), PortError, "not an output port"),
    (NetPort((0, "x"), "Output"), 2, PortError, "nested"),
    (1.5, 2, NetError, "1.5"),
    (True, 2, NetError, "True"),
])
def test_bad_endpoints(start, end, error, match):
    with pytest.raises(error, match=match):
        NetTake(chain(), start, end)


def test_end_on_another_branch_and_non_graphs():
    net = attention_graph()
    with pytest.raises(NetError, match="another branch"):
        NetTake(net, "dec", "enc")
    with pytest.raises(NetError, match="NetGraph or NetChain"):
        NetTake(LinearLayer(3), 0, 0)
