"""What every benchmark shares: the machine it ran on, timing, the float32 GEMM rate, and
results written as JSON (``benchmarks/results/<name>.json``), from which
``tools/bench_tables.py`` generates the README's tables.

A result file holds ``{"benchmark": name, "machine": machine(), "date": ..., "rows": [...]}``;
each row is a flat dict of one measurement (names and numbers; ratios are ours / PyTorch's,
below 1 is faster).
"""

from __future__ import annotations

import contextlib
import datetime
import json
import multiprocessing
import os
import platform
import sys
import time
from collections.abc import Callable, Iterator
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


def _block_seconds(fn: Callable[[], Any], repeat: int) -> list[float]:
    """Seconds of each of ``repeat`` calls of ``fn``, after one warm-up call."""
    fn()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return times


def _serve(conn: Any, factory: Callable[[], Callable[[], Any]]) -> None:
    """A side's process: build its call, then time blocks of it on request."""
    fn = factory()
    conn.send("ready")
    while (repeat := conn.recv()) is not None:
        conn.send(_block_seconds(fn, repeat))


class SideProcess:
    """One side of a comparison in a process of its own (spawned, so nothing is inherited):
    ``factory()`` builds the call there, and :func:`median_ms` has it timed there. The sides
    then share no heap, no allocator caches and no thread pools: in one process, what one
    side holds changes the other's page faults (glibc keeps or returns the memory freed
    between them), and one side's threads still spin while the other runs. Their only
    common ground is the machine (caches, cores), as for two programs. ``factory`` must be
    picklable (a module-level function, or a ``functools.partial`` of one)."""

    def __init__(self, factory: Callable[[], Callable[[], Any]]):
        spawn = multiprocessing.get_context("spawn")
        self._conn, child = spawn.Pipe()
        self._process = spawn.Process(target=_serve, args=(child, factory), daemon=True)
        self._process.start()

    def ready(self) -> None:
        """Wait until the side's call is built (its set-up is not timed)."""
        try:
            self._conn.recv()
        except EOFError:
            raise RuntimeError("a benchmark side failed to start (its traceback is above)") \
                from None

    def block(self, repeat: int) -> list[float]:
        """Seconds of each of ``repeat`` calls (after one warm-up), timed in the process."""
        self._conn.send(repeat)
        try:
            return self._conn.recv()
        except EOFError:
            raise RuntimeError("a benchmark side failed (its traceback is above)") from None

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._conn.send(None)
        self._process.join(10)
        if self._process.is_alive():
            self._process.kill()


@contextlib.contextmanager
def side_processes(factories: list[Callable[[], Callable[[], Any]]]
                   ) -> Iterator[list[SideProcess]]:
    """A :class:`SideProcess` for each factory, started together, closed on leaving."""
    sides = [SideProcess(f) for f in factories]
    try:
        for side in sides:
            side.ready()
        yield sides
    finally:
        for side in sides:
            side.close()


def median_ms(fns: list[Callable[[], Any] | SideProcess], repeat: int,
              pause: float = 0.3) -> list[float]:
    """Median milliseconds of each function over ``repeat`` calls after one warm-up, each
    timed in a block of its own (PyTorch's worker threads keep spinning for a while after a
    call, so strict alternation would charge that to whoever runs next); a
    :class:`SideProcess` is timed in its own process."""
    medians = []
    for fn in fns:
        times = fn.block(repeat) if isinstance(fn, SideProcess) else _block_seconds(fn, repeat)
        medians.append(1000 * float(np.median(times)))
        time.sleep(pause)
    return medians


def rounds_ms(fns: list[Callable[[], Any] | SideProcess], repeat: int, rounds: int,
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
