"""The package layout (SPEC "Packages"): the layer library is the subpackage netgraph.layers,
both installed (a wheel) and in a source checkout (the symlink netgraph/layers -> ../layers);
no top-level module "layers" exists for a user's own file to clash with."""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

import netgraph
import netgraph.layers

ROOT = Path(__file__).resolve().parent.parent


def run_python(code: str, cwd: Path) -> subprocess.CompletedProcess:
    """``code`` in a fresh interpreter started in ``cwd``, with the checkout importable."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-c", code], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=120)


def test_a_users_layers_py_cannot_shadow_the_layer_library(tmp_path):
    (tmp_path / "layers.py").write_text('raise RuntimeError("the user\'s layers.py ran")\n')
    done = run_python("from netgraph import *\nprint(LinearLayer.__module__)", tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["netgraph.layers.linear"]


def test_shorthands_work_right_after_importing_netchain(tmp_path):
    done = run_python("from netgraph import NetChain\n"
                      "print(NetChain([5, 'Tanh'], Input=3).port_shape('Output'))", tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "(5,)"


def test_the_checkouts_top_level_folder_is_not_a_package(tmp_path):
    done = run_python(f"import sys; sys.path.insert(0, {str(ROOT)!r})\nimport layers", tmp_path)
    assert done.returncode != 0
    assert "ImportError: the layer library is the package netgraph.layers" in done.stderr


def test_star_import_gives_every_public_name_layers_included():
    names: dict = {}
    exec("from netgraph import *", names)
    assert set(netgraph.layers.__all__) <= set(names)
    assert {"NetGraph", "NetChain", "NetTrain", "Layer", "Params", "save", "load"} <= set(names)
    assert names["LinearLayer"] is netgraph.layers.LinearLayer
    assert set(netgraph.__all__) == set(netgraph._CORE) | set(netgraph.layers.__all__)


def test_checkout_symlink_points_at_the_layers_folder():
    link = ROOT / "netgraph" / "layers"
    assert link.is_symlink() and os.readlink(link) == "../layers"
    assert Path(netgraph.layers.__file__).resolve() == ROOT / "layers" / "__init__.py"


def test_the_wheel_installs_layers_as_netgraph_layers_only(tmp_path):
    pytest.importorskip("setuptools")
    src = tmp_path / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    ignore = shutil.ignore_patterns("__pycache__")
    for name in ("netgraph", "layers"):
        shutil.copytree(ROOT / name, src / name, symlinks=True, ignore=ignore)
    done = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps",
                           "--no-build-isolation", "-q", "-w", str(tmp_path / "whl"), str(src)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    (wheel,) = (tmp_path / "whl").glob("netgraph-*.whl")
    files = [n for n in zipfile.ZipFile(wheel).namelist() if ".dist-info/" not in n]
    assert len(files) == len(set(files))
    assert {n.split("/")[0] for n in files} == {"netgraph"}
    library = sorted(p.name for p in (ROOT / "layers").glob("*.py"))
    assert sorted(n.split("/")[-1] for n in files if n.startswith("netgraph/layers/")) == library
    top_level = next(n for n in zipfile.ZipFile(wheel).namelist() if n.endswith("top_level.txt"))
    assert zipfile.ZipFile(wheel).read(top_level).decode().split() == ["netgraph"]


# ------------------------------------------------------------------ the layering
def _imports(folder: Path):
    """``(file, line, imported module, imported names)`` of every import under ``folder``,
    function-level imports included; relative imports resolved to absolute module names."""
    for path in sorted(folder.rglob("*.py")):
        package = ".".join(path.relative_to(ROOT).parent.parts)
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                for a in node.names:
                    yield path, node.lineno, a.name, []
            elif isinstance(node, ast.ImportFrom):
                base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                module = node.module or ""
                if node.level:
                    module = f"{base}.{module}".rstrip(".")
                yield path, node.lineno, module, [a.name for a in node.names]


#: consumers of the layer library inside the package: the ONNX exporter lowers each layer
#: class, importing the library in this one module (as pyproject's import contract allows)
CONSUMERS = {ROOT / "netgraph" / "onnx" / "_library.py"}


def test_the_core_imports_no_layer():
    offenders = [(p.name, line, m) for p, line, m, names in _imports(ROOT / "netgraph")
                 if p.name != "__init__.py" or p.parent.name != "netgraph"
                 if p not in CONSUMERS
                 if m.startswith(("netgraph.layers", "layers")) or
                 m == "netgraph" and "layers" in names]
    assert offenders == []


def test_layers_import_only_netgraph_extend():
    offenders = []
    for p, line, module, names in _imports(ROOT / "layers"):
        module = module.replace("layers", "netgraph.layers", 1) if module.startswith(
            "layers") else module
        if module.startswith("netgraph") and not module.startswith("netgraph.layers"):
            if module != "netgraph.extend" or any(n.startswith("_") for n in names):
                offenders.append((p.name, line, module, names))
    assert offenders == []


def test_layers_touch_no_private_attribute_of_the_core():
    """Every ``x._name`` the layer library reads is a name the library itself defines."""
    defined, used = set(), set()
    for path in (ROOT / "layers").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
                defined.add(node.name)
            elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
                defined.add(node.id)
            elif isinstance(node, ast.Attribute):
                if isinstance(node.ctx, ast.Store):
                    defined.add(node.attr)
                elif node.attr.startswith("_") and not node.attr.startswith("__"):
                    used.add(node.attr)
            elif isinstance(node, ast.alias) and node.name.startswith("_"):
                defined.add(node.asname or node.name)
    assert used - defined == set()
    assert "__setattr__" not in "".join(p.read_text() for p in (ROOT / "layers").glob("*.py"))
