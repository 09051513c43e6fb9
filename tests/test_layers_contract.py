"""The layer contract: every core layer, table-driven (see ``layer_cases.py``).

For every entry: forward equals an independent NumPy reference (one example and a batch, in
float32 and float64); float64 central differences agree with the gradient of every real input
and every array; a batch equals its examples run alone (in any order); padding content never
reaches a value or gradient. Bad hyperparameters raise ``NetError`` naming the parameter.
"""

from __future__ import annotations

import numpy as np
import pytest
from helpers import array_paths, arrays64, as_list, randomized
from layer_cases import CASES, FIXED_BATCH, FUNCTIONS, SINGLE_LENGTH, Case
from pydantic import ValidationError
from tolerance import assert_close

import netgraph.layers as layers
from netgraph import (
    All,
    Automatic,
    Index,
    InputDataError,
    NetArrayGradient,
    NetChain,
    NetError,
    NetExtract,
    NetGraph,
    NetPort,
    NetPortGradient,
    ShapeError,
    check_padding,
    gradcheck,
)
from netgraph.apply import apply_net

CORE_LAYERS = {
    "LinearLayer", "ElementwiseLayer", "ThreadingLayer", "TotalLayer", "DotLayer",
    "SoftmaxLayer", "CatenateLayer", "SummationLayer", "ReshapeLayer", "DropoutLayer",
    "EmbeddingLayer", "SequenceLastLayer", "SequenceMostLayer", "SequenceRestLayer",
    "SequenceReverseLayer", "NetMapOperator", "NormalizationLayer", "SequenceIndicesLayer",
    "NetBidirectionalOperator",
}
by_id = pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])


def _setup(case: Case, seed: int = 0):
    """The case's net with random arrays, one example and a batch (as lists of examples)."""
    net = randomized(case.make(), seed)
    rng = np.random.default_rng(seed + 1)
    single = case.sample(rng, SINGLE_LENGTH)
    lengths = case.lengths or (SINGLE_LENGTH,) * FIXED_BATCH
    examples = [case.sample(rng, T) for T in lengths]
    return net, single, examples


def _batch(case: Case, examples: list[dict]) -> dict:
    """A batch in user form: a list of examples for sequences, a stacked array otherwise."""
    join = list if case.lengths else np.stack
    return {p: join([ex[p] for ex in examples]) for p in examples[0]}


def _outputs(net, data, dtype) -> dict:
    ports = list(net.output_ports)
    return dict(zip(ports, net(data, ports, dtype=dtype), strict=True))


def test_table_covers_every_core_layer():
    covered = {type(c.make()).__name__ for c in CASES}
    assert CORE_LAYERS <= covered, CORE_LAYERS - covered
    assert CORE_LAYERS <= set(layers.__all__)
    assert set(layers.ELEMENTWISE_FUNCTIONS) | {"ReLU", "Sigmoid"} <= set(FUNCTIONS)
    assert {c.id for c in CASES} >= {f"Elementwise-{f}" for f in FUNCTIONS}


def _scales(case: Case, A: dict, example: dict, want: dict) -> dict[str, float]:
    """Per output, the magnitude its rounding scales with (``scale`` of ``assert_close``): the
    largest value of the reference evaluated on |arrays| and |inputs| (for a sum of products
    that is Σ|t_i|, so a sum that cancels keeps the tolerance of its terms), or of |want|."""
    absA = {k: np.abs(v) for k, v in A.items()}
    absx = {p: np.abs(np.asarray(x, np.float64)) if np.asarray(x).dtype.kind == "f" else x
            for p, x in example.items()}
    return {p: max(float(np.abs(v).max(initial=0)), float(np.abs(want[p]).max(initial=0)))
            for p, v in case.ref(absA, absx).items()}


@by_id
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_forward_single_example(case, dtype):
    net, single, _ = _setup(case)
    A = arrays64(net)
    example = {p: np.asarray(x, np.float64) if x.dtype.kind == "f" else x
               for p, x in single.items()}
    want = case.ref(A, example)
    scales = _scales(case, A, example, want)
    got = _outputs(net, single, dtype)
    assert set(got) == set(want)
    for p in want:
        assert_close(got[p], want[p], dtype=dtype, scale=scales[p], what=f"{case.id} {p}")
        integer = np.asarray(want[p]).dtype.kind in "iu"  # positions, indices: int64
        assert np.asarray(got[p]).dtype == (np.int64 if integer else dtype)


@by_id
def test_forward_batch_equals_reference_and_examples(case):
    """Every example of a batch equals the float64 reference: in float64 to float64 rounding,
    in float32 to float32 rounding (BLAS may sum a batched product in another order than a
    single one, so float32 batch and float32 alone are each compared with float64)."""
    net, _, examples = _setup(case, seed=3)
    A = arrays64(net)
    got = _outputs(net, _batch(case, examples), np.float64)
    got32 = _outputs(net, _batch(case, examples), np.float32)
    for p in net.output_ports:
        assert len(as_list(got[p])) == len(examples)
        if case.lengths and isinstance(net.port_shape(p), tuple) and "Varying" in net.port_shape(p):
            assert isinstance(got[p], list), f"{p}: a varying output of a batch is a list"
        for k, ex in enumerate(examples):
            want = case.ref(A, ex)
            scale = _scales(case, A, ex, want)[p]
            what = f"{case.id} {p} example {k}"
            assert_close(as_list(got[p])[k], want[p], dtype=np.float64, scale=scale, what=what)
            alone = _outputs(net, ex, np.float32)[p]
            assert_close(as_list(got32[p])[k], want[p], dtype=np.float32, scale=scale,
                         what=what + " (float32 batch)")
            assert_close(alone, want[p], dtype=np.float32, scale=scale,
                         what=what + " (float32 alone)")


@by_id
def test_gradients_match_central_differences(case):
    net, single, examples = _setup(case, seed=5)
    real_inputs = [p for p in net.input_ports if "Index" not in repr(net.port_shape(p))]
    expected = {NetPortGradient(p) for p in real_inputs} | {
        NetArrayGradient(p) for p in array_paths(net)}
    for data in (single, _batch(case, examples)):
        report = gradcheck(net, data)
        assert set(report) == expected  # nothing skipped
        assert all(r["ok"] and r["size"] > 0 for r in report.values())


@by_id
def test_batch_composition_and_padding(case):
    net, _, examples = _setup(case, seed=7)
    report = check_padding(net, _batch(case, examples))
    assert {NetPort(p) for p in net.output_ports} <= set(report) and report.ok


BAD_HYPERPARAMETERS = [
    ("n", lambda: layers.LinearLayer(0)),
    ("n", lambda: layers.LinearLayer((3, -1))),
    ("n", lambda: layers.LinearLayer("x")),
    ("n", lambda: layers.LinearLayer(True)),
    ("biases", lambda: layers.LinearLayer(3, biases="maybe")),
    ("f", lambda: layers.ElementwiseLayer("NoSuchFunction")),
    ("f", lambda: layers.ElementwiseLayer(3)),
    ("f", lambda: layers.ThreadingLayer("Power")),
    ("arity", lambda: layers.ThreadingLayer("Plus", 0)),
    ("arity", lambda: layers.ThreadingLayer("Subtract", 3)),
    ("arity", lambda: layers.TotalLayer(0)),
    ("level", lambda: layers.SoftmaxLayer("last")),
    ("level", lambda: layers.SoftmaxLayer(1.5)),
    ("level", lambda: layers.SoftmaxLayer(2, Input=(3, 5))),
    ("level", lambda: layers.CatenateLayer("x")),
    ("level", lambda: layers.CatenateLayer(2, Input1=(3, 5), Input2=(3, 5))),
    ("arity", lambda: layers.CatenateLayer(0, 0)),
    ("shape", lambda: layers.ReshapeLayer((0, 3))),
    ("shape", lambda: layers.ReshapeLayer((Automatic, Automatic))),
    ("shape", lambda: layers.ReshapeLayer("x")),
    ("p", lambda: layers.DropoutLayer(1)),
    ("p", lambda: layers.DropoutLayer(-0.1)),
    ("p", lambda: layers.DropoutLayer("high")),
    ("size", lambda: layers.EmbeddingLayer(0, 5)),
    ("n", lambda: layers.EmbeddingLayer(3, -2)),
    ("level", lambda: layers.SequenceLastLayer(level=2)),
    ("foo", lambda: layers.DotLayer(foo=1)),
    ("level", lambda: layers.SummationLayer(level=1)),
    ("net", lambda: layers.NetMapOperator(5)),
]


@pytest.mark.parametrize("param, make", BAD_HYPERPARAMETERS,
                         ids=[f"{p}-{i}" for i, (p, _) in enumerate(BAD_HYPERPARAMETERS)])
def test_bad_hyperparameters_raise_net_error_naming_the_parameter(param, make):
    with pytest.raises(NetError, match=rf"\b{param}\b") as info:
        make()
    assert not isinstance(info.value, ValidationError)
    assert "pydantic" not in str(info.value)


BAD_PORTS_OR_DATA = [
    (ShapeError, "varying dimension",
     lambda: layers.CatenateLayer(0, Input1=("Varying", 3), Input2=("Varying", 5))),
    (ShapeError, r"\(3, 5\).*cannot be reshaped to \(4,\)",
     lambda: layers.ReshapeLayer((4,), Input=(3, 5))),
    (ShapeError, r"cannot be reshaped to \(Automatic, 4\)",
     lambda: layers.ReshapeLayer((Automatic, 4), Input=(3, 5))),
    (ShapeError, "length >= 2", lambda: layers.SequenceMostLayer(Input=(1, 3))),
    (ShapeError, r"dot product.*\(3, 5\).*\(7,\)",
     lambda: layers.DotLayer(Input1=(3, 5), Input2=(7,))),
    (ShapeError, "NetMapOperator", lambda: layers.LinearLayer(3, Input=("Varying", 5))),
    (ShapeError, "Input2", lambda: layers.ThreadingLayer("Plus", Input1=(3,), Input2=(5,))),
    (ShapeError, "Input2", lambda: layers.TotalLayer(Input1=(3,), Input2=(5,))),
    (ShapeError, "sequence", lambda: layers.SequenceLastLayer(Input="Real")),
    (ShapeError, r"Index\(7\)", lambda: layers.EmbeddingLayer(3, 5, Input=Index(7))),
    (ShapeError, "level -1", lambda: layers.SoftmaxLayer(Input="Real")),
    (InputDataError, r"'Input'.*0\.\.4",
     lambda: randomized(layers.EmbeddingLayer(3, 5))([np.array([1, 7])])),
    (InputDataError, r"'Input'.*length >= 2.*\[2, 1\]",
     lambda: layers.SequenceMostLayer(Input=("Varying", 3))([np.ones((2, 3)), np.ones((1, 3))])),
    (InputDataError, "'Input'", lambda: randomized(layers.LinearLayer(3, Input=5))(np.ones(4))),
    (InputDataError, "'Input2'", lambda: layers.TotalLayer(Input1=(3,))(
        {"Input1": np.ones(3), "Input2": np.ones(4)})),
]


@pytest.mark.parametrize("error, message, make", BAD_PORTS_OR_DATA,
                         ids=[f"{e.__name__}-{i}" for i, (e, _, _) in enumerate(BAD_PORTS_OR_DATA)])
def test_bad_shapes_and_data_raise_errors_naming_the_problem(error, message, make):
    with pytest.raises(error, match=message):
        make()


def test_linear_array_shapes_follow_the_spec():
    def shapes(layer):
        return {k: v.shape for k, v in NetExtract(randomized(layer), All).items()}

    assert shapes(layers.LinearLayer(3, Input=5)) == {"Weights": (3, 5), "Biases": (3,)}
    assert shapes(layers.LinearLayer((), Input=7)) == {"Weights": (7,), "Biases": ()}
    assert shapes(layers.LinearLayer(11, biases=False, Input=5)) == {"Weights": (11, 5)}
    assert shapes(layers.LinearLayer((3, 5), Input=7)) == {"Weights": (15, 7), "Biases": (15,)}
    assert shapes(layers.LinearLayer(3, Input=(5, 7))) == {"Weights": (3, 35), "Biases": (3,)}
    assert shapes(layers.EmbeddingLayer(7, 11)) == {"Weights": (11, 7)}
    assert layers.LinearLayer((), Input=7).port_shape("Output") == "Real"


@pytest.mark.parametrize("f", ["Max", "Min"])
def test_threading_max_min_send_a_tie_gradient_once(f):
    # max(x, x) = x: fanning one input into both ports must give gradient 1, not 2
    net = NetGraph({"m": layers.ThreadingLayer(f)}, [(NetPort("Input"), NetPort("m", "Input1")),
                                                     (NetPort("Input"), NetPort("m", "Input2"))],
                   Input=5)
    x = np.random.default_rng(0).standard_normal(5)
    np.testing.assert_array_equal(net(x, NetPortGradient("Input")), np.ones(5))
    gradcheck(net, x)


def test_dropout_in_training_masks_and_rescales():
    p = 0.3
    net = layers.DropoutLayer(p, Input=(50, 60))
    x = np.random.default_rng(0).uniform(0.5, 2.0, size=(4, 50, 60))
    y, g = apply_net(net, x, ["Output", NetPortGradient("Input")], dtype=np.float64,
                     training=True, rng=np.random.default_rng(0))
    kept = y != 0
    assert abs(1 - kept.mean() - p) < 0.01  # 12000 draws: sd 0.004
    assert_close(y[kept], x[kept] / (1 - p), dtype=np.float64)
    assert_close(g, kept / (1 - p), dtype=np.float64)  # same mask in backward
    again = apply_net(net, x, training=True, rng=np.random.default_rng(0))
    other = apply_net(net, x, training=True, rng=np.random.default_rng(1))
    assert np.array_equal(again != 0, np.asarray(y, np.float32) != 0)
    assert not np.array_equal(other != 0, kept)
    np.testing.assert_array_equal(net(x, dtype=np.float64), x)  # identity outside training
    zero = apply_net(layers.DropoutLayer(0, Input=(50, 60)), x, dtype=np.float64, training=True,
                     rng=np.random.default_rng(0))
    np.testing.assert_array_equal(zero, x)
    small = layers.DropoutLayer(p, Input=(5, 7))
    report = gradcheck(small, x[:3, :5, :7], training=True, seed=3)
    assert report[NetPortGradient("Input")]["size"] == 3 * 5 * 7


def test_dropout_in_training_on_sequences_keeps_padding_clean():
    net = NetChain([layers.DropoutLayer(0.5), layers.SummationLayer()], Input=("Varying", 7))
    rng = np.random.default_rng(2)
    xs = [rng.uniform(0.5, 2, (T, 7)) for T in (3, 1, 5)]
    sums = apply_net(net, xs, dtype=np.float64, training=True, rng=np.random.default_rng(4))
    masks = apply_net(NetChain([layers.DropoutLayer(0.5)], Input=("Varying", 7)), xs,
                      dtype=np.float64, training=True, rng=np.random.default_rng(4))
    assert_close(sums, [m.sum() for m in masks], dtype=np.float64, reduction=5 * 7)
    gradcheck(net, xs, training=True)
