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
        """The gate blocks stacked: ``(Wx, Ws, Wxb_h, Ws_h)``, with ``Wx`` (G·n, k) and
        ``Ws`` (G·n, n) as the backward needs them and, for the forward, ``[Wx | b]``
        (G·n, k+1) (the biases a last column: the projection's GEMM adds them) and ``Ws``
        with the rows of the sigmoid gates halved (the cells take ``z/2`` there). Derived
        once for the net's own arrays, which are read-only and own their memory, so never
        change (identity checked on every call); each call for any other arrays (those
        NetTrain updates in place, gradcheck's perturbed copies, the float64 copies of a
        float64 run)."""
        sources = tuple(map(arrays.__getitem__, self._array_order()))
        memo = self.cached("stacked_gates", dict)  # this net's own: "hit" -> (sources, stacked)
        hit = memo.get("hit")
        if hit is not None and all(map(operator.is_, hit[0], sources)):
            return hit[1]
        G = len(self.gates)
        Wx, Ws = np.concatenate(sources[:G]), np.concatenate(sources[G:2 * G])
        (rows, k), dt = Wx.shape, Wx.dtype
        half = memo.get((rows, dt))  # the factor of each gate row: 1/2 for the sigmoids
        if half is None:
            half = memo[(rows, dt)] = np.ones((rows, 1), dt)
            half[:self.cell.sigmoid_blocks * Ws.shape[1]] = 0.5
        Wxb_h = np.empty((rows, k + 1), dt)
        np.multiply(Wx, half, out=Wxb_h[:, :k])
        np.concatenate(sources[2 * G:], out=Wxb_h[:, k])
        Wxb_h[:, k:] *= half
        stacked = (Wx, Ws, Wxb_h, Ws * half)
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
        Wx, Ws, Wxb_h, Ws_h = self._stacked(arrays)
        (G, n), dt = Ws.shape, x.dtype
        valid = ctx.valid_mask("Input", T)  # (examples, T); None: nothing padded
        if valid is not None and lead != valid.shape[:1]:  # the rows are not the examples
            valid = None
        x = x.reshape(B, T, k)
        init = [starts[p].reshape(B, n) if p in starts else None for p in self.optional_inputs]
        parts = _cells.row_parts(B, n, G)
        product = (G, parts[0].stop, n)  # a loop's per-step products (m, n, k)
        prepared = [_part_inputs(x[r], None if valid is None else valid[r],
                                 [None if s is None else s[r] for s in init], Wxb_h, n)
                    for r in parts]
        steps = [part_steps for _, part_steps, _ in prepared]
        runs = _cells.over_parts(lambda j: self.cell.forward(prepared[j][0], Ws_h,
                                                             prepared[j][2], steps[j]),
                                 len(parts), product)
        out = np.empty((B, T, n), dt)
        for r, part_steps, (states, _) in zip(parts, steps, runs, strict=True):
            seq = states[0][1:].transpose(2, 0, 1)  # (b, T, n)
            if part_steps.mask is None:
                out[r] = seq
            else:  # the output is 0 past each example's end
                np.multiply(seq, part_steps.mask.transpose(2, 0, 1), out=out[r])
        outs = {"Output": out.reshape(lead + (T, n))}
        states_out = self.cached("states_out", lambda: set(self.output_ports))
        for j, p in enumerate(self.optional_inputs):
            if p in states_out:
                outs[p] = _rows_of(parts, [states[j][T] for states, _ in runs],
                                   dt).reshape(lead + (n,))

        def backward(g):
            go = g.get("Output")
            go = None if go is None else go.reshape(B, T, n)
            final = [None if g.get(p) is None else g[p].reshape(B, n)
                     for p in self.optional_inputs]
            init_grads = any(p in ins for p in self.optional_inputs)

            def loop(j: int):
                r = parts[j]
                b = r.stop - r.start
                go_j = (np.zeros((T, n, b), dt) if go is None else
                        np.ascontiguousarray(go[r].transpose(1, 2, 0)))
                final_j = [np.zeros((n, b), dt) if f is None else np.ascontiguousarray(f[r].T)
                           for f in final]
                return self.cell.backward(go_j, final_j, Ws.T, *runs[j], steps[j], init_grads)

            backs = _cells.over_parts(loop, len(parts), product)
            dx, sums = np.empty((B, T, k), dt), None
            for r, (dA, dZ, _), (states, _) in zip(parts, backs, runs, strict=True):
                dx[r], terms = _part_grads(dA, dZ, states[0], x[r], Wx, init[0] is None)
                sums = terms if sums is None else [u + v for u, v in zip(sums, terms)]
            dWx, dWs, db = sums
            grads = {}
            for j, g_name in enumerate(self.gates):
                rows = slice(j * n, (j + 1) * n)
                grads.update({f"{g_name}InputWeights": dWx[rows],
                              f"{g_name}StateWeights": dWs[rows], f"{g_name}Biases": db[rows]})
            in_grads = {"Input": sum_to(dx.reshape(lead + (T, k)), ins["Input"].shape)}
            for j, p in enumerate(self.optional_inputs):
                if p in ins:
                    d = _rows_of(parts, [d_init[j] for _, _, d_init in backs], dt)
                    in_grads[p] = sum_to(d.reshape(lead + (n,)), ins[p].shape)
            return in_grads, grads

        return outs, backward


def _part_inputs(x: np.ndarray, valid: np.ndarray | None, init: list, Wxb_h: np.ndarray,
                 n: int) -> tuple[np.ndarray, _cells.Steps, list[np.ndarray]]:
    """One part's inputs, feature-major and batch last (see :mod:`._cells`), from its ``b``
    examples ``x`` (b, T, k), their valid steps (b, T) and initial states (b, n) or None:
    ``A`` (T, G·n, b), the input projections plus biases of all steps and gates (one batched
    GEMM, each step's inputs with a row of ones; one GEMM for one example, whose (T, 1, G·n)
    rows are that layout already), its valid steps (:class:`._cells.Steps`, from the mask
    (T, 1, b) or None) and the initial states (n, b) (None: zeros)."""
    b, T, k = x.shape
    if b == 1:
        A = matmul(_with_ones(x.reshape(T, k), 1), Wxb_h.T).reshape(T, -1, 1)
    else:
        A = matmul(Wxb_h, _with_ones(x.transpose(1, 2, 0), 1))
    mask = None if valid is None else np.ascontiguousarray(valid.T)[:, None]
    return A, _cells.Steps(mask, T, n), [None if s is None else np.ascontiguousarray(s.T)
                                        for s in init]


def _with_ones(a: np.ndarray, axis: int) -> np.ndarray:
    """A C-contiguous copy of ``a`` with one more entry along ``axis`` (1 or -1), all ones:
    the factor of the biases in a product."""
    shape = list(a.shape)
    shape[axis] += 1
    out = np.empty(shape, a.dtype)
    body = [slice(None)] * a.ndim
    body[axis] = slice(0, a.shape[axis])
    out[tuple(body)] = a
    body[axis] = slice(a.shape[axis], None)
    out[tuple(body)] = 1
    return out


def _part_grads(dA: np.ndarray, dZ: np.ndarray, H: np.ndarray, x: np.ndarray,
                Wx: np.ndarray, zero_start: bool) -> tuple[np.ndarray, list[np.ndarray]]:
    """One part's input gradient (b, T, k) and its terms of ``[dWx, dWs, db]``, from the
    gradients of its gate pre-activations ``dA`` and state products ``dZ`` (T, G·n, b), its
    states ``H`` (T+1, n, b) and inputs ``x`` (b, T, k): each one GEMM over all steps, with
    the gradients gate-major (G·n, T·b) and the columns (step, example). A state that
    starts at 0 (``zero_start``) adds nothing to ``dWs`` at the first step: its columns are
    left out."""
    T, G, b = dA.shape
    dA_g = np.ascontiguousarray(dA.transpose(1, 0, 2)).reshape(G, T * b)
    dZ_g = dA_g if dZ is dA else np.ascontiguousarray(dZ.transpose(1, 0, 2)).reshape(G, T * b)
    x_rows = _with_ones(x.transpose(1, 0, 2), -1).reshape(T * b, -1)  # [x | 1]: dWx, db
    t0 = int(zero_start)  # the first step whose state counts
    s_rows = np.ascontiguousarray(H[t0:-1].transpose(0, 2, 1)).reshape(-1, H.shape[1])
    dx, dWxb, dWs = matmul(dA_g.T, Wx), matmul(dA_g, x_rows), matmul(dZ_g[:, t0 * b:], s_rows)
    return dx.reshape(T, b, -1).transpose(1, 0, 2), [dWxb[:, :-1], dWs, dWxb[:, -1]]


def _rows_of(parts: list[slice], columns: list[np.ndarray], dtype: Any) -> np.ndarray:
    """The (B, n) array whose rows ``parts[j]`` are the (n, b) ``columns[j]`` transposed."""
    if len(parts) == 1:
        return np.ascontiguousarray(columns[0].T)
    out = np.empty((parts[-1].stop, columns[0].shape[0]), dtype)
    for r, c in zip(parts, columns, strict=True):
        out[r] = c.T
    return out


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
