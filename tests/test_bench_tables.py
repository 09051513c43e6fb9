"""tools/bench_tables.py: the README's benchmark tables come from the benchmarks' JSON."""

import importlib.util
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def tool():
    spec = importlib.util.spec_from_file_location("bench_tables", ROOT / "tools" / "bench_tables.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


DOC = {"benchmark": "toy", "date": "2026-12-02T03:00:00+00:00",
       "machine": {"cpu": "Some CPU", "cores": 3, "load_average": 0.25, "numpy": "2.4.6",
                   "torch": "2.13.0", "blas": {"library": "openblas", "version": "0.3",
                                               "kernel": "Haswell", "threads": 3}},
       "gemm_gflops": 123.4, "notes": ["PyTorch pads its own batch."],
       "columns": [["size", "size", ""], ["ms", "netgraph ms", ".2f"], ["ratio", "ratio", ".3f"],
                   ["exact", "exact", ""]],
       "rows": [{"size": "small", "ms": 1.23456, "ratio": 0.5, "exact": True},
                {"size": "large", "ms": 20, "ratio": None, "exact": False}]}


def test_a_marked_block_is_regenerated_from_its_json(tmp_path):
    bt = tool()
    (tmp_path / "toy.json").write_text(json.dumps(DOC))
    text = "intro\n<!-- bench:toy -->\nold numbers 9.99\n<!-- /bench:toy -->\nrest\n"
    new, missing = bt.render(text, tmp_path)
    assert missing == []
    assert new == (
        "intro\n<!-- bench:toy -->\n"
        "Measured 2026-12-02 on Some CPU (3 cores, load 0.25), openblas 0.3 with Haswell "
        "kernels, NumPy 2.4.6, PyTorch 2.13.0; `python benchmarks/toy.py`. float32 GEMM rate "
        "in the same run: 123 GFLOP/s.\n\n"
        "| size | netgraph ms | ratio | exact |\n|---|---|---|---|\n"
        "| small | 1.23 | 0.500 | yes |\n| large | 20.00 |  | no |\n\n"
        "- PyTorch pads its own batch.\n<!-- /bench:toy -->\nrest\n")
    assert bt.render(new, tmp_path)[0] == new  # regenerating changes nothing


def test_a_block_without_json_is_left_and_reported(tmp_path):
    bt = tool()
    text = "<!-- bench:none -->\nhand\n<!-- /bench:none -->\n"
    assert bt.render(text, tmp_path) == (text, ["none.json"])


def test_check_reports_a_stale_readme(tmp_path, capsys):
    bt = tool()
    results = tmp_path / "results"
    results.mkdir()
    (results / "toy.json").write_text(json.dumps(DOC))
    readme = tmp_path / "README.md"
    readme.write_text("<!-- bench:toy -->\nstale\n<!-- /bench:toy -->\n")
    args = ["--readme", str(readme), "--results", str(results)]
    assert bt.main(["--check", *args]) == 1
    assert "'toy' table differs" in capsys.readouterr().out
    assert readme.read_text() == "<!-- bench:toy -->\nstale\n<!-- /bench:toy -->\n"
    assert bt.main(args) == 0 and "123 GFLOP/s" in readme.read_text()
    assert bt.main(["--check", *args]) == 0


def test_the_readme_tables_are_those_of_the_committed_results():
    bt = tool()
    text = (ROOT / "README.md").read_text()
    new, _ = bt.render(text)
    assert new == text, "run python tools/bench_tables.py after the benchmarks"


def test_a_block_can_take_the_rows_of_one_kind_in_the_tools_layout(tmp_path):
    bt = tool()
    doc = dict(DOC, rows=[{"kind": "a", "size": "x", "ms": 1.0}, {"kind": "b", "size": "y",
                                                                   "ms": 2.5}])
    (tmp_path / "toy.json").write_text(json.dumps(doc))
    bt.LAYOUTS["toy/b"] = [("ms", "time (ms)", ".1f"), ("size", "size", "")]
    new, _ = bt.render("<!-- bench:toy/b -->\n<!-- /bench:toy/b -->\n", tmp_path)
    assert "| time (ms) | size |\n|---|---|\n| 2.5 | y |\n" in new and "| x |" not in new
