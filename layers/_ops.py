"""Small array helpers shared by the layer implementations."""

from __future__ import annotations

from typing import Any

import numpy as np
from pydantic import field_validator

from netgraph.extend import Int, Params


class ArityParams(Params):
    """Hyperparameters of a layer whose inputs ``Input1..Inputk`` a fan-in fills."""

    arity: Int | None = None

    @field_validator("arity")
    @classmethod
    def _arity(cls, v):
        if v is not None and v < 1:
            raise ValueError("arity must be at least 1")
        return v


def sum_to(g: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Reduce ``g`` over the axes that were broadcast to reach ``g.shape`` from ``shape``."""
    if g.shape == tuple(shape):
        return g
    extra = g.ndim - len(shape)
    if extra:
        g = g.sum(axis=tuple(range(extra)))
    axes = tuple(i for i, n in enumerate(shape) if n == 1 and g.shape[i] != 1)
    if axes:
        g = g.sum(axis=axes, keepdims=True)
    return g


def common_dtype(*xs: np.ndarray) -> np.dtype:
    """``np.result_type(*xs)`` of arrays, at the cost of a comparison when they share one
    dtype (the usual case: every real value of a run has the run's dtype)."""
    dt = xs[0].dtype
    for x in xs[1:]:
        if x.dtype != dt:
            return np.result_type(*xs)
    return dt


def lead(x: np.ndarray, example_rank: int) -> tuple[int, ...]:
    """The leading (batch-like) shape of ``x`` whose examples have rank ``example_rank``."""
    return x.shape[:x.ndim - example_rank]


def lead_rank(x: np.ndarray, example_rank: int) -> int:
    """How many leading (batch-like) axes ``x`` has: 1 at top level (the batch), more in a
    sub-net (a custom scoring net sees ``(batch, heads, m, n)``)."""
    return x.ndim - example_rank


def broadcast_lead(xs: list[np.ndarray], ranks: list[int]) -> tuple[tuple[int, ...], list]:
    """The leading shape shared by values ``xs`` (examples of ranks ``ranks``) whose leading
    axes broadcast against each other, e.g. a scoring net's Input side ``(B, h, 1, n)`` and
    Query side ``(B, h, m, 1)``; and each value broadcast to it (read-only views). A
    layer's backward reduces its input gradients back with :func:`sum_to`."""
    x0 = xs[0]
    first = x0.shape[:x0.ndim - ranks[0]]
    if len(xs) == 1:
        return first, xs
    for x, r in zip(xs, ranks, strict=True):
        if x.shape[:x.ndim - r] != first:
            break
    else:  # the common case (top level): one leading shape, nothing to do
        return first, list(xs)
    lead_shape = np.broadcast_shapes(*(lead(x, r) for x, r in zip(xs, ranks, strict=True)))
    return lead_shape, [np.broadcast_to(x, lead_shape + x.shape[x.ndim - r:])
                        for x, r in zip(xs, ranks, strict=True)]


def expand_scalar(x: np.ndarray, example_rank: int, target_rank: int) -> np.ndarray:
    """View a value of example rank ``example_rank`` so it broadcasts against examples of rank
    ``target_rank`` (a scalar per example gets trailing unit axes)."""
    if example_rank == target_rank:
        return x
    return x.reshape(x.shape + (1,) * (target_rank - example_rank))


def fill_padding(x: np.ndarray, ctx: Any, port: str, value: float) -> np.ndarray:
    """``x`` (the data of ``port``) with the padded positions of its varying dims set to
    ``value``: keeps functions with a pole at 0 (Log, Sqrt, a divisor) finite, and silent, on
    padding, whose results the executor discards anyway."""
    valid = ctx.valid_positions(port, x)
    if valid is None:
        return x
    return np.where(valid, x, value).astype(x.dtype, copy=False)


def reverse_sequences(x: np.ndarray, axis: int, lengths: np.ndarray | None) -> np.ndarray:
    """``x`` with each example's sequence along ``axis`` reversed over its true length
    (``lengths``, per example, keyed to the first axis; None: every sequence is full), the
    padding staying at the end: ``y[b, t] = x[b, L_b - 1 - t]`` for ``t < L_b``, ``x[b, t]``
    after. The permutation is its own inverse, so it also maps a gradient back."""
    T = x.shape[axis]
    pos = np.arange(T)
    src = pos[::-1][None] if lengths is None else \
        np.where(pos < lengths[:, None], lengths[:, None] - 1 - pos, pos)
    # src[b, t]: where output position t reads from
    src = src.reshape(src.shape[:1] + (1,) * (axis - 1) + (T,) + (1,) * (x.ndim - axis - 1))
    return np.take_along_axis(x, src, axis)
