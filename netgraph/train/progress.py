"""The training progress bar (tqdm, on stderr): round, batch and current loss."""

from __future__ import annotations

import sys
import time

from ..errors import NetError

__all__ = ["Progress"]


class Progress:
    """A tqdm bar over all batches (``total=None`` when the number of rounds is open, as
    with a time goal); a no-op when disabled."""

    def __init__(self, enabled: bool, rounds: int | None, batches_per_round: int):
        self.bar = None
        self.rounds, self.per_round = rounds, batches_per_round
        self._last = 0.0
        if not enabled:
            return
        try:
            from tqdm.auto import tqdm
        except ImportError:
            raise NetError("NetTrain: the progress bar needs tqdm (pip install tqdm); or pass "
                           "progress=False") from None
        total = None if rounds is None else rounds * batches_per_round
        self.bar = tqdm(total=total, desc="NetTrain", unit="batch", file=sys.stderr,
                        dynamic_ncols=True, leave=True)

    def _text(self, r: int, b: int, loss: float, extra: str = "") -> str:
        rounds = "" if self.rounds is None else f"/{self.rounds}"
        return f"round {r}{rounds}, batch {b}/{self.per_round}, loss {loss:.4g}{extra}"

    def batch(self, r: int, b: int, loss: float) -> None:
        """After batch ``b`` of round ``r`` (both from 1) with batch loss ``loss``."""
        if self.bar is None:
            return
        now = time.perf_counter()
        if now - self._last > 0.2:
            self._last = now
            self.bar.set_postfix_str(self._text(r, b, loss), refresh=False)
        self.bar.update(1)

    def round(self, r: int, loss: float, validation: float | None) -> None:
        """After round ``r`` with round loss ``loss`` (and validation loss)."""
        if self.bar is None:
            return
        extra = "" if validation is None else f", validation loss {validation:.4g}"
        now = time.perf_counter()
        refresh = now - self._last > 0.2  # throttled; close() shows the last state
        if refresh:
            self._last = now
        self.bar.set_postfix_str(self._text(r, self.per_round, loss, extra), refresh=refresh)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
