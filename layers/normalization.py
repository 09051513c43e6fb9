"""NormalizationLayer: layer normalization of each vector over its last axis.

For every vector ``x`` of ``d`` numbers along the last axis (every other axis, sequence axes
included, is per position)::

    μ = (1/d) Σ_i x_i,   σ² = (1/d) Σ_i (x_i - μ)²          (biased variance)
    x̂ = (x - μ) / sqrt(σ² + ε)
    y = Scaling ⊙ x̂ + Biases

with arrays ``Scaling`` (d,), initialised to 1, and ``Biases`` (d,), initialised to 0.
Backward, with ``ĝ = Scaling ⊙ ∂L/∂y`` and ``r = 1 / sqrt(σ² + ε)``::

    ∂L/∂x = r (ĝ - mean(ĝ) - x̂ mean(ĝ ⊙ x̂))
    ∂L/∂Scaling = Σ_positions ∂L/∂y ⊙ x̂,   ∂L/∂Biases = Σ_positions ∂L/∂y

A padded position holds a zero vector: its x̂ is 0 and its gradients are 0, so it adds
nothing to the array gradients; its output (``Biases``) is discarded by the executor.
"""

from __future__ import annotations

import numpy as np
from pydantic import field_validator

from netgraph.extend import Layer, Params, Real, ShapeError, Solver, where

__all__ = ["NormalizationLayer"]


class NormalizationParams(Params):
    epsilon: Real = 1e-5

    @field_validator("epsilon")
    @classmethod
    def _positive(cls, v):
        if not (np.isfinite(v) and v > 0):
            raise ValueError("epsilon must be a finite number > 0")
        return v


class NormalizationLayer(Layer):
    """``NormalizationLayer(epsilon=1e-5)``: ``y = Scaling ⊙ (x - mean(x)) / sqrt(var(x) +
    epsilon) + Biases`` over the last axis of the input (see the module docstring); the
    input has rank >= 1 with a fixed last dimension, the output its shape."""

    Params = NormalizationParams
    signature = "Input[...x, d] -> Output[...x, d]:Real; Scaling[d], Biases[d]"
    array_init = {"Scaling": "ones", "Biases": "zeros"}

    def __init__(self, epsilon: float = 1e-5, **ports):
        super().__init__({"epsilon": epsilon}, ports)

    def rules(self, S: Solver, path: tuple, ports: dict[str, int]) -> dict:
        tin, pin = ports["Input"], where(path, "Input")

        def check() -> None:
            dims = S.dims(tin)
            if dims and S.is_varying(dims[-1]):
                raise ShapeError(f"{pin} has shape {S.show(tin)!r}, but NormalizationLayer "
                                 "needs a fixed size along the last axis (the size of its "
                                 "arrays Scaling and Biases); a sequence of vectors is "
                                 "('Varying', d)")

        def default() -> None:  # a vector, unless told otherwise
            if S.dims(tin) is None:
                S.constrain(tin, (S.size_var(path, "d"),), None, pin,
                            "NormalizationLayer takes a vector")

        S.defaults.append(default)
        S.checks.append(check)
        return {}

    def forward(self, ins, arrays, ctx):
        x, gamma, beta = ins["Input"], arrays["Scaling"], arrays["Biases"]
        mu = x.mean(axis=-1, keepdims=True)
        xc = x - mu
        r = 1.0 / np.sqrt((xc * xc).mean(axis=-1, keepdims=True) + self.params.epsilon)
        xhat = xc * r
        y = xhat * gamma + beta

        def backward(g):
            gy = g["Output"]
            gh = gy * gamma
            gx = r * (gh - gh.mean(axis=-1, keepdims=True)
                      - xhat * (gh * xhat).mean(axis=-1, keepdims=True))
            d = x.shape[-1]
            return {"Input": gx}, {"Scaling": (gy * xhat).reshape(-1, d).sum(0),
                                   "Biases": gy.reshape(-1, d).sum(0)}

        return {"Output": y.astype(x.dtype, copy=False)}, backward
