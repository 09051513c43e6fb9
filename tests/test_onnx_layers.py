"""Every case of the layer contract table exported to ONNX and run in onnxruntime: padded
batches with garbage (NaN, ±inf, 1e30; int64 extremes for indices) in the padding, two batch
sizes and padded lengths on one file, compared with ``net(batch)`` at the valid positions
within the SPEC's bound (tests/onnx_helpers.py)."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import randomized
from layer_cases import CASES, FIXED_BATCH, SINGLE_LENGTH

from netgraph import NetError, export_onnx

pytest.importorskip("onnxruntime")
from onnx_helpers import check_two_batches  # noqa: E402


def _batch(case, rng, lengths):
    examples = [case.sample(rng, T) for T in lengths]
    return {p: [e[p] for e in examples] for p in examples[0]}


LIBRARY_CASES = [c for c in CASES if type(c.make()).__module__.startswith("netgraph.layers")]
USER_CASES = [c for c in CASES if c not in LIBRARY_CASES]


@pytest.mark.parametrize("case", LIBRARY_CASES, ids=[c.id for c in LIBRARY_CASES])
def test_layer_case_exports_and_matches(case, tmp_path):
    rng = np.random.default_rng(7)
    net = randomized(case.make(), seed=3)
    if case.lengths is None:
        first, second = (SINGLE_LENGTH,) * FIXED_BATCH, (SINGLE_LENGTH,) * (FIXED_BATCH + 3)
    else:
        first, second = case.lengths, tuple(reversed(case.lengths)) + (max(case.lengths),) * 2
    check_two_batches(net, tmp_path / "net.onnx", [_batch(case, rng, first),
                                                    _batch(case, rng, second)])


@pytest.mark.parametrize("case", USER_CASES, ids=[c.id for c in USER_CASES])
def test_user_layer_case_has_no_translation(case, tmp_path):
    """A layer from outside netgraph.layers (the docs' worked example) has no ONNX lowering:
    a NetError naming its class, and no file written."""
    net = randomized(case.make(), seed=3)
    with pytest.raises(NetError, match=type(net).__name__):
        export_onnx(net, tmp_path / "net.onnx")
    assert not (tmp_path / "net.onnx").exists()
