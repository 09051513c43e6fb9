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

**Fused with the layer making the probabilities (a compile pass).** ``SoftmaxLayer ->
CrossEntropyLoss`` loses the gradient when the softmax saturates (``p[target]`` underflows to
0 for logits of 1e4); likewise ``LogisticSigmoid -> "Binary"``. So the compiler's fusion pass
(``netgraph.compile``; ``SoftmaxLayer``/``ElementwiseLayer.fused_with_consumer``) runs such a
pair as one :class:`FusedCrossEntropy` step, in every compile: its loss is computed from the
logits ``z`` (``log p = z - max z - log sum exp(z - max z)``, clipped at ``log eps`` as
above) and its gradient goes straight to the logits::

    "Index", "Probabilities"   dz = w * (p * sum(t) - t)     (t one-hot for "Index": p - onehot)
    "Binary"                   dz = w * (p - t)               w = dLoss * valid / count

plus, when the probabilities also feed other layers or outputs, the softmax (sigmoid)
gradient of theirs. The probabilities themselves are the producer's, bit for bit.
"""

from __future__ import annotations

import math
from typing import Any, Literal

import numpy as np

from netgraph.extend import (
    Layer,
    Params,
    ShapeError,
    Solver,
    register_default_loss,
    where,
)

__all__ = ["CrossEntropyLossLayer", "MeanSquaredLossLayer", "MeanAbsoluteLossLayer",
           "FusedCrossEntropy", "EPS"]

#: clip / offset of the cross-entropy logarithms (Wolfram's $MachineEpsilon)
EPS = 2.220446049250313e-16


class _Loss(Layer):
    """Shared machinery: ports, the per-example (true-length) mean and its gradient."""

    signature = "Input[...x], Target[...x] -> Loss[]:Real"
    pad_clean = True
    is_loss = True
    #: the loss is per position of all but the last (class) axis
    per_class_axis: bool = False

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
        e, grad = self._elementwise(x, t)
        loss, coef = self._mean(ctx, x, e)

        def backward(g):
            gx, gt = grad(coef(g))
            return ({"Input": gx} if gt is None else {"Input": gx, "Target": gt}), {}

        return {"Loss": loss}, backward

    def _mean(self, ctx: Any, x: np.ndarray, e: np.ndarray) -> tuple[np.ndarray, Any]:
        """``Loss = sum over positions of e * w`` (``w = valid / count``) for the Input ``x``
        with ``e`` per position, and ``coef(out_grads) = dLoss * w``, i.e. ``dLoss/de``."""
        rank = len(ctx.dims("Input"))
        lead = x.shape[:x.ndim - rank]
        pos = x.shape[len(lead):len(x.shape) - self.per_class_axis]
        w = self._weights(ctx, x, pos)
        axes = tuple(range(len(lead), len(lead) + len(pos)))
        loss = (e * w).sum(axis=axes) if axes else e * w

        def coef(g: dict) -> np.ndarray:
            gl = g["Loss"]
            return gl.reshape(gl.shape + (1,) * len(pos)) * w

        return loss, coef

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

    @property
    def signature(self) -> str:  # type: ignore[override]
        if self.params.form == "Index":  # probabilities (..., c), indices of one rank less
            return "Input[...x, c], Target[...x]:Index(c) -> Loss[]:Real"
        return _Loss.signature

    def rules(self, S: Solver, path: tuple, ports: dict[str, int]) -> dict:
        if self.params.form == "Binary":
            return {}
        tin, pin = ports["Input"], where(path, "Input")
        name = f"CrossEntropyLossLayer({self.params.form!r}) at {where(path)}"

        def rule() -> None:
            dims = S.dims(tin)
            if dims is not None and not dims:
                raise ShapeError(f"{pin} is a scalar, but {name} needs a vector of class "
                                 "probabilities")
            if dims and S.is_varying(dims[-1]):
                raise ShapeError(f"{pin} has shape {S.show(tin)!r}: the class dimension of "
                                 f"{name} must have a fixed size")

        S.rules.append(rule)
        return {}

    def _elementwise(self, x, t):
        form = self.params.form
        if form == "Index":
            at = _class_entries(t)
            pt = np.maximum(_class_rows(x)[at].reshape(t.shape), EPS)

            def grad_index(c):
                gx = np.zeros(x.shape, x.dtype)  # C order: its rows view is written
                _class_rows(gx)[at] = (-c / pt).reshape(-1)
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
            at, cc = _class_entries(t), c[..., None]
            dz = np.multiply(p, cc, out=np.empty(p.shape, np.result_type(p, cc)))  # C order
            c_each = np.broadcast_to(c, t.shape).reshape(-1)  # c may be one per example
            _class_rows(dz)[at] = (_class_rows(p)[at] - 1) * c_each
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


def _class_entries(t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The index, into :func:`_class_rows` of an array whose leading shape is that of the
    integer targets ``t``, of each position's target class: for reading and writing one
    entry per position (``np.take_along_axis`` and ``np.put_along_axis`` build index arrays
    for every axis)."""
    cols = t.reshape(-1)
    return np.arange(cols.size), cols


def _class_rows(a: np.ndarray) -> np.ndarray:
    """``a`` (classes last) as one row of classes per position: a view of a C-order array,
    so writing through it writes ``a``."""
    return a.reshape(-1, a.shape[-1])


class FusedCrossEntropy:
    """One compiled step for a layer making probabilities ``p`` from logits ``z`` (a
    ``SoftmaxLayer`` over the class axis, or ``ElementwiseLayer("LogisticSigmoid")``) and the
    ``CrossEntropyLossLayer`` reading them; see the module docstring. Ports: ``Input`` (the
    logits), ``Target`` -> ``Output`` (the probabilities, as the producer gives them) and
    ``Loss``. ``log_probabilities(z)`` is the producer's stable ``log p`` ("Index" and
    "Probabilities"); for "Binary" the loss is read off ``p`` (its logarithms are offset by
    ``eps``, so they need no clip)."""

    pad_clean = False  # the probabilities at padded positions are zeroed by the executor

    def __init__(self, producer: Layer, loss: CrossEntropyLossLayer,
                 log_probabilities: Any = None):
        self.producer, self.loss, self.log_probabilities = producer, loss, log_probabilities

    def __repr__(self) -> str:
        return f"FusedCrossEntropy({self.producer!r} -> {self.loss!r})"

    def index_data_hint(self, port: str) -> str:
        return self.loss.index_data_hint(port)

    def _elementwise(self, z: np.ndarray, p: np.ndarray, t: np.ndarray) -> np.ndarray:
        """The loss per position, ``e``, from the logits ``z`` (or ``p`` for "Binary")."""
        form = self.loss.params.form
        if form == "Binary":
            return self.loss._elementwise(p, t)[0]
        logp = np.maximum(self.log_probabilities(z), np.log(np.asarray(EPS, z.dtype)))
        if form == "Index":
            return -_class_rows(logp)[_class_entries(t)].reshape(t.shape)
        return -(t * logp).sum(-1)

    def forward(self, ins, arrays, ctx):
        z, t = ins["Input"], ins["Target"]
        outs, producer_back = self.producer.forward({"Input": z}, arrays, ctx)
        p = outs["Output"]
        loss, coef = self.loss._mean(ctx, z, self._elementwise(z, p, t))

        def backward(g):
            grads: dict[str, Any] = {"Input": None}
            if g.get("Loss") is not None:
                dz, others = self.loss._fused(p, t, coef(g))
                grads.update(others, Input=dz)
            if g.get("Output") is not None:  # other readers of the probabilities
                dz = producer_back({"Output": g["Output"]})[0]["Input"]
                grads["Input"] = dz if grads["Input"] is None else grads["Input"] + dz
            return grads, {}

        return {"Output": p, "Loss": loss}, backward


register_default_loss(MeanSquaredLossLayer)
