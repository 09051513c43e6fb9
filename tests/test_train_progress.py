"""progress=: the bar, "Print" (one line per round), .csv and .jsonl logs (one flushed row per
round, the documented columns)."""

from __future__ import annotations

import csv
import json

import pytest
from train_cases import tagger, tagging

from netgraph import NetError, NetTrain

X, Y = tagging(21, 0)   # 3 batches per round
VX, VY = tagging(9, 1)
KW = dict(seed=0, batch_size=8, validation_set=(VX, VY),
          training_progress_measurements=["Accuracy", "SequenceAccuracy"])
COLUMNS = ["round", "loss", "validation_loss", "Accuracy", "SequenceAccuracy",
           "validation_Accuracy", "validation_SequenceAccuracy", "learning_rate", "time"]


def expected_rows(res):
    rows = []
    for r in range(res.total_rounds):
        m, v = res.round_measurements_list[r], res.validation_measurements_list[r]
        rows.append({"round": r + 1, "loss": res.round_loss_list[r],
                     "validation_loss": res.validation_loss_list[r],
                     **m, **{f"validation_{k}": x for k, x in v.items()},
                     "learning_rate": res.learning_rate_list[3 * r + 2]})
    return rows


def test_print_writes_exactly_one_line_per_round(capsys):
    res = NetTrain(tagger(), (X, Y), prop="All", max_training_rounds=3, progress="Print", **KW)
    out, err = capsys.readouterr()
    lines = out.splitlines()
    assert len(lines) == 3 and err == ""
    for r, line in enumerate(lines, 1):
        assert line.startswith(f"round {r}/3: loss {res.round_loss_list[r - 1]:.4g}, ")
        acc = res.validation_measurements_list[r - 1]["Accuracy"]
        assert f"validation Accuracy {acc:.4g}" in line and line.endswith(" s")


def test_csv_log(tmp_path):
    path = tmp_path / "log.csv"
    rows_seen = []

    def look(info):  # called after the round's row is written: it must be on disk already
        rows_seen.append(len(path.read_text().splitlines()) - 1)

    res = NetTrain(tagger(), (X, Y), prop="All", max_training_rounds=3, progress=str(path),
                   training_progress_function=look, **KW)
    assert rows_seen == [1, 2, 3]
    with open(path, newline="") as f:
        table = list(csv.reader(f))
    assert table[0] == COLUMNS
    times = []
    for row, want in zip(table[1:], expected_rows(res), strict=True):
        got = dict(zip(COLUMNS, row))
        assert int(got.pop("round")) == want.pop("round")
        times.append(float(got.pop("time")))
        assert {k: float(v) for k, v in got.items()} == want  # full precision
    assert 0 < times[0] < times[1] < times[2]


def test_jsonl_log_without_a_validation_set(tmp_path, capsys):
    path = tmp_path / "log.jsonl"
    res = NetTrain(tagger(), (X, Y), prop="All", max_training_rounds=2, progress=path, seed=0,
                   batch_size=8, training_progress_measurements=["Accuracy"])
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    assert [list(r) for r in rows] == [["round", "loss", "validation_loss", "Accuracy",
                                        "learning_rate", "time"]] * 2
    for r, row in enumerate(rows):
        assert row["validation_loss"] is None and row["round"] == r + 1
        assert row["loss"] == res.round_loss_list[r]
        assert row["Accuracy"] == res.round_measurements_list[r]["Accuracy"]
    assert capsys.readouterr() == ("", "")


def test_a_resumed_run_appends_to_its_log(tmp_path):
    path, ck = tmp_path / "log.csv", tmp_path / "ck.ngz"
    NetTrain(tagger(), (X, Y), max_training_rounds=2, progress=path,
             training_progress_checkpointing=("File", ck), **KW)
    res = NetTrain(tagger(), (X, Y), prop="All", max_training_rounds=4, progress=path,
                   resume=ck, **KW)
    table = list(csv.reader(open(path, newline="")))
    assert table[0] == COLUMNS and [int(r[0]) for r in table[1:]] == [1, 2, 3, 4]
    assert [float(r[1]) for r in table[1:]] == res.round_loss_list


def test_the_bar_shows_losses_and_measurements(capsys):
    NetTrain(tagger(), (X, Y), max_training_rounds=2, progress=True, **KW)
    out, err = capsys.readouterr()
    assert out == ""
    assert "round 2/2" in err and "validation loss" in err and "validation Accuracy" in err


@pytest.mark.parametrize("progress", ["Yes", "log.txt", 1, 0.5])
def test_progress_mistakes(progress):
    with pytest.raises(NetError, match="progress must be True, False, None, 'Print' or a path"):
        NetTrain(tagger(), (X, Y), max_training_rounds=1, progress=progress)
