"""Recurrent layers: BasicRecurrentLayer, GatedRecurrentLayer, LongShortTermMemoryLayer.

Ports: ``Input`` (a sequence of k-vectors, fixed or varying length) -> ``Output`` (the sequence
of n-vector states, same length variable). Optional ports, present only where a NetGraph
connects them: an input ``State`` (and ``CellState`` for the LSTM), the initial state (zeros
otherwise), and an output ``State`` (``CellState``), the state after each example's true last
step (solver key ``"out:State"`` when the input is present too).

Equations (``s`` the state, ``x_t`` the input, ``σ`` the logistic sigmoid, one bias per gate)::

    Basic:  s_t = tanh(W_x x_t + W_s s_{t-1} + b)
    GRU:    i_t = σ(W_ix x_t + W_is s_{t-1} + b_i)            input (update) gate
            r_t = σ(W_rx x_t + W_rs s_{t-1} + b_r)            reset gate
            m_t = tanh(W_mx x_t + r_t ⊙ (W_ms s_{t-1}) + b_m)  memory; reset after the matmul
            s_t = (1 - i_t) ⊙ m_t + i_t ⊙ s_{t-1}
    LSTM:   i_t, o_t, f_t = σ(W_·x x_t + W_·s s_{t-1} + b_·)   input, output, forget gates
            m_t = tanh(W_mx x_t + W_ms s_{t-1} + b_m)
            c_t = f_t ⊙ c_{t-1} + i_t ⊙ m_t,   s_t = o_t ⊙ tanh(c_t)

Arrays ``<Gate>InputWeights`` (n, k), ``<Gate>StateWeights`` (n, n), ``<Gate>Biases`` (n,);
``ForgetGateBiases`` start at 1. Past an example's length the state is frozen and the output
is 0. Speed: the inputs of all steps are projected for all gates in one GEMM before the loop;
the loop does one state GEMM per step; BPTT runs the loop in reverse and gets every weight
gradient from one GEMM over all steps afterwards. The products outside the time loops go
through :func:`netgraph.extend.matmul` (BLAS threads chosen for their size); the loops run
with BLAS at one thread (:mod:`._cells`).
"""

from __future__ import annotations

import functools
import math
import operator
from typing import Any, ClassVar

import numpy as np
from pydantic import field_validator

from netgraph.extend import Automatic, Int, Layer, Params, matmul

from . import _cells
from ._ops import broadcast_lead, sum_to

__all__ = ["BasicRecurrentLayer", "GatedRecurrentLayer", "LongShortTermMemoryLayer"]


def _signature(gates: tuple[str, ...], states: tuple[str, ...] = ("State",)) -> str:
    """Ports ``Input[*t, k] -> Output[*t, n]``, the optional states ``[n]``, and per gate the
    arrays ``<gate>InputWeights[n, k]``, ``<gate>StateWeights[n, n]``, ``<gate>Biases[n]``."""
    s = "".join(f", {p}[n]" for p in states)
    arrays = ", ".join(f"{g}InputWeights[n, k], {g}StateWeights[n, n], {g}Biases[n]"
                       for g in gates)
    return f"Input[*t, k]{s} -> Output[*t, n]{s}; {arrays}"


class RecurrentParams(Params):
    n: Int | None = None

    @field_validator("n")
    @classmethod
    def _positive(cls, v):
        if v is not None and v < 1:
            raise ValueError("the state size must be a positive int")
        return v


class _Recurrent(Layer):
    """The shared unroller: shape rules, input projection, masks, states and weight grads.
    Subclasses name their gates and pick a cell from :mod:`netgraph.layers._cells`."""

    Params = RecurrentParams
    optional_inputs = ("State",)
    optional_outputs = ("State",)
    pad_clean = True
    real_outputs = ("Output", "State", "CellState")
    #: array-name prefixes, in the order of the concatenated gate blocks
    gates: ClassVar[tuple[str, ...]] = ()
    cell: ClassVar[Any] = None

    def __init__(self, n: Any = Automatic, **ports: Any):
        super().__init__({"n": n}, ports)

    @classmethod
    def _group(cls, kind: str) -> list[str]:
        return [f"{g}{kind}" for g in cls.gates]

    @classmethod
    @functools.cache
    def _array_order(cls) -> tuple[str, ...]:
        """The array names, input weights, state weights and biases, gate by gate."""
        return tuple(a for kind in ("InputWeights", "StateWeights", "Biases")
                     for a in cls._group(kind))

    def _stacked(self, arrays: dict) -> tuple[np.ndarray, ...]:
        """The gate blocks stacked: ``(Wx, Ws, WxT_h, b_h, WsT_h)``, with ``Wx`` (G·n, k) and
        ``Ws`` (G·n, n) as the backward needs them and, for the forward, the transposed
        (C-contiguous) weights and the biases with the rows of the sigmoid gates halved (the
        cells take ``z/2`` there). Derived once for the net's own arrays, which are read-only
        and own their memory, so never change (identity checked on every call); each call
        for any other arrays (those NetTrain updates in place, gradcheck's perturbed copies,
        the float64 copies of a float64 run)."""
        sources = tuple(map(arrays.__getitem__, self._array_order()))
        memo = self.cached("stacked_gates", dict)  # this net's own: "hit" -> (sources, stacked)
        hit = memo.get("hit")
        if hit is not None and all(map(operator.is_, hit[0], sources)):
            return hit[1]
        G = len(self.gates)
        Wx, Ws, b = (np.concatenate(sources[j * G:(j + 1) * G]) for j in range(3))
        n, dt = Ws.shape[1], Ws.dtype
        half = np.ones((Wx.shape[0], 1), dt)
        half[:self.cell.sigmoid_blocks * n] = 0.5
        stacked = (Wx, Ws, np.ascontiguousarray((Wx * half).T), b * half[:, 0],
                   np.ascontiguousarray((Ws * half).T))
        if all(not a.flags.writeable and a.base is None for a in sources):
            memo["hit"] = (sources, stacked)  # one store: threads see all of it or none
        return stacked

    def forward(self, ins, arrays, ctx):
        # the Input and the initial states may come with different broadcasting leading axes
        # (inside a scoring net): run on their common leading shape, flattened to B rows
        given = ["Input"] + [p for p in self.optional_inputs if p in ins]
        lead, full = broadcast_lead([ins[p] for p in given], [ctx.meta(p).rank for p in given])
        x, starts = full[0], dict(zip(given[1:], full[1:], strict=True))
        T, k = x.shape[-2:]
        B = math.prod(lead)
        Wx, Ws, WxT, bias, WsT = self._stacked(arrays)
        n, dt = Ws.shape[1], x.dtype
        valid = ctx.valid_mask("Input", T)  # (examples, T); None: nothing padded
        mask = None
        if valid is not None and lead == valid.shape[:1]:  # the rows are the examples
            mask = np.ascontiguousarray(valid.T)[:, :, None]  # (T, B, 1)
        xt = (x.reshape(T, k) if B == 1 else  # time-major rows
              np.ascontiguousarray(x.reshape(B, T, k).transpose(1, 0, 2)).reshape(T * B, k))
        A = matmul(xt, WxT)  # every step, every gate: one GEMM
        A += bias
        A = A.reshape(T, B, -1)
        init = [starts[p].reshape(B, n) if p in starts else np.zeros((B, n), dt)
                for p in self.optional_inputs]
        H, cache = self.cell.forward(A, WsT, init, mask)
        out = H[0][1:].transpose(1, 0, 2)
        out = np.ascontiguousarray(out) if mask is None else out * mask.transpose(1, 0, 2)
        outs = {"Output": out.reshape(lead + (T, n))}
        states_out = self.cached("states_out", lambda: set(self.output_ports))
        for p, h in zip(self.optional_inputs, H, strict=True):
            if p in states_out:
                outs[p] = h[T].reshape(lead + (n,))

        def backward(g):
            go = g.get("Output")
            go = (np.zeros((T, B, n), dt) if go is None else
                  np.ascontiguousarray(go.reshape(B, T, n).transpose(1, 0, 2)))
            final = [np.zeros((B, n), dt) if g.get(p) is None else g[p].reshape(B, n)
                     for p in self.optional_inputs]
            dA, dWs, d_init = self.cell.backward(go, final, Ws, A, H, cache, mask)
            dA2 = dA.reshape(T * B, -1)
            dWx = matmul(dA2.T, xt)
            db = dA2.sum(0)
            dx = matmul(dA2, Wx).reshape(T, B, k).transpose(1, 0, 2).reshape(x.shape)
            grads = {}
            for j, g_name in enumerate(self.gates):
                rows = slice(j * n, (j + 1) * n)
                grads.update({f"{g_name}InputWeights": dWx[rows],
                              f"{g_name}StateWeights": dWs[rows], f"{g_name}Biases": db[rows]})
            in_grads = {"Input": sum_to(dx, ins["Input"].shape)}
            for p, d in zip(self.optional_inputs, d_init, strict=True):
                if p in ins:
                    in_grads[p] = sum_to(d.reshape(lead + (n,)), ins[p].shape)
            return in_grads, grads

        return outs, backward


class BasicRecurrentLayer(_Recurrent):
    """``s_t = tanh(W_x x_t + W_s s_{t-1} + b)``; arrays ``InputWeights`` (n, k),
    ``StateWeights`` (n, n), ``Biases`` (n,). Ports as in the module docstring."""

    gates = ("",)
    signature = _signature(gates)
    array_init = {"InputWeights": "weights", "StateWeights": "weights", "Biases": "zeros"}
    cell = _cells.Basic


class GatedRecurrentLayer(_Recurrent):
    """GRU, Wolfram's variant (reset applied after the state matmul)::

        i = σ(W_ix x + W_is s + b_i),  r = σ(W_rx x + W_rs s + b_r)
        m = tanh(W_mx x + r ⊙ (W_ms s) + b_m),  s' = (1 - i) ⊙ m + i ⊙ s

    Arrays ``InputGate…``, ``ResetGate…``, ``MemoryGate…`` × ``InputWeights``/
    ``StateWeights``/``Biases``."""

    gates = ("InputGate", "ResetGate", "MemoryGate")
    signature = _signature(gates)
    array_init = {f"{g}{a}": kind for g in gates for a, kind in
                  (("InputWeights", "weights"), ("StateWeights", "weights"), ("Biases", "zeros"))}
    cell = _cells.GRU


class LongShortTermMemoryLayer(_Recurrent):
    """LSTM without peepholes::

        i, o, f = σ(W_·x x + W_·s s + b_·),  m = tanh(W_mx x + W_ms s + b_m)
        c' = f ⊙ c + i ⊙ m,  s' = o ⊙ tanh(c')

    Arrays ``InputGate…``, ``OutputGate…``, ``ForgetGate…``, ``MemoryGate…`` ×
    ``InputWeights``/``StateWeights``/``Biases``; ``ForgetGateBiases`` initialised to 1.
    Optional ports ``State`` and ``CellState`` (initial / final)."""

    optional_inputs = ("State", "CellState")
    optional_outputs = ("State", "CellState")
    gates = ("InputGate", "OutputGate", "ForgetGate", "MemoryGate")
    signature = _signature(gates, ("State", "CellState"))
    array_init = {f"{g}{a}": ("ones" if g == "ForgetGate" else "zeros") if a == "Biases"
                  else "weights" for g in gates for a in ("InputWeights", "StateWeights",
                                                          "Biases")}
    cell = _cells.LSTM
