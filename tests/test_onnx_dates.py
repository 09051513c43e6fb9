"""The dates model (examples/dates.py) through ONNX: the whole encoder-decoder (custom-scoring
attention, recurrent State ports between nested graphs), its encoder and its decoder step net
(State in, ``State_out`` out) match netgraph on padded batches with garbage in the padding;
greedy decoding through onnxruntime (benchmarks/onnx.py's ``translate_onnx``) gives exactly
``dates.translate``'s strings and exact-match score. A small dates-shaped model with random
arrays keeps the test fast; benchmarks/onnx.py does the same on the trained model."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import load_module, randomized, smooth_reals

pytest.importorskip("onnxruntime")
from onnx_helpers import check_two_batches  # noqa: E402

dates = load_module("dates", "examples/dates.py")
bench = load_module("onnx_benchmark", "benchmarks/onnx.py")
EMBED, HIDDEN = 5, 7


@pytest.fixture(scope="module")
def net():
    return randomized(dates.build_model(EMBED, HIDDEN), seed=5)


def _chars(rng, T):
    return rng.integers(0, len(dates.IN_CHARS), T)


def _batches(make, lengths=((9, 4, 13), (5, 12, 3, 8, 1))):
    rng = np.random.default_rng(2)
    out = []
    for lens in lengths:
        examples = [make(rng, T) for T in lens]
        out.append({p: [e[p] for e in examples] for p in examples[0]})
    return out


def test_whole_encoder_decoder_matches(net, tmp_path):
    check_two_batches(net, tmp_path / "dates.onnx", _batches(lambda rng, T: {
        "Input": _chars(rng, T), "DecoderInput": rng.integers(0, len(dates.TOKENS), T % 4 + 1)}))


def test_step_net_with_state_ports_matches(net, tmp_path):
    step = bench.step_net(dates, net)
    assert "State" in step.input_ports and "State" in step.output_ports
    session = check_two_batches(step, tmp_path / "step.onnx", _batches(lambda rng, T: {
        "Input": rng.integers(0, len(dates.TOKENS), T % 3 + 1),
        "State": smooth_reals(rng, (HIDDEN,)), "EncoderStates": smooth_reals(rng, (T, HIDDEN))}))
    assert sorted(o.name for o in session.get_outputs()) == ["Output", "Output_lengths",
                                                            "State_out"]


def test_greedy_decoding_through_onnxruntime_is_identical(net, tmp_path):
    pairs = dates.random_dates(60, np.random.default_rng(4))
    texts = [t for t, _ in pairs]
    encoder, step = bench.sessions(*bench.export_dates(dates, net, tmp_path), threads=1)
    ours = dates.translate(net, texts)
    theirs = bench.translate_onnx(dates, encoder, step, texts)
    assert theirs == ours
    assert len(set(ours)) > 5  # random arrays: diverse strings, not one repeated answer
    score = np.mean([p == iso for p, (_, iso) in zip(ours, pairs)])
    assert np.mean([p == iso for p, (_, iso) in zip(theirs, pairs)]) == score
