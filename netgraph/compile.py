"""Compile a net into a flat plan of primitive steps (nested containers flattened).

A plan holds *slots*: one per graph input and per layer output. Each slot has a
:class:`PortMeta` with the example shape (``None`` for a varying dimension) and, per
dimension, the *length key* that names its lengths vector at run time. Layers that hold
sub-nets (attention's scoring net, operators) get a compiled sub-plan of their own.

**Fusion pass.** After the steps are laid out, a step whose output another step reads may
merge with that consumer into one step, when the producing layer offers a fused computation
for the pair (:meth:`Layer.fused_with_consumer`; e.g. ``SoftmaxLayer -> CrossEntropyLossLayer``:
a log-softmax loss whose logit gradient is ``p - onehot``, exact where the softmax saturates).
The fused step reads the producer's inputs and the consumer's other inputs and writes both
steps' outputs, so interior values and fan-out (other readers of the producer's output, graph
outputs) stay as they were. Every compile runs the pass — applying, ``gradcheck`` and
``NetTrain`` alike; ``with fusion(False):`` compiles without it (for comparisons).
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

from .errors import SpecificationError, where
from .layer import Layer
from .net import Net
from .shared import array_key
from .solution import PortType, Solution

__all__ = ["Plan", "Step", "PortMeta", "Computation", "compile_net", "fusion"]

_FUSE = contextvars.ContextVar("netgraph_fuse_steps", default=True)


@contextlib.contextmanager
def fusion(enabled: bool) -> Iterator[None]:
    """Within the block, compile with (default) or without the fusion pass, e.g. to compare a
    fused softmax/cross-entropy step with the two separate steps. Scoped to the calling
    thread (a context variable); plans of both kinds are cached side by side."""
    token = _FUSE.set(bool(enabled))
    try:
        yield
    finally:
        _FUSE.reset(token)


@dataclass(frozen=True)
class PortMeta:
    """Static facts about a slot: example dims (int, or None for a varying length), element
    type, and per dimension the length key of a varying dim (or None)."""

    slot: int
    dims: tuple[int | None, ...]
    elem: Any
    keys: tuple[Any, ...]
    #: derived once (read on every call): the number of dims, whether any is varying, whether
    #: only the first is (a sequence of fixed-shape elements), whether the elements are
    #: integers (``"Integer"`` or ``Index(n)``)
    rank: int = field(init=False, compare=False, repr=False)
    varying: bool = field(init=False, compare=False, repr=False)
    first_varying: bool = field(init=False, compare=False, repr=False)
    integer: bool = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "rank", len(self.dims))
        object.__setattr__(self, "varying", any(k is not None for k in self.keys))
        object.__setattr__(self, "first_varying", bool(self.keys) and self.keys[0] is not None
                           and all(k is None for k in self.keys[1:]))
        object.__setattr__(self, "integer", self.elem is not None and self.elem != "Real")


class Computation(Protocol):
    """What a step runs: a :class:`Layer`, or a fused computation of two layers."""

    pad_clean: bool

    def forward(self, ins: dict[str, Any], arrays: dict[str, Any], ctx: Any) -> tuple[dict, Any]:
        ...

    def index_data_hint(self, port: str) -> str:
        ...


@dataclass
class Step:
    layer: Computation
    path: tuple
    ins: dict[str, PortMeta]
    outs: dict[str, PortMeta]
    arrays: dict[str, tuple]
    subplans: dict[str, Plan]
    #: the steps a fused step replaces (producer, consumer); empty for a layer's own step
    parts: tuple[Step, ...] = ()
    #: path inside the sub-nets -> array key, filled by ``StepContext.sub_array``
    sub_keys: dict[tuple, Any] = field(default_factory=dict, compare=False, repr=False)

    @functools.cached_property
    def layout(self) -> tuple[tuple, tuple, tuple]:
        """What the executor reads on every run, derived once (plans are cached and their
        layers immutable): ``((port, slot) of the inputs, (name, key) of the arrays,
        (port, slot, meta, real, zero) of the outputs)``, where ``real`` says the output is
        real-valued (kept in the run's dtype) and ``zero`` that the executor must zero its
        padding (a varying output of a layer that does not declare ``pad_clean``)."""
        clean = self.layer.pad_clean
        return (tuple((p, m.slot) for p, m in self.ins.items()), tuple(self.arrays.items()),
                tuple((p, m.slot, m, not m.integer, m.varying and not clean)
                      for p, m in self.outs.items()))

    @functools.cached_property
    def port_metas(self) -> dict[str, PortMeta]:
        """Port -> its meta, inputs and outputs in one (an input wins a shared name)."""
        return {**self.outs, **self.ins}


@dataclass
class Plan:
    prefix: tuple = ()
    steps: list[Step] = field(default_factory=list)
    metas: list[PortMeta] = field(default_factory=list)
    inputs: dict[str, PortMeta] = field(default_factory=dict)
    outputs: dict[str, PortMeta] = field(default_factory=dict)
    interior: dict[tuple[tuple, str], PortMeta] = field(default_factory=dict)
    #: what applying derived from a request of outputs (``what``) of this plan, by request
    requests: dict[Any, Any] = field(default_factory=dict, repr=False, compare=False)

    @functools.cached_property
    def length_owners(self) -> dict[Any, str]:
        """Length key -> the input port whose data gives those lengths (for messages)."""
        return {k: p for p, m in self.inputs.items() for k in m.keys if k}

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
            outs[p] = self.new_slot(sol.port(path, layer.output_key(p)), where(path, p))
        full = self.prefix + path
        step = Step(layer=layer, path=full,
                    ins={p: self.metas[s] for p, s in in_slots.items()},
                    outs={p: self.metas[s] for p, s in outs.items()},
                    arrays={n: array_key(layer, full, n) for n in layer._arrays()},
                    subplans={k: _compile(c, sol.below(path + (k,)), full + (k,))
                              for k, c in layer.children().items()})
        self.steps.append(step)
        return outs

    def note_interior(self, path: tuple, port: str, slot: int) -> None:
        self.interior.setdefault((path, port), self.metas[slot])


def compile_net(net: Net, prefix: tuple = ()) -> Plan:
    """The plan of ``net`` (cached on the net: nets are immutable), from its one solution."""
    key = ("plan", prefix, _FUSE.get())
    plan = net._cache.get(key)  # what net.cached does, without making a closure per call
    if plan is None:
        plan = net._cache[key] = _compile(net, net._solution(), prefix)
    return plan


def _compile(net: Net, sol: Solution, prefix: tuple) -> Plan:
    """The plan of ``net`` whose solved shapes are ``sol`` (paths relative to ``net``); sub-nets
    of layers (attention's scoring net, operators) get sub-plans from the same solution."""
    plan = _layout(net, sol, prefix)
    if _FUSE.get():
        plan.steps = fuse_steps(plan.steps)
    return plan


def _layout(net: Net, sol: Solution, prefix: tuple) -> Plan:
    """The steps of ``net`` in order, one per layer (nested containers flattened)."""
    plan = Plan(prefix=prefix)
    in_slots = {p: plan.new_slot(sol.port((), p), where((), p)) for p in net.input_ports}
    out_slots = net._emit(plan, sol, (), in_slots)
    plan.inputs = {p: plan.metas[s] for p, s in in_slots.items()}
    plan.outputs = {p: plan.metas[out_slots[p]] for p in net.output_ports}
    if isinstance(net, Layer):
        for p, m in {**plan.inputs, **plan.steps[0].outs}.items():
            plan.note_interior((), p, m.slot)
    return plan


# ------------------------------------------------------------------- fusion pass
def fuse_steps(steps: list[Step]) -> list[Step]:
    """``steps`` with every pair a producing layer can fuse with its consumer
    (:meth:`Layer.fused_with_consumer`) replaced by one fused step; see the module docstring.
    A step takes part in one fusion at most."""
    steps = list(steps)
    while True:
        made = {m.slot: k for k, s in enumerate(steps) for m in s.outs.values()}
        pairs = ((made[m.slot], j, port) for j, s in enumerate(steps)
                 for port, m in s.ins.items() if m.slot in made)
        found = next(((i, j, *fused) for i, j, port in pairs
                      if (fused := _fused(steps, i, j, port)) is not None), None)
        if found is None:
            return steps
        i, j, step, early = found
        rest = steps[:i] + steps[i + 1:j] + steps[j + 1:]
        at = i if early else j - 1
        steps = rest[:at] + [step] + rest[at:]


def _fused(steps: list[Step], i: int, j: int, port: str) -> tuple[Step, bool] | None:
    """The fused step of producer ``steps[i]`` and consumer ``steps[j]`` (whose input ``port``
    reads the producer) and whether it runs where the producer ran (else where the consumer
    ran); None when the layers offer no fusion or the pair cannot be merged."""
    producer, consumer = steps[i], steps[j]
    if producer.parts or consumer.parts or producer.subplans or consumer.subplans:
        return None
    slot = consumer.ins[port].slot
    out = next(p for p, m in producer.outs.items() if m.slot == slot)
    others = {p: m for p, m in consumer.ins.items() if p != port}
    made = {m.slot for m in producer.outs.values()}
    if (any(m.slot in made for m in others.values()) or set(others) & set(producer.ins)
            or set(consumer.outs) & set(producer.outs)
            or set(consumer.arrays) & set(producer.arrays)):
        return None  # the consumer reads the producer twice, or the ports' names clash
    between = steps[i + 1:j]
    made_between = {m.slot for s in between for m in s.outs.values()}
    read_between = {m.slot for s in between for m in s.ins.values()}
    early = not any(m.slot in made_between for m in others.values())  # the others are ready
    if not early and made & read_between:
        return None  # a step in between needs the producer's output and makes the consumer's input
    computation = producer.layer.fused_with_consumer(out, consumer.layer, port,
                                                     consumer.ins[port])
    if computation is None:
        return None
    step = Step(layer=computation, path=producer.path, ins={**producer.ins, **others},
                outs={**producer.outs, **consumer.outs},
                arrays={**producer.arrays, **consumer.arrays}, subplans={},
                parts=(producer, consumer))
    return step, early
