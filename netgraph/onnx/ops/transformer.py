"""NormalizationLayer, SequenceIndicesLayer and NetBidirectionalOperator.

* ``NormalizationLayer``: ``ReduceSum`` over the last axis divided by its size gives the mean
  and the (biased) variance; ``y = Scaling (x - μ) / Sqrt(σ² + ε) + Biases``.
* ``SequenceIndicesLayer(n)``: ``Min(Range(T), n - 1)`` expanded over the leading axes (the
  padded positions are zeroed by the walker).
* ``NetBidirectionalOperator``: both sub-nets lowered on the whole sequence, the backward one
  on its true-length reversal (``ReverseSequence``), its result reversed back, then
  ``Concat`` along the last axis or ``Add``.
"""

from __future__ import annotations

from ..lower import StepLowering
from .sequence import reverse


def lower_normalization(c: StepLowering) -> dict[str, str]:
    g = c.g
    x = c.x("Input")
    last = c.lead + c.rank("Input") - 1
    size = g.f32(float(c.dims("Input")[-1]))
    mean = g.op("Div", [g.reduce_sum(x, [last], keepdims=True), size])
    centered = g.op("Sub", [x, mean])
    var = g.op("Div", [g.reduce_sum(g.op("Mul", [centered, centered]), [last], keepdims=True),
                       size])
    scale = g.op("Sqrt", [g.op("Add", [var, g.f32(c.params.epsilon)])])
    y = g.op("Mul", [g.op("Div", [centered, scale]), c.initializer("Scaling")])
    return {"Output": g.op("Add", [y, c.initializer("Biases")])}


def lower_sequence_indices(c: StepLowering) -> dict[str, str]:
    g, lead = c.g, c.lead
    x = c.x("Input")
    positions = g.op("Range", [g.const(0), g.dim(x, lead), g.const(1)])
    capped = g.op("Min", [positions, g.const(c.params.n - 1)])
    return {"Output": g.op("Expand", [capped, g.dims(x, 0, lead + 1)])}


def lower_bidirectional(c: StepLowering) -> dict[str, str]:
    g = c.g
    (fi, fo), (bi, bo) = c.layer._ends().values()
    x, rank, lens = c.x("Input"), c.rank("Input"), c.lengths("Input")
    forward = c.sub("ForwardNet", {fi: x}, c.lead)[fo]
    backward = c.sub("BackwardNet", {bi: reverse(c, x, rank, lens)}, c.lead)[bo]
    backward = reverse(c, backward, c.rank("Output"), lens)
    if c.params.aggregation == "Total":
        return {"Output": g.op("Add", [forward, backward])}
    return {"Output": g.op("Concat", [forward, backward], axis=-1)}
