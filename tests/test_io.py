"""save/load round trips: every layer class (the contract table plus attention, recurrent and
loss nets), alone and in graphs, initialized or not; bit-identical arrays, outputs and
gradients; shapes and structure preserved. Atomic writes. Damaged, tampered and foreign files
raise ``NetError`` saying what is wrong, and loading never unpickles."""

from __future__ import annotations

import io
import json
import os
import pickle
import zipfile

import numpy as np
import pytest
from helpers import array_paths, assert_same_net, randomized
from layer_cases import CASES, FIXED_BATCH, SINGLE_LENGTH

import netgraph
import netgraph.layers as layers
from netgraph import (
    AttentionLayer,
    CatenateLayer,
    CrossEntropyLossLayer,
    DotLayer,
    ElementwiseLayer,
    EmbeddingLayer,
    GatedRecurrentLayer,
    Index,
    LinearLayer,
    LongShortTermMemoryLayer,
    MeanAbsoluteLossLayer,
    MeanSquaredLossLayer,
    NetArrayGradient,
    NetChain,
    NetError,
    NetExtract,
    NetFoldOperator,
    NetGraph,
    NetInitialize,
    NetMapOperator,
    NetPort,
    NetReplacePart,
    NetTrain,
    PortError,
    SequenceAttentionLayer,
    SequenceLastLayer,
    ShapeError,
    SoftmaxLayer,
    ThreadingLayer,
    load,
    save,
)
from netgraph.tree import walk

LENS = (4, 2, 6)


# ------------------------------------------------------------------------ checks
def roundtrip(net, tmp_path, name="model.wlnet"):
    save(net, tmp_path / name)
    return load(str(tmp_path / name))


def assert_bits(a, b, what=""):
    """Same dtype, shape and bytes (NaN payloads and signed zeros included)."""
    if isinstance(a, list):
        assert isinstance(b, list) and len(a) == len(b), what
        for x, y in zip(a, b, strict=True):
            assert_bits(x, y, what)
        return
    a, b = np.asarray(a), np.asarray(b)
    assert (a.dtype, a.shape) == (b.dtype, b.shape), what
    np.testing.assert_array_equal(a, b, err_msg=what)
    assert a.tobytes() == b.tobytes(), what


def assert_same_results(a, b, data):
    ports = list(a.output_ports)
    for dtype in (np.float32, np.float64):
        assert_bits(a(data, ports, dtype=dtype), b(data, ports, dtype=dtype), str(dtype))
    grads = [NetArrayGradient(list(p)) for p in array_paths(a)]
    if grads:
        assert_bits(a(data, grads), b(data, grads), "array gradients")


def check(net, data, tmp_path):
    """Round trip of ``net`` uninitialized and randomized: structure, arrays, results."""
    assert_same_net(net, roundtrip(net, tmp_path))
    full = randomized(net, seed=3)
    back = roundtrip(full, tmp_path)
    assert_same_net(full, back)
    assert_same_results(full, back, data)
    fresh = roundtrip(net, tmp_path)  # initializing after loading = initializing the original
    assert_same_net(NetInitialize(net, seed=5), NetInitialize(fresh, seed=5))


# --------------------------------------------------- the contract table, reused
@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
@pytest.mark.parametrize("where", ["alone", "in-graph"])
def test_contract_layers_round_trip(case, where, tmp_path):
    rng = np.random.default_rng(1)
    lengths = case.lengths or (SINGLE_LENGTH,) * FIXED_BATCH
    examples = [case.sample(rng, T) for T in lengths]
    join = list if case.lengths else np.stack
    data = {p: join([ex[p] for ex in examples]) for p in examples[0]}
    net = case.make()
    if where == "in-graph":
        net = NetGraph({"layer": net}, [])
    check(net, data, tmp_path)


# ------------------------------------------------ attention, recurrent, losses
def seqs(*dims, lens=LENS, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.standard_normal((T,) + dims).astype(np.float32) for T in lens]


def probs(*dims, lens=LENS):
    return [np.exp(x) / np.exp(x).sum(-1, keepdims=True) for x in seqs(*dims, lens=lens, seed=4)]


def targets(n, lens=LENS):
    rng = np.random.default_rng(6)
    return [rng.integers(0, n, size=T) for T in lens]


def bahdanau():
    """A custom scoring net: v . tanh(W_k e + W_q q)."""
    return NetGraph({"k": LinearLayer(7), "q": LinearLayer(7), "plus": ThreadingLayer("Plus"),
                     "tanh": ElementwiseLayer("Tanh"), "v": LinearLayer(())},
                    [(NetPort("Input"), "k"), (NetPort("Query"), "q"), (["k", "q"], "plus"),
                     ("plus", "tanh", "v")])


def recurrent_graph():
    """State fed from and returned to a graph port of the same name (key "out:State")."""
    return NetGraph({"rnn": LongShortTermMemoryLayer(5)},
                    [(NetPort("State"), NetPort("rnn", "State")),
                     (NetPort("rnn", "State"), NetPort("State")),
                     (NetPort("rnn", "CellState"), NetPort("Cell"))], Input=("Varying", 3))


def loss_graph():
    return NetGraph({"lin": NetMapOperator(LinearLayer(5)), "sm": SoftmaxLayer(),
                     "loss": CrossEntropyLossLayer("Index")},
                    [("lin", "sm", NetPort("loss", "Input")),
                     (NetPort("Target"), NetPort("loss", "Target"))], Input=("Varying", 3))


def fold_graph():
    """NetFoldOperator with an initial state from a graph input and its final state out."""
    step = NetGraph({"cat": CatenateLayer(), "lin": LinearLayer(5), "tanh": ElementwiseLayer("Tanh")},
                    [([NetPort("Input"), NetPort("State")], "cat", "lin", "tanh")])
    return NetGraph({"fold": NetFoldOperator(step)},
                    [(NetPort("Init"), NetPort("fold", "State")),
                     (NetPort("fold", "State"), NetPort("Final"))], Input=("Varying", 3))


def nested():
    """NetChain (dict names) in a NetMapOperator in a NetGraph with int-named nodes, fan-in
    that sets an arity, and nodes named like graph sides."""
    chain = NetChain({"a": LinearLayer(5), "t": "Tanh", "b": 3})
    inner = NetGraph([NetMapOperator(chain), SequenceLastLayer(), LinearLayer(7)], [(0, 1, 2)])
    return NetGraph({"in": inner, "out": ElementwiseLayer("Sin"), "cat": CatenateLayer()},
                    [("in", "out"), (["in", "out"], "cat")], Input=("Varying", 2))


EXTRA = {
    "attention-bilinear": (lambda: SequenceAttentionLayer(Input=("Varying", 3),
                                                          Query=("Varying", 5)),
                           lambda: {"Input": seqs(3), "Query": seqs(5, lens=(3, 5, 1))}),
    "attention-dot": (lambda: SequenceAttentionLayer("Dot", Input=("Varying", 5)),
                      lambda: {"Input": seqs(5), "Query": seqs(5, lens=(3, 5, 1))}),
    "attention-custom": (lambda: SequenceAttentionLayer(bahdanau(), Input=("Varying", 3),
                                                        Query=("Varying", 5)),
                         lambda: {"Input": seqs(3), "Query": seqs(5, lens=(3, 5, 1))}),
    "attention-causal": (lambda: AttentionLayer(mask=("Causal", 2), score_rescaling="DimensionSqrt",
                                                Key=("Varying", 3), Value=("Varying", 7),
                                                Query=("Varying", 5)),
                         lambda: {"Key": seqs(3), "Value": seqs(7), "Query": seqs(5)}),
    "attention-heads": (lambda: AttentionLayer("Dot", multi_head=True, dropout=0.25,
                                               Key=("Varying", 2, 3), Value=("Varying", 2, 7),
                                               Query=("Varying", 2, 3)),
                        lambda: {"Key": seqs(2, 3), "Value": seqs(2, 7),
                                 "Query": seqs(2, 3, lens=(1, 3, 5))}),
    "attention-one-query": (lambda: AttentionLayer(Key=("Varying", 3), Value=("Varying", 7),
                                                   Query=5),
                            lambda: {"Key": seqs(3), "Value": seqs(7),
                                     "Query": np.ones((3, 5), np.float32)}),
    "attention-weights-port": (lambda: NetGraph(
        {"att": SequenceAttentionLayer(Input=("Varying", 3), Query=("Varying", 5))},
        [(NetPort("att", "AttentionWeights"), NetPort("W"))]),
        lambda: {"Input": seqs(3), "Query": seqs(5, lens=(3, 5, 1))}),
    "basic-rnn": (lambda: layers.BasicRecurrentLayer(5, Input=("Varying", 3)),
                  lambda: {"Input": seqs(3)}),
    "gru-chain": (lambda: NetChain([EmbeddingLayer(3, 11), GatedRecurrentLayer(5),
                                    SequenceLastLayer()], Input=("Varying", Index(11))),
                  lambda: {"Input": targets(11)}),
    "lstm-states": (recurrent_graph, lambda: {"Input": seqs(3), "State": np.linspace(
        -1, 1, 15, dtype=np.float32).reshape(3, 5)}),
    "cross-entropy-index": (lambda: CrossEntropyLossLayer("Index", Input=("Varying", 5)),
                            lambda: {"Input": probs(5), "Target": targets(5)}),
    "cross-entropy-probabilities": (lambda: CrossEntropyLossLayer("Probabilities", Input=7),
                                    lambda: {"Input": probs(7, lens=(3,))[0],
                                             "Target": probs(7, lens=(3,))[0][::-1]}),
    "cross-entropy-binary": (lambda: CrossEntropyLossLayer("Binary", Input=("Varying", 3)),
                             lambda: {"Input": probs(3), "Target": probs(3)}),
    "mean-squared": (lambda: MeanSquaredLossLayer(Input=(3, 5)),
                     lambda: {"Input": np.ones((2, 3, 5), np.float32),
                              "Target": np.zeros((2, 3, 5), np.float32)}),
    "mean-absolute": (lambda: MeanAbsoluteLossLayer(Input=("Varying", 7)),
                      lambda: {"Input": seqs(7), "Target": seqs(7, seed=2)}),
    "loss-graph": (loss_graph, lambda: {"Input": seqs(3), "Target": targets(5)}),
    "nested": (nested, lambda: {"Input": seqs(2)}),
    "fold": (fold_graph, lambda: {"Input": seqs(3), "Init": np.eye(3, 5, dtype=np.float32)}),
    "fold-alone": (lambda: NetFoldOperator(fold_graph().nodes["fold"].net, Input=(4, 3)),
                   lambda: {"Input": np.stack(seqs(3, lens=(4, 4, 4)))}),
}


@pytest.mark.parametrize("key", list(EXTRA))
def test_more_nets_round_trip(key, tmp_path):
    make, data = EXTRA[key]
    check(make(), data(), tmp_path)


def test_every_layer_class_is_covered():
    nets = [c.make() for c in CASES] + [make() for make, _ in EXTRA.values()]
    covered = {type(n).__name__ for net in nets for _, n in walk(net)}
    missing = set(layers.__all__) - covered
    assert not missing, f"add a round-trip case to tests/test_io.py for {sorted(missing)}"


# ----------------------------------------------------------------- details kept
def test_partly_initialized_and_surgery(tmp_path):
    net = NetReplacePart(nested(), {("in", 2, "Weights"): np.full((7, 3), -0.0)})
    back = roundtrip(net, tmp_path)
    assert_same_net(net, back)
    assert NetExtract(back, ["in", 2, "Biases"]) is None
    assert np.signbit(NetExtract(back, ["in", 2, "Weights"])).all()
    part = NetExtract(NetInitialize(nested(), seed=2), "in")  # pinned ports
    assert_same_net(part, roundtrip(part, tmp_path))
    states = recurrent_graph()  # pinned specs hold "out:State", the final state's key
    for part in (states._pinned(), NetExtract(states, "rnn")):
        assert "out:State" in part._user_specs
        assert_same_net(part, roundtrip(part, tmp_path))


def test_odd_values_are_bit_exact(tmp_path):
    net = NetInitialize(LinearLayer(3, Input=5), seed=0)
    big, tiny = np.finfo(np.float32).max, np.finfo(np.float32).tiny
    odd = np.array([[-0.0, 1e-45, -big, big, tiny]] * 3, dtype=np.float32)  # 1e-45: subnormal
    net = net._with_arrays({"Weights": odd})
    assert_same_net(net, roundtrip(net, tmp_path))
    for bad in (np.nan, np.inf, -np.inf):  # not a valid array value: refused (SPEC "Saving")
        odd[1, 2] = bad
        with pytest.raises(NetError, match=r"net: its array 'Weights' contains NaN or Inf: (nan|inf|-inf) "
                                           r"at index \(1, 2\)"):
            save(net._with_arrays({"Weights": odd}), tmp_path / "bad")
    assert not (tmp_path / "bad").exists()


def test_trains_after_loading(tmp_path):
    net = NetInitialize(NetChain([LinearLayer(5), "Tanh", LinearLayer(3)], Input=7), seed=0)
    back = roundtrip(net, tmp_path)
    rng = np.random.default_rng(0)
    data = (rng.standard_normal((11, 7)), rng.standard_normal((11, 3)))
    kw = {"max_training_rounds": 2, "batch_size": 5, "seed": 1, "progress": False}
    assert_same_net(NetTrain(net, data, **kw), NetTrain(back, data, **kw))


def test_file_layout(tmp_path):
    net = NetInitialize(nested(), seed=0)
    path = tmp_path / "model"  # no suffix is added
    save(net, path)
    assert os.listdir(tmp_path) == ["model"]
    with zipfile.ZipFile(path) as zf:
        names = zf.namelist()
        spec = json.loads(zf.read("net.json"))
    assert names[0] == "net.json" and len(names) == 1 + len(array_paths(net))
    assert all(n.startswith("arrays/") and n.endswith(".npy") for n in names[1:])
    assert (spec["format"], spec["format_version"]) == ("netgraph-net", 1)
    assert spec["netgraph_version"] and spec["net"]["type"] == "NetGraph"
    first = path.read_bytes()
    save(net, path)  # deterministic, and overwrites in place
    assert path.read_bytes() == first and os.listdir(tmp_path) == ["model"]


def test_save_refuses_what_it_cannot_write(tmp_path):
    class MyLayer(DotLayer):
        pass

    with pytest.raises(NetError, match="not one of netgraph's net classes"):
        save(NetGraph({"d": MyLayer()}, []), tmp_path / "x")
    with pytest.raises(NetError, match="needs a net"):
        save("LinearLayer", tmp_path / "x")
    with pytest.raises(NetError, match="cannot save"):
        save(LinearLayer(3), tmp_path / "no-such-dir" / "x")
    with pytest.raises(NetError, match="path"):
        save(LinearLayer(3), 3.5)
    assert os.listdir(tmp_path) == []


def test_exported():
    assert netgraph.save is save and netgraph.load is load
    assert {"save", "load"} <= set(netgraph.__all__)


# ---------------------------------------------------------------------- atomicity
class Crash(RuntimeError):
    pass


@pytest.mark.parametrize("failure", ["crash", "disk-full", "replace"])
def test_failed_save_leaves_old_file_and_no_temp(failure, tmp_path, monkeypatch):
    path = tmp_path / "model.wlnet"
    old = NetInitialize(LinearLayer(3, Input=5), seed=0)
    save(old, path)
    before = path.read_bytes()
    import netgraph.io as nio

    calls = []
    real_write = nio._write_array

    def write_then_fail(zf, member, array):
        calls.append(member)
        if len(calls) == 2:  # the second array: half written, then the failure
            with zf.open(member, "w") as out:
                out.write(b"\x93NUMPY" + b"\0" * 100)
            raise Crash("power cut") if failure == "crash" else OSError(28, "No space left")
        real_write(zf, member, array)

    if failure == "replace":
        def no_replace(src, dst):
            raise OSError(13, "Permission denied")
        monkeypatch.setattr(nio.os, "replace", no_replace)
    else:
        monkeypatch.setattr(nio, "_write_array", write_then_fail)
    new = NetInitialize(nested(), seed=1)
    expected = Crash if failure == "crash" else NetError
    with pytest.raises(expected, match="power cut|No space left|Permission denied"):
        save(new, path)
    assert os.listdir(tmp_path) == ["model.wlnet"]
    assert path.read_bytes() == before
    monkeypatch.undo()
    assert_same_net(old, load(path))


def test_save_syncs_before_replacing(tmp_path, monkeypatch):
    import netgraph.io as nio

    events = []
    real_fsync, real_replace = os.fsync, os.replace
    monkeypatch.setattr(nio.os, "fsync", lambda fd: (events.append("fsync"), real_fsync(fd)))
    monkeypatch.setattr(nio.os, "replace",
                        lambda a, b: (events.append("replace"), real_replace(a, b)))
    save(LinearLayer(3, Input=5), tmp_path / "m")
    assert events[:2] == ["fsync", "replace"]


# ------------------------------------------------------- damaged and foreign files
@pytest.fixture
def good(tmp_path):
    net = NetGraph({"lin": LinearLayer(3, Input=5), "act": ElementwiseLayer("Tanh")},
                   [("lin", "act")])
    path = tmp_path / "good.wlnet"
    save(NetInitialize(net, seed=0), path)
    return path


def contents(path):
    with zipfile.ZipFile(path) as zf:
        return {n: zf.read(n) for n in zf.namelist()}


def write_zip(path, members):
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return path


def npy(array, **kw):
    buf = io.BytesIO()
    np.save(buf, array, **kw)
    return buf.getvalue()


def npz(array):
    buf = io.BytesIO()
    np.savez(buf, w=array)
    return buf.getvalue()


def tampered(good, edit=None, members=()):
    """A copy of ``good`` with ``edit(spec)`` applied to net.json, then ``members`` (name ->
    bytes, or None to drop the member) replaced."""
    files = contents(good)
    spec = json.loads(files["net.json"])
    if edit is not None:
        edit(spec)
    files["net.json"] = json.dumps(spec).encode()
    for name, data in dict(members).items():
        if data is None:
            del files[name]
        else:
            files[name] = data
    return write_zip(good.parent / "bad.wlnet", files)


def lin(spec):
    return spec["net"]["nodes"][0]["net"]


def graph(spec):
    return spec["net"]


W = np.arange(15, dtype=np.float32).reshape(3, 5)
TAMPERED = {  # id: (edit of net.json, replaced members, error class, message pattern)
    "json-shape": (lambda s: lin(s)["arrays"]["Weights"].update(shape=[5, 3]), {}, NetError,
                   r"'Weights'.*gives shape \(5, 3\).*holds shape \(3, 5\)"),
    "consistent-wrong-shape": (lambda s: lin(s)["arrays"]["Weights"].update(shape=[5, 3]),
                               {"arrays/0.npy": npy(W.T.copy())}, ShapeError, r"'Weights'.*\(5, 3\)"),
    "port-vs-array": (lambda s: lin(s)["ports"].update(Input=7), {}, ShapeError, "Weights"),
    "unknown-class": (lambda s: lin(s).update(type="EvilLayer"), {}, NetError,
                      "unknown layer class 'EvilLayer'"),
    "dotted-name": (lambda s: lin(s).update(type="os.system"), {}, NetError,
                    "unknown layer class 'os.system'"),
    "graph-as-layer": (lambda s: lin(s).update(type="NetGraph"), {}, NetError,
                       "unknown layer class 'NetGraph'"),
    "graph-type": (lambda s: graph(s).update(type="Evil"), {}, NetError,
                   "type: Input should be .NetGraph. or .NetChain."),
    "missing-member": (None, {"arrays/0.npy": None}, NetError, "no member 'arrays/0.npy'"),
    "missing-array": (lambda s: lin(s)["arrays"].pop("Biases"), {}, NetError,
                      r"has arrays \['Biases', 'Weights'\], but the file gives \['Weights'\]"),
    "extra-array": (lambda s: lin(s)["arrays"].update(Extra=None), {}, NetError, "Extra"),
    "invalid-function": (lambda s: s["net"]["nodes"][1]["net"]["params"].update(f="Nope"), {},
                         NetError, "parameter 'f'"),
    "negative-size": (lambda s: lin(s)["params"].update(n=-3), {}, NetError, "parameter 'n'"),
    "size-type": (lambda s: lin(s)["params"].update(n="three"), {}, NetError, "parameter 'n'"),
    "unknown-param": (lambda s: lin(s)["params"].update(bogus=1), {}, NetError, "bogus"),
    "bad-spec": (lambda s: lin(s)["ports"].update(Input="Bogus"), {}, NetError, "Bogus"),
    "bad-index": (lambda s: lin(s)["ports"].update(Input=[{"Index": 0}]), {}, NetError, "Index"),
    "unknown-port": (lambda s: lin(s)["ports"].update(Nope=3), {}, NetError, "no port 'Nope'"),
    "bad-optional": (lambda s: lin(s).update(enabled_inputs=["State"]), {}, NetError,
                     "no optional input port 'State'"),
    "plain-layer-children": (lambda s: lin(s).update(children={"Net": s["net"]["nodes"][1]["net"]}),
                             {}, NetError, "no parts to replace"),
    "edge-to-ghost": (lambda s: graph(s)["edges"][0][1].update(node="ghost"), {}, NetError,
                      "edge ends at .*'ghost'"),
    "edge-twice": (lambda s: graph(s)["edges"].append(graph(s)["edges"][0]), {}, NetError,
                   "two edges end"),
    "unfed": (lambda s: graph(s).update(edges=graph(s)["edges"][1:]), {}, NetError, "nothing feeds"),
    # the structure of a loaded graph passes NetGraph's own check (edges.check_structure): the
    # constructor's messages, and nothing the constructor would refuse
    "two-sources": (lambda s: graph(s)["edges"].append([{"node": None, "port": "Input"},
                                                        {"node": "act", "port": "Input"}]),
                    {}, PortError, r"two sources are connected to port 'Input' of node 'act': "
                    r"NetPort\('lin', 'Output'\) and NetPort\('Input'\)"),
    "cycle": (lambda s: graph(s)["edges"][1][0].update(node="act", port="Output"), {}, PortError,
              "the connections form a cycle: 'lin' -> 'act' -> 'lin'"),
    "out-spec": (lambda s: graph(s)["ports"].update({"out:Output": 3}), {}, PortError,
                 "shape given for 'out:Output', which is not a port of the graph"),
    "order": (lambda s: graph(s)["order"].reverse(), {}, NetError, "order"),
    "duplicate-node": (lambda s: graph(s)["nodes"][1].update(name="lin"), {}, NetError,
                       "two nodes are named 'lin'"),
    "graph-port-spec": (lambda s: graph(s)["ports"].update(Nope=3), {}, NetError,
                        "not a port of the graph"),
    "missing-field": (lambda s: graph(s).pop("edges"), {}, NetError, "does not describe a net.*edges"),
    "foreign-format": (lambda s: s.update(format="keras"), {}, NetError,
                       "not a netgraph net file.*'keras'"),
    "newer-version": (lambda s: s.update(format_version=2), {}, NetError,
                      "format version 2.*newer netgraph.*up to 1"),
    "version-type": (lambda s: s.update(format_version="1"), {}, NetError, "invalid format_version"),
    "object-npy": (None, {"arrays/0.npy": npy(np.array([{"a": 1}] * 15).reshape(3, 5),
                                          allow_pickle=True)}, NetError, "arrays/0.npy.*allow_pickle"),
    "float64-npy": (None, {"arrays/0.npy": npy(W.astype(np.float64))}, NetError, "dtype float64"),
    "int-npy": (None, {"arrays/0.npy": npy(W.astype(np.int32))}, NetError, "dtype int32"),
    "npz-member": (None, {"arrays/0.npy": npz(W)}, NetError, "not a single .npy"),
    "truncated-npy": (None, {"arrays/0.npy": npy(W)[:70]}, NetError, "not a plain .npy"),
    "oversized-member": (None, {"arrays/0.npy": npy(W) + bytes(100_000)}, NetError, "too many"),
    "json-garbage": (None, {"net.json": b"{not json"}, NetError, "not valid JSON"),
    "json-list": (None, {"net.json": b"[1, 2]"}, NetError, "not a netgraph net file"),
}


@pytest.mark.parametrize("key", list(TAMPERED))
def test_tampered_file_raises(key, good):
    edit, members, error, pattern = TAMPERED[key]
    bad = tampered(good, edit, members)
    with pytest.raises(error, match="cannot load .*bad.wlnet.*" + pattern):
        load(bad)
    assert_same_net(load(good), load(good))  # the original still loads


class Boom:
    """Unpickling this would create a directory: proof that loading never unpickles."""

    def __init__(self, target):
        self.target = target

    def __reduce__(self):
        return (os.makedirs, (self.target,))


def test_pickles_are_never_loaded(good, tmp_path):
    target = str(tmp_path / "pwned")
    for data in (pickle.dumps(Boom(target)), npy(np.array([Boom(target)] * 15).reshape(3, 5),
                                                  allow_pickle=True)):
        with pytest.raises(NetError, match="arrays/0.npy.*pickle"):
            load(tampered(good, None, {"arrays/0.npy": data}))
    bad = tampered(good, lambda s: s["net"].update(params={"x": pickle.dumps(1).hex()}))
    with pytest.raises(NetError, match="describe a net"):
        load(bad)
    assert not os.path.exists(target)


def test_operator_and_attention_parts_are_checked(tmp_path):
    op = NetMapOperator(LinearLayer(5), Input=("Varying", 3))
    save(op, tmp_path / "op")
    spec = json.loads(contents(tmp_path / "op")["net.json"])
    no_net = {**spec, "net": {**spec["net"], "children": {}}}
    write_zip(tmp_path / "a", {"net.json": json.dumps(no_net)})
    with pytest.raises(NetError, match="NetMapOperator cannot be rebuilt"):
        load(tmp_path / "a")
    save(SequenceAttentionLayer(Input=("Varying", 3)), tmp_path / "att")
    spec = json.loads(contents(tmp_path / "att")["net.json"])
    spec["net"]["children"]["ScoringNet"] = spec["net"]["children"]["ScoringNet"]["nodes"][0]["net"]
    write_zip(tmp_path / "b", {"net.json": json.dumps(spec)})
    with pytest.raises(NetError, match="scoring net"):
        load(tmp_path / "b")
    save(fold_graph(), tmp_path / "fold")  # a fold step net with the wrong ports
    spec = json.loads(contents(tmp_path / "fold")["net.json"])
    spec["net"]["nodes"][0]["net"]["children"]["Net"] = {
        "kind": "layer", "type": "ThreadingLayer", "params": {"f": "Plus", "arity": 2}}
    write_zip(tmp_path / "c", {"net.json": json.dumps(spec)})
    with pytest.raises(NetError, match="NetFoldOperator needs a net with input ports"):
        load(tmp_path / "c")


def test_damaged_zip(good, tmp_path):
    data = good.read_bytes()
    (tmp_path / "half").write_bytes(data[: len(data) // 2])
    with pytest.raises(NetError, match="truncated or damaged"):
        load(tmp_path / "half")
    with zipfile.ZipFile(good) as zf:
        info = zf.getinfo("arrays/0.npy")
    at = info.header_offset + 30 + len(info.filename) + len(info.extra) + 100
    flipped = bytearray(data)
    flipped[at] ^= 0xFF
    (tmp_path / "flipped").write_bytes(bytes(flipped))
    with pytest.raises(NetError, match="damaged.*CRC"):
        load(tmp_path / "flipped")


def test_foreign_and_missing_files(tmp_path):
    (tmp_path / "empty").write_bytes(b"")
    (tmp_path / "text").write_text("LinearLayer(3)\n")
    write_zip(tmp_path / "nojson.zip", {"weights.npy": npy(W)})
    cases = {"missing": "no such file", "empty": "the file is empty",
             "text": "not a zip archive", "nojson.zip": "has no 'net.json'", ".": "not a regular"}
    for name, message in cases.items():
        with pytest.raises(NetError, match=message):
            load(tmp_path / name)
    with pytest.raises(NetError, match="path"):
        load(None)
