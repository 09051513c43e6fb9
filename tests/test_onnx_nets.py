"""ONNX export of the layers and nets the layer-contract table does not cover: recurrent
layers (true lengths, State/CellState ports), attention (Dot, Bilinear, custom scoring nets,
causal and windowed masks, rescaling, multi-head, AttentionWeights), NetFoldOperator, losses,
operators over leading axes (a NetMap around attention, a recurrent layer, a fold) and nested
graphs. Each net is exported once and compared on two padded batches (garbage in the
padding, different batch sizes and padded lengths) with ``net(batch)`` (tests/onnx_helpers.py).
"""

from __future__ import annotations

import numpy as np
import pytest
from helpers import randomized, smooth_reals

pytest.importorskip("onnxruntime")
from onnx_helpers import check_two_batches  # noqa: E402

from netgraph import (  # noqa: E402
    AttentionLayer,
    BasicRecurrentLayer,
    CatenateLayer,
    CrossEntropyLossLayer,
    DotLayer,
    ElementwiseLayer,
    EmbeddingLayer,
    GatedRecurrentLayer,
    Index,
    LinearLayer,
    LongShortTermMemoryLayer,
    MeanAbsoluteLossLayer,
    MeanSquaredLossLayer,
    NetChain,
    NetFoldOperator,
    NetGraph,
    NetMapOperator,
    NetPort,
    SequenceAttentionLayer,
    SequenceLastLayer,
    SequenceMostLayer,
    SequenceRestLayer,
    SequenceReverseLayer,
    SoftmaxLayer,
    SummationLayer,
    ThreadingLayer,
    TotalLayer,
)

LENGTHS = ((3, 1, 5), (4, 2, 6, 1, 3))  # batch sizes 3 and 5; the second padded 2 further


def reals(rng, *shape):
    return smooth_reals(rng, shape)


def batches(make):
    """Two batches of ``make(rng, T) -> {port: example}``, lengths ``LENGTHS``."""
    rng = np.random.default_rng(11)
    out = []
    for lengths in LENGTHS:
        examples = [make(rng, T) for T in lengths]
        out.append({p: [e[p] for e in examples] for p in examples[0]})
    return out


def run(net, tmp_path, make, seed=0):
    return check_two_batches(randomized(net, seed=seed), tmp_path / "net.onnx", batches(make))


def additive(hidden):
    """Bahdanau's score ``v . tanh(W e + U q)``."""
    return NetGraph({"W": LinearLayer(hidden, biases=False), "U": LinearLayer(hidden),
                     "add": ThreadingLayer("Plus"), "tanh": ElementwiseLayer("Tanh"),
                     "v": LinearLayer((), biases=False)},
                    [(NetPort("Input"), "W"), (NetPort("Query"), "U"),
                     (["W", "U"], "add", "tanh", "v")])


# ----------------------------------------------------------------------------- recurrent
RECURRENT = [BasicRecurrentLayer, GatedRecurrentLayer, LongShortTermMemoryLayer]


@pytest.mark.parametrize("layer", RECURRENT, ids=lambda c: c.__name__)
@pytest.mark.parametrize("varying", [True, False], ids=["varying", "fixed"])
def test_recurrent_output(layer, varying, tmp_path):
    net = layer(5, Input=("Varying", 3) if varying else (4, 3))
    run(net, tmp_path, lambda rng, T: {"Input": reals(rng, T if varying else 4, 3)})


@pytest.mark.parametrize("layer", RECURRENT, ids=lambda c: c.__name__)
def test_recurrent_state_ports_true_final_state(layer, tmp_path):
    """Initial states in, final states (after each example's true last step) out."""
    states = ["State"] + (["CellState"] if layer is LongShortTermMemoryLayer else [])
    net = NetGraph({"r": layer(5, Input=("Varying", 3))},
                   [(NetPort(s), NetPort("r", s)) for s in states]
                   + [(NetPort("r", s), NetPort(s)) for s in states])
    assert set(net.output_ports) == {"Output", *states}
    run(net, tmp_path, lambda rng, T: {"Input": reals(rng, T, 3),
                                       **{s: reals(rng, 5) for s in states}})


# ----------------------------------------------------------------------------- attention
def _attention_data(rng, T, *, k=3, q=2, v=4, heads=None, m=None, keys="Key"):
    h = () if heads is None else (heads,)
    m = T + 1 if m is None else m
    data = {"Query": reals(rng, m, *h, q)}
    if keys == "Input":
        data["Input"] = reals(rng, T, *h, k)
    else:
        data["Key"], data["Value"] = reals(rng, T, *h, k), reals(rng, T, *h, v)
    return data


@pytest.mark.parametrize("scoring", ["Dot", "Bilinear", "Additive"])
def test_sequence_attention(scoring, tmp_path):
    net = SequenceAttentionLayer(additive(6) if scoring == "Additive" else scoring,
                                 Input=("Varying", 3), Query=("Varying", 3))
    run(net, tmp_path, lambda rng, T: _attention_data(rng, T, q=3, keys="Input",
                                                      m=(T + 2) % 4 + 1))


@pytest.mark.parametrize("scoring", ["Dot", "Bilinear", "Additive"])
@pytest.mark.parametrize("mask", [None, "Causal", ("Causal", 2)], ids=["none", "causal",
                                                                      "window2"])
def test_attention_masks_and_rescaling(scoring, mask, tmp_path):
    q = 3 if scoring == "Dot" else 2
    net = AttentionLayer(additive(5) if scoring == "Additive" else scoring, mask=mask,
                         score_rescaling="DimensionSqrt", Key=("Varying", 3),
                         Value=("Varying", 4), Query=("Varying", q))
    causal = mask is not None  # a causal mask needs equal key and query lengths
    run(net, tmp_path, lambda rng, T: _attention_data(rng, T, q=q, m=T if causal else None))


@pytest.mark.parametrize("scoring", ["Dot", "Bilinear", "Additive"])
def test_multi_head_attention_with_its_weights(scoring, tmp_path):
    """Heads on the penultimate axis; the weights (m, h, n) as a graph output with two
    varying axes (both sliced to the longest, both with lengths)."""
    attend = AttentionLayer(additive(5) if scoring == "Additive" else scoring, multi_head=True,
                            mask="Causal", Key=("Varying", 2, 3), Value=("Varying", 2, 4),
                            Query=("Varying", 2, 3))
    net = NetGraph({"a": attend}, [(NetPort("a", "AttentionWeights"), NetPort("Weights"))])
    session = run(net, tmp_path, lambda rng, T: _attention_data(rng, T, heads=2, q=3, m=T))
    names = [o.name for o in session.get_outputs()]
    assert {"Weights_lengths", "Weights_lengths2"} <= set(names)


def test_attention_single_query_vector(tmp_path):
    net = AttentionLayer("Bilinear", Key=("Varying", 3), Value=("Varying", 4), Query=2)
    run(net, tmp_path, lambda rng, T: {"Key": reals(rng, T, 3), "Value": reals(rng, T, 4),
                                       "Query": reals(rng, 2)})


def test_attention_over_index_keys_with_an_embedding_scoring_net(tmp_path):
    """Index sequences as keys: a custom scoring net embeds them (Dot with the query)."""
    scoring = NetGraph({"e": EmbeddingLayer(3, 7), "d": DotLayer(), "sum": SummationLayer()},
                       [(NetPort("Input"), "e"), (["e", NetPort("Query")], "d", "sum")])
    attend = AttentionLayer(scoring, Key=("Varying", 4, Index(7)), Value=("Varying", 5),
                            Query=("Varying", 3))
    run(attend, tmp_path, lambda rng, T: {"Key": rng.integers(0, 7, (T, 4)),
                                          "Value": reals(rng, T, 5),
                                          "Query": reals(rng, T % 3 + 1, 3)})


# ---------------------------------------------------------------------------- operators
def _fold_net():
    inner = NetGraph({"cat": CatenateLayer(), "lin": LinearLayer(4), "tanh": "Tanh"},
                     [([NetPort("Input"), NetPort("State")], "cat", "lin", "tanh")],
                     Input=3, State=4)
    return inner


@pytest.mark.parametrize("state", [False, True], ids=["zeros", "state-ports"])
def test_fold_true_final_state(state, tmp_path):
    fold = NetFoldOperator(_fold_net(), Input=("Varying", 3))
    if state:
        net = NetGraph({"f": fold}, [(NetPort("S0"), NetPort("f", "State")),
                                     (NetPort("f", "State"), NetPort("Final"))])
        run(net, tmp_path, lambda rng, T: {"Input": reals(rng, T, 3), "S0": reals(rng, 4)})
    else:
        run(fold, tmp_path, lambda rng, T: {"Input": reals(rng, T, 3)})


def test_map_of_index_sequences_with_embedding(tmp_path):
    net = NetMapOperator(NetChain([EmbeddingLayer(3, 6), SequenceLastLayer(), LinearLayer(2)]),
                         Input=("Varying", 4, Index(6)))
    run(net, tmp_path, lambda rng, T: {"Input": rng.integers(0, 6, (T, 4))})


def test_map_of_attention_recurrent_and_fold_on_leading_axes(tmp_path):
    """Inside a NetMap every value has leading axes (batch, T): attention, a recurrent
    layer fed a State from another input, a fold and a reversal run on them."""
    inner = NetGraph(
        {"att": SequenceAttentionLayer(additive(3)), "gru": GatedRecurrentLayer(4),
         "fold": NetFoldOperator(NetGraph({"cat": CatenateLayer(), "lin": LinearLayer(2)},
                                          [([NetPort("Input"), NetPort("State")], "cat",
                                            "lin")])),
         "rev": SequenceReverseLayer(), "last": SequenceLastLayer(), "total": TotalLayer()},
        [([NetPort("Keys"), NetPort("Queries")], "att"), ("att", "gru"),
         (NetPort("S"), NetPort("gru", "State")), ("gru", "fold", "rev", "last"),
         ([NetPort("gru", "State"), NetPort("gru", "State")], "total", NetPort("Final"))],
        Keys=(5, 3), Queries=(2, 3), S=4)
    net = NetMapOperator(inner, Keys=("Varying", 5, 3))
    run(net, tmp_path, lambda rng, T: {"Keys": reals(rng, T, 5, 3),
                                       "Queries": reals(rng, T, 2, 3), "S": reals(rng, T, 4)})


# -------------------------------------------------------------------------------- losses
def _probabilities(rng, *shape):
    e = np.exp(reals(rng, *shape))
    return e / e.sum(-1, keepdims=True)


@pytest.mark.parametrize("varying", [True, False], ids=["varying", "fixed"])
def test_cross_entropy_index(varying, tmp_path):
    net = CrossEntropyLossLayer("Index", Input=("Varying", 5) if varying else (3, 5))
    run(net, tmp_path, lambda rng, T: {"Input": _probabilities(rng, T if varying else 3, 5),
                                       "Target": rng.integers(0, 5, T if varying else 3)})


def test_cross_entropy_probabilities_and_binary(tmp_path):
    net = NetGraph({"p": CrossEntropyLossLayer("Probabilities", Input=("Varying", 4)),
                    "b": CrossEntropyLossLayer("Binary", Input="Real")},
                   [(NetPort("P"), NetPort("p", "Input")), (NetPort("PT"), NetPort("p", "Target")),
                    (NetPort("B"), NetPort("b", "Input")), (NetPort("BT"), NetPort("b", "Target")),
                    (NetPort("p", "Loss"), NetPort("L1")), (NetPort("b", "Loss"), NetPort("L2"))])
    run(net, tmp_path, lambda rng, T: {
        "P": _probabilities(rng, T, 4), "PT": _probabilities(rng, T, 4),
        "B": rng.uniform(0.05, 0.95), "BT": rng.uniform(0, 1)})


@pytest.mark.parametrize("loss", [MeanSquaredLossLayer, MeanAbsoluteLossLayer],
                         ids=lambda c: c.__name__)
def test_mean_losses_over_true_lengths(loss, tmp_path):
    net = loss(Input=("Varying", 3))
    run(net, tmp_path, lambda rng, T: {"Input": reals(rng, T, 3), "Target": reals(rng, T, 3)})


# ------------------------------------------------------------------------ nested graphs
def test_nested_graphs_with_fan_out(tmp_path):
    """A NetGraph holding a NetGraph holding a NetChain; a value read by two nodes and a
    graph output; a softmax over the varying axis."""
    chain = NetChain([NetMapOperator(LinearLayer(4)), ElementwiseLayer("Tanh")])
    middle = NetGraph({"chain": chain, "rnn": LongShortTermMemoryLayer(4),
                       "plus": ThreadingLayer("Plus")},
                      [("chain", "rnn"), (["chain", "rnn"], "plus")])
    net = NetGraph({"middle": middle, "soft": SoftmaxLayer(0),
                    "last": SequenceLastLayer()},
                   [(NetPort("X"), "middle", "soft", NetPort("Weights")),
                    ("middle", "last", NetPort("Last")), ("middle", NetPort("Features"))],
                   X=("Varying", 3))
    run(net, tmp_path, lambda rng, T: {"X": reals(rng, T, 3)})


def test_index_values_pass_through_structural_layers(tmp_path):
    """int64 outputs: exact, 0 in the padding, lengths of Most/Rest one less. (netgraph's
    inference leaves the element type of a Catenate of indices open, so that output is real,
    float32, in netgraph and in the model alike.)"""
    net = NetGraph({"rev": SequenceReverseLayer(), "most": SequenceMostLayer(),
                    "rest": SequenceRestLayer(), "last": SequenceLastLayer(),
                    "cat": CatenateLayer(-1)},
                   [(NetPort("X"), "rev", NetPort("Reversed")), (NetPort("X"), "most"),
                    (NetPort("X"), "rest"), (NetPort("X"), "last"),
                    ([NetPort("X"), NetPort("Y")], "cat", NetPort("Joined"))],
                   X=("Varying", 2, Index(9)), Y=("Varying", 3, Index(9)))
    session = run(net, tmp_path, lambda rng, T: {"X": rng.integers(0, 9, (T + 1, 2)),
                                                 "Y": rng.integers(0, 9, (T + 1, 3))})
    types = {o.name: o.type for o in session.get_outputs()}
    assert types["Reversed"] == types["Output1"] == types["Output3"] == "tensor(int64)"
    assert types["Joined"] == "tensor(float)"


def test_layers_on_attention_weights_with_two_varying_axes(tmp_path):
    """A softmax along the key axis, the last key's weight and a sum over both varying axes
    of the (m, n) weights: each axis masked by its own lengths."""
    net = NetGraph({"att": SequenceAttentionLayer("Dot", Input=("Varying", 3),
                                                  Query=("Varying", 3)),
                    "soft": SoftmaxLayer(-1), "last": SequenceLastLayer(),
                    "sum": SummationLayer(), "rev": SequenceReverseLayer()},
                   [(NetPort("att", "AttentionWeights"), "soft", NetPort("Soft")),
                    (NetPort("att", "AttentionWeights"), "last", NetPort("Last")),
                    (NetPort("att", "AttentionWeights"), "sum", NetPort("Total")),
                    (NetPort("att", "AttentionWeights"), "rev", NetPort("Reversed"))])
    run(net, tmp_path, lambda rng, T: {"Input": reals(rng, T, 3),
                                       "Query": reals(rng, (T * 2) % 5 + 1, 3)})


@pytest.mark.parametrize("form", ["Index", "Probabilities", "Binary"])
def test_probabilities_feeding_a_cross_entropy_loss(form, tmp_path):
    """A softmax (a logistic sigmoid for "Binary") feeding a cross-entropy loss — a pair the
    compiler may fuse into one log-softmax step — with large logits, the probabilities read
    by a graph output too."""
    act = ElementwiseLayer("LogisticSigmoid") if form == "Binary" else SoftmaxLayer()
    shape = ("Varying",) if form == "Binary" else ("Varying", 4)
    net = NetGraph({"lin": NetMapOperator(LinearLayer(shape[1:] or ())), "act": act,
                    "loss": CrossEntropyLossLayer(form)},
                   [(NetPort("X"), "lin", "act", NetPort("loss", "Input")),
                    ("act", NetPort("P"))], X=("Varying", 3))

    def target(rng, T):
        if form == "Index":
            return rng.integers(0, 4, T)
        return rng.uniform(0, 1, T) if form == "Binary" else _probabilities(rng, T, 4)

    run(net, tmp_path, lambda rng, T: {"X": 4 * reals(rng, T, 3), "Target": target(rng, T)})
