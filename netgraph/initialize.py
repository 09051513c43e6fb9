"""NetInitialize: fill missing arrays (Xavier uniform weights, zero biases, unit forget gates)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .allocation import check_request, memory_errors, show_bytes
from .errors import NetError, SpecificationError, where
from .net import Net
from .tree import update_at, walk

__all__ = ["NetInitialize", "xavier_uniform"]

METHODS = ("Xavier", "Random", "Orthogonal")


def xavier_uniform(shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
    """Glorot uniform on ±sqrt(6 / (fan_in + fan_out)), fan_out = shape[0], fan_in = the
    product of the other dims (1 for a vector)."""
    fan_out = shape[0] if shape else 1
    fan_in = math.prod(shape[1:]) if len(shape) > 1 else 1
    limit = math.sqrt(6.0 / (fan_in + fan_out))
    return rng.uniform(-limit, limit, size=shape)


def _orthogonal(shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
    rows, cols = shape[0], math.prod(shape[1:]) if len(shape) > 1 else 1
    a = rng.standard_normal((max(rows, cols), min(rows, cols)))
    q, r = np.linalg.qr(a)
    q = q * np.sign(np.diag(r))
    q = q if rows >= cols else q.T
    return q[:rows, :cols].reshape(shape)


def _initial(kind: str, shape: tuple[int, ...], method: str, rng: np.random.Generator):
    if kind == "zeros":
        return np.zeros(shape)
    if kind == "ones":
        return np.ones(shape)
    if method == "Random":
        return rng.standard_normal(shape)
    if method == "Orthogonal" and len(shape) >= 2:
        return _orthogonal(shape, rng)
    return xavier_uniform(shape, rng)


@memory_errors("NetInitialize")
def NetInitialize(net: Net, *, method: str = "Xavier", seed: Any = None,
                  reinitialize: bool = False) -> Net:
    """A new net with every missing array filled (all arrays with ``reinitialize=True``).

    Raises
    ------
    SpecificationError
        If an array's shape is not fully known; the message names the layer and the array.
    """
    if not isinstance(net, Net):
        raise NetError(f"NetInitialize needs a net, got {type(net).__name__}")
    if method not in METHODS:
        raise NetError(f"NetInitialize: unknown method {method!r}; use one of {list(METHODS)}")
    try:
        rng = np.random.default_rng(seed)
    except (TypeError, ValueError):
        raise NetError(f"NetInitialize: seed must be None or a non-negative int, got {seed!r}") \
            from None
    solved = net._solution().arrays
    todo: dict[tuple, dict[str, tuple[int, ...]]] = {}
    for path, sub in walk(net):
        for name, value in sub._arrays().items():
            if value is not None and not reinitialize:
                continue
            shape = solved[(path, name)]
            if any(n is None for n in shape):
                shown = tuple("?" if n is None else n for n in shape)
                raise SpecificationError(
                    f"cannot initialize net: array {name!r} of {type(sub).__name__} at "
                    f"{where(path)} has unknown shape {shown}; give the sizes of its ports")
            todo.setdefault(path, {})[name] = shape
    _check_memory(net, todo)
    new, subs = net, dict(walk(net))
    for path, shapes in todo.items():
        init = type(subs[path]).array_init
        fills = {name: _initial(init.get(name, "weights"), shape, method, rng)
                 for name, shape in shapes.items()}
        new = update_at(new, path, lambda layer, f=fills: layer._with_arrays(f))
    return new._same_shapes_as(net)  # the arrays have their inferred shapes


def _check_memory(net: Net, todo: dict[tuple, dict[str, tuple[int, ...]]]) -> None:
    """Refuse, before drawing anything, arrays that cannot fit in memory: each is stored as
    float32 and drawn in float64 (the largest such temporary counts too)."""
    sizes = [(math.prod(shape), path, name, shape) for path, shapes in todo.items()
             for name, shape in shapes.items()]
    if not sizes:
        return
    n, path, name, shape = max(sizes)
    kinds = dict(walk(net))
    nbytes = 4 * sum(s[0] for s in sizes) + 8 * n
    check_request(nbytes, f"NetInitialize: the {len(sizes)} array(s) to initialize (the "
                          f"largest, {name!r} of {type(kinds[path]).__name__} at {where(path)}, "
                          f"has shape {shape}: {show_bytes(4 * n)} as float32)")
