"""Date translation with a small Transformer (Vaswani et al. 2017): "Saturday, May 03, 1997"
-> 1997-05-03, the task of ``examples/dates.py`` (whose data this script reuses).

An encoder reads the characters: token embeddings plus learned position embeddings
(``SequenceIndicesLayer`` + ``EmbeddingLayer``), then blocks of multi-head self-attention
(``AttentionLayer("Dot", multi_head=True, score_rescaling="DimensionSqrt")``) and a
position-wise feed-forward net, each with a residual connection (``TotalLayer``) followed by
layer normalization (``NormalizationLayer``). The decoder embeds the previous output
characters the same way, attends causally to itself (``mask="Causal"``) and to the encoder's
states (cross-attention), and predicts the next character with an output projection whose
weights are the decoder embedding's (``NetSharedArray("DecoderEmbedding")``). Trained with
teacher forcing by NetTrain; decoded greedily, the whole prefix fed at every step.

    python examples/transformer_dates.py [--train 10000] [--test 1000] [--rounds 12]
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from netgraph import (
    AttentionLayer,
    ElementwiseLayer,
    EmbeddingLayer,
    Index,
    LinearLayer,
    Net,
    NetChain,
    NetExtract,
    NetGraph,
    NetInformation,
    NetMapOperator,
    NetPort,
    NetSharedArray,
    NetTrain,
    NormalizationLayer,
    SequenceIndicesLayer,
    SoftmaxLayer,
    TotalLayer,
    generate,
)


def _dates_module():
    """``examples/dates.py`` (data generation and encoding), imported by path."""
    name = "netgraph_example_dates"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, Path(__file__).with_name("dates.py"))
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


dates = _dates_module()
IN_CHARS, START = dates.IN_CHARS, dates.START_INDEX  # the start token's index
TOKENS = len(dates.TOKENS)  # decoder tokens: the start token and the 11 output characters
MAX_POSITIONS = 40  # longest input: "Wednesday, September 30, 1998" has 29 characters


#: the decoder's token embedding, which its output projection shares
TIED = NetSharedArray("DecoderEmbedding")


def embedding(d: int, vocabulary: int, weights: Any = None) -> NetGraph:
    """tokens -> embedding(token) + embedding(position)."""
    return NetGraph({"tokens": EmbeddingLayer(d, vocabulary, Weights=weights),
                     "positions": SequenceIndicesLayer(MAX_POSITIONS),
                     "position_embedding": EmbeddingLayer(d, MAX_POSITIONS),
                     "add": TotalLayer()},
                    [(NetPort("Input"), "tokens"),
                     (NetPort("Input"), "positions", "position_embedding"),
                     (["tokens", "position_embedding"], "add")],
                    Input=("Varying", Index(vocabulary)))


def attention(d: int, heads: int, *, causal: bool = False) -> NetGraph:
    """Multi-head attention of ``Query`` over ``Memory``: per-position projections into
    ``heads`` heads of size ``d / heads``, scaled dot-product attention (causal: position i
    sees positions <= i), the heads joined and projected back to ``d``."""
    size = d // heads
    return NetGraph(
        {"query": NetMapOperator(LinearLayer((heads, size))),
         "key": NetMapOperator(LinearLayer((heads, size))),
         "value": NetMapOperator(LinearLayer((heads, size))),
         "attend": AttentionLayer("Dot", multi_head=True, score_rescaling="DimensionSqrt",
                                  mask="Causal" if causal else None),
         "output": NetMapOperator(LinearLayer(d))},
        [(NetPort("Query"), "query", NetPort("attend", "Query")),
         (NetPort("Memory"), "key", NetPort("attend", "Key")),
         (NetPort("Memory"), "value", NetPort("attend", "Value")),
         ("attend", "output")])


def feed_forward(d: int, hidden: int) -> NetMapOperator:
    """The position-wise feed-forward net ``W_2 relu(W_1 x + b_1) + b_2``."""
    return NetMapOperator(NetChain([LinearLayer(hidden), ElementwiseLayer("Ramp"),
                                    LinearLayer(d)]))


class _Builder:
    """Nodes and connections of a Transformer stack: each sub-layer followed by a residual
    connection and layer normalization, ``x <- norm(x + sublayer(x, ...))``."""

    def __init__(self, first: str, net: Net, source: Any):
        self.layers: dict[str, Net] = {first: net}
        self.connections: list = [(source, first)]
        self.x = first

    def sublayer(self, name: str, net: Net, inputs: dict[str, Any] | None = None) -> None:
        """``net`` reads x (or, with ``inputs``, port -> source, x standing for "x")."""
        self.layers[name] = net
        if inputs is None:
            self.connections.append((self.x, name))
        else:
            self.connections += [(self.x if src == "x" else src, NetPort(name, port))
                                 for port, src in inputs.items()]
        self.layers[f"{name}_add"], self.layers[f"{name}_norm"] = TotalLayer(), NormalizationLayer()
        self.connections.append(([self.x, name], f"{name}_add", f"{name}_norm"))
        self.x = f"{name}_norm"


def encoder(d: int, heads: int, hidden: int, blocks: int) -> NetGraph:
    b = _Builder("embed", embedding(d, len(IN_CHARS)), NetPort("Input"))
    for k in range(blocks):
        b.sublayer(f"self{k}", attention(d, heads), {"Query": "x", "Memory": "x"})
        b.sublayer(f"ff{k}", feed_forward(d, hidden))
    b.connections.append((b.x, NetPort("States")))
    return NetGraph(b.layers, b.connections, Input=("Varying", Index(len(IN_CHARS))))


def decoder(d: int, heads: int, hidden: int, blocks: int) -> NetGraph:
    """Previous characters (teacher forcing: the start token and the target shifted) and the
    encoder's states -> next-character probabilities; the output projection's weights are
    the token embedding's (``TIED``)."""
    b = _Builder("embed", embedding(d, TOKENS, TIED), NetPort("Input"))
    for k in range(blocks):
        b.sublayer(f"self{k}", attention(d, heads, causal=True), {"Query": "x", "Memory": "x"})
        b.sublayer(f"cross{k}", attention(d, heads),
                   {"Query": "x", "Memory": NetPort("EncoderStates")})
        b.sublayer(f"ff{k}", feed_forward(d, hidden))
    b.layers["readout"] = NetMapOperator(LinearLayer(TOKENS, Weights=TIED))
    b.layers["softmax"] = SoftmaxLayer()
    b.connections.append((b.x, "readout", "softmax", NetPort("Output")))
    return NetGraph(b.layers, b.connections, Input=("Varying", Index(TOKENS)))


def build_model(d: int = 32, heads: int = 4, hidden: int = 64, blocks: int = 1) -> NetGraph:
    return NetGraph({"encoder": encoder(d, heads, hidden, blocks),
                     "decoder": decoder(d, heads, hidden, blocks)},
                    [(NetPort("Input"), "encoder", NetPort("decoder", "EncoderStates")),
                     (NetPort("DecoderInput"), NetPort("decoder", "Input"))])


def translate(net: NetGraph, texts: list[str], beam_size: int = 1,
              batch: int = 500) -> list[str]:
    """ISO dates for ``texts``: the encoder runs once, then ``generate`` runs the decoder in
    prefix form (at step t it reads the start token and the t - 1 characters chosen so far;
    its last position gives the next character's probabilities), greedy or beam search."""
    enc, dec = NetExtract(net, "encoder"), NetExtract(net, "decoder")
    results = []
    for lo in range(0, len(texts), batch):
        chunk = texts[lo:lo + batch]
        states = enc({"Input": dates.encode([(t, "2000-01-01") for t in chunk])["Input"]})
        tokens = generate(dec, {"EncoderStates": states}, start=START,
                          max_length=dates.ISO_LENGTH, beam_size=beam_size)
        results += ["".join(dates.TOKENS[i] for i in row) for row in tokens]
    return results


def main(train: int = 10000, test: int = 1000, rounds: int = 12, seed: int = 0,
         progress: bool = True, learning_rate: float = 0.003, d: int = 32, heads: int = 4,
         hidden: int = 64, blocks: int = 1) -> dict:
    rng = np.random.default_rng(seed)
    train_pairs, test_pairs = dates.random_dates(train, rng), dates.random_dates(test, rng)
    net = build_model(d, heads, hidden, blocks)
    parameters = NetInformation(net, "ArraysTotalElementCount")
    start = time.perf_counter()
    result = NetTrain(net, dates.encode(train_pairs), prop="All", batch_size=64,
                      max_training_rounds=rounds, learning_rate=learning_rate, seed=seed,
                      progress=progress)
    seconds = time.perf_counter() - start
    predicted = translate(result.trained_net, [t for t, _ in test_pairs])
    accuracy = float(np.mean([p == iso for p, (_, iso) in zip(predicted, test_pairs)]))
    print(f"{parameters:,} parameters; trained {rounds} rounds on {train} dates in "
          f"{seconds:.0f} s ({result.mean_examples_per_second:.0f} examples/s); final loss "
          f"{result.round_loss_list[-1]:.4f}")
    print(f"exact match on {test} held-out dates: {100 * accuracy:.2f}%")
    for (text, iso), p in list(zip(test_pairs, predicted))[:8]:
        print(f"  {text:32s} -> {p}  {'ok' if p == iso else 'expected ' + iso}")
    return {"accuracy": accuracy, "seconds": seconds, "parameters": parameters,
            "results": result, "net": result.trained_net}


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--train", type=int, default=10000)
    ap.add_argument("--test", type=int, default=1000)
    ap.add_argument("--rounds", type=int, default=12)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--learning-rate", type=float, default=0.003)
    a = ap.parse_args()
    main(a.train, a.test, a.rounds, a.seed, learning_rate=a.learning_rate)
