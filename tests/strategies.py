"""Hypothesis strategies for tests/test_properties.py: random layers, chains and graphs
(valid and invalid), data for their ports (right and wrong), and smooth, valid nets with
matching batches for gradcheck / check_padding.

Strategies draw *recipes* (:class:`Call`), not nets: a recipe is built inside the test, so that
construction errors are part of the property, and its ``repr`` is the Python code that builds
it, so a failing example can be pasted into a regression test.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from hypothesis import strategies as st

import netgraph.layers as layers
from netgraph import Automatic, Index, NetChain, NetGraph, NetPort
from netgraph.layers import ELEMENTWISE_FUNCTIONS


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
KNOWN_SPEC = st.one_of(  # fully known: ints, "Varying", element types
    st.lists(st.integers(1, 4), min_size=1, max_size=2).map(tuple),
    st.lists(st.integers(1, 4), max_size=2).map(lambda ds: ("Varying", *ds)), ELEM)

# ---------------------------------------------------------------------- layer recipes
FUNCTIONS = sorted(ELEMENTWISE_FUNCTIONS) + ["ReLU", "Sigmoid"]
SMOOTH = ["Tanh", "LogisticSigmoid", "Sin", "Cos", "SoftPlus", "Swish", "GELU", "Mish",
          "Square", "Identity", "SoftSign", "ELU", "Sigmoid"]  # no kinks: gradcheck
#: layers without kinks or poles (with ElementwiseLayer/ThreadingLayer restricted)
SMOOTH_LAYERS = sorted(set(layers.__all__) - {"CrossEntropyLossLayer", "MeanAbsoluteLossLayer"})
SIZE = st.integers(1, 4)
AUTO_SIZE = st.one_of(SIZE, st.just(Automatic))


def _or_bad(good: st.SearchStrategy, *bad: Any) -> st.SearchStrategy:
    """Mostly ``good``; sometimes one of the invalid values ``bad``."""
    return st.one_of(good, good, good, st.sampled_from(bad))


ARITY_OK, LEVEL_OK = st.one_of(st.none(), st.integers(1, 3)), st.integers(-3, 2)
ARITY = _or_bad(ARITY_OK, 0, -1, True, "2", 2.5)
LEVEL = _or_bad(LEVEL_OK, 1.5, "0", True, None)
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


def _hyper(name: str, inner: st.SearchStrategy, smooth: bool = False) -> st.SearchStrategy:
    """Positional args and options of layer ``name`` (valid, sometimes invalid); ``smooth``:
    only functions without kinks."""
    ob = (lambda good, *bad: good) if smooth else _or_bad  # smooth nets: valid values only
    arity, level = (ARITY_OK, LEVEL_OK) if smooth else (ARITY, LEVEL)
    none = st.just(((), {}))
    one = lambda s: s.map(lambda v: ((v,), {}))  # noqa: E731
    net_arg = inner if smooth else st.one_of(inner, inner, st.sampled_from([3, "Tanh", None]))
    table = {
        "LinearLayer": st.tuples(
            st.one_of(st.just(()), ob(st.one_of(AUTO_SIZE, st.lists(SIZE, max_size=2).map(
                tuple)), 0, -1, "3", 2.5, True, (2, 0), [2])).map(
                lambda n: () if n == () else (n,)),
            ob(st.booleans(), "no", 1, None)).map(lambda t: (t[0], {"biases": t[1]})),
        "ElementwiseLayer": one(ob(st.sampled_from(SMOOTH if smooth else FUNCTIONS),
                                        "Foo", 3, None, "tanh")),
        "ThreadingLayer": st.tuples(
            ob(st.sampled_from(["Plus", "Times", "Subtract"] + [
                "Divide", "Max", "Min"] * (not smooth)), "Power", 1), arity).map(
            lambda t: (t, {})),
        "TotalLayer": one(arity),
        "CatenateLayer": st.tuples(level, arity).map(lambda t: (t, {})),
        "ReshapeLayer": one(ob(st.lists(AUTO_SIZE, min_size=1, max_size=3).map(tuple),
                                    (), (0,), (Automatic, Automatic), 3, "a", None)),
        "SoftmaxLayer": one(level),
        "DropoutLayer": one(ob(st.sampled_from([0.0, 0.3, 0.5]), 1, -0.1, "a", True,
                                    math.nan)),
        "EmbeddingLayer": st.tuples(ob(AUTO_SIZE, 0, -1, 2.5, True),
                                    ob(AUTO_SIZE, 0, -1, 2.5, True)).map(lambda t: (t, {})),
        "NetMapOperator": one(net_arg),
        "NetFoldOperator": one(st.one_of(SIZE.map(_fold_inner), net_arg)),
        "SequenceAttentionLayer": one(ob(st.one_of(
            st.sampled_from(["Bilinear", "Dot"]), st.just(_concat_scorer())), "Foo", 3)),
        "AttentionLayer": st.tuples(
            ob(st.sampled_from(["Bilinear", "Dot"]), "Foo"),
            ob(st.sampled_from([None, "Causal", ("Causal", 2)]), "causal", ("Causal", 0)),
            ob(st.sampled_from([None, "DimensionSqrt"]), "x"),
            ob(st.booleans(), 1), ob(st.sampled_from([0.0, 0.2]), 1.0, -1)).map(
            lambda t: ((t[0],), dict(zip(["mask", "score_rescaling", "multi_head", "dropout"],
                                         t[1:])))),
        "CrossEntropyLossLayer": one(ob(st.sampled_from(["Index", "Probabilities",
                                                              "Binary"]), None, "index")),
    }
    for rnn in ("BasicRecurrentLayer", "GatedRecurrentLayer", "LongShortTermMemoryLayer"):
        table[rnn] = one(ob(AUTO_SIZE, 0, -1, 2.5, True, "3"))
    return table.get(name, none)


@st.composite
def layer_recipes(draw: Any, inner: st.SearchStrategy | None = None,
                  smooth: bool = False) -> Call:
    """Any layer of ``layers.__all__`` with random hyperparameters and port specs; ``inner``
    draws the nets given to operators (plain layers when None); ``smooth``: no kinks."""
    name = draw(st.sampled_from(SMOOTH_LAYERS if smooth else sorted(layers.__all__)))
    inner = inner if inner is not None else st.deferred(lambda: layer_recipes(smooth=smooth))
    args, opts = draw(_hyper(name, inner, smooth))
    if smooth:  # valid ones only
        ports = draw(st.dictionaries(st.sampled_from(NAMES_FOR_PORTS[name]), KNOWN_SPEC,
                                     min_size=1, max_size=2))
    else:
        names = st.one_of(*[st.sampled_from(NAMES_FOR_PORTS[name])] * 9, st.just("Bogus"))
        ports = draw(st.dictionaries(names, SPEC, max_size=2))
    return Call(getattr(layers, name), *args, **opts, **ports)


# ------------------------------------------------------------------- chains and graphs
GRAPH_PORT_SPECS = st.one_of(st.just({}), st.dictionaries(st.sampled_from(
    ["Input", "Output", "Input1", "Query", "Target", "Loss"]), SPEC, max_size=2))
PORT_POOL = ("Input", "Output", "Input1", "Input2", "Input3", "Query", "Key", "Value",
             "State", "CellState", "Target", "Loss", "AttentionWeights", "Bogus")


def chain_recipes(element: st.SearchStrategy, smooth: bool = False) -> st.SearchStrategy:
    elem = st.one_of(element, element, element, SIZE,
                     st.sampled_from(SMOOTH if smooth else FUNCTIONS),
                     st.sampled_from(["Tanh"] if smooth else [2.5, "Foo", None]))
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
        node, node, node, st.sampled_from(["zz", 7]),
        st.tuples(node, st.sampled_from(PORT_POOL)).map(lambda t: Call(NetPort, *t)),
        st.sampled_from(["Input", "Output", "X"]).map(lambda p: Call(NetPort, p)))
    source = st.one_of(endpoint, endpoint, endpoint, st.lists(endpoint, min_size=1, max_size=3))
    chains = []
    if k > 1 and draw(st.booleans()):
        chains.append(tuple(names[:draw(st.integers(2, k))]))
    for _ in range(draw(st.integers(0, 3))):
        kind = draw(st.sampled_from(["random", "random", "cycle", "two sources", "fan-in",
                                     "graph output"]))
        a, b, c = (draw(node) for _ in range(3))
        if kind == "cycle":  # closes a loop with the chain above (or a self-loop)
            chains.append((b, a))
        elif kind == "two sources":  # a second source into one (single) input
            chains += [(a, c), (b, c)]
        elif kind == "fan-in":
            chains.append(([a, b], c))
        elif kind == "graph output":  # may clash with a dangling output of that name
            chains.append((a, Call(NetPort, draw(st.sampled_from(["Output", "Output1", "Y"])))))
        else:
            ends = [draw(source)] + [draw(endpoint) for _ in range(draw(st.integers(1, 2)))]
            chains.append(tuple(ends))
    layers_arg = dict(zip(names, nodes)) if as_dict else nodes
    return Call(NetGraph, layers_arg, chains, **draw(GRAPH_PORT_SPECS))


def net_recipes(max_leaves: int = 6, smooth: bool = False) -> st.SearchStrategy:
    """Layers, operators around nets, NetChains of 1-5 and NetGraphs, nested; ``smooth``:
    only layers and functions without kinks."""
    def extend(inner: st.SearchStrategy) -> st.SearchStrategy:
        return st.one_of(layer_recipes(inner, smooth), chain_recipes(inner, smooth),
                         graph_recipes(inner))

    return st.recursive(layer_recipes(smooth=smooth), extend, max_leaves=max_leaves)


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


OPAQUE = object()
BAD_VALUES = [None, "abc", {"a": 1}, b"xy", 3, 2.5, True, [], [[]], [[1, 2], [3]],
              [None, None], OPAQUE, np.array(["a", "b"]), np.zeros(0), 1j,
              np.array([1 + 2j]), np.zeros((2, 0)), [np.zeros(2), "x"], {1, 2}]
MUTATIONS = ("none", "none", "none", "rank+", "rank-", "size", "nan", "inf", "dtype_str",
             "dtype_obj", "bool", "float_for_int", "out_of_range", "empty", "ragged", "bad")


def mutate(x: np.ndarray, how: str, rng: np.random.Generator, bad: Any) -> Any:
    """``x`` (one example) made wrong in the way ``how`` (``"none"``: unchanged)."""
    if how == "rank+":
        return x[None]
    if how == "rank-":  # (an empty x, itself mutated before, loses its empty axis)
        return np.array([x]) if not x.ndim else x[0] if len(x) else x.sum(axis=0)
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
        return x[:0] if x.ndim else np.zeros(0)
    if how == "ragged" and x.ndim >= 2:
        return [row.tolist()[: max(1, i)] for i, row in enumerate(x)]
    if how == "bad":
        return bad
    return x


# ------------------------------------------------------------ valid nets, typed by shape
VSIZE = st.integers(1, 5)  # sizes of valid nets
KINKED = [f for f in FUNCTIONS if f not in ("Log", "Sqrt", "Exp")]  # finite on any input


@dataclass
class Gen:
    """How to fill one input port: its length group (None: fixed shape), the offset of its
    length from the group's length, and the values ("real", "unit", "prob", ("index", n))."""

    group: int | None = None
    offset: int = 0
    values: Any = "real"


@dataclass
class NetCase:
    recipe: Any
    inputs: dict[str, Gen]  # every input port of the net, by name
    need: dict[int, int]  # group -> how many SequenceMost/Rest shortened it (min length - 1)

    def __repr__(self) -> str:
        return repr(self.recipe)


class _Ctx:
    def __init__(self, draw: Any, mode: str):
        self.draw, self.mode, self.smooth = draw, mode, mode == "smooth"
        self.inputs: dict[str, Gen] = {}
        self.specs: dict[str, Any] = {}
        self.need: dict[int, int] = {}

    def group(self) -> int:
        g = len(self.need)
        self.need[g] = 0
        return g

    def extra(self, name: str, spec: Any, gen: Gen, *more: Any) -> bool:
        """Register dangling inputs (``name, spec, gen`` triples); False, registering none,
        when a name is taken with another spec."""
        new = [(name, spec, gen)] + [tuple(more[i:i + 3]) for i in range(0, len(more), 3)]
        if any(n in self.specs and (self.specs[n], self.inputs[n]) != (s, g) for n, s, g in new):
            return False
        for n, s, g in new:
            self.specs[n], self.inputs[n] = s, g
        return True

    def state(self) -> tuple:
        return dict(self.specs), dict(self.inputs)

    def restore(self, state: tuple) -> None:
        self.specs, self.inputs = dict(state[0]), dict(state[1])


def _fn(c: _Ctx) -> str:
    return c.draw(st.sampled_from(SMOOTH if c.smooth else KINKED if c.mode == "kinks"
                                  else FUNCTIONS))


def _step(c: _Ctx, T: tuple) -> tuple[Call, tuple] | None:
    """One layer continuing a value of type ``T``: ("vec", d) | ("seq", d, group, offset) |
    ("real",). Returns (recipe, new type), or None when the drawn option does not apply."""
    draw, L = c.draw, layers
    k = draw(VSIZE)
    kind = T[0]
    option = draw(st.integers(0, 11))
    if option == 0 or kind == "real":
        return Call(L.ElementwiseLayer, _fn(c)), T
    if option == 1:
        return Call(L.DropoutLayer, draw(st.sampled_from([0.0, 0.3]))), T
    if option == 2:
        return Call(L.SoftmaxLayer, *draw(st.sampled_from([(), (0,)]))), T
    if option == 3 and kind == "vec":
        return draw(st.sampled_from([(Call(L.LinearLayer, k), ("vec", k)),
                                     (Call(L.LinearLayer, ()), ("real",)),
                                     (Call(L.SummationLayer), ("real",))]))
    if option == 4 and not c.smooth:
        f = draw(st.sampled_from(["Max", "Min", "Plus", "Times"] + ["Divide"] * (c.mode == "all")))
        return (Call(L.ThreadingLayer, f, Input2="Real"), T) if c.extra(
            "Input2", "Real", Gen()) else None
    if option == 4:
        f = draw(st.sampled_from(["Plus", "Times", "Subtract"]))
        return (Call(L.ThreadingLayer, f, Input2="Real"), T) if c.extra(
            "Input2", "Real", Gen()) else None
    if kind == "vec":
        if option == 5:
            return Call(NetChain, [Call(L.ReshapeLayer, (Automatic, 1)),
                                     Call(L.LinearLayer, k)]), ("vec", k)
        return (Call(L.DotLayer, Input2=(T[1], k)), ("vec", k)) if c.extra(
            "Input2", (T[1], k), Gen()) else None
    d, g, off = T[1:]
    if option == 3:
        return draw(st.sampled_from([(Call(L.SequenceLastLayer), ("vec", d)),
                                     (Call(L.SummationLayer), ("real",)),
                                     (Call(L.SequenceReverseLayer), T)]))
    if option == 5:
        inner = draw(st.sampled_from([Call(L.LinearLayer, k), Call(NetChain, [
            Call(L.LinearLayer, k), Call(L.ElementwiseLayer, _fn(c))])]))
        return Call(L.NetMapOperator, inner), ("seq", k, g, off)
    if option == 6:
        rnn = draw(st.sampled_from([L.BasicRecurrentLayer, L.GatedRecurrentLayer,
                                    L.LongShortTermMemoryLayer]))
        return Call(rnn, k), ("seq", k, g, off)
    if option == 7:
        return Call(L.NetFoldOperator, _fold_inner(k)), ("seq", k, g, off)
    if option == 8:
        c.need[g] = max(c.need[g], -(off - 1))
        return Call(draw(st.sampled_from([L.SequenceRestLayer, L.SequenceMostLayer]))), (
            "seq", d, g, off - 1)
    if option == 9:
        spec = ("Varying", k)
        return (Call(L.CatenateLayer, -1, Input2=spec), ("seq", d + k, g, off)) if c.extra(
            "Input2", spec, Gen(g, off)) else None
    if option == 10:  # attention: queries of a new length group, or a single query
        scorer = draw(st.sampled_from(["Bilinear", "concat", "random"] + ["Dot"] * (d == k)))
        scorer = {"concat": _concat_scorer, "random": lambda: _random_scorer(c, d, k)}.get(
            scorer, lambda: scorer)()
        single = draw(st.booleans())
        spec, gen = ((k,), Gen()) if single else (("Varying", k), Gen(c.group()))
        out = ("vec", d) if single else ("seq", d, gen.group, 0)
        return (Call(L.SequenceAttentionLayer, scorer, Query=spec), out) if c.extra(
            "Query", spec, gen) else None
    causal = draw(st.booleans())
    qspec = ("Varying", k)
    qgen = Gen(g, off) if causal else Gen(c.group())
    if not c.extra("Value", ("Varying", d), Gen(g, off), "Query", qspec, qgen):
        return None
    opts = {"mask": "Causal"} if causal else {}
    if draw(st.booleans()):
        opts["score_rescaling"] = "DimensionSqrt"
    scorer = _random_scorer(c, d, k) if draw(st.booleans()) else "Bilinear"
    return Call(L.AttentionLayer, scorer, **opts, Value=("Varying", d), Query=qspec), (
        "seq", d, qgen.group, qgen.offset)


def _divisor(c: _Ctx, d: int) -> int:
    return c.draw(st.sampled_from([a for a in range(1, d + 1) if d % a == 0]))


def _scoring_side(c: _Ctx, d: int) -> tuple[list[Call], int]:
    """0-2 steps on one side of a custom scoring net, a vector of size ``d`` that only the
    Input (or only the Query) feeds: its leading axes are (B, h, 1, n) (or (B, h, m, 1)).
    Sequence layers run over the vector reshaped to a fixed-length sequence of vectors.
    Returns the steps and the size of the vector they end with."""
    L, draw, steps = layers, c.draw, []
    for _ in range(draw(st.integers(0, 2))):
        k, option = draw(VSIZE), draw(st.integers(0, 4))
        if option == 0:
            steps.append(Call(L.ElementwiseLayer, _fn(c)))
        elif option == 1:
            steps.append(Call(L.LinearLayer, k))
            d = k
        elif option == 2:
            steps.append(Call(L.SoftmaxLayer))
        else:
            rows = _divisor(c, d)
            seq = draw(st.sampled_from(
                [Call(L.SequenceReverseLayer), Call(L.SequenceLastLayer),
                 Call(L.NetMapOperator, Call(L.LinearLayer, k)), Call(L.NetFoldOperator,
                                                                      _fold_inner(k)),
                 Call(draw(st.sampled_from([L.BasicRecurrentLayer, L.GatedRecurrentLayer,
                                            L.LongShortTermMemoryLayer])), k)]
                + [Call(L.SequenceMostLayer), Call(L.SequenceRestLayer)] * (rows > 1)))
            shape, d = (rows, d // rows), draw(VSIZE)
            steps += [Call(L.ReshapeLayer, shape), seq, Call(L.LinearLayer, d)]  # flattens
    return steps, d


def _scoring_merge(c: _Ctx, a: int, b: int) -> tuple[dict, list]:
    """Nodes and connections joining the sides "i" (size ``a``) and "q" (size ``b``) of a
    scoring net into its scalar Output: here both leading axes broadcast, (B, h, m, n)."""
    L, draw, P = layers, c.draw, lambda *x: Call(NetPort, *x)
    k, option = draw(VSIZE), draw(st.integers(0, 5))
    if option == 0:
        return {"cat": Call(L.CatenateLayer), "out": Call(L.LinearLayer, ())}, [
            (["i", "q"], "cat", "out")]
    if option == 1:
        fs = ["Plus", "Times", "Subtract"] + ["Max", "Min"] * (not c.smooth)
        return {"pi": Call(L.LinearLayer, k), "pq": Call(L.LinearLayer, k),
                "f": Call(L.ThreadingLayer, draw(st.sampled_from(fs))),
                "g": Call(L.ElementwiseLayer, _fn(c)), "out": Call(L.LinearLayer, ())}, [
            ("i", "pi"), ("q", "pq"), (["pi", "pq"], "f", "g", "out")]
    if option == 2:
        return {"pi": Call(L.LinearLayer, k), "pq": Call(L.LinearLayer, k),
                "out": Call(L.DotLayer)}, [("i", "pi"), ("q", "pq"), (["pi", "pq"], "out")]
    if option == 3:
        return {"pi": Call(L.LinearLayer, k), "pq": Call(L.LinearLayer, k),
                "t": Call(L.TotalLayer), "out": Call(L.SummationLayer)}, [
            ("i", "pi"), ("q", "pq"), (["pi", "pq"], "t", "out")]
    if option == 4:  # attention over the Input side as a sequence, queried by the Query side
        ra, rb = _divisor(c, a), _divisor(c, b)
        inner = draw(st.sampled_from(["Bilinear", _concat_scorer()]
                                     + ["Dot"] * (a // ra == b // rb)))
        return {"ri": Call(L.ReshapeLayer, (ra, a // ra)), "rq": Call(L.ReshapeLayer,
                                                                      (rb, b // rb)),
                "att": Call(L.SequenceAttentionLayer, inner), "out": Call(L.SummationLayer)}, [
            ("i", "ri", P("att", "Input")), ("q", "rq", P("att", "Query")), ("att", "out")]
    # a NetMapOperator over both sides as sequences of one length
    r = math.gcd(a, b)
    r = _divisor(c, r)
    pair = Call(NetGraph, {"cat": Call(L.CatenateLayer), "lin": Call(L.LinearLayer, ())},
                [([P("A"), P("B")], "cat", "lin")])
    return {"ri": Call(L.ReshapeLayer, (r, a // r)), "rq": Call(L.ReshapeLayer, (r, b // r)),
            "map": Call(L.NetMapOperator, pair), "out": Call(L.SummationLayer)}, [
        ("i", "ri", P("map", "A")), ("q", "rq", P("map", "B")), ("map", "out")]


def _random_scorer(c: _Ctx, d1: int, d2: int) -> Call:
    """A custom scoring net for Input vectors of size ``d1`` and Query vectors of size
    ``d2``, built from random layers: a side for each, then a merge into a scalar."""
    (si, a), (sq, b) = _scoring_side(c, d1), _scoring_side(c, d2)
    nodes, conns = _scoring_merge(c, a, b)
    identity = Call(layers.ElementwiseLayer, "Identity")
    nodes = {"i": Call(NetChain, si) if si else identity,
             "q": Call(NetChain, sq) if sq else identity, **nodes}
    return Call(NetGraph, nodes, [(Call(NetPort, "Input"), "i"), (Call(NetPort, "Query"), "q"),
                                  *conns], Input=d1, Query=d2)


@st.composite
def scoring_nets(draw: Any, mode: str = "smooth") -> tuple[Call, int, int]:
    """(recipe, d1, d2): a random custom scoring net for Input size d1 and Query size d2."""
    d1, d2 = draw(VSIZE), draw(VSIZE)
    return _random_scorer(_Ctx(draw, mode), d1, d2), d1, d2


def _chain(c: _Ctx, T: tuple, n: int) -> tuple[list[Call], tuple]:
    out = []
    while len(out) < n:
        step = _step(c, T)
        if step is not None:
            out.append(step[0])
            T = step[1]
    return out, T


def _loss(c: _Ctx, T: tuple) -> list[Call] | None:
    """A loss layer after a value of type T (its Target becomes a graph input)."""
    if T[0] == "real":
        return [Call(layers.MeanSquaredLossLayer)] if c.extra("Target", "Real", Gen()) else None
    spec = (T[1],) if T[0] == "vec" else ("Varying", T[1])
    gen = Gen() if T[0] == "vec" else Gen(T[2], T[3])
    form = c.draw(st.sampled_from(["MSE", "Index", "Binary"] + ["MAE"] * (not c.smooth)))
    if form in ("MSE", "MAE"):
        layer = layers.MeanSquaredLossLayer if form == "MSE" else layers.MeanAbsoluteLossLayer
        return [Call(layer)] if c.extra("Target", spec, gen) else None
    if form == "Binary":
        return [Call(layers.ElementwiseLayer, "Tanh"),  # no saturation: smooth gradients
                Call(layers.ElementwiseLayer, "LogisticSigmoid"), Call(
            layers.CrossEntropyLossLayer, "Binary")] if c.extra(
            "Target", spec, Gen(gen.group, gen.offset, "unit")) else None
    tspec = Index(T[1]) if T[0] == "vec" else ("Varying", Index(T[1]))
    return [Call(layers.ElementwiseLayer, "Tanh"), Call(layers.SoftmaxLayer),
            Call(layers.CrossEntropyLossLayer, "Index")] if c.extra(
        "Target", tspec, Gen(gen.group, gen.offset, ("index", T[1]))) else None


@st.composite
def valid_nets(draw: Any, mode: str = "smooth", max_len: int = 4) -> NetCase:
    """A net that builds and initializes, with a known way to make data for every input:
    a NetChain of 1-``max_len`` steps from a vector, a sequence or an embedded index
    sequence; or a NetGraph of two chains from one input merged by a Total/Threading/
    Catenate/Dot layer; optionally followed by a loss (with a "Target" input)."""
    c = _Ctx(draw, mode)
    start = draw(st.sampled_from(["vec", "seq", "seq", "embed"]))
    d = draw(VSIZE)
    if start == "vec":
        spec, T, gen = d, ("vec", d), Gen()
    else:
        g = c.group()
        T = ("seq", d, g, 0)
        spec, gen = ("Varying", d), Gen(g)
    prefix = []
    if start == "embed":
        n = draw(VSIZE)
        spec, gen = ("Varying", Index(n)), Gen(0, 0, ("index", n))
        prefix = [Call(layers.EmbeddingLayer, d, n)]
    c.inputs["Input"] = gen
    if draw(st.booleans()):  # a chain
        steps, T = _chain(c, T, draw(st.integers(1, max_len)))
        net = prefix + steps
    else:  # two branches from one input, merged
        a, Ta = _chain(c, T, draw(st.integers(0, max_len - 1)))
        state = c.state()
        b, Tb = _chain(c, T, draw(st.integers(0, max_len - 1)))
        merge = _merge(c, Ta, Tb)
        if merge is None:
            c.restore(state)  # branch b is dropped, and its inputs with it
            net, T = prefix + (a or [Call(layers.ElementwiseLayer, "Identity")]), Ta
        else:
            ends = [Call(NetChain, x) if x else Call(layers.ElementwiseLayer, "Identity")
                    for x in (a, b)]
            nodes = {"a": ends[0], "b": ends[1], "merge": merge[0]}
            conns = [(Call(NetPort, "Input"), "a"), (Call(NetPort, "Input"), "b"),
                     (["a", "b"], "merge")]
            net = prefix + [Call(NetGraph, nodes, conns)]
            T = merge[1]
    if draw(st.integers(0, 3)) == 0:
        loss = _loss(c, T)
        net += loss or []
        T = ("real",) if loss else T
    first = net[0].fn
    name = {layers.DotLayer: "Input1", layers.ThreadingLayer: "Input1",
            layers.CatenateLayer: "Input1", layers.AttentionLayer: "Key"}.get(first, "Input")
    c.inputs[name] = c.inputs.pop("Input")
    recipe = Call(NetChain, net, **{name: spec})
    if draw(st.integers(0, 2)) == 0:
        recipe = _fan_out(c, recipe, T)
    return NetCase(recipe, c.inputs, c.need)


def _fan_out(c: _Ctx, body: Call, T: tuple) -> Call:
    """``body`` (whose output has type ``T``) in a graph where its one output value feeds
    two graph outputs and two more nodes, each a bounded function to its own graph output:
    its gradient must be the sum of all four. (Bounded: so that central differences stay
    exact on nets that may already end in a loss or a power.)"""
    bounded = st.sampled_from(["Tanh", "Sin", "LogisticSigmoid"])
    tails = {name: Call(layers.ElementwiseLayer, c.draw(bounded)) for name in ("t1", "t2")}
    P = lambda p: Call(NetPort, p)  # noqa: E731
    return Call(NetGraph, {"body": body, **tails},
                [("body", P("Output")), ("body", P("Copy")), ("body", "t1", P("T1")),
                 ("body", "t2", P("T2"))])


def _merge(c: _Ctx, Ta: tuple, Tb: tuple) -> tuple[Call, tuple] | None:
    L = layers
    if Ta[0] != Tb[0] or Ta[2:] != Tb[2:]:
        return None
    if Ta == Tb:
        f = c.draw(st.sampled_from(["Total", "Plus", "Times", "Subtract"] +
                                   ["Max", "Min"] * (not c.smooth) + ["Divide"] * (c.mode == "all")))
        layer = Call(L.TotalLayer) if f == "Total" else Call(L.ThreadingLayer, f)
        if Ta[0] == "vec" and c.draw(st.booleans()):
            return Call(L.DotLayer), ("real",)
        return layer, Ta
    if Ta[0] == "vec":
        return Call(L.CatenateLayer), ("vec", Ta[1] + Tb[1])
    if Ta[0] == "seq":
        return Call(L.CatenateLayer, -1), ("seq", Ta[1] + Tb[1]) + Ta[2:]
    return None


def case_data(case: NetCase, net: Any, rng: np.random.Generator, batch: int | None) -> dict:
    """Data for every input of ``net`` (built from ``case``): one example (``batch`` None) or
    a batch whose examples have pairwise different lengths in every length group."""
    from helpers import smooth_reals

    n = 1 if batch is None else batch
    lengths = {g: rng.permutation(np.arange(1, 5))[:n] + need for g, need in case.need.items()}
    data = {}
    for port in net.input_ports:
        gen = case.inputs[port]
        dims, _ = split_shape(net.port_shape(port))
        examples = []
        for b in range(n):
            shape = tuple(int(lengths[gen.group][b]) + gen.offset if d == "Varying" else d
                          for d in dims)
            v = gen.values
            if v == "real":
                x = smooth_reals(rng, shape)
            elif v == "unit":
                x = rng.uniform(0.1, 0.9, shape)
            else:
                x = rng.integers(0, v[1], shape)
            examples.append(x)
        data[port] = examples[0] if batch is None else examples
    return data
