"""What every benchmark shares: interleaved repetitions, medians, /usr/bin/time -v, a table.

The machines are shared and noisy, so every figure a benchmark reports is a ratio of two things
measured in the same run, each the median of several repetitions taken in turn (A B A B ...), so
that drift on the machine hits both sides alike.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent  # the venv's bin: snakemake and python of this environment


def interleaved(measures: dict[str, Callable[[], dict[str, float]]], repeats: int) -> dict[str, dict[str, float]]:
    """Run every measure `repeats` times in turn; the median of each figure it returns, per measure."""
    if repeats < 1:
        raise ValueError(f"repeats must be at least 1, got {repeats}")
    samples: dict[str, list[dict[str, float]]] = {name: [] for name in measures}
    for repeat in range(repeats):
        for name, measure in measures.items():
            samples[name].append(measure())
            print(f"  [{repeat + 1}/{repeats}] {name}: {_brief(samples[name][-1])}", file=sys.stderr, flush=True)
    return {name: {key: statistics.median(s[key] for s in runs) for key in runs[0]} for name, runs in samples.items()}


def _brief(figures: dict[str, float]) -> str:
    return " ".join(f"{key}={value:.4g}" for key, value in figures.items())


def timed(function: Callable[[], Any]) -> tuple[float, Any]:
    """Wall seconds of one call and what it returned."""
    seconds, _, result = timed_with_cpu(function)
    return seconds, result


def timed_with_cpu(function: Callable[[], Any]) -> tuple[float, float, Any]:
    """Wall seconds, CPU seconds of this process (all its threads) and the result of one call.

    On a shared machine the wall time of the same work swings by a fifth from minute to minute
    (other tenants take the cores); the CPU seconds it needs move by a few percent.
    """
    wall, cpu = time.perf_counter(), time.process_time()
    result = function()
    return time.perf_counter() - wall, time.process_time() - cpu, result


def run_measured(
    args: Sequence[str],
    *,
    cwd: str | Path | None = None,
    env: dict[str, str] | None = None,
    output: str | Path | None = None,
    timeout: float = 3600,
) -> dict[str, float]:
    """Run a command under `/usr/bin/time -v`: wall seconds and peak resident memory (MB).

    stdout and stderr go to `output` (or are dropped); a non-zero exit raises with the tail of it.
    """
    if not Path("/usr/bin/time").exists():
        raise RuntimeError("/usr/bin/time not found: install it (apt-get install time)")
    log_path = Path(output) if output else None
    report_path = Path(os.environ.get("TMPDIR", "/tmp")) / f"time-v-{os.getpid()}.txt"
    with open(log_path, "w") if log_path else open(os.devnull, "w") as sink:
        completed = subprocess.run(
            ["/usr/bin/time", "-v", "-o", str(report_path), *args],
            cwd=cwd,
            env={**os.environ, **(env or {})},
            stdout=sink,
            stderr=subprocess.STDOUT,
            timeout=timeout,
        )
    report = report_path.read_text()
    report_path.unlink()
    if completed.returncode != 0:
        tail = log_path.read_text()[-3000:] if log_path else "(output dropped)"
        raise RuntimeError(f"{' '.join(map(str, args))} exited {completed.returncode}:\n{tail}")
    return {"seconds": _elapsed(report), "peak_mb": int(_field(report, "Maximum resident set size")) / 1024}


def _field(report: str, name: str) -> str:
    """The value (last word) of the line of `/usr/bin/time -v` output that starts with `name`."""
    for line in report.splitlines():
        if line.strip().startswith(name):
            return line.split()[-1]
    raise RuntimeError(f"/usr/bin/time -v output has no '{name}':\n{report}")


def _elapsed(report: str) -> float:
    """'Elapsed (wall clock) time (h:mm:ss or m:ss): 1:02.35' -> seconds."""
    seconds = 0.0
    for part in _field(report, "Elapsed (wall clock) time").split(":"):
        seconds = seconds * 60 + float(part)
    return seconds


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A Markdown table; floats with 3 significant digits (ratios with 2 decimals)."""

    def cell(value: Any) -> str:
        if isinstance(value, float):
            return f"{value:.3g}" if abs(value) < 1000 else f"{value:,.0f}"
        if isinstance(value, int):
            return f"{value:,}"
        return str(value)

    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(cell(value) for value in row) + " |" for row in rows]
    return "\n".join(lines)


def header(title: str, repeats: int) -> str:
    """The first lines every benchmark prints: what, where, how often."""
    import platform

    cpu = platform.processor() or platform.machine()
    return (
        f"## {title}\n\nmachine: {os.cpu_count()} CPUs ({cpu}), Python {platform.python_version()}; "
        f"medians of {repeats} interleaved repetitions\n"
    )
