"""NetExtract and NetReplacePart: one path-addressing scheme for every part of a net.

A path is a tuple of steps; a step is a node name, an int (position in construction order,
negative from the end), a sub-net name such as ``"ScoringNet"`` or ``"Net"``, and finally an
array name (``"Weights"``), a port name (``"Input"``) or a hyperparameter name.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from . import shared
from .allocation import memory_errors
from .arrays import validated_array
from .errors import NetError, PortError, ShapeError, where
from .layer import Layer
from .net import Net
from .ports import NetSharedArray
from .shapes import All, Automatic, parse_spec
from .tree import resolve_child, update_at

__all__ = ["NetExtract", "NetReplacePart"]


def _as_path(spec: Any) -> tuple:
    return tuple(spec) if isinstance(spec, (list, tuple)) else (spec,)


def _leaf(net: Net, step: Any, walked: tuple) -> Any:
    arrays = net._arrays()
    if step in arrays:
        a = arrays[step]
        return None if a is None else np.array(a, dtype=np.float32)
    if step in net.input_ports or step in net.output_ports:
        encoders, decoders = net.port_coders()
        if step in net.input_ports:
            return encoders.get(step, net.port_shape(step))
        return decoders.get(step, net._specs.get(net.output_key(step), Automatic))
    if isinstance(net, Layer) and isinstance(step, str) and step in type(net.params).model_fields:
        v = getattr(net.params, step)
        return Automatic if v is None else v
    parts = list(net.children()) + list(arrays) + list(net.input_ports) + list(net.output_ports)
    raise PortError(f"part {step!r} does not exist at {where(walked)}; available parts are {parts}")


def _extract_path(net: Net, path: tuple, walked: tuple = ()) -> Any:
    if not path:
        return net._pinned()
    step, rest = path[0], path[1:]
    if step is All:
        if rest:
            raise PortError(f"All can only be the last part of an extraction path; {where(walked)} "
                            f"has no part {rest[0]!r} below All")
        kids = net.children()
        if kids:
            return {k: c._pinned() for k, c in kids.items()}
        return {k: _leaf(net, k, walked) for k in net._arrays()}
    key = resolve_child(net, step, walked)
    if key is not None:
        return _extract_path(net.children()[key], rest, walked + (key,))
    value = _leaf(net, step, walked)
    if rest:
        raise PortError(f"part {step!r} at {where(walked)} is not a net, so it has no part "
                        f"{rest[0]!r}")
    return value


def NetExtract(net: Net, spec: Any) -> Any:
    """Extract a part of ``net``: a layer, an array (a float32 copy; None if uninitialized),
    a port shape, a path into nested nets, a list of paths, or ``All``."""
    if not isinstance(net, Net):
        raise NetError(f"NetExtract needs a net, got {type(net).__name__}")
    if isinstance(spec, NetSharedArray):
        return shared.extract(net, spec)
    if isinstance(spec, list) and spec and all(isinstance(s, (list, tuple)) for s in spec):
        return [_extract_path(net, _as_path(s)) for s in spec]
    return _extract_path(net, _as_path(spec))


def _shared_use(net: Net, head: tuple, name: Any) -> NetSharedArray | None:
    """The shared array that array ``name`` of the node at ``head`` uses, if any (None for
    a path that leads nowhere: the replacement reports that)."""
    for part in head:
        try:
            key = resolve_child(net, part)
        except NetError:
            return None
        if key is None:
            return None
        net = net.children()[key]
    return shared.shared_of(net).get(name) if isinstance(name, str) else None


def _replace_one(net: Net, path: tuple, value: Any) -> Net:
    if path and isinstance(path[-1], NetSharedArray) and len(path) == 1:
        return shared.replace(net, path[0], value)
    *head, last = path
    head = tuple(head)
    key = _shared_use(net, head, last)
    if key is not None and not isinstance(value, NetSharedArray):
        return shared.replace(net, key, value)  # through a use's path: every use

    def replace(sub: Net) -> Net:
        key = resolve_child(sub, last, head)
        if key is not None:
            if not isinstance(value, Net):
                raise NetError(f"{list(path)} is a sub-net; replace it with a net, not "
                               f"{type(value).__name__}")
            old = sub.children()[key]
            if (old.input_ports, old.output_ports) != (value.input_ports, value.output_ports):
                raise PortError(f"the replacement for {list(path)} has ports "
                                f"{list(value.input_ports)} -> {list(value.output_ports)}, but "
                                f"the part has {list(old.input_ports)} -> "
                                f"{list(old.output_ports)}")
            return sub.with_children({key: value})
        arrays = sub._arrays()
        if last in arrays and isinstance(value, NetSharedArray):
            return shared.make_use(sub, last, value, net)
        if last in arrays:
            return _replace_array(sub, head, last, value)
        if last in sub.input_ports or last in sub.output_ports:
            parse_spec(value)
            port_key = last if last in sub.input_ports else sub.output_key(last)
            return sub.derive(_user_specs={**sub._user_specs, port_key: value})
        raise PortError(f"NetReplacePart: part {last!r} does not exist at {where(head)}; arrays "
                        f"are {list(arrays)}, ports {list(sub.input_ports + sub.output_ports)}")

    return update_at(net, head, replace)


def _replace_array(layer: Net, head: tuple, name: str, value: Any) -> Net:
    old = layer._arrays()[name]
    if value is None:
        return layer.derive(_array_values={**layer._arrays(), name: None})
    arr = validated_array(value, f"array {name!r} at {where(head)}")
    if old is not None and old.shape != arr.shape:
        raise ShapeError(f"array {name!r} at {where(head)} has shape {old.shape}; the "
                         f"replacement has shape {arr.shape}")
    return layer._with_arrays({name: arr})


@memory_errors("NetReplacePart")
def NetReplacePart(net: Net, replacements: dict) -> Net:
    """A new net with arrays, port shapes or sub-nets replaced; inference runs again.

    Raises
    ------
    ShapeError
        If a replacement's dimensions do not fit the rest of the net.
    """
    if not isinstance(net, Net):
        raise NetError(f"NetReplacePart needs a net, got {type(net).__name__}")
    if not isinstance(replacements, dict):
        raise NetError("NetReplacePart takes a dict {path: value}")
    new = net
    for spec, value in replacements.items():
        new = _replace_one(new, _as_path(spec), value)
    return new._infer()
