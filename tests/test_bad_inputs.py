"""Bad data and bad selections: each raises exactly the documented error class with a message
naming the port (or option) involved, never a bare NumPy/IndexError/KeyError/TypeError, and
leaves the net exactly as it was."""

import numpy as np
import pytest
from helpers import assert_same_net, net_snapshot
from tolerance import assert_close

from netgraph import (
    ElementwiseLayer,
    EmbeddingLayer,
    Index,
    InputDataError,
    LinearLayer,
    NetArrayGradient,
    NetError,
    NetGraph,
    NetInitialize,
    NetPort,
    NetPortGradient,
    PortError,
    SequenceLastLayer,
    TotalLayer,
)

X = np.linspace(-1, 1, 5)
S = np.arange(8.0).reshape(4, 2) / 8


def _nets():
    two = NetGraph({"a": LinearLayer(3, Input=5), "t": ElementwiseLayer("Tanh"),
                    "s": SequenceLastLayer()}, [(NetPort("Seq"), "t", "s")], Seq=("Varying", 2))
    return {
        "two": NetInitialize(two, seed=0),
        "emb": NetInitialize(EmbeddingLayer(3, 5), seed=1),
        "idx": NetInitialize(EmbeddingLayer(3, Input=Index(5)), seed=2),
        "tot": NetGraph({"t": TotalLayer()}, [], Input1=("Varying", 3), Input2=("Varying", 3)),
        "real": ElementwiseLayer("Exp", Input="Real"),
        "uninit": LinearLayer(3, Input=5),
    }


NETS = _nets()


def ok(*more, **extra):
    data = {"Input": X, "Seq": S, **extra}
    for m in more:
        data.update(m)
    return data


def gen():
    return (v for v in X)


# (id, net, data, what, dtype, error class, substrings the message must contain)
CASES = [
    ("unknown port", "two", ok(Zap=X), None, None, InputDataError, ["'Zap'"]),
    ("unknown key type", "two", ok({3: X}), None, None, InputDataError, ["3"]),
    ("interior port as data key", "two", {"Input": X, "Seq": S, NetPort("a", "Input"): X},
     None, None, InputDataError, ["'a'"]),
    ("missing port", "two", {"Input": X}, None, None, InputDataError, ["'Seq'"]),
    ("bare value for two inputs", "two", X, None, None, InputDataError, ["'Input'", "'Seq'"]),
    ("rank too high", "two", ok(Input=np.ones((2, 2, 5))), None, None, InputDataError,
     ["'Input'", "(5,)"]),
    ("scalar for a vector", "two", ok(Input=3.0), None, None, InputDataError, ["'Input'"]),
    ("wrong size", "two", ok(Input=np.ones(4)), None, None, InputDataError, ["'Input'", "(4,)"]),
    ("wrong element size", "two", ok(Seq=np.ones((4, 3))), None, None, InputDataError,
     ["'Seq'", "('Varying', 2)"]),
    ("string", "two", ok(Input="abcde"), None, None, InputDataError, ["'Input'"]),
    ("list of strings", "two", ok(Input=list("abcde")), None, None, InputDataError, ["'Input'"]),
    ("None", "two", ok(Input=None), None, None, InputDataError, ["'Input'"]),
    ("list of None", "two", ok(Input=[None] * 5), None, None, InputDataError, ["'Input'"]),
    ("dict as a value", "two", ok(Input={"a": 1}), None, None, InputDataError, ["'Input'"]),
    ("object array", "two", ok(Input=np.array([1, "a", None, 2, 3], dtype=object)), None, None,
     InputDataError, ["'Input'"]),
    ("complex", "two", ok(Input=X * 1j), None, None, InputDataError, ["'Input'"]),
    ("generator", "two", ok(Input=gen()), None, None, InputDataError, ["'Input'"]),
    ("NaN", "two", ok(Input=np.where(X > 0, np.nan, X)), None, None, InputDataError,
     ["'Input'", "NaN"]),
    ("Inf in a sequence", "two", ok(Seq=np.where(S > 0.5, np.inf, S)), None, None,
     InputDataError, ["'Seq'", "Inf"]),
    ("empty sequence", "two", ok(Seq=np.ones((0, 2))), None, None, InputDataError,
     ["'Seq'", "empty"]),
    ("empty list", "two", ok(Seq=[]), None, None, InputDataError, ["'Seq'", "empty"]),
    ("empty sequence in a batch", "two", ok(Input=[X, X], Seq=[S, np.ones((0, 2))]), None,
     None, InputDataError, ["'Seq'", "empty"]),
    ("empty batch", "two", ok(Input=np.ones((0, 5)), Seq=np.ones((0, 4, 2))), None, None,
     InputDataError, ["'Input'", "empty"]),
    ("batches of unequal length", "two", ok(Input=[X, X, X], Seq=[S, S]), None, None,
     InputDataError, ["'Input'", "'Seq'", "3", "2"]),
    ("single mixed with batch", "two", ok(Seq=[S, S]), None, None, InputDataError,
     ["'Input'", "'Seq'"]),
    ("ragged fixed-size examples", "two", ok(Input=[X, X[:2]], Seq=[S, S]), None, None,
     InputDataError, ["'Input'", "example 1"]),
    ("ragged nested lists", "two", ok(Seq=[[1.0, 2.0], [3.0]]), None, None, InputDataError,
     ["'Seq'"]),
    ("index out of range", "emb", [0, 5, 1], None, None, InputDataError, ["'Input'", "Index(5)"]),
    ("negative index", "idx", -1, None, None, InputDataError, ["'Input'", "Index(5)"]),
    ("non-integer index", "emb", [0, 1.5], None, None, InputDataError, ["'Input'", "integer"]),
    ("index given as text", "idx", "2", None, None, InputDataError, ["'Input'"]),
    ("tied lengths differ", "tot", {"Input1": np.ones((4, 3)), "Input2": np.ones((5, 3))}, None,
     None, InputDataError, ["'Input1'", "'Input2'"]),
    ("scalar port given a matrix", "real", np.ones((2, 3)), None, None, InputDataError,
     ["'Input'", "'Real'"]),
    ("seed for an input", "two", ok({NetPortGradient("Input"): X}), NetPortGradient("Input"),
     None, InputDataError, ["'Input'", "not an output"]),
    ("seed for an unknown port", "two", ok({NetPortGradient("Zap"): X}),
     NetPortGradient("Input"), None, InputDataError, ["'Zap'"]),
    ("seed of the wrong shape", "two", ok({NetPortGradient("Output1"): np.ones(4)}),
     NetPortGradient("Input"), None, InputDataError, ["Output1", "(4,)"]),
    ("seed with NaN", "two", ok({NetPortGradient("Output1"): np.full(3, np.nan)}),
     NetPortGradient("Input"), None, InputDataError, ["Output1", "NaN"]),
    ("seed batch for one example", "two", ok({NetPortGradient("Output1"): np.ones((2, 3))}),
     NetPortGradient("Input"), None, InputDataError, ["Output1"]),
    ("integer dtype", "two", ok(), None, np.int32, NetError, ["dtype"]),
    ("unknown dtype", "two", ok(), None, "foo", NetError, ["dtype", "foo"]),
    ("float16", "two", ok(), None, np.float16, NetError, ["dtype"]),
    ("no such output", "two", ok(), "Nope", None, PortError, ["'Nope'"]),
    ("no such node", "two", ok(), NetPort("zz", "Output"), None, PortError, ["zz"]),
    ("no such interior port", "two", ok(), NetPort("a", "Nope"), None, PortError, ["'Nope'"]),
    ("no such nested node", "two", ok(), NetPort(("a", "x"), "Output"), None, PortError, ["x"]),
    ("node position out of range", "two", ok(), NetPort(7, "Output"), None, PortError, ["7"]),
    ("gradient of no input", "two", ok(), NetPortGradient("Nope"), None, PortError, ["'Nope'"]),
    ("gradient of an output", "two", ok(), NetPortGradient("Output1"), None, PortError,
     ["'Output1'"]),
    ("no such array", "two", ok(), NetArrayGradient(["a", "Nope"]), None, PortError, ["Nope"]),
    ("array path out of range", "two", ok(), NetArrayGradient([7, "Weights"]), None, PortError,
     ["7"]),
    ("a bad target inside a list", "two", ok(), ["Output1", 17], None, PortError, ["17"]),
    ("uninitialized", "uninit", X, None, None, NetError, ["NetInitialize", "Weights"]),
]


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_bad_input(case):
    _, key, data, what, dtype, cls, named = case
    net = NETS[key]
    before = net_snapshot(net)
    kwargs = {} if dtype is None else {"dtype": dtype}
    with pytest.raises(NetError) as e:
        net(data, what, **kwargs)
    assert type(e.value) is cls, f"{type(e.value).__name__}: {e.value}"
    for part in named:
        assert part in str(e.value), f"{part!r} not in {str(e.value)!r}"
    assert_same_net(net, before)


def test_the_table_is_large_enough():
    assert len(CASES) >= 20
    assert {c[5] for c in CASES} == {InputDataError, NetError, PortError}


def test_nets_still_work_after_every_bad_input():
    for case in CASES:
        try:
            NETS[case[1]](case[2], case[3], **({} if case[4] is None else {"dtype": case[4]}))
        except NetError:
            pass
    out = NETS["two"](ok())
    assert_close(out["Output2"], np.tanh(S[-1]), dtype=np.float32)
    fresh = _nets()["two"]
    np.testing.assert_array_equal(out["Output1"], fresh(ok())["Output1"])
