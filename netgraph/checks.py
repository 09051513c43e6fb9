"""Checks for users (and layer authors): ``gradcheck`` and ``check_padding``.

``gradcheck`` compares the executor's gradients with float64 central differences;
``check_padding`` asserts that padding content and batch composition never change a valid
output or a gradient. Both differentiate a fixed random projection ``sum(r * outputs)`` of the
outputs (seeded through ``NetPortGradient(out)`` data entries), so errors cannot cancel out.
"""

from __future__ import annotations

from functools import partial
from typing import Any

import numpy as np

from .allocation import memory_errors
from .apply import (
    _fill_shapes_from_data,
    _split_data,
    apply_net,
    collect_arrays,
    run_net,
    underflow_ignored,
)
from .batch import from_batch, split_examples
from .compile import Plan, compile_net
from .errors import NetError, where
from .execute import RunContext, backward, forward
from .net import Net
from .numdiff import central_differences
from .ports import NetArrayGradient, NetPort, NetPortGradient

__all__ = ["gradcheck", "check_padding", "CheckReport"]


class CheckReport(dict):
    """What a check compared: key (``NetPortGradient``, ``NetArrayGradient`` or ``NetPort``)
    -> dict of ``max_abs_error``, ``max_rel_error``, ``ok`` (and what else was measured)."""

    @property
    def ok(self) -> bool:
        return all(v["ok"] for v in self.values())

    def __str__(self) -> str:
        return "\n".join(f"{k!r}: max abs error {v['max_abs_error']:.3g}, max rel error "
                         f"{v['max_rel_error']:.3g}{'' if v['ok'] else '  FAILED'}"
                         for k, v in self.items())


def _check_tolerance(fn: str, name: str, value: Any, *, positive: bool = False) -> float:
    """``value`` as a float: a finite real number, ``> 0`` if ``positive`` else ``>= 0``."""
    real = isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(
        value, (bool, np.bool_))
    if not real or not np.isfinite(value) or value < 0 or (positive and value == 0):
        need = "> 0" if positive else ">= 0"
        raise NetError(f"{fn}: {name} must be a finite number {need}, got {value!r}")
    return float(value)


def _prepare(net: Net, data: Any) -> tuple[Net, Plan, dict[str, Any]]:
    if not isinstance(net, Net):
        raise NetError(f"expected a net, got {type(net).__name__}")
    net = _fill_shapes_from_data(net, data)
    plan = compile_net(net)
    inputs, _ = _split_data(net, data)
    return net, plan, inputs


def _flat(x: Any) -> np.ndarray:
    """User-form data (an array, or a list of per-example arrays) as one float64 vector."""
    if isinstance(x, list):
        return np.concatenate([np.ravel(e) for e in x]) if x else np.zeros(0)
    return np.ravel(np.asarray(x, dtype=np.float64))


def _shapes(x: Any) -> Any:
    return [np.shape(e) for e in x] if isinstance(x, list) else np.shape(x)


def _errors(got: np.ndarray, want: np.ndarray, rtol: float, atol: float) -> dict[str, Any]:
    err = np.abs(got - want)
    bad = ~(err <= atol + rtol * np.abs(want))  # NaN counts as bad
    rel = err / np.maximum(np.abs(want), atol)
    return {"max_abs_error": float(np.max(err, initial=0.0)),
            "max_rel_error": float(np.max(rel, initial=0.0)),
            "ok": not bad.any(), "size": int(err.size)}


def _compare(key: Any, got: Any, differences: Any, eps: float, rtol: float,
             tolerance: Any) -> dict[str, Any]:
    """The errors of ``got`` (the gradient for ``key``) against ``differences(eps)``, central
    differences of step ``eps``; if it fails, against their Richardson extrapolation
    ``(4 D(h) - D(2h)) / 3`` at ``h = eps``, then ``h = eps / 10``. The differences' error is
    ``c h^2 + O(h^4)``, large where high derivatives are (a Sin of a value ~1e4): steps h and
    2h cancel the h^2 term, a tenth of the step shrinks what is left 10^4-fold, and its
    round-off stays within ``tolerance(h)``."""
    want = differences(eps)
    if _shapes(got) != _shapes(want):
        raise NetError(f"gradcheck: the gradient of {_what(key)} has shape {_shapes(got)}, "
                       f"but its data has shape {_shapes(want)}")
    got, want = _flat(got), _flat(want)
    checked = ~np.isnan(want)
    result = _errors(got[checked], want[checked], rtol, tolerance(eps))
    for h in (eps, eps / 10):
        if result["ok"]:
            break
        plain = want if h == eps else _flat(differences(h))
        extrapolated = (4 * plain - _flat(differences(2 * h))) / 3
        result = _errors(got[checked], extrapolated[checked], rtol, tolerance(h))
    return result


def _check_max_entries(max_entries: Any) -> None:
    if max_entries is not None and (not isinstance(max_entries, (int, np.integer)) or isinstance(
            max_entries, (bool, np.bool_)) or max_entries < 0):
        raise NetError(f"gradcheck: max_entries must be None or an int >= 0, got {max_entries!r}")


def _what(key: Any) -> str:
    if isinstance(key, NetPortGradient):
        return f"input port {key.port!r}"
    if isinstance(key, NetArrayGradient):
        return f"array {key.key!r}" if key.key is key.path[0] else f"array {list(key.path)}"
    return f"output port {key.port!r}" if isinstance(key, NetPort) else repr(key)


@memory_errors("gradcheck")
@underflow_ignored
def gradcheck(net: Net, data: Any, *, eps: float = 1e-6, rtol: float = 1e-5,
              atol: float = 1e-7, training: bool = False, seed: int = 0,
              max_entries: int | None = 4096) -> CheckReport:
    """Compare the gradients of ``net`` (in float64) with central differences.

    The scalar differentiated is ``sum(r * outputs)`` with a fixed random ``r`` per output.
    Every real-valued input port and every array is checked, entry by entry (a random sample
    of ``max_entries`` entries of larger ones). With ``training=True`` each run uses a fresh
    ``np.random.default_rng(seed)``, so dropout masks are the same in every run. Entries
    pass when ``|analytic - numeric| <= atol' + rtol * |numeric|``, where ``atol'`` adds to
    ``atol`` the round-off of the differences, ``10 * 2.2e-16 * sum|r * outputs| / eps``.
    A port or array that fails is checked again against the Richardson extrapolation
    ``(4 D(h) - D(2 h)) / 3`` of the differences ``D``, which cancels their ``h**2`` error
    term (large where the net's high derivatives are, e.g. a Sin of a large value), with
    ``h = eps`` and then ``h = eps / 10`` (its round-off allowed for in ``atol'``).
    ``NetPortGradient`` seeds in ``data`` are ignored (the projection replaces them).

    Returns
    -------
    CheckReport
        ``NetPortGradient(port)`` / ``NetArrayGradient(path)`` -> errors.

    Raises
    ------
    NetError
        Naming the first input port or array path whose gradient is wrong.
    """
    eps = _check_tolerance("gradcheck", "eps", eps, positive=True)
    rtol = _check_tolerance("gradcheck", "rtol", rtol)
    atol = _check_tolerance("gradcheck", "atol", atol)
    _check_max_entries(max_entries)
    net, plan, inputs = _prepare(net, data)
    dt = np.float64
    rng = np.random.default_rng(seed)
    run_rng = (lambda: np.random.default_rng(seed)) if training else (lambda: None)
    _, batch, tape = run_net(net, inputs, dt, training=training, rng=run_rng())
    lengths = tape.run.lengths
    r = {p: tape.run.zero_padding(rng.standard_normal(np.shape(tape.values[m.slot])), m)
         for p, m in plan.outputs.items() if not m.integer}
    size = sum(float(np.sum(np.abs(r[p] * tape.values[plan.outputs[p].slot]))) for p in r)
    def tolerance(h: float) -> float:  # atol and the round-off of differences of step h
        return atol + 10 * np.finfo(dt).eps * size / h

    seeded: dict[Any, Any] = dict(inputs)
    seeded.update({NetPortGradient(p): from_batch(r[p], plan.outputs[p], lengths, batch.is_batch)
                   for p in r})
    arrays = {p: a.copy() for p, a in collect_arrays(net, dt).items()}
    keys = [NetPortGradient(p) for p, m in plan.inputs.items() if not m.integer]
    keys += [NetArrayGradient(p) for p in arrays]
    analytic = apply_net(net, seeded, keys, dtype=dt, training=training, rng=run_rng())
    xs = dict(batch.arrays)

    def objective() -> float:
        run = RunContext(arrays=arrays, dtype=dt, training=training, rng=run_rng(),
                         lengths=dict(batch.lengths))
        values = forward(plan, xs, run).values
        return sum(float(np.sum(r[p] * values[plan.outputs[p].slot])) for p in r)

    def sample(valid: np.ndarray) -> np.ndarray:
        """The flat indices checked: the ``valid`` entries (a random sample of large ones)."""
        idx = np.flatnonzero(valid)
        if max_entries is not None and idx.size > max_entries:
            idx = np.sort(rng.choice(idx, max_entries, replace=False))
        return idx

    def numeric(key: Any, idx: np.ndarray, h: float) -> Any:
        """Central differences of step ``h`` at the entries ``idx`` of the port or array
        ``key`` (perturbed in place), in the form of its gradient; NaN where not checked."""
        if isinstance(key, NetPortGradient):
            meta = plan.inputs[key.port]
            num = central_differences(objective, xs[key.port], h=h, at=idx)
            return from_batch(num, meta, lengths, batch.is_batch)
        return central_differences(objective, arrays[key.key], h=h, at=idx)

    report = CheckReport()
    for key, got in zip(keys, analytic, strict=True):
        if isinstance(key, NetPortGradient):
            x = xs[key.port] = xs[key.port].copy()
            idx = sample(tape.run.zero_padding(np.ones_like(x), plan.inputs[key.port]) != 0)
        else:
            idx = sample(np.ones(arrays[key.key].shape, bool))
        report[key] = _compare(key, got, partial(numeric, key, idx), eps, rtol, tolerance)
    for key, res in report.items():
        if not res["ok"]:
            raise NetError(f"gradcheck: the gradient of {_what(key)} disagrees with central "
                           f"differences: max abs error {res['max_abs_error']:.3g}, max rel "
                           f"error {res['max_rel_error']:.3g} (rtol={rtol}, "
                           f"atol={tolerance(eps):.3g})\n"
                           f"{report}")
    return report


def _examples(plan: Plan, inputs: dict[str, Any]) -> list[dict[str, Any]]:
    """The examples of the (validated) data, one dict port -> array each."""
    split = {p: split_examples(inputs[p], m, p)[0] for p, m in plan.inputs.items()}
    n = len(next(iter(split.values()))) if split else 1
    return [{p: ex[i] for p, ex in split.items()} for i in range(n)]


@memory_errors("check_padding")
@underflow_ignored
def check_padding(net: Net, data: Any, *, rtol: float = 1e-7, atol: float = 1e-9,
                  seed: int = 0) -> CheckReport:
    """Assert that padding content (0, 1e30, NaN) and batch composition (each example alone,
    in the batch, in the reversed batch) change no valid output value and no input or array
    gradient (computed in float64, for a fixed random projection of the outputs); and that
    every value and gradient inside the net is exactly 0 at padded positions. ``data`` is a
    batch (one example is taken as a batch of one).

    Returns
    -------
    CheckReport
        ``NetPort(output)`` / ``NetPortGradient(port)`` / ``NetArrayGradient(path)`` -> the
        largest differences seen.

    Raises
    ------
    NetError
        Saying which output or gradient changed, for which example and by how much.
    """
    rtol = _check_tolerance("check_padding", "rtol", rtol)
    atol = _check_tolerance("check_padding", "atol", atol)
    net, plan, inputs = _prepare(net, data)
    examples = _examples(plan, inputs)
    rng = np.random.default_rng(seed)
    outs = list(plan.outputs)
    real_outs = [p for p in outs if not plan.outputs[p].integer]
    keys: list[Any] = [NetPort(p) for p in outs]
    keys += [NetPortGradient(p) for p, m in plan.inputs.items() if not m.integer]
    keys += [NetArrayGradient(p) for p in collect_arrays(net, np.float64)]
    dt = np.float64
    alone, seeds = [], []
    for ex in examples:
        values = apply_net(net, ex, [NetPort(p) for p in real_outs], dtype=dt)
        seeds.append({p: rng.standard_normal(np.shape(v))
                      for p, v in zip(real_outs, values, strict=True)})
        given = {**ex, **{NetPortGradient(p): s for p, s in seeds[-1].items()}}
        alone.append(apply_net(net, given, keys, dtype=dt))

    def stack(items: list[Any], meta: Any) -> Any:  # a batch in user form
        return list(items) if meta.varying else np.stack(items)

    report = CheckReport()

    def compare(name: str, order: list[int], fill: float) -> None:
        given: dict[Any, Any] = {p: stack([examples[i][p] for i in order], m)
                                 for p, m in plan.inputs.items()}
        for p in real_outs:
            given[NetPortGradient(p)] = stack([seeds[i][p] for i in order], plan.outputs[p])
        got = apply_net(net, given, keys, dtype=dt, fill=fill)
        for key, value in zip(keys, got, strict=True):
            if isinstance(key, NetArrayGradient):
                pairs = [(-1, value, sum(alone[i][keys.index(key)] for i in order))]
            else:
                pairs = [(i, value[k], alone[i][keys.index(key)]) for k, i in enumerate(order)]
            for i, g, w in pairs:
                g, w = np.asarray(g, dtype=dt), np.asarray(w, dtype=dt)
                which = "summed over the batch" if i < 0 else f"of example {i}"
                if g.shape != w.shape:
                    raise NetError(f"check_padding ({name}): {_what(key)} {which} has shape "
                                   f"{g.shape} in the batch but {w.shape} alone")
                res = _errors(g.ravel(), w.ravel(), rtol, atol)
                if not res["ok"]:
                    raise NetError(f"check_padding ({name}): {_what(key)} {which} changed: max "
                                   f"difference {res['max_abs_error']:.3g} from the example run "
                                   "alone")
                old = report.setdefault(key, res)
                for k in ("max_abs_error", "max_rel_error"):
                    old[k] = max(old[k], res[k])

    order = list(range(len(examples)))
    for fill in (0.0, 1e30, np.nan):
        compare(f"batch, padding filled with {fill}", order, fill)
    compare("reversed batch, padding filled with NaN", order[::-1], np.nan)
    _check_interior_padding(net, plan, inputs, rng)
    return report


def _check_interior_padding(net: Net, plan: Plan, inputs: dict[str, Any],
                            rng: np.random.Generator) -> None:
    """The executor's invariant: every value and gradient inside the net is exactly 0 at
    padded positions (a layer declaring ``pad_clean`` that leaves garbage there breaks it)."""
    _, _, tape = run_net(net, inputs, np.float64, fill=np.nan)
    run = tape.run
    seeds = {p: run.zero_padding(rng.standard_normal(np.shape(tape.values[m.slot])), m)
             for p, m in plan.outputs.items() if not m.integer}
    grads, _ = backward(plan, tape, seeds)

    makers = {m.slot: where(s.path, p) for s in plan.steps for p, m in s.outs.items()}
    users: dict[int, list[str]] = {}
    for s in plan.steps:
        for p, m in s.ins.items():
            users.setdefault(m.slot, []).append(where(s.path, p))
    for meta in plan.metas:
        for kind, value in (("value", tape.values[meta.slot]), ("gradient", grads[meta.slot])):
            if not meta.varying or value is None or meta.integer and kind == "gradient":
                continue
            if not np.array_equal(run.zero_padding(value, meta), value):
                at = makers.get(meta.slot, "an input of the net") if kind == "value" else \
                    " and ".join(users.get(meta.slot, ["an output of the net"]))
                raise NetError(f"check_padding: the {kind} {'at' if kind == 'value' else 'for'} "
                               f"{at} is not exactly 0 at padded positions (a layer that "
                               "declares pad_clean = True leaves padding dirty)")
