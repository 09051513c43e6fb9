"""SequenceIndicesLayer: the positions of a sequence, for learned position embeddings.

For an input sequence of length ``T`` (each example's true length)::

    Output_i = min(i, n - 1)        i = 0 .. T-1      (0-based, as integers: Index(n))

so ``EmbeddingLayer(d, n)`` after it gives one learned vector per position (positions from
``n - 1`` on share the last one). The output depends only on the length: the Input's
gradient is 0.
"""

from __future__ import annotations

import numpy as np
from pydantic import field_validator

from netgraph.extend import Int, Layer, Params, Solver, where

from ._ops import lead_rank

__all__ = ["SequenceIndicesLayer"]


class SequenceIndicesParams(Params):
    n: Int

    @field_validator("n")
    @classmethod
    def _positive(cls, v):
        if v < 1:
            raise ValueError("the number of positions must be a positive int")
        return v


class SequenceIndicesLayer(Layer):
    """``SequenceIndicesLayer(n)``: Input any sequence (``("Varying", ...)`` or fixed length)
    -> Output ``("Varying", Index(n))`` of the same length holding ``min(i, n - 1)``."""

    Params = SequenceIndicesParams
    signature = "Input[*t, ...x] -> Output[*t]:Index(n)"

    def __init__(self, n: int, **ports):
        super().__init__({"n": n}, ports)

    def rules(self, S: Solver, path: tuple, ports: dict[str, int]) -> dict:
        def default() -> None:  # a varying-length vector, unless told otherwise
            if S.dims(ports["Input"]) is None:
                S.constrain(ports["Input"], (S.size_var(path, "t"),), None,
                            where(path, "Input"), f"SequenceIndicesLayer at {where(path)}")

        S.defaults.append(default)
        return {}

    def forward(self, ins, arrays, ctx):
        x = ins["Input"]
        lead = lead_rank(x, len(ctx.dims("Input")))
        T = x.shape[lead]
        positions = np.minimum(np.arange(T, dtype=np.int64), self.params.n - 1)
        y = np.ascontiguousarray(np.broadcast_to(positions, x.shape[:lead + 1]))

        def backward(g):
            return ({"Input": np.zeros_like(x)} if ctx.needs_grad("Input") else {}), {}

        return {"Output": y}, backward
