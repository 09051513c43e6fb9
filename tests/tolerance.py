"""The one tolerance of the suite: how close a computed number must be to its reference.

A result computed in floating point with machine epsilon ``ε`` (float32: 1.19e-7, float64:
2.22e-16) differs from the exact value by rounding that depends on how it was computed:

- an elementwise function (tanh, exp, a division, ...) is correct to a few units in the last
  place: ``ε·|y|``;
- an output that sums ``n`` terms ``t_1 … t_n`` of magnitude at most ``m`` (a matrix product,
  a sum over a sequence, a gradient summed over a batch) is off by about ``n·ε·m`` in any
  order of summation: the worst case of one left-to-right sum, ``(n−1)·ε·Σ|t_i|``, is not
  reached by random data, and BLAS sums blocks in an order that depends on the CPU, the
  number of threads and whether the product is batched (an AVX2 machine sums a batched
  float32 product differently from a single one: 2e-6 next to values of 17).

Hence, element by element,

    |got − want| ≤ C·ε·(|want| + n·m),        C = 8,

with ``want`` the reference (float64 or exact), ``ε`` the epsilon of the dtype ``got`` was
computed in, ``n`` = ``reduction`` (the number of terms summed into one output; the total
along a chain of layers) and ``m`` = ``scale`` (the magnitude of one term; by default the
largest ``|want|`` of the array). ``C`` covers the rounding of float32 inputs, a few
ulps per elementwise function and a few chained layers. Compare float32 results against a
float64 reference (``net(data, dtype=np.float64)`` or NumPy in float64), never float32
against float32; exactness (bit-identical save/load, padding invariance) is ``==``, not this.

When the terms are larger than anything the test can see — a gradient that cancels to ~0 from
products of large intermediate values, such as a score ``exp(q·q)`` that softmax's shift
invariance removes again — their magnitude is measured instead, by :func:`sensitivity` of
the same computation done twice: in float32 against float64 (how far float32 lands, in
float32 spacings), or in float64 on data moved by an ulp or two (:func:`nudged`: how far
the result moves, in float64 spacings). Either reads about ``n·m`` (so as a ``scale`` it errs
on the side of a looser bound, by up to ``n``); the nudge also catches a computation that
float32 cannot resolve at all (then float32 lands on a smooth wrong answer near float64's).
"""

from __future__ import annotations

from typing import Any

import numpy as np

C = 8.0


def eps(dtype: Any) -> float:
    """Machine epsilon of a floating dtype (the spacing of numbers just above 1)."""
    dtype = np.dtype(dtype)
    if dtype.kind != "f":
        raise TypeError(f"a tolerance needs a floating dtype, not {dtype}")
    return float(np.finfo(dtype).eps)


def tolerance(dtype: Any, *, reduction: int = 1, scale: float = 1.0) -> float:
    """The absolute part ``C·ε·n·m`` of the bound (for a value whose reference is ~0)."""
    if reduction < 1 or not np.isfinite(scale) or scale < 0:
        raise ValueError(f"reduction {reduction!r} must be >= 1 and scale {scale!r} finite, >= 0")
    return C * eps(dtype) * reduction * float(scale)


def sensitivity(low: Any, high: Any) -> float:
    """The magnitude of the terms a computation rounds, measured by computing it twice: the
    largest finite ``|low − high|`` over ``ε(low's dtype)``, ``low`` the result in a lower
    precision (float32) and ``high`` the same in a higher one (float64), or both float64, one
    from :func:`nudged` data. Lists of arrays are compared pairwise; integer arrays and
    elements not finite in both are left out (0 if nothing is left)."""
    lows, highs = (x if isinstance(x, (list, tuple)) else [x] for x in (low, high))
    worst = 0.0
    for lo, hi in zip(lows, highs, strict=True):
        lo = np.asarray(lo)
        if lo.dtype.kind != "f":  # integers (indices, counts) round nothing
            continue
        diff = np.abs(np.asarray(lo, np.float64) - np.asarray(hi, np.float64))
        worst = max(worst, float(diff[np.isfinite(diff)].max(initial=0.0)) / eps(lo.dtype))
    return worst


def nudged(x: Any, rng: np.random.Generator, ulps: float = 2.0) -> Any:
    """Real data ``x`` (an array, or a list of them) with every element moved by up to
    ``ulps`` spacings of its dtype (``x·(1 + u·ε)``, ``u`` uniform in ``[-ulps, ulps]``);
    integer data as it is."""
    if isinstance(x, (list, tuple)):
        return [nudged(e, rng, ulps) for e in x]
    a = np.asarray(x)
    if a.dtype.kind != "f":
        return x
    return a * (1 + ulps * eps(a.dtype) * rng.uniform(-1, 1, a.shape)).astype(a.dtype)


def assert_close(got: Any, want: Any, *, dtype: Any, reduction: int = 1,
                 scale: float | None = None, what: str = "", equal_nan: bool = False) -> None:
    """Assert ``|got − want| ≤ C·ε(dtype)·(|want| + reduction·scale)`` element by element.

    ``got`` and ``want`` must have the same shape (no broadcasting), except that a scalar
    ``want`` is compared with every element of ``got``. ``scale`` defaults to the largest
    ``|want|`` (give it when the terms are larger than the result, e.g. a sum that cancels,
    or when ``want`` is 0). NaN must match NaN at the same place when ``equal_nan``; infinities
    must be equal.
    """
    got64 = np.asarray(got, dtype=np.float64)
    want64 = np.asarray(want, dtype=np.float64)
    if want64.ndim == 0 and got64.ndim > 0:
        want64 = np.broadcast_to(want64, got64.shape)
    assert got64.shape == want64.shape, f"{what}: shape {got64.shape} != expected {want64.shape}"
    if got64.size == 0:
        return
    got_nan, want_nan = np.isnan(got64), np.isnan(want64)
    if equal_nan:
        assert np.array_equal(got_nan, want_nan), f"{what}: NaN at different places"
    else:
        assert not want_nan.any(), f"{what}: the reference has NaN (pass equal_nan=True)"
        assert not got_nan.any(), f"{what}: NaN at {np.argwhere(got_nan)[:5].tolist()}"
    finite = np.isfinite(want64) & ~want_nan
    inf = ~finite & ~want_nan
    assert np.array_equal(got64[inf], want64[inf]), f"{what}: infinities differ"
    if scale is None:
        scale = float(np.abs(want64[finite]).max(initial=0.0))
    bound = C * eps(dtype) * np.abs(want64) + tolerance(dtype, reduction=reduction, scale=scale)
    with np.errstate(invalid="ignore"):
        err = np.where(finite, np.abs(got64 - want64), 0.0)
    bad = ~(err <= bound) & finite
    if bad.any():
        with np.errstate(all="ignore"):
            ratio = np.where(bad, err / np.maximum(bound, np.finfo(np.float64).tiny), 0.0)
        worst = np.unravel_index(int(np.argmax(ratio)), err.shape)
        raise AssertionError(
            f"{what}: {int(bad.sum())} of {err.size} elements differ by more than "
            f"C·ε·(|want| + n·m) (C={C:g}, ε={eps(dtype):.3g} for {np.dtype(dtype).name}, "
            f"n={reduction}, m={scale:.3g}); worst at {tuple(int(i) for i in worst)}: "
            f"got {got64[worst]!r}, want {want64[worst]!r}, |error| {err[worst]:.3g} > "
            f"bound {bound[worst]:.3g}")
