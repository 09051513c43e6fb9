"""A small builder around ``onnx.helper``: one graph (or a Scan body) under construction.

Values are named strings; ``Graph.op`` appends a node and returns the names of its outputs.
Names are unique across the whole model (a body graph draws from its root's counter), so a
body may read any value of the graphs around it (ONNX's outer scope). Constants are
initializers of the root graph, shared by value. ``prune`` drops the nodes (and initializers)
that no graph output depends on, so a lowering may build values nobody reads (an attention
layer's weights) without cost.

Every node is written in the form it has from opset 13 on (axes of Squeeze, Unsqueeze and
ReduceSum as inputs, Softmax along one axis); ops whose signature changed after 13
(ReduceMax with axes, Split, Pad, ...) are never used, so one model is valid in every opset
from 13 to the newest one onnx knows.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

__all__ = ["Graph", "FLOAT", "INT64", "BOOL", "elem_type"]

FLOAT, INT64, BOOL, INT32 = TensorProto.FLOAT, TensorProto.INT64, TensorProto.BOOL, \
    TensorProto.INT32


def elem_type(integer: bool) -> int:
    """The ONNX element type of a netgraph value: int64 for indices and integers, else float32."""
    return INT64 if integer else FLOAT


class Graph:
    """One ONNX graph being built; ``parent`` is the graph whose scope a body sees."""

    def __init__(self, name: str, parent: Graph | None = None, reserved: Sequence[str] = ()):
        self.name, self.parent = name, parent
        self.root: Graph = self if parent is None else parent.root
        self.nodes: list[onnx.NodeProto] = []
        self.inputs: list[onnx.ValueInfoProto] = []
        self.outputs: list[onnx.ValueInfoProto] = []
        self.cache: dict[Any, Any] = {}  # memoized helper values of this scope
        if parent is None:
            self._counter = itertools.count()
            self._reserved = set(reserved)
            self.initializers: dict[str, onnx.TensorProto] = {}
            self._consts: dict[tuple, str] = {}

    # ------------------------------------------------------------------ names
    def fresh(self, hint: str) -> str:
        """A new value name, unique in the model (never one of the reserved port names)."""
        root = self.root
        while True:
            name = f"{hint}_{next(root._counter)}"
            if name not in root._reserved:
                return name

    def reserve(self, name: str) -> str:
        self.root._reserved.add(name)
        return name

    def lookup(self, key: Any) -> Any:
        """A memoized value of this scope or of an enclosing one (outer values are visible)."""
        g: Graph | None = self
        while g is not None:
            if key in g.cache:
                return g.cache[key]
            g = g.parent
        return None

    def remember(self, key: Any, value: Any) -> Any:
        self.cache[key] = value
        return value

    # ------------------------------------------------------------ ports, data
    def add_input(self, name: str, elem: int, shape: Sequence[Any]) -> str:
        self.inputs.append(helper.make_tensor_value_info(name, elem, list(shape)))
        return name

    def add_output(self, name: str, elem: int, shape: Sequence[Any] | None) -> str:
        self.outputs.append(helper.make_tensor_value_info(name, elem, shape))
        return name

    def initializer(self, name: str, value: np.ndarray) -> str:
        """A named array of the model (a net's array), stored once."""
        root = self.root
        if name not in root.initializers:
            root.reserve(name)
            root.initializers[name] = numpy_helper.from_array(np.ascontiguousarray(value), name)
        return name

    def const(self, value: Any, dtype: Any = np.int64) -> str:
        """A constant tensor (an initializer of the root graph, shared by value)."""
        a = np.asarray(value, dtype=dtype)
        key = (a.dtype.str, a.shape, a.tobytes())
        root = self.root
        name = root._consts.get(key)
        if name is None:
            name = root._consts[key] = self.fresh("const")
            root.initializers[name] = numpy_helper.from_array(a, name)
        return name

    def i64(self, *values: int) -> str:
        """A 1-D int64 constant (shapes, axes, indices)."""
        return self.const(list(values), np.int64)

    def f32(self, value: float) -> str:
        """A float32 scalar constant."""
        return self.const(value, np.float32)

    # ------------------------------------------------------------------ nodes
    def op(self, op_type: str, inputs: Sequence[str], n_out: int = 1, *,
           outputs: Sequence[str] | None = None, **attrs: Any) -> Any:
        """Append a node; return its output name (a list of names when ``n_out > 1``).
        An input ``""`` is an omitted optional input; ``outputs`` names the outputs (graph
        outputs, body outputs) instead of fresh names."""
        outs = list(outputs) if outputs is not None else \
            [self.fresh(op_type) for _ in range(n_out)]
        n_out = len(outs)
        self.nodes.append(helper.make_node(op_type, list(inputs), outs, **attrs))
        return outs[0] if n_out == 1 else outs

    def shape(self, x: str) -> str:
        """``Shape(x)`` (memoized per value)."""
        key = ("shape", x)
        return self.lookup(key) or self.remember(key, self.op("Shape", [x]))

    def dims(self, x: str, start: int, end: int | None = None) -> str:
        """The 1-D int64 tensor of dims ``start:end`` of ``x`` (``end=None``: to the last)."""
        key = ("dims", x, start, end)
        found = self.lookup(key)
        if found:
            return found
        ends = self.i64(end if end is not None else np.iinfo(np.int64).max)
        return self.remember(key, self.op("Slice", [self.shape(x), self.i64(start), ends]))

    def dim(self, x: str, axis: int) -> str:
        """Dim ``axis`` of ``x`` as an int64 scalar (for Range)."""
        key = ("dim", x, axis)
        found = self.lookup(key)
        if found:
            return found
        return self.remember(key, self.op("Gather", [self.shape(x), self.const(axis)]))

    def unsqueeze(self, x: str, axes: Sequence[int]) -> str:
        return x if not axes else self.op("Unsqueeze", [x, self.i64(*axes)])

    def squeeze(self, x: str, axes: Sequence[int]) -> str:
        return x if not axes else self.op("Squeeze", [x, self.i64(*axes)])

    def reshape(self, x: str, shape: Sequence[int] | str) -> str:
        """Reshape to a constant shape (0 copies the input's dim at that place, -1 is inferred)
        or to a shape tensor."""
        return self.op("Reshape", [x, shape if isinstance(shape, str) else self.i64(*shape)])

    def concat(self, xs: Sequence[str], axis: int) -> str:
        return xs[0] if len(xs) == 1 else self.op("Concat", list(xs), axis=axis)

    def where(self, mask: str | None, x: str, other: str) -> str:
        return x if mask is None else self.op("Where", [mask, x, other])

    def cast(self, x: str, to: int) -> str:
        return self.op("Cast", [x], to=to)

    def transpose(self, x: str, perm: Sequence[int]) -> str:
        if list(perm) == sorted(perm):
            return x
        return self.op("Transpose", [x], perm=list(perm))

    def reduce_sum(self, x: str, axes: Sequence[int], keepdims: bool = False) -> str:
        if not axes:
            return x
        return self.op("ReduceSum", [x, self.i64(*axes)], keepdims=int(keepdims))

    def zeros(self, shape: str, dtype: Any = np.float32) -> str:
        """A tensor of zeros of the run-time shape ``shape`` (a 1-D int64 tensor)."""
        return self.op("ConstantOfShape", [shape],
                       value=numpy_helper.from_array(np.zeros(1, dtype=dtype)))

    def body(self, name: str) -> Graph:
        """A new graph (a Scan body) in this graph's scope."""
        return Graph(name, parent=self)

    def to_proto(self, *, prune_unused: bool = True) -> onnx.GraphProto:
        """This graph as a ``GraphProto`` (a root graph carries the initializers)."""
        nodes = prune(self.nodes, [o.name for o in self.outputs]) if prune_unused else \
            self.nodes
        inits = []
        if self.parent is None:
            used = referenced(nodes) | {o.name for o in self.outputs}
            inits = [t for n, t in self.initializers.items() if n in used]
        return helper.make_graph(nodes, self.name, self.inputs, self.outputs, inits)


def _subgraph_names(node: onnx.NodeProto) -> set[str]:
    """Every name read anywhere inside the graphs held by ``node``'s attributes."""
    names: set[str] = set()
    for attr in node.attribute:
        graphs = list(attr.graphs) + ([attr.g] if attr.HasField("g") else [])
        for g in graphs:
            names |= referenced(list(g.node)) | {o.name for o in g.output}
    return names


def referenced(nodes: Sequence[onnx.NodeProto]) -> set[str]:
    """The names that ``nodes`` (and the bodies they hold) read."""
    names: set[str] = set()
    for node in nodes:
        names.update(node.input)
        names |= _subgraph_names(node)
    return names


def prune(nodes: Sequence[onnx.NodeProto], outputs: Sequence[str]) -> list[onnx.NodeProto]:
    """The nodes some output depends on (``nodes`` are in topological order)."""
    live = set(outputs)
    kept = []
    for node in reversed(nodes):
        if any(o in live for o in node.output):
            kept.append(node)
            live.update(node.input)
            live |= _subgraph_names(node)
    return kept[::-1]
