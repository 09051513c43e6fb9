"""Training progress (``progress=``): a tqdm bar, one printed line per round, or a log file.

Every round ends with one *row*: ``round``, ``loss``, ``validation_loss`` (None without a
validation set), each measurement ``<name>`` and ``validation_<name>``, ``learning_rate``
(the last batch's effective rate) and ``time`` (seconds of training so far).

* ``True``: a tqdm bar on stderr over all batches, showing the round, batch, loss and, after
  each round, the row's losses and measurements;
* ``"Print"``: exactly one line per round on stdout (and nothing else);
* a path ending in ``.csv`` (a header row, then one row per round) or ``.jsonl`` (one JSON
  object per round), flushed after every round; a resumed run appends to it;
* ``False`` or ``None``: nothing.
"""

from __future__ import annotations

import csv
import json
import os
import sys
import time
from typing import IO, Any

from ..errors import NetError

__all__ = ["Progress", "check_progress", "make_progress", "columns"]


def columns(names: list[str], validation: bool) -> list[str]:
    """The row's keys, in order."""
    val = [f"validation_{n}" for n in names] if validation else []
    return ["round", "loss", "validation_loss", *names, *val, "learning_rate", "time"]


def _show(row: dict[str, Any], skip: tuple = ("round", "time")) -> str:
    parts = []
    for k, v in row.items():
        if k in skip or v is None:
            continue
        parts.append(f"{k.replace('_', ' ')} {v:.4g}" if isinstance(v, float) else f"{k} {v}")
    return ", ".join(parts)


class Progress:
    """The no-op reporter (``progress=False``); subclasses show or log."""

    def batch(self, r: int, b: int, loss: float) -> None:
        """After batch ``b`` of round ``r`` (both from 1) with batch loss ``loss``."""

    def round(self, row: dict[str, Any]) -> None:
        """After a round, with its row."""

    def close(self) -> None:
        pass


class Bar(Progress):
    """A tqdm bar over all batches (``total=None`` when the number of rounds is open)."""

    def __init__(self, rounds: int | None, batches_per_round: int, done: int = 0):
        try:
            from tqdm.auto import tqdm
        except ImportError:
            raise NetError("NetTrain: the progress bar needs tqdm (pip install tqdm); or pass "
                           "progress=False") from None
        self.rounds, self.per_round = rounds, batches_per_round
        self._last, self._row = 0.0, ""
        total = None if rounds is None else rounds * batches_per_round
        self.bar = tqdm(total=total, initial=done, desc="NetTrain", unit="batch",
                        file=sys.stderr, dynamic_ncols=True, leave=True)

    def _text(self, r: int, b: int, loss: float) -> str:
        rounds = "" if self.rounds is None else f"/{self.rounds}"
        row = f"; {self._row}" if self._row else ""
        return f"round {r}{rounds}, batch {b}/{self.per_round}, loss {loss:.4g}{row}"

    def batch(self, r: int, b: int, loss: float) -> None:
        now = time.perf_counter()
        if now - self._last > 0.2:
            self._last = now
            self.bar.set_postfix_str(self._text(r, b, loss), refresh=False)
        self.bar.update(1)

    def round(self, row: dict[str, Any]) -> None:
        self._row = _show({k: v for k, v in row.items() if k != "learning_rate"})
        now = time.perf_counter()
        refresh = now - self._last > 0.2  # throttled; close() shows the last state
        if refresh:
            self._last = now
        self.bar.set_postfix_str(self._text(row["round"], self.per_round, row["loss"]),
                                 refresh=refresh)

    def close(self) -> None:
        self.bar.close()


class Printer(Progress):
    """One line per round on stdout."""

    def __init__(self, rounds: int | None):
        self.rounds = rounds

    def round(self, row: dict[str, Any]) -> None:
        rounds = "" if self.rounds is None else f"/{self.rounds}"
        print(f"round {row['round']}{rounds}: {_show(row)}, {row['time']:.3g} s", flush=True)


class Log(Progress):
    """One row per round in a .csv or .jsonl file, flushed every round."""

    def __init__(self, path: str, keys: list[str], append: bool):
        self.keys, self.csv = keys, path.lower().endswith(".csv")
        fresh = not append or not os.path.exists(path) or os.path.getsize(path) == 0
        try:
            self.file: IO[str] = open(path, "w" if fresh else "a", newline="",
                                      encoding="utf-8")
        except OSError as e:
            raise NetError(f"NetTrain: cannot write the progress log {path!r}: "
                           f"{e.strerror or e}") from None
        self.writer = csv.writer(self.file) if self.csv else None
        if self.csv and fresh:
            self.writer.writerow(keys)
            self.file.flush()

    def round(self, row: dict[str, Any]) -> None:
        if self.csv:
            self.writer.writerow(["" if row.get(k) is None else row.get(k) for k in self.keys])
        else:
            self.file.write(json.dumps({k: row.get(k) for k in self.keys}) + "\n")
        self.file.flush()

    def close(self) -> None:
        self.file.close()


def check_progress(progress: Any) -> None:
    """A ``NetError`` for a ``progress`` value that is none of the accepted ones."""
    if progress is True or progress is False or progress is None:
        return
    if isinstance(progress, str) and progress == "Print":
        return
    if isinstance(progress, (str, os.PathLike)) and \
            os.fsdecode(os.fspath(progress)).lower().endswith((".csv", ".jsonl")):
        return
    raise NetError(f"NetTrain: progress must be True, False, None, 'Print' or a path ending in "
                   f".csv or .jsonl, got {progress!r}")


def make_progress(progress: Any, rounds: int | None, per_round: int, keys: list[str], *,
                  done: int = 0, append: bool = False) -> Progress:
    """The reporter for ``progress`` (``done``: batches trained before, by a resumed run)."""
    check_progress(progress)
    if progress is True:
        return Bar(rounds, per_round, done)
    if progress is False or progress is None:
        return Progress()
    if progress == "Print":
        return Printer(rounds)
    return Log(os.fsdecode(os.fspath(progress)), keys, append)
