"""Loss attachment, as Wolfram's NetTrain does it.

* an output port named ``"Loss"`` is the loss (other outputs are ignored);
* else each output port is followed back, through nested containers (and through
  ``NetMapOperator``), to the layer that produces it: an existing loss layer is used as it is,
  else the layer names its loss (``Layer.default_loss``: a ``SoftmaxLayer`` over the last axis
  asks for ``CrossEntropyLossLayer("Index")``, an ``ElementwiseLayer("LogisticSigmoid")`` for
  ``CrossEntropyLossLayer("Binary")``), and anything else gets the registered default loss,
  ``MeanSquaredLossLayer()``. This module imports no layer class;
* ``loss=`` overrides: a loss layer (single-output nets), a port name (that output *is* a
  loss), or a dict ``port -> loss layer`` (only those ports are trained).

The training net is a ``NetGraph`` holding the user's net as node ``"net"`` and one loss node
per trained output; a loss layer's ``Target`` becomes a graph input named like the output
port (the data key, e.g. ``"Output"``), and its ``Loss`` the graph output ``"Loss:<port>"``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..compile import compile_net
from ..errors import NetError
from ..graph import GRAPH_IN, GRAPH_OUT, NetGraph
from ..layer import Layer, default_loss
from ..net import Net
from ..ports import NetPort
from ..shapes import Automatic

__all__ = ["TrainingNet", "plan_losses", "target_ports", "attach_loss", "producer",
           "automatic_loss"]

#: node name of the user's net inside the training net
NODE = "net"


@dataclass
class TrainingNet:
    """The user's net with its losses attached."""

    net: NetGraph
    #: graph outputs of ``net`` that are losses, with the user output port each belongs to
    losses: dict[str, str]
    #: graph inputs that take targets (named like the user's output ports)
    targets: list[str]
    #: graph inputs that are the user's inputs
    inputs: list[str]


def producer(net: Net, port: str) -> Layer | None:
    """The layer that produces output ``port`` of ``net`` (following nested containers and
    layers that apply a sub-net position by position, :meth:`Layer.output_source`), or None
    when the port is fed straight from a graph input."""
    while True:
        if isinstance(net, Layer):
            source = net.output_source(port)
            if source is None:
                return net
            net, port = source
            continue
        if not isinstance(net, NetGraph):
            return None
        src = next(s for s, d in net._edges if d == (GRAPH_OUT, port))
        if src[0] is GRAPH_IN:
            return None
        net, port = net._nodes[src[0]], src[1]


def automatic_loss(net: Net, port: str) -> Net | None:
    """Wolfram's automatic loss for output ``port``; None when the port already is a loss.
    The layer producing the port decides (:meth:`Layer.default_loss`, :attr:`Layer.is_loss`);
    without a preference, the registered default loss (MeanSquaredLossLayer)."""
    layer = producer(net, port)
    if layer is not None and layer.is_loss:
        return None
    loss = None if layer is None else layer.default_loss(port)
    return default_loss() if loss is None else loss


def _check_loss_net(loss: Any, port: str) -> Net:
    if not isinstance(loss, Net):
        raise NetError(f"NetTrain: the loss for output {port!r} must be a loss layer such as "
                       f"MeanSquaredLossLayer(), got {loss!r}")
    ins, outs = set(loss.input_ports), set(loss.output_ports)
    if "Input" not in ins or "Loss" not in outs or not ins <= {"Input", "Target"}:
        raise NetError(f"NetTrain: the loss for output {port!r} must have ports Input (and "
                       f"Target) -> Loss; {type(loss).__name__} has {sorted(ins)} -> "
                       f"{sorted(outs)}")
    return loss


def plan_losses(net: Net, loss: Any) -> dict[str, Net | None]:
    """Output port -> loss net to attach (None: the port already is a loss), from ``loss``
    (Automatic, a loss layer, an output port name, or a dict port -> loss layer)."""
    outs = list(net.output_ports)
    if loss is Automatic or loss is None:
        if "Loss" in outs:
            return {"Loss": None}
        return {p: automatic_loss(net, p) for p in outs}
    if isinstance(loss, str):
        if loss not in outs:
            raise NetError(f"NetTrain: loss={loss!r} names no output port; outputs are {outs}")
        return {loss: None}
    if isinstance(loss, Net):
        if len(outs) != 1:
            raise NetError(f"NetTrain: a single loss layer needs a net with one output; this "
                           f"net has outputs {outs}: give loss as a dict port -> loss layer")
        return {outs[0]: _check_loss_net(loss, outs[0])}
    if isinstance(loss, dict):
        if not loss:
            raise NetError("NetTrain: loss is an empty dict")
        plan = {}
        for port, layer in loss.items():
            port = port.port if isinstance(port, NetPort) and port.layer is None else port
            if port not in outs:
                raise NetError(f"NetTrain: loss given for {port!r}, which is not an output "
                               f"port; outputs are {outs}")
            plan[port] = None if layer is None or layer == port else _check_loss_net(layer, port)
        return plan
    raise NetError("NetTrain: loss must be Automatic, a loss layer, an output port name or a "
                   f"dict port -> loss layer; got {type(loss).__name__}")


def target_ports(net: Net, plan: dict[str, Net | None]) -> list[str]:
    """The output ports whose loss takes a target (the training data's target keys)."""
    ports = [p for p, layer in plan.items() if layer is not None and
             "Target" in layer.input_ports]
    for port in ports:
        if port in net.input_ports:
            raise NetError(f"NetTrain: the target of output {port!r} would be a training "
                           f"input named {port!r}, but the net already has an input of "
                           "that name; rename one of the ports")
    return ports


def attach_loss(net: Net, plan: dict[str, Net | None]) -> TrainingNet:
    """The training net: ``net`` (node ``"net"``, fully specified) with the losses of
    ``plan`` (from :func:`plan_losses`) attached."""
    metas = compile_net(net).outputs
    for port in plan:
        if metas[port].integer:
            raise NetError(f"NetTrain: cannot attach a loss to the integer-valued output port "
                           f"{port!r} (shape {net.port_shape(port)!r})")
    nodes: dict[str, Net] = {NODE: net}
    connections: list[tuple] = []
    losses: dict[str, str] = {}
    targets: list[str] = []
    for port, layer in plan.items():
        name = f"Loss:{port}"
        losses[name] = port
        if layer is None:
            connections.append((NetPort(NODE, port), NetPort(name)))
            continue
        node = f"loss:{port}"
        nodes[node] = layer
        connections.append((NetPort(NODE, port), NetPort(node, "Input")))
        connections.append((NetPort(node, "Loss"), NetPort(name)))
        if "Target" in layer.input_ports:
            connections.append((NetPort(port), NetPort(node, "Target")))
            targets.append(port)
    graph = NetGraph(nodes, connections)
    return TrainingNet(graph, losses, targets, list(net.input_ports))
