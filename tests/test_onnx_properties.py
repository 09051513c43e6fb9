"""Property: a random valid net (tests/strategies.py: chains and two-branch graphs of every
kind of layer from vectors, sequences or embedded index sequences, random custom scoring
nets, losses, fan-out) exports to ONNX, passes the full check and matches ``net(batch)`` in
onnxruntime on two padded batches with garbage in the padding (tests/onnx_helpers.py)."""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import pytest
from helpers import examples
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from strategies import build, case_data, valid_nets

pytest.importorskip("onnxruntime")
from onnx_helpers import check_two_batches  # noqa: E402

from netgraph import NetInitialize  # noqa: E402


@settings(max_examples=examples(40), deadline=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(valid_nets("kinks"), st.integers(0, 2**16))
def test_random_valid_nets_export_and_match(case, seed):
    net = NetInitialize(build(case.recipe), seed=seed)
    rng = np.random.default_rng(seed)
    first, second = case_data(case, net, rng, 3), case_data(case, net, rng, 4)
    with tempfile.TemporaryDirectory() as tmp:
        check_two_batches(net, Path(tmp) / "net.onnx", [first, second], seed=seed, slack=True)
