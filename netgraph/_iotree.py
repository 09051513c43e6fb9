"""The net tree of a saved file: pydantic models of ``net.json`` and the conversion of nets to
and from them (see :mod:`netgraph.io` for the file format).

Decoding never imports by name: a layer class is looked up in :func:`registry` (NetGraph,
NetChain and the registered layer classes). A decoded layer or graph is rebuilt
from its parts (``Layer._from_parts``, ``NetGraph._from_parts``) after the parts have been
checked here, and shape inference runs again on the rebuilt net.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr, ValidationError

from .arrays import validated_array
from .errors import NetError, where
from .graph import NetChain, NetGraph, _is_graph_end
from .layer import Layer, _validation_message, layer_classes
from .net import Net
from .shapes import Automatic, Index, is_automatic, parse_spec

__all__ = ["FileJSON", "ArrayJSON", "registry", "encode", "decode", "validation_summary",
           "MAX_DEPTH"]

#: how deeply nets may nest in a file (a graph's node, a layer's sub-net: one level each);
#: bounds the recursion of saving, loading and inference on a hostile file
MAX_DEPTH = 64


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class IndexJSON(_Model):
    """``Index(n)`` in a shape spec, written ``{"Index": n}``."""

    Index: StrictInt


Name = StrictInt | StrictStr
_Entry = StrictInt | StrictStr | IndexJSON | None
SpecJSON = _Entry | list[_Entry]


class ArrayJSON(_Model):
    """A reference to the ``.npy`` member holding one array."""

    member: StrictStr
    shape: list[Annotated[StrictInt, Field(ge=0)]]
    dtype: Literal["float32"]


class LayerJSON(_Model):
    """A layer: class name, hyperparameters, user port shapes, switched-on optional
    ports, array references (null: uninitialized) and sub-nets."""

    kind: Literal["layer"]
    type: StrictStr
    params: dict[str, Any] = {}
    ports: dict[str, SpecJSON] = {}
    enabled_inputs: list[StrictStr] = []
    enabled_outputs: list[StrictStr] = []
    arrays: dict[str, ArrayJSON | None] = {}
    children: dict[str, NodeJSON] = {}


class EndJSON(_Model):
    """One end of an edge: a node's port, or a graph port when ``node`` is null."""

    node: Name | None
    port: StrictStr


class GraphNodeJSON(_Model):
    """One node of a graph, in construction order."""

    name: Name
    net: NodeJSON


class GraphJSON(_Model):
    """A NetGraph or NetChain with its resolved edges, ports and evaluation order."""

    kind: Literal["graph"]
    type: Literal["NetGraph", "NetChain"]
    nodes: list[GraphNodeJSON] = Field(min_length=1)
    edges: list[tuple[EndJSON, EndJSON]]
    inputs: list[StrictStr]
    outputs: list[StrictStr] = Field(min_length=1)
    order: list[Name]
    ports: dict[str, SpecJSON] = {}


NodeJSON = Annotated[LayerJSON | GraphJSON, Field(discriminator="kind")]


class FileJSON(_Model):
    """The whole of ``net.json``."""

    format: StrictStr
    format_version: StrictInt
    netgraph_version: StrictStr
    net: NodeJSON


for _m in (LayerJSON, GraphNodeJSON, GraphJSON, FileJSON):
    _m.model_rebuild()


def validation_summary(err: ValidationError, limit: int = 4) -> str:
    """A one-line account of pydantic's errors."""
    errors = err.errors()
    parts = [f"{'.'.join(map(str, e['loc'])) or 'top level'}: {e['msg']}" for e in errors[:limit]]
    more = f" (and {len(errors) - limit} more)" if len(errors) > limit else ""
    return "; ".join(parts) + more


def registry() -> dict[str, type[Net]]:
    """Every class a file may name: NetGraph, NetChain and the registered layer classes
    (:func:`netgraph.layer.layer_classes`: the layer library's and a user's own, defined at
    module level)."""
    return {**layer_classes(), "NetGraph": NetGraph, "NetChain": NetChain}


# ------------------------------------------------------------------------ specs
def _encode_spec(spec: Any, path: tuple) -> Any:
    if is_automatic(spec):
        return None
    if isinstance(spec, Index):
        return {"Index": spec.n}
    if isinstance(spec, (int, np.integer)) and not isinstance(spec, (bool, np.bool_)):
        return int(spec)
    if isinstance(spec, str):
        return spec
    if isinstance(spec, (tuple, list)):
        return [_encode_spec(e, path) for e in spec]
    raise NetError(f"cannot save the port spec {spec!r} of {where(path)}")


def _decode_spec(value: Any) -> Any:
    if value is None:
        return Automatic
    if isinstance(value, IndexJSON):
        return Index(value.Index)
    if isinstance(value, list):
        return tuple(_decode_spec(v) for v in value)
    return value


def _decode_specs(ports: dict[str, Any], path: tuple) -> dict[str, Any]:
    specs = {k: _decode_spec(v) for k, v in ports.items()}
    for k, v in specs.items():
        try:
            parse_spec(v)
        except NetError as e:
            raise NetError(f"{where(path, k)}: {e}") from None
    return specs


# --------------------------------------------------------------------- encoding
def encode(net: Net, arrays: list[tuple[str, np.ndarray]], path: tuple = ()) -> dict:
    """The JSON tree of ``net``; its arrays are appended to ``arrays`` as (member, array)."""
    name = type(net).__name__
    if len(path) > MAX_DEPTH:
        raise NetError(f"cannot save {where(path)}: nets nest more than {MAX_DEPTH} levels deep, "
                       "more than a file may hold")
    if registry().get(name) is not type(net):
        raise NetError(f"cannot save {where(path)}: {name} is not one of netgraph's net classes "
                       "(NetGraph, NetChain and the layer classes defined at module level)")
    ports = {k: _encode_spec(v, path) for k, v in net._user_specs.items()}
    if isinstance(net, NetGraph):
        def end(e: tuple) -> dict:
            return {"node": None if _is_graph_end(e) else e[0], "port": e[1]}

        return {"kind": "graph", "type": name,
                "nodes": [{"name": n, "net": encode(c, arrays, path + (n,))}
                          for n, c in net._nodes.items()],
                "edges": [[end(s), end(d)] for s, d in net._edges],
                "inputs": list(net._ins), "outputs": list(net._outs),
                "order": list(net._order), "ports": ports}
    assert isinstance(net, Layer)
    params = net.params.model_dump(mode="json")
    try:
        exact = type(net).Params.model_validate(json.loads(json.dumps(params))) == net.params
    except (ValidationError, TypeError, ValueError):
        exact = False
    if not exact:
        raise NetError(f"cannot save {where(path)}: the parameters of {name} do not survive "
                       f"a JSON round trip ({params!r})")
    refs: dict[str, Any] = {}
    for k, v in net._array_values.items():
        if v is None:
            refs[k] = None
            continue
        member = f"arrays/{len(arrays)}.npy"
        a = validated_array(v, f"cannot save {where(path)}: its array {k!r}")
        arrays.append((member, a))
        refs[k] = {"member": member, "shape": list(a.shape), "dtype": "float32"}
    return {"kind": "layer", "type": name, "params": params, "ports": ports,
            "enabled_inputs": sorted(net._enabled_in), "enabled_outputs": sorted(net._enabled_out),
            "arrays": refs,
            "children": {k: encode(c, arrays, path + (k,)) for k, c in net.children().items()}}


# --------------------------------------------------------------------- decoding
ReadArray = Callable[[ArrayJSON, str], np.ndarray]


def decode(node: LayerJSON | GraphJSON, read_array: ReadArray) -> Net:
    """Rebuild the net of ``node``; ``read_array(ref, what)`` reads one checked array.

    The tree is built bottom-up without inference, then shapes are inferred once for the whole
    net, so that decoding takes time linear in the size of the tree.

    Raises
    ------
    NetError
        Naming the node and what is wrong, for any part that does not fit.
    """
    net = _decode(node, read_array, ())
    try:
        inferred = net._infer()
    except NetError:
        raise
    except Exception as e:  # a part that passed the checks but still does not fit
        raise NetError(f"the net ({node.type}) cannot be rebuilt from the file: "
                       f"{type(e).__name__}: {e}") from e
    if isinstance(net, NetGraph):  # as NetGraph._from_parts keeps its own object
        net._set(_nodes=inferred._nodes, _specs=inferred._specs)
        return net
    return inferred


def _decode(node: LayerJSON | GraphJSON, read_array: ReadArray, path: tuple) -> Net:
    if len(path) > MAX_DEPTH:
        raise NetError(f"{where(path)}: nets nest more than {MAX_DEPTH} levels deep")
    try:
        if isinstance(node, GraphJSON):
            return _decode_graph(node, read_array, path)
        return _decode_layer(node, read_array, path)
    except NetError:
        raise
    except Exception as e:  # a part that passed the checks but still does not fit
        raise NetError(f"{where(path)} ({node.type}) cannot be rebuilt from the file: "
                       f"{type(e).__name__}: {e}") from e


def _names_match(what: str, given: Any, expected: Any, path: tuple, cls: type) -> None:
    missing, extra = set(expected) - set(given), set(given) - set(expected)
    if missing or extra:
        raise NetError(f"{where(path)}: {cls.__name__} has {what} {sorted(map(str, expected))}, "
                       f"but the file gives {sorted(map(str, given))}")


def _decode_layer(node: LayerJSON, read_array: ReadArray, path: tuple) -> Layer:
    cls = registry().get(node.type)
    if cls is None or not issubclass(cls, Layer):
        raise NetError(f"{where(path)}: unknown layer class {node.type!r} (not a "
                       "registered layer class)")
    try:
        params = cls.Params.model_validate(node.params)
    except ValidationError as e:
        raise NetError(f"{where(path)}: {_validation_message(cls, e)}") from None
    names = cls.array_names_for(params)
    _names_match("arrays", node.arrays, names, path, cls)
    arrays = {n: None if node.arrays[n] is None else
              read_array(node.arrays[n], f"array {n!r} of {where(path)}") for n in names}
    for kind, given, allowed in (("input", node.enabled_inputs, cls.optional_inputs),
                                 ("output", node.enabled_outputs, cls.optional_outputs)):
        if set(given) - set(allowed):
            raise NetError(f"{where(path)}: {cls.__name__} has no optional {kind} port "
                           f"{sorted(set(given) - set(allowed))[0]!r}")
    if node.children and not cls.sub_nets:
        raise NetError(f"{where(path)}: {cls.__name__} has no parts to replace, but the file "
                       f"gives it the sub-nets {sorted(node.children)}")
    if set(node.children) != set(cls.sub_nets):
        raise NetError(f"{where(path)}: {cls.__name__} cannot be rebuilt from the file's parts "
                       f"(sub-nets {sorted(node.children)}): it holds the sub-nets "
                       f"{list(cls.sub_nets)}")
    children = {k: _decode(c, read_array, path + (k,)) for k, c in node.children.items()}
    specs = _decode_specs(node.ports, path)
    layer = cls._from_parts(params, specs, node.enabled_inputs, node.enabled_outputs,
                            arrays, children, infer=False)
    unknown = set(specs) - set(layer.port_names()) - set(layer._port_keys())
    if unknown:
        raise NetError(f"{where(path)}: {cls.__name__} has no port {sorted(unknown)[0]!r}")
    return layer


def _decode_graph(node: GraphJSON, read_array: ReadArray, path: tuple) -> NetGraph:
    cls = registry()[node.type]
    nodes: dict[Any, Net] = {}
    for g in node.nodes:
        if g.name in nodes:
            raise NetError(f"{where(path)}: two nodes are named {g.name!r}")
        nodes[g.name] = _decode(g.net, read_array, path + (g.name,))
    edges = [((s.node, s.port), (d.node, d.port)) for s, d in node.edges]
    specs = _decode_specs(node.ports, path)
    return cls._from_parts(nodes, edges, node.inputs, node.outputs, node.order, specs,
                           infer=False, who=where(path))
