"""The packing of ragged batches (``batch.pad_examples``): the same arrays, bit for bit, as
the straightforward packing it replaced, and the same errors for bad data.

The reference below is the packing as it was before the per-call overhead was cut (an empty
array, every example and its padding written slice by slice, ``np.stack`` then ``astype``
for fixed shapes, the memory message built on every call)."""

from __future__ import annotations

import numpy as np
import pytest

from netgraph import (
    InputDataError,
    NetInitialize,
    SequenceAttentionLayer,
    allocation,
    batch,
    scratch,
)
from netgraph.allocation import check_request, request_bytes
from netgraph.compile import PortMeta
from netgraph.shapes import Index

LENGTHS = (3, 5, 7)  # pairwise distinct: a swapped axis or a wrong length fails


def reference_pad(examples, meta, dtype, fill=0.0, port=""):
    """The packing before the change (netgraph/batch.py at 1087c29)."""
    dt = np.int64 if meta.integer else dtype
    if not meta.varying:
        return np.stack(examples).astype(dt, copy=False), {}
    lengths = {axis: np.array([e.shape[axis] for e in examples], dtype=np.int64)
               for axis, key in enumerate(meta.keys) if key is not None}
    shape = [len(examples)] + [int(lengths[a].max()) if a in lengths else n
                               for a, n in enumerate(meta.dims)]
    longest = max(lengths.values(), key=lambda lens: int(lens.max()))
    check_request(request_bytes(shape, dt),
                  f"the batch of {len(examples)} examples given to port {port or '?'!r} padded "
                  f"to shape {tuple(shape)} ({np.dtype(dt).name}; its longest example has length "
                  f"{int(longest.max())}, its shortest {int(longest.min())})", InputDataError)
    pad = 0 if meta.integer else fill
    if meta.rank and meta.keys[:1] != (None,) and all(k is None for k in meta.keys[1:]):
        out = np.empty(shape, dtype=dt)
        for b, e in enumerate(examples):
            out[b, :len(e)] = e
            out[b, len(e):] = pad
        return out, lengths
    out = np.full(shape, pad, dtype=dt)
    for b, e in enumerate(examples):
        out[(b,) + tuple(slice(0, s) for s in e.shape)] = e
    return out, lengths


SEQ = PortMeta(0, (None, 4), None, ("n", None))
SEQ_INDEX = PortMeta(0, (None,), Index(9), ("n",))
GRID = PortMeta(0, (None, None, 2), None, ("a", "b", None))  # two varying axes
FIXED = PortMeta(0, (3, 5), None, (None, None))
FIXED_INT = PortMeta(0, (3,), "Integer", (None,))


def _seq_examples(rng, source_dtype, meta):
    if meta is SEQ_INDEX:
        return [rng.integers(0, 9, n).astype(source_dtype) for n in LENGTHS]
    if meta is GRID:
        return [rng.standard_normal((n, 8 - n, 2)).astype(source_dtype) for n in LENGTHS]
    if meta is FIXED:
        return [rng.standard_normal((3, 5)).astype(source_dtype) for _ in LENGTHS]
    if meta is FIXED_INT:
        return [rng.integers(-5, 5, 3).astype(source_dtype) for _ in LENGTHS]
    return [rng.standard_normal((n, 4)).astype(source_dtype) for n in LENGTHS]


def _same(new, old):
    (a, la), (b, lb) = new, old
    assert a.dtype == b.dtype and a.shape == b.shape and a.flags.writeable
    assert a.tobytes() == b.tobytes()  # bit for bit, NaN padding and -0.0 included
    assert la.keys() == lb.keys()
    for k in la:
        assert la[k].dtype == lb[k].dtype and la[k].tolist() == lb[k].tolist()


@pytest.mark.parametrize("meta", [SEQ, SEQ_INDEX, GRID, FIXED, FIXED_INT])
@pytest.mark.parametrize("source_dtype", [np.float32, np.float64, np.int32, np.int64])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("fill", [0.0, 1e30, np.nan])
@pytest.mark.parametrize("recycled", [True, False], ids=["recycled", "fresh"])
def test_pad_examples_equals_reference_bit_for_bit(meta, source_dtype, dtype, fill, recycled,
                                                   monkeypatch):
    """Into fresh memory, and into a recycled scratch block that an earlier array left full
    of other values (NaN): every element is written, data or padding."""
    monkeypatch.setattr(scratch, "MIN_BYTES", 0 if recycled else 1 << 62)
    examples = _seq_examples(np.random.default_rng(3), source_dtype, meta)
    if source_dtype in (np.float32, np.float64) and meta is SEQ:
        examples[1][2, 3] = -0.0
    expected = reference_pad(examples, meta, dtype, fill, "Input")
    if recycled:
        scratch.release()
        before = scratch.held_bytes()
        scratch.empty(expected[0].shape, expected[0].dtype).fill(-7)  # freed at once
        assert scratch.held_bytes() > before
    held = scratch.held_bytes()
    _same(batch.pad_examples(examples, meta, dtype, fill, "Input"), expected)
    if recycled and meta in (SEQ, SEQ_INDEX):  # written into that block (no new one)
        assert scratch.held_bytes() == held


def test_pad_examples_out_of_range_conversion_equals_reference():
    """float64 beyond float32's range becomes inf in both (reported by the caller)."""
    examples = [np.full((n, 4), 1e300) for n in LENGTHS]
    with np.errstate(over="ignore"):
        _same(batch.pad_examples(examples, SEQ, np.float32), reference_pad(examples, SEQ,
                                                                           np.float32))


def test_pad_examples_too_large_same_message(monkeypatch):
    examples = [np.zeros((n, 4), np.float32) for n in LENGTHS]
    for module in (batch, allocation):
        monkeypatch.setattr(module, "total_memory", lambda: 100)
    with pytest.raises(InputDataError) as old:
        reference_pad(examples, SEQ, np.float32, port="Input")
    with pytest.raises(InputDataError) as new:
        batch.pad_examples(examples, SEQ, np.float32, port="Input")
    assert str(new.value) == str(old.value)
    assert "padded to shape (3, 7, 4) (float32; its longest example has length 7, its " \
           "shortest 3) needs 336 bytes" in str(new.value)


def _attention():
    layer = SequenceAttentionLayer("Dot", Input=("Varying", 4), Query=("Varying", 4))
    return NetInitialize(layer, seed=0)


def test_call_on_ragged_lists_equals_padded_reference():
    """A whole call on ragged lists: outputs and gradients per example as from the packing
    of the reference (each example alone gives the same result as in the batch)."""
    from netgraph import NetPort, NetPortGradient
    rng = np.random.default_rng(5)
    net = _attention()
    inputs = [rng.standard_normal((n, 4)).astype(np.float32) for n in LENGTHS]
    queries = [rng.standard_normal((n + 1, 4)).astype(np.float32) for n in (6, 2, 4)]
    wants = [NetPort("Output"), NetPortGradient("Input"), NetPortGradient("Query")]
    out = net({"Input": inputs, "Query": queries}, wants, dtype=np.float64)
    for b in range(3):
        alone = net({"Input": inputs[b], "Query": queries[b]}, wants, dtype=np.float64)
        for got, want in zip(out, alone):
            assert got[b].shape == want.shape
            np.testing.assert_allclose(got[b], want, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("bad, message", [
    (np.nan, "data for port 'Input' (example 1) contains NaN or Inf"),
    (np.inf, "data for port 'Input' (example 1) contains NaN or Inf"),
    (1e300, "data for port 'Input' has values up to 1e+300, beyond the range of float32; "
            "rescale the data or compute with dtype=np.float64"),
])
def test_bad_values_same_errors(bad, message):
    rng = np.random.default_rng(1)
    inputs = [rng.standard_normal((n, 4)) for n in LENGTHS]
    inputs[1][4, 2] = bad
    queries = [rng.standard_normal((n, 4)) for n in (2, 6, 4)]
    with pytest.raises(InputDataError) as e:
        _attention()({"Input": inputs, "Query": queries})
    assert str(e.value) == message


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf, None])
@pytest.mark.parametrize("size", [5, batch._SUM_CHECK_ELEMENTS + 3])
def test_finite_check_by_sum_agrees_with_the_elementwise_check(bad, size):
    """Large arrays are checked by one pass first (the sum of squares of a contiguous
    float32 or float64 array, else the sum): the same verdict as ``np.isfinite`` on every
    element, also where finite values overflow the squares (1e20 in float32, 1e160 in
    float64) or the sum (3e38 each in float32), for strided views and float16 too."""
    rng = np.random.default_rng(size)
    wide = rng.standard_normal((2, size)).astype(np.float32)
    for a in (rng.standard_normal(size).astype(np.float32),
              rng.standard_normal((size, 3)),  # float64, two axes
              np.full(size, 1e20, np.float32), np.full(size, 1e160),
              np.full(size, 3e38, np.float32), np.full(size, -3e38, np.float32),
              wide[:, ::2], rng.standard_normal(size).astype(np.float16)):
        if bad is not None and a.flags.c_contiguous:
            a.reshape(-1)[size // 3] = bad
        elif bad is not None:  # the strided view
            a[1, size // 6] = bad
        assert batch._all_finite(a) == bool(np.isfinite(a).all()) == (bad is None)


def test_a_large_batch_with_one_nan_names_its_example():
    rng = np.random.default_rng(2)
    inputs = [rng.standard_normal((n, 4096)).astype(np.float32) for n in (7, 9, 5)]
    inputs[2][3, 1000] = np.nan
    net = NetInitialize(SequenceAttentionLayer("Dot", Input=("Varying", 4096),
                                               Query=("Varying", 4096)))
    with pytest.raises(InputDataError, match=r"port 'Input' \(example 2\) contains NaN"):
        net({"Input": inputs, "Query": [x[:2] for x in inputs]})
