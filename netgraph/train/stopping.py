"""Early stopping (``training_stopping_criterion``).

``{"criterion": "Loss" | a measurement name, "patience": k, "improvement": delta,
"initial_patience": k0}`` is watched after every round on the validation set when there is
one, else on the training round. With ``best`` the value to beat (set by the first round
watched) a round's value ``v`` improves when

    v < best - delta   (lower is better: losses, "ErrorRate")
    v > best + delta   (higher is better: accuracies)

and only an improvement updates ``best``. Rounds ``1..k0`` set ``best`` but never count as
rounds without improvement; training stops after the round that completes ``max(k, 1)``
consecutive rounds without improvement.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from typing import Any

from ..errors import NetError
from .measure import Measurement, watched

__all__ = ["Stopper", "parse_stopping"]

_KEYS = ("criterion", "patience", "improvement", "initial_patience")


@dataclass
class Stopper:
    measurement: Measurement
    patience: int = 0
    improvement: float = 0.0
    initial_patience: int = 0
    #: the value to beat (None before the first round watched)
    best: float | None = None
    #: consecutive rounds without improvement
    waited: int = 0

    @property
    def name(self) -> str:
        return self.measurement.name

    def improves(self, value: float) -> bool:
        if self.measurement.lower_is_better:
            return value < self.best - self.improvement
        return value > self.best + self.improvement

    def update(self, round_: int, value: float) -> bool:
        """Watch round ``round_`` (from 1) with value ``value``; True: stop after it."""
        if self.best is None or self.improves(value):
            self.best, self.waited = value, 0
            return False
        if round_ <= self.initial_patience:
            return False
        self.waited += 1
        return self.waited >= max(self.patience, 1)

    def state(self) -> dict:
        return {"best": self.best, "waited": self.waited}

    def restore(self, doc: dict) -> None:
        self.best, self.waited = doc["best"], int(doc["waited"])


def _count(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 0:
        raise NetError(f"NetTrain: training_stopping_criterion {name!r} must be an int >= 0, "
                       f"got {value!r}")
    return int(value)


def parse_stopping(spec: Any, listed: list[Measurement]) -> Stopper | None:
    """The stopper of ``training_stopping_criterion`` (None: no early stopping)."""
    if spec is None:
        return None
    if isinstance(spec, str):
        spec = {"criterion": spec}
    if not isinstance(spec, dict) or "criterion" not in spec:
        raise NetError("NetTrain: training_stopping_criterion must be None or a dict "
                       "{'criterion': 'Loss' | measurement, 'patience': k, 'improvement': "
                       f"delta, 'initial_patience': k0}}, got {spec!r}")
    unknown = [k for k in spec if k not in _KEYS]
    if unknown:
        raise NetError(f"NetTrain: unknown training_stopping_criterion key {unknown[0]!r}; the "
                       f"keys are {list(_KEYS)}")
    delta = spec.get("improvement", 0)
    if isinstance(delta, bool) or not isinstance(delta, numbers.Real) or \
            not math.isfinite(delta) or delta < 0:
        raise NetError("NetTrain: training_stopping_criterion 'improvement' must be a number "
                       f">= 0, got {delta!r}")
    criterion = spec["criterion"]
    if not isinstance(criterion, str):
        raise NetError(f"NetTrain: training_stopping_criterion 'criterion' must be 'Loss' or a "
                       f"measurement name, got {criterion!r}")
    return Stopper(watched(criterion, listed), _count("patience", spec.get("patience", 0)),
                   float(delta), _count("initial_patience", spec.get("initial_patience", 0)))
