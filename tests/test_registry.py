"""The core knows no layer: layer classes register as they are defined (files name them
through the registry), NetChain shorthands are registered by the layer modules, and loss
attachment asks the producing layer (``default_loss``, ``is_loss``, ``output_source``)."""

from __future__ import annotations

import pytest

import netgraph.layers as layers
from netgraph import (
    CrossEntropyLossLayer,
    ElementwiseLayer,
    MeanAbsoluteLossLayer,
    NetChain,
    NetError,
    NetMapOperator,
    SoftmaxLayer,
    load,
    save,
)
from netgraph.extend import Layer, layer_classes, where
from netgraph.train.loss import plan_losses


class HalvingLayer(Layer):
    """``y = x / 2``, asking NetTrain for a mean absolute loss: a user's own layer class."""

    pad_clean = True

    def __init__(self, **ports):
        super().__init__({}, ports)

    def rules(self, S, path, ports):
        S.unify(ports["Input"], ports["Output"], where(path, "Input"), where(path, "Output"))
        return {}

    def default_loss(self, port):
        return MeanAbsoluteLossLayer()

    def forward(self, ins, arrays, ctx):
        return {"Output": ins["Input"] / 2}, lambda g: ({"Input": g["Output"] / 2}, {})


def test_every_library_layer_is_registered_under_its_name():
    registered = layer_classes()
    for name in layers.__all__:
        assert registered[name] is getattr(layers, name)
    assert not any(name.startswith("_") for name in registered)


def test_classes_defined_in_functions_are_not_registered_and_first_name_wins():
    class LocalLayer(Layer):
        pass

    assert "LocalLayer" not in layer_classes()
    before = layer_classes()["LinearLayer"]
    namespace: dict = {"Layer": Layer, "__name__": "elsewhere"}
    exec("class LinearLayer(Layer):\n    pass", namespace)
    assert layer_classes()["LinearLayer"] is before is layers.LinearLayer


def test_a_users_module_level_layer_saves_and_loads(tmp_path):
    net = NetChain([3, HalvingLayer()], Input=5)
    save(net, tmp_path / "m")
    back = load(tmp_path / "m")
    assert type(back._nodes[1]) is HalvingLayer
    assert back.port_shape("Output") == (3,)


def test_loss_attachment_asks_the_producing_layer():
    def kind(net):
        (loss,) = plan_losses(net, None).values()
        form = getattr(loss.params, "form", None)
        return type(loss).__name__ + (f"({form})" if form else "")

    assert kind(NetChain([3, HalvingLayer()], Input=5)) == "MeanAbsoluteLossLayer"
    assert kind(NetChain([3, SoftmaxLayer()], Input=5)) == "CrossEntropyLossLayer(Index)"
    assert kind(NetChain([3, ElementwiseLayer("Sigmoid")], Input=5)) == \
        "CrossEntropyLossLayer(Binary)"
    assert kind(NetChain([3, "Tanh"], Input=5)) == "MeanSquaredLossLayer"
    # through NetMapOperator (output_source) to the layer inside, whose own last axis is
    # level 0: the per-position class probabilities get the cross-entropy
    mapped = NetChain([NetMapOperator(SoftmaxLayer(level=0))], Input=("Varying", 7))
    assert kind(mapped) == "CrossEntropyLossLayer(Index)"
    assert kind(NetChain([NetMapOperator(HalvingLayer())], Input=("Varying", 7))) == \
        "MeanAbsoluteLossLayer"
    assert plan_losses(NetChain([3, CrossEntropyLossLayer("Binary")], Input=5), None) == \
        {"Loss": None}


def test_no_registered_default_loss_is_a_net_error(monkeypatch):
    import netgraph.layer

    monkeypatch.setattr(netgraph.layer, "_DEFAULT_LOSS", [])
    with pytest.raises(NetError, match="no default loss is registered"):
        plan_losses(NetChain([3, "Tanh"], Input=5), None)

