"""Shared arrays: ``NetSharedArray(name)`` in place of a layer's array makes every use of
``name`` in a net one array.

A *use* is an array of a layer given as ``NetSharedArray(name)`` (a constructor option such
as ``LinearLayer(3, Weights=NetSharedArray("W"))``, or a ``NetReplacePart`` value); the layer
records it in ``_shared_arrays`` (array name -> ``NetSharedArray``). Every use holds the
shared value itself, so that any part of a net (an extracted node, a saved sub-net) is a
complete net; the invariant, established by inference of each whole net
(:func:`unify_values`, called by ``Net._infer``), is that all uses of one name in a net hold
the same value object:

* shapes — the uses' dims are tied by inference (:func:`constrain_use`): a size known for
  one use becomes known for all, once the layers' own rules have concluded what they can;
  uses of different rank, or with different known sizes, are a ``ShapeError`` naming both
  uses and both shapes;
* values — nets put together whose uses of one name hold different values are a
  ``NetError``; a use without a value (uninitialized) takes the value of the others;
* computing — every use's array is the one run-time array keyed ``NetSharedArray(name)``
  (:func:`array_key`), so the executor sums the gradients of all uses into one gradient,
  NetTrain updates it once per step, and ``NetArrayGradient`` of it (or of a use's path) is
  that sum.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np

from .arrays import validated_array
from .errors import NetError, PortError, ShapeError, where
from .ports import NetSharedArray

__all__ = ["NetSharedArray", "shared_of", "array_key", "uses", "constrain_use",
           "unify_values", "set_value", "with_values", "describe_use", "extract", "replace",
           "make_use", "resolve"]


def shared_of(net: Any) -> dict[str, NetSharedArray]:
    """Array name -> ``NetSharedArray`` of the shared arrays ``net`` itself holds."""
    return getattr(net, "_shared_arrays", None) or {}


def array_key(net: Any, path: tuple, name: str) -> Any:
    """The run-time key of array ``name`` of the layer ``net`` at ``path``: its
    ``NetSharedArray`` when shared, else its full path ``path + (name,)``."""
    return shared_of(net).get(name) or path + (name,)


def _walk(net: Any, path: tuple = ()) -> Iterator[tuple[tuple, Any]]:
    yield path, net
    for name, child in net.children().items():
        yield from _walk(child, path + (name,))


def uses(net: Any) -> dict[NetSharedArray, list[tuple[tuple, Any, str]]]:
    """Every shared array of ``net`` -> its uses ``(layer path, layer, array name)``, in the
    order of a walk of the tree (the first use is the one initialized)."""
    found: dict[NetSharedArray, list[tuple[tuple, Any, str]]] = {}
    for path, sub in _walk(net):
        for name, key in shared_of(sub).items():
            found.setdefault(key, []).append((path, sub, name))
    return found


def describe_use(path: tuple, layer: Any, name: str) -> str:
    return f"array {name!r} of {type(layer).__name__} at {where(path)}"


# --------------------------------------------------------------------- inference
def constrain_use(S: Any, key: NetSharedArray, path: tuple, layer: Any, name: str,
                  dims: tuple[int, ...]) -> None:
    """Register a use of ``key`` whose shape is ``dims`` (solver dim ids) with solver ``S``:
    tie it to the first use seen. Sizes flow between the uses as a default rule (run when
    the layers' own rules have concluded what they can), so a clash is found by the final
    check below and names both uses, not by the rule of whichever layer ran first."""
    first = S.shared.get(key)
    here = (describe_use(path, layer, name), dims)
    if first is None:
        S.shared[key] = here
        return
    (there, fdims) = first

    def clash(extra: str) -> ShapeError:
        return ShapeError(f"{key!r} is used as {there} of shape {S.show_dims(fdims)!r} and as "
                          f"{here[0]} of shape {S.show_dims(dims)!r}: one array has one shape"
                          f"{extra}")

    if len(fdims) != len(dims):
        raise clash(f" (rank {len(fdims)} versus rank {len(dims)})")

    def share_sizes() -> None:
        for a, b in zip(fdims, dims):
            sa, sb = S.size(a), S.size(b)
            if sa is not None and sb is None:
                S.set_size(b, sa, f"{key!r}, whose {there} has shape {S.show_dims(fdims)!r}")
            elif sb is not None and sa is None:
                S.set_size(a, sb, f"{key!r}, whose {here[0]} has shape {S.show_dims(dims)!r}")

    def check() -> None:
        if any(S.size(a) is not None and S.size(b) is not None and S.size(a) != S.size(b)
               for a, b in zip(fdims, dims)):
            raise clash("")

    S.defaults.append(share_sizes)
    S.checks.append(check)


# ------------------------------------------------------------------------ values
def _same(a: np.ndarray, b: np.ndarray) -> bool:
    return a is b or (a.shape == b.shape and a.tobytes() == b.tobytes())


def unify_values(net: Any) -> Any:
    """``net`` with every use of each shared array holding one value object.

    Raises
    ------
    NetError
        If two uses of one name hold different values (nets put together whose
        ``NetSharedArray(name)`` differ); the message names both uses.
    """
    for key, found in uses(net).items():
        given = [(p, layer, n, layer._arrays()[n]) for p, layer, n in found
                 if layer._arrays()[n] is not None]
        if not given:
            continue
        p0, l0, n0, value = given[0]
        for p, layer, n, other in given[1:]:
            if not _same(value, other):
                raise NetError(
                    f"{key!r} holds different values in the nets put together: "
                    f"{describe_use(p0, l0, n0)} (shape {value.shape}) and "
                    f"{describe_use(p, layer, n)} (shape {other.shape}); a shared array has "
                    f"one value: set it with NetReplacePart(net, {{{key!r}: value}}), or "
                    "name the arrays differently")
        if any(layer._arrays()[n] is not value for _, layer, n in found):
            net = set_value(net, key, value)
    return net


def set_value(net: Any, key: NetSharedArray, value: np.ndarray | None) -> Any:
    """``net`` with every use of ``key`` holding ``value`` (a checked, read-only float32
    array, or None); the tree is rebuilt only along the paths to the uses."""
    mine = {n: value for n, k in shared_of(net).items() if k == key}
    kids = {name: set_value(child, key, value) for name, child in net.children().items()}
    changed = {name: c for name, c in kids.items() if c is not net.children()[name]}
    new = net
    if mine and any(net._arrays()[n] is not value for n in mine):
        new = new.derive(_array_values={**net._arrays(), **mine})
    if changed:
        new = new.with_children(changed)
    return new


def with_values(net: Any, values: dict[NetSharedArray, np.ndarray]) -> Any:
    """``net`` with the shared arrays in ``values`` set (each to every use)."""
    for key, value in values.items():
        net = set_value(net, key, value)
    return net


# ----------------------------------------------------------------------- surgery
def _first_use(net: Any, key: NetSharedArray, what: str) -> tuple[tuple, Any, str]:
    found = uses(net).get(key)
    if not found:
        known = sorted(k.name for k in uses(net))
        raise PortError(f"{what}: {key!r} is not used in the net (its shared arrays are "
                        f"{known})")
    return found[0]


def extract(net: Any, key: NetSharedArray) -> np.ndarray | None:
    """``NetExtract(net, NetSharedArray(name))``: a float32 copy of the value (None while
    uninitialized)."""
    _, layer, name = _first_use(net, key, "NetExtract")
    value = layer._arrays()[name]
    return None if value is None else np.array(value, dtype=np.float32)


def replace(net: Any, key: NetSharedArray, value: Any) -> Any:
    """``NetReplacePart(net, {NetSharedArray(name): value})``: every use holds ``value``
    (checked like any array value; None uninitializes it). Shapes are checked by the
    inference that follows."""
    path, layer, name = _first_use(net, key, "NetReplacePart")
    if value is None:
        return set_value(net, key, None)
    arr = validated_array(value, f"{key!r}")
    old = layer._arrays()[name]
    if old is not None and old.shape != arr.shape:
        raise ShapeError(f"{key!r} has shape {old.shape} (the {describe_use(path, layer, name)}"
                         f"); the replacement has shape {arr.shape}")
    return set_value(net, key, arr)


def make_use(layer: Any, name: str, key: NetSharedArray, net: Any) -> Any:
    """``layer`` with its array ``name`` made a use of ``key`` (a ``NetReplacePart`` value
    ``NetSharedArray(name)``): it takes the value ``key`` already has in ``net``, if any,
    else keeps its own."""
    found = uses(net).get(key)
    value = found[0][1]._arrays()[found[0][2]] if found else layer._arrays()[name]
    return layer.derive(_array_values={**layer._arrays(), name: value},
                        _shared_arrays={**shared_of(layer), name: key})


# ------------------------------------------------------------ naming run-time arrays
def resolve(net: Any, path: tuple) -> Any:
    """The run-time key (see :func:`array_key`) of the array that ``path`` names in ``net``:
    ``(NetSharedArray(name),)``, or a node path (names, not positions) plus an array name;
    a path that names no array comes back as it is, for the caller to report."""
    if len(path) == 1 and isinstance(path[0], NetSharedArray):
        return path[0]
    sub = net
    for part in path[:-1]:
        kids = sub.children()
        if part not in kids:
            return path
        sub = kids[part]
    return array_key(sub, path[:-1], path[-1]) if path else path
