"""Trainable arrays in one flat float32 buffer; gradient checks, clipping and L2."""

from __future__ import annotations

import math

import numpy as np

__all__ = ["ParamSet", "Diverged", "clip_and_regularize"]


class Diverged(Exception):
    """A loss or gradient became NaN or infinite (turned into a ``NetError`` by NetTrain)."""


class ParamSet:
    """Trainable arrays (path -> float32 array) as views into one flat buffer, with a flat
    gradient buffer of the same layout."""

    def __init__(self, arrays: dict[tuple, np.ndarray]):
        self.paths = list(arrays)
        sizes = [arrays[p].size for p in self.paths]
        offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(int)
        self.flat = np.empty(int(offsets[-1]), dtype=np.float32)
        self.grad = np.zeros_like(self.flat)
        self.arrays: dict[tuple, np.ndarray] = {}
        self._grads: dict[tuple, np.ndarray] = {}
        for p, a, lo, hi in zip(self.paths, arrays.values(), offsets[:-1], offsets[1:]):
            view = self.flat[lo:hi].reshape(a.shape)
            view[...] = a
            self.arrays[p] = view
            self._grads[p] = self.grad[lo:hi].reshape(a.shape)

    @property
    def size(self) -> int:
        return int(self.flat.size)

    def load_grads(self, grads: dict[tuple, np.ndarray]) -> np.ndarray:
        """Copy array gradients (by path) into the flat gradient buffer (0 where missing)."""
        for p, view in self._grads.items():
            g = grads.get(p)
            if g is None:
                view[...] = 0
            else:
                view[...] = g
        return self.grad

    def snapshot(self) -> np.ndarray:
        return self.flat.copy()

    def as_arrays(self, flat: np.ndarray | None = None) -> dict[tuple, np.ndarray]:
        """Path -> array copies, from the current values or from a ``snapshot``."""
        src = self.flat if flat is None else flat
        out, lo = {}, 0
        for p in self.paths:
            shape = self.arrays[p].shape
            n = self.arrays[p].size
            out[p] = src[lo:lo + n].reshape(shape).copy()
            lo += n
        return out


def _sq_norm(g: np.ndarray) -> float:
    s = float(np.dot(g, g))
    if not math.isfinite(s):
        if not np.isfinite(g).all():
            raise Diverged("gradient")
        s = float(np.dot(g.astype(np.float64), g.astype(np.float64)))
    return s


def clip_and_regularize(g: np.ndarray, p: np.ndarray, clip: float | None, l2: float,
                        tmp: np.ndarray) -> float:
    """In place: raise ``Diverged`` for a non-finite gradient, scale ``g`` down to global norm
    ``clip`` (when given and exceeded), then add ``l2 * p``. Returns the gradient's norm
    before clipping."""
    norm = math.sqrt(_sq_norm(g))
    if clip is not None and norm > clip:
        g *= np.float32(clip / norm)
    if l2:
        np.multiply(p, np.float32(l2), out=tmp)
        g += tmp
    return norm
