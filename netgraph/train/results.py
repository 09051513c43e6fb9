"""The results of a training run (``NetTrain(..., prop="All")``) and property selection."""

from __future__ import annotations

import re
from dataclasses import dataclass, field, fields
from typing import Any

from ..errors import NetError
from ..net import Net

__all__ = ["NetTrainResults", "select_property", "PROPERTIES"]


@dataclass(frozen=True)
class NetTrainResults:
    """What ``NetTrain(..., prop="All")`` returns.

    Attributes
    ----------
    trained_net
        The trained net: with a validation set, the one of the round with the lowest
        validation loss; else the net after the last round.
    final_net
        The net after the last round (whatever the validation loss).
    round_loss_list
        Per completed round, the mean training loss (batch losses weighted by batch size).
    validation_loss_list
        Per completed round, the loss on the validation set (empty without one).
    batch_loss_list
        Every batch's mean loss, in training order.
    total_training_time
        Seconds spent in the training loop (validation included).
    mean_examples_per_second
        Training examples processed per second of ``total_training_time``.
    round_measurements_list
        Per completed round, measurement name -> value on that round's training batches
        (``training_progress_measurements``; empty dicts without measurements).
    validation_measurements_list
        Per completed round, measurement name -> value on the validation set (empty without
        a validation set).
    learning_rate_list
        The effective learning rate of every batch (schedule and warm-up applied).
    reason_training_stopped
        "MaxTrainingRounds", "TimeGoal", "TrainingStoppingCriterion",
        "TrainingProgressFunction" or "ManualStop".
    """

    trained_net: Net
    final_net: Net
    round_loss_list: list[float]
    validation_loss_list: list[float]
    batch_loss_list: list[float]
    total_training_time: float
    mean_examples_per_second: float
    total_rounds: int = 0
    total_batches: int = 0
    batches_per_round: int = 0
    batch_size: int = 0
    examples_processed: int = 0
    best_validation_round: int | None = None
    optimization_method: str = ""
    initial_learning_rate: float = 0.0
    reason_training_stopped: str = ""
    loss_ports: dict[str, str] = field(default_factory=dict)
    round_measurements_list: list[dict[str, float]] = field(default_factory=list)
    validation_measurements_list: list[dict[str, float]] = field(default_factory=list)
    learning_rate_list: list[float] = field(default_factory=list)

    def loss_plot(self) -> Any:
        """A matplotlib ``Figure``: batch losses, round losses and (if any) validation
        losses against the round. Needs matplotlib (``pip install netgraph[plot]``)."""
        try:
            from matplotlib.figure import Figure
        except ImportError:
            raise NetError("loss_plot needs matplotlib: pip install matplotlib") from None
        fig = Figure(figsize=(6, 4))
        ax = fig.add_subplot()
        nb = len(self.batch_loss_list)
        if nb:
            per = max(self.batches_per_round, 1)
            ax.plot([(i + 1) / per for i in range(nb)], self.batch_loss_list, color="0.7",
                    lw=0.8, label="batch loss")
        rounds = range(1, len(self.round_loss_list) + 1)
        ax.plot(rounds, self.round_loss_list, "o-", color="C0", label="round loss")
        if self.validation_loss_list:
            ax.plot(rounds, self.validation_loss_list, "s-", color="C1",
                    label="validation loss")
        positive = [v for v in self.batch_loss_list + self.round_loss_list if v > 0]
        if positive and len(positive) == nb + len(self.round_loss_list) and \
                max(positive) > 20 * min(positive):
            ax.set_yscale("log")
        ax.set_xlabel("round")
        ax.set_ylabel("loss")
        ax.legend()
        fig.tight_layout()
        return fig

    def __repr__(self) -> str:
        last = self.round_loss_list[-1] if self.round_loss_list else float("nan")
        val = (f", validation loss {min(self.validation_loss_list):.4g} (best, round "
               f"{self.best_validation_round})" if self.validation_loss_list else "")
        return (f"NetTrainResults({self.total_rounds} rounds, {self.total_batches} batches, "
                f"final round loss {last:.4g}{val}, {self.total_training_time:.3g} s, "
                f"{self.mean_examples_per_second:.4g} examples/s)")


PROPERTIES = tuple(f.name for f in fields(NetTrainResults)) + ("loss_plot",)


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def check_property(prop: Any) -> str:
    """The snake_case name of ``prop`` ("TrainedNet", "All", a results attribute, or its
    CamelCase Wolfram spelling such as "RoundLossList")."""
    if prop == "All":
        return "All"
    if isinstance(prop, str):
        name = prop if prop in PROPERTIES else _snake(prop)
        if name in PROPERTIES:
            return name
    raise NetError(f"NetTrain: unknown property {prop!r}; use 'TrainedNet', 'All' or one of "
                   f"{list(PROPERTIES)}")


def select_property(results: NetTrainResults, prop: str) -> Any:
    """``results`` itself for "All", else the attribute (``loss_plot`` gives the figure)."""
    if prop == "All":
        return results
    if prop == "loss_plot":
        return results.loss_plot()
    return getattr(results, prop)
