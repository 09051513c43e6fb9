"""ElementwiseLayer and ThreadingLayer: one ONNX operator per function where ONNX has it,
a short composition of standard operators otherwise (GELU with ``Erf``, Swish, Mish)."""

from __future__ import annotations

import math
from collections.abc import Callable

from ..builder import Graph
from ..lower import StepLowering

_SELU_SCALE, _SELU_ALPHA = 1.0507009873554805, 1.6732632423543772


def _unary(op: str, **attrs) -> Callable[[Graph, str], str]:
    return lambda g, x: g.op(op, [x], **attrs)


def _gelu(g: Graph, x: str) -> str:
    """``0.5 x (1 + erf(x / √2))``."""
    erf = g.op("Erf", [g.op("Div", [x, g.f32(math.sqrt(2.0))])])
    return g.op("Mul", [g.op("Mul", [x, g.f32(0.5)]), g.op("Add", [erf, g.f32(1.0)])])


def _swish(g: Graph, x: str) -> str:
    return g.op("Mul", [x, g.op("Sigmoid", [x])])


def _mish(g: Graph, x: str) -> str:
    return g.op("Mul", [x, g.op("Tanh", [g.op("Softplus", [x])])])


#: function name -> (ONNX nodes of f(x), f(0) == 0 exactly in those nodes)
FUNCTIONS: dict[str, tuple[Callable[[Graph, str], str], bool]] = {
    "Ramp": (_unary("Relu"), True),
    "Tanh": (_unary("Tanh"), True),
    "LogisticSigmoid": (_unary("Sigmoid"), False),
    "Exp": (_unary("Exp"), False),
    "Log": (_unary("Log"), False),
    "Sqrt": (_unary("Sqrt"), True),
    "Abs": (_unary("Abs"), True),
    "Sin": (_unary("Sin"), True),
    "Cos": (_unary("Cos"), False),
    "Square": (lambda g, x: g.op("Mul", [x, x]), True),
    "SoftPlus": (_unary("Softplus"), False),
    "SoftSign": (_unary("Softsign"), True),
    "ELU": (_unary("Elu", alpha=1.0), True),
    "SELU": (_unary("Selu", alpha=_SELU_ALPHA, gamma=_SELU_SCALE), True),
    "GELU": (_gelu, True),
    "Swish": (_swish, True),
    "Mish": (_mish, True),
    "HardTanh": (lambda g, x: g.op("Clip", [x, g.f32(-1.0), g.f32(1.0)]), True),
    "HardSigmoid": (_unary("HardSigmoid", alpha=0.2, beta=0.5), False),
    "Identity": (_unary("Identity"), True),
}


def _function(c: StepLowering) -> tuple[Callable[[Graph, str], str], bool]:
    name = c.layer.function
    if name not in FUNCTIONS:
        raise c.error(f"the function {name!r} has no ONNX translation")
    return FUNCTIONS[name]


def lower_elementwise(c: StepLowering) -> dict[str, str]:
    f, _ = _function(c)
    return {"Output": f(c.g, c.x("Input"))}


def elementwise_clean(c: StepLowering) -> bool:
    return FUNCTIONS[c.layer.function][1]


#: ThreadingLayer function -> the (variadic, broadcasting) ONNX operator
THREADING = {"Plus": "Sum", "Times": "Mul", "Subtract": "Sub", "Divide": "Div", "Max": "Max",
             "Min": "Min"}


def lower_threading(c: StepLowering) -> dict[str, str]:
    """``f(x1, x2, ...)`` elementwise; a scalar input gets trailing unit axes so that it
    broadcasts over the others' example dims (leading axes broadcast as in NumPy)."""
    g, f = c.g, c.params.f
    out_rank = c.rank("Output")
    xs = []
    for port in c.layer.input_names():
        x, r = c.x(port), c.rank(port)
        xs.append(g.unsqueeze(x, list(range(c.lead + r, c.lead + out_rank))))
    op = THREADING[f]
    if op in ("Sum", "Max", "Min"):
        return {"Output": g.op(op, xs)}
    y = xs[0]
    for x in xs[1:]:
        y = g.op(op, [y, x])
    return {"Output": y}


def threading_clean(c: StepLowering) -> bool:
    """0 at padding when every input is (a broadcast scalar is not), except for Divide."""
    ports = c.layer.input_names()
    return c.params.f != "Divide" and all(c.rank(p) == c.rank("Output") for p in ports)


__all__ = ["FUNCTIONS", "THREADING", "lower_elementwise", "lower_threading",
           "elementwise_clean", "threading_clean"]
