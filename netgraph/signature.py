"""Declarative layer signatures: a layer states its ports and arrays as data, e.g. ::

    signature = "Input[*t, k], State[n] -> Output[*t, n], State[n]; Weights[n, k], Biases[n]"

parsed once per class and turned into solver constraints whenever the layer is inferred.

Grammar: ``inputs -> outputs [; arrays]``, each a comma-separated list of ``Name[dims]``
(``Name`` alone: the signature says nothing about that port's shape), a port optionally
followed by ``:Real`` or ``:Index(letter)``. A dim is

* a letter (any identifier): a size shared by every occurrence in the signature; a letter
  that names an int hyperparameter (``n``) takes its value;
* an int: that size;
* ``*t`` (or ``*``, a fresh one each time): a sequence axis, varying unless a size is known;
* ``...x``: the rest of a shape, of any rank, shared by the ports that use ``x``: a port
  written ``Name[...x]`` has the same shape (and element type) as ``x``, one written
  ``Name[*t, ...x]`` or ``Name[...x, n]`` has ``x`` with those dims around it.

``[]`` is a scalar. ``:Real`` marks an output that holds reals whatever the inputs hold (as
``Layer.real_outputs``); ``:Index(c)`` a port that holds indices ``0..c-1`` (``c`` and the
element type determine each other). A port with an element type of its own shares only the
dims of a rest, not its element type. Ports a layer does not have (optional ports no graph
connected) are skipped; an output named like an input (a recurrent ``State``) is the output.
Arrays take letters and ints only. What a signature cannot say (products, sums, offsets,
conditions) a layer adds in ``rules``, where ``S.size_var(path, letter)`` is the dim of a
letter.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from typing import Any

from .errors import ShapeError, where
from .shapes import Index
from .solver import Conflict, Solver

__all__ = ["Signature", "parse_signature"]

_ENTRY = re.compile(r"\s*(\w+)\s*(?:\[([^\]]*)\])?\s*(?::\s*(Real|Index\(\s*(\w+)\s*\)))?\s*")
_DIM = re.compile(r"^(\.\.\.|\*)?(\w*)$")


@dataclass(frozen=True)
class Dim:
    """One dim of a signature: ``kind`` is "size" (a letter or an int), "seq" (``*t``/``*``)
    or "rest" (``...x``); ``name`` the letter (``""`` for an anonymous ``*``), ``value`` an int
    size."""

    kind: str
    name: str = ""
    value: int | None = None


@dataclass(frozen=True)
class Entry:
    """A port or array of a signature: its dims (None: unconstrained) and element type."""

    name: str
    dims: tuple[Dim, ...] | None
    elem: str | None = None  # None, "Real" or "Index"
    index_of: str | None = None  # the letter of Index(letter)
    text: str = ""

    @property
    def rest(self) -> str | None:
        return next((d.name for d in self.dims or () if d.kind == "rest"), None)


@dataclass(frozen=True)
class Signature:
    text: str
    inputs: tuple[Entry, ...]
    outputs: tuple[Entry, ...]
    arrays: tuple[Entry, ...]

    def real_outputs(self) -> tuple[str, ...]:
        """The outputs marked ``:Real`` (treated as ``Layer.real_outputs``)."""
        return tuple(e.name for e in self.outputs if e.elem == "Real")

    def apply(self, S: Solver, layer: Any, path: tuple, ports: dict[str, int]
              ) -> tuple[dict[str, int], dict[str, tuple[int, ...]]]:
        """Add the signature's constraints for ``layer`` at ``path`` (``ports``: solver key ->
        type); return letter -> dim and array name -> dims."""
        return _Applied(S, layer, path, ports, self).run()


def _parse_dims(text: str, where_: str) -> tuple[Dim, ...]:
    dims = []
    for part in (p.strip() for p in text.split(",")) if text.strip() else ():
        m = _DIM.match(part)
        if not m or (m.group(1) == "..." and not m.group(2)) or (not m.group(1) and
                                                                  not m.group(2)):
            raise ValueError(f"{where_}: bad dimension {part!r}")
        prefix, name = m.groups()
        if prefix == "...":
            dims.append(Dim("rest", name))
        elif prefix == "*":
            dims.append(Dim("seq", name))
        elif name.isdigit():
            dims.append(Dim("size", value=int(name)))
        else:
            dims.append(Dim("size", name))
    if sum(d.kind == "rest" for d in dims) > 1:
        raise ValueError(f"{where_}: at most one '...' per shape")
    return tuple(dims)


def _parse_entries(text: str, where_: str) -> tuple[Entry, ...]:
    entries, pos = [], 0
    text = text.strip()
    while pos < len(text):
        m = _ENTRY.match(text, pos)
        if not m or m.end() == pos:
            raise ValueError(f"{where_}: cannot read {text[pos:]!r}")
        name, dims, elem, index_of = m.groups()
        entries.append(Entry(name, None if dims is None else _parse_dims(dims, where_),
                             None if elem is None else elem.split("(")[0], index_of,
                             m.group(0).strip()))
        pos = m.end()
        if pos < len(text):
            if text[pos] != ",":
                raise ValueError(f"{where_}: expected ',' at {text[pos:]!r}")
            pos += 1
    return tuple(entries)


@functools.cache
def parse_signature(text: str, owner: str = "signature") -> Signature:
    """Parse ``"inputs -> outputs; arrays"``; raises ``ValueError`` naming ``owner``."""
    where_ = f"{owner}: signature {text!r}"
    ports, _, arrays = text.partition(";")
    if ports.count("->") != 1:
        raise ValueError(f"{where_}: needs exactly one '->' between inputs and outputs")
    ins, outs = ports.split("->")
    sig = Signature(text, _parse_entries(ins, where_), _parse_entries(outs, where_),
                    _parse_entries(arrays, where_))
    for a in sig.arrays:
        if a.dims is None or a.elem or any(d.kind != "size" for d in a.dims):
            raise ValueError(f"{where_}: array {a.name} needs sizes (letters or ints) only")
    return sig


class _Applied:
    """One application of a signature to one layer in one solver."""

    def __init__(self, S: Solver, layer: Any, path: tuple, ports: dict[str, int],
                 sig: Signature):
        self.S, self.layer, self.path, self.ports, self.sig = S, layer, path, ports, sig
        params = layer.params_text()
        self.desc = f"{type(layer).__name__}{f'({params})' if params else ''} at {where(path)}"
        self.letters: dict[str, int] = {}
        self.fields = layer.params.model_dump()

    def dim(self, d: Dim) -> int:
        S = self.S
        if d.value is not None:
            return S.new_dim(d.value, origin=self.desc)
        if d.kind == "seq" and not d.name:
            return S.new_dim(varying=True, origin=self.desc)
        if d.name not in self.letters:
            value = self.fields.get(d.name)
            if d.name in self.fields and (value is None or isinstance(value, int)):
                self.letters[d.name] = S.new_dim(value, origin=self.desc)
            else:
                self.letters[d.name] = S.new_dim(varying=d.kind == "seq",
                                                 origin=self.desc if d.kind == "seq" else "")
        return self.letters[d.name]

    def present(self) -> list[tuple[Entry, int, str, bool]]:
        """(entry, type, place, is input) of the ports the layer has."""
        layer, out = self.layer, []
        for e in self.sig.inputs:
            if e.name in layer.input_ports:
                out.append((e, self.ports[e.name], where(self.path, e.name), True))
        for e in self.sig.outputs:
            if e.name in layer.output_ports + layer.hidden_outputs:
                key = layer.output_key(e.name)
                out.append((e, self.ports[key], where(self.path, e.name), False))
        return out

    def run(self) -> tuple[dict[str, int], dict[str, tuple[int, ...]]]:
        present = self.present()
        # the type of a rest: that of the first input that is just that rest (the other ports
        # are that input's shape, or have dims around it); else a fresh type that each port
        # relates to
        rests: dict[str, tuple[int, str | None, bool]] = {}
        for e, t, place, is_input in present:
            if is_input and e.rest and len(e.dims) == 1 and e.rest not in rests:
                rests[e.rest] = (t, place, e.elem is not None)
        for e, t, place, is_input in present:
            if e.dims is not None:
                self.shape(e, t, place, is_input, rests)
            if e.elem == "Index":
                self.index_rule(e, t, place, present)
        arrays = {a.name: tuple(self.dim(d) for d in a.dims) for a in self.sig.arrays
                  if a.name in self.layer.array_names_for(self.layer.params)}
        return self.letters, arrays

    def shape(self, e: Entry, t: int, place: str, is_input: bool, rests: dict) -> None:
        """Constrain port type ``t`` to the dims of ``e``, around the shared rest if any."""
        S = self.S
        kind = "a sequence " if any(d.kind == "seq" for d in e.dims) else \
            "a scalar " if not e.dims else ""
        what = f"{self.desc} {'takes' if is_input else 'gives'} {kind}{e.text}"
        if e.rest is None:
            S.constrain(t, tuple(self.dim(d) for d in e.dims), None, place, what)
            return
        k = [d.kind for d in e.dims].index("rest")
        prefix = tuple(self.dim(d) for d in e.dims[:k])
        suffix = tuple(self.dim(d) for d in e.dims[k + 1:])
        if e.rest not in rests:  # the shared part of shapes with more dims: anonymous
            rests[e.rest] = (S.new_type(), None, False)
        inner, inner_place, own = rests[e.rest]
        same_elem = not (own or e.elem is not None)
        if inner == t:
            return
        if inner_place is not None and same_elem:  # ports of the same shape
            S.unify(inner, t, inner_place, place)
        else:
            S.relate(t, inner, prefix, suffix, same_elem, places=(place, inner_place or place),
                     what=what, inner_may_vary=True)

    def index_rule(self, e: Entry, t: int, place: str, present: list) -> None:
        """``:Index(c)``: the element type is ``Index(size of c)`` (both ways)."""
        S, letter = self.S, e.index_of
        c = self.dim(Dim("size", letter))
        others = [(o, ot, op) for o, ot, op, _ in present if o is not e and any(
            d.name == letter for d in o.dims or ())]

        def rule(early: bool = False) -> None:
            elem, known = S.elem(t), S.size(c)
            if early and (known is None or elem is not None):
                return
            try:
                if elem == "Real":
                    raise Conflict(f"it holds reals{S.type_origin(t)}, but {self.desc} reads "
                                   f"indices (Index({letter}))")
                if isinstance(elem, Index) and known is None:
                    S.set_size(c, elem.n, place)
                elif known is not None and not isinstance(elem, Index):
                    S.set_elem(t, Index(known))
                elif isinstance(elem, Index) and known != elem.n:
                    sizes = "".join(f"; {op} has shape {S.show(ot)!r} ({o.text})"
                                    for o, ot, op in others)
                    raise Conflict(f"{elem!r} versus {letter} = {known}{sizes}")
            except Conflict as err:
                raise ShapeError(f"{place} has shape {S.show(t)!r}, inconsistent with "
                                 f"{self.desc}: {err}") from None

        # a size known now (a hyperparameter) gives the element type before edges are
        # unified, so that a conflict there names both ports
        rule(early=True)
        S.rules.append(rule)
