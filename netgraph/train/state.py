"""The state of a training run: what changes as NetTrain goes, in one object.

The loop (:mod:`.loop`) reads and updates a :class:`TrainState` between its named steps —
one batch step, validation, the end of a round — so that options acting at those points
(callbacks, measurements, checkpoints, learning-rate schedules, early stopping) have one place
to look: the counters, the loss, measurement and learning-rate histories, the best round so
far, the arrays being trained (with the optimizer holding its moments) and the random streams.

A checkpoint holds all of it: :meth:`TrainState.to_doc` (JSON: counters, lists, generator
states, the optimizer's step count) and :meth:`TrainState.vectors` (float32: the optimizer's
moments, the best round's arrays); :meth:`TrainState.restore` puts them back, so that a
resumed run continues bit for bit.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import NetError
from .optimizers import Optimizer
from .params import ParamSet
from .stopping import Stopper

__all__ = ["TrainState"]

_LISTS = ("batch_losses", "round_losses", "validation_losses", "round_measurements",
          "validation_measurements", "learning_rates")


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
    #: early stopping (its best value and patience count), or None
    stopper: Stopper | None = None
    #: the round in progress (or the last one completed), from 1 (0 before the first)
    round: int = 0
    #: the current batch of the round, from 1 (0 outside the batch loop, e.g. in validation)
    batch: int = 0
    #: training examples processed so far
    examples: int = 0
    batch_losses: list[float] = field(default_factory=list)
    round_losses: list[float] = field(default_factory=list)
    validation_losses: list[float] = field(default_factory=list)
    #: per completed round, measurement name -> value (training batches / validation set)
    round_measurements: list[dict[str, float]] = field(default_factory=list)
    validation_measurements: list[dict[str, float]] = field(default_factory=list)
    #: the effective learning rate of every batch
    learning_rates: list[float] = field(default_factory=list)
    #: the lowest validation loss so far, its round and a copy of ``params.flat`` then
    best_loss: float = math.inf
    best_round: int | None = None
    best_flat: np.ndarray | None = None
    #: why the loop ended: "MaxTrainingRounds", "TimeGoal", "TrainingStoppingCriterion",
    #: "TrainingProgressFunction" or "ManualStop"
    stop_reason: str = "MaxTrainingRounds"
    #: set by Ctrl-C (SIGINT) during training: stop after the current batch
    interrupted: bool = False
    #: ``time.perf_counter()`` when this call's loop started; seconds of earlier calls
    start: float = field(default_factory=time.perf_counter)
    elapsed_before: float = 0.0

    @property
    def batches(self) -> int:
        """Batches trained so far (in all rounds, earlier calls included)."""
        return len(self.batch_losses)

    @property
    def completed(self) -> int:
        """Rounds completed so far."""
        return len(self.round_losses)

    def elapsed(self) -> float:
        """Seconds of training so far (earlier calls of a resumed run included)."""
        return self.elapsed_before + time.perf_counter() - self.start

    def record_batch(self, loss: float, rate: float, examples: int) -> None:
        self.batch_losses.append(loss)
        self.learning_rates.append(rate)
        self.examples += examples

    # ------------------------------------------------------------------ checkpoints
    def to_doc(self) -> dict[str, Any]:
        """Everything but the float32 vectors, as JSON values."""
        t, _ = self.optimizer.state()
        return {"round": self.completed, "examples": self.examples,
                "elapsed": self.elapsed(), **{k: getattr(self, k) for k in _LISTS},
                "best_loss": self.best_loss, "best_round": self.best_round,
                "shuffle_rng": self.shuffle_rng.bit_generator.state,
                "dropout_rng": self.dropout_rng.bit_generator.state,
                "optimizer": self.optimizer.name, "optimizer_steps": t,
                "trained_scalars": self.params.size,
                "stopper": None if self.stopper is None else self.stopper.state()}

    def vectors(self) -> dict[str, np.ndarray]:
        """The optimizer's moment buffers and the best round's arrays, by name."""
        _, buffers = self.optimizer.state()
        out = {f"optimizer.{k}": v for k, v in buffers.items()}
        if self.best_flat is not None:
            out["best"] = self.best_flat
        return out

    def restore(self, doc: dict[str, Any], vector: Callable[[str, int], np.ndarray]) -> None:
        """Continue from the checkpoint state ``doc``; ``vector(name, size)`` reads one of
        its float32 vectors."""
        n = self.params.size
        if doc["optimizer"] != self.optimizer.name or doc["trained_scalars"] != n:
            raise NetError(f"NetTrain: the checkpoint was trained with {doc['optimizer']} on "
                           f"{doc['trained_scalars']} scalars; this run uses "
                           f"{self.optimizer.name} on {n}: resume with the checkpoint's method "
                           "and learning_rate_multipliers")
        for k in _LISTS:
            setattr(self, k, list(doc[k]))
        self.round, self.examples = int(doc["round"]), int(doc["examples"])
        self.elapsed_before = float(doc["elapsed"])
        self.best_loss, self.best_round = float(doc["best_loss"]), doc["best_round"]
        self.best_flat = None if self.best_round is None else vector("best", n)
        for name, rng in (("shuffle_rng", self.shuffle_rng), ("dropout_rng", self.dropout_rng)):
            rng.bit_generator.state = doc[name]
        _, buffers = self.optimizer.state()
        for k, buf in buffers.items():
            buf[...] = vector(f"optimizer.{k}", n)
        self.optimizer.t = int(doc["optimizer_steps"])
        if self.stopper is not None and doc["stopper"] is not None:
            self.stopper.restore(doc["stopper"])
