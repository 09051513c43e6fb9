"""Time loops of the recurrent cells (used by :mod:`layers.recurrent`), forward and BPTT.

Layout: feature-major, batch last. A loop runs over the ``b`` examples of one part of a batch
(:func:`row_parts`): ``A`` (T, G·n, b) holds the input projections (plus biases) of all steps
and gates, the states are (T+1, n, b) arrays (``[0]`` the initial state, ``[t+1]`` the state
after step t). A step adds the state GEMM ``Ws @ s_{t-1}`` (G·n, n) @ (n, b) to ``A[t]`` and
applies the gate nonlinearities in place into preallocated buffers. So every gate block of a
step, and of all steps at once, is one contiguous block: NumPy's loops over a block cut from
rows of all gates (the (b, G·n) layout) run row by row, at several times the cost (a
(7, 64, 64) block: 15 µs strided, 1.6 µs contiguous).

The first ``sigmoid_blocks`` gate blocks are sigmoids, computed as ``σ(z) = (1 + tanh(z/2))/2``
(no overflow); the caller halves their rows of the weights and biases, so ``A`` and ``Ws``
already give ``z/2`` there (the LSTM then needs one ``tanh`` for all four gates).
``steps`` (:class:`Steps`) tells which steps of each example are valid; columns past an
example's length keep their state (the forward copies ``s_{t-1}`` over them, the backward passes the
gradient through unchanged and gives their gate pre-activations a zero gradient).

``forward(A, Ws, init, steps) -> (states, cache)``: ``states`` a list of (T+1, n, b) arrays,
the state, then for the LSTM the cell state; ``init`` their initial (n, b) values, None for
zeros (then the first step needs no state product).
``backward(go, final, WsT, states, cache, steps, init_grads) -> (dA, dZ, d_init)``: ``go``
(T, n, b) the gradients of the states after each step, ``final`` those of the last states
(n, b), ``WsT`` (n, G·n) the unhalved state weights transposed, ``init_grads`` whether the
initial states' gradients are wanted (else the first step's product is skipped and
``d_init`` holds None); ``dA`` the gradients of the gate pre-activations (T, G·n, b), ``dZ``
those of the state products ``Ws s_{t-1}`` (``dA`` itself but for the GRU, whose reset gate
multiplies the memory block's product), ``d_init`` those of the initial states.

A large batch of a large layer is cut into two parts of rows whose loops run on two threads
(:func:`over_parts`: every step of an example depends on that example alone, so the parts
compute what one loop does); each loop runs with BLAS at one thread
(:func:`netgraph.extend.single_threaded`: its per-step products are too small to share, and
BLAS's own threads spin-wait between them).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from netgraph.extend import parallel_map, scratch_array, single_threaded

#: a batch of at least ``2 * PART_ROWS`` rows is cut into two halves whose time loops run on
#: two threads when each half's per-step products reach ``SPLIT_STEP_FLOPS``: below that, the
#: two loops' many short NumPy calls queue for the GIL and cost more than the second core
#: gives (LSTM fwd+bwd on 64 rows, halves / whole: 1.5-2 at 64 units, 0.76-0.89 at 128,
#: 0.70-0.72 at 256)
PART_ROWS = 16
SPLIT_STEP_FLOPS = 4e6


def row_parts(B: int, n: int, G: int) -> list[slice]:
    """The rows of a batch of ``B`` examples (state size ``n``, ``G`` gate rows in all) as
    the parts whose loops run separately: two halves for a batch and per-step products large
    enough (``PART_ROWS``, ``SPLIT_STEP_FLOPS``), else one. From the shapes alone, so results
    never depend on how many threads run the parts; the batch axis is cut, never a summed
    one."""
    if B < 2 * PART_ROWS or 2.0 * (B // 2) * n * G < SPLIT_STEP_FLOPS:
        return [slice(0, B)]
    return [slice(0, B // 2), slice(B // 2, B)]


def over_parts(loop: Callable[[int], Any], count: int, product: tuple[int, int, int]
               ) -> list:
    """``[loop(j) for j in range(count)]``, the parts shared by the threads of
    :func:`netgraph.extend.parallel_map` when there are several; BLAS at one thread either
    way. ``product``: the (m, n, k) of a loop's per-step products, for
    :func:`netgraph.extend.single_threaded` (small ones need no section)."""
    if count > 1:
        return parallel_map(loop, range(count))
    with single_threaded(product):
        return [loop(0)]


def _sigmoid_half_(z: np.ndarray) -> None:
    """In place ``σ(2h) = (1 + tanh(h)) / 2`` of the halved pre-activations ``h = z / 2``."""
    np.tanh(z, out=z)
    z *= 0.5
    z += 0.5


class Steps:
    """The valid steps of one part's ``b`` examples, found once a call for both its loops:
    ``mask`` the bool (T, 1, b) mask, None when every step is valid; ``partial[t]``: does an
    example lie past its end at step t; ``skip`` (T, n, b) the inverted mask at the state's
    shape (None without a mask): :func:`np.putmask` with a mask of its target's shape copies
    in half the time of ``np.copyto`` with a broadcast ``where``."""

    def __init__(self, mask: np.ndarray | None, T: int, n: int):
        self.mask = mask
        if mask is None:
            self.partial: Sequence[bool] = [False] * T
            self.skip = None
        else:
            self.partial = list(~mask.all(axis=(1, 2)))
            self.skip = np.repeat(~mask, n, axis=1)


def _states(init: list[np.ndarray | None], shape: tuple[int, int], T: int,
            dtype: Any) -> list[np.ndarray]:
    """(T+1, n, b) buffers for the states, ``[0]`` set to ``init`` (zeros for None)."""
    out = []
    for s in init:
        buf = scratch_array((T + 1,) + shape, dtype)
        buf[0] = 0 if s is None else s
        out.append(buf)
    return out


class Basic:
    """``s_t = tanh(a_t + W_s s_{t-1})``."""

    sigmoid_blocks = 0

    @staticmethod
    def forward(A, Ws, init, steps):
        T, n, b = A.shape
        part, skip = steps.partial, steps.skip
        (H,) = _states(init, (n, b), T, A.dtype)
        given = init[0] is not None  # else the state starts at 0, and so does its product
        for t in range(T):
            s = H[t + 1]
            if t or given:
                np.matmul(Ws, H[t], out=s)
            else:
                s.fill(0)
            s += A[t]
            np.tanh(s, out=s)
            if part[t]:
                np.putmask(s, skip[t], H[t])
        return [H], None

    @staticmethod
    def backward(go, final, WsT, states, cache, steps, init_grads):
        (H,) = states
        T, n = go.shape[:2]
        mask, part, skip = steps.mask, steps.partial, steps.skip
        dA = scratch_array(go.shape, go.dtype)
        np.multiply(H[1:], H[1:], out=dA)  # tanh' = 1 - s², zero past each example's end,
        np.subtract(1, dA, out=dA)  # in dA until the step's gradient replaces it
        if mask is not None:
            dA *= mask
        ds = final[0]
        for t in range(T - 1, -1, -1):
            ds = ds + go[t]
            dA[t] *= ds
            if not (t or init_grads):
                return dA, dA, [None]
            new = WsT @ dA[t]
            if part[t]:
                np.putmask(new, skip[t], ds)
            ds = new
        return dA, dA, [ds]


class GRU:
    """Gate blocks ``[i, r, m]``: ``i, r = σ(a + h)``, ``m = tanh(a_m + r ⊙ h_m)``,
    ``s = m + i ⊙ (s_{t-1} - m)`` with ``h = W_s s_{t-1}``."""

    sigmoid_blocks = 2

    @staticmethod
    def forward(A, Ws, init, steps):
        T, G, b = A.shape
        n = G // 3
        part, skip = steps.partial, steps.skip
        (H,) = _states(init, (n, b), T, A.dtype)
        given = init[0] is not None  # else the state starts at 0, and so does its product
        HS = scratch_array(A.shape, A.dtype)  # state projections W_s s_{t-1}, all gates
        IR = scratch_array((T, 2 * n, b), A.dtype)
        M = scratch_array((T, n, b), A.dtype)
        for t in range(T):
            sp, hs, ir, m, s = H[t], HS[t], IR[t], M[t], H[t + 1]
            if t or given:
                np.matmul(Ws, sp, out=hs)
            else:
                hs.fill(0)
            np.add(A[t, :2 * n], hs[:2 * n], out=ir)
            _sigmoid_half_(ir)
            np.multiply(ir[n:], hs[2 * n:], out=m)
            m += A[t, 2 * n:]
            np.tanh(m, out=m)
            np.subtract(sp, m, out=s)
            s *= ir[:n]
            s += m
            if part[t]:
                np.putmask(s, skip[t], sp)
        return [H], (HS, IR, M)

    @staticmethod
    def backward(go, final, WsT, states, cache, steps, init_grads):
        (H,), (HS, IR, M) = states, cache
        T, G, b = HS.shape
        n = G // 3
        mask = steps.mask
        # Every factor that does not depend on the incoming gradient, for all steps at once:
        # dL/d(pre-activation) = ds ⊙ factor, columns past an example's end get 0 (into
        # buffers, with no temporaries: their size varies with every batch's lengths, and
        # glibc would map and page-fault such arrays in afresh)
        i, rg = IR[:, :n], IR[:, n:]
        fm = scratch_array((T, n, b), go.dtype)  # the memory pre-activation's factor
        F = scratch_array((T, G, b), go.dtype)  # the state products' factors: i, r, r ⊙ W_ms s
        fi, fr, fs = F[:, :n], F[:, n:2 * n], F[:, 2 * n:]
        np.multiply(M, M, out=fm)
        np.subtract(1, fm, out=fm)
        np.subtract(1, i, out=fi)
        fm *= fi  # (1 - i)(1 - m²)
        if mask is not None:
            fm *= mask
        fi *= i  # i (1 - i)
        np.subtract(H[:-1], M, out=fr)
        fi *= fr  # (s_{t-1} - m) i (1 - i)
        if mask is not None:
            fi *= mask
        np.subtract(1, rg, out=fs)
        fs *= rg
        np.multiply(fm, HS[:, 2 * n:], out=fr)
        fr *= fs  # fm (W_ms s) r (1 - r)
        np.multiply(fm, rg, out=fs)  # fm r
        D = i  # the direct path s_{t-1} -> s_t: i, 1 past an example's end
        if mask is not None:
            D = scratch_array((T, n, b), go.dtype)
            np.copyto(D, i)
            np.putmask(D, steps.skip, 1)
        dZ = scratch_array((T, G, b), go.dtype)  # grads of the state products W_s s_{t-1}
        DS = scratch_array((T, n, b), go.dtype)  # dL/ds_t, all contributions
        F3, dZ3 = F.reshape(T, 3, n, b), dZ.reshape(T, 3, n, b)
        ds = final[0]
        for t in range(T - 1, -1, -1):
            cur = np.add(ds, go[t], out=DS[t])
            np.multiply(F3[t], cur, out=dZ3[t])
            if not (t or init_grads):
                ds = None
                break
            ds = WsT @ dZ[t]
            ds += D[t] * cur
        dA = scratch_array((T, G, b), go.dtype)  # as dZ but in the memory block
        np.copyto(dA[:, :2 * n], dZ[:, :2 * n])
        np.multiply(DS, fm, out=dA[:, 2 * n:])
        return dA, dZ, [ds]


class LSTM:
    """Gate blocks ``[i, o, f, m]``: ``c = f ⊙ c_{t-1} + i ⊙ m``, ``s = o ⊙ tanh(c)``."""

    sigmoid_blocks = 3

    @staticmethod
    def forward(A, Ws, init, steps):
        T, G, b = A.shape
        n = G // 4
        part, skip = steps.partial, steps.skip
        H, C = _states(init, (n, b), T, A.dtype)
        given = init[0] is not None  # else the state starts at 0, and so does its product
        Z = scratch_array(A.shape, A.dtype)  # activated gates
        TC = scratch_array((T, n, b), A.dtype)
        im = np.empty((n, b), A.dtype)
        for t in range(T):
            z, c, s, tc = Z[t], C[t + 1], H[t + 1], TC[t]
            if t or given:
                np.matmul(Ws, H[t], out=z)
                z += A[t]
            else:
                np.copyto(z, A[t])
            np.tanh(z, out=z)
            sig = z[:3 * n]  # σ(2h) = 0.5 tanh(h) + 0.5 for i, o, f; m = tanh
            sig *= 0.5
            sig += 0.5
            np.multiply(z[2 * n:3 * n], C[t], out=c)
            np.multiply(z[:n], z[3 * n:], out=im)
            c += im
            np.tanh(c, out=tc)
            np.multiply(z[n:2 * n], tc, out=s)
            if part[t]:
                np.putmask(c, skip[t], C[t])
                np.putmask(s, skip[t], H[t])
        return [H, C], (Z, TC)

    @staticmethod
    def backward(go, final, WsT, states, cache, steps, init_grads):
        (_, C), (Z, TC) = states, cache
        T, G, b = Z.shape
        n = G // 4
        mask, part, skip = steps.mask, steps.partial, steps.skip
        i, o, f, m = (Z[:, j * n:(j + 1) * n] for j in range(4))
        # gradient-independent factors for all steps; columns past an example's end get 0
        # (into buffers, with no temporaries: see GRU.backward). dL/d(pre-activation) is
        # dc ⊙ FC for i, f, m and ds ⊙ Fo for o.
        FC = scratch_array((T, G, b), go.dtype)
        P, Fo = scratch_array((T, n, b), go.dtype), scratch_array((T, n, b), go.dtype)
        fi, fo, ff, fm = (FC[:, j * n:(j + 1) * n] for j in range(4))
        sig = FC[:, :3 * n]
        np.subtract(1, Z[:, :3 * n], out=sig)
        sig *= Z[:, :3 * n]  # σ' = σ (1 - σ) for i, o, f
        np.multiply(TC, TC, out=P)
        np.subtract(1, P, out=P)
        P *= o  # dL/dc += ds ⊙ P
        np.multiply(fo, TC, out=Fo)  # output-gate pre-activation
        if mask is not None:
            P *= mask
            Fo *= mask
        fi *= m
        ff *= C[:-1]
        np.multiply(m, m, out=fm)
        np.subtract(1, fm, out=fm)
        fm *= i
        dA = scratch_array((T, G, b), go.dtype)
        FC4, dA4 = FC.reshape(T, 4, n, b), dA.reshape(T, 4, n, b)
        # per-step buffers: the two state gradients each in two, written in turn
        step = scratch_array((6, n, b), go.dtype)
        S, Cg, dcv, scaled = step[:2], step[2:4], step[4], step[5]
        ds, dc, k = final[0], final[1], 0
        for t in range(T - 1, -1, -1):
            cur = np.add(ds, go[t], out=S[k])
            np.multiply(cur, P[t], out=dcv)
            if part[t]:
                dcv += np.multiply(dc, mask[t], out=scaled)
            else:
                dcv += dc
            g = dA4[t]
            np.multiply(FC4[t], dcv, out=g)  # the o block is replaced next
            np.multiply(cur, Fo[t], out=g[1])
            if not (t or init_grads):
                return dA, dA, [None, None]
            new_s, new_c = S[1 - k], Cg[k]
            np.matmul(WsT, dA[t], out=new_s)
            np.multiply(dcv, f[t], out=new_c)
            if part[t]:
                np.putmask(new_s, skip[t], cur)
                np.putmask(new_c, skip[t], dc)
            ds, dc, k = new_s, new_c, 1 - k
        return dA, dA, [ds.copy(), dc.copy()]
