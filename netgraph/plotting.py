"""``net.plot()``: a matplotlib Figure of a net's graph, left to right, shapes on the edges.

Vertices are the graph's input ports (green), its nodes (blue; a collapsed NetGraph/NetChain
is lavender with a dashed border) and its output ports (orange); a port with an encoder or
decoder shows its kind and size under the name. Each edge carries the shape that flows along
it (plus the port names where a node has several inputs or outputs). The layout is layered
(Sugiyama style): every vertex sits in the column of its longest path from the inputs,
inputs as late as possible, outputs in the last column; rows are ordered by a few barycenter
sweeps, and column gaps are sized to fit the edge labels, so labels never overlap boxes.
matplotlib is optional and imported only here.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import networkx as nx

from .errors import NetError
from .graph import _IN, _OUT, NetGraph
from .labels import port_spec, require_net, show_path, type_label
from .net import Net

__all__ = ["plot", "plot_net", "plot_data"]

FONT, EDGE_FONT = 9.0, 7.5          # points
CHAR = 0.6 / 72                     # monospace glyph width per point of font size, inches
PAD, MARGIN, ROW_GAP = 0.1, 0.25, 0.45  # inches
COLORS = {"in": "#d8f0d8", "out": "#fde3c8", "node": "#dbe8f7", "graph": "#e8e0f5"}


def _text_size(text: str, font: float) -> tuple[float, float]:
    lines = text.split("\n")
    return (max(map(len, lines)) * font * CHAR + 2 * PAD,
            len(lines) * font * 1.3 / 72 + 2 * PAD)


# ------------------------------------------------------------------ what to draw
def plot_data(net: Net, expand: bool = False) -> tuple[dict, list]:
    """``(vertices, edges)``: vertices ``id -> (label, kind)`` with ids ``("in", port)``,
    ``("out", port)`` or ``("node", path)``; edges ``(src id, dst id, label)``. With
    ``expand`` nested NetGraph/NetChain nodes are replaced by their insides (recursively)."""
    if not isinstance(net, NetGraph):
        net = NetGraph({"": net._pinned()})  # a bare layer: one unnamed node
    succ: dict[tuple, list[tuple]] = defaultdict(list)
    drawn: dict[tuple, Net] = {}

    def visit(g: NetGraph, P: tuple) -> None:
        for n, child in g._nodes.items():
            if expand and isinstance(child, NetGraph):
                visit(child, P + (n,))
            else:
                drawn[P + (n,)] = child
        for src, dst in g._edges:
            s = (P, "in", src[1]) if src[0] is _IN else (P + (src[0],), "out", src[1])
            d = (P, "out", dst[1]) if dst[0] is _OUT else (P + (dst[0],), "in", dst[1])
            succ[s].append(d)

    visit(net, ())

    def vertex(point: tuple) -> tuple | None:
        path, side, port = point
        if path == ():
            return (side, port)
        return ("node", path) if path in drawn else None  # None: inside an expanded graph

    vertices: dict[tuple, tuple[str, str]] = {}
    encoders, decoders = net.port_coders()
    for p in net.input_ports:
        vertices[("in", p)] = (_port_label(p, encoders.get(p)), "in")
    for path, node in drawn.items():
        kind = "graph" if isinstance(node, NetGraph) else "node"
        name = show_path(path)
        vertices[("node", path)] = (f"{name}\n{_type_lines(node)}".lstrip("\n"), kind)
    for p in net.output_ports:
        vertices[("out", p)] = (_port_label(p, decoders.get(p)), "out")

    edges = []
    for point in list(succ):
        v = vertex(point)
        if v is None or (v[0] == "node") != (point[1] == "out"):
            continue  # not a drawn source: an expanded graph's port, or a graph output
        stack, seen = list(succ[point]), set()
        while stack:
            target = stack.pop()
            if target in seen:
                continue
            seen.add(target)
            w = vertex(target)
            if w is None:
                stack.extend(succ.get(target, ()))
                continue
            edges.append((v, w, _edge_label(net, drawn, point, target)))
    rank = {v: i for i, v in enumerate(vertices)}
    return vertices, sorted(edges, key=lambda e: rank[e[0]])


def _port_label(port: str, coder: Any) -> str:
    """A graph port's name, and its encoder or decoder (kind and size) below it."""
    if coder is None:
        return port
    return f"{port}\n{coder.kind} {coder.role} ({coder.size})"


def _type_lines(node: Net) -> str:
    """The type name, and on a second line the (shortened) parameters or the node count."""
    if isinstance(node, NetGraph):
        return f"{type(node).__name__} ({len(node._nodes)} nodes)"
    text = type_label(node, 10_000)
    name = type(node).__name__
    params = text[len(name) + 1:-1]
    if not params:
        return name
    return name + "\n" + (params if len(params) <= 30 else params[:27] + "...")


def _edge_label(net: Net, drawn: dict, src: tuple, dst: tuple) -> str:
    path, _, port = src
    shape = port_spec(net, port, False) if path == () else port_spec(drawn[path], port, True)
    text = repr(shape)
    extra = []
    if path != () and len(drawn[path].output_ports) > 1:
        extra.append(port)
    if dst[0] != () and len(drawn[dst[0]].input_ports) > 1:
        extra.append("-> " + dst[2])
    return text + ("\n" + " ".join(extra) if extra else "")


# ----------------------------------------------------------------------- layout
def _columns(vertices: dict, edges: list) -> dict[tuple, int]:
    g = nx.DiGraph()
    g.add_nodes_from(vertices)
    g.add_edges_from((a, b) for a, b, _ in edges)
    col: dict[tuple, int] = {}
    for v in nx.topological_sort(g):
        col[v] = max((col[u] + 1 for u in g.predecessors(v)), default=0 if v[0] == "in" else 1)
    nodes = [v for v in vertices if v[0] == "node"]
    last = max((col[v] for v in nodes), default=0) + 1
    for v in vertices:
        if v[0] == "in":
            col[v] = max(0, min((col[w] for w in g.successors(v)), default=1) - 1)
        elif v[0] == "out":
            col[v] = last
    return col


def _rows(vertices: list, links: list, col: dict) -> list[list[tuple]]:
    """Vertices of each column, top to bottom, ordered by barycenter sweeps."""
    ncols = max(col.values()) + 1
    columns: list[list[tuple]] = [[v for v in vertices if col[v] == c] for c in range(ncols)]
    preds: dict[tuple, list] = defaultdict(list)
    succs: dict[tuple, list] = defaultdict(list)
    for a, b in links:
        preds[b].append(a)
        succs[a].append(b)

    def offset(v: tuple) -> float:
        column = columns[col[v]]
        return column.index(v) - (len(column) - 1) / 2

    for sweep in range(8):
        forward = sweep % 2 == 0
        for c in range(ncols) if forward else range(ncols - 1, -1, -1):
            def key(v: tuple, forward: bool = forward) -> float:
                near = (preds[v] if forward else succs[v]) or preds[v] + succs[v]
                return sum(map(offset, near)) / len(near) if near else offset(v)
            columns[c] = sorted(columns[c], key=key)
    return columns


class Layout:
    """Box centers and sizes, edge routes (points through the columns in between) and label
    anchors, all in inches; ``width`` and ``height`` are the figure size."""

    def __init__(self, vertices: dict, edges: list):
        col = _columns(vertices, edges)
        routes, links = [], []
        for i, (a, b, _) in enumerate(edges):
            route = [a] + [("dummy", i, c) for c in range(col[a] + 1, col[b])] + [b]
            col.update({d: d[2] for d in route[1:-1]})
            links += list(zip(route, route[1:]))
            routes.append(route)
        order = list(vertices) + [d for r in routes for d in r[1:-1]]
        columns = _rows(order, links, col)
        self.size = {v: _text_size(label, FONT) for v, (label, _) in vertices.items()}
        col_w = [max((self.size.get(v, (0.0, 0.0))[0] for v in c), default=0.0)
                 for c in columns]
        gaps = [0.6] * len(columns)
        for _, b, label in edges:
            gaps[col[b]] = max(gaps[col[b]], _text_size(label, EDGE_FONT)[0] + 0.35)
        pitch = max(h for _, h in self.size.values()) + ROW_GAP
        self.height = max(len(c) for c in columns) * pitch + 2 * MARGIN + 0.4
        xs, x, self.gap_mid = [], MARGIN, []
        for c, w in enumerate(col_w):
            self.gap_mid.append(x + gaps[c] / 2 if c else x)
            x += (gaps[c] if c else 0.0) + w / 2
            xs.append(x)
            x += w / 2
        self.width = x + MARGIN
        mid = (self.height - 0.4) / 2
        self.pos = {v: (xs[c], mid + ((len(column) - 1) / 2 - i) * pitch)
                    for c, column in enumerate(columns) for i, v in enumerate(column)}
        self.col = col
        self.routes = [[self.pos[v] for v in r] for r in routes]
        for r, (a, b, _) in zip(self.routes, edges):  # leave and enter boxes at their sides
            r[0] = (r[0][0] + self.size[a][0] / 2, r[0][1])
            r[-1] = (r[-1][0] - self.size[b][0] / 2, r[-1][1])


# ------------------------------------------------------------------------ drawing
def plot(net: Net, *, expand: bool = False, **kwargs: Any) -> Any:
    """``net.plot()``: a matplotlib Figure of the graph; see :func:`plot_net`."""
    require_net(net, "plot")
    return plot_net(net, expand=expand, **kwargs)


def plot_net(net: Net, expand: bool = False, title: str | None = None) -> Any:
    """A ``matplotlib.figure.Figure`` of ``net`` (see the module docstring).

    Text artists carry gids ``"node:..."``, ``"edge:..."`` and ``"title"``.

    Raises
    ------
    NetError
        If matplotlib is not installed.
    """
    try:
        from matplotlib.figure import Figure
        from matplotlib.patches import FancyArrowPatch, FancyBboxPatch
        from matplotlib.path import Path
    except ImportError:
        raise NetError("net.plot() needs matplotlib, an optional dependency: "
                       "pip install 'netgraph[plot]' (or pip install matplotlib)") from None
    vertices, edges = plot_data(net, expand)
    L = Layout(vertices, edges)
    fig = Figure(figsize=(L.width, L.height))
    ax = fig.add_axes((0, 0, 1, 1))
    ax.set_xlim(0, L.width)
    ax.set_ylim(0, L.height)
    ax.axis("off")
    if title is None:
        kids = len(net.children()) if isinstance(net, NetGraph) else 0
        title = f"{type(net).__name__}" + (f" ({kids} nodes)" if kids else "")
    ax.text(MARGIN, L.height - 0.25, title, fontsize=FONT + 1, family="monospace",
            weight="bold", va="center", gid="title")
    for v, (label, kind) in vertices.items():
        (x, y), (w, h) = L.pos[v], L.size[v]
        style = "round,pad=0,rounding_size=0.12" if kind in ("in", "out") else "square,pad=0"
        ax.add_patch(FancyBboxPatch((x - w / 2, y - h / 2), w, h, boxstyle=style,
                                    facecolor=COLORS[kind], edgecolor="#555555",
                                    linestyle="--" if kind == "graph" else "-", zorder=2))
        ax.text(x, y, label, ha="center", va="center", fontsize=FONT, family="monospace",
                zorder=3, gid=f"node:{label}")
    pairs: dict[tuple, int] = defaultdict(int)
    for a, b, _ in edges:
        pairs[(a, b)] += 1
    seen: dict[tuple, int] = defaultdict(int)
    arrow = dict(arrowstyle="-|>", mutation_scale=10, color="#444444", linewidth=1.0,
                 shrinkA=1, shrinkB=1, zorder=1)
    for route, (a, b, label) in zip(L.routes, edges):
        k, n = seen[(a, b)], pairs[(a, b)]
        seen[(a, b)] += 1
        (x0, y0), (x1, y1) = route[-2], route[-1]
        rad = 0.0
        if n > 1 and len(route) == 2:  # arcs far enough apart for their labels not to touch
            step = _text_size(label, EDGE_FONT)[1] + 0.05
            rad = -2 * (k - (n - 1) / 2) * step / max(x1 - x0, 0.1)
        if rad:  # parallel edges: arcs, labelled at the Bezier midpoint
            ax.add_patch(FancyArrowPatch(route[0], route[1], **arrow,
                                         connectionstyle=f"arc3,rad={rad}"))
            lx, ly = (x0 + x1) / 2 + rad * (y1 - y0) / 2, (y0 + y1) / 2 - rad * (x1 - x0) / 2
        else:  # a polyline through the columns in between, labelled mid-gap before b
            ax.add_patch(FancyArrowPatch(path=Path(route), **arrow))
            lx = min(max(L.gap_mid[L.col[b]], x0), x1)
            ly = y0 + (y1 - y0) * (lx - x0) / (x1 - x0) if x1 != x0 else (y0 + y1) / 2
        ax.text(lx, ly, label, ha="center", va="center", fontsize=EDGE_FONT,
                family="monospace", color="#1a3d6b", zorder=4, gid=f"edge:{label}",
                bbox=dict(boxstyle="round,pad=0.15", facecolor="white", edgecolor="none",
                          alpha=0.9))
    return fig
