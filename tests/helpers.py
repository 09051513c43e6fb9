"""Shared test helpers: random arrays for nets, snapshots and comparisons of whole nets, inputs
away from kinks, batch forms, example counts of property tests. (Comparisons of computed
numbers: ``tolerance.assert_close``.)"""

from __future__ import annotations

import importlib.util
import multiprocessing as mp
import os
import sys
from pathlib import Path
from typing import Any

import numpy as np

from netgraph import (
    LinearLayer,
    NetExtract,
    NetGraph,
    NetInitialize,
    NetPort,
    NetReplacePart,
    ThreadingLayer,
)
from netgraph.graph import _is_graph_end
from netgraph.shapes import parse_spec
from netgraph.tree import walk

#: the repository's root (examples/, benchmarks/, tools/ lie under it)
ROOT = Path(__file__).resolve().parents[1]


def load_module(name: str, path: str | Path) -> Any:
    """The Python file ``path`` (relative to the repository's root) imported as module
    ``name``, once (registered in ``sys.modules``). ``sys.path`` is as before afterwards: a
    benchmark that puts ``benchmarks/`` first on it would make its ``onnx.py`` hide the onnx
    package from every later import."""
    if name in sys.modules:
        return sys.modules[name]
    saved = list(sys.path)
    spec = importlib.util.spec_from_file_location(name, ROOT / path)
    module = sys.modules[name] = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise
    finally:
        sys.path[:] = saved
    return module


def array_paths(net: Any) -> list[tuple]:
    """Full paths of every array of ``net`` (e.g. ``("Net", 0, "Weights")``)."""
    return [p + (name,) for p, sub in walk(net) for name in sub._arrays()]


def randomized(net: Any, seed: int = 0) -> Any:
    """``net`` with every array set to standard-normal values (biases included, so a bias
    that is never added cannot hide behind NetInitialize's zeros)."""
    rng = np.random.default_rng(seed)
    net = NetInitialize(net, seed=seed)
    new = {p: rng.standard_normal(NetExtract(net, list(p)).shape) for p in array_paths(net)}
    return NetReplacePart(net, new) if new else net


def arrays64(net: Any) -> dict[tuple, np.ndarray]:
    """The arrays of ``net`` as float64, keyed by path, read through ``NetExtract``."""
    return {p: np.asarray(NetExtract(net, list(p)), dtype=np.float64) for p in array_paths(net)}


def _array_record(a: np.ndarray | None, where: Any) -> tuple | None:
    """An array as (dtype, shape, bytes): equal only for the same bits (NaN payloads and signed
    zeros included). Asserts that the net's array is read-only."""
    if a is None:
        return None
    assert not a.flags.writeable, f"array {where} of a net is writeable"
    return a.dtype.str, a.shape, a.tobytes()


def _net_record(net: Any, path: tuple) -> dict[str, Any]:
    """What one net holds itself (its sub-nets have records of their own)."""
    rec: dict[str, Any] = {
        "class": type(net),
        "state": sorted(set(net.__dict__) - {"_cache"}),
        "specs": dict(net._specs),
        "user_specs": {k: parse_spec(v) for k, v in net._user_specs.items()},
        "ports": (net.input_ports, net.output_ports),
        "port shapes": [NetExtract(net, p) for p in net.input_ports + net.output_ports],
        "arrays": [(k, _array_record(a, path + (k,))) for k, a in net._arrays().items()],
        "children": list(net.children()),
    }
    if isinstance(net, NetGraph):
        rec["nodes"] = [(n, type(c)) for n, c in net.nodes.items()]
        rec["edges"] = [(s, _is_graph_end(s), d, _is_graph_end(d)) for s, d in net.edges]
        rec["graph ports"] = (net._ins, net._outs, net._order)
    else:
        rec["params"] = net.params
        rec["enabled"] = (net._enabled_in, net._enabled_out)
        rec["shared arrays"] = dict(net._shared_arrays)  # array name -> NetSharedArray
    return rec


def net_snapshot(net: Any) -> dict[Any, Any]:
    """Everything ``net`` is, as plain comparable data: for the net and every sub-net (keyed by
    path) its class, state keys (caches left out), port specs (inferred and as given), ports
    and their shapes, arrays (in order, bit for bit; asserted read-only; which are uses of
    shared arrays), sub-net
    names, and a graph's nodes, edges and ports or a layer's params and enabled ports; and
    the net's ``repr`` and ``summary()``. Take one before an operation and compare it after
    with ``assert_same_net(net, before)``."""
    snap: dict[Any, Any] = {path: _net_record(sub, path) for path, sub in walk(net)}
    snap["repr"], snap["summary"] = repr(net), net.summary()
    return snap


def assert_same_net(a: Any, b: Any, what: str = "") -> None:
    """``a`` and ``b`` (nets, or snapshots from ``net_snapshot``) are the same net: every entry
    of their snapshots is equal; the message (after ``what``) names the first path and entry
    that differ."""
    sa = a if isinstance(a, dict) else net_snapshot(a)
    sb = b if isinstance(b, dict) else net_snapshot(b)
    what = what and what + ": "
    assert list(sa) == list(sb), f"{what}different parts: {list(sa)} vs {list(sb)}"
    for key, ra in sa.items():
        rb = sb[key]
        if not isinstance(ra, dict):
            assert ra == rb, f"{what}{key} differs:\n{ra}\nvs\n{rb}"
            continue
        assert list(ra) == list(rb), f"{what}part {key}: entries {list(ra)} vs {list(rb)}"
        for entry, va in ra.items():
            assert va == rb[entry], f"{what}part {key}, {entry}: {va!r:.300} vs {rb[entry]!r:.300}"


def smooth_reals(rng: np.random.Generator, shape: Any) -> np.ndarray:
    """Random reals whose magnitudes avoid the kinks of the library's piecewise functions
    (0, ±1, ±2.5) by at least 0.1, so central differences are exact enough."""
    bands = np.array([[0.15, 0.85], [1.15, 2.35], [2.65, 3.0]])
    band = bands[rng.integers(0, len(bands), size=shape)]
    mag = band[..., 0] + (band[..., 1] - band[..., 0]) * rng.random(shape)
    return np.where(rng.random(shape) < 0.5, -mag, mag)


def positive_reals(rng: np.random.Generator, shape: Any) -> np.ndarray:
    """Random reals in [0.5, 2] (inside the domain of Log, Sqrt and a safe divisor)."""
    return rng.uniform(0.5, 2.0, size=shape)


def as_list(x: Any) -> list[np.ndarray]:
    """A batch result (stacked ndarray or list of per-example arrays) as a list."""
    return [np.asarray(e) for e in x]


#: the ``max_examples`` of the "ci" and "dev" hypothesis profiles (``tests/conftest.py``)
BASE_EXAMPLES = 100


def examples(n: int) -> int:
    """The example count of a property test written for ``n`` examples, under the loaded
    hypothesis profile: ``n · max_examples / BASE_EXAMPLES`` ("ci", "dev": n; "thorough":
    10 n), times ``HYPOTHESIS_EXAMPLES_SCALE`` when that is set (a float, for a custom hunt).
    Read when the test module is collected, after ``conftest.py`` loaded the profile."""
    from hypothesis import settings

    scale = settings.default.max_examples / BASE_EXAMPLES
    scale *= float(os.environ.get("HYPOTHESIS_EXAMPLES_SCALE", "1"))
    return max(1, round(n * scale))


def pairwise_attention_weights(attend: Any, K: np.ndarray, Q: np.ndarray) -> np.ndarray:
    """Reference attention weights of one example, ``(m, n)`` or with heads ``(m, h, n)``
    (``K`` then ``(n, h, d1)``): ``NetExtract(attend, "ScoringNet")`` applied to each (key,
    query) pair on its own, in float64, then a softmax over the keys."""
    f = NetExtract(attend, "ScoringNet")
    heads = K.ndim == 3
    Ks, Qs = (K, Q) if heads else (K[:, None], Q[:, None])
    s = np.array([[[float(f({"Input": Ks[i, h], "Query": Qs[j, h]}, dtype=np.float64))
                    for i in range(len(Ks))] for h in range(Ks.shape[1])]
                  for j in range(len(Qs))])  # (m, h, n)
    w = np.exp(s - s.max(-1, keepdims=True))
    w /= w.sum(-1, keepdims=True)
    return w if heads else w[:, 0]


def contains3(n: int, rng: np.random.Generator) -> tuple[list[np.ndarray], np.ndarray]:
    """Varying-length index sequences (0..5, lengths 1..9), label 1 when index 3 occurs (half
    of them have their 3s removed): a small ragged classification task for training tests."""
    xs, ys = [], []
    for _ in range(n):
        x = rng.integers(0, 6, int(rng.integers(1, 10)))
        if rng.random() < 0.5:
            x[x == 3] = 0
        xs.append(x)
        ys.append(int((x == 3).any()))
    return xs, np.array(ys)


def additive_scoring(hidden: int, biases: bool = False) -> NetGraph:
    """Bahdanau's score ``v . tanh(W e + U q)`` as a custom scoring net (``biases``: W's)."""
    return NetGraph(
        {"W": LinearLayer(hidden, biases=biases), "U": LinearLayer(hidden, biases=False),
         "add": ThreadingLayer("Plus"), "tanh": "Tanh", "v": LinearLayer((), biases=False)},
        [(NetPort("Input"), "W"), (NetPort("Query"), "U"), (["W", "U"], "add", "tanh", "v")])


#: seconds a forked child may take for what takes its parent well under one
FORK_TIMEOUT = 60


def run_in_fork(fn):
    """``fn()`` in a forked child; its result, or a failure if the child hangs or dies."""
    ctx = mp.get_context("fork")
    parent, child = ctx.Pipe(duplex=False)

    def main():
        try:
            child.send(("ok", fn()))
        except BaseException as e:  # noqa: BLE001 - reported to the parent
            child.send(("error", repr(e)))

    p = ctx.Process(target=main, daemon=True)
    p.start()
    got = parent.recv() if parent.poll(FORK_TIMEOUT) else None
    p.join(5)
    if p.is_alive():
        p.kill()
        p.join()
    assert got is not None, f"the forked child hung (no result within {FORK_TIMEOUT} s)"
    assert got[0] == "ok", got[1]
    return got[1]
