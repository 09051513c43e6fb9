"""Inference runs once per net: constructing a net solves it, and compile, NetInitialize,
applying, NetInformation and summary reuse that one solution (``Net._solution()``); plans hold
no solver. Solves are counted by instrumenting ``Solver.solve``."""

import numpy as np
import pytest
from tolerance import assert_close

from netgraph import (
    Automatic,
    LinearLayer,
    NetChain,
    NetInformation,
    NetInitialize,
    NetPort,
    SequenceAttentionLayer,
)
from netgraph.compile import compile_net
from netgraph.solver import Solver


@pytest.fixture
def solves(monkeypatch):
    """A list that gets one entry per ``Solver.solve`` call."""
    calls = []
    original = Solver.solve

    def counted(self):
        calls.append(self)
        return original(self)

    monkeypatch.setattr(Solver, "solve", counted)
    return calls


def test_the_readme_example_solves_once_per_constructed_net(solves):
    data = {"Input": [[1, 2], [3, 4], [5, 6]], "Query": [[1], [0], [-1], [2]]}
    counts = {}
    attend = None

    def stage(name, fn):
        nonlocal attend
        before = len(solves)
        out = fn()
        counts[name] = len(solves) - before
        return out

    attend = stage("construct", lambda: SequenceAttentionLayer(Input=("Varying", 2),
                                                               Query=("Varying", 1)))
    attend = stage("initialize", lambda: NetInitialize(attend, seed=0))
    out = stage("apply", lambda: attend(data))
    again = stage("apply again", lambda: attend(data))
    weights = stage("weights", lambda: attend(data, NetPort("AttentionWeights")))
    # construction solves the layer and its "Bilinear" scoring net (LinearLayer, DotLayer and
    # their NetGraph): 4; everything after reuses the layer's solution (7 solves before)
    assert counts == {"construct": 4, "initialize": 0, "apply": 0, "apply again": 0,
                      "weights": 0}
    assert out.shape == (4, 2) and weights.shape == (4, 3)
    assert_close(again, out, dtype=np.float32)
    assert_close(weights.sum(-1), np.ones(4), dtype=np.float32, reduction=3)


def test_a_chain_solves_only_when_constructed(solves):
    counts = {}

    def stage(name, fn):
        before = len(solves)
        out = fn()
        counts[name] = len(solves) - before
        return out

    net = stage("construct", lambda: NetChain([LinearLayer(5), "Tanh", LinearLayer(3)],
                                              Input=4))
    net = stage("initialize", lambda: NetInitialize(net, seed=0))
    x = np.arange(4.0, dtype=np.float32)
    y = stage("apply", lambda: net(x))
    text = stage("summary", lambda: net.summary())
    total = stage("information", lambda: NetInformation(net, "ArraysTotalElementCount"))
    # one solve per constructed net: two LinearLayers, the "Tanh" ElementwiseLayer, the chain
    assert counts == {"construct": 4, "initialize": 0, "apply": 0, "summary": 0,
                      "information": 0}
    assert y.shape == (3,) and "initialized" in text and total == 5 * 4 + 5 + 3 * 5 + 3


def test_open_input_shapes_are_filled_from_data_with_one_solve(solves):
    net = NetChain(["Tanh", "Sin"], Input=(Automatic,))  # the Input's size is left open
    x = np.linspace(-1, 1, 10).reshape(2, 5)
    before = len(solves)
    a = net(x[0])
    b = net(x)  # a batch of examples of the same shape: no new solve
    assert len(solves) - before == 1
    assert_close(a, np.sin(np.tanh(x[0])), dtype=np.float32)
    assert_close(b, np.sin(np.tanh(x)), dtype=np.float32)
    assert net(np.ones(7)).shape == (7,)  # another example shape: solved for it
    assert len(solves) - before == 2


def test_plans_hold_no_solver():
    net = SequenceAttentionLayer(Input=("Varying", 2), Query=("Varying", 1))
    plan = compile_net(net)

    def plans(p):
        yield p
        for step in p.steps:
            for sub in step.subplans.values():
                yield from plans(sub)

    found = list(plans(plan))
    assert len(found) == 2  # the layer's plan and its scoring net's sub-plan
    for p in found:
        assert not any(isinstance(v, Solver) for v in vars(p).values())
