"""NetGraph / NetChain: the edge grammar, dangling-port rules, nesting, structural errors,
values against NumPy, fan-out gradients against central differences, interior values and
immutability."""

import numpy as np
import pytest
from helpers import assert_same_net, net_snapshot
from tolerance import assert_close

from netgraph import (
    CatenateLayer,
    DotLayer,
    ElementwiseLayer,
    LinearLayer,
    NetArrayGradient,
    NetChain,
    NetError,
    NetExtract,
    NetGraph,
    NetInitialize,
    NetPort,
    NetPortGradient,
    NetReplacePart,
    PortError,
    ReshapeLayer,
    ThreadingLayer,
    TotalLayer,
)
from netgraph.numdiff import central_differences

RNG = np.random.default_rng(7)


def W(net, *path):
    return NetExtract(net, list(path)).astype(np.float64)


def lin(net, path, x):
    return W(net, *path, "Weights") @ x + W(net, *path, "Biases")


# no value of the small nets below sums more than 32 terms along its chain of layers (the
# deepest: Linear 11 -> 3, Linear 3 -> 5, Linear 5 -> 7, i.e. 12 + 4 + 6)
TERMS = 32


def close(got, want):
    """``got`` (float32 or float64, as the net returned it) equals the float64 reference
    ``want`` to the rounding of ``got``'s dtype."""
    assert_close(got, want, dtype=np.asarray(got).dtype, reduction=TERMS)


def central_diff(f, x, h=1e-6):
    """Central differences of ``f(x)`` (``netgraph.numdiff``) at a float64 copy of ``x``."""
    x = np.array(x, dtype=np.float64)
    return central_differences(lambda: f(x), x, h=h)


# ----------------------------------------------------------------------------- edge grammar
def test_chain_of_three_endpoints():
    g = NetInitialize(NetGraph({"a": LinearLayer(5, Input=3), "b": ElementwiseLayer("Tanh"),
                                "c": LinearLayer(7)}, [("a", "b", "c")]), seed=1)
    assert (g.input_ports, g.output_ports) == (("Input",), ("Output",))
    assert NetExtract(g, "Output") == (7,)
    x = RNG.standard_normal(3)
    close(g(x), lin(g, ["c"], np.tanh(lin(g, ["a"], x))))


def test_graph_ports_named_with_netport():
    g = NetInitialize(NetGraph({"a": LinearLayer(5)}, [(NetPort("x"), "a", NetPort("y"))], x=3),
                      seed=2)
    assert (g.input_ports, g.output_ports) == (("x",), ("y",))
    x = RNG.standard_normal(3)
    close(g({"x": x}), lin(g, ["a"], x))
    close(g({"x": x}, "y"), lin(g, ["a"], x))


def test_netport_layer_port_endpoints_and_order_of_named_inputs():
    # a (3, 5) matrix dotted with a 5-vector: swapping Input1/Input2 could not even infer
    layers = {"m": NetChain([LinearLayer(15), ReshapeLayer((3, 5))]), "v": LinearLayer(5),
              "d": DotLayer()}
    explicit = NetGraph(layers, [(NetPort("A"), "m", NetPort("d", "Input1")),
                                 (NetPort("B"), "v", NetPort("d", "Input2"))], A=7, B=11)
    fan_in = NetGraph(layers, [(NetPort("A"), "m"), (NetPort("B"), "v"), (["m", "v"], "d")],
                      A=7, B=11)
    for g in (explicit, fan_in):
        assert NetExtract(g, ["d", "Input1"]) == (3, 5)
        assert NetExtract(g, "Output") == (3,)
        g = NetInitialize(g, seed=3)
        a, b = RNG.standard_normal(7), RNG.standard_normal(11)
        M = lin(g, ["m", 0], a).reshape(3, 5)
        close(g({"A": a, "B": b}), M @ lin(g, ["v"], b))


def test_fan_in_into_variadic_layers_fills_inputs_in_order():
    a, b, c = LinearLayer(3, Input=7), LinearLayer(5, Input=7), LinearLayer(3, Input=7)
    cat = NetInitialize(NetGraph({"a": a, "b": b, "j": CatenateLayer()}, [(["b", "a"], "j")]),
                        seed=4)
    assert NetExtract(cat, "Output") == (8,)
    x = RNG.standard_normal(7)
    close(cat(x), np.concatenate([lin(cat, ["b"], x), lin(cat, ["a"], x)]))
    tot = NetInitialize(NetGraph({"a": a, "c": c, "t": TotalLayer()}, [(["a", "c", "c"], "t")]),
                        seed=5)
    assert NetExtract(tot, ["t", "Input3"]) == (3,)  # arity taken from the fan-in
    close(tot(x), lin(tot, ["a"], x) + 2 * lin(tot, ["c"], x))
    one = NetGraph({"a": a, "t": TotalLayer()}, [(["a"], "t")])  # a list of one is a fan-in
    assert one.input_ports == ("Input",) and NetExtract(one, ["t", "arity"]) == 1
    sub = NetInitialize(NetGraph({"a": a, "c": c, "s": ThreadingLayer("Subtract")},
                                 [(["c", "a"], "s")]), seed=6)
    close(sub(x), lin(sub, ["c"], x) - lin(sub, ["a"], x))


def test_int_keyed_list_graph():
    g = NetGraph([LinearLayer(5, Input=3), ElementwiseLayer("Tanh"), LinearLayer(7)],
                 [(0, 1, 2)])
    assert isinstance(NetExtract(g, 0), LinearLayer) and isinstance(NetExtract(g, -1), LinearLayer)
    g = NetInitialize(g, seed=8)
    x = RNG.standard_normal(3)
    hidden = lin(g, [0], x)
    close(g(x, NetPort(0, "Output")), hidden)
    close(g(x, NetPort(1, "Output")), np.tanh(hidden))
    close(g(x), lin(g, [2], np.tanh(hidden)))


def test_dangling_ports_become_graph_ports_with_their_own_names():
    g = NetGraph({"d": DotLayer()}, [], Input1=5, Input2=5)
    assert (g.input_ports, g.output_ports) == (("Input1", "Input2"), ("Output",))
    a, b = RNG.standard_normal(5), RNG.standard_normal(5)
    close(g({"Input1": a, "Input2": b}), a @ b)


def test_dangling_inputs_with_one_name_share_a_graph_input():
    g = NetInitialize(NetGraph({"a": LinearLayer(3), "b": LinearLayer(5)}, [], Input=7), seed=9)
    assert g.input_ports == ("Input",)
    assert g.output_ports == ("Output1", "Output2")
    assert NetExtract(g, "Output1") == (3,) and NetExtract(g, "Output2") == (5,)
    x = RNG.standard_normal(7)
    out = g(x)
    assert set(out) == {"Output1", "Output2"}
    close(out["Output1"], lin(g, ["a"], x))
    close(out["Output2"], lin(g, ["b"], x))


def test_dangling_outputs_are_numbered_in_node_order_not_execution_order():
    # "q" runs first but comes second in the node list
    g = NetInitialize(NetGraph({"p": ElementwiseLayer("Sin"), "q": LinearLayer(5, Input=3),
                                "r": ElementwiseLayer("Tanh")}, [("q", "p"), ("q", "r")]), seed=10)
    assert g.output_ports == ("Output1", "Output2")
    x = RNG.standard_normal(3)
    h = lin(g, ["q"], x)
    close(g(x, "Output1"), np.sin(h))
    close(g(x, "Output2"), np.tanh(h))


def test_nodes_may_be_named_in_and_out():
    g = NetInitialize(NetChain({"in": LinearLayer(5, Input=3), "out": LinearLayer(7)}), seed=11)
    assert NetExtract(g, ["out", "Input"]) == (5,)
    assert (g.input_ports, g.output_ports) == (("Input",), ("Output",))
    x = RNG.standard_normal(3)
    close(g(x), lin(g, ["out"], lin(g, ["in"], x)))


def nested():
    inner = NetGraph({"lin": LinearLayer(5), "act": ElementwiseLayer("Tanh")}, [("lin", "act")])
    mid = NetGraph({"inner": inner, "sin": ElementwiseLayer("Sin"), "t": TotalLayer()},
                   [("inner", "sin"), (["inner", "sin"], "t")])
    return NetInitialize(NetChain({"pre": LinearLayer(3), "mid": mid, "post": LinearLayer(7)},
                                  Input=11), seed=12)


def test_nested_nets_values_and_interior_ports():
    net = nested()
    assert NetExtract(net, ["mid", "inner", "lin", "Input"]) == (3,)
    assert NetExtract(net, ["mid", "Output"]) == (5,)
    x = RNG.standard_normal(11)
    pre = lin(net, ["pre"], x)
    inner = np.tanh(lin(net, ["mid", "inner", "lin"], pre))
    mid = inner + np.sin(inner)
    close(net(x), lin(net, ["post"], mid))
    close(net(x, NetPort(("mid", "inner"), "Output")), inner)
    close(net(x, NetPort(("mid", "inner", "lin"), "Input")), pre)
    close(net(x, NetPort(["mid", "sin"], "Output")), np.sin(inner))
    close(net(x, NetPort("mid", "Output")), mid)
    close(net(x, NetPort(-1, "Input")), mid)
    got = net(x, [NetPort("pre", "Output"), "Output"])
    close(got[0], pre)
    close(got[1], lin(net, ["post"], mid))


def test_chain_shorthands():
    c = NetInitialize(NetChain([5, "Tanh", "ReLU", 3], Input=2), seed=13)
    assert [type(NetExtract(c, i)).__name__ for i in range(4)] == \
        ["LinearLayer", "ElementwiseLayer", "ElementwiseLayer", "LinearLayer"]
    assert NetExtract(c, [0, "Output"]) == (5,) and NetExtract(c, "Output") == (3,)
    x = RNG.standard_normal(2)
    close(c(x), lin(c, [3], np.maximum(np.tanh(lin(c, [0], x)), 0)))


def test_port_references_are_hashable_values():
    assert NetPort("a", "Output") == NetPort(("a",), "Output") == NetPort(["a"], "Output")
    assert NetPort(("m", "inner"), "Output") == NetPort(["m", "inner"], "Output")
    assert NetPort("Output") != NetPort("a", "Output")
    assert NetPortGradient("Input") == NetPortGradient("Input") != NetPortGradient("Query")
    assert NetArrayGradient(["a", "Weights"]) == NetArrayGradient(("a", "Weights"))
    keys = {NetPort("a", "Output"): 1, NetPortGradient("Input"): 2,
            NetArrayGradient(["a", "Weights"]): 3}
    assert keys[NetPort(["a"], "Output")] == 1 and keys[NetPortGradient("Input")] == 2
    assert keys[NetArrayGradient(("a", "Weights"))] == 3
    for ref in keys:
        with pytest.raises(AttributeError):
            ref.port = "x"
    for bad in (lambda: NetPort(3), lambda: NetPort("a", "b", "c"), lambda: NetPortGradient(3),
                lambda: NetPort([["a"]], "Output"), lambda: NetArrayGradient([{"a"}, "W"]),
                lambda: NetArrayGradient([])):
        with pytest.raises(NetError):
            bad()


# ----------------------------------------------------------------------------- errors
@pytest.mark.parametrize("layers, connections, named", [
    ({"a": LinearLayer(3), "b": LinearLayer(3)}, [("a", "b", "a")], "cycle"),
    ({"a": LinearLayer(3), "b": LinearLayer(3), "c": LinearLayer(3)},
     [("a", "b"), ("b", "c"), ("c", "a")], "cycle"),
    ({"a": LinearLayer(3)}, [("a", "a")], "cycle"),
    ({"a": LinearLayer(3)}, [("a", "zz")], "zz"),
    ({"a": LinearLayer(3)}, [(NetPort("zz", "Output"), "a")], "zz"),
    ({"a": LinearLayer(3)}, [(NetPort("a", "Foo"), NetPort("y"))], "Foo"),
    ({"a": LinearLayer(3), "b": LinearLayer(3)}, [("a", NetPort("b", "Foo"))], "Foo"),
    ({"a": LinearLayer(3), "b": LinearLayer(3), "c": LinearLayer(3)},
     [("a", "c"), ("b", "c")], "two sources"),
    ({"a": LinearLayer(3), "b": LinearLayer(3)},
     [("a", NetPort("y")), ("b", NetPort("y"))], "two sources"),
    ({"a": LinearLayer(3), "b": LinearLayer(3), "c": LinearLayer(3)}, [(["a", "b"], "c")], "'c'"),
    ({"a": LinearLayer(3), "d": DotLayer()}, [(["a", "a", "a"], "d")], "'d'"),
    ({"a": LinearLayer(3), "t": TotalLayer(3)}, [(["a", "a"], "t")], "'t'"),
    ({"g": NetChain([LinearLayer(3)]), "b": LinearLayer(3)},
     [(NetPort(("g", 0), "Output"), "b")], "g"),
    ({"a": LinearLayer(3), "s": ThreadingLayer("Subtract")}, [(["a", "a", "a"], "s")], "'s'"),
    ({"a": LinearLayer(3), "t": TotalLayer()}, [(["a", ["a"]], "t")], "['a', ['a']]"),
    ({"a": LinearLayer(3), "t": TotalLayer()}, [([], "t")], "[]"),
    ({"a": LinearLayer(3), "t": TotalLayer()}, [(["a", "a"], NetPort("t", "Input1"))], "Input1"),
])
def test_structural_mistakes_raise_port_error(layers, connections, named):
    with pytest.raises(PortError) as e:
        NetGraph(layers, connections, Input=3)
    assert isinstance(e.value, NetError)
    assert named in str(e.value)


@pytest.mark.parametrize("make", [
    lambda: NetGraph({}, []),
    lambda: NetGraph("a", []),
    lambda: NetGraph({"a": LinearLayer(3)}, [("a",)]),
    lambda: NetGraph({"a": LinearLayer(3)}, "a"),
    lambda: NetGraph({"a": 2.5}, []),
    lambda: NetGraph({"a": LinearLayer(3), "b": LinearLayer(3)}, [(["a", "b"], ["a", "b"])]),
    lambda: NetChain([]),
    lambda: NetChain(["NoSuchFunction"]),
])
def test_malformed_containers_raise_net_error(make):
    with pytest.raises(NetError):
        make()


# ----------------------------------------------------------------------------- gradients
def fan_out_net():
    g = NetGraph({"a": LinearLayer(5, Input=3), "b": ElementwiseLayer("Tanh"),
                  "c": ElementwiseLayer("Sin"), "d": LinearLayer(5), "t": TotalLayer()},
                 [("a", ["b", "c"]), (NetPort("Input"), "d"), (["b", "c", "d"], "t")])
    return NetInitialize(g, seed=14)


def test_fan_out_gradient_accumulates_over_every_path():
    g = fan_out_net()
    x, seed = RNG.standard_normal(3), RNG.standard_normal(5)
    h = lin(g, ["a"], x)
    close(g(x, dtype=np.float64), np.tanh(h) + np.sin(h) + lin(g, ["d"], x))
    got = g({"Input": x, NetPortGradient("Output"): seed}, NetPortGradient("Input"),
            dtype=np.float64)
    by_hand = W(g, "a", "Weights").T @ ((1 - np.tanh(h) ** 2) * seed + np.cos(h) * seed) \
        + W(g, "d", "Weights").T @ seed
    close(got, by_hand)
    numeric = central_diff(lambda v: float(g(v, dtype=np.float64) @ seed), x)
    # central differences with h = 1e-6: their own truncation and cancellation error
    np.testing.assert_allclose(got, numeric, rtol=1e-7, atol=1e-7)


def test_fan_out_array_gradient_matches_central_differences():
    g = fan_out_net()
    # dyadic weights and step: W +- h stays exact in float32 storage
    Wa = np.round(W(g, "a", "Weights") * 64) / 64
    g = NetReplacePart(g, {("a", "Weights"): Wa})
    x, seed = RNG.standard_normal(3), RNG.standard_normal(5)
    got = g({"Input": x, NetPortGradient("Output"): seed}, NetArrayGradient(["a", "Weights"]),
            dtype=np.float64)

    def f(w):
        return float(NetReplacePart(g, {("a", "Weights"): w})(x, dtype=np.float64) @ seed)

    numeric = central_diff(f, Wa, h=2.0 ** -10)
    # central differences with h = 2**-10 on float32-exact weights: truncation error O(h²)
    np.testing.assert_allclose(got, numeric, rtol=1e-5, atol=1e-5)


# ----------------------------------------------------------------------------- immutability
def test_every_operation_returns_a_new_net_and_leaves_the_original_alone():
    raw = NetChain({"a": LinearLayer(5), "b": "Tanh"})
    before = net_snapshot(raw)
    sized = NetReplacePart(raw, {"Input": 3})
    init = NetInitialize(sized, seed=15)
    again = NetInitialize(init, seed=16, reinitialize=True)
    assert_same_net(raw, before)
    assert NetExtract(raw, "Input") != (3,) and NetExtract(sized, ["a", "Weights"]) is None
    assert not np.array_equal(NetExtract(init, ["a", "Weights"]),
                              NetExtract(again, ["a", "Weights"]))
    with pytest.raises(AttributeError):
        init.foo = 1
    with pytest.raises(AttributeError):
        NetExtract(init, "a").params = None


def test_extracted_arrays_are_copies_and_application_has_no_side_effects():
    net = nested()
    before = net_snapshot(net)
    w = NetExtract(net, ["pre", "Weights"])
    w[:] = 99.0
    x = RNG.standard_normal(11)
    x_copy = x.copy()
    first = net(x)
    net(x, NetPortGradient("Input"))
    assert_same_net(net, before)
    np.testing.assert_array_equal(x, x_copy)
    np.testing.assert_array_equal(net(x), first)
    assert not np.array_equal(NetExtract(net, ["pre", "Weights"]), w)
