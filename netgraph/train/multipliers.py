"""Learning-rate multipliers by node, sub-net or array (``learning_rate_multipliers``).

A key names a part of the user's net as ``NetExtract`` does — a node (``"encoder"``), a path
to a sub-net (``("decoder", "gru")``) or to an array (``("attend", "ScoringNet", "Linear",
"Weights")``), int positions allowed — or is ``All`` (the default for every array, else 1).
Every array takes the multiplier of the most specific key naming it or a net above it (the
longest path). An array whose multiplier is 0 is frozen: it is not trained at all (no
gradient buffer, no optimizer work) and comes back bit-identical. The others are trained
with their step scaled: ``p -= multiplier * rate * update`` (clipping and L2 act on the
gradient before the optimizer; see :mod:`.params`).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..errors import NetError, where
from ..net import Net
from ..shapes import All
from ..tree import resolve_child

__all__ = ["resolve_key", "array_multipliers", "split_frozen", "scale_vector"]


def resolve_key(net: Net, key: Any) -> tuple:
    """The canonical path (names, int positions resolved) of the node, sub-net or array
    ``key`` names in ``net``; every kind of key is resolved here (a ``NetError`` naming the
    key and what exists when it names nothing)."""
    steps = tuple(key) if isinstance(key, (tuple, list)) else (key,)
    out: list[Any] = []
    sub = net
    for i, step in enumerate(steps):
        name = resolve_child(sub, step, tuple(out))
        if name is not None:
            out.append(name)
            sub = sub.children()[name]
        elif i == len(steps) - 1 and isinstance(step, str) and step in sub._arrays():
            out.append(step)
        else:
            parts = list(sub.children()) + list(sub._arrays())
            raise NetError(f"NetTrain: learning_rate_multipliers key {key!r} names no node, "
                           f"sub-net or array: {where(tuple(out))} has no part {step!r} (its "
                           f"parts are {parts})")
    return tuple(out)


def _multiplier(key: Any, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)) \
            or not math.isfinite(value) or value < 0:
        raise NetError(f"NetTrain: learning_rate_multipliers[{key!r}] must be a number >= 0 "
                       f"(0 freezes), got {value!r}")
    return float(value)


def array_multipliers(net: Net, spec: Any, paths: list[tuple]) -> dict[tuple, float]:
    """Array path (relative to ``net``) -> multiplier, for every path in ``paths``."""
    if spec is None:
        return dict.fromkeys(paths, 1.0)
    if not isinstance(spec, dict):
        raise NetError("NetTrain: learning_rate_multipliers must be None or a dict "
                       f"{{path: multiplier}}, got {type(spec).__name__}")
    default, rules = 1.0, {}
    for key, value in spec.items():
        if key is All:
            default = _multiplier(key, value)
        else:
            rules[resolve_key(net, key)] = _multiplier(key, value)
    out = {}
    for path in paths:
        hits = [p for p in rules if path[:len(p)] == p]
        out[path] = rules[max(hits, key=len)] if hits else default
    return out


def split_frozen(arrays: dict[tuple, np.ndarray], mults: dict[tuple, float]
                 ) -> tuple[dict[tuple, np.ndarray], dict[tuple, np.ndarray]]:
    """``(trained, frozen)``: the arrays whose multiplier is not 0, and those whose is."""
    trained = {p: a for p, a in arrays.items() if mults.get(p, 1.0) != 0}
    frozen = {p: a for p, a in arrays.items() if mults.get(p, 1.0) == 0}
    return trained, frozen


def scale_vector(paths: list[tuple], sizes: list[int],
                 mults: dict[tuple, float]) -> np.ndarray | None:
    """The per-scalar float32 multipliers of a flat buffer laid out as ``paths`` (of
    ``sizes`` scalars each); None when every multiplier is 1."""
    values = [mults.get(p, 1.0) for p in paths]
    if all(v == 1.0 for v in values):
        return None
    return np.repeat(np.array(values, dtype=np.float32), sizes)
