"""Applying a net to data: ``net(data, what, dtype=...)``, gradients included."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import numpy as np

from .allocation import memory_errors
from .batch import (
    _plain,
    from_batch,
    pad_examples,
    split_examples,
    to_batch,
    unwrap_objects,
    with_hints,
)
from .coding import encode_inputs, selection
from .compile import Plan, compile_net
from .errors import InputDataError, NetError, PortError, ShapeError, where
from .execute import RunContext, Tape, backward, forward
from .net import Net
from .ports import NetArrayGradient, NetPort, NetPortGradient, NetSharedArray
from .shapes import Automatic, Index
from .shared import array_key, resolve
from .tree import resolve_child, walk

__all__ = ["apply_net", "collect_arrays", "uninitialized", "run_net", "data_hints",
           "underflow_ignored"]


def uninitialized(net: Net) -> list[tuple]:
    """The paths of the arrays of ``net`` that are not initialized (found once per net: nets
    are immutable)."""
    return net.cached("uninitialized", lambda: [
        p + (n,) for p, sub in walk(net) for n, a in sub._arrays().items() if a is None])


def collect_arrays(net: Net, dtype: Any) -> dict[tuple, np.ndarray]:
    """All arrays of ``net`` by run-time key (full path; a shared array once, keyed by its
    ``NetSharedArray``), cast to ``dtype`` (cached per dtype)."""
    key = ("arrays", (dtype if isinstance(dtype, np.dtype) else np.dtype(dtype)).str)
    cached = net._cache.get(key)
    if cached is None:
        cached = {array_key(sub, p, n): a.astype(dtype, copy=False)
                  for p, sub in walk(net) for n, a in sub._arrays().items() if a is not None}
        net._cache[key] = cached
    return cached


_DTYPES = {t: np.dtype(t) for t in (np.float32, np.float64, np.dtype(np.float32),
                                    np.dtype(np.float64))}


def _check_dtype(dtype: Any) -> np.dtype:
    if type(dtype) in (type, np.dtypes.Float32DType, np.dtypes.Float64DType) and \
            dtype in _DTYPES:  # the usual ones, without the cost of np.dtype()
        return _DTYPES[dtype]
    if dtype is None:
        return np.dtype(np.float32)  # the default (np.dtype(None) would be float64)
    try:
        dt = np.dtype(dtype)
    except TypeError:
        raise NetError(f"dtype must be float32 or float64, got {dtype!r}") from None
    if dt not in (np.float32, np.float64):
        raise NetError(f"dtype must be float32 or float64, got {dtype!r}")
    return dt


def _split_data(net: Net, data: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    if not isinstance(data, dict):
        if len(net.input_ports) != 1:
            raise InputDataError(f"the net has input ports {list(net.input_ports)}; give the data "
                                 "as a dict port -> value")
        data = {net.input_ports[0]: data}
    inputs, seeds = {}, {}
    for k, v in data.items():
        if isinstance(k, NetPortGradient):
            if k.port not in net.output_ports:
                raise InputDataError(f"gradient seed for {k.port!r}, which is not an output "
                                     f"port; outputs are {list(net.output_ports)}")
            seeds[k.port] = v
        elif isinstance(k, NetPort) and k.layer is None:
            inputs[k.port] = v
        else:
            inputs[k] = v
    for k in inputs:
        if k not in net.input_ports:
            hint = ""
            if k in net.output_ports:
                hint = (f"; {k!r} is an output port: to seed its gradient, give "
                        f"NetPortGradient({k!r}): g")
            raise InputDataError(f"unknown input port {k!r}; the net's inputs are "
                                 f"{list(net.input_ports)}{hint}")
    for p in net.input_ports:
        if p not in inputs:
            raise InputDataError(f"required input port {p!r} was not given data")
    return inputs, seeds


def _node_path(net: Net, path: tuple) -> tuple:
    """``path`` with int positions (negative from the end) replaced by node names, as in
    NetExtract; parts that name no sub-net are kept, so the caller's lookup reports them."""
    out = []
    for part in path:
        try:
            key = resolve_child(net, part, tuple(out))
        except NetError as e:
            raise PortError(str(e)) from None
        if key is None:
            return tuple(out) + path[len(out):]
        out.append(key)
        net = net.children()[key]
    return tuple(out)


def _target(net: Net, plan: Plan, w: Any) -> tuple:
    if isinstance(w, str):
        w = NetPort(w)
    if isinstance(w, NetPort):
        if w.layer is None:
            if w.port in plan.outputs:
                return ("value", plan.outputs[w.port])
            if w.port in plan.inputs:
                return ("value", plan.inputs[w.port])
            if ((), w.port) in plan.interior:  # a bare layer's hidden output
                return ("value", plan.interior[((), w.port)])
            raise PortError(f"{w.port!r} is not a port of the net; outputs are "
                            f"{list(plan.outputs)}")
        meta = plan.interior.get((_node_path(net, w.layer), w.port))
        if meta is None:
            raise PortError(f"{w!r} does not exist: there is no {where(w.layer, w.port)}")
        return ("value", meta)
    if isinstance(w, NetPortGradient):
        if w.port not in plan.inputs:
            raise PortError(f"NetPortGradient({w.port!r}): no such input port; inputs are "
                            f"{list(plan.inputs)}")
        return ("grad", plan.inputs[w.port])
    if isinstance(w, NetArrayGradient):
        arrays = net._cache.get(("arrays", np.dtype(np.float32).str)) or collect_arrays(
            net, np.float32)
        path = resolve(net, _node_path(net, w.path[:-1]) + w.path[-1:])
        if path not in arrays:
            if path in uninitialized(net):
                raise NetError(f"NetArrayGradient: the array at {list(w.path)} is not "
                               "initialized; call NetInitialize first")
            raise PortError(f"NetArrayGradient: no array at {list(w.path)}; arrays are "
                            f"{[p if isinstance(p, NetSharedArray) else list(p) for p in arrays]}")
        return ("agrad", path)
    raise PortError(f"cannot select {w!r}: give an output name, NetPort, NetPortGradient or "
                    "NetArrayGradient")


def _example_shape(x: Any, shape: Any, port: str) -> tuple[int, ...]:
    """The shape of one example of ``x`` given to ``port`` (display shape ``shape``, whose
    rank may be unknown), for just-in-time inference. Raises ``InputDataError``."""
    dims = None if shape is Automatic else [d for d in shape if d not in ("Real", "Integer")
                                            and not isinstance(d, Index)]
    x = unwrap_objects(x)
    if isinstance(x, (str, bytes, dict)) or x is None:
        raise InputDataError(f"data for port {port!r} is {type(x).__name__}, not numeric")
    try:
        if dims is not None and isinstance(x, (list, tuple)) and x and \
                isinstance(x[0], (list, tuple, np.ndarray)) and np.ndim(x[0]) == len(dims):
            x = x[0]  # a batch (possibly ragged): its first example has the port's rank
        a = np.asarray(x)
    except (ValueError, TypeError):
        a = np.asarray(None)
    if a.dtype == object:
        raise InputDataError(f"data for port {port!r} is not a regular numeric array, so the "
                             f"port's unknown shape {shape!r} cannot be read off it; give the "
                             "port a shape")
    if dims is None:
        example = a.shape
    elif a.ndim in (len(dims), len(dims) + 1):
        example = a.shape[a.ndim - len(dims):]
    else:
        raise InputDataError(f"data for port {port!r} has shape {a.shape}, but the port "
                             f"expects {shape!r}: rank {len(dims)} for one example or rank "
                             f"{len(dims) + 1} for a batch")
    if 0 in example:
        raise InputDataError(f"data for port {port!r} has shape {a.shape}, with an empty "
                             "dimension")
    return example


def _open_inputs(net: Net) -> list[str]:
    """The input ports whose shapes inference left open (the rank or a size unknown), found
    once per net."""
    return net.cached("open_inputs", lambda: [
        p for p in net.input_ports if (shape := net.port_shape(p)) is Automatic or
        isinstance(shape, tuple) and Automatic in shape])


def _filled_spec(shape: Any, x: Any, port: str) -> Any:
    """The open ``shape`` of ``port`` completed from data ``x`` (one example or a batch)."""
    example = _example_shape(x, shape, port)
    if shape is Automatic:
        return example or "Real"
    sizes, filled = iter(example), []  # fill the Automatic dims; the rest stays
    for d in shape:
        if d in ("Real", "Integer") or isinstance(d, Index):
            filled.append(d)
        else:
            n = next(sizes)
            filled.append(n if d is Automatic else d)
    return tuple(filled)


def _fill_shapes_from_data(net: Net, data: Any) -> Net:
    """Just-in-time inference: input ports whose shapes are not fully known take the data's
    shape (of one example; the rank decides single example versus batch as usual). The
    filled net is solved once and kept on ``net`` for the next call with data of that shape;
    ``net`` itself when every input shape is known."""
    open_ports = _open_inputs(net)
    if not open_ports:
        return net
    inputs, _ = _split_data(net, data)
    specs = {p: _filled_spec(net.port_shape(p), inputs[p], p) for p in open_ports}
    last = net._cache.get("filled")
    if last is not None and last[0] == specs:
        return last[1]
    try:
        filled = net.derive(_user_specs={**net._user_specs, **specs})._infer()
    except ShapeError as e:
        raise InputDataError("the data for port(s) " + ", ".join(map(repr, specs)) +
                             f" (example shapes {list(specs.values())}) does not fit the net: "
                             f"{e}") from None
    net._cache["filled"] = (specs, filled)
    return filled


def underflow_ignored(fn: Callable) -> Callable:
    """``fn`` run with NumPy's underflow flag ignored, whatever the caller's ``np.errstate``.

    A result too small for the dtype becomes a subnormal or 0, which is the right value in
    every computation of a net (``exp`` of a saturated logit, a product of tiny weights); so
    even under ``np.seterr(all="raise")`` an underflow never interrupts a net. Overflow,
    invalid operations and division by zero keep the caller's settings: the layers avoid them
    where their results are defined (stable softmax, sigmoid, softplus, clipped logarithms).
    """
    @functools.wraps(fn)
    def run(*args: Any, **kwargs: Any) -> Any:
        if np.geterr()["under"] == "ignore":  # NumPy's default: nothing to set (and undo)
            return fn(*args, **kwargs)
        with np.errstate(under="ignore"):
            return fn(*args, **kwargs)

    return run


def data_hints(plan: Plan) -> dict[str, str]:
    """Input port -> the advice of the layers it feeds for one-hot vectors given to it (see
    ``Layer.index_data_hint``)."""
    ports = {m.slot: p for p, m in plan.inputs.items() if m.integer}
    hints: dict[str, str] = {}
    for step in plan.steps:
        for name, meta in step.ins.items():
            if meta.slot in ports and ports[meta.slot] not in hints:
                hint = step.layer.index_data_hint(name)
                if hint:
                    hints[ports[meta.slot]] = hint
    return hints


@underflow_ignored
def run_net(net: Net, inputs: dict[str, Any], dtype: Any, *, training: bool = False,
            rng: Any = None, fill: float = 0.0) -> tuple[Plan, Any, Tape]:
    """Validate, pad and run forward; the building block of applying and training."""
    return _run(net, inputs, dtype, training, rng, fill)


def _run(net: Net, inputs: dict[str, Any], dtype: Any, training: bool, rng: Any,
         fill: float) -> tuple[Plan, Any, Tape]:
    """:func:`run_net` for callers that already ignore underflow."""
    plan = compile_net(net)
    missing = uninitialized(net)
    if missing:
        shown = ", ".join(map(str, map(list, missing[:4])))
        raise NetError(f"the net has uninitialized arrays ({shown}"
                       f"{', …' if len(missing) > 4 else ''}); call NetInitialize first")
    try:
        batch = to_batch(inputs, plan.inputs, dtype, fill)
    except InputDataError as e:
        raise with_hints(e, data_hints(plan)) from None
    run = RunContext(arrays=collect_arrays(net, dtype), dtype=dtype, training=training, rng=rng,
                     lengths=dict(batch.lengths), inputs_zero_padded=fill == 0,
                     length_owners=plan.length_owners)
    return plan, batch, forward(plan, batch.arrays, run)


def _output_shapes(value: np.ndarray, meta: Any, lengths: dict) -> list[tuple[int, ...]]:
    """The true (unpadded) shape of every example of the batched output ``value``."""
    return [tuple(int(lengths[key][b]) if key is not None else n
                  for n, key in zip(value.shape[1:], meta.keys)) for b in range(value.shape[0])]


def _seed(given: Any, value: np.ndarray, meta: Any, batch: Any, run: Any, port: str,
          dtype: Any) -> np.ndarray:
    """A user's gradient seed for output ``port`` (value ``value``), validated like data —
    numeric, finite, per example exactly the shape of that example's output — and padded."""
    name = f"NetPortGradient({port!r})"
    examples, is_batch = split_examples(given, meta, name)
    if is_batch != batch.is_batch or len(examples) != batch.size:
        given_form = f"a batch of {len(examples)}" if is_batch else "one example"
        want_form = f"a batch of {batch.size}" if batch.is_batch else "one example"
        raise InputDataError(f"the gradient seed {name} must have the form of the output "
                             f"{port!r}: {want_form}, got {given_form}")
    for k, (e, want) in enumerate(zip(examples, _output_shapes(value, meta, run.lengths))):
        if e.shape != want:
            which = f" (example {k})" if is_batch else ""
            raise InputDataError(f"the gradient seed {name}{which} has shape {e.shape} but the "
                                 f"output {port!r}{which} has shape {want}")
    with np.errstate(over="ignore"):  # reported below
        seed, _ = pad_examples(examples, meta, dtype, port=name)
    if not np.isfinite(seed).all():
        big = max(float(np.abs(e).max()) for e in examples)
        raise InputDataError(f"the gradient seed {name} has values up to {big:.3g}, beyond the "
                             f"range of {np.dtype(dtype).name}; rescale it or compute with "
                             "dtype=np.float64")
    return run.zero_padding(seed, meta)


def _seeds(plan: Plan, batch: Any, given: dict[str, Any], dtype: Any, tape: Tape) -> dict:
    """Output port -> its padded gradient seed: the given ones (unseeded outputs get none when
    any is given), else ones at every valid position of every real output."""
    seeds = {}
    for port, meta in plan.outputs.items():
        value = tape.values[meta.slot]
        if meta.integer:
            continue
        if given:
            if port not in given:
                continue
            seeds[port] = _seed(given[port], value, meta, batch, tape.run, port, dtype)
        else:
            seeds[port] = tape.run.valid_ones(value.shape, meta, dtype)
    return seeds


def _request(net: Net, plan: Plan, what: Any) -> tuple[list, list, bool]:
    """The targets (see :func:`_target`) and decoding steps (see ``coding.selection``) of the
    outputs ``what`` asks for, and whether they are all values (no gradients); derived once
    per plan and request (they depend on the net's structure only), a request that is no
    valid key (a list holding unhashable parts) each time."""
    try:
        key = ("list", *what) if isinstance(what, list) else ("one", what)
        cached = plan.requests.get(key)
    except TypeError:
        key = cached = None
    if cached is not None:
        return cached
    wants = what if isinstance(what, list) else [what]
    if what is None:
        wants = list(plan.outputs)
    chosen = [selection(net, w) for w in wants]
    targets = [_target(net, plan, w) for w, _ in chosen]
    cached = targets, [post for _, post in chosen], all(t[0] == "value" for t in targets)
    if key is not None:
        plan.requests[key] = cached
    return cached


def _plain_call(net: Net, data: Any, what: Any, dt: np.dtype) -> tuple | None:
    """``(result,)`` of ``net(data, what)`` by the short way, when the call needs nothing but
    running the plan on plainly valid arrays: the net has no encoders, no open input shapes
    and every array initialized (facts of the net, found once); values (no gradients) are
    asked for; and the data of every input port is an ndarray that :func:`batch._plain`
    accepts, all of one form (one example or batches of one size) and of one length where
    ports share a length. None otherwise: the general path then handles the call, every error
    included, and gives accepted calls the same result bit for bit (the same packing, plan
    and unpacking)."""
    ok = net._cache.get("plain_calls")
    if ok is None:
        ok = net._cache["plain_calls"] = (not net.port_coders()[0] and not _open_inputs(net)
                                          and not uninitialized(net))
    if not ok:
        return None
    plan = compile_net(net)
    targets, posts, values_only = _request(net, plan, what)
    if not values_only:
        return None
    ports = plan.inputs
    if type(data) is dict:
        if len(data) != len(ports):
            return None
        given = [data.get(p) for p in ports]
    elif len(ports) == 1:
        given = [data]
    else:
        return None
    arrays, lengths, forms = {}, {}, set()
    for (port, meta), x in zip(ports.items(), given):
        plain = _plain(x, meta, dt)
        if plain is None:
            return None
        arrays[port], port_lengths, is_batch = plain
        forms.add((is_batch, len(arrays[port])))
        for axis, lens in port_lengths.items():
            key = meta.keys[axis]
            if key in lengths and lengths[key][0] != lens[0]:
                return None
            lengths[key] = lens
    if len(forms) != 1:
        return None
    run = RunContext(arrays=collect_arrays(net, dt), dtype=dt, lengths=lengths,
                     inputs_zero_padded=True, length_owners=plan.length_owners,
                     _full={(key, int(lens[0])): True for key, lens in lengths.items()})
    tape = forward(plan, arrays, run)  # (every example of the data has its key's one length)
    results = [from_batch(tape.values[x.slot], x, run.lengths, is_batch) for _, x in targets]
    return (_results(plan, results, posts, is_batch, what),)


def _results(plan: Plan, results: list, posts: list, is_batch: bool, what: Any) -> Any:
    """What applying returns: the requested results (decoded where asked), as a list for a
    list request, a dict of every output for none, else the one."""
    results = [r if post is None else post(r, is_batch) for r, post in zip(results, posts)]
    if isinstance(what, list):
        return results
    if what is None and len(results) > 1:
        return dict(zip(plan.outputs, results))
    return results[0]


@memory_errors("applying the net")
@underflow_ignored
def apply_net(net: Net, data: Any, what: Any = None, *, dtype: Any = np.float32,
              training: bool = False, rng: Any = None, fill: float = 0.0) -> Any:
    dt = _check_dtype(dtype)
    if not training and fill == 0:
        done = _plain_call(net, data, what, dt)
        if done is not None:
            return done[0]
    data = encode_inputs(net, data)
    net = _fill_shapes_from_data(net, data)
    plan = compile_net(net)
    targets, posts, values_only = _request(net, plan, what)
    inputs, given_seeds = _split_data(net, data)
    plan, batch, tape = _run(net, inputs, dt, training, rng, fill)
    grads: list = []
    array_grads: dict = {}
    if not values_only:
        grads, array_grads = backward(plan, tape, _seeds(plan, batch, given_seeds, dt, tape))
    results = []
    for kind, x in targets:
        if kind == "value":
            results.append(from_batch(tape.values[x.slot], x, tape.run.lengths, batch.is_batch))
        elif kind == "grad":
            g = grads[x.slot]
            if g is None:
                g = np.zeros_like(tape.values[x.slot], dtype=dt)
            results.append(from_batch(g, x, tape.run.lengths, batch.is_batch))
        else:
            g = array_grads.get(x)
            results.append(np.zeros_like(tape.run.arrays[x]) if g is None else g)
    return _results(plan, results, posts, batch.is_batch, what)
