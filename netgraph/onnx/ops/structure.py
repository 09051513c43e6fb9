"""TotalLayer, CatenateLayer, SummationLayer, ReshapeLayer, SoftmaxLayer, DropoutLayer."""

from __future__ import annotations

import numpy as np

from ..lower import StepLowering


def _axis(level: int, rank: int) -> int:
    return level if level >= 0 else rank + level


def lower_total(c: StepLowering) -> dict[str, str]:
    """``Sum`` (variadic, broadcasting)."""
    return {"Output": c.g.op("Sum", [c.x(p) for p in c.layer.input_names()])}


def lower_catenate(c: StepLowering) -> dict[str, str]:
    """``Concat`` along ``lead + level`` (leading axes expanded to a common shape first)."""
    ports = c.layer.input_names()
    r = c.rank("Output")
    numbers = not c.meta("Output").integer  # indices stay indices; anything else is real
    xs = c.broadcast_lead([c.real(p) if numbers else c.x(p) for p in ports],
                          [c.rank(p) for p in ports])
    return {"Output": c.g.op("Concat", xs, axis=c.lead + _axis(c.params.level, r))}


def lower_summation(c: StepLowering) -> dict[str, str]:
    """``ReduceSum`` over every example axis (padding is 0)."""
    axes = list(range(c.lead, c.lead + c.rank("Input")))
    return {"Output": c.g.reduce_sum(c.real("Input"), axes)}


def lower_reshape(c: StepLowering) -> dict[str, str]:
    return {"Output": c.passed(c.g.reshape(c.x("Input"), [0] * c.lead + list(c.dims("Output"))))}


def lower_softmax(c: StepLowering) -> dict[str, str]:
    """``Softmax`` along one axis; along a varying axis the padded positions become ``-inf``
    first (``Where``), so they get weight exactly 0."""
    g = c.g
    ax = _axis(c.params.level, c.rank("Input"))
    x = c.x("Input")
    valid = c.valid("Input", x, axes=(ax,))
    if valid is not None:
        x = g.where(valid, x, g.f32(-np.inf))
    return {"Output": g.op("Softmax", [x], axis=c.lead + ax)}


def lower_dropout(c: StepLowering) -> dict[str, str]:
    """The identity: an exported net runs for inference."""
    return {"Output": c.x("Input")}
