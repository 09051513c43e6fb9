"""benchmarks/attention.py: its NumPy floor computes PyTorch's padded numbers, and every side
of a comparison is timed in a process of its own (benchmarks/common.py)."""

from __future__ import annotations

import functools
import time

import numpy as np
import pytest
from helpers import ROOT, load_module

pytest.importorskip("torch")



bench = load_module("attention_benchmark", "benchmarks/attention.py")
common = load_module("common", "benchmarks/common.py")  # what attention.py imports



@pytest.mark.parametrize("kind", ["Dot", "Bilinear"])
def test_numpy_floor_computes_the_padded_torch_numbers(kind):
    bench.check_floor(kind, "small")  # raises when a value differs by 1e-4 of its scale


@pytest.mark.parametrize("kind", ["Dot", "Bilinear"])
def test_numpy_floor_outputs_are_netgraphs_on_the_true_lengths(kind):
    B, n, m, d = bench.SIZES["small"]
    inputs, queries = bench.make_data(B, n, m, d)
    layer = bench.make_layer(kind, d)
    weights = [np.asarray(bench.NetExtract(layer, p)) for p in bench.array_paths(kind)]
    parts = bench.numpy_floor_step(bench.numpy_floor_parts(bench.numpy_pad(inputs, queries),
                                                           weights))
    out = np.concatenate([p[0] for p in parts])
    ours = layer({"Input": inputs, "Query": queries})
    assert len(parts) >= 1 and out.shape == (B, max(map(len, queries)), d)
    for b in (0, B // 2, B - 1):
        np.testing.assert_allclose(out[b, :len(queries[b])], ours[b], rtol=1e-4, atol=1e-5)
        assert not out[b, len(queries[b]):].any()  # padded queries: zero rows


@pytest.fixture
def sides_import_common(monkeypatch):
    """A spawned side imports ``common`` (its ``_serve``) from ``benchmarks/``."""
    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))


def test_a_side_process_times_blocks_of_its_call(sides_import_common):
    factory = functools.partial(functools.partial, time.sleep, 0.002)
    with common.side_processes([factory]) as (side,):
        times = side.block(3)
    assert len(times) == 3 and all(0.002 <= t < 1 for t in times)
    (ms,), (ratio,) = common.rounds_ms([lambda: time.sleep(0.002)], 2, 1, pause=0)
    assert 2 <= ms < 1000 and ratio == 1


def test_a_side_that_fails_to_start_is_an_error(sides_import_common):
    factory = functools.partial(functools.partial, int, "not a number")  # fine: built lazily
    broken = functools.partial(int, "not a number")  # raises while building the call
    with common.side_processes([factory]) as (side,):
        with pytest.raises(RuntimeError, match="side failed"):
            side.block(1)  # the call raises in the side: the side ends, its pipe closes
    with pytest.raises(RuntimeError, match="failed to start"):
        with common.side_processes([broken]):
            pass
