"""``NetTake(net, start, end)``: the part of a NetGraph or NetChain from ``start`` to ``end``.

Endpoints
---------
* a node name, or an int (position in construction order, negative from the end);
* ``NetPort(node, port)`` — the node (``port`` must be one of its ports; as ``end`` an output,
  hidden outputs such as ``AttentionWeights`` and optional ones such as ``State`` included,
  which then becomes an output of the result);
* ``NetPort("x")`` — a graph port: as ``start`` a graph input (the nodes it feeds), as ``end``
  a graph output (the node producing it; the output keeps its name).

Only direct nodes of ``net`` can be named (no paths into nested nets).

Result
------
The nodes lying on a path from ``start`` to ``end`` (both included), in construction order,
with the connections among them. Connections from graph inputs keep the input's name; other
node ports left unconnected become graph ports by the usual dangling-port rules (an input by
its port name, outputs by their names, numbered when several share one). Every node is
pinned to the port shapes it had inside ``net``, so sizes given at the graph level survive,
and its arrays are carried over. A NetChain gives a NetChain; a graph built from a list
(nodes ``0..k-1``) is renumbered ``0..``; named nodes keep their names.
"""

from __future__ import annotations

from typing import Any

import networkx as nx

from .errors import NetError, PortError
from .graph import _IN, _OUT, NetChain, NetGraph
from .layer import Layer
from .net import Net
from .ports import NetPort

__all__ = ["NetTake"]


def _node(net: NetGraph, x: Any, what: str) -> Any:
    """The node key named by ``x`` (a name or a position)."""
    nodes = list(net._nodes)
    if isinstance(x, bool) or not isinstance(x, (str, int)):
        raise NetError(f"NetTake: {what} {x!r} is not a node name, a position or a NetPort")
    if x in net._nodes:
        return x
    if isinstance(x, int) and -len(nodes) <= x < len(nodes):
        return nodes[x]
    raise PortError(f"NetTake: {what} {x!r} is not a node of the net; nodes are {nodes}")


def _node_ports(node: Net, output: bool) -> tuple[str, ...]:
    if not output:
        return node.input_ports + (node.optional_inputs if isinstance(node, Layer) else ())
    extra = node.hidden_outputs + node.optional_outputs if isinstance(node, Layer) else ()
    return node.output_ports + tuple(p for p in extra if p not in node.output_ports)


def _endpoint(net: NetGraph, x: Any, what: str) -> tuple[set, tuple | None]:
    """``(nodes, graph output edge or None)`` for a start or end endpoint."""
    is_end = what == "end"
    if not isinstance(x, NetPort):
        return {_node(net, x, what)}, None
    if x.layer is None:
        if not is_end:
            if x.port not in net.input_ports:
                raise PortError(f"NetTake: start {x!r} is not an input port of the net; inputs "
                                f"are {list(net.input_ports)}")
            return {d[0] for s, d in net._edges if s == (_IN, x.port) and d[0] is not _OUT}, \
                None
        if x.port not in net.output_ports:
            raise PortError(f"NetTake: end {x!r} is not an output port of the net; outputs are "
                            f"{list(net.output_ports)}")
        src = next(s for s, d in net._edges if d == (_OUT, x.port))
        if src[0] is _IN:
            raise PortError(f"NetTake: end {x!r} is the graph input {src[1]!r} passed through, "
                            "not the output of a node")
        return {src[0]}, (src, (_OUT, x.port))
    if len(x.layer) != 1:
        raise PortError(f"NetTake: {what} {x!r} names a nested node; name a node of the net")
    name = _node(net, x.layer[0], what)
    node = net._nodes[name]
    outs = _node_ports(node, True)
    ports = outs if is_end else _node_ports(node, False) + outs
    if x.port not in ports:
        kind = "output port" if is_end else "port"
        raise PortError(f"NetTake: {what} {x!r}: node {name!r} has no {kind} {x.port!r}; its "
                        f"{kind}s are {list(ports)}")
    if is_end and x.port not in node.output_ports:  # hidden or optional: expose explicitly
        return {name}, ((name, x.port), (_OUT, x.port))
    return {name}, None


def _connect(end: tuple, names: dict) -> NetPort:
    if end[0] is _IN or end[0] is _OUT:
        return NetPort(end[1])
    return NetPort(names[end[0]], end[1])


def NetTake(net: Net, start: Any, end: Any) -> Net:
    """The sub-graph of ``net`` from ``start`` to ``end``, both included (module docstring).

    Raises
    ------
    PortError
        If an endpoint names no node or port of ``net``.
    NetError
        If ``net`` is not a NetGraph/NetChain, or ``end`` is not reachable from ``start``
        (it comes before it, or lies on another branch).
    """
    if not isinstance(net, NetGraph):
        raise NetError(f"NetTake needs a NetGraph or NetChain, got {type(net).__name__}")
    starts, _ = _endpoint(net, start, "start")
    ends, out_edge = _endpoint(net, end, "end")
    g = nx.DiGraph()
    g.add_nodes_from(net._nodes)
    g.add_edges_from((s[0], d[0]) for s, d in net._edges
                     if s[0] is not _IN and d[0] is not _OUT)
    after = set(starts).union(*(nx.descendants(g, n) for n in starts))
    before = set(ends).union(*(nx.ancestors(g, n) for n in ends))
    kept = [n for n in net._nodes if n in after and n in before]
    if not kept:
        raise NetError(f"NetTake: end {end!r} cannot be reached from start {start!r}: it comes "
                       "before it or lies on another branch")
    renumber = list(net._nodes) == list(range(len(net._nodes)))
    names = {n: (i if renumber else n) for i, n in enumerate(kept)}
    nodes = {names[n]: net._nodes[n]._pinned() for n in kept}
    edges = [(s, d) for s, d in net._edges
             if (s[0] is _IN or s[0] in names) and d[0] is not _OUT and d[0] in names]
    if out_edge is not None:
        edges.append(out_edge)
    plain = out_edge is None or (out_edge[0][1] == out_edge[1][1] and out_edge[0][1] in
                                 net._nodes[out_edge[0][0]].output_ports)
    chain = isinstance(net, NetChain) and plain
    if chain:
        return NetChain(list(nodes.values()) if renumber else nodes)
    connections = [(_connect(s, names), _connect(d, names)) for s, d in edges]
    return NetGraph(list(nodes.values()) if renumber else nodes, connections)
