"""Small array helpers shared by the layer implementations."""

from __future__ import annotations

import numpy as np


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


def lead(x: np.ndarray, example_rank: int) -> tuple[int, ...]:
    """The leading (batch-like) shape of ``x`` whose examples have rank ``example_rank``."""
    return x.shape[:x.ndim - example_rank]


def expand_scalar(x: np.ndarray, example_rank: int, target_rank: int) -> np.ndarray:
    """View a value of example rank ``example_rank`` so it broadcasts against examples of rank
    ``target_rank`` (a scalar per example gets trailing unit axes)."""
    if example_rank == target_rank:
        return x
    return x.reshape(x.shape + (1,) * (target_rank - example_rank))
