"""Learning-rate schedules and warm-up: ``method=(name, {"learning_rate_schedule": s,
"warmup_batches": k, ...})``.

Batch ``b`` (counted from 1 over the whole training, checkpoints and resumes included) of
``T`` planned batches (``max_training_rounds`` times the batches per round; None when only a
time goal bounds training) is trained with the effective rate

    rate(b) = lr * s(b, T) * min(1, b / k)

where ``s`` is "Constant" (1, the default), "Cosine" ((1 + cos(pi (b - 1) / T)) / 2),
"Linear" (1 - (b - 1) / T) or a function ``f(batch, total_batches) -> multiplier >= 0``, and
the warm-up factor is 1 without ``warmup_batches``.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..errors import NetError

__all__ = ["Schedule", "split_schedule", "SCHEDULE_KEYS"]

SCHEDULE_KEYS = ("learning_rate_schedule", "warmup_batches")


def _cosine(b: int, total: int) -> float:
    return (1 + math.cos(math.pi * (b - 1) / total)) / 2


def _linear(b: int, total: int) -> float:
    return 1 - (b - 1) / total


_NAMED: dict[str, Callable[[int, int], float] | None] = {
    "Constant": None, "Cosine": _cosine, "Linear": _linear}


@dataclass(frozen=True)
class Schedule:
    """The multiplier of the base learning rate at every batch."""

    #: "Constant", "Cosine", "Linear" or "Function"
    kind: str = "Constant"
    fn: Callable[[int, int | None], Any] | None = None
    warmup: int = 0

    def check(self, total: int | None) -> None:
        """A named schedule other than "Constant" needs the planned number of batches."""
        if total is None and self.kind in ("Cosine", "Linear"):
            raise NetError(f"NetTrain: the {self.kind!r} learning_rate_schedule needs the "
                           "number of batches planned: give max_training_rounds (a time goal "
                           "alone does not fix it)")

    def factor(self, batch: int, total: int | None) -> float:
        """``s(batch, total) * min(1, batch / warmup)``."""
        s = 1.0
        if self.kind == "Function":
            s = self._call(batch, total)
        elif self.fn is not None:
            s = self.fn(batch, total)
        if self.warmup and batch < self.warmup:
            s *= batch / self.warmup
        return s

    def _call(self, batch: int, total: int | None) -> float:
        value = self.fn(batch, total)
        if isinstance(value, bool) or not isinstance(value, numbers.Real) or \
                not math.isfinite(value) or value < 0:
            raise NetError(f"NetTrain: the learning_rate_schedule function returned {value!r} "
                           f"for batch {batch} of {total}; it must return a number >= 0 (the "
                           "multiplier of the learning rate)")
        return float(value)


def _schedule(s: Any, warmup: Any) -> Schedule:
    if isinstance(warmup, bool) or not isinstance(warmup, numbers.Integral) or warmup < 0:
        raise NetError(f"NetTrain: warmup_batches must be an int >= 0, got {warmup!r}")
    if isinstance(s, str) and s in _NAMED:
        return Schedule(s, _NAMED[s], int(warmup))
    if callable(s) and not isinstance(s, str):
        return Schedule("Function", s, int(warmup))
    raise NetError(f"NetTrain: unknown learning_rate_schedule {s!r}; use one of {list(_NAMED)} "
                   "or a function f(batch, total_batches) -> multiplier")


def split_schedule(method: Any) -> tuple[Any, Schedule]:
    """``method`` without the schedule options (what the optimizer takes) and the schedule
    they give; ``method`` is a name, ``(name, {option: value})`` or ``{"name": name, ...}``."""
    if isinstance(method, tuple) and len(method) == 2 and isinstance(method[1], dict):
        name, options = method
    elif isinstance(method, dict):
        name, options = None, method
    else:
        return method, Schedule()
    rest = {k: v for k, v in options.items() if k not in SCHEDULE_KEYS}
    schedule = _schedule(options.get("learning_rate_schedule", "Constant"),
                         options.get("warmup_batches", 0))
    return (rest if name is None else (name, rest)), schedule
