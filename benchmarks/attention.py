"""Attention forward+backward through the public API, against PyTorch eager in the same run.

Each measurement: outputs plus the gradients for Input, Query and every array of the scoring
net, on a batch of B examples whose Input/Query lengths are random in [n/2, n] / [m/2, m].
PyTorch computes the same quantities with autograd, in two variants: from the same
per-example arrays (padding them in every call, as netgraph packs them), and from padded
tensors and masks made beforehand (less work than netgraph's side). Prints the machine, the
float32 GEMM rate measured in the same run, and the fraction of it each call reaches; writes
``benchmarks/results/attention.json``. Every side runs in a process of its own
(:class:`common.SideProcess`: no shared heap, allocator cache or thread pool), built from the
same seeded data; the sides run in turn, ``--repeat`` calls each, for ``--rounds`` rounds
(fewer for calls over a second); times and ratios are the medians over the rounds. The
per-pair PyTorch module (a reference, not a target) is timed once.

For Dot and Bilinear the run also times a **NumPy floor** (:func:`numpy_floor_step`): the same
quantities on pre-padded arrays in the fewest NumPy calls we know, the batch cut in halves
run on the machine's cores (BLAS at one thread each, as netgraph runs them), and the least a
library taking per-example lists must add to it (:func:`numpy_pack_floor`: one concatenate of
each port's examples and one reduction over them for the finiteness check). It is not
something a library can reach (it skips the per-example work netgraph's packing and
validation do), only the measure of how far NumPy itself can go on this machine.

    python benchmarks/attention.py [--sizes small medium large] [--repeat 5] [--block-ms 50]
                                   [--rounds 9] [--no-json]
"""

from __future__ import annotations

import argparse
import math
import os
import sys
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (  # noqa: E402
    describe_machine,
    gemm_gflops,
    machine,
    rounds_ms,
    side_processes,
    write_json,
)
from threadpoolctl import ThreadpoolController  # noqa: E402

from netgraph import (  # noqa: E402
    LinearLayer,
    NetArrayGradient,
    NetExtract,
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


def numpy_pad(inputs, queries):
    """Zero-padded ``(B, n, d)`` / ``(B, m, d)`` arrays, the keys' additive mask (0 or -inf,
    ``(B, 1, n)``) and the queries' mask (1 or 0, ``(B, m, 1)``), made beforehand."""
    B, d = len(inputs), inputs[0].shape[1]
    n, m = max(len(x) for x in inputs), max(len(q) for q in queries)
    E, Q = np.zeros((B, n, d), np.float32), np.zeros((B, m, d), np.float32)
    for b, (x, q) in enumerate(zip(inputs, queries, strict=True)):
        E[b, :len(x)], Q[b, :len(q)] = x, q
    key_lens = np.array([len(x) for x in inputs])[:, None, None]
    query_lens = np.array([len(q) for q in queries])[:, None, None]
    neg = np.where(np.arange(n)[None, None, :] < key_lens, 0, -np.inf).astype(np.float32)
    qmask = (np.arange(m)[None, :, None] < query_lens).astype(np.float32)
    return E, Q, neg, qmask


def _floor_buffers(E, Q, W) -> dict[str, np.ndarray]:
    """Every array one part of :func:`_floor_part` writes, allocated once beforehand."""
    (B, n, d), m = E.shape, Q.shape[1]
    f = np.float32
    buf = {"s": np.empty((B, m, n), f), "gw": np.empty((B, m, n), f),
           "t": np.empty((B, m, n), f), "row": np.empty((B, m, 1), f),
           "out": np.empty((B, m, d), f), "gP": np.empty((B, m, d), f),
           "gE": np.empty((B, n, d), f), "gK": np.empty((B, n, d), f)}
    if W is not None:
        buf["P"], buf["gQ"], buf["gW"] = np.empty((B, m, d), f), np.empty((B, m, d), f), \
            np.empty((d, d), f)
    return buf


def _floor_part(E, Q, neg, qmask, W, buf):
    """Forward and backward of one part of the batch (output seed: ones, as PyTorch's side)
    into the preallocated ``buf``: ``s = P E^T`` (``P = Q``, or the projection of the shorter
    side ``Q W`` for Bilinear's ``q . W e``), softmax over the keys, rows of padded queries
    zeroed, ``o = w E``; then ``gw = 1 E^T``, ``gs = w (gw - sum(gw w))``, ``gP = gs E``,
    ``gE = w^T 1 + gs^T P`` (Bilinear: ``gQ = gP W^T``, ``gW = sum Q^T gP``). Dot: ``W``
    None."""
    P = Q if W is None else np.matmul(Q, W, out=buf["P"])
    s, gw, row = buf["s"], buf["gw"], buf["row"]
    np.matmul(P, E.transpose(0, 2, 1), out=s)
    s += neg
    s -= np.max(s, axis=-1, keepdims=True, out=row)
    np.exp(s, out=s)
    np.divide(qmask, np.sum(s, axis=-1, keepdims=True, out=row), out=row)
    s *= row
    out = np.matmul(s, E, out=buf["out"])
    go = np.broadcast_to(qmask, out.shape)  # the seed of out.sum(): 1, times the query mask
    np.matmul(go, E.transpose(0, 2, 1), out=gw)
    gw -= np.sum(np.multiply(gw, s, out=buf["t"]), axis=-1, keepdims=True, out=row)
    gw *= s
    gP = np.matmul(gw, E, out=buf["gP"])
    gE = np.matmul(s.transpose(0, 2, 1), go, out=buf["gE"])
    gE += np.matmul(gw.transpose(0, 2, 1), P, out=buf["gK"])
    if W is None:
        return out, gE, gP, None
    gQ = np.matmul(gP, W.T, out=buf["gQ"])
    gW = np.matmul(Q.reshape(-1, Q.shape[-1]).T, gP.reshape(-1, gP.shape[-1]), out=buf["gW"])
    return out, gE, gQ, gW


_FLOOR_POOL = ThreadPoolExecutor(max_workers=max(1, (os.cpu_count() or 1) - 1))
_BLAS = ThreadpoolController()  # found once: threadpool_limits() looks for it in every call


def numpy_floor_parts(padded, weights) -> list[tuple]:
    """The parts of :func:`numpy_floor_step`: the batch cut into one part per core, each with
    its slices of the padded arrays (:func:`numpy_pad`) and its buffers."""
    E, Q, neg, qmask = padded
    W = weights[0] if weights else None
    parts = min(os.cpu_count() or 1, len(E))
    cuts = [slice(len(E) * i // parts, len(E) * (i + 1) // parts) for i in range(parts)]
    return [(E[c], Q[c], neg[c], qmask[c], W, _floor_buffers(E[c], Q[c], W)) for c in cuts]


def numpy_floor_step(parts: list[tuple]) -> list[tuple]:
    """Dot (no weights) or Bilinear forward + backward in NumPy on pre-padded arrays into
    buffers allocated beforehand (:func:`numpy_floor_parts`), each part on its own thread
    with BLAS at one: the least NumPy itself needs for these numbers."""
    with _BLAS.limit(limits=1, user_api="blas"):
        helpers = [_FLOOR_POOL.submit(_floor_part, *part) for part in parts[1:]]
        return [_floor_part(*parts[0])] + [h.result() for h in helpers]


def numpy_pack_floor(inputs, queries):
    """The least a library given per-example lists adds to :func:`numpy_floor_step`: each
    port's examples brought together (one concatenate) and checked (one reduction)."""
    for examples in (inputs, queries):
        np.isfinite(np.add.reduce(np.concatenate(examples), axis=None))


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


def measure(kind: str, size: str, args: argparse.Namespace, have_torch: bool,
            gemm: float) -> dict[str, Any]:
    """One row: every side of ``kind`` at ``size`` in a process of its own
    (:func:`common.side_processes`), timed in turn for the rounds."""
    B, n, m, d = SIZES[size]
    inputs, queries = make_data(B, n, m, d)
    flops = useful_flops(kind, inputs, queries)
    row = {"size": size, "scoring": kind, "B": B, "n": n, "m": m, "d": d,
           "useful_gflop": flops / 1e9, "gemm_gflops": gemm}
    names = ["netgraph"]
    if have_torch:
        names += ["torch_lists", "torch_padded"]
        check_agreement(kind, size)
        if kind in FLOOR_KINDS:
            check_floor(kind, size)
            names += ["numpy_floor", "numpy_pack"]
        if kind == "Additive":
            names.append("torch_pairs")
    factories = [partial(side, name, kind, size, args.malloc_tuning) for name in names]
    with side_processes(factories) as sides:
        # not the per-pair module (a reference, not a target): it is timed once, below
        timed = [s for s, name in zip(sides, names, strict=True) if name != "torch_pairs"]
        first = timed[2 if have_torch else 0].block(1)[0]  # long calls: fewer rounds
        # short calls: more of them a round, so that a round's median is not a few calls'
        calls = max(args.repeat, min(200, math.ceil(args.block_ms / 1000 / first)))
        times, ratios = rounds_ms(timed, calls, args.rounds if first < 1 else 2)
        if "torch_pairs" in names:
            (row["torch_pairs_padded_ms"],), _ = rounds_ms([sides[-1]], args.repeat, 1)
    row["netgraph_ms"], row["calls_per_round"] = times[0], calls
    if have_torch:
        row.update(torch_lists_ms=times[1], torch_padded_ms=times[2], ratio_lists=ratios[1],
                   ratio_padded=ratios[2], torch_fused=kind == "Additive",
                   torch_padded_does_less_work=True)
    if "numpy_floor" in names:
        row.update(numpy_floor_ms=times[3], numpy_pack_ms=times[4],
                   floor_ratio_padded=(times[3] + times[4]) / times[2])
    row["gemm_fraction"] = flops / (row["netgraph_ms"] / 1000) / (gemm * 1e9)
    return row


def print_row(row: dict[str, Any], have_torch: bool) -> None:
    line = f"{row['size']:7s} {row['scoring']:9s} {row['netgraph_ms']:9.2f}"
    if have_torch:
        line += (f" {row['torch_lists_ms']:8.2f} {row['ratio_lists']:6.2f}"
                 f" {row['torch_padded_ms']:8.2f} {row['ratio_padded']:6.2f}")
    line += f" {100 * row['gemm_fraction']:6.1f}%"
    line += f" {row['torch_pairs_padded_ms']:8.2f}" if "torch_pairs_padded_ms" in row \
        else " " * 9
    if "numpy_floor_ms" in row:
        line += (f" {row['numpy_floor_ms']:6.2f} {row['numpy_pack_ms']:6.2f}"
                 f" {row['floor_ratio_padded']:6.2f}")
    print(line, flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", nargs="+", default=list(SIZES), choices=list(SIZES))
    ap.add_argument("--kinds", nargs="+", default=["Dot", "Bilinear", "Additive"])
    ap.add_argument("--repeat", type=int, default=5, help="least calls per side and round")
    ap.add_argument("--block-ms", type=float, default=50.0,
                    help="more calls per side and round for short calls: as many as fill this "
                         "many milliseconds of PyTorch's padded call (at most 200)")
    ap.add_argument("--rounds", type=int, default=9,
                    help="rounds of the sides in turn; times and ratios: medians over them "
                         "(with 5, two runs of the same code differed by up to 0.45 in a "
                         "row's ratio on the 2-core machine)")
    ap.add_argument("--no-json", action="store_true", help="do not write the results file")
    ap.add_argument("--malloc-tuning", action="store_true",
                    help="run every side's process under netgraph.tune_malloc() (glibc keeps "
                         "freed memory: no page faults per call); results go to "
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
          "product FLOPs (true lengths) per second of the netgraph call over the GEMM rate. "
          "floor: the NumPy floor on pre-padded arrays; +pack: what taking lists adds at "
          "least; ratio: (floor + pack) / padded.")
    print(f"{'size':7s} {'scoring':9s} {'netgraph':>9s} {'lists':>8s} {'ratio':>6s} "
          f"{'padded':>8s} {'ratio':>6s} {'GEMM %':>7s} {'pairs':>8s} {'floor':>6s} "
          f"{'+pack':>6s} {'ratio':>6s}   (ms)")
    rows = []
    for size in args.sizes:
        for kind in args.kinds:
            rows.append(measure(kind, size, args, have_torch, gemm))
            print_row(rows[-1], have_torch)
    if not args.no_json:
        name = "attention_tuned" if args.malloc_tuning else "attention"
        command = "python benchmarks/attention.py" + (" --malloc-tuning" if args.malloc_tuning
                                                      else "")
        print("wrote", write_json(name, rows, info, gemm_gflops=gemm, command=command))


#: the scorings the NumPy floor is timed for
FLOOR_KINDS = ("Dot", "Bilinear")


def case(kind: str, size: str) -> tuple[list, list, Any]:
    """The seeded per-example inputs and queries of ``size`` and the initialized layer of
    ``kind``: the same in every process that builds them."""
    B, n, m, d = SIZES[size]
    inputs, queries = make_data(B, n, m, d)
    return inputs, queries, make_layer(kind, d)


def side(name: str, kind: str, size: str, tuned: bool = False) -> Callable[[], Any]:
    """The call that side ``name`` of the ``kind``/``size`` measurement times, built in the
    process that times it (:class:`common.SideProcess`, one per side) from the same seeded
    data and arrays as every other side: "netgraph" (the public API on the lists),
    "torch_lists", "torch_padded", "torch_pairs" (the per-pair module, padded),
    "numpy_floor" and "numpy_pack". ``tuned``: under :func:`netgraph.tune_malloc` there."""
    if tuned:
        tune_malloc()
    inputs, queries, layer = case(kind, size)
    if name == "netgraph":
        return partial(ours, layer, kind, inputs, queries)
    if name == "numpy_pack":
        return partial(numpy_pack_floor, inputs, queries)
    weights = [np.asarray(NetExtract(layer, p)) for p in array_paths(kind)]
    if name == "numpy_floor":
        return partial(numpy_floor_step, numpy_floor_parts(numpy_pad(inputs, queries), weights))
    E_, Q_, W_ = torch_setup(layer, kind, inputs, queries)
    if name == "torch_lists":
        return partial(torch_step, kind, E_, Q_, W_, kind == "Additive")
    return partial(torch_padded_step, kind, torch_pad(E_, Q_), W_,
                   kind == "Additive" and name == "torch_padded")


def check_floor(kind: str, size: str) -> None:
    """The NumPy floor must compute PyTorch's padded numbers."""
    inputs, queries, layer = case(kind, size)
    padded_np = numpy_pad(inputs, queries)
    weights_np = [np.asarray(NetExtract(layer, p)) for p in array_paths(kind)]
    E_, Q_, weights = torch_setup(layer, kind, inputs, queries)
    out, gE, gQ, gw = torch_padded_step(kind, torch_pad(E_, Q_), weights)
    parts = numpy_floor_step(numpy_floor_parts(padded_np, weights_np))
    mine = [np.concatenate([p[i] for p in parts]) for i in range(3)]
    for ours_x, theirs in zip(mine, (out.detach().numpy(), gE.numpy(), gQ.numpy())):
        rel = np.abs(ours_x - theirs).max() / np.abs(theirs).max()
        assert rel < 1e-4, f"{kind}: the NumPy floor and torch disagree (relative {rel})"
    if kind == "Bilinear":
        gW = sum(p[3] for p in parts)
        rel = np.abs(gW - gw[0].numpy()).max() / np.abs(gw[0].numpy()).max()
        assert rel < 1e-3, f"{kind}: the NumPy floor's array gradient disagrees ({rel})"


def check_agreement(kind: str, size: str) -> None:
    """Both sides must compute the same numbers before their times mean anything."""
    inputs, queries, layer = case(kind, size)
    ours_out = ours(layer, kind, inputs, queries)
    out, gE, gQ, gw = torch_step(kind, *torch_setup(layer, kind, inputs, queries),
                                 fused=kind == "Additive")
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
