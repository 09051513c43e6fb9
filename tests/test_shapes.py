"""Shape specs: every form of the SPEC's table, the one canonical display form, and the
rejection of invalid specs with NetError."""

import numpy as np
import pytest
from tolerance import assert_close

from netgraph import (
    All,
    Automatic,
    ElementwiseLayer,
    EmbeddingLayer,
    Index,
    LinearLayer,
    MeanSquaredLossLayer,
    NetChain,
    NetError,
    NetExtract,
    NetGraph,
    NetInitialize,
    NetReplacePart,
    PortError,
    SequenceLastLayer,
    Varying,
)

# spec given to a port -> its canonical display
VALID = [
    (3, (3,)),
    (np.int64(5), (5,)),
    ((5, 7), (5, 7)),
    ([5, 7], (5, 7)),
    ((3, 5, 7), (3, 5, 7)),
    ((5, Automatic), (5, Automatic)),
    ((None, 7), (Automatic, 7)),
    (("Varying", 3), ("Varying", 3)),
    (("Varying", 3, 5), ("Varying", 3, 5)),
    (("Varying", Automatic), ("Varying", Automatic)),
    (("Varying",), ("Varying",)),
    ("Varying", ("Varying",)),
    (Varying, ("Varying",)),
    (("Varying", Index(4)), ("Varying", Index(4))),
    ((3, "Integer"), (3, "Integer")),
    ((3, "Real"), (3,)),
    ((3, Index(7)), (3, Index(7))),
    ("Real", "Real"),
    ((), "Real"),
    ("Integer", "Integer"),
    (Index(4), Index(4)),
    (Automatic, Automatic),
    (None, Automatic),
]


@pytest.mark.parametrize("spec, shown", VALID, ids=[repr(s) for s, _ in VALID])
def test_every_spec_form_displays_canonically(spec, shown):
    # a loss layer takes any shape (an ElementwiseLayer computes reals, so no integer input)
    layer = MeanSquaredLossLayer(Input=spec)
    got = NetExtract(layer, "Input")
    assert got == shown
    assert type(got) is type(shown)  # a tuple for every array, never a list or an int
    # the target has the input's shape
    assert NetExtract(layer, "Target") == shown


@pytest.mark.parametrize("spec, shown", VALID, ids=[repr(s) for s, _ in VALID])
def test_display_form_is_a_valid_spec_with_the_same_meaning(spec, shown):
    again = MeanSquaredLossLayer(Input=shown)
    assert NetExtract(again, "Input") == shown


def test_canonical_examples_of_the_spec():
    assert NetExtract(ElementwiseLayer("Sin", Input=("Varying", 2)), "Input") == ("Varying", 2)
    assert NetExtract(LinearLayer(3, Input=5), "Output") == (3,)
    assert NetExtract(LinearLayer(3, Input=5), "Output") != 3
    assert NetExtract(ElementwiseLayer("Sin"), "Input") is Automatic
    # a net's own ports display the same way
    chain = NetChain([LinearLayer(7), "Tanh"], Input=(3, 5))
    assert NetExtract(chain, "Input") == (3, 5)
    assert NetExtract(chain, "Output") == (7,)
    # a port whose rank is known but whose size is not
    assert NetExtract(NetChain([LinearLayer(7)]), "Input") == (Automatic,)


def test_constants():
    assert Varying == "Varying"
    assert repr(Automatic) == "Automatic" and repr(All) == "All"
    assert Automatic is not All
    assert Index(5) == Index(5) and Index(5) != Index(3)
    assert hash(Index(np.int64(5))) == hash(Index(5)) and Index(np.int64(5)).n == 5
    assert repr(Index(5)) == "Index(5)"
    assert len({Index(3), Index(3), Index(5)}) == 2


def test_varying_vector_of_an_embedding_is_a_sequence_of_indices():
    emb = EmbeddingLayer(3, 5, Input="Varying")
    assert NetExtract(emb, "Input") == ("Varying", Index(5))
    assert NetExtract(emb, "Output") == ("Varying", 3)
    # Index(n) given by the user fixes the number of rows
    emb = NetInitialize(EmbeddingLayer(3, Input=("Varying", Index(7))), seed=0)
    assert NetExtract(emb, "Weights").shape == (7, 3)
    # a scalar index gives one vector
    assert NetExtract(EmbeddingLayer(3, Input=Index(7)), "Output") == (3,)


def test_rank_above_one_flattens_into_a_linear_layer():
    lin = NetInitialize(LinearLayer(3, Input=(5, 7)), seed=0)
    assert NetExtract(lin, "Input") == (5, 7)
    assert NetExtract(lin, "Weights").shape == (3, 35)
    x = np.arange(35.0).reshape(5, 7) / 35
    W, b = NetExtract(lin, "Weights").astype(np.float64), NetExtract(lin, "Biases")
    assert_close(lin(x), W @ x.reshape(-1) + b, dtype=np.float32, reduction=36)


def test_output_specs_are_shapes_too():
    assert NetExtract(LinearLayer(Output=5, Input=3), "Output") == (5,)
    assert NetExtract(SequenceLastLayer(Output=7), "Input") == ("Varying", 7)
    lin = NetInitialize(LinearLayer(Output=5, Input=3), seed=1)
    assert NetExtract(lin, "Weights").shape == (5, 3)


INVALID = [
    (0, "0"),
    (-3, "-3"),
    (2.5, "2.5"),
    (True, "True"),
    (np.bool_(True), "True"),
    ("foo", "foo"),
    ("varying", "varying"),
    ("Index", "Index"),
    (("Varying", "Varying"), "Varying"),
    ((3, "Varying"), "Varying"),
    ((3, "Real", 4), "Real"),
    (("Real", 3), "Real"),
    ((Index(3), 4), "Index(3)"),
    ((3, -1), "-1"),
    ((3, 0), "0"),
    ((3, 2.5), "2.5"),
    ((3, True), "True"),
    ({"a": 1}, "dict"),
    ({3}, "set"),
    (object(), "object"),
]


@pytest.mark.parametrize("spec, named", INVALID, ids=[repr(s) for s, _ in INVALID])
def test_invalid_specs_raise_net_error_naming_the_spec(spec, named):
    with pytest.raises(NetError) as e:
        ElementwiseLayer("Tanh", Input=spec)
    assert named in str(e.value)
    # the same check applies to graph ports, chains and replacements
    with pytest.raises(NetError):
        NetChain([ElementwiseLayer("Tanh")], Input=spec)
    with pytest.raises(NetError):
        NetGraph({"t": ElementwiseLayer("Tanh")}, [], Output=spec)
    with pytest.raises(NetError):
        NetReplacePart(ElementwiseLayer("Tanh"), {"Input": spec})


@pytest.mark.parametrize("bad", [0, -2, 2.5, True, "3", None])
def test_invalid_index_raises_net_error(bad):
    with pytest.raises(NetError, match="Index"):
        Index(bad)


def test_a_shape_for_a_port_that_does_not_exist():
    with pytest.raises(NetError, match="Query"):
        ElementwiseLayer("Tanh", Query=3)
    with pytest.raises(PortError, match="Query"):
        NetChain([ElementwiseLayer("Tanh")], Query=3)


def test_each_spec_form_accepts_matching_data():
    x = np.array([0.5, -1.5, 2.0])
    # (3,), "Varying", ("Varying", 2), "Real", (2, 3)
    assert_close(ElementwiseLayer("Tanh", Input=3)(x), np.tanh(x), dtype=np.float32)
    assert_close(ElementwiseLayer("Tanh", Input="Varying")(x), np.tanh(x), dtype=np.float32)
    seq = np.arange(10.0).reshape(5, 2) / 10
    assert_close(ElementwiseLayer("Sin", Input=("Varying", 2))(seq), np.sin(seq), dtype=np.float32)
    got = ElementwiseLayer("Exp", Input="Real")(0.25)
    assert np.ndim(got) == 0
    assert_close(got, np.exp(0.25), dtype=np.float32)
    mat = np.arange(6.0).reshape(2, 3) / 6
    assert_close(ElementwiseLayer("Cos", Input=(2, 3))(mat), np.cos(mat), dtype=np.float32)
    # Index(n): integers in 0..n-1
    emb = NetInitialize(EmbeddingLayer(3, Input=Index(4)), seed=0)
    W = NetExtract(emb, "Weights")
    np.testing.assert_array_equal(emb(3), W[3])
