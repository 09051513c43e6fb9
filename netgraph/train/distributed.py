"""Data-parallel training on Ray: ``NetTrain(..., target_device=("CPU", k))``.

The calling process runs NetTrain exactly as in one process — batches, the optimizer step
(clipping, L2, multipliers, schedules), validation, measurements, callbacks, checkpoints — and
swaps one function: the gradient of a batch. :class:`DataParallel` computes it on ``k`` Ray
worker actors, each holding the training net compiled once (its training plan):

* the batch's examples ``idx`` (``B`` of them) are cut into contiguous shares
  ``idx_1 … idx_m``, ``m = min(k, B)`` (``np.array_split``: sizes differ by at most one; a batch
  of fewer than ``k`` examples leaves workers idle);
* worker ``i`` sets its arrays from the step's flat float32 buffer and returns, for its share,
  its summed loss ``L_i = Σ_{e ∈ idx_i} loss_e`` and the gradient ``g_i = ∇ L_i / B`` (the
  one-process batch gradient code with its seeds ``1/B``, on the share);
* the batch gradient is ``g = g_1 + … + g_m`` (summed in worker order, in float32) — the
  gradient of the batch's mean loss, equal to one process's up to float32 rounding of this
  sum — and the batch loss ``(L_1 + … + L_m) / B``;
* when something beyond the loss is measured, each worker also returns its share's padded
  outputs and targets, joined into the batch's (:func:`merge_outputs`) for the measurements,
  which run in the calling process (user functions need not be picklable).

Transfers: per step one ``ray.put`` of the arrays (the flat float32 buffer of
:class:`~netgraph.train.params.ParamSet`, read zero-copy by the workers on one machine), the
share indices, and one flat float32 gradient buffer back from each busy worker. The training
data goes to the object store once (``ray.put``) and each worker reads it once; a batch made
by a data function is put once per batch.

Randomness (dropout): every step draws one key from the run's dropout generator; worker ``i``
uses ``np.random.default_rng([key, i])``, so a run is reproducible for the same seed and ``k``.

Ray: the cluster the user connected to (``ray.init(address=...)`` before NetTrain, or
``RAY_ADDRESS``), else a local Ray started with ``ray.init(num_cpus=k)`` and shut down when
training ends, also after an error or Ctrl-C; the ``k`` actors are killed in every case. Each
worker runs its BLAS/OpenMP on :data:`WORKER_THREADS` threads (Ray ``runtime_env`` variables;
the calling process keeps its own settings). No retries: a worker that dies or raises ends
training with a ``NetError`` naming it (``worker i of k (pid p)``) and the round and batch.
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import math
import os
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import NetError
from .measure import BatchOutputs
from .params import Diverged

__all__ = ["DataParallel", "data_parallel", "import_ray", "merge_outputs", "WORKER_THREADS",
           "START_TIMEOUT"]

#: BLAS / OpenMP threads of each worker process (it holds one of Ray's CPUs)
WORKER_THREADS = 1
#: seconds the workers may take to start (import netgraph, compile the training net)
START_TIMEOUT = 300.0
_THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
_INSTALL = 'pip install "netgraph[distributed]"'


def import_ray() -> Any:
    """The ``ray`` module, or a ``NetError`` saying how to install it."""
    try:
        return importlib.import_module("ray")
    except ImportError:
        raise NetError("NetTrain: target_device=('CPU', k) trains on worker processes run by "
                       f"Ray, which is not installed: {_INSTALL}") from None


@contextlib.contextmanager
def ray_connection(ray: Any, k: int) -> Iterator[None]:
    """Ray for the duration of a training run: the cluster the user connected to (left
    connected), else the one ``RAY_ADDRESS`` names, else a new local Ray with ``k`` CPUs
    (never a cluster that ``ray start`` runs on this machine unasked); the last two are
    disconnected (the local one shut down) on leaving, whatever happens."""
    if ray.is_initialized():
        yield
        return
    try:
        address = os.environ.get("RAY_ADDRESS")
        try:
            if address:
                ray.init(log_to_driver=False, logging_level=logging.WARNING)
            else:  # address="local": a new Ray of our own, even where `ray start` runs one
                ray.init(address="local", num_cpus=k, include_dashboard=False,
                         log_to_driver=False, logging_level=logging.WARNING)
        except Exception as e:  # noqa: BLE001 - whatever Ray raises, said as a NetError
            where = f"connect to the Ray cluster at RAY_ADDRESS={address!r}" if address else \
                f"start a local Ray with {k} CPUs"
            raise NetError(f"NetTrain: target_device=('CPU', {k}) could not {where}: "
                           f"{type(e).__name__}: {e}") from None
        yield
    finally:
        ray.shutdown()  # also after a failed or interrupted start (a no-op then)


def _runtime_env() -> dict:
    """The workers' environment: :data:`WORKER_THREADS` BLAS/OpenMP threads, and the folder
    holding this netgraph first on ``PYTHONPATH`` (a checkout that is not installed)."""
    root = str(Path(__file__).resolve().parents[2])
    path = os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH")) if p)
    env = {name: str(WORKER_THREADS) for name in _THREAD_VARIABLES}
    return {"env_vars": {**env, "PYTHONPATH": path}}


class _Worker:
    """A Ray actor's state: the run made by ``make_run()`` (the training net compiled once,
    its arrays) and the training data it last read."""

    def __init__(self, make_run: Callable[[], Any], index: int):
        self.run = make_run()
        self.index = index
        self.data_key: int | None = None
        self.data: Any = None

    def pid(self) -> int:
        return os.getpid()

    def gradient(self, flat: np.ndarray, key: int, ref: list, idx: np.ndarray, batch_size: int,
                 rng_key: int) -> tuple[float, np.ndarray | None, Any]:
        """``(L, ∇ L / batch_size, outputs)`` for the summed loss ``L`` of examples ``idx``
        at the arrays ``flat``; ``(nan, None, None)`` when the loss is not finite."""
        np.copyto(self.run.params.flat, flat)
        if key != self.data_key:  # a new data set: read it from the object store once
            import ray

            self.data, self.data_key = ray.get(ref[0]), key
        rng = np.random.default_rng([rng_key, self.index])
        with np.errstate(over="ignore", invalid="ignore", divide="ignore", under="ignore"):
            try:
                return self.run.gradient(self.data, idx, rng, batch_size)
            except Diverged:
                return math.nan, None, None


def merge_outputs(parts: list[BatchOutputs | None]) -> BatchOutputs | None:
    """One batch's outputs from its shares' (in order): every value padded with zeros to the
    largest share's shape (padded positions hold exactly 0 anyway) and stacked along the
    batch axis; lengths joined."""
    if parts[0] is None:
        return None
    if len(parts) == 1:
        return parts[0]

    def joined(arrays: list[np.ndarray]) -> np.ndarray:
        shape = np.max([a.shape for a in arrays], axis=0)
        out = np.zeros((sum(len(a) for a in arrays), *shape[1:]), arrays[0].dtype)
        row = 0
        for a in arrays:
            out[(slice(row, row + len(a)), *(slice(0, n) for n in a.shape[1:]))] = a
            row += len(a)
        return out

    first = parts[0]
    return BatchOutputs(
        outputs={p: joined([q.outputs[p] for q in parts]) for p in first.outputs},
        targets={p: joined([q.targets[p] for q in parts]) for p in first.targets},
        lengths={k: np.concatenate([q.lengths[k] for q in parts]) for k in first.lengths},
        size=sum(q.size for q in parts))


class DataParallel:
    """The batch gradient on ``k`` Ray workers (see the module docstring), called as NetTrain's
    ``run.batch_gradient(run, state, batch) -> (mean loss, flat gradient, outputs)``."""

    def __init__(self, ray: Any, k: int):
        self.ray, self.k = ray, k
        self.actors: list[Any] = []
        self.pids: list[int | None] = [None] * k
        self._data: Any = None
        self._data_ref: Any = None
        self._data_key = 0

    # ------------------------------------------------------------------ start and stop
    def start(self, make_run: Callable[[], Any]) -> None:
        """Start the ``k`` actors, each making its run with ``make_run()``, and wait until all
        are ready."""
        ray = self.ray
        cpus = ray.cluster_resources().get("CPU", 0)
        if cpus < self.k:
            raise NetError(f"NetTrain: target_device=('CPU', {self.k}) needs {self.k} CPUs, but "
                           f"the Ray cluster connected to has {cpus:g}")
        actor = ray.remote(num_cpus=1, max_restarts=0, runtime_env=_runtime_env())(_Worker)
        make_ref = ray.put(make_run)
        for i in range(self.k):
            self.actors.append(actor.remote(make_ref, i))
        self._gather([a.pid.remote() for a in self.actors], None, timeout=START_TIMEOUT)

    def close(self) -> None:
        """Kill the workers (their CPUs go back to the cluster)."""
        for a in self.actors:
            with contextlib.suppress(Exception):
                self.ray.kill(a, no_restart=True)
        self.actors = []

    # ------------------------------------------------------------------ one batch
    def _data_reference(self, data: Any) -> tuple[int, Any]:
        """The object-store reference of ``data`` (put once per data set)."""
        if data is not self._data:
            self._data, self._data_ref = data, self.ray.put(data)
            self._data_key += 1
        return self._data_key, self._data_ref

    def __call__(self, run: Any, state: Any,
                 batch: tuple[Any, np.ndarray]) -> tuple[float, np.ndarray, BatchOutputs | None]:
        """The batch's mean loss, the gradient of its mean loss (in ``state.params.grad``)
        and its outputs for the measurements, computed share by share on the workers."""
        data, idx = batch
        params = state.params
        flat = self.ray.put(params.flat)
        rng_key = int(state.dropout_rng.integers(2 ** 63))
        key, ref = self._data_reference(data)
        shares = np.array_split(np.asarray(idx), min(self.k, len(idx)))
        refs = [a.gradient.remote(flat, key, [ref], share, len(idx), rng_key)
                for a, share in zip(self.actors, shares)]
        results = self._gather(refs, f"round {state.round}, batch {state.batch}")
        total = math.fsum(loss for loss, _, _ in results)
        if not math.isfinite(total):
            raise Diverged("loss")
        g = params.grad
        np.copyto(g, results[0][1])
        for _, part, _ in results[1:]:
            g += part
        return total / len(idx), g, merge_outputs([out for _, _, out in results])

    # ------------------------------------------------------------------ failures
    def _gather(self, refs: list, at: str | None, timeout: float | None = None) -> list:
        """The results of ``refs`` (one per worker, in worker order), the first failure as
        soon as it happens turned into a ``NetError`` naming the worker and ``at`` (where
        training was; None while starting)."""
        ray = self.ray
        slot = {ref: i for i, ref in enumerate(refs)}
        results: list[Any] = [None] * len(refs)
        pending = list(refs)
        while pending:
            done, pending = ray.wait(pending, num_returns=1, timeout=timeout)
            if not done:
                raise NetError(f"NetTrain: the {self.k} Ray workers did not start within "
                               f"{timeout:g} s (is the cluster busy?)")
            for ref in done:
                i = slot[ref]
                try:
                    results[i] = ray.get(ref)
                except ray.exceptions.RayError as e:
                    raise self._failure(i, e, at) from None
                if at is None:
                    self.pids[i] = results[i]
        return results

    def _failure(self, i: int, e: Exception, at: str | None) -> NetError:
        """The ``NetError`` for worker ``i``'s failure ``e`` (of the class of the worker's
        error when that is a ``NetError``)."""
        text = str(e)
        pid = self.pids[i] or next(iter(re.findall(r"\bpid[=:] ?(\d+)", text)), "unknown")
        who = f"worker {i + 1} of {self.k} (pid {pid})"
        at = "while starting" if at is None else f"at {at}"
        end = "Training stopped (no retries); the given net was not changed."
        cause = getattr(e, "cause", None)
        if isinstance(cause, BaseException):  # the worker raised
            kind = type(cause) if isinstance(cause, NetError) else NetError
            return kind(f"NetTrain: {who} failed {at}: {type(cause).__name__}: {cause}. {end}")
        if getattr(e, "actor_init_failed", False):  # its set-up raised (e.g. an import)
            lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
            return NetError(f"NetTrain: {who} failed {at}: {lines[-1] if lines else text}. "
                            f"The workers must be able to import netgraph and every module "
                            f"the net's layers come from. {end}")
        detail = re.search(r"Worker exit detail: (.*?\.)", text)
        reason = f"its process ended: {detail[1]}" if detail else \
            (text.strip().splitlines() or [type(e).__name__])[0]
        return NetError(f"NetTrain: {who} died {at} ({reason}). {end}")


@contextlib.contextmanager
def data_parallel(k: int, make_run: Callable[[], Any]) -> Iterator[DataParallel]:
    """``k`` Ray workers computing batch gradients for the duration of the ``with`` block:
    Ray connected (or started) first, the workers killed and a Ray NetTrain started shut
    down on leaving, also after an error or Ctrl-C."""
    ray = import_ray()
    with ray_connection(ray, k):
        pool = DataParallel(ray, k)
        try:
            pool.start(make_run)
            yield pool
        finally:
            pool.close()
