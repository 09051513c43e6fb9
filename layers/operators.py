"""NetMapOperator: apply a net to every element of a sequence, with shared arrays."""

from __future__ import annotations

import numpy as np

from netgraph.extend import Layer, Net, NetError, Solver, where

from ._ops import broadcast_lead, sum_to
from .linear import LinearLayer

__all__ = ["NetMapOperator"]


class _Operator(Layer):
    """A layer wrapping one inner net, reachable as ``NetExtract(op, "Net")``."""

    sub_nets = ("Net",)

    def __init__(self, net: Net, **ports):
        if not isinstance(net, Net):
            raise NetError(f"{type(self).__name__}: parameter 'net' must be a net (a layer, "
                           f"NetGraph or NetChain), got {type(net).__name__}")
        super().__init__({}, ports, children={"Net": net})

    @property
    def net(self) -> Net:
        return self.child("Net")

    def params_text(self) -> str:
        return type(self.net).__name__


class NetMapOperator(_Operator):
    """``NetMapOperator(net)``: every input port of ``net`` takes a sequence of what ``net``
    takes (one shared length, fixed or varying), and every output gives the sequence of
    ``net``'s outputs: ``out_t = net(in_t)``. Padded positions are never computed."""

    pad_clean = True

    def input_names(self) -> tuple[str, ...]:
        return self.net.input_ports

    def output_names(self) -> tuple[str, ...]:
        return self.net.output_ports

    def output_source(self, port: str):
        return self.net, port

    def rules(self, S: Solver, path: tuple, ports: dict[str, int]) -> dict:
        inner, sub = self.net, path + ("Net",)
        length = S.new_dim(varying=True, origin=f"NetMapOperator at {where(path)}")
        for p in inner.input_ports:
            S.relate(ports[p], S.port(sub, p), prefix=(length,),
                     places=(where(path, p), where(sub, p)), what="NetMapOperator maps a sequence")
        for p in inner.output_ports:
            S.relate(ports[self.output_key(p)], S.port(sub, inner.output_key(p)), prefix=(length,),
                     places=(where(path, p), where(sub, p)), what="NetMapOperator maps a sequence")
        return {}

    def forward(self, ins, arrays, ctx):
        names, out_ports = self.cached("ports", lambda: (self.input_names(), self.output_ports))
        # inputs may come with different broadcasting leading axes (inside a scoring net):
        # map over their common leading shape
        lead, full = broadcast_lead([ins[n] for n in names], [ctx.meta(n).rank for n in names])
        T = full[0].shape[len(lead)]
        mask = ctx.valid_mask(names[0], T)

        def flat(x):
            return x[mask] if mask is not None else x.reshape((-1,) + x.shape[len(lead) + 1:])

        inner = _linear_step(self.net, ctx, full[0].dtype)
        flat_ins = {n: flat(x) for n, x in zip(names, full, strict=True)}
        outs, back = _run_step(inner, flat_ins, ctx) if inner is not None else \
            ctx.run_sub("Net", flat_ins)
        outer = lead + (T,)

        def unflat(y):
            if mask is None:
                return y.reshape(outer + y.shape[1:])
            full = np.zeros(outer + y.shape[1:], dtype=y.dtype)
            full[mask] = y
            return full

        result = {p: unflat(outs[p]) for p in out_ports}

        def backward(g):
            seeds = {p: None if g.get(p) is None else flat(g[p]) for p in out_ports}
            in_grads, array_grads = back(seeds)
            return {n: None if in_grads.get(n) is None else sum_to(unflat(in_grads[n]),
                                                                    ins[n].shape)
                    for n in names}, array_grads

        return result, backward


def _linear_step(net: Net, ctx, dtype) -> object | None:
    """The one step of the mapped net when it is a bare ``LinearLayer`` on real inputs of the
    run's dtype, else None. Such a step runs directly on the flattened positions, as one
    product: exactly what running its one-step sub-plan computes (the executor would only
    read the step's inputs and arrays, call its ``forward``, and keep its output, already in
    the run's dtype and without varying dims to zero), without the sub-plan's bookkeeping."""
    if type(net) is not LinearLayer or dtype != ctx.dtype:
        return None
    steps = ctx.step.subplans["Net"].steps
    return steps[0] if len(steps) == 1 else None  # (a LinearLayer compiles to one step)


def _run_step(step, inputs: dict, ctx) -> tuple[dict, object]:
    """``ctx.run_sub("Net", inputs)`` for the sub-plan whose one step is ``step`` (see
    :func:`_linear_step`): its outputs and a backward ``seeds -> (input grads, array
    grads)`` with the array gradients keyed as the executor keys them."""
    run = ctx.run
    sub = type(ctx)(step, run)
    arrays = {n: run.arrays[k] for n, k in step.layout[1]}
    outs, back = step.layer.forward(inputs, arrays, sub)

    def backward(seeds):
        if all(g is None for g in seeds.values()):
            return {}, {}
        in_grads, array_grads = back(seeds)
        return in_grads, {step.arrays[k] if isinstance(k, str) else k: g
                          for k, g in array_grads.items()}

    return outs, backward
