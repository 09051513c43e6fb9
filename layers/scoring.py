"""Scoring nets for attention: the named forms "Dot" and "Bilinear", validation of custom
nets, and the score computations (batched matmuls for Dot/Bilinear, broadcasting for any
other net).

:func:`scores` gives a :class:`Scores` for keys ``K`` of shape ``(B, h, n, k)`` and queries
``Q`` of shape ``(B, h, m, q)``: scores ``(B, h, m, n)`` and their gradients, by batch slices.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from netgraph.extend import (
    GRAPH_IN,
    GRAPH_OUT,
    Net,
    NetError,
    NetGraph,
    NetPort,
    matmul,
    parallel_map,
    scratch_array,
)

from ._ops import common_dtype, sum_to
from .elementwise import ElementwiseLayer, ThreadingLayer, _one_minus_square
from .linear import DotLayer, LinearLayer

__all__ = ["scoring_net", "fast_kind", "scores", "Scores"]


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
    or with a bias-free linear map of Input; ("additive", (W, U, v) weights paths) for
    Bahdanau's ``v . tanh(W e + U q)`` without biases; None otherwise (general path)."""
    if not isinstance(net, NetGraph):
        return None
    if len(net.nodes) == 5:
        return _additive_kind(net)
    if len(net.nodes) > 2:
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


def _additive_kind(net: NetGraph) -> tuple[str, Any] | None:
    """("additive", (W, U, v) weights paths) when ``net`` is ``v . tanh(W Input + U Query)``:
    bias-free LinearLayers W, U (of one output size) and v (scalar output), a two-input
    Plus and a Tanh; else None."""
    incoming = {dst: src for src, dst in net.edges}
    out = incoming.get((GRAPH_OUT, "Output"))
    v = net.nodes.get(out[0]) if out is not None else None
    if not _plain_linear(v, ()) or out[1] != "Output":
        return None
    tanh_end = incoming.get((out[0], "Input"))
    tanh = net.nodes.get(tanh_end[0]) if tanh_end is not None else None
    if not (isinstance(tanh, ElementwiseLayer) and tanh.function == "Tanh"
            and tanh_end[1] == "Output"):
        return None
    plus_end = incoming.get((tanh_end[0], "Input"))
    plus = net.nodes.get(plus_end[0]) if plus_end is not None else None
    if not (isinstance(plus, ThreadingLayer) and plus.params.f == "Plus"
            and plus.input_names() == ("Input1", "Input2") and plus_end[1] == "Output"):
        return None
    sides = {}
    for port in ("Input1", "Input2"):
        end = incoming.get((plus_end[0], port))
        lin = net.nodes.get(end[0]) if end is not None else None
        if end is None or end[1] != "Output" or not _plain_linear(lin, None):
            return None
        src = incoming.get((end[0], "Input"))
        if src is None or src[0] is not GRAPH_IN:
            return None
        sides[src[1]] = end[0]
    if set(sides) != {"Input", "Query"}:
        return None
    w, u = net.nodes[sides["Input"]], net.nodes[sides["Query"]]
    if w.params.n != u.params.n:
        return None
    return ("additive", tuple((name, "Weights") for name in
                              (sides["Input"], sides["Query"], out[0])))


def _plain_linear(layer: Any, n: Any) -> bool:
    """Whether ``layer`` is a bias-free LinearLayer with output size ``n`` (None: any int)."""
    if not isinstance(layer, LinearLayer) or layer.params.biases:
        return False
    return layer.params.n == n if n is not None else isinstance(layer.params.n, int)


def _is_graph_input(end: Any, name: str) -> bool:
    return end is not None and end[0] is GRAPH_IN and end[1] == name


def _t(x: np.ndarray) -> np.ndarray:
    return x.swapaxes(-1, -2)


def _rows(x: np.ndarray, c: slice) -> np.ndarray:
    return x[c] if x.shape[0] > 1 else x


class Scores:
    """Scores ``s[b, h, j, i] = f(K[b, h, i], Q[b, h, j])`` of keys ``K`` ``(B, h, n, k)`` and
    queries ``Q`` ``(B, h, m, q)``, computed a slice of the batch at a time (the slices of one
    call may run on different threads; each writes only its own rows), and their gradients::

        sc.forward(c, out)              out = s[c]
        sc.backward_begin(extra)        extra: whether every slice brings a term for gK
        sc.backward(c, gs, extra)       for every slice c: gs = d/ds[c]; extra: None, or a
                                        term (len(c), h, n, k) to add to gK[c]
        sc.backward_end(counts) -> (gK, gQ, array_grads)
                                        counts: None (every pair counts) or a bool mask
                                        broadcastable to (B, h, m, n) of the pairs that do

    The products for one slice are batched matmuls of those rows (``np.matmul`` computes each
    example by the same BLAS call whatever the slice), so results do not depend on slicing.
    """

    def __init__(self, K: np.ndarray, Q: np.ndarray):
        self.K, self.Q = K, Q
        self.dtype = common_dtype(K, Q)

    def backward_begin(self, extra: bool) -> None:
        self.gK = scratch_array(self.K.shape, self.dtype)
        self.gQ = scratch_array(self.Q.shape, self.dtype)


class DotScores(Scores):
    """``s = Q K^T``; ``gK = gs^T Q``, ``gQ = gs K``."""

    def forward(self, c: slice, out: np.ndarray) -> None:
        np.matmul(self.Q[c], _t(self.K[c]), out=out)

    def backward(self, c: slice, gs: np.ndarray, extra: np.ndarray | None) -> None:
        np.matmul(_t(gs), self.Q[c], out=self.gK[c])
        if extra is not None:
            self.gK[c] += extra
        np.matmul(gs, self.K[c], out=self.gQ[c])

    def backward_end(self, counts: np.ndarray | None = None):
        return self.gK, self.gQ, {}


class BilinearScores(Scores):
    """``s = q . (W k)`` as batched matmuls. ``q . (W k) = (W^T q) . k``, so the weights
    multiply whichever side has fewer rows (keys or queries), once for the whole batch (one
    large product): the same scores, less work. With ``P = K W^T`` (keys side)::

        s = Q P^T,   gP = gs^T Q,   gW = gP^T K,   gK = gP W,   gQ = gs P

    and symmetrically with ``P = Q W`` on the queries side."""

    def __init__(self, K: np.ndarray, Q: np.ndarray, W: np.ndarray, path: tuple):
        super().__init__(K, Q)
        self.W, self.path = W, path
        q, k = W.shape
        self.keys_side = K.shape[2] <= Q.shape[2]
        if self.keys_side:
            self.P = matmul(K.reshape(-1, k), W.T).reshape(K.shape[:-1] + (q,))
        else:
            self.P = matmul(Q.reshape(-1, q), W).reshape(Q.shape[:-1] + (k,))
        self.dtype = common_dtype(self.P, K, Q)

    def forward(self, c: slice, out: np.ndarray) -> None:
        if self.keys_side:
            np.matmul(self.Q[c], _t(self.P[c]), out=out)
        else:
            np.matmul(self.P[c], _t(self.K[c]), out=out)

    def backward_begin(self, extra: bool) -> None:
        super().backward_begin(extra)
        self.gP = scratch_array(self.P.shape, self.dtype)
        # keys side: gK is made at the end, from all of gP; the extra term waits for it
        self.extra = scratch_array(self.K.shape, self.dtype) if extra and self.keys_side else None

    def backward(self, c: slice, gs: np.ndarray, extra: np.ndarray | None) -> None:
        if self.keys_side:
            np.matmul(_t(gs), self.Q[c], out=self.gP[c])
            np.matmul(gs, self.P[c], out=self.gQ[c])
            if extra is not None:
                self.extra[c] = extra
        else:
            np.matmul(gs, self.K[c], out=self.gP[c])
            np.matmul(_t(gs), self.P[c], out=self.gK[c])
            if extra is not None:
                self.gK[c] += extra

    def backward_end(self, counts: np.ndarray | None = None):
        q, k = self.W.shape
        if self.keys_side:
            gP = self.gP.reshape(-1, q)
            gW = matmul(gP.T, self.K.reshape(-1, k))
            matmul(gP, self.W, out=self.gK.reshape(-1, k))
            if self.extra is not None:
                self.gK += self.extra
        else:
            gP = self.gP.reshape(-1, k)
            gW = matmul(self.Q.reshape(-1, q).T, gP)
            matmul(gP, self.W.T, out=self.gQ.reshape(-1, q))
        return self.gK, self.gQ, {self.path: gW}


def scores(kind: tuple[str, Any] | None, K: np.ndarray, Q: np.ndarray, ctx: Any) -> Scores:
    """The :class:`Scores` of the scoring net of kind ``kind`` (see :func:`fast_kind`)."""
    if kind is not None and kind[0] == "dot":
        return DotScores(K, Q)
    if kind is not None and kind[0] == "bilinear":
        W, key = ctx.sub_array(("ScoringNet",) + kind[1])
        return BilinearScores(K, Q, W, key)
    if kind is not None and kind[0] == "additive":
        arrays = [ctx.sub_array(("ScoringNet",) + path) for path in kind[1]]
        if len({id(key) if not isinstance(key, tuple) else key for _, key in arrays}) == 3:
            return AdditiveScores(K, Q, ctx, arrays)  # (shared arrays: the general path)
    return GeneralScores(K, Q, ctx)


#: pair-elements (rows x m x n x feature size) per chunk of the general path: small enough
#: that a chunk's temporaries (1 MB each in float32) stay in cache and are reused from the
#: heap rather than mapped afresh, large enough to amortize per-step overhead (measured on
#: the additive net: 2**18 takes 28 % less CPU time than 2**20 at B64 n50 m20 d128)
CHUNK_ELEMENTS = 1 << 18
#: elements per block of the additive scores' fused backward: a chunk's pair tensor in one or
#: a few blocks (each block costs four NumPy calls; 16 Ki-element blocks made medium
#: Additive attention 25 % slower than 256 Ki, measured alternately in one process)
PAIR_BLOCK_ELEMENTS = 1 << 18


class GeneralScores(Scores):
    """Any scoring net, on all pairs by broadcasting: the net sees ``K[:, :, None]``
    ``(B, h, 1, n, k)`` and ``Q[:, :, :, None]`` ``(B, h, m, 1, q)``, so its Input-only
    part runs once per key position and its Query-only part once per query position. The
    batch is cut into chunks so that no temporary grows past ``CHUNK_ELEMENTS``; chunks run
    on the threads of :func:`netgraph.blas.parallel_map` (each is independent and the
    results are combined in chunk order, so they are bit-identical however many threads run
    them). All scores are computed when the object is made, all gradients at the end."""

    def __init__(self, K: np.ndarray, Q: np.ndarray, ctx: Any):
        super().__init__(K, Q)
        B, h, n, k = K.shape
        m, q = Q.shape[2], Q.shape[3]
        rows = max(1, CHUNK_ELEMENTS // max(1, h * m * n * max(k, q)))
        self.ctx, self.shape = ctx, (B, h, m, n)
        self.chunks = [slice(i, min(i + rows, B)) for i in range(0, B, rows)]
        self.runs = parallel_map(self._forward_chunk, self.chunks)
        self.raws = [outs["Output"] for outs, _ in self.runs]
        self.dtype = np.result_type(*self.raws)

    def _forward_chunk(self, c: slice):
        with np.errstate(over="ignore", invalid="ignore"):  # checked by the attention layer
            return self.ctx.run_sub("ScoringNet", {"Input": self.K[c, :, None],
                                                   "Query": self.Q[c, :, :, None]})

    def forward(self, c: slice, out: np.ndarray) -> None:
        for chunk, raw in zip(self.chunks, self.raws, strict=True):
            lo, hi = max(chunk.start, c.start), min(chunk.stop, c.stop)
            if lo < hi:
                rows = slice(lo - chunk.start, hi - chunk.start)
                out[lo - c.start:hi - c.start] = _rows(raw, rows)

    def backward_begin(self, extra: bool) -> None:
        self.gs = scratch_array(self.shape, self.dtype)  # the net's backward runs on all at the end
        self.extra = scratch_array(self.K.shape, self.dtype) if extra else None

    def backward(self, c: slice, gs: np.ndarray, extra: np.ndarray | None) -> None:
        self.gs[c] = gs
        if extra is not None:
            self.extra[c] = extra

    def backward_end(self, counts: np.ndarray | None = None):
        gK, gQ, array_grads = self._broadcast_backward()
        if counts is not None and not _all_finite(gK, gQ, *array_grads.values()):
            gK, gQ, array_grads = self._pairs_backward(counts)
        if self.extra is not None:
            gK += self.extra
        return gK, gQ, array_grads

    def _broadcast_backward(self):
        gs = self.gs
        K, Q = self.K, self.Q
        gK, gQ = _zeros(K.shape, self.dtype), _zeros(Q.shape, self.dtype)

        def backward_chunk(i: int):
            (_, back), raw, c = self.runs[i], self.raws[i], self.chunks[i]
            with np.errstate(over="ignore", invalid="ignore"):
                in_grads, chunk_grads = back({"Output": sum_to(gs[c], raw.shape)})
            if in_grads.get("Input") is not None:
                gK[c] = sum_to(in_grads["Input"], K[c, :, None].shape)[:, :, 0]
            if in_grads.get("Query") is not None:
                gQ[c] = sum_to(in_grads["Query"], Q[c, :, :, None].shape)[..., 0, :]
            return chunk_grads

        return gK, gQ, _summed(parallel_map(backward_chunk, range(len(self.chunks))))

    def _pairs_backward(self, counts: np.ndarray):
        """The gradients again, from the net run afresh on the pairs that count only.

        On all pairs, a pair that does not count (masked, a padded key or query) gets the
        gradient 0, but the net's backward multiplies it by the values it computed there: a
        NaN or infinity there (the Log of a negative) gives ``0 * NaN = NaN`` in the array
        gradients (summed over pairs) and in the key and query gradients (summed over
        queries and keys), where each example alone may have none. So when those gradients
        are not finite, the net runs once more on the counting pairs ``(b, h, j, i)`` alone,
        gathered as rows ``K[b, h, i]``, ``Q[b, h, j]``, and their gradients are added back to
        their keys and queries: a NaN the net computes at a pair that counts still passes
        through. (Rare, so it pays the gathering only then; a scoring net with dropout draws
        anew in training.)"""
        K, Q = self.K, self.Q
        b, h, j, i = np.nonzero(np.broadcast_to(counts, self.shape))
        gK, gQ = np.zeros(K.shape, self.dtype), np.zeros(Q.shape, self.dtype)
        rows = max(1, CHUNK_ELEMENTS // max(1, K.shape[-1], Q.shape[-1]))

        def backward_chunk(c: slice):
            key, query = (b[c], h[c], i[c]), (b[c], h[c], j[c])  # of the pairs c
            ins = {"Input": K[key], "Query": Q[query]}
            with np.errstate(over="ignore", invalid="ignore"):
                outs, back = self.ctx.run_sub("ScoringNet", ins)
                gs = sum_to(self.gs[b[c], h[c], j[c], i[c]], outs["Output"].shape)
                in_grads, chunk_grads = back({"Output": gs})
            for port, g, at in (("Input", gK, key), ("Query", gQ, query)):
                if in_grads.get(port) is not None:
                    np.add.at(g, at, sum_to(in_grads[port], ins[port].shape))
            return chunk_grads

        chunks = [slice(s, s + rows) for s in range(0, len(b), rows)]
        return gK, gQ, _summed([backward_chunk(c) for c in chunks])


class AdditiveScores(GeneralScores):
    """Bahdanau's ``s = v . tanh(W k + U q)`` (no biases): the general path's operations,
    in the same order on the same chunks (so bit for bit its results), without its
    executor and with fewer passes over the pair tensor ``(rows, h, m, n, hidden)``:

    - forward: ``x = We + Uq`` and ``y = tanh(x)`` in place, ``s = y v``; only the
      projections ``We``, ``Uq`` are kept, not ``y``
      (a chunk's temporaries are reused from the heap, in cache, for the next chunk);
    - backward: ``y`` computed again, then ``gx = (1 - y^2) * (gs (x) v)`` block by block
      (the outer product never made whole), ``gWe = sum_m gx``, ``gUq = sum_n gx``,
      ``gv = gs . y``, ``gW = gWe^T k``, ``gK = gWe W`` (likewise U, Q)."""

    def __init__(self, K: np.ndarray, Q: np.ndarray, ctx: Any, arrays: list):
        (self.W, self.wkey), (self.U, self.ukey), (self.v, self.vkey) = arrays
        # what the chunks keep for the backward, as rows of whole-batch scratch arrays (kept
        # chunk by chunk on the heap, they grew it by megabytes that glibc gave back after
        # every call, to be page-faulted in again by the next)
        (B, h, n, _), m, hd = K.shape, Q.shape[2], self.W.shape[0]
        We_dtype, Uq_dtype = np.result_type(K, self.W), np.result_type(Q, self.U)
        self.We = scratch_array((B, h, 1, n, hd), We_dtype)
        self.Uq = scratch_array((B, h, m, 1, hd), Uq_dtype)
        self.S = scratch_array((B, h, m, n), np.result_type(We_dtype, Uq_dtype, self.v))
        super().__init__(K, Q, ctx)

    def _projections(self, c: slice):
        K, Q = self.K[c, :, None], self.Q[c, :, :, None]
        k2, q2 = K.reshape(-1, K.shape[-1]), Q.reshape(-1, Q.shape[-1])
        hd = self.W.shape[0]
        We = matmul(k2, self.W.T, out=self.We[c].reshape(-1, hd)).reshape(K.shape[:-1] + (hd,))
        Uq = matmul(q2, self.U.T, out=self.Uq[c].reshape(-1, hd)).reshape(Q.shape[:-1] + (hd,))
        return k2, q2, We, Uq

    def _pairs(self, We: np.ndarray, Uq: np.ndarray) -> np.ndarray:
        shape = np.broadcast_shapes(We.shape, Uq.shape)
        y = np.add(We, Uq, out=scratch_array(shape, common_dtype(We, Uq)))
        return np.tanh(y, out=y)

    def _forward_chunk(self, c: slice):
        with np.errstate(over="ignore", invalid="ignore"):
            proj = self._projections(c)
            y = self._pairs(*proj[2:])
            s = matmul(y.reshape(-1, y.shape[-1]), self.v, out=self.S[c].reshape(-1))
            s = s.reshape(y.shape[:-1])
        return {"Output": s}, proj  # the projections (small) are kept for the backward

    def _broadcast_backward(self):
        K, Q = self.K, self.Q
        # every chunk writes its rows of both: no zeros needed
        gK, gQ = scratch_array(K.shape, self.dtype), scratch_array(Q.shape, self.dtype)
        # each chunk's array gradients, one row per chunk (summed in chunk order below), in
        # the dtypes of their products: gx (from _tanh_outer_backward) has the dtype of y
        y_dtype = np.result_type(self.We, self.Uq)
        parts = {key: scratch_array((len(self.chunks),) + a.shape, np.result_type(*types))
                 for key, a, types in ((self.wkey, self.W, (y_dtype, K)),
                                       (self.ukey, self.U, (y_dtype, Q)),
                                       (self.vkey, self.v, (self.dtype, y_dtype)))}
        gW, gU, gv = parts[self.wkey], parts[self.ukey], parts[self.vkey]

        def backward_chunk(i: int) -> None:
            c, (_, (k2, q2, We, Uq)) = self.chunks[i], self.runs[i]
            with np.errstate(over="ignore", invalid="ignore"):
                y = self._pairs(We, Uq)
                y2 = y.reshape(-1, y.shape[-1])
                gy2 = sum_to(self.gs[c], self.raws[i].shape).reshape(-1)
                matmul(gy2, y2, out=gv[i])
                gx = self._tanh_outer_backward(y, gy2)
                gWe = sum_to(gx, We.shape).reshape(-1, We.shape[-1])
                gUq = sum_to(gx, Uq.shape).reshape(-1, Uq.shape[-1])
                matmul(gWe.T, k2, out=gW[i])
                matmul(gUq.T, q2, out=gU[i])
                gK[c] = matmul(gWe, self.W).reshape(K[c].shape)
                gQ[c] = matmul(gUq, self.U).reshape(Q[c].shape)

        parallel_map(backward_chunk, range(len(self.chunks)))
        return gK, gQ, {key: _in_order_sum(rows) for key, rows in parts.items()}

    def _tanh_outer_backward(self, y: np.ndarray, gy2: np.ndarray) -> np.ndarray:
        """``(1 - y^2) * outer(gy2, v)`` (the Tanh's and the scalar Linear's backward), by
        blocks of rows when the dtypes agree: the same elementwise operations as the
        general path's, so the same bits."""
        v = self.v
        if np.result_type(gy2, v) != y.dtype:
            d = _one_minus_square(y)
            d *= np.multiply.outer(gy2, v).reshape(y.shape)
            return d
        y2 = y.reshape(-1, y.shape[-1])
        out = scratch_array(y2.shape, y2.dtype)
        rows = max(1, PAIR_BLOCK_ELEMENTS // max(1, y2.shape[1]))
        buf = scratch_array((min(rows, len(y2)), y2.shape[1]), y.dtype)
        for lo in range(0, len(y2), rows):
            o, g = out[lo:lo + rows], buf[:len(out[lo:lo + rows])]
            np.multiply.outer(gy2[lo:lo + rows], v, out=g)
            np.square(y2[lo:lo + rows], out=o)
            np.subtract(1, o, out=o)
            np.multiply(o, g, out=o)
        return out.reshape(y.shape)


def _zeros(shape: tuple[int, ...], dtype: Any) -> np.ndarray:
    """Zeros in scratch memory (``np.zeros`` of a large shape maps fresh pages, which the
    first writes then fault in)."""
    out = scratch_array(shape, dtype)
    out.fill(0)
    return out


def _in_order_sum(rows: np.ndarray) -> np.ndarray:
    """``rows[0] + rows[1] + ...`` added left to right, as :func:`_summed` adds runs."""
    total = rows[0].copy()
    for row in rows[1:]:
        total += row
    return total


def _summed(grads: list[dict]) -> dict:
    """The array gradients of several runs of a net, summed key by key in list order."""
    total: dict = {}
    for chunk_grads in grads:
        for key, g in chunk_grads.items():
            total[key] = g if key not in total else total[key] + g
    return total


def _all_finite(*arrays: np.ndarray) -> bool:
    return all(np.isfinite(a).all() for a in arrays)
