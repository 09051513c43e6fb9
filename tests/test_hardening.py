"""Exact in every corner: values that used to be corrupted silently, and mistakes that used to
end in a bare exception, a coerced hyperparameter or an unhelpful message.

Each row of ``ROWS`` does one wrong thing and asserts the exact error class and the words its
message must hold: the node path, the port, array or parameter, and the values on both sides.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest

from netgraph import (
    EmbeddingLayer,
    InputDataError,
    LinearLayer,
    NetChain,
    NetError,
    NetExtract,
    NetInitialize,
    NetMapOperator,
    NetPortGradient,
    NetReplacePart,
    SequenceReverseLayer,
)
from netgraph.arrays import validated_array

RNG = np.random.default_rng(23)
XS = [RNG.uniform(-1, 1, (T, 2)) for T in (3, 5)]  # a ragged batch of two examples
MAP = NetInitialize(NetMapOperator(LinearLayer(3), Input=("Varying", 2)), seed=0)
LIN = NetInitialize(NetChain({"lin": LinearLayer(3, Input=2)}), seed=1)
INTS = SequenceReverseLayer(Input=("Varying", "Integer"))
EMB = NetInitialize(EmbeddingLayer(3, 5), seed=2)


def seeded(seed: Any) -> Callable[[], Any]:
    """Apply ``MAP`` to the ragged batch ``XS`` with ``seed`` as the output's gradient."""
    return lambda: MAP({"Input": XS, NetPortGradient("Output"): seed}, NetPortGradient("Input"))


def replaced(value: Any) -> Callable[[], Any]:
    return lambda: NetReplacePart(LIN, {("lin", "Weights"): value})


@dataclass
class Row:
    id: str
    act: Callable[[], Any]
    error: type
    words: tuple[str, ...]


def R(id, act, error, *words):  # noqa: N802 (reads like a table row)
    return Row(id, act, error, words)


ROWS = [
    # ------------------------------------------------ gradient seeds are validated like data
    R("seed shorter than its example", seeded([np.ones((2, 3)), np.ones((5, 3))]),
      InputDataError, "NetPortGradient('Output')", "example 0", "(2, 3)", "(3, 3)"),
    R("seed longer than its example", seeded([np.ones((3, 3)), np.ones((6, 3))]),
      InputDataError, "NetPortGradient('Output')", "example 1", "(6, 3)", "(5, 3)"),
    R("seed lengths swapped", seeded([np.ones((5, 3)), np.ones((3, 3))]),
      InputDataError, "example 0", "(5, 3)", "(3, 3)"),
    R("seed of a single example too short",
      lambda: MAP({"Input": XS[1], NetPortGradient("Output"): np.ones((4, 3))},
                  NetPortGradient("Input")),
      InputDataError, "NetPortGradient('Output')", "(4, 3)", "(5, 3)"),
    R("seed beyond float32", seeded([np.ones((3, 3)), np.full((5, 3), 1e39)]),
      InputDataError, "NetPortGradient('Output')", "1e+39", "float32"),
    R("seed batch of the wrong size", seeded([np.ones((3, 3))]),
      InputDataError, "NetPortGradient('Output')", "a batch of 2", "a batch of 1"),
    # ------------------------------------- NetReplacePart: real, finite-in-float32 arrays only
    R("array beyond float32", replaced(np.full((3, 2), 1e39)),
      NetError, "'Weights'", "node 'lin'", "1e+39", "float32"),
    R("array just beyond float32", replaced(np.full((3, 2), 3.41e38)),
      NetError, "'Weights'", "node 'lin'", "3.41e+38", "float32"),
    R("array of complex numbers", replaced(np.ones((3, 2)) + 1j),
      NetError, "'Weights'", "node 'lin'", "complex128"),
    R("array of booleans", replaced(np.ones((3, 2), bool)),
      NetError, "'Weights'", "node 'lin'", "bool"),
    R("list of booleans", replaced([[True, False]] * 3),
      NetError, "'Weights'", "node 'lin'", "bool"),
    R("array of strings", replaced(np.full((3, 2), "1")),
      NetError, "'Weights'", "node 'lin'", "strings"),
    R("array of dates", replaced(np.full((3, 2), np.datetime64("2020-01-01"))),
      NetError, "'Weights'", "node 'lin'", "datetime64"),
    R("array of time differences", replaced(np.full((3, 2), np.timedelta64(1, "s"))),
      NetError, "'Weights'", "node 'lin'", "timedelta64"),
    R("array of objects", replaced(np.ones((3, 2)).astype(object)),
      NetError, "'Weights'", "node 'lin'", "object"),
    R("masked array", replaced(np.ma.masked_array(np.ones((3, 2)), mask=np.eye(3, 2))),
      NetError, "'Weights'", "node 'lin'", "masked"),
    R("array with NaN", replaced(np.where(np.eye(3, 2) > 0, np.nan, 1.0)),
      NetError, "'Weights'", "node 'lin'", "NaN", "(0, 0)"),
    # ----------------------------------------- "Integer" ports hold int64, Index(n) 0..n-1
    R("integer 1e30", lambda: INTS([1.0, 1e30]), InputDataError, "'Input'", "1e+30", "int64"),
    R("integer 2**64-1", lambda: INTS(np.array([1, 2**64 - 1], np.uint64)),
      InputDataError, "'Input'", "18446744073709551615", "int64"),
    R("integer 2**63", lambda: INTS([1, 2**63]),
      InputDataError, "'Input'", "9223372036854775808", "int64"),
    R("integer 2.0**63 in a batch", lambda: INTS([np.array([1.0]), np.array([2.0 ** 63])]),
      InputDataError, "'Input'", "example 1", "9223372036854775808", "int64"),
    R("index 1e30 is not wrapped", lambda: EMB([1.0, 1e30]),
      InputDataError, "'Input'", "1e+30", "0..4"),
    R("index 2**64-1 is not wrapped", lambda: EMB(np.array([1, 2**64 - 1], np.uint64)),
      InputDataError, "'Input'", "18446744073709551615", "0..4"),
]


@pytest.mark.parametrize("row", ROWS, ids=[r.id for r in ROWS])
def test_row_raises_the_documented_error(row):
    with pytest.raises(row.error) as info:
        row.act()
    for w in row.words:
        assert w in str(info.value), f"{w!r} missing from: {info.value}"


def test_well_formed_seeds_still_seed_exactly():
    g = [RNG.uniform(-1, 1, (3, 3)), RNG.uniform(-1, 1, (5, 3))]
    W = np.asarray(NetExtract(MAP, ["Net", "Weights"]), np.float64)
    got = MAP({"Input": XS, NetPortGradient("Output"): g}, NetPortGradient("Input"),
              dtype=np.float64)
    for k in range(2):
        np.testing.assert_allclose(got[k], g[k] @ W, rtol=1e-12)


def test_integer_ports_keep_every_int64_exactly():
    lo, hi = -2 ** 63, 2 ** 63 - 1
    got = INTS(np.array([lo, 0, hi], np.int64))
    assert got.dtype == np.int64 and got.tolist() == [hi, 0, lo]
    assert INTS([-2.0 ** 63, 7.0]).tolist() == [7, lo]  # -2**63 is an exact float
    assert INTS(np.array([hi, 3], np.uint64)).tolist() == [3, hi]


@pytest.mark.parametrize("value", [
    np.full((3, 2), 3.4028235e38), np.arange(6, dtype=np.int64).reshape(3, 2),
    np.ones((3, 2), np.float16), [[1, 2], [3, 4], [5, 6]], np.ones((3, 2), np.uint8)])
def test_real_finite_arrays_are_stored_exactly_as_float32(value):
    net = replaced(value)()
    got = NetExtract(net, ["lin", "Weights"])
    want = np.asarray(value).astype(np.float32)
    assert got.dtype == np.float32 and np.isfinite(got).all()
    np.testing.assert_array_equal(got, want)


def test_validated_array_is_a_read_only_float32_copy():
    src = np.arange(6.0).reshape(2, 3)
    out = validated_array(src, "array 'W'")
    assert out.dtype == np.float32 and not out.flags.writeable and out.flags.c_contiguous
    src[0, 0] = 99
    assert out[0, 0] == 0
    assert validated_array(2.5, "array 'b'").shape == ()
    with pytest.raises(NetError, match=r"array .b. must be a real numeric array.*booleans \(bool\)"):
        validated_array(True, "array 'b'")
