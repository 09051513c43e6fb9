"""Union-find over symbolic dimensions and port types: the engine behind shape inference.

* A *dim* is an integer id. Its root carries a known size (or ``None``), whether it is a
  varying length, and where its size came from (for error messages).
* A *type* is an integer id. Its root is either unbound (even the rank is unknown) or bound to a
  tuple of dims plus an element type (``None``, ``"Real"``, ``"Integer"`` or ``Index(n)``).

Unifying two types unifies their dims pairwise, so a size known anywhere is known everywhere
it is tied to; that is what makes inference bidirectional. Layers add *rules*, functions run
to a fixed point, for relations unification cannot express (products, sums, offsets).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from .errors import ShapeError
from .shapes import Automatic, Index, ParsedSpec, display

__all__ = ["Solver", "Conflict"]


class Conflict(Exception):
    """Internal: two values could not be unified. Turned into a ``ShapeError`` by the caller."""


def _merge_elem(a: Any, b: Any) -> Any:
    if a is None or a == b:
        return b
    if b is None:
        return a
    if a == "Integer" and isinstance(b, Index):
        return b
    if b == "Integer" and isinstance(a, Index):
        return a
    raise Conflict(f"element types {a!r} and {b!r} differ")


def _find(parent: list[int], x: int) -> int:
    """Union-find root of ``x``, compressing the path on the way."""
    root = x
    while parent[root] != root:
        root = parent[root]
    while parent[x] != root:
        parent[x], x = root, parent[x]
    return root


class Solver:
    """Symbolic shapes for every port of a net, solved by unification plus fixed-point rules."""

    def __init__(self) -> None:
        self._dparent: list[int] = []
        self._dvalue: list[int | None] = []
        self._dvarying: list[bool] = []
        self._dorigin: list[str] = []
        self._tparent: list[int] = []
        self._tdims: list[tuple[int, ...] | None] = []
        self._telem: list[Any] = []
        self._torigin: list[str] = []
        self.ports: dict[tuple[tuple, str], int] = {}
        self.rules: list[Callable[[], None]] = []
        self.arrays: dict[tuple[tuple, str], tuple[int, ...]] = {}
        self.defaults: list[Callable[[], None]] = []
        #: run once the solution is final (checks that must not see intermediate states)
        self.checks: list[Callable[[], None]] = []
        #: (node path, letter) -> dim of the letters of a layer's signature
        self.size_vars: dict[tuple[tuple, str], int] = {}
        self.version = 0

    # ----------------------------------------------------------------- dims
    def new_dim(self, value: int | None = None, varying: bool = False, origin: str = "") -> int:
        self._dparent.append(len(self._dparent))
        self._dvalue.append(value)
        self._dvarying.append(varying)
        self._dorigin.append(origin)
        return len(self._dparent) - 1

    def find_dim(self, d: int) -> int:
        return _find(self._dparent, d)

    def size(self, d: int) -> int | None:
        """The known size of dim ``d``, or ``None``."""
        return self._dvalue[self.find_dim(d)]

    def is_varying(self, d: int) -> bool:
        r = self.find_dim(d)
        return self._dvalue[r] is None and self._dvarying[r]

    def set_size(self, d: int, value: int, origin: str = "") -> None:
        """Bind dim ``d`` to ``value``; raises ``Conflict`` if it already holds another size."""
        r = self.find_dim(d)
        old = self._dvalue[r]
        if old is None:
            self._dvalue[r] = int(value)
            self._dorigin[r] = origin or self._dorigin[r]
            self.version += 1
        elif old != value:
            raise Conflict(f"size {old} (from {self._dorigin[r] or 'inference'}) versus "
                           f"size {value} (from {origin or 'inference'})")

    def unify_dims(self, a: int, b: int) -> None:
        ra, rb = self.find_dim(a), self.find_dim(b)
        if ra == rb:
            return
        va, vb = self._dvalue[ra], self._dvalue[rb]
        if va is not None and vb is not None and va != vb:
            raise Conflict(f"size {va} (from {self._dorigin[ra] or 'inference'}) versus "
                           f"size {vb} (from {self._dorigin[rb] or 'inference'})")
        self._dparent[rb] = ra
        if va is None and vb is not None:
            self._dvalue[ra] = vb
            self._dorigin[ra] = self._dorigin[rb]
        elif not self._dorigin[ra]:
            self._dorigin[ra] = self._dorigin[rb]
        self._dvarying[ra] = self._dvarying[ra] or self._dvarying[rb]
        self.version += 1

    def size_var(self, path: tuple, letter: str) -> int:
        """The dim of ``letter`` in the signature of the layer at ``path``."""
        return self.size_vars[(path, letter)]

    # ---------------------------------------------------------------- types
    def new_type(self, dims: tuple[int, ...] | None = None, elem: Any = None,
                 origin: str = "") -> int:
        self._tparent.append(len(self._tparent))
        self._tdims.append(None if dims is None else tuple(dims))
        self._telem.append(elem)
        self._torigin.append(origin)
        return len(self._tparent) - 1

    def find_type(self, t: int) -> int:
        return _find(self._tparent, t)

    def dims(self, t: int) -> tuple[int, ...] | None:
        """The dims of type ``t`` (dim ids), or ``None`` while its rank is unknown."""
        return self._tdims[self.find_type(t)]

    def elem(self, t: int) -> Any:
        return self._telem[self.find_type(t)]

    def type_origin(self, t: int) -> str:
        """Where type ``t``'s structure came from, as ``", from ..."`` (or ``""``)."""
        origin = self._torigin[self.find_type(t)]
        return f" (from {origin})" if origin else ""

    def rank(self, t: int) -> int | None:
        d = self.dims(t)
        return None if d is None else len(d)

    def _unify_roots(self, ra: int, rb: int) -> None:
        if ra == rb:
            return
        da, db = self._tdims[ra], self._tdims[rb]
        if da is not None and db is not None and len(da) != len(db):
            raise Conflict(f"rank {len(da)} versus rank {len(db)}")
        elem = _merge_elem(self._telem[ra], self._telem[rb])
        self._tparent[rb] = ra
        self._telem[ra] = elem
        if not self._torigin[ra]:
            self._torigin[ra] = self._torigin[rb]
        self.version += 1
        if da is None:
            self._tdims[ra] = db
        elif db is not None:
            for x, y in zip(da, db):
                self.unify_dims(x, y)

    def bind(self, t: int, dims: tuple[int, ...], elem: Any = None, origin: str = "") -> None:
        """Give type ``t`` the structure ``dims``/``elem`` (unifying if it already has one).
        Raises ``Conflict``; counts as a change only when something new is learned."""
        r = self.find_type(t)
        old = self._tdims[r]
        if old is None:
            self._tdims[r] = tuple(dims)
            self._torigin[r] = self._torigin[r] or origin
            self.version += 1
        elif len(old) != len(dims):
            raise Conflict(f"rank {len(old)} versus rank {len(dims)}")
        else:
            for x, y in zip(old, dims):
                self.unify_dims(x, y)
        if elem is not None:
            self.set_elem(r, elem)

    def set_elem(self, t: int, elem: Any) -> None:
        r = self.find_type(t)
        try:
            new = _merge_elem(self._telem[r], elem)
        except Conflict as c:
            raise Conflict(str(c)) from None
        if new != self._telem[r]:
            self._telem[r] = new
            self.version += 1

    def from_spec(self, parsed: ParsedSpec, origin: str) -> int:
        """A fresh type holding a parsed user spec; each "Varying" gets its own length dim."""
        if parsed.dims is None:
            return self.new_type(origin=origin)
        dims = tuple(self.new_dim(d.value, d.varying, origin) for d in parsed.dims)
        return self.new_type(dims, parsed.elem, origin)

    # ---------------------------------------------------------------- ports
    def port(self, path: tuple, name: str) -> int:
        """The type of ``name`` at node ``path``, created unbound on first use."""
        key = (path, name)
        t = self.ports.get(key)
        if t is None:
            t = self.ports[key] = self.new_type()
        return t

    def show(self, t: int) -> Any:
        """Canonical user display of type ``t``."""
        return self.show_dims(self.dims(t), self.elem(t))

    def show_dims(self, dims: tuple[int, ...] | None, elem: Any = None) -> Any:
        """Canonical user display of the structure ``dims`` (dim ids) / ``elem``."""
        if dims is None:
            return Automatic
        shown = []
        for x in dims:
            v = self.size(x)
            shown.append(v if v is not None else ("Varying" if self.is_varying(x) else Automatic))
        return display(tuple(shown), elem)

    def unify(self, a: int, b: int, place_a: str, place_b: str) -> None:
        """Unify two port types; on failure raise ``ShapeError`` naming both places."""
        before_a, before_b = self.show(a), self.show(b)
        origin_a = self._torigin[self.find_type(a)]
        origin_b = self._torigin[self.find_type(b)]
        try:
            self._unify_roots(self.find_type(a), self.find_type(b))
        except Conflict as c:
            fa = f", from {origin_a}" if origin_a and origin_a != origin_b else ""
            fb = f", from {origin_b}" if origin_b and origin_b != origin_a else ""
            raise ShapeError(f"inferred inconsistent shapes for {place_a} ({before_a!r}{fa}) "
                             f"versus {place_b} ({before_b!r}{fb}): {c}") from None

    def constrain(self, t: int, dims: tuple[int, ...], elem: Any, place: str,
                  what: str) -> None:
        """Unify port type ``t`` with a structure a layer demands; ``what`` describes it."""
        before, required = self.show(t), self.show_dims(dims, elem)
        try:
            self.bind(t, dims, elem)
        except Conflict as c:
            origin = self._torigin[self.find_type(t)] or "inference"
            raise ShapeError(f"{place} has shape {before!r} (from {origin}) but {what}, "
                             f"which needs {required!r}: {c}") from None

    def relate(self, whole: int, inner: int, prefix: tuple[int, ...] = (),
               suffix: tuple[int, ...] = (), same_elem: bool = True,
               places: tuple[str, str] = ("", ""), what: str = "",
               inner_may_vary: bool = False) -> None:
        """Rule: ``whole`` has dims ``prefix + dims(inner) + suffix`` (and, with ``same_elem``,
        the same element type). Knowledge flows both ways. With a ``prefix``, ``inner`` may not
        have a varying dimension (only the first dimension of a shape may vary), unless
        ``inner_may_vary``: a layer that only moves elements along the first axis (sequence
        layers) also takes values with two varying axes, such as attention weights."""
        k = len(prefix) + len(suffix)

        def check() -> None:
            idims = self.dims(inner)
            if idims is not None and any(self.is_varying(d) for d in idims):
                raise ShapeError(f"{places[1]} has shape {self.show(inner)!r}, but {what}, which "
                                 f"makes {places[0]} {self.show(whole)!r}: only the first "
                                 "dimension of a shape may be 'Varying' (a sequence of sequences "
                                 "is not supported)")

        if prefix and not inner_may_vary:
            self.checks.append(check)

        def rule() -> None:
            wd, idims = self.dims(whole), self.dims(inner)
            if idims is not None:
                self.constrain(whole, tuple(prefix) + idims + tuple(suffix),
                               self.elem(inner) if same_elem else None, places[0], what)
            if wd is not None:
                if len(wd) < k:
                    raise ShapeError(f"{places[0]} has shape {self.show(whole)!r} but {what}")
                self.constrain(inner, wd[len(prefix):len(wd) - len(suffix)],
                               self.elem(whole) if same_elem else None, places[1], what)
                for a, b in zip(tuple(prefix) + tuple(suffix),
                                wd[:len(prefix)] + wd[len(wd) - len(suffix):]):
                    try:
                        self.unify_dims(a, b)
                    except Conflict as c:
                        raise ShapeError(f"{places[0]} has shape {self.show(whole)!r} and "
                                         f"{places[1]} has shape {self.show(inner)!r}, but "
                                         f"{what}: {c}") from None

        self.rules.append(rule)

    def flatten(self, t: int, size: int, place: str, of: str, needs: str) -> None:
        """Rule: dim ``size`` is the number of elements of type ``t`` (at ``place``), which
        must have fixed sizes (else ``ShapeError`` saying ``needs``); a vector when nothing
        else gives its rank. ``of`` names what ``size`` belongs to, e.g. "the weights of
        LinearLayer(3) at node 'lin'"."""

        def rule() -> None:
            dims = self.dims(t)
            if dims is None:
                return
            if any(self.is_varying(d) for d in dims):
                raise ShapeError(f"{place} has shape {self.show(t)!r}, but {needs}")
            if len(dims) == 1:
                self.equal_sizes(dims[0], size, place, f"the input size of {of}")
                return
            sizes = [self.size(d) for d in dims]
            if None not in sizes:
                try:
                    self.set_size(size, math.prod(sizes), f"the shape of {place}")
                except Conflict as c:
                    raise ShapeError(f"{place} has shape {self.show(t)!r}, inconsistent with "
                                     f"{of}: {c}") from None

        def default() -> None:
            if self.dims(t) is None:
                self.constrain(t, (size,), None, place, f"{of} takes a vector")

        self.rules.append(rule)
        self.defaults.append(default)

    def equal_sizes(self, a: int, b: int, place_a: str, place_b: str) -> None:
        """Tie two dims, raising ``ShapeError`` that names both places on a conflict."""
        try:
            self.unify_dims(a, b)
        except Conflict as c:
            raise ShapeError(f"inferred inconsistent sizes for {place_a} versus {place_b}: "
                             f"{c}") from None

    # ---------------------------------------------------------------- solve
    def solve(self) -> None:
        """Run the rules to a fixed point; then let default rules (e.g. "an input of unknown
        rank is a vector") fill what is still open, one at a time (the rules spread what one
        default decided before the next one guesses), until nothing changes."""
        while True:
            while True:
                v = self.version
                for rule in self.rules:
                    rule()
                if v == self.version:
                    break
            for default in self.defaults:
                default()
                if v != self.version:
                    break
            if v == self.version:
                for check in self.checks:
                    check()
                return

