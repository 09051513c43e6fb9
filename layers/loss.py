"""Loss layers: CrossEntropyLossLayer ("Index", "Probabilities", "Binary"), MeanSquaredLossLayer
and MeanAbsoluteLossLayer. Ports ``Input``, ``Target`` -> ``Loss`` (a "Real" per example).

Every loss is an elementwise (or per-position) loss ``e`` averaged over the positions of one
example; for a varying-length sequence over its own true steps only (padding never counts)::

    "Index"          e = -log(max(p[target], eps))              Target: indices, rank - 1
    "Probabilities"  e = -sum_c t_c log(max(p_c, eps))           over the last (class) axis
    "Binary"         e = -(t log(p + eps) + (1 - t) log(1 - p + eps))
    MeanSquared      e = (x - t)^2
    MeanAbsolute     e = |x - t|
    Loss = sum over valid positions of e / number of valid positions    (eps = 2.22e-16)

The batch mean is *not* taken here: the layer outputs one Loss per example and NetTrain
averages. Below the clip (``p < eps``) the gradient is taken as ``-1/eps`` (straight-through)
so that a confidently wrong prediction still gets pushed the right way.

**Softmax / sigmoid fusion (for the NetTrain author).** ``SoftmaxLayer -> CrossEntropyLoss``
loses the gradient when the softmax saturates (``p[target]`` underflows to 0 for logits of
1e4); likewise ``LogisticSigmoid -> "Binary"``. The backward closure of every cross-entropy
form carries ``backward.fused(out_grads) -> (grad wrt the *logits*, other input grads)``:
``w * (p * sum(t) - t)`` (``t`` one-hot for "Index", i.e. ``(p - onehot)/len`` for a unit
seed) or ``w * (p - t)`` for "Binary", with ``w = dLoss * valid / count``.
:func:`fuse_softmax_cross_entropy` patches a forward tape so that backward uses it: call it
between ``execute.forward`` and ``execute.backward`` when training.
"""

from __future__ import annotations

import math
from typing import Any, Literal

import numpy as np

from netgraph.errors import ShapeError
from netgraph.layer import Layer, Params, register_backward_pass, register_default_loss
from netgraph.shapes import Index
from netgraph.solver import Conflict, Solver, place

__all__ = ["CrossEntropyLossLayer", "MeanSquaredLossLayer", "MeanAbsoluteLossLayer",
           "fuse_softmax_cross_entropy", "EPS"]

#: clip / offset of the cross-entropy logarithms (Wolfram's $MachineEpsilon)
EPS = 2.220446049250313e-16


class _Loss(Layer):
    """Shared machinery: ports, the per-example (true-length) mean and its gradient."""

    inputs = ("Input", "Target")
    outputs = ("Loss",)
    pad_clean = True
    is_loss = True
    #: the loss is per position of all but the last (class) axis
    per_class_axis: bool = False

    def rules(self, S: Solver, path: tuple, ports: dict[str, int]) -> dict:
        S.constrain(ports["Loss"], (), "Real", place(path, "Loss"), "a loss is a real scalar")
        self._tie(S, path, ports)
        return {}

    def _tie(self, S: Solver, path: tuple, ports: dict[str, int]) -> None:
        S.unify(ports["Input"], ports["Target"], place(path, "Input"), place(path, "Target"))

    def _weights(self, ctx: Any, x: np.ndarray, pos: tuple) -> np.ndarray:
        """``valid / count`` per position of ``x`` (the Input; positions ``pos`` follow the
        leading axes, then maybe the class axis), broadcastable to ``x`` less its class
        axis: along every varying axis only an example's true lengths count."""
        valid = ctx.valid_positions("Input", x, axes=range(len(pos)))
        if valid is None:
            return np.asarray(1.0 / max(math.prod(pos), 1), dtype=x.dtype)
        if self.per_class_axis:
            valid = valid[..., 0]
        valid = np.broadcast_to(valid, valid.shape[:valid.ndim - len(pos)] + pos)
        pos_axes = tuple(range(valid.ndim - len(pos), valid.ndim))
        return (valid / valid.sum(axis=pos_axes, keepdims=True)).astype(x.dtype)

    def forward(self, ins, arrays, ctx):
        x, t = ins["Input"], ins["Target"]
        rank = len(ctx.dims("Input"))
        lead = x.shape[:x.ndim - rank]
        pos = x.shape[len(lead):len(x.shape) - self.per_class_axis]
        w = self._weights(ctx, x, pos)
        e, grad = self._elementwise(x, t)
        axes = tuple(range(len(lead), len(lead) + len(pos)))
        loss = (e * w).sum(axis=axes) if axes else e * w

        def coef(g: dict) -> np.ndarray:
            gl = g["Loss"]
            return gl.reshape(gl.shape + (1,) * len(pos)) * w

        def backward(g):
            c = coef(g)
            gx, gt = grad(c)
            return ({"Input": gx} if gt is None else {"Input": gx, "Target": gt}), {}

        fused = getattr(self, "_fused", None)
        if fused is not None:
            backward.fused = lambda g: fused(x, t, coef(g))  # type: ignore[attr-defined]
        return {"Loss": loss}, backward

    def _elementwise(self, x: np.ndarray, t: np.ndarray):
        """``e`` per position and ``grad(c) -> (dInput, dTarget or None)`` for ``c = dL/de``."""
        raise NotImplementedError


class CrossEntropyParams(Params):
    form: Literal["Index", "Probabilities", "Binary"]


class CrossEntropyLossLayer(_Loss):
    """``CrossEntropyLossLayer(form)``, ``form`` one of "Index", "Probabilities", "Binary".

    "Index": Input = probabilities ``(..., c)``, Target = indices ``0..c-1`` (``Index(c)``, one
    rank less), ``e = -log(max(p[target], eps))``. "Probabilities": Input and Target both
    ``(..., c)``, ``e = -sum_c t_c log(max(p_c, eps))``. "Binary": Input and Target of one
    shape (scalars allowed) in [0, 1], ``e = -(t log(p + eps) + (1 - t) log(1 - p + eps))``.
    Loss = mean of ``e`` over an example's positions (true steps of a sequence).
    """

    Params = CrossEntropyParams

    def __init__(self, form: str | None = None, **ports: Any):
        super().__init__({"form": form}, ports)

    @property
    def per_class_axis(self) -> bool:  # type: ignore[override]
        return self.params.form != "Binary"

    def index_data_hint(self, port: str) -> str:
        if self.params.form == "Index" and port == "Target":
            return ('or use CrossEntropyLossLayer("Probabilities"), whose Target takes such '
                    'vectors (in NetTrain: loss=CrossEntropyLossLayer("Probabilities"))')
        return ""

    def _tie(self, S: Solver, path: tuple, ports: dict[str, int]) -> None:
        form = self.params.form
        tin, tt = ports["Input"], ports["Target"]
        pin = place(path, "Input")
        if form == "Binary":
            super()._tie(S, path, ports)
            return
        name = f"CrossEntropyLossLayer({form!r}) at {place(path)}"
        if form == "Probabilities":
            super()._tie(S, path, ports)
            classes = None
        else:
            classes = S.new_dim(origin=name)
            S.relate(tin, tt, suffix=(classes,), same_elem=False,
                     places=(pin, place(path, "Target")),
                     what=f"{name} takes probabilities (..., c) and indices of one rank less")

        def rule() -> None:
            dims = S.dims(tin)
            if dims is not None and not dims:
                raise ShapeError(f"{pin} is a scalar, but {name} needs a vector of class "
                                 "probabilities")
            if dims and S.is_varying(dims[-1]):
                raise ShapeError(f"{pin} has shape {S.show(tin)!r}: the class dimension of "
                                 f"{name} must have a fixed size")
            if classes is None:
                return
            elem, c = S.elem(tt), S.size(classes)
            try:
                if c is not None:
                    S.set_elem(tt, Index(c))
                elif isinstance(elem, Index):
                    S.set_size(classes, elem.n, place(path, "Target"))
            except Conflict as err:
                raise ShapeError(f"{place(path, 'Target')} has shape {S.show(tt)!r}, "
                                 f"inconsistent with {pin} of shape {S.show(tin)!r}: "
                                 f"{err}") from None

        S.rules.append(rule)

    def _elementwise(self, x, t):
        form = self.params.form
        if form == "Index":
            idx = t[..., None]
            pt = np.maximum(np.take_along_axis(x, idx, axis=-1)[..., 0], EPS)

            def grad_index(c):
                gx = np.zeros_like(x)
                np.put_along_axis(gx, idx, (-c / pt)[..., None], axis=-1)
                return gx, None

            return -np.log(pt), grad_index
        if form == "Probabilities":
            pc = np.maximum(x, EPS)
            logp = np.log(pc)

            def grad_prob(c):
                c = c[..., None]
                return -c * t / pc, -c * logp

            return -(t * logp).sum(-1), grad_prob
        lp, lq = np.log(x + EPS), np.log(1 - x + EPS)

        def grad_binary(c):
            return -c * (t / (x + EPS) - (1 - t) / (1 - x + EPS)), -c * (lp - lq)

        return -(t * lp + (1 - t) * lq), grad_binary

    def _fused(self, p: np.ndarray, t: np.ndarray, c: np.ndarray) -> tuple[np.ndarray, dict]:
        """Gradient wrt the logits ``z`` of ``p = softmax(z)`` (last axis) or, for "Binary",
        of ``p = sigmoid(z)``: ``c * (p * sum(t) - t)`` with ``t`` one-hot for "Index", and
        ``c * (p - t)`` for "Binary"; plus the other input gradients."""
        form = self.params.form
        if form == "Index":
            idx, cc = t[..., None], c[..., None]
            dz = p * cc
            np.put_along_axis(dz, idx, (np.take_along_axis(p, idx, -1) - 1) * cc, axis=-1)
            return dz, {}
        if form == "Binary":
            return c * (p - t), {"Target": -c * (np.log(p + EPS) - np.log(1 - p + EPS))}
        cc = c[..., None]
        dz = cc * (p * t.sum(-1, keepdims=True) - t)
        return dz, {"Target": -cc * np.log(np.maximum(p, EPS))}


class MeanSquaredLossLayer(_Loss):
    """``Loss = mean over positions of (Input - Target)^2`` (true steps of a sequence)."""

    def __init__(self, **ports: Any):
        super().__init__({}, ports)

    def _elementwise(self, x, t):
        d = x - t
        return d * d, lambda c: (2 * c * d, -2 * c * d)


class MeanAbsoluteLossLayer(_Loss):
    """``Loss = mean over positions of |Input - Target|`` (true steps of a sequence)."""

    def __init__(self, **ports: Any):
        super().__init__({}, ports)

    def _elementwise(self, x, t):
        s = np.sign(x - t)
        return np.abs(x - t), lambda c: (c * s, -c * s)


def fuse_softmax_cross_entropy(plan: Any, tape: Any) -> int:
    """Make ``execute.backward(plan, tape, ...)`` send the fused gradient straight to the
    logits for every ``SoftmaxLayer`` over the last axis whose output feeds the ``Input`` of a
    ``CrossEntropyLossLayer`` ("Index" or "Probabilities"): ``c * (p - onehot)``, and every
    ``ElementwiseLayer("LogisticSigmoid")`` feeding a "Binary" one: ``c * (p - t)``. Other
    consumers of the probabilities keep their exact gradients. Patches ``tape.backs`` in place
    (call it once per forward tape, before backward); returns the number of fused pairs."""
    producers = {}
    for k, step in enumerate(plan.steps):
        # the producers that ask for a cross-entropy loss (Layer.default_loss) are those whose
        # gradient fuses with it: a softmax over the last axis ("Index"), a logistic sigmoid
        wanted = step.layer.default_loss("Output") if "Output" in step.outs else None
        if isinstance(wanted, CrossEntropyLossLayer):
            forms = ("Binary",) if wanted.params.form == "Binary" else ("Index", "Probabilities")
            producers[step.outs["Output"].slot] = (k, forms)
    fused = 0
    for k, step in enumerate(plan.steps):
        if not isinstance(step.layer, CrossEntropyLossLayer):
            continue
        s, forms = producers.get(step.ins["Input"].slot, (None, ()))
        if step.layer.params.form in forms:
            _patch(tape, s, k)
            fused += 1
    return fused


def _patch(tape: Any, s: int, k: int) -> None:
    prob_back, loss_back = tape.backs[s], tape.backs[k]
    stash: list[np.ndarray] = []

    def loss_backward(g):
        dz, grads = loss_back.fused(g)
        stash.append(dz)
        # a zero seed keeps the producer's step alive in backward; the real gradient is stashed
        return {**grads, "Input": np.zeros_like(dz)}, {}

    def prob_backward(g):
        grads, arrays = prob_back(g)
        while stash:
            grads = {**grads, "Input": grads["Input"] + stash.pop()}
        return grads, arrays

    tape.backs[s], tape.backs[k] = prob_backward, loss_backward


def _fusion_pass(plan: Any, tape: Any) -> int:
    return fuse_softmax_cross_entropy(plan, tape)  # looked up when called (tests spy on it)


register_backward_pass(_fusion_pass)
register_default_loss(MeanSquaredLossLayer)
