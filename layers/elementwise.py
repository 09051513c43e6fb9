"""ElementwiseLayer (one input) and ThreadingLayer (n inputs, elementwise)."""

from __future__ import annotations

import difflib
import math
from collections.abc import Callable

import numpy as np
from pydantic import field_validator

from netgraph.extend import Layer, NetError, Params, Solver, register_shorthand, where

from ._ops import ArityParams, expand_scalar, fill_padding, sum_to
from .loss import CrossEntropyLossLayer, FusedCrossEntropy

__all__ = ["ElementwiseLayer", "ThreadingLayer", "ELEMENTWISE_FUNCTIONS", "THREADING_FUNCTIONS"]

_SELU_SCALE, _SELU_ALPHA = 1.0507009873554805, 1.6732632423543772
_erf = np.frompyfunc(math.erf, 1, 1)


def _sigmoid(x):
    return 0.5 * (1.0 + np.tanh(0.5 * x))


def _gelu(x):
    return 0.5 * x * (1.0 + _erf(x / math.sqrt(2.0)).astype(x.dtype))


def _gelu_grad(x, y):
    cdf = 0.5 * (1.0 + _erf(x / math.sqrt(2.0)).astype(x.dtype))
    return cdf + x * np.exp(-0.5 * x * x) / math.sqrt(2.0 * math.pi)


def _one_minus_square(y):
    t = np.square(y)
    return np.subtract(1, t, out=t)


#: elements per block of a fused backward (64 KB of float32: a block's passes stay in L1/L2)
BLOCK_ELEMENTS = 1 << 14


def _tanh_backward(y: np.ndarray, g: np.ndarray) -> np.ndarray | None:
    """``(1 - y^2) * g``, the gradient through ``y = tanh(x)``, in one sweep over memory:
    block by block into the fresh result, each block's three passes (square, subtract,
    multiply) in cache while it is read. The same operations in the same order as the
    unblocked ``_one_minus_square(y) * g``, so bit for bit the same. None unless ``y`` and
    ``g`` are C-contiguous arrays of one shape and dtype, larger than a few blocks (then the
    caller computes it unblocked: smaller ones stay in cache anyway)."""
    if y.size < 4 * BLOCK_ELEMENTS or g.shape != y.shape or g.dtype != y.dtype or not (
            y.flags.c_contiguous and g.flags.c_contiguous):
        return None
    out = np.empty_like(y)
    yf, gf, of = y.reshape(-1), g.reshape(-1), out.reshape(-1)
    for lo in range(0, yf.size, BLOCK_ELEMENTS):
        o, hi = of[lo:lo + BLOCK_ELEMENTS], lo + BLOCK_ELEMENTS
        np.square(yf[lo:hi], out=o)
        np.subtract(1, o, out=o)
        np.multiply(o, gf[lo:hi], out=o)
    return out


def _softplus(x):
    return np.logaddexp(0, x)


def _mish_grad(x, y):
    t = np.tanh(_softplus(x))
    return t + x * _sigmoid(x) * (1 - t * t)


#: name -> (f(x), f'(x) given x and y = f(x), f(0) == 0 and f' finite at 0)
ELEMENTWISE_FUNCTIONS: dict[str, tuple[Callable, Callable, bool]] = {
    "Ramp": (lambda x: np.maximum(x, 0), lambda x, y: (x > 0).astype(x.dtype), True),
    "Tanh": (np.tanh, lambda x, y: _one_minus_square(y), True),
    "LogisticSigmoid": (_sigmoid, lambda x, y: np.multiply(y, 1 - y), False),
    "Exp": (np.exp, lambda x, y: y, False),
    "Log": (np.log, lambda x, y: 1 / x, False),
    "Sqrt": (np.sqrt, lambda x, y: 0.5 / y, False),
    "Abs": (np.abs, lambda x, y: np.sign(x), True),
    "Sin": (np.sin, lambda x, y: np.cos(x), True),
    "Cos": (np.cos, lambda x, y: -np.sin(x), False),
    "Square": (np.square, lambda x, y: 2 * x, True),
    "SoftPlus": (_softplus, lambda x, y: _sigmoid(x), False),
    "SoftSign": (lambda x: x / (1 + np.abs(x)), lambda x, y: 1 / (1 + np.abs(x)) ** 2, True),
    "ELU": (lambda x: np.where(x > 0, x, np.expm1(np.minimum(x, 0))),
            lambda x, y: np.where(x > 0, 1, y + 1).astype(x.dtype), True),
    "SELU": (lambda x: _SELU_SCALE * np.where(x > 0, x, _SELU_ALPHA * np.expm1(np.minimum(x, 0))),
             lambda x, y: np.where(x > 0, _SELU_SCALE, y + _SELU_SCALE * _SELU_ALPHA)
             .astype(x.dtype), True),
    "GELU": (_gelu, _gelu_grad, True),
    "Swish": (lambda x: x * _sigmoid(x),
              lambda x, y: _sigmoid(x) * (1 + x * (1 - _sigmoid(x))), True),
    "Mish": (lambda x: x * np.tanh(_softplus(x)), _mish_grad, True),
    "HardTanh": (lambda x: np.clip(x, -1, 1), lambda x, y: (np.abs(x) < 1).astype(x.dtype), True),
    "HardSigmoid": (lambda x: np.clip(0.2 * x + 0.5, 0, 1),
                    lambda x, y: np.where(np.abs(x) < 2.5, 0.2, 0).astype(x.dtype), False),
    "Identity": (lambda x: x, lambda x, y: np.ones_like(x), True),
}
_ALIASES = {"ReLU": "Ramp", "Sigmoid": "LogisticSigmoid"}
#: functions (or derivatives) with a pole at 0: padded positions are evaluated at 1 instead
_POLE_AT_ZERO = {"Log", "Sqrt"}


def _function_name(v: str) -> str:
    if not isinstance(v, str):
        raise ValueError(f"expected a function name such as 'Tanh', got {v!r}")
    name = _ALIASES.get(v, v)
    if name not in ELEMENTWISE_FUNCTIONS:
        known = sorted(ELEMENTWISE_FUNCTIONS) + sorted(_ALIASES)
        if v in _THREADING:
            hint = f" ({v!r} combines several inputs: use ThreadingLayer({v!r}))"
        else:
            close = difflib.get_close_matches(v, known, n=1, cutoff=0.5) or [
                k for k in known if k.lower() == v.lower()]
            hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ValueError(f"unknown function {v!r}{hint}; known: {known}")
    return v


class ElementwiseParams(Params):
    f: str

    _check = field_validator("f")(lambda cls, v: _function_name(v))


class ElementwiseLayer(Layer):
    """``y = f(x)`` for every element; ``f`` one of :data:`ELEMENTWISE_FUNCTIONS` (aliases
    "ReLU" = "Ramp", "Sigmoid" = "LogisticSigmoid"). Any shape, varying lengths included."""

    Params = ElementwiseParams
    signature = "Input[...x] -> Output[...x]"
    real_outputs = ("Output",)

    def __init__(self, f: str, **ports):
        super().__init__({"f": f}, ports)

    @property
    def function(self) -> str:
        return _ALIASES.get(self.params.f, self.params.f)

    @property
    def pad_clean(self) -> bool:  # type: ignore[override]
        return ELEMENTWISE_FUNCTIONS[self.function][2]

    def default_loss(self, port: str):
        """Probabilities of a logistic sigmoid: ``CrossEntropyLossLayer("Binary")``."""
        return CrossEntropyLossLayer("Binary") if self.function == "LogisticSigmoid" else None

    def fused_with_consumer(self, port, consumer, consumer_port, meta):
        """A logistic sigmoid read by the Input of ``CrossEntropyLossLayer("Binary")``: one
        step whose logit gradient is ``p - t`` (see ``netgraph.layers.loss``)."""
        if (self.function == "LogisticSigmoid" and isinstance(consumer, CrossEntropyLossLayer)
                and consumer_port == "Input" and consumer.params.form == "Binary"):
            return FusedCrossEntropy(self, consumer)
        return None

    def forward(self, ins, arrays, ctx):
        f, df, _ = ELEMENTWISE_FUNCTIONS[self.function]
        x = ins["Input"]
        if self.function in _POLE_AT_ZERO:
            x = fill_padding(x, ctx, "Input", 1.0)
        y = f(x)

        def backward(g):
            if self.function == "Tanh":
                fused = _tanh_backward(y, g["Output"])
                if fused is not None:
                    return {"Input": fused}, {}
            d = df(x, y)
            if d is x or d is y:
                return {"Input": g["Output"] * d}, {}
            d *= g["Output"]  # d is a fresh array: reuse its memory
            return {"Input": d}, {}

        return {"Output": y}, backward


register_shorthand(lambda x: isinstance(x, str) and _ALIASES.get(x, x) in ELEMENTWISE_FUNCTIONS,
                   ElementwiseLayer)

_THREADING = {
    "Plus": (None, lambda xs: sum(xs[1:], xs[0])),
    "Times": (None, None),
    "Subtract": (2, lambda xs: xs[0] - xs[1]),
    "Divide": (2, lambda xs: xs[0] / xs[1]),
    "Max": (None, lambda xs: np.maximum.reduce(np.broadcast_arrays(*xs))),
    "Min": (None, lambda xs: np.minimum.reduce(np.broadcast_arrays(*xs))),
}
#: the function names a ThreadingLayer takes
THREADING_FUNCTIONS: tuple[str, ...] = tuple(_THREADING)


class ThreadingParams(ArityParams):
    f: str

    @field_validator("f")
    @classmethod
    def _known(cls, v):
        if v not in _THREADING:
            hint = ""
            if isinstance(v, str) and _ALIASES.get(v, v) in ELEMENTWISE_FUNCTIONS:
                hint = f" ({v!r} takes one input: use ElementwiseLayer({v!r}))"
            raise ValueError(f"unknown function {v!r}{hint}; use one of {list(_THREADING)}")
        return v


def _times(xs):
    out = xs[0]
    for x in xs[1:]:
        out = out * x
    return out


class ThreadingLayer(Layer):
    """Elementwise ``f(x1, x2, ...)`` for f in Plus, Times, Subtract, Divide, Max, Min.
    Inputs ``Input1..Inputk`` have equal shapes; a scalar ("Real") input is broadcast."""

    Params = ThreadingParams
    real_outputs = ("Output",)

    def __init__(self, f: str, arity: int | None = None, **ports):
        super().__init__({"f": f, "arity": arity}, ports)

    def validate(self) -> None:
        fixed = _THREADING[self.params.f][0]
        if fixed is not None and self.params.arity not in (None, fixed):
            raise NetError(f"ThreadingLayer({self.params.f!r}) takes exactly {fixed} inputs, "
                           f"got arity={self.params.arity}")

    def input_names(self) -> tuple[str, ...]:
        k = self.params.arity or _THREADING[self.params.f][0] or 2
        return tuple(f"Input{i}" for i in range(1, k + 1))

    def rules(self, S: Solver, path: tuple, ports: dict[str, int]) -> dict:
        names = self.input_names()
        to = ports["Output"]

        def rule() -> None:
            full = [n for n in names if S.rank(ports[n]) not in (None, 0)]
            for n in full:
                S.unify(ports[n], to, where(path, n), where(path, "Output"))
            if all(S.rank(ports[n]) == 0 for n in names):
                S.unify(ports[names[0]], to, where(path, names[0]), where(path, "Output"))

        def default() -> None:
            for n in names:
                if S.dims(ports[n]) is None:
                    S.unify(ports[n], to, where(path, n), where(path, "Output"))

        S.rules.append(rule)
        S.defaults.append(default)
        return {}

    def forward(self, ins, arrays, ctx):
        names = self.input_names()
        out_rank = len(ctx.dims("Output"))
        f = self.params.f
        given = [fill_padding(ins[n], ctx, n, 1.0) if f == "Divide" and i == 1 else ins[n]
                 for i, n in enumerate(names)]
        xs = [expand_scalar(x, len(ctx.dims(n)), out_rank) for x, n in zip(given, names,
                                                                          strict=True)]
        y = _times(xs) if f == "Times" else _THREADING[f][1](xs)

        def backward(g):
            gy = g["Output"]
            grads = []
            taken = np.zeros(y.shape, bool)  # Max / Min: ties already given the gradient
            for i, x in enumerate(xs):
                if f == "Plus":
                    gi = gy
                elif f == "Subtract":
                    gi = gy if i == 0 else -gy
                elif f == "Times":
                    gi = gy * _times([xj for j, xj in enumerate(xs) if j != i]) if len(xs) > 1 \
                        else gy
                elif f == "Divide":
                    gi = gy / xs[1] if i == 0 else -gy * xs[0] / (xs[1] * xs[1])
                else:  # Max / Min: the gradient goes to the first input that attains y
                    hit = (x == y) & ~taken
                    taken = taken | hit
                    gi = gy * hit
                grads.append(sum_to(gi, x.shape).reshape(ins[names[i]].shape))
            return dict(zip(names, grads, strict=True)), {}

        return {"Output": y}, backward

