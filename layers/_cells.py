"""Time loops of the recurrent cells (used by :mod:`layers.recurrent`), forward and BPTT.

Every loop works time-major: ``A`` (T, B, G·n) holds the input projections (plus biases) of
all steps and gates, computed before the loop by one GEMM; a step adds the state GEMM
``s_{t-1} @ Ws.T`` and applies the gate nonlinearities in place into preallocated buffers.
The first ``sigmoid_blocks`` gate blocks are sigmoids, computed as ``σ(z) = (1 + tanh(z/2))/2``
(no overflow); the caller halves their rows of the weights and biases, so ``A`` and ``WsT``
already give ``z/2`` there (the LSTM then needs one ``tanh`` for all four gates).
Each time loop runs with BLAS at one thread (:func:`netgraph.extend.single_threaded`: its
per-step products are too small to share, and BLAS's own threads spin-wait between them); the
products over all steps go through :func:`netgraph.extend.matmul`.
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

import numpy as np

from netgraph.extend import matmul, scratch_array, single_threaded


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
        with single_threaded(_step_product(A, n)):  # per-step products: too small to share
            for t in range(T):
                s = H[t + 1]
                np.matmul(H[t], WsT, out=s)
                s += A[t]
                np.tanh(s, out=s)
                if part[t]:
                    np.copyto(s, H[t], where=inv[t])
        return [H], None

    @staticmethod
    def backward(go, final, Ws, A, states, cache, mask):
        (H,) = states
        T, n = A.shape[0], A.shape[2]
        part, inv = _partial(mask, T)
        F = 1 - H[1:] * H[1:]  # tanh'; zero past each example's end
        if mask is not None:
            F *= mask
        dA = scratch_array(A.shape, A.dtype)
        ds = final[0]
        with single_threaded(_step_product(A, n)):  # per-step products: too small to share
            for t in range(T - 1, -1, -1):
                ds = ds + go[t]
                np.multiply(F[t], ds, out=dA[t])
                new = dA[t] @ Ws
                if part[t]:
                    np.copyto(new, ds, where=inv[t])
                ds = new
        return dA, _state_weights_grad(dA, H), [ds]


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
        A_ir, A_m = A[:, :, :2 * n], A[:, :, 2 * n:]  # views of the gate blocks, sliced once
        HS_ir, HS_m, I, R = HS[:, :, :2 * n], HS[:, :, 2 * n:], IR[:, :, :n], IR[:, :, n:]
        with single_threaded(_step_product(A, n)):  # per-step products: too small to share
            for t in range(T):
                sp, ir, m, s = H[t], IR[t], M[t], H[t + 1]
                np.matmul(sp, WsT, out=HS[t])
                np.add(A_ir[t], HS_ir[t], out=ir)
                _sigmoid_half_(ir)
                np.multiply(R[t], HS_m[t], out=m)
                m += A_m[t]
                np.tanh(m, out=m)
                np.subtract(sp, m, out=s)
                s *= I[t]
                s += m
                if part[t]:
                    np.copyto(s, sp, where=inv[t])
        return [H], (HS, IR, M)

    @staticmethod
    def backward(go, final, Ws, A, states, cache, mask):
        (H,), (HS, IR, M) = states, cache
        T, B, G = A.shape
        n = G // 3
        # Every factor that does not depend on the incoming gradient, for all steps at once:
        # dL/d(pre-activation) = ds ⊙ factor, rows past an example's end get factor 0.
        i, r = IR[..., :n], IR[..., n:]
        Fm = (1 - i) * (1 - M * M)  # memory pre-activation
        if mask is not None:
            Fm *= mask
        F = scratch_array((T, B, 3, n), A.dtype)  # state-GEMM output grads: i, r and r ⊙ (W_ms s)
        np.multiply(H[:-1] - M, i * (1 - i), out=F[:, :, 0])
        if mask is not None:
            F[:, :, 0] *= mask
        np.multiply(Fm * HS[..., 2 * n:], r * (1 - r), out=F[:, :, 1])
        np.multiply(Fm, r, out=F[:, :, 2])
        D = i if mask is None else np.where(mask, i, 1)  # direct path s_{t-1} -> s_t
        DS = scratch_array((T, B, n), A.dtype)
        dH = scratch_array((T, B, 3, n), A.dtype)
        ds = final[0]
        with single_threaded(_step_product(A, n)):  # per-step products: too small to share
            for t in range(T - 1, -1, -1):
                cur = np.add(ds, go[t], out=DS[t])
                np.multiply(F[t], cur[:, None, :], out=dH[t])
                ds = dH[t].reshape(B, G) @ Ws
                ds += D[t] * cur
        dH = dH.reshape(T, B, G)
        dWs = _state_weights_grad(dH, H)
        np.multiply(DS, Fm, out=dH[..., 2 * n:])  # dH becomes dA: only the m block differs
        return dH, dWs, [ds]


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
        im = scratch_array((B, n), A.dtype)
        scale = np.full(G, 0.5, A.dtype)  # σ(2h) = 0.5 tanh(h) + 0.5 for i, o, f; m = tanh
        scale[3 * n:] = 1
        shift = 0.5 * (scale < 1).astype(A.dtype)
        with single_threaded(_step_product(A, n)):  # per-step products: too small to share
            for t in range(T):
                z, c, s, tc = Z[t], C[t + 1], H[t + 1], TC[t]
                np.matmul(H[t], WsT, out=z)
                z += A[t]
                np.tanh(z, out=z)
                z *= scale
                z += shift
                np.multiply(z[:, 2 * n:3 * n], C[t], out=c)
                np.multiply(z[:, :n], z[:, 3 * n:], out=im)
                c += im
                np.tanh(c, out=tc)
                np.multiply(z[:, n:2 * n], tc, out=s)
                if part[t]:
                    np.copyto(c, C[t], where=inv[t])
                    np.copyto(s, H[t], where=inv[t])
        return [H, C], (Z, TC)

    @staticmethod
    def backward(go, final, Ws, A, states, cache, mask):
        (H, C), (Z, TC) = states, cache
        T, B, G = A.shape
        n = G // 4
        part, inv = _partial(mask, T)
        i, o, f, m = (Z[..., j * n:(j + 1) * n] for j in range(4))
        # gradient-independent factors for all steps; rows past an example's end get 0
        P = o * (1 - TC * TC)  # dL/dc += ds ⊙ P
        Fo = TC * o * (1 - o)  # output-gate pre-activation
        if mask is not None:
            P *= mask
            Fo *= mask
        FC = scratch_array((T, B, 4, n), A.dtype)  # dL/d(pre-activation) = dc ⊙ FC (but o)
        np.multiply(m, i * (1 - i), out=FC[:, :, 0])
        FC[:, :, 1] = 0
        np.multiply(C[:-1], f * (1 - f), out=FC[:, :, 2])
        np.multiply(i, 1 - m * m, out=FC[:, :, 3])
        dA = scratch_array((T, B, 4, n), A.dtype)
        ds, dc = final
        with single_threaded(_step_product(A, n)):  # per-step products: too small to share
            for t in range(T - 1, -1, -1):
                ds = ds + go[t]
                dcv = ds * P[t]
                dcv += dc * mask[t] if part[t] else dc
                g = dA[t]
                np.multiply(FC[t], dcv[:, None, :], out=g)
                np.multiply(ds, Fo[t], out=g[:, 1])
                new_s, new_c = g.reshape(B, G) @ Ws, dcv * f[t]
                if part[t]:
                    np.copyto(new_s, ds, where=inv[t])
                    np.copyto(new_c, dc, where=inv[t])
                ds, dc = new_s, new_c
        dA = dA.reshape(T, B, G)
        return dA, _state_weights_grad(dA, H), [ds, dc]
