"""Attention forward+backward through the public API, against PyTorch eager in the same run.

Each measurement: outputs plus the gradients for Input, Query and every array of the scoring
net, on a batch of B examples whose Input/Query lengths are random in [n/2, n] / [m/2, m].
PyTorch gets the same padded data with masks and computes the same quantities with autograd.

    python benchmarks/attention.py [--sizes small medium large] [--repeat 7]
"""

from __future__ import annotations

import argparse
import sys
import time
from functools import partial
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from netgraph import (  # noqa: E402
    LinearLayer,
    NetArrayGradient,
    NetGraph,
    NetInitialize,
    NetPort,
    NetPortGradient,
    SequenceAttentionLayer,
    ThreadingLayer,
)

SIZES = {"small": (32, 20, 10, 64), "medium": (64, 50, 20, 128), "large": (64, 200, 50, 256)}


def additive_scoring(hidden: int) -> NetGraph:
    """Bahdanau's ``v . tanh(W e + U q)`` as a scoring NetGraph."""
    return NetGraph(
        {"W": LinearLayer(hidden, biases=False), "U": LinearLayer(hidden, biases=False),
         "add": ThreadingLayer("Plus"), "tanh": "Tanh", "v": LinearLayer((), biases=False)},
        [(NetPort("Input"), "W"), (NetPort("Query"), "U"), (["W", "U"], "add", "tanh", "v")])


def make_layer(kind: str, d: int, seed: int = 0):
    net = {"Dot": "Dot", "Bilinear": "Bilinear", "Additive": additive_scoring(d)}[kind]
    layer = SequenceAttentionLayer(net, Input=("Varying", d), Query=("Varying", d))
    return NetInitialize(layer, seed=seed)


def array_paths(kind: str) -> list[list[str]]:
    return {"Dot": [], "Bilinear": [["ScoringNet", "Linear", "Weights"]],
            "Additive": [["ScoringNet", k, "Weights"] for k in ("W", "U", "v")]}[kind]


def make_data(B: int, n: int, m: int, d: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    nl = rng.integers(n // 2, n + 1, size=B)
    ml = rng.integers(m // 2, m + 1, size=B)
    inputs = [rng.standard_normal((k, d)).astype(np.float32) for k in nl]
    queries = [rng.standard_normal((k, d)).astype(np.float32) for k in ml]
    return inputs, queries


def ours(layer, kind: str, inputs, queries):
    wants = [NetPort("Output"), NetPortGradient("Input"), NetPortGradient("Query")]
    wants += [NetArrayGradient(p) for p in array_paths(kind)]
    return layer({"Input": inputs, "Query": queries}, wants)


def torch_setup(layer, kind: str, inputs, queries):
    """What a PyTorch user holds: per-example tensors and the scoring arrays."""
    import torch

    from netgraph import NetExtract

    weights = [torch.tensor(NetExtract(layer, p)) for p in array_paths(kind)]
    return ([torch.from_numpy(x) for x in inputs], [torch.from_numpy(q) for q in queries],
            weights)


def torch_step(kind, inputs, queries, weights, fused: bool = False):
    """Pad, score, mask, softmax, weighted sum, backward: PyTorch eager with autograd.

    A custom scoring module is applied to every (input, query) pair, as a generic attention
    implementation must; ``fused=True`` instead hand-writes the additive score with the
    projections hoisted out of the pair loop (for reference)."""
    import torch
    from torch.nn.utils.rnn import pad_sequence

    E = pad_sequence(inputs, batch_first=True).requires_grad_(True)
    Q = pad_sequence(queries, batch_first=True).requires_grad_(True)
    n, m = E.shape[1], Q.shape[1]
    key_mask = torch.arange(n)[None, :] < torch.tensor([len(x) for x in inputs])[:, None]
    query_mask = torch.arange(m)[None, :] < torch.tensor([len(q) for q in queries])[:, None]
    ws = [w.clone().requires_grad_(True) for w in weights]
    if kind == "Dot":
        s = Q @ E.transpose(1, 2)
    elif kind == "Bilinear":
        s = Q @ (E @ ws[0].T).transpose(1, 2)
    elif fused:
        W, U, v = ws
        s = torch.tanh((E @ W.T)[:, None, :, :] + (Q @ U.T)[:, :, None, :]) @ v
    else:
        W, U, v = ws
        B, d = E.shape[0], E.shape[2]
        e_pairs = E[:, None, :, :].expand(B, m, n, d)
        q_pairs = Q[:, :, None, :].expand(B, m, n, d)
        s = torch.tanh(e_pairs @ W.T + q_pairs @ U.T) @ v
    s = s.masked_fill(~key_mask[:, None, :], float("-inf"))
    w = torch.softmax(s, dim=-1) * query_mask[:, :, None]
    out = w @ E
    out.sum().backward()
    return out, E.grad, Q.grad, [x.grad for x in ws]


def timeit(fns: list, repeat: int) -> list[float]:
    """Median milliseconds of each function, each timed in a block of its own (PyTorch's
    worker threads keep spinning for a while after each call, so strict alternation would
    charge that to whoever runs next)."""
    medians = []
    for fn in fns:
        fn()
        times = []
        for _ in range(repeat):
            t = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t)
        medians.append(1000 * float(np.median(times)))
        time.sleep(0.3)
    return medians


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", nargs="+", default=list(SIZES), choices=list(SIZES))
    ap.add_argument("--kinds", nargs="+", default=["Dot", "Bilinear", "Additive"])
    ap.add_argument("--repeat", type=int, default=7)
    args = ap.parse_args()
    try:
        import torch

        torch.set_num_threads(max(1, torch.get_num_threads()))
    except ImportError:
        torch = None
        print("PyTorch not installed: timing netgraph only")
    print(f"{'size':8s} {'scoring':9s} {'netgraph ms':>12s} {'torch ms':>10s} {'ratio':>7s}"
          f" {'torch-fused ms':>15s} {'ratio':>7s}")
    for size in args.sizes:
        B, n, m, d = SIZES[size]
        inputs, queries = make_data(B, n, m, d)
        for kind in args.kinds:
            layer = make_layer(kind, d)
            mine = partial(ours, layer, kind, inputs, queries)
            if torch is None:
                print(f"{size:8s} {kind:9s} {timeit([mine], args.repeat)[0]:12.2f}")
                continue
            setup = torch_setup(layer, kind, inputs, queries)
            check_agreement(layer, kind, inputs, queries, setup)
            fns = [mine, partial(torch_step, kind, *setup)]
            if kind == "Additive":
                fns.append(partial(torch_step, kind, *setup, fused=True))
            ms, tms, *fused = timeit(fns, args.repeat)
            line = f"{size:8s} {kind:9s} {ms:12.2f} {tms:10.2f} {ms / tms:7.2f}"
            if fused:
                line += f" {fused[0]:15.2f} {ms / fused[0]:7.2f}"
            print(line, flush=True)


def check_agreement(layer, kind, inputs, queries, setup) -> None:
    """Both sides must compute the same numbers before their times mean anything."""
    ours_out = ours(layer, kind, inputs, queries)
    out, gE, gQ, gw = torch_step(kind, *setup)
    for b in (0, len(inputs) - 1):
        k = len(queries[b])
        err = np.abs(ours_out[0][b] - out[b, :k].detach().numpy()).max()
        gerr = np.abs(ours_out[1][b] - gE[b, :len(inputs[b])].numpy()).max()
        assert err < 1e-3 and gerr < 1e-2, f"{kind}: netgraph and torch disagree ({err}, {gerr})"
    for ours_g, theirs in zip(ours_out[3:], gw):
        rel = np.abs(ours_g - theirs.numpy()).max() / (np.abs(theirs.numpy()).max() + 1e-9)
        assert rel < 1e-3, f"{kind}: array gradients disagree (relative {rel})"


if __name__ == "__main__":
    main()
