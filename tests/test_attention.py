"""SequenceAttentionLayer: values against a NumPy hand computation, gradients against central
differences, batch == per-example, padding, Wolfram's identities, inference, errors."""

import numpy as np
import pytest
from helpers import additive_scoring
from tolerance import assert_close

from netgraph import (
    CatenateLayer,
    DotLayer,
    ElementwiseLayer,
    InputDataError,
    LinearLayer,
    NetError,
    NetExtract,
    NetGraph,
    NetInitialize,
    NetMapOperator,
    NetPort,
    NetPortGradient,
    SequenceAttentionLayer,
    ShapeError,
    ThreadingLayer,
)
from netgraph.checks import check_padding, gradcheck

D1, D2, H = 4, 6, 9
N_LENS, M_LENS = [5, 1, 7, 3], [2, 8, 1, 3]
# terms summed into one output row: a score (per kind), then the softmax and the weighted sum
# over the inputs
TERMS = {k: n + 2 * max(N_LENS) for k, n in
         {"Dot": D1, "Bilinear": D1 * D2, "Additive": H * (D1 + D2)}.items()}


def layer(kind, d2=D2, seed=0):
    net = additive_scoring(H) if kind == "Additive" else kind
    return NetInitialize(SequenceAttentionLayer(net, Input=("Varying", D1),
                                                Query=("Varying", D2 if kind != "Dot" else D1)),
                         seed=seed)


def score_fn(net, kind):
    """The score f(e, q) written independently with the layer's arrays."""
    if kind == "Dot":
        return lambda e, q: q @ e
    if kind == "Bilinear":
        W = NetExtract(net, ["ScoringNet", "Linear", "Weights"]).astype(np.float64)
        assert W.shape == (D2, D1)
        return lambda e, q: q @ (W @ e)
    W, U, v = (NetExtract(net, ["ScoringNet", k, "Weights"]).astype(np.float64) for k in "WUv")
    return lambda e, q: v @ np.tanh(W @ e + U @ q)


def reference(E, Q, f):
    S = np.array([[f(e, q) for e in E] for q in Q])
    W = np.exp(S - S.max(axis=1, keepdims=True))
    W /= W.sum(axis=1, keepdims=True)
    return W @ E, W


def data(kind, seed=1):
    rng = np.random.default_rng(seed)
    d2 = D1 if kind == "Dot" else D2
    return ([rng.standard_normal((n, D1)) for n in N_LENS],
            [rng.standard_normal((m, d2)) for m in M_LENS])


KINDS = ["Dot", "Bilinear", "Additive"]


@pytest.mark.parametrize("kind", KINDS)
def test_forward_matches_hand_computation(kind):
    net = layer(kind)
    inputs, queries = data(kind)
    f = score_fn(net, kind)
    batch = net({"Input": inputs, "Query": queries}, dtype=np.float64)
    weights = net({"Input": inputs, "Query": queries}, NetPort("AttentionWeights"),
                  dtype=np.float64)
    for b, (E, Q) in enumerate(zip(inputs, queries)):
        out, W = reference(E, Q, f)
        assert_close(batch[b], out, dtype=np.float64, reduction=TERMS[kind])
        assert_close(weights[b], W, dtype=np.float64, reduction=TERMS[kind])
        assert batch[b].shape == (len(Q), D1) and weights[b].shape == (len(Q), len(E))
        single = net({"Input": E, "Query": Q}, dtype=np.float64)
        assert_close(single, batch[b], dtype=np.float64, reduction=TERMS[kind])  # == alone
    # float32 default agrees with float64 to float32 rounding
    f32 = net({"Input": inputs, "Query": queries})
    assert f32[0].dtype == np.float32
    for b, (E, Q) in enumerate(zip(inputs, queries)):
        assert_close(f32[b], reference(E, Q, f)[0], dtype=np.float32, reduction=TERMS[kind])


@pytest.mark.parametrize("kind", KINDS)
def test_gradients_central_differences(kind):
    net = layer(kind)
    inputs, queries = data(kind, seed=2)
    gradcheck(net, {"Input": inputs, "Query": queries})
    gradcheck(net, {"Input": inputs[2], "Query": queries[1]})


@pytest.mark.parametrize("kind", KINDS)
def test_padding_and_batch_composition(kind):
    net = layer(kind)
    inputs, queries = data(kind, seed=3)
    check_padding(net, {"Input": inputs, "Query": queries})


def test_padded_positions_get_exactly_zero_weight():
    net = layer("Bilinear")
    inputs, queries = data("Bilinear")
    W = net({"Input": inputs, "Query": queries}, NetPort("AttentionWeights"), dtype=np.float64)
    for w, E in zip(W, inputs):
        assert w.shape[1] == len(E)
        assert_close(w.sum(axis=1), 1.0, dtype=np.float64, reduction=len(E))
    # the weight matrix of the length-1 input is all ones: nothing leaks from padding
    np.testing.assert_array_equal(W[1], np.ones((M_LENS[1], 1)))


@pytest.mark.parametrize("kind", ["Dot", "Bilinear"])
def test_zero_query_gives_mean_of_inputs(kind):
    # Wolfram: query {0,0} on inputs {{1,2},{3,4},{5,6}} gives {3, 4}
    net = NetInitialize(SequenceAttentionLayer(kind, Input=("Varying", 2), Query=("Varying", 2)),
                        seed=5)
    E = np.array([[1.0, 2], [3, 4], [5, 6]])
    out = net({"Input": E, "Query": np.zeros((1, 2))}, dtype=np.float64)
    assert_close(out, [[3.0, 4.0]], dtype=np.float64, reduction=3)
    rng = np.random.default_rng(0)
    E = rng.standard_normal((7, 2))
    out = net({"Input": E, "Query": np.zeros((3, 2))}, dtype=np.float64)
    assert_close(out, np.tile(E.mean(axis=0), (3, 1)), dtype=np.float64, reduction=7)


@pytest.mark.parametrize("kind", KINDS)
def test_extracted_scoring_net_rebuilds_every_output_row(kind):
    net = layer(kind)
    scoring = NetExtract(net, "ScoringNet")
    E, Q = (x[0] for x in data(kind, seed=4))
    out = net({"Input": E, "Query": Q}, dtype=np.float64)
    for j, q in enumerate(Q):
        s = np.array([scoring({"Input": e, "Query": q}, dtype=np.float64) for e in E])
        w = np.exp(s - s.max())
        assert_close(out[j], (w / w.sum()) @ E, dtype=np.float64, reduction=TERMS[kind])


def test_bilinear_structure_and_weights_shape():
    net = SequenceAttentionLayer(Input=("Varying", 3), Query=("Varying", 5))
    scoring = NetExtract(net, "ScoringNet")
    assert set(NetExtract(scoring, "Linear").__class__.__mro__) >= {LinearLayer}
    assert isinstance(NetExtract(scoring, "Dot"), DotLayer)
    assert NetExtract(net, ["ScoringNet", "Linear", "Weights"]) is None
    init = NetInitialize(net, seed=0)
    assert NetExtract(init, ["ScoringNet", "Linear", "Weights"]).shape == (5, 3)
    assert NetExtract(init, "Output") == ("Varying", 3)
    dot = SequenceAttentionLayer("Dot", Input=(7, 4), Query=(3, 4))
    assert list(NetExtract(dot, "ScoringNet").children()) == ["Dot"]
    assert NetExtract(dot, "Output") == (3, 4)


def test_fixed_and_varying_lengths_and_inference_in_a_graph():
    # sizes flow in both directions: d1 from an encoder, d2 from a decoder
    g = NetGraph({"enc": NetMapOperator(LinearLayer(5)), "dec": NetMapOperator(LinearLayer(7)),
                  "attend": SequenceAttentionLayer(), "out": NetMapOperator(LinearLayer(3))},
                 [(NetPort("Source"), "enc", NetPort("attend", "Input")),
                  (NetPort("Target"), "dec", NetPort("attend", "Query")), ("attend", "out")],
                 Source=("Varying", 2), Target=(4, 11))
    assert NetExtract(g, ["attend", "Input"]) == ("Varying", 5)
    assert NetExtract(g, ["attend", "Query"]) == (4, 7)
    assert NetExtract(g, "Output") == (4, 3)
    g = NetInitialize(g, seed=0)
    assert NetExtract(g, ["attend", "ScoringNet", "Linear", "Weights"]).shape == (7, 5)
    rng = np.random.default_rng(0)
    src = [rng.standard_normal((n, 2)) for n in (3, 6)]
    tgt = rng.standard_normal((2, 4, 11))
    out = g({"Source": src, "Target": tgt})
    assert isinstance(out, np.ndarray) and out.shape == (2, 4, 3)
    w = g({"Source": src, "Target": tgt}, NetPort("attend", "AttentionWeights"))
    assert [x.shape for x in w] == [(4, 3), (4, 6)]
    # an output size known downstream flows up into the attention layer's Input
    g = NetGraph({"att": SequenceAttentionLayer(), "post": NetMapOperator(LinearLayer(2, Input=6))},
                 [("att", "post")], Query=("Varying", 3))
    assert NetExtract(g, "Input") == ("Varying", 6)
    assert NetExtract(g, ["att", "ScoringNet", "Input"]) == (6,)


def test_dot_requires_equal_sizes():
    with pytest.raises(ShapeError, match="3") as e:
        SequenceAttentionLayer("Dot", Input=(3, 4), Query=(4, 3))
    assert "Query" in str(e.value) and "Input" in str(e.value)
    # also when the sizes arrive by inference inside a graph
    with pytest.raises(ShapeError) as e:
        NetGraph({"a": NetMapOperator(LinearLayer(5)), "b": NetMapOperator(LinearLayer(6)),
                  "att": SequenceAttentionLayer("Dot")},
                 [(NetPort("X"), "a", NetPort("att", "Input")),
                  (NetPort("Y"), "b", NetPort("att", "Query"))],
                 X=("Varying", 2), Y=("Varying", 2))
    assert "5" in str(e.value) and "6" in str(e.value)


def test_bad_scoring_nets_are_rejected_at_construction():
    with pytest.raises(NetError, match="'Key'"):
        SequenceAttentionLayer(NetGraph({"d": DotLayer()}, [([NetPort("Key"), NetPort("Query")],
                                                               "d")]))
    with pytest.raises(NetError, match="Output"):
        SequenceAttentionLayer(NetGraph({"c": CatenateLayer()},
                                        [([NetPort("Input"), NetPort("Query")], "c")]),
                               Input=("Varying", 3), Query=("Varying", 2))
    with pytest.raises(NetError, match="scoring"):
        SequenceAttentionLayer("Cosine")
    with pytest.raises(NetError):
        SequenceAttentionLayer(42)


def test_zero_length_sequences_are_rejected():
    net = layer("Bilinear")
    rng = np.random.default_rng(0)
    with pytest.raises(InputDataError, match="Input"):
        net({"Input": np.zeros((0, D1)), "Query": rng.standard_normal((2, D2))})
    with pytest.raises(InputDataError, match="Query"):
        net({"Input": [rng.standard_normal((2, D1))] * 2,
             "Query": [rng.standard_normal((2, D2)), np.zeros((0, D2))]})
    with pytest.raises(InputDataError, match="Input"):
        net({"Input": rng.standard_normal((3, D1 + 1)), "Query": rng.standard_normal((2, D2))})


def test_huge_scores_stay_finite_and_pick_the_max():
    net = NetInitialize(SequenceAttentionLayer("Dot", Input=("Varying", 2),
                                               Query=("Varying", 2)))
    E = np.array([[1e4, 0.0], [0.0, 1e4], [-1e4, 0.0]])
    Q = np.array([[1e4, 0.0], [-1e4, 0.0]])
    out = net({"Input": E, "Query": Q}, dtype=np.float64)
    assert np.isfinite(out).all()
    assert_close(out, [[1e4, 0.0], [-1e4, 0.0]], dtype=np.float64, reduction=3)
    g = net({"Input": E, "Query": Q}, NetPortGradient("Input"), dtype=np.float64)
    assert np.isfinite(g).all()


def test_custom_scoring_parts_run_once_per_position():
    # the Input-only branch of a custom scoring net sees one row per input position (not one
    # per pair), the Query-only branch one per query position: checked through interior shapes
    seen = {}

    class Recorder(ElementwiseLayer):
        def forward(self, ins, arrays, ctx):
            seen.setdefault(ctx.step.path[-1], []).append(ins["Input"].shape)
            return super().forward(ins, arrays, ctx)

    scoring = NetGraph(
        {"W": LinearLayer(H, biases=False), "U": LinearLayer(H, biases=False),
         "rw": Recorder("Identity"), "ru": Recorder("Identity"), "add": ThreadingLayer("Plus"),
         "tanh": "Tanh", "v": LinearLayer((), biases=False)},
        [(NetPort("Input"), "W", "rw"), (NetPort("Query"), "U", "ru"),
         (["rw", "ru"], "add", "tanh", "v")])
    net = NetInitialize(SequenceAttentionLayer(scoring, Input=("Varying", D1),
                                               Query=("Varying", D2)))
    inputs, queries = data("Bilinear")
    net({"Input": inputs, "Query": queries})
    B, n, m = len(inputs), max(N_LENS), max(M_LENS)
    assert seen["rw"] == [(B, 1, 1, n, H)]
    assert seen["ru"] == [(B, 1, m, 1, H)]
