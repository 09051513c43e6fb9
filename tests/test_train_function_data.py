"""Data given as a function f(info) -> batch, with round_length."""

from __future__ import annotations

import numpy as np
import pytest
from train_cases import regression, tagger, tagging

from netgraph import InputDataError, LinearLayer, NetChain, NetError, NetTrain

NET = NetChain([LinearLayer(2)], Input=3)


def test_called_once_per_batch_with_the_documented_info():
    calls = []

    def data(info):
        calls.append(dict(info))
        return tagging(info["BatchSize"], len(calls))

    VX, VY = tagging(7, 99)
    res = NetTrain(tagger(), data, prop="All", round_length=19, batch_size=8,
                   max_training_rounds=3, seed=0, progress=False, validation_set=(VX, VY),
                   training_progress_measurements=["Accuracy"])
    assert calls == [{"BatchSize": s, "Round": r, "Batch": b}
                     for r in (1, 2, 3) for b, s in ((1, 8), (2, 8), (3, 3))]
    assert res.total_batches == 9 and res.examples_processed == 57
    assert res.batches_per_round == 3 and res.batch_size == 8
    assert len(res.validation_measurements_list) == 3


def test_round_loss_is_the_size_weighted_mean_of_the_batch_losses():
    res = NetTrain(NET, lambda info: regression(info["BatchSize"], info["Batch"]), prop="All",
                   round_length=10, batch_size=4, max_training_rounds=2, seed=0,
                   progress=False)
    b = res.batch_loss_list
    assert res.round_loss_list == pytest.approx([(4 * b[0] + 4 * b[1] + 2 * b[2]) / 10,
                                                 (4 * b[3] + 4 * b[4] + 2 * b[5]) / 10],
                                                rel=1e-15)


@pytest.mark.parametrize("form", [
    lambda x, t: (x, t),
    lambda x, t: {"Input": x, "Output": t},
    lambda x, t: [{"Input": a, "Output": b} for a, b in zip(x, t)],
])
def test_any_data_form(form):
    res = NetTrain(NET, lambda info: form(*regression(info["BatchSize"], info["Batch"])),
                   prop="All", round_length=6, max_training_rounds=2, progress=False, seed=0)
    assert res.total_batches == 2 and res.batch_size == 6  # Automatic: at most round_length


def test_a_bad_batch_names_its_round_and_batch():
    def data(info):
        x, t = regression(info["BatchSize"], 0)
        if info["Round"] == 2 and info["Batch"] == 2:
            x[0, 1] = np.nan
        return x, t

    with pytest.raises(InputDataError, match="round 2, batch 2.*Input"):
        NetTrain(NET, data, round_length=8, batch_size=4, max_training_rounds=3, progress=False)


@pytest.mark.parametrize("kw,match", [
    ({}, "needs round_length=n"),
    ({"round_length": 0}, "needs round_length=n"),
    ({"round_length": 2.5}, "needs round_length=n"),
    ({"round_length": 8, "validation_set": 0.2}, "cannot be held out of data given as a function"),
])
def test_function_data_mistakes(kw, match):
    with pytest.raises(NetError, match=match):
        NetTrain(NET, lambda info: regression(info["BatchSize"], 0), progress=False, **kw)


def test_round_length_is_for_functions():
    with pytest.raises(NetError, match="round_length is for data given as a function"):
        NetTrain(NET, regression(8, 0), round_length=8, progress=False)
