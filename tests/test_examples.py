"""Smoke tests: every example runs and produces what it promises."""

import importlib.util
from pathlib import Path

import numpy as np
import pytest
from tolerance import assert_close

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
    out = tmp_path / "alignment.png"
    result = dates.main(train=4000, test=200, rounds=4, out=str(out), progress=False)
    # the full example (10,000 dates, 10 rounds) reaches 100%; a fifth of the work gets far
    assert result["accuracy"] >= 0.9
    assert out.read_bytes()[:4] == b"\x89PNG"
    weights = result["weights"]
    assert weights.shape == (10, len("Saturday, May 03, 1997"))
    assert_close(weights.sum(axis=1), 1.0, dtype=np.float32, reduction=weights.shape[1])
    losses = result["results"].round_loss_list
    assert len(losses) == 4 and losses[-1] < losses[0] / 10


def test_dates_data_and_encoding():
    dates = load("dates")
    pairs = dates.random_dates(500, np.random.default_rng(0))
    import datetime as dt

    for text, iso in pairs:
        day = dt.date.fromisoformat(iso)
        assert dt.date(1950, 1, 1) <= day <= dt.date(2049, 12, 31)
        assert str(day.year) in text
    data = dates.encode(pairs[:3])
    assert data["DecoderInput"][:, 0].tolist() == [dates.START] * 3
    np.testing.assert_array_equal(data["DecoderInput"][:, 1:], data["Output"][:, :-1])
    assert "".join(dates.IN_CHARS[i] for i in data["Input"][0]) == pairs[0][0]


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
