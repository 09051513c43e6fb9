"""Run a plan: forward over its steps, backward in reverse with gradient accumulation.

Padding invariant: every value and every gradient the executor hands a layer is exactly zero
at padded positions of its varying dimensions. Graph inputs are zeroed at entry; outputs of
layers that do not declare ``pad_clean`` are zeroed after they run, and so are the input
gradients they return. Layers can therefore rely on zero padding, and padding content never
reaches a valid value or a gradient.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from . import scratch
from .compile import Plan, PortMeta, Step
from .errors import InputDataError, where
from .shared import array_key

__all__ = ["RunContext", "StepContext", "Tape", "forward", "backward"]


@dataclass(slots=True)
class RunContext:
    """What one application of a net shares across its steps."""

    arrays: dict[tuple, np.ndarray]
    dtype: Any = np.float32
    training: bool = False
    rng: np.random.Generator | None = None
    lengths: dict[Any, np.ndarray] = field(default_factory=dict)
    #: True when the caller already padded the inputs with zeros (the batcher does)
    inputs_zero_padded: bool = False
    #: length key -> the input port whose data gave those lengths (for error messages)
    length_owners: dict[Any, str] = field(default_factory=dict)
    _masks: dict[tuple, np.ndarray] = field(default_factory=dict)
    #: (length key, size) -> whether every position is valid (nothing padded)
    _full: dict[tuple, bool] = field(default_factory=dict)

    def valid_mask(self, key: Any, size: int) -> np.ndarray:
        """Boolean ``(B, size)`` mask of the valid positions of length key ``key``."""
        mask = self._masks.get((key, size))
        if mask is None:
            lengths = self.lengths[key]
            mask = np.arange(size)[None, :] < lengths[:, None]
            self._masks[(key, size)] = mask
        return mask

    def all_valid(self, key: Any, size: int) -> bool:
        """Whether every example has length ``size`` or more for length key ``key`` (so a
        dim of that size is not padded); found once per run (the lengths of a key, once
        known, never change)."""
        full = self._full.get((key, size))
        if full is None:
            full = self._full[(key, size)] = bool(self.valid_mask(key, size).all())
        return full

    def _broadcast_mask(self, shape: tuple, meta: PortMeta,
                        axes: Any = None) -> np.ndarray | None:
        """Boolean mask of the valid positions of a value of ``meta`` with shape ``shape``,
        broadcastable to it, or None when nothing is padded. Every varying example axis in
        ``axes`` (default: all of them) is masked by its own lengths, whatever the number of
        leading axes (the first is the batch: lengths are per example)."""
        lead = len(shape) - meta.rank
        valid = None
        for axis, key in enumerate(meta.keys):
            if key is None or key not in self.lengths or axes is not None and axis not in axes:
                continue
            size = shape[lead + axis]
            if self.all_valid(key, size):
                continue
            mask = self.valid_mask(key, size)
            mask = mask.reshape(mask.shape[:1] + (1,) * (lead - 1 + axis) + mask.shape[1:]
                                + (1,) * (meta.rank - axis - 1))
            valid = mask if valid is None else valid & mask
        return valid

    def valid_ones(self, shape: tuple, meta: PortMeta, dtype: Any) -> np.ndarray:
        """Ones at valid positions, exactly 0 at padded ones (the default output seed)."""
        valid = self._broadcast_mask(shape, meta) if meta.varying else None
        if valid is None:
            return np.ones(shape, dtype)
        ones = scratch.empty(shape, dtype)
        ones[...] = valid.astype(dtype)  # the small mask cast, then broadcast: 4x faster
        return ones

    def zero_padding(self, value: np.ndarray, meta: PortMeta) -> np.ndarray:
        """``value`` with every padded position (of every varying dim) set to exactly 0."""
        if value is None or not meta.varying:
            return value
        valid = self._broadcast_mask(value.shape, meta)
        if valid is None:
            return value
        return np.where(valid, value, 0).astype(value.dtype, copy=False)


class StepContext:
    """What one step's ``forward`` can ask: lengths, static dims, training mode, sub-nets
    (implements the protocol ``netgraph.extend.StepContext``, which documents it)."""

    __slots__ = ("step", "run")

    def __init__(self, step: Step, run: RunContext):
        self.step, self.run = step, run

    @property
    def training(self) -> bool:
        return self.run.training

    @property
    def rng(self) -> np.random.Generator:
        if self.run.rng is None:
            self.run.rng = np.random.default_rng()
        return self.run.rng

    @property
    def dtype(self) -> Any:
        return self.run.dtype

    @property
    def path(self) -> tuple:
        return self.step.path

    def sub_array(self, path: tuple) -> tuple[np.ndarray, Any]:
        """The array at ``path`` inside the step's sub-nets and its gradient key (its full
        path, or its ``NetSharedArray`` when it is shared)."""
        step = self.step
        key = step.sub_keys.get(path)
        if key is None:  # found once per plan (its nets never change)
            *parts, name = path
            net = step.layer
            for part in parts:
                net = net.children()[part]
            key = step.sub_keys[path] = array_key(net, step.path + tuple(parts), name)
        return self.run.arrays[key], key

    def meta(self, port: str) -> PortMeta:
        return self.step.port_metas[port]

    def dims(self, port: str) -> tuple[int | None, ...]:
        """Static example dims of ``port`` (None for a varying length)."""
        return self.meta(port).dims

    def lengths(self, port: str, axis: int = 0) -> np.ndarray | None:
        """Per-example lengths of dim ``axis`` of ``port``, or None when it is fixed."""
        key = self.meta(port).keys[axis]
        return None if key is None else self.run.lengths.get(key)

    def set_lengths(self, port: str, lengths: np.ndarray, axis: int = 0) -> None:
        """Declare the lengths of a varying output dim that the layer itself determines.
        Where input data already gave lengths for that dim (an input tied to the output, such
        as a loss Target), they must agree, or ``InputDataError``."""
        key = self.meta(port).keys[axis]
        if key is None:
            return
        lengths = np.asarray(lengths)
        given = self.run.lengths.get(key)
        if given is None:
            self.run.lengths[key] = lengths
        elif not np.array_equal(given, lengths):
            owner = self.run.length_owners.get(key)
            raise InputDataError(
                f"the sequence lengths {given.tolist()} given to "
                f"{repr(owner) if owner else 'an input'} do not match the lengths "
                f"{lengths.tolist()} of {where(self.step.path, port)}, which that input is tied "
                f"to")

    def valid_mask(self, port: str, size: int, axis: int = 0) -> np.ndarray | None:
        """``(B, size)`` bool: the valid positions of varying dim ``axis`` of ``port`` per
        example; None when nothing there is padded (the dim is fixed, or every example is at
        least ``size`` long)."""
        key = self.meta(port).keys[axis]
        run = self.run
        return None if key is None or run.all_valid(key, size) else run.valid_mask(key, size)

    def valid_positions(self, port: str, x: np.ndarray, axes: Any = None) -> np.ndarray | None:
        """Boolean mask of the valid (unpadded) positions of ``x``, a value of ``port`` with
        any leading axes, broadcastable to ``x``: along the varying example axes ``axes``
        (default: every varying axis), each by its own lengths. None when nothing there is
        padded."""
        meta = self.meta(port)
        return self.run._broadcast_mask(x.shape, meta, axes) if meta.varying else None

    def needs_grad(self, port: str) -> bool:
        return not self.step.ins[port].integer

    def run_sub(self, name: str, inputs: dict[str, np.ndarray]) -> tuple[dict, Any]:
        """Run the sub-net ``name`` (e.g. "ScoringNet") on ``inputs`` with any leading axes.
        Returns its outputs and a backward ``out_grads -> (input_grads, array_grads)``."""
        plan = self.step.subplans[name]
        tape = forward(plan, inputs, self.run)
        outs = {p: tape.values[m.slot] for p, m in plan.outputs.items()}

        def back(out_grads: dict[str, np.ndarray | None]):
            grads, array_grads = backward(plan, tape, out_grads)
            return {p: grads[m.slot] for p, m in plan.inputs.items()}, array_grads

        return outs, back


@dataclass(slots=True)
class Tape:
    plan: Plan
    run: RunContext
    values: list[Any]
    backs: list[Any]


def forward(plan: Plan, inputs: dict[str, np.ndarray], run: RunContext) -> Tape:
    """Run every step of ``plan``; inputs are padded arrays (lengths already in ``run``)."""
    values: list[Any] = [None] * len(plan.metas)
    for port, meta in plan.inputs.items():
        x = inputs[port]
        values[meta.slot] = x if run.inputs_zero_padded else run.zero_padding(x, meta)
    backs = []
    arrays, dtype = run.arrays, run.dtype
    for step in plan.steps:
        in_slots, array_keys, out_slots = step.layout
        outs, back = step.layer.forward({p: values[s] for p, s in in_slots},
                                        {n: arrays[k] for n, k in array_keys},
                                        StepContext(step, run))
        for p, slot, meta, real, zero in out_slots:
            v = outs.get(p)
            if real and v is not None and v.dtype != dtype:
                v = v.astype(dtype)  # see _in_run_dtype
            values[slot] = run.zero_padding(v, meta) if zero else v
        backs.append(back)
    return Tape(plan, run, values, backs)


def _in_run_dtype(v: np.ndarray | None, meta: PortMeta, run: RunContext) -> np.ndarray | None:
    """A real value (or gradient) in the run's dtype: a layer mixing an integer input into
    real arithmetic (a DotLayer of integers and reals) would otherwise promote float32 to
    float64."""
    if v is None or meta.integer or v.dtype == run.dtype:
        return v
    return v.astype(run.dtype)


def _accumulate(store: list | dict, key: Any, g: np.ndarray) -> None:
    old = store[key] if isinstance(store, list) else store.get(key)
    store[key] = g if old is None else old + g


def backward(plan: Plan, tape: Tape, seeds: dict[str, np.ndarray | None]) -> tuple[list, dict]:
    """Propagate ``seeds`` (output port -> its gradient; None or absent: no gradient) back;
    return (slot grads, array grads).

    Every gradient reaching a slot is summed into it, whoever sends it: the seeds of several
    output ports that read one value (``dL/dv = sum_p dL/d out_p``) and the input gradients
    of every step that consumes it (fan-out)."""
    grads: list[Any] = [None] * len(plan.metas)
    for port, g in seeds.items():
        if g is not None:
            _accumulate(grads, plan.outputs[port].slot, g)
    array_grads: dict[tuple, np.ndarray] = {}
    run = tape.run
    for step, back in zip(reversed(plan.steps), reversed(tape.backs)):
        out_grads = {p: grads[m.slot] for p, m in step.outs.items()}
        if all(g is None for g in out_grads.values()):
            continue
        in_grads, arr_grads = back(out_grads)
        clean = step.layer.pad_clean
        for p, g in in_grads.items():
            meta = step.ins[p]
            if g is None or meta.integer:  # integers get no gradient
                continue
            g = _in_run_dtype(g, meta, run)
            _accumulate(grads, meta.slot, g if clean else run.zero_padding(g, meta))
        for k, g in arr_grads.items():
            _accumulate(array_grads, step.arrays[k] if isinstance(k, str) else k, g)
    return grads, array_grads
