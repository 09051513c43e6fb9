"""BasicRecurrentLayer, GatedRecurrentLayer, LongShortTermMemoryLayer as ONNX's ``RNN``,
``GRU`` and ``LSTM`` operators, with ``sequence_lens`` for varying lengths.

Equations, checked numerically against netgraph (tests/test_onnx_layers.py):

* ``RNN``: ``H_t = tanh(X_t Wᵀ + H_{t-1} Rᵀ + Wb + Rb)`` — netgraph's basic layer with
  ``W = InputWeights``, ``R = StateWeights``, ``Wb = Biases``, ``Rb = 0``.
* ``GRU`` with ``linear_before_reset=1``: ``z = σ(X Wzᵀ + H Rzᵀ + Wbz)``,
  ``r = σ(X Wrᵀ + H Rrᵀ + Wbr)``, ``h = tanh(X Whᵀ + r ⊙ (H Rhᵀ + Rbh) + Wbh)``,
  ``H' = (1 - z) ⊙ h + z ⊙ H`` — Wolfram's GRU (reset applied after the state matmul) with
  ``z`` = the input gate, ``r`` = the reset gate, ``h`` = the memory gate, ``Rb = 0``.
* ``LSTM``: gate blocks in ONNX's order i, o, f, c — netgraph's InputGate, OutputGate,
  ForgetGate, MemoryGate, in that order; no peepholes.

With ``sequence_lens``, onnxruntime keeps each row's state after its last valid step (the
true final state, ``Y_h``/``Y_c``) and writes zeros past it in ``Y``. The operators take
``(T, batch, k)``: a Transpose either side (and a Reshape of any leading axes beyond the
batch into rows).
"""

from __future__ import annotations

import numpy as np

from ..builder import INT32
from ..lower import StepLowering

_OPS = {"BasicRecurrentLayer": "RNN", "GatedRecurrentLayer": "GRU",
        "LongShortTermMemoryLayer": "LSTM"}


def lower_recurrent(c: StepLowering) -> dict[str, str]:
    """One ``RNN``/``GRU``/``LSTM`` node (forward direction): ``W``, ``R`` the gate blocks
    stacked in netgraph's (= ONNX's) order, ``B = [biases, 0]``, the initial states from the
    ``State``/``CellState`` ports when connected, ``sequence_lens`` the lengths (int32)."""
    g, lead, layer = c.g, c.lead, c.layer
    op = _OPS[type(layer).__name__]
    gates, states = layer.gates, list(layer.optional_inputs)
    given = [p for p in states if c.has(p)]
    values = c.broadcast_lead([c.x("Input")] + [c.x(p) for p in given], [2] + [1] * len(given))
    x, inits = values[0], dict(zip(given, values[1:]))
    n = c.array(f"{gates[0]}StateWeights").shape[0]

    def stacked(kind: str) -> np.ndarray:
        return np.concatenate([c.array(f"{gate}{kind}") for gate in gates])

    W = c.derived("W", lambda: stacked("InputWeights")[None])
    R = c.derived("R", lambda: stacked("StateWeights")[None])
    B = c.derived("B", lambda: np.concatenate([stacked("Biases"),
                                               np.zeros_like(stacked("Biases"))])[None])
    rows = x if lead == 1 else g.reshape(x, g.concat([g.i64(-1), g.dims(x, lead)], 0))
    lens = c.lengths("Input")
    seq = "" if lens is None else g.cast(c.rows(lens, x), INT32)
    init = ["" if p not in inits else
            g.unsqueeze(inits[p] if lead == 1 else g.reshape(inits[p], [-1, n]), [0])
            for p in states]
    attrs = {"hidden_size": n, **({"linear_before_reset": 1} if op == "GRU" else {})}
    outs = g.op(op, [g.transpose(rows, [1, 0, 2]), W, R, B, seq] + init, 1 + len(states),
                **attrs)
    y = g.transpose(g.squeeze(outs[0], [1]), [1, 0, 2])  # (rows, T, n)
    lead_shape = None if lead == 1 else g.dims(x, 0, lead)
    result = {"Output": y if lead == 1 else g.reshape(y, g.concat([lead_shape,
                                                                   g.dims(y, 1)], 0))}
    for p, final in zip(states, outs[1:]):
        if p in c.step.outs:
            s = g.squeeze(final, [0])
            result[p] = s if lead == 1 else g.reshape(s, g.concat([lead_shape, g.i64(n)], 0))
    return result
