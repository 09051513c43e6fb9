"""What every benchmark shares: the machine it ran on, timing, the float32 GEMM rate, and
results written as JSON (``benchmarks/results/<name>.json``), from which
``tools/bench_tables.py`` generates the README's tables.

A result file holds ``{"benchmark": name, "machine": machine(), "date": ..., "rows": [...]}``;
each row is a flat dict of one measurement (names and numbers; ratios are ours / PyTorch's,
below 1 is faster).
"""

from __future__ import annotations

import datetime
import json
import os
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo``; the platform's word for it elsewhere)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def blas() -> dict[str, Any]:
    """NumPy's BLAS: library, version, kernel (OpenBLAS' word for the CPU it tuned for, such
    as Haswell for AVX2 or SkylakeX for AVX-512) and threads, as threadpoolctl reads them."""
    try:
        from threadpoolctl import threadpool_info

        for lib in threadpool_info():
            if lib.get("user_api") == "blas":
                return {"library": lib.get("internal_api"), "version": lib.get("version"),
                        "kernel": lib.get("architecture"), "threads": lib.get("num_threads")}
    except Exception:  # noqa: BLE001 - threadpoolctl cannot inspect this process
        pass
    return {"library": "unknown", "version": None, "kernel": None, "threads": None}


def machine() -> dict[str, Any]:
    """Where a benchmark ran: CPU, cores, BLAS, the load at the start, library versions."""
    info: dict[str, Any] = {"cpu": cpu_model(), "cores": os.cpu_count(), "blas": blas(),
                            "python": platform.python_version(), "numpy": np.__version__}
    try:
        info["load_average"] = round(os.getloadavg()[0], 2)
    except OSError:
        pass
    try:
        import torch

        info["torch"] = torch.__version__
        info["torch_threads"] = torch.get_num_threads()
    except ImportError:
        info["torch"] = None
    return info


def describe_machine(info: dict[str, Any] | None = None) -> str:
    """One line naming the machine, e.g. for the top of a benchmark's printout."""
    m = info or machine()
    b = m["blas"]
    return (f"{m['cpu']}, {m['cores']} cores, {b['library']} {b['version']} "
            f"({b['kernel']} kernels, {b['threads']} threads), NumPy {m['numpy']}, "
            f"PyTorch {m.get('torch')}")


def median_ms(fns: list[Callable[[], Any]], repeat: int, pause: float = 0.3) -> list[float]:
    """Median milliseconds of each function over ``repeat`` calls after one warm-up, each
    timed in a block of its own (PyTorch's worker threads keep spinning for a while after a
    call, so strict alternation would charge that to whoever runs next)."""
    medians = []
    for fn in fns:
        fn()
        times = []
        for _ in range(repeat):
            start = time.perf_counter()
            fn()
            times.append(time.perf_counter() - start)
        medians.append(1000 * float(np.median(times)))
        time.sleep(pause)
    return medians


def rounds_ms(fns: list[Callable[[], Any]], repeat: int, rounds: int,
              pause: float = 0.3) -> tuple[list[float], list[float]]:
    """Rounds of :func:`median_ms` over all ``fns`` (``repeat`` calls each per round): load
    from other processes that comes and goes hits every side alike. Returns each function's
    median time over the rounds, and the median over the rounds of ``fns[0]``'s time over
    each function's (so the first ratio is 1)."""
    per_round = [median_ms(fns, repeat, pause) for _ in range(rounds)]
    times = [float(np.median(side)) for side in zip(*per_round)]
    ratios = [float(np.median([r[0] / r[i] for r in per_round])) for i in range(len(fns))]
    return times, ratios


def gemm_gflops(size: int = 1024, repeat: int = 5) -> float:
    """This machine's float32 matrix-product rate through NumPy (GFLOP/s, ``size``-square
    matrices, BLAS at its current threads): the yardstick for what a benchmark reaches."""
    rng = np.random.default_rng(0)
    a = rng.standard_normal((size, size), dtype=np.float32)
    b = rng.standard_normal((size, size), dtype=np.float32)
    (ms,) = median_ms([lambda: a @ b], repeat, pause=0)
    return 2 * size ** 3 / (ms / 1000) / 1e9


def write_json(name: str, rows: list[dict[str, Any]], info: dict[str, Any] | None = None,
               path: Path | None = None, columns: list[tuple[str, str, str]] | None = None,
               **extra: Any) -> Path:
    """Write a benchmark's rows to ``benchmarks/results/<name>.json`` (or ``path``).

    ``columns``: the README table's columns as ``(row key, header, format)`` triples, such as
    ``("ratio", "ours / PyTorch", ".2f")`` (format "" prints the value as it is); without
    them the table shows every key of the first row. ``extra`` (e.g. ``gemm_gflops=...``,
    ``notes=[...]``) is stored next to the rows; ``notes`` are printed under the table."""
    path = path or RESULTS / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    doc = {"benchmark": name, "machine": info or machine(),
           "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
           **extra, "columns": columns or [(k, k, "") for k in (rows[0] if rows else {})],
           "rows": rows}
    path.write_text(json.dumps(doc, indent=1) + "\n")
    return path


def read_json(name: str) -> dict[str, Any] | None:
    """A benchmark's last results, or None if it has not been run."""
    path = RESULTS / f"{name}.json"
    return json.loads(path.read_text()) if path.exists() else None
