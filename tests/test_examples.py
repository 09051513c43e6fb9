"""Smoke tests: every example runs and produces what it promises."""

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from tolerance import assert_close

import netgraph
from netgraph import NetDecoder, NetEncoder, NetExtract

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def load(name):
    spec = importlib.util.spec_from_file_location(name, EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_attention_basics(tmp_path):
    pytest.importorskip("matplotlib")
    out = tmp_path / "weights.png"
    result = load("attention_basics").main(str(out))
    assert out.stat().st_size > 1000 and out.read_bytes()[:4] == b"\x89PNG"
    # float32 results against the same net in float64: a score sums 2 terms, the softmax and
    # the weighted sum 3 each; the hand rebuild adds the rounding of its own float32 steps
    data = {"Input": result["inputs"], "Query": result["queries"]}
    want = result["net"](data, dtype=np.float64)
    assert_close(result["output"], want, dtype=np.float32, reduction=2 + 3 + 3)
    assert_close(result["by_hand"], want[0], dtype=np.float32, reduction=2 * (2 + 3 + 3))
    assert result["weights"].shape == (4, 3)
    assert_close(result["weights"].sum(axis=1), 1.0, dtype=np.float32, reduction=3)
    # the zero query attends uniformly: its output is the mean of the inputs
    assert_close(result["output"][1], [3.0, 4.0], dtype=np.float32, reduction=3)


def test_dates_translation_learns_on_a_reduced_size(tmp_path):
    pytest.importorskip("matplotlib")
    dates = load("dates")
    out, model = tmp_path / "alignment.png", tmp_path / "model.ngz"
    result = dates.main(train=4000, test=200, rounds=4, out=str(out), progress=False,
                        save=str(model))
    # the full example (10,000 dates) reaches 99.8%; a fifth of the work gets far
    assert result["accuracy"] >= 0.9 and result["beam_accuracy"] >= 0.9
    assert result["greedy"]["seconds_per_1000"] > 0 and result["beam"]["seconds_per_1000"] > 0
    assert out.read_bytes()[:4] == b"\x89PNG"
    weights = result["weights"]
    assert weights.shape == (10, len("Saturday, May 03, 1997"))
    assert_close(weights.sum(axis=1), 1.0, dtype=np.float32, reduction=weights.shape[1])
    losses = result["results"].round_loss_list
    assert len(losses) == 4 and losses[-1] < losses[0] / 10
    # text in, text out: the saved model translates raw strings, also from the command line
    texts = ["Saturday, May 03, 1997", "3 may 1997", "12/31/2049"]
    loaded = netgraph.load(model)
    assert dates.translate(loaded, texts) == dates.translate(result["net"], texts)
    assert result["net"]({"Input": texts[0], "DecoderInput": "^1997-05-0"}) == "1997-05-03"
    run = subprocess.run([sys.executable, str(EXAMPLES / "dates.py"), "--load", str(model),
                          *texts], capture_output=True, text=True, timeout=120,
                         env={**os.environ, "PYTHONPATH": str(EXAMPLES.parent)})
    assert run.returncode == 0, run.stderr
    assert run.stdout.split() == dates.translate(loaded, texts, beam_size=4)
    assert run.stdout.split()[0] == "1997-05-03"


def test_dates_data_and_the_net_coders():
    dates = load("dates")
    pairs = dates.random_dates(500, np.random.default_rng(0))
    import datetime as dt

    for text, iso in pairs:
        day = dt.date.fromisoformat(iso)
        assert dt.date(1950, 1, 1) <= day <= dt.date(2049, 12, 31)
        assert str(day.year) in text
    data = dates.training_data(pairs[:3])
    assert data["Input"] == [t for t, _ in pairs[:3]]
    assert data["Output"] == [iso for _, iso in pairs[:3]]
    assert data["DecoderInput"] == ["^" + iso[:-1] for _, iso in pairs[:3]]
    net = dates.build_model()
    assert NetExtract(net, "Input") == NetEncoder("Characters", dates.IN_CHARS)
    assert NetExtract(net, "DecoderInput") == NetEncoder("Characters", dates.TOKENS)
    assert NetExtract(net, "Output") == NetDecoder("Characters", dates.TOKENS)
    assert set("".join(t for t, _ in pairs)) <= set(dates.IN_CHARS)


def test_transformer_dates_learns_on_a_reduced_size():
    tr = load("transformer_dates")
    from netgraph import NetExtract, NetInformation

    size = {"d": 24, "heads": 4, "hidden": 48}
    tied = [["decoder", "embed", "tokens", "Weights"], ["decoder", "readout", "Net", "Weights"]]
    assert NetExtract(tr.build_model(**size), tr.TIED) is None
    result = tr.main(train=3000, test=200, rounds=5, progress=False, learning_rate=0.006, **size)
    losses = result["results"].round_loss_list  # measured: 1.52 -> 0.27
    assert len(losses) == 5 and losses[-1] < losses[0] / 3
    # the full example (10,000 dates, 12 rounds) reaches 99.7 %; an eighth of the work gets
    # most characters right (measured: 90 % of the characters, 52 % of the dates)
    trained = result["net"]
    pairs = tr.dates.random_dates(200, np.random.default_rng(5))
    predicted = tr.translate(trained, [text for text, _ in pairs])
    assert all(len(p) == 10 for p in predicted)
    characters = np.mean([[a == b for a, b in zip(p, iso)] for p, (_, iso) in
                          zip(predicted, pairs)])
    assert characters >= 0.75 and result["accuracy"] >= 0.25, (characters, result["accuracy"])
    # generate's prefix form is greedy decoding: the hand-written loop gives the same dates
    assert predicted[:20] == _greedy_by_hand(tr, trained, [text for text, _ in pairs[:20]])
    np.testing.assert_array_equal(NetExtract(trained, tied[0]), NetExtract(trained, tied[1]))
    np.testing.assert_array_equal(NetExtract(trained, tr.TIED), NetExtract(trained, tied[0]))
    # the output projection is tied: one (12, 24) array fewer than its uses hold
    by_path = sum(a.size for a in NetInformation(trained, "Arrays").values())
    assert result["parameters"] == by_path - 12 * 24


def _greedy_by_hand(tr, net, texts):
    """The decoder fed its own argmax ten times, from the start token."""
    enc, dec = NetExtract(net, "encoder"), NetExtract(net, "decoder")
    states = enc({"Input": tr.dates.encode([(t, "2000-01-01") for t in texts])["Input"]})
    tokens = np.full((len(texts), 1), tr.START)
    for _ in range(10):
        probs = dec({"Input": tokens, "EncoderStates": states})
        tokens = np.concatenate([tokens, np.stack([p[-1] for p in probs]).argmax(1)[:, None]], 1)
    return ["".join(tr.dates.TOKENS[i] for i in row[1:]) for row in tokens]


def test_custom_layer_learns_its_scale_and_shift_and_round_trips():
    from layer_cases import example_module

    result = example_module("custom_layer").main(rounds=200)
    # the targets are tanh(2 x - 0.5): the layer before the Tanh converges (to 6e-5 in 200
    # rounds) to Scale 2, Shift -0.5
    np.testing.assert_allclose(result["scale"], [2.0] * 3, atol=2e-4)
    np.testing.assert_allclose(result["shift"], [-0.5] * 3, atol=2e-4)
    data = {"Input": result["inputs"][:5]}
    for a, b in zip(result["net"](data), result["loaded"](data), strict=True):
        np.testing.assert_array_equal(a, b)


def test_docs_show_the_custom_layer_as_it_is():
    doc = (EXAMPLES.parent / "docs" / "extending.md").read_text()
    block = doc.split("<!-- custom_layer:", 1)[1].split("```python\n", 1)[1].split("```", 1)[0]
    assert "class ScaleShiftLayer(Layer):" in block
    assert block.strip() in (EXAMPLES / "custom_layer.py").read_text()
