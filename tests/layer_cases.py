"""The table of the layer contract test: every core layer, its data and a NumPy reference.

Each :class:`Case` builds a layer (or operator), draws one example of a given sequence length
and computes the expected outputs with plain NumPy from the example and the net's arrays
(``A[path]``, float64). References never call library code. Sizes are pairwise distinct
(features 2, 3, 5, 7, 11; sequence lengths 1, 3, 4, 5; batches of 3 or 4) so that a swapped
axis cannot pass.
"""

from __future__ import annotations

import importlib.util
import math
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from helpers import positive_reals, smooth_reals

from netgraph import Automatic, Index, NetChain
from netgraph.layers import (
    ELEMENTWISE_FUNCTIONS,
    CatenateLayer,
    DotLayer,
    DropoutLayer,
    ElementwiseLayer,
    EmbeddingLayer,
    LinearLayer,
    NetMapOperator,
    ReshapeLayer,
    SequenceLastLayer,
    SequenceMostLayer,
    SequenceRestLayer,
    SequenceReverseLayer,
    SoftmaxLayer,
    SummationLayer,
    ThreadingLayer,
    TotalLayer,
)


def example_module(name: str):
    """The module ``examples/<name>.py``, imported once (its layer classes register once)."""
    if name not in sys.modules:
        path = Path(__file__).resolve().parents[1] / "examples" / f"{name}.py"
        spec = importlib.util.spec_from_file_location(name, path)
        sys.modules[name] = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(sys.modules[name])
    return sys.modules[name]


#: the worked example of docs/extending.md, checked like every library layer
ScaleShiftLayer = example_module("custom_layer").ScaleShiftLayer

SEQ_LENGTHS = (3, 1, 5)
SEQ_LENGTHS_2 = (3, 2, 5)  # SequenceMost/Rest need length >= 2
FIXED_BATCH = 4
SINGLE_LENGTH = 4


@dataclass
class Case:
    id: str
    make: Callable[[], Any]
    sample: Callable[[np.random.Generator, int], dict[str, np.ndarray]]
    ref: Callable[[dict, dict], dict[str, np.ndarray]]
    lengths: tuple[int, ...] | None = None  # a varying batch's lengths; None: fixed shapes


# ------------------------------------------------------------------ data makers
def seq(*dims: int, gen: Callable = smooth_reals) -> Callable:
    return lambda rng, T: gen(rng, (T,) + dims)


def fixed(*dims: int, gen: Callable = smooth_reals) -> Callable:
    return lambda rng, T: gen(rng, dims)


def indices(n: int, varying: bool = True) -> Callable:
    return lambda rng, T: rng.integers(0, n, size=(T,) if varying else ())


def ports(**makers: Callable) -> Callable:
    return lambda rng, T: {p: m(rng, T) for p, m in makers.items()}


def out(f: Callable) -> Callable:
    """A reference of one output from ``f(A, *inputs in port order)``."""
    return lambda A, ex: {"Output": f(A, *ex.values())}


# -------------------------------------------------------------- NumPy references
def _softmax(x: np.ndarray, axis: int) -> np.ndarray:
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


_erf = np.vectorize(math.erf)
_SCALE, _ALPHA = 1.0507009873554805, 1.6732632423543772
FUNCTIONS: dict[str, Callable] = {
    "Ramp": lambda x: np.where(x > 0, x, 0.0),
    "Tanh": lambda x: (np.exp(2 * x) - 1) / (np.exp(2 * x) + 1),
    "LogisticSigmoid": lambda x: 1 / (1 + np.exp(-x)),
    "Exp": np.exp,
    "Log": np.log,
    "Sqrt": lambda x: x ** 0.5,
    "Abs": lambda x: np.where(x < 0, -x, x),
    "Sin": np.sin,
    "Cos": np.cos,
    "Square": lambda x: x * x,
    "SoftPlus": lambda x: np.log(1 + np.exp(x)),
    "SoftSign": lambda x: x / (1 + np.abs(x)),
    "ELU": lambda x: np.where(x > 0, x, np.exp(x) - 1),
    "SELU": lambda x: _SCALE * np.where(x > 0, x, _ALPHA * (np.exp(x) - 1)),
    "GELU": lambda x: x * 0.5 * (1 + _erf(x / np.sqrt(2))),
    "Swish": lambda x: x / (1 + np.exp(-x)),
    "Mish": lambda x: x * np.tanh(np.log(1 + np.exp(x))),
    "HardTanh": lambda x: np.minimum(1, np.maximum(-1, x)),
    "HardSigmoid": lambda x: np.minimum(1, np.maximum(0, x / 5 + 0.5)),
    "Identity": lambda x: x,
    "ReLU": lambda x: np.where(x > 0, x, 0.0),
    "Sigmoid": lambda x: 1 / (1 + np.exp(-x)),
}
_POSITIVE = {"Log", "Sqrt"}

_THREAD = {
    "Plus": lambda xs: sum(xs[1:], xs[0]),
    "Times": lambda xs: math.prod(xs[1:], start=xs[0]),
    "Subtract": lambda xs: xs[0] - xs[1],
    "Divide": lambda xs: xs[0] / xs[1],
    "Max": lambda xs: np.max(np.broadcast_arrays(*xs), axis=0),
    "Min": lambda xs: np.min(np.broadcast_arrays(*xs), axis=0),
}


def _linear(A, x, shape=None, prefix=()):
    W, b = A[prefix + ("Weights",)], A.get(prefix + ("Biases",))
    y = W @ x.reshape(-1) + (0 if b is None else b)
    return y if shape is None else y.reshape(shape)


def _linear_rows(A, x, prefix):
    return x @ A[prefix + ("Weights",)].T + A[prefix + ("Biases",)]


# ------------------------------------------------------------------------ the table
def _cases() -> list[Case]:
    L, L2 = SEQ_LENGTHS, SEQ_LENGTHS_2
    cases = [
        Case("Linear-vector", lambda: LinearLayer(3, Input=5), ports(Input=fixed(5)),
             out(lambda A, x: _linear(A, x))),
        Case("Linear-scalar-out", lambda: LinearLayer((), Input=7), ports(Input=fixed(7)),
             out(lambda A, x: A[("Weights",)] @ x + A[("Biases",)])),
        Case("Linear-no-biases", lambda: LinearLayer(11, biases=False, Input=5),
             ports(Input=fixed(5)), out(lambda A, x: A[("Weights",)] @ x)),
        Case("Linear-tuple-n", lambda: LinearLayer((3, 5), Input=7), ports(Input=fixed(7)),
             out(lambda A, x: _linear(A, x, (3, 5)))),
        Case("Linear-flatten", lambda: LinearLayer(3, Input=(5, 7)), ports(Input=fixed(5, 7)),
             out(lambda A, x: _linear(A, x))),
        Case("Elementwise-Tanh-matrix", lambda: ElementwiseLayer("Tanh", Input=(5, 7)),
             ports(Input=fixed(5, 7)), out(lambda A, x: FUNCTIONS["Tanh"](x))),
    ]
    for f in list(ELEMENTWISE_FUNCTIONS) + ["ReLU", "Sigmoid"]:
        gen = positive_reals if f in _POSITIVE else smooth_reals
        cases.append(Case(f"Elementwise-{f}", lambda f=f: ElementwiseLayer(f, Input=("Varying", 7)),
                          ports(Input=seq(7, gen=gen)),
                          out(lambda A, x, f=f: FUNCTIONS[f](x)), L))
    threading = [  # (f, arity, port shapes, positive ports, varying)
        ("Plus", None, {"Input1": ("Varying", 7)}, (), True),
        ("Times", None, {"Input1": (5, 7)}, (), False),
        ("Subtract", None, {"Input1": ("Varying", 7)}, (), True),
        ("Divide", None, {"Input1": (5, 7)}, ("Input2",), False),
        ("Divide", None, {"Input1": ("Varying", 7)}, ("Input2",), True),
        ("Max", None, {"Input1": ("Varying", 7)}, (), True),
        ("Min", None, {"Input1": (5,)}, (), False),
        ("Plus", 3, {"Input1": (5,)}, (), False),
        ("Times", 3, {"Input1": ("Varying", 7)}, (), True),
        ("Max", 3, {"Input1": (5, 7)}, (), False),
        ("Min", 3, {"Input1": ("Varying", 7)}, (), True),
        ("Times", None, {"Input1": ("Varying", 7), "Input2": "Real"}, (), True),
        ("Divide", None, {"Input1": (5, 7), "Input2": "Real"}, ("Input2",), False),
        ("Subtract", None, {"Input1": "Real", "Input2": (7,)}, (), False),
        ("Max", 3, {"Input1": (7,), "Input2": "Real", "Input3": (7,)}, (), False),
        ("Plus", 3, {"Input1": ("Varying", 7), "Input3": "Real"}, (), True),
    ]
    for f, arity, shapes, pos, varying in threading:
        k = arity or 2
        full = next(s for s in shapes.values() if s != "Real")
        makers = {}
        for i in range(1, k + 1):
            p = f"Input{i}"
            s = shapes.get(p, full)
            gen = positive_reals if p in pos else smooth_reals
            dims = () if s == "Real" else tuple(d for d in s if d != "Varying")
            makers[p] = (seq if s != "Real" and s[0] == "Varying" else fixed)(*dims, gen=gen)
        tag = "-".join(str(s).replace(" ", "") for s in shapes.values())
        cases.append(Case(f"Threading-{f}-{k}-{tag}",
                          lambda f=f, a=arity, s=shapes: ThreadingLayer(f, a, **s), ports(**makers),
                          lambda A, ex, f=f: {"Output": _THREAD[f](list(ex.values()))},
                          L if varying else None))
    cases += [
        Case("Total-2", lambda: TotalLayer(Input1=(5, 7)), ports(Input1=fixed(5, 7), Input2=fixed(5, 7)),
             out(lambda A, a, b: a + b)),
        Case("Total-3-varying", lambda: TotalLayer(3, Input1=("Varying", 7)),
             ports(Input1=seq(7), Input2=seq(7), Input3=seq(7)), out(lambda A, a, b, c: a + b + c), L),
        Case("Dot-vec-vec", lambda: DotLayer(Input1=7, Input2=7), ports(Input1=fixed(7), Input2=fixed(7)),
             out(lambda A, a, b: np.sum(a * b))),
        Case("Dot-mat-vec", lambda: DotLayer(Input1=(3, 5), Input2=5),
             ports(Input1=fixed(3, 5), Input2=fixed(5)), out(lambda A, a, b: np.dot(a, b))),
        Case("Dot-vec-mat", lambda: DotLayer(Input1=5, Input2=(5, 7)),
             ports(Input1=fixed(5), Input2=fixed(5, 7)), out(lambda A, a, b: np.dot(a, b))),
        Case("Dot-mat-mat", lambda: DotLayer(Input1=(3, 5), Input2=(5, 7)),
             ports(Input1=fixed(3, 5), Input2=fixed(5, 7)), out(lambda A, a, b: np.dot(a, b))),
        Case("Dot-seq-mat", lambda: DotLayer(Input1=("Varying", 2), Input2=(2, 7)),
             ports(Input1=seq(2), Input2=fixed(2, 7)), out(lambda A, a, b: np.dot(a, b)), L),
        Case("Softmax-last", lambda: SoftmaxLayer(Input=(5, 7)), ports(Input=fixed(5, 7)),
             out(lambda A, x: _softmax(x, -1))),
        Case("Softmax-level0-fixed", lambda: SoftmaxLayer(0, Input=(5, 7)), ports(Input=fixed(5, 7)),
             out(lambda A, x: _softmax(x, 0))),
        Case("Softmax-last-varying", lambda: SoftmaxLayer(-1, Input=("Varying", 7)), ports(Input=seq(7)),
             out(lambda A, x: _softmax(x, -1)), L),
        Case("Softmax-level0-vector", lambda: SoftmaxLayer(0, Input="Varying"), ports(Input=seq()),
             out(lambda A, x: _softmax(x, 0)), L),
        Case("Softmax-level0-varying", lambda: SoftmaxLayer(0, Input=("Varying", 7)), ports(Input=seq(7)),
             out(lambda A, x: _softmax(x, 0)), L),
        Case("Catenate-level0", lambda: CatenateLayer(0, Input1=(3, 5), Input2=(7, 5)),
             ports(Input1=fixed(3, 5), Input2=fixed(7, 5)), out(lambda A, a, b: np.concatenate([a, b]))),
        Case("Catenate-level0-3", lambda: CatenateLayer(0, 3, Input1=3, Input2=5, Input3=7),
             ports(Input1=fixed(3), Input2=fixed(5), Input3=fixed(7)),
             out(lambda A, a, b, c: np.concatenate([a, b, c]))),
        Case("Catenate-last-varying", lambda: CatenateLayer(-1, Input1=("Varying", 2), Input2=("Varying", 7)),
             ports(Input1=seq(2), Input2=seq(7)), out(lambda A, a, b: np.concatenate([a, b], axis=-1)), L),
        Case("Summation-fixed", lambda: SummationLayer(Input=(5, 7)), ports(Input=fixed(5, 7)),
             out(lambda A, x: np.sum(x))),
        Case("Summation-varying", lambda: SummationLayer(Input=("Varying", 7)), ports(Input=seq(7)),
             out(lambda A, x: np.sum(x)), L),
        Case("Reshape", lambda: ReshapeLayer((7, 15), Input=(3, 5, 7)), ports(Input=fixed(3, 5, 7)),
             out(lambda A, x: x.reshape(7, 15))),
        Case("Reshape-automatic", lambda: ReshapeLayer((Automatic, 5), Input=(3, 7, 5)),
             ports(Input=fixed(3, 7, 5)), out(lambda A, x: x.reshape(21, 5))),
        Case("Dropout-eval", lambda: DropoutLayer(0.3, Input=("Varying", 7)), ports(Input=seq(7)),
             out(lambda A, x: x), L),
        Case("Embedding-varying", lambda: EmbeddingLayer(7, 11), ports(Input=indices(11)),
             out(lambda A, i: A[("Weights",)][i]), L),
        Case("Embedding-scalar", lambda: EmbeddingLayer(7, 11, Input=Index(11)),
             ports(Input=indices(11, varying=False)), out(lambda A, i: A[("Weights",)][i])),
        Case("SequenceLast", lambda: SequenceLastLayer(Input=("Varying", 7)), ports(Input=seq(7)),
             out(lambda A, x: x[-1]), L),
        Case("SequenceLast-vector", lambda: SequenceLastLayer(Input="Varying"), ports(Input=seq()),
             out(lambda A, x: x[-1]), L),
        Case("SequenceLast-fixed", lambda: SequenceLastLayer(Input=(5, 7)), ports(Input=fixed(5, 7)),
             out(lambda A, x: x[-1])),
        Case("SequenceMost", lambda: SequenceMostLayer(Input=("Varying", 7)), ports(Input=seq(7)),
             out(lambda A, x: x[:-1]), L2),
        Case("SequenceMost-fixed", lambda: SequenceMostLayer(Input=(5, 7)), ports(Input=fixed(5, 7)),
             out(lambda A, x: x[:-1])),
        Case("SequenceRest", lambda: SequenceRestLayer(Input=("Varying", 7)), ports(Input=seq(7)),
             out(lambda A, x: x[1:]), L2),
        Case("SequenceRest-vector", lambda: SequenceRestLayer(Input="Varying"), ports(Input=seq()),
             out(lambda A, x: x[1:]), L2),
        Case("SequenceReverse", lambda: SequenceReverseLayer(Input=("Varying", 7)), ports(Input=seq(7)),
             out(lambda A, x: x[::-1]), L),
        Case("SequenceReverse-vector", lambda: SequenceReverseLayer(Input="Varying"), ports(Input=seq()),
             out(lambda A, x: x[::-1]), L),
        Case("NetMap-Linear", lambda: NetMapOperator(LinearLayer(11), Input=("Varying", 7)),
             ports(Input=seq(7)), out(lambda A, x: _linear_rows(A, x, ("Net",))), L),
        Case("NetMap-Linear-fixed", lambda: NetMapOperator(LinearLayer(11), Input=(6, 7)),
             ports(Input=fixed(6, 7)), out(lambda A, x: _linear_rows(A, x, ("Net",)))),
        Case("NetMap-Chain",
             lambda: NetMapOperator(NetChain([LinearLayer(11), "Tanh", LinearLayer(2)]),
                                    Input=("Varying", 7)),
             ports(Input=seq(7)),
             out(lambda A, x: _linear_rows(A, np.tanh(_linear_rows(A, x, ("Net", 0))), ("Net", 2))), L),
        Case("Custom-ScaleShift-varying", lambda: ScaleShiftLayer(Input=("Varying", 7)),
             ports(Input=seq(7)), out(lambda A, x: x * A[("Scale",)] + A[("Shift",)]), L),
        Case("Custom-ScaleShift-matrix", lambda: ScaleShiftLayer(5, Input=(3, 5)),
             ports(Input=fixed(3, 5)), out(lambda A, x: x * A[("Scale",)] + A[("Shift",)])),
    ]
    return cases


CASES = _cases()
