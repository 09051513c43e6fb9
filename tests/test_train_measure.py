"""training_progress_measurements: values recomputed by hand from the net of each round."""

from __future__ import annotations

import numpy as np
import pytest
from train_cases import accuracy, blobs, classifier, regression, tagger, tagging

from netgraph import (
    LinearLayer,
    NetChain,
    NetError,
    NetGraph,
    NetInitialize,
    NetTrain,
    SoftmaxLayer,
)

ALL = ["Loss", "ErrorRate", "Accuracy", "SequenceAccuracy"]


def nets_by_round(store):
    """A training_progress_function keeping the net of every completed round."""
    def keep(info):
        store[info["Round"]] = info["Net"]
    return keep


def test_validation_measurements_equal_their_recomputation_from_each_rounds_net():
    X, Y = tagging(40, 1)
    VX, VY = tagging(23, 2)
    nets = {}
    res = NetTrain(tagger(0.3), (X, Y), prop="All", validation_set=(VX, VY), seed=4,
                   max_training_rounds=4, batch_size=8, learning_rate=0.05, progress=False,
                   training_progress_measurements=ALL,
                   training_progress_function=nets_by_round(nets))
    assert len(res.validation_measurements_list) == 4 == len(res.round_measurements_list)
    accs = []
    for r, got in enumerate(res.validation_measurements_list, 1):
        probs = nets[r](VX)
        acc, seq = accuracy(probs, VY)
        accs.append(acc)
        assert list(got) == ALL
        assert got["Accuracy"] == pytest.approx(acc, abs=1e-12)
        assert got["SequenceAccuracy"] == pytest.approx(seq, abs=1e-12)
        assert got["ErrorRate"] == pytest.approx(1 - acc, abs=1e-12)
        assert got["Loss"] == res.validation_loss_list[r - 1]
    assert len(set(accs)) > 1  # the net changes from round to round


def test_training_measurements_come_from_each_batchs_forward_pass():
    """One batch per round, no dropout: round r measures the net of round r - 1 (before its
    update) on the training data; the training "Loss" is the round loss."""
    X, Y = tagging(31, 3)
    nets = {0: NetInitialize(tagger(), seed=2)}
    res = NetTrain(tagger(), (X, Y), prop="All", seed=2, max_training_rounds=3,
                   batch_size=31, learning_rate=0.1, progress=False,
                   training_progress_measurements=ALL,
                   training_progress_function=nets_by_round(nets))
    assert res.validation_measurements_list == []
    for r, got in enumerate(res.round_measurements_list, 1):
        acc, seq = accuracy(nets[r - 1](X), Y)
        assert got["Accuracy"] == pytest.approx(acc, abs=1e-12)
        assert got["SequenceAccuracy"] == pytest.approx(seq, abs=1e-12)
        assert got["Loss"] == res.round_loss_list[r - 1]


def test_accuracy_of_a_fixed_shape_classifier_is_its_sequence_accuracy():
    X, Y = blobs(37, 0)
    VX, VY = blobs(19, 1)
    res = NetTrain(classifier(), (X, Y), prop="All", validation_set=(VX, VY), seed=0,
                   max_training_rounds=3, progress=False,
                   training_progress_measurements=["Accuracy", "SequenceAccuracy"])
    final = res.validation_measurements_list[-1]
    want = float(np.mean(np.argmax(res.final_net(VX), -1) == VY))
    assert final["Accuracy"] == final["SequenceAccuracy"] == pytest.approx(want, abs=1e-12)


def test_custom_measurement_sees_user_form_batches_weighted_by_size():
    X, Y = tagging(23, 5)
    VX, VY = tagging(11, 6)
    seen = []

    def count(outputs, targets):
        seen.append((outputs, targets))
        return float(len(outputs))

    res = NetTrain(tagger(), (X, Y), prop="All", validation_set=(VX, VY), seed=1,
                   max_training_rounds=2, batch_size=8, progress=False,
                   training_progress_measurements=[("Count", count)])
    # batches of 8, 8 and 7: the mean of the batch values weighted by batch size
    assert res.round_measurements_list == [{"Count": (64 + 64 + 49) / 23}] * 2
    assert res.validation_measurements_list == [{"Count": 11.0}] * 2
    outputs, targets = seen[0]
    assert isinstance(outputs, list) and isinstance(targets, list)
    for o, t in zip(outputs, targets):
        assert o.shape == (len(t), 5) and t.dtype == np.int64


def test_custom_measurement_of_a_net_with_two_outputs_gets_dicts():
    net = NetGraph({"a": NetChain([4, SoftmaxLayer()]), "b": LinearLayer(2)}, [], Input=3)
    X, _ = blobs(13, 2)
    cls, reg = np.arange(13) % 4, regression(13, 3)[1]
    got = []

    def mse(outputs, targets):
        got.append(sorted(outputs))
        return float(np.mean((outputs["Output2"] - targets["Output2"]) ** 2))

    nets = {0: NetInitialize(net, seed=0)}
    res = NetTrain(net, {"Input": X, "Output1": cls, "Output2": reg}, prop="All", seed=0,
                   max_training_rounds=2, batch_size=13, progress=False,
                   training_progress_measurements=[("MSE", mse), "Accuracy"],
                   training_progress_function=nets_by_round(nets))
    assert got[0] == ["Output1", "Output2"]
    for r, m in enumerate(res.round_measurements_list, 1):
        out = nets[r - 1](X, dtype=np.float64)
        assert m["MSE"] == pytest.approx(np.mean((out["Output2"] - reg) ** 2), rel=1e-5)
        assert m["Accuracy"] == pytest.approx(np.mean(out["Output1"].argmax(-1) == cls))


@pytest.mark.parametrize("spec,match", [
    (["Accuracy"], "needs exactly one output trained against Index"),
    (["Precision"], "unknown training_progress_measurements entry"),
    (["Loss", "Loss"], "listed twice"),
    ([("Loss", lambda o, t: 0.0)], "built-in measurement"),
    ("Loss", None),
    ({"Loss"}, "must be None or a list"),
])
def test_measurement_mistakes(spec, match):
    X, Y = regression(8, 0)
    net = NetChain([LinearLayer(2)], Input=3)
    if match is None:
        res = NetTrain(net, (X, Y), prop="All", max_training_rounds=1, progress=False,
                       training_progress_measurements=spec)
        assert res.round_measurements_list == [{"Loss": res.round_loss_list[0]}]
        return
    with pytest.raises(NetError, match=match):
        NetTrain(net, (X, Y), max_training_rounds=1, progress=False,
                 training_progress_measurements=spec)


def test_custom_measurement_returning_no_number_is_a_net_error():
    X, Y = regression(8, 0)
    with pytest.raises(NetError, match="'Odd' returned 'x'"):
        NetTrain(NetChain([LinearLayer(2)], Input=3), (X, Y), max_training_rounds=1,
                 progress=False, training_progress_measurements=[("Odd", lambda o, t: "x")])
