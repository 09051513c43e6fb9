"""LinearLayer and DotLayer."""

from __future__ import annotations

import math
import string

import numpy as np
from pydantic import field_validator

from netgraph.errors import ShapeError
from netgraph.graph import register_shorthand
from netgraph.layer import Layer, Params
from netgraph.shapes import Automatic
from netgraph.solver import Conflict, Solver, place

from ._ops import Bool, sum_to

__all__ = ["LinearLayer", "DotLayer"]


class LinearParams(Params):
    n: int | tuple[int, ...] | None = None
    biases: Bool = True

    @field_validator("n", mode="before")
    @classmethod
    def _sizes(cls, v):
        if v is None:
            return v
        sizes = tuple(v) if isinstance(v, (list, tuple)) else (v,)
        if not all(isinstance(k, (int, np.integer)) and not isinstance(k, (bool, np.bool_))
                   and k >= 1 for k in sizes):
            raise ValueError("must be a positive int, a tuple of positive ints, or () for a "
                             "scalar output")
        sizes = tuple(int(k) for k in sizes)
        return sizes if isinstance(v, (list, tuple)) else sizes[0]


class LinearLayer(Layer):
    """``y = W x + b``: ``W`` of shape ``(out, in)``, ``b`` of shape ``(out,)``.

    An input of rank > 1 is flattened first (in = product of its dims, as in Wolfram); ``n``
    may be an int, a tuple of output dims (W then has shape ``(prod(n), in)``) or ``()`` for a
    scalar ("Real") output, whose ``Weights`` have shape ``(in,)`` and ``Biases`` shape ``()``.
    Per-position maps over a sequence use ``NetMapOperator(LinearLayer(n))``.
    """

    Params = LinearParams
    real_outputs = ("Output",)
    array_init = {"Weights": "weights", "Biases": "zeros"}

    def __init__(self, n=Automatic, *, biases: bool = True, **ports):
        super().__init__({"n": n, "biases": biases}, ports)

    @classmethod
    def array_names_for(cls, params: LinearParams) -> tuple[str, ...]:
        return ("Weights", "Biases") if params.biases else ("Weights",)

    def rules(self, S: Solver, path: tuple, ports: dict[str, int]) -> dict:
        n = self.params.n
        tin, tout = ports["Input"], ports["Output"]
        pin, pout = place(path, "Input"), place(path, "Output")
        desc = f"LinearLayer({Automatic if n is None else n!r}) at {place(path)}"
        if isinstance(n, tuple):
            out_dims = tuple(S.new_dim(k, origin=desc) for k in n)
            out_size = out_dims[0] if len(n) == 1 else S.new_dim(math.prod(n), origin=desc)
        else:
            out_size = S.new_dim(n, origin=desc if n is not None else "")
            out_dims = (out_size,)
        S.constrain(tout, out_dims, None, pout,
                    f"{desc} produces shape {S.show(S.new_type(out_dims))!r}")
        in_size = S.new_dim()

        def rule() -> None:
            dims = S.dims(tin)
            if dims is None:
                return
            if any(S.is_varying(d) for d in dims):
                raise ShapeError(f"{pin} has shape {S.show(tin)!r}, but LinearLayer needs a "
                                 "fixed-size input; map it over a sequence with "
                                 "NetMapOperator(LinearLayer(...))")
            if len(dims) == 1:
                S.equal_sizes(dims[0], in_size, pin, f"the input size of the weights of {desc}")
                return
            sizes = [S.size(d) for d in dims]
            if None not in sizes:
                try:
                    S.set_size(in_size, math.prod(sizes), f"the shape of {pin}")
                except Conflict as c:
                    raise ShapeError(f"{pin} has shape {S.show(tin)!r}, inconsistent with the "
                                     f"weights of {desc}: {c}") from None

        def default() -> None:
            if S.dims(tin) is None:
                S.constrain(tin, (in_size,), None, pin, "LinearLayer takes a vector")

        S.rules.append(rule)
        S.defaults.append(default)
        scalar = isinstance(n, tuple) and len(n) == 0
        arrays = {"Weights": (in_size,) if scalar else (out_size, in_size)}
        if self.params.biases:
            arrays["Biases"] = () if scalar else (out_size,)
        return arrays

    def forward(self, ins, arrays, ctx):
        x, W, b = ins["Input"], arrays["Weights"], arrays.get("Biases")
        in_rank, out_dims = len(ctx.dims("Input")), ctx.dims("Output")
        lead = x.shape[:x.ndim - in_rank]
        scalar = W.ndim == 1
        x2 = x.reshape(-1, W.shape[-1])
        y2 = x2 @ W if scalar else x2 @ W.T
        if b is not None:
            y2 = y2 + b
        y = y2.reshape(lead + tuple(out_dims))

        def backward(g):
            gy = g["Output"]
            gy2 = gy.reshape(-1) if scalar else gy.reshape(-1, W.shape[0])
            grads = {"Weights": gy2 @ x2 if scalar else gy2.T @ x2}
            if b is not None:
                grads["Biases"] = gy2.sum(0)
            gx = np.multiply.outer(gy2, W) if scalar else gy2 @ W
            return {"Input": gx.reshape(x.shape)}, grads

        return {"Output": y}, backward


register_shorthand(lambda x: isinstance(x, int) and not isinstance(x, bool), LinearLayer)
register_shorthand(lambda x: isinstance(x, tuple) and all(isinstance(k, int) for k in x),
                   LinearLayer)


def _subscripts(r1: int, r2: int) -> tuple[str, str, str]:
    letters = string.ascii_lowercase
    a = letters[:r1 - 1] + "z"
    b = "z" + letters[r1 - 1:r1 + r2 - 2]
    return a, b, a[:-1] + b[1:]


class DotLayer(Layer):
    """``Dot[a, b]``: contracts the last dim of ``Input1`` with the first dim of ``Input2``
    (vector . vector -> scalar, matrix . vector -> vector, ...). Leading axes broadcast."""

    inputs = ("Input1", "Input2")
    pad_clean = False
    real_outputs = ("Output",)

    def __init__(self, **ports):
        super().__init__({}, ports)

    def rules(self, S: Solver, path: tuple, ports: dict[str, int]) -> dict:
        t1, t2, to = ports["Input1"], ports["Input2"], ports["Output"]
        p1, p2 = place(path, "Input1"), place(path, "Input2")

        def rule() -> None:
            d1, d2 = S.dims(t1), S.dims(t2)
            if d1 is None or d2 is None:
                return
            if not d1 or not d2:
                raise ShapeError(f"DotLayer at {place(path)} needs arrays of rank >= 1, got "
                                 f"{S.show(t1)!r} and {S.show(t2)!r}")
            try:
                S.unify_dims(d1[-1], d2[0])
            except Conflict:
                raise ShapeError(f"DotLayer at {place(path)}: cannot take the dot product of "
                                 f"{p1} with shape {S.show(t1)!r} and {p2} with shape "
                                 f"{S.show(t2)!r}") from None
            S.constrain(to, d1[:-1] + d2[1:], None, place(path, "Output"), "a dot product")

        def default() -> None:
            for t, p in ((t1, p1), (t2, p2)):
                if S.dims(t) is None:
                    S.constrain(t, (S.new_dim(),), None, p, "DotLayer takes vectors")

        S.rules.append(rule)
        S.defaults.append(default)
        return {}

    def forward(self, ins, arrays, ctx):
        a, b = ins["Input1"], ins["Input2"]
        sa, sb, so = _subscripts(len(ctx.dims("Input1")), len(ctx.dims("Input2")))
        y = np.einsum(f"...{sa},...{sb}->...{so}", a, b)

        def backward(g):
            gy = g["Output"]
            ga = sum_to(np.einsum(f"...{so},...{sb}->...{sa}", gy, b), a.shape)
            gb = sum_to(np.einsum(f"...{so},...{sa}->...{sb}", gy, a), b.shape)
            return {"Input1": ga, "Input2": gb}, {}

        return {"Output": y}, backward
