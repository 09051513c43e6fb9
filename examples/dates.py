"""Date translation with attention (Bahdanau et al. 2015): "Saturday, May 03, 1997" -> 1997-05-03.

Text in, text out. A character-level GRU encoder reads a human-readable date (a Characters
encoder on its input turns the string into indices); a GRU decoder, trained with teacher
forcing on raw string pairs, attends over the encoder states with additive scoring
``v . tanh(W e + U q)`` (a custom scoring NetGraph inside SequenceAttentionLayer) and gives
per position the probabilities of the next character (a Characters decoder on its output
turns them into a string). The script trains printing one line per round with the
exact-match accuracy (teacher-forced "SequenceAccuracy") on a validation set, stops early
when that stops improving, can write a checkpoint every round and resume from one. Then it
translates held-out dates with ``netgraph.generate`` on the decoder as a step net (its State
is both an input and an output), greedily and with beam search (4 beams), reports the
exact-match accuracy and speed of both, prints translations and saves the alignment heat
map (input characters x output characters).

    python examples/dates.py [--train 10000] [--test 1000] [--rounds 10] [--out alignment.png]
        [--validation 500] [--patience 2] [--checkpoints DIR] [--resume DIR_OR_FILE]
        [--beam-size 4] [--save model.ngz]
    python examples/dates.py --load model.ngz "Saturday, May 03, 1997"      # -> 1997-05-03
"""

from __future__ import annotations

import argparse
import datetime as dt
import time
from typing import Any

import numpy as np

import netgraph
from netgraph import (
    All,
    CatenateLayer,
    ElementwiseLayer,
    EmbeddingLayer,
    GatedRecurrentLayer,
    LinearLayer,
    NetDecoder,
    NetEncoder,
    NetExtract,
    NetGraph,
    NetMapOperator,
    NetPort,
    NetTrain,
    SequenceAttentionLayer,
    SoftmaxLayer,
    ThreadingLayer,
    generate,
)

MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August",
          "September", "October", "November", "December"]
DAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]
OUT_CHARS = "0123456789-"
START = "^"                  # the decoder's start token: fed first, never generated
TOKENS = START + OUT_CHARS   # the decoder's alphabet, in (Input) and out (Output)
START_INDEX = TOKENS.index(START)
ISO_LENGTH = 10
IN_CHARS = "".join(sorted(set("0123456789 ,./-" + "".join(MONTHS + DAYS)
                              + "".join(MONTHS + DAYS).lower())))

FORMATS = [
    lambda d: f"{d.day} {MONTHS[d.month - 1]} {d.year}",                    # 3 May 1997
    lambda d: f"{MONTHS[d.month - 1]} {d.day}, {d.year}",                   # May 3, 1997
    lambda d: f"{DAYS[d.weekday()]}, {MONTHS[d.month - 1]} {d.day:02d}, {d.year}",
    lambda d: f"{d.day:02d}.{d.month:02d}.{d.year}",                        # 03.05.1997
    lambda d: f"{d.year}/{d.month:02d}/{d.day:02d}",                        # 1997/05/03
    lambda d: f"{d.day} {MONTHS[d.month - 1][:3]} {d.year}",                # 3 May 1997
    lambda d: f"{MONTHS[d.month - 1][:3]} {d.day:02d}, {d.year}",           # May 03, 1997
    lambda d: f"{DAYS[d.weekday()][:3]} {d.day} {MONTHS[d.month - 1]} {d.year}",
    lambda d: f"{d.month:02d}/{d.day:02d}/{d.year}",                        # 05/03/1997
]


def random_dates(count: int, rng: np.random.Generator) -> list[tuple[str, str]]:
    """``count`` (human-readable, ISO) pairs between 1950-01-01 and 2049-12-31."""
    first, last = dt.date(1950, 1, 1).toordinal(), dt.date(2049, 12, 31).toordinal()
    pairs = []
    for day in rng.integers(first, last + 1, size=count):
        d = dt.date.fromordinal(int(day))
        text = FORMATS[rng.integers(len(FORMATS))](d)
        if rng.random() < 0.3:
            text = text.lower()
        pairs.append((text, d.isoformat()))
    return pairs


def training_data(pairs: list[tuple[str, str]]) -> dict:
    """Raw strings for the three ports: the date, the decoder's teacher-forcing input (the
    start token and the ISO date but its last character) and the ISO date to predict."""
    return {"Input": [text for text, _ in pairs],
            "DecoderInput": [START + iso[:-1] for _, iso in pairs],
            "Output": [iso for _, iso in pairs]}


def encode(pairs: list[tuple[str, str]]) -> dict:
    """``training_data(pairs)`` as the index arrays the net's encoders make of it, for
    comparisons with libraries that have no encoders (benchmarks/)."""
    data = training_data(pairs)
    dates, tokens = NetEncoder("Characters", IN_CHARS), NetEncoder("Characters", TOKENS)
    return {"Input": [dates.encode(t, "Input") for t in data["Input"]],
            "DecoderInput": np.stack([tokens.encode(t, "DecoderInput")
                                      for t in data["DecoderInput"]]),
            "Output": np.stack([tokens.encode(t, "Output") for t in data["Output"]])}


def additive_scoring(hidden: int) -> NetGraph:
    """Bahdanau's score ``v . tanh(W e + U q)``."""
    return NetGraph(
        {"W": LinearLayer(hidden, biases=False), "U": LinearLayer(hidden, biases=False),
         "add": ThreadingLayer("Plus"), "tanh": ElementwiseLayer("Tanh"),
         "v": LinearLayer((), biases=False)},
        [(NetPort("Input"), "W"), (NetPort("Query"), "U"), (["W", "U"], "add", "tanh", "v")])


def decoder_layers(embedding: int, hidden: int) -> dict:
    return {"embed": EmbeddingLayer(embedding, len(TOKENS)), "gru": GatedRecurrentLayer(hidden),
            "attend": SequenceAttentionLayer(additive_scoring(hidden)),
            "cat": CatenateLayer(-1), "project": NetMapOperator(LinearLayer(len(TOKENS))),
            "softmax": SoftmaxLayer()}


def decoder(layers: dict, final_state: bool) -> NetGraph:
    """Decoder: previous characters + initial State + encoder states -> next-character
    probabilities (and, as the step net that generates, the final State)."""
    connections = [(NetPort("Input"), "embed", "gru"), (NetPort("State"), NetPort("gru", "State")),
                   (NetPort("EncoderStates"), NetPort("attend", "Input")),
                   ("gru", NetPort("attend", "Query")),
                   (["gru", "attend"], "cat", "project", "softmax", NetPort("Output"))]
    if final_state:
        connections.append((NetPort("gru", "State"), NetPort("State")))
    return NetGraph(layers, connections, Input=NetEncoder("Characters", TOKENS),
                    Output=NetDecoder("Characters", TOKENS))


def build_model(embedding: int = 32, hidden: int = 64) -> NetGraph:
    encoder = NetGraph({"embed": EmbeddingLayer(embedding, len(IN_CHARS)),
                        "gru": GatedRecurrentLayer(hidden)},
                       [(NetPort("Input"), "embed", "gru", NetPort("States")),
                        (NetPort("gru", "State"), NetPort("State"))],
                       Input=NetEncoder("Characters", IN_CHARS))
    return NetGraph({"encoder": encoder, "decoder": decoder(decoder_layers(embedding, hidden),
                                                            final_state=False)},
                    [(NetPort("Input"), "encoder"),
                     (NetPort("encoder", "States"), NetPort("decoder", "EncoderStates")),
                     (NetPort("encoder", "State"), NetPort("decoder", "State")),
                     (NetPort("DecoderInput"), NetPort("decoder", "Input"))])


def translate(net: NetGraph, texts: list[str], beam_size: int = 1) -> list[str]:
    """ISO dates for ``texts``: the encoder runs once, then ``generate`` runs the decoder as a
    step net from the encoder's final State, attending over its States."""
    encoded = NetExtract(net, "encoder")(list(texts))
    step = decoder(NetExtract(net, ["decoder", All]), final_state=True)
    return generate(step, {"State": encoded["State"], "EncoderStates": encoded["States"]},
                    start=START, max_length=ISO_LENGTH, beam_size=beam_size)


def save_alignment(net: NetGraph, text: str, path: str) -> np.ndarray:
    """Heat map of the attention weights (output characters x input characters)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    iso = translate(net, [text])[0]
    weights = net({"Input": text, "DecoderInput": START + iso[:-1]},
                  NetPort(("decoder", "attend"), "AttentionWeights"))
    fig, ax = plt.subplots(figsize=(0.32 * len(text) + 2, 4.2))
    ax.imshow(weights, cmap="Greys", vmin=0, vmax=1, aspect="auto")
    ax.set_xticks(range(len(text)), list(text))
    ax.set_yticks(range(len(iso)), list(iso))
    ax.set_xlabel("input characters")
    ax.set_ylabel("output characters")
    ax.set_title(f"alignment: {text!r} -> {iso}")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return weights


def training_options(validation: dict | None, checkpoints: str | None = None,
                     resume: str | None = None, patience: int = 2) -> dict:
    """NetTrain options for a long run: exact-match accuracy ("SequenceAccuracy") measured
    on a validation set every round, early stopping when it stops improving, a checkpoint
    every round in the directory ``checkpoints``, and resuming from ``resume``."""
    options = {"training_progress_measurements": ["SequenceAccuracy"], "resume": resume}
    if validation is not None:
        options.update(validation_set=validation, training_stopping_criterion={
            "criterion": "SequenceAccuracy", "patience": patience})
    if checkpoints:
        options["training_progress_checkpointing"] = ("Directory", checkpoints)
    return options


def train_model(net: NetGraph, pairs: list[tuple[str, str]], rounds: int,
                learning_rate: float, seed: int, progress: bool, **options: Any):
    """The NetTrain call, on raw string pairs (all results, for the report); ``options``
    are :func:`training_options`."""
    return NetTrain(net, training_data(pairs), prop="All", batch_size=64,
                    max_training_rounds=rounds, learning_rate=learning_rate, seed=seed,
                    progress="Print" if progress else False,  # a line per round
                    **options)


def evaluate(net: NetGraph, pairs: list[tuple[str, str]], beam_size: int) -> dict:
    """Exact-match accuracy of ``translate`` on ``pairs`` and its time per 1,000 dates."""
    start = time.perf_counter()
    predicted = translate(net, [text for text, _ in pairs], beam_size)
    seconds = time.perf_counter() - start
    accuracy = float(np.mean([p == iso for p, (_, iso) in zip(predicted, pairs)]))
    return {"accuracy": accuracy, "predicted": predicted,
            "seconds_per_1000": 1000 * seconds / len(pairs)}


def main(train: int = 10000, test: int = 1000, rounds: int = 10, out: str = "alignment.png",
         seed: int = 0, progress: bool = True, learning_rate: float = 0.003,
         model_plot: str | None = None, validation: int = 500, patience: int = 2,
         checkpoints: str | None = None, resume: str | None = None, save: str | None = None,
         beam_size: int = 4) -> dict:
    rng = np.random.default_rng(seed)
    if model_plot:
        build_model().plot(expand=True).savefig(model_plot, dpi=110, bbox_inches="tight")
    train_pairs, test_pairs = random_dates(train, rng), random_dates(test, rng)
    val = training_data(random_dates(validation, rng)) if validation else None
    start = time.perf_counter()
    result = train_model(build_model(), train_pairs, rounds, learning_rate, seed, progress,
                         **training_options(val, checkpoints, resume, patience))
    seconds = time.perf_counter() - start
    print(f"stopped after round {result.total_rounds} ({result.reason_training_stopped}); "
          f"using round {result.best_validation_round or result.total_rounds}")
    net = result.trained_net
    if save:
        netgraph.save(net, save)
    print(f"trained {result.total_rounds} rounds on {train} dates in {seconds:.0f} s "
          f"({result.mean_examples_per_second:.0f} examples/s); final loss "
          f"{result.round_loss_list[-1]:.4f}")
    greedy = evaluate(net, test_pairs, 1)
    beam = evaluate(net, test_pairs, beam_size)
    for name, r in (("greedy", greedy), (f"beam {beam_size}", beam)):
        print(f"exact match on {test} held-out dates, {name}: {100 * r['accuracy']:.2f}% "
              f"({r['seconds_per_1000']:.2f} s per 1,000 translations)")
    for (text, iso), p in list(zip(test_pairs, greedy["predicted"]))[:8]:
        print(f"  {text:32s} -> {p}  {'ok' if p == iso else 'expected ' + iso}")
    if save:
        print(f"model saved to {save}")
    example = "Saturday, May 03, 1997"
    weights = save_alignment(net, example, out) if out else None
    if out:
        print(f"alignment of {example!r} saved to {out}")
    return {"accuracy": greedy["accuracy"], "beam_accuracy": beam["accuracy"],
            "seconds": seconds, "greedy": greedy, "beam": beam, "results": result,
            "weights": weights, "net": net}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("dates", nargs="*", help="with --load: dates to translate")
    ap.add_argument("--train", type=int, default=10000)
    ap.add_argument("--test", type=int, default=1000)
    ap.add_argument("--rounds", type=int, default=10)
    ap.add_argument("--out", default="alignment.png")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--learning-rate", type=float, default=0.003)
    ap.add_argument("--model-plot", default=None, help="also save a picture of the model")
    ap.add_argument("--validation", type=int, default=500, help="validation dates (0: none)")
    ap.add_argument("--patience", type=int, default=2, help="early stopping patience")
    ap.add_argument("--checkpoints", default=None, help="write a checkpoint every round here")
    ap.add_argument("--resume", default=None, help="continue from this checkpoint (or dir)")
    ap.add_argument("--beam-size", type=int, default=4)
    ap.add_argument("--save", default=None, help="save the trained model to this file")
    ap.add_argument("--load", default=None,
                    help="translate the given dates with a saved model (no training)")
    return ap.parse_args(argv)


if __name__ == "__main__":
    a = parse_args()
    if a.load:
        model = netgraph.load(a.load)
        for iso in translate(model, a.dates, a.beam_size):
            print(iso)
    else:
        main(a.train, a.test, a.rounds, a.out, a.seed, learning_rate=a.learning_rate,
             model_plot=a.model_plot, validation=a.validation, patience=a.patience,
             checkpoints=a.checkpoints, resume=a.resume, save=a.save, beam_size=a.beam_size)
