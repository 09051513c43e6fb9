"""NetFoldOperator: run a net along a sequence, feeding each output back in as the state.

For an inner net with ports ``Input``, ``State`` -> ``Output`` (``Output`` of the shape of
``State``)::

    out_0 = initial state (zeros, or the value connected to NetPort(op, "State"))
    out_t = net(Input = x_t, State = out_{t-1})          t = 1 .. T
    Output = (out_1, ..., out_T);  final State = out_T  (T = each example's true length)
"""

from __future__ import annotations

import numpy as np

from netgraph.extend import NetError, Solver, where

from ._ops import broadcast_lead, sum_to
from .operators import _Operator

__all__ = ["NetFoldOperator"]


def _accumulate(total: dict, grads: dict) -> None:
    for k, g in grads.items():
        total[k] = g if total.get(k) is None else total[k] + g


class NetFoldOperator(_Operator):
    """``NetFoldOperator(net)``: ``out_t = net(Input=x_t, State=out_{t-1})`` over the steps of
    the ``Input`` sequence (fixed or varying length); ``Output`` is the sequence of ``out_t``.
    Optional ports, present only where a NetGraph connects them: the input ``State`` (the
    initial state; zeros otherwise) and the output ``State`` (the state after each example's
    true last step). The inner net is ``NetExtract(op, "Net")``; its arrays are shared by all
    steps. Past an example's length nothing is computed and ``Output`` is 0."""

    inputs = ("Input",)
    outputs = ("Output",)
    optional_inputs = ("State",)
    optional_outputs = ("State",)
    pad_clean = True

    def validate(self) -> None:
        net = self.net
        if set(net.input_ports) != {"Input", "State"} or tuple(net.output_ports) != ("Output",):
            raise NetError(f"NetFoldOperator needs a net with input ports 'Input' and 'State' "
                           f"and one output port 'Output'; got inputs {list(net.input_ports)} "
                           f"and outputs {list(net.output_ports)}")

    def rules(self, S: Solver, path: tuple, ports: dict[str, int]) -> dict:
        sub = path + ("Net",)
        what = f"NetFoldOperator at {where(path)} folds over a sequence"
        length = S.new_dim(varying=True, origin=f"NetFoldOperator at {where(path)}")
        state = S.port(sub, "State")
        S.unify(S.port(sub, "Output"), state, where(sub, "Output"), where(sub, "State"))
        for p in ("Input", "Output"):
            S.relate(ports[p], S.port(sub, p), prefix=(length,),
                     places=(where(path, p), where(sub, p)), what=what)
        if "State" in self.input_ports:
            S.unify(ports["State"], state, where(path, "State"), where(sub, "State"))
        if "State" in self.output_ports:
            S.unify(ports[self.output_key("State")], state, where(path, "State"),
                    where(sub, "State"))
        return {}

    def forward(self, ins, arrays, ctx):
        # Input and initial State may come with different broadcasting leading axes (inside a
        # scoring net): fold over their common leading shape, flattened to B rows
        given = ["Input"] + (["State"] if "State" in ins else [])
        lead, full = broadcast_lead([ins[p] for p in given], [len(ctx.dims(p)) for p in given])
        x = full[0].reshape((-1,) + full[0].shape[len(lead):])
        B, T = x.shape[:2]
        sdims = tuple(ctx.dims("Output")[1:])
        state = full[1].reshape((B,) + sdims) if "State" in ins else np.zeros((B,) + sdims,
                                                                                 ctx.dtype)
        lens = ctx.lengths("Input")
        if lens is None or len(lens) != B:
            lens = np.full(B, T)
        Y = np.zeros((B, T) + sdims, ctx.dtype)
        steps = []
        for t in range(T):
            rows = None if (lens > t).all() else np.flatnonzero(lens > t)
            if rows is None:
                outs, back = ctx.run_sub("Net", {"Input": x[:, t], "State": state})
                state = outs["Output"]
                Y[:, t] = state
            else:
                outs, back = ctx.run_sub("Net", {"Input": x[rows, t], "State": state[rows]})
                state = state.copy()
                state[rows] = Y[rows, t] = outs["Output"]
            steps.append((rows, back))
        result = {"Output": Y.reshape(lead + Y.shape[1:])}
        if "State" in self.output_ports:
            result["State"] = state.reshape(lead + sdims)

        def backward(g):
            gy, gs = g.get("Output"), g.get("State")
            gy = None if gy is None else gy.reshape(Y.shape)
            carry = np.zeros_like(state) if gs is None else gs.reshape(state.shape).copy()
            dx = None if not ctx.needs_grad("Input") else np.zeros(x.shape, ctx.dtype)
            array_grads: dict = {}
            for t in range(T - 1, -1, -1):
                rows, back = steps[t]
                sel = slice(None) if rows is None else rows
                seed = carry[sel] if gy is None else carry[sel] + gy[sel, t]
                in_grads, agrads = back({"Output": seed})
                _accumulate(array_grads, agrads)
                if dx is not None and in_grads.get("Input") is not None:
                    dx[sel, t] = in_grads["Input"]
                gstate = in_grads.get("State")
                if rows is None:
                    carry = np.zeros_like(carry) if gstate is None else gstate
                else:
                    carry = carry.copy()
                    carry[rows] = 0 if gstate is None else gstate
            grads = {}
            if dx is not None:
                grads["Input"] = sum_to(dx.reshape(full[0].shape), ins["Input"].shape)
            if "State" in ins:
                grads["State"] = sum_to(carry.reshape(full[1].shape), ins["State"].shape)
            return grads, array_grads

        return result, backward
