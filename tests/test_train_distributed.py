"""Data-parallel NetTrain on Ray (SPEC "Training on several processes or machines").

Ray starts slowly (~10 s here), so the tests share one Ray "cluster the user connected to"
(a module-scoped ``ray.init(address="local", num_cpus=3)``) and only the first test starts a
local Ray of its own (the path where NetTrain starts and shuts Ray down): it runs before the
shared one exists.

* equality with one process up to float32 rounding of the gradient sums: an MLP with
  clipping, L2, a schedule and multipliers (frozen arrays bit-identical) on shares 4/4/3 and
  a batch smaller than ``k``; a ragged-sequence GRU with validation; measurements, early
  stopping, callbacks and checkpoints of a sequence tagger; resuming across devices; data
  functions; k = 1, 2, 3;
* bit-identical runs for the same seed and ``k`` (with dropout);
* cleanup: a local Ray is shut down after training stopped by Ctrl-C, and none of its
  processes outlives NetTrain by more than a few seconds; a connected Ray stays connected and
  gets its CPUs back; which Ray is used (connected, ``RAY_ADDRESS``, a new local one);
* failures: a worker that raises or dies (``os._exit``) is a ``NetError`` naming it and the
  round and batch, the net passed in unchanged; divergence as in one process; too few CPUs;
  Ray not installed; bad ``target_device``.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time

import helpers
import numpy as np
import pytest
from tolerance import assert_close
from train_cases import tagger, tagging

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
from netgraph.train.distributed import merge_outputs, ray_connection
from netgraph.train.measure import BatchOutputs

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
    """Varying-length index sequences, label 1 when index 3 occurs (helpers.contains3)."""
    return helpers.contains3(n, np.random.default_rng(seed))


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


class FakeRay:
    """Records what ``ray_connection`` asks of Ray."""

    def __init__(self, initialized):
        self.initialized, self.calls = initialized, []

    def is_initialized(self):
        return self.initialized

    def init(self, **options):
        self.calls.append(("init", options))
        self.initialized = True

    def shutdown(self):
        self.calls.append(("shutdown", {}))
        self.initialized = False


def test_ray_connection_uses_the_connected_ray_else_ray_address_else_a_new_local_one(
        monkeypatch):
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    connected = FakeRay(True)
    with ray_connection(connected, 2):
        pass
    assert connected.calls == []  # left connected, never shut down
    monkeypatch.setenv("RAY_ADDRESS", "10.1.2.3:6379")
    remote = FakeRay(False)
    with pytest.raises(RuntimeError), ray_connection(remote, 2):
        raise RuntimeError("training failed")
    (what, options), (last, _) = remote.calls
    assert what == "init" and "num_cpus" not in options and "address" not in options
    assert last == "shutdown"  # disconnected again, also after an error
    monkeypatch.delenv("RAY_ADDRESS")
    local = FakeRay(False)
    with ray_connection(local, 3):
        assert local.calls[0][1]["num_cpus"] == 3
        assert local.calls[0][1]["address"] == "local"  # not a `ray start` cluster
    assert local.calls[-1][0] == "shutdown" and not local.initialized
    failing = FakeRay(False)
    failing.init = lambda **options: (_ for _ in ()).throw(ConnectionError("no cluster"))
    with pytest.raises(NetError, match=r"could not start a local Ray with 2 CPUs: "
                                       r"ConnectionError: no cluster"):
        with ray_connection(failing, 2):
            pass
    assert failing.calls == [("shutdown", {})]


# --------------------------------------------------------------------------- a local Ray
# This one runs before the shared Ray exists: NetTrain starts a local Ray and shuts it down.
def test_local_ray_is_started_and_shut_down_after_ctrl_c(monkeypatch, capfd):
    """NetTrain starts a local Ray; a Ctrl-C in round 2 stops training after its batch
    (ManualStop); Ray is shut down and none of its processes outlives NetTrain; starting it
    wrote nothing to stdout (progress="Print" prints only its round lines)."""
    ray = pytest.importorskip("ray")
    import netgraph.train.distributed as distributed

    assert not ray.is_initialized()
    before = descendants()
    second_round = threading.Event()
    gradient = distributed.DataParallel.__call__

    def marked(self, run, state, batch):  # training runs on the workers
        if state.round == 2:
            second_round.set()
        return gradient(self, run, state, batch)

    def ctrl_c():
        if second_round.wait(180):
            time.sleep(0.2)
            os.kill(os.getpid(), signal.SIGINT)

    monkeypatch.setattr(distributed.DataParallel, "__call__", marked)
    threading.Thread(target=ctrl_c, daemon=True).start()
    x, y = mlp_data(600)
    with pytest.warns(UserWarning, match="interrupted"):
        result = NetTrain(mlp(), (x, y), batch_size=4, max_training_rounds=50, seed=1,
                          progress="Print", prop="All", target_device=("CPU", 2))
    assert second_round.is_set()
    assert result.reason_training_stopped == "ManualStop"
    assert result.total_rounds >= 1 and result.total_batches < 50 * 150
    printed = capfd.readouterr().out.splitlines()
    assert len(printed) == result.total_rounds, printed
    assert all(line.startswith("round") for line in printed), printed
    assert not ray.is_initialized()
    assert_no_new_processes(before)


# --------------------------------------------------------------------------- a connected Ray
@pytest.fixture(scope="module")
def cluster():
    """The Ray the user connected to (3 CPUs), shared by the tests below."""
    ray = pytest.importorskip("ray")
    ray.init(address="local", num_cpus=3, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


def assert_cpus_released(ray):
    deadline = time.monotonic() + CLEANUP_SECONDS
    while ray.available_resources().get("CPU", 0) < 3 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert ray.available_resources().get("CPU", 0) == 3


def test_mlp_equals_one_process(cluster):
    """23 examples in batches of 11: shares 4/4/3 (6/5 in the local Ray test), and a last
    batch of one example (workers idle); clipping, L2, a schedule and multipliers act on the
    summed gradient (per worker, clipping would not give one process's arrays); a frozen
    layer comes back bit-identical."""
    x, y = mlp_data()
    opts = dict(batch_size=11, max_training_rounds=4, seed=1, progress=False, prop="All",
                gradient_clipping=0.05, l2_regularization=0.1,
                method=("ADAM", {"learning_rate_schedule": "Cosine", "warmup_batches": 3}),
                learning_rate_multipliers={0: 0, 2: 0.5})
    one = NetTrain(mlp(), (x, y), **opts)
    many = NetTrain(mlp(), (x, y), target_device=("CPU", 3), **opts)
    assert_trained_alike(one, many, mlp())
    assert many.learning_rate_list == one.learning_rate_list
    frozen = {p: a for p, a in arrays_of(mlp()).items() if p[0] == 0}
    assert frozen and all(np.array_equal(arrays_of(many.trained_net)[p], a)
                          for p, a in frozen.items())
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


def test_divergence_on_workers_is_reported_as_in_one_process(cluster):
    """A worker's non-finite loss comes back as NaN; the calling process raises the one
    process's NetError (same round, batch and advice)."""
    x, _ = mlp_data()
    net = NetInitialize(NetChain([7, 2], Input=5), seed=3)  # a regression: squared errors
    opts = dict(batch_size=11, method="SGD", learning_rate=1e12, seed=1, progress=False,
                max_training_rounds=3)
    messages = []
    for device in ("CPU", ("CPU", 2)):
        with pytest.raises(NetError, match="diverged at round 1, batch 2") as e:
            NetTrain(net, (x, 3 * x[:, :2]), target_device=device, **opts)
        messages.append(str(e.value))
    assert messages[0] == messages[1]


def test_more_workers_than_the_cluster_has_cpus(cluster):
    x, y = mlp_data()
    with pytest.raises(NetError, match=r"needs 4 CPUs, but the Ray cluster connected to has 3"):
        NetTrain(mlp(), (x, y), progress=False, target_device=("CPU", 4))


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


def test_measurements_callbacks_and_stopping_as_in_one_process(cluster, tmp_path):
    """Per-position tagging (varying lengths: the shares' outputs are padded to different
    lengths and joined): ErrorRate, SequenceAccuracy and a custom measurement, early
    stopping on the validation ErrorRate, a callback and checkpoints. The user functions
    close over a lock, so they cannot be pickled: they run in this process."""
    lock = threading.Lock()
    calls = {}

    def first_right(outputs, targets):
        with lock:
            return float(np.mean([np.argmax(o[0]) == t[0] for o, t in zip(outputs, targets)]))

    def results(device):
        seen = calls.setdefault(device, [])

        def callback(info):
            with lock:
                seen.append((info["Round"], info["Batch"], info["RoundLoss"],
                             info["Measurements"].get("ValidationErrorRate")))

        return NetTrain(tagger(), tagging(45, seed=1), batch_size=8, max_training_rounds=8,
                        seed=3, progress=False, prop="All", validation_set=tagging(13, seed=2),
                        training_progress_measurements=["ErrorRate", "SequenceAccuracy",
                                                        ("FirstRight", first_right)],
                        training_stopping_criterion={"criterion": "ErrorRate", "patience": 1,
                                                     "improvement": 0.02},
                        training_progress_function=callback,
                        training_progress_checkpointing=("Directory", tmp_path / str(device)),
                        learning_rate=0.05, target_device=device)

    one, many = results("CPU"), results(("CPU", 2))
    assert many.reason_training_stopped == one.reason_training_stopped
    assert many.total_rounds == one.total_rounds < 8  # stopped early
    for got, want in [(many.round_measurements_list, one.round_measurements_list),
                      (many.validation_measurements_list, one.validation_measurements_list)]:
        assert [list(g) for g in got] == [list(w) for w in want]
        for g, w in zip(got, want):
            assert_close(np.array(list(g.values())), np.array(list(w.values())),
                         dtype=np.float32, what="measurements")
    assert len(calls[("CPU", 2)]) == len(calls["CPU"]) == one.total_rounds
    for g, w in zip(calls[("CPU", 2)], calls["CPU"]):
        assert g[:2] == w[:2]
        assert_close(np.array(g[2:], float), np.array(w[2:], float), dtype=np.float32)
    names = sorted(os.listdir(tmp_path / "CPU"))
    assert sorted(os.listdir(tmp_path / str(("CPU", 2)))) == names and len(names) == \
        one.total_rounds


def test_checkpoints_resume_across_devices(cluster, tmp_path):
    """A k-worker checkpoint resumes in one process and vice versa, and gives the arrays of
    an uninterrupted one-process run (up to the float32 rounding of the gradient sums)."""
    data = tagging(40, seed=4)
    opts = dict(batch_size=8, seed=5, progress=False, prop="All", learning_rate=0.02)
    start = NetInitialize(tagger(), seed=5)
    straight = NetTrain(tagger(), data, max_training_rounds=4, **opts)
    for first, then in [(("CPU", 3), "CPU"), ("CPU", ("CPU", 1))]:
        folder = tmp_path / str(first)
        NetTrain(tagger(), data, max_training_rounds=2, target_device=first,
                 training_progress_checkpointing=("Directory", folder), **opts)
        resumed = NetTrain(tagger(), data, max_training_rounds=4, resume=str(folder),
                           target_device=then, **opts)
        assert resumed.total_rounds == 4
        assert_trained_alike(straight, resumed, start)


def test_data_function_as_in_one_process(cluster):
    """Batches made by a data function (called here, once per batch; it closes over a
    generator, which cannot be pickled) are put to the object store once each."""
    x, y = mlp_data(30)

    def make():
        order = iter(range(10 ** 6))

        def batches(info):
            start = next(order) * 7 % 20
            n = info["BatchSize"]
            return x[start:start + n], y[start:start + n]

        return batches

    opts = dict(round_length=17, batch_size=6, max_training_rounds=3, seed=2, progress=False,
                prop="All")
    one = NetTrain(mlp(), make(), **opts)
    many = NetTrain(mlp(), make(), target_device=("CPU", 2), **opts)
    assert many.total_batches == one.total_batches == 9
    assert_trained_alike(one, many, mlp())


def test_merge_outputs_joins_shares_padded_differently():
    """Shares of a batch of sequences (lengths 2, 4 | 3) padded to their own lengths join
    into the batch padded to 4, with zeros at padded positions."""
    rng = np.random.default_rng(0)
    lengths = np.array([2, 4, 3])
    whole = rng.standard_normal((3, 4, 5)).astype(np.float32)
    whole[np.arange(4)[None, :] >= lengths[:, None]] = 0
    target = np.where(np.arange(4)[None, :] < lengths[:, None], 1 + np.arange(3)[:, None], 0)
    key = ("len", 1)
    parts = [BatchOutputs({"Output": whole[:2]}, {"Output": target[:2]}, {key: lengths[:2]}, 2),
             BatchOutputs({"Output": whole[2:, :3]}, {"Output": target[2:, :3]},
                          {key: lengths[2:]}, 1)]
    joined = merge_outputs(parts)
    np.testing.assert_array_equal(joined.outputs["Output"], whole)
    np.testing.assert_array_equal(joined.targets["Output"], target)
    np.testing.assert_array_equal(joined.lengths[key], lengths)
    assert joined.size == 3
    assert merge_outputs([None, None]) is None
