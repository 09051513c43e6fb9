"""EmbeddingLayer and the sequence layers: SequenceLast, SequenceMost, SequenceRest,
SequenceReverse. All respect each example's true length."""

from __future__ import annotations

from typing import ClassVar

import numpy as np
from pydantic import field_validator

from netgraph.extend import (
    Automatic,
    Conflict,
    InputDataError,
    Int,
    Layer,
    Params,
    ShapeError,
    Solver,
    matmul,
    where,
)

from ._ops import lead_rank, reverse_sequences

#: the embedding's backward sums the rows of each index by a product with the one-hot matrix
#: of the indices when it has at most this many entries (V vocabulary rows by N indices)
#: and the output gradient is finite; else by ``np.add.at``. Both add each index's rows in
#: order, the product exact zeros besides; it avoids ``add.at``'s per-row cost (N = 448,
#: V = 11, 16 columns: 10 µs against 70), but its zeros would turn an infinite gradient
#: into NaN in every other index's row.
ONE_HOT_ENTRIES = 1 << 16

__all__ = ["EmbeddingLayer", "SequenceLastLayer", "SequenceMostLayer", "SequenceRestLayer",
           "SequenceReverseLayer"]


class EmbeddingParams(Params):
    size: Int | None = None
    n: Int | None = None

    @field_validator("size", "n")
    @classmethod
    def _positive(cls, v):
        if v is not None and v < 1:
            raise ValueError("must be a positive int")
        return v


class EmbeddingLayer(Layer):
    """``x -> W[x]``: indices ``0..n-1`` to vectors of length ``size``; ``W`` has shape
    ``(n, size)``. The input is an index or an array of indices (a varying-length sequence
    by default)."""

    Params = EmbeddingParams
    signature = "Input[...x]:Index(n) -> Output[...x, size]:Real; Weights[n, size]"
    array_init = {"Weights": "weights"}

    def __init__(self, size=Automatic, n=Automatic, **ports):
        super().__init__({"size": size, "n": n}, ports)

    def rules(self, S: Solver, path: tuple, ports: dict[str, int]) -> dict:
        def default() -> None:  # a varying-length sequence of indices, unless told otherwise
            if S.dims(ports["Input"]) is None:
                origin = f"EmbeddingLayer at {where(path)}"
                S.constrain(ports["Input"], (S.new_dim(varying=True, origin=origin),), None,
                            where(path, "Input"), origin)

        S.defaults.append(default)
        return {}

    def forward(self, ins, arrays, ctx):
        idx, W = ins["Input"], arrays["Weights"]
        y = W[idx]

        def backward(g):
            rows, go = idx.reshape(-1), g["Output"].reshape(-1, W.shape[1])
            if W.shape[0] * rows.size <= ONE_HOT_ENTRIES and np.isfinite(go).all():
                one_hot = (np.arange(W.shape[0])[:, None] == rows).astype(go.dtype)
                return {}, {"Weights": matmul(one_hot, go).astype(W.dtype, copy=False)}
            gW = np.zeros_like(W)
            np.add.at(gW, rows, go)
            return {}, {"Weights": gW}

        return {"Output": y}, backward


class _SequenceLayer(Layer):
    """A layer taking a sequence ``Input`` (rank >= 1, first dim the length ``t``) whose
    elements ``x`` it moves (any shape and element type)."""

    def __init__(self, **ports):
        super().__init__({}, ports)

    def _shift_rule(self, S: Solver, path: tuple) -> None:
        """Fixed lengths: output length ``u`` = input length ``t`` - 1 (both ways)."""
        name = type(self).__name__
        length, out_len = S.size_var(path, "t"), S.size_var(path, "u")

        def rule() -> None:
            n, m = S.size(length), S.size(out_len)
            try:
                if n is not None:
                    if n < 2:
                        raise ShapeError(f"{name} at {where(path)} needs sequences of length >= 2, "
                                         f"got length {n}")
                    S.set_size(out_len, n - 1, f"{name} at {where(path)}")
                elif m is not None:
                    S.set_size(length, m + 1, f"{name} at {where(path)}")
            except Conflict as c:
                raise ShapeError(f"{name} at {where(path)}: {c}") from None

        S.rules.append(rule)

    def _check_min_length(self, ctx) -> np.ndarray | None:
        """The per-example lengths of a varying Input (None for a fixed length, which
        inference already checked), all >= 2, else ``InputDataError``."""
        lens = ctx.lengths("Input")
        if lens is not None and (lens < 2).any():
            raise InputDataError(f"{type(self).__name__} at {where(ctx.path, 'Input')} "
                                 f"needs sequences of length >= 2, got lengths {lens.tolist()}")
        return lens


class SequenceLastLayer(_SequenceLayer):
    """The last element of each sequence (the true last one for varying lengths)."""

    signature = "Input[*t, ...x] -> Output[...x]"
    pad_clean = True

    def forward(self, ins, arrays, ctx):
        x = ins["Input"]
        lead = x.ndim - len(ctx.dims("Input"))
        lens = ctx.lengths("Input")
        if lens is None:
            last = np.full(x.shape[:lead], x.shape[lead] - 1)
        else:
            last = lens - 1
        index = tuple(np.indices(x.shape[:lead], sparse=True)) + (last,)
        y = x[index]

        def backward(g):
            gx = np.zeros_like(x)
            gx[index] = g["Output"]
            return {"Input": gx}, {}

        return {"Output": y}, backward


class _DropOne(_SequenceLayer):
    """A sequence without one end element: ``keep`` selects what remains (lengths >= 2)."""

    keep: ClassVar[slice]
    signature = "Input[*t, ...x] -> Output[*u, ...x]"

    def rules(self, S: Solver, path: tuple, ports: dict[str, int]) -> dict:
        self._shift_rule(S, path)
        return {}

    def forward(self, ins, arrays, ctx):
        x = ins["Input"]
        lens = self._check_min_length(ctx)
        if lens is not None:
            ctx.set_lengths("Output", lens - 1)
        keep = (slice(None),) * lead_rank(x, len(ctx.dims("Input"))) + (self.keep,)

        def backward(g):
            gx = np.zeros_like(x)
            gx[keep] = g["Output"]
            return {"Input": gx}, {}

        return {"Output": x[keep]}, backward


class SequenceMostLayer(_DropOne):
    """All but the last element of each sequence (lengths >= 2)."""

    keep = slice(None, -1)


class SequenceRestLayer(_DropOne):
    """All but the first element of each sequence (lengths >= 2). With zero padding, the
    positions past the new lengths stay zero."""

    keep = slice(1, None)
    pad_clean = True


class SequenceReverseLayer(_SequenceLayer):
    """Each sequence reversed (its true part; padding stays at the end)."""

    signature = "Input[*t, ...x] -> Output[*t, ...x]"
    pad_clean = True

    def forward(self, ins, arrays, ctx):
        x = ins["Input"]
        axis = lead_rank(x, len(ctx.dims("Input")))  # the sequence axis, after the leading ones
        lens = ctx.lengths("Input")  # per example: keyed to the first leading axis

        def backward(g):
            return {"Input": reverse_sequences(g["Output"], axis, lens)}, {}

        return {"Output": reverse_sequences(x, axis, lens)}, backward
