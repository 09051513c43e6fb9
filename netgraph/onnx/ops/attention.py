"""AttentionLayer and SequenceAttentionLayer.

Layout: keys, values and queries go to ``(lead, heads, len, dim)`` (one head: an
``Unsqueeze``; ``multi_head``: a ``Transpose`` of the head axis forward). Scores
``s (lead, heads, m, n)``:

* "Dot": ``MatMul(Q, Kᵀ)``; "Bilinear": ``MatMul(MatMul(Q, W), Kᵀ)``;
* any other scoring net: lowered once on ``Input = K (lead, heads, 1, n, k)`` and
  ``Query = Q (lead, heads, m, 1, q)`` — the broadcasting netgraph uses, so every part of the
  scoring net that sees only the Input runs once per key position and every part that sees
  only the Query once per query position — then expanded to ``(lead, heads, m, n)``.

Then ``s / √k`` with "DimensionSqrt"; ``Where(valid, s, -inf)`` with ``valid`` the valid key
positions (from the key lengths) and the causal window (``i <= j``, and ``i > j - w`` for
``("Causal", w)``, from ``Range``); ``Softmax`` over the keys; the weights of padded query
rows and of rows with no allowed key set to exactly 0 (``Where`` again, which also drops the
NaN of a softmax over nothing); ``O = MatMul(w, V)``.
"""

from __future__ import annotations

import math

import numpy as np

from .._library import fast_kind
from ..builder import FLOAT
from ..lower import StepLowering


def _ports(c: StepLowering) -> tuple[str, str]:
    """The key and value ports: (Key, Value), or (Input, Input) for SequenceAttentionLayer."""
    names = c.layer.inputs
    return names[0], names[1] if len(names) == 3 else names[0]


def _to_heads(c: StepLowering, x: str, seq: bool) -> str:
    """User layout ``(lead, [len], [heads], dim)`` -> ``(lead, heads, len, dim)``."""
    g, L = c.g, c.lead
    if not seq:
        x = g.unsqueeze(x, [L])
    if c.params.multi_head:
        return g.transpose(x, [*range(L), L + 1, L, L + 2])
    return g.unsqueeze(x, [L])


def _from_heads(c: StepLowering, x: str, seq: bool) -> str:
    g, L = c.g, c.lead
    x = g.transpose(x, [*range(L), L + 1, L, L + 2]) if c.params.multi_head else \
        g.squeeze(x, [L])
    return x if seq else g.squeeze(x, [L])


def _scores(c: StepLowering, K: str, Q: str) -> str:
    g, L = c.g, c.lead
    scoring = c.layer.child("ScoringNet")
    kind = fast_kind(scoring)
    if kind is not None and kind[0] == "additive":  # exported as the custom net it is
        kind = None
    if kind is not None:  # numbers (index keys go only to a custom scoring net)
        K, Q = (x if not c.meta(p).integer else g.cast(x, FLOAT)
                for x, p in ((K, _ports(c)[0]), (Q, "Query")))
        kt = g.transpose(K, [*range(L + 1), L + 2, L + 1])
    if kind is not None and kind[0] == "dot":
        return g.op("MatMul", [Q, kt])
    if kind is not None:
        W = c.initializer(c.step.path + ("ScoringNet",) + tuple(kind[1]))
        return g.op("MatMul", [g.op("MatMul", [Q, W]), kt])
    keys, queries = g.unsqueeze(K, [L + 1]), g.unsqueeze(Q, [L + 2])
    s = c.sub("ScoringNet", {"Input": keys, "Query": queries}, L + 3)["Output"]
    full = g.op("Max", [g.dims(keys, 0, L + 3), g.dims(queries, 0, L + 3)])
    return g.op("Expand", [s, full])


def _allowed(c: StepLowering, K: str, Q: str) -> str | None:
    """Bool ``(batch|1, ..., 1, m|1, n)``: the (query, key) pairs that may attend."""
    g, L = c.g, c.lead
    kp = _ports(c)[0]
    valid = c.valid(kp, c.x(kp), axes=(0,))
    if valid is not None:  # (batch, 1.., n, 1[, 1]) -> (batch, 1.., 1, 1, n)
        r = c.rank(kp)
        valid = g.unsqueeze(g.squeeze(valid, list(range(L + 1, L + r))), [L, L + 1])
    mask = c.params.mask
    if mask is not None:
        n, m = g.dim(K, L + 1), g.dim(Q, L + 1)
        i = g.unsqueeze(g.op("Range", [g.const(0), n, g.const(1)]), [0])
        j = g.unsqueeze(g.op("Range", [g.const(0), m, g.const(1)]), [1])
        causal = g.op("Not", [g.op("Greater", [i, j])])
        if isinstance(mask, tuple):
            causal = g.op("And", [causal, g.op("Greater", [i, g.op("Sub", [j, g.const(
                mask[1])])])])
        causal = g.unsqueeze(causal, list(range(L + 1)))
        valid = causal if valid is None else g.op("And", [valid, causal])
    return valid


def lower_attention(c: StepLowering) -> dict[str, str]:
    g, L = c.g, c.lead
    kp, vp = _ports(c)
    heads = 1 if c.params.multi_head else 0
    seq = c.rank("Query") == heads + 2
    ports = list(dict.fromkeys((kp, vp, "Query")))
    full = dict(zip(ports, c.broadcast_lead([c.x(p) for p in ports],
                                            [c.rank(p) for p in ports])))
    K, Q = _to_heads(c, full[kp], True), _to_heads(c, full["Query"], seq)
    V = _to_heads(c, full[vp] if not c.meta(vp).integer else g.cast(full[vp], FLOAT), True)
    s = _scores(c, K, Q)
    if c.params.score_rescaling:
        s = g.op("Mul", [s, g.f32(1.0 / math.sqrt(c.dims(kp)[-1]))])
    allowed = _allowed(c, K, Q)
    if allowed is not None:
        s = g.where(allowed, s, g.f32(-np.inf))
    w = g.op("Softmax", [s], axis=-1)
    if seq:
        qvalid = c.valid("Query", full["Query"], axes=(0,))
        if qvalid is not None:  # (batch, 1.., m, 1[, 1]) -> (batch, 1.., 1, m, 1)
            qvalid = g.unsqueeze(g.squeeze(qvalid, list(range(L + 1, L + c.rank("Query")))),
                                 [L, L + 2])
            allowed = qvalid if allowed is None else g.op("And", [allowed, qvalid])
    w = g.where(allowed, w, g.f32(0.0))
    out = g.op("MatMul", [w, V])
    return {"Output": _from_heads(c, out, seq), "AttentionWeights": _from_heads(c, w, seq)}
