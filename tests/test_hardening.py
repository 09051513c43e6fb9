"""Exact in every corner: values that used to be corrupted silently, and mistakes that used to
end in a bare exception, a coerced hyperparameter or an unhelpful message.

Each row of ``ROWS`` does one wrong thing and asserts the exact error class and the words its
message must hold: the node path, the port, array or parameter, and the values on both sides.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest
from helpers import array_paths, randomized
from layer_cases import CASES, FIXED_BATCH, SINGLE_LENGTH

import netgraph.layers as layers
from netgraph import (
    All,
    AttentionLayer,
    CrossEntropyLossLayer,
    ElementwiseLayer,
    EmbeddingLayer,
    InputDataError,
    LinearLayer,
    NetArrayGradient,
    NetChain,
    NetError,
    NetExtract,
    NetGraph,
    NetInitialize,
    NetMapOperator,
    NetPortGradient,
    NetReplacePart,
    NetTrain,
    PortError,
    SequenceAttentionLayer,
    SequenceReverseLayer,
    ShapeError,
    SoftmaxLayer,
    ThreadingLayer,
    check_padding,
    gradcheck,
)
from netgraph.apply import apply_net
from netgraph.arrays import validated_array

RNG = np.random.default_rng(23)
XS = [RNG.uniform(-1, 1, (T, 2)) for T in (3, 5)]  # a ragged batch of two examples
MAP = NetInitialize(NetMapOperator(LinearLayer(3), Input=("Varying", 2)), seed=0)
LIN = NetInitialize(NetChain({"lin": LinearLayer(3, Input=2)}), seed=1)
INTS = SequenceReverseLayer(Input=("Varying", "Integer"))
EMB = NetInitialize(EmbeddingLayer(3, 5), seed=2)
NESTED = NetInitialize(NetChain({"enc": NetChain({"lin": LinearLayer(3), "t": "Tanh"}),
                                 "att": NetMapOperator(LinearLayer(5))}, Input=2), seed=3)
ATT = NetInitialize(SequenceAttentionLayer(Input=("Varying", 3), Query=("Varying", 5)), seed=4)
CE = CrossEntropyLossLayer("Index", Input=4)
CE_SEQ = CrossEntropyLossLayer("Index", Input=("Varying", 4))
CLF = NetInitialize(NetChain([LinearLayer(4), SoftmaxLayer()], Input=3), seed=5)
ONE_HOT = np.eye(4)[[1, 3, 0, 2, 1]]
X3 = RNG.uniform(-1, 1, (5, 3))


def seeded(seed: Any) -> Callable[[], Any]:
    """Apply ``MAP`` to the ragged batch ``XS`` with ``seed`` as the output's gradient."""
    return lambda: MAP({"Input": XS, NetPortGradient("Output"): seed}, NetPortGradient("Input"))


def replaced(value: Any) -> Callable[[], Any]:
    return lambda: NetReplacePart(LIN, {("lin", "Weights"): value})


@dataclass
class Row:
    id: str
    act: Callable[[], Any]
    error: type
    words: tuple[str, ...]


def R(id, act, error, *words):  # noqa: N802 (reads like a table row)
    return Row(id, act, error, words)


ROWS = [
    # ------------------------------------------------ gradient seeds are validated like data
    R("seed shorter than its example", seeded([np.ones((2, 3)), np.ones((5, 3))]),
      InputDataError, "NetPortGradient('Output')", "example 0", "(2, 3)", "(3, 3)"),
    R("seed longer than its example", seeded([np.ones((3, 3)), np.ones((6, 3))]),
      InputDataError, "NetPortGradient('Output')", "example 1", "(6, 3)", "(5, 3)"),
    R("seed lengths swapped", seeded([np.ones((5, 3)), np.ones((3, 3))]),
      InputDataError, "example 0", "(5, 3)", "(3, 3)"),
    R("seed of a single example too short",
      lambda: MAP({"Input": XS[1], NetPortGradient("Output"): np.ones((4, 3))},
                  NetPortGradient("Input")),
      InputDataError, "NetPortGradient('Output')", "(4, 3)", "(5, 3)"),
    R("seed beyond float32", seeded([np.ones((3, 3)), np.full((5, 3), 1e39)]),
      InputDataError, "NetPortGradient('Output')", "1e+39", "float32"),
    R("seed batch of the wrong size", seeded([np.ones((3, 3))]),
      InputDataError, "NetPortGradient('Output')", "a batch of 2", "a batch of 1"),
    # ------------------------------------- NetReplacePart: real, finite-in-float32 arrays only
    R("array beyond float32", replaced(np.full((3, 2), 1e39)),
      NetError, "'Weights'", "node 'lin'", "1e+39", "float32"),
    R("array just beyond float32", replaced(np.full((3, 2), 3.41e38)),
      NetError, "'Weights'", "node 'lin'", "3.41e+38", "float32"),
    R("array of complex numbers", replaced(np.ones((3, 2)) + 1j),
      NetError, "'Weights'", "node 'lin'", "complex128"),
    R("array of booleans", replaced(np.ones((3, 2), bool)),
      NetError, "'Weights'", "node 'lin'", "bool"),
    R("list of booleans", replaced([[True, False]] * 3),
      NetError, "'Weights'", "node 'lin'", "bool"),
    R("array of strings", replaced(np.full((3, 2), "1")),
      NetError, "'Weights'", "node 'lin'", "strings"),
    R("array of dates", replaced(np.full((3, 2), np.datetime64("2020-01-01"))),
      NetError, "'Weights'", "node 'lin'", "datetime64"),
    R("array of time differences", replaced(np.full((3, 2), np.timedelta64(1, "s"))),
      NetError, "'Weights'", "node 'lin'", "timedelta64"),
    R("array of objects", replaced(np.ones((3, 2)).astype(object)),
      NetError, "'Weights'", "node 'lin'", "object"),
    R("masked array", replaced(np.ma.masked_array(np.ones((3, 2)), mask=np.eye(3, 2))),
      NetError, "'Weights'", "node 'lin'", "masked"),
    R("array with NaN", replaced(np.where(np.eye(3, 2) > 0, np.nan, 1.0)),
      NetError, "'Weights'", "node 'lin'", "NaN", "(0, 0)"),
    # ----------------------------------------- "Integer" ports hold int64, Index(n) 0..n-1
    R("integer 1e30", lambda: INTS([1.0, 1e30]), InputDataError, "'Input'", "1e+30", "int64"),
    R("integer 2**64-1", lambda: INTS(np.array([1, 2**64 - 1], np.uint64)),
      InputDataError, "'Input'", "18446744073709551615", "int64"),
    R("integer 2**63", lambda: INTS([1, 2**63]),
      InputDataError, "'Input'", "9223372036854775808", "int64"),
    R("integer 2.0**63 in a batch", lambda: INTS([np.array([1.0]), np.array([2.0 ** 63])]),
      InputDataError, "'Input'", "example 1", "9223372036854775808", "int64"),
    R("index 1e30 is not wrapped", lambda: EMB([1.0, 1e30]),
      InputDataError, "'Input'", "1e+30", "0..4"),
    R("index 2**64-1 is not wrapped", lambda: EMB(np.array([1, 2**64 - 1], np.uint64)),
      InputDataError, "'Input'", "18446744073709551615", "0..4"),
    R("a training target of 1e30 is not wrapped",
      lambda: NetTrain(CLF, {"Input": X3, "Output": [0, 1, 2, 3, 1e30]}, max_training_rounds=1,
                       progress=False),
      InputDataError, "training data", "'Output'", "1e+30", "0..3"),
]


PROBABILITIES = 'CrossEntropyLossLayer("Probabilities")'
ROWS += [
    # ------------------------------------------------------- gradcheck/check_padding options
    R("gradcheck eps 0", lambda: gradcheck(LIN, XS[0][0], eps=0), NetError, "eps", "> 0", "0"),
    R("gradcheck eps negative", lambda: gradcheck(LIN, XS[0][0], eps=-1e-3),
      NetError, "eps", "> 0", "-0.001"),
    R("gradcheck eps NaN", lambda: gradcheck(LIN, XS[0][0], eps=float("nan")),
      NetError, "eps", "finite", "nan"),
    R("gradcheck eps Inf", lambda: gradcheck(LIN, XS[0][0], eps=float("inf")),
      NetError, "eps", "finite", "inf"),
    R("gradcheck eps a string", lambda: gradcheck(LIN, XS[0][0], eps="1e-6"),
      NetError, "eps", "'1e-6'"),
    R("gradcheck max_entries negative", lambda: gradcheck(LIN, XS[0][0], max_entries=-1),
      NetError, "max_entries", ">= 0", "-1"),
    R("gradcheck rtol negative", lambda: gradcheck(LIN, XS[0][0], rtol=-1.0),
      NetError, "rtol", ">= 0", "-1.0"),
    R("gradcheck atol NaN", lambda: gradcheck(LIN, XS[0][0], atol=float("nan")),
      NetError, "atol", "finite", "nan"),
    R("check_padding atol negative", lambda: check_padding(MAP, XS, atol=-1e-9),
      NetError, "check_padding", "atol", ">= 0", "-1e-09"),
    # ----------------------------------------------- every missing part is a PortError
    R("extract a missing top-level part", lambda: NetExtract(NESTED, "dec"),
      PortError, "'dec'", "['enc', 'att'"),
    R("extract a missing nested node", lambda: NetExtract(NESTED, ["enc", "rnn", "Weights"]),
      PortError, "'rnn'", "node 'enc'", "['lin', 't'"),
    R("extract a missing nested array", lambda: NetExtract(NESTED, ["enc", "lin", "W"]),
      PortError, "'W'", "node 'enc'/'lin'", "'Weights'"),
    R("extract a position out of range", lambda: NetExtract(NESTED, 2),
      PortError, "part 2", "2 parts"),
    R("extract a nested position out of range", lambda: NetExtract(NESTED, ["enc", -3]),
      PortError, "part -3", "node 'enc'", "2 parts"),
    R("extract below an array", lambda: NetExtract(NESTED, ["enc", "lin", "Weights", 0]),
      PortError, "'Weights'", "node 'enc'/'lin'", "no part 0"),
    R("extract below All", lambda: NetExtract(NESTED, ["enc", All, "Weights"]),
      PortError, "All", "node 'enc'", "'Weights'"),
    R("extract an unhashable part", lambda: NetExtract(NESTED, ["enc", ["lin"]]),
      PortError, "['lin']", "node 'enc'"),
    R("extract a missing part inside an operator", lambda: NetExtract(NESTED, ["att", "Nets"]),
      PortError, "'Nets'", "node 'att'", "'Net'"),
    R("extract a missing scoring part", lambda: NetExtract(ATT, ["ScoringNet", "Linear", "B"]),
      PortError, "'B'", "'ScoringNet'/'Linear'", "'Weights'"),
    R("extract one missing path of several",
      lambda: NetExtract(NESTED, [["enc", "lin", "Weights"], ["enc", "nope"]]),
      PortError, "'nope'", "node 'enc'"),
    R("replace below a missing node",
      lambda: NetReplacePart(NESTED, {("enc", "rnn", "Weights"): np.ones((3, 2))}),
      PortError, "'rnn'", "node 'enc'", "['lin', 't']"),
    R("replace below an array",
      lambda: NetReplacePart(NESTED, {("enc", "lin", "Weights", "x"): np.ones((3, 2))}),
      PortError, "'Weights'", "node 'enc'/'lin'", "not a net"),
    # ------------------------------------------ reals cannot feed an index port, ever
    R("LinearLayer feeding an EmbeddingLayer of unknown rows",
      lambda: NetChain([LinearLayer(3), EmbeddingLayer(2)], Input=2),
      ShapeError, "port 'Input' of node 1", "(3,)", "LinearLayer at node 0", "Index(n)"),
    R("Tanh feeding an EmbeddingLayer of unknown rows",
      lambda: NetChain({"t": ElementwiseLayer("Tanh"), "e": EmbeddingLayer(2)},
                       Input="Varying"),
      ShapeError, "port 'Input' of node 'e'", "('Varying',)", "Index(n)"),
    R("an EmbeddingLayer given a real input", lambda: EmbeddingLayer(2, Input="Real"),
      ShapeError, "port 'Input'", "'Real'", "Index(n)"),
    # ---------------------------------------------------- the fix, where it is obvious
    R("a layer name in a NetChain", lambda: NetChain([LinearLayer(3), "Softmax"], Input=2),
      NetError, "node 1", "'Softmax'", "SoftmaxLayer()"),
    R("a layer name in a NetGraph",
      lambda: NetGraph({"lin": LinearLayer(3), "soft": "softmax"}, [("lin", "soft")], Input=2),
      NetError, "node 'soft'", "'softmax'", "SoftmaxLayer()"),
    R("a layer class in a NetChain", lambda: NetChain([LinearLayer(3), SoftmaxLayer], Input=2),
      NetError, "node 1", "SoftmaxLayer", "instance"),
    R("a threading function in a NetChain", lambda: NetChain([LinearLayer(3), "Times"]),
      NetError, "node 1", "'Times'", "ThreadingLayer('Times')"),
    R("a misspelt function in a NetChain", lambda: NetChain([LinearLayer(3), "Tahn"]),
      NetError, "node 1", "'Tahn'", "'Tanh'"),
    R("a misspelt elementwise function", lambda: ElementwiseLayer("relu"),
      NetError, "parameter 'f'", "'relu'", "did you mean 'ReLU'"),
    R("a threading function in an ElementwiseLayer", lambda: ElementwiseLayer("Plus"),
      NetError, "parameter 'f'", "'Plus'", "ThreadingLayer('Plus')"),
    R("an elementwise function in a ThreadingLayer", lambda: ThreadingLayer("Tanh"),
      NetError, "parameter 'f'", "'Tanh'", "ElementwiseLayer('Tanh')"),
    R("one-hot targets for Index cross-entropy (a batch)",
      lambda: CE({"Input": np.full((5, 4), 0.25), "Target": ONE_HOT}),
      InputDataError, "'Target'", "(5, 4)", "Index(4)", "one-hot", "0..3", PROBABILITIES),
    R("a one-hot target for Index cross-entropy (one example)",
      lambda: CE({"Input": np.full(4, 0.25), "Target": ONE_HOT[0]}),
      InputDataError, "'Target'", "Index(4)", "one-hot", PROBABILITIES),
    R("one-hot sequence targets for Index cross-entropy",
      lambda: CE_SEQ({"Input": [np.full((5, 4), 0.25)], "Target": [ONE_HOT]}),
      InputDataError, "'Target'", "('Varying', Index(4))", "one-hot", PROBABILITIES),
    R("one-hot targets for NetTrain on a Softmax output",
      lambda: NetTrain(CLF, {"Input": X3, "Output": ONE_HOT}, max_training_rounds=1),
      InputDataError, "training data", "'Output'", "one-hot", "0..3",
      'loss=CrossEntropyLossLayer("Probabilities")'),
    R("an output port given as data",
      lambda: MAP({"Input": XS, "Output": [np.ones((3, 3)), np.ones((5, 3))]}),
      InputDataError, "'Output'", "output port", "NetPortGradient('Output')"),
]


@pytest.mark.parametrize("row", ROWS, ids=[r.id for r in ROWS])
def test_row_raises_the_documented_error(row):
    with pytest.raises(NetError) as info:
        row.act()
    assert type(info.value) is row.error, f"{type(info.value).__name__}: {info.value}"
    for w in row.words:
        assert w in str(info.value), f"{w!r} missing from: {info.value}"


def test_well_formed_seeds_still_seed_exactly():
    g = [RNG.uniform(-1, 1, (3, 3)), RNG.uniform(-1, 1, (5, 3))]
    W = np.asarray(NetExtract(MAP, ["Net", "Weights"]), np.float64)
    got = MAP({"Input": XS, NetPortGradient("Output"): g}, NetPortGradient("Input"),
              dtype=np.float64)
    for k in range(2):
        np.testing.assert_allclose(got[k], g[k] @ W, rtol=1e-12)


def test_integer_ports_keep_every_int64_exactly():
    lo, hi = -2 ** 63, 2 ** 63 - 1
    got = INTS(np.array([lo, 0, hi], np.int64))
    assert got.dtype == np.int64 and got.tolist() == [hi, 0, lo]
    assert INTS([-2.0 ** 63, 7.0]).tolist() == [7, lo]  # -2**63 is an exact float
    assert INTS(np.array([hi, 3], np.uint64)).tolist() == [3, hi]


@pytest.mark.parametrize("value", [
    np.full((3, 2), 3.4028235e38), np.arange(6, dtype=np.int64).reshape(3, 2),
    np.ones((3, 2), np.float16), [[1, 2], [3, 4], [5, 6]], np.ones((3, 2), np.uint8)])
def test_real_finite_arrays_are_stored_exactly_as_float32(value):
    net = replaced(value)()
    got = NetExtract(net, ["lin", "Weights"])
    want = np.asarray(value).astype(np.float32)
    assert got.dtype == np.float32 and np.isfinite(got).all()
    np.testing.assert_array_equal(got, want)


def test_validated_array_is_a_read_only_float32_copy():
    src = np.arange(6.0).reshape(2, 3)
    out = validated_array(src, "array 'W'")
    assert out.dtype == np.float32 and not out.flags.writeable and out.flags.c_contiguous
    src[0, 0] = 99
    assert out[0, 0] == 0
    assert validated_array(2.5, "array 'b'").shape == ()
    with pytest.raises(NetError, match=r"array .b. must be a real numeric array.*booleans \(bool\)"):
        validated_array(True, "array 'b'")


def test_an_object_array_of_ragged_examples_is_a_ragged_batch():
    ragged = np.empty(2, dtype=object)
    ragged[0], ragged[1] = XS
    assert ragged.shape == (2,)  # what np.array(XS, dtype=object) gives
    want = MAP(XS, dtype=np.float64)
    got = MAP(ragged, dtype=np.float64)
    assert isinstance(got, list) and [g.shape for g in got] == [(3, 3), (5, 3)]
    for g, w in zip(got, want, strict=True):
        np.testing.assert_array_equal(g, w)
    grads = MAP({"Input": ragged, NetPortGradient("Output"): np.array(want, dtype=object)},
                NetPortGradient("Input"), dtype=np.float64)
    assert [g.shape for g in grads] == [(3, 2), (5, 2)]


# ---------------------------------------------------------- strict hyperparameter types
#: bad values of each kind: a bool is never a number, a number never a bool or a string,
#: a float or a numeric string never an int
NOT_INT = (True, np.bool_(True), "4", 4.0, np.float64(4.0))
NOT_REAL = (True, np.bool_(False), "0.25")
NOT_BOOL = (1, 0, "True", 1.0, np.int64(1))
NOT_STR = (True, 1, 1.5)
# (layer, parameter, make(value), bad values, a good value of another type that is accepted)
HYPERPARAMETERS = [
    ("LinearLayer", "n", lambda v: layers.LinearLayer(v), NOT_INT, np.int64(4)),
    ("LinearLayer", "n", lambda v: layers.LinearLayer((3, v)), NOT_INT, np.int32(4)),
    ("LinearLayer", "biases", lambda v: layers.LinearLayer(3, biases=v), NOT_BOOL, np.bool_(0)),
    ("ElementwiseLayer", "f", lambda v: layers.ElementwiseLayer(v), NOT_STR, "Tanh"),
    ("ThreadingLayer", "f", lambda v: layers.ThreadingLayer(v), NOT_STR, "Plus"),
    ("ThreadingLayer", "arity", lambda v: layers.ThreadingLayer("Plus", v), NOT_INT,
     np.int64(3)),
    ("TotalLayer", "arity", lambda v: layers.TotalLayer(v), NOT_INT, np.int64(3)),
    ("CatenateLayer", "level", lambda v: layers.CatenateLayer(v), NOT_INT, np.int64(-1)),
    ("CatenateLayer", "arity", lambda v: layers.CatenateLayer(0, v), NOT_INT, np.int64(3)),
    ("ReshapeLayer", "shape", lambda v: layers.ReshapeLayer((v, 3)), NOT_INT, np.int64(4)),
    ("SoftmaxLayer", "level", lambda v: layers.SoftmaxLayer(v), NOT_INT, np.int64(0)),
    ("DropoutLayer", "p", lambda v: layers.DropoutLayer(v), NOT_REAL, 0),
    ("EmbeddingLayer", "size", lambda v: layers.EmbeddingLayer(v, 5), NOT_INT, np.int64(3)),
    ("EmbeddingLayer", "n", lambda v: layers.EmbeddingLayer(3, v), NOT_INT, np.int64(5)),
    ("BasicRecurrentLayer", "n", lambda v: layers.BasicRecurrentLayer(v), NOT_INT, np.int64(4)),
    ("GatedRecurrentLayer", "n", lambda v: layers.GatedRecurrentLayer(v), NOT_INT, np.int64(4)),
    ("LongShortTermMemoryLayer", "n", lambda v: layers.LongShortTermMemoryLayer(v), NOT_INT,
     np.int64(4)),
    ("AttentionLayer", "mask", lambda v: layers.AttentionLayer(mask=("Causal", v)), NOT_INT,
     np.int64(2)),
    ("AttentionLayer", "score_rescaling", lambda v: layers.AttentionLayer(score_rescaling=v),
     NOT_STR, "DimensionSqrt"),
    ("AttentionLayer", "multi_head", lambda v: layers.AttentionLayer(multi_head=v), NOT_BOOL,
     np.bool_(1)),
    ("AttentionLayer", "dropout", lambda v: layers.AttentionLayer(dropout=v), NOT_REAL, 0),
    ("CrossEntropyLossLayer", "form", lambda v: layers.CrossEntropyLossLayer(v), NOT_STR,
     "Binary"),
    ("NormalizationLayer", "epsilon", lambda v: layers.NormalizationLayer(v), NOT_REAL, 1),
    ("SequenceIndicesLayer", "n", lambda v: layers.SequenceIndicesLayer(v), NOT_INT,
     np.int64(4)),
    ("NetBidirectionalOperator", "aggregation",
     lambda v: layers.NetBidirectionalOperator(layers.GatedRecurrentLayer(3), v), NOT_STR,
     "Total"),
]
#: parameters no constructor takes (SequenceAttentionLayer pins AttentionLayer's options)
NOT_CONSTRUCTOR_ARGUMENTS = {("SequenceAttentionLayer", p) for p in
                             ("mask", "score_rescaling", "multi_head", "dropout")}


def test_the_hyperparameter_table_covers_every_parameter_of_every_layer():
    every = {(name, field) for name in layers.__all__
             for field in getattr(layers, name).Params.model_fields}
    assert every - NOT_CONSTRUCTOR_ARGUMENTS == {(n, p) for n, p, *_ in HYPERPARAMETERS}


@pytest.mark.parametrize("layer, param, make, bad, good", HYPERPARAMETERS,
                         ids=[f"{n}-{p}-{i}" for i, (n, p, *_) in enumerate(HYPERPARAMETERS)])
def test_hyperparameters_are_never_coerced(layer, param, make, bad, good):
    for v in bad:
        with pytest.raises(NetError) as info:
            make(v)
        msg = str(info.value)
        assert type(info.value) is NetError and layer in msg and f"'{param}'" in msg, msg
        assert repr(v) in msg, f"the value {v!r} is missing from: {msg}"
        assert "Input should" not in msg and "Value error" not in msg  # pydantic's wording
    made = make(good)  # NumPy scalars are numbers; an int is a real
    value = getattr(made.params, param)
    assert type(value) in (int, float, bool, str, tuple), type(value)


# ------------------------------------- no floating-point warning escapes a handled case
@pytest.fixture(params=["errstate-raise", "warnings-error"])
def strict_floats(request):
    """Run the test with every NumPy floating-point event raised, one way or the other."""
    with warnings.catch_warnings():
        if request.param == "warnings-error":
            warnings.simplefilter("error")
            yield
        else:
            with np.errstate(all="raise"):
                yield


def _case_data(case, seed):
    rng = np.random.default_rng(seed)
    single = case.sample(rng, SINGLE_LENGTH)
    examples = [case.sample(rng, T) for T in (case.lengths or (SINGLE_LENGTH,) * FIXED_BATCH)]
    join = list if case.lengths else np.stack
    return single, {p: join([ex[p] for ex in examples]) for p in examples[0]}


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_layer_cases_raise_no_floating_point_warning(case, strict_floats):
    net = randomized(case.make(), 11)
    keys = [NetPortGradient(p) for p in net.input_ports
            if "Index" not in repr(net.port_shape(p))]
    keys += [NetArrayGradient(p) for p in array_paths(net)]
    single, batch = _case_data(case, 12)
    for data in (single, batch):
        for dtype in (np.float32, np.float64):
            net(data, list(net.output_ports) + keys, dtype=dtype)
        apply_net(net, data, keys, training=True, rng=np.random.default_rng(0))
    gradcheck(net, batch)
    check_padding(net, batch)


BIG = 1e4
#: functions whose value at 1e4 overflows: their overflow is the user's to see
_OVERFLOWING = {"Elementwise-Exp"}


def _scaled(data, factor):
    """Real data times ``factor``; data drawn positive (the domain of Log, Sqrt, a divisor)
    times ``|factor|``."""
    out = {}
    for p, x in data.items():
        parts = x if isinstance(x, list) else [x]
        if np.asarray(parts[0]).dtype.kind != "f":
            out[p] = x
            continue
        f = abs(factor) if all((np.asarray(e) > 0).all() for e in parts) else factor
        out[p] = [f * np.asarray(e) for e in x] if isinstance(x, list) else f * x
    return out


@pytest.mark.parametrize("case", [c for c in CASES if c.id not in _OVERFLOWING],
                         ids=[c.id for c in CASES if c.id not in _OVERFLOWING])
def test_layer_cases_at_huge_magnitudes_stay_finite_and_silent(case, strict_floats):
    """Inputs of ±1e4 (softmax logits, sigmoid and softplus arguments, ...): every value and
    gradient is finite, and no floating-point event (not even an underflow) escapes."""
    net = randomized(case.make(), 13)
    keys = [NetPortGradient(p) for p in net.input_ports
            if "Index" not in repr(net.port_shape(p))]
    keys += [NetArrayGradient(p) for p in array_paths(net)]
    single, batch = _case_data(case, 14)
    for factor in (BIG, -BIG):
        for data in (_scaled(single, factor), _scaled(batch, factor)):
            for dtype in (np.float32, np.float64):
                got = net(data, list(net.output_ports) + keys, dtype=dtype)
                for g in got:
                    assert all(np.isfinite(np.asarray(e)).all() for e in
                               (g if isinstance(g, list) else [g])), (case.id, factor, dtype)


LOGITS = np.array([[BIG, -BIG, 0.0, BIG / 2, -3.0],
                   [-BIG, -BIG, -BIG, -BIG, BIG],
                   [-BIG, BIG / 3, 2.0, -1.0, BIG / 3]])
SEQ_LOGITS = [LOGITS, LOGITS[:1], np.concatenate([LOGITS, -LOGITS])]


def _then(first, loss, shape):
    return NetGraph({"act": first, "loss": loss}, [("act", "loss")], Input=shape)


def _huge_bilinear():
    W = np.zeros((5, 3))
    W[0, 0], W[1, 2] = BIG, -BIG
    return NetReplacePart(NetInitialize(SequenceAttentionLayer(
        Input=("Varying", 3), Query=("Varying", 5))), {("ScoringNet", "Linear", "Weights"): W})


def _grads(net):
    return [NetPortGradient(p) for p in net.input_ports
            if "Index" not in repr(net.port_shape(p))] + [
        NetArrayGradient(p) for p in array_paths(net)]


_SIGN = RNG.choice([-1.0, 1.0], size=(6, 5))
_SIGN_HEADS = RNG.choice([-1.0, 1.0], size=(4, 3, 2))
# (id, net, data): saturated and degenerate inputs whose results the library defines
EXTREMES = [
    ("softmax + Index cross-entropy", _then(SoftmaxLayer(), CrossEntropyLossLayer("Index"), 5),
     {"Input": LOGITS, "Target": np.array([0, 0, 4])}),
    ("softmax + Index cross-entropy on sequences",
     _then(SoftmaxLayer(), CrossEntropyLossLayer("Index"), ("Varying", 5)),
     {"Input": SEQ_LOGITS, "Target": [np.array([0, 0, 4]), np.array([1]), np.arange(6) % 5]}),
    ("softmax + Probabilities cross-entropy",
     _then(SoftmaxLayer(), CrossEntropyLossLayer("Probabilities"), 5),
     {"Input": LOGITS, "Target": np.array([[0.5, 0.5, 0, 0, 0], [0.2] * 5, [0, 0.5, 0, 0, 0.5]])}),
    ("Probabilities cross-entropy of exact zeros and ones",
     CrossEntropyLossLayer("Probabilities", Input=5),
     {"Input": np.eye(5)[[0, 2, 4]], "Target": np.eye(5)[[1, 2, 3]]}),
    ("sigmoid + Binary cross-entropy",
     _then(ElementwiseLayer("LogisticSigmoid"), CrossEntropyLossLayer("Binary"), 5),
     {"Input": LOGITS, "Target": np.array([[1, 0, 0.5, 1, 0], [0, 0, 0, 1, 1], [1, 1, 1, 0, 0.]])}),
    ("Binary cross-entropy of exact zeros and ones", CrossEntropyLossLayer("Binary", Input=4),
     {"Input": np.array([[0, 1, 0, 1.0]]), "Target": np.array([[0, 1, 1, 0.0]])}),
    ("sigmoid + Binary cross-entropy on sequences",
     _then(ElementwiseLayer("Sigmoid"), CrossEntropyLossLayer("Binary"), ("Varying", 5)),
     {"Input": SEQ_LOGITS, "Target": [(np.abs(x) > 1).astype(float) for x in SEQ_LOGITS]}),
    ("mean squared loss on sequences", layers.MeanSquaredLossLayer(Input=("Varying", 5)),
     {"Input": SEQ_LOGITS, "Target": [-x for x in SEQ_LOGITS]}),
    ("mean absolute loss on sequences", layers.MeanAbsoluteLossLayer(Input=("Varying", 5)),
     {"Input": SEQ_LOGITS, "Target": [x[::-1] for x in SEQ_LOGITS]}),
    ("softmax over a varying axis", SoftmaxLayer(0, Input="Varying"),
     {"Input": [np.array([BIG, -BIG, 3.0]), np.array([-BIG]), np.array([-BIG, -BIG, BIG, 0])]}),
    ("Dot attention with huge scores",
     SequenceAttentionLayer("Dot", Input=("Varying", 3), Query=("Varying", 3)),
     {"Input": [np.array([[100.0, 0, 0], [-100, 0, 0], [0, 100, 0], [0, 0, 1]])],
      "Query": [np.array([[100.0, 0, 0], [0, -100, 0], [0, 0, 0]])]}),
    ("Bilinear attention with huge scores in a ragged batch", _huge_bilinear(),
     {"Input": [_SIGN[:4, :3], _SIGN[:1, :3], _SIGN[:, :3]],
      "Query": [_SIGN[:2], _SIGN[:5], _SIGN[:3]]}),
    ("causal multi-head attention with huge scores",
     NetInitialize(AttentionLayer("Dot", mask="Causal", score_rescaling="DimensionSqrt",
                                  multi_head=True, Key=("Varying", 3, 2), Value=("Varying", 3, 5),
                                  Query=("Varying", 3, 2)), seed=0),
     {"Key": BIG / 100 * _SIGN_HEADS, "Value": np.repeat(_SIGN[:4, None, :], 3, axis=1),
      "Query": BIG / 100 * _SIGN_HEADS[::-1]}),
] + [
    (f"{layer.__name__} saturated", randomized(layer(5, Input=("Varying", 3)), 1),
     {"Input": [np.array([[BIG, -BIG, BIG], [-BIG, BIG, 0.0], [0.0, 0.0, BIG]]),
                np.array([[-BIG, -BIG, -BIG]])]})
    for layer in (layers.BasicRecurrentLayer, layers.GatedRecurrentLayer,
                  layers.LongShortTermMemoryLayer)
]


@pytest.mark.parametrize("id, net, data", EXTREMES, ids=[e[0] for e in EXTREMES])
def test_saturated_and_degenerate_values_stay_finite_and_silent(id, net, data, strict_floats):
    keys = _grads(net)
    for dtype in (np.float32, np.float64):
        got = net(data, list(net.output_ports) + keys, dtype=dtype)
        for g in got:
            for e in g if isinstance(g, list) else [g]:
                assert np.isfinite(e).all(), (id, dtype)


def test_nettrain_at_huge_logits_is_silent(strict_floats):
    x = np.array([[1.0, 0, 0], [0, 1, 0], [0, 0, 1], [1, 1, 0], [0, 1, 1], [1, 0, 1]])
    W = np.array([[BIG, 0, 0], [0, BIG, 0], [0, 0, BIG], [-BIG, -BIG, -BIG], [0, 0, 0]])
    soft = NetReplacePart(NetInitialize(NetChain([LinearLayer(5), SoftmaxLayer()], Input=3)),
                          {(0, "Weights"): W, (0, "Biases"): np.zeros(5)})
    sig = NetReplacePart(NetInitialize(NetChain([LinearLayer(1), "Sigmoid"], Input=3)),
                         {(0, "Weights"): W[:1], (0, "Biases"): np.zeros(1)})
    for net, y in ((soft, np.array([4, 3, 4, 3, 4, 3])), (sig, (x[:, :1] == 0) * 1.0)):
        res = NetTrain(net, {"Input": x, "Output": y}, prop="All", max_training_rounds=3,
                       batch_size=3, progress=False, seed=0)
        assert np.isfinite(res.batch_loss_list).all()


# ------------------------------------------------- memory: refused early, reported clearly
def test_arrays_beyond_the_machine_are_refused_before_allocating():
    with pytest.raises(NetError) as info:
        NetInitialize(NetChain({"big": LinearLayer(10 ** 7)}, Input=10 ** 6))
    msg = str(info.value)
    assert type(info.value) is NetError
    for w in ("NetInitialize", "'Weights'", "LinearLayer", "node 'big'",
              "(10000000, 1000000)", "40 TB", "total memory"):
        assert w in msg, f"{w!r} missing from: {msg}"


def test_the_sum_of_arrays_counts_against_memory(monkeypatch):
    from netgraph import allocation

    monkeypatch.setattr(allocation, "total_memory", lambda: 10 ** 6)
    small = NetChain({"a": LinearLayer(100), "b": LinearLayer(100)}, Input=100)
    NetInitialize(small)  # 2 * 40 kB of weights (+ an 80 kB float64 temporary) fit
    NetInitialize(LinearLayer(200, Input=200))  # 160 kB (+ 320 kB in float64) fit
    wide = NetChain({f"l{k}": LinearLayer(200) for k in range(5)}, Input=200)
    with pytest.raises(NetError, match=r"10 array\(s\).*node 'x'/'l\d'.*\(200, 200\).*more "
                                       r"than this machine's total memory of 1 MB"):
        NetInitialize(NetChain({"x": wide}))  # each fits, together they do not


def test_a_batch_that_pads_beyond_the_machine_is_refused_before_allocating():
    tiny, long = np.zeros((1, 100), np.float32), np.zeros((100_000, 100), np.float32)
    net = NetMapOperator(ElementwiseLayer("Tanh"), Input=("Varying", 100))
    with pytest.raises(InputDataError) as info:
        net([tiny] * 99_999 + [long])
    msg = str(info.value)
    for w in ("port 'Input'", "100000 examples", "(100000, 100000, 100)", "float32", "4 TB",
              "length 100000", "total memory"):
        assert w in msg, f"{w!r} missing from: {msg}"


def _impossible_forward(self, ins, arrays, ctx):
    return {"Output": np.empty((2 ** 62,), np.uint8)}, None  # beyond any address space


@pytest.mark.parametrize("act", ["apply", "gradcheck", "NetTrain"])
def test_a_failed_allocation_is_a_net_error_with_shape_and_bytes(act, monkeypatch):
    net = NetInitialize(NetChain({"lin": LinearLayer(3), "soft": SoftmaxLayer()}, Input=2))
    monkeypatch.setattr(SoftmaxLayer, "forward", _impossible_forward)
    run = {"apply": lambda: net(X3[:, :2]), "gradcheck": lambda: gradcheck(net, X3[:, :2]),
           "NetTrain": lambda: NetTrain(net, {"Input": X3[:, :2], "Output": [0, 1, 2, 0, 1]},
                                        max_training_rounds=1, progress=False)}[act]
    with pytest.raises(NetError) as info:
        run()
    msg = str(info.value)
    assert type(info.value) is NetError and not isinstance(info.value, MemoryError)
    for w in ("ran out of memory", f"shape ({2 ** 62},)", "uint8", "4.61e+06 TB",
              f"{2 ** 62} bytes"):
        assert w in msg, f"{w!r} missing from: {msg}"
