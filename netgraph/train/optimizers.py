"""Optimizers (ADAM, SGD, RMSProp) over all trainable arrays held in one flat float32 buffer.

Every array of the training net is a view into one contiguous buffer, and so is every
gradient (:class:`netgraph.train.params.ParamSet`); an update is then a handful of
whole-buffer NumPy operations, however many arrays the net has (split over threads for large
buffers). The buffer is a private copy: the user's net is never touched.

Defaults (Wolfram's where Wolfram documents one):

========  ===================================================  ==========================
method    options (``method=(name, {option: value})``)          learning_rate Automatic
========  ===================================================  ==========================
ADAM      ``beta1=0.9, beta2=0.999, epsilon=1e-5``               0.001
SGD       ``momentum=0.9, nesterov=False``                       0.01
RMSProp   ``beta=0.95, momentum=0.9, epsilon=1e-8``              0.001
========  ===================================================  ==========================

ADAM is bias-corrected (``p -= lr/(1-b1^t) * m / (sqrt(v/(1-b2^t)) + eps)``); SGD with
momentum is ``u = momentum*u + g; p -= lr*u`` (Nesterov: ``p -= lr*(g + momentum*u)``);
RMSProp is ``v = beta*v + (1-beta)*g^2; u = momentum*u + g/(sqrt(v) + eps); p -= lr*u``.
"""

from __future__ import annotations

import math
import os
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from ..errors import NetError
from ..shapes import Automatic

__all__ = ["Optimizer", "Adam", "SGD", "RMSProp", "make_optimizer", "OPTIMIZERS"]


#: buffers of at least this many scalars per worker thread are updated in parallel chunks
#: (NumPy releases the GIL in ufuncs); elementwise updates, so the result is bit-identical.
#: The worker threads belong to the optimizer (no pool outlives it: NetTrain closes it when
#: training ends), and a process forked from one that stepped it makes threads of its own.
PARALLEL_CHUNK = 1 << 17


def _workers() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not on Linux
        return max(1, os.cpu_count() or 1)


def _chunks(n: int) -> list[slice]:
    k = min(_workers(), n // PARALLEL_CHUNK, 16)
    if k <= 1:
        return [slice(0, n)]
    bounds = np.linspace(0, n, k + 1).astype(int)
    return [slice(int(a), int(b)) for a, b in zip(bounds[:-1], bounds[1:])]


class Optimizer:
    """Base: ``step(p, g, rate, scale)`` updates the flat parameters ``p`` in place from
    gradient ``g`` with learning rate ``rate`` (default: ``lr``), each scalar's step times
    ``scale`` (per-array learning-rate multipliers, or None). Subclasses implement
    ``_update(p, g, sl, k)`` on the slice ``sl`` of every buffer, with scalars prepared once
    per step in ``_scalars(rate)``, ending in :meth:`_descend`. Their moment buffers are
    named in ``buffers`` (saved and restored by checkpoints, with the step count ``t``)."""

    name = ""
    options: dict[str, Any] = {}
    default_learning_rate = 0.001
    buffers: tuple[str, ...] = ("buf",)

    def __init__(self, n: int, learning_rate: float, **options: Any):
        self.lr = float(learning_rate)
        self.opts = {**self.options, **options}
        self.t = 0
        self.buf = np.zeros(n, dtype=np.float32)
        self._slices = _chunks(n)
        self._scale: np.ndarray | None = None
        self._pool: ThreadPoolExecutor | None = None
        self._pool_pid = 0

    def step(self, p: np.ndarray, g: np.ndarray, rate: float | None = None,
             scale: np.ndarray | None = None) -> None:
        self.t += 1
        k = self._scalars(self.lr if rate is None else rate)
        self._scale = scale
        if len(self._slices) == 1:
            self._update(p, g, self._slices[0], k)
            return
        pool = self._workers_pool()
        futures = [pool.submit(self._update, p, g, sl, k) for sl in self._slices[1:]]
        self._update(p, g, self._slices[0], k)
        for f in futures:
            f.result()

    def _workers_pool(self) -> ThreadPoolExecutor:
        """The worker threads for the chunks but the first (this thread updates that one),
        made on first use and again in a forked child, which has none of its parent's."""
        if self._pool is None or self._pool_pid != os.getpid():
            self._pool = ThreadPoolExecutor(max_workers=len(self._slices) - 1,
                                            thread_name_prefix="netgraph-optimizer")
            self._pool_pid = os.getpid()
        return self._pool

    def close(self) -> None:
        """End the worker threads (if any; a later step makes new ones)."""
        pool, self._pool = self._pool, None
        if pool is not None and self._pool_pid == os.getpid():
            pool.shutdown(wait=True)

    def _descend(self, P: np.ndarray, step: np.ndarray, sl: slice) -> None:
        """``P -= step`` (times the multipliers of the slice, when there are any)."""
        if self._scale is not None:
            step *= self._scale[sl]
        P -= step

    def state(self) -> tuple[int, dict[str, np.ndarray]]:
        """The step count and the moment buffers (the arrays themselves, not copies)."""
        return self.t, {name: getattr(self, name) for name in self.buffers}

    def _scalars(self, rate: float) -> tuple:
        return ()

    def _update(self, p: np.ndarray, g: np.ndarray, sl: slice, k: tuple) -> None:
        raise NotImplementedError

    def describe(self) -> str:
        opts = ", ".join(f"{k}={v!r}" for k, v in self.opts.items())
        return f"{self.name}(learning_rate={self.lr!r}, {opts})"


def _divide_by_rms(x: np.ndarray, G: np.ndarray, V: np.ndarray, buf: np.ndarray,
                   beta: np.float32, eps: np.float32) -> None:
    """``V = beta V + G²`` in place, then ``buf = x / (sqrt(V) + eps)``."""
    np.multiply(G, G, out=buf)
    V *= beta
    V += buf
    np.sqrt(V, out=buf)
    buf += eps
    np.divide(x, buf, out=buf)


class Adam(Optimizer):
    """Kept as ``M = m/(1-beta1)``, ``V = v/(1-beta2)`` so that a step is 11 buffer passes."""

    name = "ADAM"
    options = {"beta1": 0.9, "beta2": 0.999, "epsilon": 1e-5}
    buffers = ("buf", "m", "v")

    def __init__(self, n: int, learning_rate: float, **options: Any):
        super().__init__(n, learning_rate, **options)
        self.m = np.zeros(n, dtype=np.float32)
        self.v = np.zeros(n, dtype=np.float32)

    def _scalars(self, rate: float) -> tuple:
        b1, b2, eps = self.opts["beta1"], self.opts["beta2"], self.opts["epsilon"]
        # lr/(1-b1^t) * m / (sqrt(v/(1-b2^t)) + eps) with m = (1-b1) M, v = (1-b2) V
        c = math.sqrt((1 - b2) / (1 - b2 ** self.t))
        return (np.float32(b1), np.float32(b2), np.float32(eps / c),
                np.float32(rate * (1 - b1) / ((1 - b1 ** self.t) * c)))

    def _update(self, p: np.ndarray, g: np.ndarray, sl: slice, k: tuple) -> None:
        b1, b2, eps, rate = k
        P, G, M, V, buf = p[sl], g[sl], self.m[sl], self.v[sl], self.buf[sl]
        M *= b1
        M += G
        _divide_by_rms(M, G, V, buf, b2, eps)
        buf *= rate
        self._descend(P, buf, sl)


class SGD(Optimizer):
    name = "SGD"
    options = {"momentum": 0.9, "nesterov": False}
    default_learning_rate = 0.01

    def _scalars(self, rate: float) -> tuple:
        return np.float32(self.opts["momentum"]), np.float32(rate)

    def _update(self, p: np.ndarray, g: np.ndarray, sl: slice, k: tuple) -> None:
        mu, lr = k
        P, G, u = p[sl], g[sl], self.buf[sl]
        if not mu:
            np.multiply(G, lr, out=u)
            self._descend(P, u, sl)
            return
        u *= mu
        u += G
        if self.opts["nesterov"]:
            self._descend(P, lr * (G + mu * u), sl)
        else:
            self._descend(P, lr * u, sl)


class RMSProp(Optimizer):
    """Kept as ``V = v/(1-beta)``."""

    name = "RMSProp"
    options = {"beta": 0.95, "momentum": 0.9, "epsilon": 1e-8}
    buffers = ("buf", "v", "u")

    def __init__(self, n: int, learning_rate: float, **options: Any):
        super().__init__(n, learning_rate, **options)
        self.v = np.zeros(n, dtype=np.float32)
        self.u = np.zeros(n, dtype=np.float32)

    def _scalars(self, rate: float) -> tuple:
        beta, eps = self.opts["beta"], self.opts["epsilon"]
        c = math.sqrt(1 - beta)  # g/(sqrt(v) + eps) = (1/c) g/(sqrt(V) + eps/c)
        return (np.float32(beta), np.float32(self.opts["momentum"]), np.float32(eps / c),
                np.float32(1 / c), np.float32(rate))

    def _update(self, p: np.ndarray, g: np.ndarray, sl: slice, k: tuple) -> None:
        beta, mu, eps, inv_c, lr = k
        P, G, V, u, buf = p[sl], g[sl], self.v[sl], self.u[sl], self.buf[sl]
        _divide_by_rms(G, G, V, buf, beta, eps)
        buf *= inv_c
        u *= mu
        u += buf
        np.multiply(u, lr, out=buf)
        self._descend(P, buf, sl)


OPTIMIZERS: dict[str, type[Optimizer]] = {"ADAM": Adam, "SGD": SGD, "RMSProp": RMSProp}
_ALIASES = {"adam": "ADAM", "sgd": "SGD", "stochasticgradientdescent": "SGD",
            "rmsprop": "RMSProp"}


def _check_option(method: str, key: str, value: Any) -> Any:
    if key == "nesterov":
        if not isinstance(value, bool):
            raise NetError(f"NetTrain: method option 'nesterov' of {method} must be True or "
                           f"False, got {value!r}")
        return value
    if isinstance(value, bool) or not isinstance(value, (int, float)) or \
            not math.isfinite(value):
        raise NetError(f"NetTrain: method option {key!r} of {method} must be a number, got "
                       f"{value!r}")
    if key == "epsilon" and value <= 0:
        raise NetError(f"NetTrain: method option 'epsilon' of {method} must be positive, got "
                       f"{value!r}")
    if key != "epsilon" and not 0 <= value < 1:
        raise NetError(f"NetTrain: method option {key!r} of {method} must be in [0, 1), got "
                       f"{value!r}")
    return float(value)


def make_optimizer(method: Any, learning_rate: Any, n: int) -> Optimizer:
    """An optimizer for ``n`` scalars from ``method`` — a name, ``(name, {option: value})`` or
    ``{"name": name, option: value}`` — and ``learning_rate`` (a positive number or
    Automatic)."""
    options: dict[str, Any] = {}
    if isinstance(method, tuple) and len(method) == 2 and isinstance(method[1], dict):
        method, options = method
    elif isinstance(method, dict):
        options = dict(method)
        method = options.pop("name", options.pop("method", None))
    if not isinstance(method, str) or method.lower() not in _ALIASES:
        raise NetError(f"NetTrain: unknown method {method!r}; use one of {list(OPTIMIZERS)}, "
                       "optionally as (name, {option: value})")
    cls = OPTIMIZERS[_ALIASES[method.lower()]]
    for key in options:
        if key not in cls.options:
            raise NetError(f"NetTrain: unknown option {key!r} for method {cls.name}; its "
                           f"options are {list(cls.options)}")
    options = {k: _check_option(cls.name, k, v) for k, v in options.items()}
    if learning_rate is Automatic or learning_rate is None:
        learning_rate = cls.default_learning_rate
    elif isinstance(learning_rate, bool) or not isinstance(learning_rate, (int, float)) or \
            not math.isfinite(learning_rate) or learning_rate <= 0:
        raise NetError(f"NetTrain: learning_rate must be a positive number, got "
                       f"{learning_rate!r}")
    return cls(n, learning_rate, **options)
