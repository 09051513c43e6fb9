"""NetTrain: learning, reproducibility, validation, divergence, optimizers, results."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import assert_same_net, contains3, net_snapshot
from tolerance import assert_close

from netgraph import (
    DropoutLayer,
    EmbeddingLayer,
    Index,
    LinearLayer,
    NetChain,
    NetError,
    NetExtract,
    NetInitialize,
    NetMapOperator,
    NetReplacePart,
    NetTrain,
    SoftmaxLayer,
    SummationLayer,
)
from netgraph.apply import collect_arrays
from netgraph.train import NetTrainResults
from netgraph.train.data import round_batches
from netgraph.train.params import ParamSet, clip_and_regularize

XOR_X = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=np.float32)
XOR_Y = np.array([0, 1, 1, 0])


def arrays_of(net):
    return {k: np.array(v) for k, v in collect_arrays(net, np.float32).items()}


def regression(n=64, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, 3)).astype(np.float32)
    return x, x @ np.array([[1.0], [-2.0], [0.5]], dtype=np.float32)




# ---------------------------------------------------------------- learning
def test_xor_mean_squared():
    net = NetChain([8, "Tanh", LinearLayer(())], Input=2)
    y = np.where(XOR_Y == 1, 1.0, -1.0).astype(np.float32)
    trained = NetTrain(net, (XOR_X, y), max_training_rounds=300, learning_rate=0.05, seed=1,
                       progress=False)
    pred = np.sign(trained(XOR_X))
    np.testing.assert_array_equal(pred, y)


def test_xor_softmax_cross_entropy():
    net = NetChain([8, "Tanh", 2, SoftmaxLayer()], Input=2)
    res = NetTrain(net, (XOR_X, XOR_Y), prop="All", max_training_rounds=300,
                   learning_rate=0.05, seed=0, progress=False)
    assert res.trained_net(XOR_X).argmax(-1).tolist() == XOR_Y.tolist()
    assert res.round_loss_list[-1] < 0.05 < res.round_loss_list[0]


def test_sequence_contains_index_3():
    """Embedding -> NetMapOperator(Linear) -> Summation -> Linear -> Softmax on varying-length
    sequences: at least 95% held-out accuracy."""
    rng = np.random.default_rng(0)
    x, y = contains3(600, rng)
    xv, yv = contains3(200, rng)
    net = NetChain([EmbeddingLayer(4, 6), NetMapOperator(LinearLayer(1)), SummationLayer(),
                    LinearLayer(2), SoftmaxLayer()], Input=("Varying", Index(6)))
    res = NetTrain(net, {"Input": x, "Output": y}, prop="All", validation_set=(xv, yv),
                   max_training_rounds=15, learning_rate=0.02, seed=0, progress=False)
    accuracy = (res.trained_net(xv).argmax(-1) == yv).mean()
    assert accuracy >= 0.95
    assert len(res.validation_loss_list) == 15


# ---------------------------------------------------------- reproducibility
def test_same_seed_bit_identical_and_net_untouched():
    net = NetChain([6, "Tanh", DropoutLayer(0.3), 2, SoftmaxLayer()], Input=2)
    x = np.random.default_rng(0).standard_normal((50, 2))
    y = (x[:, 0] > 0).astype(int)
    kw = dict(max_training_rounds=3, batch_size=8, seed=7, progress=False)
    a, b = NetTrain(net, (x, y), **kw), NetTrain(net, (x, y), **kw)
    assert_same_net(a, b)
    c = NetTrain(net, (x, y), **{**kw, "seed": 8})
    assert not np.array_equal(NetExtract(a, [0, "Weights"]), NetExtract(c, [0, "Weights"]))
    assert NetExtract(net, [0, "Weights"]) is None  # the user's net is not initialized
    # initialization is NetInitialize(net, seed=seed): zero rounds of change at lr -> 0
    init = NetInitialize(net, seed=7)
    tiny = NetTrain(net, (x, y), **kw, learning_rate=1e-30)
    np.testing.assert_array_equal(NetExtract(tiny, [0, "Weights"]),
                                  NetExtract(init, [0, "Weights"]))


def test_initialized_net_is_not_mutated_and_result_read_only():
    net = NetInitialize(NetChain([4, "Tanh", 1], Input=3), seed=0)
    before = net_snapshot(net)
    trained = NetTrain(net, regression(), max_training_rounds=2, seed=0, progress=False)
    assert_same_net(net, before)
    assert not np.array_equal(arrays_of(net)[(0, "Weights")], arrays_of(trained)[(0, "Weights")])
    w = trained.children()[0]._arrays()["Weights"]
    assert not w.flags.writeable


def test_input_shape_inferred_from_data():
    net = NetChain([4, "Tanh", 1])
    trained = NetTrain(net, regression(), max_training_rounds=1, seed=0, progress=False)
    assert NetExtract(trained, "Input") == (3,)


# --------------------------------------------------------------- validation
def test_validation_returns_lowest_validation_loss_round():
    """Training pulls w from 0 to 2 (targets 2x); validation targets are 1x, so the
    validation loss falls, then rises again: the best round is in the middle."""
    net = NetReplacePart(NetChain([LinearLayer(1, biases=False)], Input=1),
                         {(0, "Weights"): [[0.0]]})
    x = np.linspace(-1, 1, 32, dtype=np.float32)[:, None]
    res = NetTrain(net, (x, 2 * x), prop="All", validation_set=(x, x), method="SGD",
                   learning_rate=0.02, batch_size=8, max_training_rounds=12, seed=0,
                   progress=False)
    v = res.validation_loss_list
    best = int(np.argmin(v))
    assert 0 < best < len(v) - 1 and v[-1] > v[best]
    assert res.best_validation_round == best + 1
    # the validation losses (float32) against the same means in float64
    mse = np.mean((res.trained_net(x, dtype=np.float64) - x) ** 2)
    assert_close(min(v), mse, dtype=np.float32, reduction=32)
    final = np.mean((res.final_net(x, dtype=np.float64) - x) ** 2)
    assert_close(v[-1], final, dtype=np.float32, reduction=32)


def test_validation_holdout_fraction():
    res = NetTrain(NetChain([1], Input=3), regression(50), prop="All", validation_set=0.2,
                   max_training_rounds=2, batch_size=10, seed=0, progress=False)
    assert res.examples_processed == 2 * 40 and len(res.validation_loss_list) == 2


def test_too_high_learning_rate_later_round_worse_still_best_returned():
    x, y = regression(64)
    res = NetTrain(NetChain([LinearLayer(1)], Input=3), (x, y), prop="All",
                   validation_set=(x, y), method=("SGD", {"momentum": 0.0}), learning_rate=0.9,
                   batch_size=64, max_training_rounds=6, seed=0, progress=False)
    v = res.validation_loss_list
    assert v[-1] > 2 * min(v) and res.best_validation_round == int(np.argmin(v)) + 1
    got = np.mean((res.trained_net(x, dtype=np.float64) - y) ** 2)
    assert_close(min(v), got, dtype=np.float32, reduction=64 * 4)


# --------------------------------------------------------------- divergence
def test_diverging_run_raises_and_leaves_net_untouched():
    net = NetInitialize(NetChain([16, "Tanh", 1], Input=3), seed=0)
    before = net_snapshot(net)
    x, y = regression(64)
    with pytest.raises(NetError, match="learning_rate.*gradient_clipping"):
        NetTrain(net, (x, 1e3 * y), method="SGD", learning_rate=1e3, max_training_rounds=50,
                 seed=0, progress=False)
    assert_same_net(net, before)


def test_gradient_clipping_tames_the_same_run():
    net = NetChain([LinearLayer(1)], Input=3)
    x, y = regression(64)
    res = NetTrain(net, (x, y), prop="All", method=("SGD", {"momentum": 0.0}),
                   learning_rate=0.1, gradient_clipping=1.0, max_training_rounds=40,
                   seed=0, progress=False)
    assert np.isfinite(res.round_loss_list).all()
    assert res.round_loss_list[-1] < 0.01


def test_clip_and_regularize():
    g = np.array([3.0, 4.0], dtype=np.float32)
    p = np.array([1.0, -1.0], dtype=np.float32)
    norm = clip_and_regularize(g, p, 1.0, 0.5, np.empty(2, np.float32))
    assert_close(norm, 5.0, dtype=np.float32, reduction=2)
    assert_close(g, [0.6 + 0.5, 0.8 - 0.5], dtype=np.float32, reduction=2)


def test_l2_regularization_shrinks_weights():
    x, y = regression(64)
    kw = dict(max_training_rounds=20, batch_size=8, seed=0, progress=False, learning_rate=0.01)
    plain = NetTrain(NetChain([8, 1], Input=3), (x, 0 * y), **kw)
    l2 = NetTrain(NetChain([8, 1], Input=3), (x, 0 * y), **kw, l2_regularization=1.0)
    assert np.abs(NetExtract(l2, [0, "Weights"])).sum() < \
        0.5 * np.abs(NetExtract(plain, [0, "Weights"])).sum()


# --------------------------------------------------------------- optimizers
@pytest.mark.parametrize("method,lr", [
    ("ADAM", 0.05), ("SGD", 0.1), ("RMSProp", 0.01), (("SGD", {"nesterov": True}), 0.1),
    ({"name": "ADAM", "beta1": 0.8}, 0.05), ("StochasticGradientDescent", 0.1)])
def test_methods_learn_xor(method, lr):
    net = NetChain([8, "Tanh", 2, SoftmaxLayer()], Input=2)
    trained = NetTrain(net, (XOR_X, XOR_Y), method=method, learning_rate=lr,
                       max_training_rounds=400, seed=3, progress=False)
    assert trained(XOR_X).argmax(-1).tolist() == XOR_Y.tolist()


def test_param_set_views_and_snapshots():
    arrays = {("a",): np.ones((2, 3), np.float32), ("b",): np.arange(4, dtype=np.float32)}
    ps = ParamSet(arrays)
    assert ps.size == 10 and ps.arrays[("b",)].base is ps.flat
    snap = ps.snapshot()
    ps.flat += 1
    np.testing.assert_array_equal(ps.as_arrays(snap)[("b",)], np.arange(4))
    g = ps.load_grads({("a",): np.full((2, 3), 2.0)})
    np.testing.assert_array_equal(g, [2] * 6 + [0] * 4)


# ----------------------------------------------------------------- batching
def test_batches_reshuffled_and_bucketed():
    rng = np.random.default_rng(0)
    sizes = rng.integers(1, 100, 1000)
    r1 = round_batches(1000, 16, rng, sizes)
    r2 = round_batches(1000, 16, rng, sizes)
    for r in (r1, r2):
        assert sorted(np.concatenate(r).tolist()) == list(range(1000))
        padding = sum(len(b) * sizes[b].max() - sizes[b].sum() for b in r)
        assert padding < 0.1 * sizes.sum()
    assert [b.tolist() for b in r1] != [b.tolist() for b in r2]
    plain = round_batches(10, 4, rng)
    assert [len(b) for b in plain] == [4, 4, 2]


def test_batch_size_automatic_and_capped():
    x, y = regression(100)
    res = NetTrain(NetChain([1], Input=3), (x, y), prop="All", max_training_rounds=1,
                   progress=False, seed=0)
    assert res.batch_size == 64 and res.batches_per_round == 2
    res = NetTrain(NetChain([1], Input=3), (x[:5], y[:5]), prop="All", batch_size=1000,
                   max_training_rounds=2, progress=False, seed=0)
    assert res.batch_size == 5 and len(res.batch_loss_list) == 2


def test_round_loss_is_example_weighted_mean_of_batch_losses():
    x, y = regression(10)
    res = NetTrain(NetChain([1], Input=3), (x, y), prop="All", batch_size=4,
                   max_training_rounds=1, progress=False, seed=0)
    b = res.batch_loss_list
    assert len(b) == 3
    assert_close(res.round_loss_list[0], (4 * b[0] + 4 * b[1] + 2 * b[2]) / 10, dtype=np.float64,
                 reduction=3)


# ------------------------------------------------------------------ results
def test_results_object_and_properties():
    net = NetChain([4, "Tanh", 1], Input=3)
    data = regression(40)
    kw = dict(max_training_rounds=3, batch_size=16, seed=0, progress=False)
    res = NetTrain(net, data, prop="All", validation_set=data, **kw)
    assert isinstance(res, NetTrainResults)
    assert len(res.round_loss_list) == 3 == len(res.validation_loss_list) == res.total_rounds
    assert len(res.batch_loss_list) == 9 == res.total_batches
    assert res.total_training_time > 0 and res.mean_examples_per_second > 0
    assert res.examples_processed == 120 and res.reason_training_stopped == "MaxTrainingRounds"
    assert "rounds" in repr(res)
    assert NetTrain(net, data, prop="round_loss_list", **kw) == res.round_loss_list
    assert NetTrain(net, data, prop="RoundLossList", **kw) == res.round_loss_list
    assert NetTrain(net, data, prop="validation_loss_list", **kw) == []
    assert_same_net(NetTrain(net, data, prop="trained_net", **kw), NetTrain(net, data, **kw))
    assert isinstance(NetTrain(net, data, prop="total_training_time", **kw), float)


def test_loss_plot():
    pytest.importorskip("matplotlib")
    from matplotlib.figure import Figure

    res = NetTrain(NetChain([1], Input=3), regression(20), prop="All", validation_set=0.25,
                   max_training_rounds=3, batch_size=5, seed=0, progress=False)
    fig = res.loss_plot()
    assert isinstance(fig, Figure)
    labels = [line.get_label() for line in fig.axes[0].get_lines()]
    assert labels == ["batch loss", "round loss", "validation loss"]


def test_time_goal_stops_after_the_round_that_passes_it():
    res = NetTrain(NetChain([1], Input=3), regression(20), prop="All", time_goal=1e-9,
                   progress=False, seed=0)
    assert res.total_rounds == 1 and res.reason_training_stopped == "TimeGoal"
    res = NetTrain(NetChain([1], Input=3), regression(20), prop="All", time_goal=1e-9,
                   max_training_rounds=5, progress=False, seed=0)
    assert res.total_rounds == 1


def test_max_training_rounds_default_is_10():
    res = NetTrain(NetChain([1], Input=3), regression(20), prop="All", progress=False, seed=0)
    assert res.total_rounds == 10


def test_progress_bar_on_stderr(capsys):
    NetTrain(NetChain([1], Input=3), regression(20), max_training_rounds=2, seed=0)
    err = capsys.readouterr().err
    assert "NetTrain" in err and "round 2/2" in err and "loss" in err
    NetTrain(NetChain([1], Input=3), regression(20), max_training_rounds=2, seed=0,
             progress=False)
    captured = capsys.readouterr()
    assert captured.err == "" and captured.out == ""


@pytest.mark.parametrize("method", ["ADAM", "SGD", "RMSProp", ("SGD", {"nesterov": True})])
def test_threaded_chunks_give_bit_identical_updates(method, monkeypatch):
    import netgraph.train.optimizers as optimizers

    rng = np.random.default_rng(0)
    p0 = rng.standard_normal(1000).astype(np.float32)
    grads = rng.standard_normal((3, 1000)).astype(np.float32)
    results = []
    for chunk, workers in ((1 << 17, 1), (100, 4)):
        monkeypatch.setattr(optimizers, "PARALLEL_CHUNK", chunk)
        monkeypatch.setattr(optimizers, "_workers", lambda w=workers: w)
        opt = optimizers.make_optimizer(method, 0.01, 1000)
        assert len(opt._slices) == workers
        p = p0.copy()
        for g in grads:
            opt.step(p, g.copy())
        results.append(p)
    np.testing.assert_array_equal(results[0], results[1])
    assert not np.array_equal(results[0], p0)



def _spy_pools(monkeypatch, optimizers):
    """The thread pools the optimizers make from now on (a list, filled as they are made)."""
    made = []
    real = optimizers.ThreadPoolExecutor

    def spy(*args, **kwargs):
        made.append(real(*args, **kwargs))
        return made[-1]

    monkeypatch.setattr(optimizers, "ThreadPoolExecutor", spy)
    return made


def test_optimizer_threads_are_the_runs_and_end_with_it(monkeypatch):
    """A threaded update uses a pool of the optimizer's own (one for the run, a thread per
    chunk but the first), which NetTrain shuts down when training ends; the trained net is
    bit-identical to the unthreaded update's."""
    import netgraph.train.optimizers as optimizers

    net = NetChain([5, "Tanh", 2, SoftmaxLayer()], Input=3)  # 32 scalars
    x = np.random.default_rng(4).standard_normal((20, 3)).astype(np.float32)
    data, kw = (x, (x[:, 0] > 0).astype(int)), dict(max_training_rounds=2, batch_size=7, seed=1,
                                                    progress=False)
    plain = NetTrain(net, data, **kw)
    monkeypatch.setattr(optimizers, "PARALLEL_CHUNK", 10)
    monkeypatch.setattr(optimizers, "_workers", lambda: 3)
    made = _spy_pools(monkeypatch, optimizers)
    threaded = NetTrain(net, data, **kw)
    assert_same_net(plain, threaded)
    assert len(made) == 1 and made[0]._max_workers == 2
    assert made[0]._shutdown and not any(t.is_alive() for t in made[0]._threads)


@pytest.mark.skipif(not hasattr(__import__("os"), "fork"), reason="no fork on this platform")
def test_forked_child_continues_a_threaded_optimizer(monkeypatch):
    """An optimizer that has used its worker threads keeps stepping in a forked child (which
    has none of them: it makes its own) exactly as in the parent."""
    import multiprocessing as mp

    import netgraph.train.optimizers as optimizers

    monkeypatch.setattr(optimizers, "PARALLEL_CHUNK", 100)
    monkeypatch.setattr(optimizers, "_workers", lambda: 2)
    rng = np.random.default_rng(6)
    p, g1, g2 = (rng.standard_normal(1000).astype(np.float32) for _ in range(3))
    opt = optimizers.make_optimizer("ADAM", 0.01, 1000)
    opt.step(p, g1)  # the parent's worker thread is made
    ctx = mp.get_context("fork")
    queue = ctx.Queue()

    def child():
        opt.step(p, g2)
        queue.put(p.tobytes())

    proc = ctx.Process(target=child)
    proc.start()
    try:
        got = queue.get(timeout=60)
    finally:
        proc.join(5)
        if proc.is_alive():
            proc.kill()
    opt.step(p, g2)
    opt.close()
    assert got == p.tobytes()


def test_adam_matches_the_textbook_update():
    from netgraph.train.optimizers import make_optimizer

    rng = np.random.default_rng(1)
    p = rng.standard_normal(5).astype(np.float32)
    ref = p.astype(np.float64)
    m = v = np.zeros(5)
    opt = make_optimizer("ADAM", 0.1, 5)
    for t in range(1, 4):
        g = rng.standard_normal(5).astype(np.float32)
        opt.step(p, g)
        m = 0.9 * m + 0.1 * g
        v = 0.999 * v + 0.001 * g.astype(np.float64) ** 2
        ref -= 0.1 / (1 - 0.9 ** t) * m / (np.sqrt(v / (1 - 0.999 ** t)) + 1e-5)
    assert_close(p, ref, dtype=np.float32, reduction=3 * 4)  # 3 steps of a few roundings


def test_rmsprop_and_sgd_match_the_textbook_updates():
    from netgraph.train.optimizers import make_optimizer

    rng = np.random.default_rng(2)
    gs = rng.standard_normal((3, 4)).astype(np.float32)
    p = np.ones(4, np.float32)
    q = np.ones(4, np.float32)
    rms, sgd = make_optimizer("RMSProp", 0.01, 4), make_optimizer("SGD", 0.1, 4)
    ref_p, ref_q = np.ones(4), np.ones(4)
    v = u = w = np.zeros(4)
    for g in gs:
        rms.step(p, g)
        sgd.step(q, g)
        v = 0.95 * v + 0.05 * g.astype(np.float64) ** 2
        u = 0.9 * u + g / (np.sqrt(v) + 1e-8)
        ref_p -= 0.01 * u
        w = 0.9 * w + g
        ref_q -= 0.1 * w
    assert_close(p, ref_p, dtype=np.float32, reduction=3 * 4)  # 3 steps of a few roundings
    assert_close(q, ref_q, dtype=np.float32, reduction=3 * 2)
