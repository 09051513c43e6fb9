"""Central differences: the one numerical derivative of the library and its tests.

For a scalar function ``f`` of an array ``x`` and a step ``h``, entry ``i`` of the gradient is
approximated by

    ∂f/∂x_i ≈ (f(x + h·e_i) − f(x − h·e_i)) / (2h),

whose truncation error is ``O(h²)`` (``h²/6 · ∂³f/∂x_i³``) and whose round-off error is about
``ε · |f| / h``. ``netgraph.gradcheck`` and the test suite's gradient checks all use
``central_differences``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import numpy as np

from .errors import NetError

__all__ = ["central_differences"]


def central_differences(f: Callable[[], float], x: np.ndarray, *, h: float,
                        at: Iterable[int] | None = None, fill: float = np.nan) -> np.ndarray:
    """The central-difference gradient of ``f`` with respect to ``x``.

    ``f`` takes no argument: it reads ``x``, which is perturbed **in place**, one entry at a
    time (``x[i] = old ± h``), and restored to ``old`` afterwards, so ``x`` must be writeable
    and ``f`` must see it (for a float64 result, ``x`` is a float64 array).

    Parameters
    ----------
    f : callable () -> float
        The scalar function; called twice per entry.
    x : ndarray
        The array differentiated (perturbed in place, restored on return).
    h : float
        The step.
    at : iterable of int, optional
        The flat indices of the entries to differentiate (default: every entry).
    fill : float
        The value of the entries not differentiated (default NaN).

    Returns
    -------
    ndarray
        ``(f(x + h·e_i) − f(x − h·e_i)) / (2h)`` at the entries ``at``, ``fill`` elsewhere;
        shape of ``x``, float64.
    """
    grad = np.full(x.shape, fill, dtype=np.float64)
    flat, gflat = x.reshape(-1), grad.reshape(-1)
    if not np.shares_memory(flat, x) and x.size:
        raise NetError("central_differences: x must be a contiguous array (it is perturbed "
                       "in place)")
    for i in range(x.size) if at is None else at:
        old = flat[i]
        try:
            flat[i] = old + h
            up = f()
            flat[i] = old - h
            down = f()
        finally:
            flat[i] = old
        gflat[i] = (up - down) / (2 * h)
    return grad
