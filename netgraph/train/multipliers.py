"""Learning-rate multipliers by node, sub-net or array (``learning_rate_multipliers``).

A key names a part of the user's net as ``NetExtract`` does — a node (``"encoder"``), a path
to a sub-net (``("decoder", "gru")``) or to an array (``("attend", "ScoringNet", "Linear",
"Weights")``), int positions allowed — or is a ``NetSharedArray(name)`` or ``All`` (the
default for every array, else 1). Every array takes the multiplier of the most specific key
naming it or a net above it (the longest path); a shared array is named by its
``NetSharedArray`` or by a path to any of its uses, and is below every node one of its uses
is below. An array whose multiplier is 0 is frozen: it is not trained at all (no
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
from ..ports import NetSharedArray
from ..shapes import All
from ..shared import uses
from ..tree import resolve_child

__all__ = ["resolve_key", "array_multipliers", "split_frozen", "scale_vector"]


def resolve_key(net: Net, key: Any) -> tuple | NetSharedArray:
    """The canonical path (names, int positions resolved) of the node, sub-net or array
    ``key`` names in ``net``, or the ``NetSharedArray`` it is; every kind of key is resolved
    here (a ``NetError`` naming the key and what exists when it names nothing)."""
    if isinstance(key, NetSharedArray):
        if key not in uses(net):
            raise NetError(f"NetTrain: learning_rate_multipliers key {key!r} is not used in "
                           f"the net (its shared arrays are {sorted(k.name for k in uses(net))})")
        return key
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


def array_multipliers(net: Net, spec: Any, paths: list[Any]) -> dict[Any, float]:
    """Array path (relative to ``net``) or ``NetSharedArray`` -> multiplier, for every one in
    ``paths`` (the run-time keys of the arrays)."""
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
    found = uses(net)
    out = {}
    for path in paths:
        if path in rules:  # an array named exactly (a shared one by NetSharedArray(name))
            out[path] = rules[path]
            continue
        # a shared array is below a node when one of its uses is: the most specific key
        # over all its uses wins (the first use's, between equally specific ones)
        places = [p + (n,) for p, _, n in found[path]] if isinstance(path, NetSharedArray) \
            else [path]
        hits = [(len(k), -i, k) for i, place in enumerate(places) for k in rules
                if isinstance(k, tuple) and place[:len(k)] == k]
        out[path] = rules[max(hits, key=lambda h: h[:2])[2]] if hits else default
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
