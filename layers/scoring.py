"""Scoring nets for attention: the named forms "Dot" and "Bilinear", validation of custom
nets, and the score computations (batched matmuls for Dot/Bilinear, broadcasting for any
other net).

Every score function takes keys ``K`` of shape ``(B, h, n, k)`` and queries ``Q`` of shape
``(B, h, m, q)`` and returns scores ``(B, h, m, n)`` plus a backward
``gs -> (gK, gQ, array_grads)``.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from netgraph.extend import GRAPH_IN, GRAPH_OUT, Net, NetError, NetGraph, NetPort

from ._ops import sum_to
from .linear import DotLayer, LinearLayer

__all__ = ["scoring_net", "fast_kind", "scores"]


def scoring_net(net: Any) -> Net:
    """The scoring net for ``net``: "Bilinear", "Dot", or a net with ports Input, Query ->
    Output (checked here; its Output must be a scalar, checked by inference)."""
    if isinstance(net, str):
        if net == "Bilinear":
            return NetGraph({"Linear": LinearLayer(biases=False), "Dot": DotLayer()},
                            [([NetPort("Query"), "Linear"], "Dot")])
        if net == "Dot":
            return NetGraph({"Dot": DotLayer()}, [([NetPort("Query"), NetPort("Input")], "Dot")])
        raise NetError(f"unknown scoring net {net!r}: use 'Bilinear', 'Dot' or a net with ports "
                       "Input, Query -> Output")
    if not isinstance(net, Net):
        raise NetError(f"the scoring net must be 'Bilinear', 'Dot' or a net, got "
                       f"{type(net).__name__}")
    for p in net.input_ports:
        if p not in ("Input", "Query"):
            raise NetError(f"the scoring net has an input port {p!r}; a scoring net takes "
                           "exactly the ports 'Input' and 'Query'")
    for p in ("Input", "Query"):
        if p not in net.input_ports:
            raise NetError(f"the scoring net has no input port {p!r}; a scoring net takes "
                           "exactly the ports 'Input' and 'Query'")
    if tuple(net.output_ports) != ("Output",):
        bad = [p for p in net.output_ports if p != "Output"] or ["Output"]
        raise NetError(f"the scoring net has output ports {list(net.output_ports)} (port "
                       f"{bad[0]!r}); a scoring net has exactly one scalar output 'Output'")
    return net


def fast_kind(net: Net) -> tuple[str, Any] | None:
    """("dot", None) or ("bilinear", weights path) when ``net`` is a Dot of Query with Input
    or with a bias-free linear map of Input; None otherwise (general broadcasting path)."""
    if not isinstance(net, NetGraph) or len(net.nodes) > 2:
        return None
    incoming = {dst: src for src, dst in net.edges}
    out = incoming.get((GRAPH_OUT, "Output"))
    if out is None or not isinstance(net.nodes.get(out[0]), DotLayer):
        return None
    dot = out[0]
    srcs = {incoming[(dot, "Input1")], incoming[(dot, "Input2")]}
    query = next((e for e in srcs if e[0] is GRAPH_IN and e[1] == "Query"), None)
    if query is None:
        return None
    other = next(iter(srcs - {query}), None)
    if other is None:
        return None
    if other[0] is GRAPH_IN and other[1] == "Input":
        return ("dot", None)
    if other[0] is GRAPH_IN or other[1] != "Output":
        return None
    lin = net.nodes[other[0]]
    if (isinstance(lin, LinearLayer) and not lin.params.biases
            and _is_graph_input(incoming.get((other[0], "Input")), "Input")):
        return ("bilinear", (other[0], "Weights"))
    return None


def _is_graph_input(end: Any, name: str) -> bool:
    return end is not None and end[0] is GRAPH_IN and end[1] == name


def _t(x: np.ndarray) -> np.ndarray:
    return x.swapaxes(-1, -2)


def scores(kind: tuple[str, Any] | None, K: np.ndarray, Q: np.ndarray, ctx: Any):
    """Scores ``s[b, h, j, i] = f(K[b, h, i], Q[b, h, j])`` and their backward."""
    if kind is not None and kind[0] == "dot":
        s = Q @ _t(K)
        return s, lambda gs: (_t(gs) @ Q, gs @ K, {})
    if kind is not None and kind[0] == "bilinear":
        W, key = ctx.sub_array(("ScoringNet",) + kind[1])
        return _bilinear(K, Q, W, key)
    return _general_scores(K, Q, ctx)


def _bilinear(K: np.ndarray, Q: np.ndarray, W: np.ndarray, path: tuple):
    """``s = q . (W k)`` as batched matmuls. ``q . (W k) = (W^T q) . k``, so the weights
    multiply whichever side has fewer rows (keys or queries): the same scores, less work."""
    q, k = W.shape
    if K.shape[2] <= Q.shape[2]:
        Kp = (K.reshape(-1, k) @ W.T).reshape(K.shape[:-1] + (q,))

        def back_keys(gs):
            gKp = (_t(gs) @ Q).reshape(-1, q)
            gW = gKp.T @ K.reshape(-1, k)
            return (gKp @ W).reshape(K.shape), gs @ Kp, {path: gW}

        return Q @ _t(Kp), back_keys
    Qp = (Q.reshape(-1, q) @ W).reshape(Q.shape[:-1] + (k,))

    def back_queries(gs):
        gQp = (gs @ K).reshape(-1, k)
        gW = Q.reshape(-1, q).T @ gQp
        return _t(gs) @ Qp, (gQp @ W.T).reshape(Q.shape), {path: gW}

    return Qp @ _t(K), back_queries


#: pair-elements (rows x m x n x feature size) per chunk of the general path: small enough
#: that a chunk's temporaries stay in cache, large enough to amortize per-step overhead
CHUNK_ELEMENTS = 1 << 20
#: at most this many threads evaluate chunks, and only while BLAS runs on one thread
WORKERS = min(2, os.cpu_count() or 1)
_blas: Any = None  # threadpoolctl's view of the BLAS libraries (read, never changed), or False


def _blas_single_threaded() -> bool:
    """Whether every BLAS library of the process runs on exactly one thread (as the user set
    it: ``OPENBLAS_NUM_THREADS=1``, ``threadpoolctl.threadpool_limits(1)``, ...). The
    setting is only read: netgraph never changes it."""
    global _blas
    if _blas is None:
        try:
            from threadpoolctl import ThreadpoolController

            _blas = ThreadpoolController().select(user_api="blas").lib_controllers or False
        except Exception:  # noqa: BLE001 - no threadpoolctl, or it cannot inspect this process
            _blas = False
    return _blas is not False and all(lib.num_threads == 1 for lib in _blas)


def _map(fn, items) -> list:
    """``[fn(x) for x in items]``. When BLAS is single-threaded (the user's setting), the
    items run on up to ``WORKERS`` threads of a pool made for this call (NumPy releases the
    GIL in its loops); otherwise one after another, so that worker threads do not compete
    with BLAS's own. Each item is independent and the caller combines the results in item
    order, so the result is bit-identical either way and however many threads apply nets at
    once; no pool outlives the call (a process forked later has no stale pool to wait on)."""
    items = list(items)
    if WORKERS < 2 or len(items) < 2 or not _blas_single_threaded():
        return [fn(x) for x in items]
    with ThreadPoolExecutor(max_workers=min(WORKERS, len(items)),
                            thread_name_prefix="netgraph-scoring") as pool:
        return list(pool.map(fn, items))


def _general_scores(K: np.ndarray, Q: np.ndarray, ctx: Any):
    """Any scoring net, on all pairs by broadcasting: the net sees ``K[:, :, None]``
    ``(B, h, 1, n, k)`` and ``Q[:, :, :, None]`` ``(B, h, m, 1, q)``, so its Input-only
    part runs once per key position and its Query-only part once per query position. The
    batch is cut into chunks so that no temporary grows past ``CHUNK_ELEMENTS``."""
    B, h, n, k = K.shape
    m, q = Q.shape[2], Q.shape[3]
    rows = max(1, CHUNK_ELEMENTS // max(1, h * m * n * max(k, q)))
    chunks = [slice(i, min(i + rows, B)) for i in range(0, B, rows)]

    def forward_chunk(c: slice):
        return ctx.run_sub("ScoringNet", {"Input": K[c, :, None], "Query": Q[c, :, :, None]})

    runs = _map(forward_chunk, chunks)
    raws = [outs["Output"] for outs, _ in runs]
    s = np.concatenate([np.broadcast_to(r, (c.stop - c.start, h, m, n))
                        for r, c in zip(raws, chunks)])

    def back_general(gs):
        gK, gQ = np.zeros_like(K), np.zeros_like(Q)

        def backward_chunk(i: int):
            (_, back), raw, c = runs[i], raws[i], chunks[i]
            in_grads, chunk_grads = back({"Output": sum_to(gs[c], raw.shape)})
            if in_grads.get("Input") is not None:
                gK[c] = sum_to(in_grads["Input"], K[c, :, None].shape)[:, :, 0]
            if in_grads.get("Query") is not None:
                gQ[c] = sum_to(in_grads["Query"], Q[c, :, :, None].shape)[..., 0, :]
            return chunk_grads

        array_grads: dict = {}
        for chunk_grads in _map(backward_chunk, range(len(chunks))):
            for key, g in chunk_grads.items():
                array_grads[key] = g if key not in array_grads else array_grads[key] + g
        return gK, gQ, array_grads

    return s, back_general
