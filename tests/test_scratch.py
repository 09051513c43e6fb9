"""Recycled scratch memory (netgraph.scratch): a block is handed out again only once no array
refers to it, within the limits, on any thread; nets compute the same bits from recycled
blocks full of other values as from fresh memory."""

from __future__ import annotations

import os
import threading

import numpy as np
import pytest
from helpers import additive_scoring, array_paths

from netgraph import NetArrayGradient, NetInitialize, NetPortGradient, scratch
from netgraph.layers import (
    BasicRecurrentLayer,
    GatedRecurrentLayer,
    LongShortTermMemoryLayer,
    SequenceAttentionLayer,
    scoring,
)

MB = 1 << 20


@pytest.fixture(autouse=True)
def _no_blocks():
    scratch.release()
    yield
    scratch.release()


def test_small_arrays_are_plain_numpy():
    a = scratch.empty((7, 5), np.float32)
    assert a.shape == (7, 5) and a.dtype == np.float32 and a.base is None
    assert scratch.held_bytes() == 0


def test_a_large_array_is_a_view_of_a_kept_block():
    a = scratch.empty((300, 301), np.float64)
    assert a.shape == (300, 301) and a.dtype == np.float64
    assert a.flags.c_contiguous and a.flags.writeable
    assert a.base is not None and a.base.nbytes >= a.nbytes
    assert a.nbytes <= scratch.held_bytes() <= 1.25 * a.nbytes


def test_a_block_in_use_is_never_handed_out_again():
    a = scratch.empty((256, 257), np.float32)
    a[...] = 3.0
    view = a[5:9]
    del a
    b = scratch.empty((256, 257), np.float32)  # `view` still refers to the first block
    b[...] = -1.0
    assert not np.shares_memory(view, b)
    assert (view == 3.0).all()
    held = scratch.held_bytes()
    del view
    c = scratch.empty((256, 257), np.float32)  # the first block again: nothing new
    assert scratch.held_bytes() == held and not np.shares_memory(c, b)


def _block(a: np.ndarray) -> int:
    """The address of the block ``a`` is a view of (holding no reference to it)."""
    return a.base.__array_interface__["data"][0]


def test_a_freed_block_serves_a_smaller_array_of_its_size_class():
    a = scratch.empty((1000, 100), np.float32)
    first = _block(a)
    del a
    b = scratch.empty((990, 100), np.float32)  # 1 % smaller: the same class
    assert _block(b) == first
    held = scratch.held_bytes()
    del b
    scratch.empty((600, 100), np.float32)  # 40 % smaller: a class of its own
    assert scratch.held_bytes() > held


def test_limit_drops_unused_blocks_least_recently_used_first(monkeypatch):
    monkeypatch.setattr(scratch, "LIMIT_BYTES", 3 * MB + scratch.held_bytes())
    a, b = scratch.empty((MB // 4,), np.float32), scratch.empty((MB // 8,), np.float64)
    first = _block(a)
    del a, b
    c = scratch.empty((MB // 4,), np.int32)  # `first`'s block again: now the most recent
    assert _block(c) == first
    del c
    keeper = scratch.empty((2 * MB,), np.uint8)  # room only when one of them goes
    again = scratch.empty((MB // 4,), np.float32)
    assert _block(again) == first  # the least recently used one went
    again2 = scratch.empty((MB // 8,), np.float64)
    assert again2.base is None  # no room for `second`'s class beside `keeper` and `again`
    del again
    beyond = scratch.empty((3 * MB,), np.uint8)  # cannot fit beside `keeper`: plain numpy
    assert beyond.base is None and keeper.base is not None


def test_stale_blocks_are_dropped(monkeypatch):
    monkeypatch.setattr(scratch, "STALE_REQUESTS", 10)
    old = scratch.empty((MB,), np.uint8)
    del old
    held = scratch.held_bytes()
    keep = scratch.empty((MB // 2,), np.uint8)
    for _ in range(300):  # other requests, while the first block lies unused
        keep = scratch.empty((MB // 2,), np.uint8)
    assert scratch.held_bytes() < held + keep.nbytes


def test_release_drops_unused_blocks_only():
    before = scratch.held_bytes()
    used = scratch.empty((MB,), np.uint8)
    unused = scratch.empty((2 * MB,), np.uint8)
    del unused
    assert scratch.release() == 2 * MB
    assert scratch.held_bytes() == before + MB and used.base is not None


def test_threads_never_share_a_live_block():
    clashes, arrays, lock = [], [], threading.Lock()

    def work(tag: int):
        for i in range(200):
            a = scratch.empty((128, 257), np.float32)
            a.fill(tag)
            with lock:
                arrays.append(a)
                if len(arrays) > 6:
                    arrays.pop(0)
            if not (a == tag).all():
                clashes.append((tag, i))

    threads = [threading.Thread(target=work, args=(t,)) for t in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert clashes == []


@pytest.mark.skipif(not hasattr(os, "fork"), reason="os.fork")
def test_a_forked_child_starts_with_no_blocks():
    kept = scratch.empty((MB,), np.uint8)
    assert scratch.held_bytes() > 0
    pid = os.fork()
    if pid == 0:  # the child: no blocks, and the lock works
        ok = scratch.held_bytes() == 0 and scratch.empty((MB,), np.uint8).base is not None
        os._exit(0 if ok else 1)
    _, status = os.waitpid(pid, 0)
    assert os.WEXITSTATUS(status) == 0 and kept.base is not None


def _poisoned(monkeypatch):
    """Every scratch array, however small, comes from a block full of NaN bytes."""
    claim = scratch._claim

    def claim_poisoned(size):
        block = claim(size)
        if block is not None:
            block.fill(0xFF)
        return block

    monkeypatch.setattr(scratch, "MIN_BYTES", 0)
    monkeypatch.setattr(scratch, "_claim", claim_poisoned)


def _ragged(rng, lengths, d):
    return [rng.standard_normal((n, d)).astype(np.float32) for n in lengths]


def _attention_results(kind):
    """Outputs and every gradient; "Additive": Bahdanau's score as a custom scoring net (its
    fast path, with many chunks), "Tanh-additive": with a bias (the general path)."""
    net = {"Additive": additive_scoring(6), "Tanh-additive": additive_scoring(6, biases=True)
           }.get(kind, kind)
    layer = NetInitialize(SequenceAttentionLayer(net, Input=("Varying", 5),
                                                 Query=("Varying", 5)), seed=1)
    rng = np.random.default_rng(4)
    data = {"Input": _ragged(rng, [3, 7, 5], 5), "Query": _ragged(rng, [2, 4, 3], 5)}
    wants = ["Output", NetPortGradient("Input"), NetPortGradient("Query")]
    wants += [NetArrayGradient(list(p)) for p in array_paths(layer)]
    return layer(data, wants)


def _recurrent_results(cls):
    layer = NetInitialize(cls(7, Input=("Varying", 3)), seed=2)
    data = {"Input": _ragged(np.random.default_rng(5), [4, 9, 6], 3)}
    wants = ["Output", NetPortGradient("Input")]
    wants += [NetArrayGradient(name) for name in layer.array_names_for(layer.params)]
    return layer(data, wants)


def _flat(results):
    out = []
    for r in results:
        out.extend(r if isinstance(r, list) else [r])
    return [np.asarray(x) for x in out]


@pytest.mark.parametrize("run", [
    lambda: _attention_results("Dot"), lambda: _attention_results("Bilinear"),
    lambda: _attention_results("Additive"), lambda: _attention_results("Tanh-additive"),
    lambda: _recurrent_results(BasicRecurrentLayer),
    lambda: _recurrent_results(GatedRecurrentLayer),
    lambda: _recurrent_results(LongShortTermMemoryLayer)],
    ids=["Dot", "Bilinear", "Additive", "General", "Basic", "GRU", "LSTM"])
def test_results_from_recycled_blocks_full_of_nan_are_the_same_bits(run, monkeypatch):
    monkeypatch.setattr(scoring, "CHUNK_ELEMENTS", 64)  # custom scoring nets: many chunks
    fresh = _flat(run())
    _poisoned(monkeypatch)
    recycled = _flat(run())
    assert len(fresh) == len(recycled)
    for a, b in zip(fresh, recycled, strict=True):
        assert a.tobytes() == b.tobytes()


def test_a_result_the_caller_holds_survives_later_calls(monkeypatch):
    monkeypatch.setattr(scratch, "MIN_BYTES", 0)
    first = _attention_results("Bilinear")
    kept = [x.copy() for x in _flat(first)]
    for _ in range(3):
        _attention_results("Dot")
    for a, b in zip(_flat(first), kept, strict=True):
        assert a.tobytes() == b.tobytes()
