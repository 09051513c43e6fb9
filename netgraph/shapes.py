"""User shape specs and their one canonical display form.

A *spec* is what a user writes for a port: ``3``, ``(4, 5)``, ``("Varying", 2)``, ``"Varying"``,
``"Real"``, ``"Integer"``, ``Index(n)``, ``Automatic``.  :func:`parse_spec` turns it into a
:class:`ParsedSpec` (a dims list plus an element type), and :func:`display` turns inference
results back into the canonical user form: a tuple for every array, ``"Real"``/``"Integer"``/
``Index(n)`` for scalars, ``Automatic`` for anything unknown.

An encoder or decoder (:mod:`netgraph.coders`) may stand wherever a spec may: it is a
:class:`PortCoder`, whose ``parsed_spec()`` is the port type it implies.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from .errors import NetError

__all__ = ["Automatic", "All", "Varying", "Index", "parse_spec", "display", "ParsedSpec", "Tail",
           "PortCoder"]


class _Constant:
    """A named singleton constant (``Automatic``, ``All``)."""

    __slots__ = ("_name",)

    def __init__(self, name: str):
        self._name = name

    def __repr__(self) -> str:
        return self._name

    def __reduce__(self):  # pragma: no cover - singletons survive copy/pickle
        return self._name


Automatic = _Constant("Automatic")
All = _Constant("All")
Varying = "Varying"


@dataclass(frozen=True)
class Index:
    """The element type "integer in ``0..n-1``" (Python's 0-based version of Wolfram's
    ``Restricted["Integer", n]``)."""

    n: int

    def __post_init__(self):
        n = _as_int(self.n)
        if n is None or n < 1:
            raise NetError(f"Index(n) needs a positive integer n, got {self.n!r}")
        object.__setattr__(self, "n", n)  # a NumPy integer becomes a plain int

    def __repr__(self) -> str:
        return f"Index({self.n})"


ELEM_NAMES = ("Real", "Integer")


@dataclass(frozen=True)
class Dim:
    """One parsed dimension: a known size, or unknown (``value is None``), possibly varying."""

    value: int | None = None
    varying: bool = False


@dataclass(frozen=True)
class Tail:
    """A type known only by its last dimension: rank one of ``ranks``, last dimension ``size``
    (a decoder's type: "a vector of n, or a sequence of them"). While nothing else fixes the
    rank it defaults to ``min(ranks)``, with varying leading dimensions. ``what`` describes
    the type for messages."""

    size: int
    ranks: tuple[int, ...]
    what: str


@dataclass(frozen=True)
class ParsedSpec:
    """A parsed port spec: ``dims`` (``None`` when even the rank is unknown) and element type;
    ``tail`` for a type known only by its last dimension (``dims`` is then ``None``)."""

    dims: tuple[Dim, ...] | None
    elem: Any = None  # None (unspecified, reals), "Real", "Integer" or Index(n)
    tail: Tail | None = None


class PortCoder:
    """Base of the values that may stand for a port's spec and also convert its data: the
    encoders and decoders of :mod:`netgraph.coders`. ``parsed_spec()`` is the port type."""

    __slots__ = ()

    #: "encoder" (on input ports) or "decoder" (on output ports)
    role = ""

    def parsed_spec(self) -> ParsedSpec:
        raise NotImplementedError


def is_automatic(x: Any) -> bool:
    return x is None or x is Automatic


def _is_elem(x: Any) -> bool:
    return isinstance(x, Index) or (isinstance(x, str) and x in ELEM_NAMES)


def _as_int(x: Any) -> int | None:
    """``x`` as a Python int when it is an integer (NumPy integers included, bools not)."""
    if isinstance(x, (bool, np.bool_)) or not isinstance(x, (int, np.integer)):
        return None
    return int(x)


def _size(x: Any, spec: Any) -> Dim:
    if is_automatic(x):
        return Dim()
    n = _as_int(x)
    if n is None or n < 1:
        raise NetError(f"invalid dimension {x!r} in shape spec {spec!r}: "
                       "expected a positive int or Automatic")
    return Dim(n)


def parse_spec(spec: Any) -> ParsedSpec:
    """Parse a user shape spec.

    Raises
    ------
    NetError
        If ``spec`` is not one of the forms in the SPEC's shape table.
    """
    if is_automatic(spec):
        return ParsedSpec(None)
    if isinstance(spec, ParsedSpec):
        return spec
    if isinstance(spec, PortCoder):
        return spec.parsed_spec()
    if isinstance(spec, (bool, np.bool_)):
        raise NetError(f"invalid shape spec {spec!r}")
    if _as_int(spec) is not None:
        return ParsedSpec((_size(spec, spec),))
    if isinstance(spec, str):
        if spec == Varying:
            return ParsedSpec((Dim(None, True),))
        if spec in ELEM_NAMES:
            return ParsedSpec((), spec)
        raise NetError(f"invalid shape spec {spec!r}: expected an int, a tuple, 'Varying', "
                       "'Real', 'Integer', Index(n) or Automatic")
    if isinstance(spec, Index):
        return ParsedSpec((), spec)
    if isinstance(spec, (tuple, list)):
        entries = list(spec)
        elem = None
        if entries and _is_elem(entries[-1]):
            elem = entries.pop()
        dims = []
        for k, e in enumerate(entries):
            if e == Varying and isinstance(e, str):
                if k != 0:
                    raise NetError(f"invalid shape spec {spec!r}: only the first dimension "
                                   "may be 'Varying'")
                dims.append(Dim(None, True))
            else:
                dims.append(_size(e, spec))
        return ParsedSpec(tuple(dims), elem)
    raise NetError(f"invalid shape spec {spec!r} of type {type(spec).__name__}")


def display(dims: tuple | None, elem: Any = None) -> Any:
    """Canonical user form from resolved ``dims`` (entries: int, ``"Varying"`` or
    ``Automatic``) and an element type."""
    if dims is None:
        return Automatic
    if len(dims) == 0:
        return elem if elem is not None else "Real"
    out = tuple(dims)
    if elem is not None and elem != "Real":
        out = out + (elem,)
    return out
