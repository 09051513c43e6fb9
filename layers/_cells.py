"""Time loops of the recurrent cells (used by :mod:`layers.recurrent`), forward and BPTT.

Every loop works time-major: ``A`` (T, B, G·n) holds the input projections (plus biases) of
all steps and gates, computed before the loop by one GEMM; a step adds the state GEMM
``s_{t-1} @ Ws.T`` and applies the gate nonlinearities in place into preallocated buffers.
The first ``sigmoid_blocks`` gate blocks are sigmoids, computed as ``σ(z) = (1 + tanh(z/2))/2``
(no overflow); the caller halves their rows of the weights and biases, so ``A`` and ``WsT``
already give ``z/2`` there (the LSTM then needs one ``tanh`` for all four gates).
Each time loop runs with BLAS at one thread (:func:`netgraph.extend.single_threaded`: its
per-step products are too small to share, and BLAS's own threads spin-wait between them); the
products over all steps go through :func:`netgraph.extend.matmul`. A large batch of a large
layer is cut into two halves of rows whose loops run on two threads (:func:`_row_parts`: every
step of a row depends on that row alone, so the halves compute what one loop does).
``mask`` is None (every step valid) or a bool (T, B, 1) array; rows past an example's length
keep their state (the forward copies ``s_{t-1}`` over them, the backward passes the gradient
through unchanged and gives their gate pre-activations a zero gradient).

``forward(A, WsT, init, mask) -> (states, cache)`` with ``states`` a list of (T+1, B, n)
arrays (``[0]`` the initial state, ``[t+1]`` the state after step t): the state, then for the
LSTM the cell state. ``backward(go, final, Ws, A, states, cache, mask) -> (dA, dWs, d_init)``:
``dA`` the gradients of the gate pre-activations (T, B, G·n), ``dWs`` that of the stacked state
weights (one GEMM over all steps), ``d_init`` the gradients of the initial states.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from netgraph.extend import matmul, parallel_map, scratch_array, single_threaded

#: a batch of at least ``2 * PART_ROWS`` rows is cut into two halves whose time loops run on
#: two threads when each half's per-step products reach ``SPLIT_STEP_FLOPS``: below that, the
#: two loops' many short NumPy calls queue for the GIL and cost more than the second core
#: gives (LSTM fwd+bwd on 64 rows, halves / whole: 1.5-2 at 64 units, 0.76-0.89 at 128,
#: 0.70-0.72 at 256)
PART_ROWS = 16
SPLIT_STEP_FLOPS = 4e6


def _sigmoid_half_(z: np.ndarray) -> None:
    """In place ``σ(2h) = (1 + tanh(h)) / 2`` of the halved pre-activations ``h = z / 2``."""
    np.tanh(z, out=z)
    z *= 0.5
    z += 0.5


def _partial(mask: np.ndarray | None, T: int) -> tuple[list[bool], np.ndarray | None]:
    """Per step: does any row lie past its example's end? And the inverted mask."""
    if mask is None:
        return [False] * T, None
    return list(~mask.all(axis=(1, 2))), ~mask


def _step_product(A: np.ndarray, n: int) -> tuple[int, int, int]:
    """The size ``(m, n, k)`` of a loop's per-step products, ``(B, n) @ (n, G·n)`` forward
    and ``(B, G·n) @ (G·n, n)`` backward (the same multiply-adds), for
    :func:`netgraph.extend.single_threaded`: small ones need no section."""
    return A.shape[1], A.shape[2], n


def _row_parts(A: np.ndarray, n: int) -> list[slice]:
    """The batch rows of a time loop over ``A`` (T, B, G·n) as the parts whose loops run
    separately: two halves for a batch and per-step products large enough (``PART_ROWS``,
    ``SPLIT_STEP_FLOPS``), else one. From the shapes alone, so results never depend on how
    many threads run the parts; the batch axis is cut, never a summed one."""
    T, B, G = A.shape
    if B < 2 * PART_ROWS or 2.0 * (B // 2) * n * G < SPLIT_STEP_FLOPS:
        return [slice(0, B)]
    return [slice(0, B // 2), slice(B // 2, B)]


def _over_rows(loop: Any, A: np.ndarray, n: int) -> None:
    """``loop(rows)`` for every part of the batch (:func:`_row_parts`), the parts shared by
    the threads of :func:`netgraph.extend.parallel_map`; BLAS at one thread either way (the
    per-step products are too small to share, and BLAS's own threads spin-wait between
    them)."""
    parts = _row_parts(A, n)
    if len(parts) > 1:
        parallel_map(loop, parts)
        return
    with single_threaded(_step_product(A, n)):
        loop(parts[0])


def _rows(x: np.ndarray | None, r: slice) -> np.ndarray | None:
    """The rows ``r`` of a time-major (T, B, ...) array (None stays None)."""
    return None if x is None else x[:, r]


def _state_weights_grad(dH: np.ndarray, H: np.ndarray) -> np.ndarray:
    """``sum_t dH_t^T s_{t-1}`` for all steps in one GEMM."""
    T, B, n = H.shape[0] - 1, H.shape[1], H.shape[2]
    return matmul(dH.reshape(T * B, -1).T, H[:-1].reshape(T * B, n))


class Basic:
    """``s_t = tanh(a_t + W_s s_{t-1})``."""

    sigmoid_blocks = 0

    @staticmethod
    def forward(A, WsT, init, mask):
        T, B, n = A.shape
        part, inv = _partial(mask, T)
        H = scratch_array((T + 1, B, n), A.dtype)
        H[0] = init[0]

        def loop(r: slice) -> None:
            Hr, Ar, skip = H[:, r], A[:, r], _rows(inv, r)
            for t in range(T):
                s = Hr[t + 1]
                np.matmul(Hr[t], WsT, out=s)
                s += Ar[t]
                np.tanh(s, out=s)
                if part[t]:
                    np.copyto(s, Hr[t], where=skip[t])

        _over_rows(loop, A, n)
        return [H], None

    @staticmethod
    def backward(go, final, Ws, A, states, cache, mask):
        (H,) = states
        T, B, n = A.shape
        part, inv = _partial(mask, T)
        dA = scratch_array(A.shape, A.dtype)
        d_init = np.empty((B, n), A.dtype)

        def loop(r: slice) -> None:
            Hr, dAr, gor, skip = H[1:, r], dA[:, r], go[:, r], _rows(inv, r)
            np.multiply(Hr, Hr, out=dAr)  # tanh' = 1 - s², zero past each example's end,
            np.subtract(1, dAr, out=dAr)  # in dA until the step's gradient replaces it
            if mask is not None:
                dAr *= mask[:, r]
            ds = final[0][r]
            for t in range(T - 1, -1, -1):
                ds = ds + gor[t]
                np.multiply(dAr[t], ds, out=dAr[t])
                new = dAr[t] @ Ws
                if part[t]:
                    np.copyto(new, ds, where=skip[t])
                ds = new
            d_init[r] = ds

        _over_rows(loop, A, n)
        return dA, _state_weights_grad(dA, H), [d_init]


class GRU:
    """Gate blocks ``[i, r, m]``: ``i, r = σ(a + h)``, ``m = tanh(a_m + r ⊙ h_m)``,
    ``s = m + i ⊙ (s_{t-1} - m)`` with ``h = W_s s_{t-1}``."""

    sigmoid_blocks = 2

    @staticmethod
    def forward(A, WsT, init, mask):
        T, B, G = A.shape
        n = G // 3
        part, inv = _partial(mask, T)
        H = scratch_array((T + 1, B, n), A.dtype)
        H[0] = init[0]
        HS = scratch_array(A.shape, A.dtype)  # state projections W_s s_{t-1}, all gates
        IR = scratch_array((T, B, 2 * n), A.dtype)
        M = scratch_array((T, B, n), A.dtype)

        def loop(r: slice) -> None:
            Hr, HSr, IRr, Mr, Ar, skip = H[:, r], HS[:, r], IR[:, r], M[:, r], A[:, r], \
                _rows(inv, r)
            A_ir, A_m = Ar[:, :, :2 * n], Ar[:, :, 2 * n:]  # views of the gate blocks
            HS_ir, HS_m, I, R = HSr[:, :, :2 * n], HSr[:, :, 2 * n:], IRr[:, :, :n], \
                IRr[:, :, n:]
            for t in range(T):
                sp, ir, m, s = Hr[t], IRr[t], Mr[t], Hr[t + 1]
                np.matmul(sp, WsT, out=HSr[t])
                np.add(A_ir[t], HS_ir[t], out=ir)
                _sigmoid_half_(ir)
                np.multiply(R[t], HS_m[t], out=m)
                m += A_m[t]
                np.tanh(m, out=m)
                np.subtract(sp, m, out=s)
                s *= I[t]
                s += m
                if part[t]:
                    np.copyto(s, sp, where=skip[t])

        _over_rows(loop, A, n)
        return [H], (HS, IR, M)

    @staticmethod
    def backward(go, final, Ws, A, states, cache, mask):
        (H,), (HS, IR, M) = states, cache
        T, B, G = A.shape
        n = G // 3
        Fm = scratch_array((T, B, n), A.dtype)  # the memory pre-activation's factor
        dH = scratch_array((T, B, 3, n), A.dtype)  # state-GEMM output grads: i, r, r ⊙ W_ms s
        DS = scratch_array((T, B, n), A.dtype)  # dL/ds_t, all contributions
        F = scratch_array((T, B, 3, n), A.dtype)  # the other blocks' factors: i, r, r ⊙ W_ms s
        Dm = None if mask is None else scratch_array((T, B, n), A.dtype)
        d_init = np.empty((B, n), A.dtype)

        def loop(r: slice) -> None:
            # Every factor that does not depend on the incoming gradient, for all steps at
            # once: dL/d(pre-activation) = ds ⊙ factor, rows past an example's end get 0.
            # (into buffers, with no temporaries: their size varies with every batch's
            # lengths, and glibc would map and page-fault such arrays in afresh)
            IRr, Mr, maskr = IR[:, r], M[:, r], _rows(mask, r)
            i, rg = IRr[..., :n], IRr[..., n:]
            fm, Fr = Fm[:, r], F[:, r]
            fi, fr, fs = Fr[:, :, 0], Fr[:, :, 1], Fr[:, :, 2]
            np.multiply(Mr, Mr, out=fm)
            np.subtract(1, fm, out=fm)
            np.subtract(1, i, out=fi)
            fm *= fi  # (1 - i)(1 - m²)
            if maskr is not None:
                fm *= maskr
            fi *= i  # i (1 - i)
            np.subtract(H[:-1, r], Mr, out=fr)
            fi *= fr  # (s_{t-1} - m) i (1 - i)
            if maskr is not None:
                fi *= maskr
            np.subtract(1, rg, out=fs)
            fs *= rg
            np.multiply(fm, HS[:, r, 2 * n:], out=fr)
            fr *= fs  # fm (W_ms s) r (1 - r)
            np.multiply(fm, rg, out=fs)  # fm r
            D = i  # the direct path s_{t-1} -> s_t: i, 1 past an example's end
            if maskr is not None:
                D = Dm[:, r]
                np.copyto(D, i)
                np.copyto(D, 1, where=~maskr)
            dHr, DSr, gor = dH[:, r], DS[:, r], go[:, r]
            ds = final[0][r]
            for t in range(T - 1, -1, -1):
                cur = np.add(ds, gor[t], out=DSr[t])
                np.multiply(Fr[t], cur[:, None, :], out=dHr[t])
                ds = dHr[t].reshape(-1, G) @ Ws
                ds += D[t] * cur
            d_init[r] = ds

        _over_rows(loop, A, n)
        dH = dH.reshape(T, B, G)
        dWs = _state_weights_grad(dH, H)
        np.multiply(DS, Fm, out=dH[..., 2 * n:])  # dH becomes dA: only the m block differs
        return dH, dWs, [d_init]


class LSTM:
    """Gate blocks ``[i, o, f, m]``: ``c = f ⊙ c_{t-1} + i ⊙ m``, ``s = o ⊙ tanh(c)``."""

    sigmoid_blocks = 3

    @staticmethod
    def forward(A, WsT, init, mask):
        T, B, G = A.shape
        n = G // 4
        part, inv = _partial(mask, T)
        H = scratch_array((T + 1, B, n), A.dtype)
        C = scratch_array((T + 1, B, n), A.dtype)
        H[0], C[0] = init
        Z = scratch_array(A.shape, A.dtype)  # activated gates
        TC = scratch_array((T, B, n), A.dtype)
        scale = np.full(G, 0.5, A.dtype)  # σ(2h) = 0.5 tanh(h) + 0.5 for i, o, f; m = tanh
        scale[3 * n:] = 1
        shift = 0.5 * (scale < 1).astype(A.dtype)

        def loop(r: slice) -> None:
            Hr, Cr, Zr, TCr, Ar, skip = H[:, r], C[:, r], Z[:, r], TC[:, r], A[:, r], \
                _rows(inv, r)
            im = np.empty((r.stop - r.start, n), A.dtype)
            for t in range(T):
                z, c, s, tc = Zr[t], Cr[t + 1], Hr[t + 1], TCr[t]
                np.matmul(Hr[t], WsT, out=z)
                z += Ar[t]
                np.tanh(z, out=z)
                z *= scale
                z += shift
                np.multiply(z[:, 2 * n:3 * n], Cr[t], out=c)
                np.multiply(z[:, :n], z[:, 3 * n:], out=im)
                c += im
                np.tanh(c, out=tc)
                np.multiply(z[:, n:2 * n], tc, out=s)
                if part[t]:
                    np.copyto(c, Cr[t], where=skip[t])
                    np.copyto(s, Hr[t], where=skip[t])

        _over_rows(loop, A, n)
        return [H, C], (Z, TC)

    @staticmethod
    def backward(go, final, Ws, A, states, cache, mask):
        (H, C), (Z, TC) = states, cache
        T, B, G = A.shape
        n = G // 4
        part, inv = _partial(mask, T)
        dA = scratch_array((T, B, 4, n), A.dtype)
        FC = scratch_array((T, B, 4, n), A.dtype)  # dL/d(pre-activation) = dc ⊙ FC (but o)
        P, FO = scratch_array((T, B, n), A.dtype), scratch_array((T, B, n), A.dtype)
        d_init = [np.empty((B, n), A.dtype), np.empty((B, n), A.dtype)]

        def loop(r: slice) -> None:
            Zr, TCr, maskr, skip = Z[:, r], TC[:, r], _rows(mask, r), _rows(inv, r)
            b = r.stop - r.start
            i, o, f, m = (Zr[..., j * n:(j + 1) * n] for j in range(4))
            # gradient-independent factors for all steps; rows past an example's end get 0
            # (into buffers, with no temporaries: see GRU.backward)
            Pr, Fo, FCr = P[:, r], FO[:, r], FC[:, r]
            fi, fo, ff, fm = (FCr[:, :, j] for j in range(4))
            np.multiply(TCr, TCr, out=Pr)
            np.subtract(1, Pr, out=Pr)
            Pr *= o  # dL/dc += ds ⊙ P
            np.subtract(1, o, out=fo)
            np.multiply(TCr, o, out=Fo)
            Fo *= fo  # output-gate pre-activation
            if maskr is not None:
                Pr *= maskr
                Fo *= maskr
            np.subtract(1, i, out=fi)
            fi *= i
            fi *= m
            fo[...] = 0
            np.subtract(1, f, out=ff)
            ff *= f
            ff *= C[:-1, r]
            np.multiply(m, m, out=fm)
            np.subtract(1, fm, out=fm)
            fm *= i
            dAr, gor = dA[:, r], go[:, r]
            # per-step buffers: the two state gradients each in two, written in turn
            S, Cg, dcv, scaled = np.split(scratch_array((6, b, n), A.dtype), [2, 4, 5])
            dcv, scaled = dcv[0], scaled[0]
            ds, dc, k = final[0][r], final[1][r], 0
            for t in range(T - 1, -1, -1):
                cur = np.add(ds, gor[t], out=S[k])
                np.multiply(cur, Pr[t], out=dcv)
                if part[t]:
                    dcv += np.multiply(dc, maskr[t], out=scaled)
                else:
                    dcv += dc
                g = dAr[t]
                np.multiply(FCr[t], dcv[:, None, :], out=g)
                np.multiply(cur, Fo[t], out=g[:, 1])
                new_s, new_c = S[1 - k], Cg[k]
                np.matmul(g.reshape(b, G), Ws, out=new_s)
                np.multiply(dcv, f[t], out=new_c)
                if part[t]:
                    np.copyto(new_s, cur, where=skip[t])
                    np.copyto(new_c, dc, where=skip[t])
                ds, dc, k = new_s, new_c, 1 - k
            d_init[0][r], d_init[1][r] = ds, dc

        _over_rows(loop, A, n)
        dA = dA.reshape(T, B, G)
        return dA, _state_weights_grad(dA, H), d_init
