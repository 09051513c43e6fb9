"""The state of a training run: what changes as NetTrain goes, in one object.

The loop (:mod:`.loop`) reads and updates a :class:`TrainState` between its named steps —
one batch step, validation, the end of a round — so that options acting at those points
(callbacks, measurements, checkpoints, learning-rate schedules) have one place to look: the
counters, the loss histories, the best round so far, the arrays being trained (with the
optimizer holding its moments) and the random streams.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np

from .optimizers import Optimizer
from .params import ParamSet

__all__ = ["TrainState"]


@dataclass
class TrainState:
    """Counters, histories and the mutable parts of one training run."""

    #: the trained arrays, one flat float32 buffer (``params.flat``), updated in place
    params: ParamSet
    #: the optimizer stepping ``params`` (its moments live in it)
    optimizer: Optimizer
    #: shuffles each round's batches
    shuffle_rng: np.random.Generator
    #: dropout and other training-time randomness of the layers
    dropout_rng: np.random.Generator
    #: the current round, from 1 (0 before the first)
    round: int = 0
    #: the current batch of the round, from 1 (0 outside the batch loop, e.g. in validation)
    batch: int = 0
    #: training examples processed so far
    examples: int = 0
    batch_losses: list[float] = field(default_factory=list)
    round_losses: list[float] = field(default_factory=list)
    validation_losses: list[float] = field(default_factory=list)
    #: the lowest validation loss so far, its round and a copy of ``params.flat`` then
    best_loss: float = math.inf
    best_round: int | None = None
    best_flat: np.ndarray | None = None
    #: why the loop ended: "MaxTrainingRounds" or "TimeGoal"
    stop_reason: str = "MaxTrainingRounds"
    #: ``time.perf_counter()`` when the loop started
    start: float = field(default_factory=time.perf_counter)

    def elapsed(self) -> float:
        """Seconds since the loop started."""
        return time.perf_counter() - self.start
