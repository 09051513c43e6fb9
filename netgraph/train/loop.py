"""NetTrain: the training loop (the executor run directly, with a flat-buffer optimizer).

``NetTrain`` runs named steps: check the options (:func:`_configure`), prepare the data,
attach the losses (and, to resume, take the checkpoint's arrays), build the training plan
(compile, validate the data once, hold out validation examples, set up arrays, optimizer and
random streams), then rounds (:func:`_one_round`) of batch steps (:func:`_batch_step`:
:func:`_batch_gradient`, then :func:`_update`) followed by the end of the round
(:func:`_end_round`: validation, early stopping, checkpoint, progress, callback), and finally
the results. Everything that changes on the way lives in one
:class:`~netgraph.train.state.TrainState`; what stays fixed in one :class:`_Run`.

``_Run.batch_gradient`` is the one function that computes a batch's gradient (forward with
dropout, backward); a data-parallel trainer replaces only it. Measurements, callbacks and
checkpoints happen outside it.
"""

from __future__ import annotations

import contextlib
import math
import signal
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import numpy as np

from ..allocation import memory_errors
from ..apply import _fill_shapes_from_data, collect_arrays, data_hints
from ..arrays import validated_array
from ..blas import single_threaded
from ..compile import Plan, PortMeta, compile_net
from ..errors import NetError
from ..execute import RunContext, Tape, backward, forward
from ..initialize import NetInitialize
from ..net import Net
from ..ports import NetSharedArray
from ..shapes import Automatic
from ..shared import with_values
from ..tree import update_at
from .callbacks import STOP, Callback, parse_callback
from .checkpoint import (
    Checkpointing,
    check_structure,
    parse_checkpointing,
    read_checkpoint,
    read_vector,
    write_checkpoint,
)
from .data import TrainData, as_port_dict, fixed_batches
from .distributed import data_parallel
from .loss import NODE, TrainingNet, attach_loss, plan_losses, target_ports
from .measure import (
    BatchOutputs,
    Measurement,
    MeasurePorts,
    Meter,
    classified_port,
    parse_measurements,
)
from .multipliers import array_multipliers, scale_vector, split_frozen
from .optimizers import Optimizer, make_optimizer
from .options import Options, check_options
from .params import Diverged, ParamSet, clip_and_regularize
from .progress import Progress, check_progress, columns, make_progress
from .results import NetTrainResults, check_property, select_property
from .schedule import Schedule, split_schedule
from .sources import Batch, FixedBatches, FunctionBatches, check_round_length
from .state import TrainState
from .stopping import Stopper, parse_stopping

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
    shared_values = {}
    for path, a in arrays.items():
        if isinstance(path, NetSharedArray):  # one value, put into every use
            shared_values[path] = validated_array(a, repr(path))
        elif path[0] == NODE:
            by_layer.setdefault(path[1:-1], {})[path[-1]] = a
    new = net
    for layer_path, fills in by_layer.items():
        new = update_at(new, layer_path, lambda layer, f=fills: layer._with_arrays(f))
    return with_values(new, shared_values)._same_shapes_as(net)  # shapes kept


class _Stop(Exception):
    """Ends the training loop with ``reason`` (``reason_training_stopped``)."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class _Config:
    """The options beyond the scalar ones, checked before any work."""

    method: Any
    learning_rate: Any
    schedule: Schedule
    measurements: list[Measurement]
    stopper: Stopper | None
    callback: Callback | None
    checkpointing: Checkpointing | None
    multipliers: Any
    progress: Any
    round_length: int | None


def _configure(opts: Options, data: Any, method: Any, learning_rate: Any, progress: Any,
               extra: dict[str, Any]) -> _Config:
    """Check the method (with its schedule), measurements, stopping criterion, callback,
    checkpointing, progress and round length."""
    method, schedule = split_schedule(method)
    make_optimizer(method, learning_rate, 0)
    schedule.check(opts.rounds)
    check_progress(progress)
    listed = parse_measurements(extra["training_progress_measurements"])
    return _Config(method, learning_rate, schedule, listed,
                   parse_stopping(extra["training_stopping_criterion"], listed),
                   parse_callback(extra["training_progress_function"]),
                   parse_checkpointing(extra["training_progress_checkpointing"]),
                   extra["learning_rate_multipliers"], progress,
                   check_round_length(data, extra["round_length"], opts.holdout))


@memory_errors("NetTrain")
def NetTrain(net: Net, data: Any, loss: Any = Automatic, prop: str = "TrainedNet", *,
             validation_set: Any = None, batch_size: Any = Automatic,
             max_training_rounds: Any = Automatic, method: Any = "ADAM",
             learning_rate: Any = Automatic, seed: int | None = None, progress: Any = True,
             time_goal: float | None = None, target_device: Any = "CPU",
             gradient_clipping: float | None = None, l2_regularization: float = 0.0,
             training_progress_measurements: Any = None,
             training_stopping_criterion: Any = None, training_progress_function: Any = None,
             learning_rate_multipliers: Any = None,
             training_progress_checkpointing: Any = None, round_length: int | None = None,
             resume: Any = None) -> Any:
    """Train ``net`` on ``data`` with Wolfram's NetTrain semantics (docs/training.md).

    Parameters
    ----------
    net
        The net; missing arrays are first filled as ``NetInitialize(net, seed=seed)`` would,
        and input shapes left open are read off the first example. It is never modified.
    data
        A dict port -> examples, a list of dicts port -> example, or ``(inputs, targets)``
        for a net with one input and one output. Targets go under the name of the output
        port they belong to (``"Output"``). Or a function ``f(info) -> batch`` (``info``:
        ``"BatchSize"``, ``"Round"``, ``"Batch"``, from 1) returning one batch in any of those
        forms, with ``round_length``.
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
        the data, in batches reshuffled every round (bucketed by length for sequences). A
        resumed run counts the rounds before its checkpoint too.
    method
        "ADAM" (beta1 0.9, beta2 0.999, epsilon 1e-5), "SGD" (momentum 0.9, nesterov False)
        or "RMSProp" (beta 0.95, momentum 0.9, epsilon 1e-8); options as
        ``("SGD", {"momentum": 0.5})`` or ``{"name": "SGD", "momentum": 0.5}``, including a
        learning-rate schedule: ``"learning_rate_schedule"``: "Constant" (default),
        "Cosine" (``lr (1 + cos(pi (b - 1) / T)) / 2`` for batch b of T), "Linear"
        (``lr (1 - (b - 1) / T)``) or ``f(batch, total_batches) -> multiplier``; and
        ``"warmup_batches": k`` (times ``min(1, b / k)``).
    learning_rate
        Automatic = 0.001 (ADAM, RMSProp) or 0.01 (SGD).
    seed
        An int fixing initialization, shuffling, hold-out and dropout: equal seeds give
        bit-identical arrays. None: fresh randomness.
    progress
        True: a tqdm bar on stderr (round, batch, loss, measurements); False or None:
        nothing; "Print": one line per round on stdout; a path ending in ".csv" or ".jsonl":
        one flushed row per round (round, loss, validation_loss, each measurement and
        validation_<measurement>, learning_rate, time).
    time_goal
        Seconds; training stops after the round during which it is reached.
    target_device
        "CPU" (this process), or ``("CPU", k)``: data-parallel on ``k`` worker processes run
        by Ray (the optional extra ``netgraph[distributed]``; docs/training.md).
    gradient_clipping
        None, or the largest global L2 norm of the gradient (larger ones are scaled down).
    l2_regularization
        ``lambda >= 0``: ``lambda * w`` is added to every array's gradient.
    training_progress_measurements
        None or a list of "Loss", "ErrorRate", "Accuracy", "SequenceAccuracy" (for the
        output trained against Index targets; per element over true lengths) and
        ``(name, f)`` with ``f(outputs, targets) -> float`` on each batch: measured every
        round on the training batches and on the validation set (results:
        ``round_measurements_list``, ``validation_measurements_list``).
    training_stopping_criterion
        None or ``{"criterion": "Loss" | measurement, "patience": k, "improvement": delta,
        "initial_patience": k0}``, watched on the validation set (else the training round):
        stop after ``max(k, 1)`` rounds in a row that do not beat the best by more than
        delta (rounds up to k0 never count).
    training_progress_function
        None, ``f`` or ``(f, {"interval": ("Rounds" | "Batches", k)})``: ``f(info)`` after
        every k-th round (default 1) or batch; ``info`` holds "Round", "Batch",
        "BatchLoss", "RoundLoss", "ValidationLoss", "Measurements", "LearningRate",
        "ExamplesProcessed", "TimeElapsed" and "Net". Returning "StopTraining" stops.
    learning_rate_multipliers
        None or ``{path: multiplier}``: a node, sub-net or array path as in NetExtract, or
        All (the default, else 1); the most specific path wins; 0 freezes (bit-identical).
    training_progress_checkpointing
        None, ``("Directory", dir)`` or ``("File", path)``, optionally with
        ``{"interval": ("Rounds", k)}``: a checkpoint (a ``save`` file of the net with the
        whole training state) written atomically every k rounds.
    round_length
        Examples per round, required when ``data`` is a function.
    resume
        A checkpoint path (or a checkpoint directory: its latest): continue that training,
        bit for bit as if it had not stopped (same data, options and seed).

    Returns
    -------
    The trained net, a :class:`NetTrainResults`, or the property asked for.

    Raises
    ------
    InputDataError
        Bad data, naming the port (missing target, unequal example counts, NaN, ...).
    NetError
        Bad options, a net that cannot be trained, a checkpoint of another net, or a
        diverging run (NaN/Inf loss or gradient: lower the learning rate or clip
        gradients); the given net is unchanged.

    Warns
    -----
    UserWarning
        When a ``KeyboardInterrupt`` (Ctrl-C) stopped training after the current batch
        (``reason_training_stopped == "ManualStop"``); the net trained so far is returned.
    """
    if not isinstance(net, Net):
        raise NetError(f"NetTrain needs a net, got {type(net).__name__}")
    prop = check_property(prop)
    opts = check_options(batch_size=batch_size, max_training_rounds=max_training_rounds,
                         time_goal=time_goal, gradient_clipping=gradient_clipping,
                         l2_regularization=l2_regularization, seed=seed,
                         target_device=target_device, validation_set=validation_set)
    cfg = _configure(opts, data, method, learning_rate, progress, {
        "training_progress_measurements": training_progress_measurements,
        "training_stopping_criterion": training_stopping_criterion,
        "training_progress_function": training_progress_function,
        "learning_rate_multipliers": learning_rate_multipliers,
        "training_progress_checkpointing": training_progress_checkpointing,
        "round_length": round_length})
    saved = None if resume is None else read_checkpoint(resume)
    losses, raw, raw_val, fn = _prepare_data(net, data, loss, validation_set, opts, cfg, saved)
    net0, tn = _attach_loss(net, raw, losses, opts, saved)
    run, state = _training_plan(net0, tn, raw, raw_val, opts, cfg, fn, saved)
    with _gradient_source(run, tn, state):
        _train(run, state)
    return select_property(_results(run, state), prop)


# --------------------------------------------------------------------- the steps
def _prepare_data(net: Net, data: Any, loss: Any, validation_set: Any, opts: Options,
                  cfg: _Config, saved: tuple | None
                  ) -> tuple[dict[str, Net | None], dict, dict | None, FunctionBatches | None]:
    """The losses to attach (output port -> loss net), the training (and validation) data as
    dicts port -> examples holding the net's inputs and the losses' targets, and the batch
    function's source (None for data given as examples). For a function, the training data
    is its first batch (kept to be trained on)."""
    losses = plan_losses(net, loss)
    targets = target_ports(net, losses)
    ports = (list(net.input_ports), targets)
    fn = None
    if cfg.round_length is not None:
        fn = FunctionBatches(data, cfg.round_length, opts.batch_size, ports, net)
        raw = fn.first(1 if saved is None else int(saved[1].get("round", 0)) + 1)
    else:
        raw = as_port_dict(data, *ports, "training data", net)
    raw_val = None
    if validation_set is not None and opts.holdout is None:
        raw_val = as_port_dict(validation_set, *ports, "validation set", net)
    return losses, raw, raw_val, fn


def _attach_loss(net: Net, raw: dict, losses: dict[str, Net | None], opts: Options,
                 saved: tuple | None) -> tuple[Net, TrainingNet]:
    """The user's net with open input shapes read off the first example and missing arrays
    initialized — or, to resume, the checkpoint's arrays (the structures must agree) —
    (``net0``, what training starts from), and the training net around it."""
    net0 = NetInitialize(_fill_shapes(net, raw), seed=opts.seed)
    if saved is not None:
        check_structure(net0, saved[0], saved[2])
        arrays = collect_arrays(saved[0], np.float32)
        net0 = _with_arrays(net0, {p if isinstance(p, NetSharedArray) else (NODE, *p): a
                                   for p, a in arrays.items()})
    return net0, attach_loss(net0, losses)


@dataclass
class _Run:
    """What a training run holds fixed: the compiled training net, the data and batching,
    the frozen arrays and the options."""

    plan: Plan
    net0: Net
    opts: Options
    cfg: _Config
    source: FixedBatches | FunctionBatches
    #: loss output of the training net -> its meta
    losses: dict[str, PortMeta]
    ports: MeasurePorts
    #: what the executor reads: the trained arrays (views of ``params.flat``) and the frozen
    arrays: dict[tuple, np.ndarray]
    frozen: dict[tuple, np.ndarray]
    #: per-scalar learning-rate multipliers of ``params.flat`` (None: all 1)
    scale: np.ndarray | None
    #: the batches planned in all (None when only a time goal bounds training)
    total_batches: int | None
    val: TrainData | None = None
    val_batches: list[np.ndarray] | None = None
    #: the held-out validation indices (a fraction of the training data), else None
    holdout: np.ndarray | None = None
    #: loss output of the training net -> the user output port it trains
    loss_ports: dict[str, str] = field(default_factory=dict)
    #: computes one batch's mean loss, gradient and outputs: :func:`_batch_gradient`, or
    #: a replacement with its signature (a data-parallel trainer)
    batch_gradient: Callable[..., tuple[float, np.ndarray, BatchOutputs | None]] | None = None
    progress: Progress = field(default_factory=Progress)
    tmp: np.ndarray | None = None

    def __post_init__(self) -> None:
        if self.batch_gradient is None:
            self.batch_gradient = _batch_gradient

    @property
    def measured(self) -> list[Measurement]:
        """The listed measurements and the one early stopping watches."""
        s = self.cfg.stopper
        names = [m.name for m in self.cfg.measurements]
        extra = [] if s is None or s.name in names else [s.measurement]
        return self.cfg.measurements + extra

    def meter(self) -> Meter | None:
        measured = self.measured
        return Meter(measured, self.ports) if measured else None


def _training_plan(net0: Net, tn: TrainingNet, raw: dict, raw_val: dict | None, opts: Options,
                   cfg: _Config, fn: FunctionBatches | None,
                   saved: tuple | None) -> tuple[_Run, TrainState]:
    """Compile the training net, validate the data once, split off a held-out validation
    set, and set up the arrays (trained and frozen), the optimizer and the random streams;
    to resume, put the checkpoint's training state in place."""
    plan = compile_net(tn.net)
    shuffle_rng, dropout_rng, split_rng = (
        np.random.default_rng(s) for s in np.random.SeedSequence(opts.seed).spawn(3))
    doc = None if saved is None else saved[1]
    source, val, holdout = _sources(plan, raw, raw_val, opts, fn, split_rng, doc)
    arrays = collect_arrays(tn.net, np.float32)
    mults = _multipliers(net0, cfg.multipliers, list(arrays))
    trained, frozen = split_frozen(arrays, mults)
    params = ParamSet(trained)
    opt = make_optimizer(cfg.method, cfg.learning_rate, params.size)
    run = _Run(plan=plan, net0=net0, opts=opts, cfg=cfg, source=source,
               losses={name: plan.outputs[name] for name in tn.losses},
               ports=_measure_ports(plan, tn), arrays={**frozen, **params.arrays},
               frozen=frozen, scale=scale_vector(params.paths,
                                                  [a.size for a in trained.values()], mults),
               total_batches=None if opts.rounds is None else opts.rounds * source.per_round,
               val=val, holdout=holdout, loss_ports=dict(tn.losses),
               tmp=np.empty_like(params.flat))
    run.ports.check(run.measured)
    if val is not None:
        idx = np.arange(val.n) if holdout is None else holdout
        sizes = None if val.sizes is None else val.sizes[idx]
        run.val_batches = [idx[b] for b in fixed_batches(len(idx), max(source.batch_size, 256),
                                                         sizes)]
    state = TrainState(params, opt, shuffle_rng, dropout_rng, stopper=cfg.stopper)
    if saved is not None:
        _restore(state, saved)
    return run, state


def _sources(plan: Plan, raw: dict, raw_val: dict | None, opts: Options,
             fn: FunctionBatches | None, split_rng: np.random.Generator, doc: dict | None
             ) -> tuple[FixedBatches | FunctionBatches, TrainData | None, np.ndarray | None]:
    """The training batches, the validation data and the held-out indices (or None)."""
    hints = data_hints(plan)
    val, holdout = None, None
    if fn is not None:
        fn.metas, fn.hints = plan.inputs, hints
        source = fn
    else:
        train = TrainData(raw, plan.inputs, "training data", hints)
        idx = np.arange(train.n)
        if opts.holdout is not None:
            val, (holdout, idx) = train, _hold_out(train.n, opts.holdout, split_rng, doc)
        source = FixedBatches(train, idx, opts.batch_size)
    if raw_val is not None:
        val = TrainData(raw_val, plan.inputs, "validation set", hints)
    return source, val, holdout


def _hold_out(n: int, fraction: float, rng: np.random.Generator,
              doc: dict | None) -> tuple[np.ndarray, np.ndarray]:
    """``(validation indices, training indices)``: a random ``fraction`` of ``n`` held out
    (a resumed run: the checkpoint's)."""
    k = max(1, round(n * fraction))
    if k >= n:
        raise NetError(f"NetTrain: holding out {fraction!r} of {n} examples leaves none to "
                       "train on")
    perm = rng.permutation(n)
    held = np.sort(perm[:k])
    if doc is not None and doc.get("validation_indices") is not None:
        held = np.array(doc["validation_indices"], dtype=np.int64)
        if held.ndim != 1 or len(held) != k or held.min() < 0 or held.max() >= n:
            raise NetError(f"NetTrain: the checkpoint holds out {len(held)} of the examples; "
                           f"this data ({n} examples, validation_set={fraction!r}) {k}")
    return held, np.setdiff1d(np.arange(n), held)


def _multipliers(net0: Net, spec: Any, paths: list[tuple]) -> dict[tuple, float]:
    """Array path of the training net -> learning-rate multiplier (loss arrays: 1)."""
    def user_key(p: Any) -> Any:  # a shared array's key is the same in both nets
        return p if isinstance(p, NetSharedArray) else p[1:] if p[0] == NODE else None

    user = array_multipliers(net0, spec, [user_key(p) for p in paths if user_key(p) is not None])
    return {p: 1.0 if user_key(p) is None else user[user_key(p)] for p in paths}


def _measure_ports(plan: Plan, tn: TrainingNet) -> MeasurePorts:
    """The trained user outputs (their values inside the training plan) and the targets."""
    outputs = {port: plan.interior[((NODE,), port)] for port in tn.losses.values()}
    targets = {port: plan.inputs[port] for port in tn.targets}
    return MeasurePorts(outputs, targets, classified_port(outputs, targets))


def _restore(state: TrainState, saved: tuple) -> None:
    """The checkpoint's training state in ``state`` (a ``NetError`` if it is damaged)."""
    _, doc, path = saved
    try:
        state.restore(doc, lambda name, n: read_vector(path, name, n))
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        raise NetError(f"NetTrain: cannot resume from {path!r}: its training state is "
                       f"damaged ({type(e).__name__}: {e})") from None


# --------------------------------------------------------------------- one batch
def _forward(run: _Run, data: TrainData, idx: np.ndarray,
             rng: np.random.Generator | None) -> tuple[Tape, dict[str, np.ndarray], float]:
    """Forward over examples ``idx`` of ``data`` — training (dropout drawn from ``rng``) or,
    with ``rng=None``, evaluating: the tape, the padded inputs and the summed loss
    (``Diverged`` when it is not finite)."""
    inputs, lengths = data.batch(idx)
    ctx = RunContext(arrays=run.arrays, dtype=np.float32, training=rng is not None, rng=rng,
                     lengths=lengths)
    tape = forward(run.plan, inputs, ctx)
    total = 0.0
    for m in run.losses.values():
        total += float(tape.values[m.slot].sum(dtype=np.float64))
    if not math.isfinite(total):
        raise Diverged("loss")
    return tape, inputs, total


def _outputs(run: _Run, tape: Tape, inputs: dict[str, np.ndarray]) -> BatchOutputs | None:
    """What measurements read of a batch (None when nothing is measured but the loss)."""
    if all(m.kind == "Loss" for m in run.measured):
        return None
    outs = {p: tape.values[m.slot] for p, m in run.ports.outputs.items()}
    targets = {p: inputs[p] for p in run.ports.targets}
    size = next(iter(inputs.values())).shape[0]
    return BatchOutputs(outs, targets, tape.run.lengths, size)


def _share_gradient(run: _Run, params: ParamSet, data: TrainData, idx: np.ndarray,
                    rng: np.random.Generator | None,
                    batch_size: int) -> tuple[float, np.ndarray, BatchOutputs | None]:
    """Forward (dropout drawn from ``rng``) and backward over examples ``idx`` of ``data``:
    their summed loss ``L``, the gradient of ``L / batch_size`` as one flat float32 vector
    (``params.grad``) and the outputs measurements need. With ``batch_size = len(idx)``
    the batch gradient; a Ray worker's on its share of a batch (:mod:`.distributed`)."""
    tape, inputs, total = _forward(run, data, idx, rng)
    seeds = {}
    for name, m in run.losses.items():
        v = tape.values[m.slot]
        seeds[name] = tape.run.zero_padding(np.full(v.shape, 1.0 / batch_size, np.float32), m)
    _, array_grads = backward(run.plan, tape, seeds)
    return total, params.load_grads(array_grads), _outputs(run, tape, inputs)


def _batch_gradient(run: _Run, state: TrainState,
                    batch: Batch) -> tuple[float, np.ndarray, BatchOutputs | None]:
    """Forward (with dropout) and backward of one batch: its mean loss, the gradient of the
    mean loss as one flat float32 vector (laid out as ``state.params.flat``) and the outputs
    its measurements need."""
    data, idx = batch
    total, grad, outputs = _share_gradient(run, state.params, data, idx, state.dropout_rng,
                                           len(idx))
    return total / len(idx), grad, outputs


@dataclass
class _WorkerRun:
    """What a Ray worker holds of a run (``target_device=("CPU", k)``, :mod:`.distributed`):
    the training net compiled in the worker, its arrays (the trained ones in ``params``, set
    from the calling process at every step), the loss outputs, and what the measurements
    read (without their functions: those run in the calling process)."""

    plan: Plan
    arrays: dict[tuple, np.ndarray]
    losses: dict[str, PortMeta]
    ports: MeasurePorts
    measured: list[Measurement]
    params: ParamSet

    def gradient(self, data: TrainData, idx: np.ndarray, rng: np.random.Generator,
                 batch_size: int) -> tuple[float, np.ndarray, BatchOutputs | None]:
        return _share_gradient(self, self.params, data, idx, rng, batch_size)  # type: ignore[arg-type]


def _worker_run(tn: TrainingNet, trained: list[tuple], measured: list[Measurement],
                inputs: dict[str, PortMeta]) -> _WorkerRun:
    """A worker's :class:`_WorkerRun`: ``trained`` are the paths of the calling process's
    ``params`` (the same layout), ``inputs`` its plan's input ports (to check that the
    worker compiled the same plan)."""
    plan = compile_net(tn.net)
    if plan.inputs != inputs:
        raise NetError("NetTrain: a worker compiled the training net to other input ports "
                       "than the calling process (another netgraph version on the workers?)")
    arrays = collect_arrays(tn.net, np.float32)
    params = ParamSet({p: arrays[p] for p in trained})
    frozen = {p: a for p, a in arrays.items() if p not in params.arrays}
    return _WorkerRun(plan, {**frozen, **params.arrays},
                      {name: plan.outputs[name] for name in tn.losses},
                      _measure_ports(plan, tn), measured, params)


@contextlib.contextmanager
def _gradient_source(run: _Run, tn: TrainingNet, state: TrainState) -> Iterator[None]:
    """Batch gradients computed in this process, or (``target_device=("CPU", k)``) on ``k``
    Ray workers for the duration of the ``with`` block."""
    if run.opts.workers is None:
        yield
        return
    measured = [Measurement(m.name, m.kind) for m in run.measured]
    make = partial(_worker_run, tn, state.params.paths, measured, run.plan.inputs)
    with data_parallel(run.opts.workers, make) as pool:
        run.batch_gradient = pool
        try:
            yield
        finally:
            run.batch_gradient = _batch_gradient


def _update(run: _Run, state: TrainState, grad: np.ndarray) -> float:
    """One optimizer step from the batch gradient ``grad`` (clipped, plus L2, in place) at
    the scheduled rate, each array's step times its multiplier; returns the rate."""
    opt = state.optimizer
    rate = opt.lr * run.cfg.schedule.factor(state.batches + 1, run.total_batches)
    clip_and_regularize(grad, state.params.flat, run.opts.clip, run.opts.l2, run.tmp)
    opt.step(state.params.flat, grad, rate, run.scale)
    return rate


def _batch_step(run: _Run, state: TrainState, batch: Batch, meter: Meter | None) -> int:
    """One optimizer step on ``batch``, recorded (loss, rate, examples, measurements);
    returns the number of examples. The gradient and the update run with BLAS at one thread
    (:func:`~netgraph.blas.single_threaded`, the setting restored after each step)."""
    with single_threaded():
        loss, grad, outputs = run.batch_gradient(run, state, batch)
        rate = _update(run, state, grad)
    size = len(batch[1])
    state.record_batch(loss, rate, size)
    if meter is not None and outputs is not None:
        meter.add(outputs)
    return size


def _after_batch(run: _Run, state: TrainState) -> None:
    """The progress bar, a callback due after this batch, and a pending Ctrl-C."""
    run.progress.batch(state.round, state.batch, state.batch_losses[-1])
    cb = run.cfg.callback
    if cb is not None and cb.after_batch(state.batches) and _call_back(run, state) == STOP:
        raise _Stop("TrainingProgressFunction")
    if state.interrupted:
        raise _Stop("ManualStop")


# --------------------------------------------------------------------- rounds
def _train(run: _Run, state: TrainState) -> None:
    """Rounds until ``max_training_rounds``, the time goal, early stopping, the callback or
    Ctrl-C; a diverging loss or gradient becomes a ``NetError`` naming the round and batch."""
    run.progress = make_progress(run.cfg.progress, run.opts.rounds, run.source.per_round,
                                 columns([m.name for m in run.cfg.measurements],
                                         run.val is not None),
                                 done=state.batches, append=state.completed > 0)
    state.start = time.perf_counter()
    try:
        with np.errstate(over="ignore", invalid="ignore", divide="ignore", under="ignore"), \
                _deferred_interrupts(state):
            while run.opts.rounds is None or state.completed < run.opts.rounds:
                state.round = state.completed + 1
                _guarded_round(run, state)
    except _Stop as stop:
        state.stop_reason = stop.reason
    except KeyboardInterrupt:  # raised by user code (a callback, measurement, data function)
        state.stop_reason = "ManualStop"
    finally:
        run.progress.close()
        state.optimizer.close()
    if state.stop_reason == "ManualStop":
        warnings.warn(f"NetTrain: interrupted (KeyboardInterrupt) in round {state.round} after "
                      f"{state.batches} batches in all; returning the net trained so far "
                      f"({state.completed} rounds completed)", UserWarning, stacklevel=4)


def _guarded_round(run: _Run, state: TrainState) -> None:
    try:
        _one_round(run, state)
    except Diverged as d:
        raise _diverged(str(d), state.round, state.batch, state.optimizer,
                        run.opts.clip) from None


@contextlib.contextmanager
def _deferred_interrupts(state: TrainState) -> Iterator[None]:
    """While training (in the main thread, with Python's own SIGINT handler in place), a
    Ctrl-C sets ``state.interrupted`` so that training stops after the current batch; a
    second Ctrl-C interrupts at once. The handler is put back afterwards."""
    if threading.current_thread() is not threading.main_thread() or \
            signal.getsignal(signal.SIGINT) is not signal.default_int_handler:
        yield
        return

    def handler(signum: int, frame: Any) -> None:
        if state.interrupted:
            raise KeyboardInterrupt
        state.interrupted = True

    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def _one_round(run: _Run, state: TrainState) -> None:
    """One pass over the training data in reshuffled batches, then the end of the round."""
    meter = run.meter()
    total, n = 0.0, 0
    batches = run.source.batches(state.round, state.shuffle_rng)
    for b, batch in enumerate(batches, 1):
        state.batch = b
        size = _batch_step(run, state, batch, meter)
        total += state.batch_losses[-1] * size
        n += size
        _after_batch(run, state)
    state.batch = 0
    _end_round(run, state, total / n, meter)


def _validate(run: _Run) -> tuple[float | None, dict[str, float]]:
    """The validation loss and measurements (None, {} without a validation set)."""
    if run.val is None:
        return None, {}
    meter = run.meter()
    total = 0.0
    for idx in run.val_batches:
        with single_threaded():
            tape, inputs, t = _forward(run, run.val, idx, None)
        total += t
        outputs = None if meter is None else _outputs(run, tape, inputs)
        if outputs is not None:
            meter.add(outputs)
    vloss = total / sum(len(idx) for idx in run.val_batches)
    return vloss, {} if meter is None else meter.values(vloss)


def _end_round(run: _Run, state: TrainState, loss: float, meter: Meter | None) -> None:
    """Validation, the round's record (and the best round), early stopping, the progress
    row, the checkpoint and the callback; raises ``_Stop`` to end training."""
    values = {} if meter is None else meter.values(loss)
    vloss, vvalues = _validate(run)
    _commit(run, state, loss, values, vloss, vvalues)
    stop = state.stopper is not None and state.stopper.update(
        state.round, _watched(state.stopper, loss, values, vloss, vvalues))
    run.progress.round(_row(run, state))
    _checkpoint(run, state)
    cb = run.cfg.callback
    answer = _call_back(run, state) if cb is not None and cb.after_round(state.round) else None
    if stop:
        raise _Stop("TrainingStoppingCriterion")
    if answer == STOP:
        raise _Stop("TrainingProgressFunction")
    if run.opts.time_goal is not None and time.perf_counter() - state.start >= \
            run.opts.time_goal:
        raise _Stop("TimeGoal")
    if state.interrupted:
        raise _Stop("ManualStop")


def _commit(run: _Run, state: TrainState, loss: float, values: dict[str, float],
            vloss: float | None, vvalues: dict[str, float]) -> None:
    """Append the round's losses and listed measurements; keep the best validation round."""
    names = [m.name for m in run.cfg.measurements]
    state.round_losses.append(loss)
    state.round_measurements.append({k: values[k] for k in names})
    if vloss is None:
        return
    state.validation_losses.append(vloss)
    state.validation_measurements.append({k: vvalues[k] for k in names})
    if vloss < state.best_loss:
        state.best_loss, state.best_round = vloss, state.round
        state.best_flat = state.params.snapshot()


def _watched(stopper: Stopper, loss: float, values: dict[str, float], vloss: float | None,
             vvalues: dict[str, float]) -> float:
    """The value early stopping watches: on the validation set when there is one."""
    if vloss is not None:
        return vloss if stopper.measurement.kind == "Loss" else vvalues[stopper.name]
    return loss if stopper.measurement.kind == "Loss" else values[stopper.name]


def _checkpoint(run: _Run, state: TrainState) -> None:
    """Write a checkpoint after this round when one is due."""
    ck = run.cfg.checkpointing
    if ck is None or not ck.due(state.round):
        return
    doc = {**state.to_doc(),
           "validation_indices": None if run.holdout is None else run.holdout.tolist()}
    write_checkpoint(ck.target(state.round), _current_net(run, state), doc, state.vectors())


def _row(run: _Run, state: TrainState) -> dict[str, Any]:
    """The progress row of the round just completed (see :mod:`.progress`)."""
    validation = run.val is not None
    row: dict[str, Any] = {"round": state.round, "loss": state.round_losses[-1],
                           "validation_loss": state.validation_losses[-1] if validation
                           else None, **state.round_measurements[-1]}
    if validation:
        row.update({f"validation_{k}": v for k, v in state.validation_measurements[-1].items()})
    row.update(learning_rate=state.learning_rates[-1], time=state.elapsed())
    return row


def _call_back(run: _Run, state: TrainState) -> Any:
    """Call the training progress function with the info dict; what it returns."""
    last = state.completed > 0
    measurements: dict[str, float] = {}
    if last:
        measurements.update(state.round_measurements[-1])
        if state.validation_measurements:
            measurements.update({f"Validation{k}": v
                                 for k, v in state.validation_measurements[-1].items()})
    info = {"Round": state.round, "Batch": state.batches,
            "BatchLoss": state.batch_losses[-1] if state.batch_losses else None,
            "RoundLoss": state.round_losses[-1] if last else None,
            "ValidationLoss": state.validation_losses[-1] if last and run.val is not None
            else None,
            "Measurements": measurements,
            "LearningRate": state.learning_rates[-1] if state.learning_rates else None,
            "ExamplesProcessed": state.examples, "TimeElapsed": state.elapsed(),
            "Net": _current_net(run, state)}
    try:
        answer = run.cfg.callback.fn(info)
    except KeyboardInterrupt:
        raise _Stop("ManualStop") from None
    return STOP if isinstance(answer, str) and answer == STOP else None


def _current_net(run: _Run, state: TrainState) -> Net:
    """The user's net with the arrays trained so far (an immutable value)."""
    return _with_arrays(run.net0, state.params.as_arrays())


def _diverged(what: str, r: int, b: int, opt: Optimizer, clip: float | None) -> NetError:
    where = f"round {r}, batch {b}" if b else f"round {r} (validation)"
    hint = "" if clip is None else f" (now {clip!r})"
    return NetError(f"NetTrain: training diverged at {where}: the {what} became NaN or "
                    f"infinite. Try a lower learning_rate (now {opt.lr!r}), "
                    f"gradient_clipping=<max gradient norm>{hint}, or normalizing the data. "
                    "The given net was not changed.")


# --------------------------------------------------------------------- results
def _results(run: _Run, state: TrainState) -> NetTrainResults:
    """The trained nets (the user's net with the trained arrays) and the run's record."""
    elapsed = state.elapsed()
    params, opt = state.params, state.optimizer
    if not np.isfinite(params.flat).all():
        raise _diverged("arrays", state.round, 0, opt, run.opts.clip)
    final = _current_net(run, state)
    trained = final if state.best_flat is None else _with_arrays(
        run.net0, params.as_arrays(state.best_flat))
    return NetTrainResults(
        trained_net=trained, final_net=final, round_loss_list=state.round_losses,
        validation_loss_list=state.validation_losses, batch_loss_list=state.batch_losses,
        total_training_time=elapsed,
        mean_examples_per_second=state.examples / max(elapsed, 1e-12),
        total_rounds=state.completed, total_batches=state.batches,
        batches_per_round=run.source.per_round, batch_size=run.source.batch_size,
        examples_processed=state.examples, best_validation_round=state.best_round,
        optimization_method=opt.describe(), initial_learning_rate=opt.lr,
        reason_training_stopped=state.stop_reason,
        loss_ports=dict(run.loss_ports),
        round_measurements_list=state.round_measurements,
        validation_measurements_list=state.validation_measurements,
        learning_rate_list=state.learning_rates)

