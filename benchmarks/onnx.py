"""The dates model (examples/dates.py) exported to ONNX: parity and inference throughput of
netgraph against onnxruntime on its held-out dates.

The trained net is read from ``--model`` (a ``netgraph.save`` file); if there is none it is
trained as ``examples/dates.py`` does (10,000 dates, 10 rounds, seed 0) and saved there. The
encoder and the decoder's step net (State in, State out) are exported with
``netgraph.export_onnx``; the held-out dates (drawn after the training dates from the same
seed, as examples/dates.py does) are translated greedily, ten characters each, once by
``dates.translate`` and once through onnxruntime; the translations must be identical and
so must the exact-match scores. Each side runs ``--repeat`` times, alternating, all dates as
one batch per step (as ``dates.translate`` does) and in batches of ``--batch``; the best
time counts.

    python benchmarks/onnx.py [--model PATH] [--test 1000] [--repeat 5] [--json out.json]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
if __name__ == "__main__":
    # run as a script, this file's folder comes first on the path, where this file would
    # shadow the onnx package itself: take the folder off, put the repository root on
    sys.path[:] = [str(ROOT)] + [p for p in sys.path if Path(p or ".").resolve() != HERE]

import netgraph  # noqa: E402
from benchmarks.common import cpu_model  # noqa: E402
from netgraph import All, NetExtract, NetTrain, export_onnx  # noqa: E402

DEFAULT_MODEL = Path(tempfile.gettempdir()) / "netgraph-dates-text-model.ngz"


def load_dates() -> Any:
    """examples/dates.py as a module."""
    spec = importlib.util.spec_from_file_location("dates", ROOT / "examples" / "dates.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def split(dates: Any, train: int, test: int, seed: int = 0) -> tuple[list, list]:
    """examples/dates.py's training and held-out pairs."""
    rng = np.random.default_rng(seed)
    return dates.random_dates(train, rng), dates.random_dates(test, rng)


def trained_model(dates: Any, path: Path, train_pairs: list, rounds: int = 10) -> Any:
    """The saved model at ``path``, or one trained like examples/dates.py (and saved)."""
    if path.exists():
        return netgraph.load(path)
    print(f"no model at {path}: training {rounds} rounds on {len(train_pairs)} dates ...",
          flush=True)
    net = NetTrain(dates.build_model(), dates.encode(train_pairs), batch_size=64,
                   max_training_rounds=rounds, learning_rate=0.003, seed=0, progress=False)
    netgraph.save(net, path)
    return net


def step_net(dates: Any, net: Any) -> Any:
    """The decoder as a step net: Input (one token), State, EncoderStates -> Output, State."""
    return dates.decoder(NetExtract(net, ["decoder", All]), final_state=True)


def export_dates(dates: Any, net: Any, directory: Path) -> tuple[Path, Path]:
    """The encoder and the decoder step net as ONNX files in ``directory``."""
    encoder, step = directory / "dates_encoder.onnx", directory / "dates_step.onnx"
    export_onnx(NetExtract(net, "encoder"), encoder)
    export_onnx(step_net(dates, net), step)
    return encoder, step


def sessions(encoder: Path, step: Path, threads: int | None = None) -> tuple[Any, Any]:
    import onnxruntime as ort

    options = ort.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
    providers = ["CPUExecutionProvider"]
    return (ort.InferenceSession(str(encoder), options, providers=providers),
            ort.InferenceSession(str(step), options, providers=providers))


def translate_onnx(dates: Any, encoder: Any, step: Any, texts: list[str],
                   length: int = 10) -> list[str]:
    """Greedy decoding through onnxruntime, as ``dates.translate`` does through netgraph:
    the encoder once, then ``length`` steps of the step net, each feeding the most probable
    character and the State back in."""
    seqs = dates.encode([(t, "2000-01-01") for t in texts])["Input"]
    lens = np.array([len(s) for s in seqs], dtype=np.int64)
    padded = np.zeros((len(seqs), int(lens.max())), dtype=np.int64)
    for b, s in enumerate(seqs):
        padded[b, :len(s)] = s
    states, states_lengths, state = encoder.run(["States", "States_lengths", "State"],
                                                {"Input": padded, "Input_lengths": lens})
    tokens = np.full((len(texts), 1), dates.START_INDEX, dtype=np.int64)
    ones = np.ones(len(texts), dtype=np.int64)
    chars = []
    for _ in range(length):
        probs, state = step.run(["Output", "State_out"], {
            "Input": tokens, "Input_lengths": ones, "State": state,
            "EncoderStates": states, "EncoderStates_lengths": states_lengths})
        tokens = probs[:, -1].argmax(axis=1)[:, None]
        chars.append(tokens[:, 0])
    return ["".join(dates.TOKENS[i] for i in row) for row in np.stack(chars, axis=1)]


def _batched(fn: Any, texts: list[str], batch: int | None) -> list[str]:
    if not batch:
        return fn(texts)
    return [t for i in range(0, len(texts), batch) for t in fn(texts[i:i + batch])]


def measure(dates: Any, net: Any, test_pairs: list, directory: Path, repeat: int = 5,
            batch: int = 64, threads: int | None = None) -> dict:
    """Parity and throughput (dates per second, best of ``repeat``) of both sides; with
    ``threads``, onnxruntime's intra-op threads and (through threadpoolctl, for this call
    only) netgraph's BLAS threads are set to it."""
    import contextlib

    import onnxruntime as ort

    limit = contextlib.nullcontext()
    if threads:
        from threadpoolctl import threadpool_limits

        limit = threadpool_limits(threads)
    with limit:
        return _measure(dates, net, test_pairs, directory, repeat, batch, threads, ort)


def _measure(dates, net, test_pairs, directory, repeat, batch, threads, ort) -> dict:
    texts = [t for t, _ in test_pairs]
    encoder, step = sessions(*export_dates(dates, net, directory), threads=threads)
    ours = dates.translate(net, texts)
    theirs = translate_onnx(dates, encoder, step, texts)
    score = float(np.mean([p == iso for p, (_, iso) in zip(ours, test_pairs)]))
    onnx_score = float(np.mean([p == iso for p, (_, iso) in zip(theirs, test_pairs)]))
    result = {"dates": len(texts), "same_translations": ours == theirs,
              "differing": sum(a != b for a, b in zip(ours, theirs)),
              "exact_match_netgraph": score, "exact_match_onnxruntime": onnx_score,
              "cpu": cpu_model(), "cores": os.cpu_count(), "threads": threads or "default",
              "onnxruntime": ort.__version__, "throughput": {}}
    for size in (None, batch):
        best = {"netgraph": np.inf, "onnxruntime": np.inf}
        for _ in range(repeat):  # alternate, so that load from other processes hits both
            for side, fn in (("netgraph", lambda xs: dates.translate(net, xs)),
                             ("onnxruntime", lambda xs: translate_onnx(dates, encoder, step,
                                                                       xs))):
                t0 = time.perf_counter()
                _batched(fn, texts, size)
                best[side] = min(best[side], time.perf_counter() - t0)
        label = "all at once" if size is None else f"batches of {size}"
        result["throughput"][label] = {
            "netgraph_dates_per_s": len(texts) / best["netgraph"],
            "onnxruntime_dates_per_s": len(texts) / best["onnxruntime"],
            "onnxruntime_speedup": best["netgraph"] / best["onnxruntime"]}
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", type=Path, default=DEFAULT_MODEL)
    ap.add_argument("--train", type=int, default=10000)
    ap.add_argument("--test", type=int, default=1000)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--threads", type=int, default=None,
                    help="threads of both sides (default: each library's own default)")
    ap.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = ap.parse_args()
    dates = load_dates()
    train_pairs, test_pairs = split(dates, args.train, args.test)
    net = trained_model(dates, args.model, train_pairs)
    with tempfile.TemporaryDirectory() as tmp:
        result = measure(dates, net, test_pairs, Path(tmp), args.repeat, args.batch,
                         args.threads)
    print(json.dumps(result, indent=1))
    print(f"CPU: {result['cpu']} ({result['cores']} cores, threads: {result['threads']}), "
          f"onnxruntime {result['onnxruntime']}")
    print(f"{result['dates']} held-out dates: identical translations: "
          f"{result['same_translations']}; exact match netgraph "
          f"{100 * result['exact_match_netgraph']:.2f} %, onnxruntime "
          f"{100 * result['exact_match_onnxruntime']:.2f} %")
    for label, t in result["throughput"].items():
        print(f"{label:>16}: netgraph {t['netgraph_dates_per_s']:8,.0f} dates/s, onnxruntime "
              f"{t['onnxruntime_dates_per_s']:8,.0f} dates/s, ratio "
              f"{t['onnxruntime_speedup']:.2f}x")
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
