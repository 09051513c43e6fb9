"""Layers that combine, reduce, reshape or normalize arrays: Total, Catenate, Summation,
Reshape, Softmax, Dropout."""

from __future__ import annotations

import math

import numpy as np
from pydantic import field_validator

from netgraph.extend import Automatic, Conflict, Int, Layer, Params, Real, ShapeError, Solver, where

from ._ops import ArityParams, sum_to
from .loss import CrossEntropyLossLayer, FusedCrossEntropy

__all__ = ["TotalLayer", "CatenateLayer", "SummationLayer", "ReshapeLayer", "SoftmaxLayer",
           "DropoutLayer"]


class _Variadic(Layer):
    """A layer whose inputs ``Input1..Inputk`` are filled by a fan-in (k = ``arity``)."""

    def input_names(self) -> tuple[str, ...]:
        return tuple(f"Input{i}" for i in range(1, (self.params.arity or 2) + 1))


class TotalLayer(_Variadic):
    """Elementwise sum ``Input1 + Input2 + ...`` of equal-shaped arrays."""

    Params = ArityParams
    pad_clean = True
    real_outputs = ("Output",)

    def __init__(self, arity: int | None = None, **ports):
        super().__init__({"arity": arity}, ports)

    def rules(self, S: Solver, path: tuple, ports: dict[str, int]) -> dict:
        for n in self.input_names():
            S.unify(ports[n], ports["Output"], where(path, n), where(path, "Output"))
        return {}

    def forward(self, ins, arrays, ctx):
        names = self.input_names()
        xs = [ins[n] for n in names]
        y = sum(xs[1:], xs[0])
        return {"Output": y}, lambda g: ({n: sum_to(g["Output"], x.shape)
                                           for n, x in zip(names, xs, strict=True)}, {})


def _axis(level: int, rank: int, owner: str) -> int:
    ax = level if level >= 0 else rank + level
    if not 0 <= ax < rank:
        raise ShapeError(f"{owner}: level {level} is out of range for arrays of rank {rank}")
    return ax


class CatenateParams(ArityParams):
    level: Int = 0


class CatenateLayer(_Variadic):
    """Joins ``Input1..Inputk`` along axis ``level`` of the example (0-based, negative from
    the end); the other dims must agree. Catenating along a varying dimension is not
    supported (as in Wolfram)."""

    Params = CatenateParams
    pad_clean = True

    def __init__(self, level: int = 0, arity: int | None = None, **ports):
        super().__init__({"level": level, "arity": arity}, ports)

    def rules(self, S: Solver, path: tuple, ports: dict[str, int]) -> dict:
        names = self.input_names()
        to = ports["Output"]
        me = f"CatenateLayer at {where(path)}"

        def rule() -> None:
            typed = [(ports[n], where(path, n)) for n in names] + [(to, where(path, "Output"))]
            ranks = [S.rank(t) for t, _ in typed]
            r = next((k for k in ranks if k is not None), None)
            if r is None:
                return
            if r == 0:
                raise ShapeError(f"{me} needs arrays, not scalars")
            for t, p in typed:
                if S.rank(t) is None:
                    S.constrain(t, tuple(S.new_dim() for _ in range(r)), None, p, me)
                elif S.rank(t) != r:
                    raise ShapeError(f"{me}: {p} has shape {S.show(t)!r} but {typed[0][1]} "
                                     f"has shape {S.show(typed[0][0])!r}; ranks must agree")
            ax = _axis(self.params.level, r, me)
            od = S.dims(to)
            for t, p in typed[:-1]:
                d = S.dims(t)
                for i in range(r):
                    if i != ax:
                        S.equal_sizes(d[i], od[i], p, where(path, "Output"))
                if S.is_varying(d[ax]):
                    raise ShapeError(f"{me} cannot catenate {p} of shape {S.show(t)!r} along "
                                     f"its varying dimension (level {self.params.level})")
            sizes = [S.size(S.dims(t)[ax]) for t, _ in typed[:-1]]
            total = S.size(od[ax])
            try:
                if None not in sizes:
                    S.set_size(od[ax], sum(sizes), me)
                elif total is not None and sizes.count(None) == 1:
                    i = sizes.index(None)
                    rest = total - sum(s for s in sizes if s)
                    if rest < 1:
                        raise Conflict(f"the other inputs already have {total - rest} along it, "
                                       f"the output only {total}, which leaves {rest} for "
                                       f"{typed[i][1]}")
                    S.set_size(S.dims(typed[i][0])[ax], rest, me)
            except Conflict as c:
                raise ShapeError(f"{me}: input sizes {sizes} along level {self.params.level} do "
                                 f"not add up to the output: {c}") from None

        S.rules.append(rule)
        return {}

    def forward(self, ins, arrays, ctx):
        names = self.input_names()
        r = len(ctx.dims("Output"))
        ax = _axis(self.params.level, r, "CatenateLayer")
        xs = [ins[n] for n in names]
        leads = {x.shape[:x.ndim - r] for x in xs}
        if len(leads) == 1:  # the usual case: the same leading axes (the batch), nothing to do
            lead, full = leads.pop(), xs
        else:
            lead = np.broadcast_shapes(*leads)
            full = [np.broadcast_to(x, lead + x.shape[x.ndim - r:]) for x in xs]
        axis = len(lead) + ax
        y = np.concatenate(full, axis=axis)
        ends = np.cumsum([x.shape[axis] for x in full]).tolist()
        pieces = [(slice(None),) * axis + (slice(a, b),) for a, b in zip([0] + ends, ends)]

        def backward(g):
            out = g["Output"]
            return {n: sum_to(out[piece], x.shape)
                    for n, piece, x in zip(names, pieces, xs, strict=True)}, {}

        return {"Output": y}, backward


class SummationLayer(Layer):
    """The total of all elements of the input: an array -> "Real"."""

    signature = "Input -> Output[]:Real"

    def __init__(self, **ports):
        super().__init__({}, ports)

    def forward(self, ins, arrays, ctx):
        x = ins["Input"]
        lead = x.shape[:x.ndim - len(ctx.dims("Input"))]
        y = x.reshape(lead + (-1,)).sum(-1)

        def backward(g):
            gy = g["Output"].reshape(lead + (1,) * (x.ndim - len(lead)))
            return {"Input": np.broadcast_to(gy, x.shape).copy()}, {}

        return {"Output": y}, backward


class ReshapeParams(Params):
    shape: tuple[int | None, ...]

    @field_validator("shape", mode="before")
    @classmethod
    def _dims(cls, v):
        v = tuple(v) if isinstance(v, (list, tuple)) else (v,)
        v = tuple(None if d is Automatic else d for d in v)
        if sum(d is None for d in v) > 1:
            raise ValueError("at most one dimension may be Automatic")
        if any(d is not None and (not isinstance(d, (int, np.integer))
                                  or isinstance(d, (bool, np.bool_)) or d < 1) for d in v):
            raise ValueError("dimensions must be positive ints or Automatic")
        return tuple(None if d is None else int(d) for d in v)


class ReshapeLayer(Layer):
    """Reshapes each example to ``shape`` (one entry may be Automatic and is inferred)."""

    Params = ReshapeParams

    def __init__(self, shape, **ports):
        super().__init__({"shape": shape}, ports)

    def params_text(self) -> str:
        return f"shape={self._shape_text()}"

    def _shape_text(self) -> str:
        """The target shape as the user writes it (Automatic, not None)."""
        return repr(tuple(Automatic if d is None else d for d in self.params.shape))

    def rules(self, S: Solver, path: tuple, ports: dict[str, int]) -> dict:
        shape = self._shape_text()
        out = tuple(S.new_dim(d, origin=f"ReshapeLayer({shape})") for d in self.params.shape)
        S.constrain(ports["Output"], out, None, where(path, "Output"), f"ReshapeLayer({shape})")
        pin = where(path, "Input")

        def rule() -> None:
            dims = S.dims(ports["Input"])
            if dims is None:
                return
            if any(S.is_varying(d) for d in dims):
                raise ShapeError(f"{pin} has shape {S.show(ports['Input'])!r}: ReshapeLayer needs "
                                 "a fixed-size input")
            sizes = [S.size(d) for d in dims]
            outs = [S.size(d) for d in out]
            if None in sizes:
                return
            total, known = math.prod(sizes), math.prod(s for s in outs if s is not None)
            if None in outs and total % known == 0:
                S.set_size(out[outs.index(None)], total // known, pin)
            elif None not in outs and known != total or None in outs and total % known:
                raise ShapeError(f"{pin} has shape {S.show(ports['Input'])!r} ({total} elements), "
                                 f"which cannot be reshaped to {shape}")

        S.rules.append(rule)
        return {}

    def forward(self, ins, arrays, ctx):
        x = ins["Input"]
        lead = x.shape[:x.ndim - len(ctx.dims("Input"))]
        y = x.reshape(lead + tuple(ctx.dims("Output")))
        return {"Output": y}, lambda g: ({"Input": g["Output"].reshape(x.shape)}, {})


class SoftmaxParams(Params):
    level: Int = -1


def log_softmax(z: np.ndarray) -> np.ndarray:
    """``log softmax(z)`` along the last axis, computed stably:
    ``z - max z - log sum exp(z - max z)`` (finite wherever ``z`` is)."""
    s = z - z.max(axis=-1, keepdims=True)
    return s - np.log(np.exp(s).sum(axis=-1, keepdims=True))


class SoftmaxLayer(Layer):
    """``y = exp(x) / sum(exp(x))`` along axis ``level`` of the example (default: the last).
    Along a varying dimension the padded positions get weight exactly 0."""

    Params = SoftmaxParams
    signature = "Input[...x] -> Output[...x]"
    real_outputs = ("Output",)

    def __init__(self, level: int = -1, **ports):
        super().__init__({"level": level}, ports)

    def default_loss(self, port: str):
        """Probabilities over the last axis: ``CrossEntropyLossLayer("Index")``."""
        shape = self.port_shape("Output")
        rank = len(shape) if isinstance(shape, tuple) else None
        if self.params.level == -1 or rank is not None and self.params.level == rank - 1:
            return CrossEntropyLossLayer("Index")
        return None

    def fused_with_consumer(self, port, consumer, consumer_port, meta):
        """Probabilities over a fixed class axis, the last, read by the Input of a
        ``CrossEntropyLossLayer`` ("Index" or "Probabilities"): one step whose loss is computed
        from the log-softmax of the logits (see ``netgraph.layers.loss``)."""
        if (isinstance(consumer, CrossEntropyLossLayer) and consumer_port == "Input"
                and consumer.params.form in ("Index", "Probabilities") and meta.rank
                and self.params.level in (-1, meta.rank - 1) and meta.dims[-1] is not None):
            return FusedCrossEntropy(self, consumer, log_softmax)
        return None

    def rules(self, S: Solver, path: tuple, ports: dict[str, int]) -> dict:
        def rule() -> None:
            r = S.rank(ports["Input"])
            if r is not None:
                _axis(self.params.level, r, f"SoftmaxLayer at {where(path)} (its "
                      f"{where(path, 'Input')} has shape {S.show(ports['Input'])!r})")

        S.rules.append(rule)
        return {}

    def forward(self, ins, arrays, ctx):
        x = ins["Input"]
        r = ctx.meta("Input").rank
        ax = _axis(self.params.level, r, "SoftmaxLayer")
        axis = x.ndim - r + ax
        valid = ctx.valid_positions("Input", x, axes=(ax,))  # along the softmax axis only
        if valid is not None:  # padded positions get weight exp(-inf) = 0
            x = np.where(valid, x, -np.inf)
        y = x - np.maximum.reduce(x, axis=axis, keepdims=True)
        y = np.exp(y, out=y) if y.dtype.kind == "f" else np.exp(y)  # in place when it can
        y /= np.add.reduce(y, axis=axis, keepdims=True)

        def backward(g):
            gy = g["Output"]
            return {"Input": y * (gy - (gy * y).sum(axis=axis, keepdims=True))}, {}

        return {"Output": y}, backward


class DropoutParams(Params):
    p: Real = 0.5

    @field_validator("p")
    @classmethod
    def _prob(cls, v):
        if not 0 <= v < 1:
            raise ValueError("the dropout probability must be in [0, 1)")
        return v


class DropoutLayer(Layer):
    """In training, zeroes each element with probability ``p`` and scales the rest by
    ``1/(1-p)``; outside training it is the identity."""

    Params = DropoutParams
    signature = "Input[...x] -> Output[...x]"
    pad_clean = True
    real_outputs = ("Output",)

    def __init__(self, p: float = 0.5, **ports):
        super().__init__({"p": p}, ports)

    def forward(self, ins, arrays, ctx):
        x = ins["Input"]
        p = self.params.p
        if not ctx.training or p == 0:
            return {"Output": x}, lambda g: ({"Input": g["Output"]}, {})
        keep = (ctx.rng.random(x.shape) >= p).astype(x.dtype) / (1 - p)
        return {"Output": x * keep}, lambda g: ({"Input": g["Output"] * keep}, {})
