"""Arrays as constructor options and NetSharedArray: one array shared by every use, at any
depth. Values, summed gradients (against the same net with separate arrays), central
differences, padding, inference (sizes flow between uses; clashes name both uses), surgery,
save/load, NetInformation, NetTrain."""

from __future__ import annotations

import copy
import pickle

import numpy as np
import pytest
from helpers import randomized
from tolerance import assert_close

import netgraph.layers as layers
from netgraph import (
    All,
    Automatic,
    DotLayer,
    EmbeddingLayer,
    GatedRecurrentLayer,
    Index,
    LinearLayer,
    LongShortTermMemoryLayer,
    MeanSquaredLossLayer,
    NetArrayGradient,
    NetChain,
    NetError,
    NetExtract,
    NetGraph,
    NetInformation,
    NetInitialize,
    NetMapOperator,
    NetPort,
    NetReplacePart,
    NetSharedArray,
    NetTrain,
    NormalizationLayer,
    PortError,
    SequenceAttentionLayer,
    ShapeError,
    SoftmaxLayer,
    check_padding,
    gradcheck,
    load,
    save,
)
from netgraph.layer import Layer

E = NetSharedArray("Embedding")
rng0 = np.random.default_rng(0)
EMB = rng0.standard_normal((7, 5))  # 7 tokens, 5 features


# --------------------------------------------------------- arrays as options
def test_linear_takes_its_arrays_as_options():
    W, b = rng0.standard_normal((3, 5)), rng0.standard_normal(3)
    net = LinearLayer(3, Weights=W, Biases=b)
    assert net.port_shape("Input") == (5,)  # the given array fixes the input size
    assert NetExtract(net, "Weights").dtype == np.float32
    np.testing.assert_array_equal(NetExtract(net, "Weights"), W.astype(np.float32))
    x = rng0.standard_normal(5)
    assert_close(net(x, dtype=np.float64), W.astype(np.float32) @ x + b.astype(np.float32),
                 dtype=np.float64, reduction=6)
    assert NetExtract(LinearLayer(Weights=W), "Output") == (3,)  # n from the array too
    half = LinearLayer(3, Weights=W)  # Biases still open: filled by NetInitialize only
    init = NetInitialize(half, seed=1)
    np.testing.assert_array_equal(NetExtract(init, "Weights"), W.astype(np.float32))
    np.testing.assert_array_equal(NetExtract(init, "Biases"), np.zeros(3, np.float32))
    again = NetInitialize(half, seed=1, reinitialize=True)
    assert not np.array_equal(NetExtract(again, "Weights"), W.astype(np.float32))


def test_embedding_weights_fix_the_index_range():
    net = EmbeddingLayer(5, Weights=EMB)
    assert net.port_shape("Input") == ("Varying", Index(7))
    assert NetExtract(net, "n") is Automatic  # the hyperparameter stays as given
    np.testing.assert_array_equal(net(np.array([6, 0, 6])), EMB[[6, 0, 6]].astype(np.float32))


ARRAY_LAYERS = {  # every layer class with arrays of its own: a constructor and its array names
    "LinearLayer": lambda **a: LinearLayer(3, Input=5, **a),
    "EmbeddingLayer": lambda **a: EmbeddingLayer(5, 7, **a),
    "NormalizationLayer": lambda **a: NormalizationLayer(Input=("Varying", 5), **a),
    "BasicRecurrentLayer": lambda **a: layers.BasicRecurrentLayer(3, Input=("Varying", 5), **a),
    "GatedRecurrentLayer": lambda **a: GatedRecurrentLayer(3, Input=("Varying", 5), **a),
    "LongShortTermMemoryLayer": lambda **a: LongShortTermMemoryLayer(3, Input=("Varying", 5),
                                                                     **a),
}


def test_every_layer_with_arrays_takes_them_as_options():
    with_arrays = {name for name in layers.__all__ if isinstance(getattr(layers, name), type)
                   and issubclass(getattr(layers, name), Layer)
                   and getattr(layers, name).array_init}
    assert with_arrays == set(ARRAY_LAYERS)
    for name, make in ARRAY_LAYERS.items():
        reference = randomized(make(), seed=3)
        given = {k: NetExtract(reference, k) for k in reference._arrays()}
        net = make(**given)
        for k, v in given.items():
            np.testing.assert_array_equal(NetExtract(net, k), v, err_msg=f"{name} {k}")
        assert NetInitialize(net, seed=9)._arrays().keys() == given.keys()
        for k, v in given.items():  # kept by NetInitialize
            np.testing.assert_array_equal(NetExtract(NetInitialize(net, seed=9), k), v)
        k0 = next(iter(given))
        wrong = np.ones(tuple(n + 1 for n in given[k0].shape))
        with pytest.raises(ShapeError, match=k0):
            make(**{k0: wrong})


@pytest.mark.parametrize("value, message", [
    (np.array([[np.nan, 1, 2]] * 3), "NaN or Inf"),
    (np.full((3, 5), 1e39), "beyond the range of float32"),
    (np.ones((3, 5), complex), "complex"),
    (np.ones((3, 5), bool), "booleans"),
    ("weights", "real numeric array"),
])
def test_array_options_are_validated_like_replacements(value, message):
    with pytest.raises(NetError, match=f"LinearLayer: the array 'Weights'.*{message}"):
        LinearLayer(3, Weights=value)


def test_biases_without_biases_is_an_error():
    with pytest.raises(NetError, match=r"Biases=.*biases=False.*no array 'Biases'"):
        LinearLayer(3, biases=False, Biases=np.zeros(3))
    with pytest.raises(NetError, match=r"unknown parameter or port 'Scaling'"):
        LinearLayer(3, Scaling=np.ones(3))


# ------------------------------------------------------------ shared arrays
def tied(d=5, n=7, **kw):
    """Embedding and readout sharing one (n, d) array: tokens -> embedding -> tanh map ->
    readout with the embedding's weights -> probabilities over the tokens."""
    return NetGraph({"embed": EmbeddingLayer(d, n, Weights=kw.get("embed", E)),
                     "mix": NetMapOperator(NetChain([LinearLayer(d), "Tanh"])),
                     "readout": NetMapOperator(LinearLayer(n, Weights=kw.get("readout", E))),
                     "softmax": SoftmaxLayer()},
                    [("embed", "mix", "readout", "softmax")])


def untied(net):
    """The same net with two separate arrays holding the shared value (for references)."""
    value = NetExtract(net, E)
    return NetReplacePart(
        NetGraph({"embed": EmbeddingLayer(5, 7), "mix": NetExtract(net, "mix"),
                  "readout": NetMapOperator(LinearLayer(7, Biases=NetExtract(
                      net, ["readout", "Net", "Biases"]))), "softmax": SoftmaxLayer()},
                 [("embed", "mix", "readout", "softmax")]),
        {("embed", "Weights"): value, ("readout", "Net", "Weights"): value})


def tokens(lens=(4, 1, 6), seed=1):
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 7, size=T) for T in lens]


def test_shared_array_has_one_shape_and_one_value():
    net = tied()
    assert net.port_shape("Input") == ("Varying", Index(7))
    assert net.port_shape("Output") == ("Varying", 7)
    assert NetExtract(net, E) is None
    init = NetInitialize(net, seed=2)
    value = NetExtract(init, E)
    assert value.shape == (7, 5)
    for path in (["embed", "Weights"], ["readout", "Net", "Weights"]):
        np.testing.assert_array_equal(NetExtract(init, path), value)
    # one draw: the same seed with separate arrays draws other values for the second
    assert NetInformation(init, "ArraysTotalElementCount") == 7 * 5 + 5 * 5 + 5 + 7
    assert NetInformation(net, "ArraysTotalElementCount") == 7 * 5 + 5 * 5 + 5 + 7
    assert NetInformation(untied(init), "ArraysTotalElementCount") == 2 * 7 * 5 + 5 * 5 + 5 + 7


def test_sizes_flow_between_uses():
    # the readout's input size is known only from the embedding it shares its array with
    net = NetGraph({"embed": EmbeddingLayer(5, 7, Weights=E),
                    "readout": LinearLayer(Automatic, Weights=E)},
                   [(NetPort("Input"), "embed"), (NetPort("Features"), "readout")])
    assert net.port_shape("Features") == (5,)
    assert net.port_shape("Output2") == (7,)


def test_shared_gradient_is_the_sum_over_uses():
    net = randomized(tied(), seed=4)
    ref = untied(net)
    data = {"Input": tokens()}
    got = net(data, [NetArrayGradient(E), NetArrayGradient(["readout", "Net", "Weights"]),
                     NetArrayGradient(["embed", "Weights"])], dtype=np.float64)
    parts = ref(data, [NetArrayGradient(["embed", "Weights"]),
                       NetArrayGradient(["readout", "Net", "Weights"])], dtype=np.float64)
    assert_close(got[0], parts[0] + parts[1], dtype=np.float64, reduction=40)
    np.testing.assert_array_equal(got[1], got[0])  # a use's path names the one array
    np.testing.assert_array_equal(got[2], got[0])
    assert_close(net(data, dtype=np.float64)[2], ref(data, dtype=np.float64)[2],
                 dtype=np.float64)
    report = gradcheck(net, data)
    assert NetArrayGradient(E) in report and report[NetArrayGradient(E)]["size"] == 35
    assert not any(k.path[-1] == "Weights" and k.path[0] == "embed" for k in report
                   if isinstance(k, NetArrayGradient))
    assert check_padding(net, data).ok


def test_shared_inside_a_scoring_net_and_an_operator():
    """A bilinear scoring net (the fast path reads its weights directly) sharing its matrix
    with a linear map of the query."""
    S = NetSharedArray("W")
    scoring = NetGraph({"Linear": LinearLayer(biases=False, Weights=S), "Dot": DotLayer()},
                       [([NetPort("Query"), "Linear"], "Dot")])
    net = NetGraph({"q": NetMapOperator(LinearLayer(4, biases=False, Weights=S)),
                    "attend": SequenceAttentionLayer(scoring)},
                   [(NetPort("Query"), "q", NetPort("attend", "Query"))],
                   Input=("Varying", 4), Query=("Varying", 4))
    net = randomized(net, seed=5)
    W = NetExtract(net, S).astype(np.float64)
    rng = np.random.default_rng(6)
    xs = [rng.standard_normal((n, 4)) for n in (3, 5)]
    qs = [rng.standard_normal((m, 4)) for m in (2, 1)]
    out = net({"Input": xs, "Query": qs}, dtype=np.float64)
    for x, q, o in zip(xs, qs, out, strict=True):
        s = (q @ W.T) @ (x @ W.T).T  # scores of the mapped query against W x
        w = np.exp(s - s.max(1, keepdims=True))
        assert_close(o, (w / w.sum(1, keepdims=True)) @ x, dtype=np.float64, reduction=30)
    report = gradcheck(net, {"Input": xs, "Query": qs})
    assert {k for k in report if isinstance(k, NetArrayGradient)} == {NetArrayGradient(S)}
    assert check_padding(net, {"Input": xs, "Query": qs}).ok


def test_replacing_a_shared_array_sets_every_use():
    net = NetInitialize(tied(), seed=0)
    new = rng0.standard_normal((7, 5))
    for key in (E, ("readout", "Net", "Weights"), ["embed", "Weights"]):
        changed = NetReplacePart(net, {tuple(key) if isinstance(key, list) else key: new})
        for path in (E, ["embed", "Weights"], ["readout", "Net", "Weights"]):
            np.testing.assert_array_equal(NetExtract(changed, path), new.astype(np.float32))
    assert NetExtract(NetReplacePart(net, {E: None}), ["embed", "Weights"]) is None
    with pytest.raises(ShapeError, match=r"\(7, 5\).*\(5, 7\)|\(5, 7\).*\(7, 5\)"):
        NetReplacePart(net, {E: new.T})
    with pytest.raises(NetError, match="NaN"):
        NetReplacePart(net, {E: np.full((7, 5), np.nan)})
    with pytest.raises(PortError, match=r"NetSharedArray\('Nope'\)"):
        NetReplacePart(net, {NetSharedArray("Nope"): new})
    with pytest.raises(PortError, match=r"NetSharedArray\('Nope'\)"):
        NetExtract(net, NetSharedArray("Nope"))


def test_an_array_becomes_shared_by_replacement():
    net = NetInitialize(tied(readout=None), seed=0)  # separate readout weights
    assert not np.array_equal(NetExtract(net, ["readout", "Net", "Weights"]), NetExtract(net, E))
    both = NetReplacePart(net, {("readout", "Net", "Weights"): E})
    np.testing.assert_array_equal(NetExtract(both, ["readout", "Net", "Weights"]),
                                  NetExtract(net, E))
    assert NetInformation(both, "ArraysTotalElementCount") == \
        NetInformation(net, "ArraysTotalElementCount") - 35


def test_clashing_uses_name_both_places_and_shapes():
    with pytest.raises(ShapeError, match=r"NetSharedArray\('Embedding'\) is used as array "
                                         r"'Weights' of EmbeddingLayer at node 'embed' of shape "
                                         r"\(7, 5\) and as array 'Weights' of LinearLayer at "
                                         r"node 'readout'/'Net' of shape \(7, 6\)"):
        NetGraph({"embed": EmbeddingLayer(5, 7, Weights=E),
                  "readout": NetMapOperator(LinearLayer(7, Weights=E, Input=6))}, [])
    with pytest.raises(ShapeError, match=r"rank 2 versus rank 1"):
        NetGraph({"embed": EmbeddingLayer(5, 7, Weights=E),
                  "norm": NormalizationLayer(Scaling=E, Input=(3, 5))}, [])


def test_nets_with_different_values_cannot_be_put_together():
    a = NetInitialize(EmbeddingLayer(5, 7, Weights=E), seed=1)
    b = NetInitialize(NetMapOperator(LinearLayer(7, Weights=E, Input=5)), seed=2)
    with pytest.raises(NetError, match=r"NetSharedArray\('Embedding'\) holds different values.*"
                                       r"node 'a'.*node 'b'/'Net'"):
        NetGraph({"a": a, "b": b}, [])
    same = NetReplacePart(b, {E: NetExtract(a, E)})
    NetGraph({"a": a, "b": same}, [])  # equal values: one array
    fresh = NetGraph({"a": a, "b": NetMapOperator(LinearLayer(7, Weights=E, Input=5))}, [])
    np.testing.assert_array_equal(NetExtract(fresh, ["b", "Net", "Weights"]),
                                  NetExtract(a, "Weights"))  # an uninitialized use adopts it


def test_save_and_load_keep_the_sharing(tmp_path):
    net = randomized(tied(), seed=7)
    save(net, tmp_path / "tied")
    back = load(tmp_path / "tied")
    assert NetExtract(back, E).tobytes() == NetExtract(net, E).tobytes()
    uses = [NetExtract(back, ["embed"]), NetExtract(back, ["readout", "Net"])]
    assert all(u._shared_arrays == {"Weights": E} for u in uses)
    data = {"Input": tokens()}
    for a, b in zip(net(data), back(data), strict=True):
        assert a.tobytes() == b.tobytes()
    new = NetReplacePart(back, {E: np.zeros((7, 5))})
    assert not NetExtract(new, ["readout", "Net", "Weights"]).any()
    save(tied(), tmp_path / "fresh")  # uninitialized
    assert NetExtract(load(tmp_path / "fresh"), E) is None


def test_training_updates_a_shared_array_once_per_step():
    """One SGD step on one batch: W <- W - lr * (the sum over both uses of the gradient of
    the mean loss)."""
    net = randomized(NetGraph({"tied": tied(), "loss": MeanSquaredLossLayer()},
                              [("tied", NetPort("loss", "Input"))]), seed=8)
    rng = np.random.default_rng(9)
    xs = tokens(lens=(3, 3, 3, 3))
    targets = [rng.uniform(0, 0.3, (3, 7)) for _ in xs]
    data = {"Input": xs, "Target": targets}
    grad = net(data, NetArrayGradient(E), dtype=np.float64)  # sum over the 4 examples
    lr = 0.5
    trained = NetTrain(net, data, method="SGD", learning_rate=lr, batch_size=4,
                       max_training_rounds=1, progress=False, seed=0)
    want = NetExtract(net, E).astype(np.float64) - lr * grad / 4
    got = NetExtract(trained, E)
    assert_close(got, want, dtype=np.float32, reduction=60, scale=1.0)
    for path in (["tied", "embed", "Weights"], ["tied", "readout", "Net", "Weights"]):
        np.testing.assert_array_equal(NetExtract(trained, path), got)
    adam = NetTrain(net, data, batch_size=2, max_training_rounds=2, progress=False, seed=0)
    np.testing.assert_array_equal(NetExtract(adam, ["tied", "embed", "Weights"]),
                                  NetExtract(adam, ["tied", "readout", "Net", "Weights"]))


def test_shared_array_references_are_values():
    assert NetSharedArray("a") == NetSharedArray("a") and NetSharedArray("a") != "a"
    assert {NetSharedArray("a"): 1}[NetSharedArray("a")] == 1
    assert repr(NetSharedArray("a")) == "NetSharedArray('a')"
    g = NetArrayGradient(NetSharedArray("a"))
    assert g == NetArrayGradient(NetSharedArray("a")) and hash(g) == hash(copy.deepcopy(g))
    assert pickle.loads(pickle.dumps(g)) == g and repr(g) == "NetArrayGradient(NetSharedArray('a'))"
    for bad in ("", 3, None):
        with pytest.raises(NetError, match="NetSharedArray"):
            NetSharedArray(bad)
    assert NetExtract(tied(), ["embed", All]) == {"Weights": None}


def test_summary_marks_uses_and_counts_once():
    text = NetInitialize(tied(), seed=0).summary()
    assert text.splitlines()[0] == "NetGraph: 4 nodes, 7 layers, 4 arrays, 72 array elements, " \
                                   "initialized"
    assert text.count("Weights = NetSharedArray('Embedding')") == 2
    assert NetInformation(tied(), "ArraysCount") == 4


def loss_net(seed=8):
    return randomized(NetGraph({"tied": tied(), "loss": MeanSquaredLossLayer()},
                               [("tied", NetPort("loss", "Input"))]), seed=seed)


def loss_data():
    rng = np.random.default_rng(9)
    xs = tokens(lens=(3, 4, 2, 5))
    return {"Input": xs, "Target": [rng.uniform(0, 0.3, (len(x), 7)) for x in xs]}


@pytest.mark.parametrize("key, frozen", [
    (E, True), (("tied", "readout"), True), (("tied", "embed", "Weights"), True),
    (("tied", "mix"), False)])
def test_learning_rate_multipliers_key_a_shared_array(key, frozen):
    """A multiplier of 0 freezes the shared array when the key is its NetSharedArray, a
    node above one of its uses, or a use's path; a node above none of them leaves it."""
    net, data = loss_net(), loss_data()
    kw = {"batch_size": 2, "max_training_rounds": 2, "progress": False, "seed": 0}
    trained = NetTrain(net, data, learning_rate_multipliers={key: 0}, **kw)
    same = NetExtract(trained, E).tobytes() == NetExtract(net, E).tobytes()
    assert same is frozen
    np.testing.assert_array_equal(NetExtract(trained, ["tied", "embed", "Weights"]),
                                  NetExtract(trained, ["tied", "readout", "Net", "Weights"]))
    # the most specific key wins: the shared array by name beats the node above its use
    both = NetTrain(net, data, learning_rate_multipliers={("tied", "readout"): 0, E: 1}, **kw)
    assert NetExtract(both, E).tobytes() != NetExtract(net, E).tobytes()
    assert NetExtract(both, ["tied", "readout", "Net", "Biases"]).tobytes() == \
        NetExtract(net, ["tied", "readout", "Net", "Biases"]).tobytes()
    with pytest.raises(NetError, match=r"NetSharedArray\('Nope'\) is not used"):
        NetTrain(net, data, learning_rate_multipliers={NetSharedArray("Nope"): 0}, **kw)


def test_resuming_a_checkpoint_of_a_net_with_a_shared_array(tmp_path):
    net, data = loss_net(), loss_data()
    kw = {"batch_size": 2, "progress": False, "seed": 0}
    whole = NetTrain(net, data, max_training_rounds=3, **kw)
    NetTrain(net, data, max_training_rounds=1, **kw,
             training_progress_checkpointing=("Directory", str(tmp_path)))
    resumed = NetTrain(net, data, max_training_rounds=3, resume=str(tmp_path), **kw)
    assert NetExtract(resumed, E).tobytes() == NetExtract(whole, E).tobytes()


def test_array_gradient_keys_resolve_to_the_shared_array():
    from netgraph.shared import resolve

    net = NetInitialize(tied(), seed=0)
    assert resolve(net, ("readout", "Net", "Weights")) == E
    assert resolve(net, (E,)) == E
    assert resolve(net, ("readout", "Net", "Biases")) == ("readout", "Net", "Biases")
    assert resolve(net, ("nowhere", "Weights")) == ("nowhere", "Weights")  # reported later


# ------------------------------------------------------------------- hostile files
def _spec_of(path):
    import json
    import zipfile

    with zipfile.ZipFile(path) as zf:
        return {n: zf.read(n) for n in zf.namelist()}, json.loads(zf.read("net.json"))


def _rewrite(path, members, spec, out):
    import json
    import zipfile

    with zipfile.ZipFile(out, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, json.dumps(spec) if name == "net.json" else data)
    return out


@pytest.mark.parametrize("edit, message", [
    (lambda s: s["net"]["nodes"][0]["net"]["arrays"].update(Weights={"shared": "Ghost"}),
     r"array 'Weights' of node 'embed' is the shared array 'Ghost', which the file does not "
     r"hold \(it holds \['Embedding'\]\)"),
    (lambda s: s["shared_arrays"].update(Unused=None),
     "holds the shared array 'Unused', but no array of the net uses it"),
    (lambda s: s["shared_arrays"]["Embedding"].update(shape=[5, 7]),
     r"the shared array 'Embedding'.*gives shape \(5, 7\), but member .* holds shape \(7, 5\)"),
    (lambda s: s["net"]["nodes"][0]["net"]["arrays"].update(Weights={"shared": 3}),
     "does not describe a net"),
])
def test_tampered_shared_arrays_are_refused(edit, message, tmp_path):
    save(randomized(tied(), seed=1), tmp_path / "good")
    members, spec = _spec_of(tmp_path / "good")
    edit(spec)
    with pytest.raises(NetError, match=message):
        load(_rewrite(tmp_path / "good", members, spec, tmp_path / "bad"))


def test_a_shared_array_of_the_wrong_shape_for_its_uses_is_refused_before_reading(tmp_path):
    """The file's one value is checked against the shape both uses imply (a consistent
    header and member of another shape), before its data is read."""
    net = randomized(tied(), seed=1)
    save(net, tmp_path / "good")
    members, spec = _spec_of(tmp_path / "good")
    import io

    member = spec["shared_arrays"]["Embedding"]["member"]
    buf = io.BytesIO()
    np.save(buf, np.zeros((7, 6), np.float32))
    members[member] = buf.getvalue()
    spec["shared_arrays"]["Embedding"]["shape"] = [7, 6]
    with pytest.raises(ShapeError, match=r"Embedding.*\(7, 6\)|\(7, 6\).*Weights"):
        load(_rewrite(tmp_path / "good", members, spec, tmp_path / "bad"))


def test_onnx_export_of_a_net_with_a_shared_array(tmp_path):
    """One initializer for the shared array; onnxruntime matches the net on a padded
    batch with garbage in the padding."""
    pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    from onnx_helpers import compare, export

    net = randomized(tied(), seed=11)
    model, session = export(net, tmp_path / "tied.onnx")
    names = [i.name for i in model.graph.initializer]
    assert "shared:Embedding" in names
    assert not any("Weights" in n and ("embed" in n or "readout" in n) for n in names)
    compare(net, session, {"Input": tokens(lens=(4, 1, 6))}, np.random.default_rng(2), extra=2)
