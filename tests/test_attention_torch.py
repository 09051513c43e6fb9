"""PyTorch as an oracle (float64): attention outputs and gradients for Input, Query and every
array, per example, against netgraph's padded batch. Skipped cleanly without torch."""

import numpy as np
import pytest
from tolerance import assert_close

from netgraph import (
    ElementwiseLayer,
    LinearLayer,
    NetArrayGradient,
    NetExtract,
    NetGraph,
    NetInitialize,
    NetPort,
    NetPortGradient,
    SequenceAttentionLayer,
    ThreadingLayer,
)

torch = pytest.importorskip("torch")

D1, D2, H = 4, 6, 9
N_LENS, M_LENS = [5, 1, 7, 3], [2, 8, 1, 3]
# terms behind one value: a score (per kind), the softmax and weighted sum over the inputs,
# the sum over the queries of a gradient; an array gradient sums every (query, input) pair
TERMS = {k: n + 2 * max(N_LENS) + max(M_LENS) for k, n in
         {"Dot": D1, "Bilinear": D1 * D2, "Additive": H * (D1 + D2)}.items()}
PAIRS = sum(n * m for n, m in zip(N_LENS, M_LENS))
ARRAYS = {"Dot": [], "Bilinear": [("ScoringNet", "Linear", "Weights")],
          "Additive": [("ScoringNet", k, "Weights") for k in ("W", "U", "v")]}


def make(kind):
    if kind == "Additive":
        net = NetGraph(
            {"W": LinearLayer(H, biases=False), "U": LinearLayer(H, biases=False),
             "add": ThreadingLayer("Plus"), "tanh": ElementwiseLayer("Tanh"),
             "v": LinearLayer((), biases=False)},
            [(NetPort("Input"), "W"), (NetPort("Query"), "U"), (["W", "U"], "add", "tanh", "v")])
    else:
        net = kind
    d2 = D1 if kind == "Dot" else D2
    return NetInitialize(SequenceAttentionLayer(net, Input=("Varying", D1),
                                                Query=("Varying", d2)), seed=7), d2


def torch_example(kind, E, Q, arrays, G):
    """One example in PyTorch: returns output and gradients of sum(output * G)."""
    e = torch.tensor(E, requires_grad=True)
    q = torch.tensor(Q, requires_grad=True)
    ws = [torch.tensor(a, requires_grad=True) for a in arrays]
    if kind == "Dot":
        s = q @ e.T
    elif kind == "Bilinear":
        s = q @ (e @ ws[0].T).T
    else:
        W, U, v = ws
        s = torch.tanh((e @ W.T)[None, :, :] + (q @ U.T)[:, None, :]) @ v
    out = torch.softmax(s, dim=1) @ e
    (out * torch.tensor(G)).sum().backward()
    return out.detach().numpy(), e.grad.numpy(), q.grad.numpy(), [w.grad.numpy() for w in ws]


@pytest.mark.parametrize("kind", ["Dot", "Bilinear", "Additive"])
def test_outputs_and_gradients_match_pytorch(kind):
    net, d2 = make(kind)
    rng = np.random.default_rng(11)
    E = [rng.standard_normal((n, D1)) for n in N_LENS]
    Q = [rng.standard_normal((m, d2)) for m in M_LENS]
    G = [rng.standard_normal((m, D1)) for m in M_LENS]  # a seeded output gradient
    arrays = [NetExtract(net, list(p)).astype(np.float64) for p in ARRAYS[kind]]
    wants = ([NetPort("Output"), NetPortGradient("Input"), NetPortGradient("Query")]
             + [NetArrayGradient(p) for p in ARRAYS[kind]])
    got = net({"Input": E, "Query": Q, NetPortGradient("Output"): G}, wants, dtype=np.float64)
    array_sums = [np.zeros_like(a) for a in arrays]
    for b in range(len(E)):
        out, ge, gq, gws = torch_example(kind, E[b], Q[b], arrays, G[b])
        for ours, theirs in zip(got[:3], (out, ge, gq)):
            assert_close(ours[b], theirs, dtype=np.float64, reduction=TERMS[kind])
        for acc, g in zip(array_sums, gws):
            acc += g
    for ours, theirs in zip(got[3:], array_sums):
        assert_close(ours, theirs, dtype=np.float64, reduction=TERMS[kind] + PAIRS)
