"""NetGraph and NetChain: containers of nets, their inference, specialization and compiling.

The edge grammar lives in :mod:`netgraph.edges`; a graph stores its edges fully resolved
(dangling node ports already turned into graph ports), so later stages never guess.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any

from .edges import (
    _IN,
    _OUT,
    GRAPH_IN,
    GRAPH_OUT,
    _dangling,
    _is_graph_end,
    _parse_connections,
    _resolve,
    check_node_names,
    check_structure,
)
from .errors import NetError, where
from .net import Net
from .shapes import Automatic, parse_spec
from .solver import Solver

__all__ = ["NetGraph", "NetChain", "register_shorthand", "register_shorthand_hint", "GRAPH_IN",
           "GRAPH_OUT", "_is_graph_end"]

#: shorthand expanders registered by the layer library: ``(predicate, factory)`` pairs
SHORTHANDS: list[tuple[Callable[[Any], bool], Callable[[Any], Net]]] = []
#: hints registered by the layer library: ``f(entry) -> "did you mean ..." text or None`` for
#: an entry that is neither a net nor a shorthand (e.g. ``"Softmax"`` -> ``SoftmaxLayer()``)
SHORTHAND_HINTS: list[Callable[[Any], str | None]] = []


def register_shorthand(test: Callable[[Any], bool], make: Callable[[Any], Net]) -> None:
    """Let a NetGraph/NetChain entry ``x`` with ``test(x)`` stand for the net ``make(x)``
    (the layer library: ``5`` for ``LinearLayer(5)``, ``"Tanh"`` for an ElementwiseLayer).
    Shorthands are tried in the order they were registered."""
    SHORTHANDS.append((test, make))


def register_shorthand_hint(suggest: Callable[[Any], str | None]) -> None:
    """Add ``suggest(entry) -> "did you mean" text or None`` for an entry that is neither a
    net nor a shorthand (``"Softmax"`` -> ``"SoftmaxLayer()"``)."""
    SHORTHAND_HINTS.append(suggest)


def as_net(x: Any, name: Any) -> Net:
    """A net from a NetGraph/NetChain entry, expanding shorthands (``5``, ``"Tanh"``, lists)."""
    if isinstance(x, Net):
        return x
    if isinstance(x, list):
        return NetChain(x)
    for test, make in SHORTHANDS:
        if test(x):
            return make(x)
    hint = ""
    if isinstance(x, type) and issubclass(x, Net):
        hint = f"; pass an instance such as {x.__name__}(...), not the class"
    for suggest in SHORTHAND_HINTS:
        found = suggest(x)
        if found:
            hint = f"; did you mean {found}?"
            break
    raise NetError(f"node {name!r}: {x!r} is not a layer or net{hint}")


class NetGraph(Net):
    """A graph of nets. ``NetGraph(layers, connections, **port_shapes)``; see the SPEC."""

    def __init__(self, layers: Any, connections: Any = (), **port_shapes: Any):
        if isinstance(layers, dict):
            names = list(layers)
            values = list(layers.values())
        elif isinstance(layers, (list, tuple)):
            names = list(range(len(layers)))
            values = list(layers)
        else:
            raise NetError("NetGraph: layers must be a dict or a list, got "
                           f"{type(layers).__name__}")
        check_node_names(names)
        nodes = {n: as_net(v, n) for n, v in zip(names, values)}
        if isinstance(connections, tuple) and connections and not isinstance(
                connections[0], (tuple, list)):
            connections = [connections]
        groups = _parse_connections(connections, nodes)
        nodes, edges = _resolve(groups, nodes)
        ins, outs, edges = _dangling(nodes, edges)
        order = check_structure(nodes, edges, ins, outs, specs=port_shapes)
        for v in port_shapes.values():
            parse_spec(v)
        self._set(_nodes=nodes, _edges=tuple(edges), _ins=tuple(ins), _outs=tuple(outs),
                  _order=tuple(order), _specs=dict(port_shapes), _user_specs=dict(port_shapes),
                  _cache={})
        inferred = self._infer()
        self._set(_nodes=inferred._nodes, _specs=inferred._specs, _cache=inferred._cache)

    # ----------------------------------------------------------------- ports
    @property
    def input_ports(self) -> tuple[str, ...]:
        return self._ins

    @property
    def output_ports(self) -> tuple[str, ...]:
        return self._outs

    @property
    def nodes(self) -> Mapping[Any, Net]:
        """The nodes, name -> net, in the order given (read-only)."""
        return MappingProxyType(self._nodes)

    @property
    def edges(self) -> tuple[tuple[tuple, tuple], ...]:
        """The resolved edges ``(source, destination)``: a source is ``(GRAPH_IN, name)`` (a
        graph input) or ``(node, output port)``, a destination ``(GRAPH_OUT, name)`` (a graph
        output) or ``(node, input port)``."""
        return self._edges

    def port_shape(self, port: str) -> Any:
        if port in self._ins:
            return self._specs.get(port, Automatic)
        return self._specs.get(self.output_key(port), Automatic)

    def children(self) -> dict:
        return dict(self._nodes)

    def with_children(self, children: dict) -> NetGraph:
        nodes = dict(self._nodes)
        nodes.update(children)
        return self.derive(_nodes=nodes)

    @classmethod
    def _from_parts(cls, nodes: dict, edges: list, ins: list, outs: list, order: list,
                    port_shapes: dict, *, infer: bool = True, who: str = "NetGraph") -> NetGraph:
        """Rebuild a graph from resolved parts without re-parsing connections (used by
        ``netgraph.io.load``). ``edges`` are ``(src, dst)`` pairs of ``(node, port)`` ends,
        with ``None`` for the node of a graph port. The structure passes the constructor's
        check (``check_structure``, its errors prefixed by ``who``), ``order`` included.
        ``infer=False`` skips inference (the loader infers once, for the whole tree)."""
        def end(e: tuple, side: Any) -> tuple:
            return (side, e[1]) if e[0] is None else tuple(e)

        edges = [(end(s, _IN), end(d, _OUT)) for s, d in edges]
        order = check_structure(nodes, edges, ins, outs, order=order, specs=port_shapes, who=who)
        graph = object.__new__(cls)
        if issubclass(cls, NetChain):
            object.__setattr__(graph, "_chain", True)
        graph._set(_nodes=dict(nodes), _edges=tuple(edges),
                   _ins=tuple(ins), _outs=tuple(outs), _order=tuple(order),
                   _specs=dict(port_shapes), _user_specs=dict(port_shapes), _cache={})
        if not infer:
            return graph
        inferred = graph._infer()
        graph._set(_nodes=inferred._nodes, _specs=inferred._specs, _cache=inferred._cache)
        return graph

    # ------------------------------------------------------------- inference
    def _constrain(self, S: Solver, path: tuple) -> dict[str, int]:
        node_ports = {n: node._constrain(S, path + (n,)) for n, node in self._nodes.items()}
        gports = {p: S.port(path, p) for p in self._ins}
        for p in self._outs:
            gports[self.output_key(p)] = S.port(path, self.output_key(p))
        for key, spec in self._user_specs.items():
            if key in gports and spec is not Automatic:
                origin = f"{key}={spec!r} of the graph at {where(path, None)}"
                S.unify(gports[key], S.from_spec(parse_spec(spec), origin), where(path, key),
                        origin)

        def type_of(end: tuple, source: bool) -> tuple[int, str]:
            kind, port = end
            if kind is (_IN if source else _OUT):
                key = port if source else self.output_key(port)
                return gports[key], where(path, port)
            node = self._nodes[kind]
            key = node.output_key(port) if source else port
            return node_ports[kind][key], where(path + (kind,), port)

        for src, dst in self._edges:
            ts, ps = type_of(src, True)
            td, pd = type_of(dst, False)
            S.unify(ts, td, ps, pd)
        return gports

    def _specialize(self, S: Solver, path: tuple) -> NetGraph:
        nodes = {n: node._specialize(S, path + (n,)) for n, node in self._nodes.items()}
        specs = {p: S.show(S.port(path, p)) for p in self._ins}
        for p in self._outs:
            specs[self.output_key(p)] = S.show(S.port(path, self.output_key(p)))
        return self.derive(_nodes=nodes, _specs=specs)

    # ------------------------------------------------------------- compiling
    def _emit(self, plan: Any, sol: Any, path: tuple, in_slots: dict[str, Any]) -> dict:
        incoming = {dst: src for src, dst in self._edges}
        produced: dict[tuple, Any] = {}

        def slot(src: tuple) -> Any:
            return in_slots[src[1]] if src[0] is _IN else produced[src]

        for name in self._order:
            node = self._nodes[name]
            node_in = {p: slot(incoming[(name, p)]) for p in node.input_ports}
            outs = node._emit(plan, sol, path + (name,), node_in)
            # outputs first: where an output shares its name with an input (a recurrent
            # layer's State), NetPort(node, "State") reads the final state, not the initial one
            for p, s in outs.items():
                produced[(name, p)] = s
                plan.note_interior(path + (name,), p, s)
            for p, s in node_in.items():
                plan.note_interior(path + (name,), p, s)
        return {p: slot(incoming[(_OUT, p)]) for p in self._outs}

    # --------------------------------------------------------------- display
    def __repr__(self) -> str:
        kind = "NetChain" if getattr(self, "_chain", False) else "NetGraph"

        def arrays(net: Net) -> list:
            return list(net._arrays().values()) + [
                a for c in net.children().values() for a in arrays(c)]

        values = arrays(self)
        state = "" if not values else (", initialized" if all(v is not None for v in values)
                                       else ", uninitialized")
        return f"{kind}(<{len(self._nodes)} nodes>; {self._describe_ports()}{state})"


class NetChain(NetGraph):
    """Layers in sequence: ``NetChain([LinearLayer(5), "Tanh", 3], Input=2)``."""

    def __init__(self, layers: Any, **port_shapes: Any):
        if isinstance(layers, dict):
            names = list(layers)
        elif isinstance(layers, (list, tuple)):
            names = list(range(len(layers)))
        else:
            raise NetError("NetChain: layers must be a list or a dict, got "
                           f"{type(layers).__name__}")
        if not names:
            raise NetError("NetChain: a chain needs at least one layer")
        connections = [tuple(names)] if len(names) > 1 else []
        object.__setattr__(self, "_chain", True)
        super().__init__(layers, connections, **port_shapes)
