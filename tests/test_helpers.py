"""The suite's net snapshot (``tests/helpers.py``): what ``assert_same_net`` accepts and what it
rejects."""

from __future__ import annotations

import copy
import pickle

import numpy as np
import pytest
from helpers import assert_same_net, net_snapshot

from netgraph import (
    ElementwiseLayer,
    LinearLayer,
    NetChain,
    NetExtract,
    NetGraph,
    NetInitialize,
    NetReplacePart,
    TotalLayer,
)


def _net():
    g = NetGraph({"a": LinearLayer(5), "b": ElementwiseLayer("Tanh"), "c": LinearLayer(5),
                  "t": TotalLayer()}, [("a", "b"), (["b", "c"], "t")], Input=3)
    return NetInitialize(NetChain({"g": g, "out": LinearLayer(7)}), seed=3)


def test_the_same_net_passes_and_so_do_its_copies():
    net = _net()
    before = net_snapshot(net)
    assert_same_net(net, net)
    assert_same_net(net, before)
    assert_same_net(NetReplacePart(net, {}), before)
    for again in (copy.copy(net), copy.deepcopy(net), pickle.loads(pickle.dumps(net))):
        assert_same_net(again, before)  # arrays of copies stay read-only


def test_one_bit_of_one_array_fails():
    net = _net()
    w = NetExtract(net, ["g", "a", "Weights"])
    w[1, 2] = np.nextafter(w[1, 2], np.float32(np.inf))
    with pytest.raises(AssertionError, match=r"part \('g', 'a'\), arrays"):
        assert_same_net(NetReplacePart(net, {("g", "a", "Weights"): w}), net)
    zero = NetReplacePart(net, {("out", "Biases"): np.zeros(7)})
    with pytest.raises(AssertionError, match="arrays"):  # -0.0 is not 0.0
        assert_same_net(NetReplacePart(net, {("out", "Biases"): -np.zeros(7)}), zero)


def test_params_structure_and_specs_fail():
    net = _net()
    other = NetReplacePart(net, {("g", "b"): ElementwiseLayer("Sin")})
    with pytest.raises(AssertionError, match=r"part \('g', 'b'\), params"):
        assert_same_net(other, net)
    rewired = NetGraph({"a": LinearLayer(5), "b": ElementwiseLayer("Tanh"), "c": LinearLayer(5),
                        "t": TotalLayer()}, [("a", "b"), (["c", "b"], "t")], Input=3)
    wired = NetGraph({"a": LinearLayer(5), "b": ElementwiseLayer("Tanh"), "c": LinearLayer(5),
                      "t": TotalLayer()}, [("a", "b"), (["b", "c"], "t")], Input=3)
    with pytest.raises(AssertionError, match="edges"):
        assert_same_net(rewired, wired)
    with pytest.raises(AssertionError, match="specs"):
        assert_same_net(LinearLayer(5, Input=3), LinearLayer(5, Input=4))
    with pytest.raises(AssertionError, match="params"):
        assert_same_net(ElementwiseLayer("Tanh"), ElementwiseLayer("Sin"))
    with pytest.raises(AssertionError, match="net 'x' changed"):
        assert_same_net(ElementwiseLayer("Tanh"), ElementwiseLayer("Sin"), "net 'x' changed")
