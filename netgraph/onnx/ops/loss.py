"""CrossEntropyLossLayer, MeanSquaredLossLayer, MeanAbsoluteLossLayer: one Loss per example,
the mean over each example's valid positions::

    Loss = ReduceSum(Where(valid, e, 0)) / count      count = product of the (true) lengths

with the per-position loss ``e`` as in netgraph (``eps`` = 2.22e-16)::

    "Index"          e = -Log(Max(GatherElements(p, target), eps))
    "Probabilities"  e = -ReduceSum(t * Log(Max(p, eps)), class axis)
    "Binary"         e = -(t * Log(p + eps) + (1 - t) * Log(1 - p + eps))
    MeanSquared      e = (x - t)²,      MeanAbsolute   e = |x - t|
"""

from __future__ import annotations

import math

from .._library import EPS
from ..builder import FLOAT
from ..lower import StepLowering


def _per_position(c: StepLowering, x: str, t: str) -> str:
    g, layer = c.g, c.layer
    name = type(layer).__name__
    if name == "MeanSquaredLossLayer":
        d = g.op("Sub", [x, t])
        return g.op("Mul", [d, d])
    if name == "MeanAbsoluteLossLayer":
        return g.op("Abs", [g.op("Sub", [x, t])])
    form = c.params.form
    eps, one = g.f32(EPS), g.f32(1.0)
    if form == "Index":
        p = g.squeeze(g.op("GatherElements", [x, g.unsqueeze(t, [-1])], axis=-1), [-1])
        return g.op("Neg", [g.op("Log", [g.op("Max", [p, eps])])])
    if form == "Probabilities":
        logp = g.op("Log", [g.op("Max", [x, eps])])
        return g.op("Neg", [g.reduce_sum(g.op("Mul", [t, logp]), [-1])])
    lp = g.op("Log", [g.op("Add", [x, eps])])
    lq = g.op("Log", [g.op("Add", [g.op("Sub", [one, x]), eps])])
    both = g.op("Add", [g.op("Mul", [t, lp]), g.op("Mul", [g.op("Sub", [one, t]), lq])])
    return g.op("Neg", [both])


def lower_loss(c: StepLowering) -> dict[str, str]:
    g, L = c.g, c.lead
    x = c.real("Input")
    index = type(c.layer).__name__ == "CrossEntropyLossLayer" and c.params.form == "Index"
    t = c.x("Target") if index else c.real("Target")
    e = _per_position(c, x, t)
    per_class = type(c.layer).__name__ == "CrossEntropyLossLayer" and c.params.form != "Binary"
    dims = c.dims("Input")
    pos = dims[:len(dims) - per_class]
    if not pos:
        return {"Loss": e}
    axes = list(range(L, L + len(pos)))
    valid = c.valid("Input", x, axes=range(len(pos)))
    if valid is not None and per_class:
        valid = g.squeeze(valid, [L + len(pos)])
    total = g.reduce_sum(g.where(valid, e, g.f32(0.0)), axes)
    # count = the product of the fixed sizes and of each varying axis's lengths (per
    # example, keyed to the batch axis) or padded size (lengths nobody gave)
    count = g.const(math.prod(d for d in pos if d is not None))
    for axis, d in enumerate(pos):
        if d is not None:
            continue
        n = c.lengths("Input", axis)
        if n is not None and L > 1:
            n = g.unsqueeze(n, list(range(1, L)))
        count = g.op("Mul", [count, g.dim(x, L + axis) if n is None else n])
    return {"Loss": g.op("Div", [total, g.cast(count, FLOAT)])}
