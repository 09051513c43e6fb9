"""The result of shape inference, read by compile, initialize, info and summary.

A :class:`Solution` is what one solve of a net (``netgraph.solver.Solver``) concluded, frozen
and detached from the solver: per port (keyed ``(node path, port key)``) its dims and element
type, per array (``(layer path, array name)``) its shape. It is computed once per immutable
net and cached on it (``Net._solution()``); the solver itself, with its rules and their
closures over layers, is dropped once the solution is read off it.

A dim's ``root`` names the dimension: two ports whose dims have the same root have the same
size, or, for a varying dim, the same lengths at run time (the compiler's length keys).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .shapes import Automatic, display

__all__ = ["Dim", "PortType", "Solution"]


@dataclass(frozen=True)
class Dim:
    """One solved dimension: its size (None if unknown), whether it is a varying length, and
    its identity ``root``."""

    size: int | None
    varying: bool
    root: int


@dataclass(frozen=True)
class PortType:
    """The solved type of a port: its dims (None while even the rank is unknown) and element
    type (None, "Real", "Integer" or ``Index(n)``)."""

    dims: tuple[Dim, ...] | None
    elem: Any

    def show(self) -> Any:
        """The canonical user form, e.g. ``("Varying", 3)``; ``Automatic`` if rank unknown."""
        if self.dims is None:
            return Automatic
        return display(tuple(d.size if d.size is not None else
                             ("Varying" if d.varying else Automatic) for d in self.dims),
                       self.elem)


@dataclass(frozen=True)
class Solution:
    """Solved port types and array shapes of one net (paths relative to that net)."""

    ports: dict[tuple[tuple, str], PortType]
    arrays: dict[tuple[tuple, str], tuple[int | None, ...]]

    @classmethod
    def of(cls, S: Any) -> Solution:
        """Read the solution off a solved ``Solver``."""
        def port_type(t: int) -> PortType:
            dims = S.dims(t)
            if dims is not None:
                dims = tuple(Dim(S.size(d), S.is_varying(d), S.find_dim(d)) for d in dims)
            return PortType(dims, S.elem(t))

        return cls(ports={key: port_type(t) for key, t in S.ports.items()},
                   arrays={key: tuple(S.size(d) for d in dims)
                           for key, dims in S.arrays.items()})

    def port(self, path: tuple, key: str) -> PortType:
        """The type of port ``key`` at node ``path`` (unknown if inference never saw it)."""
        return self.ports.get((path, key), PortType(None, None))

    def below(self, path: tuple) -> Solution:
        """The part of the solution for the sub-net at ``path``, with paths relative to it.
        Dim roots are kept, so a dim shared with the enclosing net keeps its identity."""
        if not path:
            return self
        n = len(path)
        return Solution(
            ports={(p[n:], k): t for (p, k), t in self.ports.items() if p[:n] == path},
            arrays={(p[n:], k): s for (p, k), s in self.arrays.items() if p[:n] == path})
