"""``training_progress_function``: a user function called during training.

``f`` or ``(f, {"interval": ("Rounds" | "Batches", k)})`` (default ``("Rounds", 1)``): ``f``
is called after every ``k``-th round (at its end, after validation) or after every ``k``-th
batch (counted over the whole training), with the info dict :func:`netgraph.train.loop`
builds (``"Round"``, ``"Batch"``, ``"BatchLoss"``, ``"RoundLoss"``, ``"ValidationLoss"``,
``"Measurements"``, ``"LearningRate"``, ``"ExamplesProcessed"``, ``"TimeElapsed"``, ``"Net"``).
Returning ``"StopTraining"`` stops training.
"""

from __future__ import annotations

import numbers
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..errors import NetError

__all__ = ["Callback", "parse_callback", "STOP"]

STOP = "StopTraining"


@dataclass(frozen=True)
class Callback:
    fn: Callable[[dict], Any]
    #: "Rounds" or "Batches"
    unit: str = "Rounds"
    every: int = 1

    def after_batch(self, batches: int) -> bool:
        """Due after batch number ``batches`` (counted from 1 over all rounds)?"""
        return self.unit == "Batches" and batches % self.every == 0

    def after_round(self, round_: int) -> bool:
        return self.unit == "Rounds" and round_ % self.every == 0


def _interval(opts: Any) -> tuple[str, int]:
    every = opts.get("interval") if isinstance(opts, dict) and set(opts) == {"interval"} else None
    if not (isinstance(every, tuple) and len(every) == 2 and every[0] in ("Rounds", "Batches")
            and isinstance(every[1], numbers.Integral) and not isinstance(every[1], bool)
            and every[1] >= 1):
        raise NetError("NetTrain: the options of training_progress_function are {'interval': "
                       f"('Rounds' | 'Batches', k)}} with an int k >= 1, got {opts!r}")
    return every[0], int(every[1])


def parse_callback(spec: Any) -> Callback | None:
    """The callback of ``training_progress_function`` (None: no callback)."""
    if spec is None:
        return None
    if callable(spec):
        return Callback(spec)
    if isinstance(spec, tuple) and len(spec) == 2 and callable(spec[0]):
        return Callback(spec[0], *_interval(spec[1]))
    raise NetError("NetTrain: training_progress_function must be None, a function f(info) or "
                   f"(f, {{'interval': ('Rounds' | 'Batches', k)}}), got {spec!r}")
