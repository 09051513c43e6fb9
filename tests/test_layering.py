"""The core's import layering (tools/layering_report.py): no import cycles, function-level
imports counted, except Net's convenience methods importing what implements them."""

import importlib.util
import pathlib

ROOT = pathlib.Path(__file__).resolve().parent.parent


def _report():
    spec = importlib.util.spec_from_file_location("layering_report",
                                                  ROOT / "tools" / "layering_report.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.report(str(ROOT))


def test_no_import_cycles():
    r = _report()
    assert r["cycles"] == []
    # the only upward imports: Net.__call__ -> apply, Net.summary -> info, Net.plot -> plotting
    assert sorted(r["allowed"]) == [("netgraph.net", "__call__", "netgraph.apply"),
                                    ("netgraph.net", "plot", "netgraph.plotting"),
                                    ("netgraph.net", "summary", "netgraph.info")]
