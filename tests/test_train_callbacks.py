"""training_progress_function (the info dict, intervals, "StopTraining") and interrupting."""

from __future__ import annotations

import os
import signal
import warnings

import numpy as np
import pytest
from train_cases import arrays_of, assert_same_arrays, tagger, tagging

from netgraph import NetError, NetTrain

X, Y = tagging(21, 0)   # batches of 8, 8, 5
VX, VY = tagging(9, 1)
KW = dict(seed=3, batch_size=8, learning_rate=0.05, progress=False)


def recorder(store, keep_net=True):
    def f(info):
        entry = dict(info)
        if keep_net:
            entry["Arrays"] = arrays_of(info["Net"])
        store.append(entry)
    return f


def test_info_after_every_round():
    calls = []
    res = NetTrain(tagger(0.2), (X, Y), prop="All", validation_set=(VX, VY),
                   max_training_rounds=3, training_progress_measurements=["Accuracy"],
                   training_progress_function=recorder(calls), **KW)
    assert [c["Round"] for c in calls] == [1, 2, 3]
    for r, c in enumerate(calls, 1):
        assert c["Batch"] == 3 * r
        assert c["BatchLoss"] == res.batch_loss_list[3 * r - 1]
        assert c["RoundLoss"] == res.round_loss_list[r - 1]
        assert c["ValidationLoss"] == res.validation_loss_list[r - 1]
        assert c["Measurements"] == {
            "Accuracy": res.round_measurements_list[r - 1]["Accuracy"],
            "ValidationAccuracy": res.validation_measurements_list[r - 1]["Accuracy"]}
        assert c["LearningRate"] == res.learning_rate_list[3 * r - 1] == 0.05
        assert c["ExamplesProcessed"] == 21 * r
        # the net of round r is the net an r-round run ends with (and not a live view)
        alone = NetTrain(tagger(0.2), (X, Y), prop="FinalNet", validation_set=(VX, VY),
                         max_training_rounds=r, **KW)
        assert c["Arrays"].keys() == arrays_of(alone).keys()
        for k, a in arrays_of(alone).items():
            np.testing.assert_array_equal(c["Arrays"][k], a)
            np.testing.assert_array_equal(arrays_of(c["Net"])[k], a)
    assert 0 < calls[0]["TimeElapsed"] < calls[1]["TimeElapsed"] < calls[2]["TimeElapsed"]
    assert_same_arrays(calls[-1]["Net"], res.final_net)


def test_info_every_k_batches_sees_the_round_in_progress():
    calls = []
    res = NetTrain(tagger(), (X, Y), prop="All", max_training_rounds=3,
                   training_progress_measurements=["Loss"],
                   training_progress_function=(recorder(calls, False),
                                               {"interval": ("Batches", 2)}), **KW)
    assert [c["Batch"] for c in calls] == [2, 4, 6, 8]
    assert [c["Round"] for c in calls] == [1, 2, 2, 3]
    assert calls[0]["RoundLoss"] is None and calls[0]["Measurements"] == {}
    assert calls[0]["ValidationLoss"] is None
    assert calls[1]["RoundLoss"] == res.round_loss_list[0]
    assert calls[1]["Measurements"] == {"Loss": res.round_loss_list[0]}
    assert [c["BatchLoss"] for c in calls] == [res.batch_loss_list[b - 1] for b in (2, 4, 6, 8)]
    seen = [c["ExamplesProcessed"] for c in calls]  # batches of 8, 8, 5 in a shuffled order
    assert seen[0] in (13, 16) and seen[1] - 21 in (5, 8) and seen[2] == 42
    assert seen[3] - 42 in (13, 16)


def test_every_k_rounds():
    calls = []
    NetTrain(tagger(), (X, Y), max_training_rounds=5,
             training_progress_function=(recorder(calls, False), {"interval": ("Rounds", 2)}),
             **KW)
    assert [c["Round"] for c in calls] == [2, 4]


def test_stop_training_after_a_round():
    res = NetTrain(tagger(), (X, Y), prop="All", max_training_rounds=9,
                   training_progress_function=lambda info: "StopTraining" * (info["Round"] == 2),
                   **KW)
    assert res.reason_training_stopped == "TrainingProgressFunction"
    assert res.total_rounds == 2 and len(res.round_loss_list) == 2 and res.total_batches == 6


def test_stop_training_in_a_round():
    calls = []

    def f(info):
        recorder(calls)(info)
        return "StopTraining" if info["Batch"] == 4 else None

    res = NetTrain(tagger(), (X, Y), prop="All", max_training_rounds=9,
                   training_progress_function=(f, {"interval": ("Batches", 1)}), **KW)
    assert res.reason_training_stopped == "TrainingProgressFunction"
    assert res.total_batches == 4 and res.round_loss_list == res.round_loss_list[:1]
    for k, a in arrays_of(res.final_net).items():
        np.testing.assert_array_equal(calls[-1]["Arrays"][k], a)


def test_keyboard_interrupt_in_the_callback_returns_the_net_trained_so_far():
    calls = []

    def f(info):
        recorder(calls)(info)
        if info["Batch"] == 5:
            raise KeyboardInterrupt

    with pytest.warns(UserWarning, match="interrupted.*returning the net trained so far"):
        res = NetTrain(tagger(), (X, Y), prop="All", max_training_rounds=4,
                       training_progress_function=(f, {"interval": ("Batches", 1)}), **KW)
    assert res.reason_training_stopped == "ManualStop"
    assert res.total_batches == 5 and res.total_rounds == 1
    for k, a in arrays_of(res.trained_net).items():
        np.testing.assert_array_equal(calls[-1]["Arrays"][k], a)


def test_ctrl_c_stops_after_the_current_batch():
    """SIGINT arrives while round 2's second batch is being made: that batch is still
    trained, then training stops; the net is the one an uninterrupted run has then."""
    armed = []

    def data(info):
        if armed and (info["Round"], info["Batch"]) == (2, 2):
            os.kill(os.getpid(), signal.SIGINT)
        return {"Input": X[:info["BatchSize"]], "Output": Y[:info["BatchSize"]]}

    every = []
    NetTrain(tagger(0.2), data, round_length=21, max_training_rounds=3,
             training_progress_function=(recorder(every), {"interval": ("Batches", 1)}), **KW)
    armed.append(True)
    with pytest.warns(UserWarning, match="interrupted"):
        res = NetTrain(tagger(0.2), data, prop="All", round_length=21, max_training_rounds=3,
                       **KW)
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    assert res.reason_training_stopped == "ManualStop" and res.total_batches == 5
    for k, a in arrays_of(res.final_net).items():
        np.testing.assert_array_equal(every[4]["Arrays"][k], a)


def test_no_warning_and_the_handler_kept_without_interruption():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        NetTrain(tagger(), (X, Y), max_training_rounds=1, **KW)
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


@pytest.mark.parametrize("spec,match", [
    (5, "must be None, a function"),
    ((print, {"interval": ("Epochs", 1)}), "'Rounds' \\| 'Batches'"),
    ((print, {"interval": ("Rounds", 0)}), "int k >= 1"),
    ((print, {"every": 2}), "interval"),
])
def test_callback_mistakes(spec, match):
    with pytest.raises(NetError, match=match):
        NetTrain(tagger(), (X, Y), max_training_rounds=1, training_progress_function=spec,
                 **KW)
