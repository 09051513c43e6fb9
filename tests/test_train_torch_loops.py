"""The PyTorch training loops of benchmarks/train.py compute the models NetTrain trains: from
the same arrays, on the same batches (NetTrain's shuffling stream), the batch losses agree —
the first before any update, the next after ADAM steps on both sides — for the dates model
(GRU encoder-decoder, additive attention) and the sorting model (LSTM encoder-decoder, dot
attention, per-example mean over varying output lengths)."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import load_module

pytest.importorskip("torch")



bench = load_module("train_benchmark", "benchmarks/train.py")


@pytest.mark.parametrize("model", ["dates", "sorting"])
def test_torch_loop_losses_agree_with_nettrain(model):
    _, net, data, torch_model = bench.model_case(model, 3 * 16, seed=3)
    ours = bench.netgraph_round(net, data, 16, seed=3)[2]
    theirs = bench.torch_round(net, data, torch_model, 16, seed=3)[1]
    assert len(ours) == len(theirs) == 3
    assert 1.5 < ours[0] < 3.5  # about log(12) or log(10) from small random arrays
    # float32 sums of a few thousand terms, three ADAM steps apart
    np.testing.assert_allclose(ours, theirs, rtol=2e-5)
    assert ours[0] != ours[-1]  # the steps did change the arrays
