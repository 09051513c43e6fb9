"""Hypothesis strategies for tests/test_properties.py: random layers, chains and graphs
(valid and invalid), data for their ports (right and wrong), and smooth, valid nets with
matching batches for gradcheck / check_padding.

Strategies draw *recipes* (:class:`Call`), not nets: a recipe is built inside the test, so that
construction errors are part of the property, and its ``repr`` is the Python code that builds
it, so a failing example can be pasted into a regression test.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from hypothesis import strategies as st

import layers
from layers import ELEMENTWISE_FUNCTIONS
from netgraph import Automatic, Index, NetChain, NetGraph, NetPort


class Call:
    """A deferred call ``fn(*args, **kwargs)``; arguments may hold other ``Call`` s."""

    def __init__(self, fn: Any, *args: Any, **kwargs: Any):
        self.fn, self.args, self.kwargs = fn, args, kwargs

    def build(self) -> Any:
        return self.fn(*_build(self.args), **_build(self.kwargs))

    def __repr__(self) -> str:
        parts = [repr(a) for a in self.args] + [f"{k}={v!r}" for k, v in self.kwargs.items()]
        return f"{self.fn.__name__}({', '.join(parts)})"


def _build(x: Any) -> Any:
    if isinstance(x, Call):
        return x.build()
    if isinstance(x, list):
        return [_build(e) for e in x]
    if isinstance(x, tuple):
        return tuple(_build(e) for e in x)
    if isinstance(x, dict):
        return {k: _build(v) for k, v in x.items()}
    return x


def build(recipe: Any) -> Any:
    return _build(recipe)


# ------------------------------------------------------------------------ shape specs
DIM = st.one_of(st.integers(1, 4), st.just(Automatic))
ELEM = st.one_of(st.sampled_from(["Real", "Integer"]),
                 st.integers(1, 4).map(lambda n: Call(Index, n)))
VALID_SPEC = st.one_of(
    st.integers(1, 4),
    st.tuples(*[DIM] * 1), st.tuples(DIM, DIM), st.tuples(DIM, DIM, DIM),
    st.lists(DIM, max_size=2).flatmap(lambda ds: st.tuples(st.just(tuple(ds)), ELEM)).map(
        lambda t: t[0] + (t[1],)),
    st.lists(DIM, max_size=2).map(lambda ds: ("Varying", *ds)),
    ELEM.map(lambda e: ("Varying", e)),
    st.sampled_from(["Varying", "Real", "Integer", Automatic, None]), ELEM,
)
INVALID_SPEC = st.one_of(
    st.sampled_from([0, -2, True, 2.5, "Foo", "varying", ("Real", 3), (3, "Varying"), (0,),
                     (2, -1), [], {}, float("nan"), ("Varying", "Varying"), b"3", 1j,
                     (2.0,), ("Varying", 2, "Varying"), frozenset(), (("Varying",),)]),
    st.sampled_from([0, -1, 2.5, "3", True]).map(lambda n: Call(Index, n)),
)
SPEC = st.one_of(*[VALID_SPEC] * 5, INVALID_SPEC)

# ---------------------------------------------------------------------- layer recipes
FUNCTIONS = sorted(ELEMENTWISE_FUNCTIONS) + ["ReLU", "Sigmoid"]
SIZE = st.integers(1, 4)
AUTO_SIZE = st.one_of(SIZE, st.just(Automatic))


def _or_bad(good: st.SearchStrategy, *bad: Any) -> st.SearchStrategy:
    """Mostly ``good``; sometimes one of the invalid values ``bad``."""
    return st.one_of(good, good, good, st.sampled_from(bad))


ARITY = _or_bad(st.one_of(st.none(), st.integers(1, 3)), 0, -1, True, "2", 2.5)
LEVEL = _or_bad(st.integers(-3, 2), 1.5, "0", True, None)
NAMES_FOR_PORTS = {
    "LinearLayer": ("Input", "Output"), "ElementwiseLayer": ("Input", "Output"),
    "SummationLayer": ("Input", "Output"), "ReshapeLayer": ("Input", "Output"),
    "SoftmaxLayer": ("Input", "Output"), "DropoutLayer": ("Input", "Output"),
    "EmbeddingLayer": ("Input", "Output"), "NetMapOperator": ("Input", "Output"),
    "SequenceLastLayer": ("Input", "Output"), "SequenceMostLayer": ("Input", "Output"),
    "SequenceRestLayer": ("Input", "Output"), "SequenceReverseLayer": ("Input", "Output"),
    "DotLayer": ("Input1", "Input2", "Output"),
    "ThreadingLayer": ("Input1", "Input2", "Input3", "Output"),
    "TotalLayer": ("Input1", "Input2", "Input3", "Output"),
    "CatenateLayer": ("Input1", "Input2", "Input3", "Output"),
    "SequenceAttentionLayer": ("Input", "Query", "Output"),
    "AttentionLayer": ("Key", "Value", "Query", "Output"),
    "CrossEntropyLossLayer": ("Input", "Target", "Loss"),
    "MeanSquaredLossLayer": ("Input", "Target", "Loss"),
    "MeanAbsoluteLossLayer": ("Input", "Target", "Loss"),
    "BasicRecurrentLayer": ("Input", "Output", "State"),
    "GatedRecurrentLayer": ("Input", "Output", "State"),
    "LongShortTermMemoryLayer": ("Input", "Output", "State", "CellState"),
    "NetFoldOperator": ("Input", "Output", "State"),
}
assert set(NAMES_FOR_PORTS) == set(layers.__all__), "a new layer needs a strategy here"


def _fold_inner(k: int) -> Call:
    """A valid inner net for NetFoldOperator: Output = Tanh(Linear(Input ++ State))."""
    return Call(NetGraph, {"cat": Call(layers.CatenateLayer), "lin": Call(layers.LinearLayer, k),
                           "f": Call(layers.ElementwiseLayer, "Tanh")},
                [([Call(NetPort, "Input"), Call(NetPort, "State")], "cat", "lin", "f")])


def _concat_scorer() -> Call:
    """A custom scoring net: Output = Linear_()(Input ++ Query), a scalar."""
    return Call(NetGraph, {"cat": Call(layers.CatenateLayer), "lin": Call(layers.LinearLayer, ())},
                [([Call(NetPort, "Input"), Call(NetPort, "Query")], "cat", "lin")])


def _hyper(name: str, inner: st.SearchStrategy) -> st.SearchStrategy:
    """Positional args and options of layer ``name`` (valid, sometimes invalid)."""
    none = st.just(((), {}))
    one = lambda s: s.map(lambda v: ((v,), {}))  # noqa: E731
    net_arg = st.one_of(inner, inner, st.sampled_from([3, "Tanh", None]))
    table = {
        "LinearLayer": st.tuples(
            st.one_of(st.just(()), _or_bad(st.one_of(AUTO_SIZE, st.lists(SIZE, max_size=2).map(
                tuple)), 0, -1, "3", 2.5, True, (2, 0), [2])).map(
                lambda n: () if n == () else (n,)),
            _or_bad(st.booleans(), "no", 1, None)).map(lambda t: (t[0], {"biases": t[1]})),
        "ElementwiseLayer": one(_or_bad(st.sampled_from(FUNCTIONS), "Foo", 3, None, "tanh")),
        "ThreadingLayer": st.tuples(
            _or_bad(st.sampled_from(["Plus", "Times", "Subtract", "Divide", "Max", "Min"]),
                    "Power", 1), ARITY).map(lambda t: (t, {})),
        "TotalLayer": one(ARITY),
        "CatenateLayer": st.tuples(LEVEL, ARITY).map(lambda t: (t, {})),
        "ReshapeLayer": one(_or_bad(st.lists(AUTO_SIZE, min_size=1, max_size=3).map(tuple),
                                    (), (0,), (Automatic, Automatic), 3, "a", None)),
        "SoftmaxLayer": one(LEVEL),
        "DropoutLayer": one(_or_bad(st.sampled_from([0.0, 0.3, 0.5]), 1, -0.1, "a", True,
                                    math.nan)),
        "EmbeddingLayer": st.tuples(_or_bad(AUTO_SIZE, 0, -1, 2.5, True),
                                    _or_bad(AUTO_SIZE, 0, -1, 2.5, True)).map(lambda t: (t, {})),
        "NetMapOperator": one(net_arg),
        "NetFoldOperator": one(st.one_of(SIZE.map(_fold_inner), net_arg)),
        "SequenceAttentionLayer": one(_or_bad(st.one_of(
            st.sampled_from(["Bilinear", "Dot"]), st.just(Call(_concat_scorer))), "Foo", 3)),
        "AttentionLayer": st.tuples(
            _or_bad(st.sampled_from(["Bilinear", "Dot"]), "Foo"),
            _or_bad(st.sampled_from([None, "Causal", ("Causal", 2)]), "causal", ("Causal", 0)),
            _or_bad(st.sampled_from([None, "DimensionSqrt"]), "x"),
            _or_bad(st.booleans(), 1), _or_bad(st.sampled_from([0.0, 0.2]), 1.0, -1)).map(
            lambda t: ((t[0],), dict(zip(["mask", "score_rescaling", "multi_head", "dropout"],
                                         t[1:])))),
        "CrossEntropyLossLayer": one(_or_bad(st.sampled_from(["Index", "Probabilities",
                                                              "Binary"]), None, "index")),
    }
    for rnn in ("BasicRecurrentLayer", "GatedRecurrentLayer", "LongShortTermMemoryLayer"):
        table[rnn] = one(_or_bad(AUTO_SIZE, 0, -1, 2.5, True, "3"))
    return table.get(name, none)


@st.composite
def layer_recipes(draw: Any, inner: st.SearchStrategy | None = None) -> Call:
    """Any layer of ``layers.__all__`` with random hyperparameters and port specs; ``inner``
    draws the nets given to operators (plain layers when None)."""
    name = draw(st.sampled_from(sorted(layers.__all__)))
    inner = inner if inner is not None else st.deferred(lambda: layer_recipes())
    args, opts = draw(_hyper(name, inner))
    names = st.one_of(*[st.sampled_from(NAMES_FOR_PORTS[name])] * 9, st.just("Bogus"))
    ports = draw(st.dictionaries(names, SPEC, max_size=2))
    return Call(getattr(layers, name), *args, **opts, **ports)


# ------------------------------------------------------------------- chains and graphs
GRAPH_PORT_SPECS = st.one_of(st.just({}), st.dictionaries(st.sampled_from(
    ["Input", "Output", "Input1", "Query", "Target", "Loss"]), SPEC, max_size=2))
PORT_POOL = ("Input", "Output", "Input1", "Input2", "Input3", "Query", "Key", "Value",
             "State", "CellState", "Target", "Loss", "AttentionWeights", "Bogus")


def chain_recipes(element: st.SearchStrategy) -> st.SearchStrategy:
    elem = st.one_of(element, element, element, SIZE, st.sampled_from(FUNCTIONS),
                     st.sampled_from([2.5, "Foo", None]))
    return st.tuples(st.lists(elem, min_size=1, max_size=5), GRAPH_PORT_SPECS).map(
        lambda t: Call(NetChain, t[0], **t[1]))


@st.composite
def graph_recipes(draw: Any, element: st.SearchStrategy) -> Call:
    """A NetGraph of 1-4 nodes with random connections: mostly in node order (a chain), plus
    random extra ones (unknown nodes and ports, fan-ins, cycles, duplicate destinations)."""
    k = draw(st.integers(1, 4))
    nodes = [draw(element) for _ in range(k)]
    as_dict = draw(st.booleans())
    names = [f"n{i}" for i in range(k)] if as_dict else list(range(k))
    node = st.sampled_from(names)
    endpoint = st.one_of(
        node, node, st.sampled_from(["zz", 7]),
        st.tuples(node, st.sampled_from(PORT_POOL)).map(lambda t: Call(NetPort, *t)),
        st.sampled_from(["Input", "Output", "X"]).map(lambda p: Call(NetPort, p)))
    source = st.one_of(endpoint, endpoint, endpoint, st.lists(endpoint, min_size=1, max_size=3))
    chains = []
    if k > 1 and draw(st.booleans()):
        chains.append(tuple(names[:draw(st.integers(2, k))]))
    for _ in range(draw(st.integers(0, 3))):
        ends = [draw(source)] + [draw(endpoint) for _ in range(draw(st.integers(1, 2)))]
        chains.append(tuple(ends))
    layers_arg = dict(zip(names, nodes)) if as_dict else nodes
    return Call(NetGraph, layers_arg, chains, **draw(GRAPH_PORT_SPECS))


def net_recipes(max_leaves: int = 6) -> st.SearchStrategy:
    """Layers, operators around nets, NetChains of 1-5 and NetGraphs, nested."""
    base = layer_recipes()
    return st.recursive(base, lambda inner: st.one_of(
        layer_recipes(inner), chain_recipes(inner), graph_recipes(inner)), max_leaves=max_leaves)


# ------------------------------------------------------------------------------ data
def _fill(rng: np.random.Generator, shape: tuple, elem: Any) -> np.ndarray:
    if isinstance(elem, Index):
        return rng.integers(0, elem.n, size=shape)
    if elem == "Integer":
        return rng.integers(-3, 4, size=shape)
    return rng.uniform(-2, 2, size=shape)


def split_shape(shape: Any) -> tuple[list | None, Any]:
    """(dims, elem) of a displayed port shape; dims None when the rank is unknown."""
    if shape is Automatic:
        return None, None
    if not isinstance(shape, tuple):
        return [], shape
    dims = list(shape)
    elem = dims.pop() if dims and (isinstance(dims[-1], Index) or dims[-1] in ("Real",
                                                                                 "Integer")) else None
    return dims, elem


@dataclass
class PortData:
    """How to make examples for one port: dims (ints; None = varying) and element type."""

    dims: list
    elem: Any = None
    extra: dict = field(default_factory=dict)


@st.composite
def good_example_shape(draw: Any, shape: Any) -> tuple[list, Any]:
    """Concrete example dims for a displayed shape (varying and Automatic sizes drawn)."""
    dims, elem = split_shape(shape)
    if dims is None:
        dims = draw(st.lists(st.just(Automatic), max_size=2))
    return [d if isinstance(d, int) else draw(st.integers(1, 4)) for d in dims], elem


BAD_VALUES = [None, "abc", {"a": 1}, b"xy", 3, 2.5, True, [], [[]], [[1, 2], [3]],
              [None, None], object(), np.array(["a", "b"]), np.zeros(0), 1j,
              np.array([1 + 2j]), np.zeros((2, 0)), [np.zeros(2), "x"], {1, 2}]
MUTATIONS = ("none", "none", "none", "rank+", "rank-", "size", "nan", "inf", "dtype_str",
             "dtype_obj", "bool", "float_for_int", "out_of_range", "empty", "ragged", "bad")


def mutate(x: np.ndarray, how: str, rng: np.random.Generator, bad: Any) -> Any:
    """``x`` (one example) made wrong in the way ``how`` (``"none"``: unchanged)."""
    if how == "rank+":
        return x[None]
    if how == "rank-":
        return x[0] if x.ndim else np.array([x])
    if how == "size":
        return np.concatenate([x, x[:1]]) if x.ndim and len(x) else np.zeros(2)
    if how in ("nan", "inf") and x.size:
        y = x.astype(float)
        y.flat[rng.integers(0, y.size)] = math.nan if how == "nan" else -math.inf
        return y
    if how == "dtype_str":
        return x.astype(str)
    if how == "dtype_obj":
        return x.astype(object)
    if how == "bool":
        return x > 0
    if how == "float_for_int":
        return x + 0.5
    if how == "out_of_range":
        return x + 100
    if how == "empty":
        return x[:0]
    if how == "ragged" and x.ndim >= 2:
        return [row.tolist()[: max(1, i)] for i, row in enumerate(x)]
    if how == "bad":
        return bad
    return x
