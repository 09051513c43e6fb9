"""Training progress measurements (``training_progress_measurements``).

A measurement is ``"Loss"``, ``"ErrorRate"``, ``"Accuracy"``, ``"SequenceAccuracy"`` or a
custom ``(name, f)``. Each round measures on the training batches (from each batch's own
forward pass, so the training ``"Loss"`` is the round loss) and, with a validation set, on the
validation set. For the classification measurements the output is the one trained against
``Index(n)`` targets (``CrossEntropyLossLayer("Index")``): an element is right when the
output's largest class (the first, on ties) is the target. For an example with elements
``1..n`` (its true length for a sequence)::

    accuracy_i = #right / n          sequence_right_i = (#right == n)

and over ``N`` examples ``Accuracy = sum accuracy_i / N``, ``ErrorRate = 1 - Accuracy``,
``SequenceAccuracy = sum sequence_right_i / N``. A custom ``f(outputs, targets) -> float``
is called on every batch in user form (one trained output: its batch value and its target;
several: dicts port -> value; a sequence port as a list of unpadded examples) and averaged
over the batches weighted by their sizes.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..batch import from_batch
from ..compile import PortMeta
from ..errors import NetError
from ..execute import RunContext
from ..shapes import Index

__all__ = ["Measurement", "parse_measurements", "watched", "MeasurePorts", "classified_port",
           "BatchOutputs", "Meter", "BUILTIN"]

BUILTIN = ("Loss", "ErrorRate", "Accuracy", "SequenceAccuracy")
_CLASSIFICATION = BUILTIN[1:]


@dataclass(frozen=True)
class Measurement:
    name: str
    #: a name of :data:`BUILTIN`, or "Custom"
    kind: str
    fn: Callable[[Any, Any], Any] | None = None

    @property
    def lower_is_better(self) -> bool:
        """Losses and error rates fall as a net improves (a custom measurement whose name
        holds "loss" or "error", in any case, too); accuracies rise."""
        if self.kind != "Custom":
            return self.kind in ("Loss", "ErrorRate")
        return "loss" in self.name.lower() or "error" in self.name.lower()


def _one(m: Any) -> Measurement:
    if isinstance(m, str) and m in BUILTIN:
        return Measurement(m, m)
    if isinstance(m, tuple) and len(m) == 2 and isinstance(m[0], str) and callable(m[1]):
        if m[0] in BUILTIN:
            raise NetError(f"NetTrain: the custom measurement name {m[0]!r} is a built-in "
                           "measurement's; choose another name")
        return Measurement(m[0], "Custom", m[1])
    raise NetError(f"NetTrain: unknown training_progress_measurements entry {m!r}; use one of "
                   f"{list(BUILTIN)} or (name, f) with f(outputs, targets) -> number")


def parse_measurements(spec: Any) -> list[Measurement]:
    """The measurements of ``training_progress_measurements`` (None, one, or a list)."""
    if spec is None:
        return []
    items = [spec] if isinstance(spec, (str, tuple)) else spec
    if not isinstance(items, list):
        raise NetError("NetTrain: training_progress_measurements must be None or a list of "
                       f"measurements, got {type(spec).__name__}")
    out = [_one(m) for m in items]
    names = [m.name for m in out]
    dup = next((n for n in names if names.count(n) > 1), None)
    if dup is not None:
        raise NetError(f"NetTrain: measurement {dup!r} is listed twice")
    return out


def watched(name: str, listed: list[Measurement]) -> Measurement:
    """The measurement a stopping criterion names: a listed one, or a built-in one."""
    for m in listed:
        if m.name == name:
            return m
    if name in BUILTIN:
        return Measurement(name, name)
    raise NetError(f"NetTrain: the training_stopping_criterion watches {name!r}, which is "
                   f"neither a built-in measurement {list(BUILTIN)} nor one listed in "
                   f"training_progress_measurements ({[m.name for m in listed]})")


@dataclass
class MeasurePorts:
    """Where a batch's outputs and targets are: the trained user output ports with the
    metas of their values in the training plan, and the target ports."""

    outputs: dict[str, PortMeta]
    targets: dict[str, PortMeta]
    #: the output trained against Index(n) targets, for the classification measurements
    classified: str | None = None

    def check(self, measurements: list[Measurement]) -> None:
        need = [m.name for m in measurements if m.kind in _CLASSIFICATION]
        if need and self.classified is None:
            raise NetError(f"NetTrain: measurement {need[0]!r} needs exactly one output trained "
                           "against Index(n) targets (CrossEntropyLossLayer(\"Index\")); this "
                           f"training has outputs {list(self.outputs)} with targets "
                           f"{ {p: str(m.elem) for p, m in self.targets.items()} }: use a "
                           "custom (name, f) measurement")


def classified_port(outputs: dict[str, PortMeta], targets: dict[str, PortMeta]) -> str | None:
    """The one output whose target is ``Index(n)`` of one rank less, n its last dimension."""
    found = [p for p, m in outputs.items() if p in targets and
             isinstance(targets[p].elem, Index) and targets[p].rank == m.rank - 1 and
             m.dims[-1] == targets[p].elem.n]
    return found[0] if len(found) == 1 else None


@dataclass
class BatchOutputs:
    """One batch's padded output values and targets (by port) and its sequence lengths."""

    outputs: dict[str, np.ndarray]
    targets: dict[str, np.ndarray]
    lengths: dict[Any, np.ndarray]
    size: int


@dataclass
class Meter:
    """One round's (or one validation pass's) measurement sums."""

    measurements: list[Measurement]
    ports: MeasurePorts
    count: int = 0
    sums: dict[str, float] = field(default_factory=dict)

    def add(self, out: BatchOutputs) -> None:
        self.count += out.size
        kinds = {m.kind for m in self.measurements}
        if kinds & set(_CLASSIFICATION):
            acc, seq = self._classification(out)
            self.sums["Accuracy"] = self.sums.get("Accuracy", 0.0) + acc
            self.sums["SequenceAccuracy"] = self.sums.get("SequenceAccuracy", 0.0) + seq
        for m in self.measurements:
            if m.kind == "Custom":
                self.sums[m.name] = self.sums.get(m.name, 0.0) + self._custom(m, out) * out.size

    def values(self, loss: float) -> dict[str, float]:
        """Name -> value, in the order listed; ``loss`` is the round's (or validation) loss."""
        n = max(self.count, 1)
        out = {}
        for m in self.measurements:
            if m.kind == "Loss":
                out[m.name] = loss
            elif m.kind == "ErrorRate":
                out[m.name] = 1.0 - self.sums["Accuracy"] / n
            elif m.kind == "Custom":
                out[m.name] = self.sums[m.name] / n
            else:
                out[m.name] = self.sums[m.kind] / n
        return out

    def _classification(self, out: BatchOutputs) -> tuple[float, float]:
        """Sums over the batch's examples of accuracy_i and sequence_right_i."""
        port = self.ports.classified
        value, target, meta = out.outputs[port], out.targets[port], self.ports.targets[port]
        right = np.argmax(value, axis=-1) == target
        valid = RunContext(arrays={}, lengths=out.lengths).valid_ones(target.shape, meta, bool)
        B = target.shape[0]
        n = valid.reshape(B, -1).sum(axis=1)
        k = (right & valid).reshape(B, -1).sum(axis=1)
        return float((k / n).sum()), float((k == n).sum())

    def _custom(self, m: Measurement, out: BatchOutputs) -> float:
        outputs = {p: from_batch(v, self.ports.outputs[p], out.lengths, True)
                   for p, v in out.outputs.items()}
        targets = {p: from_batch(v, self.ports.targets[p], out.lengths, True)
                   for p, v in out.targets.items()}
        if len(outputs) == 1:
            port = next(iter(outputs))
            value = m.fn(outputs[port], targets.get(port))
        else:
            value = m.fn(outputs, targets)
        if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real) or \
                math.isnan(value):
            raise NetError(f"NetTrain: measurement {m.name!r} returned {value!r}; f(outputs, "
                           "targets) must return a real number")
        return float(value)
