"""A table of user mistakes across the whole API, each raising exactly the documented error.

Every row names its area (construction, shapes, graphs, data, surgery, training, files), does
one wrong thing and asserts the exact error class, the words its message must hold (the node
path and port, and the values on both sides where the SPEC asks for them), and that nothing was
changed by the failed call: every net in ``NETS`` keeps its arrays bit for bit, its port shapes
(every sub-net's), its repr and its summary, and no file in the test's directory is created,
changed or removed. Bad data as such (unknown ports, wrong ranks, NaN, empty sequences, …) is
the subject of ``test_bad_inputs.py``; the data rows here are the ones it does not have.
"""

from __future__ import annotations

import hashlib
import json
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from helpers import assert_same_net, net_snapshot

import netgraph
from netgraph import (
    AttentionLayer,
    CatenateLayer,
    CrossEntropyLossLayer,
    DotLayer,
    DropoutLayer,
    ElementwiseLayer,
    EmbeddingLayer,
    GatedRecurrentLayer,
    Index,
    InputDataError,
    LinearLayer,
    LongShortTermMemoryLayer,
    NetChain,
    NetError,
    NetExtract,
    NetFoldOperator,
    NetGraph,
    NetInformation,
    NetInitialize,
    NetMapOperator,
    NetPort,
    NetPortGradient,
    NetReplacePart,
    NetTake,
    NetTrain,
    PortError,
    ReshapeLayer,
    SequenceAttentionLayer,
    SequenceLastLayer,
    SequenceMostLayer,
    ShapeError,
    SoftmaxLayer,
    SpecificationError,
    ThreadingLayer,
    TotalLayer,
)

RNG = np.random.default_rng(17)
X7 = RNG.uniform(-1, 1, size=(11, 7))
Y5 = RNG.uniform(-1, 1, size=(11, 5))
L = LinearLayer


def _scorer(extra: bool = False, vector: bool = False, two: bool = False) -> NetGraph:
    """Scoring nets for attention that are wrong in one way each."""
    if vector:
        return NetGraph({"l": L(5), "m": L(5), "t": TotalLayer()},
                        [(NetPort("Input"), "l"), (NetPort("Query"), "m"), (["l", "m"], "t")])
    nodes = {"d": DotLayer()}
    conns = [(NetPort("Input"), NetPort("d", "Input1")), (NetPort("Query"), NetPort("d", "Input2"))]
    if extra:
        nodes["b"] = L(())
        conns.append((NetPort("Bias"), "b"))
    if two:
        nodes["e"] = DotLayer()
        conns += [(NetPort("Input"), NetPort("e", "Input1")),
                  (NetPort("Query"), NetPort("e", "Input2"))]
    return NetGraph(nodes, conns)


def _nets() -> dict[str, Any]:
    return {
        # nets that rows apply, take apart, train and save
        "chain": NetInitialize(NetChain({"a": L(3), "t": "Tanh", "b": L(5)}, Input=7), seed=0),
        "unsized": NetChain({"x": L(3), "y": "Tanh"}),
        "att": NetInitialize(SequenceAttentionLayer(Input=("Varying", 3), Query=("Varying", 5)),
                             seed=1),
        "causal": NetInitialize(AttentionLayer(mask="Causal", Key=("Varying", 3),
                                               Value=("Varying", 5), Query=("Varying", 3)),
                                seed=2),
        "rnn": NetInitialize(NetGraph({"r": GatedRecurrentLayer(3)},
                                      [(NetPort("S0"), NetPort("r", "State"))],
                                      Input=("Varying", 2)), seed=3),
        "ce": NetGraph({"s": SoftmaxLayer(), "l": CrossEntropyLossLayer("Index")}, [("s", "l")],
                       Input=5),
        "clf": NetInitialize(NetChain({"lin": L(5), "soft": SoftmaxLayer()}, Input=3), seed=4),
        "seq": NetInitialize(NetMapOperator(L(3), Input=("Varying", 2)), seed=5),
        "most": SequenceMostLayer(Input=("Varying", 3)),
        "two": NetInitialize(NetGraph({"t": TotalLayer()}, [], Input1=3, Input2=3), seed=6),
        # parts that rows hand to constructors (which must not change them)
        "lin3": L(3, Input=5),
        "lin4in7": L(4, Input=7),
        "gru3": GatedRecurrentLayer(3),
        "scorer_bias": _scorer(extra=True),
        "scorer_vector": _scorer(vector=True),
        "scorer_two": _scorer(two=True),
        "inner2": NetGraph({"x": L(3), "y": L(4)}, []),
    }


NETS = _nets()


# --------------------------------------------------------------------------- helpers
def train(net: Any, data: Any, **opts: Any) -> Any:
    return NetTrain(net, data, **{"progress": False, "max_training_rounds": 2, "seed": 0,
                                  **opts})


def _saved(tmp: Path, name: str = "good.ngz") -> Path:
    path = tmp / name
    if not path.exists():
        netgraph.save(NETS["chain"], path)
    return path


def _rewrite(tmp: Path, name: str, change: Callable[[str, bytes], bytes | None]) -> None:
    """A copy of a good file with its members changed (or dropped when ``change`` gives
    None)."""
    with zipfile.ZipFile(_saved(tmp)) as zi, zipfile.ZipFile(tmp / name, "w") as zo:
        for member in zi.namelist():
            data = change(member, zi.read(member))
            if data is not None:
                zo.writestr(member, data)


def _spec(change: Callable[[dict], dict]) -> Callable[[str, bytes], bytes]:
    return lambda member, b: json.dumps(change(json.loads(b))).encode() \
        if member == "net.json" else b


def _truncate(tmp: Path, name: str, keep: float) -> None:
    data = _saved(tmp).read_bytes()
    (tmp / name).write_bytes(data[:int(len(data) * keep)])


@dataclass
class Mistake:
    id: str
    area: str
    act: Callable[[dict, Path], Any]
    error: type
    words: tuple[str, ...]
    prepare: Callable[[Path], Any] | None = None


def M(id, area, act, error, *words, prepare=None):  # noqa: N802 (reads like a table row)
    return Mistake(id, area, act, error, words, prepare)


C, S, G, D, X, T, F = ("construction", "shapes", "graphs", "data", "surgery", "training",
                       "files")

# ------------------------------------------------------------------------------ the table
MISTAKES = [
    # ------------------------------------------------------------------ construction
    M("negative LinearLayer size", C, lambda N, t: L(-3), NetError, "LinearLayer", "'n'", "-3"),
    M("LinearLayer biases not a bool", C, lambda N, t: L(3, biases="maybe"), NetError,
      "LinearLayer", "'biases'", "'maybe'"),
    M("dropout probability 1", C, lambda N, t: DropoutLayer(1.0), NetError, "DropoutLayer",
      "'p'", "[0, 1)", "1.0"),
    M("embedding of size 0", C, lambda N, t: EmbeddingLayer(0, 5), NetError, "EmbeddingLayer",
      "'size'", "0"),
    M("unknown elementwise function", C, lambda N, t: ElementwiseLayer("Relu6"), NetError,
      "ElementwiseLayer", "'f'", "'Relu6'", "'Tanh'"),
    M("unknown threading function", C, lambda N, t: ThreadingLayer("Power"), NetError,
      "ThreadingLayer", "'f'", "'Power'", "'Plus'"),
    M("Subtract of three inputs", C, lambda N, t: ThreadingLayer("Subtract", 3), NetError,
      "'Subtract'", "2", "arity=3"),
    M("unknown cross-entropy form", C, lambda N, t: CrossEntropyLossLayer("Hinge"), NetError,
      "CrossEntropyLossLayer", "'form'", "'Hinge'", "'Binary'"),
    M("unknown attention mask", C, lambda N, t: AttentionLayer(mask="Acausal"), NetError,
      "AttentionLayer", "'mask'", "'Acausal'", "'Causal'"),
    M("causal window of 0", C, lambda N, t: AttentionLayer(mask=("Causal", 0)), NetError,
      "'mask'", "('Causal', 0)", "n >= 1"),
    M("unknown score rescaling", C, lambda N, t: AttentionLayer(score_rescaling="Sqrt"),
      NetError, "'score_rescaling'", "'Sqrt'", "'DimensionSqrt'"),
    M("recurrent state size 0", C, lambda N, t: GatedRecurrentLayer(0), NetError,
      "GatedRecurrentLayer", "'n'", "0"),
    M("reshape to a negative size", C, lambda N, t: ReshapeLayer((2, -1)), NetError,
      "ReshapeLayer", "'shape'", "(2, -1)"),
    M("misspelt port keyword", C, lambda N, t: L(3, Inptu=5), NetError, "LinearLayer",
      "'Inptu'", "'Input'", "'Output'"),
    M("Key given to SequenceAttentionLayer", C,
      lambda N, t: SequenceAttentionLayer(Key=("Varying", 3)), NetError,
      "SequenceAttentionLayer", "'Key'", "'Input'", "'Query'"),
    M("shape for a port the graph lacks", C, lambda N, t: NetChain([N["lin3"]], Inptu=5),
      PortError, "'Inptu'", "['Input']", "['Output']"),
    M("two varying dimensions", C, lambda N, t: L(3, Input=("Varying", "Varying")), NetError,
      "('Varying', 'Varying')", "only the first"),
    M("a zero dimension", C, lambda N, t: L(3, Input=(5, 0)), NetError, "(5, 0)",
      "dimension 0"),
    M("element type before a dimension", C, lambda N, t: L(3, Input=(3, "Real", 4)), NetError,
      "'Real'", "(3, 'Real', 4)"),
    M("unknown shape word", C, lambda N, t: ElementwiseLayer("Tanh", Input="Vector"), NetError,
      "'Vector'", "'Varying'"),
    M("Index(0)", C, lambda N, t: EmbeddingLayer(3, Input=Index(0)), NetError, "Index(n)",
      "0"),
    M("unknown scoring net name", C, lambda N, t: SequenceAttentionLayer("Cosine"), NetError,
      "'Cosine'", "'Bilinear'", "'Dot'"),
    M("scoring net with an extra port", C,
      lambda N, t: SequenceAttentionLayer(N["scorer_bias"]), NetError, "scoring net",
      "'Bias'", "'Input'", "'Query'"),
    M("scoring net with a vector output", C,
      lambda N, t: AttentionLayer(N["scorer_vector"]), ShapeError, "'Output'",
      "'ScoringNet'", "(5,)", "scalar"),
    M("scoring net with two outputs", C,
      lambda N, t: SequenceAttentionLayer(N["scorer_two"]), NetError, "scoring net",
      "'Output1'", "'Output2'"),
    M("fold over a net without State", C, lambda N, t: NetFoldOperator(N["lin3"]), NetError,
      "NetFoldOperator", "'State'", "['Input']", "['Output']"),
    M("map over a number", C, lambda N, t: NetMapOperator(3), NetError, "NetMapOperator",
      "'net'", "int"),
    M("unknown shorthand in a chain", C, lambda N, t: NetChain([N["lin3"], "Relu6"]), NetError,
      "node 1", "'Relu6'"),
    M("empty chain", C, lambda N, t: NetChain([]), NetError, "NetChain", "at least one"),
    M("GRU size as a string", C, lambda N, t: GatedRecurrentLayer("4"), NetError,
      "GatedRecurrentLayer", "'n'", "'4'"),
    M("GRU size as a float", C, lambda N, t: GatedRecurrentLayer(4.0), NetError,
      "GatedRecurrentLayer", "'n'", "4.0"),
    M("GRU size as a bool", C, lambda N, t: GatedRecurrentLayer(True), NetError,
      "GatedRecurrentLayer", "'n'", "True"),
    M("dropout probability as a string", C, lambda N, t: DropoutLayer("0.5"), NetError,
      "DropoutLayer", "'p'", "'0.5'"),
    # ------------------------------------------------------------------------ shapes
    M("sizes conflict inside a chain", S,
      lambda N, t: NetChain({"lin": N["lin3"], "more": N["lin4in7"]}), ShapeError,
      "port 'Output' of node 'lin'", "(3,)", "port 'Input' of node 'more'", "(7,)"),
    M("a chain's Output spec conflicts", S,
      lambda N, t: NetChain({"rnn": LongShortTermMemoryLayer(5), "last": SequenceLastLayer()},
                            Input=("Varying", 2), Output=7), ShapeError,
      "port 'Output' of node 'last'", "(7,)", "(5,)", "node 'rnn'"),
    M("fan-in of different sizes", S,
      lambda N, t: NetGraph({"a": L(3), "b": L(5), "t": TotalLayer()}, [(["a", "b"], "t")],
                            Input=2), ShapeError,
      "node 'b'", "port 'Input2' of node 't'", "(5,)", "(3,)"),
    M("Dot of mismatched matrices", S, lambda N, t: DotLayer(Input1=(3, 5), Input2=(7, 2)),
      ShapeError, "DotLayer", "'Input1'", "(3, 5)", "'Input2'", "(7, 2)"),
    M("Dot of mismatched layer outputs", S,
      lambda N, t: NetGraph({"p": L((3, 5)), "q": L((7, 2)), "d": DotLayer()},
                            [(["p", "q"], "d")]), ShapeError,
      "node 'd'", "'Input1'", "(3, 5)", "'Input2'", "(7, 2)"),
    M("causal mask with unequal lengths", S,
      lambda N, t: AttentionLayer(mask="Causal", Key=(5, 3), Value=(5, 3), Query=(7, 3)),
      ShapeError, "causal", "'Key'", "'Query'", "size 5", "size 7"),
    M("causal window with unequal lengths in a graph", S,
      lambda N, t: NetGraph({"att": AttentionLayer(mask=("Causal", 2))}, [], Key=(5, 3),
                            Value=(5, 2), Query=(7, 3)), ShapeError,
      "node 'att'", "'Key'", "'Query'", "causal", "size 5", "size 7"),
    M("LinearLayer on a varying sequence", S, lambda N, t: L(3, Input=("Varying", 2)),
      ShapeError, "port 'Input'", "('Varying', 2)", "NetMapOperator"),
    M("LinearLayer after an embedding", S,
      lambda N, t: NetChain({"emb": EmbeddingLayer(3, 5), "lin": L(7)}), ShapeError,
      "port 'Input' of node 'lin'", "('Varying', 3)", "NetMapOperator"),
    M("catenate along a varying dimension", S,
      lambda N, t: NetGraph({"c": CatenateLayer()}, [], Input1=("Varying", 3),
                            Input2=("Varying", 3)), ShapeError,
      "CatenateLayer at node 'c'", "'Input1'", "('Varying', 3)", "varying"),
    M("catenate into an output too small", S,
      lambda N, t: NetGraph({"c": CatenateLayer(), "loss": CrossEntropyLossLayer("Index")},
                            [("c", "loss")], Input1=(2, 1), Target=(1, Index(1))), ShapeError,
      "CatenateLayer at node 'c'", "[2, None]", "the output only 1", "-1",
      "port 'Input2' of node 'c'"),
    M("Dot attention of different sizes", S,
      lambda N, t: SequenceAttentionLayer("Dot", Input=("Varying", 3), Query=("Varying", 5)),
      ShapeError, "'Query'", "('Varying', 5)", "size 5", "size 3"),
    M("keys and values of different lengths", S,
      lambda N, t: AttentionLayer(Key=(5, 3), Value=(7, 3), Query=(2, 3)), ShapeError,
      "'Value'", "(7, 3)", "size 7", "size 5"),
    M("initial state of the wrong size", S,
      lambda N, t: NetGraph({"r": N["gru3"], "s": L(5)},
                            [(NetPort("Init"), "s", NetPort("r", "State"))],
                            Input=("Varying", 2)), ShapeError,
      "port 'Output' of node 's'", "(5,)", "port 'State' of node 'r'", "(3,)"),
    M("reshape to another element count", S, lambda N, t: ReshapeLayer((2, 4), Input=(3, 3)),
      ShapeError, "'Input'", "(3, 3)", "9 elements", "(2, 4)"),
    M("SequenceMost of a fixed length 1", S, lambda N, t: SequenceMostLayer(Input=(1, 3)),
      ShapeError, "SequenceMostLayer", "length >= 2", "length 1"),
    M("softmax level out of range", S,
      lambda N, t: NetChain({"lin": L(5), "soft": SoftmaxLayer(1)}), ShapeError,
      "node 'soft'", "'Input'", "(5,)", "level 1", "rank 1"),
    M("index target with other classes", S,
      lambda N, t: CrossEntropyLossLayer("Index", Input=5, Target=Index(7)), ShapeError,
      "'Target'", "Index(7)", "'Input'", "(5,)"),
    M("LinearLayer feeding an embedding", S,
      lambda N, t: NetChain({"lin": L(4), "emb": EmbeddingLayer(3, 5)}, Input=2), ShapeError,
      "port 'Output' of node 'lin'", "port 'Input' of node 'emb'", "'Real'", "Index(5)"),
    M("Tanh feeding an embedding", S,
      lambda N, t: NetChain({"tanh": "Tanh", "emb": EmbeddingLayer(3, 5)}, Input=4),
      ShapeError, "node 'tanh'", "node 'emb'", "'Real'", "Index(5)"),
    M("dropout feeding an embedding", S,
      lambda N, t: NetChain({"drop": DropoutLayer(), "emb": EmbeddingLayer(3, 5)}),
      ShapeError, "node 'drop'", "node 'emb'", "'Real'", "Index(5)"),
    M("mapped net of another size", S,
      lambda N, t: NetMapOperator(N["lin3"], Input=("Varying", 7)), ShapeError,
      "NetMapOperator", "('Varying', 7)", "size 7", "size 5", "node 'Net'"),
    M("reals into an embedding of unknown rows", S,
      lambda N, t: NetChain([L(3), EmbeddingLayer(2)], Input=2), ShapeError,
      "port 'Input' of node 1", "(3,)", "LinearLayer at node 0", "Index(n)"),
    # ------------------------------------------------------------------------ graphs
    M("a cycle", G, lambda N, t: NetGraph({"a": L(3), "b": L(3)}, [("a", "b", "a")]),
      PortError, "cycle", "'a' -> 'b' -> 'a'"),
    M("a layer feeding itself", G, lambda N, t: NetGraph({"a": L(3)}, [("a", "a")]),
      PortError, "cycle", "'a' -> 'a'"),
    M("a cycle through a fan-in", G,
      lambda N, t: NetGraph({"a": L(3), "b": "Tanh", "c": TotalLayer()},
                            [(NetPort("Input"), NetPort("c", "Input1")),
                             ("c", "a", "b", NetPort("c", "Input2"))]),
      PortError, "cycle", "'a' -> 'b' -> 'c' -> 'a'"),
    M("unknown node", G, lambda N, t: NetGraph({"a": L(3)}, [("a", "zz")]), PortError,
      "'zz'", "nodes are ['a']"),
    M("unknown node position", G, lambda N, t: NetGraph([L(3), L(5)], [(0, 2)]), PortError,
      "2", "nodes are [0, 1]"),
    M("unknown input port", G,
      lambda N, t: NetGraph({"a": L(3), "b": L(5)}, [("a", NetPort("b", "Nope"))]),
      PortError, "node 'b'", "input port 'Nope'", "['Input']"),
    M("unknown output port", G,
      lambda N, t: NetGraph({"a": L(3), "b": L(5)}, [(NetPort("a", "Nope"), "b")]),
      PortError, "node 'a'", "output port 'Nope'", "['Output']"),
    M("an output used as a destination", G,
      lambda N, t: NetGraph({"a": L(3), "b": L(3)}, [("a", NetPort("b", "Output"))]),
      PortError, "node 'b'", "input port 'Output'"),
    M("two sources into one port", G,
      lambda N, t: NetGraph({"a": L(3), "b": L(3), "c": L(5)}, [("a", "c"), ("b", "c")]),
      PortError, "two sources", "port 'Input' of node 'c'", "NetPort('a', 'Output')",
      "NetPort('b', 'Output')"),
    M("two graph inputs into one port", G,
      lambda N, t: NetGraph({"c": L(5)}, [(NetPort("X"), "c"), (NetPort("Y"), "c")]),
      PortError, "two sources", "node 'c'", "NetPort('X')", "NetPort('Y')"),
    M("two sources into one graph output", G,
      lambda N, t: NetGraph({"a": L(3), "b": L(3)}, [("a", NetPort("Out")),
                                                      ("b", NetPort("Out"))]),
      PortError, "two sources", "graph output 'Out'"),
    M("three sources into a DotLayer", G,
      lambda N, t: NetGraph({"a": L(3), "b": L(3), "c": L(3), "d": DotLayer()},
                            [(["a", "b", "c"], "d")]),
      PortError, "node 'd'", "['Input1', 'Input2']", "3 sources"),
    M("two sources into a LinearLayer", G,
      lambda N, t: NetGraph({"a": L(3), "b": L(3), "l": L(5)}, [(["a", "b"], "l")]),
      PortError, "node 'l'", "['Input']", "2 sources"),
    M("three sources into TotalLayer(2)", G,
      lambda N, t: NetGraph({"a": L(3), "b": L(3), "c": L(3), "s": TotalLayer(2)},
                            [(["a", "b", "c"], "s")]),
      PortError, "node 's'", "takes 2 inputs", "3 were connected"),
    M("three sources into Subtract", G,
      lambda N, t: NetGraph({"a": L(3), "b": L(3), "c": L(3), "s": ThreadingLayer("Subtract")},
                            [(["a", "b", "c"], "s")]),
      PortError, "node 's'", "3 sources", "'Subtract'"),
    M("a node of two outputs as a source", G,
      lambda N, t: NetGraph({"in": N["inner2"], "z": L(2)}, [("in", "z")]), PortError,
      "node 'in'", "['Output1', 'Output2']", "NetPort('in', port)"),
    M("a nested node in a connection", G,
      lambda N, t: NetGraph({"a": L(3)}, [(NetPort(("a", "x"), "Output"), NetPort("Out"))]),
      PortError, "direct nodes", "NetPort(('a', 'x'), 'Output')"),
    M("a connection of one endpoint", G, lambda N, t: NetGraph({"a": L(3)}, [("a",)]),
      NetError, "two or more endpoints", "('a',)"),
    M("a list into a list", G,
      lambda N, t: NetGraph({"a": L(3), "b": L(3), "t": TotalLayer(), "u": TotalLayer()},
                            [(["a", "b"], ["t", "u"])]),
      NetError, "list to a list", "['a', 'b']", "['t', 'u']"),
    M("a layer name as a chain entry", G, lambda N, t: NetChain([L(3), "Softmax"], Input=2),
      NetError, "node 1", "'Softmax'", "SoftmaxLayer()"),
    # -------------------------------------------------------------------------- data
    M("causal attention of unequal lengths", D,
      lambda N, t: N["causal"]({"Key": X7[:4, :3], "Value": Y5[:4], "Query": X7[:6, :3]}),
      InputDataError, "'Query'", "[6]", "[4]"),
    M("keys and values of unequal lengths", D,
      lambda N, t: N["causal"]({"Key": X7[:4, :3], "Value": Y5[:5], "Query": X7[:4, :3]}),
      InputDataError, "'Value'", "'Key'", "[5]", "[4]"),
    M("attention batches of unequal sizes", D,
      lambda N, t: N["att"]({"Input": [X7[:4, :3]] * 3, "Query": [Y5[:2]] * 2}),
      InputDataError, "'Input': 3", "'Query': 2"),
    M("initial state data of the wrong size", D,
      lambda N, t: N["rnn"]({"Input": X7[:4, :2], "S0": np.ones(5)}), InputDataError,
      "'S0'", "(5,)", "(3,)"),
    M("class index out of range", D, lambda N, t: N["ce"]({"Input": Y5[0], "Target": 7}),
      InputDataError, "'Target'", "7", "Index(5)"),
    M("fractional class index", D, lambda N, t: N["ce"]({"Input": Y5[0], "Target": 1.5}),
      InputDataError, "'Target'", "integers", "Index(5)"),
    M("values beyond float32", D, lambda N, t: N["chain"](np.full(7, 1e39)), InputDataError,
      "'Input'", "1e+39", "float32", "dtype=np.float64"),
    M("a length-1 sequence into SequenceMost", D,
      lambda N, t: N["most"]([X7[:3, :3], X7[:1, :3]]), InputDataError,
      "SequenceMostLayer", "'Input'", "length >= 2", "[3, 1]"),
    M("a varying seed of the wrong length", D,
      lambda N, t: N["att"]({"Input": X7[:4, :3], "Query": Y5[:2],
                             NetPortGradient("Output"): np.ones((3, 3))},
                            NetPortGradient("Input")),
      InputDataError, "'Output'", "(3, 3)", "(2, 3)"),
    M("a seed longer than its example", D,
      lambda N, t: N["seq"]({"Input": [X7[:3, :2], X7[:5, :2]],
                             NetPortGradient("Output"): [np.ones((3, 3)), np.ones((6, 3))]},
                            NetPortGradient("Input")),
      InputDataError, "NetPortGradient('Output')", "example 1", "(6, 3)", "(5, 3)"),
    M("one-hot targets for Index cross-entropy", D,
      lambda N, t: N["ce"]({"Input": Y5[:3], "Target": np.eye(5)[[0, 4, 2]]}), InputDataError,
      "'Target'", "(3, 5)", "Index(5)", "one-hot", 'CrossEntropyLossLayer("Probabilities")'),
    # ----------------------------------------------------------------------- surgery
    M("extract a missing node", X, lambda N, t: NetExtract(N["chain"], "zz"), PortError,
      "'zz'", "['a', 't', 'b'"),
    M("extract a missing array", X, lambda N, t: NetExtract(N["chain"], ["a", "Nope"]),
      PortError, "'Nope'", "node 'a'", "'Weights'", "'Biases'"),
    M("extract position 7 of 3", X, lambda N, t: NetExtract(N["chain"], 7), PortError, "7",
      "3 parts"),
    M("extract through an array", X, lambda N, t: NetExtract(N["chain"], ["a", "Weights", "x"]),
      PortError, "'Weights'", "node 'a'", "'x'"),
    M("extract a missing scoring part", X,
      lambda N, t: NetExtract(N["att"], ["ScoringNet", "Bilinear"]), PortError, "'Bilinear'",
      "'ScoringNet'", "'Linear'", "'Dot'"),
    M("replace weights of the wrong shape", X,
      lambda N, t: NetReplacePart(N["chain"], {("a", "Weights"): np.ones((5, 7))}), ShapeError,
      "'Weights'", "node 'a'", "(3, 7)", "(5, 7)"),
    M("replace weights of the wrong rank", X,
      lambda N, t: NetReplacePart(N["chain"], {("a", "Weights"): np.ones(21)}), ShapeError,
      "'Weights'", "node 'a'", "(3, 7)", "(21,)"),
    M("replace biases of the wrong size", X,
      lambda N, t: NetReplacePart(N["chain"], {("b", "Biases"): np.ones(3)}), ShapeError,
      "'Biases'", "node 'b'", "(5,)", "(3,)"),
    M("replace weights with NaN", X,
      lambda N, t: NetReplacePart(N["chain"], {("a", "Weights"): np.full((3, 7), np.nan)}),
      NetError, "'Weights'", "node 'a'", "NaN"),
    M("replace transposed scoring weights", X,
      lambda N, t: NetReplacePart(N["att"], {("ScoringNet", "Linear", "Weights"): np.ones((3, 5))}),
      ShapeError, "'Weights'", "'ScoringNet'/'Linear'", "(5, 3)", "(3, 5)"),
    M("replace a port shape that conflicts", X,
      lambda N, t: NetReplacePart(N["chain"], {"Input": 9}), ShapeError,
      "port 'Input' of node 'a'", "size 9", "size 7", "'Weights'"),
    M("replace a layer that does not fit", X,
      lambda N, t: NetReplacePart(N["chain"], {"t": L(4)}), ShapeError,
      "node 'b'", "size 4", "size 3", "(5, 3)"),
    M("replace a missing part", X, lambda N, t: NetReplacePart(N["chain"], {"zz": np.ones(3)}),
      PortError, "'zz'", "['Input', 'Output']"),
    M("take from an unknown node", X, lambda N, t: NetTake(N["chain"], "zz", "b"), PortError,
      "start 'zz'", "['a', 't', 'b']"),
    M("take backwards", X, lambda N, t: NetTake(N["chain"], "b", "a"), NetError,
      "end 'a'", "start 'b'", "cannot be reached"),
    M("take to a position out of range", X, lambda N, t: NetTake(N["chain"], 0, 9), PortError,
      "end 9", "['a', 't', 'b']"),
    M("take from a missing graph input", X,
      lambda N, t: NetTake(N["chain"], NetPort("Nope"), "b"), PortError,
      "NetPort('Nope')", "['Input']"),
    M("take from a missing interior port", X,
      lambda N, t: NetTake(N["chain"], NetPort("a", "Nope"), "b"), PortError,
      "node 'a'", "'Nope'", "['Input', 'Output']"),
    M("take from a layer", X, lambda N, t: NetTake(N["lin3"], 0, 0), NetError, "NetTake",
      "NetGraph", "LinearLayer"),
    M("initialize with unknown sizes", X, lambda N, t: NetInitialize(N["unsized"]),
      SpecificationError, "'Weights'", "LinearLayer", "node 'x'", "(3, '?')"),
    M("initialize with an unknown method", X,
      lambda N, t: NetInitialize(N["chain"], method="He"), NetError, "'He'", "'Xavier'"),
    M("initialize with a negative seed", X, lambda N, t: NetInitialize(N["chain"], seed=-1),
      NetError, "seed", "-1"),
    M("unknown NetInformation property", X,
      lambda N, t: NetInformation(N["chain"], "Nope"), NetError, "'Nope'", "'ArraysCount'"),
    M("replace weights beyond float32", X,
      lambda N, t: NetReplacePart(N["chain"], {("a", "Weights"): np.full((3, 7), 1e39)}),
      NetError, "'Weights'", "node 'a'", "1e+39", "float32"),
    M("replace weights with complex numbers", X,
      lambda N, t: NetReplacePart(N["chain"], {("a", "Weights"): np.ones((3, 7)) * 1j}),
      NetError, "'Weights'", "node 'a'", "complex128"),
    M("extract below a missing nested node", X,
      lambda N, t: NetExtract(N["att"], ["ScoringNet", "Nope", "Weights"]), PortError,
      "'Nope'", "'ScoringNet'", "'Linear'"),
    # ---------------------------------------------------------------------- training
    M("training data as a string", T, lambda N, t: train(N["chain"], "data.csv"),
      InputDataError, "training data", "got str"),
    M("training data as a list of pairs", T,
      lambda N, t: train(N["chain"], list(zip(X7, Y5))), InputDataError, "training data",
      "not a list of dicts"),
    M("training without targets", T, lambda N, t: train(N["chain"], {"Input": X7}),
      InputDataError, "target port 'Output'", "['Input', 'Output']"),
    M("unequal numbers of examples", T,
      lambda N, t: train(N["chain"], {"Input": X7[:7], "Output": Y5[:5]}), InputDataError,
      "'Input': 7", "'Output': 5"),
    M("(inputs, targets) for two inputs", T, lambda N, t: train(N["two"], (X7, Y5)),
      InputDataError, "(inputs, targets)", "'Input1'", "'Input2'"),
    M("an example without its target", T,
      lambda N, t: train(N["chain"], [{"Input": x, "Output": y} for x, y in zip(X7[:3], Y5)]
                         + [{"Input": X7[3]}]), InputDataError, "example 3", "'Output'"),
    M("target sequences of other lengths", T,
      lambda N, t: train(N["seq"], {"Input": [np.ones((n, 2)) for n in (3, 5, 7)],
                                    "Output": [np.ones((n, 3)) for n in (3, 5, 6)]}),
      InputDataError, "example 2", "'Output'", "length 6", "'Input'", "length 7"),
    M("class index out of range in training", T,
      lambda N, t: train(N["clf"], {"Input": X7[:4, :3], "Output": [0, 1, 5, 2]}),
      InputDataError, "'Output'", "example 2", "5", "Index(5)"),
    M("one-hot targets for an index loss", T,
      lambda N, t: train(N["clf"], {"Input": X7[:4, :3], "Output": np.eye(5)[:4]}),
      InputDataError, "'Output'", "(4, 5)", "Index(5)"),
    M("training data beyond float32", T,
      lambda N, t: train(N["chain"], (np.full((4, 7), 1e39), Y5[:4])), InputDataError,
      "'Input'", "1e+39", "float32"),
    M("unknown method", T, lambda N, t: train(N["chain"], (X7, Y5), method="LBFGS"), NetError,
      "'LBFGS'", "'ADAM'", "'SGD'"),
    M("unknown method option", T,
      lambda N, t: train(N["chain"], (X7, Y5), method=("ADAM", {"beta9": 0.5})), NetError,
      "'beta9'", "'beta1'"),
    M("batch size 0", T, lambda N, t: train(N["chain"], (X7, Y5), batch_size=0), NetError,
      "batch_size", "0"),
    M("negative learning rate", T, lambda N, t: train(N["chain"], (X7, Y5), learning_rate=-1),
      NetError, "learning_rate", "-1"),
    M("no training rounds", T,
      lambda N, t: train(N["chain"], (X7, Y5), max_training_rounds=0), NetError,
      "max_training_rounds", "0"),
    M("unknown property", T, lambda N, t: train(N["chain"], (X7, Y5), prop="Loss"), NetError,
      "'Loss'", "'round_loss_list'"),
    M("validation fraction above 1", T,
      lambda N, t: train(N["chain"], (X7, Y5), validation_set=1.5), NetError,
      "validation_set", "1.5"),
    M("validation set of unequal sizes", T,
      lambda N, t: train(N["chain"], (X7, Y5), validation_set=(X7[:2], Y5[:3])),
      InputDataError, "validation set", "'Input': 2", "'Output': 3"),
    M("loss for a missing output", T, lambda N, t: train(N["chain"], (X7, Y5), loss="Nope"),
      NetError, "'Nope'", "['Output']"),
    M("a loss that is not a loss layer", T,
      lambda N, t: train(N["chain"], (X7, Y5), loss=L(3)), NetError, "'Output'", "Loss",
      "LinearLayer"),
    M("negative gradient clipping", T,
      lambda N, t: train(N["chain"], (X7, Y5), gradient_clipping=-1), NetError,
      "gradient_clipping", "-1"),
    M("a diverging run", T,
      lambda N, t: train(N["chain"], (X7 * 1e3, Y5 * 1e3), method="SGD", learning_rate=1e30),
      NetError, "diverged", "round", "batch", "learning_rate", "1e+30", "not changed"),
    M("training on the GPU", T,
      lambda N, t: train(N["chain"], (X7, Y5), target_device="GPU"), NetError, "'GPU'",
      "'CPU'"),
    M("one-hot targets for a softmax output", T,
      lambda N, t: train(N["clf"], {"Input": X7[:4, :3], "Output": np.eye(5)[[0, 1, 2, 3]]}),
      InputDataError, "'Output'", "one-hot", "0..4",
      'loss=CrossEntropyLossLayer("Probabilities")'),
    # ------------------------------------------------------------------------- files
    M("save to a directory", F, lambda N, t: netgraph.save(N["chain"], t), NetError,
      "cannot save", "directory"),
    M("save into a missing directory", F,
      lambda N, t: netgraph.save(N["chain"], t / "missing" / "net.ngz"), NetError,
      "cannot save", "missing"),
    M("save something that is not a net", F, lambda N, t: netgraph.save(3, t / "x.ngz"),
      NetError, "save needs a net", "int"),
    M("load a missing file", F, lambda N, t: netgraph.load(t / "nope.ngz"), NetError,
      "cannot load", "nope.ngz", "no such file"),
    M("load a directory", F, lambda N, t: netgraph.load(t), NetError, "cannot load",
      "not a regular file"),
    M("load an empty file", F, lambda N, t: netgraph.load(t / "empty.ngz"), NetError,
      "cannot load", "empty", prepare=lambda t: (t / "empty.ngz").write_bytes(b"")),
    M("load a text file", F, lambda N, t: netgraph.load(t / "notes.ngz"), NetError,
      "cannot load", "not a netgraph net file",
      prepare=lambda t: (t / "notes.ngz").write_text("hello")),
    M("load a NumPy file", F, lambda N, t: netgraph.load(t / "a.npy"), NetError,
      "cannot load", "not a netgraph net file",
      prepare=lambda t: np.save(t / "a.npy", np.ones(3))),
    M("load a foreign zip", F, lambda N, t: netgraph.load(t / "other.zip"), NetError,
      "cannot load", "no 'net.json'",
      prepare=lambda t: zipfile.ZipFile(t / "other.zip", "w").close()),
    M("load a file cut in half", F, lambda N, t: netgraph.load(t / "half.ngz"), NetError,
      "cannot load", "half.ngz", "truncated or damaged",
      prepare=lambda t: _truncate(t, "half.ngz", 0.5)),
    M("load a file missing its last bytes", F, lambda N, t: netgraph.load(t / "cut.ngz"),
      NetError, "cannot load", "truncated or damaged",
      prepare=lambda t: _truncate(t, "cut.ngz", 0.97)),
    M("load a spec that is not JSON", F, lambda N, t: netgraph.load(t / "json.ngz"), NetError,
      "cannot load", "not valid JSON",
      prepare=lambda t: _rewrite(t, "json.ngz", lambda m, b: b"{" if m == "net.json" else b)),
    M("load a file from a newer netgraph", F, lambda N, t: netgraph.load(t / "v9.ngz"),
      NetError, "cannot load", "format version 999", "upgrade",
      prepare=lambda t: _rewrite(t, "v9.ngz", _spec(lambda d: {**d, "format_version": 999}))),
    M("load a file of another format", F, lambda N, t: netgraph.load(t / "keras.ngz"),
      NetError, "cannot load", "'keras'", "'netgraph-net'",
      prepare=lambda t: _rewrite(t, "keras.ngz", _spec(lambda d: {**d, "format": "keras"}))),
    M("load a file without an array", F, lambda N, t: netgraph.load(t / "noarray.ngz"),
      NetError, "cannot load", "'Weights'", "node 'a'", "arrays/0.npy",
      prepare=lambda t: _rewrite(t, "noarray.ngz",
                                 lambda m, b: None if m == "arrays/0.npy" else b)),
]


# -------------------------------------------------------------------------- snapshots
def _files(tmp: Path) -> dict[str, str]:
    return {str(p.relative_to(tmp)): hashlib.sha256(p.read_bytes()).hexdigest()
            if p.is_file() else "dir" for p in sorted(tmp.rglob("*"))}


@pytest.mark.parametrize("m", MISTAKES, ids=[m.id for m in MISTAKES])
def test_mistake(m, tmp_path):
    if m.prepare is not None:
        m.prepare(tmp_path)
    before = {k: net_snapshot(n) for k, n in NETS.items()}
    files = _files(tmp_path)
    with pytest.raises(NetError) as e:
        m.act(NETS, tmp_path)
    assert type(e.value) is m.error, f"{type(e.value).__name__}: {e.value}"
    for word in m.words:
        assert word in str(e.value), f"{word!r} not in {str(e.value)!r}"
    for k, n in NETS.items():
        assert_same_net(n, before[k], f"net {k!r} changed")
    assert _files(tmp_path) == files, "the failed call touched the files"


def test_the_table_covers_every_area():
    areas = {}
    for m in MISTAKES:
        areas[m.area] = areas.get(m.area, 0) + 1
    assert set(areas) == {C, S, G, D, X, T, F}
    assert all(n >= 5 for n in areas.values()), areas
    assert len(MISTAKES) >= 40
    assert len({m.id for m in MISTAKES}) == len(MISTAKES)
    assert {m.error for m in MISTAKES} == {NetError, ShapeError, PortError, InputDataError,
                                           SpecificationError}


def test_every_net_still_works_after_every_mistake(tmp_path):
    fresh = _nets()
    for m in MISTAKES:
        if m.prepare is not None:
            m.prepare(tmp_path)
        with pytest.raises(NetError):
            m.act(NETS, tmp_path)
    x = X7[:2]
    np.testing.assert_array_equal(NETS["chain"](x), fresh["chain"](x))
    data = {"Input": [X7[:4, :3], X7[:2, :3]], "Query": [Y5[:3], Y5[:1]]}
    for a, b in zip(NETS["att"](data), fresh["att"](data)):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(NETS["rnn"]({"Input": X7[:4, :2], "S0": Y5[0, :3]}),
                                  fresh["rnn"]({"Input": X7[:4, :2], "S0": Y5[0, :3]}))
    # and a net saved after all that loads back bit for bit
    netgraph.save(NETS["chain"], tmp_path / "after.ngz")
    back = netgraph.load(tmp_path / "after.ngz")
    assert_same_net(back, NETS["chain"])


def test_a_user_mistake_never_leaks_a_bare_exception():
    """The same mistakes, seen from the outside: every error is a ValueError (NetError) with a
    message, and none of them chains a NumPy / KeyError / IndexError / TypeError cause that a
    traceback would show as the real error."""
    for m in MISTAKES:
        if m.area == F:
            continue  # the files rows need a directory; test_mistake covers them
        try:
            m.act(NETS, Path("/nonexistent-netgraph-dir"))
        except NetError as e:
            assert isinstance(e, ValueError) and str(e)
            cause = e.__cause__ if e.__cause__ is not None else (
                None if e.__suppress_context__ else e.__context__)
            assert not isinstance(cause, (KeyError, IndexError, TypeError, AttributeError)), \
                (m.id, repr(cause))
        else:  # pragma: no cover - test_mistake reports it better
            pytest.fail(f"{m.id}: no error")
