"""Layering facts of a netgraph checkout: import cycles, core->layers imports, private core
imports from the layer library, the longest functions.

``python tools/layering_report.py [ROOT] [--strict]`` (ROOT defaults to the current directory).

* Every ``import`` counts, at module level or inside a function. The one allowed exception is
  ``Net``'s own convenience methods (``__call__``, ``summary``, ``plot`` in ``netgraph/net.py``)
  importing what implements them: those edges are listed but left out of the cycle count.
* ``from . import sub`` (or ``from pkg import sub``) is an edge to the submodule ``sub`` only,
  not to the package: the package is already being imported by then.
* Cycles are reported as strongly connected groups of modules.
* Function lengths are given in lines, with and without the function's docstring.

With ``--strict`` the exit status is 1 when there is a cycle or a core->layers import.
"""

from __future__ import annotations

import ast
import os
import sys

import networkx as nx

#: ``(module, function) -> module`` it may import although that imports it: Net's convenience
#: methods and what implements them
ALLOWED = {("netgraph.net", "__call__"): "netgraph.apply",
           ("netgraph.net", "summary"): "netgraph.info",
           ("netgraph.net", "plot"): "netgraph.plotting"}
PACKAGES = ("netgraph", "layers")


def modules(root: str) -> dict[str, str]:
    """Module name -> file for every module of netgraph/ and layers/ (symlinks skipped, so a
    ``netgraph/layers -> ../layers`` link is counted once, as ``layers``)."""
    found = {}
    for base in PACKAGES:
        for folder, dirs, files in os.walk(os.path.join(root, base)):
            dirs[:] = [d for d in dirs if not os.path.islink(os.path.join(folder, d))]
            for f in files:
                if f.endswith(".py"):
                    path = os.path.join(folder, f)
                    name = os.path.relpath(path, root)[:-3].replace(os.sep, ".")
                    found[name.removesuffix(".__init__")] = path
    return found


def _canonical(name: str) -> str:
    return "layers" + name[len("netgraph.layers"):] if name.startswith("netgraph.layers") \
        else name


def targets(mod: str, node: ast.Import | ast.ImportFrom, mods: dict[str, str]) -> list[str]:
    """The modules an import statement in module ``mod`` imports."""
    if isinstance(node, ast.Import):
        return [_canonical(a.name) for a in node.names]
    if node.level:
        package = mod if mods[mod].endswith("__init__.py") else mod.rsplit(".", 1)[0]
        parts = package.split(".")
        base = ".".join(parts[: len(parts) - node.level + 1])
        target = base + ("." + node.module if node.module else "")
    else:
        target = node.module or ""
    target = _canonical(target)
    subs = [f"{target}.{a.name}" for a in node.names if f"{target}.{a.name}" in mods]
    return subs if len(subs) == len(node.names) else [target] + subs


def _owner(name: str, mods: dict[str, str]) -> str:
    """The module of ``name`` (a module, or a name inside one), or "" for outside modules."""
    while name and name not in mods:
        name = name.rsplit(".", 1)[0] if "." in name else ""
    return name


def _imports(tree: ast.AST):
    """``(import node, name of the enclosing top-level-or-method function or None)``."""
    def visit(node: ast.AST, func: str | None):
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.Import, ast.ImportFrom)):
                yield child, func
            inner = child.name if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)) \
                else func
            yield from visit(child, func if func is not None else inner)

    yield from visit(tree, None)


def report(root: str) -> dict:
    mods = modules(root)
    graph = nx.DiGraph()
    graph.add_nodes_from(mods)
    allowed, core_to_layers, private, longest = [], [], [], []
    for mod, path in mods.items():
        tree = ast.parse(open(path, encoding="utf-8").read())
        for node, func in _imports(tree):
            for target in targets(mod, node, mods):
                owner = _owner(target, mods)
                if owner and owner != mod:
                    if ALLOWED.get((mod, func)) == owner:
                        allowed.append((mod, func, owner))
                    else:
                        graph.add_edge(mod, owner)
                if mod.startswith("netgraph") and mod != "netgraph" and target.startswith(
                        "layers"):
                    core_to_layers.append((mod, node.lineno))
                if mod.startswith("layers") and target.startswith("netgraph") and target not in (
                        "netgraph", "netgraph.extend"):
                    private.append((mod, node.lineno, target))
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                lines = node.end_lineno - node.lineno + 1
                doc = node.body[0] if ast.get_docstring(node) is not None else None
                code = lines - (doc.end_lineno - doc.lineno + 1 if doc is not None else 0)
                longest.append((lines, mod, node.name, code))
    cycles = [sorted(c) for c in nx.strongly_connected_components(graph) if len(c) > 1]
    return {"cycles": cycles, "allowed": allowed, "core_to_layers": core_to_layers,
            "private": private, "longest": sorted(f[:3] for f in longest)[::-1],
            "longest_code": sorted(((f[3],) + f[1:3] for f in longest), reverse=True)}


def main(argv: list[str]) -> int:
    args = [a for a in argv if a != "--strict"]
    r = report(args[0] if args else ".")
    print("import cycles (strongly connected groups):", len(r["cycles"]), r["cycles"])
    print("modules in cycles:", sum(len(c) for c in r["cycles"]))
    print("allowed upward imports (Net's convenience methods):", r["allowed"])
    print("core->layers import sites:", len(r["core_to_layers"]), r["core_to_layers"])
    print("layers imports of core modules other than netgraph/netgraph.extend:",
          len(r["private"]))
    print("longest functions:", r["longest"][:5])
    print("longest functions without their docstrings:", r["longest_code"][:5])
    failed = bool(r["cycles"] or r["core_to_layers"])
    return 1 if "--strict" in argv and failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
