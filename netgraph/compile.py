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
from .shared import array_key
from .solver import Solver

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
    solver: Solver | None = None

    def new_slot(self, S: Solver, t: int, place: str) -> int:
        dims_ids = S.dims(t)
        if dims_ids is None:
            raise SpecificationError(f"cannot evaluate net: the shape of {place} is not known "
                                     f"(give it as a port shape, e.g. Input=(3,))")
        dims, keys = [], []
        for d in dims_ids:
            size = S.size(d)
            if size is None and not S.is_varying(d):
                raise SpecificationError(f"cannot evaluate net: {place} has shape {S.show(t)!r}, "
                                         "which is not fully specified")
            dims.append(size)
            keys.append(None if size is not None else ("len", S.find_dim(d)))
        meta = PortMeta(len(self.metas), tuple(dims), S.elem(t), tuple(keys))
        self.metas.append(meta)
        return meta.slot

    def add_step(self, layer: Layer, path: tuple, in_slots: dict[str, int], S: Solver) -> dict:
        outs = {}
        for p in layer.output_ports + layer.hidden_outputs:
            outs[p] = self.new_slot(S, S.port(path, layer.output_key(p)), where(path, p))
        full = self.prefix + path
        step = Step(layer=layer, path=full,
                    ins={p: self.metas[s] for p, s in in_slots.items()},
                    outs={p: self.metas[s] for p, s in outs.items()},
                    arrays={n: array_key(layer, full, n) for n in layer._arrays()},
                    subplans={k: compile_net(c._pinned(), full + (k,)) for k, c in
                              layer.children().items()})
        self.steps.append(step)
        return outs

    def note_interior(self, path: tuple, port: str, slot: int) -> None:
        self.interior.setdefault((path, port), self.metas[slot])


def compile_net(net: Net, prefix: tuple = ()) -> Plan:
    """The plan of ``net`` (cached on the net: nets are immutable)."""
    cached = net._cache.get(("plan", prefix))
    if cached is not None:
        return cached
    S = Solver()
    ports = net._constrain(S, ())
    S.solve()
    plan = Plan(prefix=prefix, solver=S)
    in_slots = {p: plan.new_slot(S, ports[p], where((), p)) for p in net.input_ports}
    out_slots = net._emit(plan, S, (), in_slots)
    plan.inputs = {p: plan.metas[s] for p, s in in_slots.items()}
    plan.outputs = {p: plan.metas[out_slots[p]] for p in net.output_ports}
    if isinstance(net, Layer):
        for p, m in {**plan.inputs, **plan.steps[0].outs}.items():
            plan.note_interior((), p, m.slot)
    net._cache[("plan", prefix)] = plan
    return plan
