"""Training throughput (examples per second) of NetTrain against a plain PyTorch eager loop
doing the same work: same model, float32, ADAM (eps 1e-5), cross-entropy, same batch size,
one round per run over shuffled data (PyTorch's loop uses netgraph's length bucketing for the
sequence model, and packed sequences). The two sides run alternately and the medians are
reported, so that load from other processes hits both alike.

    python benchmarks/train.py [--rounds 5] [--only-dates]
    OPENBLAS_NUM_THREADS=1 python benchmarks/train.py --torch-threads 1

With ``--workers K [K ...]``: data-parallel training on Ray instead (``target_device=("CPU",
K)``, each worker on one BLAS/OpenMP thread) against this process alone (its BLAS threads as
they come: two on a two-core machine; and limited to one), for the sorting model (an LSTM
encoder-decoder with dot attention sorting digit sequences of lengths 3..9) and the dates
model. This process is timed before Ray starts, the workers after; within each part the runs
alternate. Best-of-N and median examples per second (training loop only) are reported, with
the time Ray takes to start (once) and NetTrain's set-up (the workers start every time).

    python benchmarks/train.py --workers 1 2 [--rounds 3] [--batch-size 64]
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import sys
import time
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_info, threadpool_limits

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from netgraph import (  # noqa: E402
    CatenateLayer,
    EmbeddingLayer,
    GatedRecurrentLayer,
    Index,
    LinearLayer,
    LongShortTermMemoryLayer,
    NetChain,
    NetGraph,
    NetMapOperator,
    NetPort,
    NetTrain,
    SequenceAttentionLayer,
    SequenceLastLayer,
    SoftmaxLayer,
)
from netgraph.train.data import round_batches  # noqa: E402


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


def dates_case(n: int = 10000, batch: int = 64):
    """The README's main job: examples/dates.py's attention encoder-decoder, one round."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "examples"))
    import dates

    data = dates.encode(dates.random_dates(n, np.random.default_rng(0)))
    net = dates.build_model()
    lr = 0.003

    def ours() -> float:
        return NetTrain(net, data, prop="All", max_training_rounds=1, batch_size=batch,
                        learning_rate=lr, seed=0, progress=False).mean_examples_per_second

    def theirs() -> float:
        import torch
        from torch.nn.utils.rnn import pack_padded_sequence, pad_sequence

        nn = torch.nn
        torch.manual_seed(0)
        enc_emb, enc = nn.Embedding(len(dates.IN_CHARS), 32), nn.GRU(32, 64, batch_first=True)
        dec_emb, dec = nn.Embedding(len(dates.TOKENS), 32), nn.GRU(32, 64, batch_first=True)
        W, U = nn.Linear(64, 64, bias=False), nn.Linear(64, 64, bias=False)
        v, out = nn.Linear(64, 1, bias=False), nn.Linear(128, len(dates.TOKENS))
        modules = [enc_emb, enc, dec_emb, dec, W, U, v, out]
        opt = torch.optim.Adam([p for m in modules for p in m.parameters()], lr=lr, eps=1e-5)
        seqs = [torch.tensor(s) for s in data["Input"]]
        lens = np.array([len(s) for s in data["Input"]])
        dec_in = torch.tensor(data["DecoderInput"])
        target = torch.tensor(data["Output"])
        loss = nn.CrossEntropyLoss()
        t0 = time.perf_counter()
        for idx in round_batches(n, batch, np.random.default_rng(0), lens):
            opt.zero_grad()
            x = pad_sequence([seqs[i] for i in idx], batch_first=True)
            length = torch.tensor(lens[idx])
            packed = pack_padded_sequence(enc_emb(x), length, batch_first=True,
                                          enforce_sorted=False)
            states, last = enc(packed)
            states, _ = torch.nn.utils.rnn.pad_packed_sequence(states, batch_first=True)
            queries, _ = dec(dec_emb(dec_in[idx]), last)
            scores = v(torch.tanh(W(states)[:, None] + U(queries)[:, :, None])).squeeze(-1)
            mask = torch.arange(states.shape[1])[None, :] < length[:, None]
            weights = torch.softmax(scores.masked_fill(~mask[:, None], float("-inf")), -1)
            logits = out(torch.cat([queries, weights @ states], -1))
            loss(logits.reshape(-1, logits.shape[-1]), target[idx].reshape(-1)).backward()
            opt.step()
        return n / (time.perf_counter() - t0)

    return "dates attention encoder-decoder (examples/dates.py)", ours, theirs


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


def data_parallel_cases(n: int):
    """(name, net, data, learning rate) of the models ``--workers`` trains."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "examples"))
    import dates

    return [("sorting (LSTM encoder-decoder, dot attention)", sorting_model(),
             sorting_data(n, np.random.default_rng(0)), 0.003),
            ("dates (GRU encoder-decoder, additive attention)", dates.build_model(),
             dates.encode(dates.random_dates(n, np.random.default_rng(0))), 0.003)]


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


def data_parallel(workers: list[int], rounds: int, n: int, batch: int) -> None:
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
    print(f"Ray started in {time.perf_counter() - t0:.1f} s (ray.init, {max(workers)} CPUs)",
          flush=True)
    try:
        for (name, net, data, lr), speed in zip(cases, alone):
            speed.update(_runs(net, data, lr, batch, [("CPU", k) for k in workers], rounds))
            print(name, flush=True)
            base = max(v for v, _ in speed["CPU"])
            for d, runs in speed.items():
                label = (f"this process ({blas_threads()} BLAS threads)" if d == "CPU" else
                         "this process, BLAS on 1 thread" if d == "1 thread" else
                         f"{d[1]} Ray worker(s), 1 thread each")
                best = max(v for v, _ in runs)
                print(f"  {label:34s} best {best:>8,.0f} ex/s  median "
                      f"{statistics.median(v for v, _ in runs):>8,.0f}  x{best / base:4.2f}  "
                      f"(set-up {min(t for _, t in runs):.1f} s)", flush=True)
    finally:
        ray.shutdown()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=5, help="alternating runs per side")
    ap.add_argument("--torch-threads", type=int, default=None)
    ap.add_argument("--only-dates", action="store_true", help="just the dates model")
    ap.add_argument("--workers", type=int, nargs="+", default=None,
                    help="data-parallel on Ray with these numbers of workers (needs ray)")
    ap.add_argument("--examples", type=int, default=4000, help="examples (with --workers)")
    ap.add_argument("--batch-size", type=int, default=64, help="batch size (with --workers)")
    args = ap.parse_args()
    if args.workers:
        data_parallel(args.workers, args.rounds, args.examples, args.batch_size)
        return
    try:
        import torch

        if args.torch_threads:
            torch.set_num_threads(args.torch_threads)
    except ImportError:
        torch = None
    cases = [dates_case(), mlp_case(10000, 2, 16, 2, 64), mlp_case(10000, 32, 128, 10, 64),
             mlp_case(10000, 100, 256, 10, 128), mlp_case(4000, 784, 512, 10, 128),
             gru_case(3000, 10, 16, 32, 32)]
    if args.only_dates:
        cases = cases[:1]
    for name, ours, theirs in cases:
        a, b = [], []
        for _ in range(args.rounds):
            a.append(ours())
            if torch is not None:
                b.append(theirs())
        line = f"{name:48s} netgraph {statistics.median(a):>10,.0f} ex/s"
        if b:
            ratio = statistics.median(a) / statistics.median(b)
            line += f"   torch {statistics.median(b):>10,.0f} ex/s   ratio {ratio:5.2f}"
        print(line, flush=True)


if __name__ == "__main__":
    main()
