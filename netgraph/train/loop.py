"""NetTrain: the training loop (the executor run directly, with a flat-buffer optimizer).

``NetTrain`` runs named steps: prepare the data, attach the losses, build the training plan
(compile, validate the data once, hold out validation examples, set up arrays, optimizer and
random streams), then rounds (:func:`_one_round`) of batch steps (:func:`_batch_step`)
followed by validation (:func:`_validate`), and finally the results. Everything that changes
on the way lives in one :class:`~netgraph.train.state.TrainState`.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..allocation import memory_errors
from ..apply import _fill_shapes_from_data, collect_arrays, data_hints
from ..compile import Plan, compile_net
from ..errors import NetError
from ..execute import RunContext, backward, forward
from ..initialize import NetInitialize
from ..net import Net
from ..shapes import Automatic
from ..tree import update_at
from .data import TrainData, as_port_dict, fixed_batches, round_batches
from .loss import NODE, TrainingNet, attach_loss, plan_losses, target_ports
from .optimizers import Optimizer, make_optimizer
from .options import Options, check_options
from .params import Diverged, ParamSet, clip_and_regularize
from .progress import Progress
from .results import NetTrainResults, check_property, select_property
from .state import TrainState

__all__ = ["NetTrain"]


def _fill_shapes(net: Net, raw: dict[str, Any]) -> Net:
    """Input ports whose shapes are unknown take the shape of the first example."""
    try:
        first = {p: raw[p][0] for p in net.input_ports}
        return _fill_shapes_from_data(net, first)
    except (NetError, TypeError, IndexError, KeyError, ValueError):
        return net  # NetInitialize / validation will say what is missing


def _with_arrays(net: Net, arrays: dict[tuple, np.ndarray]) -> Net:
    """``net`` with the arrays of the training net (paths under node ``"net"``) put back."""
    by_layer: dict[tuple, dict[str, np.ndarray]] = {}
    for path, a in arrays.items():
        if path[0] == NODE:
            by_layer.setdefault(path[1:-1], {})[path[-1]] = a
    new = net
    for layer_path, fills in by_layer.items():
        new = update_at(new, layer_path, lambda layer, f=fills: layer._with_arrays(f))
    return new._same_shapes_as(net)  # trained arrays keep their shapes


class _Trainer:
    """Runs batches of one training net: forward, loss, backward, update."""

    def __init__(self, plan: Plan, tn: TrainingNet, params: ParamSet, opt: Optimizer,
                 opts: Options):
        self.plan, self.params, self.opt, self.opts = plan, params, opt, opts
        self.loss_names = list(tn.losses)
        self.loss_metas = [plan.outputs[name] for name in tn.losses]
        self.tmp = np.empty_like(params.flat)

    def forward(self, data: TrainData, idx: np.ndarray, training: bool,
                rng: np.random.Generator | None) -> tuple[Any, float]:
        inputs, lengths = data.batch(idx)
        run = RunContext(arrays=self.params.arrays, dtype=np.float32, training=training,
                         rng=rng, lengths=lengths)
        tape = forward(self.plan, inputs, run)
        total = 0.0
        for m in self.loss_metas:
            total += float(tape.values[m.slot].sum(dtype=np.float64))
        if not math.isfinite(total):
            raise Diverged("loss")
        return tape, total

    def train_batch(self, data: TrainData, idx: np.ndarray, rng: np.random.Generator) -> float:
        """One optimization step on examples ``idx``; returns the batch's mean loss."""
        tape, total = self.forward(data, idx, True, rng)
        B = len(idx)
        seeds = {}
        for name, m in zip(self.loss_names, self.loss_metas, strict=True):
            v = tape.values[m.slot]
            seeds[name] = tape.run.zero_padding(np.full(v.shape, 1.0 / B, np.float32), m)
        _, array_grads = backward(self.plan, tape, seeds)
        g = self.params.load_grads(array_grads)
        clip_and_regularize(g, self.params.flat, self.opts.clip, self.opts.l2, self.tmp)
        self.opt.step(self.params.flat, g)
        return total / B

    def evaluate(self, data: TrainData, batches: list[np.ndarray]) -> float:
        """Mean loss per example over ``batches`` (no dropout, no update)."""
        total = sum(self.forward(data, idx, False, None)[1] for idx in batches)
        return total / sum(len(idx) for idx in batches)


def _diverged(what: str, r: int, b: int, opt: Optimizer, clip: float | None) -> NetError:
    where = f"round {r}, batch {b}" if b else f"round {r} (validation)"
    hint = "" if clip is None else f" (now {clip!r})"
    return NetError(f"NetTrain: training diverged at {where}: the {what} became NaN or "
                    f"infinite. Try a lower learning_rate (now {opt.lr!r}), "
                    f"gradient_clipping=<max gradient norm>{hint}, or normalizing the data. "
                    "The given net was not changed.")


@memory_errors("NetTrain")
def NetTrain(net: Net, data: Any, loss: Any = Automatic, prop: str = "TrainedNet", *,
             validation_set: Any = None, batch_size: Any = Automatic,
             max_training_rounds: Any = Automatic, method: Any = "ADAM",
             learning_rate: Any = Automatic, seed: int | None = None, progress: bool = True,
             time_goal: float | None = None, target_device: str = "CPU",
             gradient_clipping: float | None = None, l2_regularization: float = 0.0) -> Any:
    """Train ``net`` on ``data`` with Wolfram's NetTrain semantics (docs/training.md).

    Parameters
    ----------
    net
        The net; missing arrays are first filled as ``NetInitialize(net, seed=seed)`` would,
        and input shapes left open are read off the first example. It is never modified.
    data
        A dict port -> examples, a list of dicts port -> example, or ``(inputs, targets)``
        for a net with one input and one output. Targets go under the name of the output
        port they belong to (``"Output"``).
    loss
        Automatic (as Wolfram: an output named "Loss" is the loss; a final SoftmaxLayer gets
        ``CrossEntropyLossLayer("Index")``, a final LogisticSigmoid
        ``CrossEntropyLossLayer("Binary")``, anything else ``MeanSquaredLossLayer()``), a
        loss layer (one-output nets), an output port name (that output is a loss), or a dict
        port -> loss layer (only those outputs are trained).
    prop
        "TrainedNet" (default), "All" (a :class:`NetTrainResults`), or the name of one of its
        attributes, e.g. "round_loss_list" (CamelCase Wolfram spellings work too).
    validation_set
        Data in the same forms, or a fraction in (0, 1) of ``data`` to hold out. The returned
        net is then the one of the round with the lowest validation loss.
    batch_size
        Automatic = 64, never more than the number of training examples.
    max_training_rounds
        Automatic = 10 (unlimited when a ``time_goal`` is given). A round is one pass over
        the data, in batches reshuffled every round (bucketed by length for sequences).
    method
        "ADAM" (beta1 0.9, beta2 0.999, epsilon 1e-5), "SGD" (momentum 0.9, nesterov False)
        or "RMSProp" (beta 0.95, momentum 0.9, epsilon 1e-8); options as
        ``("SGD", {"momentum": 0.5})`` or ``{"name": "SGD", "momentum": 0.5}``.
    learning_rate
        Automatic = 0.001 (ADAM, RMSProp) or 0.01 (SGD).
    seed
        An int fixing initialization, shuffling, hold-out and dropout: equal seeds give
        bit-identical arrays. None: fresh randomness.
    progress
        Show a tqdm bar on stderr with the round, batch and current loss.
    time_goal
        Seconds; training stops after the round during which it is reached.
    target_device
        Only "CPU".
    gradient_clipping
        None, or the largest global L2 norm of the gradient (larger ones are scaled down).
    l2_regularization
        ``lambda >= 0``: ``lambda * w`` is added to every array's gradient.

    Returns
    -------
    The trained net, a :class:`NetTrainResults`, or the property asked for.

    Raises
    ------
    InputDataError
        Bad data, naming the port (missing target, unequal example counts, NaN, ...).
    NetError
        Bad options, a net that cannot be trained, or a diverging run (NaN/Inf loss or
        gradient: lower the learning rate or clip gradients); the given net is unchanged.
    """
    if not isinstance(net, Net):
        raise NetError(f"NetTrain needs a net, got {type(net).__name__}")
    prop = check_property(prop)
    opts = check_options(batch_size=batch_size, max_training_rounds=max_training_rounds,
                         time_goal=time_goal, gradient_clipping=gradient_clipping,
                         l2_regularization=l2_regularization, seed=seed,
                         target_device=target_device, validation_set=validation_set)
    make_optimizer(method, learning_rate, 0)  # option errors before any work
    losses, raw, raw_val = _prepare_data(net, data, loss, validation_set, opts)
    net0, tn = _attach_loss(net, raw, losses, opts)
    run, state = _training_plan(tn, raw, raw_val, opts, method, learning_rate)
    _train(run, state, opts, progress)
    return select_property(_results(net0, tn, run, state), prop)


# --------------------------------------------------------------------- the steps
def _prepare_data(net: Net, data: Any, loss: Any, validation_set: Any,
                  opts: Options) -> tuple[dict[str, Net | None], dict, dict | None]:
    """The losses to attach (output port -> loss net) and the training (and validation)
    data as dicts port -> examples, holding the net's inputs and the losses' targets."""
    losses = plan_losses(net, loss)
    targets = target_ports(net, losses)
    raw = as_port_dict(data, list(net.input_ports), targets, "training data", net)
    raw_val = None
    if validation_set is not None and opts.holdout is None:
        raw_val = as_port_dict(validation_set, list(net.input_ports), targets, "validation set",
                               net)
    return losses, raw, raw_val


def _attach_loss(net: Net, raw: dict, losses: dict[str, Net | None],
                 opts: Options) -> tuple[Net, TrainingNet]:
    """The user's net with open input shapes read off the first example and missing arrays
    initialized (``net0``, what training starts from), and the training net around it."""
    net0 = NetInitialize(_fill_shapes(net, raw), seed=opts.seed)
    return net0, attach_loss(net0, losses)


@dataclass
class _Run:
    """What a training run holds fixed: the compiled training net, the data and batching."""

    trainer: _Trainer
    train: TrainData
    #: the examples trained on (all, or those not held out for validation)
    train_idx: np.ndarray
    #: their sizes (for length bucketing), or None for fixed-shape data
    train_sizes: np.ndarray | None
    batch_size: int
    per_round: int
    val: TrainData | None = None
    val_batches: list[np.ndarray] | None = None


def _training_plan(tn: TrainingNet, raw: dict, raw_val: dict | None, opts: Options,
                   method: Any, learning_rate: Any) -> tuple[_Run, TrainState]:
    """Compile the training net, validate the data once, split off a held-out validation
    set, and set up the arrays, the optimizer and the random streams."""
    plan = compile_net(tn.net)
    train = TrainData(raw, plan.inputs, "training data", data_hints(plan))
    shuffle_rng, dropout_rng, split_rng = (
        np.random.default_rng(s) for s in np.random.SeedSequence(opts.seed).spawn(3))
    train_idx = np.arange(train.n)
    val, val_idx = None, None
    if raw_val is not None:
        val = TrainData(raw_val, plan.inputs, "validation set", data_hints(plan))
        val_idx = np.arange(val.n)
    elif opts.holdout is not None:
        val, val_idx, train_idx = train, *_hold_out(train.n, opts.holdout, split_rng)
    params = ParamSet(collect_arrays(tn.net, np.float32))
    opt = make_optimizer(method, learning_rate, params.size)
    B = min(opts.batch_size, len(train_idx))
    run = _Run(trainer=_Trainer(plan, tn, params, opt, opts), train=train, train_idx=train_idx,
               train_sizes=None if train.sizes is None else train.sizes[train_idx],
               batch_size=B, per_round=math.ceil(len(train_idx) / B), val=val)
    if val is not None:
        sizes = None if val.sizes is None else val.sizes[val_idx]
        run.val_batches = [val_idx[b] for b in fixed_batches(len(val_idx), max(B, 256), sizes)]
    return run, TrainState(params, opt, shuffle_rng, dropout_rng)


def _hold_out(n: int, fraction: float,
              rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """``(validation indices, training indices)``: a random ``fraction`` of ``n`` held out."""
    k = max(1, round(n * fraction))
    if k >= n:
        raise NetError(f"NetTrain: holding out {fraction!r} of {n} examples leaves none to "
                       "train on")
    perm = rng.permutation(n)
    return np.sort(perm[:k]), np.sort(perm[k:])


def _train(run: _Run, state: TrainState, opts: Options, progress: bool) -> None:
    """Rounds until ``max_training_rounds`` or the time goal; a diverging loss or gradient
    becomes a ``NetError`` naming the round and batch."""
    bar = Progress(bool(progress), opts.rounds, run.per_round)
    state.start = time.perf_counter()
    try:
        with np.errstate(over="ignore", invalid="ignore", divide="ignore", under="ignore"):
            while opts.rounds is None or state.round < opts.rounds:
                state.round += 1
                try:
                    vloss = _one_round(run, state, bar)
                except Diverged as d:
                    raise _diverged(str(d), state.round, state.batch, state.optimizer,
                                    opts.clip) from None
                bar.round(state.round, state.round_losses[-1], vloss)
                if opts.time_goal is not None and state.elapsed() >= opts.time_goal:
                    state.stop_reason = "TimeGoal"
                    break
    finally:
        bar.close()


def _one_round(run: _Run, state: TrainState, bar: Progress) -> float | None:
    """One pass over the training data in reshuffled batches, then validation; returns the
    validation loss (None without a validation set)."""
    total = 0.0
    batches = round_batches(len(run.train_idx), run.batch_size, state.shuffle_rng,
                            run.train_sizes)
    for state.batch, batch in enumerate(batches, 1):
        idx = run.train_idx[batch]
        total += _batch_step(run, state, idx) * len(idx)
        bar.batch(state.round, state.batch, state.batch_losses[-1])
    state.batch = 0
    state.round_losses.append(total / len(run.train_idx))
    return _validate(run, state)


def _batch_step(run: _Run, state: TrainState, idx: np.ndarray) -> float:
    """One optimizer step on the examples ``idx``; returns (and records) the batch loss."""
    batch_loss = run.trainer.train_batch(run.train, idx, state.dropout_rng)
    state.batch_losses.append(batch_loss)
    state.examples += len(idx)
    return batch_loss


def _validate(run: _Run, state: TrainState) -> float | None:
    """The validation loss after a round, keeping a copy of the arrays of the best round."""
    if run.val is None:
        return None
    vloss = run.trainer.evaluate(run.val, run.val_batches)
    state.validation_losses.append(vloss)
    if vloss < state.best_loss:
        state.best_loss, state.best_round = vloss, state.round
        state.best_flat = state.params.snapshot()
    return vloss


def _results(net0: Net, tn: TrainingNet, run: _Run, state: TrainState) -> NetTrainResults:
    """The trained nets (the user's net with the trained arrays) and the run's record."""
    elapsed = state.elapsed()
    params, opt = state.params, state.optimizer
    if not np.isfinite(params.flat).all():
        raise _diverged("arrays", state.round, 0, opt, run.trainer.opts.clip)
    final = _with_arrays(net0, params.as_arrays())
    trained = final if state.best_flat is None else _with_arrays(
        net0, params.as_arrays(state.best_flat))
    return NetTrainResults(
        trained_net=trained, final_net=final, round_loss_list=state.round_losses,
        validation_loss_list=state.validation_losses, batch_loss_list=state.batch_losses,
        total_training_time=elapsed,
        mean_examples_per_second=state.examples / max(elapsed, 1e-12),
        total_rounds=state.round, total_batches=len(state.batch_losses),
        batches_per_round=run.per_round, batch_size=run.batch_size,
        examples_processed=state.examples, best_validation_round=state.best_round,
        optimization_method=opt.describe(), initial_learning_rate=opt.lr,
        reason_training_stopped=state.stop_reason, loss_ports=dict(tn.losses))
