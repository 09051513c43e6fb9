"""NetMapOperator and NetFoldOperator.

``NetMapOperator(net)``: the inner net is lowered once on the whole sequence, its leading
axes ``(lead, T)`` — every layer accepts any leading axes — and the padded positions are
zeroed after it (their values were computed from zeros and are discarded).

``NetFoldOperator(net)``: a ``Scan`` over the time axis whose body is the inner net lowered
on one step, ``state' = net(Input = x_t, State = state)``. For varying lengths the body also
scans the ``(batch, T)`` mask and keeps the state where it is false,
``state' = Where(m_t, net(x_t, state), state)``, so the final state is each example's state
after its true last step.
"""

from __future__ import annotations

from ..builder import BOOL, FLOAT, elem_type
from ..lower import StepLowering, _mask_2d


def lower_map(c: StepLowering) -> dict[str, str]:
    outs = c.sub("Net", {p: c.x(p) for p in c.layer.input_names()}, c.lead + 1)
    return {p: outs[p] for p in c.layer.output_ports}


def lower_fold(c: StepLowering) -> dict[str, str]:
    g, L = c.g, c.lead
    sdims = list(c.dims("Output")[1:])
    x = c.x("Input")
    if c.has("State"):
        x, state = c.broadcast_lead([x, c.x("State")], [c.rank("Input"), len(sdims)])
    else:
        state = g.zeros(g.concat([g.dims(x, 0, L), g.i64(*sdims)], 0)) if sdims else \
            g.zeros(g.dims(x, 0, L))
    lens = c.lengths("Input")
    scanned = [x]
    if lens is not None:
        scanned.append(_mask_2d(g, c.meta("Input").keys[0], g.dim(x, L)))
    body = g.body("NetFoldOperator_step")
    s_in = body.add_input(body.fresh("state"), FLOAT, [None] * (L + len(sdims)))
    x_in = body.add_input(body.fresh("input"), elem_type(c.meta("Input").integer),
                          [None] * (L + c.rank("Input") - 1))
    out = c.sub("Net", {"Input": x_in, "State": s_in}, L, g=body)["Output"]
    new = out
    if lens is not None:
        m_in = body.add_input(body.fresh("valid"), BOOL, [None])
        m = body.unsqueeze(m_in, list(range(1, L + len(sdims))))
        new = body.op("Where", [m, out, s_in])
    shape = [None] * (L + len(sdims))
    for value, hint in ((new, "state_out"), (out, "output")):
        name = body.fresh(hint)
        body.op("Identity", [value], outputs=[name])
        body.add_output(name, FLOAT, shape)
    axes = [L] + ([1] if lens is not None else [])
    final, ys = g.op("Scan", [state] + scanned, 2, body=body.to_proto(),
                     num_scan_inputs=len(scanned), scan_input_axes=axes, scan_output_axes=[L])
    result = {"Output": ys}
    if "State" in c.step.outs:
        result["State"] = final
    return result
