"""Data-parallel NetTrain on Ray (SPEC "Training on several processes or machines").

Ray starts slowly (~10 s here), so the tests share one Ray "cluster the user connected to"
(a module-scoped ``ray.init(num_cpus=3)``) and only the first two start a local Ray of their
own (the path where NetTrain starts and shuts Ray down): they run first, before the shared
one exists.

* equality with one process (an MLP with clipping and L2 on uneven shares and a batch smaller
  than ``k``; a ragged-sequence GRU) up to float32 rounding of the gradient sum, for
  k = 1, 2, 3; validation losses and the best round as in one process;
* bit-identical runs for the same seed and ``k`` (with dropout);
* cleanup: a local Ray is shut down after training and after Ctrl-C, and none of its
  processes outlives NetTrain by more than a few seconds; a connected Ray stays connected and
  gets its CPUs back;
* failures: a worker that raises or dies (``os._exit``) is a ``NetError`` naming it and the
  round and batch, the net passed in unchanged; Ray not installed; bad ``target_device``.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time

import numpy as np
import pytest
from tolerance import assert_close

from netgraph import (
    DropoutLayer,
    EmbeddingLayer,
    GatedRecurrentLayer,
    Index,
    NetChain,
    NetError,
    NetInitialize,
    NetTrain,
    SequenceLastLayer,
    SoftmaxLayer,
)
from netgraph.apply import collect_arrays
from netgraph.extend import Layer, where

CLEANUP_SECONDS = 10  # "no Ray process it started outlives it by more than a few seconds"


# --------------------------------------------------------------------------- helpers
def arrays_of(net):
    return {k: np.array(v) for k, v in collect_arrays(net, np.float32).items()}


def mlp_data(n=23, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, 5)).astype(np.float32)
    return x, (x[:, 0] > 0).astype(int) + (x[:, 1] > 1).astype(int)


def mlp(*extra):
    return NetInitialize(NetChain([7, "Tanh", *extra, 3, SoftmaxLayer()], Input=5), seed=3)


def contains3(n, seed):
    """Varying-length index sequences (0..5, lengths 1..9), label 1 when index 3 occurs."""
    rng = np.random.default_rng(seed)
    xs, ys = [], []
    for _ in range(n):
        x = rng.integers(0, 6, int(rng.integers(1, 10)))
        if rng.random() < 0.5:
            x[x == 3] = 0
        xs.append(x)
        ys.append(int((x == 3).any()))
    return xs, np.array(ys)


def gru():
    return NetInitialize(NetChain([EmbeddingLayer(4, 6), GatedRecurrentLayer(5),
                                   SequenceLastLayer(), 2, SoftmaxLayer()],
                                  Input=("Varying", Index(6))), seed=4)


def assert_trained_alike(one, many, start):
    """The arrays ``many`` (k workers) equal ``one`` (one process) up to float32 rounding
    of the gradient sums: per element ``8 eps (|w| + steps * largest update)``."""
    A, B, W0 = arrays_of(one.trained_net), arrays_of(many.trained_net), arrays_of(start)
    update = max(float(np.abs(A[p] - W0[p]).max()) for p in A)
    assert update > 1e-3  # training moved the arrays
    for p in A:
        assert_close(B[p], A[p], dtype=np.float32, reduction=one.total_batches, scale=update,
                     what=str(p))
    assert_close(np.array(many.batch_loss_list), np.array(one.batch_loss_list),
                 dtype=np.float32, what="batch losses")


def descendants(root=None):
    """Pids of the living (not zombie) descendant processes of ``root`` (this process)."""
    parents = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if fields[0] != "Z":
                parents[int(entry)] = int(fields[1])
    found, frontier = set(), {root or os.getpid()}
    while frontier:
        frontier = {p for p, pp in parents.items() if pp in frontier} - found
        found |= frontier
    return found


def assert_no_new_processes(before):
    deadline = time.monotonic() + CLEANUP_SECONDS
    while (left := descendants() - before) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not left, f"processes left behind: {sorted(left)}"


def failing_layer(how, at_call=2, share=5):
    """A pass-through layer that raises ``RuntimeError("boom")`` (``how="raise"``) or ends its
    process (``"exit"``) in the worker whose ``at_call``-th training step holds ``share``
    examples. Made in a function, so that Ray pickles the class by value (the workers cannot
    import this test module)."""

    class Failing(Layer):
        calls = 0

        def __init__(self, **ports):
            super().__init__({}, ports)

        def rules(self, S, path, ports):
            S.unify(ports["Input"], ports["Output"], where(path, "Input"),
                    where(path, "Output"))
            return {}

        def forward(self, ins, arrays, ctx):
            x = ins["Input"]
            if ctx.training:
                type(self).calls += 1
                if type(self).calls == at_call and len(x) == share:
                    if how == "exit":
                        os._exit(7)
                    raise RuntimeError("boom")
            return {"Output": x}, lambda g: ({"Input": g["Output"]}, {})

    return Failing()


# --------------------------------------------------------------------------- no Ray needed
@pytest.mark.parametrize("device", [("CPU", 0), ("CPU", -2), ("CPU", 1.5), ("CPU", True),
                                    ("GPU", 2), ("CPU", 2, 3), "GPU"])
def test_bad_target_device_is_a_net_error(device):
    x, y = mlp_data()
    with pytest.raises(NetError, match="target_device"):
        NetTrain(mlp(), (x, y), target_device=device, progress=False)


def test_ray_not_installed_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` raises ImportError
    x, y = mlp_data()
    with pytest.raises(NetError, match=r'pip install "netgraph\[distributed\]"'):
        NetTrain(mlp(), (x, y), target_device=("CPU", 2), progress=False)


# --------------------------------------------------------------------------- a local Ray
# These two run before the shared Ray exists: NetTrain starts a local Ray and shuts it down.
def test_local_ray_is_started_and_shut_down():
    ray = pytest.importorskip("ray")
    assert not ray.is_initialized()
    before = descendants()
    x, y = mlp_data()
    one = NetTrain(mlp(), (x, y), batch_size=11, max_training_rounds=3, seed=1, progress=False,
                   prop="All")
    many = NetTrain(mlp(), (x, y), batch_size=11, max_training_rounds=3, seed=1,
                    progress=False, prop="All", target_device=("CPU", 2))
    assert not ray.is_initialized()
    assert_no_new_processes(before)
    assert_trained_alike(one, many, mlp())


def test_local_ray_is_shut_down_after_ctrl_c(monkeypatch):
    ray = pytest.importorskip("ray")
    import netgraph.train.distributed as distributed

    assert not ray.is_initialized()
    before = descendants()
    training = threading.Event()
    gradient = distributed.DataParallel.__call__

    def marked(self, *args):  # training runs on the workers
        training.set()
        return gradient(self, *args)

    def ctrl_c():
        if training.wait(120):
            time.sleep(0.5)
            os.kill(os.getpid(), signal.SIGINT)

    monkeypatch.setattr(distributed.DataParallel, "__call__", marked)
    threading.Thread(target=ctrl_c, daemon=True).start()
    x, y = mlp_data(2000)
    with pytest.warns(UserWarning, match="interrupted"):
        result = NetTrain(mlp(), (x, y), batch_size=4, max_training_rounds=50, seed=1,
                          progress=False, prop="All", target_device=("CPU", 2))
    assert training.is_set()
    assert result.reason_training_stopped == "ManualStop"
    assert 0 < result.total_batches < 50 * 500
    assert not ray.is_initialized()
    assert_no_new_processes(before)


# --------------------------------------------------------------------------- a connected Ray
@pytest.fixture(scope="module")
def cluster():
    """The Ray the user connected to (3 CPUs), shared by the tests below."""
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=3, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


def assert_cpus_released(ray):
    deadline = time.monotonic() + CLEANUP_SECONDS
    while ray.available_resources().get("CPU", 0) < 3 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert ray.available_resources().get("CPU", 0) == 3


@pytest.mark.parametrize("k", [1, 3])
def test_mlp_equals_one_process(cluster, k):
    """23 examples in batches of 11: shares 4/4/3 (6/5 in the local Ray test), and a last
    batch of one example (workers idle); clipping and L2 act on the summed gradient (per worker they would not
    give one process's arrays)."""
    x, y = mlp_data()
    opts = dict(batch_size=11, max_training_rounds=4, seed=1, progress=False, prop="All",
                gradient_clipping=0.05, l2_regularization=0.1)
    one = NetTrain(mlp(), (x, y), **opts)
    many = NetTrain(mlp(), (x, y), target_device=("CPU", k), **opts)
    assert_trained_alike(one, many, mlp())
    assert cluster.is_initialized()  # a connected Ray stays connected
    assert_cpus_released(cluster)


def test_ragged_gru_equals_one_process_with_validation(cluster):
    xs, ys = contains3(61, seed=5)
    vx, vy = contains3(17, seed=6)
    opts = dict(batch_size=13, max_training_rounds=5, seed=2, progress=False, prop="All",
                validation_set=(vx, vy))
    one = NetTrain(gru(), (xs, ys), **opts)
    many = NetTrain(gru(), (xs, ys), target_device=("CPU", 2), **opts)
    assert_trained_alike(one, many, gru())
    assert_close(np.array(many.validation_loss_list), np.array(one.validation_loss_list),
                 dtype=np.float32, what="validation losses")
    assert many.best_validation_round == one.best_validation_round
    assert many.total_batches == one.total_batches == 5 * 5


def test_same_seed_and_k_are_bit_identical_with_dropout(cluster):
    x, y = mlp_data(40)
    opts = dict(batch_size=9, max_training_rounds=3, progress=False, prop="All",
                target_device=("CPU", 2))
    net = mlp(DropoutLayer(0.5))
    a, b = (NetTrain(net, (x, y), seed=7, **opts) for _ in range(2))
    A, B = arrays_of(a.trained_net), arrays_of(b.trained_net)
    for p in A:
        np.testing.assert_array_equal(A[p], B[p], err_msg=str(p))
    assert a.batch_loss_list == b.batch_loss_list


@pytest.mark.parametrize("how, what", [("raise", "failed"), ("exit", "died")])
def test_failing_worker_is_a_net_error_naming_it(cluster, how, what):
    """The worker holding 5 of a batch's 11 examples (worker 2 of 2) fails in its second
    step: round 1, batch 2. No retries; the net is unchanged; the workers' CPUs come back."""
    x, y = mlp_data()
    net = NetInitialize(NetChain([7, "Tanh", failing_layer(how), 3, SoftmaxLayer()],
                                 Input=5), seed=3)
    before = arrays_of(net)
    with pytest.raises(NetError) as e:
        NetTrain(net, (x, y), batch_size=11, max_training_rounds=3, seed=1, progress=False,
                 target_device=("CPU", 2))
    msg = str(e.value)
    assert "worker 2 of 2 (pid " in msg and f") {what} at round 1, batch 2" in msg, msg
    pid = int(msg.split("(pid ")[1].split(")")[0])
    assert pid != os.getpid()
    if what == "failed":
        assert "RuntimeError: boom" in msg
    after = arrays_of(net)
    for p in before:
        np.testing.assert_array_equal(after[p], before[p])
    assert cluster.is_initialized()
    assert_cpus_released(cluster)
