"""Every case of the layer contract table exported to ONNX and run in onnxruntime: padded
batches with garbage (NaN, ±inf, 1e30; int64 extremes for indices) in the padding, two batch
sizes and padded lengths on one file, compared with ``net(batch)`` at the valid positions
within the SPEC's bound (tests/onnx_helpers.py)."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import randomized
from layer_cases import CASES, FIXED_BATCH, SINGLE_LENGTH

pytest.importorskip("onnxruntime")
from onnx_helpers import check_two_batches  # noqa: E402


def _batch(case, rng, lengths):
    examples = [case.sample(rng, T) for T in lengths]
    return {p: [e[p] for e in examples] for p in examples[0]}


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_layer_case_exports_and_matches(case, tmp_path):
    rng = np.random.default_rng(7)
    net = randomized(case.make(), seed=3)
    if case.lengths is None:
        first, second = (SINGLE_LENGTH,) * FIXED_BATCH, (SINGLE_LENGTH,) * (FIXED_BATCH + 3)
    else:
        first, second = case.lengths, tuple(reversed(case.lengths)) + (max(case.lengths),) * 2
    check_two_batches(net, tmp_path / "net.onnx", [_batch(case, rng, first),
                                                    _batch(case, rng, second)])
