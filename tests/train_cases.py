"""Small nets and data shared by the tests of NetTrain's options (tests/test_train_*.py)."""

from __future__ import annotations

import numpy as np

from netgraph import (
    DropoutLayer,
    EmbeddingLayer,
    Index,
    LinearLayer,
    NetChain,
    NetMapOperator,
    SoftmaxLayer,
)
from netgraph.apply import collect_arrays

#: classes and vocabulary of the sequence tagging task (pairwise distinct sizes)
CLASSES, VOCAB = 5, 7


def tagger(dropout: float = 0.0) -> NetChain:
    """Varying-length index sequences -> per-position class probabilities."""
    layers = [EmbeddingLayer(6, VOCAB)]
    if dropout:
        layers.append(DropoutLayer(dropout))
    layers += [NetMapOperator(LinearLayer(CLASSES)), SoftmaxLayer()]
    return NetChain(layers, Input=("Varying", Index(VOCAB)))


def tagging(n: int, seed: int) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Sequences of lengths 1..6 whose target at each position is ``(x + 1) mod 5``."""
    rng = np.random.default_rng(seed)
    xs = [rng.integers(0, VOCAB, int(rng.integers(1, 7))) for _ in range(n)]
    return xs, [(x + 1) % CLASSES for x in xs]


def classifier(dropout: float = 0.0) -> NetChain:
    """Vectors of 3 -> 4 class probabilities."""
    layers = [LinearLayer(9), "Tanh"]
    if dropout:
        layers.append(DropoutLayer(dropout))
    return NetChain(layers + [LinearLayer(4), SoftmaxLayer()], Input=3)


def blobs(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 4, n)
    x = rng.standard_normal((n, 3)).astype(np.float32) + np.eye(4, 3, dtype=np.float32)[y] * 2
    return x, y


def regression(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, 3)).astype(np.float32)
    return x, x @ np.array([[1.0, 0.5], [-2.0, 0.0], [0.5, 1.0]], dtype=np.float32)


def arrays_of(net) -> dict[tuple, np.ndarray]:
    return {k: np.array(v) for k, v in collect_arrays(net, np.float32).items()}


def assert_same_arrays(a, b) -> None:
    """Bit-identical arrays (same paths)."""
    A, B = arrays_of(a), arrays_of(b)
    assert A.keys() == B.keys()
    for k in A:
        np.testing.assert_array_equal(A[k], B[k], err_msg=str(k))


def accuracy(probs, targets) -> tuple[float, float]:
    """(Accuracy, SequenceAccuracy) by hand: per example the fraction of right positions
    (argmax == target) over its length, and whether all are right; means over examples."""
    per, whole = [], []
    for p, t in zip(probs, targets):
        right = np.argmax(np.atleast_2d(p), axis=-1) == np.atleast_1d(t)
        per.append(right.mean())
        whole.append(bool(right.all()))
    return float(np.mean(per)), float(np.mean(whole))
