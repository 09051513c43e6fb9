"""LinearLayer and DotLayer."""

from __future__ import annotations

import math
import string

import numpy as np
from pydantic import field_validator

from netgraph.extend import (
    Automatic,
    Bool,
    Conflict,
    Layer,
    Params,
    ShapeError,
    Solver,
    matmul,
    register_shorthand,
    where,
)

from ._ops import sum_to

__all__ = ["LinearLayer", "DotLayer"]


class LinearParams(Params):
    n: int | tuple[int, ...] | None = None
    biases: Bool = True

    @field_validator("n", mode="before")
    @classmethod
    def _sizes(cls, v):
        sizes = tuple(v) if isinstance(v, (list, tuple)) else (v,)
        if v is not None and not all(isinstance(k, (int, np.integer)) and k >= 1 and not
                                     isinstance(k, (bool, np.bool_)) for k in sizes):
            raise ValueError("must be a positive int, a tuple of positive ints, or () for a "
                             "scalar output")
        return v if v is None else tuple(map(int, sizes)) if isinstance(v, (list, tuple)) \
            else int(v)


class LinearLayer(Layer):
    """``y = W x + b``: ``W`` of shape ``(out, in)``, ``b`` of shape ``(out,)``.

    An input of rank > 1 is flattened first (in = product of its dims, as in Wolfram); ``n``
    may be an int, a tuple of output dims (W then has shape ``(prod(n), in)``) or ``()`` for a
    scalar ("Real") output, whose ``Weights`` have shape ``(in,)`` and ``Biases`` shape ``()``.
    Per-position maps over a sequence use ``NetMapOperator(LinearLayer(n))``.
    """

    Params = LinearParams
    signature = "Input -> Output:Real"  # the sizes follow from n: see rules
    array_init = {"Weights": "weights", "Biases": "zeros"}

    def __init__(self, n=Automatic, *, biases: bool = True, **ports):
        super().__init__({"n": n, "biases": biases}, ports)

    @classmethod
    def array_names_for(cls, params: LinearParams) -> tuple[str, ...]:
        return ("Weights", "Biases") if params.biases else ("Weights",)

    def rules(self, S: Solver, path: tuple, ports: dict[str, int]) -> dict:
        n = self.params.n
        desc = f"LinearLayer({Automatic if n is None else n!r}) at {where(path)}"
        sizes = n if isinstance(n, tuple) else (n,)
        out = tuple(S.new_dim(k, origin=desc if k else "") for k in sizes)
        S.constrain(ports["Output"], out, None, where(path, "Output"),
                    f"{desc} produces shape {S.show_dims(out)!r}")
        k = S.new_dim()  # the input size: the product of the Input's dims
        S.flatten(ports["Input"], k, where(path, "Input"), f"the weights of {desc}",
                  "LinearLayer needs a fixed-size input; map it over a sequence with "
                  "NetMapOperator(LinearLayer(...))")
        if not out:  # a scalar output
            return {"Weights": (k,), "Biases": ()}
        rows = out[0] if len(out) == 1 else S.new_dim(math.prod(sizes), origin=desc)
        return {"Weights": (rows, k), "Biases": (rows,)}

    def forward(self, ins, arrays, ctx):
        x, W, b = ins["Input"], arrays["Weights"], arrays.get("Biases")
        lead = x.shape[:x.ndim - ctx.meta("Input").rank]
        scalar = W.ndim == 1
        x2 = x.reshape(-1, W.shape[-1])
        y2 = matmul(x2, W if scalar else W.T)
        if b is not None:  # in place in the fresh product when the dtypes allow
            y2 = np.add(y2, b, out=y2 if y2.dtype == b.dtype else None)
        y = y2.reshape(lead + ctx.meta("Output").dims)

        def backward(g):
            gy2 = g["Output"].reshape(-1) if scalar else g["Output"].reshape(-1, W.shape[0])
            grads = {"Weights": matmul(gy2 if scalar else gy2.T, x2)}
            if b is not None:
                grads["Biases"] = gy2.sum(0)
            gx = np.multiply.outer(gy2, W) if scalar else matmul(gy2, W)
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
        p1, p2 = where(path, "Input1"), where(path, "Input2")

        def rule() -> None:
            d1, d2 = S.dims(t1), S.dims(t2)
            if d1 is None or d2 is None:
                return
            if not d1 or not d2:
                raise ShapeError(f"DotLayer at {where(path)} needs arrays of rank >= 1, got "
                                 f"{S.show(t1)!r} and {S.show(t2)!r}")
            try:
                S.unify_dims(d1[-1], d2[0])
            except Conflict:
                raise ShapeError(f"DotLayer at {where(path)}: cannot take the dot product of "
                                 f"{p1} with shape {S.show(t1)!r} and {p2} with shape "
                                 f"{S.show(t2)!r}") from None
            S.constrain(to, d1[:-1] + d2[1:], None, where(path, "Output"), "a dot product")

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
