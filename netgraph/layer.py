"""``Layer``: the base of every primitive layer.

A layer is an immutable value holding pydantic-validated hyperparameters (``Params``), port
specs and arrays. Subclasses declare their ports and arrays, add shape rules in ``rules`` and
compute in ``forward``, which returns the outputs and a ``backward`` closure::

    def forward(self, ins, arrays, ctx):
        y = ...
        def backward(out_grads):          # port -> gradient (None: no gradient flows there)
            return {"Input": dx}, {"Weights": dW}
        return {"Output": y}, backward

Arrays of a batch carry *leading axes*: a port of example shape ``(3, 5)`` sees data of shape
``(..., 3, 5)``; every layer works on the trailing example dims and broadcasts the rest.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any, ClassVar

import numpy as np
from pydantic import BaseModel, ConfigDict, ValidationError

from .errors import NetError, ShapeError
from .net import Net
from .shapes import Automatic, is_automatic, parse_spec
from .solver import Conflict, Solver, place

__all__ = ["Layer", "Params", "Backward", "layer_classes", "register_default_loss", "default_loss",
           "register_backward_pass", "backward_passes"]

Backward = Callable[[dict[str, Any]], tuple[dict[str, Any], dict[Any, Any]]]


class Params(BaseModel):
    """Base of layer hyperparameter models: frozen, no unknown fields, strict types.

    Strict: a value is never coerced, so ``GatedRecurrentLayer("4")``, ``(4.0)`` and
    ``(True)`` are errors, not a layer of size 4 or 1; an ``int`` field takes ints only, a
    ``float`` field ints and floats (never a bool), a ``bool`` field ``True``/``False``, a
    ``str`` field strings. NumPy scalars are numbers: use the ``Int``/``Real`` field types of
    ``netgraph.layers._ops`` (or a before-validator) to take them.
    """

    model_config = ConfigDict(frozen=True, extra="forbid", arbitrary_types_allowed=True,
                              strict=True)


def _validation_message(cls: type, err: ValidationError) -> str:
    parts = []
    for e in err.errors():
        loc = ".".join(str(x) for x in e["loc"]) or "arguments"
        # pydantic's wording: "Value error, ..." for a ValueError, "Input should be ..." (which
        # reads like the port "Input") for a type error
        msg = e["msg"].removeprefix("Value error, ").replace("Input should be", "expected", 1)
        parts.append(f"parameter {loc!r}: {msg} (got {e.get('input')!r})")
    return f"{cls.__name__}: invalid " + "; ".join(parts)


class Layer(Net):
    """Base class of primitive layers (see the module docstring).

    Defining a subclass registers it (see :func:`layer_classes`): that is how files name
    layers, without the core importing any."""

    Params: ClassVar[type[Params]] = Params
    inputs: ClassVar[tuple[str, ...]] = ("Input",)
    outputs: ClassVar[tuple[str, ...]] = ("Output",)
    optional_inputs: ClassVar[tuple[str, ...]] = ()
    optional_outputs: ClassVar[tuple[str, ...]] = ()
    #: outputs always computed and readable as interior values, never graph ports by default
    hidden_outputs: ClassVar[tuple[str, ...]] = ()
    #: array name -> initializer: "weights" (Xavier), "zeros" or "ones"
    array_init: ClassVar[dict[str, str]] = {}
    #: True when outputs (and input gradients) are exactly zero at padded positions whenever
    #: inputs (and output gradients) are; the executor zeroes them otherwise
    pad_clean: ClassVar[bool] = False
    #: outputs that hold real numbers whatever their inputs hold, so they never carry indices
    #: (a layer that passes its input through, e.g. SequenceLastLayer, leaves its out)
    real_outputs: ClassVar[tuple[str, ...]] = ()
    #: True for loss layers (ports ``Input``, ``Target`` -> ``Loss``): NetTrain uses an output
    #: such a layer produces as a loss as it is
    is_loss: ClassVar[bool] = False

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if not cls.__name__.startswith("_") and "<locals>" not in cls.__qualname__:
            _CLASSES.setdefault(cls.__name__, cls)

    def __init__(self, params: dict[str, Any] | None = None, ports: dict[str, Any] | None = None):
        params = {k: (None if is_automatic(v) else v) for k, v in (params or {}).items()}
        try:
            model = self.Params(**params)
        except ValidationError as e:
            raise NetError(_validation_message(type(self), e)) from None
        except (TypeError, ValueError) as e:
            raise NetError(f"{type(self).__name__}: invalid parameters: {e}") from None
        self._set(params=model, _enabled_in=frozenset(), _enabled_out=frozenset(), _cache={},
                  _array_values={n: None for n in self.array_names_for(model)})
        known = set(self._all_port_names())
        specs = {}
        for name, spec in (ports or {}).items():
            if name not in known:
                raise NetError(f"{type(self).__name__}: unknown parameter or port {name!r}; "
                               f"ports are {sorted(known)}")
            parse_spec(spec)  # validates
            specs[name] = spec
        self._set(_specs=specs, _user_specs=specs)
        self._post_init()
        self._check_construction()

    def _post_init(self) -> None:
        """Hook for subclasses to check hyperparameter combinations."""

    def _check_construction(self) -> None:
        """Run inference once on the bare layer so inconsistent port specs fail early."""
        inferred = self._infer()
        self.__dict__.update(inferred.__dict__)
        self._set(_cache=dict(inferred._cache))  # the solution, solved once

    @classmethod
    def _from_parts(cls, params: Params, user_specs: dict[str, Any], enabled_in: Any,
                    enabled_out: Any, arrays: dict[str, np.ndarray | None],
                    children: dict[str, Net], *, infer: bool = True) -> Layer:
        """Rebuild a layer from its stored parts without running the user constructor (used
        by ``netgraph.io.load``): set the state, attach the sub-nets, run the hyperparameter
        check and infer shapes as construction does. The caller validates the parts.
        ``infer=False`` skips inference (the loader infers once, for the whole tree)."""
        layer = object.__new__(cls)
        layer._set(params=params, _enabled_in=frozenset(enabled_in),
                   _enabled_out=frozenset(enabled_out), _cache={}, _array_values=dict(arrays),
                   _specs=dict(user_specs), _user_specs=dict(user_specs))
        if children:
            layer = layer._with_children(children)
        layer._post_init()
        return layer._infer() if infer else layer

    # --------------------------------------------------------------- ports
    def input_names(self) -> tuple[str, ...]:
        """Required input ports (subclasses with a variable arity override this)."""
        return self.inputs

    def _all_port_names(self) -> tuple[str, ...]:
        return (self.input_names() + self.outputs + self.optional_inputs + self.optional_outputs
                + self.hidden_outputs)

    @property
    def input_ports(self) -> tuple[str, ...]:
        return self.input_names() + tuple(p for p in self.optional_inputs if p in self._enabled_in)

    @property
    def output_ports(self) -> tuple[str, ...]:
        return self.outputs + tuple(p for p in self.optional_outputs if p in self._enabled_out)

    def _enable(self, inputs: set[str] = frozenset(), outputs: set[str] = frozenset()) -> Layer:
        """A copy with optional ports switched on (done by NetGraph when they are connected)."""
        ins = self._enabled_in | (set(inputs) & set(self.optional_inputs))
        outs = self._enabled_out | (set(outputs) & set(self.optional_outputs))
        if ins == self._enabled_in and outs == self._enabled_out:
            return self
        return self._copy(_enabled_in=frozenset(ins), _enabled_out=frozenset(outs))

    # -------------------------------------------------------------- arrays
    @classmethod
    def array_names_for(cls, params: Params) -> tuple[str, ...]:
        return tuple(cls.array_init)

    def _arrays(self) -> dict[str, np.ndarray | None]:
        return dict(self._array_values)

    def _with_arrays(self, arrays: dict[str, np.ndarray | None]) -> Layer:
        values = dict(self._array_values)
        for k, v in arrays.items():
            if v is not None:
                v = np.array(v, dtype=np.float32)
                v.flags.writeable = False
            values[k] = v
        return self._copy(_array_values=values)

    def _with_params(self, **changes: Any) -> Layer:
        data = self.params.model_dump()
        data.update(changes)
        try:
            model = self.Params(**data)
        except ValidationError as e:
            raise NetError(_validation_message(type(self), e)) from None
        new = self._copy(params=model)
        names = self.array_names_for(model)
        new._set(_array_values={n: self._array_values.get(n) for n in names})
        new._post_init()  # the same checks of parameter combinations as the constructor
        return new

    # ----------------------------------------------------------- inference
    def rules(self, S: Solver, path: tuple, ports: dict[str, int]) -> dict[str, tuple[int, ...]]:
        """Add this layer's shape rules; return array name -> dims (solver dim ids)."""
        return {}

    def _port_keys(self) -> list[str]:
        """Solver keys of every port: the port name, or ``"out:" + name`` for an output that
        shares its name with an input (a recurrent layer's final ``State``)."""
        return list(self.input_ports) + [self._out_key(p) for p in
                                         self.output_ports + self.hidden_outputs]

    def _constrain(self, S: Solver, path: tuple) -> dict[str, int]:
        ports = {n: S.port(path, n) for n in self._port_keys()}
        for name, spec in self._user_specs.items():
            if name in ports and spec is not Automatic:
                origin = f"{name}={spec!r} of {type(self).__name__} at {place(path, name)}"
                S.user_spec(ports[name], spec, name not in self.input_ports, place(path, name),
                            origin)
        for name, child in self._children().items():
            child._constrain(S, path + (name,))
        array_dims = self.rules(S, path, ports)
        for name in self.real_outputs:
            key = self._out_key(name)
            if key in ports:
                origin = f"the real-valued {name!r} of {type(self).__name__} at {place(path)}"
                S.unify(ports[key], S.new_type(elem="Real", origin=origin), place(path, name),
                        origin)
        for name, dims in array_dims.items():
            S.arrays[(path, name)] = dims
            value = self._array_values.get(name)
            if value is not None:
                self._constrain_array(S, path, name, dims, value.shape)
        return ports

    def _constrain_array(self, S: Solver, path: tuple, name: str, dims: tuple,
                         shape: tuple) -> None:
        where = f"array {name!r} of {type(self).__name__} at {place(path, None)}"
        if len(dims) != len(shape):
            raise ShapeError(f"{where} has shape {shape} but the layer needs rank {len(dims)}")
        for d, n in zip(dims, shape):
            try:
                S.set_size(d, n, f"the shape {shape} of {where}")
            except Conflict as c:
                raise ShapeError(f"{where} has shape {shape}, inconsistent with the layer's "
                                 f"ports: {c}") from None

    def _specialize(self, S: Solver, path: tuple) -> Layer:
        specs = {n: S.show(S.port(path, n)) for n in self._port_keys()}
        new = self._copy(_specs=specs)
        kids = self._children()
        if kids:
            new = new._with_children({k: c._specialize(S, path + (k,)) for k, c in kids.items()})
            new._set(_specs=specs)
        return new

    # ------------------------------------------------------------ training
    def default_loss(self, port: str) -> Net | None:
        """The loss NetTrain attaches to output ``port`` when this layer produces it (e.g. a
        softmax over the last axis asks for ``CrossEntropyLossLayer("Index")``); ``None``: no
        preference (the registered :func:`default_loss`)."""
        return None

    def output_source(self, port: str) -> tuple[Net, str] | None:
        """``(sub-net, its port)`` when output ``port`` is that sub-net's output applied
        position by position (NetMapOperator); NetTrain then picks the loss the sub-net's
        producer asks for. ``None``: this layer computes ``port`` itself."""
        return None

    def index_data_hint(self, port: str) -> str:
        """Advice for a user who gave one-hot (or probability) vectors to index port ``port``,
        e.g. a layer that also takes such vectors; ``""`` for none."""
        return ""

    # ----------------------------------------------------------- compiling
    def _emit(self, plan: Any, sol: Any, path: tuple, in_slots: dict[str, Any]) -> dict:
        return plan.add_step(self, path, in_slots, sol)

    def forward(self, ins: dict[str, np.ndarray], arrays: dict[str, np.ndarray],
                ctx: Any) -> tuple[dict[str, np.ndarray], Backward]:
        raise NotImplementedError

    # ------------------------------------------------------------- display
    def _param_text(self) -> str:
        parts = []
        for k, v in self.params.model_dump().items():
            if v is None:
                v = Automatic
            parts.append(f"{k}={v!r}")
        return ", ".join(parts)

    def __repr__(self) -> str:
        arrays = self._array_values
        state = ""
        if arrays:
            state = ", initialized" if all(v is not None for v in arrays.values()) \
                else ", uninitialized"
        params = self._param_text()
        return (f"{type(self).__name__}({params}{'; ' if params else ''}"
                f"{self._describe_ports()}{state})")


# ------------------------------------------------------------------------ registry
#: every public layer class defined at module level, by class name (the first of a name wins:
#: a later class of the same name is not one a file can name)
_CLASSES: dict[str, type[Layer]] = {}
_DEFAULT_LOSS: list[Callable[[], Net]] = []
_BACKWARD_PASSES: list[Callable[[Any, Any], int]] = []


def layer_classes() -> Mapping[str, type[Layer]]:
    """Class name -> class of every public ``Layer`` subclass defined at module level so far
    (the layer library's, and a user's once their module is imported): the classes a saved
    file may name. Classes defined inside a function or named ``_...`` are not listed."""
    return MappingProxyType(_CLASSES)


def register_default_loss(factory: Callable[[], Net]) -> None:
    """Make ``factory()`` the loss NetTrain attaches to an output whose producer has no
    preference (:meth:`Layer.default_loss` gives None); the layer library registers
    ``MeanSquaredLossLayer``."""
    _DEFAULT_LOSS[:] = [factory]


def default_loss() -> Net:
    """A fresh instance of the registered default loss."""
    if not _DEFAULT_LOSS:
        raise NetError("NetTrain: no default loss is registered (import netgraph.layers, or "
                       "give loss=...)")
    return _DEFAULT_LOSS[0]()


def register_backward_pass(fn: Callable[[Any, Any], int]) -> None:
    """Register ``fn(plan, tape) -> number of changes``, run by NetTrain on every forward
    tape before its backward pass (the layer library's softmax/cross-entropy fusion)."""
    if fn not in _BACKWARD_PASSES:
        _BACKWARD_PASSES.append(fn)


def backward_passes() -> tuple[Callable[[Any, Any], int], ...]:
    return tuple(_BACKWARD_PASSES)
