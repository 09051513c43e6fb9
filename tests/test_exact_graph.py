"""Exact for every graph (SPEC "Applying a net"): fan-out gradients, leading batch axes in
scoring nets, values with two varying axes, and float32 attention whose scores overflow.

Every test here failed on the code before the fix it guards (issue 8, "Wrong results").
"""

from __future__ import annotations

import numpy as np
import pytest
from helpers import pairwise_attention_weights, randomized

from netgraph import (
    AttentionLayer,
    BasicRecurrentLayer,
    CatenateLayer,
    CrossEntropyLossLayer,
    DotLayer,
    DropoutLayer,
    ElementwiseLayer,
    EmbeddingLayer,
    GatedRecurrentLayer,
    Index,
    LinearLayer,
    LongShortTermMemoryLayer,
    MeanAbsoluteLossLayer,
    MeanSquaredLossLayer,
    NetArrayGradient,
    NetChain,
    NetError,
    NetExtract,
    NetFoldOperator,
    NetGraph,
    NetInitialize,
    NetMapOperator,
    NetPort,
    NetPortGradient,
    NetReplacePart,
    ReshapeLayer,
    SequenceAttentionLayer,
    SequenceLastLayer,
    SequenceMostLayer,
    SequenceRestLayer,
    SequenceReverseLayer,
    ShapeError,
    SoftmaxLayer,
    SummationLayer,
    ThreadingLayer,
    TotalLayer,
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


# ------------------------------------------------------- 2. leading axes in scoring nets
D1, D2 = 6, 4  # Input and Query vector sizes: distinct, and 6 = 3 x 2 = 2 x 3 for reshapes
N_LENS, M_LENS = [3, 5, 2], [4, 1, 3]  # pairwise distinct per side, ragged


def attention_graph(scorer, heads=None, key=None):
    """A graph holding one attention node "attend" with the custom scoring net ``scorer``;
    ``heads``: a multi-head AttentionLayer with that many heads (Key = Value); ``key``: the
    element type of the Input vectors (e.g. ``Index(5)``) instead of reals."""
    if heads is None:
        item = (D1,) if key is None else (D1, key)
        att = SequenceAttentionLayer(scorer, Input=("Varying", *item), Query=("Varying", D2))
        return NetGraph({"attend": att}, [])
    att = AttentionLayer(scorer, multi_head=True, Key=("Varying", heads, D1),
                         Value=("Varying", heads, D1), Query=("Varying", heads, D2))
    return NetGraph({"attend": att}, [(NetPort("Input"), [NetPort("attend", "Key"),
                                                           NetPort("attend", "Value")])])


def attention_data(heads=None, key=None, seed=0):
    rng = np.random.default_rng(seed)
    h = () if heads is None else (heads,)
    if key is None:
        xs = [rng.standard_normal((n, *h, D1)) for n in N_LENS]
    else:
        xs = [rng.integers(0, key.n, (n, *h, D1)) for n in N_LENS]
    return {"Input": xs, "Query": [rng.standard_normal((m, *h, D2)) for m in M_LENS]}


def check_scoring_net(scorer, heads=None, key=None, seed=0, grads=True):
    """Attention weights of a batch == the extracted scoring net on each pair alone; and the
    attention net passes gradcheck and check_padding on a ragged batch."""
    net = randomized(attention_graph(scorer, heads, key), seed=seed)
    data = attention_data(heads, key, seed)
    weights = net(data, NetPort("attend", "AttentionWeights"), dtype=np.float64)
    attend = NetExtract(net, "attend")
    for w, K, Q in zip(weights, data["Input"], data["Query"], strict=True):
        close(w, pairwise_attention_weights(attend, K, Q), rtol=1e-9, atol=1e-12)
    # float32 against the same float64 reference
    w32 = net(data, NetPort("attend", "AttentionWeights"))
    for w, w64 in zip(w32, weights, strict=True):
        assert w.dtype == np.float32
        close(w, w64, rtol=1e-4, atol=1e-5)
    if grads:
        gradcheck(net, data)
        check_padding(net, data)
    return net


def sgraph(nodes, connections):
    """A scoring net: a NetGraph with ports Input (D1), Query (D2) -> scalar Output."""
    return NetGraph(nodes, connections, Input=D1, Query=D2)


I_, Q_ = NetPort("Input"), NetPort("Query")


def additive():
    return sgraph({"W": LinearLayer(5), "U": LinearLayer(5), "add": ThreadingLayer("Plus"),
                   "tanh": ElementwiseLayer("Tanh"), "v": LinearLayer(())},
                  [(I_, "W"), (Q_, "U"), (["W", "U"], "add", "tanh", "v")])


def seq_scorer(layer, shape=(3, 2), out=2):
    """Input reshaped to a sequence ``shape`` -> ``layer`` (a sequence layer giving a
    sequence, or a vector when ``out`` is None) -> flattened -> Linear -> dot with Query."""
    return sgraph({"r": ReshapeLayer(shape), "s": layer, "lin": LinearLayer(D2),
                   "dot": DotLayer()},
                  [(I_, "r", "s", "lin"), (["lin", Q_], "dot")])


def nested_attention(inner):
    """An attention over Input reshaped to 3 vectors of 2 with Query reshaped to 2 queries
    of 2, scored by ``inner``, inside a scoring net."""
    att = SequenceAttentionLayer(inner, Input=(3, 2), Query=(2, 2))
    return sgraph({"ri": ReshapeLayer((3, 2)), "rq": ReshapeLayer((2, 2)), "att": att,
                   "sum": SummationLayer()},
                  [(I_, "ri", NetPort("att", "Input")), (Q_, "rq", NetPort("att", "Query")),
                   ("att", "sum")])


def inner_additive():
    return NetGraph({"W": LinearLayer(3), "U": LinearLayer(3), "t": TotalLayer(),
                     "f": ElementwiseLayer("Tanh"), "v": LinearLayer(())},
                    [(I_, "W"), (Q_, "U"), (["W", "U"], "t", "f", "v")])


def fold_inner():
    return NetGraph({"cat": CatenateLayer(), "lin": LinearLayer(2), "f": ElementwiseLayer("Tanh")},
                    [([NetPort("Input"), NetPort("State")], "cat", "lin", "f")])


SCORERS = {
    "Linear+Dot": lambda: sgraph({"lin": LinearLayer(D2), "dot": DotLayer()},
                                 [(I_, "lin"), (["lin", Q_], "dot")]),
    "Dot of projections": lambda: sgraph(
        {"a": LinearLayer(3), "b": LinearLayer(3), "dot": DotLayer()},
        [(I_, "a"), (Q_, "b"), (["a", "b"], "dot")]),
    "additive (Threading Plus, Elementwise)": additive,
    "Threading Times/Subtract/Divide/Max": lambda: sgraph(
        {"a": LinearLayer(3), "b": LinearLayer(3), "c": LinearLayer(3),
         "times": ThreadingLayer("Times"), "sub": ThreadingLayer("Subtract"),
         "sp": ElementwiseLayer("SoftPlus"), "div": ThreadingLayer("Divide"),
         "max": ThreadingLayer("Max"), "sum": SummationLayer()},
        [(I_, "a"), (Q_, "b"), (Q_, "c", "sp"), (["a", "b"], "times"), (["a", "b"], "sub"),
         (["times", "sp"], "div"), (["div", "sub"], "max", "sum")]),
    "Total + Summation": lambda: sgraph(
        {"a": LinearLayer(3), "b": LinearLayer(3), "t": TotalLayer(), "f": ElementwiseLayer("Sin"),
         "sum": SummationLayer()}, [(I_, "a"), (Q_, "b"), (["a", "b"], "t", "f", "sum")]),
    "Catenate": lambda: sgraph({"cat": CatenateLayer(), "lin": LinearLayer(())},
                               [([I_, Q_], "cat", "lin")]),
    "Catenate of matrices, level 1": lambda: sgraph(
        {"ri": ReshapeLayer((2, 3)), "rq": ReshapeLayer((2, 2)), "cat": CatenateLayer(1),
         "f": ElementwiseLayer("Tanh"), "lin": LinearLayer(())},
        [(I_, "ri"), (Q_, "rq"), (["ri", "rq"], "cat", "f", "lin")]),
    "Reshape + Dot of matrices": lambda: sgraph(
        {"ri": ReshapeLayer((2, 3)), "lin": LinearLayer(6), "rq": ReshapeLayer((3, 2)),
         "dot": DotLayer(), "sum": SummationLayer()},
        [(I_, "ri"), (Q_, "lin", "rq"), (["ri", "rq"], "dot", "sum")]),
    "Softmax": lambda: sgraph({"lin": LinearLayer(D2), "sm": SoftmaxLayer(), "dot": DotLayer()},
                              [(I_, "lin", "sm"), (["sm", Q_], "dot")]),
    "Softmax level 0 of a matrix": lambda: sgraph(
        {"r": ReshapeLayer((3, 2)), "sm": SoftmaxLayer(0), "lin": LinearLayer(D2),
         "dot": DotLayer()}, [(I_, "r", "sm", "lin"), (["lin", Q_], "dot")]),
    "Dropout (identity outside training)": lambda: sgraph(
        {"d": DropoutLayer(0.3), "lin": LinearLayer(D2), "dot": DotLayer()},
        [(I_, "d", "lin"), (["lin", Q_], "dot")]),
    "SequenceReverse": lambda: seq_scorer(SequenceReverseLayer()),
    "SequenceReverse of scalars": lambda: seq_scorer(SequenceReverseLayer(), shape=(6,)),
    "SequenceMost": lambda: seq_scorer(SequenceMostLayer()),
    "SequenceRest": lambda: seq_scorer(SequenceRestLayer()),
    "SequenceMost of length 2": lambda: seq_scorer(SequenceMostLayer(), shape=(2, 3)),
    "SequenceRest of length 2": lambda: seq_scorer(SequenceRestLayer(), shape=(2, 3)),
    "SequenceLast": lambda: seq_scorer(SequenceLastLayer()),
    "BasicRecurrent": lambda: seq_scorer(NetChain([BasicRecurrentLayer(3),
                                                   SequenceLastLayer()])),
    "GatedRecurrent": lambda: seq_scorer(NetChain([GatedRecurrentLayer(3), SequenceReverseLayer(),
                                                   SequenceLastLayer()])),
    "LSTM": lambda: seq_scorer(LongShortTermMemoryLayer(2)),
    "GRU with its State from the Query": lambda: sgraph(
        {"r": ReshapeLayer((3, 2)), "s0": LinearLayer(3), "gru": GatedRecurrentLayer(3),
         "last": SequenceLastLayer(), "dot": DotLayer(), "q": LinearLayer(3)},
        [(I_, "r", "gru"), (Q_, "s0", NetPort("gru", "State")), ("gru", "last"), (Q_, "q"),
         (["last", "q"], "dot")]),
    "LSTM final State and CellState": lambda: sgraph(
        {"r": ReshapeLayer((3, 2)), "lstm": LongShortTermMemoryLayer(D2),
         "c0": LinearLayer(D2), "last": SequenceLastLayer(), "t": TotalLayer(),
         "dot": DotLayer()},
        [(I_, "r", "lstm", "last"), (Q_, "c0", NetPort("lstm", "CellState")),
         ([NetPort("lstm", "State"), NetPort("lstm", "CellState"), "last"], "t"),
         (["t", Q_], "dot")]),
    "NetMapOperator": lambda: seq_scorer(NetMapOperator(NetChain([LinearLayer(2), "Tanh"]))),
    "NetMapOperator of Input and Query": lambda: sgraph(
        {"ri": ReshapeLayer((2, 3)), "rq": ReshapeLayer((2, 2)),
         "map": NetMapOperator(NetGraph({"cat": CatenateLayer(), "lin": LinearLayer(())},
                                        [([NetPort("A"), NetPort("B")], "cat", "lin")])),
         "sum": SummationLayer()},
        [(I_, "ri", NetPort("map", "A")), (Q_, "rq", NetPort("map", "B")), ("map", "sum")]),
    "NetFoldOperator": lambda: seq_scorer(NetFoldOperator(fold_inner())),
    "NetFoldOperator with its State from the Query": lambda: sgraph(
        {"r": ReshapeLayer((3, 2)), "s0": LinearLayer(2), "fold": NetFoldOperator(fold_inner()),
         "last": SequenceLastLayer(), "lin": LinearLayer(())},
        [(I_, "r", "fold"), (Q_, "s0", NetPort("fold", "State")), ("fold", "last", "lin")]),
    "nested attention, custom scoring": lambda: nested_attention(inner_additive()),
    "nested attention, Bilinear": lambda: nested_attention("Bilinear"),
    "nested attention, Dot": lambda: nested_attention("Dot"),
    "nested attention nested twice": lambda: nested_attention(NetGraph(
        {"ri": ReshapeLayer((1, 2)), "rq": ReshapeLayer((2, 1)),
         "att": SequenceAttentionLayer(NetGraph({"c": CatenateLayer(), "v": LinearLayer(())},
                                                [([I_, Q_], "c", "v")])),
         "sum": SummationLayer()},
        [(I_, "ri", NetPort("att", "Input")), (Q_, "rq", NetPort("att", "Query")),
         ("att", "sum")])),
}


@pytest.mark.parametrize("name", list(SCORERS))
def test_scoring_net_on_all_pairs_equals_each_pair_alone(name):
    check_scoring_net(SCORERS[name]())


@pytest.mark.parametrize("name", ["additive (Threading Plus, Elementwise)", "SequenceReverse",
                                  "SequenceMost of length 2", "GRU with its State from the Query",
                                  "NetMapOperator of Input and Query",
                                  "NetFoldOperator with its State from the Query",
                                  "nested attention, custom scoring"])
def test_scoring_net_under_multi_head_attention(name):
    """Multi-head: the scoring net sees (batch, heads, m, n) leading axes, heads = 2."""
    check_scoring_net(SCORERS[name](), heads=2)


def index_scorer():
    return NetGraph({"emb": EmbeddingLayer(3, 5), "lin": LinearLayer(D2), "dot": DotLayer()},
                    [(I_, "emb", "lin"), (["lin", Q_], "dot")], Input=(D1, Index(5)), Query=D2)


def test_embedding_in_a_scoring_net_over_index_vectors():
    check_scoring_net(index_scorer(), key=Index(5))


@pytest.mark.parametrize("name", list(SCORERS) + ["multi-head additive", "index vectors"])
def test_scoring_net_gradients_on_the_counting_pairs_alone(name, monkeypatch):
    """The gradients that a custom scoring net gets when its all-pairs backward is not finite
    (computed again on the pairs that count, gathered into rows; see
    ``GeneralScores._pairs_backward``), here forced for finite ones: central differences and
    padding invariance hold for every kind of scoring net."""
    import netgraph.layers.scoring as scoring

    monkeypatch.setattr(scoring, "_all_finite", lambda *arrays: False)
    if name == "multi-head additive":
        check_scoring_net(SCORERS["additive (Threading Plus, Elementwise)"](), heads=2)
    elif name == "index vectors":
        check_scoring_net(index_scorer(), key=Index(5))
    else:
        check_scoring_net(SCORERS[name]())


# -------------------------------------------- 3. values with two varying axes, own lengths
def weights_graph(node, port="Input"):
    """Dot attention whose AttentionWeights (m x n per example, both varying) feed ``port``
    of ``node``; the graph's outputs are the attention Output and the node's outputs."""
    att = SequenceAttentionLayer("Dot", Input=("Varying", 2), Query=("Varying", 2))
    return NetGraph({"attend": att, "node": node},
                    [(NetPort("attend", "AttentionWeights"), NetPort("node", port))])


def weights_data(rng, n_lens=N_LENS, m_lens=M_LENS):
    """Ragged Input / Query batches; the m x n weights of example b are m_lens[b] x n_lens[b]."""
    return {"Input": [rng.standard_normal((n, 2)) for n in n_lens],
            "Query": [2 * rng.standard_normal((m, 2)) for m in m_lens]}


def dot_weights(K, Q):
    s = Q @ K.T
    w = np.exp(s - s.max(1, keepdims=True))
    return w / w.sum(1, keepdims=True)


def softmax(x, axis):
    e = np.exp(x - x.max(axis, keepdims=True))
    return e / e.sum(axis, keepdims=True)


@pytest.mark.parametrize("level", [-1, 0])
def test_softmax_over_two_varying_axes_uses_each_axis_lengths(level):
    net = weights_graph(SoftmaxLayer(level))
    rng = np.random.default_rng(31)
    data = weights_data(rng)
    out = net(data, "Output2", dtype=np.float64)  # batch
    for b, (K, Q) in enumerate(zip(data["Input"], data["Query"], strict=True)):
        want = softmax(dot_weights(K, Q), level)  # m x n, softmax along the level axis
        close(out[b], want)
        alone = net({"Input": K, "Query": Q}, "Output2", dtype=np.float64)  # one example
        close(alone, want)
    check_padding(net, data)
    gradcheck(net, data)


def loss_cases():
    rng = np.random.default_rng(5)
    return {
        "MeanSquared": (MeanSquaredLossLayer(), lambda w, t: np.mean((w - t) ** 2),
                        lambda m, n: rng.standard_normal((m, n))),
        "MeanAbsolute": (MeanAbsoluteLossLayer(), lambda w, t: np.mean(np.abs(w - t)),
                         lambda m, n: rng.standard_normal((m, n))),
        "CrossEntropy Binary": (CrossEntropyLossLayer("Binary"),
                                lambda w, t: -np.mean(t * np.log(w) + (1 - t) * np.log(1 - w)),
                                lambda m, n: rng.uniform(0, 1, (m, n))),
    }


@pytest.mark.parametrize("name", list(loss_cases()))
def test_losses_over_two_varying_axes_average_over_valid_elements(name):
    loss, reference, target = loss_cases()[name]
    net = weights_graph(loss)
    assert NetExtract(net, "Target") == ("Varying", "Varying")
    rng = np.random.default_rng(17)
    data = weights_data(rng)
    data["Target"] = [target(m, n) for m, n in zip(M_LENS, N_LENS, strict=True)]
    got = net(data, "Loss", dtype=np.float64)
    for b, (K, Q, t) in enumerate(zip(data["Input"], data["Query"], data["Target"],
                                      strict=True)):
        want = reference(dot_weights(K, Q), t)  # mean over this example's m x n elements
        close(got[b], want)
        close(net({"Input": K, "Query": Q, "Target": t}, "Loss", dtype=np.float64), want)
    check_padding(net, data)
    if name != "MeanAbsolute":  # |x| has a kink at 0: its gradient is checked by check_padding
        gradcheck(net, data)


def test_cross_entropy_probabilities_over_a_varying_class_axis_is_refused():
    """The class axis of a cross-entropy must be fixed: the n axis of the weights is not."""
    with pytest.raises(ShapeError, match="class dimension"):
        weights_graph(CrossEntropyLossLayer("Probabilities"))


@pytest.mark.parametrize("layer, ref", [
    (SequenceLastLayer(), lambda w: w[-1]), (SequenceMostLayer(), lambda w: w[:-1]),
    (SequenceRestLayer(), lambda w: w[1:]), (SequenceReverseLayer(), lambda w: w[::-1])])
def test_sequence_layers_over_two_varying_axes(layer, ref):
    """Along the first (query) axis, keeping each example's true key axis."""
    net = weights_graph(layer)
    rng = np.random.default_rng(23)
    data = weights_data(rng, m_lens=[4, 2, 3])  # Most / Rest need lengths >= 2
    out = net(data, "Output2", dtype=np.float64)
    for b, (K, Q) in enumerate(zip(data["Input"], data["Query"], strict=True)):
        close(out[b], ref(dot_weights(K, Q)))
    check_padding(net, data)
    gradcheck(net, data)


def test_log_of_weights_with_two_varying_axes_stays_finite_on_padding():
    """Functions with a pole at 0 see 1 at every padded position, along both axes."""
    import warnings

    net = weights_graph(ElementwiseLayer("Log"))
    data = weights_data(np.random.default_rng(3))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = net(data, "Output2", dtype=np.float64)
        grads = net(data, NetPortGradient("Input"), dtype=np.float64)
    for b, (K, Q) in enumerate(zip(data["Input"], data["Query"], strict=True)):
        close(out[b], np.log(dot_weights(K, Q)))
    assert all(np.isfinite(g).all() for g in grads)


def test_integers_mixed_into_real_arithmetic_stay_in_the_run_dtype():
    """Found by test_properties: a DotLayer of integers and reals gave float64 in float32."""
    dot = DotLayer(Input1=("Varying", "Integer"))
    data = {"Input1": [[1, 2, 3], [4, 5]], "Input2": [np.ones(3), np.full(2, 0.5)]}
    out, g = dot(data, ["Output", NetPortGradient("Input2")])
    assert out.dtype == np.float32 and all(x.dtype == np.float32 for x in g)
    close(out, [6.0, 4.5], rtol=1e-7)
    close(g[0], [1, 2, 3])
    close(g[1], [4, 5])


# ------------------------------------------ 4. float32 attention whose scores overflow
BIG = 3e19  # BIG * BIG = 9e38 overflows float32 (max 3.4e38); BIG * BIG / 3 does not


def dot_attention():
    att = SequenceAttentionLayer("Dot", Input=("Varying", 2), Query=("Varying", 2))
    return NetGraph({"attend": att}, [])


def overflow_data():
    """Scores q . e of up to ±9e38: +inf (one per row), -inf, and finite ones near 3e38."""
    es = [np.array([[BIG, 0], [BIG / 3, 1], [0, 1]]), np.array([[1.0, 2], [-BIG, 1]]),
          np.array([[0.5, -1], [2, 1], [BIG, BIG / 3], [0, 0]])]
    qs = [np.array([[BIG, 0], [0, 1], [-BIG, 0], [1, 1]]), np.array([[BIG, 0.0]]),
          np.array([[0.0, BIG], [BIG, 1]])]
    return {"Input": es, "Query": qs}


def test_float32_attention_with_overflowing_scores_equals_float64():
    net = dot_attention()
    data = overflow_data()
    with np.errstate(over="ignore"):
        s32 = [np.float32(q) @ np.float32(e).T for e, q in zip(data["Input"], data["Query"],
                                                                strict=True)]
    assert all(np.isinf(s).any() for s in s32)  # the case: float32 scores overflow
    seeds = [np.random.default_rng(k).standard_normal(q.shape) for k, q in enumerate(data["Query"])]
    keys = ["Output", NetPort("attend", "AttentionWeights"), NetPortGradient("Input"),
            NetPortGradient("Query")]
    given = {**data, NetPortGradient("Output"): seeds}
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no overflow warning either: the overflow is handled
        got = net(given, keys)
    want = net(given, keys, dtype=np.float64)
    for g, w in zip(got, want, strict=True):
        for b in range(3):
            assert g[b].dtype == np.float32 and np.isfinite(g[b]).all()
            scale = np.abs(w[b]).max()
            close(g[b], w[b], rtol=1e-5, atol=1e-6 * scale)
    # one +inf score in a row takes all the weight; -inf scores get none
    np.testing.assert_array_equal(got[1][0][0], [1, 0, 0])
    np.testing.assert_array_equal(got[1][0][2], [0, 0, 1])
    np.testing.assert_array_equal(got[1][1][0], [1, 0])
    # batch == each example alone, in float32 too
    for b in range(3):
        alone = net({"Input": data["Input"][b], "Query": data["Query"][b],
                     NetPortGradient("Output"): seeds[b]}, keys)
        for g, a in zip(got, alone, strict=True):
            close(g[b], a, rtol=1e-6, atol=1e-6 * np.abs(a).max())


@pytest.mark.parametrize("case, e, q", [
    ("several +inf in a row", [[BIG, 0], [BIG, 1]], [[BIG, 0]]),
    ("a NaN score (inf - inf inside the dot)", [[BIG, BIG], [1, 1]], [[BIG, -BIG]]),
    ("every score -inf", [[BIG, 0], [BIG, 1]], [[-BIG, 0]]),
])
def test_float32_attention_scores_that_cannot_be_resolved_raise(case, e, q):
    net = dot_attention()
    data = {"Input": np.array(e), "Query": np.array(q)}
    with pytest.raises(NetError, match=r"node 'attend'.*dtype=np\.float64"):
        net(data)
    out = net(data, dtype=np.float64)  # float64 has the range
    assert np.isfinite(out).all()


def test_float32_attention_whose_score_gradient_overflows_raises():
    """Bilinear: the projected keys W e overflow; the forward resolves the +inf score, but
    the gradient of the query (0 * inf) cannot be computed in float32."""
    att = SequenceAttentionLayer(Input=("Varying", 2), Query=("Varying", 2))
    net = NetGraph({"attend": att}, [])
    W = np.array([[1e20, 0], [0, 1.0]])
    net = NetReplacePart(net, {("attend", "ScoringNet", "Linear", "Weights"): W})
    data = {"Input": np.array([[1e19, 0], [1.0, 1]]), "Query": np.array([[1.0, 0], [1, 1], [2, 0]])}
    w = net(data, NetPort("attend", "AttentionWeights"))
    np.testing.assert_array_equal(w, [[1, 0]] * 3)
    with pytest.raises(NetError, match=r"node 'attend'.*gradients.*dtype=np\.float64"):
        net(data, NetPortGradient("Query"))
    g = net(data, NetPortGradient("Query"), dtype=np.float64)
    assert np.isfinite(g).all()


def test_causal_multi_head_attention_ignores_overflow_at_masked_keys():
    att = NetInitialize(AttentionLayer("Dot", mask="Causal", multi_head=True,
                                       Key=("Varying", 2, 2), Value=("Varying", 2, 3),
                                       Query=("Varying", 2, 2)))
    rng = np.random.default_rng(2)
    k = rng.standard_normal((3, 2, 2))
    k[2, 0] = [BIG, 0]  # key 2, head 0: its scores with query 2 (allowed) overflow ...
    q = k.copy()
    q[0, 0] = [BIG, 0]  # ... and so does query 0 with key 2, which the causal mask hides
    v = rng.standard_normal((3, 2, 3))
    data = {"Key": k, "Value": v, "Query": q}
    got = att(data, ["Output", NetPort("AttentionWeights"), NetPortGradient("Value")])
    want = att(data, ["Output", NetPort("AttentionWeights"), NetPortGradient("Value")],
               dtype=np.float64)
    np.testing.assert_array_equal(got[1][2, 0], [0, 0, 1])
    for g, w in zip(got, want, strict=True):
        close(g, w, rtol=1e-5, atol=1e-6)


def test_nan_made_elsewhere_passes_through_attention_as_before():
    """Attention raises only for overflow it meets in finite keys and queries: a NaN made
    upstream, or inside a custom scoring net (the Log of a negative), is not its doing and
    reaches the output, as in any other layer (Log's domain is the user's business)."""
    import warnings

    upstream = NetGraph({"log": ElementwiseLayer("Log"), "attend": dot_attention()},
                        [(NetPort("Input"), "log", NetPort("attend", "Input"))])
    log_scorer = sgraph({"cat": CatenateLayer(), "log": ElementwiseLayer("Log"),
                         "sum": SummationLayer()}, [([I_, Q_], "cat", "log", "sum")])
    inside = NetGraph({"attend": SequenceAttentionLayer(log_scorer)}, [])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        out = upstream({"Input": np.array([[-1.0, 2], [BIG, 1]]), "Query": np.array([[1.0, 1]])})
        assert np.isnan(out).all()
        x, q = -np.ones((2, D1)), np.ones((3, D2))
        assert np.isnan(inside({"Input": x, "Query": q})).all()


def test_custom_scoring_net_with_several_overflowing_scores_in_a_row_raises():
    """The general (broadcasting) path: two +inf scores for one query cannot be ordered."""
    scorer = sgraph({"lin": LinearLayer(D2), "dot": DotLayer()}, [(I_, "lin"), (["lin", Q_], "dot")])
    net = NetInitialize(NetGraph({"attend": SequenceAttentionLayer(scorer)}, []), seed=0)
    W = np.zeros((D2, D1))
    W[0, 0] = 1e20
    net = NetReplacePart(net, {("attend", "ScoringNet", "lin", "Weights"): W})
    x = np.zeros((3, D1))
    x[:2, 0] = 1e19  # keys 0 and 1 both score 1e39 * q[0]
    q = np.ones((2, D2))
    with pytest.raises(NetError, match=r"node 'attend'.*dtype=np\.float64"):
        net({"Input": x, "Query": q})
    np.testing.assert_allclose(net({"Input": x, "Query": q}, NetPort("attend", "AttentionWeights"),
                                   dtype=np.float64), [[0.5, 0.5, 0]] * 2)
