"""The NetGraph edge grammar: parsing connection chains, resolving endpoints to ports and
turning dangling ports into graph ports; and ``check_structure``, the one validation of a
graph's resolved structure (node names, edges, ports, cycles, evaluation order), run on every
graph, whether built from connections or loaded from a file.

Edges come out fully resolved: a source is ``(GRAPH_IN, name)`` (a graph input) or
``(node, port)``; a destination is ``(GRAPH_OUT, name)`` (a graph output) or ``(node, port)``.
"""

from __future__ import annotations

from collections import Counter
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
    return nodes, list(dict.fromkeys(edges))  # one edge given twice is one edge


def _show_end(end: tuple) -> str:
    if _is_graph_end(end):
        return f"NetPort({end[1]!r})"
    return f"NetPort({end[0]!r}, {end[1]!r})"


def _dangling(nodes: dict, edges: list) -> tuple[list[str], list[str], list]:
    """Turn unconnected node ports into graph ports; return (inputs, outputs, edges)."""
    edges = list(edges)
    ins = _graph_inputs(nodes, edges)
    outs = _graph_outputs(nodes, edges)
    return ins, outs, edges


def _graph_inputs(nodes: dict, edges: list) -> list[str]:
    """The graph's inputs in node order; a node input nothing feeds becomes the graph input
    of its name (its edge appended to ``edges``)."""
    fed = {dst for _, dst in edges}
    ins: list[str] = []
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
    return ins


def _graph_outputs(nodes: dict, edges: list) -> list[str]:
    """The graph's outputs in node order; a node output nothing reads becomes a graph output
    (its edge appended to ``edges``), named by ``_dangling_names``."""
    used = {src for src, _ in edges}
    explicit_out = {dst[1] for _, dst in edges if dst[0] is _OUT}
    names = _dangling_names(nodes, used)
    outs: list[str] = []
    for name, node in nodes.items():
        for p in node.output_ports:
            for src, dst in edges:
                if src == (name, p) and dst[0] is _OUT and dst[1] not in outs:
                    outs.append(dst[1])
            if (name, p) in used:
                continue
            gname = names[(name, p)]
            if gname in explicit_out:
                raise PortError(f"dangling output {p!r} of {_node_label(name)} clashes with the "
                                f"graph output {gname!r}; connect it or rename the graph port")
            edges.append(((name, p), (_OUT, gname)))
            outs.append(gname)
    for _src, dst in edges:
        if dst[0] is _OUT and dst[1] not in outs:
            outs.append(dst[1])
    return outs


def _dangling_names(nodes: dict, used: set) -> dict[tuple, str]:
    """The graph-output name of each unread node output: its own name, or, when several share
    it, the name numbered in node order (``Output1``, ``Output2``, ...), skipping names already
    taken (a nested graph's own ``Output1``)."""
    dangling = [(name, p) for name, node in nodes.items() for p in node.output_ports
                if (name, p) not in used]
    counts = Counter(p for _, p in dangling)
    taken = {p for p, c in counts.items() if c == 1}
    numbering: dict[str, int] = {}
    names: dict[tuple, str] = {}
    for end in dangling:
        p = end[1]
        if counts[p] == 1:
            names[end] = p
            continue
        k = numbering.get(p, 0) + 1
        while f"{p}{k}" in taken:
            k += 1
        numbering[p] = k
        names[end] = f"{p}{k}"
        taken.add(names[end])
    return names


# ------------------------------------------------------------ the structure check
def check_node_names(names: Any, who: str = "NetGraph") -> None:
    """A graph has one node or more, named by strings or ints (not bools)."""
    names = list(names)
    if not names:
        raise NetError(f"{who}: a graph needs at least one layer")
    for n in names:
        if not isinstance(n, (str, int)) or isinstance(n, bool):
            raise NetError(f"{who}: layer names must be strings, got {n!r}")


def _end_label(end: tuple, side: str) -> str:
    """``port 'p' of node 'n'``, or ``graph input 'p'`` / ``graph output 'p'``."""
    return f"graph {side} {end[1]!r}" if _is_graph_end(end) else where((end[0],), end[1])


def check_structure(nodes: dict, edges: list, ins: list, outs: list, *,
                    order: list | None = None, specs: Any = (),
                    who: str = "NetGraph") -> list:
    """Validate a graph's resolved structure; return its evaluation order.

    The graph built by ``NetGraph(...)`` and the graph read from a file pass through this one
    check. ``edges`` are ``(src, dst)`` pairs of resolved ends (module docstring); ``specs``
    are the keys of the graph's own port shapes; ``order``, when given (a file's), must be a
    valid evaluation order, else the order is computed: the nodes sorted topologically, ties
    broken by construction order. Checked, in this order: node names; each graph port listed
    once; every edge joins a source (a graph input, a node's output or hidden output) to a
    destination (a graph output, a node's input); at most one source per destination; no
    cycle; at least one graph output; every node input and graph output fed; the order; every
    shape given names a port (``"out:" + name`` for an output named like an input).

    Raises
    ------
    PortError
        Prefixed by ``who`` (``"NetGraph"``, or the node path of a loaded graph), naming the
        nodes, ports and edges at fault.
    """
    check_node_names(nodes, who)
    if len(set(ins)) != len(ins) or len(set(outs)) != len(outs):
        raise PortError(f"{who}: a graph port is listed twice")
    fed = _fed_ports(nodes, edges, ins, outs, who)
    computed = _topological_order(nodes, edges, who)
    if not outs:
        raise PortError(f"{who}: the graph has no output ports")
    needed = [(n, p) for n, net in nodes.items() for p in net.input_ports]
    for end in needed + [(_OUT, p) for p in outs]:
        if end not in fed:
            raise PortError(f"{who}: nothing feeds {_end_label(end, 'output')}")
    if order is not None:
        _check_order(order, nodes, edges, who)
    keys = set(ins) | {"out:" + p if p in ins else p for p in outs}
    for k in specs:
        if k not in keys:
            raise PortError(f"{who}: shape given for {k!r}, which is not a port of the graph "
                            f"(inputs {list(ins)}, outputs {list(outs)})")
    return list(order) if order is not None else computed


def _fed_ports(nodes: dict, edges: list, ins: list, outs: list, who: str) -> dict:
    """Destination -> source of every edge, after checking that each edge joins a source (a
    graph input, a node's output or hidden output) to a destination (a graph output, a node's
    input) and that no destination has two sources."""
    fed: dict[tuple, tuple] = {}
    for src, dst in edges:
        n, p = src
        if n is _IN and p not in ins:
            raise PortError(f"{who}: an edge starts at {p!r}, which is not a graph input")
        if n is not _IN and (n not in nodes or p not in nodes[n].output_ports + getattr(
                nodes[n], "hidden_outputs", ())):
            raise PortError(f"{who}: an edge starts at {where((n,), p)}, which is not an output")
        n, p = dst
        if n is _OUT and p not in outs:
            raise PortError(f"{who}: an edge ends at {p!r}, which is not a graph output")
        if n is not _OUT and (n not in nodes or p not in nodes[n].input_ports):
            raise PortError(f"{who}: an edge ends at {where((n,), p)}, which is not an input")
        if dst in fed:
            if fed[dst] == src:
                raise PortError(f"{who}: two edges end at {_end_label(dst, 'output')}: the edge "
                                f"from {_show_end(src)} is listed twice")
            raise PortError(f"{who}: two sources are connected to {_end_label(dst, 'output')}: "
                            f"{_show_end(fed[dst])} and {_show_end(src)}")
        fed[dst] = src
    return fed


def _check_order(order: list, nodes: dict, edges: list, who: str) -> None:
    """``order`` lists every node once, each after the sources of its inputs."""
    if len(order) != len(nodes) or set(order) != set(nodes):
        raise PortError(f"{who}: the node order {order!r} does not list the nodes {list(nodes)}")
    position = {n: i for i, n in enumerate(order)}
    for (a, _), (b, _) in edges:
        if a in nodes and b in nodes and position[a] >= position[b]:
            raise PortError(f"{who}: the node order {order!r} puts {b!r} before its source {a!r}")


def _topological_order(nodes: dict, edges: list, who: str) -> list:
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
        raise PortError(f"{who}: the connections form a cycle: {path}")
    position = {n: i for i, n in enumerate(nodes)}
    return list(nx.lexicographical_topological_sort(g, key=lambda n: position[n]))
