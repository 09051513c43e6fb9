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
from typing import Annotated, Any, ClassVar

import numpy as np
from pydantic import BaseModel, BeforeValidator, ConfigDict, ValidationError

from .errors import NetError, ShapeError, where
from .net import Net
from .shapes import Automatic, is_automatic, parse_spec
from .signature import parse_signature
from .solver import Conflict, Solver

__all__ = ["Layer", "Params", "Int", "Real", "Bool", "Backward", "layer_classes",
           "register_default_loss", "default_loss"]

Backward = Callable[[dict[str, Any]], tuple[dict[str, Any], dict[Any, Any]]]


def _int(v: Any) -> Any:
    """A NumPy integer as a Python int; anything else as it is (strict validation follows)."""
    if isinstance(v, (bool, np.bool_)):
        raise ValueError(f"expected an int, not the boolean {v!r}")
    return int(v) if isinstance(v, np.integer) else v


def _real(v: Any) -> Any:
    """A NumPy number as a Python float; anything else as it is (strict validation follows)."""
    if isinstance(v, (bool, np.bool_)):
        raise ValueError(f"expected a number, not the boolean {v!r}")
    return float(v) if isinstance(v, (np.integer, np.floating)) else v


def _bool(v: Any) -> Any:
    return bool(v) if isinstance(v, np.bool_) else v


#: strict hyperparameter types (``Params`` is strict: no "4" or 4.0 for an int, no True for a
#: number) that also take the matching NumPy scalars; a Real takes ints too
Int = Annotated[int, BeforeValidator(_int)]
Real = Annotated[float, BeforeValidator(_real)]
Bool = Annotated[bool, BeforeValidator(_bool)]


class Params(BaseModel):
    """Base of layer hyperparameter models: frozen, no unknown fields, strict types.

    Strict: a value is never coerced, so ``GatedRecurrentLayer("4")``, ``(4.0)`` and
    ``(True)`` are errors, not a layer of size 4 or 1; an ``int`` field takes ints only, a
    ``float`` field ints and floats (never a bool), a ``bool`` field ``True``/``False``, a
    ``str`` field strings. NumPy scalars are numbers: use the field types ``Int``, ``Real`` and
    ``Bool`` (or a before-validator) to take them.
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
    #: the ports and arrays as data, e.g. ``"Input[k] -> Output[n]; Weights[n, k]"`` (see
    #: :mod:`netgraph.signature`; a property when it depends on the parameters); ``rules``
    #: adds what a signature cannot say. A class's signature also sets ``inputs`` and
    #: ``outputs`` (the ports it names, less the optional and hidden ones) unless it does
    signature: ClassVar[str | None] = None
    #: names of the sub-nets the layer holds (given to ``__init__`` as ``children=``), e.g.
    #: NetMapOperator's ``"Net"``: addressable by NetExtract, replaceable by NetReplacePart
    sub_nets: ClassVar[tuple[str, ...]] = ()
    #: True for loss layers (ports ``Input``, ``Target`` -> ``Loss``): NetTrain uses an output
    #: such a layer produces as a loss as it is
    is_loss: ClassVar[bool] = False

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if isinstance(cls.__dict__.get("signature"), str):  # a malformed one fails right here
            sig = parse_signature(cls.signature, cls.__name__)
            if "inputs" not in cls.__dict__:  # the ports it names, less the optional ones
                cls.inputs = tuple(e.name for e in sig.inputs if e.name not in cls.optional_inputs)
            if "outputs" not in cls.__dict__:
                cls.outputs = tuple(e.name for e in sig.outputs if e.name not in
                                    cls.optional_outputs + cls.hidden_outputs)
        if not cls.__name__.startswith("_") and "<locals>" not in cls.__qualname__:
            _CLASSES.setdefault(cls.__name__, cls)

    def __init__(self, params: dict[str, Any] | None = None, ports: dict[str, Any] | None = None,
                 children: dict[str, Net] | None = None):
        """``params``: hyperparameters (validated by ``Params``; Automatic/None: unset);
        ``ports``: user port shapes; ``children``: the sub-nets named by ``sub_nets``."""
        params = {k: (None if is_automatic(v) else v) for k, v in (params or {}).items()}
        children = dict(children or {})
        if set(children) != set(self.sub_nets):
            raise NetError(f"{type(self).__name__}: needs the sub-nets {list(self.sub_nets)}, "
                           f"got {sorted(map(str, children))}")
        try:
            model = self.Params(**params)
        except ValidationError as e:
            raise NetError(_validation_message(type(self), e)) from None
        except (TypeError, ValueError) as e:
            raise NetError(f"{type(self).__name__}: invalid parameters: {e}") from None
        self._set(params=model, _enabled_in=frozenset(), _enabled_out=frozenset(), _cache={},
                  _array_values={n: None for n in self.array_names_for(model)},
                  _sub_nets=children)
        known = set(self.port_names())
        specs = {}
        for name, spec in (ports or {}).items():
            if name not in known:
                raise NetError(f"{type(self).__name__}: unknown parameter or port {name!r}; "
                               f"ports are {sorted(known)}")
            parse_spec(spec)  # validates
            specs[name] = spec
        self._set(_specs=specs, _user_specs=specs)
        self.validate()
        self._check_construction()

    def validate(self) -> None:
        """Check what ``Params`` cannot: combinations of hyperparameters, the ports of a
        sub-net; raise ``NetError``. Runs on construction, on every changed copy
        (``with_children``, changed params) and when a file is loaded (which never calls
        ``__init__``), so checks made here cannot be bypassed by a tampered file."""

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
                   _specs=dict(user_specs), _user_specs=dict(user_specs),
                   _sub_nets=dict(children))
        layer.validate()
        return layer._infer() if infer else layer

    # ------------------------------------------------------------ sub-nets
    def child(self, name: str) -> Net:
        """The sub-net ``name`` (one of ``sub_nets``)."""
        return self._sub_nets[name]

    def children(self) -> dict[str, Net]:
        return dict(self._sub_nets)

    def with_children(self, children: dict[str, Net]) -> Layer:
        if not self.sub_nets:
            raise NetError(f"{type(self).__name__} has no parts to replace")
        unknown = set(children) - set(self.sub_nets)
        if unknown:
            name = sorted(map(str, unknown))[0]
            raise NetError(f"{type(self).__name__} has no sub-net {name!r}; its sub-nets are "
                           f"{list(self.sub_nets)}")
        new = self.derive(_sub_nets={**self._sub_nets, **children})
        new.validate()
        return new

    # --------------------------------------------------------------- ports
    def input_names(self) -> tuple[str, ...]:
        """Required input ports (subclasses with a variable arity override this)."""
        return self.inputs

    def output_names(self) -> tuple[str, ...]:
        """Output ports that always exist (a layer whose outputs are a sub-net's overrides
        this)."""
        return self.outputs

    def port_names(self) -> tuple[str, ...]:
        """Every port the layer can have: the names a constructor takes port shapes for."""
        return (self.input_names() + self.output_names() + self.optional_inputs
                + self.optional_outputs + self.hidden_outputs)

    @property
    def input_ports(self) -> tuple[str, ...]:
        return self.input_names() + tuple(p for p in self.optional_inputs if p in self._enabled_in)

    @property
    def output_ports(self) -> tuple[str, ...]:
        return self.output_names() + tuple(p for p in self.optional_outputs
                                           if p in self._enabled_out)

    def _enable(self, inputs: set[str] = frozenset(), outputs: set[str] = frozenset()) -> Layer:
        """A copy with optional ports switched on (done by NetGraph when they are connected)."""
        ins = self._enabled_in | (set(inputs) & set(self.optional_inputs))
        outs = self._enabled_out | (set(outputs) & set(self.optional_outputs))
        if ins == self._enabled_in and outs == self._enabled_out:
            return self
        return self.derive(_enabled_in=frozenset(ins), _enabled_out=frozenset(outs))

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
        return self.derive(_array_values=values)

    def _with_params(self, **changes: Any) -> Layer:
        data = self.params.model_dump()
        data.update(changes)
        try:
            model = self.Params(**data)
        except ValidationError as e:
            raise NetError(_validation_message(type(self), e)) from None
        new = self.derive(params=model)
        names = self.array_names_for(model)
        new._set(_array_values={n: self._array_values.get(n) for n in names})
        new.validate()  # the same checks of parameter combinations as the constructor
        return new

    # ----------------------------------------------------------- inference
    def rules(self, S: Solver, path: tuple, ports: dict[str, int]) -> dict[str, tuple[int, ...]]:
        """Add this layer's shape rules; return array name -> dims (solver dim ids)."""
        return {}

    def _port_keys(self) -> list[str]:
        """Solver keys of every port: the port name, or ``"out:" + name`` for an output that
        shares its name with an input (a recurrent layer's final ``State``)."""
        return list(self.input_ports) + [self.output_key(p) for p in
                                         self.output_ports + self.hidden_outputs]

    def _constrain(self, S: Solver, path: tuple) -> dict[str, int]:
        ports = {n: S.port(path, n) for n in self._port_keys()}
        for name, spec in self._user_specs.items():
            if name in ports and spec is not Automatic:
                origin = f"{name}={spec!r} of {type(self).__name__} at {where(path, name)}"
                S.unify(ports[name], S.from_spec(parse_spec(spec), origin), where(path, name),
                        origin)
        for name, child in self.children().items():
            child._constrain(S, path + (name,))
        array_dims, reals = {}, self.real_outputs
        if self.signature is not None:
            sig = parse_signature(self.signature, type(self).__name__)
            letters, array_dims = sig.apply(S, self, path, ports)
            S.size_vars.update({(path, k): d for k, d in letters.items()})
            reals += sig.real_outputs()
        array_dims.update(self.rules(S, path, ports))
        for name in reals:
            key = self.output_key(name)
            if key in ports:
                origin = f"the real-valued {name!r} of {type(self).__name__} at {where(path)}"
                S.unify(ports[key], S.new_type(elem="Real", origin=origin), where(path, name),
                        origin)
        for name, dims in array_dims.items():
            if name not in self._array_values:  # an array these parameters leave out
                continue
            S.arrays[(path, name)] = dims
            value = self._array_values.get(name)
            if value is not None:
                self._constrain_array(S, path, name, dims, value.shape)
        return ports

    def _constrain_array(self, S: Solver, path: tuple, name: str, dims: tuple,
                         shape: tuple) -> None:
        array = f"array {name!r} of {type(self).__name__} at {where(path, None)}"
        if len(dims) != len(shape):
            raise ShapeError(f"{array} has shape {shape} but the layer needs rank {len(dims)}")
        for d, n in zip(dims, shape):
            try:
                S.set_size(d, n, f"the shape {shape} of {array}")
            except Conflict as c:
                raise ShapeError(f"{array} has shape {shape}, inconsistent with the layer's "
                                 f"ports: {c}") from None

    def _specialize(self, S: Solver, path: tuple) -> Layer:
        specs = {n: S.show(S.port(path, n)) for n in self._port_keys()}
        new = self.derive(_specs=specs)
        kids = self.children()
        if kids:
            new = new.with_children({k: c._specialize(S, path + (k,)) for k, c in kids.items()})
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
    def fused_with_consumer(self, port: str, consumer: Layer, consumer_port: str,
                            meta: Any) -> Any:
        """One computation for this layer's step followed by ``consumer``'s, whose input
        ``consumer_port`` reads this layer's output ``port`` (a value of ``meta``, the slot's
        ``PortMeta``): an object with ``forward(ins, arrays, ctx)``, ``pad_clean`` and
        ``index_data_hint``, reading this layer's inputs plus the consumer's other inputs and
        writing the outputs of both. The compiler's fusion pass asks every producer/consumer
        pair (``netgraph.compile``); ``None``, the default: no fusion."""
        return None

    def _emit(self, plan: Any, sol: Any, path: tuple, in_slots: dict[str, Any]) -> dict:
        return plan.add_step(self, path, in_slots, sol)

    def forward(self, ins: dict[str, np.ndarray], arrays: dict[str, np.ndarray],
                ctx: Any) -> tuple[dict[str, np.ndarray], Backward]:
        raise NotImplementedError

    # ------------------------------------------------------------- display
    def params_text(self) -> str:
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
        params = self.params_text()
        return (f"{type(self).__name__}({params}{'; ' if params else ''}"
                f"{self._describe_ports()}{state})")


# ------------------------------------------------------------------------ registry
#: every public layer class defined at module level, by class name (the first of a name wins:
#: a later class of the same name is not one a file can name)
_CLASSES: dict[str, type[Layer]] = {}
_DEFAULT_LOSS: list[Callable[[], Net]] = []


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
