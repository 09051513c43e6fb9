"""Date translation with attention (Bahdanau et al. 2015): "Saturday, May 03, 1997" -> 1997-05-03.

A character-level GRU encoder reads a human-readable date; a GRU decoder, trained with
teacher forcing, attends over the encoder states with additive scoring
``v . tanh(W e + U q)`` (a custom scoring NetGraph inside SequenceAttentionLayer) and
predicts the ISO date one character at a time (softmax over "0123456789-"). At inference the
decoder runs step by step through its State ports, greedily. The script trains printing one
line per round with the exact-match accuracy (teacher-forced "SequenceAccuracy") on a
validation set, stops early when that stops improving, can write a checkpoint every round and
resume from one; then it reports exact-match accuracy on held-out dates, prints translations
and saves the alignment heat map (input characters x output characters).

    python examples/dates.py [--train 10000] [--test 1000] [--rounds 10] [--out alignment.png]
        [--validation 500] [--patience 2] [--checkpoints DIR] [--resume DIR_OR_FILE]
"""

from __future__ import annotations

import argparse
import datetime as dt
import time

import numpy as np

from netgraph import (
    All,
    CatenateLayer,
    ElementwiseLayer,
    EmbeddingLayer,
    GatedRecurrentLayer,
    Index,
    LinearLayer,
    NetExtract,
    NetGraph,
    NetMapOperator,
    NetPort,
    NetTrain,
    SequenceAttentionLayer,
    SoftmaxLayer,
    ThreadingLayer,
)

MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August",
          "September", "October", "November", "December"]
DAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]
OUT_CHARS = "0123456789-"
START = len(OUT_CHARS)  # the decoder's start token (decoder input vocabulary: 12)
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


def encode(pairs: list[tuple[str, str]]) -> dict:
    """Index sequences for the encoder; teacher-forcing inputs and targets for the decoder."""
    inputs = [np.array([IN_CHARS.index(c) for c in text]) for text, _ in pairs]
    targets = np.array([[OUT_CHARS.index(c) for c in iso] for _, iso in pairs])
    shifted = np.concatenate([np.full((len(pairs), 1), START), targets[:, :-1]], axis=1)
    return {"Input": inputs, "DecoderInput": shifted, "Output": targets}


def additive_scoring(hidden: int) -> NetGraph:
    """Bahdanau's score ``v . tanh(W e + U q)``."""
    return NetGraph(
        {"W": LinearLayer(hidden, biases=False), "U": LinearLayer(hidden, biases=False),
         "add": ThreadingLayer("Plus"), "tanh": ElementwiseLayer("Tanh"),
         "v": LinearLayer((), biases=False)},
        [(NetPort("Input"), "W"), (NetPort("Query"), "U"), (["W", "U"], "add", "tanh", "v")])


def decoder_layers(embedding: int, hidden: int) -> dict:
    return {"embed": EmbeddingLayer(embedding, START + 1), "gru": GatedRecurrentLayer(hidden),
            "attend": SequenceAttentionLayer(additive_scoring(hidden)),
            "cat": CatenateLayer(-1), "project": NetMapOperator(LinearLayer(len(OUT_CHARS))),
            "softmax": SoftmaxLayer()}


def decoder(layers: dict, final_state: bool) -> NetGraph:
    """Decoder: previous characters + initial State + encoder states -> next-character
    probabilities (and, for step-by-step decoding, the final State)."""
    connections = [(NetPort("Input"), "embed", "gru"), (NetPort("State"), NetPort("gru", "State")),
                   (NetPort("EncoderStates"), NetPort("attend", "Input")),
                   ("gru", NetPort("attend", "Query")),
                   (["gru", "attend"], "cat", "project", "softmax", NetPort("Output"))]
    if final_state:
        connections.append((NetPort("gru", "State"), NetPort("State")))
    return NetGraph(layers, connections, Input=("Varying", Index(START + 1)))


def build_model(embedding: int = 32, hidden: int = 64) -> NetGraph:
    encoder = NetGraph({"embed": EmbeddingLayer(embedding, len(IN_CHARS)),
                        "gru": GatedRecurrentLayer(hidden)},
                       [(NetPort("Input"), "embed", "gru", NetPort("States")),
                        (NetPort("gru", "State"), NetPort("State"))],
                       Input=("Varying", Index(len(IN_CHARS))))
    return NetGraph({"encoder": encoder, "decoder": decoder(decoder_layers(embedding, hidden),
                                                            final_state=False)},
                    [(NetPort("Input"), "encoder"),
                     (NetPort("encoder", "States"), NetPort("decoder", "EncoderStates")),
                     (NetPort("encoder", "State"), NetPort("decoder", "State")),
                     (NetPort("DecoderInput"), NetPort("decoder", "Input"))])


def translate(net: NetGraph, texts: list[str]) -> list[str]:
    """Greedy decoding, one character at a time through the decoder's State ports."""
    encoded = encode([(t, "2000-01-01") for t in texts])["Input"]
    enc = NetExtract(net, "encoder")({"Input": encoded})
    step = decoder(NetExtract(net, ["decoder", All]), final_state=True)
    tokens = np.full((len(texts), 1), START)
    state, chars = enc["State"], []
    for _ in range(10):
        out = step({"Input": tokens, "State": state, "EncoderStates": enc["States"]})
        probs = np.stack([p[-1] for p in out["Output"]])
        tokens = probs.argmax(axis=1)[:, None]
        state = out["State"]
        chars.append(tokens[:, 0])
    return ["".join(OUT_CHARS[i] for i in row) for row in np.stack(chars, axis=1)]


def save_alignment(net: NetGraph, text: str, path: str) -> np.ndarray:
    """Heat map of the attention weights (output characters x input characters)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    iso = translate(net, [text])[0]
    data = encode([(text, iso)])
    weights = net({"Input": data["Input"][0], "DecoderInput": data["DecoderInput"][0]},
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


def main(train: int = 10000, test: int = 1000, rounds: int = 10, out: str = "alignment.png",
         seed: int = 0, progress: bool = True, learning_rate: float = 0.003,
         model_plot: str | None = None, validation: int = 500, patience: int = 2,
         checkpoints: str | None = None, resume: str | None = None) -> dict:
    rng = np.random.default_rng(seed)
    if model_plot:
        build_model().plot(expand=True).savefig(model_plot, dpi=110, bbox_inches="tight")
    train_pairs, test_pairs = random_dates(train, rng), random_dates(test, rng)
    val = encode(random_dates(validation, rng)) if validation else None
    start = time.perf_counter()
    result = NetTrain(build_model(), encode(train_pairs), prop="All", batch_size=64,
                      max_training_rounds=rounds, learning_rate=learning_rate, seed=seed,
                      progress="Print" if progress else False,  # a line per round
                      **training_options(val, checkpoints, resume, patience))
    seconds = time.perf_counter() - start
    print(f"stopped after round {result.total_rounds} ({result.reason_training_stopped}); "
          f"using round {result.best_validation_round or result.total_rounds}")
    net = result.trained_net
    predicted = translate(net, [t for t, _ in test_pairs])
    accuracy = float(np.mean([p == iso for p, (_, iso) in zip(predicted, test_pairs)]))
    print(f"trained {result.total_rounds} rounds on {train} dates in {seconds:.0f} s "
          f"({result.mean_examples_per_second:.0f} examples/s); final loss "
          f"{result.round_loss_list[-1]:.4f}")
    print(f"exact match on {test} held-out dates: {100 * accuracy:.2f}%")
    for (text, iso), p in list(zip(test_pairs, predicted))[:8]:
        print(f"  {text:32s} -> {p}  {'ok' if p == iso else 'expected ' + iso}")
    example = "Saturday, May 03, 1997"
    weights = save_alignment(net, example, out) if out else None
    if out:
        print(f"alignment of {example!r} saved to {out}")
    return {"accuracy": accuracy, "seconds": seconds, "results": result, "weights": weights}


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
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
    a = ap.parse_args()
    main(a.train, a.test, a.rounds, a.out, a.seed, learning_rate=a.learning_rate,
         model_plot=a.model_plot, validation=a.validation, patience=a.patience,
         checkpoints=a.checkpoints, resume=a.resume)
