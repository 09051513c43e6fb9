"""NetExtract (every form), NetReplacePart (arrays and port shapes, re-inference, errors,
originals untouched) and NetInitialize (Xavier bounds, zero biases, seeds, reinitialize,
unresolved sizes)."""

import math

import numpy as np
import pytest
from tolerance import assert_close

from netgraph import (
    All,
    Automatic,
    CatenateLayer,
    ElementwiseLayer,
    EmbeddingLayer,
    LinearLayer,
    NetChain,
    NetError,
    NetExtract,
    NetGraph,
    NetInitialize,
    NetMapOperator,
    NetPort,
    NetReplacePart,
    ShapeError,
    SpecificationError,
)

RNG = np.random.default_rng(5)


def graph():
    sub = NetChain({"lin": LinearLayer(5), "th": "Tanh"})
    return NetGraph({"a": LinearLayer(3, Input=7), "sub": sub, "c": CatenateLayer()},
                    [("a", "sub"), (["a", "sub"], "c")])


@pytest.fixture(scope="module")
def net():
    return NetInitialize(graph(), seed=3)


# ----------------------------------------------------------------------------- NetExtract
def test_layers_by_name_and_position(net):
    a = NetExtract(net, "a")
    assert isinstance(a, LinearLayer)
    assert NetExtract(a, "Output") == (3,)
    assert isinstance(NetExtract(net, 0), LinearLayer)
    assert isinstance(NetExtract(net, 1), NetChain)
    assert isinstance(NetExtract(net, -1), CatenateLayer)
    assert isinstance(NetExtract(net, -3), LinearLayer)
    np.testing.assert_array_equal(NetExtract(net, [-3, "Weights"]), NetExtract(net, ["a", "Weights"]))
    for bad in (3, -4):
        with pytest.raises(NetError, match=str(bad)):
            NetExtract(net, bad)


def test_extracted_layer_works_alone_and_matches_the_interior_value(net):
    x = RNG.standard_normal(7)
    a = NetExtract(net, "a")
    inside = net(x, NetPort("a", "Output"), dtype=np.float64)
    assert_close(a(x, dtype=np.float64), inside, dtype=np.float64, reduction=8)
    assert_close(a(x), inside, dtype=np.float32, reduction=8)
    sub = NetExtract(net, "sub")
    assert NetExtract(sub, "Input") == (3,)  # pinned to the shapes it had inside the graph
    inside = net(x, NetPort("sub", "Output"), dtype=np.float64)
    assert_close(sub(a(x, dtype=np.float64), dtype=np.float64), inside, dtype=np.float64,
                 reduction=8 * 4)
    assert_close(sub(a(x)), inside, dtype=np.float32, reduction=8 * 4)


def test_arrays_ports_and_paths(net):
    W = NetExtract(net, ["a", "Weights"])
    assert W.shape == (3, 7) and W.dtype == np.float32
    assert NetExtract(NetExtract(net, "a"), "Weights").shape == (3, 7)
    np.testing.assert_array_equal(NetExtract(net, ("sub", "lin", "Weights")),
                                  NetExtract(net, ["sub", 0, "Weights"]))
    assert NetExtract(net, ("sub", "lin", "Weights")).shape == (5, 3)
    np.testing.assert_array_equal(NetExtract(net, ["sub", "lin", "Biases"]), np.zeros(5))
    assert NetExtract(net, "Input") == (7,)
    assert NetExtract(net, "Output") == (8,)
    assert NetExtract(net, ["c", "Input2"]) == (5,)
    assert NetExtract(net, ["sub", "th", "Output"]) == (5,)


def test_a_list_of_paths_gives_a_list(net):
    got = NetExtract(net, [["a", "Weights"], ("sub", "lin", "Biases"), ["c", "Output"], ["a"]])
    assert isinstance(got, list) and len(got) == 4
    assert got[0].shape == (3, 7) and got[1].shape == (5,) and got[2] == (8,)
    assert isinstance(got[3], LinearLayer)


def test_all(net):
    top = NetExtract(net, All)
    assert list(top) == ["a", "sub", "c"]
    assert isinstance(top["sub"], NetChain)
    arrays = NetExtract(net, ["a", All])
    assert set(arrays) == {"Weights", "Biases"}
    np.testing.assert_array_equal(arrays["Weights"], NetExtract(net, ["a", "Weights"]))
    assert list(NetExtract(net, ["sub", All])) == ["lin", "th"]
    with pytest.raises(NetError, match="All"):
        NetExtract(net, [All, "Weights"])


def test_uninitialized_arrays_are_none():
    raw = graph()
    assert NetExtract(raw, ["a", "Weights"]) is None
    assert NetExtract(raw, ["a", All]) == {"Weights": None, "Biases": None}
    assert NetExtract(NetMapOperator(LinearLayer(3)), ["Net", "Weights"]) is None


@pytest.mark.parametrize("spec, named", [
    ("zz", "zz"),
    (["sub", "zz", "Weights"], "zz"),
    (["a", "Weights", "x"], "x"),
    (["a", "Kernel"], "Kernel"),
    (["c", "Weights"], "Weights"),
    ([["a"], "sub"], "['a']"),
    (NetPort("a", "Output"), "NetPort"),
    (2.5, "2.5"),
])
def test_missing_parts_raise_net_error_naming_the_part(net, spec, named):
    with pytest.raises(NetError) as e:
        NetExtract(net, spec)
    assert named in str(e.value)


def test_extracted_arrays_are_float32_copies(net):
    W = NetExtract(net, ["a", "Weights"])
    W += 1.0
    assert not np.array_equal(NetExtract(net, ["a", "Weights"]), W)
    assert NetExtract(net, ["a", "Weights"]) is not NetExtract(net, ["a", "Weights"])


# ----------------------------------------------------------------------------- NetReplacePart
def test_replace_arrays_changes_values_and_nothing_else(net):
    W = RNG.standard_normal((3, 7))
    b = RNG.standard_normal(3)
    new = NetReplacePart(net, {("a", "Weights"): W, ("a", "Biases"): b})
    np.testing.assert_array_equal(NetExtract(new, ["a", "Weights"]), W.astype(np.float32))
    x = RNG.standard_normal(7)
    assert_close(new(x, NetPort("a", "Output")), W @ x + b, dtype=np.float32, reduction=8)
    np.testing.assert_array_equal(NetExtract(new, ["sub", "lin", "Weights"]),
                                  NetExtract(net, ["sub", "lin", "Weights"]))
    assert not np.allclose(NetExtract(net, ["a", "Weights"]), W)  # original untouched


def test_replace_port_shapes_reruns_inference():
    c = NetChain({"a": LinearLayer(5), "t": "Tanh", "b": LinearLayer(3)})
    assert NetExtract(c, ["a", "Input"]) == (Automatic,)
    sized = NetReplacePart(c, {"Input": 7})
    assert NetExtract(sized, ["a", "Input"]) == (7,)
    assert NetExtract(c, ["a", "Input"]) == (Automatic,)
    assert NetExtract(NetInitialize(sized, seed=0), ["a", "Weights"]).shape == (5, 7)
    # a nested port, by path
    assert NetExtract(NetReplacePart(c, {(-1, "Input"): 5}), ["b", "Input"]) == (5,)
    # an array's shape is a size, too: the input size is read off the weights
    from_array = NetReplacePart(c, {("a", "Weights"): np.ones((5, 11))})
    assert NetExtract(from_array, "Input") == (11,)


@pytest.mark.parametrize("replacement, named", [
    ({("a", "Weights"): np.ones((5, 6))}, "6"),
    ({("a", "Weights"): np.ones((4, 7))}, "4"),
    ({("a", "Weights"): np.ones(5)}, "(5,)"),
    ({("t", "Input"): 4}, "4"),
    ({"Output": 4}, "4"),
])
def test_incompatible_replacements_raise_shape_error(replacement, named):
    c = NetChain({"a": LinearLayer(5), "t": "Tanh", "b": LinearLayer(3)}, Input=7)
    init = NetInitialize(c, seed=1)
    before = NetExtract(init, ["a", "Weights"])
    for net in (c, init):
        with pytest.raises(ShapeError) as e:
            NetReplacePart(net, replacement)
        assert named in str(e.value)
    with pytest.raises(ShapeError, match="11"):
        NetReplacePart(init, {"Input": 11})  # the weights pin the input size
    assert NetExtract(NetReplacePart(c, {"Input": 11}), ["a", "Input"]) == (11,)
    np.testing.assert_array_equal(NetExtract(init, ["a", "Weights"]), before)
    assert NetExtract(init, "Input") == (7,)


@pytest.mark.parametrize("replacement, named", [
    ({("a", "Kernel"): np.ones(3)}, "Kernel"),
    ({("zz", "Weights"): np.ones(3)}, "zz"),
    ({("a", "Weights"): "abc"}, "Weights"),
    ({("a", "Weights"): np.full((5, 7), np.nan)}, "NaN"),
    ({"Input": "foo"}, "foo"),
])
def test_bad_replacements_raise_net_error(replacement, named):
    c = NetChain({"a": LinearLayer(5), "t": "Tanh"}, Input=7)
    with pytest.raises(NetError, match=named):
        NetReplacePart(c, replacement)


# ----------------------------------------------------------------------------- NetInitialize
def test_xavier_uniform_bounds_and_zero_biases():
    out, inp = 200, 300
    net = NetInitialize(NetChain({"a": LinearLayer(out, Input=inp)}), seed=0)
    W = NetExtract(net, ["a", "Weights"]).astype(np.float64)
    limit = math.sqrt(6 / (inp + out))
    assert np.abs(W).max() <= limit
    assert np.abs(W).max() > 0.99 * limit  # uses the whole range
    assert abs(W.mean()) < 0.01 * limit
    assert abs(W.std() - limit / math.sqrt(3)) < 0.02 * limit  # uniform: sd = limit / sqrt 3
    # roughly flat histogram: each tenth of the range holds about a tenth of the values
    counts, _ = np.histogram(W, bins=10, range=(-limit, limit))
    assert np.all(np.abs(counts / W.size - 0.1) < 0.01)
    np.testing.assert_array_equal(NetExtract(net, ["a", "Biases"]), np.zeros(out))


def test_xavier_fan_in_is_the_product_of_all_but_the_first_dimension():
    emb = NetInitialize(EmbeddingLayer(400, 100), seed=1)  # Weights (n, size) = (100, 400)
    W = NetExtract(emb, "Weights")
    assert W.shape == (100, 400)
    limit = math.sqrt(6 / (400 + 100))
    assert limit * 0.99 < np.abs(W).max() <= limit


def test_seeds():
    raw = graph()
    one, same = NetInitialize(raw, seed=42), NetInitialize(raw, seed=42)
    other = NetInitialize(raw, seed=43)
    for path in (["a", "Weights"], ["sub", "lin", "Weights"]):
        np.testing.assert_array_equal(NetExtract(one, path), NetExtract(same, path))
        assert not np.array_equal(NetExtract(one, path), NetExtract(other, path))
    assert not np.array_equal(NetExtract(NetInitialize(raw), ["a", "Weights"]),
                              NetExtract(NetInitialize(raw), ["a", "Weights"]))


def test_only_missing_arrays_are_filled_unless_reinitialize():
    init = NetInitialize(graph(), seed=7)
    W_a = NetExtract(init, ["a", "Weights"])
    W_sub = NetExtract(init, ["sub", "lin", "Weights"])
    holed = NetReplacePart(init, {("sub", "lin", "Weights"): None})
    assert NetExtract(holed, ["sub", "lin", "Weights"]) is None
    refilled = NetInitialize(holed, seed=8)
    np.testing.assert_array_equal(NetExtract(refilled, ["a", "Weights"]), W_a)
    assert NetExtract(refilled, ["sub", "lin", "Weights"]).shape == (5, 3)
    assert not np.array_equal(NetExtract(refilled, ["sub", "lin", "Weights"]), W_sub)
    # the same net again: nothing is missing, nothing changes
    kept = NetInitialize(init, seed=9)
    np.testing.assert_array_equal(NetExtract(kept, ["a", "Weights"]), W_a)
    fresh = NetInitialize(init, seed=9, reinitialize=True)
    assert not np.array_equal(NetExtract(fresh, ["a", "Weights"]), W_a)
    np.testing.assert_array_equal(NetExtract(fresh, ["a", "Weights"]),
                                  NetExtract(NetInitialize(graph(), seed=9), ["a", "Weights"]))
    # biases that were changed go back to zero on reinitialization
    shifted = NetReplacePart(init, {("a", "Biases"): np.ones(3)})
    np.testing.assert_array_equal(
        NetExtract(NetInitialize(shifted, reinitialize=True), ["a", "Biases"]), np.zeros(3))


@pytest.mark.parametrize("make, layer, array", [
    (lambda: NetChain({"a": LinearLayer(7), "b": LinearLayer(3)}), "'a'", "Weights"),
    (lambda: NetChain({"e": EmbeddingLayer(3), "l": ElementwiseLayer("Tanh")}), "'e'", "Weights"),
    (lambda: NetChain({"m": NetMapOperator(LinearLayer(4))}), "'m'/'Net'", "Weights"),
    (lambda: LinearLayer(3), "LinearLayer", "Weights"),
])
def test_unresolved_sizes_raise_specification_error(make, layer, array):
    with pytest.raises(SpecificationError) as e:
        NetInitialize(make())
    assert layer in str(e.value) and repr(array) in str(e.value)


@pytest.mark.parametrize("kwargs, named", [
    ({"seed": "abc"}, "seed"),
    ({"seed": -1}, "seed"),
    ({"method": "Foo"}, "Foo"),
])
def test_bad_initialize_options(kwargs, named):
    with pytest.raises(NetError, match=named):
        NetInitialize(graph(), **kwargs)
    with pytest.raises(NetError):
        NetInitialize("not a net")


def test_initialize_is_not_in_place():
    raw = graph()
    NetInitialize(raw, seed=0)
    assert NetExtract(raw, ["a", "Weights"]) is None
    assert isinstance(NetExtract(raw, "a"), LinearLayer)
    assert NetExtract(raw, ["sub", "th"]).__class__ is ElementwiseLayer
