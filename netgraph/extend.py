"""The public API for writing a layer: everything ``netgraph.layers`` (or your own layer)
may import from the core. See ``docs/extending.md`` for a walk-through and a worked example.

A layer is a subclass of :class:`Layer` with

* ``Params`` — a pydantic model (subclass :class:`Params`) of its hyperparameters; use the
  field types :data:`Int`, :data:`Real`, :data:`Bool` to take NumPy scalars too;
* its ports (``inputs``, ``outputs``, ``optional_inputs``, ``optional_outputs``,
  ``hidden_outputs``) and arrays (``array_init``: name -> "weights" | "zeros" | "ones"); a
  constructor that passes its keyword options on to ``Layer.__init__`` (``**ports``) takes
  the arrays as options too (``Weights=W`` or ``Weights=NetSharedArray(name)``), checked
  there; ``forward`` receives a shared array like any other;
* its shape rules: ``rules(S, path, ports) -> {array name: dims}`` on the :class:`Solver`;
* ``forward(ins, arrays, ctx) -> (outputs, backward)`` with ``ctx`` a :class:`StepContext`
  and ``backward(out_grads) -> (input_grads, array_grads)``.

Hooks a layer may override: ``validate()`` (checks beyond ``Params``), ``input_names()`` /
``output_names()`` (ports that depend on parameters or sub-nets), ``default_loss(port)``,
``output_source(port)``, ``index_data_hint(port)``, ``params_text()`` (display),
``fused_with_consumer(port, consumer, consumer_port, meta)`` (one step computing this layer
and the layer reading its output, for the compiler's fusion pass: softmax + cross-entropy). A layer
holding sub-nets names them in ``sub_nets``, passes them to ``Layer.__init__`` as
``children=``, reads them with ``child(name)``; ``children()``/``with_children()`` need no
override. ``derive(**attrs)`` is the copy a method returns instead of changing a net;
``cached(key, compute)`` memoizes what is derived from an (immutable) net;
``output_key(port)`` is the solver key of an output sharing its name with an input.

Defining a ``Layer`` subclass at module level registers it by class name (files name layers
through that registry); :func:`register_shorthand` makes NetChain/NetGraph entries stand for
layers; :func:`register_default_loss` names the loss NetTrain attaches by default.
"""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np

from .blas import batch_slices, matmul, parallel_map, single_threaded
from .errors import (
    InputDataError,
    NetError,
    PortError,
    ShapeError,
    SpecificationError,
    where,
)
from .graph import (
    GRAPH_IN,
    GRAPH_OUT,
    NetChain,
    NetGraph,
    register_shorthand,
    register_shorthand_hint,
)
from .layer import (
    Backward,
    Bool,
    Int,
    Layer,
    Params,
    Real,
    layer_classes,
    register_default_loss,
)
from .net import Net
from .ports import NetPort
from .scratch import empty as scratch_array
from .shapes import Automatic, Index, Varying
from .solver import Conflict, Solver

__all__ = [
    # the base classes and the field types of hyperparameters
    "Layer", "Params", "Int", "Real", "Bool", "Backward", "Net",
    # shape rules
    "Solver", "Conflict", "where", "Automatic", "Index", "Varying",
    # the context of forward
    "StepContext",
    # nets a layer builds or inspects (a scoring net, a sub-net's structure)
    "NetGraph", "NetChain", "NetPort", "GRAPH_IN", "GRAPH_OUT",
    # errors
    "NetError", "ShapeError", "PortError", "InputDataError", "SpecificationError",
    # registration
    "register_shorthand", "register_shorthand_hint", "register_default_loss",
    "layer_classes",
    # products with BLAS threads chosen for the size of the work (netgraph.blas)
    "matmul", "parallel_map", "batch_slices", "single_threaded",
    # np.empty in recycled memory, for a layer's large temporaries (netgraph.scratch)
    "scratch_array",
]


class StepContext(Protocol):
    """What a layer's ``forward(ins, arrays, ctx)`` may ask ``ctx``.

    Values carry leading axes: a port of example shape ``(3, 5)`` receives ``(..., 3, 5)``
    (``(B, 3, 5)`` at top level; a sub-net such as a custom scoring net sees more). Lengths
    are per example, keyed to the first leading axis. Every value and gradient handed to a
    layer is exactly 0 at padded positions.
    """

    @property
    def training(self) -> bool:
        """True while NetTrain runs the net (dropout is on)."""

    @property
    def rng(self) -> np.random.Generator:
        """The random generator of this run (dropout masks)."""

    @property
    def dtype(self) -> Any:
        """The dtype of the run's real values (``np.float32`` or ``np.float64``)."""

    @property
    def path(self) -> tuple:
        """The layer's node path in the net being run (for messages: ``where(ctx.path)``)."""

    def dims(self, port: str) -> tuple[int | None, ...]:
        """The static example dims of ``port`` (``None`` for a varying length)."""

    def lengths(self, port: str, axis: int = 0) -> np.ndarray | None:
        """Per-example lengths of varying dim ``axis`` of ``port``; None when it is fixed."""

    def set_lengths(self, port: str, lengths: np.ndarray, axis: int = 0) -> None:
        """Declare the per-example lengths of a varying output dim that the layer itself
        determines (SequenceMost: the input's lengths - 1). Lengths that input data already
        gave for a tied input must agree, else ``InputDataError``."""

    def valid_mask(self, port: str, size: int, axis: int = 0) -> np.ndarray | None:
        """``(B, size)`` bool: the valid positions of varying dim ``axis`` of ``port`` per
        example; None when nothing there is padded (the dim is fixed, or every example is
        at least ``size`` long)."""

    def valid_positions(self, port: str, x: np.ndarray, axes: Any = None) -> np.ndarray | None:
        """Bool mask broadcastable to ``x`` (a value of ``port``, any leading axes) of its
        valid positions along every varying axis (or those in ``axes``), each by its own
        lengths; None when nothing there is padded."""

    def needs_grad(self, port: str) -> bool:
        """False for an integer-valued input, which gets no gradient."""

    def run_sub(self, name: str, inputs: dict[str, np.ndarray]) -> tuple[dict, Any]:
        """Run sub-net ``name`` on ``inputs`` (any leading axes); returns its outputs and
        ``backward(out_grads) -> (input_grads, array_grads)`` (array grads keyed by full
        path: return them from the layer's backward as they are)."""

    def sub_array(self, path: tuple) -> tuple[np.ndarray, tuple]:
        """The array at ``path`` inside the layer's sub-nets, e.g. ``("ScoringNet", "Linear",
        "Weights")``, and the key under which the layer's backward returns its gradient (for
        fast paths that compute a sub-net directly)."""

