"""export_onnx's interface and mistakes: the model's inputs, outputs, symbolic dims and opset;
the scoring net's broadcasting in the exported graph; a layer without a translation, an
uninitialized net, a bad opset, a missing onnx package, a bad path — each a NetError naming
what is wrong."""

from __future__ import annotations

import sys

import numpy as np
import pytest
from helpers import randomized

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")
from onnx_helpers import check_two_batches, export  # noqa: E402

from netgraph import (  # noqa: E402
    ElementwiseLayer,
    EmbeddingLayer,
    GatedRecurrentLayer,
    Index,
    Layer,
    LinearLayer,
    NetChain,
    NetError,
    NetGraph,
    NetInitialize,
    NetMapOperator,
    NetPort,
    SequenceAttentionLayer,
    ThreadingLayer,
    export_onnx,
)


def _dims(value_info) -> list:
    return [d.dim_param or d.dim_value for d in value_info.type.tensor_type.shape.dim]


def test_interface_names_types_and_symbolic_dims(tmp_path):
    net = NetInitialize(NetGraph(
        {"embed": EmbeddingLayer(3, 5), "gru": GatedRecurrentLayer(4)},
        [(NetPort("Input"), "embed", "gru"), (NetPort("State"), NetPort("gru", "State")),
         (NetPort("gru", "State"), NetPort("State"))], Input=("Varying", Index(5))), seed=0)
    model, _ = export(net, tmp_path / "m.onnx")
    ins = {i.name: i for i in model.graph.input}
    outs = {o.name: o for o in model.graph.output}
    assert list(ins) == ["Input", "Input_lengths", "State"]
    assert set(outs) == {"Output", "Output_lengths", "State_out"}
    INT64, FLOAT = onnx.TensorProto.INT64, onnx.TensorProto.FLOAT
    assert ins["Input"].type.tensor_type.elem_type == INT64
    assert ins["State"].type.tensor_type.elem_type == FLOAT
    assert _dims(ins["Input"]) == ["batch", "Input_padded"]
    assert _dims(ins["Input_lengths"]) == ["batch"]
    assert _dims(ins["State"]) == ["batch", 4]
    assert _dims(outs["Output"]) == ["batch", "Output_padded", 4]
    assert _dims(outs["State_out"]) == ["batch", 4]
    assert [o.version for o in model.opset_import] == [13]
    # the arrays are initializers named by their paths (the GRU's gate blocks stacked)
    inits = {t.name for t in model.graph.initializer}
    assert {"embed/Weights", "gru:W", "gru:R", "gru:B"} <= inits


def test_explicit_opsets(tmp_path):
    net = randomized(NetChain([NetMapOperator(LinearLayer(3)), ElementwiseLayer("GELU")],
                              Input=("Varying", 2)))
    rng = np.random.default_rng(0)
    batch = {"Input": [rng.standard_normal((n, 2)) for n in (2, 5, 1)]}
    for opset in (13, 17, onnx.defs.onnx_opset_version()):
        session = check_two_batches(net, tmp_path / f"m{opset}.onnx", [batch], opset=opset)
        assert session is not None
        assert [o.version for o in onnx.load(str(tmp_path / f"m{opset}.onnx")).opset_import] \
            == [opset]
    with pytest.raises(NetError, match="opset 12 is too low; the net needs opset 13"):
        export_onnx(net, tmp_path / "low.onnx", opset=12)
    with pytest.raises(NetError, match="newer than the newest opset"):
        export_onnx(net, tmp_path / "high.onnx", opset=onnx.defs.onnx_opset_version() + 1)
    with pytest.raises(NetError, match="opset must be Automatic or an int, got '13'"):
        export_onnx(net, tmp_path / "str.onnx", opset="13")
    assert not (tmp_path / "low.onnx").exists()


def test_custom_scoring_net_is_lowered_with_netgraphs_broadcasting(tmp_path):
    """The Input-only part of the scoring net (W e) sees (batch, 1 head, 1 query, n, d):
    once per key position; the Query-only part (U q) sees (batch, 1, m, 1, d)."""
    scoring = NetGraph({"W": LinearLayer(6, biases=False), "U": LinearLayer(6, biases=False),
                        "add": ThreadingLayer("Plus"), "tanh": ElementwiseLayer("Tanh"),
                        "v": LinearLayer((), biases=False)},
                       [(NetPort("Input"), "W"), (NetPort("Query"), "U"),
                        (["W", "U"], "add", "tanh", "v")])
    net = randomized(SequenceAttentionLayer(scoring, Input=("Varying", 3), Query=("Varying", 2)))
    export_onnx(net, tmp_path / "a.onnx")
    model = onnx.shape_inference.infer_shapes(onnx.load(str(tmp_path / "a.onnx")), strict_mode=True)
    shapes = {v.name: _dims(v) for v in model.graph.value_info}
    side = {}
    for node in model.graph.node:
        if node.op_type == "MatMul" and node.input[1].startswith("ScoringNet/"):
            side[node.input[1].split("/")[1]] = shapes[node.input[0]]
    assert side["W"][1:3] == [1, 1] and side["W"][4] == 3  # (batch, 1, 1, n, 3)
    assert side["U"][1] == 1 and side["U"][3] == 1 and side["U"][4] == 2  # (batch, 1, m, 1, 2)


def _own_layers() -> dict:
    """A user's own layer (``y = 2 x``) and a subclass of a library layer, which may compute
    something else and so is not exported as its base class. Defined in a function, so that
    they stay out of netgraph's registry of layer classes."""

    class Doubler(Layer):
        def __init__(self, **ports):
            super().__init__({}, ports)

        def rules(self, S, path, ports):
            S.unify(ports["Input"], ports["Output"], "Input", "Output")
            return {}

        def forward(self, ins, arrays, ctx):
            return {"Output": 2 * ins["Input"]}, lambda g: ({"Input": 2 * g["Output"]}, {})

    class MyLinear(LinearLayer):
        pass

    return {"Doubler": Doubler(), "MyLinear": MyLinear(3)}


@pytest.mark.parametrize("name", ["Doubler", "MyLinear"])
def test_a_layer_without_translation_is_named(name, tmp_path):
    inner = _own_layers()[name]
    net = NetInitialize(NetGraph({"outer": NetGraph({"mine": inner, "t": ElementwiseLayer(
        "Tanh")}, [("mine", "t")])}, [], Input=3), seed=0)
    assert np.isfinite(net(np.ones(3))).all()  # the net itself runs
    with pytest.raises(NetError, match=rf"{name} at node 'outer'/'mine' has no ONNX "
                                       "translation"):
        export_onnx(net, tmp_path / "x.onnx")
    assert not (tmp_path / "x.onnx").exists()


def test_an_uninitialized_net_is_refused(tmp_path):
    net = NetChain({"a": LinearLayer(3), "b": LinearLayer(2)}, Input=4)
    with pytest.raises(NetError, match=r"uninitialized arrays \(a/Weights.*node 'a'.*"
                                       "call NetInitialize"):
        export_onnx(net, tmp_path / "x.onnx")


def test_without_onnx_installed(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnx", None)  # import onnx raises ImportError
    net = randomized(LinearLayer(2, Input=3))
    with pytest.raises(NetError, match=r'needs the onnx package: pip install "netgraph\[onnx\]"'):
        export_onnx(net, tmp_path / "x.onnx")


def test_bad_targets_and_arguments(tmp_path):
    net = randomized(LinearLayer(2, Input=3))
    with pytest.raises(NetError, match="is a directory"):
        export_onnx(net, tmp_path)
    with pytest.raises(NetError, match="cannot save"):
        export_onnx(net, tmp_path / "missing" / "x.onnx")
    with pytest.raises(NetError, match="needs a net, got dict"):
        export_onnx({"not": "a net"}, tmp_path / "x.onnx")
    with pytest.raises(NetError, match="must be a str or os.PathLike"):
        export_onnx(net, 3)


def test_names_that_would_clash_are_refused(tmp_path):
    net = randomized(NetGraph({"a": ElementwiseLayer("Tanh"), "b": ElementwiseLayer("Tanh")},
                              [(NetPort("X"), "a", NetPort("Y")),
                               (NetPort("X_lengths"), "b", NetPort("Z"))],
                              X=("Varying", 2), X_lengths=2))
    with pytest.raises(NetError, match="would both be named 'X_lengths'"):
        export_onnx(net, tmp_path / "x.onnx")


def test_importing_netgraph_does_not_import_onnx():
    import subprocess

    code = "import sys, netgraph; netgraph.export_onnx; print('onnx' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, cwd=str(__import__("pathlib").Path(__file__).parents[1]))
    assert out.stdout.strip() == "False"


def test_every_layer_of_the_library_has_a_lowering():
    """A layer added to the library without an ONNX lowering fails here (and export_onnx
    would refuse nets holding it)."""
    from netgraph import layers
    from netgraph.onnx.table import TABLE

    classes = {getattr(layers, name) for name in layers.__all__
               if isinstance(getattr(layers, name), type) and issubclass(getattr(layers, name),
                                                                        Layer)}
    assert classes and not classes - set(TABLE), sorted(c.__name__ for c in classes - set(TABLE))


def test_a_lowering_that_needs_a_newer_opset_raises_the_automatic_one(tmp_path, monkeypatch):
    """Automatic is the highest opset any lowering of the net asks for; an explicit lower one
    is refused naming the node that needs more."""
    from netgraph.layers import ElementwiseLayer as Elementwise
    from netgraph.onnx.lower import Lowering
    from netgraph.onnx.table import TABLE

    plain = TABLE[Elementwise]

    def needs_17(c):
        c.require(17, "an operator of opset 17")
        return plain.fn(c)

    monkeypatch.setitem(TABLE, Elementwise, Lowering(needs_17, plain.clean))
    net = randomized(NetChain({"lin": LinearLayer(3), "act": ElementwiseLayer("Tanh")}, Input=2))
    export_onnx(net, tmp_path / "a.onnx")
    assert [o.version for o in onnx.load(str(tmp_path / "a.onnx")).opset_import] == [17]
    with pytest.raises(NetError, match=r"opset 16 is too low; the net needs opset 17 for an "
                                       r"operator of opset 17 \(ElementwiseLayer at node 'act'\)"):
        export_onnx(net, tmp_path / "b.onnx", opset=16)
    without = randomized(LinearLayer(3, Input=2))
    export_onnx(without, tmp_path / "c.onnx")
    assert [o.version for o in onnx.load(str(tmp_path / "c.onnx")).opset_import] == [13]
