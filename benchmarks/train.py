"""Training time per round of NetTrain against an equivalent PyTorch eager loop (issue 10,
target 3), and the dates example under a second CPU-bound process (target 4).

**Target 3** (default): the dates model (examples/dates.py: GRU encoder-decoder, additive
attention) and the sorting model (:func:`sorting_model`: LSTM encoder-decoder, dot attention
over the encoder states, sorting digit sequences of lengths 3..9), float32, ADAM (eps 1e-5),
batch 64, one round over the same examples in the same batches: the PyTorch loop draws them
from :func:`netgraph.train.data.round_batches` with NetTrain's own shuffling stream, so both
sides train on identical batches (the length-bucketed ones). The loss is the same: per
example the mean cross-entropy over its true output positions, then the batch mean. Before
timing, :func:`agreement` starts both sides from the same arrays and compares the losses of
the first batches (the first: before any update; later ones: after ADAM steps on both
sides). Sides, alternating, several rounds, medians:

- netgraph: ``NetTrain`` with its defaults (the round's time: ``total_training_time``; the
  whole call, with compilation and data validation, is reported too);
- netgraph with BLAS limited to one thread (``threadpoolctl.threadpool_limits``);
- PyTorch with its default intra-op threads, and with one thread (``torch.set_num_threads``).

    python benchmarks/train.py [--rounds 5] [--examples 4000] [--only dates|sorting] [--profile]
    python benchmarks/train.py --more      # also the older MLP and GRU cases (examples/s)

**Target 4** (``--targets 4``; ``--targets 3 4`` for both): a second CPU-bound process spins
for the duration (pure Python, or ``--spinner numpy``: float32 products on BLAS's default
threads) while rounds of the dates model run in fresh subprocesses, in triples whose order
takes every permutation in turn: one with netgraph's defaults, one with
``OPENBLAS_NUM_THREADS=1`` (also OMP/MKL), and a control, the defaults once more. Each triple
gives the ratio defaults / one thread and the control's ratio control / defaults (what noise
alone gives between identical runs); the medians of both come with distribution-free 95 %
intervals. Each defaults run also reports the CPU time BLAS's own threads took during its
round. The subprocess reports its own training-loop time, so start-up is not counted.

    python benchmarks/train.py --targets 4 [--pairs 16] [--shared-examples 2000]
    python benchmarks/train.py --targets 3 4 --profile     # everything, one JSON file

Results go to ``benchmarks/results/train.json`` (``common.write_json``). Ratios are
netgraph / PyTorch time (or defaults / one thread): below 1 is faster.

With ``--workers K [K ...]``: data-parallel training on Ray instead (``target_device=("CPU",
K)``, each worker on one BLAS/OpenMP thread) against this process alone (its BLAS threads as
they come: two on a two-core machine; and limited to one), for the sorting model and the dates
model. This process is timed before Ray starts, the workers after; within each part the runs
alternate. Best-of-N and median examples per second (training loop only) are reported, with
the time Ray takes to start (once) and NetTrain's set-up (the workers start every time).

    python benchmarks/train.py --workers 1 2 [--rounds 3] [--worker-batches 64 256]
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import math
import os
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
from threadpoolctl import threadpool_info, threadpool_limits

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # this worktree's netgraph, not an installed one
    sys.path.insert(0, str(ROOT))

from benchmarks.common import describe_machine, machine, write_json  # noqa: E402
from netgraph import (  # noqa: E402
    CatenateLayer,
    EmbeddingLayer,
    GatedRecurrentLayer,
    Index,
    LinearLayer,
    LongShortTermMemoryLayer,
    NetChain,
    NetGraph,
    NetInitialize,
    NetMapOperator,
    NetPort,
    NetTrain,
    SequenceAttentionLayer,
    SequenceLastLayer,
    SoftmaxLayer,
)
from netgraph.apply import collect_arrays  # noqa: E402
from netgraph.train.data import round_batches  # noqa: E402

#: NetTrain's method and the PyTorch loop's: ADAM with netgraph's defaults
LEARNING_RATE, BETAS, EPS = 0.003, (0.9, 0.999), 1e-5
_DATES: list = []


def dates_example() -> Any:
    """examples/dates.py as a module (loaded from its file, once; ``sys.path`` untouched)."""
    if not _DATES:
        import importlib.util

        spec = importlib.util.spec_from_file_location("dates_example",
                                                      ROOT / "examples" / "dates.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        _DATES.append(module)
    return _DATES[0]


def sorting_model(embedding: int = 16, hidden: int = 64) -> NetGraph:
    """An LSTM encoder-decoder with dot attention that sorts digit sequences: the encoder
    reads the digits, the decoder (teacher forcing: a start token, then the sorted digits
    but the last) starts from the encoder's final state and cell state and attends over its
    states; per position, a softmax over the 10 digits."""
    encoder = NetGraph({"embed": EmbeddingLayer(embedding, 10),
                        "lstm": LongShortTermMemoryLayer(hidden)},
                       [(NetPort("Input"), "embed", "lstm", NetPort("States")),
                        (NetPort("lstm", "State"), NetPort("State")),
                        (NetPort("lstm", "CellState"), NetPort("CellState"))],
                       Input=("Varying", Index(10)))
    decoder = NetGraph({"embed": EmbeddingLayer(embedding, 11),
                        "lstm": LongShortTermMemoryLayer(hidden),
                        "attend": SequenceAttentionLayer("Dot"), "cat": CatenateLayer(-1),
                        "project": NetMapOperator(LinearLayer(10)), "softmax": SoftmaxLayer()},
                       [(NetPort("Input"), "embed", "lstm"),
                        (NetPort("State"), NetPort("lstm", "State")),
                        (NetPort("CellState"), NetPort("lstm", "CellState")),
                        (NetPort("EncoderStates"), NetPort("attend", "Input")),
                        ("lstm", NetPort("attend", "Query")),
                        (["lstm", "attend"], "cat", "project", "softmax", NetPort("Output"))],
                       Input=("Varying", Index(11)))
    return NetGraph({"encoder": encoder, "decoder": decoder},
                    [(NetPort("Input"), "encoder"),
                     (NetPort("encoder", "States"), NetPort("decoder", "EncoderStates")),
                     (NetPort("encoder", "State"), NetPort("decoder", "State")),
                     (NetPort("encoder", "CellState"), NetPort("decoder", "CellState")),
                     (NetPort("DecoderInput"), NetPort("decoder", "Input"))])


def sorting_data(n: int, rng: np.random.Generator) -> dict:
    """``n`` digit sequences of lengths 3..9, their sorted versions and decoder inputs."""
    xs = [rng.integers(0, 10, int(k)) for k in rng.integers(3, 10, n)]
    ys = [np.sort(x) for x in xs]
    return {"Input": xs, "DecoderInput": [np.concatenate([[10], y[:-1]]) for y in ys],
            "Output": ys}


def dates_data(n: int, rng: np.random.Generator) -> dict:
    """``n`` dates of examples/dates.py, as the index arrays its encoders make."""
    dates = dates_example()
    return dates.encode(dates.random_dates(n, rng))


def shuffle_rng(seed: int) -> np.random.Generator:
    """NetTrain's shuffling stream for ``seed`` (the first of the three streams that
    ``netgraph.train.loop._training_plan`` spawns from ``SeedSequence(seed)``)."""
    return np.random.default_rng(np.random.SeedSequence(seed).spawn(3)[0])


# --------------------------------------------------------------------- the PyTorch models
def _recurrent(cls: Any, arrays: dict, prefix: tuple, gates: tuple, sizes: tuple) -> Any:
    """A ``torch.nn.GRU``/``LSTM`` holding netgraph's arrays at ``prefix``: PyTorch stacks
    the gates' matrices (``gates`` in its order) and has a second bias, which netgraph's
    cells do not have (0 and frozen here)."""
    import torch

    rnn = cls(*sizes, batch_first=True)
    with torch.no_grad():
        for ours, theirs in (("InputWeights", rnn.weight_ih_l0),
                             ("StateWeights", rnn.weight_hh_l0), ("Biases", rnn.bias_ih_l0)):
            theirs.copy_(torch.from_numpy(np.concatenate([arrays[(*prefix, g + ours)]
                                                          for g in gates])))
        rnn.bias_hh_l0.zero_()
    rnn.bias_hh_l0.requires_grad_(False)
    return rnn


def _linear(arrays: dict, prefix: tuple, biases: bool = True) -> Any:
    import torch

    w = np.atleast_2d(arrays[(*prefix, "Weights")]).copy()  # netgraph's arrays are read-only
    lin = torch.nn.Linear(w.shape[1], w.shape[0], bias=biases)
    with torch.no_grad():
        lin.weight.copy_(torch.from_numpy(w))
        if biases:
            lin.bias.copy_(torch.from_numpy(arrays[(*prefix, "Biases")].copy()))
    return lin


def _embedding(arrays: dict, prefix: tuple) -> Any:
    import torch

    return torch.nn.Embedding.from_pretrained(
        torch.from_numpy(arrays[(*prefix, "Weights")].copy()), freeze=False)


def _masked_attention(scores: Any, states: Any, length: Any) -> Any:
    """Softmax of ``scores`` (B, m, n) over the encoder's true steps, times ``states``."""
    import torch

    mask = torch.arange(states.shape[1])[None, :] < length[:, None]
    weights = torch.softmax(scores.masked_fill(~mask[:, None], float("-inf")), -1)
    return weights @ states


def _encode(emb: Any, rnn: Any, x: Any, length: Any) -> tuple[Any, Any]:
    """The encoder on a packed batch: its padded states and its final state(s)."""
    from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

    packed = pack_padded_sequence(emb(x), length, batch_first=True, enforce_sorted=False)
    states, last = rnn(packed)
    return pad_packed_sequence(states, batch_first=True)[0], last


def torch_dates(arrays: dict, data: dict) -> tuple[list, Any]:
    """examples/dates.py's model in PyTorch with netgraph's ``arrays``: the parameters and
    ``loss(idx)``, the batch's mean loss (every example has 10 output positions)."""
    import torch
    from torch.nn.utils.rnn import pad_sequence

    gru = ("ResetGate", "InputGate", "MemoryGate")  # PyTorch's r, z, n
    enc_emb, dec_emb = _embedding(arrays, ("encoder", "embed")), _embedding(arrays, ("decoder",
                                                                                     "embed"))
    e, h = enc_emb.embedding_dim, arrays[("encoder", "gru", "InputGateBiases")].size
    enc = _recurrent(torch.nn.GRU, arrays, ("encoder", "gru"), gru, (e, h))
    dec = _recurrent(torch.nn.GRU, arrays, ("decoder", "gru"), gru, (e, h))
    score = ("decoder", "attend", "ScoringNet")
    W, U = _linear(arrays, (*score, "W"), False), _linear(arrays, (*score, "U"), False)
    v, out = _linear(arrays, (*score, "v"), False), _linear(arrays, ("decoder", "project", "Net"))
    modules = [enc_emb, enc, dec_emb, dec, W, U, v, out]
    seqs = [torch.from_numpy(np.asarray(s, dtype=np.int64)) for s in data["Input"]]
    lens = np.array([len(s) for s in data["Input"]])
    dec_in = torch.from_numpy(np.asarray(data["DecoderInput"], dtype=np.int64))
    target = torch.from_numpy(np.asarray(data["Output"], dtype=np.int64))

    def loss(idx: np.ndarray) -> Any:
        length = torch.from_numpy(lens[idx])
        states, last = _encode(enc_emb, enc, pad_sequence([seqs[i] for i in idx], True), length)
        queries, _ = dec(dec_emb(dec_in[idx]), last)
        scores = v(torch.tanh(W(states)[:, None] + U(queries)[:, :, None])).squeeze(-1)
        logits = out(torch.cat([queries, _masked_attention(scores, states, length)], -1))
        return torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]),
                                                 target[idx].reshape(-1))

    return [p for m in modules for p in m.parameters() if p.requires_grad], loss


def torch_sorting(arrays: dict, data: dict) -> tuple[list, Any]:
    """:func:`sorting_model` in PyTorch with netgraph's ``arrays``: the parameters and
    ``loss(idx)``: per example the mean cross-entropy over its true positions, then the
    batch mean (as netgraph's loss). The decoder runs over the padded batch (causal: its
    padded steps change no true one, and the loss masks them)."""
    import torch
    from torch.nn.utils.rnn import pad_sequence

    lstm = ("InputGate", "ForgetGate", "MemoryGate", "OutputGate")  # PyTorch's i, f, g, o
    enc_emb, dec_emb = _embedding(arrays, ("encoder", "embed")), _embedding(arrays, ("decoder",
                                                                                     "embed"))
    e, h = enc_emb.embedding_dim, arrays[("encoder", "lstm", "InputGateBiases")].size
    enc = _recurrent(torch.nn.LSTM, arrays, ("encoder", "lstm"), lstm, (e, h))
    dec = _recurrent(torch.nn.LSTM, arrays, ("decoder", "lstm"), lstm, (e, h))
    out = _linear(arrays, ("decoder", "project", "Net"))
    modules = [enc_emb, enc, dec_emb, dec, out]

    def column(port: str) -> list:
        return [torch.from_numpy(np.asarray(s, dtype=np.int64)) for s in data[port]]

    seqs, dec_in, target = column("Input"), column("DecoderInput"), column("Output")
    lens = np.array([len(s) for s in seqs])

    def loss(idx: np.ndarray) -> Any:
        length = torch.from_numpy(lens[idx])
        states, last = _encode(enc_emb, enc, pad_sequence([seqs[i] for i in idx], True), length)
        queries, _ = dec(dec_emb(pad_sequence([dec_in[i] for i in idx], True)), last)
        context = _masked_attention(queries @ states.transpose(1, 2), states, length)
        logits = out(torch.cat([queries, context], -1))
        ce = torch.nn.functional.cross_entropy(
            logits.transpose(1, 2), pad_sequence([target[i] for i in idx], True),
            reduction="none")
        valid = torch.arange(ce.shape[1])[None, :] < length[:, None]
        return ((ce * valid).sum(1) / length).mean()

    return [p for m in modules for p in m.parameters() if p.requires_grad], loss


# --------------------------------------------------------------------- target 3
MODELS = {"dates": ("dates (GRU encoder-decoder, additive attention; examples/dates.py)",
                    lambda: dates_example().build_model(), dates_data, torch_dates),
          "sorting": ("sorting (LSTM encoder-decoder, dot attention)", sorting_model,
                      sorting_data, torch_sorting)}


def model_case(model: str, n: int, seed: int = 0) -> tuple[str, Any, dict, Any]:
    """(title, the net with its arrays initialized from ``seed``, ``n`` examples, the
    PyTorch model's factory) of ``model`` ("dates" or "sorting")."""
    title, build, make_data, torch_model = MODELS[model]
    return (title, NetInitialize(build(), seed=seed), make_data(n, np.random.default_rng(seed)),
            torch_model)


def _subset(data: dict, n: int) -> dict:
    return {port: examples[:n] for port, examples in data.items()}


def netgraph_round(net: Any, data: dict, batch: int, seed: int = 0
                   ) -> tuple[float, float, list[float]]:
    """One NetTrain round: (its training loop's seconds, the whole call's seconds with
    compilation and data validation, the batch losses)."""
    start = time.perf_counter()
    res = NetTrain(net, data, prop="All", max_training_rounds=1, batch_size=batch,
                   learning_rate=LEARNING_RATE, seed=seed, progress=False)
    return res.total_training_time, time.perf_counter() - start, list(res.batch_loss_list)


def torch_round(net: Any, data: dict, torch_model: Any, batch: int, seed: int = 0
                ) -> tuple[float, list[float]]:
    """One round of the PyTorch loop from ``net``'s arrays, on NetTrain's batches for
    ``seed``: (seconds of the loop, the batch losses)."""
    import torch

    params, loss_of = torch_model(collect_arrays(net, np.float32), data)
    opt = torch.optim.Adam(params, lr=LEARNING_RATE, betas=BETAS, eps=EPS)
    lens = np.array([len(s) for s in data["Input"]])
    losses = []
    start = time.perf_counter()
    for idx in round_batches(len(lens), batch, shuffle_rng(seed), lens):
        opt.zero_grad()
        loss = loss_of(idx)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return time.perf_counter() - start, losses


def agreement(net: Any, data: dict, torch_model: Any, batch: int, batches: int = 4
              ) -> dict[str, float]:
    """Both sides from the same arrays on the same ``batches`` batches: the relative
    difference of the first batch's loss (no update yet) and the largest one over all
    (after ADAM steps on both sides)."""
    sub = _subset(data, batch * batches)
    ours = netgraph_round(net, sub, batch)[2]
    theirs = torch_round(net, sub, torch_model, batch)[1]
    rel = [abs(a - b) / abs(b) for a, b in zip(ours, theirs)]
    return {"loss_netgraph": ours[0], "loss_torch": theirs[0], "first_rel_diff": rel[0],
            "max_rel_diff": max(rel), "batches_compared": len(rel)}


def training_table(models: list[str], n: int, batch: int, rounds: int) -> list[dict]:
    """Target 3: seconds per round of each side, alternating, medians and ratios."""
    import torch

    threads = torch.get_num_threads()
    rows = []
    for model in models:
        title, net, data, torch_model = model_case(model, n)
        agree = agreement(net, data, torch_model, batch)  # also the warm-up of both sides
        print(f"{title}: {n} examples, batch {batch}; same arrays, same batches: first loss "
              f"{agree['loss_netgraph']:.6f} (netgraph) / {agree['loss_torch']:.6f} (PyTorch), "
              f"relative difference {agree['first_rel_diff']:.1e} (largest over "
              f"{agree['batches_compared']} ADAM steps {agree['max_rel_diff']:.1e})", flush=True)
        times: dict[str, list[float]] = {"netgraph": [], "call": [], "netgraph1": [],
                                         "torch": [], "torch1": []}
        for _ in range(rounds):
            loop, call, _ = netgraph_round(net, data, batch)
            times["netgraph"].append(loop)
            times["call"].append(call)
            with threadpool_limits(1, user_api="blas"):
                times["netgraph1"].append(netgraph_round(net, data, batch)[0])
            torch.set_num_threads(threads)
            times["torch"].append(torch_round(net, data, torch_model, batch)[0])
            torch.set_num_threads(1)
            times["torch1"].append(torch_round(net, data, torch_model, batch)[0])
            torch.set_num_threads(threads)
        med = {k: statistics.median(v) for k, v in times.items()}
        row = {"kind": "train", "model": model, "title": title, "examples": n, "batch": batch,
               "rounds": rounds, "netgraph_s": med["netgraph"], "netgraph_call_s": med["call"],
               "netgraph_1thread_s": med["netgraph1"], "torch_s": med["torch"],
               "torch_threads": threads, "torch_1thread_s": med["torch1"],
               "ratio": med["netgraph"] / med["torch"],
               "ratio_1thread": med["netgraph"] / med["torch1"],
               "ratio_both_1thread": med["netgraph1"] / med["torch1"],
               "runs": times, **{f"agreement_{k}": v for k, v in agree.items()}}
        rows.append(row)
        print(f"  seconds per round (median of {rounds}): netgraph {med['netgraph']:.3f} "
              f"(whole call {med['call']:.3f}; BLAS on 1 thread {med['netgraph1']:.3f})   "
              f"PyTorch ({threads} threads) {med['torch']:.3f}   PyTorch (1 thread) "
              f"{med['torch1']:.3f}\n  ratio {row['ratio']:.2f} (defaults), "
              f"{row['ratio_1thread']:.2f} (against PyTorch on 1 thread), "
              f"{row['ratio_both_1thread']:.2f} (both on 1 thread)", flush=True)
    return rows


# --------------------------------------------------------------------- profile
#: phases of a round: (label, file suffix, function) of the call whose cumulative time counts
PHASES = [("batching (gather, pad)", "train/data.py", "batch"),
          ("forward (executor + layers)", "netgraph/execute.py", "forward"),
          ("backward (executor + layers)", "netgraph/execute.py", "backward"),
          ("gradient into the flat buffer", "train/params.py", "load_grads"),
          ("finite check, clipping, L2", "train/params.py", "clip_and_regularize"),
          ("optimizer step", "train/optimizers.py", "step"),
          ("progress, callbacks", "train/loop.py", "_after_batch"),
          ("validation", "train/loop.py", "_validate")]


def profile_round(model: str, n: int, batch: int) -> dict[str, Any]:
    """cProfile of one NetTrain call of one round of ``model``: each phase's share of the
    training loop (cumulative times, a recursive call counted once; the rest of the loop is
    NetTrain's own bookkeeping: the loss sum, the seeds, the records), the whole call's time
    by part of netgraph (layers, executor, NetTrain; :func:`_own_seconds`) and the share of
    the set-up outside the loop (compilation, data validation)."""
    import cProfile
    import pstats

    _, net, data, _ = model_case(model, n)
    netgraph_round(net, _subset(data, 4 * batch), batch)  # warm
    prof = cProfile.Profile()
    prof.enable()
    loop, call, _ = netgraph_round(net, data, batch)
    prof.disable()
    stats = pstats.Stats(prof).stats  # type: ignore[attr-defined]
    cum: dict[tuple[str, str], float] = {}
    for (path, _, fn), (_, _, _, ct, _) in stats.items():
        key = (path.replace(os.sep, "/"), fn)
        cum[key] = cum.get(key, 0.0) + ct
    total = sum(ct for (path, fn), ct in cum.items() if path.endswith("train/loop.py")
                and fn == "_one_round")

    def phase(suffix: str, fn: str) -> float:
        return sum(ct for (path, f), ct in cum.items() if path.endswith(suffix) and f == fn)

    shares = {label: phase(suffix, fn) / total for label, suffix, fn in PHASES}
    shares["NetTrain's own rest (loss sum, seeds, records)"] = 1 - sum(shares.values())
    own = _own_seconds(stats)
    return {"kind": "profile", "model": model, "examples": n, "batch": batch,
            "loop_s": loop, "call_s": call, "profiled_loop_s": total,
            "setup_share_of_call": 1 - loop / call, "shares": shares,
            "by_part": {k: v / sum(own.values()) for k, v in sorted(own.items())}}


def _category(path: str) -> str | None:
    """Which part of netgraph a function's file is (None: not netgraph's: NumPy, Python)."""
    path = path.replace(os.sep, "/")
    if "/layers/" in path:
        return "layers/" + path.rsplit("/", 1)[-1]
    if "/netgraph/train/" in path:
        return "NetTrain"
    if "/netgraph/" in path:
        return "executor"
    return None


def _own_seconds(stats: dict) -> dict[str, float]:
    """Seconds by part of netgraph (:func:`_category`), each function's own time, that of
    NumPy and Python functions charged to the netgraph function calling them (through
    chains of such functions, in proportion to the calls' cumulative times)."""
    memo: dict[tuple, dict[str, float]] = {}

    def parts(key: tuple, depth: int = 0) -> dict[str, float]:
        """The fractions of the calls of ``key`` made on behalf of each part."""
        cat = _category(key[0])
        if cat is not None:
            return {cat: 1.0}
        if key in memo:
            return memo[key]
        callers = stats[key][4]
        weight = sum(c[3] for c in callers.values()) or 1.0
        out: dict[str, float] = {}
        for caller, c in callers.items():
            sub = parts(caller, depth + 1) if depth < 20 and caller in stats else {"other": 1.0}
            for k, v in sub.items():
                out[k] = out.get(k, 0.0) + v * c[3] / weight
        memo[key] = out or {"other": 1.0}
        return memo[key]

    seconds: dict[str, float] = {}
    for key, (_, _, tt, _, _) in stats.items():
        for k, v in parts(key).items():
            seconds[k] = seconds.get(k, 0.0) + v * tt
    return seconds


def print_profile(row: dict[str, Any]) -> None:
    print(f"profile of a {row['model']} round ({row['examples']} examples, batch "
          f"{row['batch']}; loop {row['loop_s']:.3f} s under cProfile; set-up "
          f"{100 * row['setup_share_of_call']:.0f}% of the call). Shares of the loop:",
          flush=True)
    for label, share in row["shares"].items():
        print(f"  {100 * share:5.1f}%  {label}")
    parts = row["by_part"]
    layers = sum(v for k, v in parts.items() if k.startswith("layers/"))
    print(f"  the whole call by part (NumPy charged to its caller): layers {100 * layers:.1f}%, "
          + ", ".join(f"{k} {100 * v:.1f}%" for k, v in sorted(parts.items(), key=lambda kv:
                                                              -kv[1]) if v >= 0.005),
          flush=True)


# --------------------------------------------------------------------- target 4
SPINNERS = {"python": "while True:\n    pass\n",
            "numpy": "import numpy as np\na = np.ones((512, 512), np.float32)\n"
                     "while True:\n    a @ a\n"}
ONE_THREAD = {"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def _foreign_thread_seconds() -> float | None:
    """CPU seconds used so far by this process's threads that Python did not start (BLAS's
    own: OpenBLAS starts its threads when NumPy loads it); None where ``/proc`` does not
    tell."""
    python = {t.native_id for t in threading.enumerate()}
    try:
        tasks = os.listdir("/proc/self/task")
    except OSError:
        return None
    ticks, total = os.sysconf("SC_CLK_TCK"), 0
    for tid in tasks:
        if int(tid) in python:
            continue
        try:
            with open(f"/proc/self/task/{tid}/stat") as f:
                fields = f.read().rpartition(")")[2].split()
        except OSError:
            continue  # the thread ended
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / ticks


def child_round(model: str, n: int, batch: int) -> dict[str, Any]:
    """One NetTrain round of ``model`` in this process (``--child-round``): its seconds, and
    the CPU seconds BLAS's own threads spent in it (netgraph never hands them work: 0 to
    the clock tick is what shows that the defaults and one BLAS thread run the same
    products)."""
    _, net, data, _ = model_case(model, n)
    before = _foreign_thread_seconds()
    loop, call, _ = netgraph_round(net, data, batch)
    after = _foreign_thread_seconds()
    blas_cpu = None if before is None or after is None else after - before
    return {"seconds": loop, "call_seconds": call, "blas_threads": blas_threads(),
            "blas_thread_cpu_s": blas_cpu}


def _timed_child(model: str, n: int, batch: int, env: dict[str, str]) -> dict[str, Any]:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child-round", model,
           "--examples", str(n), "--batch-size", str(batch)]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def median_interval(values: list[float], level: float = 0.95) -> tuple[float, float]:
    """A distribution-free interval for the median of ``values``' population: the order
    statistics ``k`` and ``n + 1 - k`` (1-based) with the largest ``k`` such that a binomial
    ``(n, 1/2)`` count falls below ``k`` with probability at most ``(1 - level) / 2``; the
    whole range when ``values`` are too few for that level."""
    x, n = sorted(values), len(values)
    below, k = 0.0, 0
    while True:
        below += math.comb(n, k) / 2 ** n  # P(count <= k)
        if below > (1 - level) / 2:
            break
        k += 1
    return (x[k - 1], x[n - k]) if k >= 1 else (x[0], x[-1])


#: the orders of a shared-CPU triple's runs, in turn: each run first, second and third alike
ORDERS = list(itertools.permutations(["defaults", "one_thread", "control"]))


def _summary(model: str, what: str, ratios: list[float], blas_cpu: list) -> dict[str, Any]:
    low, high = median_interval(ratios)
    return {"kind": "shared_cpu_summary", "model": model, "comparison": what,
            "triples": len(ratios), "median_ratio": statistics.median(ratios),
            "interval_low": low, "interval_high": high,
            "above_one": sum(r > 1 for r in ratios),
            "blas_thread_cpu_s": None if None in blas_cpu else max(blas_cpu)}


def shared_cpu(pairs: int, n: int, batch: int, spinner: str, model: str = "dates"
               ) -> list[dict]:
    """Target 4: rounds of ``model`` in subprocesses while a CPU-bound process spins, in
    triples (the order taking every permutation in turn): one with netgraph's defaults, one
    with BLAS on one thread, and a control, a second run with the defaults. Then two summary
    rows: the median of defaults / one thread with a 95 % interval for it, and the same for
    control / defaults (two identical runs: what noise alone gives), each with the most CPU
    time BLAS's own threads took in a defaults round."""
    base = {k: v for k, v in os.environ.items() if k not in ONE_THREAD}
    envs = {"defaults": base, "one_thread": {**base, **ONE_THREAD}, "control": base}
    spin = subprocess.Popen([sys.executable, "-c", SPINNERS[spinner]])
    rows = []
    try:
        print(f"{model}, {n} examples, batch {batch}, one round per run, next to a spinning "
              f"{spinner} process (pid {spin.pid}); seconds of the training loop", flush=True)
        for i in range(pairs):
            order = ORDERS[i % len(ORDERS)]
            got = {name: _timed_child(model, n, batch, envs[name]) for name in order}
            d, o, c = got["defaults"], got["one_thread"], got["control"]
            rows.append({"kind": "shared_cpu", "model": model, "examples": n, "batch": batch,
                         "spinner": spinner, "triple": i + 1, "order": " ".join(order),
                         "defaults_s": d["seconds"], "one_thread_s": o["seconds"],
                         "control_s": c["seconds"],
                         "defaults_blas_threads": d["blas_threads"],
                         "defaults_blas_thread_cpu_s": d["blas_thread_cpu_s"],
                         "control_blas_thread_cpu_s": c["blas_thread_cpu_s"],
                         "ratio": d["seconds"] / o["seconds"],
                         "control_ratio": c["seconds"] / d["seconds"]})
            print(f"  triple {i + 1}: defaults ({d['blas_threads']} BLAS threads) "
                  f"{d['seconds']:.3f} s   OPENBLAS_NUM_THREADS=1 {o['seconds']:.3f} s   ratio "
                  f"{rows[-1]['ratio']:.2f}   control (defaults again) {c['seconds']:.3f} s, "
                  f"ratio {rows[-1]['control_ratio']:.2f}   (order: {' '.join(order)}; BLAS's "
                  f"threads' CPU in the defaults rounds {d['blas_thread_cpu_s']} s, "
                  f"{c['blas_thread_cpu_s']} s)", flush=True)
    finally:
        spin.kill()
        spin.wait()
    blas_cpu = [r[k] for r in rows for k in ("defaults_blas_thread_cpu_s",
                                             "control_blas_thread_cpu_s")]
    summaries = [
        _summary(model, "defaults / OPENBLAS_NUM_THREADS=1", [r["ratio"] for r in rows],
                 blas_cpu),
        _summary(model, "control: defaults / defaults", [r["control_ratio"] for r in rows],
                 blas_cpu)]
    for row in summaries:
        print(f"  {row['comparison']}: median ratio {row['median_ratio']:.3f} (95 % interval "
              f"{row['interval_low']:.3f}-{row['interval_high']:.3f}); above 1 in "
              f"{row['above_one']} of {row['triples']} triples", flush=True)
    print(f"  BLAS's own threads took at most {summaries[0]['blas_thread_cpu_s']} s of CPU in "
          f"a defaults round", flush=True)
    return rows + summaries


# --------------------------------------------------------------------- more cases, Ray
def mlp_case(n: int, d: int, h: int, c: int, batch: int):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((n, d)).astype(np.float32)
    y = (x @ rng.standard_normal((d, c))).argmax(-1)
    net = NetChain([h, "Tanh", h, "Tanh", c, SoftmaxLayer()], Input=d)

    def ours() -> float:
        return NetTrain(net, (x, y), prop="All", max_training_rounds=1, batch_size=batch,
                        seed=0, progress=False).mean_examples_per_second

    def theirs() -> float:
        import torch

        nn = torch.nn
        m = nn.Sequential(nn.Linear(d, h), nn.Tanh(), nn.Linear(h, h), nn.Tanh(),
                          nn.Linear(h, c))
        opt = torch.optim.Adam(m.parameters(), lr=1e-3, eps=1e-5)
        xt, yt, loss = torch.tensor(x), torch.tensor(y), nn.CrossEntropyLoss()
        t0 = time.perf_counter()
        for idx in torch.randperm(n).split(batch):
            opt.zero_grad()
            loss(m(xt[idx]), yt[idx]).backward()
            opt.step()
        return n / (time.perf_counter() - t0)

    return f"MLP {d}-{h}-{h}-{c}, batch {batch}", ours, theirs


def gru_case(n: int, vocab: int, e: int, h: int, batch: int):
    rng = np.random.default_rng(0)
    xs = [rng.integers(0, vocab, int(k)) for k in rng.integers(2, 40, n)]
    y = np.array([int((s == 3).any()) for s in xs])
    net = NetChain([EmbeddingLayer(e, vocab), GatedRecurrentLayer(h), SequenceLastLayer(), 2,
                    SoftmaxLayer()], Input=("Varying", Index(vocab)))

    def ours() -> float:
        return NetTrain(net, (xs, y), prop="All", max_training_rounds=1, batch_size=batch,
                        seed=0, progress=False).mean_examples_per_second

    def theirs() -> float:
        import torch
        from torch.nn.utils.rnn import pack_padded_sequence, pad_sequence

        nn = torch.nn
        emb, gru, out = nn.Embedding(vocab, e), nn.GRU(e, h, batch_first=True), nn.Linear(h, 2)
        params = [*emb.parameters(), *gru.parameters(), *out.parameters()]
        opt = torch.optim.Adam(params, lr=1e-3, eps=1e-5)
        seqs = [torch.tensor(s) for s in xs]
        lens = np.array([len(s) for s in xs])
        yt, loss = torch.tensor(y), nn.CrossEntropyLoss()
        t0 = time.perf_counter()
        for idx in round_batches(n, batch, np.random.default_rng(0), lens):
            opt.zero_grad()
            padded = pad_sequence([seqs[i] for i in idx], batch_first=True)
            packed = pack_padded_sequence(emb(padded), torch.tensor(lens[idx]),
                                          batch_first=True, enforce_sorted=False)
            _, last = gru(packed)
            loss(out(last[0]), yt[idx]).backward()
            opt.step()
        return n / (time.perf_counter() - t0)

    return f"Embedding-GRU({h})-Last, lengths 2..39, batch {batch}", ours, theirs


def data_parallel_cases(n: int):
    """(name, net, data, learning rate) of the models ``--workers`` trains."""
    dates = dates_example()
    return [("sorting (LSTM encoder-decoder, dot attention)", sorting_model(),
             sorting_data(n, np.random.default_rng(0)), LEARNING_RATE),
            ("dates (GRU encoder-decoder, additive attention)", dates.build_model(),
             dates_data(n, np.random.default_rng(0)), LEARNING_RATE)]


def blas_threads() -> int:
    return max((lib["num_threads"] for lib in threadpool_info()
                if lib.get("user_api") == "blas"), default=1)


def _runs(net, data, lr: float, batch: int, devices: list, rounds: int) -> dict:
    """Device -> [(examples per second, set-up seconds)] of ``rounds`` alternating runs."""
    out: dict = {d: [] for d in devices}
    for _ in range(rounds):
        for d in devices:
            t = time.perf_counter()
            with threadpool_limits(1) if d == "1 thread" else contextlib.nullcontext():
                res = NetTrain(net, data, prop="All", max_training_rounds=1, batch_size=batch,
                               learning_rate=lr, seed=0, progress=False,
                               target_device="CPU" if d == "1 thread" else d)
            out[d].append((res.mean_examples_per_second,
                           time.perf_counter() - t - res.total_training_time))
    return out


def data_parallel(workers: list[int], rounds: int, n: int, batch: int) -> list[dict]:
    """Examples per second of this process (before Ray starts: an idle Ray cluster next to
    it slows two-threaded BLAS down several times on two cores) against ``k`` Ray workers."""
    import ray

    cases = data_parallel_cases(n)
    print(f"{n} examples, batch {batch}, one round per run, best and median of {rounds}",
          flush=True)
    alone = []
    for _, net, data, lr in cases:
        NetTrain(net, data, max_training_rounds=1, batch_size=batch, progress=False)  # warm
        alone.append(_runs(net, data, lr, batch, ["CPU", "1 thread"], rounds))
    t0 = time.perf_counter()
    ray.init(address="local", num_cpus=max(workers), include_dashboard=False,
             log_to_driver=False, logging_level="WARNING")
    started = time.perf_counter() - t0
    print(f"Ray started in {started:.1f} s (ray.init, {max(workers)} CPUs)", flush=True)
    rows = []
    try:
        for (name, net, data, lr), speed in zip(cases, alone):
            speed.update(_runs(net, data, lr, batch, [("CPU", k) for k in workers], rounds))
            print(name, flush=True)
            base = max(v for v, _ in speed["CPU"])
            for d, runs in speed.items():
                label = ("this process, netgraph's defaults" if d == "CPU" else
                         "this process, BLAS on 1 thread" if d == "1 thread" else
                         f"{d[1]} Ray worker(s), 1 thread each")
                best = max(v for v, _ in runs)
                print(f"  {label:34s} best {best:>8,.0f} ex/s  median "
                      f"{statistics.median(v for v, _ in runs):>8,.0f}  x{best / base:4.2f}  "
                      f"(set-up {min(t for _, t in runs):.1f} s)", flush=True)
                rows.append({"kind": "ray", "model": name, "batch": batch, "examples": n,
                             "run": label, "best_examples_per_s": best,
                             "median_examples_per_s": statistics.median(v for v, _ in runs),
                             "vs_this_process": best / base,
                             "setup_s": min(t for _, t in runs), "ray_start_s": started})
    finally:
        ray.shutdown()
    return rows


def more_cases() -> list[dict]:
    """The older throughput cases (MLPs, a GRU classifier): examples/s, median of 3."""
    rows = []
    for name, ours, theirs in [mlp_case(10000, 2, 16, 2, 64), mlp_case(10000, 32, 128, 10, 64),
                               mlp_case(10000, 100, 256, 10, 128),
                               mlp_case(4000, 784, 512, 10, 128),
                               gru_case(3000, 10, 16, 32, 32)]:
        a, b = [], []
        for _ in range(3):
            a.append(ours())
            b.append(theirs())
        row = {"kind": "throughput", "title": name, "netgraph_examples_per_s":
               statistics.median(a), "torch_examples_per_s": statistics.median(b)}
        row["ratio"] = row["torch_examples_per_s"] / row["netgraph_examples_per_s"]
        rows.append(row)
        print(f"{name:48s} netgraph {row['netgraph_examples_per_s']:>10,.0f} ex/s   torch "
              f"{row['torch_examples_per_s']:>10,.0f} ex/s   time ratio {row['ratio']:5.2f}",
              flush=True)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=5, help="alternating runs per side")
    ap.add_argument("--examples", type=int, default=None,
                    help="examples per round of target 3 (default 4000)")
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--only", choices=sorted(MODELS), default=None, help="just this model")
    ap.add_argument("--more", action="store_true", help="also the MLP and GRU cases")
    ap.add_argument("--targets", type=int, nargs="+", choices=[3, 4], default=[3],
                    help="3: the PyTorch comparison; 4: defaults against one BLAS thread next "
                         "to a spinning process (both: one JSON file)")
    ap.add_argument("--shared-cpu", action="store_true", help="the same as --targets 4")
    ap.add_argument("--pairs", type=int, default=16, help="triples of runs of target 4")
    ap.add_argument("--shared-examples", type=int, default=2000,
                    help="examples per round in target 4")
    ap.add_argument("--spinner", choices=sorted(SPINNERS), default="python")
    ap.add_argument("--profile", action="store_true",
                    help="also a cProfile of one round of each model (shares of the loop)")
    ap.add_argument("--torch-threads", type=int, default=None)
    ap.add_argument("--workers", type=int, nargs="+", default=None,
                    help="data-parallel on Ray with these numbers of workers (needs ray)")
    ap.add_argument("--worker-batches", type=int, nargs="+", default=None,
                    help="with --workers: these batch sizes (default: --batch-size)")
    ap.add_argument("--child-round", choices=sorted(MODELS), default=None,
                    help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child_round:
        print(json.dumps(child_round(args.child_round, args.examples or 2000, args.batch_size)))
        return
    if args.workers:
        rows = []
        for batch in args.worker_batches or [args.batch_size]:
            rows += data_parallel(args.workers, args.rounds, args.examples or 4000, batch)
        print(write_json("train_ray", rows, command="python benchmarks/train.py "
                         + " ".join(sys.argv[1:])))
        return
    info = machine()
    print(describe_machine(info), flush=True)
    targets = [4] if args.shared_cpu else args.targets
    rows: list[dict] = []
    if 3 in targets:
        import torch

        if args.torch_threads:
            torch.set_num_threads(args.torch_threads)
        models = [args.only] if args.only else sorted(MODELS)
        rows += training_table(models, args.examples or 4000, args.batch_size, args.rounds)
        if args.profile:
            for model in models:
                rows.append(profile_round(model, args.examples or 4000, args.batch_size))
                print_profile(rows[-1])
        if args.more:
            rows += more_cases()
    if 4 in targets:
        rows += shared_cpu(args.pairs, args.shared_examples, args.batch_size, args.spinner)
    print(write_json("train", rows, info, targets=targets,
                     command="python benchmarks/train.py " + " ".join(sys.argv[1:])))


if __name__ == "__main__":
    main()
