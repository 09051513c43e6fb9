"""LinearLayer and DotLayer: ``MatMul`` (+ ``Add``), with ``Reshape`` around it for ranks
other than a vector. Leading axes broadcast as ``MatMul``'s batch dims do."""

from __future__ import annotations

import math

from ..lower import StepLowering


def lower_linear(c: StepLowering) -> dict[str, str]:
    """``y = W x + b`` = ``MatMul(x, Wᵀ) + b`` (a rank > 1 input flattened first; a tuple of
    output dims reshaped after; ``n = ()``: ``MatMul(x, w)`` with ``w`` as an ``(in, 1)``
    matrix, then ``Squeeze``: onnxruntime runs a matrix product with a vector as one small
    product per row, several times slower)."""
    g, lead = c.g, c.lead
    x = c.real("Input")
    if c.rank("Input") != 1:
        x = g.reshape(x, [0] * lead + [-1])
    W = c.array("Weights")
    if W.ndim == 1:
        y = g.squeeze(g.op("MatMul", [x, c.initializer("Weights", ":col", lambda: W[:, None])]),
                      [-1])
    else:
        y = g.op("MatMul", [x, c.initializer("Weights", ":T", lambda: W.T)])
    if "Biases" in c.step.arrays:
        y = g.op("Add", [y, c.initializer("Biases")])
    out = c.dims("Output")
    if len(out) > 1:
        y = g.reshape(y, [0] * lead + list(out))
    return {"Output": y}


def lower_dot(c: StepLowering) -> dict[str, str]:
    """``Dot[a, b]``: ``a`` as ``(lead, prod A, z)``, ``b`` as ``(lead, z, prod C)``, one
    ``MatMul``, reshaped to ``(lead, A, C)`` (a varying dim of A is the one ``-1``)."""
    g, lead = c.g, c.lead
    a, b = c.real("Input1"), c.real("Input2")
    A, C = c.dims("Input1")[:-1], c.dims("Input2")[1:]
    if not A:
        a = g.unsqueeze(a, [lead])
    elif len(A) > 1:
        a = g.reshape(a, [0] * lead + [-1, c.dims("Input1")[-1]])
    if not C:
        b = g.unsqueeze(b, [lead + 1])
    elif len(C) > 1:
        b = g.reshape(b, [0] * lead + [-1, math.prod(C)])
    y = g.op("MatMul", [a, b])
    if len(A) != 1 or len(C) != 1:
        y = g.reshape(y, [0] * lead + [-1 if d is None else d for d in A + C])
    return {"Output": y}
