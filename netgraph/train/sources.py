"""Where a round's batches come from: the training data (shuffled every round) or a
function ``f(info) -> batch`` (``data=f`` with ``round_length=n``).

A function is called once per batch with ``{"BatchSize": size, "Round": r, "Batch": b}``
(``r`` and ``b`` counted from 1, ``b`` within the round) and returns one batch in any data
form (a dict port -> examples, a list of dicts, or ``(inputs, targets)``); a round has
``ceil(n / batch_size)`` batches, the last holding the remainder ``n - (batches - 1) *
batch_size``. Each batch is validated like training data.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from ..compile import PortMeta
from ..errors import NetError
from .data import TrainData, as_port_dict, round_batches

__all__ = ["Batch", "FixedBatches", "FunctionBatches"]

#: one batch: the data it is taken from and the indices of its examples there
Batch = tuple[TrainData, np.ndarray]


class FixedBatches:
    """The examples ``idx`` of ``data`` in a fresh random order every round, cut into
    batches (bucketed by sequence length, see :func:`~netgraph.train.data.round_batches`)."""

    def __init__(self, data: TrainData, idx: np.ndarray, batch_size: int):
        self.data, self.idx = data, idx
        self.sizes = None if data.sizes is None else data.sizes[idx]
        self.examples = len(idx)
        self.batch_size = min(batch_size, self.examples)
        self.per_round = math.ceil(self.examples / self.batch_size)

    def batches(self, round_: int, rng: np.random.Generator) -> Iterator[Batch]:
        for b in round_batches(self.examples, self.batch_size, rng, self.sizes):
            yield self.data, self.idx[b]


class FunctionBatches:
    """Batches made by a user function, ``round_length`` examples per round."""

    def __init__(self, fn: Callable[[dict], Any], round_length: int, batch_size: int,
                 ports: tuple[list[str], list[str]], net: Any = None):
        self.fn, self.ports = fn, ports
        self.net = net  # the user's net: its coders encode raw batches
        self.examples = round_length
        self.batch_size = min(batch_size, round_length)
        self.per_round = math.ceil(round_length / self.batch_size)
        self.metas: dict[str, PortMeta] | None = None
        self.hints: dict[str, str] = {}
        self._held: tuple[int, int, dict] | None = None

    def size(self, b: int) -> int:
        """Examples in batch ``b`` (from 1) of a round."""
        return self.batch_size if b < self.per_round else \
            self.examples - (self.per_round - 1) * self.batch_size

    def call(self, round_: int, b: int) -> dict[str, Any]:
        """Batch ``b`` of round ``round_`` as a dict port -> examples."""
        if self._held is not None and self._held[:2] == (round_, b):
            raw, self._held = self._held[2], None
            return raw
        info = {"BatchSize": self.size(b), "Round": round_, "Batch": b}
        return as_port_dict(self.fn(info), *self.ports,
                            f"the batch of round {round_}, batch {b} made by the data function",
                            self.net)

    def first(self, round_: int) -> dict[str, Any]:
        """The first batch of round ``round_``, kept to be trained on (f is called once per
        batch): its examples fix input shapes left open."""
        raw = self.call(round_, 1)
        self._held = (round_, 1, raw)
        return raw

    def batches(self, round_: int, rng: np.random.Generator) -> Iterator[Batch]:
        for b in range(1, self.per_round + 1):
            data = TrainData(self.call(round_, b), self.metas,
                             f"the batch of round {round_}, batch {b}", self.hints)
            yield data, np.arange(data.n)


def check_round_length(data: Any, round_length: Any, holdout: float | None) -> int | None:
    """``round_length`` checked against the form of ``data`` (required for a function)."""
    is_fn = callable(data) and not isinstance(data, (dict, list, tuple, np.ndarray))
    if not is_fn:
        if round_length is not None:
            raise NetError("NetTrain: round_length is for data given as a function f(info) -> "
                           f"batch; the data is a {type(data).__name__}")
        return None
    if isinstance(round_length, bool) or not isinstance(round_length, (int, np.integer)) or \
            round_length < 1:
        raise NetError("NetTrain: data given as a function needs round_length=n (a positive int: "
                       f"examples per round), got round_length={round_length!r}")
    if holdout is not None:
        raise NetError("NetTrain: a validation_set fraction cannot be held out of data given as "
                       "a function; give the validation set as data")
    return int(round_length)
