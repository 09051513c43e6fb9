"""The NetGraph edge grammar: parsing connection chains, resolving endpoints to ports,
turning dangling ports into graph ports, and the structural checks (cycles, two sources into
one port).

Edges come out fully resolved: a source is ``(GRAPH_IN, name)`` (a graph input) or
``(node, port)``; a destination is ``(GRAPH_OUT, name)`` (a graph output) or ``(node, port)``.
"""

from __future__ import annotations

from typing import Any

import networkx as nx

from .errors import NetError, PortError, where
from .layer import Layer
from .ports import NetPort


class GraphSide:
    """Marks a graph port in an edge end: ``(GRAPH_IN, name)`` is graph input ``name``,
    ``(GRAPH_OUT, name)`` graph output ``name``; any other end is ``(node, port)``. Sentinels
    compared by identity, so no node name can be mistaken for a graph port."""

    __slots__ = ("side",)

    def __init__(self, side: str):
        self.side = side

    def __repr__(self) -> str:
        return f"<graph {self.side}>"

    def __reduce__(self) -> str:  # copies and pickles of a net keep the two singletons
        return "GRAPH_IN" if self.side == "input" else "GRAPH_OUT"


GRAPH_IN, GRAPH_OUT = GraphSide("input"), GraphSide("output")
_IN, _OUT = GRAPH_IN, GRAPH_OUT


def _is_graph_end(end: tuple) -> bool:
    return end[0] is _IN or end[0] is _OUT


def _node_label(name: Any) -> str:
    return where((name,), None)




# ------------------------------------------------------------------ edge grammar
class _Ref:
    """A parsed endpoint: a node (``port`` None), a node's port, or a graph port."""

    __slots__ = ("node", "port", "graph")

    def __init__(self, node: Any = None, port: str | None = None, graph: bool = False):
        self.node, self.port, self.graph = node, port, graph

    def __repr__(self) -> str:
        if self.graph:
            return f"NetPort({self.port!r})"
        return repr(self.node) if self.port is None else f"NetPort({self.node!r}, {self.port!r})"


def _endpoint(x: Any, nodes: dict) -> _Ref | list[_Ref]:
    if isinstance(x, list):
        if not x or any(isinstance(e, list) for e in x):
            raise PortError(f"a list in a connection must hold one or more endpoints (not "
                            f"lists), got {x!r}")
        return [_endpoint(e, nodes) for e in x]  # type: ignore[misc]
    if isinstance(x, NetPort):
        if x.layer is None:
            return _Ref(port=x.port, graph=True)
        if len(x.layer) != 1:
            raise PortError(f"connections can only name direct nodes, got {x!r}")
        node = x.layer[0]
        if node not in nodes:
            raise PortError(f"connection names {x!r}, but there is no node {node!r}; nodes are "
                            f"{list(nodes)}")
        return _Ref(node, x.port)
    if (isinstance(x, (str, int)) and not isinstance(x, bool)) and x in nodes:
        return _Ref(x)
    raise PortError(f"connection names {x!r}, which is not a node of the graph; nodes are "
                    f"{list(nodes)}")


def _parse_connections(connections: Any, nodes: dict) -> list[tuple[list, list, bool]]:
    if not isinstance(connections, (list, tuple)):
        raise NetError("NetGraph: connections must be a list of chains such as ('a', 'b')")
    groups = []
    for chain in connections:
        if not isinstance(chain, (tuple, list)) or len(chain) < 2:
            raise NetError(f"NetGraph: each connection must be a tuple of two or more endpoints, "
                           f"got {chain!r}")
        ends = [_endpoint(e, nodes) for e in chain]
        for a, b in zip(ends, ends[1:]):
            srcs = a if isinstance(a, list) else [a]
            dsts = b if isinstance(b, list) else [b]
            if len(srcs) > 1 and len(dsts) > 1:
                raise NetError(f"NetGraph: cannot connect a list to a list ({a!r} -> {b!r})")
            # a list source into one node is a fan-in, even a list of one
            groups.append((srcs, dsts, isinstance(a, list) and len(dsts) == 1))
    return groups


def _source(ref: _Ref, nodes: dict) -> tuple[dict, tuple]:
    """Resolve a source endpoint; may enable an optional output. Returns (nodes, end)."""
    if ref.graph:
        return nodes, (_IN, ref.port)
    node = nodes[ref.node]
    if ref.port is None:
        outs = node.output_ports
        if len(outs) != 1:
            raise PortError(f"{_node_label(ref.node)} has outputs {list(outs)}; name one with "
                            f"NetPort({ref.node!r}, port)")
        return nodes, (ref.node, outs[0])
    if ref.port in node.output_ports or (isinstance(node, Layer) and ref.port in
                                         node.hidden_outputs):
        return nodes, (ref.node, ref.port)
    if isinstance(node, Layer) and ref.port in node.optional_outputs:
        nodes = dict(nodes)
        nodes[ref.node] = node._enable(outputs={ref.port})
        return nodes, (ref.node, ref.port)
    raise PortError(f"{_node_label(ref.node)} has no output port {ref.port!r}; its outputs are "
                    f"{list(node.output_ports)}")


def _dest(ref: _Ref, nodes: dict) -> tuple[dict, tuple]:
    if ref.graph:
        return nodes, (_OUT, ref.port)
    node = nodes[ref.node]
    if ref.port is None:
        ins = node.input_ports
        if not ins:
            raise PortError(f"{_node_label(ref.node)} has no inputs")
        return nodes, (ref.node, ins[0])
    if ref.port in node.input_ports:
        return nodes, (ref.node, ref.port)
    if isinstance(node, Layer) and ref.port in node.optional_inputs:
        nodes = dict(nodes)
        nodes[ref.node] = node._enable(inputs={ref.port})
        return nodes, (ref.node, ref.port)
    raise PortError(f"{_node_label(ref.node)} has no input port {ref.port!r}; its inputs are "
                    f"{list(node.input_ports)}")


def _fan_in(srcs: list[_Ref], dst: _Ref, nodes: dict) -> tuple[dict, list[tuple]]:
    """Several sources into one node: a variadic port takes them in order, else the node's
    inputs are filled in order."""
    if dst.graph or dst.port is not None:
        raise PortError(f"a list of {len(srcs)} sources can only feed a node, not {dst!r}")
    node = nodes[dst.node]
    k = len(srcs)
    if isinstance(node, Layer) and "arity" in type(node.params).model_fields:
        arity = node.params.arity
        if arity is not None and arity != k and node._specs:
            raise PortError(f"{_node_label(dst.node)} takes {arity} inputs but {k} were connected")
        if arity != k:
            try:
                node = node._with_params(arity=k)
            except NetError as e:
                raise PortError(f"{_node_label(dst.node)} cannot take the {k} sources connected "
                                f"to it: {e}") from None
            nodes = dict(nodes)
            nodes[dst.node] = node
    ins = node.input_ports
    if len(ins) != k:
        raise PortError(f"{_node_label(dst.node)} has inputs {list(ins)}, but a list of {k} "
                        f"sources was connected to it")
    return nodes, [(dst.node, p) for p in ins]


def _resolve(groups: list, nodes: dict) -> tuple[dict, list[tuple[tuple, tuple]]]:
    edges: list[tuple[tuple, tuple]] = []
    for srcs, dsts, fan_in in groups:
        if fan_in:
            nodes, dst_ends = _fan_in(srcs, dsts[0], nodes)
            for s, d in zip(srcs, dst_ends):
                nodes, src_end = _source(s, nodes)
                edges.append((src_end, d))
            continue
        for d in dsts:
            nodes, src_end = _source(srcs[0], nodes)
            nodes, dst_end = _dest(d, nodes)
            edges.append((src_end, dst_end))
    seen: dict[tuple, tuple] = {}
    for src, dst in edges:
        if dst in seen and seen[dst] != src:
            what = (f"graph output {dst[1]!r}" if dst[0] is _OUT
                    else where((dst[0],), dst[1]))
            raise PortError(f"two sources are connected to {what}: {_show_end(seen[dst])} and "
                            f"{_show_end(src)}")
        seen[dst] = src
    unique = list(dict.fromkeys(edges))
    return nodes, unique


def _show_end(end: tuple) -> str:
    if _is_graph_end(end):
        return f"NetPort({end[1]!r})"
    return f"NetPort({end[0]!r}, {end[1]!r})"


def _dangling(nodes: dict, edges: list) -> tuple[list[str], list[str], list]:
    """Turn unconnected node ports into graph ports; return (inputs, outputs, edges)."""
    fed = {dst for _, dst in edges}
    used = {src for src, _ in edges}
    explicit_out = [dst[1] for _, dst in edges if dst[0] is _OUT]
    ins: list[str] = []
    edges = list(edges)
    for name, node in nodes.items():
        for p in node.input_ports:
            if (name, p) not in fed:
                edges.append(((_IN, p), (name, p)))
                src = (_IN, p)
            else:
                src = next(s for s, d in edges if d == (name, p))
            if src[0] is _IN and src[1] not in ins:
                ins.append(src[1])
    for src, _ in edges:
        if src[0] is _IN and src[1] not in ins:
            ins.append(src[1])
    dangling = [(name, p) for name, node in nodes.items() for p in node.output_ports
                if (name, p) not in used]
    counts: dict[str, int] = {}
    for _, p in dangling:
        counts[p] = counts.get(p, 0) + 1
    outs: list[str] = []
    numbering: dict[str, int] = {}
    # numbered names skip names already taken (a nested graph's own "Output1")
    taken = {p for p, c in counts.items() if c == 1}
    for name, node in nodes.items():
        for p in node.output_ports:
            for src, dst in edges:
                if src == (name, p) and dst[0] is _OUT and dst[1] not in outs:
                    outs.append(dst[1])
            if (name, p) in used:
                continue
            if counts[p] > 1:
                k = numbering.get(p, 0) + 1
                while f"{p}{k}" in taken:
                    k += 1
                numbering[p] = k
                gname = f"{p}{k}"
                taken.add(gname)
            else:
                gname = p
            if gname in explicit_out:
                raise PortError(f"dangling output {p!r} of {_node_label(name)} clashes with the "
                                f"graph output {gname!r}; connect it or rename the graph port")
            edges.append(((name, p), (_OUT, gname)))
            outs.append(gname)
    for _src, dst in edges:
        if dst[0] is _OUT and dst[1] not in outs:
            outs.append(dst[1])
    if not outs:
        raise PortError("NetGraph: the graph has no output ports")
    return ins, outs, edges


def _topological_order(nodes: dict, edges: list) -> list:
    g = nx.DiGraph()
    g.add_nodes_from(nodes)
    for src, dst in edges:
        if src[0] is not _IN and dst[0] is not _OUT:
            g.add_edge(src[0], dst[0])
    try:
        cycle = nx.find_cycle(g)
    except nx.NetworkXNoCycle:
        cycle = None
    if cycle:
        path = " -> ".join(repr(a) for a, _ in cycle) + f" -> {cycle[0][0]!r}"
        raise PortError(f"NetGraph: the connections form a cycle: {path}")
    position = {n: i for i, n in enumerate(nodes)}
    return list(nx.lexicographical_topological_sort(g, key=lambda n: position[n]))
