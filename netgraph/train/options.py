"""NetTrain's scalar options: checked once, with a ``NetError`` naming the option."""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from typing import Any

from ..errors import NetError
from ..shapes import Automatic

__all__ = ["Options", "check_options", "DEFAULT_BATCH_SIZE", "DEFAULT_ROUNDS"]

#: batch_size=Automatic (never more than the number of training examples)
DEFAULT_BATCH_SIZE = 64
#: max_training_rounds=Automatic, unless a time_goal is given (then rounds are unlimited)
DEFAULT_ROUNDS = 10


@dataclass(frozen=True)
class Options:
    batch_size: int
    rounds: int | None
    time_goal: float | None
    clip: float | None
    l2: float
    seed: int | None
    holdout: float | None
    #: ``target_device=("CPU", k)``: train data-parallel on k Ray workers; None: in-process
    workers: int | None = None


def _is_number(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def _positive_int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise NetError(f"NetTrain: {name} must be a positive int or Automatic, got {value!r}")
    return int(value)


def _workers(target_device: Any) -> int | None:
    """``target_device``: "CPU" (None: this process) or ``("CPU", k)`` (k Ray workers)."""
    if isinstance(target_device, str) and target_device.upper() == "CPU":
        return None
    if isinstance(target_device, (tuple, list)) and len(target_device) == 2 and \
            isinstance(target_device[0], str) and target_device[0].upper() == "CPU":
        k = target_device[1]
        if isinstance(k, bool) or not isinstance(k, numbers.Integral) or k < 1:
            raise NetError(f"NetTrain: target_device=('CPU', k) needs a number of worker "
                           f"processes k >= 1, got {k!r}")
        return int(k)
    raise NetError(f"NetTrain: target_device {target_device!r} is not available; netgraph "
                   "computes with NumPy on the CPU (target_device='CPU', or ('CPU', k) for k "
                   "worker processes run by Ray)")


def check_options(*, batch_size: Any, max_training_rounds: Any, time_goal: Any,
                  gradient_clipping: Any, l2_regularization: Any, seed: Any,
                  target_device: Any, validation_set: Any) -> Options:
    """Validate NetTrain's scalar options."""
    workers = _workers(target_device)
    auto = (Automatic, None)
    size = DEFAULT_BATCH_SIZE if batch_size in auto else _positive_int("batch_size", batch_size)
    if time_goal is not None and (not _is_number(time_goal) or time_goal <= 0):
        raise NetError(f"NetTrain: time_goal must be a positive number of seconds, got "
                       f"{time_goal!r}")
    if max_training_rounds in auto:
        rounds = None if time_goal is not None else DEFAULT_ROUNDS
    else:
        rounds = _positive_int("max_training_rounds", max_training_rounds)
    if gradient_clipping is not None and (not _is_number(gradient_clipping) or
                                          gradient_clipping <= 0):
        raise NetError(f"NetTrain: gradient_clipping must be None or a positive number (the "
                       f"largest global gradient norm), got {gradient_clipping!r}")
    if not _is_number(l2_regularization) or l2_regularization < 0:
        raise NetError(f"NetTrain: l2_regularization must be a number >= 0, got "
                       f"{l2_regularization!r}")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, numbers.Integral)
                             or seed < 0):
        raise NetError(f"NetTrain: seed must be None or an int >= 0, got {seed!r}")
    holdout = None
    if _is_number(validation_set):
        if not 0 < validation_set < 1:
            raise NetError(f"NetTrain: a numeric validation_set is the fraction of the data to "
                           f"hold out and must be in (0, 1), got {validation_set!r}")
        holdout = float(validation_set)
    return Options(size, rounds, None if time_goal is None else float(time_goal),
                   None if gradient_clipping is None else float(gradient_clipping),
                   float(l2_regularization), None if seed is None else int(seed), holdout,
                   workers)
