"""Declarative layer signatures (netgraph/signature.py): parsing, and the constraints each
form of dim stands for, checked through layers that use them."""

from __future__ import annotations

import numpy as np
import pytest

from netgraph import (
    Automatic,
    ElementwiseLayer,
    GatedRecurrentLayer,
    Index,
    NetChain,
    NetExtract,
    NetInitialize,
    SequenceMostLayer,
    ShapeError,
)
from netgraph.extend import Int, Layer, Params, where
from netgraph.signature import parse_signature


class TableParams(Params):
    n: Int | None = None


class Table(Layer):
    """A test layer exercising every form: ``Input[*t, ...x]:Index(c)`` (indices), a param
    letter ``n``, a plain letter ``k``, an int, and a scalar output."""

    Params = TableParams
    signature = ("Input[*t, ...x]:Index(c), Scale[k] -> Output[*t, ...x, n]:Real, "
                 "Count[]:Real; Rows[c, n], Mix[n, k], Three[3]")
    array_init = {"Rows": "weights", "Mix": "weights", "Three": "zeros"}

    def __init__(self, n=None, **ports):
        super().__init__({"n": n}, ports)

    def rules(self, S, path, ports):
        SEEN.append(S.show_dims((S.size_var(path, "t"), S.size_var(path, "n"))))
        return {}


SEEN: list = []  # what rules saw of the letters t and n


def test_parse_reads_every_part():
    sig = parse_signature(Table.signature)
    assert [e.name for e in sig.inputs] == ["Input", "Scale"]
    assert [e.name for e in sig.outputs] == ["Output", "Count"]
    assert [e.name for e in sig.arrays] == ["Rows", "Mix", "Three"]
    assert sig.inputs[0].rest == "x" and sig.inputs[0].elem == "Index"
    assert sig.inputs[0].index_of == "c"
    assert [(d.kind, d.name) for d in sig.inputs[0].dims] == [("seq", "t"), ("rest", "x")]
    assert sig.outputs[1].dims == () and sig.real_outputs() == ("Output", "Count")
    assert sig.arrays[2].dims[0].value == 3
    assert parse_signature("Input -> Output").inputs[0].dims is None


@pytest.mark.parametrize("text, words", [
    ("Input[k] Output[n]", "exactly one '->'"),
    ("Input[k] -> Output[n] -> Loss[]", "exactly one '->'"),
    ("Input[...a, ...b] -> Output[n]", "at most one '...'"),
    ("Input[k] -> Output[n]; Weights[...x]", "array Weights"),
    ("Input[k] -> Output[n]; Weights:Real", "array Weights"),
    ("Input[k, -1] -> Output[n]", "bad dimension '-1'"),
    ("Input[k] Target[k] -> Output[n]", "expected ','"),
])
def test_a_malformed_signature_fails_when_the_class_is_defined(text, words):
    with pytest.raises(ValueError, match=words) as e:
        type("Broken", (Layer,), {"signature": text})
    assert "Broken" in str(e.value)


def test_every_dim_form_constrains_the_ports_and_arrays():
    SEEN.clear()
    layer = Table(5, Input=("Varying", 2, Index(7)), Scale=3)
    assert SEEN[0] == ("Varying", 5)  # rules see the letters' dims (before solving)
    assert NetExtract(layer, "Output") == ("Varying", 2, 5)  # *t and ...x carried, n = 5
    assert NetExtract(layer, "Count") == "Real"
    init = NetInitialize(layer, seed=0)
    assert NetExtract(init, "Rows").shape == (7, 5)  # c from Index(7)
    assert NetExtract(init, "Mix").shape == (5, 3) and NetExtract(init, "Three").shape == (3,)
    # the other way round: the rows give the element type of the indices
    back = Table(Input=("Varying", 2), Output=("Varying", 2, 4), Scale=3)
    assert NetExtract(back, "Input") == ("Varying", 2) and NetExtract(back, "Rows") is None
    assert NetExtract(NetInitialize(Table(4, Input=(3, Index(6)), Scale=2), seed=0),
                      "Rows").shape == (6, 4)


def test_index_annotation_refuses_reals_and_other_sizes():
    with pytest.raises(ShapeError) as e:
        NetChain({"e": ElementwiseLayer("Tanh"), "t": Table(5, Scale=3)}, Input=(4, 2))
    assert "port 'Input' of node 't'" in str(e.value) and "reads indices (Index(c))" in str(e.value)
    assert "it holds reals (from Input=(4, 2) of the graph at net)" in str(e.value)


def test_a_rest_alone_shares_the_element_type():
    with pytest.raises(ShapeError) as e:
        ElementwiseLayer("Tanh", Input=(3, Index(4)))
    assert "Index(4)" in str(e.value) and "'Real'" in str(e.value)


def test_the_message_quotes_the_signature_entry():
    with pytest.raises(ShapeError) as e:
        GatedRecurrentLayer(3, Input=5)
    msg = str(e.value)
    assert msg.startswith(f"{where((), 'Input')} has shape (5,)")
    assert "GatedRecurrentLayer(n=3) at net takes a sequence Input[*t, k]" in msg
    assert "('Varying', Automatic)" in msg


def test_sequence_axes_are_varying_and_letters_tie_them():
    most = SequenceMostLayer(Input=(5, 3))
    assert NetExtract(most, "Output") == (4, 3)  # the rule on t and u
    assert NetExtract(SequenceMostLayer(), "Input") is Automatic
    gru = GatedRecurrentLayer(3, Input=("Varying", 2))
    assert NetExtract(gru, "Output") == ("Varying", 3)
    x = np.ones((4, 2), np.float32)
    assert NetInitialize(gru, seed=0)(x).shape == (4, 3)
