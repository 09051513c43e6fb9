"""A net's ports as the graph inputs and outputs of an ONNX model (see docs/onnx.md).

Inputs: one per input port, ``(batch, *dims)`` (``(batch,)`` for a scalar), float32 for
reals and int64 for indices and integers, a varying dim a named symbolic padded length
(``<port>_padded``); plus ``<port>_lengths`` (int64, ``(batch,)``) per varying input port.
Padded inputs are sanitized first: ``Where(valid, x, 0)``.

Outputs: one per output port, named like the port (``<port>_out`` when an input port has the
same name), sliced to the longest example along each varying dim and exactly 0 past each
example's length; plus ``<name>_lengths`` (int64, ``(batch,)``) for the first varying dim of
each varying output port and ``<name>_lengths<axis>`` for any further one (attention weights
have two).
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import helper

from ..apply import collect_arrays, uninitialized
from ..compile import PortMeta, compile_net, fusion
from ..errors import NetError
from ..net import Net
from ..shapes import is_automatic
from .builder import Graph, elem_type
from .lower import OPSET_FLOOR, Lowerer, lengths_of, set_lengths, zero_padding
from .table import TABLE

__all__ = ["build_model", "resolve_opset"]

BATCH = "batch"


def _lengths_name(name: str, axis: int, first: int) -> str:
    return f"{name}_lengths" if axis == first else f"{name}_lengths{axis}"


def _padded_name(name: str, axis: int, first: int) -> str:
    return f"{name}_padded" if axis == first else f"{name}_padded{axis}"


def _varying_axes(meta: PortMeta) -> list[int]:
    return [a for a, key in enumerate(meta.keys) if key is not None]


def _port_names(plan) -> tuple[dict[str, str], list[str]]:
    """Output port -> its graph output name, and every name the model's interface uses
    (a clash, e.g. a port named ``Input_lengths`` next to a varying ``Input``, is a
    ``NetError``)."""
    outs = {p: p + "_out" if p in plan.inputs else p for p in plan.outputs}
    names: list[tuple[str, str]] = []
    for p, meta in plan.inputs.items():
        names.append((p, f"input port {p!r}"))
        axes = _varying_axes(meta)
        names += [(_lengths_name(p, a, axes[0]), f"the lengths of input port {p!r}")
                  for a in axes]
    for p, meta in plan.outputs.items():
        names.append((outs[p], f"output port {p!r}"))
        axes = _varying_axes(meta)
        names += [(_lengths_name(outs[p], a, axes[0]), f"the lengths of output port {p!r}")
                  for a in axes]
    seen: dict[str, str] = {}
    for name, what in names:
        if name in seen:
            raise NetError(f"export_onnx: {what} and {seen[name]} would both be named {name!r} "
                           "in the ONNX model; rename one of the ports")
        seen[name] = what
    return outs, list(seen)


def _uninitialized_message(net: Net) -> str:
    missing = uninitialized(net)
    nodes = list(dict.fromkeys("/".join(map(repr, p[:-1])) or "net" for p in missing))
    shown = ", ".join(f"{'/'.join(map(str, p))}" for p in missing[:4])
    return (f"export_onnx: the net has uninitialized arrays ({shown}"
            f"{', …' if len(missing) > 4 else ''}) at node {', '.join(nodes[:4])}; call "
            "NetInitialize first")


def build_model(net: Net) -> tuple[onnx.ModelProto, int, str]:
    """The ONNX model of ``net`` (opset not yet set), the lowest opset it needs and why."""
    if not isinstance(net, Net):
        raise NetError(f"export_onnx needs a net, got {type(net).__name__}")
    with fusion(False):  # a fused softmax + cross-entropy step is lowered as its two layers
        plan = compile_net(net)
    if uninitialized(net):
        raise NetError(_uninitialized_message(net))
    out_names, reserved = _port_names(plan)
    g = Graph("netgraph", reserved=reserved)
    lowerer = Lowerer(collect_arrays(net, np.float32), TABLE)
    inputs = {}
    for port, meta in plan.inputs.items():
        axes = _varying_axes(meta)
        shape = [BATCH] + [d if d is not None else _padded_name(port, a, axes[0])
                           for a, d in enumerate(meta.dims)]
        x = g.add_input(port, elem_type(meta.integer), shape)
        for a in axes:
            set_lengths(g, meta.keys[a], g.add_input(_lengths_name(port, a, axes[0]),
                                                     onnx.TensorProto.INT64, [BATCH]))
        inputs[port] = zero_padding(g, x, meta, 1)  # padding content never reaches a value
    results = lowerer.lower_plan(g, plan, inputs, 1)
    for port, meta in plan.outputs.items():
        _add_output(g, out_names[port], results[port], meta)
    graph = g.to_proto()
    graph.doc_string = _describe(net, plan, out_names)
    model = helper.make_model(graph, producer_name="netgraph", producer_version=_version(),
                              opset_imports=[helper.make_opsetid("", OPSET_FLOOR)])
    return model, lowerer.opset, lowerer.opset_reason


def _add_output(g: Graph, name: str, value: str, meta: PortMeta) -> None:
    """Graph output ``name`` (``value`` cut to the longest example on each varying dim) and
    its lengths outputs."""
    axes = _varying_axes(meta)
    shape = [BATCH] + [d if d is not None else _padded_name(name, a, axes[0])
                       for a, d in enumerate(meta.dims)]
    lengths = []
    for a in axes:
        lens = lengths_of(g, meta.keys[a])
        if lens is None:  # lengths nobody gave: every example has the padded size
            lens = g.op("Expand", [g.unsqueeze(g.dim(value, 1 + a), [0]), g.dims(value, 0, 1)])
        else:
            longest = g.op("ReduceMax", [lens], keepdims=1)
            value = g.op("Slice", [value, g.i64(0), longest, g.i64(1 + a)])
        lengths.append((_lengths_name(name, a, axes[0]), lens))
    g.op("Identity", [value], outputs=[name])
    g.add_output(name, elem_type(meta.integer), shape)
    for out, lens in lengths:
        g.op("Identity", [lens], outputs=[out])
        g.add_output(out, onnx.TensorProto.INT64, [BATCH])


def _describe(net: Net, plan, out_names: dict[str, str]) -> str:
    ins = ", ".join(f"{p}: {net.port_shape(p)!r}" for p in plan.inputs)
    outs = ", ".join(f"{out_names[p]}: {net.port_shape(p)!r}" for p in plan.outputs)
    return (f"exported by netgraph: {ins} -> {outs}. Varying ports come padded, with "
            "<port>_lengths (int64, per example).")


def _version() -> str:
    try:
        from importlib.metadata import version

        return version("netgraph")
    except Exception:  # noqa: BLE001 - not installed (a checkout)
        return "0"


def resolve_opset(opset, needed: int, reason: str) -> int:
    """The opset to write: ``needed`` for Automatic, else ``opset`` checked against it and
    against the newest opset the installed onnx knows."""
    if is_automatic(opset):
        return needed
    if not isinstance(opset, (int, np.integer)) or isinstance(opset, (bool, np.bool_)):
        raise NetError(f"export_onnx: opset must be Automatic or an int, got {opset!r}")
    newest = onnx.defs.onnx_opset_version()
    if opset < needed:
        raise NetError(f"export_onnx: opset {opset} is too low; the net needs opset {needed} "
                       f"for {reason}")
    if opset > newest:
        raise NetError(f"export_onnx: opset {opset} is newer than the newest opset the "
                       f"installed onnx {onnx.__version__} knows ({newest})")
    return int(opset)


__all__ += ["OPSET_FLOOR"]
