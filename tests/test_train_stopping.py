"""training_stopping_criterion: the rule on scripted sequences, and on validation data."""

from __future__ import annotations

import numpy as np
import pytest
from train_cases import regression, tagger, tagging

from netgraph import LinearLayer, NetChain, NetError, NetTrain

NET = NetChain([LinearLayer(2)], Input=3)


def scripted(name, values, **criterion):
    """Train for at most len(values) rounds on a data function; the custom measurement
    ``name`` is values[round - 1] on every batch of that round. Returns (rounds, reason)."""
    rounds = []

    def data(info):
        rounds.append(info["Round"])
        return regression(info["BatchSize"], info["Round"])

    res = NetTrain(NET, data, prop="All", round_length=8, batch_size=4, seed=0,
                   max_training_rounds=len(values), progress=False,
                   training_progress_measurements=[(name, lambda o, t: values[rounds[-1] - 1])],
                   training_stopping_criterion={"criterion": name, **criterion})
    assert [m[name] for m in res.round_measurements_list] == values[:res.total_rounds]
    return res.total_rounds, res.reason_training_stopped


STOP = "TrainingStoppingCriterion"
DONE = "MaxTrainingRounds"


@pytest.mark.parametrize("values,criterion,want", [
    # higher is better; patience 0 stops after the first round without improvement
    ([1, 2, 3, 3, 3, 3], {}, (4, STOP)),
    ([1, 2, 3, 3, 3, 3], {"patience": 1}, (4, STOP)),
    ([1, 2, 3, 3, 3, 3], {"patience": 2}, (5, STOP)),
    ([1, 2, 3, 2, 4, 3, 3], {"patience": 2}, (7, STOP)),  # an improvement resets the count
    # an improvement must beat the best by more than delta
    ([1, 1.4, 1.6, 2.0, 2.2], {"improvement": 0.5, "patience": 1}, (2, STOP)),
    ([1, 1.4, 1.6, 2.0, 2.2], {"improvement": 0.5, "patience": 2}, (5, DONE)),
    # only an improvement updates the best (1.4 does not: 1.8 beats 1 + 0.5)
    ([1, 1.4, 1.8, 1.0, 1.0], {"improvement": 0.5, "patience": 2}, (5, STOP)),
    # rounds 1..k0 never count as rounds without improvement, but set the best
    ([5, 4, 3, 2, 1, 0], {"initial_patience": 3}, (4, STOP)),
    ([1, 3, 2, 2], {"initial_patience": 2}, (3, STOP)),
    ([1, 1, 1, 1], {"initial_patience": 4}, (4, DONE)),
])
def test_stopping_rule_on_a_rising_measurement(values, criterion, want):
    assert scripted("Score", values, **criterion) == want


@pytest.mark.parametrize("values,want", [
    ([3, 2, 2.5], (3, STOP)),     # a "...Loss" measurement: lower is better
    ([3, 2, 1, 0.5], (4, DONE)),
])
def test_stopping_rule_on_a_falling_measurement(values, want):
    assert scripted("ScoreLoss", values) == want


def test_validation_loss_is_watched_when_there_is_a_validation_set():
    """Validation targets that contradict the training targets: as training learns, the
    training loss falls and the validation loss rises: early stopping follows the latter."""
    X, Y = tagging(40, 0)
    VX, _ = tagging(20, 1)
    VY = [(x + 3) % 5 for x in VX]
    res = NetTrain(tagger(), (X, Y), prop="All", validation_set=(VX, VY), seed=0,
                   max_training_rounds=20, learning_rate=0.05, progress=False,
                   training_stopping_criterion={"criterion": "Loss"})
    v, t = res.validation_loss_list, res.round_loss_list
    assert res.reason_training_stopped == STOP and res.total_rounds == 2
    assert v[1] >= v[0] and t[1] < t[0]


def test_a_named_measurement_is_computed_when_not_listed():
    X, Y = tagging(40, 0)
    VX, VY = tagging(20, 1)
    res = NetTrain(tagger(), (X, Y), prop="All", validation_set=(VX, VY), seed=0,
                   max_training_rounds=200, learning_rate=0.05, progress=False,
                   training_stopping_criterion={"criterion": "SequenceAccuracy",
                                                "patience": 3})
    assert res.reason_training_stopped == STOP and res.total_rounds < 200
    assert res.validation_measurements_list == [{}] * res.total_rounds
    final = res.final_net(VX)
    assert np.mean([np.array_equal(np.argmax(p, -1), y) for p, y in zip(final, VY)]) == 1.0


@pytest.mark.parametrize("spec,match", [
    ({"criterion": "Loss", "patience": -1}, "'patience' must be an int >= 0"),
    ({"criterion": "Loss", "patience": 1.5}, "'patience' must be an int >= 0"),
    ({"criterion": "Loss", "improvement": -0.1}, "'improvement' must be a number >= 0"),
    ({"criterion": "Loss", "wait": 2}, "unknown training_stopping_criterion key 'wait'"),
    ({"patience": 2}, "must be None or a dict"),
    ({"criterion": "Score"}, "neither a built-in measurement"),
    ({"criterion": "Accuracy"}, "needs exactly one output trained against Index"),
])
def test_stopping_mistakes(spec, match):
    X, Y = regression(8, 0)
    with pytest.raises(NetError, match=match):
        NetTrain(NET, (X, Y), max_training_rounds=2, progress=False,
                 training_stopping_criterion=spec)
