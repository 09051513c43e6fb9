"""NetTrain's loss attachment (Wolfram's rules) and the gradient it trains with."""

from __future__ import annotations

import numpy as np
import pytest
from tolerance import assert_close

from netgraph import (
    Automatic,
    CrossEntropyLossLayer,
    ElementwiseLayer,
    Index,
    LinearLayer,
    MeanAbsoluteLossLayer,
    MeanSquaredLossLayer,
    NetChain,
    NetError,
    NetExtract,
    NetGraph,
    NetInitialize,
    NetMapOperator,
    NetPort,
    NetReplacePart,
    NetTrain,
    SoftmaxLayer,
    TotalLayer,
)
from netgraph.compile import compile_net
from netgraph.train.loss import attach_loss, plan_losses, target_ports


def kind(layer):
    if layer is None:
        return None
    name = type(layer).__name__
    return f"{name}({layer.params.form})" if hasattr(layer.params, "form") else name


def kinds(net, loss=None):
    return {p: kind(v) for p, v in plan_losses(net, loss).items()}


def test_loss_port_is_the_loss():
    net = NetGraph({"lin": LinearLayer(1), "loss": MeanSquaredLossLayer()},
                   [("lin", NetPort("loss", "Input")), (NetPort("loss", "Loss"), NetPort("Loss"))],
                   Input=3)
    assert set(net.input_ports) == {"Input", "Target"} and net.output_ports == ("Loss",)
    assert kinds(net) == {"Loss": None}
    x = np.random.default_rng(0).standard_normal((32, 3)).astype(np.float32)
    y = x[:, :1] * 2
    res = NetTrain(net, {"Input": x, "Target": y}, prop="All", max_training_rounds=30,
                   batch_size=4,
                   learning_rate=0.05, seed=0, progress=False)
    assert res.round_loss_list[-1] < 0.1 * res.round_loss_list[0]
    np.testing.assert_allclose(NetExtract(res.trained_net, ["lin", "Weights"]), [[2, 0, 0]],
                               atol=0.2)


def test_softmax_gets_cross_entropy_index_with_target_named_after_the_port():
    net = NetChain([4, "Tanh", 3, SoftmaxLayer()], Input=2)
    assert kinds(net) == {"Output": "CrossEntropyLossLayer(Index)"}
    tn = attach_loss(NetInitialize(net, seed=0), plan_losses(net, None))
    assert set(tn.net.input_ports) == {"Input", "Output"} and tn.targets == ["Output"]
    assert tn.net.port_shape("Output") == Index(3)


def test_nested_containers_are_followed():
    head = NetChain({"lin": 2, "soft": SoftmaxLayer()})
    net = NetGraph({"enc": NetChain([4, "Tanh"]), "head": head}, [("enc", "head")], Input=3)
    assert kinds(net) == {"Output": "CrossEntropyLossLayer(Index)"}
    mapped = NetMapOperator(NetChain([3, SoftmaxLayer()]))
    assert kinds(NetChain([mapped], Input=("Varying", 2))) == \
        {"Output": "CrossEntropyLossLayer(Index)"}


@pytest.mark.parametrize("f", ["LogisticSigmoid", "Sigmoid"])
def test_sigmoid_gets_binary_cross_entropy(f):
    net = NetChain([LinearLayer(1), ElementwiseLayer(f)], Input=2)
    assert kinds(net) == {"Output": "CrossEntropyLossLayer(Binary)"}
    x = np.random.default_rng(1).standard_normal((64, 2)).astype(np.float32)
    y = (x[:, :1] + x[:, 1:] > 0).astype(np.float32)
    trained = NetTrain(net, (x, y), max_training_rounds=60, learning_rate=0.05, seed=0,
                       progress=False)
    assert ((trained(x) > 0.5) == (y > 0.5)).mean() > 0.9


@pytest.mark.parametrize("layers", [[2], [2, "Tanh"], [LinearLayer((2, 3)), SoftmaxLayer(level=0)]])
def test_anything_else_gets_mean_squared(layers):
    net = NetChain(layers, Input=2)
    assert kinds(net) == {"Output": "MeanSquaredLossLayer"}


def test_existing_loss_layer_output_used_verbatim():
    net = NetGraph({"lin": LinearLayer(1), "mse": MeanSquaredLossLayer()},
                   [("lin", NetPort("mse", "Input")), (NetPort("mse", "Loss"), NetPort("Err"))],
                   Input=3)
    assert kinds(net) == {"Err": None}
    assert target_ports(net, plan_losses(net, None)) == []


def test_loss_overrides():
    net = NetChain([3, SoftmaxLayer()], Input=2)
    assert kinds(net, MeanAbsoluteLossLayer()) == {"Output": "MeanAbsoluteLossLayer"}
    assert kinds(net, {"Output": CrossEntropyLossLayer("Probabilities")}) == \
        {"Output": "CrossEntropyLossLayer(Probabilities)"}
    assert kinds(net, "Output") == {"Output": None}
    two = NetGraph({"a": NetChain([3, SoftmaxLayer()]), "b": LinearLayer(2)}, [], Input=2)
    assert two.output_ports == ("Output1", "Output2")
    assert kinds(two) == {"Output1": "CrossEntropyLossLayer(Index)",
                          "Output2": "MeanSquaredLossLayer"}
    assert kinds(two, {"Output2": MeanAbsoluteLossLayer()}) == \
        {"Output2": "MeanAbsoluteLossLayer"}


@pytest.mark.parametrize("loss,match", [
    (5, "loss must be"), ("Nope", "names no output"), ({}, "empty"),
    ({"Nope": MeanSquaredLossLayer()}, "not an output port"),
    (LinearLayer(2), "must have ports Input"), ({"Output1": "x"}, "must be a loss layer")])
def test_bad_loss_specs(loss, match):
    two = NetGraph({"a": NetChain([3, SoftmaxLayer()]), "b": LinearLayer(2)}, [], Input=2)
    net = NetChain([3, SoftmaxLayer()], Input=2) if loss in (5, "Nope", {}) else two
    if isinstance(loss, LinearLayer):
        net = NetChain([3], Input=2)
    with pytest.raises(NetError, match=match):
        NetTrain(net, {"Input": np.zeros((2, 2))}, loss, progress=False)


def test_single_loss_layer_needs_single_output():
    two = NetGraph({"a": NetChain([3, SoftmaxLayer()]), "b": LinearLayer(2)}, [], Input=2)
    with pytest.raises(NetError, match="one output"):
        NetTrain(two, {"Input": np.zeros((2, 2))}, MeanSquaredLossLayer(), progress=False)


def test_two_outputs_trained_with_targets_under_their_names():
    net = NetGraph({"a": NetChain([3, SoftmaxLayer()]), "b": LinearLayer(1)}, [], Input=2)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((64, 2)).astype(np.float32)
    cls = np.digitize(x[:, 0], [-0.5, 0.5])
    reg = x[:, 1:] * 3
    res = NetTrain(net, {"Input": x, "Output1": cls, "Output2": reg}, prop="All",
                   max_training_rounds=80, learning_rate=0.05, seed=0, progress=False)
    out = res.trained_net(x)
    assert (out["Output1"].argmax(-1) == cls).mean() > 0.9
    assert np.abs(out["Output2"] - reg).max() < 0.5
    assert set(res.loss_ports.values()) == {"Output1", "Output2"}


def test_sequence_labelling_through_netmap_softmax():
    """Per-position classes of varying-length sequences: CE Index averaged over true steps."""
    rng = np.random.default_rng(0)
    xs = [rng.standard_normal((int(n), 2)).astype(np.float32) for n in rng.integers(1, 8, 80)]
    ys = [(x[:, 0] > 0).astype(int) for x in xs]
    net = NetChain([NetMapOperator(NetChain([LinearLayer(2), SoftmaxLayer()]))],
                   Input=("Varying", 2))
    trained = NetTrain(net, {"Input": xs, "Output": ys}, max_training_rounds=40,
                       learning_rate=0.05, seed=0, progress=False)
    preds = trained(xs)
    acc = np.mean(np.concatenate([p.argmax(-1) == y for p, y in zip(preds, ys)]))
    assert acc > 0.95


def test_one_sgd_step_matches_the_hand_gradient():
    """Batch loss = mean over examples of the per-example MSE; one plain SGD step."""
    net = NetReplacePart(NetChain([LinearLayer(2)], Input=3),
                         {(0, "Weights"): np.ones((2, 3)), (0, "Biases"): np.zeros(2)})
    rng = np.random.default_rng(0)
    x = rng.standard_normal((5, 3))
    y = rng.standard_normal((5, 2))
    lr = 0.1
    res = NetTrain(net, (x, y), prop="All", method=("SGD", {"momentum": 0.0}),
                   learning_rate=lr, batch_size=5, max_training_rounds=1, seed=0,
                   progress=False)
    err = x @ np.ones((3, 2)) - y
    assert_close(res.batch_loss_list[0], np.mean(err ** 2), dtype=np.float32, reduction=10 * 4)
    gW = 2 * err.T @ x / (5 * 2)
    assert_close(NetExtract(res.trained_net, [0, "Weights"]), 1 - lr * gW, dtype=np.float32,
                 reduction=5 * 4)
    assert_close(NetExtract(res.trained_net, [0, "Biases"]), -lr * 2 * err.sum(0) / 10,
                 dtype=np.float32, reduction=5 * 4, scale=lr * 2 * np.abs(err).max() / 10)


def test_training_nets_compile_the_softmax_and_its_loss_to_one_fused_step():
    def fused_steps(net, loss=Automatic):
        plan = compile_net(attach_loss(net, plan_losses(net, loss)).net)
        return [(type(s.parts[0].layer).__name__, s.parts[1].layer.params.form)
                for s in plan.steps if s.parts]

    assert fused_steps(NetChain([3, SoftmaxLayer()], Input=3)) == [
        ("SoftmaxLayer", "Index")]
    assert fused_steps(NetChain([1, ElementwiseLayer("LogisticSigmoid")], Input=3)) == [
        ("ElementwiseLayer", "Binary")]
    assert fused_steps(NetChain([3, SoftmaxLayer()], Input=3),
                       CrossEntropyLossLayer("Probabilities")) == [
        ("SoftmaxLayer", "Probabilities")]
    assert fused_steps(NetChain([3], Input=3)) == []  # a mean squared loss: nothing to fuse
    assert fused_steps(NetChain([3, "Tanh"], Input=3),
                       CrossEntropyLossLayer("Binary")) == []  # Tanh is no sigmoid


def test_saturated_softmax_still_learns():
    """Logits of ~1e3: the fused gradient (p - onehot) keeps training going."""
    net = NetReplacePart(NetChain([LinearLayer(2, biases=False), SoftmaxLayer()], Input=2),
                         {(0, "Weights"): [[-1e3, 0], [1e3, 0]]})
    x = np.array([[1, 0], [-1, 0]], dtype=np.float32)
    y = np.array([0, 1])
    trained = NetTrain(net, (x, y), method=("SGD", {"momentum": 0.0}), learning_rate=500.0,
                       max_training_rounds=3, seed=0, progress=False)
    assert trained(x).argmax(-1).tolist() == [0, 1]


def test_target_name_clashing_with_an_input_is_an_error():
    net = NetGraph({"t": TotalLayer()}, [(NetPort("Output"), NetPort("t", "Input1"))], Input2=2)
    with pytest.raises(NetError, match="already has an input"):
        NetTrain(net, {"Output": np.zeros((2, 2)), "Input2": np.zeros((2, 2))},
                 progress=False)
