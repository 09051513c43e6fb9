"""Helpers of the ONNX export tests: export and check a net, feed onnxruntime padded batches
with garbage in the padding, compare with ``net(batch)`` at the valid positions.

The bound is the SPEC's, per output port::

    |onnx - net| <= 1e-5 |net| + 1e-6 max(1, max |net|)

checked against netgraph in float64 (the exact value, to float64 rounding, of the float32
inputs the model gets) *and* in float32 (what the SPEC states literally). For random nets,
whose outputs may be ill-conditioned (``Sin`` of a sum of products of size 30: float32
rounding of the argument alone moves the result by more than the bound, in netgraph's own
float32 run too), ``slack=True`` adds 8 times netgraph's own float32 error on that port
(``max |net32 - net64|``): the model must then be about as accurate as netgraph in float32.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort

from netgraph import export_onnx

REAL_GARBAGE = np.array([np.nan, np.inf, -np.inf, 1e30, -3e38], dtype=np.float32)
INDEX_GARBAGE = np.array([np.iinfo(np.int64).max, np.iinfo(np.int64).min, -1, 10**12],
                         dtype=np.int64)


def export(net: Any, path: Path, **kwargs: Any) -> tuple[onnx.ModelProto, ort.InferenceSession]:
    """Export ``net`` to ``path``, run the full ONNX check, open an onnxruntime session."""
    export_onnx(net, path, **kwargs)
    model = onnx.load(str(path))
    onnx.checker.check_model(model, full_check=True)
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    return model, session


def _garbage(shape: tuple, integer: bool, rng: np.random.Generator) -> np.ndarray:
    pool = INDEX_GARBAGE if integer else REAL_GARBAGE
    return pool[rng.integers(0, len(pool), size=shape)]


def feeds(session: ort.InferenceSession, examples: dict[str, list[np.ndarray]],
          rng: np.random.Generator, extra: int = 0) -> dict[str, np.ndarray]:
    """The onnxruntime inputs for a batch (``examples``: port -> list of per-example arrays):
    varying ports padded to their longest example plus ``extra`` with garbage, and their
    ``<port>_lengths``."""
    types = {i.name: i.type for i in session.get_inputs()}
    out = {}
    for port, xs in examples.items():
        integer = types[port] == "tensor(int64)"
        dtype = np.int64 if integer else np.float32
        xs = [np.asarray(x, dtype=dtype) for x in xs]
        if port + "_lengths" in types:
            lens = np.array([len(x) for x in xs], dtype=np.int64)
            T = int(lens.max()) + extra
            padded = _garbage((len(xs), T) + xs[0].shape[1:], integer, rng)
            for b, x in enumerate(xs):
                padded[b, :len(x)] = x
            out[port], out[port + "_lengths"] = padded, lens
        else:
            out[port] = np.stack(xs)
    return out


def spec_bound(want: np.ndarray, scale: float) -> np.ndarray:
    return 1e-5 * np.abs(want) + 1e-6 * max(1.0, scale)


def assert_spec_close(got: np.ndarray, want: list | np.ndarray, what: str,
                      slack: float = 0.0) -> None:
    """``got`` (one example, unpadded) within the SPEC's bound of ``want`` (plus ``slack``)."""
    got, want = np.asarray(got, dtype=np.float64), np.asarray(want, dtype=np.float64)
    assert got.shape == want.shape, f"{what}: shape {got.shape} != {want.shape}"
    assert np.isfinite(got).all(), f"{what}: not finite: {got}"
    scale = float(np.abs(want).max(initial=0.0))
    err = np.abs(got - want)
    bound = spec_bound(want, scale) + slack
    assert (err <= bound).all(), (f"{what}: max error {err.max():.3g}, worst ratio "
                                  f"{(err / bound).max():.3g} of the bound")


def _float32_error(want32: Any, want64: Any) -> float:
    """``max |net32 - net64|`` over one port's values (all examples)."""
    pairs = zip(want32, want64) if isinstance(want64, list) else [(want32, want64)]
    return max(float(np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64)).max(
        initial=0.0)) for a, b in pairs)


def compare(net: Any, session: ort.InferenceSession, examples: dict[str, list[np.ndarray]],
            rng: np.random.Generator, extra: int = 0, slack: bool = False) -> dict:
    """Run ``session`` on the padded batch ``examples`` and compare every output port with
    ``net`` (float64 and float32) at the valid positions; padding exactly 0, padded length
    the longest example's, ``<port>_lengths`` the true lengths. Returns onnxruntime's
    outputs by name."""
    names = [o.name for o in session.get_outputs()]
    shapes = {o.name: o.shape for o in session.get_outputs()}
    got = dict(zip(names, session.run(None, feeds(session, examples, rng, extra))))
    ports = list(net.output_ports)
    # the reference computes on exactly the inputs the model gets: reals rounded to float32
    data = {p: [x if np.asarray(x).dtype.kind in "iu" else np.float32(x) for x in xs]
            for p, xs in examples.items()}
    wants = {dt: dict(zip(ports, net(data, ports, dtype=dt))) for dt in (np.float64, np.float32)}
    for port in ports:
        name = port + "_out" if port in net.input_ports else port
        value = got[name]
        exact = value.dtype == np.int64
        margin = 0.0 if exact or not slack else \
            8 * _float32_error(wants[np.float32][port], wants[np.float64][port])
        for dt, want in wants.items():
            want = want[port]
            if isinstance(want, list):  # a varying port: per-example arrays
                want = [np.asarray(w) for w in want]
                varying = [a for a, d in enumerate(shapes[name][1:]) if isinstance(d, str)]
                assert varying, f"{name}: no symbolic padded dim"
                for axis in varying:  # <name>_lengths, then <name>_lengths<axis>
                    key = f"{name}_lengths" + ("" if axis == varying[0] else str(axis))
                    sizes = [w.shape[axis] for w in want]
                    assert got[key].tolist() == sizes, key
                    assert value.shape[1 + axis] == max(sizes), f"{name}: padded axis {axis}"
                for b, w in enumerate(want):
                    cut = value[(b,) + tuple(slice(0, s) for s in w.shape)]
                    pad = value[b].copy()
                    pad[tuple(slice(0, s) for s in w.shape)] = 0
                    assert (pad == 0).all(), f"{name}: padding of example {b} not 0"
                    if exact:
                        assert np.array_equal(cut, w), f"{name} example {b}"
                    else:
                        assert_spec_close(cut, w, f"{name} example {b} vs {np.dtype(dt).name}",
                                          margin)
            elif exact:
                assert np.array_equal(value, want), name
            else:
                assert_spec_close(value, want, f"{name} vs {np.dtype(dt).name}", margin)
    return got


def check_two_batches(net: Any, path: Path, batches: list[dict[str, list[np.ndarray]]],
                      seed: int = 0, slack: bool = False,
                      **kwargs: Any) -> ort.InferenceSession:
    """Export ``net`` once; compare it on each batch (the second padded 2 beyond its longest
    example, so the same file sees other batch sizes and padded lengths)."""
    _, session = export(net, path, **kwargs)
    rng = np.random.default_rng(seed)
    for k, examples in enumerate(batches):
        compare(net, session, examples, rng, extra=2 * k, slack=slack)
    return session
