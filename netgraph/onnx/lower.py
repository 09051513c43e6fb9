"""The graph walker: a compiled plan (``netgraph.compile``) lowered step by step to ONNX nodes.

Every value of the plan becomes one ONNX tensor of shape ``lead + example dims``: ``lead`` is
``(batch,)`` at the top level and longer inside sub-nets — ``(batch, T)`` inside a
``NetMapOperator`` (the inner net runs on every position at once), ``(batch, heads, 1, n)`` /
``(batch, heads, m, 1)`` inside a custom attention scoring net, exactly the leading axes the
NumPy executor gives. Varying dims carry no lengths of their own: per length key (the plan's
``PortMeta.keys``) there is one int64 ``(batch,)`` tensor of lengths, and the mask of a value's
valid positions is built from it on demand (``Less(Range(T), lengths)``, unsqueezed to the
value's rank), memoized per graph scope.

Padding invariant, as in the executor: every value a lowering reads is exactly 0 at padded
positions. Graph inputs are sanitized with ``Where(mask, x, 0)`` (so NaN, ±inf or an
out-of-range index in the padding never reach a valid value) and the outputs of a lowering
that does not declare itself ``clean`` are re-zeroed the same way.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..compile import Plan, PortMeta, Step
from ..errors import NetError, where
from .builder import FLOAT, Graph

__all__ = ["Lowering", "Lowerer", "StepLowering", "OPSET_FLOOR"]

#: the opset every exported model needs at least (see :mod:`netgraph.onnx.builder`)
OPSET_FLOOR = 13


@dataclass(frozen=True)
class Lowering:
    """How one layer class becomes ONNX nodes: ``fn(ctx) -> {output port: value name}``
    (hidden outputs such as AttentionWeights included); ``clean(ctx)`` says whether those
    outputs are already exactly 0 at padded positions whenever the inputs are (else the
    walker zeroes them)."""

    fn: Callable[[StepLowering], dict[str, str]]
    clean: Callable[[StepLowering], bool] = lambda ctx: False


class Lowerer:
    """What the lowering of one model shares: the net's arrays, the table, the opset needed."""

    def __init__(self, arrays: dict[tuple, np.ndarray], table: dict[type, Lowering]):
        self.arrays, self.table = arrays, table
        self.opset = OPSET_FLOOR
        self.opset_reason = f"every exported model (the exporter writes opset-{OPSET_FLOOR} forms)"

    def require(self, opset: int, why: str) -> None:
        """Note that ``why`` needs at least ``opset``."""
        if opset > self.opset:
            self.opset, self.opset_reason = opset, why

    def lower_plan(self, g: Graph, plan: Plan, inputs: dict[str, str], lead: int) -> dict:
        """Lower every step of ``plan`` into ``g``; ``inputs`` maps its input ports to values
        with ``lead`` leading axes. Returns output port -> value."""
        values: dict[int, str] = {}
        for port, meta in plan.inputs.items():
            values[meta.slot] = inputs[port]
        for step in plan.steps:
            layer = step.layer
            entry = self.table.get(type(layer))
            if entry is None:
                raise NetError(f"{type(layer).__name__} at {where(step.path)} has no ONNX "
                               "translation: export_onnx lowers the layers of netgraph.layers, "
                               "operators and graphs of them (see docs/onnx.md)")
            ctx = StepLowering(self, g, step, values, lead)
            outs = entry.fn(ctx)
            clean = entry.clean(ctx)
            for p, m in step.outs.items():
                v = outs[p]
                values[m.slot] = v if clean else zero_padding(g, v, m, lead)
        return {p: values[m.slot] for p, m in plan.outputs.items()}


# ------------------------------------------------------------------- lengths and masks
def lengths_of(g: Graph, key: Any) -> str | None:
    """The int64 ``(batch,)`` lengths of length key ``key`` visible in ``g``, or None (a
    fixed dim, or lengths nobody gave: then the whole padded size counts, as in netgraph)."""
    return None if key is None else g.lookup(("lengths", key))


def set_lengths(g: Graph, key: Any, lengths: str) -> None:
    """Record the lengths of ``key`` (the first value given wins: tied lengths are equal)."""
    if key is not None and lengths_of(g, key) is None:
        g.remember(("lengths", key), lengths)


def _mask_2d(g: Graph, key: Any, size: str) -> str:
    """``(batch, T)`` bool: ``t < lengths[b]`` for the padded size ``T`` (a scalar)."""
    found = g.lookup(("mask", key, size))
    if found:
        return found
    steps = g.op("Range", [g.const(0), size, g.const(1)])
    mask = g.op("Less", [g.unsqueeze(steps, [0]), g.unsqueeze(lengths_of(g, key), [1])])
    return g.remember(("mask", key, size), mask)


def valid_positions(g: Graph, value: str, meta: PortMeta, lead: int,
                    axes: Iterable[int] | None = None) -> str | None:
    """Bool mask of the valid positions of ``value`` (a value of ``meta`` with ``lead``
    leading axes, the first the batch), broadcastable to it: every varying example axis (or
    those in ``axes``) masked by its own lengths. None when nothing is masked."""
    wanted = None if axes is None else set(axes)
    mask = None
    for axis, key in enumerate(meta.keys):
        if lengths_of(g, key) is None or wanted is not None and axis not in wanted:
            continue
        at = lead + axis
        m = _mask_2d(g, key, g.dim(value, at))
        m = g.unsqueeze(m, [i for i in range(lead + meta.rank) if i not in (0, at)])
        mask = m if mask is None else g.op("And", [mask, m])
    return mask


def zero_padding(g: Graph, value: str, meta: PortMeta, lead: int) -> str:
    """``value`` with every padded position exactly 0 (``Where``: NaN and inf go too)."""
    mask = valid_positions(g, value, meta, lead)
    if mask is None:
        return value
    return g.where(mask, value, g.const(0, np.int64 if meta.integer else np.float32))


# ------------------------------------------------------------------------ one step
class StepLowering:
    """What a lowering function sees of its step (the ONNX counterpart of ``StepContext``)."""

    def __init__(self, lowerer: Lowerer, g: Graph, step: Step, values: dict[int, str],
                 lead: int):
        self.lowerer, self.g, self.step, self.lead = lowerer, g, step, lead
        self._values = values

    @property
    def layer(self) -> Any:
        return self.step.layer

    @property
    def params(self) -> Any:
        return self.step.layer.params

    def where(self, port: str | None = None) -> str:
        return where(self.step.path, port)

    def error(self, message: str) -> NetError:
        """A ``NetError`` about this node: ``<Layer> at node '...': message``."""
        return NetError(f"{type(self.layer).__name__} at {self.where()}: {message}")

    def require(self, opset: int, what: str) -> None:
        self.lowerer.require(opset, f"{what} ({type(self.layer).__name__} at {self.where()})")

    # ------------------------------------------------------------------ values
    def meta(self, port: str) -> PortMeta:
        step = self.step
        return step.ins[port] if port in step.ins else step.outs[port]

    def dims(self, port: str) -> tuple:
        return self.meta(port).dims

    def rank(self, port: str) -> int:
        return self.meta(port).rank

    def x(self, port: str) -> str:
        """The value of input ``port``."""
        return self._values[self.step.ins[port].slot]

    def has(self, port: str) -> bool:
        return port in self.step.ins

    def real(self, port: str) -> str:
        """Input ``port`` as float32 (integers and indices are cast, as NumPy promotes)."""
        x = self.x(port)
        return self.g.cast(x, FLOAT) if self.meta(port).integer else x

    def passed(self, value: str, out: str = "Output", src: str = "Input") -> str:
        """``value``, computed from input ``src`` by moving elements (a layer passing indices
        through), as output ``out`` holds it: cast to float32 where inference made ``out`` real
        (its element type unknown), as the executor casts it."""
        if self.meta(src).integer and not self.meta(out).integer:
            return self.g.cast(value, FLOAT)
        return value

    # ------------------------------------------------------------------ lengths
    def lengths(self, port: str, axis: int = 0) -> str | None:
        """The ``(batch,)`` int64 lengths of varying dim ``axis`` of ``port``, or None."""
        return lengths_of(self.g, self.meta(port).keys[axis])

    def set_lengths(self, port: str, lengths: str, axis: int = 0) -> None:
        set_lengths(self.g, self.meta(port).keys[axis], lengths)

    def valid(self, port: str, value: str, axes: Iterable[int] | None = None) -> str | None:
        """Bool mask of the valid positions of ``value`` (a value of ``port``)."""
        return valid_positions(self.g, value, self.meta(port), self.lead, axes)

    def rows(self, lengths: str, value: str) -> str:
        """``lengths`` (per example) for every row of ``value``'s leading axes, flattened:
        ``(batch * ...,)``, the batch first (lengths are keyed to the first leading axis)."""
        if self.lead == 1:
            return lengths
        g = self.g
        per = g.unsqueeze(lengths, list(range(1, self.lead)))
        return g.reshape(g.op("Expand", [per, g.dims(value, 0, self.lead)]), [-1])

    # ------------------------------------------------------------------ arrays
    def array(self, name: str) -> np.ndarray:
        """The value of this layer's array ``name`` (float32)."""
        return self.lowerer.arrays[self.step.arrays[name]]

    def initializer(self, name: str, transform: str = "",
                    fn: Callable[[], np.ndarray] | None = None) -> str:
        """The initializer holding array ``name`` (a full path tuple or this layer's array
        name), or ``fn()`` stored under the array's name plus ``transform`` (a transposed or
        concatenated copy made at export time)."""
        path = self.step.arrays[name] if isinstance(name, str) else name
        label = "/".join(map(str, path)) + transform
        value = self.lowerer.arrays[path] if fn is None else fn()
        return self.g.initializer(label, np.asarray(value, dtype=np.float32))

    def derived(self, suffix: str, fn: Callable[[], np.ndarray]) -> str:
        """An initializer computed at export time from this layer's arrays (e.g. the stacked
        gate weights of a recurrent layer), named ``<node path>:<suffix>``."""
        label = "/".join(map(str, self.step.path)) + ":" + suffix
        return self.g.initializer(label, np.asarray(fn(), dtype=np.float32))

    # ------------------------------------------------------------------ sub-nets
    def sub(self, name: str, inputs: dict[str, str], lead: int, g: Graph | None = None) -> dict:
        """Lower the sub-net ``name`` (e.g. ``"ScoringNet"``, ``"Net"``) on ``inputs`` with
        ``lead`` leading axes into ``g`` (default: this step's graph)."""
        return self.lowerer.lower_plan(g or self.g, self.step.subplans[name], inputs, lead)

    # ------------------------------------------------------------------ leading axes
    def broadcast_lead(self, values: list[str], ranks: list[int]) -> list[str]:
        """``values`` (examples of ranks ``ranks``) expanded to their common leading shape
        (only needed inside sub-nets, where the Input and Query sides broadcast)."""
        if self.lead == 1 or len(values) < 2:
            return values
        g = self.g
        leads = [g.dims(v, 0, self.lead) for v in values]
        common = leads[0]
        for other in leads[1:]:
            common = g.op("Max", [common, other])
        return [g.op("Expand", [v, g.concat([common, g.dims(v, self.lead)], 0)])
                if r else g.op("Expand", [v, common]) for v, r in zip(values, ranks)]
