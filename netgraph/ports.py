"""Port references: immutable, hashable values compared by value (usable as dict keys)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from .errors import NetError

__all__ = ["NetPort", "NetPortGradient", "NetArrayGradient", "NetSharedArray"]


def _as_path(x: Any, what: str) -> tuple:
    """``x`` (a name, an int or a list/tuple of them) as a path tuple of str and int parts."""
    path = tuple(x) if isinstance(x, (list, tuple)) else (x,)
    out = []
    for part in path:
        if isinstance(part, np.integer) and not isinstance(part, np.bool_):
            part = int(part)
        if isinstance(part, bool) or not isinstance(part, (str, int)):
            raise NetError(f"{what}: a path part must be a name (str) or a position (int), got "
                           f"{part!r} in {x!r}")
        out.append(part)
    return tuple(out)


class NetPort:
    """``NetPort("x")`` names a port of the net itself; ``NetPort(layer, "Port")`` a port of the
    node ``layer`` (a name, an int, or a path tuple into nested nets)."""

    __slots__ = ("layer", "port")

    def __init__(self, *args: Any):
        if len(args) == 1:
            layer, port = None, args[0]
        elif len(args) == 2:
            layer, port = args
        else:
            raise NetError(f"NetPort takes a port name or (layer, port), got {len(args)} arguments")
        if not isinstance(port, str):
            raise NetError(f"NetPort: port name must be a string, got {port!r}")
        object.__setattr__(self, "layer", None if layer is None else _as_path(layer, "NetPort"))
        object.__setattr__(self, "port", port)

    def __setattr__(self, k, v):
        raise AttributeError("NetPort is immutable")

    def _key(self):
        return (self.layer, self.port)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, NetPort) and self._key() == other._key()

    def __hash__(self) -> int:
        return hash(("NetPort",) + self._key())

    def __reduce__(self):  # copy, deepcopy and pickle (__setattr__ blocks the default way)
        return (NetPort, (self.port,) if self.layer is None else (self.layer, self.port))

    def __repr__(self) -> str:
        if self.layer is None:
            return f"NetPort({self.port!r})"
        layer = self.layer[0] if len(self.layer) == 1 else self.layer
        return f"NetPort({layer!r}, {self.port!r})"


@dataclass(frozen=True)
class NetPortGradient:
    """The gradient with respect to an input port (or, as a data key, an output's seed)."""

    port: str

    def __post_init__(self):
        if not isinstance(self.port, str):
            raise NetError(f"NetPortGradient takes a port name, got {self.port!r}")


@dataclass(frozen=True)
class NetSharedArray:
    """``NetSharedArray(name)``: one array shared by every layer that takes it in place of an
    array (``LinearLayer(3, Weights=NetSharedArray("W"))``), at any depth of a net; see
    :mod:`netgraph.shared`. Also a key of ``NetExtract``, ``NetReplacePart`` and
    ``NetArrayGradient``."""

    name: str

    def __post_init__(self):
        if not isinstance(self.name, str) or not self.name:
            raise NetError(f"NetSharedArray takes a non-empty name (str), got {self.name!r}")

    def __repr__(self) -> str:
        return f"NetSharedArray({self.name!r})"


class NetArrayGradient:
    """The gradient with respect to an array, e.g. ``NetArrayGradient(["Linear", "Weights"])``,
    or a shared array, ``NetArrayGradient(NetSharedArray("W"))``."""

    __slots__ = ("path",)

    def __init__(self, path: Any):
        if isinstance(path, (list, tuple)) and len(path) == 1 and isinstance(path[0],
                                                                            NetSharedArray):
            path = path[0]
        path = (path,) if isinstance(path, NetSharedArray) else _as_path(path, "NetArrayGradient")
        if not path:
            raise NetError("NetArrayGradient needs a path to an array, e.g. ['Linear', 'Weights']")
        object.__setattr__(self, "path", path)

    def __setattr__(self, k, v):
        raise AttributeError("NetArrayGradient is immutable")

    @property
    def key(self) -> Any:
        """The run-time key of the array: its ``NetSharedArray``, or its path."""
        return self.path[0] if isinstance(self.path[0], NetSharedArray) else self.path

    def __eq__(self, other: object) -> bool:
        return isinstance(other, NetArrayGradient) and self.path == other.path

    def __hash__(self) -> int:
        return hash(("NetArrayGradient", self.path))

    def __reduce__(self):  # copy, deepcopy and pickle (__setattr__ blocks the default way)
        return (NetArrayGradient, (self.path,))

    def __repr__(self) -> str:
        if isinstance(self.path[0], NetSharedArray):
            return f"NetArrayGradient({self.path[0]!r})"
        return f"NetArrayGradient({list(self.path)!r})"
