"""EmbeddingLayer and the sequence layers, on each example's true length: ``Gather`` (rows
of the weights; the true last element with ``GatherND``), ``Slice`` (Most/Rest, lengths - 1)
and ``ReverseSequence``."""

from __future__ import annotations

import numpy as np

from ..lower import StepLowering

_END = np.iinfo(np.int64).max


def lower_embedding(c: StepLowering) -> dict[str, str]:
    """``W[x]`` = ``Gather(W, x, axis=0)`` (padded indices were sanitized to 0)."""
    return {"Output": c.g.op("Gather", [c.initializer("Weights"), c.x("Input")], axis=0)}


def lower_sequence_last(c: StepLowering) -> dict[str, str]:
    """``x[length - 1]``: ``Gather`` of the last position for a fixed length, ``GatherND``
    with one index per row of the leading axes for varying lengths."""
    g, lead = c.g, c.lead
    x = c.x("Input")
    lens = c.lengths("Input")
    if lens is None:
        y = g.op("Gather", [x, g.op("Sub", [g.dim(x, lead), g.const(1)])], axis=lead)
        return {"Output": c.passed(y)}
    last = g.op("Sub", [lens, g.const(1)])
    if lead > 1:
        last = g.op("Expand", [g.unsqueeze(last, list(range(1, lead))), g.dims(x, 0, lead)])
    y = g.op("GatherND", [x, g.unsqueeze(last, [lead])], batch_dims=lead)
    return {"Output": c.passed(y)}


def _drop_one(c: StepLowering, start: int, end: int) -> dict[str, str]:
    g = c.g
    x = c.x("Input")
    y = g.op("Slice", [x, g.i64(start), g.i64(end), g.i64(c.lead)])
    lens = c.lengths("Input")
    if lens is not None:
        c.set_lengths("Output", g.op("Sub", [lens, g.const(1)]))
    return {"Output": c.passed(y)}


def lower_sequence_most(c: StepLowering) -> dict[str, str]:
    """All but the last: ``Slice(0, -1)``; the true last element becomes padding (zeroed)."""
    return _drop_one(c, 0, -1)


def lower_sequence_rest(c: StepLowering) -> dict[str, str]:
    """All but the first: ``Slice(1, end)``; the zero padding shifts along."""
    return _drop_one(c, 1, _END)


def lower_sequence_reverse(c: StepLowering) -> dict[str, str]:
    """``ReverseSequence`` over each example's true length (padding stays at the end); a
    fixed length is a reversing ``Slice``."""
    g, lead = c.g, c.lead
    x = c.x("Input")
    lens = c.lengths("Input")
    if lens is None:
        y = g.op("Slice", [x, g.i64(-1), g.i64(-_END), g.i64(lead), g.i64(-1)])
        return {"Output": c.passed(y)}
    rank = lead + c.rank("Input")
    # ReverseSequence wants (batch, time, ...): bring the time axis next to the batch one
    perm = [0, lead] + list(range(1, lead)) + list(range(lead + 1, rank))
    inverse = [int(i) for i in np.argsort(perm)]
    y = g.op("ReverseSequence", [g.transpose(x, perm), lens], batch_axis=0, time_axis=1)
    return {"Output": c.passed(g.transpose(y, inverse))}
