"""The compile-time fusion pass: a SoftmaxLayer (over its class axis) feeding a
CrossEntropyLossLayer ("Index", "Probabilities"), or a logistic sigmoid feeding "Binary", is
one fused step in every compile — applying, gradcheck and NetTrain alike. Fused and unfused
(``with fusion(False)``) values and gradients agree to rounding; fan-out of the probabilities,
varying lengths and the placement of the fused step are covered."""

import numpy as np
import pytest
from helpers import arrays64, randomized
from tolerance import assert_close

from netgraph import (
    CrossEntropyLossLayer,
    ElementwiseLayer,
    Index,
    LinearLayer,
    MeanSquaredLossLayer,
    NetArrayGradient,
    NetChain,
    NetExtract,
    NetGraph,
    NetMapOperator,
    NetPort,
    NetPortGradient,
    NetReplacePart,
    NetTrain,
    SoftmaxLayer,
    check_padding,
    gradcheck,
)
from netgraph.compile import compile_net, fusion
from netgraph.layers.loss import FusedCrossEntropy

rng = np.random.default_rng(11)
LENS = [4, 1, 6]  # pairwise distinct, so a swapped axis fails


def _fused_parts(net):
    """``(producer type, loss form)`` of every fused step of ``net``'s plan."""
    return [(type(s.parts[0].layer).__name__, s.parts[1].layer.params.form)
            for s in compile_net(net).steps if s.parts]


def _both(net, data, what, dtype=np.float64):
    """``what`` of ``net`` on ``data`` compiled with fusion, and without."""
    fused = net(data, what, dtype=dtype)
    with fusion(False):
        plain = net(data, what, dtype=dtype)
    return fused, plain


def _classifier(act, loss, c=5, k=3):
    """Linear -> act -> loss, randomized, with a (k,) Input."""
    return randomized(NetGraph({"lin": LinearLayer(c), "act": act, "loss": loss},
                               [("lin", "act", "loss")], Input=k))


def _targets(form, shape, c=5):
    if form == "Index":
        return rng.integers(0, c, size=shape)
    if form == "Probabilities":
        t = rng.uniform(0.1, 1.0, size=shape + (c,))
        return t / t.sum(-1, keepdims=True)
    return rng.uniform(0, 1, size=shape + (c,))


FORMS = [(SoftmaxLayer, "Index"), (SoftmaxLayer, "Probabilities"),
         (lambda: ElementwiseLayer("LogisticSigmoid"), "Binary")]


# ------------------------------------------------------------------------- the plan
def test_the_pair_is_one_step_with_both_outputs():
    net = _classifier(SoftmaxLayer(), CrossEntropyLossLayer("Index"))
    plan = compile_net(net)
    with fusion(False):
        plain = compile_net(net)
    assert [s.path for s in plain.steps] == [("lin",), ("act",), ("loss",)]
    assert len(plan.steps) == 2 and plan.steps[0].path == ("lin",)
    step = plan.steps[1]
    assert isinstance(step.layer, FusedCrossEntropy)
    assert [s.path for s in step.parts] == [("act",), ("loss",)]
    assert set(step.ins) == {"Input", "Target"} and set(step.outs) == {"Output", "Loss"}
    # the fused step writes the slots the two steps wrote, so interior values stay readable
    assert step.outs["Output"].slot == plain.steps[1].outs["Output"].slot
    assert step.outs["Loss"].slot == plain.steps[2].outs["Loss"].slot


def test_which_pairs_fuse():
    assert _fused_parts(_classifier(SoftmaxLayer(), CrossEntropyLossLayer("Index"))) == [
        ("SoftmaxLayer", "Index")]
    assert _fused_parts(_classifier(SoftmaxLayer(), CrossEntropyLossLayer("Probabilities"))) == [
        ("SoftmaxLayer", "Probabilities")]
    sigmoid = ElementwiseLayer("LogisticSigmoid")
    assert _fused_parts(_classifier(sigmoid, CrossEntropyLossLayer("Binary"))) == [
        ("ElementwiseLayer", "Binary")]
    # a sigmoid's values are no class distribution, a softmax's no independent probabilities
    assert _fused_parts(_classifier(sigmoid, CrossEntropyLossLayer("Probabilities"))) == []
    assert _fused_parts(_classifier(SoftmaxLayer(), CrossEntropyLossLayer("Binary"))) == []
    # a softmax over the first of two axes is not over the loss's class axis
    net = randomized(NetGraph({"sm": SoftmaxLayer(0), "loss": CrossEntropyLossLayer("Index")},
                              [("sm", "loss")], Input=(4, 3)))
    assert _fused_parts(net) == []
    z, t = rng.standard_normal((2, 4, 3)), rng.integers(0, 3, size=(2, 4))
    p = np.exp(z) / np.exp(z).sum(1, keepdims=True)
    want = -np.log(np.take_along_axis(p, t[..., None], -1)[..., 0]).mean(-1)
    assert_close(net({"Input": z, "Target": t}, dtype=np.float64), want, dtype=np.float64,
                 reduction=4 * 3)


# ------------------------------------------------------------- values and gradients
@pytest.mark.parametrize("act, form", FORMS)
def test_fused_values_and_gradients_equal_unfused(act, form):
    net = _classifier(act(), CrossEntropyLossLayer(form))
    data = {"Input": rng.standard_normal((7, 3)), "Target": _targets(form, (7,))}
    what = ["Loss", NetPortGradient("Input"), NetArrayGradient(["lin", "Weights"]),
            NetArrayGradient(["lin", "Biases"])]
    if form != "Index":
        what.append(NetPortGradient("Target"))
    fused, plain = _both(net, data, what)
    for got, want in zip(fused, plain, strict=True):
        assert_close(got, want, dtype=np.float64, reduction=7 * 5 * 3)
    # float32, fused, against the float64 unfused reference
    for got, want in zip(net(data, what), plain, strict=True):
        assert_close(got, want, dtype=np.float32, reduction=7 * 5 * 3)


def test_the_fused_loss_is_the_log_softmax_loss():
    net = _classifier(SoftmaxLayer(), CrossEntropyLossLayer("Index"))
    x, t = rng.standard_normal((7, 3)), rng.integers(0, 5, size=7)
    W, b = (arrays64(net)[("lin", n)] for n in ("Weights", "Biases"))
    z = x @ W.T + b
    logp = z - z.max(-1, keepdims=True)
    logp -= np.log(np.exp(logp).sum(-1, keepdims=True))
    loss, gx = net({"Input": x, "Target": t}, ["Loss", NetPortGradient("Input")],
                   dtype=np.float64)
    assert_close(loss, -logp[np.arange(7), t], dtype=np.float64, reduction=5 * 3)
    dz = np.exp(logp) - np.eye(5)[t]  # p - onehot, for a unit seed of each example's loss
    assert_close(gx, dz @ W, dtype=np.float64, reduction=5 * 3)


def test_varying_length_sequences():
    net = randomized(NetGraph({"map": NetMapOperator(LinearLayer(5)), "sm": SoftmaxLayer(),
                               "loss": CrossEntropyLossLayer("Index")},
                              [("map", "sm", "loss")], Input=("Varying", 3)))
    assert net.port_shape("Target") == ("Varying", Index(5))
    assert _fused_parts(net) == [("SoftmaxLayer", "Index")]
    xs = [rng.standard_normal((n, 3)) for n in LENS]
    ts = [rng.integers(0, 5, size=n) for n in LENS]
    data = {"Input": xs, "Target": ts}
    what = ["Loss", NetPortGradient("Input"), NetArrayGradient(["map", "Net", "Weights"]),
            NetPort("sm", "Output")]
    fused, plain = _both(net, data, what)
    assert_close(fused[0], plain[0], dtype=np.float64, reduction=max(LENS) * 5 * 3)
    for got, want in zip(fused[1], plain[1], strict=True):  # per example, true length
        assert got.shape == want.shape
        assert_close(got, want, dtype=np.float64, reduction=5 * 3)
    assert_close(fused[2], plain[2], dtype=np.float64, reduction=sum(LENS) * 5 * 3)
    for got, want in zip(fused[3], plain[3], strict=True):  # the probabilities, bit for bit
        np.testing.assert_array_equal(got, want)
    # batch == per example, and padding content never matters (check_padding runs fused)
    for k in range(3):
        one = net({"Input": xs[k], "Target": ts[k]}, dtype=np.float64)
        assert_close(one, fused[0][k], dtype=np.float64, reduction=max(LENS) * 5 * 3)
    assert check_padding(net, data).ok


def test_fan_out_of_the_probabilities():
    """The softmax output feeds the loss, another layer and a graph output: the gradients
    of all three meet in the logits."""
    net = randomized(NetGraph(
        {"lin": LinearLayer(5), "sm": SoftmaxLayer(), "loss": CrossEntropyLossLayer("Index"),
         "side": LinearLayer(2)},
        [("lin", "sm", "loss"), ("sm", "side"), ("sm", NetPort("Probs"))], Input=3))
    assert sorted(net.output_ports) == ["Loss", "Output", "Probs"]
    assert _fused_parts(net) == [("SoftmaxLayer", "Index")]
    data = {"Input": rng.standard_normal((6, 3)), "Target": rng.integers(0, 5, size=6)}
    what = ["Loss", "Output", "Probs", NetPortGradient("Input"),
            NetArrayGradient(["lin", "Weights"]), NetArrayGradient(["side", "Weights"])]
    fused, plain = _both(net, data, what)
    for got, want in zip(fused, plain, strict=True):
        assert_close(got, want, dtype=np.float64, reduction=6 * 5 * 3)
    # seeding only the side output: the fused step sends the softmax gradient alone
    seeded = {**data, NetPortGradient("Output"): rng.standard_normal((6, 2))}
    fused, plain = _both(net, seeded, [NetPortGradient("Input")])
    assert_close(fused[0], plain[0], dtype=np.float64, reduction=5 * 3 * 2)
    assert np.abs(plain[0]).max() > 1e-3  # the check is not vacuous


def test_a_target_computed_after_the_softmax():
    """The loss's Target is made by a step that runs after the softmax: the fused step runs
    where the loss ran. A step in between that reads the probabilities *and* makes the
    Target leaves the pair unfused."""
    net = randomized(NetGraph(
        {"sm": SoftmaxLayer(), "t": SoftmaxLayer(), "loss": CrossEntropyLossLayer("Probabilities")},
        [(NetPort("Input"), "sm", NetPort("loss", "Input")),
         (NetPort("T"), "t", NetPort("loss", "Target"))], Input=5, T=5))
    plan = compile_net(net)
    with fusion(False):
        order = [s.path for s in compile_net(net).steps]
    assert order == [("sm",), ("t",), ("loss",)]
    assert [s.path for s in plan.steps] == [("t",), ("sm",)] and plan.steps[1].parts
    data = {"Input": rng.standard_normal((4, 5)), "T": rng.standard_normal((4, 5))}
    what = ["Loss", NetPortGradient("Input"), NetPortGradient("T")]
    for got, want in zip(*_both(net, data, what), strict=True):
        assert_close(got, want, dtype=np.float64, reduction=5 * 5)
    tangled = randomized(NetGraph(
        {"sm": SoftmaxLayer(), "t": SoftmaxLayer(), "loss": CrossEntropyLossLayer("Probabilities")},
        [("sm", NetPort("loss", "Input")), ("sm", "t", NetPort("loss", "Target"))], Input=5))
    assert _fused_parts(tangled) == []


@pytest.fixture
def fused_runs(monkeypatch):
    """A list that gets one entry per run of a fused step's forward."""
    calls = []
    original = FusedCrossEntropy.forward

    def spy(self, ins, arrays, ctx):
        calls.append(ctx.dtype)
        return original(self, ins, arrays, ctx)

    monkeypatch.setattr(FusedCrossEntropy, "forward", spy)
    return calls


# ---------------------------------------------------------------------- gradcheck
def test_gradcheck_runs_the_fused_step(fused_runs):
    calls = fused_runs
    for act, form in FORMS:
        net = _classifier(act(), CrossEntropyLossLayer(form))
        data = {"Input": rng.standard_normal((3, 3)), "Target": _targets(form, (3,))}
        before = len(calls)
        report = gradcheck(net, data)
        assert report.ok and NetArrayGradient(("lin", "Weights")) in report
        assert len(calls) - before > 2  # the analytic run and every central difference


# ------------------------------------------------------------------------ NetTrain
def _sgd_step(net, data, **kw):
    n = len(next(iter(data.values())))
    return NetTrain(net, data, method=("SGD", {"momentum": 0}), learning_rate=0.5,
                    max_training_rounds=1, batch_size=n, progress=False, seed=0, prop="All",
                    **kw)


def test_one_sgd_step_fused_equals_unfused_and_the_hand_computed_step(fused_runs):
    net = randomized(NetChain([LinearLayer(5), SoftmaxLayer()], Input=3))
    x, y = rng.standard_normal((8, 3)), rng.integers(0, 5, size=8)
    fused = _sgd_step(net, {"Input": x, "Output": y})
    assert len(fused_runs) == 1  # one batch, one fused step
    with fusion(False):
        plain = _sgd_step(net, {"Input": x, "Output": y})
    assert len(fused_runs) == 1
    W, b = (arrays64(net)[(0, n)] for n in ("Weights", "Biases"))
    z = x @ W.T + b
    p = np.exp(z - z.max(-1, keepdims=True))
    p /= p.sum(-1, keepdims=True)
    dz = (p - np.eye(5)[y]) / 8  # the gradient of the batch's mean loss
    loss = -np.log(p[np.arange(8), y]).mean()
    for res in (fused, plain):
        assert_close(res.batch_loss_list[0], loss, dtype=np.float32, reduction=5 * 3)
        assert_close(NetExtract(res.trained_net, [0, "Weights"]), W - 0.5 * dz.T @ x,
                     dtype=np.float32, reduction=8 * 3, scale=np.abs(W).max())
        assert_close(NetExtract(res.trained_net, [0, "Biases"]), b - 0.5 * dz.sum(0),
                     dtype=np.float32, reduction=8 * 3, scale=np.abs(b).max())


def test_one_sgd_step_on_varying_length_sequences_with_fan_out(fused_runs):
    """A sequence classifier whose probabilities also feed a second, mean-squared output:
    in training the softmax fans out to its cross-entropy loss and to the side layer."""
    inner = NetGraph({"map": NetMapOperator(LinearLayer(4)), "sm": SoftmaxLayer(),
                      "side": NetMapOperator(LinearLayer(2))},
                     [("map", "sm", NetPort("Output")), ("sm", "side", NetPort("Side"))],
                     Input=("Varying", 3))
    net = randomized(inner)
    xs = [rng.standard_normal((n, 3)) for n in LENS]
    data = {"Input": xs, "Output": [rng.integers(0, 4, size=n) for n in LENS],
            "Side": [rng.standard_normal((n, 2)) for n in LENS]}
    loss = {"Output": CrossEntropyLossLayer("Index"), "Side": MeanSquaredLossLayer()}
    fused = _sgd_step(net, data, loss=loss)
    assert len(fused_runs) == 1
    with fusion(False):
        plain = _sgd_step(net, data, loss=loss)
    assert len(fused_runs) == 1
    assert_close(fused.batch_loss_list[0], plain.batch_loss_list[0], dtype=np.float32,
                 reduction=max(LENS) * 4 * 3)
    before = arrays64(net)
    moved = 0.0
    for path, w0 in before.items():
        got, want = NetExtract(fused.trained_net, list(path)), NetExtract(plain.trained_net,
                                                                          list(path))
        step = np.abs(np.asarray(want, np.float64) - w0).max()
        moved = max(moved, step)
        assert_close(got, want, dtype=np.float32, reduction=sum(LENS) * 4 * 3,
                     scale=np.abs(w0).max())
    assert moved > 1e-3  # the step did something


def test_saturated_logits_train_only_when_fused():
    """Logits of ±1e3 with every prediction wrong: the fused gradient p - onehot moves the
    weights; the unfused softmax gradient vanishes."""
    net = NetReplacePart(NetChain([LinearLayer(2, biases=False), SoftmaxLayer()], Input=2),
                         {(0, "Weights"): [[-1e3, 0], [1e3, 0]]})
    data = {"Input": np.array([[1.0, 0], [-1, 0]]), "Output": np.array([0, 1])}
    fused = _sgd_step(net, data)
    with fusion(False):
        plain = _sgd_step(net, data)
    W0 = np.array([[-1e3, 0], [1e3, 0]])
    dz = np.array([[-1.0, 1.0], [1.0, -1.0]]) / 2  # p - onehot over the batch mean
    assert_close(NetExtract(fused.trained_net, [0, "Weights"]),
                 W0 - 0.5 * dz.T @ data["Input"], dtype=np.float32, reduction=2, scale=1e3)
    np.testing.assert_array_equal(NetExtract(plain.trained_net, [0, "Weights"]), W0)
