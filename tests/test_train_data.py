"""NetTrain's data forms, data validation and option checking."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import assert_same_net

from netgraph import (
    EmbeddingLayer,
    Index,
    InputDataError,
    LinearLayer,
    NetChain,
    NetError,
    NetGraph,
    NetMapOperator,
    NetPort,
    NetTrain,
    SoftmaxLayer,
    SummationLayer,
    TotalLayer,
)
from netgraph.train.data import TrainData, as_port_dict

RNG = np.random.default_rng(0)
X = RNG.standard_normal((12, 3)).astype(np.float32)
Y = RNG.integers(0, 2, 12)
CLASSIFIER = NetChain([4, "Tanh", 2, SoftmaxLayer()], Input=3)
KW = dict(max_training_rounds=2, batch_size=4, seed=0, progress=False)


# -------------------------------------------------------------------- forms
def test_dict_list_of_dicts_and_tuple_forms_agree():
    by_dict = NetTrain(CLASSIFIER, {"Input": X, "Output": Y}, **KW)
    by_rows = NetTrain(CLASSIFIER, [{"Input": x, "Output": y} for x, y in zip(X, Y)], **KW)
    by_tuple = NetTrain(CLASSIFIER, (X, Y), **KW)
    by_lists = NetTrain(CLASSIFIER, {NetPort("Input"): X.tolist(), "Output": Y.tolist()}, **KW)
    for other in (by_rows, by_tuple, by_lists):
        assert_same_net(by_dict, other)


def test_validation_set_in_any_form():
    rows = [{"Input": x, "Output": y} for x, y in zip(X, Y)]
    a = NetTrain(CLASSIFIER, (X, Y), prop="validation_loss_list", validation_set=rows, **KW)
    b = NetTrain(CLASSIFIER, (X, Y), prop="validation_loss_list", validation_set=(X, Y), **KW)
    assert a == b and len(a) == 2


def test_multi_input_net_takes_a_dict():
    net = NetGraph({"t": TotalLayer(), "lin": LinearLayer(1)}, [("t", "lin")], Input1=3,
                   Input2=3)
    res = NetTrain(net, {"Input1": X, "Input2": X, "Output": X[:, :1]}, prop="All", **KW)
    assert len(res.round_loss_list) == 2


def test_varying_length_data_is_padded_per_batch_and_ties_lengths():
    seqs = [np.arange(n) % 4 for n in (1, 5, 2, 7, 3)]
    net = NetChain([EmbeddingLayer(2, 4), NetMapOperator(LinearLayer(1)), SummationLayer()])
    from netgraph.compile import compile_net
    from netgraph.initialize import NetInitialize
    from netgraph.train.loss import attach_loss, plan_losses

    tn = attach_loss(NetInitialize(net, seed=0), plan_losses(net, None))
    td = TrainData({"Input": seqs, "Output": np.arange(5.0)}, compile_net(tn.net).inputs, "data")
    assert td.sizes.tolist() == [1, 5, 2, 7, 3]
    batch, lengths = td.batch(np.array([3, 0]))
    assert batch["Input"].shape == (2, 7) and batch["Input"][1, 1:].tolist() == [0] * 6
    assert batch["Input"][0].tolist() == (np.arange(7) % 4).tolist()
    assert [v.tolist() for v in lengths.values()] == [[7, 1]]
    trained = NetTrain(net, {"Input": seqs, "Output": np.arange(5.0)}, **KW)
    assert np.isfinite(trained(seqs)).all()


def test_integer_valued_reals_are_converted():
    a = NetTrain(NetChain([1], Input=3), (X.round().astype(int), Y[:, None].astype(float)), **KW)
    assert np.isfinite(a(X)).all()



def _sequence_port_data(data, elem):
    """The training data of ``data`` for a net taking sequences of ``elem`` (an int: vectors
    of that size; else an Index) into a per-sequence Real output."""
    from netgraph.compile import compile_net
    from netgraph.initialize import NetInitialize
    from netgraph.train.loss import attach_loss, plan_losses

    first = [EmbeddingLayer(2, elem.n)] if isinstance(elem, Index) else \
        [NetMapOperator(LinearLayer(2))]
    net = NetChain([*first, NetMapOperator(LinearLayer(1)), SummationLayer()],
                   Input=("Varying", elem))
    tn = attach_loss(NetInitialize(net, seed=0), plan_losses(net, None))
    return TrainData(data, compile_net(tn.net).inputs, "training data")


def _one_by_one(examples, integer):
    """The reference conversion: each example on its own (int64 indices, float32 reals)."""
    return np.concatenate([np.asarray(e).astype(np.int64 if integer else np.float32)
                           for e in examples])


@pytest.mark.parametrize("kind", ["int64", "int32", "integer floats", "mixed dtypes", "lists"])
def test_sequences_are_checked_at_once_with_the_one_by_one_result(kind, monkeypatch):
    """Varying-length examples are validated in one pass over all their positions (not once
    per example) and come out as converting each on its own would: same values, dtype int64
    for an Index port, and the true lengths and offsets."""
    import netgraph.train.data as data_module

    lengths = (3, 1, 7, 5, 2)
    seqs = [np.arange(k) * 3 % 11 for k in lengths]
    seqs = {"int64": seqs, "int32": [s.astype(np.int32) for s in seqs],
            "integer floats": [s.astype(np.float64) for s in seqs],
            "mixed dtypes": [s.astype(np.uint8 if i % 2 else np.int64)
                             for i, s in enumerate(seqs)],
            "lists": [s.tolist() for s in seqs]}[kind]
    calls = []
    real_check = data_module.check_values
    monkeypatch.setattr(data_module, "check_values",
                        lambda a, *rest: calls.append(a.shape) or real_check(a, *rest))
    td = _sequence_port_data({"Input": seqs, "Output": np.arange(5.0)}, Index(11))
    port = td.ports["Input"]
    assert port.flat.dtype == np.int64
    np.testing.assert_array_equal(port.flat, _one_by_one(seqs, integer=True))
    assert port.lengths.tolist() == list(lengths)
    assert port.offsets.tolist() == [0, 3, 4, 11, 16]
    # one check of the 18 positions; examples of several dtypes are checked one by one
    assert calls == ([(k,) for k in lengths] if kind == "mixed dtypes" else [(18,)])


def test_real_sequences_checked_at_once_are_float32_as_one_by_one():
    rng = np.random.default_rng(3)
    seqs = [rng.standard_normal((k, 3)) for k in (4, 1, 6)]  # float64, 3-vectors per step
    port = _sequence_port_data({"Input": seqs, "Output": np.arange(3.0)}, 3).ports["Input"]
    assert port.flat.dtype == np.float32 and port.flat.shape == (11, 3)
    np.testing.assert_array_equal(port.flat, _one_by_one(seqs, integer=False))


@pytest.mark.parametrize("bad,match", [
    (lambda s: s[:3] + [np.array([1, 11, 2])] + s[4:], r"'Input' \(example 3\).*from 1 to 11"),
    (lambda s: s[:2] + [np.array([1.0, 2.5])] + s[3:], r"'Input' \(example 2\).*integers"),
    (lambda s: s[:1] + [np.array([-1, 0])] + s[2:], r"'Input' \(example 1\).*from -1 to 0"),
])
def test_a_bad_value_in_sequences_checked_at_once_names_its_example(bad, match):
    seqs = bad([np.arange(k) % 11 for k in (3, 1, 7, 5, 2)])
    with pytest.raises(InputDataError, match=match):
        _sequence_port_data({"Input": seqs, "Output": np.arange(5.0)}, Index(11))


@pytest.mark.parametrize("value,match", [(np.nan, r"\(example 2\) contains NaN"),
                                         (1e300, r"beyond the float32 range")])
def test_a_bad_real_in_sequences_checked_at_once_is_named(value, match):
    seqs = [np.ones((k, 3)) for k in (2, 4, 3)]
    seqs[2][1, 0] = value
    with pytest.raises(InputDataError, match=match):
        _sequence_port_data({"Input": seqs, "Output": np.arange(3.0)}, 3)


# ---------------------------------------------------------------- bad data
@pytest.mark.parametrize("data,match", [
    ({"Input": X, "Output": Y[:-1]}, r"inconsistent numbers of examples.*'Input': 12.*'Output': 11"),
    ({"Input": X}, r"no data for target port 'Output'"),
    ((X,), r"must be a dict"),
    ({"Input": X, "Output": Y, "Extra": Y}, r"unknown port 'Extra'"),
    ({"Input": np.where(X > 1, np.nan, X), "Output": Y}, r"'Input'.*NaN"),
    ({"Input": X, "Output": np.where(Y > 0, 5, 0)}, r"'Output'.*outside the range"),
    ({"Input": X, "Output": Y + 0.5}, r"'Output'.*integers"),
    ({"Input": X[:, :2], "Output": Y}, r"'Input'.*shape"),
    ({"Input": X[0], "Output": Y[0]}, r"'Input'"),
    ({"Input": [], "Output": []}, r"'Input' is empty"),
    ({"Input": np.zeros((0, 3)), "Output": np.zeros(0)}, r"'Input' is empty"),
    ([], r"an empty list"),
    ("data", r"must be a dict"),
    ({"Input": "abc", "Output": Y}, r"'Input'"),
    ({"Input": [[1, 2, 3], [1, 2]] * 6, "Output": Y}, r"'Input'"),
    ([{"Input": X[0], "Output": 1}, {"Input": X[1]}], r"example 1 has no value for port 'Output'"),
    ([{"Input": X[0], "Output": 1, "Bad": 2}], r"unknown port 'Bad'"),
])
def test_bad_training_data_raises_input_data_error(data, match):
    with pytest.raises(InputDataError, match=match):
        NetTrain(CLASSIFIER, data, **KW)


def test_tuple_form_needs_one_input_and_one_output():
    net = NetGraph({"t": TotalLayer(), "lin": LinearLayer(1)}, [("t", "lin")], Input1=3,
                   Input2=3)
    with pytest.raises(InputDataError, match="one input and one output"):
        NetTrain(net, (X, X[:, :1]), **KW)


def test_bad_validation_set_is_named():
    with pytest.raises(InputDataError, match="validation set.*'Output'"):
        NetTrain(CLASSIFIER, (X, Y), validation_set={"Input": X}, **KW)
    with pytest.raises(InputDataError, match="validation set.*'Input'"):
        NetTrain(CLASSIFIER, (X, Y), validation_set=(X[:, :1], Y), **KW)


def test_bad_sequences():
    net = NetChain([EmbeddingLayer(2, 4), NetMapOperator(LinearLayer(1))])
    seqs = [np.array([0, 1, 2]), np.array([], dtype=int)]
    with pytest.raises(InputDataError, match="'Input'.*empty sequence"):
        NetTrain(net, (seqs, [np.zeros((3, 1)), np.zeros((0, 1))]), **KW)
    good = [np.array([0, 1, 2]), np.array([3])]
    with pytest.raises(InputDataError, match="length 2.*length 1"):
        NetTrain(net, (good, [np.zeros((3, 1)), np.zeros((2, 1))]), **KW)
    with pytest.raises(InputDataError, match="'Input'.*outside the range"):
        NetTrain(net, ([np.array([0, 9])], [np.zeros((2, 1))]), **KW)


def test_as_port_dict_forms():
    assert as_port_dict((1, 2), ["Input"], ["Output"]) == {"Input": 1, "Output": 2}
    assert as_port_dict({NetPort("Input"): 1}, ["Input"], []) == {"Input": 1}
    with pytest.raises(InputDataError, match="training data"):
        as_port_dict(None, ["Input"], [])


# ------------------------------------------------------------- bad options
@pytest.mark.parametrize("options,match", [
    (dict(batch_size=0), "batch_size"), (dict(batch_size=2.5), "batch_size"),
    (dict(batch_size=True), "batch_size"), (dict(max_training_rounds=0), "max_training_rounds"),
    (dict(method="Foo"), "unknown method 'Foo'"), (dict(method=("ADAM", {"momentum": 1})),
                                                   "unknown option 'momentum'"),
    (dict(method=("ADAM", {"beta1": 1.5})), "beta1"), (dict(method=("SGD", {"nesterov": 1})),
                                                       "nesterov"),
    (dict(method=("RMSProp", {"epsilon": 0})), "epsilon"),
    (dict(learning_rate=-1), "learning_rate"), (dict(learning_rate=0), "learning_rate"),
    (dict(learning_rate="x"), "learning_rate"), (dict(target_device="GPU"), "target_device"),
    (dict(prop="Foo"), "unknown property"), (dict(time_goal=0), "time_goal"),
    (dict(time_goal="1s"), "time_goal"), (dict(seed="a"), "seed"), (dict(seed=-1), "seed"),
    (dict(gradient_clipping=0), "gradient_clipping"),
    (dict(l2_regularization=-1), "l2_regularization"),
    (dict(validation_set=1.5), "fraction"),
])
def test_bad_options_raise_net_error(options, match):
    kw = {**KW, **options}
    with pytest.raises(NetError, match=match) as info:
        NetTrain(CLASSIFIER, (X, Y), **kw)
    assert not isinstance(info.value, InputDataError)


def test_not_a_net():
    with pytest.raises(NetError, match="needs a net"):
        NetTrain("net", (X, Y))


def test_holdout_needs_training_examples():
    with pytest.raises(NetError, match="none to train on"):
        NetTrain(CLASSIFIER, (X[:1], Y[:1]), validation_set=0.5, **KW)


def test_unspecified_net_raises_specification_error():
    from netgraph import SpecificationError

    net = NetChain([EmbeddingLayer(2), SummationLayer()])
    with pytest.raises(SpecificationError):
        NetTrain(net, ([[0.5, 1.0]], [1.0]), **KW)
    assert Index  # (imported for readers: indices are 0-based)
