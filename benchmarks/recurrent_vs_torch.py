"""Recurrent layers, forward + backward (input and every weight gradient), against PyTorch's
torch.nn.GRU / LSTM / RNN on the CPU, float32, in the same process. The two sides are run
alternately and the medians reported, so that load from other processes hits both alike.

    python benchmarks/recurrent_vs_torch.py [--batch 64 --steps 30 --inputs 32 --hidden 64]
    OPENBLAS_NUM_THREADS=1 python benchmarks/recurrent_vs_torch.py --torch-threads 1
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from netgraph import (  # noqa: E402
    BasicRecurrentLayer,
    GatedRecurrentLayer,
    LongShortTermMemoryLayer,
    NetInitialize,
)
from netgraph.apply import run_net  # noqa: E402
from netgraph.execute import backward  # noqa: E402

LAYERS = {"GRU": GatedRecurrentLayer, "LSTM": LongShortTermMemoryLayer,
          "RNN": BasicRecurrentLayer}


def ours(kind: str, x: np.ndarray, hidden: int):
    net = NetInitialize(LAYERS[kind](hidden, Input=x.shape[1:]), seed=0)

    def step() -> None:
        plan, _, tape = run_net(net, {"Input": x}, np.float32)
        out = plan.outputs["Output"]
        backward(plan, tape, {"Output": np.ones_like(tape.values[out.slot])})

    return step


def theirs(kind: str, x: np.ndarray, hidden: int):
    import torch

    mod = getattr(torch.nn, kind)(x.shape[2], hidden, batch_first=True)
    xt = torch.tensor(x, requires_grad=True)

    def step() -> None:
        mod.zero_grad()
        xt.grad = None
        out, _ = mod(xt)
        out.sum().backward()

    return step


def timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--inputs", type=int, default=32)
    ap.add_argument("--hidden", type=int, default=64)
    ap.add_argument("--repeat", type=int, default=100)
    ap.add_argument("--torch-threads", type=int, default=0, help="0: PyTorch's default")
    ap.add_argument("--kinds", nargs="+", default=list(LAYERS))
    a = ap.parse_args()
    try:
        import torch

        if a.torch_threads:
            torch.set_num_threads(a.torch_threads)
    except ImportError:
        torch = None
    x = np.random.default_rng(0).standard_normal((a.batch, a.steps, a.inputs)).astype(np.float32)
    for kind in a.kinds:
        mine = ours(kind, x, a.hidden)
        other = theirs(kind, x, a.hidden) if torch is not None else None
        t_ours, t_torch = [], []
        for _ in range(3):  # warm up
            mine()
            if other:
                other()
        for _ in range(a.repeat):
            t_ours.append(timed(mine))
            if other:
                t_torch.append(timed(other))
        line = (f"{kind:5s} B{a.batch} T{a.steps} in{a.inputs} h{a.hidden}: "
                f"netgraph {np.median(t_ours) * 1e3:7.2f} ms")
        if other:
            line += (f"   torch {np.median(t_torch) * 1e3:7.2f} ms"
                     f"   netgraph/torch {np.median(t_ours) / np.median(t_torch):5.2f}")
        print(line)


if __name__ == "__main__":
    main()
