"""The README's benchmark tables, generated from the benchmarks' JSON results.

Every benchmark writes ``benchmarks/results/<name>.json`` (``benchmarks/common.py``); the
README marks where each table goes::

    <!-- bench:attention -->
    ... (generated: replaced on every run) ...
    <!-- /bench:attention -->

``bench:train/shared_cpu`` takes the rows of ``train.json`` whose ``kind`` is
``"shared_cpu"``. A block's columns are those of :data:`LAYOUTS` for its name, else the ones
the benchmark stored, else every key of its first row.

``python tools/bench_tables.py`` rewrites every marked block from its JSON (the machine and
date of the run first, then the table, then the benchmark's notes);
``python tools/bench_tables.py --check`` only reports blocks that differ from their JSON or
have none (exit code 1), so a test can keep the README honest. No number in a marked block
is written by hand.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
RESULTS = ROOT / "benchmarks" / "results"
BLOCK = re.compile(r"(<!-- bench:(?P<name>[\w-]+(?:/[\w-]+)?) -->\n)(?P<body>.*?)"
                   r"(<!-- /bench:(?P=name) -->)", re.S)

#: the README's columns of a block, ``(row key, header, format)``, by block name
LAYOUTS: dict[str, list[tuple[str, str, str]]] = {
    "attention": [("size", "size", ""), ("B", "B", ""), ("n", "n", ""), ("m", "m", ""),
                  ("d", "d", ""), ("scoring", "scoring", ""),
                  ("netgraph_ms", "netgraph ms", ".2f"),
                  ("torch_lists_ms", "PyTorch lists ms", ".2f"),
                  ("ratio_lists", "ratio", ".2f"),
                  ("torch_padded_ms", "PyTorch padded ms", ".2f"),
                  ("ratio_padded", "ratio", ".2f"), ("gemm_fraction", "GEMM %", ".1%"),
                  ("torch_pairs_padded_ms", "PyTorch per-pair module, padded ms", ".1f"),
                  ("numpy_floor_ms", "NumPy floor ms", ".2f"),
                  ("numpy_pack_ms", "+ taking lists ms", ".2f"),
                  ("floor_ratio_padded", "floor ratio", ".2f")],
    "latency": [("call", "call", ""), ("netgraph_us", "netgraph µs", ".1f"),
                ("torch_us", "PyTorch µs", ".1f"), ("ratio", "ratio", ".2f")],
    "train/train": [("title", "model", ""), ("examples", "examples", ""),
                    ("netgraph_s", "netgraph s", ".3f"), ("torch_s", "PyTorch s", ".3f"),
                    ("ratio", "ratio", ".2f"),
                    ("netgraph_1thread_s", "netgraph, 1 thread s", ".3f"),
                    ("torch_1thread_s", "PyTorch, 1 thread s", ".3f"),
                    ("ratio_both_1thread", "ratio, both on 1 thread", ".2f")],
    "train/shared_cpu": [("model", "model", ""), ("examples", "examples", ""),
                         ("triple", "triple", ""), ("order", "order", ""),
                         ("defaults_s", "defaults s", ".2f"),
                         ("one_thread_s", "BLAS on 1 thread s", ".2f"),
                         ("ratio", "defaults / 1 thread", ".2f"),
                         ("control_s", "control (defaults) s", ".2f"),
                         ("control_ratio", "control / defaults", ".2f"),
                         ("defaults_blas_thread_cpu_s", "CPU s of BLAS's threads, defaults",
                          ".2f")],
    "train/shared_cpu_summary": [("model", "model", ""), ("comparison", "comparison", ""),
                                 ("triples", "triples", ""),
                                 ("median_ratio", "median ratio", ".3f"),
                                 ("interval_low", "95 % interval from", ".3f"),
                                 ("interval_high", "to", ".3f"),
                                 ("above_one", "triples with a ratio above 1", ""),
                                 ("blas_thread_cpu_s", "most CPU s of BLAS's threads", ".2f")],
    "train_ray": [("model", "model", ""), ("batch", "batch", ""), ("run", "run", ""),
                  ("best_examples_per_s", "best examples/s", ",.0f"),
                  ("median_examples_per_s", "median examples/s", ",.0f"),
                  ("vs_this_process", "vs this process", ".2f")],
}


#: the attention benchmark run under ``netgraph.tune_malloc()``: the same columns
LAYOUTS["attention_tuned"] = LAYOUTS["attention"]


def cell(value: Any, fmt: str) -> str:
    """One table cell: numbers in their column's format, booleans as yes/no, None empty."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if fmt and isinstance(value, (int, float)):
        return format(value, fmt)
    return str(value)


def machine_line(doc: dict[str, Any]) -> str:
    m = doc["machine"]
    blas = m.get("blas", {})
    load = f", load {m['load_average']}" if "load_average" in m else ""
    torch = f", PyTorch {m['torch']}" if m.get("torch") else ""
    command = doc.get("command") or f"python benchmarks/{doc['benchmark']}.py"
    return (f"Measured {doc['date'][:10]} on {m['cpu']} ({m['cores']} cores{load}), "
            f"{blas.get('library')} {blas.get('version')} with {blas.get('kernel')} kernels, "
            f"NumPy {m['numpy']}{torch}; `{command}`.")


def table(doc: dict[str, Any], block: str | None = None) -> str:
    """The generated block of one benchmark (of its rows of one ``kind`` for a block named
    ``name/kind``): machine line, table, notes."""
    block = block or doc["benchmark"]
    kind = block.partition("/")[2]
    rows = [r for r in doc["rows"] if not kind or r.get("kind") == kind]
    columns = LAYOUTS.get(block) or doc.get("columns") or [(k, k, "") for k in rows[0]]
    lines = [machine_line(doc), ""]
    if "gemm_gflops" in doc:
        lines[0] += f" float32 GEMM rate in the same run: {doc['gemm_gflops']:.0f} GFLOP/s."
    lines.append("| " + " | ".join(header for _, header, _ in columns) + " |")
    lines.append("|" + "---|" * len(columns))
    for row in rows:
        lines.append("| " + " | ".join(cell(row.get(k), f) for k, _, f in columns) + " |")
    notes = doc.get("notes") or []
    if notes:
        lines.append("")
        lines += [f"- {note}" for note in notes]
    return "\n".join(lines) + "\n"


def render(text: str, results: Path = RESULTS) -> tuple[str, list[str]]:
    """``text`` with every marked block regenerated; and the names of blocks whose JSON is
    missing (left as they are)."""
    missing: list[str] = []

    def replace(match: re.Match) -> str:
        path = results / f"{match['name'].partition('/')[0]}.json"
        if not path.exists():
            missing.append(path.name)
            return match[0]
        return match[1] + table(json.loads(path.read_text()), match["name"]) + match[4]

    return BLOCK.sub(replace, text), missing


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="report differences, write nothing")
    ap.add_argument("--readme", type=Path, default=README)
    ap.add_argument("--results", type=Path, default=RESULTS, help="the JSON files' folder")
    args = ap.parse_args(argv)
    old = args.readme.read_text()
    new, missing = render(old, args.results)
    for name in missing:
        print(f"bench_tables: no {name} in {args.results}; its block is unchanged")
    if args.check:
        stale = [m["name"] for m, n in zip(BLOCK.finditer(old), BLOCK.finditer(new))
                 if m[0] != n[0]]
        for name in stale:
            print(f"bench_tables: the README's {name!r} table differs from its JSON")
        return 1 if stale or missing else 0
    if new != old:
        args.readme.write_text(new)
        print(f"bench_tables: {args.readme.name} updated")
    return 0


if __name__ == "__main__":
    sys.exit(main())
