"""Attention forward+backward through the public API, against PyTorch eager in the same run.

Each measurement: outputs plus the gradients for Input, Query and every array of the scoring
net, on a batch of B examples whose Input/Query lengths are random in [n/2, n] / [m/2, m].
PyTorch computes the same quantities with autograd, in two variants: from the same
per-example arrays (padding them in every call, as netgraph packs them), and from padded
tensors and masks made beforehand (less work than netgraph's side). Prints the machine, the
float32 GEMM rate measured in the same run, and the fraction of it each call reaches; writes
``benchmarks/results/attention.json``. The sides run in turn, ``--repeat`` calls each, for
``--rounds`` rounds (fewer for calls over a second); times and ratios are the medians over
the rounds. The per-pair PyTorch module (a reference, not a target) is timed once.

    python benchmarks/attention.py [--sizes small medium large] [--repeat 5] [--rounds 5]
                                   [--no-json]
"""

from __future__ import annotations

import argparse
import sys
import time
from functools import partial
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import describe_machine, gemm_gflops, machine, rounds_ms, write_json  # noqa: E402

from netgraph import (  # noqa: E402
    LinearLayer,
    NetArrayGradient,
    NetGraph,
    NetInitialize,
    NetPort,
    NetPortGradient,
    SequenceAttentionLayer,
    ThreadingLayer,
    tune_malloc,
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


def torch_pad(inputs, queries):
    """Padded ``(B, n, d)`` / ``(B, m, d)`` tensors and the key and query masks."""
    import torch
    from torch.nn.utils.rnn import pad_sequence

    E, Q = pad_sequence(inputs, batch_first=True), pad_sequence(queries, batch_first=True)
    n, m = E.shape[1], Q.shape[1]
    key_mask = torch.arange(n)[None, :] < torch.tensor([len(x) for x in inputs])[:, None]
    query_mask = torch.arange(m)[None, :] < torch.tensor([len(q) for q in queries])[:, None]
    return E, Q, key_mask, query_mask


def torch_step(kind, inputs, queries, weights, fused: bool = False):
    """From per-example tensors (as netgraph starts): pad, then :func:`torch_padded_step`."""
    return torch_padded_step(kind, torch_pad(inputs, queries), weights, fused)


def torch_padded_step(kind, padded, weights, fused: bool = False):
    """Score, mask, softmax, weighted sum, backward: PyTorch eager with autograd, on padded
    tensors and masks.

    A custom scoring module is applied to every (input, query) pair, as a generic attention
    implementation must; ``fused=True`` instead hand-writes the additive score with the
    projections hoisted out of the pair loop."""
    import torch

    E0, Q0, key_mask, query_mask = padded
    E, Q = E0.detach().requires_grad_(True), Q0.detach().requires_grad_(True)
    n, m = E.shape[1], Q.shape[1]
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


def useful_flops(kind: str, inputs, queries) -> float:
    """FLOPs of the matrix products of forward + backward on the true lengths (padding
    excluded): the weighted sum and its two gradients ``6 m n d``, the scores and theirs
    (Dot ``6 m n d``; Bilinear also ``6 p d^2`` for the projection of the shorter side, p
    rows; Additive ``6 (n d h + m d h + m n h)`` with h = d)."""
    total = 0.0
    for x, q in zip(inputs, queries, strict=True):
        n, m, d = len(x), len(q), x.shape[1]
        total += 6 * m * n * d
        if kind == "Dot":
            total += 6 * m * n * d
        elif kind == "Bilinear":
            total += 6 * m * n * d + 6 * min(m, n) * d * d
        else:
            total += 6 * (n * d * d + m * d * d + m * n * d)
    return total


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", nargs="+", default=list(SIZES), choices=list(SIZES))
    ap.add_argument("--kinds", nargs="+", default=["Dot", "Bilinear", "Additive"])
    ap.add_argument("--repeat", type=int, default=5, help="calls per side and round")
    ap.add_argument("--rounds", type=int, default=5,
                    help="rounds of the sides in turn; times and ratios: medians over them")
    ap.add_argument("--no-json", action="store_true", help="do not write the results file")
    ap.add_argument("--malloc-tuning", action="store_true",
                    help="run under netgraph.tune_malloc() (glibc keeps freed memory: no page "
                         "faults per call, for both sides of this process); results go to "
                         "attention_tuned.json")
    args = ap.parse_args()
    if args.malloc_tuning and not tune_malloc():
        sys.exit("--malloc-tuning: glibc's mallopt is not available here")
    try:
        import torch  # noqa: F401 - only whether it is there
        have_torch = True
    except ImportError:
        have_torch = False
        print("PyTorch not installed: timing netgraph only")
    info = machine()
    gemm = gemm_gflops()
    print(describe_machine(info))
    print(f"float32 GEMM (1024^3, NumPy, same run): {gemm:.0f} GFLOP/s")
    print("torch 'lists': from the per-example arrays, padding them in every call (as netgraph "
          "packs them); torch 'padded': from padded tensors and masks made beforehand (less "
          "work than netgraph's side). Additive: torch is the hand-fused version (projections "
          "hoisted); 'pairs' (padded) applies the scoring module to every pair. GEMM %: useful "
          "product FLOPs (true lengths) per second of the netgraph call over the GEMM rate.")
    print(f"{'size':7s} {'scoring':9s} {'netgraph':>9s} {'lists':>8s} {'ratio':>6s} "
          f"{'padded':>8s} {'ratio':>6s} {'GEMM %':>7s} {'pairs':>8s}   (ms)")
    rows = []
    for size in args.sizes:
        B, n, m, d = SIZES[size]
        inputs, queries = make_data(B, n, m, d)
        for kind in args.kinds:
            layer = make_layer(kind, d)
            mine = partial(ours, layer, kind, inputs, queries)
            flops = useful_flops(kind, inputs, queries)
            row = {"size": size, "scoring": kind, "B": B, "n": n, "m": m, "d": d,
                   "useful_gflop": flops / 1e9, "gemm_gflops": gemm}
            if not have_torch:
                (row["netgraph_ms"],), _ = rounds_ms([mine], args.repeat, args.rounds)
            else:
                E_, Q_, W_ = torch_setup(layer, kind, inputs, queries)
                padded = torch_pad(E_, Q_)
                fused = kind == "Additive"
                check_agreement(layer, kind, inputs, queries, (E_, Q_, W_), fused)
                fns = [mine, partial(torch_step, kind, E_, Q_, W_, fused),
                       partial(torch_padded_step, kind, padded, W_, fused)]
                start = time.perf_counter()
                fns[2]()
                rounds = args.rounds if time.perf_counter() - start < 1 else 2
                (ms, lists_ms, padded_ms), (_, ratio_lists, ratio_padded) = \
                    rounds_ms(fns, args.repeat, rounds)
                row.update(netgraph_ms=ms, torch_lists_ms=lists_ms, torch_padded_ms=padded_ms,
                           ratio_lists=ratio_lists, ratio_padded=ratio_padded,
                           torch_fused=fused, torch_padded_does_less_work=True)
                if fused:
                    (row["torch_pairs_padded_ms"],), _ = rounds_ms(
                        [partial(torch_padded_step, kind, padded, W_)], args.repeat, 1)
            row["gemm_fraction"] = flops / (row["netgraph_ms"] / 1000) / (gemm * 1e9)
            rows.append(row)
            line = f"{size:7s} {kind:9s} {row['netgraph_ms']:9.2f}"
            if have_torch:
                line += (f" {row['torch_lists_ms']:8.2f} {row['ratio_lists']:6.2f}"
                         f" {row['torch_padded_ms']:8.2f} {row['ratio_padded']:6.2f}")
            line += f" {100 * row['gemm_fraction']:6.1f}%"
            if "torch_pairs_padded_ms" in row:
                line += f" {row['torch_pairs_padded_ms']:8.2f}"
            print(line, flush=True)
    if not args.no_json:
        name = "attention_tuned" if args.malloc_tuning else "attention"
        command = "python benchmarks/attention.py" + (" --malloc-tuning" if args.malloc_tuning
                                                      else "")
        print("wrote", write_json(name, rows, info, gemm_gflops=gemm, command=command))


def check_agreement(layer, kind, inputs, queries, setup, fused: bool = False) -> None:
    """Both sides must compute the same numbers before their times mean anything."""
    ours_out = ours(layer, kind, inputs, queries)
    out, gE, gQ, gw = torch_step(kind, *setup, fused=fused)
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
