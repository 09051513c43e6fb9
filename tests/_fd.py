"""Float64 central-difference gradient checks on the executor (test helper).

``fd_check(net, data)`` seeds every output with a random array, takes the executor's gradients
of ``sum(seed * output)`` for every real input port and every array, and compares them element
by element with central differences (``netgraph.numdiff.central_differences``, the routine
``gradcheck`` uses) of the same objective, all in float64 (the arrays are
up-cast copies, so perturbations of 1e-6 are not lost to float32 storage). Gradients at padded
positions must be exactly zero.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from netgraph.apply import collect_arrays
from netgraph.batch import to_batch
from netgraph.compile import compile_net
from netgraph.execute import RunContext, backward, forward
from netgraph.numdiff import central_differences


def _objective(plan, inputs, arrays, lengths, seeds) -> tuple[float, Any]:
    run = RunContext(arrays=arrays, dtype=np.float64, lengths=dict(lengths))
    tape = forward(plan, inputs, run)
    total = sum(float((tape.values[m.slot] * seeds[p]).sum()) for p, m in plan.outputs.items()
                if p in seeds)
    return total, tape


def fd_check(net: Any, data: dict, *, seed: int = 0, h: float = 1e-6, rtol: float = 1e-6,
             atol: float = 1e-8, seeds: dict | None = None) -> dict:
    """Compare analytic and numeric gradients; returns {name: max abs error} and asserts."""
    rng = np.random.default_rng(seed)
    plan = compile_net(net)
    batch = to_batch(data, plan.inputs, np.float64)
    arrays = {k: np.array(v, dtype=np.float64) for k, v in collect_arrays(net, np.float64).items()}
    inputs = {k: np.array(v) for k, v in batch.arrays.items()}
    _, tape = _objective(plan, inputs, arrays, batch.lengths, {})
    if seeds is None:
        seeds = {}
        for p, m in plan.outputs.items():
            if not m.integer:
                v = tape.values[m.slot]
                seeds[p] = tape.run.zero_padding(rng.standard_normal(v.shape), m)
    grads, agrads = backward(plan, tape, seeds)

    def objective() -> float:
        return _objective(plan, inputs, arrays, batch.lengths, seeds)[0]

    report = {}
    for path, a in arrays.items():
        g = agrads.get(path)
        g = np.zeros_like(a) if g is None else g
        num = central_differences(objective, a, h=h)
        np.testing.assert_allclose(g, num, rtol=rtol, atol=atol, err_msg=f"array {path}")
        report[path] = float(np.abs(g - num).max(initial=0))
    for p, m in plan.inputs.items():
        if m.integer:
            continue
        x = inputs[p]
        g = grads[m.slot]
        g = np.zeros_like(x) if g is None else g
        valid = tape.run.zero_padding(np.ones_like(x), m).astype(bool)
        assert np.all(g[~valid] == 0), f"input {p}: nonzero gradient at padded positions"
        num = central_differences(objective, x, h=h, at=np.flatnonzero(valid), fill=0.0)
        np.testing.assert_allclose(g, num, rtol=rtol, atol=atol, err_msg=f"input {p}")
        report[p] = float(np.abs(g - num).max(initial=0))
    return report
