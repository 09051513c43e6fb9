"""Smoke tests: every example runs and produces what it promises."""

import importlib.util
from pathlib import Path

import numpy as np
import pytest

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
    np.testing.assert_allclose(result["by_hand"], result["output"][0], atol=1e-5)
    assert result["weights"].shape == (4, 3)
    np.testing.assert_allclose(result["weights"].sum(axis=1), 1, rtol=1e-6)
    # the zero query attends uniformly: its output is the mean of the inputs
    np.testing.assert_allclose(result["output"][1], [3.0, 4.0], rtol=1e-6)
