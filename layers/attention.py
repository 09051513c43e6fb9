"""AttentionLayer and SequenceAttentionLayer (its Key = Value = Input case).

For every query ``q_j`` and key position ``i`` (of ``n`` valid ones)::

    s_ij = f(k_i, q_j) * c           c = 1, or 1/sqrt(key size) with "DimensionSqrt"
    w_j  = softmax_i(s_j)            over valid (and, with a causal mask, allowed) keys only
    o_j  = sum_i w_ij v_i

``f`` is the scoring net ("Bilinear": ``q . (W k)``, "Dot": ``q . k``, or any net with ports
Input, Query -> scalar Output). Masked and padded key positions get weight exactly 0; rows of
padded query positions are exactly 0. The weights are readable as the interior value
``NetPort(layer, "AttentionWeights")``: ``(m, n)`` per example, ``(m, h, n)`` with heads.
"""

from __future__ import annotations

import functools
import math
from typing import Any, Literal

import numpy as np
from pydantic import field_validator

from netgraph.extend import (
    Bool,
    Layer,
    NetError,
    Params,
    Real,
    ShapeError,
    Solver,
    batch_slices,
    parallel_map,
    scratch_array,
    where,
)

from ._ops import broadcast_lead, common_dtype, sum_to
from .scoring import fast_kind, scores, scoring_net

__all__ = ["AttentionLayer", "SequenceAttentionLayer"]

#: score-matrix elements per slice of the batch (so that a slice's scores, weights and
#: temporaries stay in cache between the steps that read them)
SLICE_ELEMENTS = 1 << 17
#: a slice whose per-example products are all below this many multiply-adds (``m n k``)
#: runs directly, without the thread pool's BLAS-thread switch: OpenBLAS runs such products
#: on one thread whatever its setting (below ``4 * 65536``), so the results are the same,
#: and a decoding step (one query) saves the switch's cost
DIRECT_MNK = 1 << 16


class AttentionParams(Params):
    mask: Any = None
    score_rescaling: str | None = None
    multi_head: Bool = False
    dropout: Real = 0.0

    @field_validator("mask")
    @classmethod
    def _mask(cls, v):
        if isinstance(v, list):
            v = tuple(v)
        if isinstance(v, tuple) and len(v) == 2 and isinstance(v[1], np.integer):
            v = (v[0], int(v[1]))
        ok = v is None or v == "Causal" or (
            isinstance(v, tuple) and len(v) == 2 and v[0] == "Causal" and isinstance(v[1], int)
            and not isinstance(v[1], bool) and v[1] >= 1)
        if not ok:
            raise ValueError("mask must be None, 'Causal' or ('Causal', n) with n >= 1")
        return v

    @field_validator("score_rescaling")
    @classmethod
    def _rescaling(cls, v):
        if v not in (None, "DimensionSqrt"):
            raise ValueError("score_rescaling must be None or 'DimensionSqrt'")
        return v

    @field_validator("dropout")
    @classmethod
    def _dropout(cls, v):
        if not 0 <= v < 1:
            raise ValueError("dropout must be in [0, 1)")
        return v


class AttentionLayer(Layer):
    """``AttentionLayer(net="Bilinear", *, mask=None, score_rescaling=None, multi_head=False,
    dropout=0, Key=..., Value=..., Query=...)``: ports Key ``(n, k)``, Value ``(n, v)``,
    Query ``(m, q)`` (or one query vector ``(q,)``) -> Output ``(m, v)``. With
    ``multi_head=True`` the penultimate dimension of each is the head axis."""

    Params = AttentionParams
    inputs = ("Key", "Value", "Query")
    hidden_outputs = ("AttentionWeights",)
    pad_clean = True
    real_outputs = ("Output", "AttentionWeights")
    sub_nets = ("ScoringNet",)

    def __init__(self, net: Any = "Bilinear", *, mask=None, score_rescaling=None,
                 multi_head: bool = False, dropout: float = 0, **ports):
        super().__init__({"mask": mask, "score_rescaling": score_rescaling,
                          "multi_head": multi_head, "dropout": dropout}, ports,
                         children={"ScoringNet": scoring_net(net)})

    # --------------------------------------------------------------- structure
    @property
    def _key_port(self) -> str:
        return self.inputs[0]

    @property
    def _value_port(self) -> str:
        return self.inputs[1] if len(self.inputs) == 3 else self.inputs[0]

    def validate(self) -> None:
        scoring_net(self.child("ScoringNet"))  # a replaced scoring net is checked too

    def params_text(self) -> str:
        kind = fast_kind(self.child("ScoringNet"))
        net = {"dot": "'Dot'", "bilinear": "'Bilinear'"}.get(kind[0] if kind else "", "<net>")
        extra = self.params.model_dump(exclude_defaults=True)
        return ", ".join([net] + [f"{k}={v!r}" for k, v in extra.items()])

    # --------------------------------------------------------------- inference
    def rules(self, S: Solver, path: tuple, ports: dict[str, int]) -> dict:
        sub = path + ("ScoringNet",)
        me = f"{type(self).__name__} at {where(path)}"
        heads = (S.new_dim(origin=me),) if self.params.multi_head else ()
        n = S.new_dim(varying=True, origin=me)
        m = S.new_dim(varying=True, origin=me)
        kdim, vdim, qdim = S.new_dim(), S.new_dim(), S.new_dim()
        kp, vp = self._key_port, self._value_port
        what = "the layer takes a sequence of vectors" + (" per head" if heads else "")
        S.constrain(ports[kp], (n,) + heads + (kdim,), None, where(path, kp), what)
        S.constrain(ports[vp], (n,) + heads + (vdim,), None, where(path, vp), what)
        scoring = self.child("ScoringNet")
        S.constrain(S.port(sub, "Input"), (kdim,), None, where(sub, "Input"),
                    f"the scoring net of {me} takes one {kp} vector")
        S.constrain(S.port(sub, "Query"), (qdim,), None, where(sub, "Query"),
                    f"the scoring net of {me} takes one Query vector")
        S.constrain(S.port(sub, scoring.output_key("Output")), (), None, where(sub, "Output"),
                    "a scoring net must produce a scalar (\"Real\")")
        tq, to, tw = ports["Query"], ports["Output"], ports["AttentionWeights"]
        def rule() -> None:
            r = S.rank(tq)
            if r is None:
                return
            if r not in (len(heads) + 1, len(heads) + 2):
                raise ShapeError(f"{where(path, 'Query')} has shape {S.show(tq)!r}; {me} takes "
                                 "a sequence of query vectors or one query vector")
            lead = (m,) if r == len(heads) + 2 else ()
            S.constrain(tq, lead + heads + (qdim,), None, where(path, "Query"), what)
            if self.params.mask is not None:
                if not lead:
                    raise ShapeError(f"{me}: a causal mask needs a sequence of queries")
                S.equal_sizes(n, m, f"the length of {where(path, kp)}",
                              f"the length of {where(path, 'Query')} (a causal mask needs "
                              "equal lengths)")
            S.constrain(to, lead + heads + (vdim,), None, where(path, "Output"), what)
            S.constrain(tw, lead + heads + (n,), None, where(path, "AttentionWeights"), what)

        def default() -> None:
            if S.rank(tq) is None:
                S.constrain(tq, (m,) + heads + (qdim,), None, where(path, "Query"), what)

        S.rules.append(rule)
        S.defaults.append(default)
        return {}

    # ------------------------------------------------------------------ compute
    def _to_heads(self, x: np.ndarray, seq: bool) -> np.ndarray:
        """User layout -> (B, h, len, dim)."""
        if not seq:
            x = x[:, None]
        return x.swapaxes(1, 2) if self.params.multi_head else x[:, None]

    def _from_heads(self, x: np.ndarray, seq: bool) -> np.ndarray:
        x = x.swapaxes(1, 2) if self.params.multi_head else x[:, 0]
        return x if seq else x[:, 0]

    def _valid(self, ctx: Any, m: int, n: int, lead: tuple) -> np.ndarray | None:
        """Boolean mask (R|1, 1, m, n) of the (query, key) pairs that may attend, for the R
        rows of the leading shape ``lead``."""
        valid = None
        key_mask = _rows(ctx.valid_mask(self._key_port, n), lead)
        if key_mask is not None:
            valid = key_mask[:, None, None, :]
        mask = self.params.mask
        if mask is not None:
            j, i = np.arange(m)[:, None], np.arange(n)[None, :]
            causal = i <= j
            if isinstance(mask, tuple):
                causal &= i > j - mask[1]
            causal = causal[None, None]
            valid = causal if valid is None else valid & causal
        return valid

    def forward(self, ins, arrays, ctx):
        # the ports, and the scoring net's kind, never change: found once
        kp, vp, ports, kind = self.cached("forward_facts", lambda: (
            self._key_port, self._value_port,
            tuple(dict.fromkeys((self._key_port, self._value_port, "Query"))),
            fast_kind(self.child("ScoringNet"))))
        seq = ctx.meta("Query").rank == (3 if self.params.multi_head else 2)
        # any number of leading axes (a scoring net above this one gives its Input side and
        # its Query side different ones): broadcast them together, flatten them to R rows
        lead, full = broadcast_lead([ins[p] for p in ports], [ctx.meta(p).rank for p in ports])
        R = math.prod(lead)
        rows = dict(zip(ports, full, strict=True)) if len(lead) == 1 else \
            {p: x.reshape((R,) + x.shape[len(lead):]) for p, x in zip(ports, full, strict=True)}
        K, V = self._to_heads(rows[kp], True), self._to_heads(rows[vp], True)
        Q = self._to_heads(rows["Query"], seq)
        m, n = Q.shape[2], K.shape[2]
        if K.dtype.kind != "f":  # index vectors: a custom scoring net
            V = V.astype(ctx.dtype)  # may embed them; Dot, Bilinear and the sum read numbers
            K = K if kind is None else K.astype(ctx.dtype)
        scale = 1.0 / math.sqrt(K.shape[-1]) if self.params.score_rescaling else 1.0
        qmask = _rows(ctx.valid_mask("Query", m), lead) if seq else None
        valid = self._valid(ctx, m, n, lead)
        h = Q.shape[1]
        # the batch in slices (on up to two threads): every step below is per example
        slices = batch_slices(R, 2.0 * R * h * m * n * (Q.shape[-1] + V.shape[-1]),
                              max_rows=SLICE_ELEMENTS // max(1, h * m * n))

        def error(what, nan):
            return None if nan and kind is None else self._not_finite(ctx, what, K, Q)

        def forward_slice(c: slice) -> bool:
            sc.forward(c, w[c])
            _, overflowed = _masked_softmax(w[c], scale, _part(valid, c), _part(qmask, c),
                                            error)
            if keep is not None:
                np.multiply(w[c], keep[c], out=w_used[c])
            np.matmul(w_used[c], V[c], out=O[c])
            return overflowed

        direct = len(slices) == 1 and m * n * max(Q.shape[-1], V.shape[-1]) < DIRECT_MNK
        # overflow and NaN in the scores are checked by _masked_softmax (the slices on other
        # threads run under the same error state: parallel_map passes it on)
        with np.errstate(over="ignore", invalid="ignore"):
            sc = scores(kind, K, Q, ctx)
            w = scratch_array((R, h, m, n), sc.dtype)  # the scores, then (in place) the weights
            O = scratch_array((R, h, m, V.shape[-1]), common_dtype(w, V))
            keep = None
            if ctx.training and self.params.dropout > 0:
                p = self.params.dropout
                keep = (ctx.rng.random(w.shape) >= p).astype(w.dtype) / (1 - p)
            w_used = w if keep is None else scratch_array(w.shape, w.dtype)
            overflowed = any(_each(forward_slice, slices, direct))

        def unflat(x: np.ndarray) -> np.ndarray:
            return x.reshape(lead + x.shape[1:])

        outputs = {"Output": unflat(self._from_heads(O, seq)),
                   "AttentionWeights": unflat(self._from_heads(w, seq))}

        def heads_of(g: np.ndarray | None) -> np.ndarray | None:
            if g is None:
                return None
            return self._to_heads(g.reshape((R,) + g.shape[len(lead):]), seq)

        def backward(g):
            gO, gw = heads_of(g.get("Output")), heads_of(g.get("AttentionWeights"))
            # Value's gradient: an output of its own, or (one port) added to Key's slice by slice
            gV = None
            if gO is not None and kp != vp and ctx.needs_grad(vp):
                gV = scratch_array(V.shape, common_dtype(w, gO))
            sc.backward_begin(gO is not None and kp == vp)
            gs_dtype = None if gO is None else common_dtype(gO, V)

            def backward_slice(c: slice) -> None:
                gs = np.zeros_like(w[c]) if gO is None and gw is None else None  # d/dw, d/ds
                extra = None
                if gO is not None:
                    gs = np.matmul(gO[c], _t(V[c]), out=scratch_array(w[c].shape, gs_dtype))
                    if kp == vp or gV is not None:
                        extra = gV[c] if gV is not None else scratch_array(
                            V[c].shape[:-1] + gO.shape[-1:], common_dtype(w_used, gO))
                        np.matmul(_t(w_used[c]), gO[c], out=extra)
                    if keep is not None:
                        gs *= keep[c]
                    if gw is not None:
                        gs += gw[c]
                elif gw is not None:
                    gs = gw[c].copy()
                _softmax_backward(w[c], gs, scale)
                sc.backward(c, gs, extra if kp == vp else None)

            counts = None if kind is not None else _counting_pairs(valid, qmask)
            with np.errstate(over="ignore", invalid="ignore"):  # checked below
                _each(backward_slice, slices, direct)
                gK, gQ, array_grads = sc.backward_end(counts)
            if overflowed and not all(np.isfinite(a).all()
                                      for a in (gK, gQ, *array_grads.values())):
                err = self._not_finite(ctx, "the gradients of its scores", K, Q)
                if err is not None:
                    raise err
            grads = {"Query": self._from_heads(gQ, seq), kp: self._from_heads(gK, True)}
            if kp != vp and gV is not None:
                grads[vp] = self._from_heads(gV, True)
            return {p: sum_to(unflat(g), ins[p].shape) for p, g in grads.items()
                    if ctx.needs_grad(p)}, array_grads

        return outputs, backward

    def _not_finite(self, ctx: Any, what: str, K: np.ndarray, Q: np.ndarray) -> NetError | None:
        """The error for scores that overflowed (or a scoring net that gave NaN); None when
        the keys or queries themselves are not finite (NaN from upstream, such as the Log of a
        negative, is not this layer's doing: it passes through)."""
        if not (np.isfinite(K).all() and np.isfinite(Q).all()):
            return None
        dtype = np.dtype(ctx.dtype)
        fix = ("compute with dtype=np.float64" if dtype == np.float32 else
               "scale the inputs down")
        return NetError(f"{type(self).__name__} at {where(ctx.path)}: {what} are not "
                        f"finite in {dtype.name} (a score beyond {np.finfo(dtype).max:.3g} "
                        f"overflows, or the scoring net gave NaN); {fix}")


def _each(fn: Any, slices: list[slice], direct: bool) -> list:
    """``fn`` on every slice: directly when ``direct`` (one small slice, see
    ``DIRECT_MNK``), else on the threads of ``parallel_map``."""
    return [fn(c) for c in slices] if direct else parallel_map(fn, slices)


def _rows(mask: np.ndarray | None, lead: tuple) -> np.ndarray | None:
    """A ``(B, len)`` mask of per-example valid positions for the rows of values with leading
    shape ``lead`` (the batch first) flattened into one axis."""
    if mask is None or len(lead) == 1:
        return mask
    mask = mask.reshape(mask.shape[:1] + (1,) * (len(lead) - 1) + mask.shape[1:])
    return np.broadcast_to(mask, lead + mask.shape[-1:]).reshape(-1, mask.shape[-1])


def _counting_pairs(valid: np.ndarray | None, qmask: np.ndarray | None) -> np.ndarray | None:
    """The (query, key) pairs whose weights count, ``(R|1, 1, m, n)``: allowed keys of valid
    queries; None when all do."""
    if qmask is None:
        return valid
    rows = qmask[:, None, :, None]
    return rows if valid is None else valid & rows


def _masked_softmax(s: np.ndarray, scale: float, valid: np.ndarray | None,
                    qmask: np.ndarray | None, error: Any) -> tuple[np.ndarray, bool]:
    """``softmax(s * scale)`` over the last axis, in place in ``s`` (a fresh array): keys
    outside ``valid`` get weight exactly 0, and so do rows of padded queries (``qmask``).
    Returns the weights and whether scores had overflowed (then the caller checks that the
    gradients of the scores are finite, and raises ``error(what)`` if not).

    Keys outside ``valid`` get ``-inf`` by adding an additive mask (0 or ``-inf``), three
    times as fast as a masked copy; where that meets a ``+inf`` or NaN score of such a key
    (the sum is NaN, and so is the row's maximum) the masked copy is made after all, so no
    score of a key that may not be attended reaches a row.

    The largest score of each row is subtracted before ``exp``. Scores that overflowed to
    ``-inf`` get weight 0; a row with one ``+inf`` score gives that key all its weight, as
    without overflow: a finite score lies below it by about the float spacing there (2e31 in
    float32) or more, and ``exp(-2e31) = 0``. Weights below the smallest normal number
    (``finfo.tiny``, 1.2e-38 in float32) become 0, as under flush-to-zero arithmetic: that
    changes no output by more than ``tiny`` times a value, and subnormal operands make the
    products that read the weights tens of times slower on x86. What cannot be resolved — a
    NaN score, several
    ``+inf`` scores in a row, or all allowed scores ``-inf`` — raises ``error(what, nan)``
    (``nan``: only NaN scores are unresolved); when that returns None, NaN weights pass
    through (the inputs were not finite to begin with, or a custom scoring net computed NaN,
    e.g. the Log of a negative, which is its own business as in any other layer).
    """
    if scale != 1.0:
        s *= scale
    if valid is not None:  # -inf at keys not allowed (NaN where such a score is +inf or NaN)
        s += np.where(valid, s.dtype.type(0), s.dtype.type(-np.inf))
    s_max = np.maximum.reduce(s, axis=-1, keepdims=True)  # NaN where a row holds a NaN
    # a NaN or infinite row maximum makes their sum not finite (so, harmlessly, do finite
    # maxima whose sum overflows: _resolve_overflow leaves such rows as they are)
    finite = math.isfinite(np.add.reduce(s_max, axis=None))
    if not finite and valid is not None:
        np.copyto(s, -np.inf, where=~valid)  # those NaN: -inf at keys not allowed, always
        s_max = np.maximum.reduce(s, axis=-1, keepdims=True)
        finite = math.isfinite(np.add.reduce(s_max, axis=None))
    overflowed = False
    if not finite:
        s_max, overflowed = _resolve_overflow(s, s_max, valid, qmask, error)
    s -= s_max
    np.exp(s, out=s)
    total = np.add.reduce(s, axis=-1, keepdims=True)
    if valid is not None:
        total[total == 0] = 1
    if qmask is not None:
        s *= qmask[:, None, :, None] / total
    else:
        s /= total
    tiny = _tiny(s.dtype)
    # subnormal weights (see above); without masks, zeros are rare: look for any first
    if valid is not None or qmask is not None or np.minimum.reduce(s, axis=None) < tiny:
        s *= s >= tiny  # a NaN weight stays NaN (NaN * 0 is NaN), as it passes through
    return s, overflowed


@functools.cache
def _tiny(dtype: np.dtype) -> float:
    """The smallest normal number of ``dtype``."""
    return float(np.finfo(dtype).tiny)


def _resolve_overflow(s: np.ndarray, s_max: np.ndarray, valid: np.ndarray | None,
                      qmask: np.ndarray | None, error: Any) -> tuple[np.ndarray, bool]:
    """For the rows of ``s`` whose max is not finite: rows that attend nowhere (no allowed
    key, or a padded query) become all ``-inf`` (weights 0); a row with one ``+inf`` becomes
    0 there and ``-inf`` elsewhere (weight 1 on that key); any other row raises the error
    ``error(what, nan)`` returns, or (``None``) is left to give NaN weights. Returns the row
    maxima to subtract and whether a score overflowed to ``+inf`` in a row that counts."""
    live = np.ones(s_max.shape, bool)  # rows whose weights count
    if valid is not None:
        live &= np.broadcast_to(valid, s.shape).any(axis=-1, keepdims=True)
    if qmask is not None:
        live &= qmask[:, None, :, None]
    top = live & (s_max == np.inf) & ((s == np.inf).sum(axis=-1, keepdims=True) == 1)
    unresolved = live & ~top & ~np.isfinite(s_max)
    if unresolved.any():
        err = error("its attention scores", bool(np.isnan(s_max[unresolved]).all()))
        if err is not None:
            raise err
    s[...] = np.where(~live, -np.inf, np.where(top, np.where(s == np.inf, 0.0, -np.inf), s))
    return np.where(~live | top, 0, s_max).astype(s.dtype), bool(top.any())


def _softmax_backward(w: np.ndarray, gs: np.ndarray, scale: float) -> None:
    """``d/ds`` of the weights ``w = softmax(s * scale)``, in place in ``gs`` (which holds
    ``d/dw``): ``gs = (gw - sum_i gw_i w_i) * w * scale``; rows of padded queries come out 0
    because their ``w`` is 0."""
    gs -= np.vecdot(gs, w)[..., None]
    gs *= w
    if scale != 1.0:
        gs *= scale


def _t(x: np.ndarray) -> np.ndarray:
    return x.swapaxes(-1, -2)


def _part(x: np.ndarray | None, c: slice) -> np.ndarray | None:
    """The rows ``c`` of a per-row array (a mask), or all of it when it is shared by all."""
    return x if x is None or x.shape[0] == 1 else x[c]


class SequenceAttentionParams(Params):
    """SequenceAttentionLayer has no options: these are pinned to plain attention."""

    mask: None = None
    score_rescaling: None = None
    multi_head: Literal[False] = False
    dropout: Literal[0.0] = 0.0


class SequenceAttentionLayer(AttentionLayer):
    """``SequenceAttentionLayer(net="Bilinear", Input=..., Query=...)``: Input ``e_1..e_n``
    (size d1), Query ``q_1..q_m`` (size d2) -> Output ``o_1..o_m`` (size d1) with
    ``o_j = sum_i softmax_i(f(e_i, q_j)) e_i``; no scaling, bias, mask or dropout."""

    Params = SequenceAttentionParams
    inputs = ("Input", "Query")

    def __init__(self, net: Any = "Bilinear", **ports):
        Layer.__init__(self, {}, ports, children={"ScoringNet": scoring_net(net)})

