"""Compile a net into a flat plan of primitive steps (nested containers flattened).

A plan holds *slots*: one per graph input and per layer output. Each slot has a
:class:`PortMeta` with the example shape (``None`` for a varying dimension) and, per
dimension, the *length key* that names its lengths vector at run time. Layers that hold
sub-nets (attention's scoring net, operators) get a compiled sub-plan of their own.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .errors import SpecificationError, where
from .layer import Layer
from .net import Net
from .solution import PortType, Solution

__all__ = ["Plan", "Step", "PortMeta", "compile_net"]


@dataclass(frozen=True)
class PortMeta:
    """Static facts about a slot: example dims (int, or None for a varying length), element
    type, and per dimension the length key of a varying dim (or None)."""

    slot: int
    dims: tuple[int | None, ...]
    elem: Any
    keys: tuple[Any, ...]

    @property
    def rank(self) -> int:
        return len(self.dims)

    @property
    def varying(self) -> bool:
        return any(k is not None for k in self.keys)

    @property
    def integer(self) -> bool:
        return self.elem is not None and self.elem != "Real"


@dataclass
class Step:
    layer: Layer
    path: tuple
    ins: dict[str, PortMeta]
    outs: dict[str, PortMeta]
    arrays: dict[str, tuple]
    subplans: dict[str, Plan]


@dataclass
class Plan:
    prefix: tuple = ()
    steps: list[Step] = field(default_factory=list)
    metas: list[PortMeta] = field(default_factory=list)
    inputs: dict[str, PortMeta] = field(default_factory=dict)
    outputs: dict[str, PortMeta] = field(default_factory=dict)
    interior: dict[tuple[tuple, str], PortMeta] = field(default_factory=dict)

    def new_slot(self, t: PortType, place: str) -> int:
        """A slot for a value of solved type ``t``; a varying dim's length key is its root."""
        if t.dims is None:
            raise SpecificationError(f"cannot evaluate net: the shape of {place} is not known "
                                     f"(give it as a port shape, e.g. Input=(3,))")
        for d in t.dims:
            if d.size is None and not d.varying:
                raise SpecificationError(f"cannot evaluate net: {place} has shape {t.show()!r}, "
                                         "which is not fully specified")
        meta = PortMeta(len(self.metas), tuple(d.size for d in t.dims), t.elem,
                        tuple(None if d.size is not None else ("len", d.root) for d in t.dims))
        self.metas.append(meta)
        return meta.slot

    def add_step(self, layer: Layer, path: tuple, in_slots: dict[str, int],
                 sol: Solution) -> dict:
        outs = {}
        for p in layer.output_ports + layer.hidden_outputs:
            outs[p] = self.new_slot(sol.port(path, layer._out_key(p)), where(path, p))
        full = self.prefix + path
        step = Step(layer=layer, path=full,
                    ins={p: self.metas[s] for p, s in in_slots.items()},
                    outs={p: self.metas[s] for p, s in outs.items()},
                    arrays={n: full + (n,) for n in layer._arrays()},
                    subplans={k: _compile(c, sol.below(path + (k,)), full + (k,))
                              for k, c in layer._children().items()})
        self.steps.append(step)
        return outs

    def note_interior(self, path: tuple, port: str, slot: int) -> None:
        self.interior.setdefault((path, port), self.metas[slot])


def compile_net(net: Net, prefix: tuple = ()) -> Plan:
    """The plan of ``net`` (cached on the net: nets are immutable), from its one solution."""
    cached = net._cache.get(("plan", prefix))
    if cached is not None:
        return cached
    plan = net._cache[("plan", prefix)] = _compile(net, net._solution(), prefix)
    return plan


def _compile(net: Net, sol: Solution, prefix: tuple) -> Plan:
    """The plan of ``net`` whose solved shapes are ``sol`` (paths relative to ``net``); sub-nets
    of layers (attention's scoring net, operators) get sub-plans from the same solution."""
    plan = Plan(prefix=prefix)
    in_slots = {p: plan.new_slot(sol.port((), p), where((), p)) for p in net.input_ports}
    out_slots = net._emit(plan, sol, (), in_slots)
    plan.inputs = {p: plan.metas[s] for p, s in in_slots.items()}
    plan.outputs = {p: plan.metas[out_slots[p]] for p in net.output_ports}
    if isinstance(net, Layer):
        for p, m in {**plan.inputs, **plan.steps[0].outs}.items():
            plan.note_interior((), p, m.slot)
    return plan
