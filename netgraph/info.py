"""Inspecting a net without data: ``net.summary()``, ``NetInformation`` and ``net.plot()``.

Everything here works on uninitialized nets and on nets whose shapes are only partly known:
port shapes are the inferred ones (canonical user form, ``Automatic`` where unknown) and the
shape of an uninitialized array is read off shape inference (``?`` / ``Automatic`` for a
dimension nobody has fixed yet).

What counts as a *layer* (``"LayersCount"``, ``"LayerTypeCounts"``, the summary's totals):
every primitive :class:`~netgraph.layer.Layer` in the tree, at every nesting level. A layer
holding sub-nets (``AttentionLayer``/``SequenceAttentionLayer`` with its ``ScoringNet``,
``NetMapOperator`` with its ``Net``) counts once itself, and the layers inside its sub-nets
count too. ``NetGraph``/``NetChain`` containers are not layers and are never counted.
"""

from __future__ import annotations

import math
from collections import Counter
from typing import Any

import numpy as np

from .errors import NetError
from .labels import port_spec, require_net, show_path, type_label
from .layer import Layer
from .net import Net
from .plotting import plot
from .shapes import Automatic
from .shared import array_key, shared_of
from .tree import walk

__all__ = ["summary", "NetInformation", "array_shapes", "port_rows", "layer_paths"]


# ------------------------------------------------------------------ facts about a net
def array_shapes(net: Net, *, by_key: bool = False) -> dict[Any, tuple[int | None, ...] | None]:
    """Every array of ``net`` by full path -> its shape: the actual shape when initialized,
    else the inferred one with ``None`` for an unknown dimension (``None`` for the whole
    shape when even the rank is unknown). With ``by_key``, by run-time key instead: a
    shared array once, under its ``NetSharedArray``."""
    solved = net._solution().arrays
    out: dict[tuple, tuple[int | None, ...] | None] = {}
    for path, sub in walk(net):
        for name, value in sub._arrays().items():
            key = array_key(sub, path, name) if by_key else path + (name,)
            if value is not None:
                out[key] = tuple(int(n) for n in value.shape)
            else:
                out[key] = solved.get((path, name))
    return out


def _elements(shape: tuple[int | None, ...] | None) -> int | None:
    if shape is None or any(n is None for n in shape):
        return None
    return math.prod(shape)  # type: ignore[arg-type]


def port_rows(net: Net) -> list[tuple[str, str, Any]]:
    """``(kind, port, shape)`` for every port of ``net``; kind is ``"in"``, ``"out"`` or
    ``"hidden"`` (an interior value such as ``AttentionWeights``, never a graph port)."""
    rows = [("in", p, port_spec(net, p, False)) for p in net.input_ports]
    rows += [("out", p, port_spec(net, p, True)) for p in net.output_ports]
    if isinstance(net, Layer):
        rows += [("hidden", p, port_spec(net, p, True)) for p in net.hidden_outputs]
    return rows


def layer_paths(net: Net) -> dict[tuple, Layer]:
    """Every primitive layer in the tree (see the module docstring) by path."""
    return {path: sub for path, sub in walk(net) if isinstance(sub, Layer)}


def show_shape(shape: tuple[int | None, ...] | None) -> str:
    """An array shape with ``?`` for unknown dimensions: ``(?, 3)``."""
    if shape is None:
        return "?"
    inner = ", ".join("?" if n is None else str(n) for n in shape)
    return f"({inner},)" if len(shape) == 1 else f"({inner})"


# ------------------------------------------------------------------------ summary
def _plural(n: int, word: str) -> str:
    return f"{n:,} {word}" + ("" if n == 1 else "s")


def _state(n_arrays: int, n_set: int) -> str:
    if n_arrays == 0:
        return "no arrays"
    if n_set == n_arrays:
        return "initialized"
    return "uninitialized" if n_set == 0 else f"partially initialized ({n_set} of {n_arrays})"


def _table(rows: list[tuple[str, ...]], header: tuple[str, ...]) -> list[str]:
    widths = [max(len(r[i]) for r in rows + [header]) for i in range(len(header))]
    rule = tuple("-" * w for w in widths)

    def line(r: tuple[str, ...]) -> str:
        return "  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip()

    return [line(header), line(rule)] + [line(r) for r in rows]


def summary(net: Net) -> str:
    """A fixed-width table of every node (nested ones by path such as
    ``attend/ScoringNet/Linear``), its type, every port with its inferred shape (and its
    encoder or decoder, kind and size, on a row of its own), every array
    with its shape, element count and state, and totals. Needs no data and no arrays."""
    require_net(net, "summary")
    shapes = array_shapes(net)
    rows: list[tuple[str, ...]] = []
    for path, sub in walk(net):
        cells = []
        encoders, decoders = sub.port_coders()
        for k, p, s in port_rows(sub):
            cells.append((k, p, repr(s), "", ""))
            coder = {"in": encoders, "out": decoders}.get(k, {}).get(p)
            if coder is not None:
                cells.append((coder.role, p, coder.describe(), "", ""))
        uses = shared_of(sub)
        for name, value in sub._arrays().items():
            shape = shapes[path + (name,)]
            n = _elements(shape)
            label = f"{name} = {uses[name]!r}" if name in uses else name
            cells.append(("array", label, show_shape(shape), "?" if n is None else str(n),
                          "no" if value is None else "yes"))
        first = True
        for cell in cells or [("", "", "", "", "")]:
            node = (show_path(path), type_label(sub)) if first else ("", "")
            rows.append(node + cell)
            first = False
    layers = layer_paths(net)
    counts = Counter(type(x).__name__ for x in layers.values())
    unique = array_shapes(net, by_key=True)  # a shared array counts once
    sizes = [_elements(s) for s in unique.values()]
    known = sum(n for n in sizes if n is not None)
    unknown = sum(n is None for n in sizes)
    n_set = len({array_key(sub, p, n) for p, sub in walk(net)
                 for n, v in sub._arrays().items() if v is not None})
    elements = _plural(known, "array element") + ("" if not unknown else
                                                  f" + {_plural(unknown, 'array')} of unknown size")
    kids = len(net.children()) if not isinstance(net, Layer) else 0
    head = (f"{type(net).__name__}: " + (f"{_plural(kids, 'node')}, " if kids else "")
            + f"{_plural(len(layers), 'layer')}, {_plural(len(unique), 'array')}, {elements}, "
            + _state(len(unique), n_set))
    types = ", ".join(f"{k} {v}" for k, v in sorted(counts.items(), key=lambda kv: (-kv[1],
                                                                                  kv[0])))
    table = _table(rows, ("Node", "Type", "Kind", "Port / array", "Shape", "Elements",
                          "Init"))
    return "\n".join([head, ""] + table + ["", f"Layer types: {types or 'none'}"])


# ----------------------------------------------------------------- NetInformation
def _arrays_dimensions(net: Net) -> dict[tuple, Any]:
    return {p: Automatic if s is None else tuple(Automatic if n is None else n for n in s)
            for p, s in array_shapes(net).items()}


def _total_elements(net: Net) -> Any:
    sizes = [_elements(s) for s in array_shapes(net, by_key=True).values()]
    return Automatic if any(n is None for n in sizes) else int(sum(sizes))  # type: ignore


def _arrays(net: Net) -> dict[tuple, np.ndarray | None]:
    return {p + (n,): None if a is None else np.array(a, dtype=np.float32)
            for p, sub in walk(net) for n, a in sub._arrays().items()}


_PROPERTIES: dict[str, Any] = {
    "LayersCount": lambda net: len(layer_paths(net)),
    "Layers": lambda net: {p: x._pinned() for p, x in layer_paths(net).items()},
    "LayerTypeCounts": lambda net: dict(Counter(type(x).__name__
                                                for x in layer_paths(net).values())),
    "ArraysCount": lambda net: len(array_shapes(net, by_key=True)),
    "Arrays": _arrays,
    "ArraysDimensions": _arrays_dimensions,
    "ArraysTotalElementCount": _total_elements,
    "InputPorts": lambda net: {p: net.port_coders()[0].get(p, port_spec(net, p, False))
                               for p in net.input_ports},
    "OutputPorts": lambda net: {p: net.port_coders()[1].get(p, port_spec(net, p, True))
                                for p in net.output_ports},
    "Summary": summary,
    "SummaryGraphic": lambda net: plot(net),
}


def NetInformation(net: Net, prop: str = "Properties") -> Any:
    """A property of ``net``; ``NetInformation(net, "Properties")`` lists them.

    * ``"LayersCount"`` — number of primitive layers at every nesting level (module docstring)
    * ``"Layers"`` — dict path -> layer (pinned to its inferred port shapes)
    * ``"LayerTypeCounts"`` — dict layer type name -> count
    * ``"ArraysCount"`` — number of arrays, initialized or not (a shared array once)
    * ``"Arrays"`` — dict path -> float32 copy of the array (``None`` if uninitialized)
    * ``"ArraysDimensions"`` — dict path -> shape (``Automatic`` for an unknown dimension)
    * ``"ArraysTotalElementCount"`` — total number of array elements, a shared array counted
      once (``Automatic`` while a shape is unknown)
    * ``"InputPorts"`` / ``"OutputPorts"`` — dict port name -> shape (canonical form), or the
      port's ``NetEncoder``/``NetDecoder`` where it has one
    * ``"Summary"`` — ``net.summary()``; ``"SummaryGraphic"`` — ``net.plot()``

    Paths are tuples usable with ``NetExtract``, e.g. ``("attend", "ScoringNet", "Linear",
    "Weights")``.

    Raises
    ------
    NetError
        If ``prop`` is not a known property (the message lists them).
    """
    require_net(net, "NetInformation")
    if prop == "Properties":
        return sorted(_PROPERTIES)
    if not isinstance(prop, str) or prop not in _PROPERTIES:
        raise NetError(f"NetInformation: unknown property {prop!r}; known properties are "
                       f"{sorted(_PROPERTIES)}")
    return _PROPERTIES[prop](net)
