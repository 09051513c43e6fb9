"""NetBidirectionalOperator: a sequence net run forwards and, on the reversed sequence,
backwards, joined per position.

With ``F`` the forward net, ``G`` the backward net and ``rev`` the reversal of each example's
true-length part (padding stays at the end; ``rev`` is its own inverse)::

    f = F(x),   b = rev(G(rev(x)))
    Output_t = [f_t, b_t]   ("Catenate", along the last axis)   or   f_t + b_t   ("Total")

so ``b_t`` has read ``x_t .. x_{T-1}`` (for a recurrent ``G``). Backward::

    ∂L/∂x = ∂F(∂L/∂f) + rev(∂G(rev(∂L/∂b)))

The default backward net is ``net`` itself as a value: nets are immutable, so its arrays
start as copies of ``net``'s (uninitialized where those are) and are independent from then
on; ``NetInitialize`` draws each direction's arrays separately. (An array of ``net`` given
as ``NetSharedArray(name)`` stays one array, shared by both directions: that is what the
name says.)
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np

from netgraph.extend import (
    Automatic,
    Conflict,
    Layer,
    Net,
    NetError,
    Params,
    ShapeError,
    Solver,
    where,
)

from ._ops import lead_rank, reverse_sequences

__all__ = ["NetBidirectionalOperator"]

_PARTS = ("ForwardNet", "BackwardNet")


class BidirectionalParams(Params):
    aggregation: Literal["Catenate", "Total"] = "Catenate"


def _port(net: Net, ports: tuple[str, ...], side: str, part: str) -> str:
    if len(ports) != 1:
        raise NetError(f"NetBidirectionalOperator: the {part} must have one {side} port (a "
                       f"sequence), got {list(ports)}")
    return ports[0]


class NetBidirectionalOperator(Layer):
    """``NetBidirectionalOperator(net, aggregation="Catenate", *, backward_net=Automatic)``:
    ``net`` (one input, one output: a sequence of the input's length, e.g. a recurrent layer)
    over the sequence and ``backward_net`` over each example's true-length reversal, joined
    per position (see the module docstring). Parts ``"ForwardNet"`` and ``"BackwardNet"``."""

    Params = BidirectionalParams
    sub_nets = _PARTS
    pad_clean = True

    def __init__(self, net: Net, aggregation: str = "Catenate", *, backward_net: Any = Automatic,
                 **ports):
        if backward_net is None or backward_net is Automatic:
            backward_net = net
        for name, value in (("net", net), ("backward_net", backward_net)):
            if not isinstance(value, Net):
                raise NetError(f"NetBidirectionalOperator: parameter {name!r} must be a net (a "
                               f"layer, NetGraph or NetChain), got {type(value).__name__}")
        super().__init__({"aggregation": aggregation}, ports,
                         children={"ForwardNet": net, "BackwardNet": backward_net})

    def validate(self) -> None:
        self._ends()

    def _ends(self) -> dict[str, tuple[str, str]]:
        """Part -> (its input port, its output port)."""
        ends = {}
        for part in _PARTS:
            net = self.child(part)
            ends[part] = (_port(net, net.input_ports, "input", part),
                          _port(net, net.output_ports, "output", part))
        return ends

    def params_text(self) -> str:
        kinds = [type(self.child(p)).__name__ for p in _PARTS]
        return f"{kinds[0]}, {kinds[1]}, aggregation={self.params.aggregation!r}"

    # --------------------------------------------------------------- inference
    def rules(self, S: Solver, path: tuple, ports: dict[str, int]) -> dict:
        me = f"NetBidirectionalOperator at {where(path)}"
        length = S.new_dim(varying=True, origin=me)
        tin, pin = ports["Input"], where(path, "Input")
        S.relate(tin, S.new_type(), prefix=(length,), places=(pin, pin),
                 what=f"{me} runs over a sequence")
        outs = []
        for part, (i, o) in self._ends().items():
            sub, net = path + (part,), self.child(part)
            S.unify(tin, S.port(sub, i), pin, where(sub, i))
            t, p = S.port(sub, net.output_key(o)), where(sub, o)
            S.relate(t, S.new_type(), prefix=(length,), places=(p, p),
                     what=f"{me} needs the {part} to give a sequence as long as its input")
            outs.append((t, p))
        to, pout = ports["Output"], where(path, "Output")
        if self.params.aggregation == "Total":
            S.unify(outs[0][0], outs[1][0], outs[0][1], outs[1][1])
            S.unify(outs[0][0], to, outs[0][1], pout)
        else:
            S.rules.append(lambda: self._catenate_rule(S, outs, to, pout, me))
        return {}

    @staticmethod
    def _catenate_rule(S: Solver, outs: list, to: int, pout: str, me: str) -> None:
        """Output = the two outputs joined along their last axis (all other dims agree)."""
        (tf, pf), (tb, pb) = outs
        df, db = S.dims(tf), S.dims(tb)
        if df is None or db is None:
            return
        if len(df) != len(db) or len(df) < 2:
            raise ShapeError(f"{me} catenates the two directions per position along their last "
                             "axis, so each must give a sequence of vectors (or arrays, of "
                             f"one rank), one per position of the Input: {pf} has shape "
                             f"{S.show(tf)!r}, {pb} has shape {S.show(tb)!r}")
        for a, b in zip(df[:-1], db[:-1]):
            S.equal_sizes(a, b, pf, pb)
        given = S.dims(to)  # a given Output of rank 0 ("Real") is refused by constrain below
        last = given[-1] if given else S.new_dim()
        S.constrain(to, df[:-1] + (last,), None, pout, f"{me} catenates the two directions")
        a, b, c = S.size(df[-1]), S.size(db[-1]), S.size(last)
        try:
            if a is not None and b is not None:
                S.set_size(last, a + b, f"{me} ({a} + {b})")
            elif c is not None and (a is None) != (b is None):
                known, other = (a, db[-1]) if a is not None else (b, df[-1])
                if c - known < 1:
                    raise Conflict(f"{pout} has size {c} along the last axis, one direction "
                                   f"already {known}")
                S.set_size(other, c - known, f"{me} ({c} - {known})")
        except Conflict as e:
            raise ShapeError(f"{me}: {pf} {S.show(tf)!r} and {pb} {S.show(tb)!r} do not add up "
                             f"to {pout} {S.show(to)!r}: {e}") from None

    # --------------------------------------------------------------- computing
    def forward(self, ins, arrays, ctx):
        x = ins["Input"]
        axis = lead_rank(x, len(ctx.dims("Input")))
        lens = ctx.lengths("Input")
        (fi, fo), (bi, bo) = self._ends().values()
        f_outs, f_back = ctx.run_sub("ForwardNet", {fi: x})
        b_outs, b_back = ctx.run_sub("BackwardNet", {bi: reverse_sequences(x, axis, lens)})
        f, b = f_outs[fo], reverse_sequences(b_outs[bo], axis, lens)
        total = self.params.aggregation == "Total"
        y = f + b if total else np.concatenate([f, b], axis=-1)

        def backward(g):
            gy = g["Output"]
            gf, gb = (gy, gy) if total else (gy[..., :f.shape[-1]], gy[..., f.shape[-1]:])
            f_in, f_arrays = f_back({fo: gf})
            b_in, b_arrays = b_back({bo: reverse_sequences(gb, axis, lens)})
            parts = [f_in.get(fi)]
            if b_in.get(bi) is not None:
                parts.append(reverse_sequences(b_in[bi], axis, lens))
            parts = [p for p in parts if p is not None]
            gx = None if not parts else sum(parts[1:], parts[0])
            return {"Input": gx}, {**f_arrays, **b_arrays}

        return {"Output": y}, backward
