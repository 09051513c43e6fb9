"""training_progress_checkpointing and resume: N rounds in one run == k rounds, a checkpoint,
and a resumed run to N, bit for bit."""

from __future__ import annotations

import json
import os
import zipfile

import numpy as np
import pytest
from train_cases import assert_same_arrays, regression, tagger, tagging

from netgraph import LinearLayer, NetChain, NetError, NetTrain, load, save

X, Y = tagging(29, 0)
VX, VY = tagging(13, 1)
LISTS = ("batch_loss_list", "round_loss_list", "validation_loss_list",
         "round_measurements_list", "validation_measurements_list", "learning_rate_list")


def options(method):
    return dict(validation_set=(VX, VY), seed=5, batch_size=8, progress=False, method=method,
                learning_rate=0.02, training_progress_measurements=["Accuracy", "SequenceAccuracy"],
                training_stopping_criterion={"criterion": "Loss", "patience": 50})


def assert_same_run(a, b):
    assert_same_arrays(a.final_net, b.final_net)
    assert_same_arrays(a.trained_net, b.trained_net)
    for name in LISTS:
        assert getattr(a, name) == getattr(b, name), name
    for name in ("total_rounds", "total_batches", "examples_processed", "best_validation_round",
                 "reason_training_stopped"):
        assert getattr(a, name) == getattr(b, name), name


@pytest.mark.parametrize("method", [
    ("ADAM", {"learning_rate_schedule": "Cosine", "warmup_batches": 5}),
    ("SGD", {"momentum": 0.9, "learning_rate_schedule": "Linear"}),
    ("RMSProp", {"warmup_batches": 10}),  # the warm-up spans the checkpoint (batch 8)
])
def test_resumed_run_is_bit_identical_to_an_uninterrupted_one(tmp_path, method):
    """The first run plans 5 rounds (a schedule over T batches needs the same T) and stops
    after 2 (its callback says so); a run without a T-dependent schedule may also just ask
    for 2 rounds."""
    kw = options(method)
    full = NetTrain(tagger(0.3), (X, Y), prop="All", max_training_rounds=5, **kw)
    planned = 2 if method[0] == "RMSProp" else 5
    NetTrain(tagger(0.3), (X, Y), max_training_rounds=planned,
             training_progress_checkpointing=("Directory", tmp_path),
             training_progress_function=lambda info: "StopTraining" * (info["Round"] == 2),
             **kw)
    names = sorted(os.listdir(tmp_path))
    assert names == ["checkpoint-00000001.ngz", "checkpoint-00000002.ngz"]
    resumed = NetTrain(tagger(0.3), (X, Y), prop="All", max_training_rounds=5,
                       resume=tmp_path, **kw)  # a directory: its latest checkpoint
    assert_same_run(full, resumed)
    again = NetTrain(tagger(0.3), (X, Y), prop="All", max_training_rounds=5,
                     resume=tmp_path / names[0], **kw)
    assert_same_run(full, again)
    assert sorted(os.listdir(tmp_path)) == names  # resumed calls wrote no checkpoints
    assert len(set(full.learning_rate_list)) > 3  # the schedule counts batches across the resume


def test_a_checkpoint_is_the_net_of_its_round_with_its_best_net(tmp_path):
    nets = {}
    kw = options("ADAM")
    res = NetTrain(tagger(0.3), (X, Y), prop="All", max_training_rounds=4,
                   training_progress_checkpointing=("Directory", tmp_path),
                   training_progress_function=lambda info: nets.update({info["Round"]:
                                                                        info["Net"]}), **kw)
    for r in range(1, 5):
        assert_same_arrays(load(tmp_path / f"checkpoint-{r:08d}.ngz"), nets[r])
        # resuming at round r with max_training_rounds=r trains nothing: the run as it was
        upto = NetTrain(tagger(0.3), (X, Y), prop="All", max_training_rounds=r,
                        resume=tmp_path / f"checkpoint-{r:08d}.ngz", **kw)
        assert upto.total_rounds == r and upto.validation_loss_list == \
            res.validation_loss_list[:r]
        best = int(np.argmin(res.validation_loss_list[:r])) + 1
        assert upto.best_validation_round == best
        assert_same_arrays(upto.trained_net, nets[best])


def test_interval_and_names_that_sort_by_round(tmp_path):
    NetTrain(tagger(), (X, Y), seed=0, max_training_rounds=12, progress=False,
             training_progress_checkpointing=("Directory", tmp_path / "new",
                                              {"interval": ("Rounds", 4)}))
    names = os.listdir(tmp_path / "new")
    assert sorted(names) == [f"checkpoint-{r:08d}.ngz" for r in (4, 8, 12)]


def test_a_file_checkpoint_is_replaced_atomically(tmp_path):
    path = tmp_path / "run.ngz"
    seen = []

    def look(info):
        with zipfile.ZipFile(path) as zf:
            seen.append(json.loads(zf.read("training/state.json"))["round"])

    NetTrain(tagger(), (X, Y), seed=0, max_training_rounds=3, progress=False,
             training_progress_checkpointing=("File", path), training_progress_function=look)
    assert seen == [1, 2, 3]
    assert os.listdir(tmp_path) == ["run.ngz"]  # no temporary file left behind


def test_resume_without_a_seed_continues_the_checkpointed_run(tmp_path):
    """seed=None and a held-out fraction: the shuffling state and the held-out examples come
    from the checkpoint, so resuming round 1 to 2 rebuilds checkpoint 2 exactly."""
    kw = dict(validation_set=0.25, batch_size=8, progress=False)
    NetTrain(tagger(0.3), (X, Y), max_training_rounds=2,
             training_progress_checkpointing=("Directory", tmp_path), **kw)
    res = NetTrain(tagger(0.3), (X, Y), prop="All", max_training_rounds=2,
                   resume=tmp_path / "checkpoint-00000001.ngz", **kw)
    assert_same_arrays(res.final_net, load(tmp_path / "checkpoint-00000002.ngz"))


def test_resume_after_ctrl_c_loses_nothing(tmp_path):
    kw = options("ADAM")
    full = NetTrain(tagger(0.3), (X, Y), prop="All", max_training_rounds=4, **kw)

    def interrupt(info):
        if info["Batch"] == 10:  # in round 3
            raise KeyboardInterrupt

    with pytest.warns(UserWarning, match="interrupted"):
        NetTrain(tagger(0.3), (X, Y), max_training_rounds=4,
                 training_progress_checkpointing=("Directory", tmp_path),
                 training_progress_function=(interrupt, {"interval": ("Batches", 1)}), **kw)
    resumed = NetTrain(tagger(0.3), (X, Y), prop="All", max_training_rounds=4, resume=tmp_path,
                       **kw)
    assert_same_run(full, resumed)


def test_resume_with_a_data_function(tmp_path):
    def data(info):
        return tagging(info["BatchSize"], 100 * info["Round"] + info["Batch"])

    kw = dict(round_length=19, batch_size=8, seed=2, progress=False,
              method=("ADAM", {"learning_rate_schedule": "Cosine"}))
    full = NetTrain(tagger(0.3), data, prop="All", max_training_rounds=3, **kw)
    NetTrain(tagger(0.3), data, max_training_rounds=3,
             training_progress_checkpointing=("File", tmp_path / "c.ngz"),
             training_progress_function=lambda info: "StopTraining", **kw)
    resumed = NetTrain(tagger(0.3), data, prop="All", max_training_rounds=3,
                       resume=tmp_path / "c.ngz", **kw)
    assert_same_arrays(full.final_net, resumed.final_net)
    assert full.batch_loss_list == resumed.batch_loss_list
    assert full.learning_rate_list == resumed.learning_rate_list


def test_resume_mistakes(tmp_path):
    ck = tmp_path / "c.ngz"
    NetTrain(tagger(), (X, Y), seed=0, max_training_rounds=1, progress=False,
             training_progress_checkpointing=("File", ck))
    other = NetChain([LinearLayer(2)], Input=3)
    x, t = regression(5, 0)
    with pytest.raises(NetError, match="does not have the structure of the checkpoint's net"):
        NetTrain(other, (x, t), resume=ck, progress=False)
    with pytest.raises(NetError, match="trained with ADAM .* this run uses SGD"):
        NetTrain(tagger(), (X, Y), method="SGD", resume=ck, progress=False)
    save(tagger(), tmp_path / "plain.ngz")
    with pytest.raises(NetError, match="not a training checkpoint"):
        NetTrain(tagger(), (X, Y), resume=tmp_path / "plain.ngz", progress=False)
    with pytest.raises(NetError, match="no such file"):
        NetTrain(tagger(), (X, Y), resume=tmp_path / "missing.ngz", progress=False)
    (tmp_path / "empty").mkdir()
    with pytest.raises(NetError, match="directory without checkpoints"):
        NetTrain(tagger(), (X, Y), resume=tmp_path / "empty", progress=False)


def test_a_damaged_training_state_is_a_net_error(tmp_path):
    ck = tmp_path / "c.ngz"
    NetTrain(tagger(), (X, Y), seed=0, max_training_rounds=1, progress=False,
             training_progress_checkpointing=("File", ck))
    with zipfile.ZipFile(ck) as zf:
        members = {n: zf.read(n) for n in zf.namelist()}
    doc = json.loads(members["training/state.json"])
    del doc["shuffle_rng"]
    members["training/state.json"] = json.dumps(doc).encode()
    members["training/optimizer.m.npy"] = members["training/optimizer.m.npy"][:-8]
    bad = tmp_path / "bad.ngz"
    with zipfile.ZipFile(bad, "w") as zf:
        for n, b in members.items():
            zf.writestr(n, b)
    with pytest.raises(NetError, match="damaged|holds shape"):
        NetTrain(tagger(), (X, Y), resume=bad, progress=False)


@pytest.mark.parametrize("spec,match", [
    (("Folder", "x"), "must be None, \\('Directory', dir\\)"),
    (("File",), "must be None"),
    (("File", "x.ngz", {"interval": ("Batches", 2)}), "\\('Rounds', k\\)"),
    (("File", "x.ngz", {"interval": ("Rounds", 0)}), "k >= 1"),
])
def test_checkpointing_mistakes(spec, match):
    with pytest.raises(NetError, match=match):
        NetTrain(tagger(), (X, Y), max_training_rounds=1, progress=False,
                 training_progress_checkpointing=spec)
